//! Schema 1 (no transaction index) → 2: built when opened writable, left alone read-only.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::super::migrate::downgrade_to_schema_1;
use super::super::tables::{META_SCHEMA, get};
use super::tx_index::assert_indexed;
use super::*;

/// The schema version stored in `meta`.
fn schema_version(store: &Store) -> u32 {
    let v = store.read().unwrap();
    let s = super::super::view::sealed::Snapshot::snap(&v);
    let bytes = get(s.t.meta, s.txn, META_SCHEMA).unwrap().unwrap();
    u32::from_be_bytes(bytes.try_into().unwrap())
}

/// A closed schema-1 store holding `blocks` (connected as today, then downgraded).
fn schema_1_store(blocks: &[Block]) -> (tempfile::TempDir, PathBuf) {
    let (dir, store) = new_store();
    for b in blocks {
        connect(&store, b).unwrap();
    }
    drop(store);
    let path = dir.path().join("chain");
    downgrade_to_schema_1(&path).unwrap();
    (dir, path)
}

fn open_read_only(path: &Path) -> Store {
    Store::open_read_only(path).unwrap()
}

/// A log sink the test reads back.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `f` with this thread's log events written as text to the returned string.
fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
    let logs = Logs::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let value = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    (value, text)
}

#[test]
fn the_test_hook_makes_a_real_schema_1_store() {
    let (_dir, path) = schema_1_store(&three_blocks());
    let store = open_read_only(&path);
    assert_eq!(schema_version(&store), 1);
    let v = store.read().unwrap();
    assert!(!v.has_tx_index());
    // the table itself is gone, not just emptied
    assert!(
        super::super::view::sealed::Snapshot::snap(&v)
            .t
            .tx_index
            .is_none()
    );
}

#[test]
fn opening_a_schema_1_store_writable_builds_the_index() {
    let blocks = three_blocks();
    let (_dir, path) = schema_1_store(&blocks);
    let (store, logs) = logged(|| Store::open(&path).unwrap());
    assert!(
        logs.contains("store: built the transaction index (schema 1 → 2) txs=6"),
        "{logs}"
    );
    assert_eq!(schema_version(&store), 2);
    assert_indexed(&store.read().unwrap(), &blocks);
    let report = store.check_consistency().unwrap();
    assert_eq!((report.main_chain_txs, report.indexed_txs), (6, Some(6)));
    // and it stays built: a read-only open now finds schema 2 with its index
    drop(store);
    let store = open_read_only(&path);
    assert_eq!(schema_version(&store), 2);
    assert_indexed(&store.read().unwrap(), &blocks);
    // a schema-2 store opens without building anything
    drop(store);
    let (_, logs) = logged(|| Store::open(&path).unwrap());
    assert!(!logs.contains("transaction index"), "{logs}");

    // an empty chain upgrades to an empty index
    let (_dir, path) = schema_1_store(&[]);
    let store = Store::open(&path).unwrap();
    assert_eq!(schema_version(&store), 2);
    assert_eq!(store.check_consistency().unwrap().indexed_txs, Some(0));
}

#[test]
fn a_schema_1_store_opened_read_only_works_without_the_index() {
    let blocks = three_blocks();
    let (_dir, path) = schema_1_store(&blocks);
    let store = open_read_only(&path);
    let v = store.read().unwrap();
    assert!(!v.has_tx_index());
    assert_eq!(v.tip().unwrap().unwrap().hash, blocks[2].block_hash());
    assert_eq!(v.balance(&owner(1)).unwrap().units(), 70);
    assert_eq!(
        v.block(&blocks[1].block_hash()).unwrap().as_ref(),
        Some(&blocks[1])
    );
    let txid = blocks[1].txs[1].compute_txid();
    assert_eq!(v.tx_location(&txid).unwrap(), None);
    assert_eq!(v.transaction(&txid).unwrap(), None);
    drop(v);
    let report = store.check_consistency().unwrap();
    assert_eq!((report.main_chain_txs, report.indexed_txs), (6, None));
    assert!(
        report.to_string().contains("no transaction index"),
        "{report}"
    );
    assert!(matches!(
        store.write(|w| w.reindex_utxo()),
        Err(StoreError::ReadOnly)
    ));
    // nothing was written: still schema 1
    assert_eq!(schema_version(&store), 1);
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_indexed(&store.read().unwrap(), &blocks);
}

#[test]
fn a_failed_upgrade_leaves_the_store_at_schema_1() {
    let blocks = three_blocks();
    let (dir, store) = new_store();
    for b in &blocks {
        connect(&store, b).unwrap();
    }
    // a main-chain block whose data is lost: the index cannot be built
    let h1 = blocks[1].block_hash();
    store.write(|w| w.raw_delete(|t| t.blocks, &h1.0)).unwrap();
    drop(store);
    let path = dir.path().join("chain");
    downgrade_to_schema_1(&path).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains(&h1.to_string())),
        "{err}"
    );
    let store = open_read_only(&path);
    assert_eq!(schema_version(&store), 1);
    assert!(!store.read().unwrap().has_tx_index());
}

#[test]
fn the_upgrade_grows_a_full_map() {
    // many transactions, in a compacted file opened with a map no bigger than the file
    let mut blocks = Vec::new();
    let mut prev = BlockHash::ZERO;
    for height in 0..4u32 {
        let mut txs = vec![coinbase(height, owner(0), 1)];
        for t in 0..1_500u32 {
            let mut tx = spend(&[], &[(owner(1), 1)]);
            tx.version = height * 10_000 + t;
            txs.push(tx);
        }
        let b = block(prev, 3_000 + height, txs);
        prev = b.block_hash();
        blocks.push(b);
    }
    let (_dir, path) = schema_1_store(&blocks);
    let file_size = std::fs::metadata(path.join("data.mdb")).unwrap().len() as usize;
    let store = Store::open_with(&path, 64 * 1024, false).unwrap();
    assert!(
        store.map_size() > file_size,
        "the map never filled up: {} bytes for a {file_size}-byte file",
        store.map_size()
    );
    assert_eq!(schema_version(&store), 2);
    let report = store.check_consistency().unwrap();
    assert_eq!(
        (report.main_chain_txs, report.indexed_txs),
        (6_004, Some(6_004))
    );
    let last = &blocks[3].txs[1_500];
    let location = store
        .read()
        .unwrap()
        .tx_location(&last.compute_txid())
        .unwrap()
        .unwrap();
    assert_eq!((location.height, location.index), (3, 1_500));
}

#[test]
fn other_schema_versions_are_refused_writable_and_read_only() {
    for version in [0u32, 3, 99] {
        let (dir, store) = new_store();
        store
            .write(|w| w.raw_put(|t| t.meta, META_SCHEMA, &version.to_be_bytes()))
            .unwrap();
        drop(store);
        let path = dir.path().join("chain");
        for result in [Store::open(&path), Store::open_read_only(&path)] {
            let err = result.unwrap_err();
            assert!(
                matches!(err, StoreError::SchemaMismatch { found, expected: 2 } if found == version),
                "{err}"
            );
        }
    }
}
