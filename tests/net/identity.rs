//! The node key through `spawn`: a stable peer id, mode 0600, corrupt files refused untouched.

use std::os::unix::fs::PermissionsExt;

use gossipcoin::net::{self, NetError};
use tokio::sync::watch;

use crate::config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_id_survives_a_restart_and_a_corrupt_key_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("node.key");

    let (stop, rx) = watch::channel(false);
    let (first, _events) = net::spawn(config(&dir, &[]), rx).await.unwrap();
    let id = first.local_peer_id();
    stop.send(true).unwrap();
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let (_stop, rx) = watch::channel(false);
    let (second, _events) = net::spawn(config(&dir, &[]), rx).await.unwrap();
    assert_eq!(second.local_peer_id(), id);

    let other = tempfile::tempdir().unwrap();
    let bad_key = other.path().join("node.key");
    std::fs::write(&bad_key, b"garbage").unwrap();
    let (_stop, rx) = watch::channel(false);
    let err = net::spawn(config(&other, &[]), rx).await.unwrap_err();
    assert!(matches!(err, NetError::KeyCorrupt { .. }), "{err}");
    assert!(err.to_string().contains("node.key"), "{err}");
    assert_eq!(std::fs::read(&bad_key).unwrap(), b"garbage");
}
