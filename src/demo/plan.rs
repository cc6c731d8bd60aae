//! The dataset plan: which videos exist, their split, label and subject, their length and
//! their micro-gesture clips. Everything here is small and computed before any keypoint.
//!
//! Two kinds of randomness:
//! - *Dataset facts* (pool ids, Win/Lose of each video, subject of each video, subjects' gender
//!   and nationality) come from the fixed `FACTS_SEED`, so every demo dataset agrees on them
//!   like every copy of the real dataset does. Known real facts are pinned (videos 7, 46, 298).
//! - Everything else (subject habits and looks, video lengths, clips, keypoints) comes from the
//!   user's seed, with one RNG per video or subject so that a video's content does not depend on
//!   which other videos were selected, nor on thread scheduling.

use super::DemoOptions;
use super::classes::{CLASSES, TILT_FACTOR, Tilt};
use crate::protocol::IMIGUE_EMOTION;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Poisson};

/// Seed of the dataset facts; fixed so that ids, labels and subjects never depend on `--seed`.
const FACTS_SEED: u64 = 0x1A16_0E00_2021;
pub(crate) const N_VIDEOS: usize = 359;
pub(crate) const N_SUBJECTS: usize = 72;
const N_POOL: usize = 157;
/// The one pool video we know of.
const KNOWN_POOL: i32 = 298;
/// Most videos one subject has.
const MAX_PER_SUBJECT: usize = 15;
/// Subjects with videos in both the train and the test half of the emotion split (real: 39).
const SUBJECTS_IN_BOTH: usize = 39;
pub(crate) const FPS: f64 = 25.0;
/// Shortest generated video, whatever `frame_scale` is (room for 3 clips of 6 frames).
pub(crate) const MIN_FRAMES: u32 = 25;

/// Real facts we know from the label excerpt: (video, subject, female, nationality, win).
const KNOWN: [(u32, usize, bool, &str, bool); 3] = [
    (7, 23, false, "Bulgaria", true),
    (46, 43, false, "Spain", false),
    (298, 22, false, "United States", true),
];

/// Tennis nations with a rough weight (how many Grand Slam players they send).
const NATIONS: [(&str, f64); 30] = [
    ("United States", 8.0),
    ("Spain", 5.0),
    ("France", 5.0),
    ("Russia", 5.0),
    ("Germany", 4.0),
    ("Australia", 4.0),
    ("Czech Republic", 3.0),
    ("Italy", 3.0),
    ("Switzerland", 2.0),
    ("Serbia", 2.0),
    ("Argentina", 2.0),
    ("Great Britain", 2.0),
    ("Japan", 2.0),
    ("Canada", 2.0),
    ("Belarus", 2.0),
    ("Romania", 2.0),
    ("Croatia", 2.0),
    ("Poland", 1.5),
    ("Ukraine", 1.5),
    ("Bulgaria", 1.0),
    ("Belgium", 1.0),
    ("Denmark", 1.0),
    ("China", 1.0),
    ("Slovakia", 1.0),
    ("Kazakhstan", 1.0),
    ("Latvia", 1.0),
    ("Greece", 1.0),
    ("Austria", 1.0),
    ("Netherlands", 1.0),
    ("South Africa", 1.0),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Split {
    Train,
    Test,
    Pool,
}

#[derive(Debug, Clone)]
pub(crate) struct Subject {
    /// 1..=72.
    pub id: usize,
    pub female: bool,
    pub nationality: &'static str,
    /// Unnormalised preference over `CLASSES` (same order).
    pub class_pref: [f64; 32],
    /// How often this player gestures, relative to the dataset average.
    pub gesture_rate: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Clip {
    pub label_id: u32,
    pub start: u32,
    /// Inclusive last frame; `start < end < video frames`.
    pub end: u32,
    pub class: u8,
}

#[derive(Debug, Clone)]
pub(crate) struct VideoPlan {
    pub id: u32,
    pub split: Split,
    pub win: bool,
    /// Subject id, 1..=72.
    pub subject: usize,
    pub frames: u32,
    pub clips: Vec<Clip>,
}

#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Index = subject id - 1.
    pub subjects: Vec<Subject>,
    /// Selected videos, sorted by id.
    pub videos: Vec<VideoPlan>,
}

/// A 64-bit mix (splitmix64 finaliser): turns (seed, stream, id) into independent RNG seeds.
pub(crate) fn mix(seed: u64, stream: u64, id: u64) -> u64 {
    let mut z =
        seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ id.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// RNG streams (the `stream` argument of `mix`).
pub(crate) const STREAM_SELECT: u64 = 1;
pub(crate) const STREAM_VIDEO: u64 = 2;
pub(crate) const STREAM_SUBJECT: u64 = 3;
pub(crate) const STREAM_KEYPOINTS: u64 = 4;
pub(crate) const STREAM_LOOK: u64 = 5;

pub(crate) fn rng_for(seed: u64, stream: u64, id: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix(seed, stream, id))
}

/// The 157 pool ids: video 298 (known to be a real pool video) plus the first 156 ids of
/// 1..=453 that are in neither emotion split. The real pool ids are not published; this choice
/// is fixed.
pub(crate) fn pool_ids() -> Vec<u32> {
    let unlisted =
        |id: &i32| !IMIGUE_EMOTION.train.contains(id) && !IMIGUE_EMOTION.test.contains(id);
    let mut ids: Vec<u32> = (1..=453)
        .filter(|id| *id != KNOWN_POOL && unlisted(id))
        .take(N_POOL - 1)
        .map(|id| id as u32)
        .collect();
    ids.push(KNOWN_POOL as u32);
    ids.sort_unstable();
    ids
}

/// The fixed facts of one video.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VideoFacts {
    pub id: u32,
    pub split: Split,
    pub win: bool,
    pub subject: usize,
}

/// The fixed facts of all 359 videos (sorted by id) and of the 72 subjects (female, nation).
pub(crate) fn facts() -> (Vec<VideoFacts>, Vec<(bool, &'static str)>) {
    let mut rng = ChaCha8Rng::seed_from_u64(FACTS_SEED);
    let train: Vec<u32> = IMIGUE_EMOTION.train.iter().map(|&i| i as u32).collect();
    let test: Vec<u32> = IMIGUE_EMOTION.test.iter().map(|&i| i as u32).collect();
    let pool = pool_ids();

    // Labels: balanced train and test, pool all Win; the known videos keep their real label.
    let mut lose: Vec<u32> = KNOWN.iter().filter(|k| !k.4).map(|k| k.0).collect();
    for (ids, n_lose) in [(&train, train.len() / 2), (&test, test.len() / 2)] {
        let mut free: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|id| !KNOWN.iter().any(|k| k.0 == *id))
            .collect();
        free.shuffle(&mut rng);
        let pinned = ids.iter().filter(|id| lose.contains(id)).count();
        lose.extend(free.into_iter().take(n_lose - pinned));
    }

    // Subjects: gender (36/36) and nationality; the known subjects keep their real ones.
    let mut female = [false; N_SUBJECTS];
    let mut others: Vec<usize> = (1..=N_SUBJECTS)
        .filter(|s| !KNOWN.iter().any(|k| k.1 == *s))
        .collect();
    others.shuffle(&mut rng);
    for &s in others.iter().take(N_SUBJECTS / 2) {
        female[s - 1] = true;
    }
    let total: f64 = NATIONS.iter().map(|n| n.1).sum();
    let subjects: Vec<(bool, &'static str)> = (1..=N_SUBJECTS)
        .map(|s| {
            if let Some(k) = KNOWN.iter().find(|k| k.1 == s) {
                return (k.2, k.3);
            }
            let mut x = rng.random::<f64>() * total;
            let nation = NATIONS
                .iter()
                .find(|n| {
                    x -= n.1;
                    x < 0.0
                })
                .map_or(NATIONS[0].0, |n| n.0);
            (female[s - 1], nation)
        })
        .collect();

    // How many videos each subject has: 1 each, the rest spread by an uneven popularity.
    let popularity: Vec<f64> = (0..N_SUBJECTS)
        .map(|_| LogNormal::new(0.0, 0.9).unwrap().sample(&mut rng))
        .collect();
    let mut counts = vec![1usize; N_SUBJECTS];
    for _ in N_SUBJECTS..N_VIDEOS {
        let open: f64 = (0..N_SUBJECTS)
            .filter(|&s| counts[s] < MAX_PER_SUBJECT)
            .map(|s| popularity[s])
            .sum();
        let mut x = rng.random::<f64>() * open;
        let pick = (0..N_SUBJECTS)
            .filter(|&s| counts[s] < MAX_PER_SUBJECT)
            .find(|&s| {
                x -= popularity[s];
                x < 0.0
            })
            .unwrap_or_else(|| {
                (0..N_SUBJECTS)
                    .rfind(|&s| counts[s] < MAX_PER_SUBJECT)
                    .unwrap()
            });
        counts[pick] += 1;
    }

    // Which video belongs to whom: shuffle until as many subjects as in the real split appear in
    // both halves (a fixed, quick search; keeps the closest try if none matches exactly).
    let mut all: Vec<(u32, Split)> = train
        .iter()
        .map(|&i| (i, Split::Train))
        .chain(test.iter().map(|&i| (i, Split::Test)))
        .chain(pool.iter().map(|&i| (i, Split::Pool)))
        .collect();
    all.sort_unstable_by_key(|v| v.0);
    let free_videos: Vec<(u32, Split)> = all
        .iter()
        .copied()
        .filter(|v| !KNOWN.iter().any(|k| k.0 == v.0))
        .collect();
    let mut slots: Vec<usize> = Vec::with_capacity(N_VIDEOS);
    for s in 1..=N_SUBJECTS {
        let pinned = KNOWN.iter().filter(|k| k.1 == s).count();
        slots.extend(std::iter::repeat_n(
            s,
            counts[s - 1] - pinned.min(counts[s - 1]),
        ));
    }
    slots.truncate(free_videos.len());
    let mut best: Option<(usize, Vec<usize>)> = None;
    for _ in 0..2000 {
        slots.shuffle(&mut rng);
        let mut halves = [(false, false); N_SUBJECTS];
        for (v, &s) in free_videos.iter().zip(&slots) {
            match v.1 {
                Split::Train => halves[s - 1].0 = true,
                Split::Test => halves[s - 1].1 = true,
                Split::Pool => {}
            }
        }
        for k in KNOWN {
            match IMIGUE_EMOTION.split_of(k.0 as i32) {
                "train" => halves[k.1 - 1].0 = true,
                "test" => halves[k.1 - 1].1 = true,
                _ => {}
            }
        }
        let both = halves.iter().filter(|h| h.0 && h.1).count();
        let miss = both.abs_diff(SUBJECTS_IN_BOTH);
        if best.as_ref().is_none_or(|b| miss < b.0) {
            best = Some((miss, slots.clone()));
        }
        if miss == 0 {
            break;
        }
    }
    let slots = best.map(|b| b.1).unwrap_or(slots);
    let mut videos: Vec<VideoFacts> = free_videos
        .iter()
        .zip(&slots)
        .map(|(v, &s)| VideoFacts {
            id: v.0,
            split: v.1,
            win: !lose.contains(&v.0),
            subject: s,
        })
        .collect();
    for k in KNOWN {
        let split = match IMIGUE_EMOTION.split_of(k.0 as i32) {
            "train" => Split::Train,
            "test" => Split::Test,
            _ => Split::Pool,
        };
        videos.push(VideoFacts {
            id: k.0,
            split,
            win: k.4,
            subject: k.1,
        });
    }
    videos.sort_unstable_by_key(|v| v.id);
    (videos, subjects)
}

/// Which videos to generate: all, or `n` of them keeping the train/test/pool proportions
/// (largest-remainder rounding), chosen from the seed. Sorted by id.
fn select(all: &[VideoFacts], n: Option<usize>, seed: u64) -> Vec<VideoFacts> {
    let n = n.unwrap_or(all.len()).min(all.len());
    if n == all.len() {
        return all.to_vec();
    }
    let splits = [Split::Train, Split::Test, Split::Pool];
    let groups: Vec<Vec<VideoFacts>> = splits
        .iter()
        .map(|s| all.iter().copied().filter(|v| v.split == *s).collect())
        .collect();
    let exact: Vec<f64> = groups
        .iter()
        .map(|g| n as f64 * g.len() as f64 / all.len() as f64)
        .collect();
    let mut quota: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
    let mut order: Vec<usize> = (0..3).collect();
    order.sort_by(|&a, &b| {
        let fa = exact[a] - exact[a].floor();
        let fb = exact[b] - exact[b].floor();
        fb.total_cmp(&fa).then(a.cmp(&b))
    });
    let mut left = n - quota.iter().sum::<usize>();
    for &i in order.iter().cycle() {
        if left == 0 {
            break;
        }
        if quota[i] < groups[i].len() {
            quota[i] += 1;
            left -= 1;
        }
    }
    let mut out = Vec::with_capacity(n);
    for (i, mut g) in groups.into_iter().enumerate() {
        g.shuffle(&mut rng_for(seed, STREAM_SELECT, i as u64));
        out.extend(g.into_iter().take(quota[i]));
    }
    out.sort_unstable_by_key(|v| v.id);
    out
}

/// One subject's habits, from the user's seed.
fn subject(seed: u64, id: usize, female: bool, nationality: &'static str) -> Subject {
    let mut rng = rng_for(seed, STREAM_SUBJECT, id as u64);
    // A wide per-subject spread (sigma 1.1) against a 1.25x label tilt: habits dominate.
    let spread = LogNormal::new(0.0, 1.1).unwrap();
    let mut class_pref = [0.0; 32];
    for (p, c) in class_pref.iter_mut().zip(CLASSES.iter()) {
        *p = c.weight * spread.sample(&mut rng);
    }
    Subject {
        id,
        female,
        nationality,
        class_pref,
        gesture_rate: LogNormal::new(0.0, 0.35).unwrap().sample(&mut rng),
    }
}

/// Clip length in frames: lognormal around the real median (40), with a rare long tail.
fn clip_len(rng: &mut ChaCha8Rng) -> u32 {
    let len = if rng.random_bool(0.03) {
        LogNormal::new(150f64.ln(), 1.0).unwrap().sample(rng)
    } else {
        LogNormal::new(40f64.ln(), 0.7).unwrap().sample(rng)
    };
    len.round().clamp(6.0, 3693.0) as u32
}

/// Length, clips and classes of one video.
fn video(seed: u64, facts: &VideoFacts, subject: &Subject, frame_scale: f64) -> VideoPlan {
    let mut rng = rng_for(seed, STREAM_VIDEO, u64::from(facts.id));
    // Natural length: lognormal with the real median (~7,000) and mean (~8,400).
    let natural = LogNormal::new(7000f64.ln(), 0.6)
        .unwrap()
        .sample(&mut rng)
        .clamp(1200.0, 35500.0);
    let frames = ((natural * frame_scale).round() as u32).max(MIN_FRAMES);

    // Clip count proportional to length (real: median 39 per ~7,000 frames), at least 3.
    let lose_rate = if facts.win { 1.0 } else { 1.06 };
    let video_rate = LogNormal::new(0.0, 0.4).unwrap().sample(&mut rng);
    let expected =
        f64::from(frames) * 39.0 / 7000.0 * subject.gesture_rate * video_rate * lose_rate;
    let n = Poisson::new(expected.max(1e-3)).unwrap().sample(&mut rng) as usize;
    let n = n.clamp(3, 282);

    // Class weights: the subject's habits, tilted weakly by the label.
    let weights: Vec<f64> = CLASSES
        .iter()
        .zip(subject.class_pref.iter())
        .map(|(c, &p)| match (c.tilt, facts.win) {
            (Tilt::Lose, false) | (Tilt::Win, true) => p * TILT_FACTOR,
            _ => p,
        })
        .collect();
    let total: f64 = weights.iter().sum();

    let mut clips: Vec<Clip> = (0..n)
        .map(|_| {
            // At most half the video: a scaled-down video keeps real-length clips.
            let len = clip_len(&mut rng).min((frames / 2).max(6));
            let start = rng.random_range(0..frames - len);
            let mut x = rng.random::<f64>() * total;
            let class = CLASSES
                .iter()
                .zip(&weights)
                .find(|(_, w)| {
                    x -= **w;
                    x < 0.0
                })
                .map_or(99, |(c, _)| c.id);
            Clip {
                label_id: 0,
                start,
                end: start + len,
                class,
            }
        })
        .collect();
    clips.sort_unstable_by_key(|c| (c.start, c.end));
    // Mostly sequential: most overlaps are pushed after the previous clip when there is room.
    for i in 1..clips.len() {
        let prev_end = clips[i - 1].end;
        let c = &mut clips[i];
        if c.start <= prev_end && rng.random_bool(0.85) {
            let len = c.end - c.start;
            let start = prev_end + rng.random_range(1..=4);
            if start + len < frames {
                c.start = start;
                c.end = start + len;
            }
        }
    }
    clips.sort_unstable_by_key(|c| (c.start, c.end));
    for (i, c) in clips.iter_mut().enumerate() {
        c.label_id = i as u32 + 1;
    }
    VideoPlan {
        id: facts.id,
        split: facts.split,
        win: facts.win,
        subject: facts.subject,
        frames,
        clips,
    }
}

/// The whole plan for these options.
pub(crate) fn plan(opts: &DemoOptions) -> Plan {
    let (all, subject_facts) = facts();
    let subjects: Vec<Subject> = subject_facts
        .iter()
        .enumerate()
        .map(|(i, &(female, nation))| subject(opts.seed, i + 1, female, nation))
        .collect();
    let videos = select(&all, opts.videos, opts.seed)
        .iter()
        .map(|f| video(opts.seed, f, &subjects[f.subject - 1], opts.frame_scale))
        .collect();
    Plan { subjects, videos }
}
