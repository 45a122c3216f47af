//! The scenarios, each on a fresh A–B–C network: what the attacker does, while B mines an
//! honest block, and what the victim A shows. Every wait has a deadline.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use gossipcoin::node::unix_now;
use gossipcoin_proto::message::{MAX_GOSSIP_BYTES, Request};
use gossipcoin_proto::{
    Amount, BlockHash, OutPoint, PublicKey, Signature, Transaction, TxIn, TxOut, Txid,
};
use tokio::runtime::Runtime;

use crate::forge;
use crate::gossip_peer::GossipPeer;
use crate::network::{Daemon, HonestBlock, Network, Setup, retry};
use crate::probe::{RssSampler, StatusProbe, cpu_secs, disk_usage, loopback_bytes, wait_idle};
use crate::raw_peer::{RawPeer, Reading, frame};
use crate::report::{CONNECT_TARGET_S, Row, Timed};
use crate::source_proxy::SourceProxy;

/// How long an honest block may take to reach A and C before it counts as lost.
const BLOCK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an honest node may take to connect before it counts as locked out (3x target).
const CONNECT_LIMIT: f64 = 3.0 * CONNECT_TARGET_S;
/// How long A may stay busy after an attack before the bench moves on.
const IDLE_LIMIT: Duration = Duration::from_secs(60);

const MIB: f64 = 1024.0 * 1024.0;
/// Bytes of one fat block (`ATTACK_FAT_BYTES` overrides). Under the 4 MiB gossip cap
/// ([`MAX_GOSSIP_BYTES`]): gossipsub in this process silently never sends a message of
/// 4,193,280 bytes (3.5 MB ones go out), so the attack checks that its bytes crossed loopback.
const FAT_BYTES: usize = 4_000_000;
const _: () = assert!(FAT_BYTES < MAX_GOSSIP_BYTES);

/// What is measured on A from the start of an attack until it has finished the work the
/// attack queued: RSS, CPU, loopback traffic, `GET /status` latency.
struct Watch {
    rss: RssSampler,
    status: StatusProbe,
    pid: u32,
    cpu0: f64,
    lo0: u64,
    t0: Instant,
}

impl Watch {
    fn start(a: &Daemon) -> Watch {
        let pid = a.pid();
        Watch {
            rss: RssSampler::start(pid),
            status: StatusProbe::start(a.api.url()),
            pid,
            cpu0: cpu_secs(pid),
            lo0: loopback_bytes(),
            t0: Instant::now(),
        }
    }

    /// Waits until A is idle (at most [`IDLE_LIMIT`]), then records what was measured.
    fn finish(self, row: &mut Row) {
        let attack = self.t0.elapsed();
        let busy = wait_idle(self.pid, IDLE_LIMIT);
        let (cpu, lo) = (
            cpu_secs(self.pid) - self.cpu0,
            loopback_bytes().saturating_sub(self.lo0) as f64 / MIB,
        );
        let (base, growth) = self.rss.finish();
        let (slowest, failed) = self.status.finish();
        row.rss_mib = Some(growth);
        row.fact(format!(
            "A: RSS {base:.0} MiB before, peak +{growth:.1} MiB; CPU {cpu:.1} s over {:.1} s; \
             busy {:.1} s after the attack; loopback carried {lo:.0} MiB; slowest GET /status \
             {slowest} ms ({failed} failed)",
            attack.as_secs_f64() + busy.as_secs_f64(),
            busy.as_secs_f64().max(0.5) - 0.5,
        ));
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

/// Sends `frames` at `per_second` (bounded by their count).
fn paced(frames: Vec<Vec<u8>>, per_second: f64, send: impl Fn(Vec<u8>)) {
    let t0 = Instant::now();
    for (i, f) in frames.into_iter().enumerate() {
        let due = t0 + Duration::from_secs_f64(i as f64 / per_second);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        send(f);
    }
}

fn honest_fact(row: &mut Row, b: HonestBlock) {
    let show = |v: Option<f64>| {
        v.map_or(format!("not within {} s", BLOCK_TIMEOUT.as_secs()), |v| {
            format!("{v:.0} ms")
        })
    };
    row.fact(format!(
        "honest block mined by B during the attack: A after {}, C after {}",
        show(b.to_a),
        show(b.to_c)
    ));
    row.block = Some(b);
}

/// Whether A's log says it banned `peer_id`.
fn banned(a: &Daemon, peer_id: &str) -> bool {
    a.log()
        .lines()
        .any(|l| l.contains("banned") && l.contains(peer_id))
}

/// A's view of `peer_id`: its score, or that it is not connected.
fn score(a: &Daemon, peer_id: &str) -> String {
    a.peers()
        .iter()
        .find(|p| p["peer_id"] == peer_id)
        .map_or("not connected".into(), |p| {
            format!("connected, score {}", p["score"])
        })
}

/// Starts honest node `name` (127.0.0.1, bootstrap A) and times, from its spawn, until A's
/// `/peers` lists it (at most [`CONNECT_LIMIT`] s).
fn honest_connect(net: &Network, setup: &Setup, name: &str) -> Timed {
    let t = Instant::now();
    let d = net.start_honest(setup, name);
    let limit = Duration::from_secs_f64(CONNECT_LIMIT).saturating_sub(t.elapsed());
    match retry(limit, || net.a.lists(&d.peer_id).then_some(())) {
        Some(()) => Ok(t.elapsed().as_secs_f64()),
        None => Err(CONNECT_LIMIT),
    }
}

fn show_timed(t: Timed) -> String {
    match t {
        Ok(s) => format!("{s:.1} s"),
        Err(limit) => format!("not within {limit:.0} s"),
    }
}

/// No attacker: honest blocks (median of 5) and an honest node's connect time.
pub fn baseline(setup: &Setup) -> Row {
    let mut row = Row::new("baseline");
    let net = Network::start(setup, "baseline", false);
    let watch = Watch::start(&net.a);
    let blocks: Vec<HonestBlock> = (0..5).map(|_| net.honest_block(BLOCK_TIMEOUT)).collect();
    let block = HonestBlock {
        to_a: median(blocks.iter().filter_map(|b| b.to_a).collect()),
        to_c: median(blocks.iter().filter_map(|b| b.to_c).collect()),
    };
    let all: Vec<String> = blocks
        .iter()
        .map(|b| {
            format!(
                "{:.0}/{:.0}",
                b.to_a.unwrap_or(f64::NAN),
                b.to_c.unwrap_or(f64::NAN)
            )
        })
        .collect();
    row.fact(format!("5 honest blocks, ms to A/C: {}", all.join(" ")));
    row.block = Some(block);
    let connect = honest_connect(&net, setup, "d");
    row.fact(format!(
        "honest node D connected to A in {}",
        show_timed(connect)
    ));
    row.connect = Some(connect);
    watch.finish(&mut row);
    row
}

/// Scenario 1: twenty fat gossip blocks, a valid header on A's tip over ~4 MB of empty
/// transactions.
pub fn fat_blocks(setup: &Setup, rt: &Runtime) -> Row {
    const N: u32 = 20;
    let mut row = Row::new("1 fat-blocks");
    let net = Network::start(setup, "fat-blocks", false);
    let tip: BlockHash = net.a.api.get("/status").unwrap()["tip"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = unix_now();
    let fat_bytes = std::env::var("ATTACK_FAT_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(FAT_BYTES);
    let fat: Vec<(Vec<u8>, BlockHash)> = (0..N)
        .map(|i| forge::fat_block(&setup.params, tip, now, i, fat_bytes))
        .collect();
    let txs = forge::check_fat_block(&fat[0].0, fat[0].1);
    let sent: usize = fat.iter().map(|f| f.0.len()).sum();
    let peer = gossip_attacker(rt, &net, setup);
    let attacker = peer.handle.local_peer_id().to_string();
    let watch = Watch::start(&net.a);
    let lo0 = loopback_bytes();
    for (bytes, _) in &fat {
        peer.handle.publish_raw(true, bytes.clone());
    }
    // Publishing only queues (and signs): B mines once half the bytes have crossed loopback, so
    // the honest block meets A in the middle of the attack.
    let crossed = |part: u64| {
        retry(Duration::from_secs(30), || {
            (loopback_bytes().saturating_sub(lo0) >= sent as u64 / part).then_some(())
        })
    };
    crossed(2);
    let block = Some(net.honest_block(BLOCK_TIMEOUT));
    crossed(1);
    let carried = loopback_bytes().saturating_sub(lo0) as f64 / MIB;
    watch.finish(&mut row);
    if let Some(b) = block {
        honest_fact(&mut row, b);
    }
    row.fact(format!(
        "delivery check: loopback carried {carried:.0} MiB while the {:.0} MiB were sent",
        sent as f64 / MIB
    ));
    let log = net.a.log();
    let seen = fat
        .iter()
        .filter(|(_, h)| log.contains(&h.to_string()))
        .count();
    row.fact(format!(
        "sent {N} blocks of {txs} empty txs, {:.1} MiB in all; A logged {seen}/{N} of them; \
         attacker banned: {}; now {}",
        sent as f64 / MIB,
        banned(&net.a, &attacker),
        score(&net.a, &attacker)
    ));
    row
}

/// The GetBlocks request the amplification scenarios send.
fn get_blocks(setup: &Setup) -> Vec<u8> {
    frame(&Request::GetBlocks {
        locator: vec![setup.genesis],
        max: 500,
    })
}

/// Scenario 2a: 150 `GetBlocks{[genesis], 500}` at 45/s, each answered with ~9 MB of big
/// blocks.
pub fn amplification(setup: &Setup, rt: &Runtime) -> Row {
    const N: usize = 150;
    let mut row = Row::new("2a amplification");
    let net = Network::start(setup, "amplification", true);
    let peer = rt.block_on(RawPeer::connect(&net.a.p2p, Reading::Count));
    let request = get_blocks(setup);
    let watch = Watch::start(&net.a);
    let t0 = Instant::now();
    let block = std::thread::scope(|s| {
        s.spawn(|| paced(vec![request.clone(); N], 45.0, |f| peer.send(f)));
        retry(Duration::from_secs(10), || {
            (peer.stats.sent.load(std::sync::atomic::Ordering::Relaxed) >= N as u64 / 2)
                .then_some(())
        });
        net.honest_block(BLOCK_TIMEOUT)
    });
    let answered = retry(Duration::from_secs(60), || {
        (peer.stats.outstanding() == 0).then_some(())
    });
    let took = t0.elapsed().as_secs_f64();
    watch.finish(&mut row);
    honest_fact(&mut row, block);
    let got = peer
        .stats
        .response_bytes
        .load(std::sync::atomic::Ordering::Relaxed) as f64;
    row.fact(format!(
        "{N} requests of {} B at 45/s: {}; all answered: {}",
        request.len(),
        peer.stats.summary(),
        answered.is_some()
    ));
    row.fact(format!(
        "attacker received {:.0} MiB in {took:.1} s ({:.1} MiB per request, x{:.0} amplification); \
         attacker {}",
        got / MIB,
        got / MIB / N as f64,
        got / (N * request.len()) as f64,
        score(&net.a, &peer.peer_id)
    ));
    row
}

/// Scenario 2b: a peer that sends 150 `GetBlocks` at 45/s and never reads a response (held
/// 20 s).
pub fn slow_reader(setup: &Setup, rt: &Runtime) -> Row {
    const N: usize = 150;
    const HOLD: Duration = Duration::from_secs(20);
    let mut row = Row::new("2b slow-reader");
    let net = Network::start(setup, "slow-reader", true);
    let peer = rt.block_on(RawPeer::connect(&net.a.p2p, Reading::Hold(HOLD)));
    let request = get_blocks(setup);
    let watch = Watch::start(&net.a);
    let t0 = Instant::now();
    let block = std::thread::scope(|s| {
        s.spawn(|| paced(vec![request.clone(); N], 45.0, |f| peer.send(f)));
        retry(Duration::from_secs(10), || {
            (peer.stats.sent.load(std::sync::atomic::Ordering::Relaxed) >= N as u64 / 2)
                .then_some(())
        });
        net.honest_block(BLOCK_TIMEOUT)
    });
    // the attack is holding the responses: keep it up until HOLD has passed
    if let Some(rest) = HOLD.checked_sub(t0.elapsed()) {
        std::thread::sleep(rest);
    }
    let summary = peer.stats.summary();
    let still = score(&net.a, &peer.peer_id);
    drop(peer);
    watch.finish(&mut row);
    honest_fact(&mut row, block);
    row.fact(format!(
        "{N} requests at 45/s, responses never read for {} s: {summary}; attacker {still}",
        HOLD.as_secs()
    ));
    row
}

/// `n` TCP connections from 127.0.0.2 to `target` that never send a byte.
fn half_open(rt: &Runtime, n: usize, target: SocketAddr) -> Vec<TcpStream> {
    rt.block_on(async {
        let mut out = Vec::new();
        for _ in 0..n {
            let Ok(socket) = tokio::net::TcpSocket::new_v4() else {
                continue;
            };
            if socket.bind("127.0.0.2:0".parse().unwrap()).is_err() {
                continue;
            }
            if let Ok(Ok(s)) =
                tokio::time::timeout(Duration::from_secs(5), socket.connect(target)).await
                && let Ok(s) = s.into_std()
            {
                out.push(s);
            }
        }
        out
    })
}

/// How many of `sockets` the other side has closed.
fn closed(sockets: &[TcpStream]) -> usize {
    use std::io::Read;
    sockets
        .iter()
        .filter(|s| match (&mut &**s).read(&mut [0u8; 256]) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        })
        .count()
}

fn p2p_socket(p2p: &str) -> SocketAddr {
    let port = p2p.rsplit('/').next().unwrap();
    format!("127.0.0.1:{port}").parse().unwrap()
}

/// Scenario 3: 40 half-open TCP sockets and 48 libp2p identities, all from 127.0.0.2; honest
/// nodes from 127.0.0.1 try to connect (a: sockets only, b: identities only, c: both).
pub fn lock_out(setup: &Setup, rt: &Runtime) -> Row {
    const SOCKETS: usize = 40;
    const IDENTITIES: usize = 48;
    let mut row = Row::new("3 lock-out");
    let net = Network::start(setup, "lock-out", false);
    let target = p2p_socket(&net.a.p2p);
    let watch = Watch::start(&net.a);
    let mut worst: Timed = Ok(0.0);
    let mut note = |row: &mut Row, what: &str, t: Timed| {
        row.fact(format!(
            "{what}: honest node connected in {}",
            show_timed(t)
        ));
        worst = match (worst, t) {
            (Err(l), _) | (_, Err(l)) => Err(l),
            (Ok(a), Ok(b)) => Ok(a.max(b)),
        };
    };

    let sockets = half_open(rt, SOCKETS, target);
    let t = honest_connect(&net, setup, "d1");
    let shut = closed(&sockets);
    note(
        &mut row,
        &format!(
            "a. {} half-open sockets ({shut} closed by A meanwhile)",
            sockets.len()
        ),
        t,
    );
    drop(sockets);

    // libp2p cannot pick a dial's source address: the identities go through a forwarder that
    // connects to A from 127.0.0.2 (see source_proxy.rs)
    let proxy = rt.block_on(SourceProxy::start(target, "127.0.0.2".parse().unwrap()));
    let peers: Vec<GossipPeer> = rt.block_on(async {
        let mut v = Vec::new();
        for i in 0..IDENTITIES {
            v.push(
                GossipPeer::spawn(
                    &net.dir.join(format!("id{i}")),
                    "/ip4/127.0.0.2/tcp/0",
                    &proxy.addr,
                    setup.genesis,
                )
                .await,
            );
        }
        v
    });
    let connected = |rt: &Runtime| {
        rt.block_on(async {
            let mut n = 0;
            for p in &peers {
                n += usize::from(p.connected().await);
            }
            n
        })
    };
    retry(Duration::from_secs(20), || {
        (connected(rt) == IDENTITIES).then_some(())
    });
    let in_a = net.a.peers();
    let from_2 = in_a
        .iter()
        .filter(|p| {
            p["address"]
                .as_str()
                .is_some_and(|a| a.contains("/ip4/127.0.0.2/"))
        })
        .count();
    let t = honest_connect(&net, setup, "d2");
    note(
        &mut row,
        &format!(
            "b. {IDENTITIES} identities ({} connected; A lists {} peers, {from_2} from 127.0.0.2)",
            connected(rt),
            in_a.len()
        ),
        t,
    );

    let sockets = half_open(rt, SOCKETS, target);
    let (t, block) = std::thread::scope(|s| {
        let honest = s.spawn(|| net.honest_block(BLOCK_TIMEOUT));
        (honest_connect(&net, setup, "d3"), honest.join().unwrap())
    });
    note(
        &mut row,
        &format!(
            "c. both ({} sockets, {} identities connected)",
            sockets.len(),
            connected(rt)
        ),
        t,
    );
    row.connect = Some(worst);
    drop(sockets);
    drop(peers);
    drop(proxy);
    watch.finish(&mut row);
    honest_fact(&mut row, block);
    row
}

/// Scenario 4: twenty ~950 kB side blocks on genesis, valid PoW and merkle root, invalid
/// content.
pub fn side_branches(setup: &Setup, rt: &Runtime) -> Row {
    const N: u32 = 20;
    let mut row = Row::new("4 side-branches");
    let net = Network::start(setup, "side-branches", false);
    let now = unix_now();
    let blocks: Vec<_> = (0..N)
        .map(|i| forge::side_block(&setup.params, setup.genesis, now - 3600, i, 950_000))
        .collect();
    let size = gossipcoin_proto::encode::to_bytes(&blocks[0]).len();
    let nodes = [&net.a, &net.b, &net.c];
    let before: Vec<u64> = nodes
        .iter()
        .map(|n| disk_usage(&n.dir.join("chain")))
        .collect();
    let peer = gossip_attacker(rt, &net, setup);
    let attacker = peer.handle.local_peer_id().to_string();
    let watch = Watch::start(&net.a);
    let block = std::thread::scope(|s| {
        let mut honest = None;
        for (i, b) in blocks.iter().enumerate() {
            rt.block_on(peer.handle.publish_block(b));
            if i + 1 == N as usize / 2 {
                honest = Some(s.spawn(|| net.honest_block(BLOCK_TIMEOUT)));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        honest.map(|h| h.join().unwrap())
    });
    watch.finish(&mut row);
    if let Some(b) = block {
        honest_fact(&mut row, b);
    }
    let hashes: Vec<String> = blocks.iter().map(|b| b.block_hash().to_string()).collect();
    // Relays trail A a little: wait (5 s at most) until B's and C's logs mention every block
    // or stop changing, then ask each node's API once per block.
    let mentioned = |n: &Daemon| {
        let log = n.log();
        hashes.iter().filter(|h| log.contains(h.as_str())).count()
    };
    let mut last = (usize::MAX, usize::MAX);
    retry(Duration::from_secs(5), || {
        let now = (mentioned(&net.b), mentioned(&net.c));
        let done = now == (N as usize, N as usize) || now == last;
        last = now;
        std::thread::sleep(Duration::from_millis(500));
        done.then_some(())
    });
    let facts: Vec<String> = nodes
        .iter()
        .zip(&before)
        .map(|(n, b)| {
            let served = hashes
                .iter()
                .filter(|h| n.has_block(&h.parse().unwrap()))
                .count();
            let after = disk_usage(&n.dir.join("chain"));
            format!(
                "{} serves {served}/{N} (GET /blocks), chain/ {:.1} -> {:.1} MiB",
                n.name,
                *b as f64 / MIB,
                after as f64 / MIB
            )
        })
        .collect();
    row.fact(format!(
        "sent {N} side blocks of {} kB on genesis",
        size / 1000
    ));
    row.fact(facts.join("; "));
    row.fact(format!(
        "attacker banned: {}; now {}",
        banned(&net.a, &attacker),
        score(&net.a, &attacker)
    ));
    row
}

/// A small xorshift generator: garbage that is the same on every run.
struct Garbage(u64);

impl Garbage {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A frame with a correct length and 8..=71 bytes that decode as no request (the first
    /// byte is not a variant).
    fn frame(&mut self) -> Vec<u8> {
        let len = 8 + (self.next() % 64) as usize;
        let mut body: Vec<u8> = (0..len).map(|_| self.next() as u8).collect();
        body[0] |= 0x80;
        let mut out = (len as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&body);
        out
    }
}

/// A well-formed transaction spending a coin that does not exist, with a zero signature.
fn invalid_tx(i: u32) -> Transaction {
    let mut id = [0xab; 32];
    id[..4].copy_from_slice(&i.to_le_bytes());
    Transaction {
        version: Transaction::VERSION,
        inputs: vec![TxIn {
            prevout: OutPoint {
                txid: Txid(id),
                vout: 0,
            },
            signature: Signature::ZERO,
            pubkey: PublicKey::ZERO,
        }],
        outputs: vec![TxOut {
            value: Amount::from_coins(1).unwrap(),
            owner: gossipcoin_proto::PubkeyHash([1; 20]),
        }],
    }
}

/// Scenario 5: 1,000 garbage request frames, 300 frames claiming u32::MAX bytes, 400 invalid
/// `SubmitTx`.
pub fn garbage_requests(setup: &Setup, rt: &Runtime) -> Row {
    let mut row = Row::new("5 garbage-reqs");
    let net = Network::start(setup, "garbage-requests", false);
    let peer = rt.block_on(RawPeer::connect(&net.a.p2p, Reading::Count));
    let mut rng = Garbage(0x9e37_79b9_7f4a_7c15);
    let phases: Vec<(&str, Vec<Vec<u8>>, f64)> = vec![
        (
            "1,000 garbage frames",
            (0..1_000).map(|_| rng.frame()).collect(),
            200.0,
        ),
        (
            "300 u32::MAX length prefixes",
            vec![u32::MAX.to_be_bytes().to_vec(); 300],
            200.0,
        ),
        (
            "400 invalid SubmitTx",
            (0..400)
                .map(|i| frame(&Request::SubmitTx(invalid_tx(i))))
                .collect(),
            45.0,
        ),
    ];
    let watch = Watch::start(&net.a);
    let mut block = None;
    for (i, (what, frames, rate)) in phases.into_iter().enumerate() {
        std::thread::scope(|s| {
            s.spawn(|| paced(frames, rate, |f| peer.send(f)));
            if i == 1 {
                block = Some(net.honest_block(BLOCK_TIMEOUT));
            }
        });
        retry(Duration::from_secs(15), || {
            (peer.stats.outstanding() == 0).then_some(())
        });
        row.fact(format!(
            "after {what}: {}; attacker {}",
            peer.stats.summary(),
            score(&net.a, &peer.peer_id)
        ));
    }
    watch.finish(&mut row);
    if let Some(b) = block {
        honest_fact(&mut row, b);
    }
    let mentions = net
        .a
        .log()
        .lines()
        .filter(|l| l.contains(&peer.peer_id))
        .count();
    row.fact(format!(
        "attacker banned: {}; A's log mentions it on {mentions} lines",
        banned(&net.a, &peer.peer_id)
    ));
    row
}

/// Scenario 6: C is SIGSTOPped (a dead link without netem): how long until A (and B) drop it.
pub fn dead_link(setup: &Setup) -> Row {
    const LIMIT: Duration = Duration::from_secs(45);
    let mut row = Row::new("6 dead-link");
    let net = Network::start(setup, "dead-link", false);
    let c = net.c.peer_id.clone();
    let signal = |sig: &str| {
        let _ = std::process::Command::new("kill")
            .args([sig, &net.c.pid().to_string()])
            .status();
    };
    signal("-STOP");
    let t = Instant::now();
    let (mut on_a, mut on_b) = (None, None);
    while t.elapsed() < LIMIT && (on_a.is_none() || on_b.is_none()) {
        if on_a.is_none() && !net.a.lists(&c) {
            on_a = Some(t.elapsed().as_secs_f64());
        }
        if on_b.is_none() && !net.b.lists(&c) {
            on_b = Some(t.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    signal("-CONT");
    let lim = LIMIT.as_secs_f64();
    row.dead_link = Some(on_a.ok_or(lim));
    row.fact(format!(
        "C stopped: A dropped it after {}, B after {}",
        show_timed(on_a.ok_or(lim)),
        show_timed(on_b.ok_or(lim))
    ));
    let back = retry(Duration::from_secs(20), || net.a.lists(&c).then_some(()));
    row.fact(format!(
        "after SIGCONT, C is in A's /peers within 20 s: {}",
        back.is_some()
    ));
    row
}

/// The attacker's gossip side: a `gossipcoin::net` service from 127.0.0.1, connected to A and
/// subscribed to its topics.
fn gossip_attacker(rt: &Runtime, net: &Network, setup: &Setup) -> GossipPeer {
    let peer = rt.block_on(GossipPeer::spawn(
        &net.dir.join("attacker"),
        "/ip4/127.0.0.1/tcp/0",
        &net.a.p2p,
        setup.genesis,
    ));
    assert!(
        rt.block_on(peer.wait_subscribed(Duration::from_secs(20))),
        "A never subscribed"
    );
    peer
}
