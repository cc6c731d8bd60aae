//! `xp ingest transcripts`: interview transcripts into `transcripts`, one row per segment.
//!
//! A file per video (`298.srt`, `298.json`, ...), or the iMiGUE-speech layout: a folder per
//! video holding one file per speaker (`298/interviewer.srt`, `298/interviewee.srt`), whose
//! segments are merged in time order with the speaker taken from the file name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use arrow::array::{ArrayRef, Float64Array, Int32Array, RecordBatch, StringArray};

use super::BadInput;
use super::names::{leading_id, sorted_entries};
use super::transcript_formats::{self, Segment};

/// One video's transcript files, with the speaker each file stands for (iMiGUE-speech layout).
#[derive(Debug)]
pub struct TranscriptInput {
    pub video_id: i32,
    pub files: Vec<(PathBuf, Option<String>)>,
}

fn is_transcript(path: &Path) -> bool {
    path.is_file() && transcript_formats::format_of(path).is_some()
}

/// The speaker a file in a per-video folder stands for: its name without the video id and
/// extension (`298_interviewee.srt` -> `interviewee`).
fn speaker_of(path: &Path) -> Option<String> {
    let stem = path.file_stem()?.to_string_lossy().to_lowercase();
    let name = stem.trim_start_matches(|c: char| c.is_ascii_digit() || c == '_' || c == '-');
    (!name.is_empty()).then(|| name.to_string())
}

/// The files of a per-video folder: one transcript, or one file per speaker.
fn folder_files(dir: &Path) -> Result<Vec<(PathBuf, Option<String>)>, BadInput> {
    let files: Vec<PathBuf> = sorted_entries(dir)?
        .into_iter()
        .filter(|p| is_transcript(p))
        .collect();
    match files.len() {
        0 => Err(BadInput::new(
            dir,
            "no transcript files (.txt, .json, .srt, .vtt)",
        )),
        // One file: its name gives the speaker only when it names one (`interviewee.srt`,
        // not `transcript.srt`).
        1 => {
            let speaker = speaker_of(&files[0])
                .filter(|s| matches!(s.as_str(), "interviewer" | "interviewee"));
            Ok(vec![(files[0].clone(), speaker)])
        }
        _ => Ok(files
            .into_iter()
            .map(|f| {
                let speaker = speaker_of(&f);
                (f, speaker)
            })
            .collect()),
    }
}

/// Finds the transcripts under `paths`.
pub fn discover(paths: &[PathBuf], video: Option<i32>) -> Result<Vec<TranscriptInput>, BadInput> {
    let mut found: BTreeMap<i32, TranscriptInput> = BTreeMap::new();
    let mut add = |id: i32, files: Vec<(PathBuf, Option<String>)>, at: &Path| {
        if let Some(other) = found.get(&id) {
            return Err(BadInput::new(
                at,
                format!(
                    "video {id} also has a transcript at {}",
                    other.files[0].0.display()
                ),
            ));
        }
        found.insert(
            id,
            TranscriptInput {
                video_id: id,
                files,
            },
        );
        Ok(())
    };
    let id_of = |path: &Path| -> Result<i32, BadInput> {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        video.or_else(|| leading_id(&name)).ok_or_else(|| {
            BadInput::new(
                path,
                "cannot tell the video id: the name must start with it (298.srt, or a folder \
                 298/ per video), or pass --video",
            )
        })
    };
    for path in paths {
        if is_transcript(path) {
            let id = id_of(path)?;
            add(id, vec![(path.clone(), None)], path)?;
        } else if path.is_dir() {
            let own_id = path
                .file_name()
                .and_then(|n| leading_id(&n.to_string_lossy()));
            let entries = sorted_entries(path)?;
            let has_subfolders = entries.iter().any(|e| {
                e.is_dir()
                    && e.file_name()
                        .and_then(|n| leading_id(&n.to_string_lossy()))
                        .is_some()
            });
            // The folder of one video (iMiGUE-speech layout): its files carry no other id.
            let own = video.or(own_id);
            let single_video = !has_subfolders
                && own.is_some()
                && entries.iter().filter(|e| is_transcript(e)).all(|e| {
                    let id = e.file_name().and_then(|n| leading_id(&n.to_string_lossy()));
                    id.is_none() || id == own_id
                });
            if single_video {
                add(own.expect("checked"), folder_files(path)?, path)?;
                continue;
            }
            for entry in entries {
                if entry.is_dir() {
                    if let Some(id) = entry
                        .file_name()
                        .and_then(|n| leading_id(&n.to_string_lossy()))
                    {
                        add(id, folder_files(&entry)?, &entry)?;
                    }
                } else if is_transcript(&entry) {
                    let id = id_of(&entry)?;
                    add(id, vec![(entry.clone(), None)], &entry)?;
                }
            }
        } else if path.exists() {
            return Err(BadInput::new(
                path,
                "not a transcript: xp reads .txt, .json, .srt and .vtt files",
            ));
        } else {
            return Err(BadInput::new(path, "no such file or folder"));
        }
    }
    if found.is_empty() {
        let shown = paths
            .first()
            .map(PathBuf::as_path)
            .unwrap_or(Path::new("."));
        return Err(BadInput::new(
            shown,
            "found no transcript files (.txt, .json, .srt, .vtt)",
        ));
    }
    Ok(found.into_values().collect())
}

/// One video's transcript: its segments in spoken order and the blake3 of its source files.
pub struct Transcript {
    pub video_id: i32,
    pub segments: Vec<Segment>,
    pub source_hash: String,
    pub bytes: u64,
}

/// Reads and merges one video's files.
pub fn read(input: &TranscriptInput) -> Result<Transcript, BadInput> {
    let mut hasher = blake3::Hasher::new();
    let mut segments: Vec<Segment> = Vec::new();
    let mut bytes_read = 0;
    for (path, speaker) in &input.files {
        let format = transcript_formats::format_of(path).expect("discover checked the extension");
        let bytes =
            std::fs::read(path).map_err(|e| BadInput::new(path, format!("cannot read: {e}")))?;
        bytes_read += bytes.len() as u64;
        hasher.update(&bytes);
        let mut parsed = transcript_formats::parse(path, format, &bytes)?;
        if input.files.len() > 1 && parsed.iter().any(|s| s.start_s.is_none()) {
            return Err(BadInput::new(
                path,
                "segments without times: the speakers' files of a video can only be merged \
                 in time order (use .srt, .vtt or .json with start times)",
            ));
        }
        for s in &mut parsed {
            if s.speaker.is_none() {
                s.speaker = speaker.clone();
            }
        }
        segments.extend(parsed);
    }
    if input.files.len() > 1 {
        // Stable: segments starting together keep file order.
        segments.sort_by(|a, b| a.start_s.partial_cmp(&b.start_s).expect("finite times"));
    }
    if segments.is_empty() {
        return Err(BadInput::new(
            &input.files[0].0,
            "the transcript has no segments",
        ));
    }
    Ok(Transcript {
        video_id: input.video_id,
        segments,
        source_hash: hasher.finalize().to_hex().to_string(),
        bytes: bytes_read,
    })
}

/// The `transcripts` rows of one video.
pub fn batch(t: &Transcript) -> Result<RecordBatch> {
    let n = t.segments.len();
    let s = &t.segments;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int32Array::from(vec![t.video_id; n])),
        Arc::new(Int32Array::from_iter_values(0..n as i32)),
        Arc::new(Float64Array::from_iter(s.iter().map(|x| x.start_s))),
        Arc::new(Float64Array::from_iter(s.iter().map(|x| x.end_s))),
        Arc::new(StringArray::from_iter(
            s.iter().map(|x| x.speaker.as_deref()),
        )),
        Arc::new(StringArray::from_iter_values(
            s.iter().map(|x| x.text.as_str()),
        )),
        Arc::new(StringArray::from(vec![t.source_hash.as_str(); n])),
    ];
    Ok(RecordBatch::try_new(
        crate::schema::table("transcripts").schema.clone(),
        columns,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speakers_come_from_file_names() {
        assert_eq!(
            speaker_of(Path::new("298/interviewer.srt")).as_deref(),
            Some("interviewer")
        );
        assert_eq!(
            speaker_of(Path::new("298/298_interviewee.vtt")).as_deref(),
            Some("interviewee")
        );
    }

    #[test]
    fn speech_layout_merges_speakers_in_time_order() {
        let dir = tempfile::tempdir().unwrap();
        let v = dir.path().join("7");
        std::fs::create_dir(&v).unwrap();
        std::fs::write(
            v.join("interviewer.srt"),
            "1\n00:00:00,000 --> 00:00:02,000\nHow do you feel?\n\n2\n00:00:05,000 --> 00:00:06,000\nThanks.\n",
        )
        .unwrap();
        std::fs::write(
            v.join("interviewee.srt"),
            "1\n00:00:02,500 --> 00:00:04,000\nGood, very good.\n",
        )
        .unwrap();
        let inputs = discover(&[dir.path().to_path_buf()], None).unwrap();
        assert_eq!(inputs.len(), 1);
        let t = read(&inputs[0]).unwrap();
        let who: Vec<_> = t
            .segments
            .iter()
            .map(|s| s.speaker.clone().unwrap())
            .collect();
        assert_eq!(who, ["interviewer", "interviewee", "interviewer"]);
        assert_eq!(t.segments[1].text, "Good, very good.");
    }
}
