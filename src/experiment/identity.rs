//! Run identity: what makes two runs the same computation.

use anyhow::{Result, bail};

use super::spec::RunConfig;
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

/// The tables a run reads. Only they are part of its identity: storing results, crops,
/// embeddings or transcripts (which the keypoint trainer does not read) keeps every run id.
/// A trainer that learns to read another table must add it here.
pub const TRAINING_TABLES: &[&str] = &["videos", "clips", "keypoints", "pseudo_labels"];

/// The data part of a snapshot: the tables in `TRAINING_TABLES`.
pub fn data_snapshot(snapshot: &Snapshot) -> Snapshot {
    let mut data = snapshot.clone();
    data.tables
        .retain(|name, _| TRAINING_TABLES.contains(&name.as_str()));
    data
}

/// Finds a stored snapshot whose data part has the given id (any will do: they hold the same
/// data tables). Searches the log newest first.
pub fn find_data_snapshot(store: &Store, data_id: &str) -> Result<Snapshot> {
    for seq in store.log_seqs()?.into_iter().rev() {
        let entry = store.read_log(seq)?;
        let Ok(snapshot) = store.read_snapshot(&entry.snapshot) else {
            continue; // collected by gc --keep
        };
        let data = data_snapshot(&snapshot);
        if data.id() == data_id {
            return Ok(data);
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
}

/// The canonical text of a run's settings as it is hashed and stored: the data snapshot is
/// the resolved id, never `current`.
pub fn canonical_config(config: &RunConfig, seed: u64, device: &str, data_id: &str) -> String {
    let mut config = config.clone();
    config.data.snapshot = data_id.to_string();
    let device = device.to_string();
    serde_json::to_string(&ResolvedRun {
        seed,
        device,
        config,
    })
    .expect("configs serialise")
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
            run_id(&canonical_config(c, seed, "cpu", data), data, "code1")
        };
        // The device changes floating-point results, so it changes the id.
        assert_ne!(
            run_id(&canonical_config(&a, 0, "cpu", "d1"), "d1", "code1"),
            run_id(&canonical_config(&a, 0, "cuda", "d1"), "d1", "code1")
        );
        // So does the code.
        assert_ne!(
            run_id(&canonical_config(&a, 0, "cpu", "d1"), "d1", "code1"),
            run_id(&canonical_config(&a, 0, "cpu", "d1"), "d1", "code2")
        );
        assert_eq!(id(&a, 0, "d1"), id(&b, 0, "d1"));
        assert_ne!(id(&a, 0, "d1"), id(&a, 0, "d2"));
        assert_ne!(id(&a, 0, "d1"), id(&a, 1, "d1"));
        b.train.epochs += 1;
        assert_ne!(id(&a, 0, "d1"), id(&b, 0, "d1"));
    }
}
