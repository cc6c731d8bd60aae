//! The few file-system primitives the commit protocol is built from.
//!
//! Every durable write goes: write a temporary file, fsync it, then either rename it into place
//! (content-addressed files, where any writer of the same name writes the same bytes) or
//! hard-link it into place (log entries, where the link fails if the name is taken: that is the
//! store's one create-or-fail step).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};

/// A name for a temporary file that no other thread or process will pick.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos}-{n}", std::process::id())
}

/// Writes `bytes` to a new file at `path` and fsyncs it.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Makes a directory's entries durable (a rename or link is only durable once its directory is).
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot fsync directory {}", dir.display()))
}

/// Moves a synced temporary file to its content-addressed name. If the name already exists it
/// holds the same bytes (same hash), so the temporary file is simply dropped.
pub fn publish_content_addressed(tmp: &Path, dest: &Path) -> Result<()> {
    if dest.exists() {
        let _ = fs::remove_file(tmp);
        return Ok(());
    }
    fs::rename(tmp, dest)
        .with_context(|| format!("cannot move {} to {}", tmp.display(), dest.display()))
}

/// Writes content-addressed bytes to `dir/NAME` via a temporary file in `tmp_dir`.
pub fn write_content_addressed(tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
    if dest.exists() {
        return Ok(());
    }
    let tmp = tmp_dir.join(unique_name("obj"));
    write_synced(&tmp, bytes)?;
    publish_content_addressed(&tmp, dest)
}

/// Outcome of the create-or-fail step.
pub enum Claim {
    Won,
    Taken,
}

/// Publishes `bytes` at `dest` only if nothing is there yet, atomically: a hard link either
/// creates the name with the complete, synced content, or fails because it exists.
pub fn create_or_fail(tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> Result<Claim> {
    let tmp: PathBuf = tmp_dir.join(unique_name("claim"));
    write_synced(&tmp, bytes)?;
    let outcome = match fs::hard_link(&tmp, dest) {
        Ok(()) => Ok(Claim::Won),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Claim::Taken),
        Err(e) => Err(e).with_context(|| format!("cannot create {}", dest.display())),
    };
    let _ = fs::remove_file(&tmp);
    outcome
}

/// blake3 of a file's bytes, as lowercase hex, streaming.
pub fn hash_file(path: &Path) -> Result<String> {
    let mut hasher = blake3::Hasher::new();
    let mut f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    io::copy(&mut f, &mut hasher).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hasher.finalize().to_hex().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_or_fail_lets_exactly_one_writer_win() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("entry");
        assert!(matches!(
            create_or_fail(dir.path(), &dest, b"first").unwrap(),
            Claim::Won
        ));
        assert!(matches!(
            create_or_fail(dir.path(), &dest, b"second").unwrap(),
            Claim::Taken
        ));
        assert_eq!(fs::read(&dest).unwrap(), b"first");
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
