//! A hostile peer against a real network (issue 9): the numbers before and after the rebuild.
//!
//! Each scenario starts a fresh loopback network of real `gossipcoin` release daemons — A
//! (central, the victim), B (mines on demand through `GET /mine`), C (wallet, bootstrapped to A
//! and B) — on genesis (amplification and slow-reader: on a prebuilt chain of 14 valid ~780 kB
//! blocks), then attacks A from this process
//! (gossipcoin's own `net` module, or a raw libp2p `/gossipcoin/sync/1` client) while B mines
//! one honest block. It reports A's peak RSS growth (VmRSS sampled every 20 ms, minus the
//! baseline), how long the honest block took to reach A and C against the same network without
//! attacker, honest connect times, dead-link detection and per-scenario facts.
//!
//! | scenario | the attack |
//! |---|---|
//! | baseline | none: 5 honest blocks, an honest node connects |
//! | fat-blocks | 20 gossip blocks, valid header over ~4 MB of empty 3-byte transactions |
//! | amplification | 150 `GetBlocks{[genesis], 500}` at 45/s, ~9 MB answered to each |
//! | slow-reader | the same requests, responses never read for 20 s |
//! | lock-out | 40 half-open TCP sockets and 48 identities from 127.0.0.2; honest nodes connect |
//! | side-branches | 20 ~950 kB invalid side blocks on genesis; who stores them |
//! | garbage-requests | 1,000 garbage frames, 300 `u32::MAX` lengths, 400 invalid `SubmitTx` |
//! | dead-link | C is SIGSTOPped: how long until A drops it |
//!
//! `cargo bench --bench attack [-- SCENARIO...]` (names or parts of names; baseline always
//! runs). Only loopback addresses; every wait has a deadline; daemons are stopped on drop, also
//! when a scenario panics (the table then says FAILED). About 5 minutes in all.
//!
//! `ATTACK_LOG=net=debug` logs the attacker's own `net` module to stderr; `ATTACK_KEEP=1` keeps
//! the data directories and the daemons' `node.log` files (the path is printed);
//! `ATTACK_FAT_BYTES=N` sets the size of a fat block (default 4,000,000).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

mod common;
#[path = "attack/forge.rs"]
mod forge;
#[path = "attack/gossip_peer.rs"]
mod gossip_peer;
#[path = "attack/network.rs"]
mod network;
#[path = "attack/probe.rs"]
mod probe;
#[path = "attack/raw_peer.rs"]
mod raw_peer;
#[path = "attack/report.rs"]
mod report;
#[path = "attack/scenarios.rs"]
mod scenarios;
#[path = "attack/source_proxy.rs"]
mod source_proxy;

use network::Setup;
use report::Row;

/// No scenario starts after this much of the run has passed (the run stays under 10 minutes).
const RUN_BUDGET: Duration = Duration::from_secs(8 * 60);

fn main() {
    let wanted = common::Wanted::from_args();
    let started = Instant::now();
    if let Ok(filter) = std::env::var("ATTACK_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .init();
    }

    let tmp = tempfile::tempdir().unwrap();
    if std::env::var_os("ATTACK_KEEP").is_some() {
        println!(
            "keeping the data directories and logs in {}",
            tmp.path().display()
        );
    }
    let setup = Setup::new(tmp.path());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    type Scenario<'a> = Box<dyn Fn() -> Row + 'a>;
    let all: Vec<(&str, Scenario)> = vec![
        ("baseline", Box::new(|| scenarios::baseline(&setup))),
        (
            "fat-blocks",
            Box::new(|| scenarios::fat_blocks(&setup, &rt)),
        ),
        (
            "amplification",
            Box::new(|| scenarios::amplification(&setup, &rt)),
        ),
        (
            "slow-reader",
            Box::new(|| scenarios::slow_reader(&setup, &rt)),
        ),
        ("lock-out", Box::new(|| scenarios::lock_out(&setup, &rt))),
        (
            "side-branches",
            Box::new(|| scenarios::side_branches(&setup, &rt)),
        ),
        (
            "garbage-requests",
            Box::new(|| scenarios::garbage_requests(&setup, &rt)),
        ),
        ("dead-link", Box::new(|| scenarios::dead_link(&setup))),
    ];
    let mut rows = Vec::new();
    for (name, run) in &all {
        if *name != "baseline" && !wanted.includes(name) {
            continue;
        }
        if started.elapsed() > RUN_BUDGET {
            println!("\n{name}: skipped, the run is over its time budget");
            continue;
        }
        println!(
            "\n{name} ({:.0} s into the run)",
            started.elapsed().as_secs_f64()
        );
        let row = catch_unwind(AssertUnwindSafe(run)).unwrap_or_else(|panic| {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panicked".into());
            Row {
                failed: Some(why),
                ..Row::new(name)
            }
        });
        rows.push(row);
    }
    let baseline = rows.first().and_then(|r| r.block);
    report::print_table(&rows, baseline);
    println!(
        "\n(whole run {:.0} s; A's RSS growth is the peak of VmRSS over its value when the attack \
         began; block delays are from B's \"mined block\" to A's and C's \"accepted block\" log \
         lines)",
        started.elapsed().as_secs_f64()
    );
    if std::env::var_os("ATTACK_KEEP").is_some() {
        let _ = tmp.keep();
    }
}
