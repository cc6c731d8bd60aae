//! The image processor of a DINOv2 folder (`preprocessor_config.json`), as transformers' PIL
//! backend applies it: resize so the shortest edge has `size.shortest_edge` pixels (PIL's
//! bicubic filter on 8-bit pixels), centre crop to `crop_size`, rescale by `rescale_factor`,
//! normalise by `image_mean` / `image_std`, channels first.
//!
//! PIL's resampling is reproduced exactly, because its rounding decides the 8-bit pixels the
//! model sees: per output pixel the cubic filter (`a = -0.5`, support 2, widened by the scale
//! when shrinking) is sampled at the input pixels around the source centre, normalised to sum
//! 1, and turned into 22-bit fixed-point coefficients; each pass (horizontal over the rows the
//! vertical pass needs, then vertical) adds rounded fixed-point products and clamps to
//! 0..=255. No crate resizes this way (the `image` crate's filters differ in support and
//! rounding).

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

const PRECISION_BITS: u32 = 32 - 8 - 2;

fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Per output pixel: the first input pixel and the fixed-point weights of the inputs from it.
struct Coefficients {
    bounds: Vec<(usize, usize)>,
    weights: Vec<Vec<i32>>,
}

fn coefficients(in_size: usize, out_size: usize) -> Coefficients {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = Vec::with_capacity(out_size);
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        // C's (int) cast truncates toward zero.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize - xmin;
        let w: Vec<f64> = (0..xmax)
            .map(|x| bicubic((x as f64 + xmin as f64 - center + 0.5) / filterscale))
            .collect();
        let total: f64 = w.iter().sum();
        let fixed = w
            .iter()
            .map(|&v| {
                let v = if total != 0.0 { v / total } else { v };
                let scaled = v * f64::from(1u32 << PRECISION_BITS);
                if v < 0.0 {
                    (scaled - 0.5) as i32
                } else {
                    (scaled + 0.5) as i32
                }
            })
            .collect();
        bounds.push((xmin, xmax));
        weights.push(fixed);
    }
    Coefficients { bounds, weights }
}

fn clip8(sum: i64) -> u8 {
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes an RGB image `[height, width, 3]` (u8) to `out_h` x `out_w` as PIL's
/// `Image.resize(..., BICUBIC)` does.
pub fn resize_bicubic(
    pixels: &[u8],
    (height, width): (usize, usize),
    (out_h, out_w): (usize, usize),
) -> Vec<u8> {
    assert_eq!(pixels.len(), height * width * 3);
    let horizontal = coefficients(width, out_w);
    let vertical = coefficients(height, out_h);
    // Only the rows the vertical pass reads go through the horizontal pass.
    let first_row = vertical.bounds[0].0;
    let last = vertical.bounds[out_h - 1];
    let rows = last.0 + last.1 - first_row;
    let wide = if out_w != width {
        let mut tmp = vec![0u8; rows * out_w * 3];
        for y in 0..rows {
            let src = &pixels[(y + first_row) * width * 3..][..width * 3];
            for (xx, ((xmin, n), k)) in horizontal
                .bounds
                .iter()
                .zip(&horizontal.weights)
                .enumerate()
            {
                for band in 0..3 {
                    let mut sum: i64 = 1 << (PRECISION_BITS - 1);
                    for x in 0..*n {
                        sum += i64::from(src[(x + xmin) * 3 + band]) * i64::from(k[x]);
                    }
                    tmp[(y * out_w + xx) * 3 + band] = clip8(sum);
                }
            }
        }
        tmp
    } else {
        pixels[first_row * width * 3..(first_row + rows) * width * 3].to_vec()
    };
    if out_h == height {
        return wide;
    }
    let mut out = vec![0u8; out_h * out_w * 3];
    for (yy, ((ymin, n), k)) in vertical.bounds.iter().zip(&vertical.weights).enumerate() {
        let ymin = ymin - first_row;
        for xx in 0..out_w {
            for band in 0..3 {
                let mut sum: i64 = 1 << (PRECISION_BITS - 1);
                for y in 0..*n {
                    sum += i64::from(wide[((y + ymin) * out_w + xx) * 3 + band]) * i64::from(k[y]);
                }
                out[(yy * out_w + xx) * 3 + band] = clip8(sum);
            }
        }
    }
    out
}

#[derive(Debug, Clone, Deserialize, Serialize)]
struct SizeSpec {
    shortest_edge: Option<usize>,
    height: Option<usize>,
    width: Option<usize>,
}

/// The settings of a `preprocessor_config.json`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ImageProcessor {
    #[serde(default = "yes")]
    do_resize: bool,
    size: Option<SizeSpec>,
    #[serde(default = "bicubic_code")]
    resample: u32,
    #[serde(default = "yes")]
    do_center_crop: bool,
    crop_size: Option<SizeSpec>,
    #[serde(default = "yes")]
    do_rescale: bool,
    #[serde(default = "default_rescale")]
    rescale_factor: f64,
    #[serde(default = "yes")]
    do_normalize: bool,
    #[serde(default)]
    image_mean: Vec<f64>,
    #[serde(default)]
    image_std: Vec<f64>,
}

fn yes() -> bool {
    true
}
fn bicubic_code() -> u32 {
    3
}
fn default_rescale() -> f64 {
    1.0 / 255.0
}

impl ImageProcessor {
    pub fn load(dir: &Path) -> Result<ImageProcessor> {
        let path = super::folder::required(dir, "preprocessor_config.json", "dinov2")?;
        let p: ImageProcessor = serde_json::from_slice(
            &std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?,
        )
        .with_context(|| format!("{} is not an image processor config", path.display()))?;
        if p.do_resize && p.resample != 3 {
            bail!(
                "{}: resample {} is not supported (xp resizes with PIL's bicubic filter, 3)",
                path.display(),
                p.resample
            );
        }
        if p.do_normalize && (p.image_mean.len() != 3 || p.image_std.len() != 3) {
            bail!("{}: image_mean and image_std need 3 values", path.display());
        }
        Ok(p)
    }

    /// The settings as canonical JSON (part of the embedder's fingerprint).
    pub fn canonical(&self) -> String {
        serde_json::to_string(self).expect("settings serialise")
    }

    /// The resized size of a `height` x `width` image (transformers' rule for
    /// `shortest_edge`: the short side becomes it, the long side is scaled and truncated).
    fn resized(&self, height: usize, width: usize) -> Result<(usize, usize)> {
        let size = self.size.as_ref().context("size is missing")?;
        if let Some(short) = size.shortest_edge {
            let (s, l) = (height.min(width), height.max(width));
            let long = (short as f64 * l as f64 / s as f64) as usize;
            return Ok(if height <= width {
                (short, long)
            } else {
                (long, short)
            });
        }
        match (size.height, size.width) {
            (Some(h), Some(w)) => Ok((h, w)),
            _ => bail!("size needs shortest_edge, or height and width"),
        }
    }

    /// An RGB image `[height, width, 3]` -> the model's input `[3, out_h, out_w]`, and its size.
    pub fn apply(
        &self,
        pixels: &[u8],
        height: usize,
        width: usize,
    ) -> Result<(Vec<f32>, usize, usize)> {
        let (mut img, mut h, mut w) = (pixels.to_vec(), height, width);
        if self.do_resize {
            let (rh, rw) = self.resized(h, w)?;
            img = resize_bicubic(&img, (h, w), (rh, rw));
            (h, w) = (rh, rw);
        }
        if self.do_center_crop {
            let crop = self.crop_size.as_ref().context("crop_size is missing")?;
            let (ch, cw) = (crop.height.unwrap_or(h), crop.width.unwrap_or(w));
            if ch > h || cw > w {
                bail!("a {h} x {w} image is smaller than the {ch} x {cw} crop");
            }
            let (top, left) = ((h - ch) / 2, (w - cw) / 2);
            let mut cropped = Vec::with_capacity(ch * cw * 3);
            for y in top..top + ch {
                cropped.extend_from_slice(&img[(y * w + left) * 3..(y * w + left + cw) * 3]);
            }
            (img, h, w) = (cropped, ch, cw);
        }
        let mut out = vec![0.0f32; 3 * h * w];
        for (i, px) in img.chunks_exact(3).enumerate() {
            for c in 0..3 {
                let mut v = f64::from(px[c]);
                if self.do_rescale {
                    v = (v * self.rescale_factor) as f32 as f64;
                }
                if self.do_normalize {
                    v = (v - self.image_mean[c]) / self.image_std[c];
                }
                out[c * h * w + i] = v as f32;
            }
        }
        Ok((out, h, w))
    }
}
