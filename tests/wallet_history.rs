//! The wallet's history against real processes: a receive, a generate, an immature coinbase
//! and a send, each listed with its category (API and `listtransactions`) and the balances
//! split into confirmed and immature, the same after a restart; a received payment whose block
//! a reorganisation takes away shown pending again, with no confirmations.

mod common;
use common::{Daemon, Node, easy_params, http_get, http_post, start_central, wait_until};
use serde_json::{Value, json};

const JSON: &str = "application/json";

/// Easy parameters whose coinbases mature after 3 blocks.
fn maturing_params(node: &Node) -> String {
    let path = easy_params(node);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("coinbase_maturity = 0"));
    std::fs::write(
        &path,
        text.replace("coinbase_maturity = 0", "coinbase_maturity = 3"),
    )
    .unwrap();
    path
}

fn history(d: &Daemon) -> Vec<Value> {
    let r = http_get(
        &format!("{}/wallet/transactions", d.api()),
        Some(&d.cookie()),
    );
    assert_eq!(r.status, 200, "{r:?}");
    r.body["transactions"].as_array().unwrap().clone()
}

fn line(d: &Daemon, txid: &str) -> Option<Value> {
    history(d).into_iter().find(|l| l["txid"] == txid)
}

fn height(d: &Daemon) -> u64 {
    http_get(&format!("{}/status", d.api()), None).body["height"]
        .as_u64()
        .unwrap()
}

fn mine(d: &Daemon, to: Option<&str>) -> Value {
    let q = to.map_or(String::new(), |a| format!("?address={a}"));
    let r = http_get(&format!("{}/mine{q}", d.api()), Some(&d.cookie()));
    assert_eq!(r.status, 200, "{r:?}");
    r.body["block"].clone()
}

fn pay(d: &Daemon, from: &str, to: &str, amount: u64) -> String {
    let r = http_post(
        &format!("{}/transactions/new", d.api()),
        // no fee, on nodes that relay without one: the balances below stay whole coins
        &json!({ "sender": from, "recipient": to, "amount": amount, "fee": "0" }).to_string(),
        JSON,
        Some(&d.cookie()),
    );
    assert_eq!(r.status, 201, "{r:?}");
    r.body["txid"].as_str().unwrap().to_owned()
}

fn connect(d: &Daemon, other: &Daemon) {
    let r = http_post(
        &format!("{}/nodes/register", d.api()),
        &json!({ "nodes": [other.api()] }).to_string(),
        JSON,
        Some(&d.cookie()),
    );
    assert_eq!(r.status, 201, "{r:?}");
}

fn in_mempool(d: &Daemon, txid: &str) -> bool {
    http_get(&format!("{}/mempool", d.api()), None).body["transactions"]
        .as_array()
        .is_some_and(|txs| txs.iter().any(|t| t["txid"] == txid))
}

/// The category of each coinbase (by block hash) and each payment (by txid) in `d`'s history.
fn category_of(d: &Daemon, txid: &str) -> String {
    line(d, txid)
        .map(|l| l["category"].as_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[test]
fn receive_generate_immature_and_send_are_listed_after_a_restart() {
    let (n0, n1) = (Node::new(), Node::new());
    let params = maturing_params(&n0);
    let alice = common::funded(&n0, &params);
    let bob = n1.new_address();
    n1.copy_chain_from(&n0);
    let free = ["--min-fee-rate", "0"];
    let d0 = start_central(&n0, &params, &free);
    let d1 = start_central(&n1, &params, &free);
    connect(&d1, &d0);

    // Block 1 pays bob (node 1), blocks 2 and 3 alice (node 0).
    let b1 = mine(&d0, Some(&bob));
    mine(&d0, None);
    mine(&d0, None);
    wait_until(30, "node 1 at height 3", || height(&d1) == 3);
    // Bob pays alice 4 (a receive for node 0), alice pays bob 2 (a send).
    let received = pay(&d1, &bob, &alice, 4);
    wait_until(30, "bob's payment in node 0's mempool", || {
        in_mempool(&d0, &received)
    });
    let sent = pay(&d0, &alice, &bob, 2);
    let b4 = mine(&d0, None);
    assert_eq!(b4["transactions"].as_array().unwrap().len(), 3, "{b4}");
    let coinbase = |b: &Value| b["transactions"][0]["txid"].as_str().unwrap().to_owned();
    let (cb1, cb4) = (coinbase(&b1), coinbase(&b4));

    let expect = |d: &Daemon| {
        wait_until(30, "both payments confirmed in node 0's history", || {
            [&received, &sent]
                .iter()
                .all(|t| line(d, t).is_some_and(|l| l["state"] == "confirmed"))
        });
        let all = history(d);
        // Genesis, blocks 2, 3 and 4's coinbases, the receive and the send; not block 1's.
        assert_eq!(all.len(), 6, "{all:#?}");
        assert!(line(d, &cb1).is_none());
        let r = line(d, &received).unwrap();
        assert_eq!(
            (
                r["category"].as_str(),
                r["amount"].as_str(),
                r["address"].as_str()
            ),
            (Some("receive"), Some("4"), Some(alice.as_str())),
            "{r}"
        );
        assert_eq!(
            (r["height"].as_u64(), r["confirmations"].as_u64()),
            (Some(4), Some(1))
        );
        let s = line(d, &sent).unwrap();
        assert_eq!(
            (
                s["category"].as_str(),
                s["amount"].as_str(),
                s["to"].as_str(),
                s["fee"].as_str()
            ),
            (Some("send"), Some("2"), Some(bob.as_str()), Some("0")),
            "{s}"
        );
        // Tip 4, maturity 3: the coinbases of blocks 3 and 4 are immature, 0 and 2 mature.
        assert_eq!(category_of(d, &cb4), "immature");
        // Newest first: block 4 (in block order, reversed), then blocks 3, 2 and 0.
        let mut categories: Vec<&str> = all
            .iter()
            .map(|l| l["category"].as_str().unwrap())
            .collect();
        categories[..3].sort_unstable();
        assert_eq!(
            categories,
            [
                "immature", "receive", "send", "immature", "generate", "generate"
            ],
            "{all:#?}"
        );
        assert_eq!(all[2]["txid"], cb4.as_str(), "{all:#?}");
        let b = http_get(&format!("{}/wallet/balance", d.api()), Some(&d.cookie())).body;
        // 10 (genesis) - 2 (sent) + 4 (received) + 10 (block 2); 20 immature.
        assert_eq!(
            (
                b["confirmed"].as_str(),
                b["immature"].as_str(),
                b["unconfirmed"].as_str()
            ),
            (Some("22"), Some("20"), Some("0")),
            "{b}"
        );
    };
    expect(&d0);
    let out = n0.ok(&["listtransactions"]);
    for word in [
        "receive",
        "send",
        "generate",
        "immature",
        "confirmed at height 4",
    ] {
        assert!(out.contains(word), "{word}: {out}");
    }
    let out = n0.ok(&["getbalance"]);
    assert!(
        out.contains("22 confirmed") && out.contains("20 immature"),
        "{out}"
    );

    // After a restart (a clean stop saves wallet.history), the same.
    d1.stop();
    d0.stop();
    assert!(n0.dir.join("wallet.history").exists());
    let d0 = start_central(&n0, &params, &["--min-fee-rate", "0"]);
    expect(&d0);
    // A rescan from genesis finds the same confirmed history.
    let r = http_post(
        &format!("{}/wallet/rescan", d0.api()),
        "{}",
        JSON,
        Some(&d0.cookie()),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        (r.body["blocks"].as_u64(), r.body["transactions"].as_u64()),
        (Some(5), Some(6))
    );
    expect(&d0);
    let out = n0.ok(&["rescanwallet"]);
    assert!(
        out.contains("Rescanned 5 blocks") && out.contains("6 wallet transactions"),
        "{out}"
    );
    // Alice's page: received 10 + 10 + 10 + 10 + 4, sent 10 (the genesis coin, change back
    // included), oldest first; another address is not the wallet's.
    let page = http_get(
        &format!("{}/wallet/address/{alice}", d0.api()),
        Some(&d0.cookie()),
    );
    assert_eq!(page.status, 200, "{page:?}");
    let b = &page.body;
    assert_eq!(
        (b["received"].as_str(), b["sent"].as_str()),
        (Some("52"), Some("10")),
        "{b}"
    );
    let heights: Vec<u64> = b["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["height"].as_u64().unwrap())
        .collect();
    assert_eq!(heights, [0, 2, 3, 4, 4, 4], "{b}");
    let r = http_get(
        &format!("{}/wallet/address/{bob}", d0.api()),
        Some(&d0.cookie()),
    );
    assert_eq!(r.status, 404, "{r:?}");
    // Without the cookie: refused.
    let r = http_get(&format!("{}/wallet/balance", d0.api()), None);
    assert_eq!(r.status, 401, "{r:?}");
}

#[test]
fn a_reorg_that_takes_a_received_payment_away_shows_it_pending_again() {
    let (a, b, c) = (Node::new(), Node::new(), Node::new());
    let params = easy_params(&a);
    let alice = common::funded(&a, &params);
    let carol = b.new_address();
    b.copy_chain_from(&a);
    c.copy_chain_from(&a);
    let (da, db, dc) = (
        start_central(&a, &params, &["--min-fee-rate", "0"]),
        start_central(&b, &params, &["--min-fee-rate", "0"]),
        start_central(&c, &params, &["--min-fee-rate", "0"]),
    );
    connect(&db, &da);
    // Alice pays carol 3, mined by A at height 1: B's wallet received it.
    let txid = pay(&da, &alice, &carol, 3);
    wait_until(30, "the payment in B's history", || {
        line(&db, &txid).is_some()
    });
    assert_eq!(line(&db, &txid).unwrap()["state"], "pending");
    mine(&da, None);
    wait_until(30, "the payment confirmed in B's history", || {
        line(&db, &txid).is_some_and(|l| l["state"] == "confirmed" && l["confirmations"] == 1)
    });
    assert_eq!(line(&db, &txid).unwrap()["category"], "receive");

    // C, alone, mines two empty blocks on genesis; B learns that heavier branch.
    da.stop();
    mine(&dc, None);
    mine(&dc, None);
    connect(&db, &dc);
    wait_until(60, "B at C's height", || height(&db) == 2);
    wait_until(30, "the payment pending again in B's history", || {
        line(&db, &txid).is_some_and(|l| l["state"] == "pending" && l["confirmations"] == 0)
    });
    let l = line(&db, &txid).unwrap();
    assert_eq!(
        (l["category"].as_str(), l["amount"].as_str()),
        (Some("receive"), Some("3"))
    );
    assert!(l.get("block").is_none(), "{l}");
    let bal = http_get(&format!("{}/wallet/balance", db.api()), Some(&db.cookie())).body;
    assert_eq!(
        (bal["confirmed"].as_str(), bal["unconfirmed"].as_str()),
        (Some("0"), Some("3"))
    );
}
