//! Binary classification metrics for the win/lose task.
//!
//! Class 1 is *win* (the positive class), class 0 is *lose*. Every metric is computed from
//! integer counts (the confusion matrix, or integer rank sums for the ROC AUC) and divided
//! once at the end, so results are exact up to that final division and do not depend on the
//! order of the inputs.
//!
//! Conventions (the same as scikit-learn with `labels=[0, 1]` and `zero_division=0`):
//! - A label is *win* when it is non-zero, *lose* when it is 0.
//! - Precision, recall and F1 of a class whose denominator is zero (for F1: a class with no
//!   examples and no predictions, `2·tp + fp + fn = 0`) are 0, not NaN.
//! - Macro F1 and UAR always average over **both** classes, even when one of them is absent
//!   from the labels, so with a single-class label set both are at most 0.5.
//!   (scikit-learn's `balanced_accuracy_score` instead drops absent classes.)
//! - The ROC AUC is NaN when either class is absent, since it is undefined.
//! - Empty input gives `n = 0`, an all-zero confusion matrix and NaN for every metric; it
//!   never panics.
//! - A NaN probability is never `>= threshold`, so it predicts *lose*. For the AUC, scores
//!   are ordered by [`f32::total_cmp`] (with `-0.0` taken as `0.0`), so NaNs rank above `+∞`.

use serde::{Deserialize, Serialize};

/// The metric names [`Metrics::get`] knows, in display order.
pub const METRIC_NAMES: [&str; 4] = ["accuracy", "macro_f1", "uar", "roc_auc"];

/// Binary classification metrics; class 1 = win (positive), 0 = lose.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Share of examples whose predicted class equals the label.
    pub accuracy: f64,
    /// Mean of the F1 scores of both classes (zero_division = 0).
    pub macro_f1: f64,
    /// Unweighted average recall: mean of the recalls of both classes (zero_division = 0).
    pub uar: f64,
    /// Area under the ROC curve of `prob_win`; NaN if one class is absent.
    pub roc_auc: f64,
    /// Counts indexed `[true class][predicted class]`.
    pub confusion: [[u64; 2]; 2],
    /// Number of examples.
    pub n: u64,
}

impl Metrics {
    /// The metric called `name` (one of [`METRIC_NAMES`]), or `None` for an unknown name.
    pub fn get(&self, name: &str) -> Option<f64> {
        match name {
            "accuracy" => Some(self.accuracy),
            "macro_f1" => Some(self.macro_f1),
            "uar" => Some(self.uar),
            "roc_auc" => Some(self.roc_auc),
            _ => None,
        }
    }

    /// `(name, value)` for every metric in [`METRIC_NAMES`] order.
    pub fn named(&self) -> [(&'static str, f64); 4] {
        [
            ("accuracy", self.accuracy),
            ("macro_f1", self.macro_f1),
            ("uar", self.uar),
            ("roc_auc", self.roc_auc),
        ]
    }
}

/// `num / den`, or 0 when `den` is 0 (scikit-learn's `zero_division=0`).
fn ratio_or_zero(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// Metrics of `prob_win` against `labels`; an example is predicted *win* when
/// `prob >= threshold`. See the module docs for the conventions on absent classes and empty
/// input.
///
/// # Panics
/// When `labels` and `prob_win` differ in length (a caller bug, not a data condition).
pub fn evaluate(labels: &[u8], prob_win: &[f32], threshold: f32) -> Metrics {
    assert_eq!(
        labels.len(),
        prob_win.len(),
        "evaluate: {} labels but {} probabilities",
        labels.len(),
        prob_win.len()
    );
    let mut confusion = [[0u64; 2]; 2];
    for (&label, &p) in labels.iter().zip(prob_win) {
        let truth = usize::from(label != 0);
        let pred = usize::from(p >= threshold);
        confusion[truth][pred] += 1;
    }
    let n = labels.len() as u64;
    if n == 0 {
        return Metrics {
            accuracy: f64::NAN,
            macro_f1: f64::NAN,
            uar: f64::NAN,
            roc_auc: f64::NAN,
            confusion,
            n,
        };
    }

    let [[tn, fp], [fn_, tp]] = confusion;
    let accuracy = (tp + tn) as f64 / n as f64;

    let mut f1_sum = 0.0;
    let mut recall_sum = 0.0;
    // (tp, fp, fn) of each class: win as the positive class, then lose as the positive class.
    for (tp, fp, fn_) in [(tp, fp, fn_), (tn, fn_, fp)] {
        // F1 = 2tp / (2tp + fp + fn): the same value as 2PR/(P+R) whenever that is defined.
        f1_sum += ratio_or_zero(2 * tp, 2 * tp + fp + fn_);
        recall_sum += ratio_or_zero(tp, tp + fn_);
    }

    Metrics {
        accuracy,
        macro_f1: f1_sum / 2.0,
        uar: recall_sum / 2.0,
        roc_auc: roc_auc(labels, prob_win),
        confusion,
        n,
    }
}

/// Area under the ROC curve, computed as the Mann–Whitney U statistic: the probability that
/// a random *win* example scores above a random *lose* one, ties counting half.
///
/// Returns NaN when either class is absent (including empty input).
///
/// # Panics
/// When `labels` and `scores` differ in length.
pub fn roc_auc(labels: &[u8], scores: &[f32]) -> f64 {
    assert_eq!(
        labels.len(),
        scores.len(),
        "roc_auc: {} labels but {} scores",
        labels.len(),
        scores.len()
    );
    let n_pos = labels.iter().filter(|&&l| l != 0).count() as u128;
    let n_neg = labels.len() as u128 - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return f64::NAN;
    }

    // -0.0 and 0.0 are the same score; total_cmp alone would order them.
    let key = |s: f32| if s == 0.0 { 0.0f32 } else { s };
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by(|&a, &b| key(scores[a]).total_cmp(&key(scores[b])));

    // Twice the rank sum of the positives, so that mid-ranks of ties stay integers:
    // a tie group at 0-based sorted positions [start, end) has 1-based ranks start+1..=end,
    // whose mean doubled is start + end + 1.
    let mut twice_rank_sum_pos: u128 = 0;
    let mut start = 0;
    while start < order.len() {
        let group_key = key(scores[order[start]]);
        let mut end = start + 1;
        while end < order.len() && key(scores[order[end]]).total_cmp(&group_key).is_eq() {
            end += 1;
        }
        let pos_in_group = order[start..end]
            .iter()
            .filter(|&&i| labels[i] != 0)
            .count() as u128;
        twice_rank_sum_pos += pos_in_group * (start + end + 1) as u128;
        start = end;
    }
    // U = R_pos - n_pos(n_pos+1)/2, AUC = U / (n_pos n_neg); all doubled to stay integral.
    let twice_u = twice_rank_sum_pos - n_pos * (n_pos + 1);
    twice_u as f64 / (2 * n_pos * n_neg) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn hand_computed_case() {
        // labels: 1 1 1 0 0 0 0 ; threshold 0.5
        // preds:  1 1 0 1 0 0 0
        let labels = [1, 1, 1, 0, 0, 0, 0];
        let probs = [0.9, 0.6, 0.4, 0.7, 0.2, 0.1, 0.3];
        let m = evaluate(&labels, &probs, 0.5);
        assert_eq!(m.n, 7);
        // [true][pred]: lose -> [3 correct, 1 wrong]; win -> [1 wrong, 2 correct]
        assert_eq!(m.confusion, [[3, 1], [1, 2]]);
        assert!(close(m.accuracy, 5.0 / 7.0));
        // F1(win) = 2*2/(4+1+1) = 2/3 ; F1(lose) = 2*3/(6+1+1) = 3/4
        assert!(close(m.macro_f1, (2.0 / 3.0 + 0.75) / 2.0));
        // recall(win) = 2/3, recall(lose) = 3/4
        assert!(close(m.uar, (2.0 / 3.0 + 0.75) / 2.0));
        // Pairs (pos, neg) = 3*4 = 12. pos 0.9 beats all 4; 0.6 beats 0.2,0.1,0.3 (3);
        // 0.4 beats 0.2,0.1,0.3 (3). U = 10 -> 10/12.
        assert!(close(m.roc_auc, 10.0 / 12.0));
        assert_eq!(m.get("roc_auc"), Some(m.roc_auc));
        assert_eq!(m.get("accuracy"), Some(m.accuracy));
        assert_eq!(m.get("nope"), None);
    }

    #[test]
    fn threshold_is_inclusive() {
        let m = evaluate(&[1, 0], &[0.5, 0.49], 0.5);
        assert_eq!(m.confusion, [[1, 0], [0, 1]]);
        assert_eq!(m.accuracy, 1.0);
        assert_eq!(m.macro_f1, 1.0);
        assert_eq!(m.uar, 1.0);
        assert_eq!(m.roc_auc, 1.0);
    }

    #[test]
    fn auc_ties_count_half() {
        // All scores tied: every pair is a tie -> 0.5.
        assert_eq!(roc_auc(&[1, 0, 1, 0], &[0.3, 0.3, 0.3, 0.3]), 0.5);
        // pos {0.8, 0.5}, neg {0.5, 0.2}: pairs (0.8,0.5)=1 (0.8,0.2)=1 (0.5,0.5)=0.5
        // (0.5,0.2)=1 -> 3.5/4.
        assert_eq!(roc_auc(&[1, 1, 0, 0], &[0.8, 0.5, 0.5, 0.2]), 0.875);
        // Negative zero ties with zero.
        assert_eq!(roc_auc(&[1, 0], &[0.0, -0.0]), 0.5);
    }

    #[test]
    fn auc_perfect_and_inverted() {
        assert_eq!(roc_auc(&[0, 0, 1, 1], &[0.1, 0.2, 0.8, 0.9]), 1.0);
        assert_eq!(roc_auc(&[1, 1, 0, 0], &[0.1, 0.2, 0.8, 0.9]), 0.0);
    }

    #[test]
    fn all_one_class() {
        // Only wins, all predicted win.
        let m = evaluate(&[1, 1, 1], &[0.9, 0.8, 0.7], 0.5);
        assert_eq!(m.confusion, [[0, 0], [0, 3]]);
        assert_eq!(m.accuracy, 1.0);
        // F1(win) = 1, F1(lose) = 0 by zero_division=0 (no examples, no predictions).
        assert_eq!(m.macro_f1, 0.5);
        // recall(win) = 1, recall(lose) = 0/0 -> 0.
        assert_eq!(m.uar, 0.5);
        assert!(m.roc_auc.is_nan());

        // Only losses, one predicted win.
        let m = evaluate(&[0, 0, 0, 0], &[0.9, 0.1, 0.2, 0.3], 0.5);
        assert_eq!(m.confusion, [[3, 1], [0, 0]]);
        assert_eq!(m.accuracy, 0.75);
        // F1(lose) = 6/(6+0+1) = 6/7; F1(win) = 0/(0+1+0) = 0.
        assert!(close(m.macro_f1, 3.0 / 7.0));
        assert_eq!(m.uar, 0.375);
        assert!(m.roc_auc.is_nan());
    }

    #[test]
    fn empty_input_gives_nans() {
        let m = evaluate(&[], &[], 0.5);
        assert_eq!(m.n, 0);
        assert_eq!(m.confusion, [[0, 0], [0, 0]]);
        for (name, v) in m.named() {
            assert!(v.is_nan(), "{name} should be NaN");
        }
        assert!(roc_auc(&[], &[]).is_nan());
    }

    #[test]
    fn nan_probability_predicts_lose() {
        let m = evaluate(&[1, 0], &[f32::NAN, 0.1], 0.5);
        assert_eq!(m.confusion, [[1, 0], [1, 0]]);
    }

    #[test]
    #[should_panic(expected = "2 labels but 1 probabilities")]
    fn length_mismatch_panics() {
        evaluate(&[1, 0], &[0.5], 0.5);
    }

    #[test]
    fn reversed_scores_give_complement_auc() {
        // A fixed pseudo-random sequence (xorshift), no ties by construction.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for case in 0..50 {
            let n = 2 + case * 3;
            let labels: Vec<u8> = (0..n).map(|_| (next() % 2) as u8).collect();
            // Distinct scores: a shuffled permutation of 0..n, scaled.
            let mut scores: Vec<f32> = (0..n).map(|i| i as f32 / n as f32).collect();
            for i in (1..n).rev() {
                let j = (next() % (i as u64 + 1)) as usize;
                scores.swap(i, j);
            }
            let auc = roc_auc(&labels, &scores);
            let reversed: Vec<f32> = scores.iter().map(|s| -s).collect();
            let auc_rev = roc_auc(&labels, &reversed);
            if auc.is_nan() {
                assert!(auc_rev.is_nan());
            } else {
                assert!(close(auc + auc_rev, 1.0), "case {case}: {auc} + {auc_rev}");
            }
        }
    }

    #[test]
    fn order_independent() {
        let labels = [1, 0, 1, 1, 0, 0, 1, 0];
        let probs = [0.7, 0.7, 0.2, 0.9, 0.4, 0.4, 0.55, 0.1];
        let a = evaluate(&labels, &probs, 0.5);
        let mut idx: Vec<usize> = (0..labels.len()).rev().collect();
        idx.rotate_left(3);
        let l2: Vec<u8> = idx.iter().map(|&i| labels[i]).collect();
        let p2: Vec<f32> = idx.iter().map(|&i| probs[i]).collect();
        let b = evaluate(&l2, &p2, 0.5);
        assert_eq!(a, b);
    }
}
