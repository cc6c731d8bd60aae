//! SVG plots of experiments: learning curves and a leaderboard bar chart.
//!
//! Both are drawn with plotters' SVG backend into a string and written in one go. Text is
//! emitted as SVG `<text>` elements in the generic `sans-serif` family, so nothing here needs
//! a font installed (the viewer picks the font); text extents are estimated for the layout.
//! The output is a pure function of the arguments: the same input gives the same bytes.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::leaderboard::{LeaderRow, RunResult};

/// One learning curve: `(epoch, value)` points of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    pub variant: String,
    pub seed: u64,
    pub points: Vec<(u32, f64)>,
}

/// Tableau 10: distinct, colour-blind-friendlier hues; variants cycle through them.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

const FONT: &str = "sans-serif";
/// Rough advance of one character of the 13 px label font, for layout only.
const CHAR_PX: u32 = 7;
/// Right margin of the bar chart, where the reference line's label goes.
const REF_LABEL_W: u32 = 70;

fn colour(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// `(lo, hi)` padded by 5% of the span (or a little around a single value); `(0, 1)` when
/// there are no finite values.
fn padded_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        return (0.0, 1.0);
    }
    let span = hi - lo;
    let pad = if span > 0.0 {
        span * 0.05
    } else {
        (lo.abs() * 0.05).max(0.05)
    };
    (lo - pad, hi + pad)
}

fn write_svg(path: &Path, svg: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))
}

/// A legend in its own panel: one coloured swatch and name per entry, top to bottom.
fn draw_legend(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    entries: &[(String, RGBColor)],
) -> Result<()> {
    let text = TextStyle::from((FONT, 13).into_font()).color(&BLACK);
    for (i, (name, c)) in entries.iter().enumerate() {
        let y = 60 + 22 * i as i32;
        area.draw(&PathElement::new(vec![(8, y), (32, y)], c.stroke_width(3)))?;
        area.draw(&Text::new(
            name.clone(),
            (40, y),
            text.pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
    }
    Ok(())
}

/// Learning curves: one line per (variant, seed), the same colour for every seed of a
/// variant (colours assigned in variant-name order); x = epoch, y = the metric. Non-finite
/// values are left out (the line joins across them); a curve with a single point is drawn
/// as a dot. Variants are listed in a legend beside the plot.
pub fn learning_curves_svg(
    curves: &[Curve],
    title: &str,
    y_label: &str,
    path: &Path,
) -> Result<()> {
    let mut sorted: Vec<&Curve> = curves.iter().collect();
    sorted.sort_by(|a, b| a.variant.cmp(&b.variant).then(a.seed.cmp(&b.seed)));
    let mut variant_index: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &sorted {
        let next = variant_index.len();
        variant_index.entry(c.variant.as_str()).or_insert(next);
    }

    let finite = |c: &&Curve| -> Vec<(u32, f64)> {
        c.points
            .iter()
            .copied()
            .filter(|(_, v)| v.is_finite())
            .collect()
    };
    let epochs = sorted.iter().flat_map(|c| c.points.iter().map(|p| p.0));
    let x_lo = epochs.clone().min().unwrap_or(0);
    let x_hi = epochs.max().unwrap_or(1).max(x_lo + 1);
    let (y_lo, y_hi) = padded_range(sorted.iter().flat_map(|c| c.points.iter().map(|p| p.1)));

    let longest = variant_index
        .keys()
        .map(|v| v.chars().count())
        .max()
        .unwrap_or(0) as u32;
    let legend_w = (longest * CHAR_PX + 56).clamp(120, 480);
    let (width, height) = (720 + legend_w, 480);

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(title, (FONT, 20))?;
        let (plot_area, legend_area) = root.split_horizontally(width - legend_w);

        let mut chart = ChartBuilder::on(&plot_area)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(y_label)
            .max_light_lines(1)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .light_line_style(RGBColor(235, 235, 235))
            .bold_line_style(RGBColor(215, 215, 215))
            .draw()?;

        for c in &sorted {
            let col = colour(variant_index[c.variant.as_str()]);
            let points = finite(c);
            if let [only] = points[..] {
                // A line through one point draws nothing: mark it instead.
                chart.draw_series(std::iter::once(Circle::new(only, 4, col.filled())))?;
            } else {
                chart.draw_series(LineSeries::new(points, col.stroke_width(2)))?;
            }
        }

        let entries: Vec<(String, RGBColor)> = variant_index
            .iter()
            .map(|(v, &i)| (v.to_string(), colour(i)))
            .collect();
        draw_legend(&legend_area, &entries)?;
        root.present()?;
    }
    write_svg(path, &svg)
}

/// The leaderboard as a bar chart, one bar per row in the given (ranked) order: bar height =
/// mean of `metric`, error bar = ± its std over seeds, one dot per seed value taken from
/// `per_seed` (matched by variant name), and a dashed horizontal line at `reference` (e.g.
/// chance, 0.5) when given. Each bar is labelled with its mean; the variant names sit under
/// the bars, broken after each comma (`backbone=mlp,` / `pseudo=off`). Rows without the
/// metric get no bar. Bars take the rows' order and colours by rank.
pub fn leaderboard_svg(
    rows: &[LeaderRow],
    per_seed: &[RunResult],
    metric: &str,
    title: &str,
    reference: Option<f64>,
    path: &Path,
) -> Result<()> {
    let n = rows.len();
    let mean_of = |r: &LeaderRow| r.mean.get(metric).copied().filter(|v| v.is_finite());
    let std_of = |r: &LeaderRow| r.std.get(metric).copied().filter(|v| v.is_finite());
    // Seed values per row, in seed order so the dots' positions are stable.
    let seeds: Vec<Vec<f64>> = rows
        .iter()
        .map(|row| {
            let mut runs: Vec<&RunResult> =
                per_seed.iter().filter(|r| r.group == row.group).collect();
            runs.sort_by(|a, b| a.seed.cmp(&b.seed).then_with(|| a.run_id.cmp(&b.run_id)));
            runs.iter()
                .filter_map(|r| r.metrics.get(metric).copied())
                .filter(|v| v.is_finite())
                .collect()
        })
        .collect();

    // y from 0 (bars start there) to the tallest thing drawn, plus room for the labels.
    let mut lo: f64 = 0.0;
    let mut hi: f64 = 0.0;
    for (row, vals) in rows.iter().zip(&seeds) {
        if let Some(m) = mean_of(row) {
            let s = std_of(row).unwrap_or(0.0);
            lo = lo.min(m - s);
            hi = hi.max(m + s);
        }
        for &v in vals {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    if let Some(r) = reference.filter(|r| r.is_finite()) {
        lo = lo.min(r);
        hi = hi.max(r);
    }
    if hi - lo <= 0.0 {
        hi = lo + 1.0;
    }
    let span = hi - lo;
    let (y_lo, y_hi) = (
        if lo < 0.0 { lo - 0.05 * span } else { 0.0 },
        hi + 0.1 * span,
    );

    let label_lines: Vec<Vec<&str>> = rows
        .iter()
        .map(|r| r.variant.split_inclusive(',').collect())
        .collect();
    let longest_line = label_lines
        .iter()
        .flatten()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(0) as u32;
    let most_lines = label_lines.iter().map(Vec::len).max().unwrap_or(1) as u32;
    let slot_w = (longest_line * CHAR_PX + 20).max(90);
    let width = (n as u32 * slot_w + 100 + REF_LABEL_W).max(640);
    let label_h = 16 * most_lines + 24;
    let height = 440 + label_h;

    let mut svg = String::new();
    {
        // Text placed by pixel goes on `full`, whose coordinates are the backend's own (those
        // of `chart.backend_coord`); `root` is shifted down by the title.
        let full = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        full.fill(&WHITE)?;
        let root = full.titled(title, (FONT, 20))?;

        let x_max = n.max(1) as f64 - 0.5;
        let mut chart = ChartBuilder::on(&root)
            .margin(16)
            .margin_right(REF_LABEL_W)
            .x_label_area_size(label_h)
            .y_label_area_size(64)
            .build_cartesian_2d(-0.5..x_max, y_lo..y_hi)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_max_light_lines(1)
            .y_desc(metric)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .light_line_style(RGBColor(235, 235, 235))
            .bold_line_style(RGBColor(215, 215, 215))
            .draw()?;

        let value_text = TextStyle::from((FONT, 13).into_font())
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        for (i, row) in rows.iter().enumerate() {
            let x = i as f64;
            let col = colour(i);
            let Some(m) = mean_of(row) else { continue };
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x - 0.35, 0.0), (x + 0.35, m)],
                col.mix(0.75).filled(),
            )))?;
            let s = std_of(row).unwrap_or(0.0);
            let whisker = BLACK.stroke_width(2);
            chart.draw_series([
                PathElement::new(vec![(x, m - s), (x, m + s)], whisker),
                PathElement::new(vec![(x - 0.08, m - s), (x + 0.08, m - s)], whisker),
                PathElement::new(vec![(x - 0.08, m + s), (x + 0.08, m + s)], whisker),
            ])?;
            let top = seeds[i].iter().copied().fold(m + s, f64::max);
            chart.draw_series(std::iter::once(Text::new(
                format!("{m:.3}"),
                (x, top + 0.02 * span),
                value_text.clone(),
            )))?;
        }
        for (i, vals) in seeds.iter().enumerate() {
            let k = vals.len();
            let dots = vals.iter().enumerate().map(|(j, &v)| {
                // Spread a variant's seeds evenly over the middle of its bar.
                let offset = if k > 1 {
                    -0.18 + 0.36 * j as f64 / (k - 1) as f64
                } else {
                    0.0
                };
                Circle::new(
                    (i as f64 + offset, v),
                    4,
                    ShapeStyle::from(RGBColor(30, 30, 30)).filled(),
                )
            });
            chart.draw_series(dots)?;
        }
        if let Some(r) = reference.filter(|r| r.is_finite()) {
            let red = RGBColor(200, 30, 30);
            chart.draw_series(std::iter::once(DashedPathElement::new(
                vec![(-0.5, r), (x_max, r)],
                8,
                6,
                red.stroke_width(2),
            )))?;
            // Labelled in the right margin, where no bar can cover it.
            let (px, py) = chart.backend_coord(&(x_max, r));
            full.draw(&Text::new(
                format!("ref {r}"),
                (px + 6, py),
                TextStyle::from((FONT, 12).into_font())
                    .color(&red)
                    .pos(Pos::new(HPos::Left, VPos::Center)),
            ))?;
        }

        // Variant names under the bars, one comma-separated part per line.
        let name_text = TextStyle::from((FONT, 13).into_font())
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Top));
        for (i, lines) in label_lines.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(i as f64, y_lo));
            for (j, line) in lines.iter().enumerate() {
                let at = (px, py + 12 + 16 * j as i32);
                full.draw(&Text::new(line.to_string(), at, name_text.clone()))?;
            }
        }
        full.present()?;
    }
    write_svg(path, &svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::leaderboard::aggregate;

    fn tmp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("xp-plots-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn curves() -> Vec<Curve> {
        let mut out = Vec::new();
        for (vi, variant) in ["backbone=mlp,pseudo=off", "backbone=tcn,pseudo=on"]
            .iter()
            .enumerate()
        {
            for seed in 0..3u64 {
                let points = (1..=20u32)
                    .map(|e| {
                        let base = 0.5 + 0.1 * vi as f64;
                        let v = base
                            + 0.2 * (1.0 - (-(e as f64) / 6.0).exp())
                            + 0.01 * ((e as f64 * 1.7 + seed as f64).sin());
                        (e, v)
                    })
                    .collect();
                out.push(Curve {
                    variant: variant.to_string(),
                    seed,
                    points,
                });
            }
        }
        out
    }

    fn runs() -> Vec<RunResult> {
        let mut out = Vec::new();
        for (variant, accs) in [
            ("backbone=mlp,pseudo=off", [0.61, 0.64, 0.60]),
            ("backbone=tcn,pseudo=on", [0.70, 0.74, 0.72]),
            ("chance & <baseline>", [0.50, 0.48, 0.53]),
        ] {
            for (seed, acc) in accs.into_iter().enumerate() {
                out.push(RunResult {
                    run_id: format!("{variant}-{seed}"),
                    experiment: "demo".into(),
                    variant: variant.into(),
                    group: variant.into(),
                    seed: seed as u64,
                    metrics: BTreeMap::from([("accuracy".to_string(), acc)]),
                    params: 1000,
                    train_seconds: 1.0,
                    pseudo_videos: 0,
                    missing_videos: 0,
                });
            }
        }
        out
    }

    fn check_svg(path: &Path, must_contain: &[&str]) -> Vec<u8> {
        let bytes = std::fs::read(path).unwrap();
        assert!(!bytes.is_empty());
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("<svg"), "{}", &text[..40.min(text.len())]);
        assert!(text.trim_end().ends_with("</svg>"));
        for s in must_contain {
            assert!(text.contains(s), "missing {s:?}");
        }
        bytes
    }

    #[test]
    fn learning_curves_written_and_deterministic() {
        let dir = tmp_dir("curves");
        let (a, b) = (dir.join("a.svg"), dir.join("b.svg"));
        learning_curves_svg(&curves(), "Validation UAR", "uar", &a).unwrap();
        learning_curves_svg(&curves(), "Validation UAR", "uar", &b).unwrap();
        let names = [
            "backbone=mlp,pseudo=off",
            "backbone=tcn,pseudo=on",
            "Validation UAR",
        ];
        assert_eq!(check_svg(&a, &names), check_svg(&b, &names));
        // Input order does not matter either.
        let mut rev = curves();
        rev.reverse();
        learning_curves_svg(&rev, "Validation UAR", "uar", &b).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn learning_curves_edge_cases() {
        let dir = tmp_dir("curves-edge");
        let p = dir.join("nested/empty.svg");
        learning_curves_svg(&[], "nothing", "loss", &p).unwrap();
        check_svg(&p, &["nothing"]);
        let one = [Curve {
            variant: "solo".into(),
            seed: 7,
            points: vec![(3, 0.5), (4, f64::NAN)],
        }];
        learning_curves_svg(&one, "one point", "loss", &p).unwrap();
        check_svg(&p, &["solo"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn leaderboard_written_and_deterministic() {
        let dir = tmp_dir("board");
        let runs = runs();
        let rows = aggregate(&runs, "accuracy");
        let (a, b) = (dir.join("a.svg"), dir.join("b.svg"));
        leaderboard_svg(&rows, &runs, "accuracy", "Test accuracy", Some(0.5), &a).unwrap();
        leaderboard_svg(&rows, &runs, "accuracy", "Test accuracy", Some(0.5), &b).unwrap();
        let must = [
            "backbone=tcn,",
            "pseudo=on",
            "backbone=mlp,",
            "pseudo=off",
            "chance &amp; &lt;baseline&gt;",
            "Test accuracy",
            "ref 0.5",
            "0.720",
        ];
        assert_eq!(check_svg(&a, &must), check_svg(&b, &must));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn leaderboard_edge_cases() {
        let dir = tmp_dir("board-edge");
        let p = dir.join("x.svg");
        leaderboard_svg(&[], &[], "accuracy", "empty", None, &p).unwrap();
        check_svg(&p, &["empty"]);
        let runs = runs();
        let rows = aggregate(&runs, "accuracy");
        // A metric no row has: no bars, still a valid file with the names.
        leaderboard_svg(&rows, &runs, "roc_auc", "no auc", Some(0.5), &p).unwrap();
        check_svg(&p, &["backbone=tcn", "no auc"]);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
