//! Leaderboards: finished runs grouped by configuration, mean ± std over seeds, ranked.
//!
//! Aggregation is deterministic: runs are grouped by their `group` key (the resolved
//! configuration without the seed, and the code; never the variant's name) and, within a
//! group, summed in (seed, run_id) order, so the result does not depend on the order of the
//! input rows.
//! Rendering is byte-for-byte stable for a given input (the Markdown form never depends on
//! the terminal; the terminal form only through the `width` argument).

use std::collections::{BTreeMap, BTreeSet};

use comfy_table::{Cell, CellAlignment, ColumnConstraint, ContentArrangement, Table};
use serde::{Deserialize, Serialize};

/// Rules above, below and under the header only: the same style as the rest of xp.
const TABLE_STYLE: &str = "  ── ══      ──    ";

/// One finished run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub run_id: String,
    pub experiment: String,
    /// The grid cell, e.g. `"backbone=mlp,pseudo=off"`: the row's name.
    pub variant: String,
    /// Runs with the same key are seeds of one computation and share a row.
    pub group: String,
    pub seed: u64,
    /// Test metrics by name.
    pub metrics: BTreeMap<String, f64>,
    /// Trainable parameter count.
    pub params: u64,
    pub train_seconds: f64,
    /// Pool videos trained on with a pseudo-label.
    pub pseudo_videos: u32,
    /// Protocol videos left out for lack of an input (`data.allow_missing`).
    pub missing_videos: u32,
}

/// One variant's aggregate over its seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaderRow {
    pub variant: String,
    /// The group key of its runs (see `RunResult::group`).
    pub group: String,
    /// Number of runs aggregated (one per seed when the caller passes no duplicates).
    pub seeds: usize,
    /// Mean of each metric over the runs that report it.
    pub mean: BTreeMap<String, f64>,
    /// Sample standard deviation (n − 1) of each metric; 0 when one run reports it.
    pub std: BTreeMap<String, f64>,
    /// Parameter count (the largest over the runs; they normally agree).
    pub params: u64,
    pub train_seconds_mean: f64,
    /// Pool videos trained on with a pseudo-label (the largest over the runs).
    pub pseudo_videos: u32,
    /// Protocol videos left out (the largest over the runs).
    pub missing_videos: u32,
}

/// Mean and sample standard deviation (n − 1; 0 for a single value), summed in slice order.
/// NaNs propagate. `values` must not be empty.
fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let ss: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
    (mean, (ss / (n - 1.0)).sqrt())
}

/// Groups `results` by variant and ranks the variants by the mean of `sort_metric`,
/// best (largest) first; ties, and variants whose mean is missing or NaN (those go last),
/// are ordered by variant name.
///
/// Mean and std of a metric cover the runs that report it; a NaN value (e.g. the ROC AUC of
/// a single-class test set) makes that variant's mean NaN rather than being skipped, so it
/// stays visible. Rows are meant for one experiment: runs of different experiments that
/// share a variant name are pooled.
pub fn aggregate(results: &[RunResult], sort_metric: &str) -> Vec<LeaderRow> {
    let mut groups: BTreeMap<&str, Vec<&RunResult>> = BTreeMap::new();
    for r in results {
        groups.entry(r.group.as_str()).or_default().push(r);
    }

    let mut rows: Vec<LeaderRow> = groups
        .into_values()
        .map(|mut runs| {
            runs.sort_by(|a, b| a.seed.cmp(&b.seed).then_with(|| a.run_id.cmp(&b.run_id)));
            let variant = runs[0].variant.as_str();
            let names: BTreeSet<&str> = runs
                .iter()
                .flat_map(|r| r.metrics.keys().map(String::as_str))
                .collect();
            let mut mean = BTreeMap::new();
            let mut std = BTreeMap::new();
            for name in names {
                let values: Vec<f64> = runs
                    .iter()
                    .filter_map(|r| r.metrics.get(name).copied())
                    .collect();
                let (m, s) = mean_std(&values);
                mean.insert(name.to_string(), m);
                std.insert(name.to_string(), s);
            }
            let seconds: Vec<f64> = runs.iter().map(|r| r.train_seconds).collect();
            LeaderRow {
                variant: variant.to_string(),
                group: runs[0].group.clone(),
                seeds: runs.len(),
                mean,
                std,
                params: runs.iter().map(|r| r.params).max().unwrap_or(0),
                train_seconds_mean: mean_std(&seconds).0,
                pseudo_videos: runs.iter().map(|r| r.pseudo_videos).max().unwrap_or(0),
                missing_videos: runs.iter().map(|r| r.missing_videos).max().unwrap_or(0),
            }
        })
        .collect();

    let score = |row: &LeaderRow| row.mean.get(sort_metric).copied().filter(|v| !v.is_nan());
    rows.sort_by(|a, b| match (score(a), score(b)) {
        (Some(x), Some(y)) => y.total_cmp(&x).then_with(|| a.variant.cmp(&b.variant)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.variant.cmp(&b.variant),
    });
    rows
}

/// `"0.6923 ± 0.0120"`, or `"n/a"` when the row lacks the metric or its mean is NaN.
fn metric_cell(row: &LeaderRow, metric: &str) -> String {
    match row.mean.get(metric) {
        Some(m) if !m.is_nan() => {
            let s = row.std.get(metric).copied().unwrap_or(f64::NAN);
            format!("{m:.4} ± {s:.4}")
        }
        _ => "n/a".to_string(),
    }
}

/// `1234567` → `"1,234,567"` (indicatif's formatting).
fn thousands(n: u64) -> String {
    indicatif::HumanCount(n).to_string()
}

/// The count columns a board needs: pool videos trained on, protocol videos left out. Each is
/// shown only when some row has a non-zero count, so plain boards keep their shape.
fn count_columns(rows: &[LeaderRow]) -> (bool, bool) {
    (
        rows.iter().any(|r| r.pseudo_videos > 0),
        rows.iter().any(|r| r.missing_videos > 0),
    )
}

fn header(rows: &[LeaderRow], metrics: &[&str]) -> Vec<String> {
    let mut h = vec!["rank".to_string(), "variant".into(), "seeds".into()];
    h.extend(metrics.iter().map(|m| m.to_string()));
    let (pseudo, missing) = count_columns(rows);
    if pseudo {
        h.push("pool videos".into());
    }
    if missing {
        h.push("videos left out".into());
    }
    h.push("params".into());
    h.push("train time (s)".into());
    h
}

fn body(rows: &[LeaderRow], metrics: &[&str]) -> Vec<Vec<String>> {
    let (pseudo, missing) = count_columns(rows);
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            let mut cells = vec![
                (i + 1).to_string(),
                row.variant.clone(),
                row.seeds.to_string(),
            ];
            cells.extend(metrics.iter().map(|m| metric_cell(row, m)));
            if pseudo {
                cells.push(row.pseudo_videos.to_string());
            }
            if missing {
                cells.push(row.missing_videos.to_string());
            }
            cells.push(thousands(row.params));
            cells.push(format!("{:.1}", row.train_seconds_mean));
            cells
        })
        .collect()
}

/// Whether column `i` of the table holds numbers (right-aligned); only "variant" does not.
fn is_numeric_column(i: usize) -> bool {
    i != 1
}

/// The leaderboard as an aligned table for a terminal, under a `title` line (which carries
/// the caller's note, e.g. "SYNTHETIC demo data"). Rows are ranked in the given order.
/// With `width`, long variant names wrap to fit it (numbers never wrap, so a very narrow
/// width is exceeded rather than breaking a number); without, nothing wraps.
pub fn render_terminal(
    rows: &[LeaderRow],
    metrics: &[&str],
    title: &str,
    width: Option<u16>,
) -> String {
    let mut table = Table::new();
    table.load_preset(TABLE_STYLE);
    match width {
        Some(w) => {
            table
                .set_content_arrangement(ContentArrangement::Dynamic)
                .set_width(w);
        }
        None => {
            table.set_content_arrangement(ContentArrangement::Disabled);
        }
    }
    table.set_header(header(rows, metrics).into_iter().enumerate().map(|(i, h)| {
        let cell = Cell::new(h);
        if is_numeric_column(i) {
            // Headers of numeric columns line up with their numbers.
            cell.set_alignment(CellAlignment::Right)
        } else {
            cell
        }
    }));
    for cells in body(rows, metrics) {
        table.add_row(cells.into_iter().enumerate().map(|(i, c)| {
            let cell = Cell::new(c);
            if is_numeric_column(i) {
                cell.set_alignment(CellAlignment::Right)
            } else {
                cell
            }
        }));
    }
    // Numbers never wrap; only the variant column gives way to a narrow `width`.
    for (i, column) in table.column_iter_mut().enumerate() {
        if is_numeric_column(i) {
            column.set_constraint(ColumnConstraint::ContentWidth);
        }
    }
    let rendered = table.to_string();
    let mut out = String::with_capacity(title.len() + rendered.len() + 2);
    out.push_str(title);
    out.push('\n');
    out.push_str(&rendered);
    out.push('\n');
    out
}

/// Escapes the characters that would break a GitHub Markdown table cell.
fn md_cell(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('\n', " ")
}

/// The leaderboard as a GitHub-flavoured Markdown table under a `### title` heading.
/// The output depends on nothing but the arguments (fixed 4 decimals, no timestamps, no
/// terminal width), so it can be committed and diffed.
pub fn render_markdown(rows: &[LeaderRow], metrics: &[&str], title: &str) -> String {
    let head = header(rows, metrics);
    let mut out = format!("### {}\n\n", md_cell(title));
    let line = |cells: &[String]| {
        let escaped: Vec<String> = cells.iter().map(|c| md_cell(c)).collect();
        format!("| {} |\n", escaped.join(" | "))
    };
    out.push_str(&line(&head));
    let rule: Vec<&str> = (0..head.len())
        .map(|i| if is_numeric_column(i) { "---:" } else { ":---" })
        .collect();
    out.push_str(&format!("|{}|\n", rule.join("|")));
    for cells in body(rows, metrics) {
        out.push_str(&line(&cells));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(variant: &str, seed: u64, acc: f64, auc: f64, params: u64, secs: f64) -> RunResult {
        RunResult {
            run_id: format!("{variant}-s{seed}"),
            experiment: "exp".into(),
            variant: variant.into(),
            group: variant.into(),
            seed,
            metrics: BTreeMap::from([("accuracy".to_string(), acc), ("roc_auc".to_string(), auc)]),
            params,
            train_seconds: secs,
            pseudo_videos: 0,
            missing_videos: 0,
        }
    }

    fn sample() -> Vec<RunResult> {
        vec![
            run("backbone=mlp,pseudo=off", 1, 0.60, 0.65, 12_345, 10.0),
            run("backbone=tcn,pseudo=on", 0, 0.70, 0.74, 1_234_567, 100.0),
            run("backbone=mlp,pseudo=off", 0, 0.62, 0.66, 12_345, 12.0),
            run("backbone=tcn,pseudo=on", 1, 0.74, 0.78, 1_234_567, 110.0),
            run("backbone=tcn,pseudo=on", 2, 0.72, 0.76, 1_234_567, 90.0),
            run("chance", 0, 0.50, f64::NAN, 0, 0.04),
        ]
    }

    #[test]
    fn aggregates_and_ranks() {
        let rows = aggregate(&sample(), "accuracy");
        let names: Vec<&str> = rows.iter().map(|r| r.variant.as_str()).collect();
        assert_eq!(
            names,
            [
                "backbone=tcn,pseudo=on",
                "backbone=mlp,pseudo=off",
                "chance"
            ]
        );
        let tcn = &rows[0];
        assert_eq!(tcn.seeds, 3);
        assert!((tcn.mean["accuracy"] - 0.72).abs() < 1e-12);
        // values 0.70 0.74 0.72: deviations ±0.02, 0 -> var = 0.0008/2 -> std 0.02
        assert!((tcn.std["accuracy"] - 0.02).abs() < 1e-12);
        assert_eq!(tcn.params, 1_234_567);
        assert!((tcn.train_seconds_mean - 100.0).abs() < 1e-12);
        let chance = &rows[2];
        assert_eq!(chance.seeds, 1);
        assert_eq!(chance.std["accuracy"], 0.0);
        assert!(chance.mean["roc_auc"].is_nan());
    }

    #[test]
    fn nan_and_missing_sort_last_ties_by_name() {
        let rows = aggregate(&sample(), "roc_auc");
        assert_eq!(rows.last().unwrap().variant, "chance");
        let rows = aggregate(&sample(), "no_such_metric");
        let names: Vec<&str> = rows.iter().map(|r| r.variant.as_str()).collect();
        assert_eq!(
            names,
            [
                "backbone=mlp,pseudo=off",
                "backbone=tcn,pseudo=on",
                "chance"
            ]
        );
        let tied = vec![run("b", 0, 0.5, 0.5, 1, 1.0), run("a", 0, 0.5, 0.5, 1, 1.0)];
        let rows = aggregate(&tied, "accuracy");
        assert_eq!(rows[0].variant, "a");
    }

    #[test]
    fn aggregate_is_input_order_independent() {
        let mut shuffled = sample();
        shuffled.reverse();
        shuffled.swap(0, 3);
        let a = aggregate(&sample(), "accuracy");
        let b = aggregate(&shuffled, "accuracy");
        // Compare through Debug: NaN != NaN under PartialEq.
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert!(aggregate(&[], "accuracy").is_empty());
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(12_345), "12,345");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn markdown_golden() {
        let rows = aggregate(&sample(), "accuracy");
        let md = render_markdown(
            &rows,
            &["accuracy", "roc_auc"],
            "Leaderboard exp (test) | SYNTHETIC demo data",
        );
        let expected = "\
### Leaderboard exp (test) \\| SYNTHETIC demo data

| rank | variant | seeds | accuracy | roc_auc | params | train time (s) |
|---:|:---|---:|---:|---:|---:|---:|
| 1 | backbone=tcn,pseudo=on | 3 | 0.7200 ± 0.0200 | 0.7600 ± 0.0200 | 1,234,567 | 100.0 |
| 2 | backbone=mlp,pseudo=off | 2 | 0.6100 ± 0.0141 | 0.6550 ± 0.0071 | 12,345 | 11.0 |
| 3 | chance | 1 | 0.5000 ± 0.0000 | n/a | 0 | 0.0 |
";
        assert_eq!(md, expected);
    }

    #[test]
    fn terminal_golden() {
        let rows = aggregate(&sample(), "accuracy");
        let text = render_terminal(
            &rows,
            &["accuracy", "roc_auc"],
            "Leaderboard exp (test) — SYNTHETIC demo data",
            None,
        );
        // One string per line: the table ends its lines with a space (its padding).
        let expected = [
            "Leaderboard exp (test) — SYNTHETIC demo data",
            "─────────────────────────────────────────────────────────────────────────────────────────────────────────",
            " rank   variant                   seeds          accuracy           roc_auc      params   train time (s) ",
            "═════════════════════════════════════════════════════════════════════════════════════════════════════════",
            "    1   backbone=tcn,pseudo=on        3   0.7200 ± 0.0200   0.7600 ± 0.0200   1,234,567            100.0 ",
            "    2   backbone=mlp,pseudo=off       2   0.6100 ± 0.0141   0.6550 ± 0.0071      12,345             11.0 ",
            "    3   chance                        1   0.5000 ± 0.0000               n/a           0              0.0 ",
            "─────────────────────────────────────────────────────────────────────────────────────────────────────────",
        ]
        .map(|line| format!("{line}\n"))
        .concat();
        assert_eq!(text, expected);
    }

    #[test]
    fn terminal_wraps_to_width() {
        let rows = aggregate(&sample(), "accuracy");
        let text = render_terminal(&rows, &["accuracy", "roc_auc"], "t", Some(96));
        for line in text.lines() {
            assert!(line.chars().count() <= 96, "too wide: {line:?}");
        }
        // The variant column wrapped, the numbers did not.
        assert!(!text.contains("backbone=tcn,pseudo=on"), "{text}");
        for number in ["1,234,567", "0.7200 ± 0.0200", "100.0"] {
            assert!(text.contains(number), "{number} broken in\n{text}");
        }
    }

    #[test]
    fn rows_are_configurations_not_names() {
        // Two configurations that share a variant name stay two rows.
        let mut a = run("mlp", 0, 0.6, 0.6, 1, 1.0);
        let mut b = run("mlp", 0, 0.4, 0.4, 1, 1.0);
        a.group = "epochs=12".into();
        b.group = "epochs=20".into();
        b.run_id = "other".into();
        let rows = aggregate(&[a, b], "accuracy");
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.seeds == 1));
    }

    #[test]
    fn counts_of_pool_and_left_out_videos_are_shown_when_present() {
        let mut a = run("pseudo=on", 0, 0.6, 0.6, 1, 1.0);
        a.pseudo_videos = 132;
        a.missing_videos = 3;
        let rows = aggregate(&[a, run("pseudo=off", 0, 0.5, 0.5, 1, 1.0)], "accuracy");
        let md = render_markdown(&rows, &["accuracy"], "t");
        assert!(md.contains("| pool videos | videos left out |"), "{md}");
        assert!(
            md.contains("| 132 | 3 |") && md.contains("| 0 | 0 |"),
            "{md}"
        );
        let plain = aggregate(&sample(), "accuracy");
        assert!(!render_markdown(&plain, &["accuracy"], "t").contains("pool videos"));
    }

    #[test]
    fn markdown_escapes_pipes_in_variants() {
        let rows = aggregate(&[run("a|b", 0, 0.5, 0.5, 1, 1.0)], "accuracy");
        let md = render_markdown(&rows, &["accuracy"], "t");
        assert!(md.contains("| a\\|b |"), "{md}");
    }
}
