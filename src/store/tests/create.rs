//! Atomic creation (built in `chain.new`, renamed into place) and what an interrupted creation
//! leaves: removed when it holds no chain, refused as before when it holds one.

use std::path::Path;

use heed::CommitOrAbort;
use heed::types::Bytes;

use super::*;
use crate::store::open_env;

/// The names of the files in `dir` and a digest of `data.mdb`, to show that no data was touched
/// (`lock.mdb` changes whenever the environment is opened).
fn snapshot(dir: &Path) -> (Vec<String>, [u8; 32]) {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let data = std::fs::read(dir.join("data.mdb")).unwrap();
    (names, gossipcoin_proto::sha256d(&data))
}

/// What versions before atomic creation left when killed between opening the environment and
/// its first commit: a valid LMDB file with no table.
fn tableless_store(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    drop(open_env(dir, 1 << 20, false).unwrap());
    assert!(Store::exists(dir));
}

#[test]
fn a_created_store_is_complete_and_no_staging_dir_remains() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain");
    let blocks = three_blocks();
    let store = Store::create_filled(&path, |s| connect(s, &blocks[0])).unwrap();
    assert_eq!(store.path(), path.canonicalize().unwrap());
    assert_eq!(store.read().unwrap().tip().unwrap().unwrap().height, 0);
    connect(&store, &blocks[1]).unwrap(); // it is writable where it now lives
    drop(store);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("chain")]);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.check_consistency().unwrap().main_chain_blocks, 2);
}

#[test]
fn a_failed_fill_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain");
    let err = Store::create_filled(&path, |s| {
        connect(s, &three_blocks()[0])?;
        Err(StoreError::EmptyChain)
    })
    .unwrap_err();
    assert!(matches!(err, StoreError::EmptyChain), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // and the name is free for the next attempt
    Store::create(&path).unwrap();
}

#[test]
fn a_leftover_staging_dir_is_removed_by_the_next_creation_and_by_remove_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain");
    let staging = dir.path().join("chain.new");
    tableless_store(&staging);
    std::fs::write(staging.join("half-written"), b"x").unwrap();
    assert!(!Store::remove_incomplete(&path).unwrap()); // no chain/ was removed...
    assert!(!staging.exists()); // ...but the staging dir was
    tableless_store(&staging);
    drop(Store::create(&path).unwrap());
    assert!(!staging.exists());
    assert!(Store::open(&path).is_ok());
}

#[test]
fn a_tableless_store_is_named_incomplete_then_removed_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain");
    tableless_store(&path);
    for err in [
        Store::open(&path).unwrap_err(),
        Store::open_read_only(&path).unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::Incomplete { .. }), "{err}");
        assert!(err.to_string().contains("startnode"), "{err}");
    }
    assert!(matches!(
        Store::create(&path),
        Err(StoreError::AlreadyExists { .. })
    ));
    assert!(Store::remove_incomplete(&path).unwrap());
    assert!(!path.exists());
    assert!(!Store::remove_incomplete(&path).unwrap()); // nothing left to remove
    let blocks = three_blocks();
    let store = Store::create_filled(&path, |s| connect(s, &blocks[0])).unwrap();
    assert_eq!(store.check_consistency().unwrap().main_chain_blocks, 1);
}

#[test]
fn a_store_with_tables_but_no_block_is_removed_one_with_a_chain_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain");
    drop(Store::create(&path).unwrap()); // what a kill before the genesis write left
    assert!(Store::remove_incomplete(&path).unwrap());
    assert!(!path.exists());

    let (dir, store, _) = store_with_three_blocks();
    drop(store);
    let path = dir.path().join("chain");
    let before = snapshot(&path);
    assert!(!Store::remove_incomplete(&path).unwrap());
    assert_eq!(snapshot(&path), before);
    assert_eq!(
        Store::open(&path)
            .unwrap()
            .check_consistency()
            .unwrap()
            .main_chain_blocks,
        3
    );
}

#[test]
fn a_damaged_store_that_has_a_chain_is_never_removed() {
    let (dir, store, _) = store_with_three_blocks();
    drop(store);
    let path = dir.path().join("chain");
    // drop one table: meta (and the chain) stay, the store is corrupt
    let env = open_env(&path, 1 << 30, false).unwrap();
    let wtxn = env.write_txn().unwrap();
    env.create_databases_and_commit(wtxn, |opener, wtxn| -> heed::Result<_> {
        let db = opener.create_database::<Bytes, Bytes>(wtxn, Some("blocks"))?;
        // SAFETY: this env was opened just now; no other handle to the table exists.
        unsafe { db.remove(wtxn)? };
        Ok(CommitOrAbort::<_, ()>::Commit(()))
    })
    .unwrap();
    drop(env);
    let before = snapshot(&path);
    let refused = |path: &Path| {
        let err = Store::open(path).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
        assert!(err.to_string().contains("blocks"), "{err}");
    };
    refused(&path);
    assert!(!Store::remove_incomplete(&path).unwrap());
    assert_eq!(snapshot(&path), before);
    refused(&path);

    // bytes that are not LMDB at all: an error, and the file stays
    let garbage = dir.path().join("garbage");
    std::fs::create_dir(&garbage).unwrap();
    std::fs::write(garbage.join("data.mdb"), vec![0xab; 16384]).unwrap();
    assert!(Store::remove_incomplete(&garbage).is_err());
    assert_eq!(
        std::fs::read(garbage.join("data.mdb")).unwrap(),
        vec![0xab; 16384]
    );
}

#[test]
fn leftovers_without_data_file_are_replaced_but_foreign_files_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    // an empty chain/ (created before the environment) and one with only LMDB's lock file
    for (name, lock) in [("a", false), ("b", true)] {
        let path = dir.path().join(name);
        std::fs::create_dir(&path).unwrap();
        if lock {
            std::fs::write(path.join("lock.mdb"), b"").unwrap();
        }
        drop(Store::create(&path).unwrap());
        assert!(Store::open(&path).is_ok());
    }
    // a directory holding a file that is not LMDB's: not ours to delete
    let path = dir.path().join("c");
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("notes.txt"), b"mine").unwrap();
    let err = Store::create(&path).unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err}");
    assert_eq!(std::fs::read(path.join("notes.txt")).unwrap(), b"mine");
    assert!(!dir.path().join("c.new").exists());
}
