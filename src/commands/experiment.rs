//! The experiment commands: run, runs, show, diff, leaderboard.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context, Result, bail};

use super::short;
use crate::cli::{BoardFormat, LeaderboardArgs, RunArgs};
use crate::experiment::results::{self, MetricRow, RunRow};
use crate::experiment::runner::{self, PlanStatus, RunOptions};
use crate::experiment::{current, identity, regenerate};
use crate::output::new_table;
use crate::progress::Progress;
use crate::report::leaderboard::{self, LeaderRow, RunResult};
use crate::report::paired;
use crate::report::plots;
use crate::store::Store;
use crate::train::metrics::METRIC_NAMES;

/// The note every report of demo data carries.
const SYNTHETIC_NOTE: &str = "SYNTHETIC demo data";

/// Whether the store's data came from `xp demo`: its first commit says so in the log.
fn is_demo_store(store: &Store) -> bool {
    store
        .log_seqs()
        .ok()
        .and_then(|s| s.first().copied())
        .and_then(|seq| store.read_log(seq).ok())
        .is_some_and(|e| e.operation.starts_with("demo"))
}

pub fn run(root: &Path, args: RunArgs, progress: Progress) -> Result<i32> {
    let experiment = runner::load(&args.file, &args.overrides)?;
    if experiment.runtime.threads > 0 {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(experiment.runtime.threads)
            .build_global();
    }
    let needs_demo = match Store::open(root) {
        Ok(store) => crate::ingest::known_videos(&store, &store.head()?)?.is_empty(),
        Err(_) => true,
    };
    if needs_demo {
        if !experiment.demo_if_empty {
            bail!(
                "the store at {} holds no videos: ingest data first (or set demo_if_empty: true \
                 in {} to use the synthetic demo dataset)",
                root.display(),
                args.file.display()
            );
        }
        eprintln!(
            "the store at {} holds no videos: creating the SYNTHETIC demo dataset first",
            root.display()
        );
        super::demo(root, crate::cli::DemoArgs::defaults(), progress)?;
    }
    let store = Store::open(root)?;
    let policy = runner::PlanPolicy {
        force: args.force,
        reuse_other_code: args.reuse_other_code,
    };
    if args.dry_run {
        let (snapshot_id, plans) = runner::plan(&store, &experiment, policy, args.device)?;
        let stage_ones = plans
            .iter()
            .filter(|p| p.role == runner::Role::StageOne)
            .count();
        println!(
            "experiment {} ({} runs{}) on snapshot {}",
            experiment.name,
            plans.len() - stage_ones,
            if stage_ones > 0 {
                format!(
                    ", after {stage_ones} stage-1 runs that its staged runs start from (stored \
                     as experiment {}{})",
                    experiment.name,
                    runner::STAGE_ONE_SUFFIX
                )
            } else {
                String::new()
            },
            short(&snapshot_id)
        );
        let mut t = new_table();
        let mut header = vec!["run", "variant", "seed", "data"];
        if stage_ones > 0 {
            header.push("starts from");
        }
        header.push("status");
        t.set_header(header);
        for p in &plans {
            let status = match &p.status {
                PlanStatus::Done => "done".to_string(),
                PlanStatus::DoneByOtherCode(id) => {
                    format!("done by other code (run {}), reused", short(id))
                }
                PlanStatus::Todo => "to run".to_string(),
                PlanStatus::Skipped(why) => format!("skipped: {why}"),
            };
            let mut row = vec![
                short(&p.id).to_string(),
                p.run.variant.clone(),
                p.run.seed.to_string(),
                short(&p.data.id).to_string(),
            ];
            if stage_ones > 0 {
                let from: Vec<&str> = p.stage_one.values().map(|id| short(id)).collect();
                row.push(from.join(" "));
            }
            row.push(status);
            t.add_row(row);
        }
        println!("{t}");
        return Ok(0);
    }
    let options = RunOptions {
        policy,
        device: args.device,
        progress,
        only: args.only.clone(),
    };
    if args.only.is_some() {
        // A `--jobs` worker: train the one run; the parent reports.
        runner::run_experiment(&store, &experiment, &options)?;
        return Ok(0);
    }
    let jobs = args
        .jobs
        .map_or(experiment.runtime.jobs, usize::from)
        .max(1);
    let summary = if jobs > 1 {
        let (_, plans) = runner::plan(&store, &experiment, policy, args.device)?;
        let todo: Vec<&runner::RunPlan> = plans
            .iter()
            .filter(|p| p.status == PlanStatus::Todo)
            .collect();
        // Stage-1 runs first: a staged run's worker starts from their stored weights.
        let (first, then): (Vec<&runner::RunPlan>, Vec<&runner::RunPlan>) =
            todo.iter().partition(|p| p.role == runner::Role::StageOne);
        let mut trained = 0;
        for wave in [first, then] {
            if !wave.is_empty() {
                trained += super::workers::train_in_workers(root, &args, jobs, &wave, progress)?;
            }
        }
        super::workers::summary(&plans, trained)
    } else {
        runner::run_experiment(&store, &experiment, &options)?
    };
    println!(
        "{}: trained {} runs, {} already done{}",
        experiment.name,
        summary.trained,
        summary.done_before,
        if summary.skipped.is_empty() {
            String::new()
        } else {
            format!(", {} skipped", summary.skipped.len())
        }
    );
    let mut reasons: Vec<&String> = summary.skipped.iter().map(|(_, why)| why).collect();
    reasons.dedup();
    for why in reasons {
        println!("  skipped: {why}");
    }
    // The board shows exactly the runs this file resolves to now (force aside: those are done).
    let (_, plans) = runner::plan(
        &store,
        &experiment,
        runner::PlanPolicy {
            force: false,
            ..policy
        },
        args.device,
    )?;
    let board = LeaderboardArgs {
        experiment: Some(experiment.name.clone()),
        all: false,
        format: BoardFormat::Table,
        regenerate: false,
        report_dir: Some(args.report_dir.clone()),
    };
    board_for(root, board, Some(planned_runs(&plans)), progress)
}

/// The stored runs an experiment's plan stands for: run id -> the variant it stands for on
/// this experiment's board (None for a stage-1 run, which has a board of its own).
type Planned = BTreeMap<String, Option<String>>;

/// See [`Planned`].
fn planned_runs(plans: &[runner::RunPlan]) -> Planned {
    plans
        .iter()
        .filter_map(|p| {
            let id = match &p.status {
                PlanStatus::DoneByOtherCode(id) => id.clone(),
                PlanStatus::Skipped(_) => return None,
                _ => p.id.clone(),
            };
            let variant = (p.role == runner::Role::Grid).then(|| p.run.variant.clone());
            Some((id, variant))
        })
        .collect()
}

/// Runs stored under other experiments that `planned` names as variants of `experiment`: the
/// same computations (same settings, data and code, so the same run ids), as when one
/// experiment adds seeds to another's grid. They are shown under `experiment`'s own labels.
fn shared_runs(all: &[RunRow], experiment: &str, planned: Option<&Planned>) -> Vec<RunRow> {
    let Some(planned) = planned else {
        return Vec::new();
    };
    let mut seen: BTreeSet<&str> = all
        .iter()
        .filter(|r| r.experiment == experiment)
        .map(|r| r.run_id.as_str())
        .collect();
    all.iter()
        .filter_map(|r| match planned.get(&r.run_id) {
            Some(Some(variant)) if seen.insert(r.run_id.as_str()) => Some(RunRow {
                experiment: experiment.to_string(),
                variant: variant.clone(),
                ..r.clone()
            }),
            _ => None,
        })
        .collect()
}

pub(super) fn resolve_run<'a>(runs: &'a [RunRow], prefix: &str) -> Result<&'a RunRow> {
    let matches: Vec<&RunRow> = runs
        .iter()
        .filter(|r| r.run_id.starts_with(prefix))
        .collect();
    match matches.len() {
        1 => Ok(matches[0]),
        0 => bail!("no run {prefix} (see `xp runs`)"),
        n => bail!("run prefix {prefix} is ambiguous ({n} runs match)"),
    }
}

pub fn runs(root: &Path, experiment: Option<&str>, variant: Option<&str>) -> Result<i32> {
    let store = Store::open(root)?;
    let head = store.head()?;
    let all = results::read_runs(&store, &head.snapshot)?;
    let metrics = results::read_metrics(&store, &head.snapshot)?;
    let mut t = new_table();
    t.set_header([
        "run",
        "experiment",
        "variant",
        "seed",
        "test acc",
        "test macro-F1",
        "epochs",
        "seconds",
        "started",
        "code",
    ]);
    let code = identity::code_fingerprint();
    let mut n = 0;
    let mut other_code = 0;
    for r in all.iter().filter(|r| {
        experiment.is_none_or(|e| r.experiment == e)
            && variant.is_none_or(|v| r.variant.contains(v))
    }) {
        let test = |name: &str| {
            metrics
                .get(&r.run_id)
                .and_then(|m| m.iter().find(|x| x.split == "test" && x.name == name))
                .map(|x| format!("{:.4}", x.value))
                .unwrap_or_default()
        };
        t.add_row([
            short(&r.run_id).to_string(),
            r.experiment.clone(),
            r.variant.clone(),
            r.seed.to_string(),
            test("accuracy"),
            test("macro_f1"),
            r.epochs_run.to_string(),
            format!("{:.1}", r.train_seconds),
            r.started.clone(),
            if r.code == code {
                "this".to_string()
            } else {
                other_code += 1;
                format!("OTHER {}", &r.code[..8.min(r.code.len())])
            },
        ]);
        n += 1;
    }
    if n == 0 {
        println!("no runs stored yet (train some with `xp run experiments/mlp_vs_gcn.yaml`)");
    } else {
        println!("{t}");
    }
    if other_code > 0 {
        println!(
            "{other_code} runs were made by other code (another build of xp, whose dataset, model \
             or training code differs): `xp run` trains them again with this code, and \
             leaderboards hide them unless `--all`"
        );
    }
    Ok(0)
}

fn flatten(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

pub fn show(root: &Path, prefix: &str) -> Result<i32> {
    let store = Store::open(root)?;
    let head = store.head()?;
    let all = results::read_runs(&store, &head.snapshot)?;
    let run = resolve_run(&all, prefix)?;
    let metrics = results::read_metrics(&store, &head.snapshot)?;
    let predictions = results::read_predictions(&store, &head.snapshot)?;
    println!("run {}", run.run_id);
    println!(
        "  experiment {} | variant {} | seed {} | data snapshot {} | {} on {} | xp {} | code {}{}",
        run.experiment,
        run.variant,
        run.seed,
        short(&run.data_snapshot),
        run.started,
        run.device,
        run.xp_version,
        short(&run.code),
        if run.code == identity::code_fingerprint() {
            " (this build)"
        } else {
            " (OTHER code than this build)"
        }
    );
    println!(
        "  {} parameters | {} training videos ({} pseudo-labelled) | {} protocol videos left out | {} epochs (best {}) in {:.1} s",
        run.params,
        run.train_videos,
        run.pseudo_videos,
        run.missing_videos,
        run.epochs_run,
        run.best_epoch,
        run.train_seconds
    );
    let config: serde_json::Value = serde_json::from_str(&run.config)?;
    let mut flat = BTreeMap::new();
    flatten("", &config, &mut flat);
    let mut t = new_table();
    t.set_header(["setting", "value"]);
    for (k, v) in &flat {
        t.add_row([k.clone(), v.clone()]);
    }
    println!("\nconfig\n{t}");
    let rows: &[MetricRow] = metrics.get(&run.run_id).map(Vec::as_slice).unwrap_or(&[]);
    let mut t = new_table();
    t.set_header(["test metric", "value"]);
    for name in METRIC_NAMES {
        if let Some(m) = rows.iter().find(|m| m.split == "test" && m.name == name) {
            t.add_row([name.to_string(), format!("{:.4}", m.value)]);
        }
    }
    println!("\n{t}");
    if let Some(preds) = predictions.get(&run.run_id) {
        let mut cm = [[0u32; 2]; 2];
        for (_, p, label) in preds {
            cm[usize::from(label == "win")][usize::from(*p >= run.threshold)] += 1;
        }
        let mut t = new_table();
        t.set_header(["true \\ predicted", "lose", "win"]);
        t.add_row([
            "lose".to_string(),
            cm[0][0].to_string(),
            cm[0][1].to_string(),
        ]);
        t.add_row([
            "win".to_string(),
            cm[1][0].to_string(),
            cm[1][1].to_string(),
        ]);
        println!(
            "\nconfusion matrix (test, win when prob_win >= {:.4})\n{t}",
            run.threshold
        );
    }
    let mut t = new_table();
    t.set_header([
        "epoch",
        "train loss",
        "val loss",
        "val accuracy",
        "val macro-F1",
    ]);
    let epochs: std::collections::BTreeSet<i32> = rows
        .iter()
        .filter(|m| m.split != "test")
        .map(|m| m.epoch)
        .collect();
    for e in epochs {
        let get = |split: &str, name: &str| {
            rows.iter()
                .find(|m| m.epoch == e && m.split == split && m.name == name)
                .map(|m| format!("{:.4}", m.value))
                .unwrap_or_default()
        };
        let mark = if e == run.best_epoch { " *" } else { "" };
        t.add_row([
            format!("{e}{mark}"),
            get("train", "loss"),
            get("val", "loss"),
            get("val", "accuracy"),
            get("val", "macro_f1"),
        ]);
    }
    println!("\nlearning curve (* = the epoch evaluated on test)\n{t}");
    Ok(0)
}

pub fn diff(root: &Path, a: &str, b: &str) -> Result<i32> {
    let store = Store::open(root)?;
    let head = store.head()?;
    let all = results::read_runs(&store, &head.snapshot)?;
    let (ra, rb) = (resolve_run(&all, a)?, resolve_run(&all, b)?);
    let mut fa = BTreeMap::new();
    let mut fb = BTreeMap::new();
    flatten("", &serde_json::from_str(&ra.config)?, &mut fa);
    flatten("", &serde_json::from_str(&rb.config)?, &mut fb);
    fa.insert("seed".into(), ra.seed.to_string());
    fb.insert("seed".into(), rb.seed.to_string());
    let mut t = new_table();
    t.set_header(["", short(&ra.run_id), short(&rb.run_id)]);
    let keys: std::collections::BTreeSet<&String> = fa.keys().chain(fb.keys()).collect();
    let mut differing = 0;
    for k in keys {
        let (x, y) = (
            fa.get(k).cloned().unwrap_or_default(),
            fb.get(k).cloned().unwrap_or_default(),
        );
        if x != y {
            t.add_row([k.clone(), x, y]);
            differing += 1;
        }
    }
    let metrics = results::read_metrics(&store, &head.snapshot)?;
    let test = |id: &str, name: &str| {
        metrics
            .get(id)
            .and_then(|m| m.iter().find(|x| x.split == "test" && x.name == name))
            .map(|x| x.value)
    };
    for name in METRIC_NAMES {
        let (x, y) = (test(&ra.run_id, name), test(&rb.run_id, name));
        if x.map(f64::to_bits) != y.map(f64::to_bits) {
            let f = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_default();
            t.add_row([format!("test {name}"), f(x), f(y)]);
            differing += 1;
        }
    }
    if differing == 0 {
        println!("the two runs have the same config and the same test metrics");
    } else {
        println!("{t}");
    }
    Ok(0)
}

pub fn leaderboard_cmd(root: &Path, args: LeaderboardArgs, progress: Progress) -> Result<i32> {
    // An experiment file names exactly its runs: those its settings resolve to now.
    let file = args
        .experiment
        .as_deref()
        .map(Path::new)
        .filter(|p| p.is_file() && crate::ingest::names::has_extension(p, &["yaml", "yml"]));
    let Some(file) = file else {
        return board_for(root, args, None, progress);
    };
    let experiment = runner::load(file, &[])?;
    let store = Store::open(root)?;
    let mut planned = Planned::new();
    for device in [runner::Device::Cpu, runner::Device::Cuda] {
        let (_, plans) = runner::plan(&store, &experiment, Default::default(), device)?;
        planned.extend(planned_runs(&plans));
    }
    let args = LeaderboardArgs {
        experiment: Some(experiment.name.clone()),
        ..args
    };
    board_for(root, args, Some(planned), progress)
}

/// The leaderboard of the runs `planned` names (per experiment), or else of each experiment's
/// current runs (see `experiment::current`).
fn board_for(
    root: &Path,
    args: LeaderboardArgs,
    planned: Option<Planned>,
    progress: Progress,
) -> Result<i32> {
    let store = Store::open(root)?;
    let head = store.head()?;
    let all = results::read_runs(&store, &head.snapshot)?;
    let metrics = results::read_metrics(&store, &head.snapshot)?;
    let mut experiments: Vec<String> = all.iter().map(|r| r.experiment.clone()).collect();
    experiments.dedup();
    if let Some(e) = &args.experiment {
        if !experiments.contains(e) && shared_runs(&all, e, planned.as_ref()).is_empty() {
            bail!(
                "no runs of experiment `{e}` in the store (experiments with runs: {})",
                if experiments.is_empty() {
                    "none".to_string()
                } else {
                    experiments.join(", ")
                }
            );
        }
        experiments = vec![e.clone()];
    }
    if experiments.is_empty() {
        println!("no runs stored yet (train some with `xp run experiments/mlp_vs_gcn.yaml`)");
        return Ok(0);
    }
    let note = if is_demo_store(&store) {
        SYNTHETIC_NOTE
    } else {
        ""
    };
    let paren = if note.is_empty() {
        String::new()
    } else {
        format!(" ({note})")
    };
    let code = identity::code_fingerprint();
    let predictions = results::read_predictions(&store, &head.snapshot)?;
    let mut failed = false;
    let planned_ids: Option<BTreeSet<String>> =
        planned.as_ref().map(|p| p.keys().cloned().collect());
    for name in &experiments {
        let shared = shared_runs(&all, name, planned.as_ref());
        let runs: Vec<&RunRow> = all
            .iter()
            .filter(|r| &r.experiment == name)
            .chain(&shared)
            .collect();
        let selection = current::select(&runs, planned_ids.as_ref(), &code, args.all);
        let results: Vec<RunResult> = selection
            .shown
            .iter()
            .map(|s| {
                let r = s.run;
                RunResult {
                    run_id: r.run_id.clone(),
                    experiment: r.experiment.clone(),
                    variant: s.label.clone(),
                    group: s.group.clone(),
                    seed: r.seed,
                    metrics: metrics
                        .get(&r.run_id)
                        .map(|m| {
                            m.iter()
                                .filter(|x| x.split == "test")
                                .map(|x| (x.name.clone(), x.value))
                                .collect()
                        })
                        .unwrap_or_default(),
                    params: r.params as u64,
                    train_seconds: r.train_seconds,
                    pseudo_videos: r.pseudo_videos.max(0) as u32,
                    missing_videos: r.missing_videos.max(0) as u32,
                }
            })
            .collect();
        let rows = leaderboard::aggregate(&results, "accuracy");
        let comparisons = paired_comparisons(&rows, &selection, &predictions);
        let title = if note.is_empty() {
            format!("{name}: test metrics, mean ± std over seeds")
        } else {
            format!("{name}: test metrics, mean ± std over seeds ({note})")
        };
        let hidden = current::hidden_note(&selection);
        match args.format {
            BoardFormat::Table => print!(
                "{}{}",
                leaderboard::render_terminal(&rows, &METRIC_NAMES, &title, None),
                paired::render_terminal(&comparisons)
            ),
            BoardFormat::Md => print!(
                "{}{}",
                leaderboard::render_markdown(&rows, &METRIC_NAMES, &title),
                paired::render_markdown(&comparisons)
            ),
        }
        if let Some(hidden) = &hidden {
            println!("{hidden}");
        }
        if let Some(dir) = &args.report_dir {
            let dir = dir.join(name);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            std::fs::write(
                dir.join("leaderboard.md"),
                format!(
                    "{}{}",
                    leaderboard::render_markdown(&rows, &METRIC_NAMES, &title),
                    paired::render_markdown(&comparisons)
                ),
            )?;
            plots::leaderboard_svg(
                &rows,
                &results,
                "accuracy",
                &format!("{name}: test accuracy{paren}"),
                Some(0.5),
                &dir.join("leaderboard.svg"),
            )?;
            let curves: Vec<plots::Curve> = selection
                .shown
                .iter()
                .map(|s| plots::Curve {
                    variant: s.label.clone(),
                    seed: s.run.seed,
                    points: metrics
                        .get(&s.run.run_id)
                        .map(|m| {
                            m.iter()
                                .filter(|x| x.split == "val" && x.name == "loss")
                                .map(|x| (x.epoch as u32, x.value))
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect();
            plots::learning_curves_svg(
                &curves,
                &format!("{name}: validation loss{paren}"),
                "validation loss",
                &dir.join("curves.svg"),
            )?;
            eprintln!(
                "wrote {}/leaderboard.md, leaderboard.svg and curves.svg",
                dir.display()
            );
        }
        if args.regenerate {
            failed |= !regenerate_shown(&store, &selection, &code, progress)?;
        }
    }
    Ok(if failed { 1 } else { 0 })
}

/// Paired comparisons between the shown variants (in leaderboard order, so A is the
/// better-ranked one): each run's test decisions from its stored probabilities and threshold.
fn paired_comparisons(
    rows: &[LeaderRow],
    selection: &current::Selection<'_>,
    predictions: &BTreeMap<String, Vec<results::StoredPrediction>>,
) -> Vec<paired::Comparison> {
    let variants: Vec<paired::VariantRuns> = rows
        .iter()
        .map(|row| paired::VariantRuns {
            variant: row.variant.clone(),
            seeds: selection
                .shown
                .iter()
                .filter(|s| s.group == row.group)
                .map(|s| {
                    let decisions = predictions
                        .get(&s.run.run_id)
                        .map(|p| {
                            p.iter()
                                .map(|(video, prob, label)| {
                                    (*video, (*prob >= s.run.threshold) == (label == "win"))
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    (s.run.seed, decisions)
                })
                .collect(),
        })
        .collect();
    paired::compare_all(&variants)
}

/// `--regenerate`: re-runs the runs shown from scratch. False (and says why) when a number
/// changed, when a run was made by other code (this binary cannot reproduce it, so a match
/// would prove nothing), or when there is nothing current to regenerate.
fn regenerate_shown(
    store: &Store,
    selection: &current::Selection<'_>,
    code: &str,
    progress: Progress,
) -> Result<bool> {
    let other: Vec<&RunRow> = selection
        .shown
        .iter()
        .map(|s| s.run)
        .filter(|r| r.code != code)
        .collect();
    if !other.is_empty() {
        eprintln!(
            "cannot regenerate: {} runs were made by other code (their code fingerprint {} is not \
             this xp's {}); the numbers this binary gives would not test them. Retrain them \
             with `xp run`",
            other.len(),
            &other[0].code[..12.min(other[0].code.len())],
            &code[..12.min(code.len())]
        );
        return Ok(false);
    }
    if selection.shown.is_empty() {
        eprintln!(
            "nothing to regenerate: {}",
            current::hidden_note(selection).unwrap_or_else(|| "no runs".into())
        );
        return Ok(false);
    }
    let owned: Vec<RunRow> = selection.shown.iter().map(|s| s.run.clone()).collect();
    let bar = progress.bar(owned.len() as u64, "regenerate", "runs");
    let diffs = regenerate::regenerate(store, &owned, &|_| bar.inc(1))?;
    bar.finish_and_clear();
    if diffs.is_empty() {
        println!(
            "regenerated {} runs from scratch: every number is identical",
            owned.len()
        );
        return Ok(true);
    }
    eprintln!("regeneration changed {} numbers:", diffs.len());
    for d in &diffs {
        eprintln!(
            "  run {} {}: stored {} regenerated {}",
            short(&d.run_id),
            d.what,
            d.stored,
            d.regenerated
        );
    }
    Ok(false)
}
