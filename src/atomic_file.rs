//! Replacing a file so that a reader (or a restart after `kill -9` or a power cut) sees the old
//! contents or the new ones, never half of either: write a temporary file beside it, fsync it,
//! rename it over the target, fsync the directory. Used for `wallet.dat`, `wallet.pending`,
//! `wallet.history`, `mempool.dat`, `banlist.json`, `anchors.json` and a parameters file given
//! its genesis; [`sync_dir`] also makes the chain store's rename into place durable.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A file system step that failed: `action` says which ("write", "sync", ...), `path` on what.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}: {source}", path.display())]
pub struct FileError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl FileError {
    fn at(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| Self {
            action,
            path,
            source,
        }
    }
}

/// Replaces the file at `path` with `bytes`: temp file, write, mode 0600, fsync, rename, fsync
/// of the directory. On failure the old file is untouched and the temp file removed.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    // Unique per process and call, so concurrent unlocked saves never share a temp file.
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let write = || -> Result<(), FileError> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(FileError::at("create a temporary file in", dir))?;
        file.write_all(bytes)
            .map_err(FileError::at("write", &tmp))?;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(FileError::at("set the mode of", &tmp))?;
        file.sync_all().map_err(FileError::at("sync", &tmp))?;
        fs::rename(&tmp, path).map_err(FileError::at("replace", path))
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)
}

/// Makes the entries of `dir` (files created, renamed or removed in it) durable.
pub fn sync_dir(dir: &Path) -> Result<(), FileError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(FileError::at("sync the directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_with_mode_0600_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.dat");
        write(&path, b"one").unwrap();
        write(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.dat")]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.dat");
        write(&path, b"old").unwrap();
        // a directory where the file should be: the rename fails
        let blocked = dir.path().join("sub");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("inside"), b"").unwrap();
        let err = write(&blocked, b"new").unwrap_err();
        assert_eq!(err.action, "replace");
        assert!(err.to_string().contains("sub"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
