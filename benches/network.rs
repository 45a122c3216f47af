//! Network numbers, measured with the real release binary as separate processes on loopback.
//! Every wait polls the daemons' HTTP API (`GET /status`) and has a deadline; the benches depend
//! only on the binary, its flags, its API and the protocol types, so they measure whichever
//! sync the binary has.
//!
//! | scenario | what | target |
//! |---|---|---|
//! | `sync` | a fresh node downloads 2,000 blocks of 50 transactions from one peer (blocks/s, tx/s, start until `/status` says height 2,000), next to validating and connecting the same blocks locally in this process, and next to bare k256 verification of the chain's signatures on all cores (rayon); the syncing node's peak RSS (VmHWM) | sync ≥ 70 % of local; sync tx/s ≥ 0.8 × verify-only tx/s |
//! | `propagation` | a 10-process network with one miner: "mined block" in the miner's JSON log to "accepted block" in every other node's, median and worst, over 50 blocks | — |
//! | `small-sync` | a fresh node downloads 3,000 small blocks (coinbase + one payment) from one peer: blocks/s and its peak RSS | ≥ 9,000 blocks/s (10× blockchain_go's 933), peak RSS ≤ 24 MiB |
//! | `two-peers` | the 2,000 × 50 chain from one peer vs from two (bootstrapped to one, told the other through `POST /nodes/register`) | two peers faster than one |
//! | `liar-slow`, `liar-silent` | A (at genesis), B (200 blocks ahead), C, plus a lying peer on A claiming `chain_work = U256::MAX` (its Status re-sent every 200 ms) that answers block and header requests emptily after 5 s (`slow`) or never (`silent`): how long A takes to reach B's height against the same run without the liar, how long A's `/status` said `syncing`, and whether `GET /mine` on A then answers (not 503) | within 10 s of the honest run; `/mine` not 503 |
//!
//! `cargo bench --bench network` (all), or `-- NAME...`: a scenario's exact name selects it
//! alone (`-- sync` is not also `small-sync`), other words select every scenario whose name
//! contains them (`-- liar` runs both liars).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gossipcoin::chain::{Chain, Origin};
use gossipcoin::net::{self, NetConfig, NetworkEvent, PeerId};
use gossipcoin::params::ChainParams;
use gossipcoin_proto::message::{Request, Response, Role, Status};
use gossipcoin_proto::{Block, BlockHash, OutPoint, PubkeyHash, TxOut, U256};
use rayon::prelude::*;

mod common;
use common::{BIN, Node, build_chain, easy_params, free_port, start, vm_hwm_kib};

const SCENARIOS: [&str; 6] = [
    "sync",
    "propagation",
    "small-sync",
    "two-peers",
    "liar-slow",
    "liar-silent",
];

fn main() {
    let wanted = common::Wanted::from_args();
    let want = |name: &str| wanted.includes_among(name, &SCENARIOS);
    let tmp = tempfile::tempdir().unwrap();
    let (params, params_file) = easy_params(tmp.path());
    let fixture = Fixture {
        root: tmp.path().to_path_buf(),
        params,
        params_file,
        big: std::sync::OnceLock::new(),
    };
    // The numbers only mean something next to how busy the machine was.
    println!(
        "(load average {} on {} cores when the run began)\n",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if want("sync") {
        sync(&fixture);
    }
    if want("propagation") {
        propagation();
    }
    if want("small-sync") {
        small_sync(&fixture);
    }
    if want("two-peers") {
        two_peers(&fixture);
    }
    let liars: Vec<Lie> = [Lie::Slow, Lie::Silent]
        .into_iter()
        .filter(|l| want(l.name()))
        .collect();
    if !liars.is_empty() {
        liar(&fixture, &liars);
    }
}

/// What the scenarios of one run share: the parameters and the chain of 2,000 × 50 blocks.
struct Fixture {
    root: PathBuf,
    params: ChainParams,
    params_file: PathBuf,
    big: std::sync::OnceLock<BigChain>,
}

/// The 2,000 × 50 chain, its `data.mdb`, and how long this process took to validate and
/// connect it.
struct BigChain {
    blocks: Vec<Block>,
    db: PathBuf,
    local: Duration,
}

const BIG_BLOCKS: u32 = 2_000;
const BIG_TXS: usize = 50;

impl Fixture {
    fn big(&self) -> &BigChain {
        self.big.get_or_init(|| {
            let t = Instant::now();
            let blocks = build_chain(&self.params, BIG_BLOCKS, BIG_TXS, None);
            println!(
                "   (built the chain of {BIG_BLOCKS} blocks x {BIG_TXS} txs in {:.1} s)",
                t.elapsed().as_secs_f64()
            );
            let (db, local) = store_chain(&self.params, &blocks, &self.root.join("big"));
            BigChain { blocks, db, local }
        })
    }
}

/// Validates and connects `blocks` (genesis first) into a new chain under `dir`, one fsynced
/// transaction per block as a syncing node does; returns its `data.mdb` and the time it took.
fn store_chain(params: &ChainParams, blocks: &[Block], dir: &Path) -> (PathBuf, Duration) {
    let t = Instant::now();
    let chain = Chain::create(&dir.join("chain"), params.clone(), &blocks[0]).unwrap();
    for b in &blocks[1..] {
        chain.accept_block(b, u32::MAX, Origin::Requested).unwrap();
    }
    let took = t.elapsed();
    drop(chain);
    (dir.join("chain/data.mdb"), took)
}

/// A node serving (a copy of) the chain in `db`.
fn serve(fixture: &Fixture, db: &Path, dir: &Path, args: &[&str]) -> Node {
    std::fs::create_dir_all(dir.join("chain")).unwrap();
    std::fs::copy(db, dir.join("chain/data.mdb")).unwrap();
    Node::start(dir, &fixture.params_file, args)
}

/// How a fresh node's sync went.
struct Synced {
    /// From spawning the fresh node until its `/status` said the height (`None`: not within
    /// the deadline).
    took: Option<Duration>,
    /// Its last reported height.
    height: u64,
    /// Its peak RSS in KiB.
    peak_kib: u64,
}

/// Starts a fresh node bootstrapped to `servers[0]`, tells it the other servers through
/// `POST /nodes/register` as soon as its API answers, and polls `/status` until it reports
/// `height` (at most `deadline`).
fn fresh_sync(
    fixture: &Fixture,
    dir: &Path,
    servers: &[&Node],
    height: u64,
    deadline: Duration,
) -> Synced {
    let t = Instant::now();
    let fresh = Node::spawn(
        dir,
        &fixture.params_file,
        &["--role", "wallet", "--bootstrap", &servers[0].p2p],
    );
    let pid = fresh.pid();
    let mut registered = servers.len() < 2;
    let (mut reached, mut peak) = (0, 0);
    let took = loop {
        peak = peak.max(vm_hwm_kib(pid).unwrap_or(0));
        if !registered && let Some(api) = fresh.api() {
            let others: Vec<&str> = servers[1..].iter().map(|s| s.p2p.as_str()).collect();
            if let Err(e) = api.post("/nodes/register", &serde_json::json!({ "nodes": others })) {
                println!("   POST /nodes/register failed: {e:#}");
            }
            registered = true;
        }
        if let Some(h) = fresh.height() {
            reached = h;
            if h >= height {
                break Some(t.elapsed());
            }
        }
        if t.elapsed() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    peak = peak.max(vm_hwm_kib(pid).unwrap_or(0));
    Synced {
        took,
        height: reached,
        peak_kib: peak,
    }
}

fn sync(fixture: &Fixture) {
    println!("sync: initial sync of {BIG_BLOCKS} blocks x {BIG_TXS} txs from one peer");
    let big = fixture.big();
    let dir = fixture.root.join("sync");
    let server = serve(
        fixture,
        &big.db,
        &dir.join("server"),
        &["--role", "central"],
    );
    let synced = fresh_sync(
        fixture,
        &dir.join("fresh"),
        &[&server],
        u64::from(BIG_BLOCKS),
        Duration::from_secs(900),
    );
    drop(server);
    let verify = verify_only(&big.blocks);
    let txs = f64::from(BIG_BLOCKS) * BIG_TXS as f64;
    let rate = |d: Duration| f64::from(BIG_BLOCKS) / d.as_secs_f64();
    println!(
        "   local validate + connect : {:>7.0} blocks/s {:>8.0} tx/s",
        rate(big.local),
        rate(big.local) * BIG_TXS as f64
    );
    println!(
        "   verify-only (k256, rayon on {} cores): {:>8.0} tx/s  ({:.2} s for {txs:.0} signatures)",
        rayon::current_num_threads(),
        txs / verify.as_secs_f64(),
        verify.as_secs_f64()
    );
    let Some(took) = synced.took else {
        println!(
            "   sync over loopback did not finish within 900 s (height {})\n",
            synced.height
        );
        return;
    };
    println!(
        "   sync over loopback       : {:>7.0} blocks/s {:>8.0} tx/s  ({:.1} s incl. start-up)",
        rate(took),
        rate(took) * BIG_TXS as f64,
        took.as_secs_f64()
    );
    println!(
        "   sync / local             : {:>7.0} %   (target >= 70 %)",
        100.0 * rate(took) / rate(big.local)
    );
    println!(
        "   sync tx/s / verify-only tx/s: {:.2}   (target >= 0.8)",
        (rate(took) * BIG_TXS as f64) / (txs / verify.as_secs_f64())
    );
    println!(
        "   peak RSS of the syncing node: {:.1} MiB\n",
        synced.peak_kib as f64 / 1024.0
    );
}

/// Bare signature verification of every input of `blocks` on all cores, as the node checks an
/// input (`verify_input`: the public key hashes to the coin's owner, the signature signs the
/// input's sighash): the time it took. The spent outputs are looked up beforehand.
fn verify_only(blocks: &[Block]) -> Duration {
    let outputs: std::collections::HashMap<OutPoint, TxOut> = blocks
        .iter()
        .flat_map(|b| &b.txs)
        .flat_map(|tx| {
            let txid = tx.compute_txid();
            tx.outputs.iter().enumerate().map(move |(vout, out)| {
                (
                    OutPoint {
                        txid,
                        vout: vout as u32,
                    },
                    *out,
                )
            })
        })
        .collect();
    let spends: Vec<_> = blocks
        .iter()
        .flat_map(|b| &b.txs[1..])
        .map(|tx| {
            let spent: Vec<TxOut> = tx.inputs.iter().map(|i| outputs[&i.prevout]).collect();
            (tx, spent)
        })
        .collect();
    let t = Instant::now();
    let ok = spends.par_iter().all(|(tx, spent)| {
        let commitment = tx.sighash_commitment();
        tx.inputs
            .iter()
            .zip(spent)
            .enumerate()
            .all(|(i, (input, coin))| {
                PubkeyHash::of_pubkey(&input.pubkey) == coin.owner
                    && gossipcoin::keys::verify(
                        &gossipcoin_proto::Transaction::sighash(&commitment, i as u32, coin),
                        &input.signature,
                        &input.pubkey,
                    )
                    .is_ok()
            })
    });
    let took = t.elapsed();
    assert!(ok, "a signature of the chain did not verify");
    took
}

fn small_sync(fixture: &Fixture) {
    const BLOCKS: u32 = 3_000;
    println!("small-sync: initial sync of {BLOCKS} blocks of coinbase + one payment from one peer");
    let dir = fixture.root.join("small-sync");
    let blocks = build_chain(&fixture.params, BLOCKS, 1, None);
    let (db, _) = store_chain(&fixture.params, &blocks, &dir.join("build"));
    drop(blocks);
    let server = serve(fixture, &db, &dir.join("server"), &["--role", "central"]);
    let synced = fresh_sync(
        fixture,
        &dir.join("fresh"),
        &[&server],
        u64::from(BLOCKS),
        Duration::from_secs(300),
    );
    match synced.took {
        Some(took) => println!(
            "   sync over loopback: {:>7.0} blocks/s  ({:.2} s incl. start-up; target >= 9,000 \
             blocks/s, 10x blockchain_go's 933)",
            f64::from(BLOCKS) / took.as_secs_f64(),
            took.as_secs_f64()
        ),
        None => println!(
            "   sync did not finish within 300 s (height {})",
            synced.height
        ),
    }
    println!(
        "   peak RSS of the syncing node: {:.1} MiB  (target <= 24 MiB)\n",
        synced.peak_kib as f64 / 1024.0
    );
}

fn two_peers(fixture: &Fixture) {
    println!("two-peers: initial sync of {BIG_BLOCKS} blocks x {BIG_TXS} txs from one peer vs two");
    let big = fixture.big();
    let dir = fixture.root.join("two-peers");
    let s1 = serve(fixture, &big.db, &dir.join("s1"), &["--role", "central"]);
    let s2 = serve(fixture, &big.db, &dir.join("s2"), &["--role", "central"]);
    let height = u64::from(BIG_BLOCKS);
    let deadline = Duration::from_secs(900);
    let one = fresh_sync(fixture, &dir.join("fresh1"), &[&s1], height, deadline);
    let two = fresh_sync(fixture, &dir.join("fresh2"), &[&s1, &s2], height, deadline);
    let show = |what: &str, s: &Synced| match s.took {
        Some(t) => println!(
            "   {what}: {:>6.2} s  ({:>6.0} blocks/s, peak RSS {:.1} MiB)",
            t.as_secs_f64(),
            f64::from(BIG_BLOCKS) / t.as_secs_f64(),
            s.peak_kib as f64 / 1024.0
        ),
        None => println!(
            "   {what}: did not finish within {} s (height {})",
            deadline.as_secs(),
            s.height
        ),
    };
    show("one peer ", &one);
    show("two peers", &two);
    if let (Some(a), Some(b)) = (one.took, two.took) {
        println!(
            "   two peers / one peer: {:.2}x the speed\n",
            a.as_secs_f64() / b.as_secs_f64()
        );
    } else {
        println!();
    }
}

fn propagation() {
    const NODES: usize = 10;
    const BLOCKS: usize = 50;
    let tmp = tempfile::tempdir().unwrap();
    let (_, params_file) = easy_params(tmp.path());
    let dirs: Vec<PathBuf> = (0..NODES)
        .map(|i| tmp.path().join(format!("n{i}")))
        .collect();
    let run = |dir: &Path, args: &[&str]| {
        let out = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir)
            .arg("--params")
            .arg(&params_file)
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let payer = run(&dirs[1], &["createwallet"]).replace("Your new address: ", "");
    let payee = run(&dirs[1], &["createwallet"]).replace("Your new address: ", "");
    let miner_addr = run(&dirs[0], &["createwallet"]).replace("Your new address: ", "");
    run(&dirs[1], &["createblockchain", "--address", &payer]);
    run(
        &dirs[1],
        &["generate", "--blocks", "10", "--address", &payer],
    );
    for d in dirs.iter().filter(|d| **d != dirs[1]) {
        std::fs::create_dir_all(d.join("chain")).unwrap();
        std::fs::copy(dirs[1].join("chain/data.mdb"), d.join("chain/data.mdb")).unwrap();
    }
    let miner_cfg = tmp.path().join("miner.toml");
    std::fs::write(
        &miner_cfg,
        "role = \"miner\"\n[mining]\nmin_txs = 1\nmax_wait_secs = 1\n",
    )
    .unwrap();
    let ports: Vec<u16> = (0..NODES).map(|_| free_port()).collect();
    let a = |p: u16| format!("/ip4/127.0.0.1/tcp/{p}");
    let mut children = vec![start(
        &dirs[1],
        &params_file,
        &["--role", "central", "--listen", &a(ports[1])],
    )];
    children.push(start(
        &dirs[0],
        &params_file,
        &[
            "--role",
            "miner",
            "--config",
            miner_cfg.to_str().unwrap(),
            "--miner-address",
            &miner_addr,
            "--listen",
            &a(ports[0]),
            "--bootstrap",
            &a(ports[1]),
        ],
    ));
    for i in 2..NODES {
        children.push(start(
            &dirs[i],
            &params_file,
            &[
                "--role",
                "wallet",
                "--listen",
                &a(ports[i]),
                "--bootstrap",
                &a(ports[1]),
            ],
        ));
    }
    let t = Instant::now();
    while !dirs.iter().all(|d| log(d).contains("peer connected")) {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "nodes did not connect"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(3)); // let the gossip meshes form (a one-off warm-up)
    for i in 0..BLOCKS {
        let height_before = i + 10;
        run(
            &dirs[1],
            &[
                "send",
                "--from",
                &payer,
                "--to",
                &payee,
                "--amount",
                "0.01",
                "--node",
                &a(ports[1]),
            ],
        );
        let want = format!("\"height\":{},", height_before + 1);
        let t = Instant::now();
        while !dirs.iter().all(|d| {
            log(d)
                .lines()
                .any(|l| l.contains("accepted block") && l.contains(&want))
        }) {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "block {} did not reach every node",
                height_before + 1
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    for c in children {
        stop(c);
    }
    // From the JSON logs: mined time (miner) → accepted time (each other node), per block hash.
    let ts = |line: &str| -> Option<(String, f64)> {
        let v = line
            .split("\"timestamp\":\"")
            .nth(1)?
            .split('"')
            .next()?
            .to_string();
        let hash = line
            .split("\"hash\":\"")
            .nth(1)?
            .split('"')
            .next()?
            .to_string();
        // seconds within the day are enough: a run takes minutes
        let time = v.split('T').nth(1)?.trim_end_matches('Z');
        let mut parts = time.split(':');
        let (h, m, s): (f64, f64, f64) = (
            parts.next()?.parse().ok()?,
            parts.next()?.parse().ok()?,
            parts.next()?.parse().ok()?,
        );
        Some((hash, h * 3600.0 + m * 60.0 + s))
    };
    let mined: std::collections::HashMap<String, f64> = log(&dirs[0])
        .lines()
        .filter(|l| l.contains("\"mined block\""))
        .filter_map(ts)
        .collect();
    let (mut per_block_median, mut worst) = (Vec::new(), 0.0f64);
    for (hash, t0) in &mined {
        let mut delays: Vec<f64> = dirs[1..]
            .iter()
            .filter_map(|d| {
                log(d)
                    .lines()
                    .filter(|l| l.contains("accepted block") && l.contains(hash.as_str()))
                    .filter_map(ts)
                    .map(|(_, t)| (t - t0) * 1e3)
                    .next()
            })
            .collect();
        if delays.len() < NODES - 1 {
            continue; // a block that lost a race
        }
        delays.sort_by(f64::total_cmp);
        per_block_median.push(delays[delays.len() / 2]);
        worst = worst.max(*delays.last().unwrap());
    }
    per_block_median.sort_by(f64::total_cmp);
    println!(
        "2. block propagation, {NODES} processes, 1 miner, {} blocks",
        per_block_median.len()
    );
    println!(
        "   mined -> accepted on every node: median {:.1} ms, worst {:.1} ms\n",
        per_block_median[per_block_median.len() / 2],
        worst
    );
}

fn stop(mut child: std::process::Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("node.log")).unwrap_or_default()
}

/// How far ahead B is in the liar scenarios.
const AHEAD: u32 = 200;
/// How long A may take to reach B's height.
const CATCH_UP_DEADLINE: Duration = Duration::from_secs(60);
/// How long the slow liar waits before its empty answer (under the node's 10 s request
/// timeout, so it is an answer, not a timeout).
const LIAR_DELAY: Duration = Duration::from_secs(5);

/// How the lying peer answers requests for blocks and headers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Lie {
    /// Emptily, after [`LIAR_DELAY`].
    Slow,
    /// Never.
    Silent,
}

impl Lie {
    fn name(self) -> &'static str {
        match self {
            Self::Slow => "liar-slow",
            Self::Silent => "liar-silent",
        }
    }
}

/// What the liar saw and did.
#[derive(Default)]
struct LiarStats {
    status_in: AtomicU64,
    data_in: AtomicU64,
    answered_empty: AtomicU64,
    status_out_ok: AtomicU64,
    status_out_failed: AtomicU64,
}

/// A lying peer on gossipcoin's own `net` module, connected to A: it claims `U256::MAX` work
/// on A's genesis, re-sends that Status to A every 200 ms, and answers requests for blocks or
/// headers per its [`Lie`]. It stops when dropped.
struct Liar {
    _handle: net::NetHandle,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stats: Arc<LiarStats>,
    peer_id: String,
}

impl Drop for Liar {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        let _ = self.stop.send(true);
    }
}

impl Liar {
    async fn spawn(dir: &Path, a_p2p: &str, a_peer: &str, genesis: BlockHash, lie: Lie) -> Liar {
        std::fs::create_dir_all(dir).unwrap();
        let mut config = NetConfig::new(dir.join("node.key"));
        config.listen = vec!["/ip4/127.0.0.1/tcp/0".to_owned()];
        config.bootstrap = vec![a_p2p.to_owned()];
        config.genesis = Some(genesis);
        config.discovery = false;
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let (handle, mut events) = net::spawn(config, shutdown).await.expect("net::spawn");
        let status = Status {
            genesis,
            tip: BlockHash([0xee; 32]),
            height: 1_000_000,
            chain_work: U256::MAX,
            role: Role::Central,
            time: gossipcoin::node::unix_now(),
        };
        let stats = Arc::new(LiarStats::default());
        let s = stats.clone();
        let answer = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Some(event) = events.recv().await {
                let NetworkEvent::InboundRequest { request, reply, .. } = event else {
                    continue;
                };
                let empty = match request {
                    Request::Status(_) => {
                        s.status_in.fetch_add(1, Ordering::Relaxed);
                        reply.send(Response::Status(status));
                        continue;
                    }
                    Request::GetHeaders { .. } => Response::Headers(Vec::new()),
                    Request::GetBlocks { .. } | Request::GetBlocksByHash { .. } => {
                        Response::Blocks(Vec::new())
                    }
                    Request::GetBlock { .. } => Response::Block(None),
                    Request::SubmitTx(_) | Request::GetMempool | Request::GetTxs { .. } => {
                        continue; // dropped: answered with an error
                    }
                };
                s.data_in.fetch_add(1, Ordering::Relaxed);
                match lie {
                    Lie::Slow => {
                        let s = s.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(LIAR_DELAY).await;
                            reply.send(empty);
                            s.answered_empty.fetch_add(1, Ordering::Relaxed);
                        });
                    }
                    Lie::Silent => held.push(reply),
                }
            }
        });
        let a: PeerId = a_peer.parse().expect("A's peer id");
        let (s, h) = (stats.clone(), handle.clone());
        let nag = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                let (s, h) = (s.clone(), h.clone());
                tokio::spawn(async move {
                    let counter = match h.request(a, Request::Status(status)).await {
                        Ok(Response::Status(_)) => &s.status_out_ok,
                        _ => &s.status_out_failed,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                });
            }
        });
        Liar {
            peer_id: handle.local_peer_id().to_string(),
            _handle: handle,
            stop,
            tasks: vec![answer, nag],
            stats,
        }
    }

    fn summary(&self) -> String {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let s = &self.stats;
        format!(
            "A sent it {} Status and {} block/header requests ({} answered empty); its own \
             Status to A: {} answered, {} failed",
            n(&s.status_in),
            n(&s.data_in),
            n(&s.answered_empty),
            n(&s.status_out_ok),
            n(&s.status_out_failed)
        )
    }
}

/// One catch-up of A, observed through its `/status`.
struct CatchUp {
    /// From B's start until A reported B's height.
    took: Option<Duration>,
    height: u64,
    /// A's `sync` states with when they began (s after B's start).
    states: Vec<(f64, String)>,
    /// The longest time A said `syncing` without a break.
    longest_syncing: Duration,
    /// What `GET /mine` on A answered after the catch-up (or the deadline).
    mine: String,
    /// The liar's counters, and whether A still listed it.
    liar: Option<String>,
}

fn liar(fixture: &Fixture, lies: &[Lie]) {
    println!(
        "liar: A (at genesis) catches up with B ({AHEAD} blocks ahead, bootstrapped to A) and C, \
         without and with a peer on A claiming U256::MAX work"
    );
    let dir = fixture.root.join("liar");
    let blocks = build_chain(&fixture.params, AHEAD, 1, None);
    let (ahead, _) = store_chain(&fixture.params, &blocks, &dir.join("ahead"));
    let (genesis_only, _) = store_chain(&fixture.params, &blocks[..1], &dir.join("genesis"));
    let genesis = blocks[0].block_hash();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let run = |name: &str, lie: Option<Lie>| {
        catch_up(
            fixture,
            &dir.join(name),
            (&genesis_only, &ahead),
            genesis,
            lie,
            &rt,
        )
    };
    let honest = run("honest", None);
    report("honest", &honest, None);
    for &lie in lies {
        let r = run(lie.name(), Some(lie));
        report(lie.name(), &r, honest.took);
    }
    println!();
}

fn catch_up(
    fixture: &Fixture,
    dir: &Path,
    (genesis_only, ahead): (&Path, &Path),
    genesis: BlockHash,
    lie: Option<Lie>,
    rt: &tokio::runtime::Runtime,
) -> CatchUp {
    let a = serve(
        fixture,
        genesis_only,
        &dir.join("a"),
        &["--role", "central"],
    );
    let a_peer = a.status().unwrap()["peer_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let liar = lie.map(|lie| {
        let liar = rt.block_on(Liar::spawn(
            &dir.join("liar"),
            &a.p2p,
            &a_peer,
            genesis,
            lie,
        ));
        // A has heard the lie once it says it is syncing.
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10)
            && a.status().is_none_or(|s| s["sync"] != "syncing")
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        liar
    });
    let t = Instant::now();
    let b = serve(
        fixture,
        ahead,
        &dir.join("b"),
        &["--role", "wallet", "--bootstrap", &a.p2p],
    );
    let c = serve(
        fixture,
        genesis_only,
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
    let mut states: Vec<(f64, String)> = Vec::new();
    let (mut height, mut took, mut longest) = (0, None, Duration::ZERO);
    let mut since = Duration::ZERO;
    let mut settle_until = None;
    loop {
        let now = t.elapsed();
        if let Some(status) = a.status() {
            let state = status["sync"].as_str().unwrap_or("?").to_owned();
            if states.last().is_none_or(|(_, s)| *s != state) {
                if states.last().is_some_and(|(_, s)| s == "syncing") {
                    longest = longest.max(now - since);
                }
                states.push((now.as_secs_f64(), state));
                since = now;
            }
            height = status["height"].as_u64().unwrap_or(0);
            if took.is_none() && height >= u64::from(AHEAD) {
                took = Some(now);
                // watch a little longer: does A still say it is syncing?
                settle_until = Some(now + Duration::from_secs(2));
            }
        }
        if settle_until.is_some_and(|u| now >= u) || now > CATCH_UP_DEADLINE {
            if states.last().is_some_and(|(_, s)| s == "syncing") {
                longest = longest.max(now - since);
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let reward = gossipcoin::keys::PrivateKey::from_bytes(&[5; 32])
        .unwrap()
        .address();
    let mine = match a.api().unwrap().get(&format!("/mine?address={reward}")) {
        Ok(v) => format!("answered (not 503): mined block {}", v["block"]["index"]),
        Err(e) => format!("{e:#}"),
    };
    let liar = liar.map(|l| {
        let listed = a
            .api()
            .and_then(|api| api.get("/peers").ok())
            .and_then(|v| v["peers"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .any(|p| p["peer_id"] == l.peer_id.as_str());
        format!(
            "{}; A {} it at the end",
            l.summary(),
            if listed {
                "still listed"
            } else {
                "no longer listed"
            }
        )
    });
    drop((c, b, a));
    CatchUp {
        took,
        height,
        states,
        longest_syncing: longest,
        mine,
        liar,
    }
}

fn report(name: &str, r: &CatchUp, honest: Option<Duration>) {
    match (r.took, honest) {
        (Some(t), Some(h)) => println!(
            "   {name:<11}: A reached height {AHEAD} {:.2} s after B started ({:+.2} s vs the honest \
             run; target <= +10 s)",
            t.as_secs_f64(),
            t.as_secs_f64() - h.as_secs_f64()
        ),
        (Some(t), None) => println!(
            "   {name:<11}: A reached height {AHEAD} {:.2} s after B started",
            t.as_secs_f64()
        ),
        (None, _) => println!(
            "   {name:<11}: A did not catch up within {} s (height {} of {AHEAD})",
            CATCH_UP_DEADLINE.as_secs(),
            r.height
        ),
    }
    let states: Vec<String> = r
        .states
        .iter()
        .map(|(at, s)| format!("{s}@{at:.1}s"))
        .collect();
    let longer = match (honest, r.liar.is_some()) {
        (Some(h), true) => format!(
            " ({} than the honest catch-up's {:.2} s)",
            if r.longest_syncing > h {
                "longer"
            } else {
                "not longer"
            },
            h.as_secs_f64()
        ),
        _ => String::new(),
    };
    println!(
        "      A's /status sync: {}; longest 'syncing' stretch {:.1} s{longer}",
        states.join(" "),
        r.longest_syncing.as_secs_f64()
    );
    println!("      then GET /mine on A: {}", r.mine);
    if let Some(liar) = &r.liar {
        println!("      liar: {liar}");
    }
}
