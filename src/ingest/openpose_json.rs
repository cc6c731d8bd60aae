//! OpenPose's own output: one JSON file per frame, `<video>_<frame:012>_keypoints.json`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Deserialize;

use super::BadInput;
use super::keypoints::{JSON_STREAMS, KeypointRow, STREAMS, VideoKeypoints, check_stream};

const SUFFIX: &str = "_keypoints.json";

#[derive(Deserialize)]
struct FrameJson {
    people: Vec<PersonJson>,
}

#[derive(Deserialize)]
struct PersonJson {
    #[serde(default)]
    person_id: Option<PersonId>,
    #[serde(default)]
    pose_keypoints_2d: Vec<f64>,
    #[serde(default)]
    face_keypoints_2d: Vec<f64>,
    #[serde(default)]
    hand_left_keypoints_2d: Vec<f64>,
    #[serde(default)]
    hand_right_keypoints_2d: Vec<f64>,
}

/// OpenPose writes `[-1]`; some tools write a bare number.
#[derive(Deserialize)]
#[serde(untagged)]
enum PersonId {
    List(Vec<i64>),
    One(i64),
}

impl PersonId {
    fn first(&self) -> Option<i32> {
        match self {
            PersonId::List(v) => v.first().map(|&x| x as i32),
            PersonId::One(x) => Some(*x as i32),
        }
    }
}

/// One frame file, found on disk.
#[derive(Debug, Clone)]
pub struct FrameFile {
    pub path: PathBuf,
    pub video_id: i32,
    pub frame: i32,
}

/// Splits `298_000000000042_keypoints.json` into (298, 42). None if the name is not of that
/// form; Err if it is, but the numbers are not valid.
pub fn parse_file_name(name: &str) -> Option<Result<(i32, i32), String>> {
    let stem = name.strip_suffix(SUFFIX)?;
    let (video, frame) = stem.rsplit_once('_')?;
    // The video part may carry a prefix (`clip_298`); the id is its trailing digits.
    let digits_at = video
        .rfind(|c: char| !c.is_ascii_digit())
        .map(|i| i + 1)
        .unwrap_or(0);
    let video = &video[digits_at..];
    let video: i32 = match video.parse() {
        Ok(v) if v > 0 => v,
        _ => {
            return Some(Err(format!(
                "no video id before the frame number in `{name}`"
            )));
        }
    };
    match frame.parse::<i64>() {
        Ok(f) => Some(
            super::names::plausible_frame(f)
                .map(|f| (video, f))
                .map_err(|m| format!("`{name}`: {m}")),
        ),
        _ => Some(Err(format!("`{frame}` in `{name}` is not a frame number"))),
    }
}

/// Finds every frame file under the given paths (folders are searched recursively).
/// Other files are counted and skipped.
pub fn discover(paths: &[PathBuf]) -> Result<(Vec<FrameFile>, u64), BadInput> {
    let mut found = Vec::new();
    let mut skipped = 0;
    for root in paths {
        let meta =
            fs::metadata(root).map_err(|e| BadInput::new(root, format!("cannot read: {e}")))?;
        let before = found.len();
        if meta.is_dir() {
            walk(root, &mut found, &mut skipped)?;
        } else {
            add_file(root, &mut found, &mut skipped)?;
        }
        if found.len() == before {
            return Err(BadInput::new(
                root,
                format!("no OpenPose frame files (<video>_<frame>{SUFFIX}) found"),
            ));
        }
    }
    found.sort_by_key(|f| (f.video_id, f.frame));
    for pair in found.windows(2) {
        if (pair[0].video_id, pair[0].frame) == (pair[1].video_id, pair[1].frame) {
            return Err(BadInput::new(
                &pair[1].path,
                format!(
                    "frame {} of video {} also comes from {}",
                    pair[1].frame,
                    pair[1].video_id,
                    pair[0].path.display()
                ),
            ));
        }
    }
    Ok((found, skipped))
}

fn walk(dir: &Path, found: &mut Vec<FrameFile>, skipped: &mut u64) -> Result<(), BadInput> {
    let entries = fs::read_dir(dir).map_err(|e| BadInput::new(dir, format!("cannot list: {e}")))?;
    for entry in entries {
        let entry = entry.map_err(|e| BadInput::new(dir, format!("cannot list: {e}")))?;
        let path = entry.path();
        let file_type = entry
            .file_type()
            .map_err(|e| BadInput::new(&path, format!("cannot read: {e}")))?;
        if file_type.is_dir() {
            walk(&path, found, skipped)?;
        } else {
            add_file(&path, found, skipped)?;
        }
    }
    Ok(())
}

fn add_file(path: &Path, found: &mut Vec<FrameFile>, skipped: &mut u64) -> Result<(), BadInput> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    match parse_file_name(&name) {
        None => *skipped += 1,
        Some(Err(msg)) => return Err(BadInput::new(path, msg)),
        Some(Ok((video_id, frame))) => found.push(FrameFile {
            path: path.to_path_buf(),
            video_id,
            frame,
        }),
    }
    Ok(())
}

/// Explains a JSON syntax error; OpenPose never writes NaN or Infinity, but other tools do.
fn json_error(path: &Path, bytes: &[u8], err: serde_json::Error) -> BadInput {
    let line = err.line() as u64;
    let at = offset_of(bytes, err.line(), err.column());
    let rest = &bytes[at.min(bytes.len())..];
    let rest = String::from_utf8_lossy(&rest[..rest.len().min(12)]);
    let message = if ["NaN", "nan", "Infinity", "-Infinity", "inf", "-inf"]
        .iter()
        .any(|t| rest.trim_start_matches([',', '[', ' ']).starts_with(t))
    {
        format!("non-finite number (NaN or Infinity) near `{rest}`: keypoints must be finite")
    } else if err.is_eof() {
        format!("the JSON is truncated ({err})")
    } else {
        format!("not a valid OpenPose frame: {err}")
    };
    BadInput::new(path, message).line(line)
}

fn offset_of(bytes: &[u8], line: usize, column: usize) -> usize {
    let mut current = 1;
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if current == line {
            break;
        }
        if b == b'\n' {
            current += 1;
            start = i + 1;
        }
    }
    (start + column).saturating_sub(1)
}

/// Parses one frame file into rows (one per person, or one empty row).
pub fn parse_frame(
    file: &FrameFile,
    source: usize,
) -> Result<(Vec<KeypointRow>, String), BadInput> {
    let bytes =
        fs::read(&file.path).map_err(|e| BadInput::new(&file.path, format!("cannot read: {e}")))?;
    let hash = blake3::hash(&bytes).to_hex().to_string();
    let parsed: FrameJson =
        serde_json::from_slice(&bytes).map_err(|e| json_error(&file.path, &bytes, e))?;
    if parsed.people.is_empty() {
        return Ok((
            vec![KeypointRow {
                frame: file.frame,
                person: None,
                person_id: None,
                streams: [None, None, None, None],
                source,
            }],
            hash,
        ));
    }
    let mut rows = Vec::with_capacity(parsed.people.len());
    for (index, person) in parsed.people.into_iter().enumerate() {
        let raw = [
            person.pose_keypoints_2d,
            person.face_keypoints_2d,
            person.hand_left_keypoints_2d,
            person.hand_right_keypoints_2d,
        ];
        let mut streams: [Option<Vec<f32>>; 4] = [None, None, None, None];
        for (i, values) in raw.into_iter().enumerate() {
            if values.is_empty() {
                continue;
            }
            // JSON numbers are read as f64 and stored as f32: OpenPose prints at most 6
            // significant digits, which f32 holds exactly enough to print them back.
            let values: Vec<f32> = values.into_iter().map(|v| v as f32).collect();
            check_stream(&values, STREAMS[i].1).map_err(|msg| {
                BadInput::new(&file.path, msg).field(format!("people[{index}].{}", JSON_STREAMS[i]))
            })?;
            streams[i] = Some(values);
        }
        rows.push(KeypointRow {
            frame: file.frame,
            person: Some(index as i16),
            person_id: person.person_id.and_then(|p| p.first()),
            streams,
            source,
        });
    }
    Ok((rows, hash))
}

/// Parses the frame files of one video (in parallel), in frame order.
pub fn parse_video(
    video_id: i32,
    files: &[FrameFile],
    on_file: &(dyn Fn() + Sync),
) -> Result<VideoKeypoints, BadInput> {
    let parsed: Vec<Result<(Vec<KeypointRow>, String), BadInput>> = files
        .par_iter()
        .enumerate()
        .map(|(i, f)| {
            let r = parse_frame(f, i);
            on_file();
            r
        })
        .collect();
    let mut rows = Vec::with_capacity(files.len());
    let mut sources = Vec::with_capacity(files.len());
    // The first error in file order, so the message does not depend on thread timing.
    for result in parsed {
        let (r, hash) = result?;
        rows.extend(r);
        sources.push(hash);
    }
    let mut video = VideoKeypoints {
        video_id,
        rows,
        sources,
    };
    video.sort();
    Ok(video)
}

/// Groups discovered files by video.
pub fn by_video(files: Vec<FrameFile>) -> BTreeMap<i32, Vec<FrameFile>> {
    let mut out: BTreeMap<i32, Vec<FrameFile>> = BTreeMap::new();
    for f in files {
        out.entry(f.video_id).or_default().push(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn file_names() {
        assert_eq!(
            parse_file_name("298_000000000042_keypoints.json"),
            Some(Ok((298, 42)))
        );
        assert_eq!(
            parse_file_name("clip_7_000000000000_keypoints.json"),
            Some(Ok((7, 0)))
        );
        assert_eq!(parse_file_name("notes.txt"), None);
        assert!(matches!(
            parse_file_name("abc_0001_keypoints.json"),
            Some(Err(_))
        ));
        assert!(matches!(
            parse_file_name("298_x_keypoints.json"),
            Some(Err(_))
        ));
    }

    proptest! {
        #[test]
        fn file_name_round_trip(video in 1i32..100_000, frame in 0i32..2_160_001) {
            let name = format!("{video}_{frame:012}_keypoints.json");
            prop_assert_eq!(parse_file_name(&name), Some(Ok((video, frame))));
        }

        #[test]
        fn implausible_frame_numbers_are_refused(frame in 2_160_001i64..100_000_000_000) {
            let name = format!("298_{frame:012}_keypoints.json");
            let err = parse_file_name(&name).unwrap().unwrap_err();
            prop_assert!(err.contains("implausible"), "{}", err);
        }

        #[test]
        fn file_name_parser_never_panics(name in "\\PC{0,40}") {
            let _ = parse_file_name(&name);
        }

        #[test]
        fn frame_parser_never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("1_000000000000_keypoints.json");
            std::fs::write(&path, &bytes).unwrap();
            let file = FrameFile { path, video_id: 1, frame: 0 };
            let _ = parse_frame(&file, 0);
        }
    }
}
