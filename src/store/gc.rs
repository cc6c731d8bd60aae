//! `xp gc`: delete what no kept snapshot references.
//!
//! Safe beside running writers: gc holds the store's lock exclusively (see `lock.rs`) from
//! before it lists anything until it has deleted, and every writer holds it shared for its
//! whole transaction. So no writer is staging, publishing or committing while gc decides, and
//! every staging folder it finds belongs to a writer that died.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::manifest::{self, Snapshot};
use super::{Store, StoreLock, fsutil};

/// Records which snapshots `gc --keep` dropped, so `xp verify` and `xp log` know their absence
/// is deliberate.
const COLLECTED: &str = "collected.json";

#[derive(Debug, Default)]
pub struct GcReport {
    pub kept_snapshots: usize,
    pub removed_files: Vec<PathBuf>,
    pub removed_bytes: u64,
    pub dry_run: bool,
}

/// The snapshots an earlier `gc --keep` collected.
pub fn collected_snapshots(store: &Store) -> BTreeSet<String> {
    fs::read(store.root().join(COLLECTED))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    out.sort();
    Ok(out)
}

fn stem(path: &Path) -> String {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    name.split('.').next().unwrap_or_default().to_string()
}

/// Removes every part, table version and snapshot that no kept snapshot references, and the
/// staging folders of writers that died. `keep`: keep only the snapshots of the newest `keep`
/// log entries (None: keep every snapshot in the log).
pub fn gc(store: &Store, keep: Option<usize>, dry_run: bool) -> Result<GcReport> {
    if keep == Some(0) {
        bail!("--keep must be at least 1: the current snapshot is always kept");
    }
    // 1. No writer while gc works; then the candidates.
    let _lock = StoreLock::collector(store)?;
    let parts = list(&store.parts_dir())?;
    let versions = list(&store.tables_dir())?;
    let snapshots = list(&store.snapshots_dir())?;
    let staging = list(&store.staging_dir())?;

    // 2. What the kept snapshots reach.
    let seqs = store.log_seqs()?;
    let kept_from = keep.map(|k| seqs.len().saturating_sub(k)).unwrap_or(0);
    let mut kept: BTreeSet<String> = BTreeSet::new();
    kept.insert(Snapshot::empty().id());
    let mut dropped = collected_snapshots(store);
    for (i, seq) in seqs.iter().enumerate() {
        let entry = store.read_log(*seq)?;
        if i >= kept_from {
            kept.insert(entry.snapshot);
        } else {
            dropped.insert(entry.snapshot);
        }
    }
    dropped.retain(|s| !kept.contains(s));
    let mut kept_versions = BTreeSet::new();
    let mut kept_parts = BTreeSet::new();
    for id in &kept {
        let snapshot = match store.read_snapshot(id) {
            Ok(s) => s,
            Err(_) if dropped.contains(id) => continue,
            Err(e) => return Err(e),
        };
        for version_id in snapshot.tables.values() {
            let version = store.read_table_version(version_id)?;
            kept_parts.extend(version.parts.iter().map(|p| p.file.clone()));
            kept_versions.insert(version_id.clone());
        }
    }

    // 3. Everything else goes.
    let mut report = GcReport {
        kept_snapshots: kept.len(),
        dry_run,
        ..GcReport::default()
    };
    let mut doomed: Vec<PathBuf> = Vec::new();
    doomed.extend(parts.into_iter().filter(|p| !kept_parts.contains(&stem(p))));
    doomed.extend(
        versions
            .into_iter()
            .filter(|p| !kept_versions.contains(&stem(p))),
    );
    doomed.extend(snapshots.into_iter().filter(|p| !kept.contains(&stem(p))));
    for path in &doomed {
        report.removed_bytes += fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    }
    for dir in &staging {
        report.removed_bytes += dir_size(dir);
    }
    if !dry_run {
        if !dropped.is_empty() {
            // Record the deliberate drops before deleting, so a crash in between still
            // explains the missing snapshots.
            let bytes = manifest::to_bytes(&dropped);
            let tmp = store.staging_dir().join(fsutil::unique_name("collected"));
            fsutil::write_synced(&tmp, &bytes)?;
            fs::rename(&tmp, store.root().join(COLLECTED))?;
            fsutil::sync_dir(store.root())?;
        }
        crate::fault::pause_point(crate::fault::GC_DECIDED);
        for path in &doomed {
            fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()))?;
        }
        for dir in &staging {
            let _ = fs::remove_dir_all(dir).or_else(|_| fs::remove_file(dir));
        }
    }
    report.removed_files = doomed;
    report.removed_files.extend(staging);
    Ok(report)
}

fn dir_size(path: &Path) -> u64 {
    if path.is_file() {
        return fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    }
    fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| dir_size(&e.path()))
                .sum()
        })
        .unwrap_or(0)
}
