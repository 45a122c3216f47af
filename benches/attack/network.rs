//! The victim network: real `gossipcoin` daemons on loopback — A (central, the victim), B (mines
//! on demand through `GET /mine`), C (wallet, bootstrapped to A and B) — started on a copy of
//! the prebuilt chain, stopped on drop (also when a scenario panics), plus extra honest nodes
//! and the honest-block measurement.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use gossipcoin::api::client::ApiClient;
use gossipcoin_proto::{Address, BlockHash};
use serde_json::Value;

use std::sync::OnceLock;

use crate::common::{easy_params, free_port, start};
use crate::forge;

/// What every network of the run shares: the parameter file and the prebuilt chains.
pub struct Setup {
    pub root: PathBuf,
    pub params_file: PathBuf,
    pub params: gossipcoin::params::ChainParams,
    pub genesis: BlockHash,
    /// `data.mdb` of the genesis-only chain.
    small: PathBuf,
    /// `data.mdb` of genesis + [`forge::BIG_BLOCKS`] big blocks, built on first use.
    big: OnceLock<PathBuf>,
}

impl Setup {
    /// Writes the parameters and the genesis-only chain under `root`.
    pub fn new(root: &Path) -> Setup {
        let (params, params_file) = easy_params(root);
        let (genesis, _) = forge::chain(&params, &root.join("small"), 0);
        Setup {
            root: root.to_path_buf(),
            params_file,
            params,
            genesis,
            small: root.join("small/chain/data.mdb"),
            big: OnceLock::new(),
        }
    }

    /// The `data.mdb` a network starts from: genesis only, or the big chain.
    pub fn chain_file(&self, big: bool) -> &Path {
        if !big {
            return &self.small;
        }
        self.big.get_or_init(|| {
            let t = Instant::now();
            let (genesis, largest) =
                forge::chain(&self.params, &self.root.join("big"), forge::BIG_BLOCKS);
            assert_eq!(genesis, self.genesis);
            println!(
                "   (built the chain of {} blocks of up to {} kB in {:.1} s)",
                forge::BIG_BLOCKS,
                largest / 1000,
                t.elapsed().as_secs_f64()
            );
            self.root.join("big/chain/data.mdb")
        })
    }
}

/// One running daemon.
pub struct Daemon {
    pub name: String,
    pub dir: PathBuf,
    pub child: Child,
    pub p2p: String,
    pub api: ApiClient,
    pub peer_id: String,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default()
    }

    /// The peers this node lists in `GET /peers` (empty if the API does not answer).
    pub fn peers(&self) -> Vec<Value> {
        self.api
            .get("/peers")
            .ok()
            .and_then(|v| v["peers"].as_array().cloned())
            .unwrap_or_default()
    }

    /// Whether `GET /peers` lists `peer_id`.
    pub fn lists(&self, peer_id: &str) -> bool {
        self.peers().iter().any(|p| p["peer_id"] == peer_id)
    }

    /// Whether `GET /blocks/{hash}` finds the block.
    pub fn has_block(&self, hash: &BlockHash) -> bool {
        self.api.get(&format!("/blocks/{hash}")).is_ok()
    }

    /// The first `"accepted block"` log line for `hash`, as seconds of the day (UTC).
    pub fn accepted_at(&self, hash: &str) -> Option<f64> {
        log_time(&self.log(), "accepted block", hash)
    }

    /// SIGCONT (a stopped process ignores SIGTERM), SIGTERM, then SIGKILL after 5 s.
    fn stop(&mut self) {
        let pid = self.pid().to_string();
        let _ = Command::new("kill").args(["-CONT", &pid]).status();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let t = Instant::now();
        while matches!(self.child.try_wait(), Ok(None)) && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts a daemon on a copy of the chain `chain` (a `data.mdb`); returns once its API answers.
pub fn start_daemon(setup: &Setup, chain: &Path, name: &str, dir: &Path, args: &[&str]) -> Daemon {
    std::fs::create_dir_all(dir.join("chain")).unwrap();
    std::fs::copy(chain, dir.join("chain/data.mdb")).unwrap();
    let port = free_port();
    let p2p = format!("/ip4/127.0.0.1/tcp/{port}");
    let mut all = vec!["--listen", &p2p];
    all.extend_from_slice(args);
    let mut child = start(dir, &setup.params_file, &all);
    let t = Instant::now();
    let url = loop {
        let text = std::fs::read_to_string(dir.join("api.addr")).unwrap_or_default();
        if text.trim().starts_with("http://") {
            break text.trim().to_string();
        }
        if t.elapsed() > Duration::from_secs(60) || !matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("node {name} did not start; see {}/node.log", dir.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let api = ApiClient::new(&url, Some(dir)).timeout(Duration::from_secs(20));
    let mut daemon = Daemon {
        name: name.to_string(),
        dir: dir.to_path_buf(),
        child,
        p2p,
        api,
        peer_id: String::new(),
    };
    let status = retry(Duration::from_secs(30), || daemon.api.get("/status").ok())
        .unwrap_or_else(|| panic!("node {name}'s API never answered"));
    daemon.peer_id = status["peer_id"].as_str().unwrap_or_default().to_string();
    daemon
}

/// A, B and C of one scenario.
pub struct Network {
    pub a: Daemon,
    pub b: Daemon,
    pub c: Daemon,
    pub dir: PathBuf,
    /// The chain every node started from.
    chain: PathBuf,
}

/// Where B's blocks pay (nobody spends them).
fn reward_address() -> String {
    let key = gossipcoin::keys::PrivateKey::from_bytes(&[5; 32]).unwrap();
    Address(key.pubkey_hash()).to_string()
}

/// An honest block: how long after B mined it A and C accepted it (ms; `None` = not within
/// the timeout).
#[derive(Clone, Copy, Debug, Default)]
pub struct HonestBlock {
    pub to_a: Option<f64>,
    pub to_c: Option<f64>,
}

impl Network {
    /// Starts A, then B and C bootstrapped to it (C also to B), waits until they are connected
    /// and a warm-up block mined by B has reached A and C (the gossip meshes work).
    /// `big`: on the chain of big blocks, else on genesis alone.
    pub fn start(setup: &Setup, scenario: &str, big: bool) -> Network {
        let dir = setup.root.join(scenario);
        let chain = setup.chain_file(big).to_path_buf();
        let a = start_daemon(setup, &chain, "A", &dir.join("a"), &["--role", "central"]);
        let b = start_daemon(
            setup,
            &chain,
            "B",
            &dir.join("b"),
            &["--role", "wallet", "--bootstrap", &a.p2p],
        );
        let c = start_daemon(
            setup,
            &chain,
            "C",
            &dir.join("c"),
            &[
                "--role",
                "wallet",
                "--bootstrap",
                &a.p2p,
                "--bootstrap",
                &b.p2p,
            ],
        );
        let net = Network {
            a,
            b,
            c,
            dir,
            chain,
        };
        let connected = retry(Duration::from_secs(30), || {
            let peers = net.a.peers();
            let subscribed = |id: &str| {
                peers
                    .iter()
                    .any(|p| p["peer_id"] == id && p["subscribed"] == true)
            };
            (subscribed(&net.b.peer_id) && subscribed(&net.c.peer_id)).then_some(())
        });
        assert!(connected.is_some(), "B and C did not connect to A");
        for _ in 0..3 {
            let warm = net.honest_block(Duration::from_secs(10));
            if warm.to_a.is_some() && warm.to_c.is_some() {
                return net;
            }
        }
        panic!("warm-up blocks did not reach A and C");
    }

    /// Has B mine one block now (`GET /mine`) and waits up to `timeout` for A and C to accept
    /// it, timing both from B's "mined block" log line.
    pub fn honest_block(&self, timeout: Duration) -> HonestBlock {
        let mined = self
            .b
            .api
            .get(&format!("/mine?address={}", reward_address()));
        let Ok(mined) = mined else {
            eprintln!("   B could not mine: {}", mined.unwrap_err());
            return HonestBlock::default();
        };
        let hash = mined["block"]["hash"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let t0 = retry(Duration::from_secs(5), || {
            log_time(&self.b.log(), "mined block", &hash)
        });
        let t = Instant::now();
        let mut found = HonestBlock::default();
        while t.elapsed() < timeout && (found.to_a.is_none() || found.to_c.is_none()) {
            let delay = |at: Option<f64>| Some(day_diff(at?, t0?) * 1e3);
            if found.to_a.is_none() {
                found.to_a = delay(self.a.accepted_at(&hash));
            }
            if found.to_c.is_none() {
                found.to_c = delay(self.c.accepted_at(&hash));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        found
    }

    /// Starts an honest node D from 127.0.0.1 bootstrapped to A only.
    pub fn start_honest(&self, setup: &Setup, name: &str) -> Daemon {
        start_daemon(
            setup,
            &self.chain,
            name,
            &self.dir.join(name),
            &["--role", "wallet", "--bootstrap", &self.a.p2p],
        )
    }
}

/// Calls `f` every 50 ms until it gives `Some`, at most `limit`.
pub fn retry<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if t.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `a - b` in seconds for two times of day, across midnight.
fn day_diff(a: f64, b: f64) -> f64 {
    let d = a - b;
    if d < -43_200.0 { d + 86_400.0 } else { d }
}

/// The time (seconds of the UTC day) of the first JSON log line with `message` and `hash`.
fn log_time(log: &str, message: &str, hash: &str) -> Option<f64> {
    let quoted = format!("\"message\":\"{message}\"");
    let line = log
        .lines()
        .find(|l| l.contains(&quoted) && l.contains(hash))?;
    let ts = line.split("\"timestamp\":\"").nth(1)?.split('"').next()?;
    let time = ts.split('T').nth(1)?.trim_end_matches('Z');
    let mut parts = time.split(':');
    let (h, m, s): (f64, f64, f64) = (
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    );
    Some(h * 3600.0 + m * 60.0 + s)
}
