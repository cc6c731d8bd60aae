//! The label signal the demo plants in the keypoints, and the generator's own check of how
//! much of it a simple rule can read back.
//!
//! What is planted: a Lose player sits a little slumped, the head lower relative to the
//! shoulders. Each video draws its slump (in shoulder half-widths) from N(0.16, 0.02) when
//! lost and N(0, 0.02) when won, on top of everything else that moves the head (build, posture
//! changes, nods, head gestures), so no single frame and no single video is a sure sign.
//!
//! The check (`SignalCheck`) measures, per video, the median over frames of the head's height
//! above the neck divided by the shoulder width, straight from the rendered keypoints; takes
//! as threshold the midpoint of the two classes' means on the protocol's training videos; and
//! reports the accuracy of "lower than the threshold = Lose" on its test videos. It stands for
//! what the demo's keypoints allow a model to reach: a model that learns the sign should come
//! near it, one that reaches far above it has found a leak.

use rand_distr::{Distribution, Normal};

use super::plan::{Split, VideoPlan, rng_for};
use super::skeleton::{FrameOut, Person};

/// The random stream of the planted signal (apart from every other stream).
pub(crate) const STREAM_SIGNAL: u64 = 6;
/// Mean slump of a Lose video, in shoulder half-widths.
pub(crate) const LOSE_SLUMP: f64 = 0.16;
/// Spread of the slump between videos of one class.
pub(crate) const SLUMP_SD: f64 = 0.02;

/// The planted slump of one video, in shoulder half-widths (positive = head lower).
pub(crate) fn slump(seed: u64, video: &VideoPlan) -> f64 {
    let mean = if video.win { 0.0 } else { LOSE_SLUMP };
    let mut rng = rng_for(seed, STREAM_SIGNAL, u64::from(video.id));
    Normal::new(mean, SLUMP_SD).unwrap().sample(&mut rng)
}

const NOSE: usize = 0;
const NECK: usize = 1;
const R_SHOULDER: usize = 2;
const L_SHOULDER: usize = 5;

/// Collects one video's head heights, frame by frame, from what the detector reports.
#[derive(Debug, Default)]
pub(crate) struct HeadHeights {
    values: Vec<f64>,
}

impl HeadHeights {
    pub(crate) fn on_frame(&mut self, frame: &FrameOut) {
        if !frame.present {
            return;
        }
        let p: &Person = &frame.player;
        let seen = |i: usize| p[i][2] > 0.0;
        if !(seen(NOSE) && seen(NECK) && seen(R_SHOULDER) && seen(L_SHOULDER)) {
            return;
        }
        let width = ((p[L_SHOULDER][0] - p[R_SHOULDER][0]).powi(2)
            + (p[L_SHOULDER][1] - p[R_SHOULDER][1]).powi(2))
        .sqrt();
        if width > 1.0 {
            self.values.push((p[NECK][1] - p[NOSE][1]) / width);
        }
    }

    /// The median head height, or None when no frame showed the head and shoulders.
    pub(crate) fn median(mut self) -> Option<f64> {
        if self.values.is_empty() {
            return None;
        }
        self.values.sort_by(f64::total_cmp);
        Some(self.values[self.values.len() / 2])
    }
}

/// What the generator's own check found.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalCheck {
    /// Test videos the rule classified (those with a measured head height).
    pub test_videos: usize,
    /// Accuracy of the rule on them.
    pub test_accuracy: f64,
    /// Training videos the threshold came from.
    pub train_videos: usize,
}

/// The one-number rule of the module comment for any score that is higher for Win, fitted on
/// `Train` and scored on `Test`.
/// `videos`: (split, won, median head height). None when a split lacks a class.
pub(crate) fn check(videos: &[(Split, bool, f64)]) -> Option<SignalCheck> {
    let mean = |win: bool| -> Option<f64> {
        let v: Vec<f64> = videos
            .iter()
            .filter(|(s, w, _)| *s == Split::Train && *w == win)
            .map(|(_, _, h)| *h)
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let threshold = (mean(true)? + mean(false)?) / 2.0;
    let test: Vec<&(Split, bool, f64)> = videos
        .iter()
        .filter(|(s, _, _)| *s == Split::Test)
        .collect();
    if test.is_empty() {
        return None;
    }
    let right = test
        .iter()
        .filter(|(_, win, h)| (*h >= threshold) == *win)
        .count();
    Some(SignalCheck {
        test_videos: test.len(),
        test_accuracy: right as f64 / test.len() as f64,
        train_videos: videos.iter().filter(|(s, _, _)| *s == Split::Train).count(),
    })
}

/// The train-fitted threshold (midpoint of the class means) and the pooled within-class
/// standard deviation of one score.
fn fit(videos: &[(Split, bool, f64)]) -> Option<(f64, f64)> {
    let class = |win: bool| -> Vec<f64> {
        videos
            .iter()
            .filter(|(s, w, _)| *s == Split::Train && *w == win)
            .map(|(_, _, x)| *x)
            .collect()
    };
    let (a, b) = (class(true), class(false));
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (ma, mb) = (mean(&a), mean(&b));
    let ss: f64 = a.iter().map(|x| (x - ma).powi(2)).sum::<f64>()
        + b.iter().map(|x| (x - mb).powi(2)).sum::<f64>();
    let sd = (ss / (a.len() + b.len() - 2) as f64).sqrt();
    Some(((ma + mb) / 2.0, sd.max(f64::MIN_POSITIVE)))
}

/// The oracle over several scores: each standardised by its train fit, `(x - threshold) /
/// spread`, and summed (the best linear rule if the scores were independent with equal
/// spreads; they are partly redundant, so it is a fair, not an optimal, combination); Win when
/// the sum is at least 0. A video needs every score. `videos`: (split, won, scores).
pub(crate) fn check_combined(videos: &[(Split, bool, Vec<f64>)]) -> Option<SignalCheck> {
    let k = videos.first()?.2.len();
    let fits: Vec<(f64, f64)> = (0..k)
        .map(|i| {
            let one: Vec<(Split, bool, f64)> =
                videos.iter().map(|(s, w, x)| (*s, *w, x[i])).collect();
            fit(&one)
        })
        .collect::<Option<_>>()?;
    let combined: Vec<(Split, bool, f64)> = videos
        .iter()
        .map(|(s, w, x)| {
            let z: f64 = x.iter().zip(&fits).map(|(x, (t, sd))| (x - t) / sd).sum();
            (*s, *w, z)
        })
        .collect();
    let test: Vec<_> = combined.iter().filter(|v| v.0 == Split::Test).collect();
    if test.is_empty() {
        return None;
    }
    let right = test.iter().filter(|(_, w, z)| (*z >= 0.0) == *w).count();
    Some(SignalCheck {
        test_videos: test.len(),
        test_accuracy: right as f64 / test.len() as f64,
        train_videos: combined.iter().filter(|v| v.0 == Split::Train).count(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_is_fitted_on_train_and_scored_on_test() {
        // Train: Win heights 0.30, 0.32 (mean 0.31), Lose 0.26, 0.28 (mean 0.27): threshold 0.29.
        // Test: 0.295 win (right), 0.285 win (wrong), 0.25 lose (right), 0.31 lose (wrong).
        let v = [
            (Split::Train, true, 0.30),
            (Split::Train, true, 0.32),
            (Split::Train, false, 0.26),
            (Split::Train, false, 0.28),
            (Split::Pool, true, 0.0),
            (Split::Test, true, 0.295),
            (Split::Test, true, 0.285),
            (Split::Test, false, 0.25),
            (Split::Test, false, 0.31),
        ];
        let c = check(&v).unwrap();
        assert_eq!((c.test_videos, c.train_videos), (4, 4));
        assert_eq!(c.test_accuracy, 0.5);
        assert!(check(&v[4..]).is_none(), "no training videos");
    }

    #[test]
    fn the_combined_rule_adds_standardised_scores() {
        // Score a: Win train 1, 3 / Lose -1, -3: threshold 0, pooled sd sqrt(8 / 2) = 2.
        // Score b: Win 12, 14 / Lose 10, 8: threshold 11, pooled sd 2.
        // Test video (Win) a = -1, b = 14: z = -0.5 + 1.5 = 1 >= 0, called Win (right);
        // test video (Lose) a = 1, b = 10.5: z = 0.5 - 0.25 = 0.25, called Win (wrong).
        let v = vec![
            (Split::Train, true, vec![1.0, 12.0]),
            (Split::Train, true, vec![3.0, 14.0]),
            (Split::Train, false, vec![-1.0, 10.0]),
            (Split::Train, false, vec![-3.0, 8.0]),
            (Split::Test, true, vec![-1.0, 14.0]),
            (Split::Test, false, vec![1.0, 10.5]),
        ];
        let c = check_combined(&v).unwrap();
        assert_eq!((c.test_videos, c.train_videos), (2, 4));
        assert_eq!(c.test_accuracy, 0.5);
        // With b alone scored at the Lose video's 10.5 < 11 it would be right: the sum matters.
        let b_only: Vec<_> = v.iter().map(|(s, w, x)| (*s, *w, vec![x[1]])).collect();
        assert_eq!(check_combined(&b_only).unwrap().test_accuracy, 1.0);
    }
}
