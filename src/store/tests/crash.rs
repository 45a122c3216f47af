//! Durability and concurrency: `kill -9` of a writing process at random moments leaves a
//! consistent store; readers in other threads survive map growth.

use std::process::Command;
use std::time::{Duration, SystemTime};

use super::*;

const DIR_VAR: &str = "GOSSIPCOIN_STORE_CRASH_DIR";

/// The block at `height` of the crash tests' deterministic chain: a coinbase, and from height
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

/// Run by `kill_9_while_writing_leaves_a_consistent_store` in a child process: extends the
/// chain forever, with a two-block "reorg" (disconnect, reconnect) in one transaction now and
/// then, until killed.
#[test]
#[ignore = "run as a child process by kill_9_while_writing_leaves_a_consistent_store"]
fn crash_writer_child() {
    let Some(path) = std::env::var_os(DIR_VAR) else {
        return;
    };
    let store = Store::open(&path).unwrap();
    for round in 0u64.. {
        store
            .write(|w| {
                let tip = w.tip()?;
                let (prev, height) = tip.map_or((BlockHash::ZERO, 0), |t| (t.hash, t.height + 1));
                connect_in(w, &chain_block(prev, height))?;
                if round % 5 == 4 && height >= 2 {
                    let top = w.disconnect_tip()?;
                    let below = w.disconnect_tip()?;
                    connect_in(w, &below)?;
                    connect_in(w, &top)?;
                }
                Ok::<_, StoreError>(())
            })
            .unwrap();
        println!("CHILD connected round {round}");
    }
}

#[test]
fn kill_9_while_writing_leaves_a_consistent_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain");
    drop(Store::create(&path).unwrap());
    let mut last_height = None;
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "store::tests::crash::crash_writer_child",
                "--ignored",
                "--test-threads=1",
            ])
            .env(DIR_VAR, &path)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let jitter = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
            % 400;
        std::thread::sleep(Duration::from_millis(600 + u64::from(jitter)));
        assert!(
            child.try_wait().unwrap().is_none(),
            "the writer died on its own"
        );
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let store = Store::open(&path).unwrap();
        let report = store
            .check_consistency()
            .unwrap_or_else(|e| panic!("after kill -9 number {round}: {e}"));
        let height = report.tip.map(|t| t.height);
        eprintln!("kill -9 number {round}: tip height {height:?}");
        assert!(height >= last_height, "a committed block was lost");
        last_height = height;
    }
    assert!(last_height.is_some(), "the writer never committed a block");
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
