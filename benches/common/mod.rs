//! What the network and API benches share: an easy-target chain built in-process, and release
//! daemons started on loopback.
#![allow(dead_code)] // each bench uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use gossipcoin::api::client::ApiClient;
use serde_json::Value;

use gossipcoin::keys::PrivateKey;
use gossipcoin::params::ChainParams;
use gossipcoin_proto::{
    Amount, Block, BlockHeader, OutPoint, PubkeyHash, Signature, Transaction, TxIn, TxOut,
};

pub const BIN: &str = env!("CARGO_BIN_EXE_gossipcoin");

/// The binary the daemons run: `GOSSIPCOIN_BIN` when set (to measure another build, e.g. the
/// one before a change, in the same run conditions), else the one cargo built with the bench.
pub fn bin() -> String {
    std::env::var("GOSSIPCOIN_BIN").unwrap_or_else(|_| BIN.to_owned())
}

/// Devnet rules with an easy, fixed target, written to `dir/params.toml` for the daemons
/// (fixed: the benches mine thousands of blocks at once, which ASERT would make ever harder).
pub fn easy_params(dir: &Path) -> (ChainParams, PathBuf) {
    let text = gossipcoin::params::DEVNET_TOML
        .replace("pow_bits = 0x1e0fffff", "pow_bits = 0x207fffff")
        .replace("retarget = \"asert\"", "retarget = \"fixed\"");
    let path = dir.join("params.toml");
    std::fs::write(&path, &text).unwrap();
    (ChainParams::from_toml(&text).unwrap(), path)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn mine(block: &mut Block) {
    block.header.merkle_root = block.compute_merkle_root();
    let target = gossipcoin_proto::Target::from_compact(block.header.bits).unwrap();
    while !target.is_met_by(&block.block_hash()) {
        block.header.nonce += 1;
    }
}

/// `blocks` blocks after genesis, each with `per_block` one-input transactions spending the
/// previous block's coinbase outputs. With `rich = Some((a, n))`, the first transaction of blocks
/// 1..=n pays `a` instead (coins nobody spends later).
pub fn build_chain(
    params: &ChainParams,
    blocks: u32,
    per_block: usize,
    rich: Option<(PubkeyHash, u32)>,
) -> Vec<Block> {
    let key = PrivateKey::from_bytes(&[7; 32]).unwrap();
    let owner = key.pubkey_hash();
    let share = Amount::from_units(params.block_subsidy.units() / per_block as u64).unwrap();
    let coinbase = |height: u32| {
        let mut cb = Transaction::coinbase(height, owner, share);
        cb.outputs = vec![
            TxOut {
                value: share,
                owner
            };
            per_block
        ];
        cb
    };
    let header = |prev, time| BlockHeader {
        version: 1,
        prev,
        merkle_root: Default::default(),
        time,
        bits: params.pow_bits,
        nonce: 0,
    };
    let mut genesis = Block {
        header: header(gossipcoin_proto::BlockHash::ZERO, 1_600_000_000),
        txs: vec![coinbase(0)],
    };
    mine(&mut genesis);
    let mut chain = vec![genesis];
    for height in 1..=blocks {
        let prev = chain.last().unwrap();
        let prev_cb = prev.txs[0].compute_txid();
        let mut txs = vec![coinbase(height)];
        for vout in 0..per_block as u32 {
            let spent = prev.txs[0].outputs[vout as usize];
            let mut tx = Transaction {
                version: 1,
                inputs: vec![TxIn {
                    prevout: OutPoint {
                        txid: prev_cb,
                        vout,
                    },
                    signature: Signature::ZERO,
                    pubkey: key.public_key(),
                }],
                outputs: vec![TxOut {
                    value: spent.value,
                    owner: match rich {
                        Some((rich, n)) if vout == 0 && height <= n => rich,
                        _ => owner,
                    },
                }],
            };
            let c = tx.sighash_commitment();
            tx.inputs[0].signature = key.sign(&Transaction::sighash(&c, 0, &spent));
            txs.push(tx);
        }
        let mut b = Block {
            header: header(prev.block_hash(), prev.header.time + 1),
            txs,
        };
        mine(&mut b);
        chain.push(b);
    }
    chain
}

/// Starts a release daemon on `dir` with JSON logs in `dir/node.log` and an OS-chosen API port.
pub fn start(dir: &Path, params: &Path, args: &[&str]) -> Child {
    std::fs::create_dir_all(dir).unwrap();
    Command::new(bin())
        .arg("--data-dir")
        .arg(dir)
        .arg("--params")
        .arg(params)
        .args(["startnode", "--log-format", "json", "--log-file"])
        .arg(dir.join("node.log"))
        .args(["--api-listen", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// User + system CPU seconds of `pid`, from `/proc/PID/stat` (clock ticks of 1/100 s, the
/// Linux default).
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// The scenario names given on the command line (`cargo bench --bench X -- NAME...`, flags
/// skipped): a scenario runs when none were given or one is part of its name.
pub struct Wanted(Vec<String>);

impl Wanted {
    pub fn from_args() -> Self {
        Self(
            std::env::args()
                .skip(1)
                .filter(|a| !a.starts_with('-'))
                .collect(),
        )
    }

    pub fn includes(&self, name: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|f| name.contains(f.as_str()))
    }

    /// Like [`Wanted::includes`], except that a name given exactly as one of `names` (the
    /// bench's scenarios) selects that scenario alone: `sync` does not also pick `small-sync`.
    pub fn includes_among(&self, name: &str, names: &[&str]) -> bool {
        self.0.is_empty()
            || self.0.iter().any(|f| {
                if names.contains(&f.as_str()) {
                    f == name
                } else {
                    name.contains(f.as_str())
                }
            })
    }
}

/// A release daemon started with [`start`] on a free loopback p2p port, reached through its
/// HTTP API (URL from `api.addr`, cookie from `api.cookie`, once the node has written them).
/// Stopped on drop: SIGTERM, then SIGKILL after 5 s.
pub struct Node {
    pub dir: PathBuf,
    pub child: Child,
    /// The p2p listen multiaddr.
    pub p2p: String,
    api: OnceLock<ApiClient>,
}

impl Node {
    /// Spawns the daemon (listening on a free port, plus `args`) and returns at once: a node
    /// with an empty data directory only serves its API after it adopted a genesis.
    pub fn spawn(dir: &Path, params: &Path, args: &[&str]) -> Node {
        let p2p = format!("/ip4/127.0.0.1/tcp/{}", free_port());
        let mut all = vec!["--listen", p2p.as_str()];
        all.extend_from_slice(args);
        let child = start(dir, params, &all);
        Node {
            dir: dir.to_path_buf(),
            child,
            p2p,
            api: OnceLock::new(),
        }
    }

    /// [`Node::spawn`], then waits (60 s at most) until `GET /status` answers.
    pub fn start(dir: &Path, params: &Path, args: &[&str]) -> Node {
        let mut node = Node::spawn(dir, params, args);
        node.wait_status(Duration::from_secs(60));
        node
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The API client, once `api.addr` is written.
    pub fn api(&self) -> Option<&ApiClient> {
        if let Some(api) = self.api.get() {
            return Some(api);
        }
        let url = std::fs::read_to_string(self.dir.join("api.addr")).ok()?;
        let url = url.trim();
        if !url.starts_with("http://") || !self.dir.join("api.cookie").exists() {
            return None;
        }
        let api = ApiClient::new(url, Some(&self.dir)).timeout(Duration::from_secs(20));
        Some(self.api.get_or_init(|| api))
    }

    /// `GET /status`, or `None` while the API does not answer.
    pub fn status(&self) -> Option<Value> {
        self.api()?.get("/status").ok()
    }

    /// The height `GET /status` reports.
    pub fn height(&self) -> Option<u64> {
        self.status()?["height"].as_u64()
    }

    /// Waits until `GET /status` answers; panics after `limit` or when the process exited.
    pub fn wait_status(&mut self, limit: Duration) -> Value {
        let t = Instant::now();
        loop {
            if let Some(status) = self.status() {
                return status;
            }
            let exited = !matches!(self.child.try_wait(), Ok(None));
            assert!(
                !exited && t.elapsed() < limit,
                "the node on {} did not start (exited: {exited}); see its node.log",
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then SIGKILL after 5 s.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let t = Instant::now();
        while matches!(self.child.try_wait(), Ok(None)) && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Peak RSS (`VmHWM`) of `pid` in KiB, from `/proc/PID/status`.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix("VmHWM:")?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}
