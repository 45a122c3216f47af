//! Creating and opening stores, and their errors; a read-only reader in another process.

use super::*;
use crate::store::ReadView;

#[test]
fn create_then_reopen_keeps_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data").join("chain");
    {
        let store = Store::create(&path).unwrap();
        assert_eq!(store.read().unwrap().tip().unwrap(), None);
        for b in &three_blocks() {
            connect(&store, b).unwrap();
        }
    }
    let store = Store::open(&path).unwrap();
    let tip = store.read().unwrap().tip().unwrap().unwrap();
    assert_eq!(tip.height, 2);
    assert_eq!(tip.hash, three_blocks()[2].block_hash());
    assert!(!store.is_read_only());
    assert_eq!(store.path(), path.canonicalize().unwrap());
}

#[test]
fn create_twice_or_open_nothing_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain");
    assert!(matches!(
        Store::open(&path),
        Err(StoreError::NotFound { path: p }) if p == path
    ));
    assert!(matches!(
        Store::open_read_only(&path),
        Err(StoreError::NotFound { .. })
    ));
    drop(Store::create(&path).unwrap());
    assert!(matches!(
        Store::create(&path),
        Err(StoreError::AlreadyExists { .. })
    ));
    // an empty directory is no store either
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert!(matches!(
        Store::open(&empty),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn one_process_cannot_open_a_store_twice_but_clones_share_it() {
    let (dir, store) = new_store();
    let path = dir.path().join("chain");
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::AlreadyOpen { .. }), "{err}");
    // heed refuses READ_ONLY in the same process too: that is why the read-only path is
    // tested from a child process below.
    assert!(matches!(
        Store::open_read_only(&path),
        Err(StoreError::AlreadyOpen { .. })
    ));
    let clone = store.clone();
    connect(&clone, &three_blocks()[0]).unwrap();
    assert!(store.read().unwrap().tip().unwrap().is_some());
    drop((store, clone));
    Store::open(&path).unwrap();
}

#[test]
fn a_file_where_the_directory_should_be_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"not a store").unwrap();
    for result in [
        Store::create(&file),
        Store::open(&file),
        Store::create(file.join("chain")), // under a regular file: cannot be created
    ] {
        let err = result.unwrap_err();
        assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains(&*file.to_string_lossy()), "{err}");
    }
}

#[test]
fn a_newer_schema_is_refused() {
    let (dir, store) = new_store();
    store
        .write(|w| w.raw_put(|t| t.meta, b"schema_version", &99u32.to_be_bytes()))
        .unwrap();
    drop(store);
    let err = Store::open(dir.path().join("chain")).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SchemaMismatch {
                found: 99,
                expected: 3
            }
        ),
        "{err}"
    );
}

#[test]
fn views_are_send_and_snapshots_do_not_move() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send::<ReadView>();
    send_sync::<Store>();

    let (_dir, store) = new_store();
    let blocks = three_blocks();
    connect(&store, &blocks[0]).unwrap();
    let before = store.read().unwrap();
    connect(&store, &blocks[1]).unwrap();
    assert_eq!(before.tip().unwrap().unwrap().height, 0);
    // a view may move to another thread
    let height = std::thread::spawn(move || before.tip().unwrap().unwrap().height)
        .join()
        .unwrap();
    assert_eq!(height, 0);
    assert_eq!(store.read().unwrap().tip().unwrap().unwrap().height, 1);
}

#[test]
fn bulk_mode_toggles_and_keeps_data() {
    let (dir, store) = new_store();
    store.set_bulk_mode(true).unwrap();
    for b in &three_blocks() {
        connect(&store, b).unwrap();
    }
    store.set_bulk_mode(false).unwrap();
    assert_eq!(store.clear_stale_readers().unwrap(), 0);
    drop(store);
    let store = Store::open(dir.path().join("chain")).unwrap();
    assert_eq!(store.check_consistency().unwrap().main_chain_blocks, 3);
}
