//! A full map is grown and the write retried; balances are prefix scans of the address index.

use std::time::Instant;

use super::*;

/// A block at `height` on `prev`: a coinbase and `txs` input-less transactions of `per_tx`
/// outputs of `height + 1` units each, paid round-robin to owners 1..=`owners`.
fn wide_block(prev: BlockHash, height: u32, txs: usize, per_tx: usize, owners: u16) -> Block {
    let mut all = vec![coinbase(height, owner(0), 1)];
    for t in 0..txs {
        let outputs: Vec<(PubkeyHash, u64)> = (0..per_tx)
            .map(|i| {
                let n = (t * per_tx + i) % owners as usize;
                (owner(1 + n as u16), 1 + height as u64)
            })
            .collect();
        // no inputs: a unique txid needs unique content, so vary the version
        let mut tx = spend(&[], &outputs);
        tx.version = height * 10_000 + t as u32;
        all.push(tx);
    }
    block(prev, 2_000 + height, all)
}

#[test]
fn a_full_map_is_grown_and_the_write_retried() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = 256 * 1024;
    let store = Store::create_with(&dir.path().join("chain"), tiny).unwrap();
    assert_eq!(store.map_size(), tiny);
    let big = wide_block(BlockHash::ZERO, 0, 20, 500, 100);
    let mut runs = 0;
    store
        .write(|w| {
            runs += 1;
            connect_in(w, &big)
        })
        .unwrap();
    assert!(runs > 1, "the map never filled up");
    assert!(store.map_size() > tiny);
    let v = store.read().unwrap();
    assert_eq!(v.utxo_count().unwrap(), 10_001);
    assert_eq!(v.balance(&owner(1)).unwrap().units(), 100);
    drop(v);
    store.check_consistency().unwrap();

    // growth also happens at commit time or in later writes: keep writing
    let next = wide_block(big.block_hash(), 1, 20, 500, 100);
    connect(&store, &next).unwrap();
    store.check_consistency().unwrap();
    // and the store reopens with the default size
    drop(store);
    let store = Store::open(dir.path().join("chain")).unwrap();
    assert_eq!(store.read().unwrap().utxo_count().unwrap(), 20_002);
}

#[test]
fn a_balance_is_a_prefix_scan_not_a_scan_of_the_set() {
    let (_dir, store) = new_store();
    // 100,000 coins over 1,000 owners: 100 each
    let mut prev = BlockHash::ZERO;
    store
        .write(|w| {
            for height in 0..10 {
                let b = wide_block(prev, height, 10, 1_000, 1_000);
                connect_in(w, &b)?;
                prev = b.block_hash();
            }
            Ok::<_, StoreError>(())
        })
        .unwrap();
    let v = store.read().unwrap();
    assert_eq!(v.utxo_count().unwrap(), 100_010);
    let mine = v.utxos_of(&owner(1)).unwrap();
    assert_eq!(mine.len(), 100);
    // each of the 10 blocks pays every owner 10 coins of (height + 1) units
    assert_eq!(
        v.balance(&owner(1)).unwrap().units(),
        10 * (1..=10).sum::<u64>()
    );
    assert_eq!(v.balance(&owner(1_001)).unwrap(), Amount::ZERO);

    // 1,000 balances visit 100,000 entries in all, as one full scan does: with prefix scans
    // they take about as long as one scan, with full scans 1,000 times as long.
    let start = Instant::now();
    let set = v.utxo_set().unwrap();
    let one_scan = start.elapsed();
    assert_eq!(set.len(), 100_010);
    let start = Instant::now();
    let mut total = 0;
    for n in 1..=1_000 {
        total += v.balance(&owner(n)).unwrap().units();
    }
    let all_balances = start.elapsed();
    eprintln!("1,000 balances: {all_balances:?}; one full scan: {one_scan:?}");
    assert_eq!(total, 1_000 * 10 * (1..=10).sum::<u64>());
    assert!(
        all_balances < one_scan * 50,
        "1,000 balances took {all_balances:?}, one full scan {one_scan:?}"
    );
}
