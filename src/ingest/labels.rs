//! The iMiGUE label file: one row per micro-gesture clip, with the video's subject and its
//! win/lose label repeated on every row. Becomes the `videos` and `clips` tables.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use arrow::array::{ArrayRef, Float64Array, Int32Array, RecordBatch, StringArray};

use super::BadInput;

/// The label file's columns, as the dataset writes them.
pub const COLUMNS: [&str; 11] = [
    "video_id",
    "label_id",
    "start_time",
    "start_frame",
    "end_time",
    "end_frame",
    "class",
    "subject_id",
    "subject_gender",
    "subject_nationality",
    "win_or_lose",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    pub video_id: i32,
    pub clip_id: i32,
    pub class: i32,
    pub start_frame: i32,
    pub end_frame: i32,
    pub start_s: f64,
    pub end_s: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Video {
    pub video_id: i32,
    pub subject_id: i32,
    pub gender: String,
    pub nationality: String,
    pub label: String,
    pub clips: i32,
    pub last_frame: i32,
    /// The line where the video first appears, for error messages.
    first_line: u64,
}

/// A parsed label file.
#[derive(Debug)]
pub struct Labels {
    pub videos: Vec<Video>,
    pub clips: Vec<Clip>,
    pub source_hash: String,
}

fn field<T: std::str::FromStr>(
    path: &Path,
    line: u64,
    record: &csv::StringRecord,
    index: usize,
    name: &str,
) -> Result<T, BadInput> {
    let text = record.get(index).unwrap_or("").trim();
    text.parse().map_err(|_| {
        BadInput::new(path, format!("`{text}` is not a valid {name}"))
            .line(line)
            .field(name)
    })
}

/// Reads and checks a whole label file.
pub fn parse(path: &Path) -> Result<Labels, BadInput> {
    let bytes =
        std::fs::read(path).map_err(|e| BadInput::new(path, format!("cannot read: {e}")))?;
    let source_hash = blake3::hash(&bytes).to_hex().to_string();
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| BadInput::new(path, format!("not UTF-8 text: {e}")))?;
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| BadInput::new(path, format!("not valid CSV: {e}")).line(1))?
        .clone();
    let mut index = [0usize; COLUMNS.len()];
    for (i, name) in COLUMNS.iter().enumerate() {
        index[i] = headers.iter().position(|h| h == *name).ok_or_else(|| {
            BadInput::new(
                path,
                format!(
                    "missing column; an iMiGUE label file has the columns {}",
                    COLUMNS.join(",")
                ),
            )
            .line(1)
            .field(*name)
        })?;
    }

    let mut videos: BTreeMap<i32, Video> = BTreeMap::new();
    let mut clips: BTreeMap<(i32, i32), Clip> = BTreeMap::new();
    for result in reader.records() {
        let record = result.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            BadInput::new(path, format!("not valid CSV: {e}")).line(line)
        })?;
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let get = |i: usize| record.get(index[i]).unwrap_or("").trim().to_string();
        let video_id: i32 = field(path, line, &record, index[0], COLUMNS[0])?;
        let clip_id: i32 = field(path, line, &record, index[1], COLUMNS[1])?;
        let start_s: f64 = field(path, line, &record, index[2], COLUMNS[2])?;
        let start_frame: i32 = field(path, line, &record, index[3], COLUMNS[3])?;
        let end_s: f64 = field(path, line, &record, index[4], COLUMNS[4])?;
        let end_frame: i32 = field(path, line, &record, index[5], COLUMNS[5])?;
        let class: i32 = field(path, line, &record, index[6], COLUMNS[6])?;
        let subject_id: i32 = field(path, line, &record, index[7], COLUMNS[7])?;
        let gender = get(8);
        let nationality = get(9);
        let label = get(10).to_ascii_lowercase();

        let bad = |name: &str, msg: String| BadInput::new(path, msg).line(line).field(name);
        if video_id <= 0 {
            return Err(bad(
                "video_id",
                format!("{video_id} is not a video id (ids are >= 1)"),
            ));
        }
        if subject_id <= 0 {
            return Err(bad(
                "subject_id",
                format!("{subject_id} is not a subject id"),
            ));
        }
        if start_frame < 0 || end_frame < start_frame {
            return Err(bad(
                "end_frame",
                format!("clip runs from frame {start_frame} to {end_frame}"),
            ));
        }
        if !start_s.is_finite() || !end_s.is_finite() || end_s < start_s {
            return Err(bad(
                "end_time",
                format!("clip runs from {start_s} s to {end_s} s"),
            ));
        }
        if !((1..=31).contains(&class) || class == 99) {
            return Err(bad(
                "class",
                format!("{class} is not a micro-gesture class (1..31, or 99)"),
            ));
        }
        if label != "win" && label != "lose" {
            return Err(bad(
                "win_or_lose",
                format!("`{}` is neither Win nor Lose", get(10)),
            ));
        }
        if gender.is_empty() {
            return Err(bad("subject_gender", "is empty".into()));
        }

        let video = videos.entry(video_id).or_insert_with(|| Video {
            video_id,
            subject_id,
            gender: gender.clone(),
            nationality: nationality.clone(),
            label: label.clone(),
            clips: 0,
            last_frame: 0,
            first_line: line,
        });
        for (name, theirs, ours) in [
            (
                "subject_id",
                video.subject_id.to_string(),
                subject_id.to_string(),
            ),
            ("subject_gender", video.gender.clone(), gender),
            (
                "subject_nationality",
                video.nationality.clone(),
                nationality,
            ),
            ("win_or_lose", video.label.clone(), label),
        ] {
            if theirs != ours {
                return Err(bad(
                    name,
                    format!(
                        "video {video_id} has `{ours}` here but `{theirs}` on line {}; a video \
                         has one subject and one label",
                        video.first_line
                    ),
                ));
            }
        }
        video.clips += 1;
        video.last_frame = video.last_frame.max(end_frame);
        let clip = Clip {
            video_id,
            clip_id,
            class,
            start_frame,
            end_frame,
            start_s,
            end_s,
        };
        if clips.insert((video_id, clip_id), clip).is_some() {
            return Err(bad(
                "label_id",
                format!("video {video_id} has label_id {clip_id} twice"),
            ));
        }
    }
    if videos.is_empty() {
        return Err(BadInput::new(path, "the label file has no rows"));
    }
    Ok(Labels {
        videos: videos.into_values().collect(),
        clips: clips.into_values().collect(),
        source_hash,
    })
}

impl Labels {
    pub fn videos_batch(&self) -> Result<RecordBatch> {
        let v = &self.videos;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from_iter_values(v.iter().map(|x| x.video_id))),
            Arc::new(Int32Array::from_iter_values(v.iter().map(|x| x.subject_id))),
            Arc::new(StringArray::from_iter_values(v.iter().map(|x| &x.gender))),
            Arc::new(StringArray::from_iter_values(
                v.iter().map(|x| &x.nationality),
            )),
            Arc::new(StringArray::from_iter_values(v.iter().map(|x| &x.label))),
            Arc::new(Int32Array::from_iter_values(v.iter().map(|x| x.clips))),
            Arc::new(Int32Array::from_iter_values(v.iter().map(|x| x.last_frame))),
            Arc::new(StringArray::from_iter_values(
                v.iter().map(|_| self.source_hash.as_str()),
            )),
        ];
        Ok(RecordBatch::try_new(
            crate::schema::table("videos").schema.clone(),
            columns,
        )?)
    }

    pub fn clips_batch(&self) -> Result<RecordBatch> {
        let c = &self.clips;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from_iter_values(c.iter().map(|x| x.video_id))),
            Arc::new(Int32Array::from_iter_values(c.iter().map(|x| x.clip_id))),
            Arc::new(Int32Array::from_iter_values(c.iter().map(|x| x.class))),
            Arc::new(Int32Array::from_iter_values(
                c.iter().map(|x| x.start_frame),
            )),
            Arc::new(Int32Array::from_iter_values(c.iter().map(|x| x.end_frame))),
            Arc::new(Float64Array::from_iter_values(c.iter().map(|x| x.start_s))),
            Arc::new(Float64Array::from_iter_values(c.iter().map(|x| x.end_s))),
        ];
        Ok(RecordBatch::try_new(
            crate::schema::table("clips").schema.clone(),
            columns,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "video_id,label_id,start_time,start_frame,end_time,end_frame,class,subject_id,subject_gender,subject_nationality,win_or_lose\n";

    fn parse_text(text: &str) -> Result<Labels, BadInput> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("labels.csv");
        std::fs::write(&p, text).unwrap();
        parse(&p)
    }

    #[test]
    fn groups_rows_into_videos_and_clips() {
        let l = parse_text(&format!(
            "{HEADER}298,1,6.7499,168,10.2819,257,4,22,M,United States,Win\n\
             298,2,25.3411,633,26.3513,658,8,22,M,United States,Win\n\
             46,1,4.9087,122,14.3657,359,26,43,M,Spain,Lose\n"
        ))
        .unwrap();
        assert_eq!(l.videos.len(), 2);
        assert_eq!(l.videos[0].video_id, 46);
        assert_eq!(l.videos[0].label, "lose");
        assert_eq!(l.videos[1].clips, 2);
        assert_eq!(l.videos[1].last_frame, 658);
        assert_eq!(l.clips.len(), 3);
        assert_eq!(l.videos_batch().unwrap().num_rows(), 2);
        assert_eq!(l.clips_batch().unwrap().num_rows(), 3);
    }

    #[test]
    fn inconsistent_video_rows_are_refused() {
        let e = parse_text(&format!(
            "{HEADER}298,1,6.7,168,10.2,257,4,22,M,United States,Win\n\
             298,2,25.3,633,26.3,658,8,22,M,United States,Lose\n"
        ))
        .unwrap_err();
        assert_eq!(e.line, Some(3));
        assert_eq!(e.field.as_deref(), Some("win_or_lose"));
    }

    #[test]
    fn missing_column_is_named() {
        let e = parse_text("video_id,label_id\n1,1\n").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("start_time"));
        assert!(e.to_string().contains("missing column"));
    }
}
