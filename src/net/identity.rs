//! The node's ed25519 identity in `<data-dir>/node.key`, so its peer id survives restarts.
//!
//! The file holds libp2p's protobuf encoding of the keypair (key type + secret). It is created
//! once with mode 0600: written to a temporary file, synced, then hard-linked into place, which
//! fails rather than replace a key another process created meanwhile. An existing file is
//! only ever read: a corrupt one is a clear error and stays as it is, because a peer id is an
//! identity others may have banned or trusted, and silently replacing it hides the problem.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use libp2p::identity::Keypair;
use tracing::{info, warn};

use super::NetError;

/// Loads the key at `path`, or creates it (and its directory) when there is none.
pub(super) fn load_or_create(path: &Path) -> Result<Keypair, NetError> {
    match fs::read(path) {
        Ok(bytes) => decode(path, &bytes),
        Err(e) if e.kind() == ErrorKind::NotFound => create(path),
        Err(source) => Err(NetError::KeyIo {
            action: "read",
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn decode(path: &Path, bytes: &[u8]) -> Result<Keypair, NetError> {
    let key = Keypair::from_protobuf_encoding(bytes).map_err(|e| NetError::KeyCorrupt {
        path: path.to_path_buf(),
        reason: format!("{e}"),
    })?;
    if key.clone().try_into_ed25519().is_err() {
        return Err(NetError::KeyCorrupt {
            path: path.to_path_buf(),
            reason: format!("a {:?} key, not ed25519", key.key_type()),
        });
    }
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        warn!(target: "net", path = %path.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777),
              "the node key file is readable by others; chmod 600 it");
    }
    Ok(key)
}

fn create(path: &Path) -> Result<Keypair, NetError> {
    let io = |action: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |source| NetError::KeyIo {
            action,
            path: p,
            source,
        }
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io("create the directory of", path))?;

    let key = Keypair::generate_ed25519();
    let bytes = key
        .to_protobuf_encoding()
        .map_err(|e| NetError::Config(format!("cannot encode a new node key: {e}")))?;
    // Unique per process and call, so concurrent starts never share a temporary file.
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".node.key.{}.{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let write = || -> Result<(), NetError> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io("create", &tmp))?;
        // The umask cannot widen 0600, but an inherited ACL could: set the mode explicitly.
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io("set the mode of", &tmp))?;
        file.write_all(&bytes).map_err(io("write", &tmp))?;
        file.sync_all().map_err(io("sync", &tmp))?;
        // A hard link never replaces an existing file, unlike rename.
        fs::hard_link(&tmp, path).map_err(io("create", path))
    };
    let result = write();
    let _ = fs::remove_file(&tmp);
    if let Err(e) = result {
        // Another process may have won the race: use its key.
        if path.exists() {
            return load_or_create(path);
        }
        return Err(e);
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync the directory of", path))?;
    info!(target: "net", path = %path.display(), peer = %key.public().to_peer_id(), "created a new node key");
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_key_is_created_0600_and_the_peer_id_persists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join("node.key");
        let first = load_or_create(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        let again = load_or_create(&path).unwrap();
        assert_eq!(first.public().to_peer_id(), again.public().to_peer_id());
        // no temporary file is left behind
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("node.key")]);
    }

    #[test]
    fn a_corrupt_key_is_a_clear_error_and_is_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        for garbage in [
            &b"not a key at all"[..],
            &[][..],
            &[0x08, 0x01, 0x12, 0x40][..],
        ] {
            fs::write(&path, garbage).unwrap();
            let err = load_or_create(&path).unwrap_err();
            assert!(matches!(err, NetError::KeyCorrupt { .. }), "{err:?}");
            let text = err.to_string();
            assert!(
                text.contains("node.key") && text.contains("corrupt"),
                "{text}"
            );
            assert_eq!(fs::read(&path).unwrap(), garbage);
        }
    }

    #[test]
    fn an_unreadable_path_is_an_io_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        // a directory where the file should be
        let path = dir.path().join("node.key");
        fs::create_dir(&path).unwrap();
        let err = load_or_create(&path).unwrap_err();
        assert!(matches!(err, NetError::KeyIo { .. }), "{err:?}");
        assert!(err.to_string().contains("node.key"));
    }
}
