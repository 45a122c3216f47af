//! Concurrency: readers in other threads survive map growth. (`kill -9` of a writing process is
//! tested through the real binary in `tests/crash.rs`.)

use super::*;

/// The block at `height` of the readers test's deterministic chain: a coinbase, and from height
/// 1 a transaction splitting the previous coinbase.
fn chain_block(prev: BlockHash, height: u32) -> Block {
    let mut txs = vec![coinbase(height, owner((height % 5) as u16), 50)];
    if height > 0 {
        let prev_cb = coinbase(height - 1, owner(((height - 1) % 5) as u16), 50);
        let (a, b) = (owner((height % 3) as u16), owner(7));
        txs.push(spend(&[out(&prev_cb, 0)], &[(a, 20), (b, 30)]));
    }
    block(prev, height, txs)
}

#[test]
fn readers_in_other_threads_survive_map_growth() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create_with(&dir.path().join("chain"), 256 * 1024).unwrap();
    let start_size = store.map_size();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (store, done) = (store.clone(), done.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                let mut last = None;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let v = store.read().unwrap();
                    let height = v.tip().unwrap().map(|t| t.height);
                    assert!(height >= last, "a reader went back in time");
                    last = height;
                    v.balance(&owner(7)).unwrap();
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let mut prev = BlockHash::ZERO;
    for height in 0..300 {
        let b = chain_block(prev, height);
        connect(&store, &b).unwrap();
        prev = b.block_hash();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    assert!(store.map_size() > start_size, "the map never grew");
    let report = store.check_consistency().unwrap();
    assert_eq!(report.tip.unwrap().height, 299);
    assert_eq!(
        store.read().unwrap().balance(&owner(7)).unwrap().units(),
        299 * 30
    );
}
