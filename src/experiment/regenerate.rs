//! `xp leaderboard --regenerate`: re-run every recorded config from scratch in a fresh scratch
//! store holding only the run's data snapshot, and compare every number.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

use super::identity;
use super::identity::ResolvedRun;
use super::results::{self, MetricRow, RunRow};
use super::runner::{self, Device, PlanStatus, Role, RunPlan};
use super::spec::PlannedRun;
use crate::dataset;
use crate::store::{Snapshot, Store, fsutil, manifest};

/// A number that came out differently.
#[derive(Debug)]
pub struct Difference {
    pub run_id: String,
    pub what: String,
    pub stored: f64,
    pub regenerated: f64,
}

/// Copies one snapshot's tables (parts, table versions, snapshot) into a new store.
fn scratch_store(store: &Store, snapshot: &Snapshot, dir: &Path) -> Result<Store> {
    let (scratch, _) = Store::init(dir)?;
    for version_id in snapshot.tables.values() {
        let version = store.read_table_version(version_id)?;
        for p in &version.parts {
            let (from, to) = (store.part_path(&p.file), scratch.part_path(&p.file));
            // A hard link costs nothing; a copy when the scratch area is on another disk.
            if fs::hard_link(&from, &to).is_err() {
                fs::copy(&from, &to).with_context(|| format!("cannot copy {}", from.display()))?;
            }
        }
        fsutil::write_content_addressed(
            &scratch.staging_dir(),
            &scratch.table_version_path(version_id),
            &manifest::to_bytes(&version),
        )?;
    }
    fsutil::write_content_addressed(
        &scratch.staging_dir(),
        &scratch.snapshot_path(&snapshot.id()),
        &manifest::to_bytes(snapshot),
    )?;
    Ok(scratch)
}

/// A difference when two counts of stored and regenerated rows differ.
fn count_difference(
    run_id: &str,
    what: &str,
    stored: usize,
    regenerated: usize,
) -> Option<Difference> {
    (stored != regenerated).then(|| Difference {
        run_id: run_id.to_string(),
        what: what.to_string(),
        stored: stored as f64,
        regenerated: regenerated as f64,
    })
}

fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Re-runs the given stored runs and lists every number that changed.
pub fn regenerate(
    store: &Store,
    runs: &[RunRow],
    on_run: &dyn Fn(&RunRow),
) -> Result<Vec<Difference>> {
    let head = store.head()?;
    let stored_metrics = results::read_metrics(store, &head.snapshot)?;
    let stored_predictions = results::read_predictions(store, &head.snapshot)?;
    let mut differences = Vec::new();
    for run in runs {
        on_run(run);
        let resolved: ResolvedRun = serde_json::from_str(&run.config)
            .with_context(|| format!("run {}: the stored config does not parse", run.run_id))?;
        let config = resolved.config;
        let data = identity::find_data_view(store, &run.data_snapshot, &config)?;
        let dir = tempfile_dir()?;
        let scratch = scratch_store(store, &data.snapshot, dir.path())?;
        let splits = dataset::load(&scratch, &data.snapshot, &config)?;
        // Stage 2 starts from the stored stage-1 weights, as it did.
        let stage_one = runner::stage_one_weights(store, &resolved.stage_one)?;
        let plan = RunPlan {
            run: PlannedRun {
                variant: run.variant.clone(),
                seed: resolved.seed,
                config: config.clone(),
            },
            id: run.run_id.clone(),
            canonical: run.config.clone(),
            status: PlanStatus::Todo,
            data,
            role: if run.experiment.ends_with(runner::STAGE_ONE_SUFFIX) {
                Role::StageOne
            } else {
                Role::Grid
            },
            stage_one: resolved.stage_one.clone(),
        };
        let device = if resolved.device == "cuda" {
            Device::Cuda
        } else {
            Device::Cpu
        };
        let outcome = runner::train_one(&splits, &plan, &stage_one, device, &())?;
        if let Some(stored) = results::read_weights(store, &head.snapshot, &run.run_id)? {
            let (stored, fresh) = (stored.hash(), outcome.weights.hash());
            if stored != fresh {
                differences.push(Difference {
                    run_id: run.run_id.clone(),
                    what: format!(
                        "weights hash ({} stored, {} regenerated)",
                        &stored[..12],
                        &fresh[..12]
                    ),
                    stored: f64::NAN,
                    regenerated: f64::NAN,
                });
            }
        }
        let fresh = results::metric_rows(&outcome);
        let old: &[MetricRow] = stored_metrics
            .get(&run.run_id)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let key = |m: &MetricRow| (m.epoch, m.split.clone(), m.name.clone());
        let mut old_sorted: Vec<&MetricRow> = old.iter().collect();
        old_sorted.sort_by_key(|m| key(m));
        let mut new_sorted: Vec<&MetricRow> = fresh.iter().collect();
        new_sorted.sort_by_key(|m| key(m));
        differences.extend(count_difference(
            &run.run_id,
            "number of metric rows (early stopping took another path)",
            old_sorted.len(),
            new_sorted.len(),
        ));
        for (a, b) in old_sorted.iter().zip(&new_sorted) {
            if key(a) != key(b) || !same(a.value, b.value) {
                differences.push(Difference {
                    run_id: run.run_id.clone(),
                    what: format!("{} {} at epoch {}", a.split, a.name, a.epoch),
                    stored: a.value,
                    regenerated: b.value,
                });
            }
        }
        let old_p = stored_predictions
            .get(&run.run_id)
            .cloned()
            .unwrap_or_default();
        let mut old_p = old_p;
        old_p.sort_by_key(|p| p.0);
        let mut new_p = outcome.predictions.clone();
        new_p.sort_by_key(|p| p.0);
        differences.extend(count_difference(
            &run.run_id,
            "number of test predictions (the test set changed)",
            old_p.len(),
            new_p.len(),
        ));
        for (a, b) in old_p.iter().zip(&new_p) {
            if a.0 != b.0 || a.1.to_bits() != b.1.to_bits() {
                differences.push(Difference {
                    run_id: run.run_id.clone(),
                    what: format!("prob_win of video {}", a.0),
                    stored: a.1 as f64,
                    regenerated: b.1 as f64,
                });
            }
        }
    }
    Ok(differences)
}

/// A temporary folder for the scratch store, removed when dropped.
fn tempfile_dir() -> Result<TempDir> {
    let path = std::env::temp_dir().join(fsutil::unique_name("xp-regenerate"));
    fs::create_dir_all(&path)?;
    Ok(TempDir(path))
}

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
