//! The store's metadata records: parts, table versions, snapshots and log entries.
//!
//! Table versions and snapshots are content-addressed (their file name is the blake3 of their
//! bytes) and hold no time or history, so the same data always has the same snapshot id, on any
//! machine. History lives in the numbered log entries, which point at snapshots.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The manifest format version; bump when the layout of any record changes.
pub const FORMAT: u32 = 1;

/// One immutable Parquet file of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRef {
    /// What the part holds: `video=298` for per-video tables, `all` for whole tables.
    pub key: String,
    /// blake3 of the file's bytes; the file is `parts/<file>.parquet`.
    pub file: String,
    pub rows: u64,
    pub bytes: u64,
}

/// One version of one table: the list of its parts, sorted by key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableVersion {
    pub format: u32,
    pub table: String,
    /// Fingerprint of the columns the parts were written with.
    pub schema: String,
    pub parts: Vec<PartRef>,
}

impl TableVersion {
    pub fn rows(&self) -> u64 {
        self.parts.iter().map(|p| p.rows).sum()
    }
    pub fn bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.bytes).sum()
    }
}

/// A whole store state: table name -> table version id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub format: u32,
    pub tables: BTreeMap<String, String>,
}

/// What one commit did to one table, for `xp log`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableChangeSummary {
    pub table: String,
    pub parts_added: u64,
    pub parts_removed: u64,
    pub rows_before: u64,
    pub rows_after: u64,
}

/// One numbered entry of the commit log: the store moved to `snapshot`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub format: u32,
    pub seq: u64,
    pub snapshot: String,
    pub parent: Option<String>,
    /// UTC, RFC 3339.
    pub time: String,
    /// The command that made the commit, e.g. `ingest openpose`.
    pub operation: String,
    pub changes: Vec<TableChangeSummary>,
    /// blake3 of this entry serialised with an empty checksum, so `xp verify` can tell a damaged
    /// log entry from a good one (log entries are named by number, not by hash).
    pub checksum: String,
}

/// Serialises a record the one way the store writes it.
pub fn to_bytes<T: Serialize>(record: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(record).expect("manifests always serialise");
    bytes.push(b'\n');
    bytes
}

/// The content address of some bytes.
pub fn hash_bytes(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

impl Snapshot {
    pub fn empty() -> Self {
        Snapshot {
            format: FORMAT,
            tables: BTreeMap::new(),
        }
    }
    pub fn id(&self) -> String {
        hash_bytes(&to_bytes(self))
    }
}

impl TableVersion {
    pub fn id(&self) -> String {
        hash_bytes(&to_bytes(self))
    }
}

impl LogEntry {
    fn checksum_of(&self) -> String {
        let mut copy = self.clone();
        copy.checksum.clear();
        hash_bytes(&to_bytes(&copy))
    }
    /// Fills in the checksum; call last.
    pub fn seal(mut self) -> Self {
        self.checksum = self.checksum_of();
        self
    }
    pub fn checksum_ok(&self) -> bool {
        self.checksum == self.checksum_of()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_id_depends_only_on_content() {
        let mut a = Snapshot::empty();
        a.tables.insert("videos".into(), "aa".into());
        a.tables.insert("clips".into(), "bb".into());
        let mut b = Snapshot::empty();
        b.tables.insert("clips".into(), "bb".into());
        b.tables.insert("videos".into(), "aa".into());
        assert_eq!(a.id(), b.id());
        b.tables.insert("videos".into(), "ab".into());
        assert_ne!(a.id(), b.id());
    }

    #[test]
    fn log_checksum_detects_edits() {
        let entry = LogEntry {
            format: FORMAT,
            seq: 1,
            snapshot: "s".into(),
            parent: None,
            time: "2026-01-01T00:00:00Z".into(),
            operation: "ingest".into(),
            changes: vec![],
            checksum: String::new(),
        }
        .seal();
        assert!(entry.checksum_ok());
        let mut edited = entry.clone();
        edited.operation = "ingest!".into();
        assert!(!edited.checksum_ok());
    }
}
