//! What survives a restart, run on the real binary: the mempool (`mempool.dat`, written at a
//! clean stop and periodically, reloaded and revalidated at start, a bad file set aside), and
//! the chain store, whose creation is atomic: SIGKILLs while a node adopts its peer's genesis
//! block, or while `createblockchain` runs, never leave a data directory that cannot start.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{
    Daemon, Node, addr, easy_params, free_port, funded, http_get, http_post,
    start_central as start, wait_until,
};
use serde_json::json;

const JSON: &str = "application/json";
/// An empty `mempool.dat`: magic, version, count, checksum.
const EMPTY_FILE_LEN: u64 = 8 + 1 + 4 + 4;

/// A role file that saves the mempool every second.
fn save_every_second(node: &Node) -> String {
    let path = node.dir.with_extension("fast-save.toml");
    std::fs::write(
        &path,
        "role = \"central\"\n[mempool]\nsave_interval_secs = 1\n",
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

/// Pays `amount` from `from` to a fresh address through the API; returns the txid.
fn pay(d: &Daemon, from: &str, amount: &str) -> String {
    let to = Node::new().new_address();
    let api = d.api(); // waits for the API, which writes the cookie first
    let cookie = d.cookie();
    let r = http_post(
        &format!("{api}/transactions/new"),
        &json!({ "sender": from, "recipient": to, "amount": amount }).to_string(),
        JSON,
        Some(&cookie),
    );
    assert_eq!(r.status, 201, "{r:?}");
    r.body["txid"].as_str().unwrap().to_owned()
}

fn mempool(d: &Daemon) -> BTreeSet<String> {
    let r = http_get(&format!("{}/mempool", d.api()), None);
    assert_eq!(r.status, 200, "{r:?}");
    r.body["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["txid"].as_str().unwrap().to_owned())
        .collect()
}

fn mempool_file(node: &Node) -> std::path::PathBuf {
    node.dir.join("mempool.dat")
}

/// The transaction count a mempool file declares (bytes 9..13, little-endian).
fn declared_count(node: &Node) -> Option<u32> {
    let bytes = std::fs::read(mempool_file(node)).ok()?;
    Some(u32::from_le_bytes(bytes.get(9..13)?.try_into().ok()?))
}

/// The last JSON log line whose message is `message` (its fields are beside the message).
fn last_log_fields(d: &Daemon, message: &str) -> Option<serde_json::Value> {
    d.log_text()
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == message)
}

#[test]
fn pending_payments_survive_a_clean_restart() {
    let node = Node::new();
    let params = easy_params(&node);
    let alice = funded(&node, &params);
    let d = start(&node, &params, &[]);
    // Chained: each spends the change of the one before.
    let sent: BTreeSet<String> = (0..3).map(|_| pay(&d, &alice, "1")).collect();
    assert_eq!(mempool(&d), sent);
    assert!(d.stop().success());
    assert_eq!(declared_count(&node), Some(3));
    // Only the file may bring them back: the wallet would offer its pending payments again.
    std::fs::remove_file(node.dir.join("wallet.pending")).unwrap();

    let d = start(&node, &params, &[]);
    wait_until(30, "the saved payments back in the mempool", || {
        mempool(&d) == sent
    });
    let loaded = last_log_fields(&d, "loaded mempool file").expect("a load line");
    assert_eq!(loaded["txs"], 3, "{loaded}");
    assert_eq!(loaded["dropped"], 0, "{loaded}");
}

#[test]
fn payments_saved_periodically_survive_a_sigkill() {
    let node = Node::new();
    let params = easy_params(&node);
    let alice = funded(&node, &params);
    let config = save_every_second(&node);
    let d = start(&node, &params, &["--config", &config]);
    let sent: BTreeSet<String> = (0..2).map(|_| pay(&d, &alice, "2")).collect();
    wait_until(30, "a periodic save holding both payments", || {
        declared_count(&node) == Some(2)
    });
    d.kill();
    std::fs::remove_file(node.dir.join("api.addr")).unwrap(); // the new node's tells it is up
    // Only the file may bring them back: the wallet would offer its pending payments again.
    std::fs::remove_file(node.dir.join("wallet.pending")).unwrap();

    let d = start(&node, &params, &["--config", &config]);
    wait_until(30, "the saved payments back in the mempool", || {
        mempool(&d) == sent
    });
}

#[test]
fn transactions_no_longer_valid_are_dropped_at_load() {
    let node = Node::new();
    let params = easy_params(&node);
    let alice = funded(&node, &params);
    let d = start(&node, &params, &[]);
    let sent: BTreeSet<String> = (0..2).map(|_| pay(&d, &alice, "1")).collect();
    assert!(d.stop().success());
    assert_eq!(declared_count(&node), Some(2));
    // While the node is down, the same coin is spent and mined from the command line: both
    // saved payments (the second spends the first's change) are now conflicts. The wallet
    // would refuse to spend a coin its own pending payments hold (wallet.pending), so the
    // double spend comes from a wallet without that record, as from a copy of wallet.dat.
    std::fs::remove_file(node.dir.join("wallet.pending")).unwrap();
    let bob = Node::new().new_address();
    node.ok(&[
        "--params", &params, "send", "--from", &alice, "--to", &bob, "--amount", "5", "--mine",
    ]);

    let d = start(&node, &params, &[]);
    wait_until(30, "the mempool file loaded", || {
        last_log_fields(&d, "loaded mempool file").is_some()
    });
    let loaded = last_log_fields(&d, "loaded mempool file").unwrap();
    assert_eq!(loaded["txs"], 0, "{loaded}");
    assert_eq!(loaded["dropped"], 2, "{loaded}");
    assert!(mempool(&d).is_disjoint(&sent));
    assert!(mempool(&d).is_empty());
}

#[test]
fn a_corrupt_or_oversized_mempool_file_is_set_aside_and_the_node_starts_empty() {
    let node = Node::new();
    let params = easy_params(&node);
    let alice = funded(&node, &params);
    let aside = node.dir.join("mempool.dat.corrupt");

    // Garbage: set aside byte for byte, the node starts with an empty mempool.
    std::fs::write(mempool_file(&node), b"not a mempool file").unwrap();
    // ...and the temporary file of a save a kill interrupted: removed.
    let stale = node.dir.join(".mempool.dat.4242.0.tmp");
    std::fs::write(&stale, b"half").unwrap();
    let d = start(&node, &params, &[]);
    wait_until(30, "the bad file set aside", || aside.exists());
    assert!(!stale.exists());
    assert_eq!(std::fs::read(&aside).unwrap(), b"not a mempool file");
    assert!(mempool(&d).is_empty());
    // ... and works: a payment made now is saved at the stop.
    let txid = pay(&d, &alice, "1");
    assert!(d.stop().success());
    assert_eq!(declared_count(&node), Some(1));

    // 1 TiB (sparse): refused from its size, never read. (Without wallet.pending, or the
    // wallet would offer its pending payment again and the mempool would hold it anyway.)
    std::fs::remove_file(node.dir.join("wallet.pending")).unwrap();
    let file = std::fs::File::create(mempool_file(&node)).unwrap();
    file.set_len(1 << 40).unwrap();
    drop(file);
    let started = Instant::now();
    let d = start(&node, &params, &[]);
    wait_until(30, "the oversized file set aside", || {
        std::fs::metadata(&aside).is_ok_and(|m| m.len() == 1 << 40)
    });
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(
        mempool(&d).is_empty(),
        "the payment was in the replaced file"
    );
    assert!(!mempool(&d).contains(&txid));
    assert!(d.stop().success());
    assert_eq!(
        std::fs::metadata(mempool_file(&node)).unwrap().len(),
        EMPTY_FILE_LEN,
        "an empty mempool is saved as an empty file"
    );
}

/// xorshift64*: a reproducible random source (the seed is printed).
struct Rng(u64);
impl Rng {
    fn seeded() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        eprintln!("seed {seed}");
        Self(seed)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// Polls `cond` every 5 ms until it holds or `secs` pass.
fn poll_fast(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// The directory right after a kill: no chain at all, or one `verifychain` accepts.
fn no_chain_or_a_complete_one(node: &Node, round: usize) -> bool {
    if !node.dir.join("chain").exists() {
        return false;
    }
    let r = node.run(&["verifychain"]);
    assert!(
        r.ok,
        "round {round}: the kill left an unusable chain store: {}",
        r.stderr
    );
    true
}

#[test]
fn sigkills_during_genesis_adoption_never_leave_an_unusable_data_dir() {
    let central = Node::new();
    let params = easy_params(&central);
    funded(&central, &params);
    let port = free_port();
    let bootstrap = addr(port);
    let _central = central.start(&[
        "--params", &params, "--role", "central", "--listen", &bootstrap,
    ]);
    wait_until(30, "the central node listening", || {
        central.dir.join("node.addr").exists()
    });
    let args = [
        "--params",
        &params,
        "startnode",
        "--role",
        "wallet",
        "--bootstrap",
        &bootstrap,
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--api-listen",
        "127.0.0.1:0",
    ];
    // Starts a node on `node`'s dir and waits for its chain; returns how long that took.
    let adopt = |node: &Node, round: usize| {
        // A killed node leaves its address file: the new one's tells that it is up (and that
        // it handles SIGTERM).
        let addr_file = node.dir.join("node.addr");
        let _ = std::fs::remove_file(&addr_file);
        let t = Instant::now();
        let err_file = node.dir.with_extension("stderr");
        let mut child = node
            .cmd(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&err_file).unwrap())
            .spawn()
            .unwrap();
        let adopted = poll_fast(20, || addr_file.exists() && node.height() == Some(0));
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let status = child.wait().unwrap();
        let stderr = std::fs::read_to_string(&err_file).unwrap_or_default();
        assert!(
            adopted,
            "round {round}: the restarted node never got a chain: {stderr}"
        );
        assert!(
            status.success(),
            "round {round}: the restarted node failed ({status}): {stderr}"
        );
        t.elapsed()
    };
    // How long adoption takes here, so that kills land before, during and after it.
    let typical = (0..3).map(|i| adopt(&Node::new(), 1000 + i)).max().unwrap();
    let window = typical.as_micros().max(30_000) as u64;
    let mut rng = Rng::seeded();
    let (mut with_chain, mut without) = (0, 0);
    let t = Instant::now();
    for round in 0..100 {
        let node = Node::new();
        let mut child = node
            .cmd(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(rng.below(window)));
        child.kill().unwrap();
        child.wait().unwrap();
        if no_chain_or_a_complete_one(&node, round) {
            with_chain += 1;
        } else {
            without += 1;
        }
        assert!(
            !node.dir.join("chain.new").exists() || !node.dir.join("chain").exists(),
            "round {round}: a staging dir beside a complete store"
        );
        adopt(&node, round);
        assert!(!node.dir.join("chain.new").exists(), "round {round}");
    }
    eprintln!(
        "100 kills in a {window} µs window: {with_chain} left a chain, {without} none; {:?}",
        t.elapsed()
    );
}

#[test]
fn sigkills_during_createblockchain_never_leave_an_unusable_data_dir() {
    let mut rng = Rng::seeded();
    let t = Instant::now();
    let probe = Node::new();
    let params = easy_params(&probe);
    funded(&probe, &params);
    let typical = t.elapsed().as_micros() as u64;
    for round in 0..30 {
        let node = Node::new();
        // a network of its own: createblockchain records its genesis in the parameters file
        let params = easy_params(&node);
        let a = node.new_address();
        let mut child = node
            .cmd(&["--params", &params, "createblockchain", "--address", &a])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(rng.below(typical)));
        child.kill().unwrap();
        child.wait().unwrap();
        if no_chain_or_a_complete_one(&node, round) {
            let r = node.run(&["--params", &params, "createblockchain", "--address", &a]);
            assert!(!r.ok && r.stderr.contains("already exists"), "{}", r.stderr);
        } else {
            node.ok(&["--params", &params, "createblockchain", "--address", &a]);
        }
        assert_eq!(node.height(), Some(0), "round {round}");
        assert!(!node.dir.join("chain.new").exists(), "round {round}");
    }
}

/// What versions before atomic creation left when killed during genesis adoption: a
/// `chain/data.mdb` of an LMDB environment opened and never committed to, with no table. Made
/// with heed, as they made it (a fixture: the node's code keeps heed inside `src/store/`).
fn tableless_store(node: &Node) {
    let chain = node.dir.join("chain");
    std::fs::create_dir_all(&chain).unwrap();
    let mut options = heed::EnvOpenOptions::new();
    options.map_size(1 << 20);
    // SAFETY: a fresh directory no other process uses.
    drop(unsafe { options.open(&chain) }.unwrap());
    assert!(chain.join("data.mdb").is_file());
}

#[test]
fn an_incomplete_store_left_by_an_older_version_is_removed_by_startnode_and_createblockchain() {
    let central = Node::new();
    let params = easy_params(&central);
    funded(&central, &params);
    let bootstrap = addr(free_port());
    let _central = central.start(&[
        "--params", &params, "--role", "central", "--listen", &bootstrap,
    ]);
    wait_until(30, "the central node listening", || {
        central.dir.join("node.addr").exists()
    });

    let node = Node::new();
    tableless_store(&node);
    let err = node.fails(&["verifychain"]);
    assert!(
        err.contains("incomplete") && err.contains("startnode"),
        "{err}"
    );
    let d = node.start(&[
        "--params",
        &params,
        "--role",
        "wallet",
        "--bootstrap",
        &bootstrap,
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
    ]);
    wait_until(30, "the node adopting the genesis block", || {
        node.height() == Some(0)
    });
    assert!(d.stop().success());

    let node = Node::new();
    let params = easy_params(&node);
    let a = node.new_address();
    tableless_store(&node);
    node.ok(&["--params", &params, "createblockchain", "--address", &a]);
    assert_eq!(node.height(), Some(0));
}
