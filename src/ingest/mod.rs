//! Ingest: source files -> checked Arrow batches -> staged parts -> one atomic commit.
//!
//! Every source is read and checked completely before the commit, and parts are staged outside
//! the store's live folders, so bad input never changes the store. One file per source format.

pub mod boxes;
pub mod crop_sink;
pub mod crops;
pub mod embeddings;
mod error;
pub mod images;
pub mod keypoints;
pub mod labels;
mod merge;
pub mod models;
pub mod names;
pub mod npy;
pub mod openpose_json;
pub mod openpose_table;
pub mod pseudo_labels;
pub mod safetensors_file;
pub mod transcript_formats;
pub mod transcripts;
pub mod video_decode;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int32Type;
use rayon::prelude::*;

pub use error::BadInput;
use keypoints::FrameStats;

use crate::progress::Progress;
use crate::store::{CommitOutcome, Head, PartRef, Store, TableChange, Transaction};

/// Options shared by the keypoint ingests.
#[derive(Debug, Clone, Copy)]
pub struct IngestOptions {
    /// Accept videos that the `videos` table does not list.
    pub allow_unknown_videos: bool,
    /// Recorded in the commit log before the operation, e.g. `demo` (empty for a user's ingest).
    pub origin: &'static str,
    pub progress: Progress,
}

/// What an ingest did, for the user.
#[derive(Debug)]
pub struct IngestSummary {
    pub what: String,
    pub files: u64,
    pub bytes_read: u64,
    pub skipped_files: u64,
    pub videos: usize,
    pub keypoints: Option<FrameStats>,
    /// What else to say about the rows (for ingests other than keypoints).
    pub detail: Option<String>,
    pub rows: u64,
    pub parts: usize,
    pub part_bytes: u64,
    pub elapsed: Duration,
    pub outcome: CommitOutcome,
}

/// `1536` -> `1.50 KiB` (indicatif's formatting, the same as the progress bars').
fn human_bytes(n: u64) -> String {
    indicatif::BinaryBytes(n).to_string()
}

impl fmt::Display for IngestSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        write!(
            f,
            "{}: {} files ({}) read",
            self.what,
            self.files,
            human_bytes(self.bytes_read)
        )?;
        if self.skipped_files > 0 {
            write!(f, ", {} other files skipped", self.skipped_files)?;
        }
        writeln!(f, " in {secs:.2} s")?;
        if let Some(s) = &self.keypoints {
            writeln!(
                f,
                "  videos {} | frames {} ({:.0} frames/s) | rows {} | empty frames {} | \
                 multi-person frames {} | missing frames {} | empty streams {}",
                self.videos,
                s.frames,
                s.frames as f64 / secs.max(1e-9),
                s.rows,
                s.empty_frames,
                s.multi_person_frames,
                s.missing_frames,
                s.empty_streams
            )?;
        } else if let Some(detail) = &self.detail {
            writeln!(f, "  {detail}")?;
        } else {
            writeln!(f, "  videos {} | rows {}", self.videos, self.rows)?;
        }
        write!(
            f,
            "  {} parts, {} of Parquet | ",
            self.parts,
            human_bytes(self.part_bytes)
        )?;
        match &self.outcome {
            CommitOutcome::Committed {
                seq, snapshot_id, ..
            } => write!(f, "committed snapshot {} (log #{seq})", &snapshot_id[..12]),
            CommitOutcome::Unchanged { snapshot_id } => write!(
                f,
                "unchanged: the store already holds exactly this data (snapshot {})",
                &snapshot_id[..12]
            ),
        }
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The video ids of the `videos` table in a snapshot.
pub fn known_videos(store: &Store, head: &Head) -> Result<BTreeSet<i32>> {
    let mut ids = BTreeSet::new();
    for batch in store.read_rows(&head.snapshot, "videos")? {
        ids.extend(
            batch
                .column_by_name("video_id")
                .expect("videos has video_id")
                .as_primitive::<Int32Type>()
                .values()
                .iter()
                .copied(),
        );
    }
    Ok(ids)
}

/// The error for data of a video the store has no labels for (usually a wrong folder or id).
fn unknown_video(known: &BTreeSet<i32>, id: i32, path: &Path) -> BadInput {
    let hint = match (known.first(), known.last()) {
        (Some(first), Some(last)) => format!(
            "the `videos` table has {} videos ({first}..{last}); ingest its labels first",
            known.len()
        ),
        _ => "the store has no videos yet: ingest the label file first (`xp ingest \
              imigue-labels FILE.csv`)"
            .to_string(),
    };
    BadInput::new(
        path,
        format!("unknown video id {id}: {hint}, or pass --allow-unknown-videos"),
    )
}

/// Refuses data of videos the store has no labels for, unless the options allow it.
fn check_videos_known(
    store: &Store,
    ids: &[(i32, PathBuf)],
    options: &IngestOptions,
) -> Result<()> {
    if options.allow_unknown_videos {
        return Ok(());
    }
    let known = known_videos(store, &store.head()?)?;
    match ids.iter().find(|(id, _)| !known.contains(id)) {
        Some((id, path)) => Err(unknown_video(&known, *id, path).into()),
        None => Ok(()),
    }
}

/// The operation recorded in the log: `ingest openpose`, or `demo: ingest openpose`.
fn operation(origin: &str, what: &str) -> String {
    if origin.is_empty() {
        what.to_string()
    } else {
        format!("{origin}: {what}")
    }
}

/// `xp ingest imigue-labels FILE`.
pub fn ingest_labels(store_root: &Path, path: &Path, origin: &str) -> Result<IngestSummary> {
    let start = Instant::now();
    let labels = labels::parse(path)?;
    let videos = labels.videos_batch()?;
    let clips = labels.clips_batch()?;
    let store = Store::open_or_init(store_root)?;
    let txn = Transaction::begin(&store)?;
    let mut parts: Vec<PartRef> = Vec::new();
    let outcome = txn.commit(
        &operation(origin, "ingest imigue-labels"),
        |stager, head| {
            let merged_videos = merge::replace_videos(stager.store(), head, "videos", &videos)?;
            let merged_clips = merge::replace_videos(stager.store(), head, "clips", &clips)?;
            let v = stager.stage("all", &merged_videos)?;
            let c = stager.stage("all", &merged_clips)?;
            parts = vec![v.clone(), c.clone()];
            Ok(vec![
                TableChange {
                    table: "videos".into(),
                    parts: vec![v],
                },
                TableChange {
                    table: "clips".into(),
                    parts: vec![c],
                },
            ])
        },
    )?;
    Ok(IngestSummary {
        what: format!("imigue-labels {}", path.display()),
        files: 1,
        bytes_read: file_len(path),
        skipped_files: 0,
        videos: labels.videos.len(),
        keypoints: None,
        detail: None,
        rows: (labels.videos.len() + labels.clips.len()) as u64,
        parts: parts.len(),
        part_bytes: parts.iter().map(|p| p.bytes).sum(),
        elapsed: start.elapsed(),
        outcome,
    })
}

/// Stages one video's keypoints; returns its part.
fn stage_video(txn: &mut Transaction, video: &keypoints::VideoKeypoints) -> Result<PartRef> {
    let batch: RecordBatch = video.to_batch()?;
    txn.stager()
        .stage(keypoints::part_key(video.video_id), &batch)
}

/// Commits staged parts of one table (parts replace those with the same keys).
fn commit_parts(
    txn: Transaction,
    what: &str,
    table: &str,
    parts: &[PartRef],
) -> Result<CommitOutcome> {
    txn.commit(what, |_, _| {
        Ok(vec![TableChange {
            table: table.into(),
            parts: parts.to_vec(),
        }])
    })
}

fn open_for_videos(store_root: &Path, options: &IngestOptions) -> Result<Store> {
    if options.allow_unknown_videos {
        Store::open_or_init(store_root)
    } else {
        Store::open(store_root)
    }
}

/// `xp ingest openpose PATH...`: per-frame OpenPose JSON.
pub fn ingest_openpose(
    store_root: &Path,
    paths: &[PathBuf],
    options: &IngestOptions,
) -> Result<IngestSummary> {
    let start = Instant::now();
    if paths.is_empty() {
        bail!("give at least one folder of OpenPose JSON files");
    }
    let (files, skipped) = openpose_json::discover(paths)?;
    let store = open_for_videos(store_root, options)?;
    let groups = openpose_json::by_video(files);
    let ids: Vec<(i32, PathBuf)> = groups
        .iter()
        .map(|(id, files)| (*id, files[0].path.clone()))
        .collect();
    check_videos_known(&store, &ids, options)?;

    let total_files: usize = groups.values().map(Vec::len).sum();
    let bar = options
        .progress
        .bar(total_files as u64, "openpose", "files");
    let mut txn = Transaction::begin(&store)?;
    let mut stats = FrameStats::default();
    let mut parts = Vec::new();
    let mut bytes_read = 0;
    for (video_id, files) in &groups {
        bytes_read += files.iter().map(|f| file_len(&f.path)).sum::<u64>();
        let video = openpose_json::parse_video(*video_id, files, &|| bar.inc(1))?;
        stats.add(&video.stats());
        parts.push(stage_video(&mut txn, &video)?);
    }
    bar.finish_and_clear();
    let outcome = commit_parts(
        txn,
        &operation(options.origin, "ingest openpose"),
        "keypoints",
        &parts,
    )?;
    Ok(IngestSummary {
        what: "openpose".into(),
        files: total_files as u64,
        bytes_read,
        skipped_files: skipped,
        videos: groups.len(),
        rows: stats.rows,
        keypoints: Some(stats),
        detail: None,
        parts: parts.len(),
        part_bytes: parts.iter().map(|p| p.bytes).sum(),
        elapsed: start.elapsed(),
        outcome,
    })
}

/// `xp ingest openpose-table FILE...`: one keypoint table per video.
pub fn ingest_openpose_tables(
    store_root: &Path,
    files: &[PathBuf],
    video_override: Option<i32>,
    options: &IngestOptions,
) -> Result<IngestSummary> {
    let start = Instant::now();
    if files.is_empty() {
        bail!("give at least one keypoint table file");
    }
    if video_override.is_some() && files.len() > 1 {
        bail!(
            "--video names the video of a single file; got {} files",
            files.len()
        );
    }
    let mut ids = Vec::new();
    let mut seen = std::collections::BTreeMap::new();
    for path in files {
        let id = video_override
            .or_else(|| openpose_table::video_id_from_name(path))
            .ok_or_else(|| {
                BadInput::new(
                    path,
                    "cannot tell the video id: the file name must start with it (e.g. \
                     298.csv), or pass --video",
                )
            })?;
        if let Some(other) = seen.insert(id, path.clone()) {
            return Err(BadInput::new(
                path,
                format!("video {id} is also given as {}", other.display()),
            )
            .into());
        }
        ids.push((id, path.clone()));
    }
    let store = open_for_videos(store_root, options)?;
    check_videos_known(&store, &ids, options)?;

    let bar = options.progress.bar(files.len() as u64, "tables", "files");
    let mut txn = Transaction::begin(&store)?;
    let mut stats = FrameStats::default();
    let mut parts = Vec::new();
    // Parse a few files at a time in parallel, then stage them in order: memory holds only
    // the videos in flight, however many files there are.
    let chunk = rayon::current_num_threads().max(1);
    for group in ids.chunks(chunk) {
        let parsed: Vec<Result<_, BadInput>> = group
            .par_iter()
            .map(|(id, path)| {
                let video = openpose_table::parse_table(path, Some(*id));
                bar.inc(1);
                video
            })
            .collect();
        for video in parsed {
            let mut video = video?;
            video.sort();
            stats.add(&video.stats());
            parts.push(stage_video(&mut txn, &video)?);
        }
    }
    bar.finish_and_clear();
    let outcome = commit_parts(
        txn,
        &operation(options.origin, "ingest openpose-table"),
        "keypoints",
        &parts,
    )?;
    Ok(IngestSummary {
        what: "openpose-table".into(),
        files: files.len() as u64,
        bytes_read: files.iter().map(|p| file_len(p)).sum(),
        skipped_files: 0,
        videos: ids.len(),
        rows: stats.rows,
        keypoints: Some(stats),
        detail: None,
        parts: parts.len(),
        part_bytes: parts.iter().map(|p| p.bytes).sum(),
        elapsed: start.elapsed(),
        outcome,
    })
}

/// `xp ingest crops PATH...`: person crops into `crops` and `frames`.
pub fn ingest_crops(
    store_root: &Path,
    paths: &[PathBuf],
    crop: &crops::CropOptions,
    options: &IngestOptions,
) -> Result<IngestSummary> {
    let start = Instant::now();
    if paths.is_empty() {
        bail!("give at least one folder of frames or crops, or a video file");
    }
    let inputs = crops::discover(paths, crop.video)?;
    let store = open_for_videos(store_root, options)?;
    let ids: Vec<(i32, PathBuf)> = inputs
        .iter()
        .map(|v| (v.video_id, v.first_path()))
        .collect();
    check_videos_known(&store, &ids, options)?;
    let base = store.head()?;
    let mut sink = crop_sink::CropSink::new(crop_sink::stored_hashes(&store, &base)?);
    let mut boxes = crops::BoxesIndex::default();
    let total: u64 = inputs.iter().map(|v| v.frame_count_hint()).sum();
    let bar = options.progress.bar(total, "crops", "frames");
    let mut txn = Transaction::begin(&store)?;
    let mut frame_parts = Vec::new();
    let (mut frames, mut with_person) = (0u64, 0u64);
    let mut bytes_read = 0;
    for input in &inputs {
        bytes_read += match &input.source {
            crops::Source::Images(files) => files.values().map(|p| file_len(p)).sum(),
            crops::Source::VideoFile(p) => file_len(p),
        };
        let rows = crops::process_video(input, crop, &mut boxes, txn.stager(), &mut sink, &|| {
            bar.inc(1)
        })?;
        if rows.is_empty() {
            return Err(BadInput::new(&input.first_path(), "the video has no frames").into());
        }
        frames += rows.len() as u64;
        with_person += rows.iter().filter(|r| r.crop_hash.is_some()).count() as u64;
        frame_parts.push(crops::stage_frames(txn.stager(), input.video_id, &rows)?);
    }
    sink.flush(txn.stager())?;
    bar.finish_and_clear();
    if let Some(root) = &crop.boxes
        && crop.from == crops::CropFrom::Frames
        && boxes.matched_videos == 0
    {
        return Err(BadInput::new(
            root,
            "no detection file here matches any frame: expected <video>/<frame>.txt (or .json) \
             or <video>_<frame>.txt, numbered like the frames (see --box-frame-base)",
        )
        .into());
    }
    let staged = sink.staged.clone();
    let mut crop_parts: Vec<PartRef> = Vec::new();
    let outcome = txn.commit(
        &operation(options.origin, "ingest crops"),
        |stager, head| {
            crop_parts = crop_sink::parts_for_head(stager, head, base.seq, &staged)?;
            let mut changes = vec![TableChange {
                table: "frames".into(),
                parts: frame_parts.clone(),
            }];
            if !crop_parts.is_empty() {
                changes.push(TableChange {
                    table: "crops".into(),
                    parts: crop_parts.clone(),
                });
            }
            Ok(changes)
        },
    )?;
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let all_parts: Vec<&PartRef> = frame_parts.iter().chain(&crop_parts).collect();
    Ok(IngestSummary {
        what: "crops".into(),
        files: inputs.iter().map(|v| v.frame_count_hint().max(1)).sum(),
        bytes_read,
        skipped_files: 0,
        videos: inputs.len(),
        keypoints: None,
        detail: Some(format!(
            "videos {} | frames {frames} ({:.0} frames/s) | with a person {with_person} | \
             no person {} | crops referenced {}, new {} ({})",
            inputs.len(),
            frames as f64 / secs,
            frames - with_person,
            sink.referenced,
            sink.new_crops,
            human_bytes(sink.new_bytes)
        )),
        rows: frames + crop_parts.iter().map(|p| p.rows).sum::<u64>(),
        parts: all_parts.len(),
        part_bytes: all_parts.iter().map(|p| p.bytes).sum(),
        elapsed: start.elapsed(),
        outcome,
    })
}

/// `xp ingest embeddings` / `xp ingest text-embeddings`: vector files into `embeddings` or
/// `text_embeddings`.
pub fn ingest_vectors(
    store_root: &Path,
    files: &[PathBuf],
    vectors: &embeddings::VectorOptions,
    options: &IngestOptions,
) -> Result<IngestSummary> {
    let start = Instant::now();
    if files.is_empty() {
        bail!("give at least one .npy, .safetensors or .parquet file");
    }
    if vectors.video.is_some() && files.len() > 1 {
        bail!(
            "--video names the video of a single file; got {} files",
            files.len()
        );
    }
    for f in files {
        if !f.is_file() {
            return Err(BadInput::new(f, "no such file").into());
        }
    }
    let store = open_for_videos(store_root, options)?;
    let head = store.head()?;
    embeddings::check_stored_dim(&store, &head, vectors, &files[0])?;
    let known = if options.allow_unknown_videos {
        None
    } else {
        Some(known_videos(&store, &head)?)
    };
    let table = vectors.kind.table();
    let bar = options.progress.bar(files.len() as u64, table, "files");
    let mut txn = Transaction::begin(&store)?;
    let mut parts: Vec<PartRef> = Vec::new();
    let mut seen: std::collections::BTreeMap<i32, PathBuf> = Default::default();
    let (mut rows, mut bytes_read) = (0u64, 0u64);
    for file in files {
        bytes_read += file_len(file);
        let source_hash = embeddings::hash_file(file)?;
        embeddings::read_file(file, vectors, &mut |mut v| {
            if let Some(other) = seen.insert(v.video_id, v.path.clone()) {
                return Err(BadInput::new(
                    &v.path,
                    format!("video {} is also given in {}", v.video_id, other.display()),
                )
                .into());
            }
            if let Some(known) = &known
                && !known.contains(&v.video_id)
            {
                return Err(unknown_video(known, v.video_id, &v.path).into());
            }
            embeddings::check_and_sort(&mut v, vectors)?;
            if vectors.kind == embeddings::VectorKind::Image {
                embeddings::attach_crop_hashes(&store, &head, &mut v)?;
            }
            rows += v.index.len() as u64;
            parts.push(embeddings::stage(txn.stager(), v, vectors, &source_hash)?);
            Ok(())
        })?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let outcome = commit_parts(
        txn,
        &operation(
            options.origin,
            &format!("ingest {}", table.replace('_', "-")),
        ),
        table,
        &parts,
    )?;
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    Ok(IngestSummary {
        what: format!("{table} ({})", vectors.model),
        files: files.len() as u64,
        bytes_read,
        skipped_files: 0,
        videos: seen.len(),
        keypoints: None,
        detail: Some(format!(
            "videos {} | vectors {rows} of {} values ({:.0} vectors/s, {:.0} MiB/s)",
            seen.len(),
            vectors.dim,
            rows as f64 / secs,
            bytes_read as f64 / secs / (1 << 20) as f64
        )),
        rows,
        parts: parts.len(),
        part_bytes: parts.iter().map(|p| p.bytes).sum(),
        elapsed: start.elapsed(),
        outcome,
    })
}

/// `xp ingest transcripts PATH...`.
pub fn ingest_transcripts(
    store_root: &Path,
    paths: &[PathBuf],
    video: Option<i32>,
    options: &IngestOptions,
) -> Result<IngestSummary> {
    let start = Instant::now();
    if paths.is_empty() {
        bail!("give at least one transcript file or folder");
    }
    let inputs = transcripts::discover(paths, video)?;
    let store = open_for_videos(store_root, options)?;
    let ids: Vec<(i32, PathBuf)> = inputs
        .iter()
        .map(|t| (t.video_id, t.files[0].0.clone()))
        .collect();
    check_videos_known(&store, &ids, options)?;
    let bar = options
        .progress
        .bar(inputs.len() as u64, "transcripts", "videos");
    let mut txn = Transaction::begin(&store)?;
    let mut parts = Vec::new();
    let (mut segments, mut chars, mut bytes_read, mut files) = (0u64, 0u64, 0u64, 0u64);
    for input in &inputs {
        let t = transcripts::read(input)?;
        segments += t.segments.len() as u64;
        chars += t
            .segments
            .iter()
            .map(|s| s.text.chars().count() as u64)
            .sum::<u64>();
        bytes_read += t.bytes;
        files += input.files.len() as u64;
        let batch = transcripts::batch(&t)?;
        parts.push(
            txn.stager()
                .stage(keypoints::part_key(t.video_id), &batch)?,
        );
        bar.inc(1);
    }
    bar.finish_and_clear();
    let outcome = commit_parts(
        txn,
        &operation(options.origin, "ingest transcripts"),
        "transcripts",
        &parts,
    )?;
    Ok(IngestSummary {
        what: "transcripts".into(),
        files,
        bytes_read,
        skipped_files: 0,
        videos: inputs.len(),
        keypoints: None,
        detail: Some(format!(
            "videos {} | segments {segments} | characters {chars}",
            inputs.len()
        )),
        rows: segments,
        parts: parts.len(),
        part_bytes: parts.iter().map(|p| p.bytes).sum(),
        elapsed: start.elapsed(),
        outcome,
    })
}

/// `xp ingest pseudo-labels FILE.jsonl --labeler NAME`.
pub fn ingest_pseudo_labels(
    store_root: &Path,
    path: &Path,
    labeler: &str,
    prompt_file: Option<&Path>,
    options: &IngestOptions,
) -> Result<IngestSummary> {
    let start = Instant::now();
    models::check_name(labeler)
        .map_err(|m| anyhow::anyhow!("--labeler: {}", m.replace("model name", "labeler name")))?;
    let prompt = match prompt_file {
        // The file's text without its final line break, as an editor saves it.
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| {
                    BadInput::new(
                        p,
                        format!("cannot read the prompt (UTF-8 text expected): {e}"),
                    )
                })?
                .trim_end_matches(['\n', '\r'])
                .to_string(),
        ),
        None => None,
    };
    let bytes =
        std::fs::read(path).map_err(|e| BadInput::new(path, format!("cannot read: {e}")))?;
    let rows = pseudo_labels::parse(path, &bytes, labeler, prompt.as_deref())?;
    let store = open_for_videos(store_root, options)?;
    if !options.allow_unknown_videos {
        let known = known_videos(&store, &store.head()?)?;
        if let Some(r) = rows.iter().find(|r| !known.contains(&r.video_id)) {
            return Err(unknown_video(&known, r.video_id, path).line(r.line).into());
        }
    }
    let txn = Transaction::begin(&store)?;
    let mut added = 0;
    let mut part: Option<PartRef> = None;
    let outcome = txn.commit(
        &operation(options.origin, "ingest pseudo-labels"),
        |stager, head| {
            let old = pseudo_labels::stored(stager.store(), &head.snapshot)?;
            let (all, n) = pseudo_labels::merge(path, old, &rows)?;
            added = n;
            let p = stager.stage("all", &pseudo_labels::batch(&all)?)?;
            part = Some(p.clone());
            Ok(vec![TableChange {
                table: "pseudo_labels".into(),
                parts: vec![p],
            }])
        },
    )?;
    let wins = rows.iter().filter(|r| r.label == "win").count();
    let part = part.expect("commit ran the build step");
    Ok(IngestSummary {
        what: format!("pseudo-labels {} ({labeler})", path.display()),
        files: 1,
        bytes_read: bytes.len() as u64,
        skipped_files: 0,
        videos: rows.len(),
        keypoints: None,
        detail: Some(format!(
            "videos {} | win {wins} | lose {} | new {added} | already stored {}",
            rows.len(),
            rows.len() - wins,
            rows.len() - added
        )),
        rows: rows.len() as u64,
        parts: 1,
        part_bytes: part.bytes,
        elapsed: start.elapsed(),
        outcome,
    })
}
