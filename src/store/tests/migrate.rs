//! Schema 1 (no transaction index) and 2 (no block statuses) → 3: built when opened writable,
//! left alone read-only.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::super::migrate::downgrade;
use super::super::tables::{META_SCHEMA, get};
use super::tx_index::assert_indexed;
use super::*;
use crate::store::BlockStatus;

/// The schema version stored in `meta`.
pub(super) fn schema_version(store: &Store) -> u32 {
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
    downgrade(&path, 1).unwrap();
    (dir, path)
}

pub(super) fn open_read_only(path: &Path) -> Store {
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
pub(super) fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
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
    // the tables themselves are gone, not just emptied
    let t = super::super::view::sealed::Snapshot::snap(&v).t;
    assert!(t.tx_index.is_none() && t.block_status.is_none());
    drop(v);
    drop(store);

    let (_dir, path) = schema_2_store(&three_blocks(), &[]);
    let store = open_read_only(&path);
    assert_eq!(schema_version(&store), 2);
    let v = store.read().unwrap();
    assert!(v.has_tx_index());
    let t = super::super::view::sealed::Snapshot::snap(&v).t;
    assert!(t.tx_index.is_some() && t.block_status.is_none());
}

/// A closed schema-2 store (no block statuses) holding `main` on the main chain and `side`
/// stored off it.
fn schema_2_store(main: &[Block], side: &[Block]) -> (tempfile::TempDir, PathBuf) {
    let (dir, store) = new_store();
    for b in main {
        connect(&store, b).unwrap();
    }
    for b in side {
        store.write(|w| w.put_block(b, side_entry(w, b))).unwrap();
    }
    drop(store);
    let path = dir.path().join("chain");
    downgrade(&path, 2).unwrap();
    (dir, path)
}

fn side_entry(w: &WriteView<'_>, b: &Block) -> IndexEntry {
    let parent = w.index(&b.header.prev).unwrap().unwrap();
    IndexEntry {
        header: b.header,
        height: parent.height + 1,
        chain_work: parent.chain_work.saturating_add(block_work()),
    }
}

/// [`three_blocks`] and two side blocks: one on block 1, one on that one.
fn main_and_side() -> (Vec<Block>, Vec<Block>) {
    let main = three_blocks();
    let s2 = block(main[1].block_hash(), 5_000, vec![coinbase(2, owner(6), 50)]);
    let s3 = block(s2.block_hash(), 5_001, vec![coinbase(3, owner(6), 50)]);
    (main, vec![s2, s3])
}

fn all_statuses(store: &Store, blocks: &[&Block]) -> Vec<Option<BlockStatus>> {
    let v = store.read().unwrap();
    blocks
        .iter()
        .map(|b| v.status(&b.block_hash()).unwrap())
        .collect()
}

#[test]
fn a_schema_2_store_opened_read_only_derives_statuses_from_the_index() {
    let (main, side) = main_and_side();
    let (_dir, path) = schema_2_store(&main, &side);
    let store = open_read_only(&path);
    let all: Vec<&Block> = main.iter().chain(&side).collect();
    use BlockStatus::*;
    let expected = [
        Some(FullyValid),
        Some(FullyValid),
        Some(FullyValid),
        Some(DataStored),
        Some(DataStored),
    ];
    assert_eq!(all_statuses(&store, &all), expected);
    let unknown = block(main[2].block_hash(), 9_000, vec![coinbase(3, owner(6), 1)]);
    assert_eq!(all_statuses(&store, &[&unknown]), [None]);
    let report = store.check_consistency().unwrap();
    assert_eq!((report.index_entries, report.headers_only), (5, 0));
    assert_eq!(report.indexed_txs, Some(6));
    // nothing was written: still schema 2
    assert_eq!(schema_version(&store), 2);

    // a schema-1 store too
    let (_dir, path) = schema_1_store(&main);
    let store = open_read_only(&path);
    let main: Vec<&Block> = main.iter().collect();
    assert_eq!(all_statuses(&store, &main), [Some(FullyValid); 3]);
    store.check_consistency().unwrap();
}

#[test]
fn opening_a_schema_2_store_writable_records_statuses() {
    let (main, side) = main_and_side();
    let (_dir, path) = schema_2_store(&main, &side);
    let (store, logs) = logged(|| Store::open(&path).unwrap());
    assert!(
        logs.contains(
            "store: recorded block statuses (schema 2 → 3) fully_valid=3 data_stored=2 \
             header_valid=0"
        ),
        "{logs}"
    );
    assert!(!logs.contains("transaction index"), "{logs}");
    assert_eq!(schema_version(&store), 3);
    // the statuses are stored, not derived
    let v = store.read().unwrap();
    let s = super::super::view::sealed::Snapshot::snap(&v);
    assert_eq!(s.t.block_status.unwrap().len(s.txn).unwrap(), 5);
    drop(v);
    let all: Vec<&Block> = main.iter().chain(&side).collect();
    use BlockStatus::*;
    assert_eq!(
        all_statuses(&store, &all),
        [
            Some(FullyValid),
            Some(FullyValid),
            Some(FullyValid),
            Some(DataStored),
            Some(DataStored)
        ]
    );
    store.check_consistency().unwrap();
    // and the upgraded store takes the new operations
    assert_eq!(
        store
            .write(|w| w.mark_failed(&side[0].block_hash()))
            .unwrap(),
        2
    );
    store.check_consistency().unwrap();
}

#[test]
fn a_failed_upgrade_leaves_the_store_at_schema_2() {
    let (main, side) = main_and_side();
    let (dir, store) = new_store();
    for b in &main {
        connect(&store, b).unwrap();
    }
    store
        .write(|w| w.put_block(&side[0], side_entry(w, &side[0])))
        .unwrap();
    // an index entry that does not decode: no status can be given to it
    let h = side[0].block_hash();
    store
        .write(|w| w.raw_put(|t| t.block_index, &h.0, b"garbage"))
        .unwrap();
    drop(store);
    let path = dir.path().join("chain");
    downgrade(&path, 2).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains(&hex::encode(h.0))),
        "{err}"
    );
    let store = open_read_only(&path);
    assert_eq!(schema_version(&store), 2);
    let v = store.read().unwrap();
    assert!(
        super::super::view::sealed::Snapshot::snap(&v)
            .t
            .block_status
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
    // 1 → 3 does both steps in one go
    assert!(
        logs.contains(
            "store: recorded block statuses (schema 2 → 3) fully_valid=3 data_stored=0 \
             header_valid=0"
        ),
        "{logs}"
    );
    assert_eq!(schema_version(&store), 3);
    assert_indexed(&store.read().unwrap(), &blocks);
    let report = store.check_consistency().unwrap();
    assert_eq!((report.main_chain_txs, report.indexed_txs), (6, Some(6)));
    // and it stays built: a read-only open now finds schema 3 with its index
    drop(store);
    let store = open_read_only(&path);
    assert_eq!(schema_version(&store), 3);
    assert_indexed(&store.read().unwrap(), &blocks);
    // a schema-3 store opens without building anything
    drop(store);
    let (_, logs) = logged(|| Store::open(&path).unwrap());
    assert!(!logs.contains("transaction index"), "{logs}");
    assert!(!logs.contains("block statuses"), "{logs}");

    // an empty chain upgrades to an empty index
    let (_dir, path) = schema_1_store(&[]);
    let store = Store::open(&path).unwrap();
    assert_eq!(schema_version(&store), 3);
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
    downgrade(&path, 1).unwrap();
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
    assert_eq!(schema_version(&store), 3);
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
    for version in [0u32, 4, 99] {
        let (dir, store) = new_store();
        store
            .write(|w| w.raw_put(|t| t.meta, META_SCHEMA, &version.to_be_bytes()))
            .unwrap();
        drop(store);
        let path = dir.path().join("chain");
        for result in [Store::open(&path), Store::open_read_only(&path)] {
            let err = result.unwrap_err();
            assert!(
                matches!(err, StoreError::SchemaMismatch { found, expected: 3 } if found == version),
                "{err}"
            );
        }
    }
}
