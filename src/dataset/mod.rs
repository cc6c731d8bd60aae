//! Store -> training examples. Reads only the store (never source files): the `videos` table
//! for labels and subjects, the protocol for splits, and one keypoint part per video.

pub mod normalize;
mod pseudo;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};
use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float32Type, Int16Type, Int32Type};
use rayon::prelude::*;

use crate::experiment::spec::RunConfig;
use crate::protocol::{self, SplitBy};
use crate::store::{Snapshot, Store, part};
use normalize::{POINTS, RawVideo};

/// One video, ready for the model.
#[derive(Debug, Clone)]
pub struct Example {
    pub video_id: i32,
    pub subject_id: i32,
    /// 1 = win, 0 = lose.
    pub label: u8,
    /// Loss weight of the example (pseudo-labelled videos may weigh less).
    pub weight: f32,
    pub frames: usize,
    /// `[frames, 137, channels]`, flattened.
    pub data: Vec<f32>,
}

/// The examples of one run.
#[derive(Debug)]
pub struct Splits {
    pub train: Vec<Example>,
    pub val: Vec<Example>,
    pub test: Vec<Example>,
    pub channels: usize,
    /// Protocol videos left out because they lack an input the run reads (only with
    /// `data.allow_missing`; otherwise loading fails and lists them).
    pub missing: Vec<i32>,
    /// Pool videos merged into `train` with a pseudo-label.
    pub pseudo_labelled: usize,
}

struct VideoRow {
    subject_id: i32,
    label: u8,
}

fn read_videos(store: &Store, snapshot: &Snapshot) -> Result<BTreeMap<i32, VideoRow>> {
    let mut out = BTreeMap::new();
    if !snapshot.tables.contains_key("videos") {
        bail!("the snapshot has no `videos` table: ingest the label file first");
    }
    for batch in store.read_rows(snapshot, "videos")? {
        let ids = batch
            .column_by_name("video_id")
            .unwrap()
            .as_primitive::<Int32Type>();
        let subjects = batch
            .column_by_name("subject_id")
            .unwrap()
            .as_primitive::<Int32Type>();
        let labels = batch.column_by_name("label").unwrap().as_string::<i32>();
        for i in 0..batch.num_rows() {
            out.insert(
                ids.value(i),
                VideoRow {
                    subject_id: subjects.value(i),
                    label: u8::from(labels.value(i) == "win"),
                },
            );
        }
    }
    Ok(out)
}

/// Reads one video's keypoint part into dense frames, keeping per frame the person whose body
/// is most confidently detected (the player, not an interviewer at the edge). The sequence
/// runs from the first to the last frame the part holds: frames before the first one are not
/// part of the video's keypoints (a dump may start late), so they are not padded in.
fn read_raw(path: &std::path::Path) -> Result<RawVideo> {
    let batches = part::read_all(path)?;
    let mut best: BTreeMap<i32, (f32, Vec<f32>)> = BTreeMap::new();
    let (mut first, mut last) = (i32::MAX, i32::MIN);
    for batch in &batches {
        let frames = batch
            .column_by_name("frame")
            .unwrap()
            .as_primitive::<Int32Type>();
        let person = batch
            .column_by_name("person")
            .unwrap()
            .as_primitive::<Int16Type>();
        let streams: Vec<_> = ["body", "face", "hand_left", "hand_right"]
            .iter()
            .map(|n| batch.column_by_name(n).unwrap().as_fixed_size_list())
            .collect();
        for i in 0..batch.num_rows() {
            let frame = frames.value(i);
            first = first.min(frame);
            last = last.max(frame);
            if person.is_null(i) {
                continue;
            }
            let mut values = Vec::with_capacity(POINTS * 3);
            for s in &streams {
                let size = s.value_length() as usize;
                if s.is_null(i) {
                    values.extend(std::iter::repeat_n(0.0, size));
                } else {
                    let v = s.value(i);
                    values.extend_from_slice(v.as_primitive::<Float32Type>().values());
                }
            }
            let confidence: f32 = (0..25).map(|p| values[p * 3 + 2]).sum();
            if best.get(&frame).is_none_or(|(c, _)| confidence > *c) {
                best.insert(frame, (confidence, values));
            }
        }
    }
    if first > last {
        return Ok(RawVideo { frames: Vec::new() });
    }
    // Ingest bounds frame numbers (`ingest::names::MAX_FRAME`), so this span is bounded too.
    let mut frames = vec![None; (i64::from(last) - i64::from(first) + 1) as usize];
    for (f, (_, v)) in best {
        frames[(f - first) as usize] = Some(v);
    }
    Ok(RawVideo { frames })
}

/// Subjects held out of training for early stopping: a fixed, seed-independent choice, so
/// every run of an experiment validates on the same videos.
fn validation_subjects(subjects: &BTreeSet<i32>, fraction: f64) -> BTreeSet<i32> {
    let mut order: Vec<(String, i32)> = subjects
        .iter()
        .map(|s| {
            (
                blake3::hash(format!("xp-val-{s}").as_bytes())
                    .to_hex()
                    .to_string(),
                *s,
            )
        })
        .collect();
    order.sort();
    let n = ((subjects.len() as f64) * fraction).round() as usize;
    order.into_iter().take(n).map(|(_, s)| s).collect()
}

/// The split name of pool videos merged with a pseudo-label.
const PSEUDO: &str = "pseudo";

/// Loads the train, validation and test examples of a run from a snapshot. With
/// `train.pseudo_labels.use`, pool videos that the chosen labeler labelled join `train`, with
/// the pseudo-label and `train.pseudo_labels.weight`.
pub fn load(store: &Store, snapshot: &Snapshot, config: &RunConfig) -> Result<Splits> {
    let videos = read_videos(store, snapshot)?;
    let protocol = protocol::by_name(&config.data.protocol)
        .with_context(|| format!("unknown protocol `{}`", config.data.protocol))?;
    let keypoint_parts: BTreeMap<i32, String> = match snapshot.tables.get("keypoints") {
        Some(v) => store
            .read_table_version(v)?
            .parts
            .into_iter()
            .filter_map(|p| Some((p.key.strip_prefix("video=")?.parse().ok()?, p.file)))
            .collect(),
        None => BTreeMap::new(),
    };
    let split_of = |id: i32, v: &VideoRow| match protocol.split_by {
        SplitBy::Video => protocol.split_of(id),
        SplitBy::Subject => protocol.split_of(v.subject_id),
    };
    let pseudo = if config.train.pseudo_labels.use_ {
        pseudo::chosen(store, snapshot, &config.train.pseudo_labels)?
    } else {
        BTreeMap::new()
    };
    let mut wanted = Vec::new();
    let mut missing: BTreeMap<&'static str, Vec<i32>> = BTreeMap::new();
    for (&id, v) in &videos {
        let mut split = split_of(id, v);
        if split == protocol::POOL {
            // Only pool videos take pseudo-labels: a protocol video keeps its gold label, and
            // a test video must never reach training.
            if !pseudo.contains_key(&id) {
                continue;
            }
            split = PSEUDO;
        }
        match keypoint_parts.get(&id) {
            Some(file) => wanted.push((id, split, file.clone())),
            // A pool video without keypoints is simply not merged: it has no role to lose.
            None if split == PSEUDO => {}
            None => missing.entry(split).or_default().push(id),
        }
    }
    if !missing.is_empty() && !config.data.allow_missing {
        let listed: Vec<String> = missing
            .iter()
            .map(|(split, ids)| {
                let shown: Vec<String> = ids.iter().take(20).map(i32::to_string).collect();
                let more = if ids.len() > 20 { ", ..." } else { "" };
                format!("{} {split} ({}{more})", ids.len(), shown.join(", "))
            })
            .collect();
        bail!(
            "protocol {} videos without keypoints in data snapshot {}: {}. Ingest their \
             keypoints, or set `data.allow_missing: true` to train and evaluate without them \
             (the run then records how many it left out, and the leaderboard shows it)",
            protocol.name,
            &snapshot.id()[..12],
            listed.join("; ")
        );
    }
    let missing: Vec<i32> = missing.into_values().flatten().collect();
    let kp = &config.model.keypoints;
    let seq = &config.model.sequence;
    let examples: Vec<(&'static str, Example)> = wanted
        .par_iter()
        .map(|(id, split, file)| {
            let raw = read_raw(&store.part_path(file))?;
            let (frames, data) =
                normalize::features(&raw, seq.max_frames, seq.sampling, &kp.streams, kp.offsets);
            let v = &videos[id];
            let (label, weight) = match pseudo.get(id) {
                Some(&l) if *split == PSEUDO => (l, config.train.pseudo_labels.weight as f32),
                _ => (v.label, 1.0),
            };
            Ok((
                *split,
                Example {
                    video_id: *id,
                    subject_id: v.subject_id,
                    label,
                    weight,
                    frames,
                    data,
                },
            ))
        })
        .collect::<Result<_>>()?;
    let train_subjects: BTreeSet<i32> = examples
        .iter()
        .filter(|(s, _)| *s == "train")
        .map(|(_, e)| e.subject_id)
        .collect();
    let val_subjects = validation_subjects(&train_subjects, config.data.val_fraction);
    let mut splits = Splits {
        train: vec![],
        val: vec![],
        test: vec![],
        channels: if kp.offsets { 5 } else { 3 },
        missing,
        pseudo_labelled: 0,
    };
    for (split, e) in examples {
        match split {
            "test" => splits.test.push(e),
            // A validation subject's pool video would leak that subject into training.
            PSEUDO if val_subjects.contains(&e.subject_id) => {}
            PSEUDO => {
                splits.pseudo_labelled += 1;
                splits.train.push(e);
            }
            _ if val_subjects.contains(&e.subject_id) => splits.val.push(e),
            _ => splits.train.push(e),
        }
    }
    if splits.train.is_empty() || splits.test.is_empty() {
        bail!(
            "protocol {} has {} training and {} test videos with keypoints in data snapshot {}; \
             nothing to train or evaluate",
            protocol.name,
            splits.train.len(),
            splits.test.len(),
            &snapshot.id()[..12]
        );
    }
    Ok(splits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::keypoints::{KeypointRow, VideoKeypoints};

    fn person(frame: i32, x: f32) -> KeypointRow {
        KeypointRow {
            frame,
            person: Some(0),
            person_id: Some(-1),
            streams: [
                Some(vec![x; 75]),
                Some(vec![0.5; 210]),
                Some(vec![0.5; 63]),
                Some(vec![0.5; 63]),
            ],
            source: 0,
        }
    }

    #[test]
    fn a_video_starts_at_its_first_observed_frame() {
        // A dump that starts at frame 5,000 (the first 5,000 frames were never processed):
        // three frames, one missing in between.
        let video = VideoKeypoints {
            video_id: 7,
            rows: vec![person(5_000, 0.25), person(5_001, 0.5), person(5_003, 0.75)],
            sources: vec!["s".into()],
        };
        let dir = std::env::temp_dir().join(crate::store::fsutil::unique_name("xp-first-frame"));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("part.parquet");
        std::fs::write(&path, part::encode(&video.to_batch().unwrap()).unwrap()).unwrap();
        let raw = read_raw(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(raw.frames.len(), 4, "frames 5000..=5003, not 5004 slots");
        assert_eq!(raw.frames[0].as_ref().unwrap()[0], 0.25);
        assert!(raw.frames[2].is_none(), "frame 5002 was missing");
        assert_eq!(raw.frames[3].as_ref().unwrap()[0], 0.75);
    }
}
