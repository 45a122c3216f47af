//! Network numbers, measured with the real release binary as separate processes on loopback:
//!
//! 1. initial sync: a fresh node downloads 2,000 blocks of 50 transactions from one peer — blocks/s
//!    and tx/s — next to validating and connecting the same blocks locally in this process (what
//!    `reindexutxo`-style replay costs); target: sync ≥ 70 % of local. Also the syncing node's
//!    peak RSS (VmHWM).
//! 2. block propagation on a 10-process network with one miner: time from "mined block" in the
//!    miner's JSON log to "accepted block" in every other node's, median and worst, over 50 blocks.
//!
//! `cargo bench --bench network` (both), or `-- sync` / `-- propagation`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use gossipcoin::chain::Chain;

mod common;
use common::{BIN, build_chain, easy_params, free_port, start};

fn main() {
    let wanted = common::Wanted::from_args();
    if wanted.includes("sync") {
        sync();
    }
    if wanted.includes("propagation") {
        propagation();
    }
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
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

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("node.log")).unwrap_or_default()
}

fn sync() {
    const BLOCKS: u32 = 2_000;
    const TXS: usize = 50;
    let tmp = tempfile::tempdir().unwrap();
    let (params, params_file) = easy_params(tmp.path());
    let t = Instant::now();
    let blocks = build_chain(&params, BLOCKS, TXS, None);
    println!(
        "1. initial sync of {BLOCKS} blocks x {TXS} txs (chain built in {:.1} s)",
        t.elapsed().as_secs_f64()
    );

    // Local: validate and connect every block in this process, one fsynced txn per block, as
    // the syncing node does.
    let local_dir = tmp.path().join("local");
    let t = Instant::now();
    let chain = Chain::create(&local_dir.join("chain"), params.clone(), &blocks[0]).unwrap();
    for b in &blocks[1..] {
        chain
            .accept_block(b, u32::MAX, gossipcoin::chain::Origin::Requested)
            .unwrap();
    }
    let local = t.elapsed();
    drop(chain);

    // The serving node has the chain; a fresh node syncs it over loopback.
    let server_dir = tmp.path().join("server");
    std::fs::create_dir_all(&server_dir).unwrap();
    std::fs::create_dir_all(server_dir.join("chain")).unwrap();
    std::fs::copy(
        local_dir.join("chain/data.mdb"),
        server_dir.join("chain/data.mdb"),
    )
    .unwrap();
    let port = free_port();
    let server = start(
        &server_dir,
        &params_file,
        &[
            "--role",
            "central",
            "--listen",
            &format!("/ip4/127.0.0.1/tcp/{port}"),
        ],
    );
    let wait_listen = Instant::now();
    while !log(&server_dir).contains("node started") {
        assert!(
            wait_listen.elapsed() < Duration::from_secs(30),
            "server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let fresh_dir = tmp.path().join("fresh");
    let t = Instant::now();
    let fresh = start(
        &fresh_dir,
        &params_file,
        &[
            "--role",
            "wallet",
            "--listen",
            &format!("/ip4/127.0.0.1/tcp/{}", free_port()),
            "--bootstrap",
            &format!("/ip4/127.0.0.1/tcp/{port}"),
        ],
    );
    let pid = fresh.id();
    let mut peak = 0;
    let done = format!("\"height\":{BLOCKS},");
    while !log(&fresh_dir)
        .lines()
        .any(|l| l.contains("accepted block") && l.contains(&done))
    {
        assert!(
            t.elapsed() < Duration::from_secs(900),
            "sync did not finish"
        );
        peak = peak.max(vm_hwm_kib(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(50));
    }
    let synced = t.elapsed();
    peak = peak.max(vm_hwm_kib(pid).unwrap_or(0));
    stop(fresh);
    stop(server);
    let rate = |d: Duration| f64::from(BLOCKS) / d.as_secs_f64();
    println!(
        "   local validate + connect : {:>7.0} blocks/s {:>8.0} tx/s",
        rate(local),
        rate(local) * TXS as f64
    );
    println!(
        "   sync over loopback       : {:>7.0} blocks/s {:>8.0} tx/s  ({:.1} s incl. start-up)",
        rate(synced),
        rate(synced) * TXS as f64,
        synced.as_secs_f64()
    );
    println!(
        "   sync / local             : {:>7.0} %   (target >= 70 %)",
        100.0 * rate(synced) / rate(local)
    );
    println!(
        "   peak RSS of the syncing node: {:.1} MiB\n",
        peak as f64 / 1024.0
    );
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
