//! The decision threshold: the probability of Win above which a video is called Win.
//!
//! A model can rank the videos well (a good ROC-AUC) while every probability sits on one side of
//! 0.5, early in training or after its classes were reweighted; at 0.5 it then calls every
//! video one class. So by default the threshold is calibrated on the validation split (never on
//! test): the one that maximises the balanced accuracy (UAR) there, ties going to the threshold
//! nearest 0.5. Candidates are 0.5 and the midpoints between neighbouring validation
//! probabilities, so the choice depends only on how the model orders the validation videos.

use super::metrics;

/// The threshold with the best validation UAR; 0.5 when validation holds only one class.
pub fn calibrate(labels: &[u8], prob_win: &[f32]) -> f32 {
    let has_both = labels.contains(&0) && labels.contains(&1);
    if !has_both {
        return 0.5;
    }
    let mut sorted: Vec<f32> = prob_win.to_vec();
    sorted.sort_by(f32::total_cmp);
    sorted.dedup();
    let mut candidates = vec![0.5f32];
    candidates.extend(sorted.windows(2).map(|w| w[0] + (w[1] - w[0]) / 2.0));
    let mut best = (f64::NEG_INFINITY, f32::INFINITY, 0.5f32);
    for t in candidates {
        let uar = metrics::evaluate(labels, prob_win, t).uar;
        let distance = (t - 0.5).abs();
        if uar > best.0 || (uar == best.0 && distance < best.1) {
            best = (uar, distance, t);
        }
    }
    best.2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_sided_model_gets_a_threshold_between_its_classes() {
        // Every probability below 0.5, but the Win videos rank above the Lose ones: at 0.5 all
        // four would be called Lose (UAR 0.5); between 0.30 and 0.35 all are right (UAR 1).
        let t = calibrate(&[0, 0, 1, 1], &[0.20, 0.30, 0.35, 0.45]);
        assert_eq!(t, 0.325);
        assert_eq!(
            metrics::evaluate(&[0, 0, 1, 1], &[0.20, 0.30, 0.35, 0.45], t).uar,
            1.0
        );
    }

    #[test]
    fn ties_go_to_the_threshold_nearest_one_half() {
        // Perfectly separated around 0.5 already: 0.5 is as good as any and is kept.
        assert_eq!(calibrate(&[0, 1], &[0.1, 0.9]), 0.5);
        // Mixed up: no threshold beats UAR 0.5 by much; the best ones win, nearest 0.5 first.
        let t = calibrate(&[1, 0, 1, 0], &[0.2, 0.4, 0.6, 0.8]);
        assert_eq!(
            metrics::evaluate(&[1, 0, 1, 0], &[0.2, 0.4, 0.6, 0.8], t).uar,
            0.5
        );
        assert_eq!(t, 0.5);
    }

    #[test]
    fn one_class_in_validation_keeps_one_half() {
        assert_eq!(calibrate(&[1, 1, 1], &[0.1, 0.2, 0.3]), 0.5);
    }
}
