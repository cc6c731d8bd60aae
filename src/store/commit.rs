//! The commit protocol.
//!
//! A writer stages its new parts under `staging/<txn>/` (nothing outside it changes while the
//! input is read and checked, so bad input leaves the store exactly as it was). To commit it:
//!
//! 1. reads the head (log entry N and its snapshot) and builds its table changes on top of it;
//! 2. moves the parts it uses to `parts/` and writes the table versions and the snapshot
//!    (all content-addressed: a file of that name, if present, already holds those bytes);
//! 3. claims log entry N+1 with a create-or-fail hard link. Exactly one writer can win N+1; a
//!    loser re-reads the head, rebuilds its changes on the winner's snapshot and tries N+2.
//!
//! A crash anywhere before step 3 leaves only unreferenced files (removed by `xp gc`); after it,
//! the new snapshot is complete. Readers only ever follow the log, so they see old or new.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use arrow::array::RecordBatch;

use super::fsutil::{self, Claim};
use super::manifest::{self, LogEntry, PartRef, TableChangeSummary, TableVersion};
use super::{Head, Store, StoreLock};
use crate::fault::crash_point;

/// How often a writer re-bases before giving up (only reachable under extreme contention).
const MAX_ATTEMPTS: usize = 1000;

/// A change to one table: these parts replace the parts with the same keys.
#[derive(Debug, Clone)]
pub struct TableChange {
    pub table: String,
    pub parts: Vec<PartRef>,
}

/// What a commit did.
#[derive(Debug, Clone)]
pub enum CommitOutcome {
    /// The store moved to a new snapshot.
    Committed {
        seq: u64,
        snapshot_id: String,
        changes: Vec<TableChangeSummary>,
        /// How many times another writer got there first and this one re-based.
        rebases: usize,
    },
    /// The changes were already in the store: nothing was written.
    Unchanged { snapshot_id: String },
}

impl CommitOutcome {
    pub fn snapshot_id(&self) -> &str {
        match self {
            CommitOutcome::Committed { snapshot_id, .. } => snapshot_id,
            CommitOutcome::Unchanged { snapshot_id } => snapshot_id,
        }
    }
}

/// Encodes and stages parts for one transaction.
pub struct Stager {
    store: Store,
    dir: PathBuf,
    /// Staged part hash -> its file in the staging folder.
    staged: BTreeMap<String, PathBuf>,
}

impl Stager {
    /// Encodes `batch` as one part with the given key and stages it. Nothing outside the
    /// transaction's staging folder changes.
    pub fn stage(&mut self, key: impl Into<String>, batch: &RecordBatch) -> Result<PartRef> {
        let bytes = super::part::encode(batch)?;
        let hash = manifest::hash_bytes(&bytes);
        if !self.staged.contains_key(&hash) && !self.store.part_path(&hash).exists() {
            let path = self.dir.join(format!("{hash}.parquet"));
            fsutil::write_synced(&path, &bytes)?;
            self.staged.insert(hash.clone(), path);
        }
        Ok(PartRef {
            key: key.into(),
            file: hash,
            rows: batch.num_rows() as u64,
            bytes: bytes.len() as u64,
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The rows of a part this transaction staged (or that the store already holds).
    pub fn read_part(&self, part: &PartRef) -> Result<Vec<RecordBatch>> {
        let path = match self.staged.get(&part.file) {
            Some(path) => path.clone(),
            None => self.store.part_path(&part.file),
        };
        super::part::read_all(&path)
    }

    /// Moves a staged part into `parts/` (or checks it is already there).
    fn publish(&mut self, hash: &str) -> Result<()> {
        let dest = self.store.part_path(hash);
        match self.staged.remove(hash) {
            Some(tmp) => fsutil::publish_content_addressed(&tmp, &dest),
            None if dest.exists() => Ok(()),
            None => bail!("part {hash} was neither staged nor in the store"),
        }
    }
}

/// One writer's unit of work: stage parts, then commit them atomically, or drop to discard.
pub struct Transaction {
    stager: Stager,
    /// Held from the first staged byte to the end: gc cannot collect a part this transaction
    /// found in the store and means to reference.
    _lock: StoreLock,
}

impl Transaction {
    pub fn begin(store: &Store) -> Result<Transaction> {
        let lock = StoreLock::writer(store)?;
        let dir = store.staging_dir().join(fsutil::unique_name("txn"));
        fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Transaction {
            stager: Stager {
                store: store.clone(),
                dir,
                staged: BTreeMap::new(),
            },
            _lock: lock,
        })
    }

    pub fn stager(&mut self) -> &mut Stager {
        &mut self.stager
    }

    /// Commits the changes that `build` makes on top of the current head. `build` may run more
    /// than once (once per re-base), each time on the newest snapshot, and may stage more parts.
    pub fn commit<F>(mut self, operation: &str, mut build: F) -> Result<CommitOutcome>
    where
        F: FnMut(&mut Stager, &Head) -> Result<Vec<TableChange>>,
    {
        crash_point("staged");
        let store = self.stager.store.clone();
        for attempt in 0..MAX_ATTEMPTS {
            let head = store.head()?;
            let changes = build(&mut self.stager, &head)?;
            let base_tables = store.tables_of(&head.snapshot)?;

            let mut snapshot = head.snapshot.clone();
            let mut new_versions = Vec::new();
            let mut summaries = Vec::new();
            for change in merge_changes(changes) {
                let def = crate::schema::table(&change.table);
                let old = base_tables.get(&change.table);
                let mut parts: BTreeMap<String, PartRef> = old
                    .map(|v| v.parts.iter().map(|p| (p.key.clone(), p.clone())).collect())
                    .unwrap_or_default();
                let mut added = 0;
                let mut removed = 0;
                for part in change.parts {
                    match parts.insert(part.key.clone(), part.clone()) {
                        Some(prev) if prev == part => {}
                        Some(_) => {
                            added += 1;
                            removed += 1;
                        }
                        None => added += 1,
                    }
                }
                if added == 0 {
                    continue;
                }
                let version = TableVersion {
                    format: manifest::FORMAT,
                    table: change.table.clone(),
                    schema: def.fingerprint.clone(),
                    parts: parts.into_values().collect(),
                };
                summaries.push(TableChangeSummary {
                    table: change.table.clone(),
                    parts_added: added,
                    parts_removed: removed,
                    rows_before: old.map(|v| v.rows()).unwrap_or(0),
                    rows_after: version.rows(),
                });
                snapshot.tables.insert(change.table, version.id());
                new_versions.push(version);
            }
            let snapshot_id = snapshot.id();
            if snapshot_id == head.snapshot_id {
                return Ok(CommitOutcome::Unchanged { snapshot_id });
            }

            // Step 2: everything the new snapshot references, content-addressed.
            for version in &new_versions {
                for part in &version.parts {
                    self.stager.publish(&part.file)?;
                }
            }
            fsutil::sync_dir(&store.parts_dir())?;
            crash_point("parts-published");
            for version in &new_versions {
                fsutil::write_content_addressed(
                    &self.stager.dir,
                    &store.table_version_path(&version.id()),
                    &manifest::to_bytes(version),
                )?;
            }
            fsutil::sync_dir(&store.tables_dir())?;
            fsutil::write_content_addressed(
                &self.stager.dir,
                &store.snapshot_path(&snapshot_id),
                &manifest::to_bytes(&snapshot),
            )?;
            fsutil::sync_dir(&store.snapshots_dir())?;
            crash_point("manifests-written");

            // Step 3: the create-or-fail claim of the next log number.
            let seq = head.seq + 1;
            let entry = LogEntry {
                format: manifest::FORMAT,
                seq,
                snapshot: snapshot_id.clone(),
                parent: (head.seq > 0).then(|| head.snapshot_id.clone()),
                time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                operation: operation.to_string(),
                changes: summaries.clone(),
                checksum: String::new(),
            }
            .seal();
            match fsutil::create_or_fail(
                &self.stager.dir,
                &store.log_path(seq),
                &manifest::to_bytes(&entry),
            )? {
                Claim::Won => {
                    fsutil::sync_dir(&store.log_dir())?;
                    crash_point("log-entry-written");
                    return Ok(CommitOutcome::Committed {
                        seq,
                        snapshot_id,
                        changes: summaries,
                        rebases: attempt,
                    });
                }
                Claim::Taken => {
                    // Another writer committed first: re-base on its snapshot. A short,
                    // growing pause keeps many writers from colliding again and again.
                    std::thread::sleep(std::time::Duration::from_millis((attempt as u64 % 20) * 2));
                }
            }
        }
        bail!("gave up committing after {MAX_ATTEMPTS} attempts: too many concurrent writers")
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        // Committed or not, the staging folder has served its purpose.
        let _ = fs::remove_dir_all(&self.stager.dir);
    }
}

/// Folds several changes to one table into one, keeping the last part per key.
fn merge_changes(changes: Vec<TableChange>) -> Vec<TableChange> {
    let mut by_table: BTreeMap<String, BTreeMap<String, PartRef>> = BTreeMap::new();
    for change in changes {
        let parts = by_table.entry(change.table).or_default();
        for part in change.parts {
            parts.insert(part.key.clone(), part);
        }
    }
    by_table
        .into_iter()
        .map(|(table, parts)| TableChange {
            table,
            parts: parts.into_values().collect(),
        })
        .collect()
}
