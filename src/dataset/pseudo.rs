//! Which pool videos a run merges into training, and with which pseudo-label.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Result, bail};

use super::Example;
use crate::experiment::spec::{PseudoLabelConfig, Rebalance};
use crate::ingest::pseudo_labels;
use crate::store::{Snapshot, Store};

/// Video id -> pseudo-label (1 = win) from the configured labeler, after the confidence filter.
pub fn chosen(
    store: &Store,
    snapshot: &Snapshot,
    config: &PseudoLabelConfig,
) -> Result<BTreeMap<i32, u8>> {
    let rows = pseudo_labels::stored(store, snapshot)?;
    let labelers: BTreeSet<&str> = rows.iter().map(|r| r.labeler.as_str()).collect();
    let labeler = match (&config.labeler, labelers.len()) {
        (Some(l), _) if labelers.contains(l.as_str()) => l.clone(),
        (Some(l), _) => bail!(
            "train.pseudo_labels.labeler is `{l}`, but the store has pseudo-labels from: {}",
            list(&labelers)
        ),
        (None, 0) => bail!("the store holds no pseudo-labels (ingest some first)"),
        (None, 1) => labelers.first().expect("one").to_string(),
        (None, _) => bail!(
            "the store has pseudo-labels from several labelers ({}): choose one with \
             train.pseudo_labels.labeler",
            list(&labelers)
        ),
    };
    let mine: Vec<_> = rows.iter().filter(|r| r.labeler == labeler).collect();
    let prompts: BTreeSet<&str> = mine.iter().map(|r| r.prompt_hash.as_str()).collect();
    if prompts.len() > 1 {
        bail!(
            "labeler `{labeler}` answered {} different prompts; ingest each prompt's answers \
             under its own --labeler name so a run uses one",
            prompts.len()
        );
    }
    Ok(mine
        .into_iter()
        .filter(|r| match r.confidence {
            Some(c) => c >= config.min_confidence,
            None => config.min_confidence <= 0.0,
        })
        .map(|r| (r.video_id, u8::from(r.label == "win")))
        .collect())
}

fn list(names: &BTreeSet<&str>) -> String {
    names.iter().copied().collect::<Vec<_>>().join(", ")
}

/// Brings the pseudo-labelled examples to the class ratio of the gold training set (`gold`:
/// videos per class, [lose, win]), as `rule` says:
/// - `Subsample` keeps every video of the class the pseudo set has relatively fewer of, and of
///   the other class as many as the gold ratio allows (rounded), in a fixed order (blake3 of
///   the video id), so every seed trains on the same videos;
/// - `ClassWeight` keeps every video and scales the weights so that each class carries the
///   gold ratio's share of the pseudo set's loss mass (each video of a class the same weight);
///   a class the pseudo set lacks cannot carry its share, so the other keeps only its own.
///
/// iMiGUE's pool is all Win: a labeler right 75% of the time calls about a quarter of it Lose,
/// so merging it as it comes makes the training set more Win-heavy than the gold one.
pub fn rebalance(mut pseudo: Vec<Example>, gold: [usize; 2], rule: Rebalance) -> Vec<Example> {
    let gold_total = (gold[0] + gold[1]) as f64;
    if pseudo.is_empty() || rule == Rebalance::None || gold_total == 0.0 {
        return pseudo;
    }
    let count = |p: &[Example], c: u8| p.iter().filter(|e| e.label == c).count();
    match rule {
        Rebalance::None => pseudo,
        Rebalance::Subsample => {
            let have = [count(&pseudo, 0), count(&pseudo, 1)];
            // Cross-multiplied: which class is over-represented relative to gold.
            let keep = if have[1] * gold[0] > have[0] * gold[1] {
                let win = (have[0] as f64 * gold[1] as f64 / (gold[0] as f64).max(1.0)).round();
                let win = if gold[0] == 0 { have[1] } else { win as usize };
                [have[0], win.min(have[1])]
            } else {
                let lose = (have[1] as f64 * gold[0] as f64 / (gold[1] as f64).max(1.0)).round();
                let lose = if gold[1] == 0 { have[0] } else { lose as usize };
                [lose.min(have[0]), have[1]]
            };
            pseudo.sort_by_key(|e| {
                blake3::hash(format!("xp-pseudo-{}", e.video_id).as_bytes())
                    .to_hex()
                    .to_string()
            });
            let mut taken = [0usize; 2];
            let mut kept: Vec<Example> = pseudo
                .into_iter()
                .filter(|e| {
                    let c = e.label as usize;
                    taken[c] += 1;
                    taken[c] <= keep[c]
                })
                .collect();
            kept.sort_by_key(|e| e.video_id);
            kept
        }
        Rebalance::ClassWeight => {
            let mass: f64 = pseudo.iter().map(|e| f64::from(e.weight)).sum();
            let have = [count(&pseudo, 0), count(&pseudo, 1)];
            let per_video =
                [0, 1].map(|c| mass * gold[c] as f64 / gold_total / (have[c] as f64).max(1.0));
            for e in &mut pseudo {
                e.weight = per_video[e.label as usize] as f32;
            }
            pseudo
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `win` Win and `lose` Lose pseudo-labelled videos of weight 0.5, ids from 1000.
    fn pool(win: usize, lose: usize) -> Vec<Example> {
        (0..win + lose)
            .map(|i| Example {
                video_id: 1000 + i as i32,
                subject_id: 0,
                label: u8::from(i < win),
                weight: 0.5,
                pseudo: true,
                frames: 0,
                data: vec![],
                image: None,
                text: None,
            })
            .collect()
    }

    fn classes(p: &[Example]) -> [usize; 2] {
        [0, 1].map(|c| p.iter().filter(|e| e.label == c).count())
    }

    #[test]
    fn subsampling_keeps_the_gold_ratio() {
        // Gold: 60 Lose, 40 Win. Pool: 90 Win, 30 Lose; Win is over-represented, so all 30
        // Lose stay and 30 x 40 / 60 = 20 Win.
        let kept = rebalance(pool(90, 30), [60, 40], Rebalance::Subsample);
        assert_eq!(classes(&kept), [30, 20]);
        // The same videos whatever the order they came in.
        let mut reversed = pool(90, 30);
        reversed.reverse();
        let again = rebalance(reversed, [60, 40], Rebalance::Subsample);
        let ids = |p: &[Example]| p.iter().map(|e| e.video_id).collect::<Vec<_>>();
        assert_eq!(ids(&kept), ids(&again));
        // An all-Win pool cannot be merged in the gold ratio: nothing of it is kept.
        assert_eq!(
            classes(&rebalance(pool(50, 0), [60, 40], Rebalance::Subsample)),
            [0, 0]
        );
        // Lose over-represented: all Win stay, Lose cut to 10 x 60 / 40 = 15.
        assert_eq!(
            classes(&rebalance(pool(10, 40), [60, 40], Rebalance::Subsample)),
            [15, 10]
        );
    }

    #[test]
    fn class_weights_give_each_class_its_gold_share_of_the_mass() {
        // 90 Win + 30 Lose at 0.5: mass 60. Gold 60 Lose / 40 Win: Lose carries 36, Win 24,
        // so a Lose video weighs 36 / 30 = 1.2 and a Win one 24 / 90 = 0.2667 (by hand).
        let p = rebalance(pool(90, 30), [60, 40], Rebalance::ClassWeight);
        assert_eq!(p.len(), 120);
        let w = |c: u8| p.iter().find(|e| e.label == c).unwrap().weight;
        assert!((w(0) - 1.2).abs() < 1e-6, "{}", w(0));
        assert!((w(1) - 24.0 / 90.0).abs() < 1e-6, "{}", w(1));
        assert_eq!(
            rebalance(pool(90, 30), [60, 40], Rebalance::None)[0].weight,
            0.5
        );
    }
}
