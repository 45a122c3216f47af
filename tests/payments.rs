//! Issue 11 with the real binary: a payment a node accepted is mined, whatever crashes.

mod common;
use common::{Node, addr, free_port, http_get, http_post, wait_until};
use serde_json::json;

/// The built-in miner role file with mining held back: a block once 1,000 payments wait, or 8 s
/// after the first, so the test can kill the miner while the payments are only pending.
fn slow_miner_config(node: &Node) -> String {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/miner.toml"))
        .unwrap()
        .replace("min_txs = 2", "min_txs = 1000")
        .replace("max_wait_secs = 10", "max_wait_secs = 8");
    assert!(text.contains("min_txs = 1000") && text.contains("max_wait_secs = 8"));
    let path = node.dir.with_extension("miner.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Waits until something listens on the API address `url` (`http://HOST:PORT`).
fn wait_api(url: &str) {
    let hostport = url.trim_start_matches("http://").to_owned();
    wait_until(60, "the API to listen", || {
        std::net::TcpStream::connect(&hostport).is_ok()
    });
}

/// The crash: payments accepted and relayed to the miner, the miner SIGKILLed before it
/// mined them and restarted with an empty mempool (its `mempool.dat` removed, so only the
/// mempool exchange can bring them back). Every payment must be mined within 30 s.
#[test]
fn a_miner_killed_with_pending_payments_mines_every_one_after_its_restart() {
    let (central, miner) = (Node::new(), Node::new());
    let params = common::params_file(&central, "0x207fffff");
    let a = central.new_address();
    central.ok(&["--params", &params, "createblockchain", "--address", &a]);
    let m = miner.new_address();
    let (pc, pm) = (free_port(), free_port());
    let c = central.start(&[
        "--params",
        &params,
        "--role",
        "central",
        "--listen",
        &addr(pc),
    ]);
    let config = slow_miner_config(&miner);
    let miner_args = [
        "--params",
        &params,
        "--config",
        &config,
        "--miner-address",
        &m,
        "--listen",
        &addr(pm),
        "--bootstrap",
        &addr(pc),
    ];
    let d = miner.start(&miner_args);
    let (capi, mapi) = (c.api(), d.api());
    wait_until(60, "the miner to connect", || {
        http_get(&format!("{mapi}/status"), None).body["peers"] == 1
    });

    let mut txids = Vec::new();
    for _ in 0..5 {
        let r = http_post(
            &format!("{capi}/transactions/new"),
            &json!({ "sender": a, "recipient": m, "amount": "0.5" }).to_string(),
            "application/json",
            Some(&c.cookie()),
        );
        assert_eq!(r.status, 201, "{r:?}");
        txids.push(r.body["txid"].as_str().unwrap().to_owned());
    }
    wait_until(30, "the payments in the miner's mempool", || {
        http_get(&format!("{mapi}/mempool"), None).body["txs"] == 5
    });
    assert_eq!(
        http_get(&format!("{mapi}/status"), None).body["height"],
        0,
        "the miner mined before the kill: the test needs a slower miner"
    );
    d.kill();
    let _ = std::fs::remove_file(miner.dir.join("mempool.dat"));
    // a SIGKILLed node leaves its api.addr; the restarted one writes its own
    let _ = std::fs::remove_file(miner.dir.join("api.addr"));

    let d = miner.start(&miner_args);
    let mapi = d.api();
    wait_api(&mapi);
    let confirmed = |api: &str| {
        txids
            .iter()
            .all(|t| http_get(&format!("{api}/tx/{t}"), None).body["status"] == "confirmed")
    };
    wait_until(30, "every payment mined by the restarted miner", || {
        confirmed(&mapi)
    });
    wait_until(30, "every payment confirmed on the central node", || {
        confirmed(&capi)
    });
}

/// Payments sent at the same time from an address with one coin each spend the change of the
/// one before, as payments in a row do: none is refused for want of funds while the coin is
/// only held by a payment in flight. 24 of them: a chain of change stays within the mempool's
/// 25-ancestor limit.
#[test]
fn concurrent_payments_from_one_coin_are_all_accepted() {
    let node = Node::new();
    let params = common::params_file(&node, "0x207fffff");
    let a = node.new_address();
    node.ok(&["--params", &params, "createblockchain", "--address", &a]);
    let d = node.start(&[
        "--params",
        &params,
        "--role",
        "central",
        "--listen",
        &addr(free_port()),
    ]);
    let (api, cookie) = (d.api(), d.cookie());
    let to = Node::new().new_address();
    let answers: Vec<common::Http> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    (0..6)
                        .map(|_| {
                            http_post(
                                &format!("{api}/transactions/new"),
                                &json!({ "sender": a, "recipient": to, "amount": "0.01" })
                                    .to_string(),
                                "application/json",
                                Some(&cookie),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let refused: Vec<_> = answers.iter().filter(|r| r.status != 201).collect();
    assert!(
        refused.is_empty(),
        "{} of 24 refused: {:?}",
        refused.len(),
        refused.first()
    );
    assert_eq!(http_get(&format!("{api}/mempool"), None).body["txs"], 24);
}
