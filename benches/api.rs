//! The HTTP API under load while the node syncs, measured with the real release binary on
//! loopback: node A serves a chain of BLOCKS blocks × TXS transactions; node B starts empty,
//! adopts A's genesis and downloads the rest, and as soon as B's API is up this process keeps
//! CONNS keep-alive HTTP/1.1 connections busy against B — `GET /status` for PHASE, then
//! `GET /address/{addr}` (an address owning RICH_COINS coins) for PHASE — and prints requests,
//! errors, requests/s and p50/p99/max latency per endpoint, B's height at the start and end of
//! each phase, the CPU time this process and both daemons used in it, and B's sync rate under
//! load next to its rate once the load stops (later blocks of the same shape).
//!
//! `cargo bench --bench api`. The load generator runs on one thread of this process, on the
//! same cores as both daemons: the numbers are for the whole machine, not the API alone.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use gossipcoin::chain::Chain;
use gossipcoin::keys::PrivateKey;
use gossipcoin_proto::Address;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod common;
use common::{build_chain, cpu_secs, easy_params, free_port, start};

const BLOCKS: u32 = 1_500;
const TXS: usize = 50;
/// Blocks 1..=RICH_COINS each pay one output to the queried address.
const RICH_COINS: u32 = 200;
const CONNS: usize = 50;
const PHASE: Duration = Duration::from_secs(5);

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let (params, params_file) = easy_params(tmp.path());
    let rich = PrivateKey::from_bytes(&[9; 32]).unwrap().pubkey_hash();
    let rich_addr = Address(rich).to_string();
    let t = Instant::now();
    let blocks = build_chain(&params, BLOCKS, TXS, Some((rich, RICH_COINS)));
    let built = t.elapsed();
    let a_dir = tmp.path().join("a");
    let chain = Chain::create(&a_dir.join("chain"), params.clone(), &blocks[0]).unwrap();
    for b in &blocks[1..] {
        chain
            .accept_block(b, u32::MAX, gossipcoin::chain::Origin::Requested)
            .unwrap();
    }
    drop(chain);
    drop(blocks);
    println!(
        "API under load while syncing: {CONNS} keep-alive connections on loopback, {} s per endpoint",
        PHASE.as_secs()
    );
    println!(
        "   chain: {BLOCKS} blocks x {TXS} txs (built in {:.1} s); {rich_addr} owns {RICH_COINS} coins \
         (blocks 1..={RICH_COINS}); load average before: {}",
        built.as_secs_f64(),
        loadavg()
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut daemons = Daemons(Vec::new()); // dropped (daemons stopped) before `tmp`
    let port = free_port();
    daemons.0.push(start(
        &a_dir,
        &params_file,
        &[
            "--role",
            "central",
            "--listen",
            &format!("/ip4/127.0.0.1/tcp/{port}"),
        ],
    ));
    let a_api = wait_api(&a_dir, &mut daemons.0[0]);
    let (a_height, _) = rt.block_on(status(a_api));
    assert_eq!(a_height, BLOCKS, "node A does not have the chain");

    let b_dir = tmp.path().join("b");
    let t_b = Instant::now();
    daemons.0.push(start(
        &b_dir,
        &params_file,
        &[
            "--role",
            "wallet",
            "--listen",
            &format!("/ip4/127.0.0.1/tcp/{}", free_port()),
            "--bootstrap",
            &format!("/ip4/127.0.0.1/tcp/{port}"),
        ],
    ));
    let b_api = wait_api(&b_dir, &mut daemons.0[1]);
    println!(
        "   node B's API up {:.2} s after start; target height {a_height} (node A)\n",
        t_b.elapsed().as_secs_f64()
    );
    println!(
        "   {:<18} {:>8} {:>6} {:>8} {:>7} {:>7} {:>7}   B height start -> end, blocks/s",
        "endpoint", "requests", "errors", "req/s", "p50 ms", "p99 ms", "max ms"
    );

    let address_path = format!("/address/{rich_addr}");
    let mut overlapped = Vec::new();
    let mut last = (Instant::now(), 0);
    for (name, path) in [
        ("GET /status", "/status"),
        ("GET /address/{a}", address_path.as_str()),
    ] {
        let (h0, _) = rt.block_on(status(b_api));
        let coins0 = rt.block_on(utxo_count(b_api, &address_path));
        let pids = [std::process::id(), daemons.0[1].id(), daemons.0[0].id()];
        let cpu0 = pids.map(cpu_secs);
        let t0 = Instant::now();
        let r = rt.block_on(load(b_api, path, PHASE));
        let t1 = Instant::now();
        let cpu1 = pids.map(cpu_secs);
        let (h1, sync) = rt.block_on(status(b_api));
        let coins1 = rt.block_on(utxo_count(b_api, &address_path));
        last = (t1, h1);
        let mut lat = r.latencies_us;
        lat.sort_unstable();
        let pct = |p: usize| {
            lat.get((lat.len() * p / 100).min(lat.len().saturating_sub(1)))
                .map_or(f64::NAN, |&us| f64::from(us) / 1e3)
        };
        let secs = r.elapsed.as_secs_f64();
        println!(
            "   {name:<18} {:>8} {:>6} {:>8.0} {:>7.2} {:>7.2} {:>7.2}   {h0} -> {h1}, {:.0} blocks/s \
             (sync: {sync}; {rich_addr:.8}… coins {coins0} -> {coins1})",
            r.ok + r.bad_status + r.io_errors,
            r.bad_status + r.io_errors,
            (r.ok + r.bad_status) as f64 / secs,
            pct(50),
            pct(99),
            pct(100),
            f64::from(h1 - h0) / (t1 - t0).as_secs_f64(),
        );
        println!(
            "   {:<18} CPU over the phase: load generator {:.1} s, B {:.1} s, A {:.1} s (of {:.1} s x {} cores)",
            "",
            cpu1[0] - cpu0[0],
            cpu1[1] - cpu0[1],
            cpu1[2] - cpu0[2],
            (t1 - t0).as_secs_f64(),
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        if r.io_errors > 0 {
            println!(
                "   {:<18} ({} of the errors are broken or timed-out connections)",
                "", r.io_errors
            );
        }
        overlapped.push(match () {
            _ if h1 < a_height => format!("{name}: all of it"),
            _ if h0 < a_height => format!("{name}: partly (B reached {a_height} during it)"),
            _ => format!("{name}: none (B had finished)"),
        });
    }
    // B's rate once the load stops: poll /status lightly until B reaches A's height.
    let (t_end, h_end) = last;
    let done = loop {
        let (h, _) = rt.block_on(status(b_api));
        if h >= a_height {
            break Instant::now();
        }
        assert!(
            t_end.elapsed() < Duration::from_secs(900),
            "B did not finish syncing"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    println!(
        "\n   phases that overlapped B's sync: {}",
        overlapped.join("; ")
    );
    if h_end < a_height {
        println!(
            "   B's sync rate after the load: {:.0} blocks/s (heights {h_end} -> {a_height}, {:.1} s)",
            f64::from(a_height - h_end) / (done - t_end).as_secs_f64(),
            (done - t_end).as_secs_f64()
        );
    }
    println!(
        "   B synced {a_height} blocks in {:.1} s from start; load average after: {}\n",
        (done - t_b).as_secs_f64(),
        loadavg()
    );
}

/// Devnet rules with an easy target, written to `dir/params.toml` for the daemons.
/// The daemons this bench started: SIGTERM (then SIGKILL after 10 s) on drop, also when a
/// panic unwinds.
struct Daemons(Vec<Child>);

impl Drop for Daemons {
    fn drop(&mut self) {
        for child in &self.0 {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        for child in &mut self.0 {
            let t = Instant::now();
            while matches!(child.try_wait(), Ok(None)) && t.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The API address from `dir/api.addr` (`http://127.0.0.1:PORT`), written once the node has a
/// chain (for an empty node: after it adopted a peer's genesis).
fn wait_api(dir: &Path, child: &mut Child) -> SocketAddr {
    let t = Instant::now();
    loop {
        let text = std::fs::read_to_string(dir.join("api.addr")).unwrap_or_default();
        if let Some(addr) = text
            .trim()
            .strip_prefix("http://")
            .and_then(|a| a.parse().ok())
        {
            return addr;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "node in {} exited; see its node.log",
            dir.display()
        );
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no api.addr in {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// One keep-alive HTTP/1.1 connection: `GET`, then read the head and exactly Content-Length
/// bytes of body.
struct Conn {
    stream: TcpStream,
    /// `127.0.0.1:<port>`: the API refuses other Host names.
    host: String,
    buf: Vec<u8>,
    /// Bytes of `buf` that belong to the previous answer.
    used: usize,
}

impl Conn {
    async fn open(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            host: addr.to_string(),
            buf: Vec::with_capacity(64 * 1024),
            used: 0,
        })
    }

    /// The status code and the body.
    async fn get(&mut self, path: &str) -> io::Result<(u16, &[u8])> {
        self.buf.drain(..self.used);
        self.used = 0;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.host);
        self.stream.write_all(request.as_bytes()).await?;
        let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).map_err(|_| bad("head not UTF-8"))?;
        let code = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| bad("no status code"))?;
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .ok_or_else(|| bad("no Content-Length"))?;
        while self.buf.len() < head_end + length {
            self.fill().await?;
        }
        self.used = head_end + length;
        Ok((code, &self.buf[head_end..self.used]))
    }

    async fn fill(&mut self) -> io::Result<()> {
        self.buf.reserve(16 * 1024);
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
}

/// One request on a fresh connection, parsed as JSON.
async fn get_json(addr: SocketAddr, path: &str) -> serde_json::Value {
    let mut conn = Conn::open(addr).await.unwrap();
    let (code, body) = conn.get(path).await.unwrap();
    assert_eq!(code, 200, "GET {path}: {}", String::from_utf8_lossy(body));
    serde_json::from_slice(body).unwrap()
}

/// Height and sync state from `GET /status`.
async fn status(addr: SocketAddr) -> (u32, String) {
    let v = get_json(addr, "/status").await;
    (
        v["height"].as_u64().unwrap() as u32,
        v["sync"].as_str().unwrap_or("?").to_string(),
    )
}

async fn utxo_count(addr: SocketAddr, path: &str) -> u64 {
    get_json(addr, path).await["utxo_count"].as_u64().unwrap()
}

#[derive(Default)]
struct LoadResult {
    ok: u64,
    bad_status: u64,
    io_errors: u64,
    latencies_us: Vec<u32>,
    elapsed: Duration,
}

/// CONNS connections (opened before the clock starts) each sending `GET path` back to back
/// until `duration` is over; a broken or stuck (10 s) connection counts as an error and is
/// replaced.
async fn load(addr: SocketAddr, path: &str, duration: Duration) -> LoadResult {
    let mut conns = Vec::new();
    for _ in 0..CONNS {
        conns.push(Conn::open(addr).await.unwrap());
    }
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|conn| {
            let path = path.to_string();
            tokio::spawn(async move {
                let mut r = LoadResult::default();
                let mut conn = Some(conn);
                while Instant::now() < deadline {
                    let Some(c) = conn.as_mut() else {
                        conn = Conn::open(addr).await.ok();
                        if conn.is_none() {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        continue;
                    };
                    let t = Instant::now();
                    match tokio::time::timeout(Duration::from_secs(10), c.get(&path)).await {
                        Ok(Ok((code, _))) => {
                            r.latencies_us.push(t.elapsed().as_micros() as u32);
                            if code == 200 {
                                r.ok += 1;
                            } else {
                                r.bad_status += 1;
                            }
                        }
                        _ => {
                            r.io_errors += 1;
                            conn = None;
                        }
                    }
                }
                r
            })
        })
        .collect();
    let mut total = LoadResult::default();
    for task in tasks {
        let r = task.await.unwrap();
        total.ok += r.ok;
        total.bad_status += r.bad_status;
        total.io_errors += r.io_errors;
        total.latencies_us.extend(r.latencies_us);
    }
    total.elapsed = start.elapsed();
    total
}
