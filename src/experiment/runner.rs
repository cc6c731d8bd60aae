//! `xp run`: resolve the grid, skip what is done, train the rest, commit each run's results.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

use anyhow::{Result, bail};
use indicatif::ProgressBar;

use super::identity::{self, canonical_config, run_id};
use super::results::{self, RunRecord, RunRow};
use super::spec::{self, Experiment, PlannedRun};
use crate::dataset::{self, Splits};
use crate::progress::Progress;
use crate::store::{Store, TableChange, Transaction};
use crate::train::{self, EpochLog, TrainObserver};

/// Where training runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Device {
    Cpu,
    Cuda,
}

impl Device {
    pub fn name(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Cuda => "cuda",
        }
    }
}

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

/// Resolves an experiment against the store: ids and what is already done. Returns the
/// resolved snapshot's id and the runs.
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
    // Runs that read the same tables share their data view.
    let mut views: BTreeMap<String, identity::DataView> = BTreeMap::new();
    for run in &experiment.runs {
        let key = format!("{:?}", identity::tables_read(&run.config));
        if let std::collections::btree_map::Entry::Vacant(slot) = views.entry(key) {
            slot.insert(identity::data_view(store, &snapshot, &run.config)?);
        }
    }
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
    let plans = experiment
        .runs
        .iter()
        .map(|run| {
            let data = views[&format!("{:?}", identity::tables_read(&run.config))].clone();
            let data_id = data.id.as_str();
            let canonical = canonical_config(&run.config, run.seed, device.name(), data_id);
            let id = run_id(&canonical, data_id, &code);
            let other = by_settings.get(&(canonical.as_str(), data_id));
            let status = if run.config.train.pseudo_labels.use_ && !has_pseudo {
                PlanStatus::Skipped(
                    "the store holds no pseudo-labels (table `pseudo_labels`); ingest some to run \
                     this variant"
                        .into(),
                )
            } else if policy.force {
                PlanStatus::Todo
            } else if done.contains(id.as_str()) {
                PlanStatus::Done
            } else if let (true, Some(other)) = (policy.reuse_other_code, other) {
                PlanStatus::DoneByOtherCode(other.to_string())
            } else {
                PlanStatus::Todo
            };
            RunPlan {
                run: run.clone(),
                id,
                canonical,
                status,
                data,
            }
        })
        .collect();
    Ok((snapshot_id, plans))
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
    device: Device,
    observer: &dyn TrainObserver,
) -> Result<train::TrainOutcome> {
    match device {
        Device::Cpu => {
            type B = burn::backend::Autodiff<train::CpuBackend>;
            let dev = Default::default();
            train::train::<B>(splits, &plan.run.config, plan.run.seed, &dev, observer)
        }
        Device::Cuda => train_cuda(splits, plan, observer),
    }
}

#[cfg(feature = "cuda")]
fn train_cuda(
    splits: &Splits,
    plan: &RunPlan,
    observer: &dyn TrainObserver,
) -> Result<train::TrainOutcome> {
    type B = burn::backend::Autodiff<burn::backend::Cuda>;
    // The CUDA runtime reports a missing GPU or driver by panicking, first in its worker
    // thread (with the driver's reason), then in ours. Keep the first message quietly and turn
    // it into an error the user can act on, instead of two panics and their backtraces.
    let first: std::sync::Arc<std::sync::Mutex<Option<String>>> = Default::default();
    let seen = std::sync::Arc::clone(&first);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.is_none() {
            *seen = Some(panic_text(info.payload()));
        }
    }));
    let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let dev = burn::backend::cuda::CudaDevice::default();
        train::train::<B>(splits, &plan.run.config, plan.run.seed, &dev, observer)
    }));
    std::panic::set_hook(previous);
    match attempt {
        Ok(result) => result,
        Err(panic) => {
            let why = first
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .unwrap_or_else(|| panic_text(panic.as_ref()));
            bail!(
                "the CUDA backend failed ({why}): is there an NVIDIA GPU with its driver, and \
                 CUDA_PATH pointing at a CUDA toolkit?"
            )
        }
    }
}

/// The message of a panic payload.
#[cfg(feature = "cuda")]
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown failure".into())
}

#[cfg(not(feature = "cuda"))]
fn train_cuda(_: &Splits, _: &RunPlan, _: &dyn TrainObserver) -> Result<train::TrainOutcome> {
    bail!("this xp was built without CUDA: rebuild with `cargo build --release --features cuda`")
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
    let todo: Vec<&RunPlan> = plans
        .iter()
        .filter(|p| p.status == PlanStatus::Todo)
        .filter(|p| options.only.as_ref().is_none_or(|id| &p.id == id))
        .collect();
    if todo.is_empty() {
        return Ok(summary);
    }
    let mut datasets: BTreeMap<String, Splits> = BTreeMap::new();
    let group = options.progress.group();
    let grid_bar = group.add(options.progress.bar(todo.len() as u64, "grid", "runs"));
    for (i, plan) in todo.iter().enumerate() {
        let key = dataset_key(plan);
        if !datasets.contains_key(&key) {
            datasets.clear(); // keep one dataset in memory at a time
            let splits = dataset::load(store, &plan.data.snapshot, &plan.run.config)?;
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
        let outcome = train_one(
            splits,
            plan,
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
                experiment: experiment.name.clone(),
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
            "finished {} seed {} in {:.1} s: test accuracy {:.4}, macro-F1 {:.4} (best epoch {})",
            plan.run.variant,
            plan.run.seed,
            seconds,
            outcome.test.accuracy,
            outcome.test.macro_f1,
            outcome.best_epoch
        )
        });
        summary.trained += 1;
    }
    grid_bar.finish_and_clear();
    Ok(summary)
}

/// Commits one run's results atomically (a killed `xp run` loses at most the run in progress).
pub fn commit_run(store: &Store, record: &RunRecord) -> Result<()> {
    let [runs, metrics, predictions] = results::batches(record)?;
    let key = format!("run={}", record.row.run_id);
    let mut txn = Transaction::begin(store)?;
    let parts = [
        ("runs", txn.stager().stage(key.clone(), &runs)?),
        ("metrics", txn.stager().stage(key.clone(), &metrics)?),
        ("predictions", txn.stager().stage(key, &predictions)?),
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
