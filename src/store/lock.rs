//! The store's writer lock: an advisory file lock on `store/writers.lock`.
//!
//! Every transaction holds it shared from the moment it starts staging until it is committed
//! or dropped; `xp gc` takes it exclusive. So gc never runs while a writer may reuse a part
//! that is about to be collected, and a writer never starts while gc deletes. The operating
//! system releases the lock when its process dies (also on SIGKILL), so a killed writer never
//! blocks gc. `flock`-style locks behave the same on Linux and macOS.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use super::Store;

const LOCK_FILE: &str = "writers.lock";

/// A held lock; released when dropped.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

fn open(store: &Store) -> Result<(File, PathBuf)> {
    let path = store.root().join(LOCK_FILE);
    // Stores made before the lock existed get the file on first use.
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open the store's lock file {}", path.display()))?;
    Ok((file, path))
}

impl StoreLock {
    /// A writer's shared lock: waits while gc holds the lock exclusively.
    pub fn writer(store: &Store) -> Result<StoreLock> {
        let (file, path) = open(store)?;
        file.lock_shared()
            .with_context(|| format!("cannot lock {}", path.display()))?;
        Ok(StoreLock { _file: file })
    }

    /// gc's exclusive lock: fails at once if any writer holds the lock.
    pub fn collector(store: &Store) -> Result<StoreLock> {
        let (file, path) = open(store)?;
        match file.try_lock() {
            Ok(()) => Ok(StoreLock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "another xp process is writing to this store ({} is held); run gc when it has \
                 finished",
                path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_share_and_exclude_the_collector() {
        let dir = std::env::temp_dir().join(super::super::fsutil::unique_name("xp-lock-test"));
        let (store, _) = Store::init(&dir).unwrap();
        let a = StoreLock::writer(&store).unwrap();
        let b = StoreLock::writer(&store).unwrap();
        let e = StoreLock::collector(&store).unwrap_err();
        assert!(e.to_string().contains("another xp process"), "{e}");
        drop(a);
        assert!(
            StoreLock::collector(&store).is_err(),
            "one writer still holds it"
        );
        drop(b);
        let gc = StoreLock::collector(&store).unwrap();
        drop(gc);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
