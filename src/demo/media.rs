//! The demo's other modalities, written in their real source formats: person crops (64x64
//! JPEG renderings of the synthetic skeleton, or full frames plus YOLO boxes for a few videos),
//! DINOv2-sized image embeddings (.safetensors), BERT-sized transcript embeddings (.npy),
//! interviewer / interviewee transcripts (iMiGUE-speech layout, SRT) and pseudo-labels from a
//! simulated VLM labeler (JSONL).
//!
//! The signal is planted on purpose (see `signal.rs` for what the generator's own oracle reads
//! back): embeddings vary mostly by subject, in a few directions (a subject's look, a
//! speaker's voice); the outcome moves each video's vector along one more direction, by a
//! modest amount drowned in per-video spread, part of which image and transcript share (the
//! same composure shows in both); transcripts also carry the outcome in their wording; the
//! labeler is right about `LABELER_ACCURACY` of the time. None of it is real data.

use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::plan::{FPS, Split, Subject, VideoPlan, rng_for};
use super::skeleton::{FrameOut, HEIGHT, Person, WIDTH};
use crate::ingest::images::encode_jpeg;
use crate::ingest::transcript_formats::{Segment, write_srt};

/// One crop (and one embedding) every this many frames.
pub(crate) const CROP_STRIDE: u32 = 16;
/// Side of a rendered crop, pixels.
const CROP_SIZE: u32 = 64;
/// Full frames (frames + detections path) are the 1280x720 shot scaled down by this.
const FRAME_SHRINK: f64 = 8.0;
pub(crate) const IMAGE_MODEL: &str = "dinov2-base";
pub(crate) const TEXT_MODEL: &str = "bert-base-uncased";
const DIM: usize = 768;
pub(crate) const LABELER: &str = "demo-vlm-cot";
pub(crate) const LABELER_ACCURACY: f64 = 0.75;

/// RNG streams of this module (see plan::mix).
const STREAM_EMBED_SUBJECT: u64 = 11;
const STREAM_EMBED_VIDEO: u64 = 12;
const STREAM_TEXT: u64 = 13;
const STREAM_LABELER: u64 = 14;
const STREAM_DIRECTION: u64 = 15;
const STREAM_COMPOSURE: u64 = 16;

/// Directions of between-subject variation in each embedding space, and the spread of a
/// subject's part per coordinate: together they hold most of a vector's length, as who is on
/// screen (or speaking) dominates real embeddings.
const SUBJECT_RANK: usize = 16;
const SUBJECT_SCALE: f64 = 0.15;
/// The outcome's shift of a video's image score (along the image label direction), and the
/// spread of that score between videos of one class.
pub(crate) const IMAGE_SHIFT: f64 = 1.0;
pub(crate) const IMAGE_SPREAD: f64 = 2.0;
/// Each unit of transcript tone (see `transcript`) shifts the text score by this much; the
/// text score's own spread between videos.
pub(crate) const TEXT_PER_TONE: f64 = 0.4;
pub(crate) const TEXT_SPREAD: f64 = 1.6;
/// Share of the variance of the image and text spreads that is one per-video draw (the
/// player's composure) common to both: the two are partly redundant.
const SHARED: f64 = 0.5;

/// Where a video's crops go.
pub(crate) enum CropMode {
    /// Ready-made crops: `crops/<video>/<frame>.jpg`.
    Ready(PathBuf),
    /// Full frames `frames/<video>/<frame>.jpg` and YOLO boxes `boxes/<video>/<frame>.txt`.
    Frames { frames: PathBuf, boxes: PathBuf },
}

fn gaussian(rng: &mut ChaCha8Rng, n: usize, sd: f64) -> Vec<f64> {
    (0..n)
        .map(|_| sd * rng.sample::<f64, _>(StandardNormal))
        .collect()
}

/// The subject directions of one embedding space (`which`: 0 image, 1 text): `SUBJECT_RANK`
/// fixed vectors with N(0, 1 / rank) coordinates, so a subject's part has about unit spread
/// per coordinate.
fn subject_basis(seed: u64, which: u64) -> Vec<Vec<f64>> {
    let mut rng = rng_for(seed, STREAM_DIRECTION, 10 + which);
    (0..SUBJECT_RANK)
        .map(|_| gaussian(&mut rng, DIM, 1.0 / (SUBJECT_RANK as f64).sqrt()))
        .collect()
}

/// The label direction of one embedding space: a fixed unit vector orthogonal to its subject
/// directions, so that who the player is never reads as how the match went.
pub(crate) fn label_direction(seed: u64, which: u64) -> Vec<f64> {
    let mut v = gaussian(&mut rng_for(seed, STREAM_DIRECTION, which), DIM, 1.0);
    // Gram-Schmidt against an orthonormal copy of the subject directions.
    let mut done: Vec<Vec<f64>> = Vec::new();
    for b in subject_basis(seed, which) {
        let mut b = b;
        for d in &done {
            let dot: f64 = b.iter().zip(d).map(|(x, y)| x * y).sum();
            b.iter_mut().zip(d).for_each(|(x, y)| *x -= dot * y);
        }
        let norm = b.iter().map(|x| x * x).sum::<f64>().sqrt();
        done.push(b.into_iter().map(|x| x / norm).collect());
    }
    for d in &done {
        let dot: f64 = v.iter().zip(d).map(|(x, y)| x * y).sum();
        v.iter_mut().zip(d).for_each(|(x, y)| *x -= dot * y);
    }
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

/// A subject's part of one embedding space: its `SUBJECT_RANK` draws times the directions,
/// scaled by `scale`.
fn subject_part(seed: u64, which: u64, subject: &Subject, scale: f64) -> Vec<f64> {
    let z = gaussian(
        &mut rng_for(seed, STREAM_EMBED_SUBJECT, 1000 * which + subject.id as u64),
        SUBJECT_RANK,
        scale,
    );
    let mut out = vec![0.0; DIM];
    for (zk, b) in z.iter().zip(subject_basis(seed, which)) {
        out.iter_mut().zip(&b).for_each(|(o, x)| *o += zk * x);
    }
    out
}

/// A video's spread along the image (`which` 0) or text (1) label direction, in units of the
/// modality's spread: a mix of the composure both share and the modality's own draw.
fn spread(seed: u64, v: &VideoPlan, which: u64) -> f64 {
    let mut shared = rng_for(seed, STREAM_COMPOSURE, u64::from(v.id));
    let c: f64 = shared.sample(StandardNormal);
    let mut own = rng_for(
        seed,
        STREAM_COMPOSURE,
        100_000 * (which + 1) + u64::from(v.id),
    );
    let e: f64 = own.sample(StandardNormal);
    SHARED.sqrt() * c + (1.0 - SHARED).sqrt() * e
}

fn subject_color(subject: &Subject) -> Rgb<u8> {
    let h = (subject.id as u32).wrapping_mul(2_654_435_761);
    Rgb([
        60 + (h & 0x7f) as u8,
        60 + ((h >> 8) & 0x7f) as u8,
        60 + ((h >> 16) & 0x7f) as u8,
    ])
}

fn draw_line(img: &mut RgbImage, a: (f64, f64), b: (f64, f64), color: Rgb<u8>) {
    let steps = ((b.0 - a.0).abs().max((b.1 - a.1).abs()).ceil() as usize).max(1);
    for i in 0..=steps {
        let t = i as f64 / steps as f64;
        let x = (a.0 + (b.0 - a.0) * t).round();
        let y = (a.1 + (b.1 - a.1) * t).round();
        if x >= 0.0 && y >= 0.0 && (x as u32) < img.width() && (y as u32) < img.height() {
            img.put_pixel(x as u32, y as u32, color);
        }
    }
}

/// Draws a person's bones, mapping image coordinates through `map`.
fn draw_person(img: &mut RgbImage, p: &Person, map: &dyn Fn(f64, f64) -> (f64, f64)) {
    for (a, b) in crate::model::graph::edges() {
        let (pa, pb) = (p[a], p[b]);
        if pa[2] > 0.0 && pb[2] > 0.0 {
            let color = match a {
                0..25 => Rgb([235, 235, 235]),
                25..95 => Rgb([250, 200, 160]),
                _ => Rgb([120, 220, 250]),
            };
            draw_line(img, map(pa[0], pa[1]), map(pb[0], pb[1]), color);
        }
    }
}

/// The bounding box (x0, y0, x1, y1) of a person's detected points, in 1280x720 pixels.
fn person_box(p: &Person) -> Option<(f64, f64, f64, f64)> {
    let pts: Vec<&[f64; 3]> = p.iter().filter(|q| q[2] > 0.0).collect();
    if pts.len() < 2 {
        return None;
    }
    let x0 = pts.iter().map(|q| q[0]).fold(f64::MAX, f64::min).max(0.0);
    let y0 = pts.iter().map(|q| q[1]).fold(f64::MAX, f64::min).max(0.0);
    let x1 = pts.iter().map(|q| q[0]).fold(f64::MIN, f64::max).min(WIDTH);
    let y1 = pts
        .iter()
        .map(|q| q[1])
        .fold(f64::MIN, f64::max)
        .min(HEIGHT);
    (x1 - x0 > 1.0 && y1 - y0 > 1.0).then_some((x0, y0, x1, y1))
}

/// A 64x64 rendering of the player, centred on their box.
fn render_crop(p: &Person, background: Rgb<u8>) -> Option<RgbImage> {
    let (x0, y0, x1, y1) = person_box(p)?;
    let side = (x1 - x0).max(y1 - y0) * 1.1;
    let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
    let scale = CROP_SIZE as f64 / side;
    let mut img = RgbImage::from_pixel(CROP_SIZE, CROP_SIZE, background);
    let half = CROP_SIZE as f64 / 2.0;
    draw_person(&mut img, p, &|x, y| {
        ((x - cx) * scale + half, (y - cy) * scale + half)
    });
    Some(img)
}

/// Writes one video's crops and collects its embeddings as the skeleton is rendered.
pub(crate) struct MediaWriter {
    video_id: u32,
    mode: CropMode,
    background: Rgb<u8>,
    /// Subject + label + video part of every embedding of this video.
    base: Vec<f64>,
    /// The image label direction, and the sum of the written vectors' projections on it.
    direction: Vec<f64>,
    projection_sum: f64,
    rng: ChaCha8Rng,
    frames: Vec<i64>,
    vectors: Vec<f32>,
}

impl MediaWriter {
    pub(crate) fn new(seed: u64, v: &VideoPlan, subject: &Subject, mode: CropMode) -> Self {
        let look = subject_part(seed, 0, subject, SUBJECT_SCALE);
        let mut rng = rng_for(seed, STREAM_EMBED_VIDEO, u64::from(v.id));
        let video_part = gaussian(&mut rng, DIM, 0.1);
        let direction = label_direction(seed, 0);
        let sign = if v.win { 1.0 } else { -1.0 };
        let score = IMAGE_SHIFT * sign + IMAGE_SPREAD * spread(seed, v, 0);
        let base = (0..DIM)
            .map(|i| look[i] + video_part[i] + score * direction[i])
            .collect();
        MediaWriter {
            video_id: v.id,
            mode,
            background: subject_color(subject),
            base,
            direction,
            projection_sum: 0.0,
            rng,
            frames: Vec::new(),
            vectors: Vec::new(),
        }
    }

    /// Called for every frame in order; acts on every `CROP_STRIDE`-th.
    pub(crate) fn on_frame(&mut self, f: u32, out: &FrameOut) -> anyhow::Result<()> {
        if !f.is_multiple_of(CROP_STRIDE) {
            return Ok(());
        }
        let player = out.present.then_some(&out.player);
        match &self.mode {
            CropMode::Ready(dir) => {
                let Some(img) = player.and_then(|p| render_crop(p, self.background)) else {
                    return Ok(());
                };
                super::write::write_file(&dir.join(format!("{f:06}.jpg")), &encode_jpeg(&img, 90))?;
            }
            CropMode::Frames { frames, boxes } => {
                let (w, h) = (
                    (WIDTH / FRAME_SHRINK) as u32,
                    (HEIGHT / FRAME_SHRINK) as u32,
                );
                let mut img = RgbImage::from_pixel(w, h, self.background);
                let shrink = |x: f64, y: f64| (x / FRAME_SHRINK, y / FRAME_SHRINK);
                let mut lines = Vec::new();
                let mut people: Vec<(&Person, f32)> = Vec::new();
                if let Some(p) = player {
                    people.push((p, 0.91));
                }
                if out.has_second {
                    people.push((&out.second, 0.55));
                }
                for (p, conf) in people {
                    draw_person(&mut img, p, &shrink);
                    if let Some((x0, y0, x1, y1)) = person_box(p) {
                        let b = [
                            ((x0 + x1) / 2.0 / WIDTH) as f32,
                            ((y0 + y1) / 2.0 / HEIGHT) as f32,
                            ((x1 - x0) / WIDTH) as f32,
                            ((y1 - y0) / HEIGHT) as f32,
                        ];
                        lines.push((0i64, b, Some(conf)));
                    }
                }
                super::write::write_file(
                    &frames.join(format!("{f:06}.jpg")),
                    &encode_jpeg(&img, 85),
                )?;
                if !lines.is_empty() {
                    let text = crate::ingest::boxes::write_yolo(&lines);
                    super::write::write_file(&boxes.join(format!("{f:06}.txt")), text.as_bytes())?;
                }
                if player.is_none() {
                    return Ok(());
                }
            }
        }
        // An embedding per crop: the video's base plus frame noise.
        let noise = gaussian(&mut self.rng, DIM, 0.3);
        self.frames.push(i64::from(f));
        let start = self.vectors.len();
        self.vectors
            .extend(self.base.iter().zip(&noise).map(|(b, n)| (b + n) as f32));
        // What the oracle reads: the vector as stored (float16).
        self.projection_sum += self.vectors[start..]
            .iter()
            .zip(&self.direction)
            .map(|(x, d)| f64::from(half::f16::from_f32(*x).to_f32()) * d)
            .sum::<f64>();
        Ok(())
    }

    /// Writes the video's embeddings: `<video>.safetensors` with the vectors (float16) and the
    /// frame of each. Returns the file and the oracle's image score (the mean projection of
    /// the stored vectors on the label direction).
    pub(crate) fn finish(self, embeddings_dir: &Path) -> anyhow::Result<Option<(PathBuf, f64)>> {
        if self.frames.is_empty() {
            return Ok(None);
        }
        let score = self.projection_sum / self.frames.len() as f64;
        use crate::ingest::safetensors_file::{TensorData, write};
        let name = self.video_id.to_string();
        let frames_name = format!("{name}.frames");
        let path = embeddings_dir.join(format!("{name}.safetensors"));
        write(
            &path,
            &[
                (
                    &name,
                    &[self.frames.len(), DIM],
                    TensorData::F16(&self.vectors),
                ),
                (
                    &frames_name,
                    &[self.frames.len()],
                    TensorData::I64(&self.frames),
                ),
            ],
            None,
        )?;
        Ok(Some((path, score)))
    }
}

const QUESTIONS: &[&str] = &[
    "How do you feel about the match today?",
    "What was the key moment in the second set?",
    "How did the conditions affect your game?",
    "What did you think of your opponent's serve?",
    "Can you talk us through the tie-break?",
    "How is your body feeling after that one?",
    "What are your plans for the next few days?",
    "Were you surprised by the level of your opponent?",
];
const NEUTRAL: &[&str] = &[
    "It was a tough match from the beginning.",
    "The conditions were quite windy out there.",
    "I tried to stay focused on my own game.",
    "She served really well in the important moments.",
    "We will see how the body recovers.",
    "I have to talk with my team about the next days.",
    "The crowd was great today.",
    "There were a lot of long rallies.",
];
const WIN: &[&str] = &[
    "I'm really happy with how I handled the pressure.",
    "I think I played some of my best tennis today.",
    "It feels great to be through to the next round.",
    "I'm proud of the way I fought back.",
];
const LOSE: &[&str] = &[
    "It's disappointing, I had my chances.",
    "I couldn't find my rhythm on the return.",
    "It hurts right now, but I'll learn from it.",
    "I made too many unforced errors at the end.",
];

/// One video's interview: alternating questions and answers, the answers carrying the outcome
/// in some of their sentences (and sometimes the opposite one).
pub(crate) fn transcript(seed: u64, v: &VideoPlan) -> (Vec<Segment>, Vec<Segment>, f64) {
    let mut rng = rng_for(seed, STREAM_TEXT, u64::from(v.id));
    let duration = f64::from(v.frames) / FPS;
    let turns = 3 + (rng.random::<f64>() * 5.0) as usize;
    let slot = duration / turns as f64;
    let (mut interviewer, mut interviewee) = (Vec::new(), Vec::new());
    let mut tone = 0.0;
    for t in 0..turns {
        let start = (t as f64 * slot * 1000.0).round() / 1000.0;
        let mid = ((t as f64 + 0.35) * slot * 1000.0).round() / 1000.0;
        let end = ((t as f64 + 0.95) * slot * 1000.0).round() / 1000.0;
        interviewer.push(Segment {
            start_s: Some(start),
            end_s: Some(mid),
            speaker: None,
            text: QUESTIONS[rng.random_range(0..QUESTIONS.len())].to_string(),
        });
        let mut answer = Vec::new();
        for _ in 0..rng.random_range(1..=3) {
            let r: f64 = rng.random();
            let (pool, sign) = if r < 0.30 {
                (if v.win { WIN } else { LOSE }, 1.0)
            } else if r < 0.40 {
                (if v.win { LOSE } else { WIN }, -1.0)
            } else {
                (NEUTRAL, 0.0)
            };
            tone += sign * if v.win { 1.0 } else { -1.0 };
            answer.push(pool[rng.random_range(0..pool.len())]);
        }
        interviewee.push(Segment {
            start_s: Some(mid),
            end_s: Some(end),
            speaker: None,
            text: answer.join(" "),
        });
    }
    (interviewer, interviewee, tone)
}

/// Writes `transcripts/<video>/interviewer.srt` and `interviewee.srt`; returns the tone (how
/// much of the outcome the wording carries) for the text embedding.
pub(crate) fn write_transcript(seed: u64, v: &VideoPlan, dir: &Path) -> anyhow::Result<f64> {
    let (asker, player, tone) = transcript(seed, v);
    let folder = dir.join(v.id.to_string());
    std::fs::create_dir_all(&folder)?;
    super::write::write_file(
        &folder.join("interviewer.srt"),
        write_srt(&asker).as_bytes(),
    )?;
    super::write::write_file(
        &folder.join("interviewee.srt"),
        write_srt(&player).as_bytes(),
    )?;
    Ok(tone)
}

/// Writes `text_embeddings/<video>.npy`: one BERT-sized vector per transcript. Returns the
/// file and the oracle's text score (the stored vector's projection on the label direction).
pub(crate) fn write_text_embedding(
    seed: u64,
    v: &VideoPlan,
    subject: &Subject,
    tone: f64,
    dir: &Path,
) -> anyhow::Result<(PathBuf, f64)> {
    let mut rng = rng_for(seed, STREAM_TEXT, 10_000 + u64::from(v.id));
    let voice = subject_part(seed, 1, subject, SUBJECT_SCALE);
    let direction = label_direction(seed, 1);
    let noise = gaussian(&mut rng, DIM, 0.05);
    let score = TEXT_PER_TONE * tone.clamp(-3.0, 3.0) + TEXT_SPREAD * spread(seed, v, 1);
    let values: Vec<f32> = (0..DIM)
        .map(|i| (voice[i] + score * direction[i] + noise[i]) as f32)
        .collect();
    let read_back: f64 = values
        .iter()
        .zip(&direction)
        .map(|(x, d)| f64::from(*x) * d)
        .sum();
    let path = dir.join(format!("{}.npy", v.id));
    crate::ingest::npy::write_f32(&path, &[DIM], &values)?;
    Ok((path, read_back))
}

const PROMPT: &str = "You are shown frames from a tennis player's post-match press conference. \
    Think step by step about their body language (posture, hand-to-face gestures, fidgeting, \
    smiles) and decide whether they won or lost the match. Then reflect: critique your answer \
    and revise it if needed. Answer with JSON {\"label\": \"win\" | \"lose\", \"confidence\": 0-1}.";

/// One JSONL line per pool video from a simulated chain-of-thought labeler that is right
/// `LABELER_ACCURACY` of the time.
pub(crate) fn pseudo_label_lines(seed: u64, videos: &[VideoPlan]) -> String {
    let mut out = String::new();
    for v in videos.iter().filter(|v| v.split == Split::Pool) {
        let mut rng = rng_for(seed, STREAM_LABELER, u64::from(v.id));
        let correct = rng.random::<f64>() < LABELER_ACCURACY;
        let says_win = v.win == correct;
        let label = if says_win { "win" } else { "lose" };
        let confidence = if correct {
            0.6 + 0.35 * rng.random::<f64>()
        } else {
            0.5 + 0.3 * rng.random::<f64>()
        };
        let confidence = (confidence * 100.0).round() / 100.0;
        let (cue, other) = if says_win {
            (
                "relaxed, open posture and frequent smiles",
                "a few hand-to-face touches",
            )
        } else {
            (
                "closed posture, crossed arms and repeated face touching",
                "some polite smiles",
            )
        };
        let reasoning = format!(
            "Step 1: the player shows {cue}. Step 2: there are also {other}, which can mean \
             nervousness either way. Step 3: overall the body language points to a {}.",
            if says_win { "win" } else { "loss" }
        );
        let revised = rng.random::<f64>() < 0.2;
        let reflection = if revised {
            format!(
                "I weighed the {other} too little at first; after reconsidering I still answer {label}, with lower confidence."
            )
        } else {
            format!("Checking my reasoning again, the main cues are consistent; I keep {label}.")
        };
        let raw = format!("{{\"label\": \"{label}\", \"confidence\": {confidence}}}");
        let line = serde_json::json!({
            "video_id": v.id,
            "label": label,
            "confidence": confidence,
            "reasoning": reasoning,
            "reflection": reflection,
            "prompt": PROMPT,
            "raw_response": raw,
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::DemoOptions;
    use crate::demo::plan::plan;

    fn cosine(a: &[f64], b: &[f64]) -> f64 {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        dot / (norm(a) * norm(b))
    }

    #[test]
    fn labeler_is_right_about_three_quarters_of_the_time() {
        let p = plan(&DemoOptions::default());
        let lines = pseudo_label_lines(0, &p.videos);
        let win: std::collections::HashMap<u32, bool> =
            p.videos.iter().map(|v| (v.id, v.win)).collect();
        let (mut n, mut right) = (0, 0);
        for line in lines.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let id = v["video_id"].as_u64().unwrap() as u32;
            n += 1;
            right += usize::from((v["label"] == "win") == win[&id]);
            assert!(v["reasoning"].as_str().unwrap().contains("Step 1"));
        }
        assert_eq!(n, 157, "one line per pool video");
        let acc = right as f64 / n as f64;
        assert!((0.65..0.85).contains(&acc), "accuracy {acc}");
    }

    #[test]
    fn transcripts_carry_some_but_not_all_of_the_outcome() {
        let p = plan(&DemoOptions::default());
        let tones: Vec<(bool, f64)> = p
            .videos
            .iter()
            .map(|v| (v.win, transcript(0, v).2))
            .collect();
        // `tone` is signed towards win; a positive tone in a lost match is the "not all".
        let mean = |w: bool| {
            let t: Vec<f64> = tones.iter().filter(|x| x.0 == w).map(|x| x.1).collect();
            t.iter().sum::<f64>() / t.len() as f64
        };
        assert!(
            mean(true) > 0.5 && mean(false) < -0.5,
            "{} {}",
            mean(true),
            mean(false)
        );
        let misleading = tones
            .iter()
            .filter(|(w, t)| (*t > 0.0) != *w && *t != 0.0)
            .count();
        assert!(
            misleading > 10,
            "some transcripts point the wrong way: {misleading}"
        );
    }

    #[test]
    fn embeddings_cluster_by_subject_far_more_than_by_label() {
        let p = plan(&DemoOptions::default());
        // The first 160 videos' base vectors, computed once each.
        let bases: Vec<Vec<f64>> = p
            .videos
            .iter()
            .take(160)
            .map(|v| {
                let s = &p.subjects[v.subject - 1];
                MediaWriter::new(0, v, s, CropMode::Ready(PathBuf::new())).base
            })
            .collect();
        let (mut same_subject, mut same_label) = (Vec::new(), Vec::new());
        for (i, a) in p.videos.iter().enumerate().take(120) {
            for (j, b) in p.videos.iter().enumerate().skip(i + 1).take(40) {
                let c = cosine(&bases[i], &bases[j]);
                if a.subject == b.subject {
                    same_subject.push(c);
                } else if a.win == b.win {
                    same_label.push(c);
                }
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        assert!(!same_subject.is_empty());
        assert!(mean(&same_subject) > 0.5, "{}", mean(&same_subject));
        assert!(mean(&same_label).abs() < 0.1, "{}", mean(&same_label));
    }

    #[test]
    fn the_label_direction_is_a_unit_vector_apart_from_every_subject_direction() {
        for which in [0, 1] {
            let u = label_direction(7, which);
            let norm: f64 = u.iter().map(|x| x * x).sum::<f64>().sqrt();
            assert!((norm - 1.0).abs() < 1e-9, "{norm}");
            for b in subject_basis(7, which) {
                let dot: f64 = u.iter().zip(&b).map(|(x, y)| x * y).sum();
                assert!(dot.abs() < 1e-9, "space {which}: {dot}");
            }
        }
    }
}
