//! The challenge releases' keypoint tables: one CSV per video, one row per frame, 137 x 3
//! value columns (body 0-24, face 25-94, left hand 95-115, right hand 116-136; x, y,
//! confidence per point), optionally preceded by a `frame` column and a header row.

use std::path::Path;

use super::BadInput;
use super::keypoints::{KeypointRow, MAX_CONFIDENCE, STREAMS, VALUES_PER_PERSON, VideoKeypoints};

/// The column names xp writes and expects in a header: `body_0_x`, ..., `hand_right_20_c`.
pub fn value_column_names() -> Vec<String> {
    let mut names = Vec::with_capacity(VALUES_PER_PERSON);
    for (stream, size) in STREAMS {
        for point in 0..size / 3 {
            for axis in ["x", "y", "c"] {
                names.push(format!("{stream}_{point}_{axis}"));
            }
        }
    }
    names
}

/// The video id of a table file: the leading digits of its name (`298.csv`, `298_pose.csv`).
pub fn video_id_from_name(path: &Path) -> Option<i32> {
    super::names::leading_id(&path.file_name()?.to_string_lossy())
}

/// Parses one table file. `video_id` overrides the id taken from the file name.
pub fn parse_table(path: &Path, video_id: Option<i32>) -> Result<VideoKeypoints, BadInput> {
    let video_id = match video_id.or_else(|| video_id_from_name(path)) {
        Some(v) => v,
        None => {
            return Err(BadInput::new(
                path,
                "cannot tell the video id: the file name must start with it (e.g. 298.csv), \
                 or pass --video",
            ));
        }
    };
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    if ext.as_deref() != Some("csv") {
        return Err(BadInput::new(
            path,
            "unsupported table format: xp reads keypoint tables as .csv (export .xlsx sheets \
             to CSV first)",
        ));
    }
    let bytes =
        std::fs::read(path).map_err(|e| BadInput::new(path, format!("cannot read: {e}")))?;
    let hash = blake3::hash(&bytes).to_hex().to_string();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes.as_slice());
    let value_names = value_column_names();
    let mut rows = Vec::new();
    let mut record = csv::ByteRecord::new();
    let mut layout: Option<(bool, Vec<String>)> = None; // (has frame column, column names)
    let mut line = 0u64;
    let mut last_frame: Option<i32> = None;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(line + 1);
                return Err(BadInput::new(path, format!("not valid CSV: {e}")).line(line));
            }
        }
        line = record.position().map(|p| p.line()).unwrap_or(line + 1);
        if layout.is_none() {
            let n = record.len();
            let has_frame = match n {
                VALUES_PER_PERSON => false,
                n if n == VALUES_PER_PERSON + 1 => true,
                _ => {
                    return Err(BadInput::new(
                        path,
                        format!(
                            "has {n} columns; a keypoint table has {VALUES_PER_PERSON} \
                             (137 points x 3) or {} with a leading frame column",
                            VALUES_PER_PERSON + 1
                        ),
                    )
                    .line(line));
                }
            };
            let is_header = record.iter().any(|cell| {
                std::str::from_utf8(cell)
                    .ok()
                    .and_then(|s| s.trim().parse::<f64>().ok())
                    .is_none()
            });
            let mut names: Vec<String> = Vec::with_capacity(n);
            if is_header {
                names = record
                    .iter()
                    .map(|c| String::from_utf8_lossy(c).trim().to_string())
                    .collect();
                if has_frame && !names[0].eq_ignore_ascii_case("frame") {
                    return Err(BadInput::new(
                        path,
                        format!(
                            "the first of {n} columns must be `frame`, found `{}`",
                            names[0]
                        ),
                    )
                    .line(line));
                }
            } else {
                if has_frame {
                    names.push("frame".into());
                }
                names.extend(value_names.iter().cloned());
            }
            layout = Some((has_frame, names));
            if is_header {
                continue;
            }
        }
        let (has_frame, names) = layout.as_ref().expect("set above");
        if record.len() != names.len() {
            return Err(BadInput::new(
                path,
                format!("has {} cells, the header has {}", record.len(), names.len()),
            )
            .line(line));
        }
        let mut cells = record.iter().enumerate();
        let frame = if *has_frame {
            let (_, cell) = cells.next().expect("length checked");
            let text = String::from_utf8_lossy(cell);
            match text.trim().parse::<f64>() {
                Ok(f) if f.fract() == 0.0 && f.abs() < 1e15 => {
                    super::names::plausible_frame(f as i64)
                        .map_err(|m| BadInput::new(path, m).line(line).field("frame"))?
                }
                _ => {
                    return Err(
                        BadInput::new(path, format!("`{text}` is not a frame number"))
                            .line(line)
                            .field("frame"),
                    );
                }
            }
        } else {
            rows.len() as i32
        };
        if let Some(last) = last_frame
            && frame <= last
        {
            return Err(BadInput::new(
                path,
                format!("frame {frame} comes after frame {last}: frames must increase"),
            )
            .line(line)
            .field("frame"));
        }
        last_frame = Some(frame);
        let mut values = Vec::with_capacity(VALUES_PER_PERSON);
        for (col, cell) in cells {
            let text = std::str::from_utf8(cell).unwrap_or("").trim();
            let value = match text.parse::<f32>() {
                Ok(v) if v.is_finite() => v,
                Ok(_) => {
                    return Err(
                        BadInput::new(path, format!("`{text}` is not a finite number"))
                            .line(line)
                            .field(names[col].clone()),
                    );
                }
                Err(_) => {
                    let shown = String::from_utf8_lossy(cell);
                    return Err(BadInput::new(path, format!("`{shown}` is not a number"))
                        .line(line)
                        .field(names[col].clone()));
                }
            };
            // Every third value is a confidence (x, y, c per point): see `MAX_CONFIDENCE`.
            if values.len() % 3 == 2 && !(0.0..=MAX_CONFIDENCE).contains(&value) {
                return Err(BadInput::new(
                    path,
                    format!(
                        "confidence {value} is outside OpenPose's scale (xp accepts 0 to \
                         {MAX_CONFIDENCE})"
                    ),
                )
                .line(line)
                .field(names[col].clone()));
            }
            values.push(value);
        }
        rows.push(row_from_values(frame, values));
    }
    if rows.is_empty() {
        return Err(BadInput::new(path, "the table has no frames"));
    }
    Ok(VideoKeypoints {
        video_id,
        rows,
        sources: vec![hash],
    })
}

/// A table row is one person; an all-zero row is a frame where nobody was detected.
fn row_from_values(frame: i32, values: Vec<f32>) -> KeypointRow {
    if values.iter().all(|&v| v == 0.0) {
        return KeypointRow {
            frame,
            person: None,
            person_id: None,
            streams: [None, None, None, None],
            source: 0,
        };
    }
    let mut streams: [Option<Vec<f32>>; 4] = [None, None, None, None];
    let mut start = 0;
    for (i, (_, size)) in STREAMS.iter().enumerate() {
        streams[i] = Some(values[start..start + size].to_vec());
        start += size;
    }
    KeypointRow {
        frame,
        person: Some(0),
        person_id: Some(-1),
        streams,
        source: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn row_text(frame: Option<i32>, value: f32) -> String {
        let mut cells: Vec<String> = frame.into_iter().map(|f| f.to_string()).collect();
        cells.extend((0..VALUES_PER_PERSON).map(|_| value.to_string()));
        cells.join(",")
    }

    #[test]
    fn header_names_match_openpose_order() {
        let names = value_column_names();
        assert_eq!(names.len(), 411);
        assert_eq!(names[0], "body_0_x");
        assert_eq!(names[75], "face_0_x");
        assert_eq!(names[285], "hand_left_0_x");
        assert_eq!(names[348], "hand_right_0_x");
        assert_eq!(names[410], "hand_right_20_c");
    }

    #[test]
    fn headerless_and_headed_tables_parse_alike() {
        let dir = tempfile::tempdir().unwrap();
        let body = format!("{}\n{}\n", row_text(None, 0.5), row_text(None, 0.0));
        let a = parse_table(&write(dir.path(), "12.csv", &body), None).unwrap();
        let header = format!("frame,{}\n", value_column_names().join(","));
        let body = format!(
            "{header}{}\n{}\n",
            row_text(Some(0), 0.5),
            row_text(Some(1), 0.0)
        );
        let b = parse_table(&write(dir.path(), "12_b.csv", &body), None).unwrap();
        assert_eq!(a.rows, b.rows);
        assert_eq!(a.video_id, 12);
        assert_eq!(a.rows[1].person, None, "all-zero row is an empty frame");
    }

    #[test]
    fn bad_cells_name_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let header = format!("frame,{}\n", value_column_names().join(","));
        let mut bad = row_text(Some(1), 1.0);
        bad = bad.replacen(",1,", ",oops,", 1);
        let text = format!("{header}{}\n{bad}\n", row_text(Some(0), 1.0));
        let e = parse_table(&write(dir.path(), "5.csv", &text), None).unwrap_err();
        assert_eq!(e.line, Some(3));
        assert_eq!(e.field.as_deref(), Some("body_0_x"));
        let text = format!("{header}{}\n", row_text(Some(0), f32::NAN));
        let e = parse_table(&write(dir.path(), "6.csv", &text), None).unwrap_err();
        assert!(e.message.contains("finite"), "{e}");
    }

    proptest! {
        #[test]
        fn parser_never_panics(text in "[0-9a-z,.\\n-]{0,300}") {
            let dir = tempfile::tempdir().unwrap();
            let _ = parse_table(&write(dir.path(), "3.csv", &text), None);
        }
    }
}
