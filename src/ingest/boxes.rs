//! Person boxes per frame, from a detector's output: YOLO label text (`class cx cy w h [conf]`,
//! normalised to the image size) or an Ultralytics JSON export (`results[0].to_json()`, in
//! pixels). One file per frame in both.
//!
//! The parsers check what a file alone can tell (numbers, columns, ranges that never make
//! sense); whether a box fits its frame needs the image size, so [`Detection::to_pixels`] checks
//! that.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Map, Value};

use super::BadInput;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BoxCoords {
    /// YOLO: centre and size as fractions of the image width and height.
    Normalized { cx: f32, cy: f32, w: f32, h: f32 },
    /// Ultralytics JSON: corners in pixels.
    Pixels { x1: f32, y1: f32, x2: f32, y2: f32 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub class: i64,
    pub confidence: Option<f32>,
    pub coords: BoxCoords,
    /// 1-based line (YOLO) or 0-based array index + 1 (JSON), for errors.
    pub line: u64,
}

/// A box in whole pixels inside the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelBox {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// Which person box a frame keeps when the detector found several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PickRule {
    /// The interviewee usually fills the frame; reporters and crowd are smaller.
    #[default]
    Largest,
    MostConfident,
}

const YOLO_SHAPE: &str = "a YOLO label line is `class cx cy w h [conf]`: an integer class, the \
                          box centre and size as fractions of the image size, and optionally a \
                          confidence from 0 to 1";

/// YOLO label text: one detection per non-blank line.
pub fn parse_yolo(path: &Path, bytes: &[u8]) -> Result<Vec<Detection>, BadInput> {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text.strip_prefix('\u{feff}').unwrap_or(text),
        Err(e) => {
            let at = e.valid_up_to();
            let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() as u64 + 1;
            return Err(BadInput::new(
                path,
                format!("not text: invalid UTF-8 at byte {at}; {YOLO_SHAPE}"),
            )
            .line(line));
        }
    };
    let mut out = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = i as u64 + 1;
        let cols: Vec<&str> = raw.split_whitespace().collect();
        if cols.is_empty() {
            continue;
        }
        if cols.len() != 5 && cols.len() != 6 {
            return Err(BadInput::new(
                path,
                format!("{} columns, expected 5 or 6; {YOLO_SHAPE}", cols.len()),
            )
            .line(line));
        }
        let err =
            |field: &str, message: String| BadInput::new(path, message).line(line).field(field);
        let class = parse_class(cols[0]).ok_or_else(|| {
            err(
                "class",
                format!(
                    "`{}` is not an integer class index (e.g. 0 for COCO's person); \
                     {YOLO_SHAPE}",
                    shown(cols[0])
                ),
            )
        })?;
        let mut values = [0f32; 4];
        for (k, name) in ["cx", "cy", "w", "h"].into_iter().enumerate() {
            values[k] = yolo_number(cols[k + 1]).map_err(|m| err(name, m))?;
        }
        let [cx, cy, w, h] = values;
        // Out-of-image centres are for to_pixels to judge; a negative size never makes sense.
        for (name, v) in [("w", w), ("h", h)] {
            if v < 0.0 {
                return Err(err(
                    name,
                    format!(
                        "negative box size {v}; box width and height must be >= 0; {YOLO_SHAPE}"
                    ),
                ));
            }
        }
        let confidence = match cols.get(5) {
            None => None,
            Some(txt) => {
                let c = yolo_number(txt).map_err(|m| err("conf", m))?;
                if !(0.0..=1.0).contains(&c) {
                    return Err(err(
                        "conf",
                        format!("confidence {c} is outside [0, 1]; {YOLO_SHAPE}"),
                    ));
                }
                Some(c)
            }
        };
        out.push(Detection {
            class,
            confidence,
            coords: BoxCoords::Normalized { cx, cy, w, h },
            line,
        });
    }
    Ok(out)
}

/// An integer; also `0.0`, since some exporters write every column as a float.
fn parse_class(txt: &str) -> Option<i64> {
    if let Ok(c) = txt.parse::<i64>() {
        return Some(c);
    }
    whole(txt.parse::<f64>().ok()?)
}

fn whole(f: f64) -> Option<i64> {
    // `i64::MAX as f64` is 2^63, itself out of range; every whole f64 below it fits.
    (f.is_finite() && f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64)
        .then_some(f as i64)
}

fn yolo_number(txt: &str) -> Result<f32, String> {
    match txt.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(format!(
            "`{}` is not a finite number (NaN or infinity, or too large); {YOLO_SHAPE}",
            shown(txt)
        )),
        Err(_) => Err(format!("`{}` is not a number; {YOLO_SHAPE}", shown(txt))),
    }
}

/// A token for an error message; garbage can be long.
fn shown(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(MAX).collect::<String>())
    }
}

const JSON_SHAPE: &str = "an Ultralytics export (`results[0].to_json()`) is a JSON array of \
                          detections like {\"name\": \"person\", \"class\": 0, \"confidence\": \
                          0.93, \"box\": {\"x1\": .., \"y1\": .., \"x2\": .., \"y2\": ..}} with the \
                          box in pixels";

/// Ultralytics' JSON export of one frame. Keys other than `class`, `confidence` and `box`
/// (`name`, `track_id`, `segments`, `keypoints`, ...) are ignored.
pub fn parse_ultralytics_json(path: &Path, bytes: &[u8]) -> Result<Vec<Detection>, BadInput> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let root: Value = serde_json::from_slice(bytes).map_err(|e| {
        let err = BadInput::new(path, format!("malformed JSON ({e}); {JSON_SHAPE}"));
        if e.line() > 0 {
            err.line(e.line() as u64)
        } else {
            err
        }
    })?;
    let Value::Array(items) = root else {
        return Err(BadInput::new(
            path,
            format!("the top level is {}; {JSON_SHAPE}", kind(&root)),
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| json_detection(path, i, item))
        .collect()
}

fn json_detection(path: &Path, i: usize, item: &Value) -> Result<Detection, BadInput> {
    let at = format!("[{i}]");
    let err =
        |field: &str, message: String| BadInput::new(path, message).field(format!("{at}{field}"));
    let Value::Object(map) = item else {
        return Err(err(
            "",
            format!(
                "a detection must be an object, got {}; {JSON_SHAPE}",
                kind(item)
            ),
        ));
    };
    let class = match map.get("class") {
        None => {
            return Err(err(
                ".class",
                format!("missing: each detection needs its integer `class`; {JSON_SHAPE}"),
            ));
        }
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_f64().and_then(whole))
            .ok_or_else(|| {
                err(
                    ".class",
                    format!("must be an integer class index, got {}", kind(v)),
                )
            })?,
    };
    let confidence = match map.get("confidence") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_f64() {
            Some(c) if (0.0..=1.0).contains(&c) => Some(c as f32),
            _ => {
                return Err(err(
                    ".confidence",
                    format!("must be a number from 0 to 1, got {}", kind(v)),
                ));
            }
        },
    };
    let corners = match map.get("box") {
        None => {
            return Err(err(
                ".box",
                format!("missing: each detection needs its `box`; {JSON_SHAPE}"),
            ));
        }
        Some(Value::Object(b)) => b,
        Some(v) => {
            return Err(err(
                ".box",
                format!(
                    "must be an object with x1, y1, x2, y2 in pixels, got {}",
                    kind(v)
                ),
            ));
        }
    };
    let coord = |key: &str| json_pixel(corners, key).map_err(|m| err(&format!(".box.{key}"), m));
    let (x1, y1, x2, y2) = (coord("x1")?, coord("y1")?, coord("x2")?, coord("y2")?);
    for (far, a, near, b, what) in [
        ("x2", x2, "x1", x1, "left of"),
        ("y2", y2, "y1", y1, "above"),
    ] {
        if a < b {
            return Err(err(
                &format!(".box.{far}"),
                format!(
                    "{far} = {a} is {what} {near} = {b}; a box needs {near} <= {far} (corners \
                     top-left and bottom-right)"
                ),
            ));
        }
    }
    Ok(Detection {
        class,
        confidence,
        coords: BoxCoords::Pixels { x1, y1, x2, y2 },
        line: i as u64 + 1,
    })
}

fn json_pixel(corners: &Map<String, Value>, key: &str) -> Result<f32, String> {
    match corners.get(key) {
        None => Err("missing: a box needs x1, y1, x2 and y2 in pixels".into()),
        Some(v) => match v.as_f64().map(|f| f as f32) {
            // The f32 cast turns huge values into infinity.
            Some(f) if f.is_finite() => Ok(f),
            _ => Err(format!("must be a number of pixels, got {}", kind(v))),
        },
    }
}

fn kind(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string \"{}\"", shown(s)),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// Float noise below this (in pixels) is not a real edge: 0.3 + 0.1 in f32 times 100 is
/// 40.000002, whose ceiling would add a pixel column the detector never meant.
const SNAP_PX: f64 = 1e-3;

fn snap(v: f64) -> f64 {
    if (v - v.round()).abs() < SNAP_PX {
        v.round()
    } else {
        v
    }
}

impl Detection {
    /// The box in pixels of a `width` x `height` image. Refuses a box outside the image (more
    /// than half a pixel, or 1e-3 normalised, beyond an edge), a zero-area box, NaN/inf. Tiny
    /// overshoots within tolerance are clamped. Rounding: x = floor(x1), right = ceil(x2)
    /// clamped, same for y; w,h >= 1.
    pub fn to_pixels(&self, width: u32, height: u32) -> Result<PixelBox, String> {
        if width == 0 || height == 0 {
            return Err(format!(
                "the image is {width}x{height} pixels: no box fits an empty image"
            ));
        }
        let (iw, ih) = (f64::from(width), f64::from(height));
        let (corners, tol_x, tol_y, tol_text, hint) = match self.coords {
            BoxCoords::Normalized { cx, cy, w, h } => {
                let (cx, cy, w, h) = (f64::from(cx), f64::from(cy), f64::from(w), f64::from(h));
                (
                    [
                        (cx - w / 2.0) * iw,
                        (cy - h / 2.0) * ih,
                        (cx + w / 2.0) * iw,
                        (cy + h / 2.0) * ih,
                    ],
                    1e-3 * iw,
                    1e-3 * ih,
                    "1e-3 of the image size",
                    "(YOLO boxes are fractions of the image, 0 to 1)",
                )
            }
            BoxCoords::Pixels { x1, y1, x2, y2 } => (
                [x1, y1, x2, y2].map(f64::from),
                0.5,
                0.5,
                "half a pixel",
                "(are the detections from a different video size?)",
            ),
        };
        let size = format!("a {width}x{height} image");
        if !corners.iter().all(|v| v.is_finite()) {
            return Err(format!(
                "box {} has a coordinate that is NaN or infinite",
                self.describe()
            ));
        }
        let [x1, y1, x2, y2] = corners;
        if x1 < -tol_x || y1 < -tol_y || x2 > iw + tol_x || y2 > ih + tol_y {
            return Err(format!(
                "box outside the image: box {} in {size}; xp accepts boxes at most {tol_text} \
                 beyond an edge {hint}",
                self.describe()
            ));
        }
        let (x1, x2) = (x1.clamp(0.0, iw), x2.clamp(0.0, iw));
        let (y1, y2) = (y1.clamp(0.0, ih), y2.clamp(0.0, ih));
        if x2 <= x1 || y2 <= y1 {
            return Err(format!(
                "zero-area box: box {} in {size} has no width or no height inside the image",
                self.describe()
            ));
        }
        // Whole pixels that cover the box; never empty, never past the edge.
        let span = |lo: f64, hi: f64, size: f64| {
            let start = snap(lo).floor().min(size - 1.0);
            let end = snap(hi).ceil().min(size).max(start + 1.0);
            (start as u32, (end - start) as u32)
        };
        let (x, w) = span(x1, x2, iw);
        let (y, h) = span(y1, y2, ih);
        Ok(PixelBox { x, y, w, h })
    }

    /// The box's area as a fraction of the image, to compare boxes of either kind. 0 for a box
    /// with NaN or negative sides; an image with no pixels counts as one pixel.
    pub fn area_normalized(&self, width: u32, height: u32) -> f64 {
        let area = match self.coords {
            BoxCoords::Normalized { w, h, .. } => f64::from(w) * f64::from(h),
            BoxCoords::Pixels { x1, y1, x2, y2 } => {
                let image = (f64::from(width) * f64::from(height)).max(1.0);
                f64::from(x2 - x1) * f64::from(y2 - y1) / image
            }
        };
        // Two negative sides would multiply to a positive area.
        let sides_ok = match self.coords {
            BoxCoords::Normalized { w, h, .. } => w >= 0.0 && h >= 0.0,
            BoxCoords::Pixels { x1, y1, x2, y2 } => x2 >= x1 && y2 >= y1,
        };
        if sides_ok && area.is_finite() {
            area
        } else {
            0.0
        }
    }

    fn describe(&self) -> String {
        match self.coords {
            BoxCoords::Normalized { cx, cy, w, h } => {
                format!("cx={cx} cy={cy} w={w} h={h} (normalised)")
            }
            BoxCoords::Pixels { x1, y1, x2, y2 } => {
                format!("x1={x1} y1={y1} x2={x2} y2={y2} (pixels)")
            }
        }
    }
}

/// The person box of a frame: among detections of class `person_class`, the largest (by area;
/// ties: the first) or the most confident (ties: the larger, then the first). None when there is
/// none. A detection without a confidence counts as confidence 0.0 (it was not vouched for, so
/// it loses to any scored box).
pub fn pick(
    detections: &[Detection],
    person_class: i64,
    rule: PickRule,
    width: u32,
    height: u32,
) -> Option<&Detection> {
    let mut best: Option<(&Detection, f64, f32)> = None;
    for d in detections.iter().filter(|d| d.class == person_class) {
        let area = d.area_normalized(width, height);
        let conf = d.confidence.filter(|c| c.is_finite()).unwrap_or(0.0);
        // Strictly better only, so that ties keep the earlier detection.
        let better = match best {
            None => true,
            Some((_, best_area, best_conf)) => match rule {
                PickRule::Largest => area > best_area,
                PickRule::MostConfident => {
                    conf > best_conf || (conf == best_conf && area > best_area)
                }
            },
        };
        if better {
            best = Some((d, area, conf));
        }
    }
    best.map(|(d, _, _)| d)
}

/// Writes YOLO text lines (for the demo and tests), 6 decimals, conf appended when Some.
pub fn write_yolo(detections: &[(i64, [f32; 4], Option<f32>)]) -> String {
    let mut out = String::new();
    for (class, [cx, cy, w, h], conf) in detections {
        let _ = write!(out, "{class} {cx:.6} {cy:.6} {w:.6} {h:.6}");
        if let Some(c) = conf {
            let _ = write!(out, " {c:.6}");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn yolo(s: &str) -> Result<Vec<Detection>, BadInput> {
        parse_yolo(Path::new("f/000042.txt"), s.as_bytes())
    }

    fn json(s: &str) -> Result<Vec<Detection>, BadInput> {
        parse_ultralytics_json(Path::new("f/000042.json"), s.as_bytes())
    }

    fn norm(class: i64, [cx, cy, w, h]: [f32; 4], confidence: Option<f32>, line: u64) -> Detection {
        Detection {
            class,
            confidence,
            coords: BoxCoords::Normalized { cx, cy, w, h },
            line,
        }
    }

    fn px(class: i64, [x1, y1, x2, y2]: [f32; 4], confidence: Option<f32>) -> Detection {
        Detection {
            class,
            confidence,
            coords: BoxCoords::Pixels { x1, y1, x2, y2 },
            line: 1,
        }
    }

    // --- YOLO

    #[test]
    fn yolo_lines_columns_and_blanks() {
        let s = "\u{feff}0 0.5 0.5 0.25 0.75 0.93\r\n\n   \n2\t0.1 0.2 0.3 0.4\n0.0 1.2 -0.1 0 0\n";
        assert_eq!(
            yolo(s).unwrap(),
            vec![
                norm(0, [0.5, 0.5, 0.25, 0.75], Some(0.93), 1),
                norm(2, [0.1, 0.2, 0.3, 0.4], None, 4),
                // Centres off the image are for to_pixels to refuse.
                norm(0, [1.2, -0.1, 0.0, 0.0], None, 5),
            ]
        );
        assert!(yolo("").unwrap().is_empty());
        assert!(yolo("\n\n").unwrap().is_empty());
    }

    #[test]
    fn yolo_refusals_name_line_and_field() {
        let cases: &[(&str, u64, Option<&str>, &str)] = &[
            ("0 0.5 0.5 0.2", 1, None, "4 columns, expected 5 or 6"),
            ("0 0.5 0.5 0.2 0.2\n0 1 2 3 4 5 6", 2, None, "7 columns"),
            ("person 0.5 0.5 0.2 0.2", 1, Some("class"), "not an integer"),
            ("1.5 0.5 0.5 0.2 0.2", 1, Some("class"), "not an integer"),
            (
                "\n\n0 abc 0.5 0.2 0.2",
                3,
                Some("cx"),
                "`abc` is not a number",
            ),
            ("0 0.5 0,5 0.2 0.2", 1, Some("cy"), "not a number"),
            ("0 0.5 0.5 NaN 0.2", 1, Some("w"), "not a finite number"),
            ("0 0.5 0.5 0.2 inf", 1, Some("h"), "not a finite number"),
            ("0 0.5 0.5 0.2 1e39", 1, Some("h"), "not a finite number"),
            ("0 0.5 0.5 -0.2 0.2", 1, Some("w"), "negative"),
            ("0 0.5 0.5 0.2 -1", 1, Some("h"), "negative"),
            ("0 0.5 0.5 0.2 0.2 1.5", 1, Some("conf"), "outside [0, 1]"),
            ("0 0.5 0.5 0.2 0.2 -0.1", 1, Some("conf"), "outside [0, 1]"),
            ("0 0.5 0.5 0.2 0.2 high", 1, Some("conf"), "not a number"),
        ];
        for (input, line, field, words) in cases {
            let e = yolo(input).unwrap_err();
            assert_eq!(e.line, Some(*line), "{input:?}: {e}");
            assert_eq!(e.field.as_deref(), *field, "{input:?}: {e}");
            assert!(e.message.contains(words), "{input:?}: {e}");
            assert!(e.message.contains("class cx cy w h [conf]"), "{e}");
        }
        let e = yolo("0 0.5 0.5 NaN 0.2").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("f/000042.txt:1: field `w`: `NaN`"),
            "{e}"
        );
        // Whole-number floats are classes.
        assert_eq!(yolo("3.0 0.5 0.5 0.1 0.1").unwrap()[0].class, 3);
    }

    #[test]
    fn yolo_invalid_utf8() {
        let e = parse_yolo(Path::new("f.txt"), b"0 0.5 0.5 0.1 0.1\n0 0.5\xff").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("invalid UTF-8 at byte 23"), "{e}");
    }

    // --- Ultralytics JSON

    const ULTRALYTICS: &str = r#"[
  {
    "name": "person",
    "class": 0,
    "confidence": 0.93,
    "box": {"x1": 410.5, "y1": 80.25, "x2": 890.0, "y2": 719.0},
    "track_id": 3,
    "keypoints": {"x": [1, 2], "y": [3, 4], "visible": [0.9, 0.8]}
  },
  {
    "name": "tennis racket",
    "class": 38,
    "confidence": 0.41,
    "box": {"x1": 10, "y1": 20, "x2": 30, "y2": 40},
    "segments": {"x": [], "y": []}
  },
  {"class": 0, "confidence": null, "box": {"x1": 0, "y1": 0, "x2": 0, "y2": 0}}
]"#;

    #[test]
    fn ultralytics_json_with_extra_keys() {
        let mut third = px(0, [0.0, 0.0, 0.0, 0.0], None);
        third.line = 3;
        let mut second = px(38, [10.0, 20.0, 30.0, 40.0], Some(0.41));
        second.line = 2;
        assert_eq!(
            json(ULTRALYTICS).unwrap(),
            vec![
                px(0, [410.5, 80.25, 890.0, 719.0], Some(0.93)),
                second,
                third
            ]
        );
        assert!(json("[]").unwrap().is_empty());
        assert!(json("\u{feff}[]").unwrap().is_empty());
    }

    #[test]
    fn ultralytics_json_refusals() {
        let b = r#""box": {"x1": 1, "y1": 2, "x2": 3, "y2": 4}"#;
        let cases: Vec<(String, Option<&str>, &str)> = vec![
            (r#"{"x": 1}"#.into(), None, "top level is an object"),
            ("[0]".into(), Some("[0]"), "must be an object"),
            (format!(r#"[{{{b}}}]"#), Some("[0].class"), "missing"),
            (
                format!(r#"[{{"class": "0", {b}}}]"#),
                Some("[0].class"),
                "integer",
            ),
            (
                format!(r#"[{{"class": 0.5, {b}}}]"#),
                Some("[0].class"),
                "integer",
            ),
            (
                format!(r#"[{{"class": 0, {b}}}, {{"class": 0}}]"#),
                Some("[1].box"),
                "missing",
            ),
            (
                r#"[{"class": 0, "box": [1, 2, 3, 4]}]"#.into(),
                Some("[0].box"),
                "x1, y1",
            ),
            (
                r#"[{"class": 0, "box": {"x1": 1, "y1": 2, "x2": 3}}]"#.into(),
                Some("[0].box.y2"),
                "missing",
            ),
            (
                r#"[{"class": 0, "box": {"x1": 1, "y1": "2", "x2": 3, "y2": 4}}]"#.into(),
                Some("[0].box.y1"),
                "number of pixels",
            ),
            (
                r#"[{"class": 0, "box": {"x1": 1, "y1": 2, "x2": 3, "y2": 1e300}}]"#.into(),
                Some("[0].box.y2"),
                "number of pixels",
            ),
            (
                r#"[{"class": 0, "box": {"x1": 5, "y1": 2, "x2": 3, "y2": 4}}]"#.into(),
                Some("[0].box.x2"),
                "left of x1",
            ),
            (
                r#"[{"class": 0, "box": {"x1": 1, "y1": 5, "x2": 3, "y2": 4}}]"#.into(),
                Some("[0].box.y2"),
                "above y1",
            ),
            (
                format!(r#"[{{"class": 0, "confidence": 1.5, {b}}}]"#),
                Some("[0].confidence"),
                "0 to 1",
            ),
        ];
        for (input, field, words) in &cases {
            let e = json(input).unwrap_err();
            assert_eq!(e.field.as_deref(), *field, "{input}: {e}");
            assert!(e.message.contains(words), "{input}: {e}");
            assert_eq!(e.line, None, "{input}: {e}");
        }
        let e = json("[\n  {\"class\": 0,\n   \"box\": {\"x1\": }\n]").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(e.message.contains("malformed JSON"), "{e}");
        let e = json("").unwrap_err();
        assert!(e.message.contains("malformed JSON"), "{e}");
    }

    // --- to_pixels

    #[test]
    fn to_pixels_whole_image_and_rounding() {
        let full = norm(0, [0.5, 0.5, 1.0, 1.0], None, 1);
        assert_eq!(
            full.to_pixels(640, 480),
            Ok(PixelBox {
                x: 0,
                y: 0,
                w: 640,
                h: 480
            })
        );
        // floor of the left/top edge, ceil of the right/bottom edge.
        let b = px(0, [10.4, 20.6, 30.2, 40.0], None);
        assert_eq!(
            b.to_pixels(100, 100),
            Ok(PixelBox {
                x: 10,
                y: 20,
                w: 21,
                h: 20
            })
        );
        // f32 noise does not add a pixel: 0.3 - 0.1 .. 0.3 + 0.1 of 100 is 20..40.
        let b = norm(0, [0.3, 0.3, 0.2, 0.2], None, 1);
        assert_eq!(
            b.to_pixels(100, 100),
            Ok(PixelBox {
                x: 20,
                y: 20,
                w: 20,
                h: 20
            })
        );
        // A sliver inside one pixel still gives a 1x1 box.
        let b = px(0, [5.2, 5.2, 5.3, 5.3], None);
        assert_eq!(
            b.to_pixels(10, 10),
            Ok(PixelBox {
                x: 5,
                y: 5,
                w: 1,
                h: 1
            })
        );
        // A sliver on the far edge stays inside the image.
        let b = px(0, [9.9995, 0.0, 10.0, 10.0], None);
        assert_eq!(
            b.to_pixels(10, 10),
            Ok(PixelBox {
                x: 9,
                y: 0,
                w: 1,
                h: 10
            })
        );
    }

    #[test]
    fn to_pixels_clamps_small_overshoots() {
        let b = px(0, [-0.5, -0.3, 100.5, 50.4], None);
        assert_eq!(
            b.to_pixels(100, 50),
            Ok(PixelBox {
                x: 0,
                y: 0,
                w: 100,
                h: 50
            })
        );
        // 1e-3 normalised beyond each edge is tolerated.
        let b = norm(0, [0.5, 0.5, 1.0019, 1.0019], None, 1);
        assert_eq!(
            b.to_pixels(1920, 1080),
            Ok(PixelBox {
                x: 0,
                y: 0,
                w: 1920,
                h: 1080
            })
        );
    }

    #[test]
    fn to_pixels_refusals() {
        let outside = [
            px(0, [-0.6, 0.0, 10.0, 10.0], None),
            px(0, [0.0, -0.6, 10.0, 10.0], None),
            px(0, [0.0, 0.0, 100.6, 10.0], None),
            px(0, [0.0, 0.0, 10.0, 50.6], None),
            px(0, [200.0, 0.0, 300.0, 10.0], None),
            norm(0, [0.5, 0.5, 1.003, 0.5], None, 1),
            norm(0, [0.5, 0.5, 0.5, 1.003], None, 1),
            norm(0, [1.2, 0.5, 0.1, 0.1], None, 1),
            norm(0, [0.5, -0.2, 0.1, 0.1], None, 1),
        ];
        for b in outside {
            let e = b.to_pixels(100, 50).unwrap_err();
            assert!(e.contains("box outside the image"), "{b:?}: {e}");
            assert!(e.contains("100x50"), "{e}");
        }
        let e = px(0, [0.0, 0.0, 100.6, 10.0], None)
            .to_pixels(100, 50)
            .unwrap_err();
        assert!(e.contains("x1=0 y1=0 x2=100.6 y2=10"), "{e}");
        let e = norm(0, [1.2, 0.5, 0.1, 0.1], None, 1)
            .to_pixels(100, 50)
            .unwrap_err();
        assert!(e.contains("cx=1.2 cy=0.5 w=0.1 h=0.1"), "{e}");

        for b in [
            px(0, [5.0, 5.0, 5.0, 9.0], None),
            px(0, [5.0, 9.0, 6.0, 9.0], None),
            norm(0, [0.5, 0.5, 0.0, 0.2], None, 1),
            // On the edge, clamped to nothing.
            px(0, [100.2, 0.0, 100.4, 10.0], None),
            px(0, [6.0, 0.0, 5.0, 10.0], None),
        ] {
            let e = b.to_pixels(100, 50).unwrap_err();
            assert!(e.contains("zero-area box"), "{b:?}: {e}");
        }
        for b in [
            px(0, [f32::NAN, 0.0, 5.0, 5.0], None),
            norm(0, [0.5, f32::INFINITY, 0.1, 0.1], None, 1),
        ] {
            let e = b.to_pixels(100, 50).unwrap_err();
            assert!(e.contains("NaN or infinite"), "{b:?}: {e}");
        }
        assert!(px(0, [0.0, 0.0, 1.0, 1.0], None).to_pixels(0, 10).is_err());
    }

    // --- pick

    #[test]
    fn pick_rules() {
        let dets = vec![
            px(0, [0.0, 0.0, 10.0, 10.0], Some(0.9)),
            px(38, [0.0, 0.0, 90.0, 90.0], Some(0.99)),
            norm(0, [0.5, 0.5, 0.5, 0.5], Some(0.6), 3),
            px(0, [0.0, 0.0, 20.0, 20.0], None),
        ];
        // 100x100: areas 0.01, (racket), 0.25, 0.04.
        let largest = pick(&dets, 0, PickRule::Largest, 100, 100).unwrap();
        assert_eq!(largest, &dets[2]);
        let confident = pick(&dets, 0, PickRule::MostConfident, 100, 100).unwrap();
        assert_eq!(confident, &dets[0]);
        assert_eq!(pick(&dets, 38, PickRule::Largest, 100, 100), Some(&dets[1]));
        assert_eq!(pick(&dets, 1, PickRule::Largest, 100, 100), None);
        assert_eq!(pick(&[], 0, PickRule::MostConfident, 100, 100), None);
        assert_eq!(PickRule::default(), PickRule::Largest);
    }

    #[test]
    fn pick_ties_and_missing_confidence() {
        let a = px(0, [0.0, 0.0, 10.0, 10.0], Some(0.8));
        let b = px(0, [0.0, 0.0, 20.0, 20.0], Some(0.8));
        let c = px(0, [50.0, 50.0, 70.0, 70.0], Some(0.8));
        let dets = [a.clone(), b.clone(), c.clone()];
        // Equal confidence: the larger; equal size too: the first.
        let got = pick(&dets, 0, PickRule::MostConfident, 100, 100).unwrap();
        assert!(std::ptr::eq(got, &dets[1]));
        let got = pick(&dets, 0, PickRule::Largest, 100, 100).unwrap();
        assert!(std::ptr::eq(got, &dets[1]));
        // No confidence counts as 0.0: loses to any scored box, even a smaller one.
        let unscored = px(0, [0.0, 0.0, 90.0, 90.0], None);
        let dets = [unscored.clone(), a.clone()];
        assert_eq!(pick(&dets, 0, PickRule::MostConfident, 100, 100), Some(&a));
        let zero = px(0, [0.0, 0.0, 5.0, 5.0], Some(0.0));
        let dets = [zero, unscored.clone()];
        assert_eq!(
            pick(&dets, 0, PickRule::MostConfident, 100, 100),
            Some(&unscored)
        );
    }

    #[test]
    fn area_normalized_of_both_kinds() {
        assert_eq!(
            norm(0, [0.5, 0.5, 0.5, 0.25], None, 1).area_normalized(7, 9),
            0.125
        );
        assert_eq!(
            px(0, [0.0, 0.0, 50.0, 20.0], None).area_normalized(100, 100),
            0.1
        );
        assert_eq!(
            px(0, [5.0, 5.0, 0.0, 0.0], None).area_normalized(100, 100),
            0.0
        );
        assert_eq!(
            px(0, [0.0, 0.0, f32::NAN, 1.0], None).area_normalized(100, 100),
            0.0
        );
        assert_eq!(px(0, [0.0, 0.0, 2.0, 3.0], None).area_normalized(0, 0), 6.0);
    }

    #[test]
    fn write_yolo_format() {
        assert_eq!(
            write_yolo(&[(0, [0.5, 0.25, 0.1, 1.0], Some(0.9)), (3, [0.0; 4], None)]),
            "0 0.500000 0.250000 0.100000 1.000000 0.900000\n\
             3 0.000000 0.000000 0.000000 0.000000\n"
        );
        assert_eq!(write_yolo(&[]), "");
    }

    // --- properties

    proptest! {
        #[test]
        fn yolo_round_trip(
            rows in proptest::collection::vec(
                (any::<i64>(), [0f32..=1.0, 0f32..=1.0, 0f32..=1.0, 0f32..=1.0],
                 proptest::option::of(0f32..=1.0)),
                0..20,
            )
        ) {
            let back = yolo(&write_yolo(&rows)).unwrap();
            prop_assert_eq!(back.len(), rows.len());
            for (i, (d, (class, coords, conf))) in back.iter().zip(&rows).enumerate() {
                prop_assert_eq!(d.class, *class);
                prop_assert_eq!(d.line, i as u64 + 1);
                let BoxCoords::Normalized { cx, cy, w, h } = d.coords else {
                    panic!("YOLO gives normalised boxes");
                };
                for (got, want) in [cx, cy, w, h].iter().zip(coords) {
                    prop_assert!((got - want).abs() <= 1e-6, "{} vs {}", got, want);
                }
                prop_assert_eq!(d.confidence.is_some(), conf.is_some());
                if let (Some(got), Some(want)) = (d.confidence, conf) {
                    prop_assert!((got - want).abs() <= 1e-6, "{} vs {}", got, want);
                }
            }
        }

        #[test]
        fn parsers_never_panic_on_garbage(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
            text in "([0-9 .eE+-]|nan|inf|\n|\t|x){0,120}",
        ) {
            let _ = parse_yolo(Path::new("x"), &bytes);
            let _ = parse_ultralytics_json(Path::new("x"), &bytes);
            let _ = parse_yolo(Path::new("x"), text.as_bytes());
        }

        #[test]
        fn to_pixels_gives_boxes_inside_the_image(
            coords in [-0.1f32..1.1, -0.1f32..1.1, -0.1f32..1.2, -0.1f32..1.2],
            pixels in any::<bool>(),
            width in 1u32..5000,
            height in 1u32..5000,
        ) {
            let [a, b, c, d] = coords;
            let det = if pixels {
                px(0, [a * width as f32, b * height as f32, c * width as f32, d * height as f32], None)
            } else {
                norm(0, coords, None, 1)
            };
            if let Ok(p) = det.to_pixels(width, height) {
                prop_assert!(p.w >= 1 && p.h >= 1);
                prop_assert!(p.x + p.w <= width && p.y + p.h <= height, "{:?}", p);
            }
            let _ = det.area_normalized(width, height);
        }
    }
}
