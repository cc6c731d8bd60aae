//! Run identity: what makes two runs the same computation.

use std::collections::BTreeMap;

use anyhow::{Result, bail};

use super::spec::{
    MissingModality, Modality, ModelConfig, RunConfig, Schedule, Speakers, StageTwoConfig,
};
use crate::store::{Snapshot, Store};

/// The xp version, stored with every run for people to read.
pub const XP_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The blake3 of the code that can change a result (see `build.rs` for what it covers).
const BUILT_FINGERPRINT: &str = env!("XP_CODE_FINGERPRINT");

/// The code fingerprint that is part of every run id and stored in `runs.code`.
///
/// `XP_TEST_CODE_FINGERPRINT` stands in for another build of xp: the tests use it to show what
/// happens to runs made by other code without compiling xp twice.
pub fn code_fingerprint() -> String {
    match std::env::var("XP_TEST_CODE_FINGERPRINT") {
        Ok(fake) if !fake.is_empty() => fake,
        _ => BUILT_FINGERPRINT.to_string(),
    }
}

/// What a run reads from the store: the tables it needs, each whole or narrowed to one
/// embedding model's parts. Only these are part of its identity, so storing results, crops,
/// or the vectors of another embedding model keeps the run's id, and ingesting new image
/// vectors retrains the image runs and leaves the keypoint-only ones alone. A trainer that
/// learns to read another table must add it here.
pub fn tables_read(config: &RunConfig) -> Vec<(&'static str, Option<String>)> {
    let mut tables = vec![("videos", None), ("clips", None)];
    for m in &config.model.modalities {
        match m {
            Modality::Keypoints => tables.push(("keypoints", None)),
            Modality::Image => {
                tables.push(("embeddings", Some(config.model.image.embedding.clone())))
            }
            Modality::Text => {
                tables.push(("text_embeddings", Some(config.model.text.embedding.clone())));
                if config.model.text.speakers == Speakers::Interviewee {
                    tables.push(("transcripts", None));
                }
            }
        }
    }
    if config.train.pseudo_labels.use_ {
        tables.push(("pseudo_labels", None));
    }
    tables.sort();
    tables
}

/// The data one run reads: the snapshot narrowed to its tables, and the id that stands for
/// exactly those rows (a narrowed table counts only its model's parts).
#[derive(Debug, Clone)]
pub struct DataView {
    /// The run's tables, whole (a loader narrows embedding tables to the model itself).
    pub snapshot: Snapshot,
    pub id: String,
}

/// The part key suffix of one embedding model's parts (`video=298/model=dinov2-base`).
pub fn model_suffix(model: &str) -> String {
    format!("/model={model}")
}

/// The data view of `config` on `snapshot`.
pub fn data_view(store: &Store, snapshot: &Snapshot, config: &RunConfig) -> Result<DataView> {
    let tables = tables_read(config);
    let mut narrowed = snapshot.clone();
    narrowed
        .tables
        .retain(|name, _| tables.iter().any(|(t, _)| t == name));
    let filtered: Vec<(&str, &String)> = tables
        .iter()
        .filter_map(|(t, m)| Some((*t, m.as_ref()?)))
        .collect();
    if filtered.is_empty() {
        let id = narrowed.id();
        return Ok(DataView {
            snapshot: narrowed,
            id,
        });
    }
    // The whole tables by their version ids; the narrowed ones by their model's parts.
    let mut whole = narrowed.clone();
    let mut h = blake3::Hasher::new();
    for (table, model) in filtered {
        whole.tables.remove(table);
        let parts: Vec<(String, String)> = match narrowed.tables.get(table) {
            Some(version) => {
                let version = store.read_table_version(version)?;
                let suffix = model_suffix(model);
                version
                    .parts
                    .into_iter()
                    .filter(|p| p.key.ends_with(&suffix))
                    .map(|p| (p.key, p.file))
                    .collect()
            }
            None => Vec::new(),
        };
        let text = serde_json::to_string(&(table, model, parts)).expect("serialisable");
        h.update(&(text.len() as u64).to_le_bytes());
        h.update(text.as_bytes());
    }
    h.update(whole.id().as_bytes());
    Ok(DataView {
        snapshot: narrowed,
        id: h.finalize().to_hex().to_string(),
    })
}

/// Finds a stored snapshot whose data view for `config` has the given id (any will do: they
/// hold the same rows for this run). Searches the log newest first.
pub fn find_data_view(store: &Store, data_id: &str, config: &RunConfig) -> Result<DataView> {
    for seq in store.log_seqs()?.into_iter().rev() {
        let entry = store.read_log(seq)?;
        let Ok(snapshot) = store.read_snapshot(&entry.snapshot) else {
            continue; // collected by gc --keep
        };
        let view = data_view(store, &snapshot, config)?;
        if view.id == data_id {
            return Ok(view);
        }
    }
    bail!(
        "no snapshot in the log holds data snapshot {} (was it garbage-collected?)",
        &data_id[..12.min(data_id.len())]
    )
}

/// Everything a run computes from besides the data: stored as `runs.config`. The device is
/// part of it because floating point on a GPU does not give the CPU's bits.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ResolvedRun {
    pub seed: u64,
    pub device: String,
    pub config: RunConfig,
    /// A staged run's stage-1 runs, by modality: stage 2 starts from their stored weights, so
    /// their ids are part of what the run computed from (absent for other runs).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stage_one: BTreeMap<Modality, String>,
}

/// The canonical text of a run's settings as it is hashed and stored: the data snapshot is
/// the resolved id, never `current`.
pub fn canonical_config(
    config: &RunConfig,
    seed: u64,
    device: &str,
    data_id: &str,
    stage_one: &BTreeMap<Modality, String>,
) -> String {
    let mut config = config.clone();
    config.data.snapshot = data_id.to_string();
    let device = device.to_string();
    serde_json::to_string(&ResolvedRun {
        seed,
        device,
        config,
        stage_one: stage_one.clone(),
    })
    .expect("configs serialise")
}

/// The run that trains `modality`'s branch alone as stage 1 of the staged run `config`: that
/// branch's settings, the run's data, training and seed, one modality, a joint schedule.
/// Settings no part of that branch reads are reset to their defaults, so staged variants that
/// differ only in another branch, in stage 2 or in masking share this run (same id, trained
/// once). It trains on the videos that have its input: under `missing_modality: mask` the
/// others are left out (`allow_missing`).
pub fn stage_one_config(config: &RunConfig, modality: Modality) -> RunConfig {
    let mut c = config.clone();
    let defaults = ModelConfig::default();
    c.model.modalities = vec![modality];
    if modality != Modality::Keypoints {
        c.model.keypoints = defaults.keypoints;
    }
    if modality != Modality::Image {
        c.model.image = defaults.image;
    }
    if modality != Modality::Text {
        c.model.text = defaults.text;
    }
    if c.data.missing_modality == MissingModality::Mask {
        c.data.allow_missing = true;
    }
    c.data.missing_modality = MissingModality::Error;
    c.train.schedule = Schedule::Joint;
    c.train.stage2 = StageTwoConfig::default();
    c
}

/// blake3 of (canonical config, data snapshot, code fingerprint).
pub fn run_id(canonical: &str, data_id: &str, code: &str) -> String {
    let mut h = blake3::Hasher::new();
    for part in [canonical, data_id, code] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_changes_with_config_and_data_but_not_with_current() {
        let a = RunConfig {
            data: Default::default(),
            model: Default::default(),
            train: Default::default(),
        };
        let mut b = a.clone();
        b.data.snapshot = "@3".into();
        let id = |c: &RunConfig, seed: u64, data: &str| {
            run_id(
                &canonical_config(c, seed, "cpu", data, &BTreeMap::new()),
                data,
                "code1",
            )
        };
        // The device changes floating-point results, so it changes the id.
        assert_ne!(
            run_id(
                &canonical_config(&a, 0, "cpu", "d1", &BTreeMap::new()),
                "d1",
                "code1"
            ),
            run_id(
                &canonical_config(&a, 0, "cuda", "d1", &BTreeMap::new()),
                "d1",
                "code1"
            )
        );
        // So does the code.
        assert_ne!(
            run_id(
                &canonical_config(&a, 0, "cpu", "d1", &BTreeMap::new()),
                "d1",
                "code1"
            ),
            run_id(
                &canonical_config(&a, 0, "cpu", "d1", &BTreeMap::new()),
                "d1",
                "code2"
            )
        );
        assert_eq!(id(&a, 0, "d1"), id(&b, 0, "d1"));
        assert_ne!(id(&a, 0, "d1"), id(&a, 0, "d2"));
        assert_ne!(id(&a, 0, "d1"), id(&a, 1, "d1"));
        b.train.epochs += 1;
        assert_ne!(id(&a, 0, "d1"), id(&b, 0, "d1"));
        // A staged run's id covers its stage-1 runs.
        let staged = |ids: &[&str]| {
            let map = Modality::ALL
                .into_iter()
                .zip(ids)
                .map(|(m, id)| (m, id.to_string()))
                .collect();
            run_id(&canonical_config(&a, 0, "cpu", "d1", &map), "d1", "code1")
        };
        assert_ne!(staged(&["s1", "s2"]), staged(&["s1", "s3"]));
        assert_ne!(staged(&["s1", "s2"]), id(&a, 0, "d1"));
    }

    #[test]
    fn a_stage_one_run_keeps_what_its_branch_reads_and_drops_the_rest() {
        let mut a = RunConfig {
            data: Default::default(),
            model: Default::default(),
            train: Default::default(),
        };
        a.model.modalities = Modality::ALL.to_vec();
        a.train.schedule = Schedule::Staged;
        // Variants that differ in another branch or in stage 2 share a stage 1 ...
        let mut b = a.clone();
        b.model.text.embedding = "other-bert".into();
        b.model.modalities = vec![Modality::Keypoints, Modality::Text];
        b.train.stage2.lr *= 2.0;
        b.data.missing_modality = MissingModality::Mask;
        b.data.allow_missing = true;
        a.data.allow_missing = true;
        let one = |c: &RunConfig, m| serde_json::to_string(&stage_one_config(c, m)).unwrap();
        assert_eq!(one(&a, Modality::Keypoints), one(&b, Modality::Keypoints));
        let kp = stage_one_config(&a, Modality::Keypoints);
        assert_eq!(kp.model.modalities, vec![Modality::Keypoints]);
        assert_eq!(kp.train.schedule, Schedule::Joint);
        // ... but not when the branch's own settings differ.
        assert_ne!(one(&a, Modality::Text), one(&b, Modality::Text));
        let mut c = a.clone();
        c.train.lr *= 2.0;
        assert_ne!(one(&a, Modality::Keypoints), one(&c, Modality::Keypoints));
    }
}
