//! `xp run`: resolve the grid, skip what is done, train the rest, commit each run's results.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::ProgressBar;

use super::identity::{self, canonical_config, run_id};
use super::results::{self, RunRecord, RunRow};
use super::spec::{self, Experiment, Modality, PlannedRun};
use crate::dataset::{self, Splits};
use crate::progress::Progress;
use crate::store::{Store, TableChange, Transaction};
use crate::train::{self, EpochLog, StageOne, TrainObserver};

pub use crate::device::Device;

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// What counts as done.
    pub policy: PlanPolicy,
    pub device: Device,
    pub progress: Progress,
    /// Train only the planned run with this id (a `--jobs` worker's share of the grid).
    pub only: Option<String>,
}

/// The plan for one run, as `--dry-run` shows it.
#[derive(Debug, Clone)]
pub struct RunPlan {
    pub run: PlannedRun,
    pub id: String,
    pub canonical: String,
    pub status: PlanStatus,
    /// The data this run reads (its id is part of the run's id).
    pub data: identity::DataView,
    pub role: Role,
    /// A staged run's stage-1 runs by modality (the ids whose weights it starts from).
    pub stage_one: BTreeMap<Modality, String>,
}

/// What a planned run is to its experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// One branch trained alone, for the stage 2 of one or more staged runs; stored under the
    /// experiment's name plus [`STAGE_ONE_SUFFIX`], so it never enters the experiment's board.
    StageOne,
    /// A run of the experiment's grid.
    Grid,
}

/// Stage-1 runs are stored as runs of the experiment `<name>/stage1`.
pub const STAGE_ONE_SUFFIX: &str = "/stage1";

impl RunPlan {
    /// The stored run that stands for this plan: another code's run when that one is reused.
    pub fn effective_id(&self) -> &str {
        match &self.status {
            PlanStatus::DoneByOtherCode(other) => other,
            _ => &self.id,
        }
    }

    /// The experiment name the run is stored under.
    pub fn experiment_name(&self, experiment: &str) -> String {
        match self.role {
            Role::StageOne => format!("{experiment}{STAGE_ONE_SUFFIX}"),
            Role::Grid => experiment.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanStatus {
    Done,
    /// Done by other code (this id of that run), reused on request.
    DoneByOtherCode(String),
    Todo,
    Skipped(String),
}

/// How `plan` treats runs that are already stored.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlanPolicy {
    /// Every run is to do, stored or not.
    pub force: bool,
    /// A run that other code made with the same settings and data counts as done.
    pub reuse_other_code: bool,
}

/// The name of a stage-1 run: its branch, plus the grid values of the staged variant that
/// reach that branch (a name for people; the id is what identifies it).
fn stage_one_variant(variant: &str, modality: Modality) -> String {
    let other_branch = |key: &str| {
        let kp = [
            "keypoints",
            "backbone",
            "streams",
            "offsets",
            "gcn",
            "mlp_hidden",
        ];
        (modality != Modality::Keypoints && kp.iter().any(|k| key.contains(k)))
            || (modality != Modality::Image && key.contains("image"))
            || (modality != Modality::Text && key.contains("text"))
    };
    let mut name = format!("stage1={}", modality.name());
    for pair in variant.split(',').filter(|p| !p.is_empty()) {
        let key = pair.split('=').next().unwrap_or_default();
        let stage_two = ["modalities", "stage2", "schedule", "missing_modality"]
            .iter()
            .any(|k| key.contains(k));
        if !stage_two && !other_branch(key) {
            name.push(',');
            name.push_str(pair);
        }
    }
    name
}

/// Resolves an experiment against the store: ids and what is already done. Returns the
/// resolved snapshot's id and the runs: first the stage-1 runs that its staged runs start from
/// (each once, however many variants share it), then the grid's runs.
pub fn plan(
    store: &Store,
    experiment: &Experiment,
    policy: PlanPolicy,
    device: Device,
) -> Result<(String, Vec<RunPlan>)> {
    let snapshot_text = &experiment.runs[0].config.data.snapshot;
    if experiment
        .runs
        .iter()
        .any(|r| &r.config.data.snapshot != snapshot_text)
    {
        bail!("data.snapshot must be the same for every run of an experiment");
    }
    let snapshot_id = store.resolve_snapshot(snapshot_text)?;
    let snapshot = store.read_snapshot(&snapshot_id)?;
    let head = store.head()?;
    let stored = results::read_runs(store, &head.snapshot)?;
    let done: BTreeSet<&str> = stored.iter().map(|r| r.run_id.as_str()).collect();
    // Stored runs by what they computed, whatever code computed them.
    let by_settings: BTreeMap<(&str, &str), &str> = stored
        .iter()
        .map(|r| {
            (
                (r.config.as_str(), r.data_snapshot.as_str()),
                r.run_id.as_str(),
            )
        })
        .collect();
    let code = identity::code_fingerprint();
    let has_pseudo = snapshot.tables.contains_key("pseudo_labels");
    // Runs that read the same tables share their data view.
    let mut views: BTreeMap<String, identity::DataView> = BTreeMap::new();
    let mut resolve = |run: PlannedRun,
                       role: Role,
                       stage_one: BTreeMap<Modality, String>,
                       blocked: Option<String>|
     -> Result<RunPlan> {
        let key = format!("{:?}", identity::tables_read(&run.config));
        if !views.contains_key(&key) {
            let view = identity::data_view(store, &snapshot, &run.config)?;
            views.insert(key.clone(), view);
        }
        let data = views[&key].clone();
        let data_id = data.id.as_str();
        let canonical = canonical_config(&run.config, run.seed, device.name(), data_id, &stage_one);
        let id = run_id(&canonical, data_id, &code);
        let other = by_settings.get(&(canonical.as_str(), data_id));
        let status = if run.config.train.pseudo_labels.use_ && !has_pseudo {
            PlanStatus::Skipped(
                "the store holds no pseudo-labels (table `pseudo_labels`); ingest some to run \
                 this variant"
                    .into(),
            )
        } else if let Some(why) = blocked {
            PlanStatus::Skipped(why)
        } else if policy.force {
            PlanStatus::Todo
        } else if done.contains(id.as_str()) {
            PlanStatus::Done
        } else if let (true, Some(other)) = (policy.reuse_other_code, other) {
            PlanStatus::DoneByOtherCode(other.to_string())
        } else {
            PlanStatus::Todo
        };
        Ok(RunPlan {
            run,
            id,
            canonical,
            status,
            data,
            role,
            stage_one,
        })
    };
    let mut stage_plans: Vec<RunPlan> = Vec::new();
    let mut grid_plans = Vec::new();
    for run in &experiment.runs {
        let mut stage_one = BTreeMap::new();
        let mut blocked = None;
        if train::is_staged(&run.config) {
            for &m in &run.config.model.modalities {
                let first = PlannedRun {
                    variant: stage_one_variant(&run.variant, m),
                    seed: run.seed,
                    config: identity::stage_one_config(&run.config, m),
                };
                let p = resolve(first, Role::StageOne, BTreeMap::new(), None)?;
                stage_one.insert(m, p.effective_id().to_string());
                if let PlanStatus::Skipped(why) = &p.status {
                    blocked = Some(format!("its stage 1 ({}) is skipped: {why}", m.name()));
                }
                if !stage_plans.iter().any(|q| q.id == p.id) {
                    stage_plans.push(p);
                }
            }
        }
        grid_plans.push(resolve(run.clone(), Role::Grid, stage_one, blocked)?);
    }
    stage_plans.extend(grid_plans);
    Ok((snapshot_id, stage_plans))
}

/// Shows progress of one run on a bar.
struct BarObserver<'a> {
    bar: &'a ProgressBar,
    label: String,
}

impl TrainObserver for BarObserver<'_> {
    fn epoch_done(&self, log: &EpochLog, total: usize) {
        self.bar.set_message(format!(
            "{} | epoch {}/{} train loss {:.3} val loss {:.3} val acc {:.3}",
            self.label, log.epoch, total, log.train_loss, log.val_loss, log.val.accuracy
        ));
    }
    fn step_done(&self) {
        self.bar.inc(1);
    }
}

/// Trains one planned run on an already loaded dataset.
pub fn train_one(
    splits: &Splits,
    plan: &RunPlan,
    stage_one: &StageOne,
    device: Device,
    observer: &dyn TrainObserver,
) -> Result<train::TrainOutcome> {
    crate::device::on_device(
        device,
        TrainJob {
            splits,
            plan,
            stage_one,
            observer,
        },
    )
}

/// One run's training, on whichever backend.
struct TrainJob<'a> {
    splits: &'a Splits,
    plan: &'a RunPlan,
    stage_one: &'a StageOne,
    observer: &'a dyn TrainObserver,
}

impl crate::device::BackendJob for TrainJob<'_> {
    type Output = train::TrainOutcome;
    fn run<B: burn::tensor::backend::Backend>(
        self,
        device: &B::Device,
    ) -> Result<train::TrainOutcome> {
        let run = &self.plan.run;
        train::train::<burn::backend::Autodiff<B>>(
            self.splits,
            &run.config,
            run.seed,
            self.stage_one,
            device,
            self.observer,
        )
    }
}

/// The stored weights of a staged run's stage-1 runs (read from the current state: a stage-1
/// run trained earlier in the same `xp run` is committed by then).
pub fn stage_one_weights(
    store: &Store,
    stage_one: &BTreeMap<Modality, String>,
) -> Result<StageOne> {
    let head = store.head()?;
    let mut out = StageOne::new();
    for (m, id) in stage_one {
        let Some(weights) = results::read_weights(store, &head.snapshot, id)? else {
            bail!(
                "stage 1 of the {} branch (run {}) has no stored weights: it is not trained yet, \
                 or was made by an xp that kept no weights (run the experiment without \
                 --reuse-other-code to train it)",
                m.name(),
                &id[..12.min(id.len())]
            );
        };
        out.insert(*m, weights);
    }
    Ok(out)
}

/// The key under which loaded datasets are shared between runs: the settings that shape them.
fn dataset_key(plan: &RunPlan) -> String {
    let c = &plan.run.config;
    serde_json::to_string(&(
        &plan.data.id,
        &c.data,
        &c.model.modalities,
        &c.model.image,
        &c.model.text,
        &c.model.keypoints.streams,
        c.model.keypoints.offsets,
        c.model.sequence.max_frames,
        c.model.sequence.sampling,
        // Which pool videos join training, with which labels and weight.
        &c.train.pseudo_labels,
    ))
    .expect("serialisable")
}

/// What `run_experiment` did.
#[derive(Debug, Default)]
pub struct RunSummary {
    pub trained: usize,
    pub done_before: usize,
    pub skipped: Vec<(String, String)>,
}

impl RunSummary {
    /// What a plan holds before anything is trained: runs done before and runs skipped.
    pub fn of_plans(plans: &[RunPlan]) -> Self {
        let mut summary = Self::default();
        for p in plans {
            match &p.status {
                PlanStatus::Done | PlanStatus::DoneByOtherCode(_) => summary.done_before += 1,
                PlanStatus::Skipped(why) => summary.skipped.push((
                    format!("{} seed {}", p.run.variant, p.run.seed),
                    why.clone(),
                )),
                PlanStatus::Todo => {}
            }
        }
        summary
    }
}

/// Runs every run of the experiment that is not done, committing each as it finishes.
pub fn run_experiment(
    store: &Store,
    experiment: &Experiment,
    options: &RunOptions,
) -> Result<RunSummary> {
    let (_, plans) = plan(store, experiment, options.policy, options.device)?;
    let mut summary = RunSummary::of_plans(&plans);
    let mut todo: Vec<&RunPlan> = plans
        .iter()
        .filter(|p| p.status == PlanStatus::Todo)
        .filter(|p| options.only.as_ref().is_none_or(|id| &p.id == id))
        .collect();
    // Stage-1 runs first (stage 2 starts from them), grouped by the data they load.
    todo.sort_by_cached_key(|p| match p.role {
        Role::StageOne => (p.role, dataset_key(p)),
        Role::Grid => (p.role, String::new()),
    });
    if todo.is_empty() {
        return Ok(summary);
    }
    // A staged run's data is checked before its stage 1 trains: a run that cannot train (a
    // video lacks an input) must fail before it leaves stage-1 runs behind.
    let mut checked = BTreeSet::new();
    for plan in todo
        .iter()
        .filter(|p| p.role == Role::Grid && train::is_staged(&p.run.config))
    {
        if checked.insert(dataset_key(plan)) {
            dataset::load(store, &plan.data.snapshot, &plan.run.config)?;
        }
    }
    let mut datasets: BTreeMap<String, Splits> = BTreeMap::new();
    let group = options.progress.group();
    let grid_bar = group.add(options.progress.bar(todo.len() as u64, "grid", "runs"));
    for (i, plan) in todo.iter().enumerate() {
        let key = dataset_key(plan);
        if !datasets.contains_key(&key) {
            datasets.clear(); // keep one dataset in memory at a time
            let splits =
                dataset::load(store, &plan.data.snapshot, &plan.run.config).with_context(|| {
                    match plan.role {
                        Role::StageOne => format!(
                            "stage 1 of the {} branch ({}), which trains on the videos that have \
                         its input",
                            plan.run.config.model.modalities[0].name(),
                            plan.run.variant
                        ),
                        Role::Grid => format!("run {}", plan.run.variant),
                    }
                })?;
            datasets.insert(key.clone(), splits);
        }
        let splits = &datasets[&key];
        let steps = train::planned_steps(&plan.run.config, splits);
        let bar = group.add(options.progress.bar(steps, "train", "steps"));
        let label = format!(
            "run {}/{} {} seed {}",
            i + 1,
            todo.len(),
            plan.run.variant,
            plan.run.seed
        );
        bar.set_message(label.clone());
        let started = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let clock = Instant::now();
        let stage_one = stage_one_weights(store, &plan.stage_one)?;
        let outcome = train_one(
            splits,
            plan,
            &stage_one,
            options.device,
            &BarObserver { bar: &bar, label },
        )?;
        let seconds = clock.elapsed().as_secs_f64();
        bar.finish_and_clear();
        group.remove(&bar);
        grid_bar.inc(1);
        let record = RunRecord {
            row: RunRow {
                run_id: plan.id.clone(),
                experiment: plan.experiment_name(&experiment.name),
                variant: plan.run.variant.clone(),
                seed: plan.run.seed,
                config: plan.canonical.clone(),
                data_snapshot: plan.data.id.clone(),
                started,
                train_seconds: seconds,
                epochs_run: outcome.epochs.len() as i32,
                best_epoch: outcome.best_epoch as i32,
                params: outcome.params as i64,
                train_videos: splits.train.len() as i32,
                pseudo_videos: splits.pseudo_labelled as i32,
                missing_videos: splits.missing.len() as i32,
                threshold: outcome.threshold,
                device: options.device.name().into(),
                xp_version: identity::XP_VERSION.into(),
                code: identity::code_fingerprint(),
            },
            outcome: &outcome,
        };
        commit_run(store, &record)?;
        crate::fault::crash_point(crate::fault::RUN_COMMITTED);
        group.suspend(|| {
            eprintln!(
            "finished {} seed {} in {:.1} s: test accuracy {:.4}, macro-F1 {:.4} (best epoch {}; \
             {})",
            plan.run.variant,
            plan.run.seed,
            seconds,
            outcome.test.accuracy,
            outcome.test.macro_f1,
            outcome.best_epoch,
            step_report(&outcome.steps),
        )
        });
        summary.trained += 1;
    }
    grid_bar.finish_and_clear();
    Ok(summary)
}

/// The first training step apart from the others: on CUDA it includes the kernels' warm-up.
fn step_report(steps: &train::StepTimes) -> String {
    if steps.count < 2 {
        return format!("{} step of {:.2} s", steps.count, steps.first);
    }
    format!(
        "first step {:.2} s, then {:.3} s a step over {} more",
        steps.first,
        steps.steady,
        steps.count - 1
    )
}

/// Commits one run's results atomically (a killed `xp run` loses at most the run in progress).
pub fn commit_run(store: &Store, record: &RunRecord) -> Result<()> {
    let [runs, metrics, predictions, weights] = results::batches(record)?;
    let key = format!("run={}", record.row.run_id);
    let mut txn = Transaction::begin(store)?;
    let parts = [
        ("runs", txn.stager().stage(key.clone(), &runs)?),
        ("metrics", txn.stager().stage(key.clone(), &metrics)?),
        (
            "predictions",
            txn.stager().stage(key.clone(), &predictions)?,
        ),
        ("weights", txn.stager().stage(key, &weights)?),
    ];
    txn.commit(&format!("run {}", record.row.experiment), |_, _| {
        Ok(parts
            .iter()
            .map(|(table, part)| TableChange {
                table: table.to_string(),
                parts: vec![part.clone()],
            })
            .collect())
    })?;
    Ok(())
}

/// Loads an experiment file (a thin wrapper kept here so commands need one import).
pub fn load(path: &Path, overrides: &[String]) -> Result<Experiment> {
    spec::load(path, overrides)
}
