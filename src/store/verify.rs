//! `xp verify`: re-hash every file and check every reference.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::manifest::{self, LogEntry, Snapshot, TableVersion};
use super::{Store, fsutil};

/// What `verify` found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    pub files_checked: u64,
    pub bytes_checked: u64,
    /// One line per problem, each naming the damaged or missing file.
    pub problems: Vec<String>,
    /// Folders of writers that were killed (or are still running): harmless, removed by `xp gc`.
    pub staging_leftovers: usize,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

fn list(dir: &Path, suffix: &str, report: &mut VerifyReport) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        match name.strip_suffix(suffix) {
            Some(stem) => out.push((stem.to_string(), path)),
            None => report
                .problems
                .push(format!("{}: unexpected file in the store", path.display())),
        }
    }
    out.sort();
    Ok(out)
}

/// Checks the whole store. `on_file` is called once per file hashed (for progress).
pub fn verify(store: &Store, on_file: &dyn Fn(u64)) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();

    let mut parts = BTreeSet::new();
    for (hash, path) in list(&store.parts_dir(), ".parquet", &mut report)? {
        let actual = fsutil::hash_file(&path)?;
        let len = fs::metadata(&path)?.len();
        report.files_checked += 1;
        report.bytes_checked += len;
        on_file(len);
        if actual != hash {
            report.problems.push(format!(
                "{}: content does not match its name (blake3 {actual})",
                path.display()
            ));
        }
        parts.insert(hash);
    }

    let mut versions = BTreeSet::new();
    for (id, path) in list(&store.tables_dir(), ".json", &mut report)? {
        report.files_checked += 1;
        let bytes = fs::read(&path)?;
        if manifest::hash_bytes(&bytes) != id {
            report.problems.push(format!(
                "{}: table version does not match its name",
                path.display()
            ));
            continue;
        }
        let Ok(version) = serde_json::from_slice::<TableVersion>(&bytes) else {
            report
                .problems
                .push(format!("{}: not a table version", path.display()));
            continue;
        };
        for part in &version.parts {
            let part_path = store.part_path(&part.file);
            if !parts.contains(&part.file) {
                report.problems.push(format!(
                    "{}: references missing part {}",
                    path.display(),
                    part_path.display()
                ));
            } else if fs::metadata(&part_path)?.len() != part.bytes {
                report.problems.push(format!(
                    "{}: size differs from what {} records",
                    part_path.display(),
                    path.display()
                ));
            }
        }
        versions.insert(id);
    }

    let mut snapshots = BTreeSet::new();
    for (id, path) in list(&store.snapshots_dir(), ".json", &mut report)? {
        report.files_checked += 1;
        let bytes = fs::read(&path)?;
        if manifest::hash_bytes(&bytes) != id {
            report.problems.push(format!(
                "{}: snapshot does not match its name",
                path.display()
            ));
            continue;
        }
        let Ok(snapshot) = serde_json::from_slice::<Snapshot>(&bytes) else {
            report
                .problems
                .push(format!("{}: not a snapshot", path.display()));
            continue;
        };
        for (table, version) in &snapshot.tables {
            if !versions.contains(version) {
                report.problems.push(format!(
                    "{}: table `{table}` references missing version {}",
                    path.display(),
                    store.table_version_path(version).display()
                ));
            }
        }
        snapshots.insert(id);
    }

    let collected = super::gc::collected_snapshots(store);
    let mut expected_seq = 1;
    for (stem, path) in list(&store.log_dir(), ".json", &mut report)? {
        report.files_checked += 1;
        let entry = fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<LogEntry>(&b).ok());
        let Some(entry) = entry.filter(|e| e.checksum_ok()) else {
            report
                .problems
                .push(format!("{}: damaged log entry (checksum)", path.display()));
            expected_seq += 1;
            continue;
        };
        if stem.parse::<u64>().ok() != Some(entry.seq) || entry.seq != expected_seq {
            report.problems.push(format!(
                "{}: log entry number {} out of sequence (expected {expected_seq})",
                path.display(),
                entry.seq
            ));
        }
        expected_seq = entry.seq + 1;
        // A snapshot may be missing only if `xp gc --keep` collected it on purpose; the head's
        // snapshot must always be there, which is checked below.
        if !snapshots.contains(&entry.snapshot) && !collected.contains(&entry.snapshot) {
            report.problems.push(format!(
                "{}: references missing snapshot {}",
                path.display(),
                store.snapshot_path(&entry.snapshot).display()
            ));
        }
    }
    if let Some(&last) = store.log_seqs()?.last() {
        let entry = store.read_log(last).ok();
        if let Some(entry) = entry
            && !snapshots.contains(&entry.snapshot)
        {
            report.problems.push(format!(
                "{}: the current snapshot {} is missing",
                store.log_path(last).display(),
                store.snapshot_path(&entry.snapshot).display()
            ));
        }
    }

    report.staging_leftovers = fs::read_dir(store.staging_dir())?.count();
    Ok(report)
}
