//! The content-addressed store: a folder of immutable Parquet parts plus manifests.
//!
//! ```text
//! store/
//!   xp-store.json            marker: this folder is an xp store, and its format
//!   parts/<blake3>.parquet   immutable table parts, named by the hash of their bytes
//!   tables/<blake3>.json     table versions: the list of parts of one table
//!   snapshots/<blake3>.json  snapshots: table name -> table version
//!   log/<seq>.json           the commit log; the highest number is the current snapshot
//!   staging/                 work in progress of running (or killed) writers; never read
//!   writers.lock             held shared by every writer, exclusive by gc (see `lock.rs`)
//! ```
//! See `commit.rs` for how a writer moves the store from one snapshot to the next.

mod commit;
pub mod fsutil;
mod gc;
mod lock;
pub mod manifest;
pub mod part;
mod verify;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

pub use commit::{CommitOutcome, Stager, TableChange, Transaction};
pub use gc::{GcReport, collected_snapshots as gc_collected, gc};
pub use lock::StoreLock;
pub use manifest::{LogEntry, PartRef, Snapshot, TableVersion};
pub use verify::{VerifyReport, verify};

/// The marker file's name and content.
const MARKER: &str = "xp-store.json";

#[derive(Serialize, Deserialize)]
struct Marker {
    kind: String,
    format: u32,
}

/// An opened store.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// The current state: the newest log entry's number and the snapshot it names.
#[derive(Debug, Clone)]
pub struct Head {
    /// 0 for a store with no commit yet.
    pub seq: u64,
    pub snapshot_id: String,
    pub snapshot: Snapshot,
}

const SUBDIRS: &[&str] = &["parts", "tables", "snapshots", "log", "staging"];

impl Store {
    /// Creates a store in `root` (the folder may exist, but must not already hold one).
    /// Returns false when a store was already there.
    pub fn init(root: &Path) -> Result<(Store, bool)> {
        if root.join(MARKER).exists() {
            return Ok((Store::open(root)?, false));
        }
        fs::create_dir_all(root)
            .with_context(|| format!("cannot create store folder {}", root.display()))?;
        for sub in SUBDIRS {
            fs::create_dir_all(root.join(sub))
                .with_context(|| format!("cannot create {}", root.join(sub).display()))?;
        }
        let store = Store {
            root: root.to_path_buf(),
        };
        // The empty snapshot exists on disk so that it can be named like any other.
        let empty = Snapshot::empty();
        fsutil::write_content_addressed(
            &store.staging_dir(),
            &store.snapshot_path(&empty.id()),
            &manifest::to_bytes(&empty),
        )?;
        let marker = Marker {
            kind: "xp-store".into(),
            format: manifest::FORMAT,
        };
        // The marker is written last: a store folder without it is not a store yet.
        fsutil::write_content_addressed(
            &store.staging_dir(),
            &root.join(MARKER),
            &manifest::to_bytes(&marker),
        )?;
        fsutil::sync_dir(root)?;
        Ok((store, true))
    }

    /// Opens an existing store.
    pub fn open(root: &Path) -> Result<Store> {
        let marker_path = root.join(MARKER);
        let text = match fs::read(&marker_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "no xp store at {} (create one with `xp init`, or point --store / XP_STORE at one)",
                root.display()
            ),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", marker_path.display()));
            }
        };
        let marker: Marker = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not an xp store marker", marker_path.display()))?;
        if marker.kind != "xp-store" || marker.format != manifest::FORMAT {
            bail!(
                "{} holds store format {} of kind `{}`; this xp reads format {}",
                root.display(),
                marker.format,
                marker.kind,
                manifest::FORMAT
            );
        }
        for sub in SUBDIRS {
            if !root.join(sub).is_dir() {
                bail!("store {} is missing its `{sub}` folder", root.display());
            }
        }
        Ok(Store {
            root: root.to_path_buf(),
        })
    }

    /// Opens the store, creating it first if the folder holds none.
    pub fn open_or_init(root: &Path) -> Result<Store> {
        Ok(Store::init(root)?.0)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn parts_dir(&self) -> PathBuf {
        self.root.join("parts")
    }
    pub fn tables_dir(&self) -> PathBuf {
        self.root.join("tables")
    }
    pub fn snapshots_dir(&self) -> PathBuf {
        self.root.join("snapshots")
    }
    pub fn log_dir(&self) -> PathBuf {
        self.root.join("log")
    }
    pub fn staging_dir(&self) -> PathBuf {
        self.root.join("staging")
    }
    pub fn part_path(&self, hash: &str) -> PathBuf {
        self.parts_dir().join(format!("{hash}.parquet"))
    }
    pub fn table_version_path(&self, id: &str) -> PathBuf {
        self.tables_dir().join(format!("{id}.json"))
    }
    pub fn snapshot_path(&self, id: &str) -> PathBuf {
        self.snapshots_dir().join(format!("{id}.json"))
    }
    pub fn log_path(&self, seq: u64) -> PathBuf {
        self.log_dir().join(format!("{seq:010}.json"))
    }

    /// The numbers of all log entries, ascending.
    pub fn log_seqs(&self) -> Result<Vec<u64>> {
        let mut seqs = Vec::new();
        for entry in fs::read_dir(self.log_dir())
            .with_context(|| format!("cannot list {}", self.log_dir().display()))?
        {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(n) = name
                .strip_suffix(".json")
                .and_then(|s| s.parse::<u64>().ok())
            {
                seqs.push(n);
            }
        }
        seqs.sort_unstable();
        Ok(seqs)
    }

    pub fn read_log(&self, seq: u64) -> Result<LogEntry> {
        let path = self.log_path(seq);
        let bytes = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let entry: LogEntry = serde_json::from_slice(&bytes)
            .with_context(|| format!("damaged log entry {} (run `xp verify`)", path.display()))?;
        if !entry.checksum_ok() || entry.seq != seq {
            bail!("damaged log entry {} (run `xp verify`)", path.display());
        }
        Ok(entry)
    }

    /// The current snapshot.
    pub fn head(&self) -> Result<Head> {
        match self.log_seqs()?.last() {
            None => {
                let snapshot = Snapshot::empty();
                Ok(Head {
                    seq: 0,
                    snapshot_id: snapshot.id(),
                    snapshot,
                })
            }
            Some(&seq) => {
                let entry = self.read_log(seq)?;
                let snapshot = self.read_snapshot(&entry.snapshot)?;
                Ok(Head {
                    seq,
                    snapshot_id: entry.snapshot,
                    snapshot,
                })
            }
        }
    }

    /// Reads a content-addressed JSON record and checks that its bytes match its name.
    fn read_addressed<T: serde::de::DeserializeOwned>(&self, path: &Path, id: &str) -> Result<T> {
        let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        if manifest::hash_bytes(&bytes) != id {
            bail!(
                "{} does not match its hash: the file is damaged (run `xp verify`)",
                path.display()
            );
        }
        serde_json::from_slice(&bytes).with_context(|| format!("cannot parse {}", path.display()))
    }

    pub fn read_snapshot(&self, id: &str) -> Result<Snapshot> {
        self.read_addressed(&self.snapshot_path(id), id)
    }

    pub fn read_table_version(&self, id: &str) -> Result<TableVersion> {
        self.read_addressed(&self.table_version_path(id), id)
    }

    /// Every table version of a snapshot, by table name.
    pub fn tables_of(&self, snapshot: &Snapshot) -> Result<BTreeMap<String, TableVersion>> {
        snapshot
            .tables
            .iter()
            .map(|(name, id)| Ok((name.clone(), self.read_table_version(id)?)))
            .collect()
    }

    /// Every row of `table` in a snapshot (none if the snapshot lacks the table).
    pub fn read_rows(
        &self,
        snapshot: &Snapshot,
        table: &str,
    ) -> Result<Vec<arrow::array::RecordBatch>> {
        let Some(version_id) = snapshot.tables.get(table) else {
            return Ok(Vec::new());
        };
        let mut batches = Vec::new();
        for p in &self.read_table_version(version_id)?.parts {
            batches.extend(part::read_all(&self.part_path(&p.file))?);
        }
        Ok(batches)
    }

    /// The rows of the part with the given key (e.g. `video=298`), if the table has one.
    pub fn read_keyed_part(
        &self,
        snapshot: &Snapshot,
        table: &str,
        key: &str,
    ) -> Result<Vec<arrow::array::RecordBatch>> {
        let Some(version_id) = snapshot.tables.get(table) else {
            return Ok(Vec::new());
        };
        match self
            .read_table_version(version_id)?
            .parts
            .iter()
            .find(|p| p.key == key)
        {
            Some(p) => part::read_all(&self.part_path(&p.file)),
            None => Ok(Vec::new()),
        }
    }

    /// Only the named columns of every row of `table` (none if the snapshot lacks the table).
    pub fn read_columns(
        &self,
        snapshot: &Snapshot,
        table: &str,
        columns: &[&str],
    ) -> Result<Vec<arrow::array::RecordBatch>> {
        let Some(version_id) = snapshot.tables.get(table) else {
            return Ok(Vec::new());
        };
        let mut batches = Vec::new();
        for p in &self.read_table_version(version_id)?.parts {
            batches.extend(part::read_columns(&self.part_path(&p.file), Some(columns))?);
        }
        Ok(batches)
    }

    /// Turns what a user typed into a snapshot id: `current`, a log number (`@3`), or an id
    /// or unique prefix of one (at least 6 characters), like git.
    pub fn resolve_snapshot(&self, text: &str) -> Result<String> {
        if text == "current" || text == "HEAD" {
            return Ok(self.head()?.snapshot_id);
        }
        if let Some(n) = text.strip_prefix('@') {
            let seq: u64 = n
                .parse()
                .with_context(|| format!("`{text}`: expected @ followed by a log number"))?;
            return Ok(self.read_log(seq)?.snapshot);
        }
        if text.len() < 6 || !text.chars().all(|c| c.is_ascii_hexdigit()) {
            bail!("`{text}` is not a snapshot id (give `current`, `@N`, or 6+ hex digits)");
        }
        let mut found = Vec::new();
        for entry in fs::read_dir(self.snapshots_dir())? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(".json")
                && id.starts_with(&text.to_ascii_lowercase())
            {
                found.push(id.to_string());
            }
        }
        match found.len() {
            1 => Ok(found.pop().unwrap()),
            0 => bail!(
                "no snapshot {text} in {} (see `xp log`)",
                self.root.display()
            ),
            n => bail!("snapshot prefix {text} is ambiguous ({n} snapshots match)"),
        }
    }
}
