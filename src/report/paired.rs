//! Paired comparisons: for every two variants that differ in exactly one grid key (MLP vs GCN,
//! pseudo-labels off vs on), the difference in test accuracy with a 95% confidence interval.
//!
//! Method. For variants A and B, take the seeds both have and the test videos every one of
//! those runs predicted. Per seed `s` and video `v`, `d[s][v]` is 1 if A's run of seed s
//! called v right, minus 1 if B's did (so -1, 0 or 1); the difference in accuracy is the mean
//! of `d`. Both runs of a seed saw the same data split and the same videos, so the comparison
//! is paired: what the two share (an easy video, a lucky seed) cancels. The interval is a
//! two-way paired bootstrap: each of [`RESAMPLES`] resamples draws the seeds with replacement
//! and, independently, the videos with replacement, and takes the mean of `d` over that grid;
//! the interval is the 2.5th and 97.5th percentiles of those means. Resampling the seeds as
//! well as the videos makes the interval include training noise, not only which videos
//! happen to be in the test set. The bootstrap's random numbers come from a fixed seed, so the
//! same runs always give the same interval.

use std::collections::{BTreeMap, BTreeSet};

use rand::{Rng, SeedableRng};

/// Bootstrap resamples per comparison.
pub const RESAMPLES: usize = 2000;
/// The bootstrap's seed (any fixed value: it only has to be the same every time).
const BOOTSTRAP_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// One run's test decisions: video id -> called right.
pub type Decisions = BTreeMap<i32, bool>;

/// A variant's runs: its grid values (`key=value` pairs of its name) and, per seed, the test
/// decisions.
#[derive(Debug, Clone)]
pub struct VariantRuns {
    pub variant: String,
    pub seeds: BTreeMap<u64, Decisions>,
}

/// One paired comparison, A − B.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub a: String,
    pub b: String,
    /// The grid key the two differ in, with A's and B's values.
    pub key: String,
    pub a_value: String,
    pub b_value: String,
    /// Mean of A's accuracy minus B's, over the shared seeds and videos.
    pub difference: f64,
    /// 95% bootstrap interval of the difference.
    pub low: f64,
    pub high: f64,
    pub seeds: usize,
    pub videos: usize,
}

impl Comparison {
    /// What the interval says, in words.
    pub fn verdict(&self) -> String {
        if self.low > 0.0 {
            format!("{}={} better", self.key, self.a_value)
        } else if self.high < 0.0 {
            format!("{}={} better", self.key, self.b_value)
        } else {
            "no difference shown".into()
        }
    }
}

/// The `key=value` pairs of a variant's name (`backbone=mlp,pseudo_labels=true`), or None when
/// the name is not of that form (a row of an older configuration, labelled `[...]`).
fn grid_values(variant: &str) -> Option<BTreeMap<&str, &str>> {
    if variant.contains('[') {
        return None;
    }
    variant
        .split(',')
        .map(|pair| pair.split_once('='))
        .collect::<Option<BTreeMap<_, _>>>()
        .filter(|m| !m.is_empty())
}

/// Every pair of variants whose names have the same keys and differ in exactly one value,
/// compared; in the order of `variants`, A being the earlier one.
pub fn compare_all(variants: &[VariantRuns]) -> Vec<Comparison> {
    let mut out = Vec::new();
    for (i, a) in variants.iter().enumerate() {
        for b in &variants[i + 1..] {
            let (Some(va), Some(vb)) = (grid_values(&a.variant), grid_values(&b.variant)) else {
                continue;
            };
            if va.keys().ne(vb.keys()) {
                continue;
            }
            let differing: Vec<&str> = va
                .iter()
                .filter(|(k, v)| vb[*k] != **v)
                .map(|(k, _)| *k)
                .collect();
            if let [key] = differing[..]
                && let Some(c) = compare(a, b, key, va[key], vb[key])
            {
                out.push(c);
            }
        }
    }
    out
}

/// A − B over their shared seeds and videos; None when they share none.
fn compare(
    a: &VariantRuns,
    b: &VariantRuns,
    key: &str,
    a_value: &str,
    b_value: &str,
) -> Option<Comparison> {
    let seeds: Vec<u64> = a
        .seeds
        .keys()
        .filter(|s| b.seeds.contains_key(s))
        .copied()
        .collect();
    let mut videos: Option<BTreeSet<i32>> = None;
    for s in &seeds {
        for runs in [&a.seeds[s], &b.seeds[s]] {
            let these: BTreeSet<i32> = runs.keys().copied().collect();
            videos = Some(match videos {
                None => these,
                Some(v) => v.intersection(&these).copied().collect(),
            });
        }
    }
    let videos: Vec<i32> = videos?.into_iter().collect();
    if seeds.is_empty() || videos.is_empty() {
        return None;
    }
    let d: Vec<Vec<f64>> = seeds
        .iter()
        .map(|s| {
            videos
                .iter()
                .map(|v| f64::from(u8::from(a.seeds[s][v])) - f64::from(u8::from(b.seeds[s][v])))
                .collect()
        })
        .collect();
    let (low, high) = bootstrap_interval(&d);
    Some(Comparison {
        a: a.variant.clone(),
        b: b.variant.clone(),
        key: key.to_string(),
        a_value: a_value.to_string(),
        b_value: b_value.to_string(),
        difference: grid_mean(
            &d,
            &(0..seeds.len()).collect::<Vec<_>>(),
            &(0..videos.len()).collect::<Vec<_>>(),
        ),
        low,
        high,
        seeds: seeds.len(),
        videos: videos.len(),
    })
}

/// Mean of `d[s][v]` over the rows `seeds` and columns `videos` (with repeats).
fn grid_mean(d: &[Vec<f64>], seeds: &[usize], videos: &[usize]) -> f64 {
    let total: f64 = seeds
        .iter()
        .map(|&s| videos.iter().map(|&v| d[s][v]).sum::<f64>())
        .sum();
    total / (seeds.len() * videos.len()) as f64
}

/// The 2.5th and 97.5th percentiles of the two-way bootstrap means of `d` (rows: seeds,
/// columns: videos; at least one of each).
pub fn bootstrap_interval(d: &[Vec<f64>]) -> (f64, f64) {
    let (n_seeds, n_videos) = (d.len(), d[0].len());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(BOOTSTRAP_SEED);
    let mut means: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            let seeds: Vec<usize> = (0..n_seeds).map(|_| rng.random_range(0..n_seeds)).collect();
            let videos: Vec<usize> = (0..n_videos)
                .map(|_| rng.random_range(0..n_videos))
                .collect();
            grid_mean(d, &seeds, &videos)
        })
        .collect();
    means.sort_by(f64::total_cmp);
    (percentile(&means, 0.025), percentile(&means, 0.975))
}

/// The `q` quantile of sorted values: the value at rank `round(q * (n - 1))`.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[(q * (sorted.len() - 1) as f64).round() as usize]
}

const TITLE: &str = "paired differences in test accuracy, A - B (95% bootstrap interval over seeds and test videos)";

/// The comparisons as a terminal table (empty string when there are none).
pub fn render_terminal(comparisons: &[Comparison]) -> String {
    if comparisons.is_empty() {
        return String::new();
    }
    let mut table = crate::output::new_table();
    table.set_header([
        "A",
        "B",
        "A - B",
        "95% interval",
        "seeds x videos",
        "reading",
    ]);
    for c in comparisons {
        table.add_row(row(c));
    }
    format!("{TITLE}\n{table}\n")
}

/// The comparisons as a Markdown table (empty string when there are none).
pub fn render_markdown(comparisons: &[Comparison]) -> String {
    if comparisons.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "\n{TITLE}:\n\n| A | B | A - B | 95% interval | seeds x videos | reading |\n|---|---|---:|---|---:|---|\n"
    );
    for c in comparisons {
        out.push_str(&format!("| {} |\n", row(c).join(" | ")));
    }
    out
}

fn row(c: &Comparison) -> [String; 6] {
    [
        c.a.clone(),
        c.b.clone(),
        format!("{:+.3}", c.difference),
        format!("[{:+.3}, {:+.3}]", c.low, c.high),
        format!("{} x {}", c.seeds, c.videos),
        c.verdict(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(variant: &str, seeds: &[(u64, &[bool])]) -> VariantRuns {
        VariantRuns {
            variant: variant.into(),
            seeds: seeds
                .iter()
                .map(|(s, right)| {
                    let decisions = right
                        .iter()
                        .enumerate()
                        .map(|(v, &ok)| (v as i32, ok))
                        .collect();
                    (*s, decisions)
                })
                .collect(),
        }
    }

    #[test]
    fn a_model_right_everywhere_beats_one_wrong_everywhere_with_certainty() {
        let a = runs("backbone=mlp", &[(0, &[true; 5]), (1, &[true; 5])]);
        let b = runs("backbone=gcn", &[(0, &[false; 5]), (1, &[false; 5])]);
        let c = &compare_all(&[a, b])[0];
        assert_eq!((c.difference, c.low, c.high), (1.0, 1.0, 1.0));
        assert_eq!((c.seeds, c.videos), (2, 5));
        assert_eq!(c.verdict(), "backbone=mlp better");
    }

    #[test]
    fn two_videos_one_seed_give_the_hand_computed_interval() {
        // d = [1, 0]: a resample of two videos has mean 0 (both the second, p = 1/4), 0.5
        // (p = 1/2) or 1 (p = 1/4), so the 2.5th percentile is 0 and the 97.5th is 1.
        let a = runs("x=1", &[(0, &[true, true])]);
        let b = runs("x=2", &[(0, &[false, true])]);
        let c = &compare_all(&[a.clone(), b.clone()])[0];
        assert_eq!((c.difference, c.low, c.high), (0.5, 0.0, 1.0));
        assert_eq!(c.verdict(), "no difference shown");
        // Swapping the two negates everything.
        let r = &compare_all(&[b, a])[0];
        assert_eq!((r.difference, r.low, r.high), (-0.5, -1.0, 0.0));
    }

    #[test]
    fn interval_narrows_with_more_videos_and_is_stable() {
        // A is right on 70% of the videos, B on 50% of the same ones: d = 1 on 20% of them.
        let pattern =
            |n: usize, right: usize| -> Vec<bool> { (0..n).map(|i| i % 10 < right).collect() };
        let pair = |n: usize| {
            compare_all(&[
                runs("m=a", &[(0, &pattern(n, 7)[..]), (1, &pattern(n, 7)[..])]),
                runs("m=b", &[(0, &pattern(n, 5)[..]), (1, &pattern(n, 5)[..])]),
            ])[0]
                .clone()
        };
        let (small, large) = (pair(10), pair(400));
        assert!((small.difference - 0.2).abs() < 1e-12);
        assert!((large.difference - 0.2).abs() < 1e-12);
        // 10 videos: a resample without either winning video has probability 0.8^10 = 0.11,
        // so the interval reaches 0; 400 videos: about 0.2 +- 2 x 0.02.
        assert!(small.low <= 0.0 && small.high >= 0.4, "{small:?}");
        assert_eq!(small.verdict(), "no difference shown");
        assert!(large.low > 0.15 && large.high < 0.25, "{large:?}");
        assert_eq!(large.verdict(), "m=a better");
        // Fixed bootstrap seed: the same input, the same interval.
        assert_eq!(pair(10), small);
    }

    #[test]
    fn only_variants_differing_in_one_key_are_paired() {
        let v = |name: &str| runs(name, &[(0, &[true, false])]);
        let all = compare_all(&[
            v("backbone=mlp,pseudo=false"),
            v("backbone=mlp,pseudo=true"),
            v("backbone=gcn,pseudo=false"),
            v("backbone=gcn,pseudo=true"),
            v("backbone=gcn,pseudo=true [config 1a2b3c4d]"),
        ]);
        let pairs: Vec<(String, String)> = all.iter().map(|c| (c.a.clone(), c.b.clone())).collect();
        assert_eq!(pairs.len(), 4, "{pairs:?}");
        assert!(
            !pairs
                .iter()
                .any(|(a, b)| a.contains("mlp,pseudo=false") && b.contains("gcn,pseudo=true"))
        );
        assert!(all.iter().all(|c| c.key == "backbone" || c.key == "pseudo"));
    }

    #[test]
    fn only_shared_seeds_and_videos_count() {
        let a = runs("k=1", &[(0, &[true, true, true]), (7, &[true, true, true])]);
        // Seed 7 missing on B's side; B's run predicted only the first two videos.
        let b = runs("k=2", &[(0, &[false, false])]);
        let c = &compare_all(&[a, b])[0];
        assert_eq!((c.seeds, c.videos), (1, 2));
        assert_eq!(c.difference, 1.0);
    }
}
