//! `xp demo`: a synthetic stand-in for iMiGUE, written in the real source formats (label CSV,
//! per-video keypoint tables, OpenPose JSON frames) so the whole pipeline can run without the
//! dataset. It is NOT real data: ids, splits and label balance follow the real dataset, the
//! rest is a generative model (see plan.rs and skeleton.rs).
//!
//! Output is byte-identical for the same options whatever the thread count: every video and
//! subject has its own RNG derived from (seed, id).

mod classes;
pub(crate) mod media;
mod plan;
mod signal;
mod skeleton;
mod write;

use anyhow::Context;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

pub use signal::SignalCheck;

pub struct DemoOptions {
    pub seed: u64,
    /// How many of the 359 videos to generate (None = all 359). When fewer, keep the protocol's
    /// proportions: take train, test and pool videos in proportion, deterministic from the seed.
    pub videos: Option<usize>,
    /// Multiplies each synthetic video's natural length (real median ~7,000 frames, mean ~8,400,
    /// max ~35,000, at 25 fps). Default 0.05 => median ~350 frames. Clip frame numbers in the labels
    /// refer to the scaled video, so labels and keypoints agree.
    pub frame_scale: f64,
    /// How many videos are written as per-frame OpenPose JSON folders instead of per-video tables
    /// (default 3; the shortest selected videos, ties broken by id).
    pub json_videos: usize,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            seed: 0,
            videos: None,
            frame_scale: 0.05,
            json_videos: 3,
        }
    }
}

pub struct DemoSummary {
    pub videos: usize,
    /// Total keypoint frames written (table rows + JSON files).
    pub frames: u64,
    /// Label rows.
    pub clips: usize,
    pub labels_csv: PathBuf,
    /// `keypoints/<video>.csv`, sorted.
    pub table_files: Vec<PathBuf>,
    /// `openpose/<video>/`, sorted.
    pub json_dirs: Vec<PathBuf>,
    /// `crops/`: ready-made crops, `crops/<video>/<frame>.jpg`.
    pub crops_dir: PathBuf,
    /// `frames/` and `boxes/`: full frames plus YOLO boxes (the JSON videos).
    pub frames_dir: PathBuf,
    pub boxes_dir: PathBuf,
    /// Crop images written (ready-made crops plus full frames).
    pub images: u64,
    /// `embeddings/<video>.safetensors`, sorted.
    pub embedding_files: Vec<PathBuf>,
    /// `transcripts/`: iMiGUE-speech layout.
    pub transcripts_dir: PathBuf,
    /// `text_embeddings/<video>.npy`, sorted.
    pub text_embedding_files: Vec<PathBuf>,
    /// `pseudo_labels.jsonl`.
    pub pseudo_labels: PathBuf,
    /// The generator's own checks of the planted signals (see `signal.rs`).
    pub checks: Checks,
}

/// Writes the dataset under `out_dir` (created if missing; existing files of ours are overwritten).
/// `on_video` is called once per finished video (for a progress bar), with no arguments.
pub fn generate(
    opts: &DemoOptions,
    out_dir: &Path,
    on_video: &(dyn Fn() + Sync),
) -> anyhow::Result<DemoSummary> {
    anyhow::ensure!(
        opts.frame_scale.is_finite() && opts.frame_scale > 0.0,
        "frame_scale must be a positive number, got {}",
        opts.frame_scale
    );
    let plan = plan::plan(opts);
    let json_ids = json_video_ids(&plan, opts.json_videos);

    let kp_dir = out_dir.join("keypoints");
    let op_dir = out_dir.join("openpose");
    let crops_dir = out_dir.join("crops");
    let frames_dir = out_dir.join("frames");
    let boxes_dir = out_dir.join("boxes");
    let emb_dir = out_dir.join("embeddings");
    let tr_dir = out_dir.join("transcripts");
    let te_dir = out_dir.join("text_embeddings");
    for dir in [
        &kp_dir,
        &op_dir,
        &crops_dir,
        &frames_dir,
        &boxes_dir,
        &emb_dir,
        &tr_dir,
        &te_dir,
    ] {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        clear_previous(dir)?;
    }

    let labels_csv = out_dir.join("labels.csv");
    let clips = write::write_labels(&plan, &labels_csv)
        .with_context(|| format!("writing {}", labels_csv.display()))?;
    let pseudo_labels = out_dir.join("pseudo_labels.jsonl");
    write::write_file(
        &pseudo_labels,
        media::pseudo_label_lines(opts.seed, &plan.videos).as_bytes(),
    )?;

    let header = write::table_header();
    type Written = (
        u64,
        PathBuf,
        bool,
        Option<(PathBuf, f64)>,
        (PathBuf, f64),
        Option<f64>,
    );
    let done: Vec<Written> = plan
        .videos
        .par_iter()
        .map(|v| {
            let subject = &plan.subjects[v.subject - 1];
            let as_json = json_ids.contains(&v.id);
            let id = v.id.to_string();
            let mode = if as_json {
                media::CropMode::Frames {
                    frames: frames_dir.join(&id),
                    boxes: boxes_dir.join(&id),
                }
            } else {
                media::CropMode::Ready(crops_dir.join(&id))
            };
            let result = (|| {
                match &mode {
                    media::CropMode::Frames { frames, boxes } => {
                        std::fs::create_dir_all(frames)?;
                        std::fs::create_dir_all(boxes)?;
                    }
                    media::CropMode::Ready(dir) => std::fs::create_dir_all(dir)?,
                }
                let mut media = media::MediaWriter::new(opts.seed, v, subject, mode);
                let mut heads = signal::HeadHeights::default();
                let mut sink = |f: u32, frame: &skeleton::FrameOut| {
                    heads.on_frame(frame);
                    media.on_frame(f, frame)
                };
                let (n, path) = if as_json {
                    let dir = op_dir.join(&id);
                    (
                        write_json_video(opts.seed, v, subject, &dir, &mut sink)?,
                        dir,
                    )
                } else {
                    let path = kp_dir.join(format!("{id}.csv"));
                    (
                        write_table_video(opts.seed, v, subject, &header, &path, &mut sink)?,
                        path,
                    )
                };
                let embeddings = media.finish(&emb_dir)?;
                let tone = media::write_transcript(opts.seed, v, &tr_dir)?;
                let text = media::write_text_embedding(opts.seed, v, subject, tone, &te_dir)?;
                anyhow::Ok((n, path, as_json, embeddings, text, heads.median()))
            })();
            on_video();
            result.with_context(|| format!("writing video {}", v.id))
        })
        .collect::<anyhow::Result<_>>()?;

    let images = count_files(&crops_dir)? + count_files(&frames_dir)?;
    let mut embedding_files: Vec<PathBuf> = done
        .iter()
        .filter_map(|d| Some(d.3.as_ref()?.0.clone()))
        .collect();
    embedding_files.sort();
    let mut text_embedding_files: Vec<PathBuf> = done.iter().map(|d| d.4.0.clone()).collect();
    text_embedding_files.sort();
    let frames = done.iter().map(|d| d.0).sum();
    let heights: Vec<(plan::Split, bool, f64)> = plan
        .videos
        .iter()
        .zip(&done)
        .filter_map(|(v, d)| Some((v.split, v.win, d.5?)))
        .collect();
    let keypoint_check = signal::check(&heights);
    let scores = |get: &dyn Fn(&Written) -> Option<f64>| -> Vec<(plan::Split, bool, f64)> {
        plan.videos
            .iter()
            .zip(&done)
            .filter_map(|(v, d)| Some((v.split, v.win, get(d)?)))
            .collect()
    };
    let image_check = signal::check(&scores(&|d| Some(d.3.as_ref()?.1)));
    let text_check = signal::check(&scores(&|d| Some(d.4.1)));
    let all: Vec<(plan::Split, bool, Vec<f64>)> = plan
        .videos
        .iter()
        .zip(&done)
        .filter_map(|(v, d)| Some((v.split, v.win, vec![d.5?, d.3.as_ref()?.1, d.4.1])))
        .collect();
    let combined_check = signal::check_combined(&all);
    let mut text = readme(opts, &plan);
    let checks = Checks {
        keypoints: keypoint_check,
        image: image_check,
        text: text_check,
        combined: combined_check,
    };
    for line in describe_checks(&checks) {
        text.push_str(&format!("\n{line}\n"));
    }
    write::write_file(&out_dir.join("README.txt"), text.as_bytes())?;
    let mut table_files = Vec::new();
    let mut json_dirs = Vec::new();
    for (_, path, json, _, _, _) in done {
        if json {
            json_dirs.push(path);
        } else {
            table_files.push(path);
        }
    }
    table_files.sort();
    json_dirs.sort();
    Ok(DemoSummary {
        videos: plan.videos.len(),
        frames,
        clips,
        labels_csv,
        table_files,
        json_dirs,
        crops_dir,
        frames_dir,
        boxes_dir,
        images,
        embedding_files,
        transcripts_dir: tr_dir,
        text_embedding_files,
        pseudo_labels,
        checks,
    })
}

/// Files under `dir`, one level of sub-folders deep.
fn count_files(dir: &Path) -> anyhow::Result<u64> {
    let mut n = 0;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            n += std::fs::read_dir(&path)?.count() as u64;
        } else {
            n += 1;
        }
    }
    Ok(n)
}

/// The `n` shortest videos (fewest frames, then lowest id) are written as JSON folders: one file
/// per frame is costly, so short ones keep the dataset small.
fn json_video_ids(plan: &plan::Plan, n: usize) -> Vec<u32> {
    let mut by_len: Vec<(u32, u32)> = plan.videos.iter().map(|v| (v.frames, v.id)).collect();
    by_len.sort_unstable();
    by_len.into_iter().take(n).map(|(_, id)| id).collect()
}

/// Removes what an earlier run wrote into `dir` (files and folders named by a video id, like
/// `298.csv` or `298/`), so the folder holds exactly this run's dataset; other files stay.
fn clear_previous(dir: &Path) -> anyhow::Result<()> {
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let ours = path
            .file_stem()
            .and_then(|s| s.to_str())
            .is_some_and(numeric);
        if !ours {
            continue;
        }
        if path.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// The generator's own oracle checks, one per modality and one for all three; None where the
/// videos chosen lack a split or a class.
#[derive(Debug, Clone)]
pub struct Checks {
    pub keypoints: Option<SignalCheck>,
    pub image: Option<SignalCheck>,
    pub text: Option<SignalCheck>,
    pub combined: Option<SignalCheck>,
}

/// One line per planted signal, on what the generator's own oracle reads back from what it
/// wrote, for people to read.
pub fn describe_checks(checks: &Checks) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(c) = &checks.keypoints {
        lines.push(format!(
            "planted keypoint signal (SYNTHETIC): Lose players sit slumped, head lower by {:.2} \
             shoulder half-widths on average; a one-number rule (median head height, threshold \
             fitted on {} training videos) reaches {:.2} accuracy on the {} test videos",
            signal::LOSE_SLUMP,
            c.train_videos,
            c.test_accuracy,
            c.test_videos
        ));
    }
    if let Some(c) = &checks.image {
        lines.push(format!(
            "planted image signal (SYNTHETIC): the outcome shifts a video's image vectors by \
             +/-{:.2} along one direction (spread {:.2} within a class, half of it shared with the \
             transcript); the oracle (mean projection on that direction, threshold fitted on \
             train) reaches {:.2} on the {} test videos",
            media::IMAGE_SHIFT,
            media::IMAGE_SPREAD,
            c.test_accuracy,
            c.test_videos
        ));
    }
    if let Some(c) = &checks.text {
        lines.push(format!(
            "planted text signal (SYNTHETIC): interviewees of won (lost) matches say more upbeat \
             (downbeat) sentences, and the transcript vector moves {:.2} per sentence of tone \
             along one direction (spread {:.2}); the oracle (projection on that direction) \
             reaches {:.2} on the {} test videos",
            media::TEXT_PER_TONE,
            media::TEXT_SPREAD,
            c.test_accuracy,
            c.test_videos
        ));
    }
    if let Some(c) = &checks.combined {
        lines.push(format!(
            "all three planted signals together (SYNTHETIC): the oracle's three scores, each \
             standardised on train and summed, reach {:.2} on the {} test videos",
            c.test_accuracy, c.test_videos
        ));
    }
    lines
}

fn readme(opts: &DemoOptions, plan: &plan::Plan) -> String {
    let count = |pred: fn(&plan::VideoPlan) -> bool| plan.videos.iter().filter(|v| pred(v)).count();
    format!(
        "SYNTHETIC DATA - NOT the real iMiGUE dataset.\n\
         \n\
         Generated by `xp demo` with seed {seed}, videos {videos}, frame_scale {scale}, \
         json_videos {json}.\n\
         {n} videos ({train} train, {test} test, {pool} pool; {win} Win, {lose} Lose); \
         the same options always give the same bytes.\n\
         \n\
         Video ids, the emotion train/test split and its Win/Lose balance follow the real \
         dataset (the 157 pool ids are a fixed stand-in: video 298 and the first 156 unlisted ids in 1..=453). \
         Subjects, clips and keypoints come from a generative model: do not report results \
         computed on this data as iMiGUE results.\n\
         \n\
         labels.csv                     iMiGUE label format, one row per micro-gesture clip\n\
         keypoints/<video>.csv          per-video OpenPose table (frame + 137 x (x, y, c))\n\
         openpose/<video>/              per-frame OpenPose JSON (a few videos)\n\
         crops/<video>/<frame>.jpg      64x64 person crops (renderings of the skeleton), every 16th frame\n\
         frames/<video>/<frame>.jpg     full frames (160x90) of the OpenPose JSON videos ...\n\
         boxes/<video>/<frame>.txt      ... and their person boxes, YOLO text format\n\
         embeddings/<video>.safetensors dinov2-base-sized (768) float16 vectors per crop + frame numbers\n\
         transcripts/<video>/           interviewer.srt and interviewee.srt (iMiGUE-speech layout)\n\
         text_embeddings/<video>.npy    bert-base-sized (768) vector per transcript\n\
         pseudo_labels.jsonl            simulated VLM labeler ({labeler}, right {acc:.0}% of the time) for the pool videos\n",
        seed = opts.seed,
        videos = opts
            .videos
            .map_or_else(|| "all".to_string(), |n| n.to_string()),
        scale = opts.frame_scale,
        json = opts.json_videos,
        labeler = media::LABELER,
        acc = media::LABELER_ACCURACY * 100.0,
        n = plan.videos.len(),
        train = count(|v| v.split == plan::Split::Train),
        test = count(|v| v.split == plan::Split::Test),
        pool = count(|v| v.split == plan::Split::Pool),
        win = count(|v| v.win),
        lose = count(|v| !v.win),
    )
}

fn write_table_video(
    seed: u64,
    v: &plan::VideoPlan,
    subject: &plan::Subject,
    header: &str,
    path: &Path,
    sink: &mut dyn FnMut(u32, &skeleton::FrameOut) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let mut r = skeleton::Renderer::new(seed, v, subject);
    let mut frame = skeleton::FrameOut::new();
    let file = std::fs::File::create(path)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    use std::io::Write;
    out.write_all(header.as_bytes())?;
    let mut buf = Vec::with_capacity(64 * 1024);
    for f in 0..v.frames {
        r.frame(f, &mut frame);
        sink(f, &frame)?;
        write::push_table_row(&mut buf, f, frame.present.then_some(&frame.player));
        if buf.len() > 48 * 1024 {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    out.write_all(&buf)?;
    out.flush()?;
    Ok(u64::from(v.frames))
}

fn write_json_video(
    seed: u64,
    v: &plan::VideoPlan,
    subject: &plan::Subject,
    dir: &Path,
    sink: &mut dyn FnMut(u32, &skeleton::FrameOut) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    std::fs::create_dir_all(dir)?;
    let mut r = skeleton::Renderer::new(seed, v, subject);
    let mut frame = skeleton::FrameOut::new();
    let mut buf = Vec::with_capacity(8 * 1024);
    let mut written = 0;
    for f in 0..v.frames {
        r.frame(f, &mut frame);
        sink(f, &frame)?;
        if frame.skip_file {
            continue;
        }
        buf.clear();
        let mut people: Vec<&skeleton::Person> = Vec::with_capacity(2);
        if frame.present {
            people.push(&frame.player);
        }
        if frame.has_second {
            people.push(&frame.second);
        }
        write::push_json_frame(&mut buf, &people);
        write::write_file(
            &dir.join(format!("{}_{:012}_keypoints.json", v.id, f)),
            &buf,
        )?;
        written += 1;
    }
    Ok(written)
}

#[cfg(test)]
mod tests;
