//! Store -> training examples. Reads only the store (never source files): the `videos` table
//! for labels and subjects, the protocol for splits, and per video the parts of the modalities
//! the run reads (keypoints; one embedding model's image vectors; one text model's transcript
//! vectors).

pub mod normalize;
mod pseudo;
pub mod vectors;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};
use arrow::array::{Array, AsArray};
use arrow::datatypes::{Float32Type, Int16Type, Int32Type};
use rayon::prelude::*;

use crate::experiment::identity::model_suffix;
use crate::experiment::spec::{MissingModality, Modality, RunConfig, Speakers};
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
    /// A pool video merged with a pseudo-label (its `label` is the labeler's).
    pub pseudo: bool,
    /// Sampled positions on the video's time axis (the keypoint frames when the run reads
    /// keypoints, else the span of its image vectors); 0 for a text-only run.
    pub frames: usize,
    /// Keypoints `[frames, 137, channels]`, flattened; empty when the run reads none or the
    /// video has none (masked).
    pub data: Vec<f32>,
    /// Image vectors over the same `frames` positions, when read and present.
    pub image: Option<vectors::ImageFrames>,
    /// Transcript vectors, when read and present.
    pub text: Option<vectors::TextVectors>,
}

impl Example {
    /// Whether the video has this modality's input (a run that does not read it: false).
    pub fn has(&self, modality: Modality) -> bool {
        match modality {
            Modality::Keypoints => !self.data.is_empty(),
            Modality::Image => self.image.is_some(),
            Modality::Text => self.text.is_some(),
        }
    }
}

/// The examples of one run.
#[derive(Debug)]
pub struct Splits {
    pub train: Vec<Example>,
    pub val: Vec<Example>,
    pub test: Vec<Example>,
    pub channels: usize,
    /// The run's modalities, in the model's branch order (keypoints, image, text).
    pub modalities: Vec<Modality>,
    /// Size of the image and text vectors (0 when not read).
    pub image_dim: usize,
    pub text_dim: usize,
    /// Videos kept with some modality masked (`data.missing_modality: mask`).
    pub masked: usize,
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

/// Reads one video's keypoint part into dense frames (and the number of the first), keeping per frame the person whose body
/// is most confidently detected (the player, not an interviewer at the edge). The sequence
/// runs from the first to the last frame the part holds: frames before the first one are not
/// part of the video's keypoints (a dump may start late), so they are not padded in.
fn read_raw(path: &std::path::Path) -> Result<(RawVideo, i64)> {
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
        return Ok((RawVideo { frames: Vec::new() }, 0));
    }
    // Ingest bounds frame numbers (`ingest::names::MAX_FRAME`), so this span is bounded too.
    let mut frames = vec![None; (i64::from(last) - i64::from(first) + 1) as usize];
    for (f, (_, v)) in best {
        frames[(f - first) as usize] = Some(v);
    }
    Ok((RawVideo { frames }, i64::from(first)))
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

/// Video id -> part file of one table, narrowed to one embedding model's parts when `model`
/// is given (part keys `video=<id>` or `video=<id>/model=<model>`).
pub(crate) fn parts_by_video(
    store: &Store,
    snapshot: &Snapshot,
    table: &str,
    model: Option<&str>,
) -> Result<BTreeMap<i32, String>> {
    let Some(version) = snapshot.tables.get(table) else {
        return Ok(BTreeMap::new());
    };
    let suffix = model.map(model_suffix);
    Ok(store
        .read_table_version(version)?
        .parts
        .into_iter()
        .filter_map(|p| {
            let key = match &suffix {
                Some(s) => p.key.strip_suffix(s.as_str())?,
                None => p.key.as_str(),
            };
            Some((key.strip_prefix("video=")?.parse().ok()?, p.file))
        })
        .collect())
}

/// Where each modality of one video is stored (None: the store has none for it).
#[derive(Default)]
struct Sources {
    keypoints: Option<String>,
    image: Option<String>,
    text: Option<String>,
    transcript: Option<String>,
}

/// One video's inputs: sampled positions, keypoints (empty when absent), image, text.
type Inputs = (
    usize,
    Vec<f32>,
    Option<vectors::ImageFrames>,
    Option<vectors::TextVectors>,
);

/// Reads one video's inputs.
fn read_example(store: &Store, config: &RunConfig, sources: &Sources) -> Result<Inputs> {
    let kp = &config.model.keypoints;
    let seq = &config.model.sequence;
    let (mut frames, mut data, mut positions) = (0, Vec::new(), Vec::new());
    if let Some(file) = &sources.keypoints {
        let (raw, first) = read_raw(&store.part_path(file))?;
        if !raw.frames.is_empty() {
            positions = normalize::sample_indices(raw.frames.len(), seq.max_frames, seq.sampling)
                .into_iter()
                .map(|i| first + i as i64)
                .collect();
            (frames, data) =
                normalize::features(&raw, seq.max_frames, seq.sampling, &kp.streams, kp.offsets);
        }
    }
    let mut image = None;
    if let Some(file) = &sources.image {
        let v = vectors::read_frame_vectors(&store.part_path(file))?;
        if let (Some(&lo), Some(&hi)) = (v.frames.first(), v.frames.last()) {
            if positions.is_empty() {
                // No keypoints: the time axis is the span of the image vectors.
                positions =
                    normalize::sample_indices((hi - lo + 1) as usize, seq.max_frames, seq.sampling)
                        .into_iter()
                        .map(|i| lo + i as i64)
                        .collect();
                frames = positions.len();
            }
            image = vectors::align(&v, &positions);
        }
    }
    let mut text = None;
    if let Some(file) = &sources.text {
        let path = store.part_path(file);
        text = match config.model.text.speakers {
            Speakers::All => vectors::read_text_vectors(&path, None)?,
            Speakers::Interviewee => {
                let Some(transcript) = &sources.transcript else {
                    return Ok((frames, data, image, None));
                };
                let keep: BTreeSet<i32> =
                    vectors::segments_of_speaker(&store.part_path(transcript), "interviewee")?
                        .into_iter()
                        .collect();
                vectors::read_text_vectors(&path, Some(&|s| keep.contains(&s)))?
            }
        };
    }
    Ok((frames, data, image, text))
}

/// What the store lacks for one modality, and the command that stores it, for the error.
fn lacking(modality: Modality, config: &RunConfig) -> (String, String) {
    let image = &config.model.image.embedding;
    let text = &config.model.text.embedding;
    match modality {
        Modality::Keypoints => ("keypoints".into(), "xp ingest openpose".into()),
        Modality::Image => (
            format!("`{image}` image vectors"),
            format!("xp ingest embeddings --model {image}"),
        ),
        Modality::Text => match config.model.text.speakers {
            Speakers::All => (
                format!("`{text}` transcript vectors"),
                format!("xp ingest text-embeddings --model {text}"),
            ),
            Speakers::Interviewee => (
                format!("`{text}` vectors of interviewee segments"),
                format!(
                    "xp ingest text-embeddings --per-segment --model {text}, and transcripts \
                     with speakers"
                ),
            ),
        },
    }
}

/// Loads the train, validation and test examples of a run from a snapshot. With
/// `train.pseudo_labels.use`, pool videos that the chosen labeler labelled join `train`, with
/// the pseudo-label and `train.pseudo_labels.weight`, rebalanced as configured.
pub fn load(store: &Store, snapshot: &Snapshot, config: &RunConfig) -> Result<Splits> {
    let videos = read_videos(store, snapshot)?;
    let protocol = protocol::by_name(&config.data.protocol)
        .with_context(|| format!("unknown protocol `{}`", config.data.protocol))?;
    // The model's branch order, whatever order the config lists them in.
    let modalities: Vec<Modality> = Modality::ALL
        .into_iter()
        .filter(|m| config.model.modalities.contains(m))
        .collect();
    let reads = |m| modalities.contains(&m);
    let empty = BTreeMap::new;
    let keypoint_parts = if reads(Modality::Keypoints) {
        parts_by_video(store, snapshot, "keypoints", None)?
    } else {
        empty()
    };
    let image_parts = if reads(Modality::Image) {
        parts_by_video(
            store,
            snapshot,
            "embeddings",
            Some(&config.model.image.embedding),
        )?
    } else {
        empty()
    };
    let text_parts = if reads(Modality::Text) {
        parts_by_video(
            store,
            snapshot,
            "text_embeddings",
            Some(&config.model.text.embedding),
        )?
    } else {
        empty()
    };
    let transcript_parts =
        if reads(Modality::Text) && config.model.text.speakers == Speakers::Interviewee {
            parts_by_video(store, snapshot, "transcripts", None)?
        } else {
            empty()
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
    let mut wanted: Vec<(i32, &'static str, Sources)> = Vec::new();
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
        let sources = Sources {
            keypoints: keypoint_parts.get(&id).cloned(),
            image: image_parts.get(&id).cloned(),
            text: text_parts.get(&id).cloned(),
            transcript: transcript_parts.get(&id).cloned(),
        };
        wanted.push((id, split, sources));
    }
    let loaded: Vec<(i32, &'static str, Example)> = wanted
        .par_iter()
        .map(|(id, split, sources)| {
            let (frames, data, image, text) =
                read_example(store, config, sources).with_context(|| format!("video {id}"))?;
            let v = &videos[id];
            let (label, weight) = match pseudo.get(id) {
                Some(&l) if *split == PSEUDO => (l, config.train.pseudo_labels.weight as f32),
                _ => (v.label, 1.0),
            };
            Ok((
                *id,
                *split,
                Example {
                    video_id: *id,
                    subject_id: v.subject_id,
                    label,
                    weight,
                    pseudo: *split == PSEUDO,
                    frames,
                    data,
                    image,
                    text,
                },
            ))
        })
        .collect::<Result<_>>()?;
    // Videos that lack an input: masked (some of several, when the run allows it), or missing.
    let mask = config.data.missing_modality == MissingModality::Mask;
    let mut missing: BTreeMap<(Modality, &'static str), Vec<i32>> = BTreeMap::new();
    let mut examples = Vec::with_capacity(loaded.len());
    let mut masked = 0;
    for (id, split, e) in loaded {
        let lacking: Vec<Modality> = modalities.iter().copied().filter(|m| !e.has(*m)).collect();
        if lacking.is_empty() {
            examples.push((split, e));
        } else if mask && lacking.len() < modalities.len() {
            masked += 1;
            examples.push((split, e));
        } else if split != PSEUDO {
            // A pool video that lacks an input is simply not merged: it has no role to lose.
            for m in lacking {
                missing.entry((m, split)).or_default().push(id);
            }
        }
    }
    if !missing.is_empty() && !config.data.allow_missing {
        let listed: Vec<String> = missing
            .iter()
            .map(|((m, split), ids)| {
                let shown: Vec<String> = ids.iter().take(20).map(i32::to_string).collect();
                let more = if ids.len() > 20 { ", ..." } else { "" };
                format!(
                    "{} {split} without {} ({}{more})",
                    ids.len(),
                    lacking(*m, config).0,
                    shown.join(", ")
                )
            })
            .collect();
        let commands: BTreeSet<String> =
            missing.keys().map(|(m, _)| lacking(*m, config).1).collect();
        let commands: Vec<String> = commands.into_iter().map(|c| format!("`{c}`")).collect();
        let hint = if modalities.len() > 1 && !mask {
            ", or `data.missing_modality: mask` to keep a video that has some of the run's \
             inputs (the model is told which are absent)"
        } else {
            ""
        };
        bail!(
            "protocol {} videos lack inputs this run reads, in data snapshot {}: {}. Ingest \
             them ({}), or set `data.allow_missing: true` to train and evaluate without these \
             videos (the run then records how many it left out, and the leaderboard shows \
             it){hint}",
            protocol.name,
            &snapshot.id()[..12],
            listed.join("; "),
            commands.join("; ")
        );
    }
    let missing: Vec<i32> = missing
        .into_values()
        .flatten()
        .collect::<BTreeSet<i32>>()
        .into_iter()
        .collect();
    let dim_of = |get: &dyn Fn(&Example) -> Option<usize>| -> Result<usize> {
        let dims: BTreeSet<usize> = examples.iter().filter_map(|(_, e)| get(e)).collect();
        if dims.len() > 1 {
            bail!("vectors of one model have different sizes: {dims:?}");
        }
        Ok(dims.into_iter().next().unwrap_or(0))
    };
    let image_dim = dim_of(&|e| e.image.as_ref().map(|i| i.dim))?;
    let text_dim = dim_of(&|e| e.text.as_ref().map(|t| t.dim))?;
    // With masking, a modality could be absent from every video: nothing to learn it from.
    for m in &modalities {
        if !examples.iter().any(|(_, e)| e.has(*m)) {
            bail!(
                "no video of protocol {} has {} in data snapshot {}; ingest them (`{}`)",
                protocol.name,
                lacking(*m, config).0,
                &snapshot.id()[..12],
                lacking(*m, config).1
            );
        }
    }
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
        channels: if config.model.keypoints.offsets { 5 } else { 3 },
        modalities,
        image_dim,
        text_dim,
        masked,
        missing,
        pseudo_labelled: 0,
    };
    let mut pseudo_examples = Vec::new();
    for (split, e) in examples {
        match split {
            "test" => splits.test.push(e),
            // A validation subject's pool video would leak that subject into training.
            PSEUDO if val_subjects.contains(&e.subject_id) => {}
            PSEUDO => pseudo_examples.push(e),
            _ if val_subjects.contains(&e.subject_id) => splits.val.push(e),
            _ => splits.train.push(e),
        }
    }
    let gold = [0u8, 1].map(|c| splits.train.iter().filter(|e| e.label == c).count());
    let pseudo_examples =
        pseudo::rebalance(pseudo_examples, gold, config.train.pseudo_labels.rebalance);
    splits.pseudo_labelled = pseudo_examples.len();
    splits.train.extend(pseudo_examples);
    // Video order, gold and pseudo-labelled together: the order the shuffles start from.
    splits.train.sort_by_key(|e| e.video_id);
    if splits.train.is_empty() || splits.test.is_empty() {
        bail!(
            "protocol {} has {} training and {} test videos with the run's inputs in data \
             snapshot {}; nothing to train or evaluate",
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
        let (raw, first) = read_raw(&path).unwrap();
        assert_eq!(first, 5_000);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(raw.frames.len(), 4, "frames 5000..=5003, not 5004 slots");
        assert_eq!(raw.frames[0].as_ref().unwrap()[0], 0.25);
        assert!(raw.frames[2].is_none(), "frame 5002 was missing");
        assert_eq!(raw.frames[3].as_ref().unwrap()[0], 0.75);
    }
}
