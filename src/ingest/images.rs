//! Images: decoding frames and crops completely (so a corrupt file is caught at ingest, not at
//! training time), cutting the person box out, and encoding the crop as JPEG.

use std::io::Cursor;
use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, RgbImage};

use super::BadInput;
use super::boxes::PixelBox;

/// Image formats xp stores crops in.
pub fn format_name(bytes: &[u8]) -> Option<&'static str> {
    match image::guess_format(bytes).ok()? {
        ImageFormat::Jpeg => Some("jpeg"),
        ImageFormat::Png => Some("png"),
        _ => None,
    }
}

/// Decodes a whole JPEG or PNG image; a truncated or corrupt file is refused.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<DynamicImage, BadInput> {
    let Some(format) = format_name(bytes) else {
        return Err(BadInput::new(
            path,
            "not a JPEG or PNG image (xp reads frames and crops as .jpg or .png)",
        ));
    };
    let format = if format == "jpeg" {
        ImageFormat::Jpeg
    } else {
        ImageFormat::Png
    };
    let mut reader = image::ImageReader::new(Cursor::new(bytes));
    reader.set_format(format);
    reader.decode().map_err(|e| {
        BadInput::new(
            path,
            format!("corrupt {format:?} image: {e} (re-extract or re-download the file)"),
        )
    })
}

/// How crops are cut and encoded.
#[derive(Debug, Clone, Copy)]
pub struct CropStyle {
    /// Extra border around the box, as a fraction of its width and height (clamped to the frame).
    pub margin: f32,
    /// Longest side of the stored crop in pixels; 0 keeps the box's own size.
    pub max_side: u32,
    /// JPEG quality, 1 to 100.
    pub quality: u8,
}

impl Default for CropStyle {
    fn default() -> Self {
        CropStyle {
            margin: 0.0,
            max_side: 0,
            quality: 90,
        }
    }
}

/// The box grown by the margin, kept inside a `width` x `height` frame.
pub fn with_margin(b: PixelBox, margin: f32, width: u32, height: u32) -> PixelBox {
    if margin <= 0.0 {
        return b;
    }
    let dx = (b.w as f32 * margin).round() as u32;
    let dy = (b.h as f32 * margin).round() as u32;
    let x0 = b.x.saturating_sub(dx);
    let y0 = b.y.saturating_sub(dy);
    let x1 = (b.x + b.w + dx).min(width);
    let y1 = (b.y + b.h + dy).min(height);
    PixelBox {
        x: x0,
        y: y0,
        w: x1 - x0,
        h: y1 - y0,
    }
}

/// Cuts `b` out of `frame` and encodes it as JPEG; returns the bytes, width and height.
/// Deterministic: the same pixels and style give the same bytes, so the crop's hash is stable.
pub fn crop_jpeg(frame: &RgbImage, b: PixelBox, style: &CropStyle) -> (Vec<u8>, u32, u32) {
    let mut crop = image::imageops::crop_imm(frame, b.x, b.y, b.w, b.h).to_image();
    let longest = crop.width().max(crop.height());
    if style.max_side > 0 && longest > style.max_side {
        let scale = style.max_side as f32 / longest as f32;
        let w = ((crop.width() as f32 * scale).round() as u32).max(1);
        let h = ((crop.height() as f32 * scale).round() as u32).max(1);
        crop = image::imageops::resize(&crop, w, h, FilterType::Triangle);
    }
    (
        encode_jpeg(&crop, style.quality),
        crop.width(),
        crop.height(),
    )
}

/// Encodes an RGB image as baseline JPEG.
pub fn encode_jpeg(image: &RgbImage, quality: u8) -> Vec<u8> {
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut bytes, quality)
        .encode_image(image)
        .expect("encoding an in-memory RGB image cannot fail");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, 90]))
    }

    #[test]
    fn crops_are_deterministic_and_decode_to_the_box_size() {
        let frame = gradient(64, 48);
        let b = PixelBox {
            x: 10,
            y: 5,
            w: 20,
            h: 30,
        };
        let (a, w, h) = crop_jpeg(&frame, b, &CropStyle::default());
        assert_eq!((w, h), (20, 30));
        assert_eq!(a, crop_jpeg(&frame, b, &CropStyle::default()).0);
        let img = decode(Path::new("c.jpg"), &a).unwrap();
        assert_eq!((img.width(), img.height()), (20, 30));
        assert_eq!(format_name(&a), Some("jpeg"));
    }

    #[test]
    fn max_side_shrinks_the_long_side() {
        let frame = gradient(64, 48);
        let b = PixelBox {
            x: 0,
            y: 0,
            w: 40,
            h: 20,
        };
        let style = CropStyle {
            max_side: 10,
            ..CropStyle::default()
        };
        let img = decode(Path::new("c.jpg"), &crop_jpeg(&frame, b, &style).0).unwrap();
        assert_eq!((img.width(), img.height()), (10, 5));
    }

    #[test]
    fn margin_stays_inside_the_frame() {
        let b = PixelBox {
            x: 2,
            y: 2,
            w: 10,
            h: 10,
        };
        let m = with_margin(b, 0.5, 14, 100);
        assert_eq!(
            m,
            PixelBox {
                x: 0,
                y: 0,
                w: 14,
                h: 17
            }
        );
    }

    #[test]
    fn corrupt_and_foreign_images_are_refused() {
        let good = encode_jpeg(&gradient(32, 32), 90);
        let truncated = &good[..good.len() / 2];
        let e = decode(Path::new("f/1.jpg"), truncated).unwrap_err();
        assert!(e.to_string().contains("corrupt"), "{e}");
        let e = decode(Path::new("f/1.jpg"), b"GIF89a....").unwrap_err();
        assert!(e.to_string().contains("not a JPEG or PNG"), "{e}");
    }
}
