//! `xp export RUN DIR`: a trained run's weights and resolved config, as files any tool reads.
//!
//! `DIR/model.safetensors` holds the best epoch's parameters (float32, named by their path in
//! the model, e.g. `keypoints.head.weight`; the header's metadata names the run and the
//! weights' hash); `DIR/config.json` holds the run's resolved config (what its id hashes), its
//! stage-1 runs if staged, and its test metrics. Both are written to temporary names and
//! renamed, so an interrupted export leaves no half-written file, and existing files are never
//! overwritten.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::experiment::identity::ResolvedRun;
use crate::experiment::results;
use crate::ingest::safetensors_file::{self, TensorData};
use crate::store::Store;

pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const CONFIG_FILE: &str = "config.json";

pub fn export(root: &Path, prefix: &str, dir: &Path) -> Result<i32> {
    let store = Store::open(root)?;
    let head = store.head()?;
    let runs = results::read_runs(&store, &head.snapshot)?;
    let run = super::experiment::resolve_run(&runs, prefix)?;
    let Some(weights) = results::read_weights(&store, &head.snapshot, &run.run_id)? else {
        bail!(
            "run {} has no stored weights (it was trained by an xp that did not keep them; \
             `xp run --force` on its experiment trains it again)",
            super::short(&run.run_id)
        );
    };
    let resolved: ResolvedRun = serde_json::from_str(&run.config)
        .with_context(|| format!("run {}: the stored config does not parse", run.run_id))?;
    let weights_path = dir.join(WEIGHTS_FILE);
    let config_path = dir.join(CONFIG_FILE);
    for path in [&weights_path, &config_path] {
        if path.exists() {
            bail!(
                "{} already exists: export into an empty or new folder",
                path.display()
            );
        }
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;

    let hash = weights.hash();
    let metadata: BTreeMap<String, String> = [
        ("format", "pt".to_string()),
        ("xp.run_id", run.run_id.clone()),
        ("xp.experiment", run.experiment.clone()),
        ("xp.variant", run.variant.clone()),
        ("xp.weights_hash", hash.clone()),
        ("xp.config", run.config.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let tensors: Vec<(&str, &[usize], TensorData<'_>)> = weights
        .tensors
        .iter()
        .map(|t| {
            (
                t.name.as_str(),
                t.shape.as_slice(),
                TensorData::F32(&t.values),
            )
        })
        .collect();
    let metrics = results::read_metrics(&store, &head.snapshot)?;
    let test: BTreeMap<&str, f64> = metrics
        .get(&run.run_id)
        .into_iter()
        .flatten()
        .filter(|m| m.split == "test")
        .map(|m| (m.name.as_str(), m.value))
        .collect();
    let config = serde_json::json!({
        "run_id": run.run_id,
        "experiment": run.experiment,
        "variant": run.variant,
        "seed": resolved.seed,
        "device": resolved.device,
        "data_snapshot": run.data_snapshot,
        "code": run.code,
        "xp_version": run.xp_version,
        "best_epoch": run.best_epoch,
        "threshold": run.threshold,
        "weights_hash": hash,
        "params": weights.params(),
        "stage_one": resolved.stage_one,
        "test": test,
        "config": resolved.config,
    });
    let tmp_weights = dir.join(format!(".{WEIGHTS_FILE}.partial"));
    let tmp_config = dir.join(format!(".{CONFIG_FILE}.partial"));
    safetensors_file::write(&tmp_weights, &tensors, Some(&metadata))
        .with_context(|| format!("cannot write {}", tmp_weights.display()))?;
    let mut text = serde_json::to_string_pretty(&config)?;
    text.push('\n');
    fs::write(&tmp_config, text)
        .with_context(|| format!("cannot write {}", tmp_config.display()))?;
    fs::rename(&tmp_weights, &weights_path)?;
    fs::rename(&tmp_config, &config_path)?;
    println!(
        "exported run {} ({} {}, seed {}): {} tensors, {} parameters, weights {}\n  {}\n  {}",
        super::short(&run.run_id),
        run.experiment,
        run.variant,
        run.seed,
        weights.tensors.len(),
        weights.params(),
        super::short(&hash),
        weights_path.display(),
        config_path.display()
    );
    Ok(0)
}
