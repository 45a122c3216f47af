//! Payments under load, with the real release binary on loopback (issue 11's numbers).
//!
//! - `api`: one node, no peers; SENDERS clients POST `/transactions/new` (each payment spends the
//!   previous one's unconfirmed change) with wallets of 3, 50 and 500 keys in the same run:
//!   payments/s for each, and the 500-key rate over the 3-key rate.
//! - `chained`: `testnet up --miners 1 --wallets 1` (devnet proof of work); N senders, each with
//!   its own coin and address in the central node's wallet, POST chained payments to the
//!   central node as fast as it accepts them: accepted/s, then the share of accepted payments
//!   confirmed on every node and confirmed/s (from the first POST until every node has each
//!   sender's last payment, and so all before it, in its main chain, or a deadline; then every
//!   payment is counted on every node). Run as 2 × 1,500 and 10 × 500.
//!
//! `cargo bench --bench payments [-- api|chained]`; `GOSSIPCOIN_BIN=PATH` runs another build of
//! the daemon (e.g. the one before a change). The load generator shares the 2 cores with the
//! daemons: the numbers are for the whole machine.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gossipcoin::api::client::ApiClient;
use serde_json::{Value, json};

mod common;
use common::{Node, Wanted, bin, easy_params};

const API_PAYMENTS: usize = 2_000;
const API_SENDERS: usize = 4;
/// Longest wait for every node to confirm every accepted payment.
const CONFIRM_DEADLINE: Duration = Duration::from_secs(180);

fn main() {
    let wanted = Wanted::from_args();
    let names = ["api", "chained"];
    if wanted.includes_among("api", &names) {
        api_speed();
    }
    if wanted.includes_among("chained", &names) {
        chained(2, 1_500);
        chained(10, 500);
    }
}

/// `gossipcoin ARGS` on `dir`; its stdout, or a panic with its stderr.
fn cli(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(bin())
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gossipcoin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn pay(api: &ApiClient, from: &str, to: &str, amount: &str) -> anyhow::Result<Value> {
    api.post(
        "/transactions/new",
        &json!({ "sender": from, "recipient": to, "amount": amount }),
    )
}

// ---- api ------------------------------------------------------------------------------------

fn api_speed() {
    println!(
        "== api: {API_PAYMENTS} payments from one node's wallet, {API_SENDERS} clients, no peers"
    );
    println!("{:>6} {:>12} {:>10}", "keys", "payments/s", "refused");
    let mut rates = Vec::new();
    for keys in [3usize, 50, 500] {
        let (rate, refused) = api_run(keys);
        println!("{keys:>6} {rate:>12.0} {refused:>10}");
        rates.push(rate);
    }
    println!(
        "500-key rate / 3-key rate: {:.2} (target ≥ 0.9); 3-key rate target ≥ 2,000/s",
        rates[2] / rates[0]
    );
}

fn api_run(keys: usize) -> (f64, usize) {
    let tmp = tempfile::tempdir().unwrap();
    let (_, params) = easy_params(tmp.path());
    let dir = tmp.path().join("node");
    let first = cli(&dir, &["createwallet"]);
    let from = first.split_whitespace().last().unwrap().to_owned();
    cli(
        &dir,
        &[
            "--params",
            params.to_str().unwrap(),
            "createblockchain",
            "--address",
            &from,
        ],
    );
    let node = Node::start(&dir, &params, &["--role", "central"]);
    let api = node.api().unwrap();
    let mut to = String::new();
    for _ in 1..keys {
        to = api.get("/wallet/create").unwrap()["address"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    let refused = AtomicUsize::new(0);
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..API_SENDERS {
            s.spawn(|| {
                let api = ApiClient::new(api.url(), Some(&dir)).timeout(Duration::from_secs(20));
                for _ in 0..API_PAYMENTS / API_SENDERS {
                    if pay(&api, &from, &to, "0.0001").is_err() {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let rate = API_PAYMENTS as f64 / t.elapsed().as_secs_f64();
    (rate, refused.into_inner())
}

// ---- chained --------------------------------------------------------------------------------

fn chained(senders: usize, each: usize) {
    println!(
        "== chained: {senders} senders × {each} chained payments to the central node of \
         `testnet up --miners 1 --wallets 1`"
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let base = common::free_port().to_string();
    let up = Command::new(bin())
        .args([
            "testnet",
            "up",
            "--miners",
            "1",
            "--wallets",
            "1",
            "--base-port",
            &base,
        ])
        .arg("--dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "testnet up: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let _down = Down(dir.clone());
    let state = gossipcoin::testnet::State::load_existing(&dir).unwrap();
    let central_dir = dir.join("central");
    let central = ApiClient::new(&state.nodes[0].api_url(), Some(&central_dir))
        .timeout(Duration::from_secs(30));
    let genesis_owner = state.nodes[0].address.clone().unwrap();

    // One address and one coin per sender, confirmed before the load starts.
    let addrs: Vec<String> = (0..senders)
        .map(|_| {
            central.get("/wallet/create").unwrap()["address"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let share = format!("{:.4}", 9.0 / senders as f64);
    let mut funding = Vec::new();
    for a in &addrs {
        funding.push(txid(&pay(&central, &genesis_owner, a, &share).unwrap()));
    }
    let apis: Vec<ApiClient> = state
        .nodes
        .iter()
        .map(|n| ApiClient::new(&n.api_url(), None).timeout(Duration::from_secs(30)))
        .collect();
    wait_confirmed(&apis, &funding, Duration::from_secs(120));

    let accepted = std::sync::Mutex::new(Vec::new());
    let lasts = std::sync::Mutex::new(Vec::new());
    let refused = AtomicUsize::new(0);
    let t = Instant::now();
    std::thread::scope(|s| {
        for from in &addrs {
            let (accepted, lasts, refused, central_dir) =
                (&accepted, &lasts, &refused, &central_dir);
            let url = central.url().to_owned();
            s.spawn(move || {
                let api = ApiClient::new(&url, Some(central_dir)).timeout(Duration::from_secs(30));
                let mut mine = Vec::with_capacity(each);
                for _ in 0..each {
                    match pay(&api, from, from, "0.0001") {
                        Ok(v) => mine.push(txid(&v)),
                        Err(_) => {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                // Each payment spends the change of the one before: once the last is in a
                // node's chain, so are all of them.
                lasts.lock().unwrap().extend(mine.last().cloned());
                accepted.lock().unwrap().extend(mine);
            });
        }
    });
    let submit = t.elapsed().as_secs_f64();
    let accepted = accepted.into_inner().unwrap();
    let refused = refused.into_inner();
    println!(
        "accepted {} of {} in {submit:.2} s: {:.0} accepted/s ({refused} refused)",
        accepted.len(),
        senders * each,
        accepted.len() as f64 / submit
    );
    let lasts = lasts.into_inner().unwrap();
    wait_confirmed(&apis, &lasts, CONFIRM_DEADLINE);
    let all = t.elapsed().as_secs_f64();
    // Then every payment counted on every node (no waiting).
    let confirmed = wait_confirmed(&apis, &accepted, Duration::ZERO);
    for (node, n) in state.nodes.iter().zip(&confirmed) {
        println!(
            "  {:<9} confirmed {n} of {} ({:.1} %)",
            node.name,
            accepted.len(),
            100.0 * *n as f64 / accepted.len().max(1) as f64
        );
    }
    let least = confirmed.iter().copied().min().unwrap_or(0);
    println!(
        "confirmed on every node: {least} of {} in {all:.2} s: {:.0} confirmed/s (target ≥ 1,000)",
        accepted.len(),
        least as f64 / all
    );
}

fn txid(answer: &Value) -> String {
    answer["txid"].as_str().unwrap().to_owned()
}

/// Waits until every node has every one of `txids` in its main chain, or `limit`; how many
/// each node has confirmed.
fn wait_confirmed(apis: &[ApiClient], txids: &[String], limit: Duration) -> Vec<usize> {
    let t = Instant::now();
    let mut pending: Vec<Vec<&String>> = apis.iter().map(|_| txids.iter().collect()).collect();
    loop {
        for (api, left) in apis.iter().zip(pending.iter_mut()) {
            left.retain(|txid| {
                api.get(&format!("/tx/{txid}"))
                    .map_or(true, |v| v["status"] != "confirmed")
            });
        }
        if pending.iter().all(Vec::is_empty) || t.elapsed() > limit {
            return pending
                .iter()
                .map(|left| txids.len() - left.len())
                .collect();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `testnet down` when the scenario ends, whatever happens.
struct Down(std::path::PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = Command::new(bin())
            .args(["testnet", "down", "--dir"])
            .arg(&self.0)
            .output();
    }
}
