//! The data directory's ownership: the lock a running daemon holds on it, and the file it
//! writes its p2p addresses to. Shared by the daemon (`node`), the API client and `testnet`, so
//! that none of them has to depend on another to ask "is a node running here?".

use std::path::Path;

use anyhow::{Context, Result, bail};

/// The file a running daemon writes its addresses to: one multiaddr per line, ending in
/// `/p2p/<peer id>`, so that the CLI and tests can find it.
pub const ADDR_FILE: &str = "node.addr";
/// The lock a running daemon holds, so two daemons never share a data directory.
pub const LOCK_FILE: &str = "node.lock";

/// Whether a node is running on `dir` (some process holds its `node.lock`). When the lock is
/// free this takes it for an instant, so a node starting at that moment may find it busy.
pub fn is_running(dir: &Path) -> bool {
    let Ok(file) = std::fs::File::open(dir.join(LOCK_FILE)) else {
        return false;
    };
    matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
}

/// Takes the data directory's lock for as long as the returned file lives.
pub fn lock(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            bail!(
                "another gossipcoin node is already running on {}",
                dir.display()
            )
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_seen_and_a_free_one_left_free() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(!is_running(tmp.path()));
        let path = tmp.path().join(LOCK_FILE);
        let held = std::fs::File::create(&path).unwrap();
        assert!(!is_running(tmp.path()));
        held.try_lock().unwrap(); // the probe did not keep it
        assert!(is_running(tmp.path()));
        drop(held);
        let ours = lock(tmp.path()).unwrap();
        assert!(lock(tmp.path()).is_err());
        drop(ours);
    }
}
