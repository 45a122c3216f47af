//! The daemon's wallet against real processes: `/wallet/transactions` (and `listtransactions`)
//! follows a payment from pending to confirmed, and says by which transaction a payment was
//! conflicted (two nodes sharing a copy of one wallet pay from the same coin); a node killed
//! and restarted without its mempool offers its pending payment again and it gets mined, and
//! the same payment asked again is never reported as a new one; a payment identical to one
//! the mempool already has is answered 409 with its txid.

mod common;
use common::{Daemon, Node, addr, easy_params, free_port, funded, http_get, http_post, wait_until};
use serde_json::{Value, json};

const JSON: &str = "application/json";

fn start(node: &Node, params: &str) -> Daemon {
    let listen = addr(free_port());
    node.start(&["--params", params, "--role", "central", "--listen", &listen])
}

fn pay(d: &Daemon, from: &str, to: &str, amount: u64) -> common::Http {
    http_post(
        &format!("{}/transactions/new", d.api()),
        &json!({ "sender": from, "recipient": to, "amount": amount }).to_string(),
        JSON,
        Some(&d.cookie()),
    )
}

/// A payment of `amount` coins paying exactly `fee` coins.
fn pay_fee(d: &Daemon, from: &str, to: &str, amount: &str, fee: &str) -> common::Http {
    http_post(
        &format!("{}/transactions/new", d.api()),
        &json!({ "sender": from, "recipient": to, "amount": amount, "fee": fee }).to_string(),
        JSON,
        Some(&d.cookie()),
    )
}

/// The node's payments (its wallet history's sends), newest first.
fn payments(d: &Daemon) -> Vec<Value> {
    let r = http_get(
        &format!("{}/wallet/transactions", d.api()),
        Some(&d.cookie()),
    );
    assert_eq!(r.status, 200, "{r:?}");
    r.body["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["category"] == "send")
        .cloned()
        .collect()
}

fn payment(d: &Daemon, txid: &str) -> Option<Value> {
    payments(d).into_iter().find(|p| p["txid"] == txid)
}

fn in_mempool(d: &Daemon, txid: &str) -> bool {
    let r = http_get(&format!("{}/mempool", d.api()), None);
    r.body["transactions"]
        .as_array()
        .is_some_and(|txs| txs.iter().any(|t| t["txid"] == txid))
}

fn mine(d: &Daemon) -> Value {
    let r = http_get(&format!("{}/mine", d.api()), Some(&d.cookie()));
    assert_eq!(r.status, 200, "{r:?}");
    r.body["block"].clone()
}

#[test]
fn payments_go_from_pending_to_confirmed_and_a_conflicted_one_says_by_which() {
    let (n0, n1) = (Node::new(), Node::new());
    let params = easy_params(&n0);
    let alice = funded(&n0, &params);
    // n1 holds copies of n0's chain and wallet: the same keys, the same coin.
    n1.copy_chain_from(&n0);
    std::fs::copy(n0.dir.join("wallet.dat"), n1.dir.join("wallet.dat")).unwrap();
    let bob = Node::new().new_address();
    let (d0, d1) = (start(&n0, &params), start(&n1, &params));

    // Not connected: each node pays from the same coin, differently.
    let a = pay(&d0, &alice, &bob, 3);
    assert_eq!(a.status, 201, "{a:?}");
    let b = pay(&d1, &alice, &bob, 4);
    assert_eq!(b.status, 201, "{b:?}");
    let (txa, txb) = (
        a.body["txid"].as_str().unwrap(),
        b.body["txid"].as_str().unwrap(),
    );
    assert_ne!(txa, txb);

    // The wallet endpoint needs the cookie and checks its query.
    let api0 = d0.api();
    let r = http_get(&format!("{api0}/wallet/transactions"), None);
    assert_eq!(r.status, 401, "{r:?}");
    for bad in ["count=0", "count=1001", "count=x", "skip=-1"] {
        let r = http_get(
            &format!("{api0}/wallet/transactions?{bad}"),
            Some(&d0.cookie()),
        );
        assert_eq!(r.status, 400, "{bad}: {r:?}");
    }
    let listed = payments(&d0);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let p = &listed[0];
    assert_eq!(p["txid"], txa);
    assert_eq!(p["state"], "pending");
    assert_eq!(p["from"], alice.as_str());
    assert_eq!(p["to"], bob.as_str());
    assert_eq!(p["amount"], "3");
    // No fee given: the node's estimate, at least its 1 unit/vB floor.
    common::assert_default_fee(common::units(p["fee"].as_str().unwrap()));
    assert!(p["submitted_at"].as_u64().unwrap() > 1_700_000_000, "{p}");

    // Node 0 mines its payment: confirmed at height 1, in that block.
    let block = mine(&d0);
    wait_until(30, "node 0's payment to be confirmed", || {
        payment(&d0, txa).is_some_and(|p| p["state"] == "confirmed")
    });
    let p = payment(&d0, txa).unwrap();
    assert_eq!(p["height"], 1, "{p}");
    assert_eq!(p["block"], block["hash"], "{p}");
    assert_eq!(p["confirmations"], 1, "{p}");
    assert_eq!(payment(&d1, txb).unwrap()["state"], "pending");

    // Node 1 learns node 0's chain: its payment can never be mined, and it says by which.
    let r = http_post(
        &format!("{}/nodes/register", d1.api()),
        &json!({ "nodes": [api0] }).to_string(),
        JSON,
        Some(&d1.cookie()),
    );
    assert_eq!(r.status, 201, "{r:?}");
    wait_until(60, "node 1's payment to be conflicted", || {
        payment(&d1, txb).is_some_and(|p| p["state"] == "conflicted")
    });
    let p = payment(&d1, txb).unwrap();
    assert_eq!(p["conflicted_by"], txa, "{p}");
    assert!(!in_mempool(&d1, txb));

    // The CLI through the running node says the same.
    let out = n1.ok(&["listtransactions"]);
    assert!(
        out.contains(txb) && out.contains(&format!("conflicted by {txa}")),
        "{out}"
    );
    let out = n0.ok(&["listtransactions", "--count", "5"]);
    assert!(
        out.contains("confirmed at height 1 (1 confirmations)"),
        "{out}"
    );
}

#[test]
fn a_restarted_node_rebroadcasts_its_pending_payment_and_never_reports_it_twice() {
    let node = Node::new();
    let params = easy_params(&node);
    let alice = funded(&node, &params);
    let bob = Node::new().new_address();
    let d = start(&node, &params);
    // The whole coin (amount plus fee): the payment leaves no change to spend.
    let first = pay_fee(&d, &alice, &bob, "9.99", "0.01");
    assert_eq!(first.status, 201, "{first:?}");
    let txid = first.body["txid"].as_str().unwrap().to_owned();
    assert!(in_mempool(&d, &txid));

    // Killed, and its mempool gone: only the wallet remembers the payment.
    d.kill();
    let _ = std::fs::remove_file(node.dir.join("mempool.dat"));
    // The killed process left its api.addr behind: wait for the new one.
    std::fs::remove_file(node.dir.join("api.addr")).unwrap();
    let d = start(&node, &params);
    wait_until(30, "the restarted node to offer its payment again", || {
        in_mempool(&d, &txid)
    });
    wait_until(10, "the payment in the wallet's history, pending", || {
        payment(&d, &txid).is_some_and(|p| p["state"] == "pending" && p["in_mempool"] == true)
    });

    // The same request again is not a new payment: its coin is spent by the pending one.
    let again = pay_fee(&d, &alice, &bob, "9.99", "0.01");
    assert_ne!(again.status, 201, "{again:?}");
    assert!(
        again.status == 400 && again.text.contains("insufficient funds"),
        "{again:?}"
    );
    assert_eq!(payments(&d).len(), 1);

    mine(&d);
    wait_until(30, "the payment to be confirmed", || {
        payment(&d, &txid).is_some_and(|p| p["state"] == "confirmed" && p["height"] == 1)
    });
    assert_eq!(
        http_get(&format!("{}/wallet/balance/{bob}", d.api()), None).body["balance"],
        "9.99"
    );
}

#[test]
fn a_payment_the_mempool_already_has_is_already_known_not_new() {
    let node = Node::new();
    let params = easy_params(&node);
    let alice = funded(&node, &params);
    let bob = Node::new().new_address();
    let d = start(&node, &params);
    let api = d.api();
    let p2p = http_get(&format!("{api}/status"), None).body["listen"][0]
        .as_str()
        .unwrap()
        .to_owned();

    // `send` without the daemon's wallet (straight to the node over p2p) builds the payment
    // from the same wallet file and coins, and records it in wallet.pending.
    let out = node.ok(&[
        "--params", &params, "send", "--from", &alice, "--to", &bob, "--amount", "3", "--fee",
        "0.00001", "--node", &p2p,
    ]);
    let txid = out
        .split_whitespace()
        .skip_while(|w| *w != "txid")
        .nth(1)
        .unwrap_or_else(|| panic!("no txid in {out:?}"))
        .to_owned();
    assert!(in_mempool(&d, &txid));

    // The daemon's wallet, asked for the same payment, builds the same transaction: 409 with
    // its txid, and it is tracked once.
    let r = pay_fee(&d, &alice, &bob, "3", "0.00001");
    assert_eq!(r.status, 409, "{r:?}");
    assert_eq!(r.body["txid"], txid.as_str(), "{r:?}");
    assert!(
        r.body["error"].as_str().unwrap().contains("already known"),
        "{r:?}"
    );
    let listed = payments(&d);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["txid"], txid.as_str());

    // A different payment is new, and spends the first one's change.
    let r = pay(&d, &alice, &bob, 2);
    assert_eq!(r.status, 201, "{r:?}");
    mine(&d);
    wait_until(30, "both payments to be confirmed", || {
        let listed = payments(&d);
        listed.len() == 2 && listed.iter().all(|p| p["state"] == "confirmed")
    });
}
