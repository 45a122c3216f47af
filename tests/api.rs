//! The HTTP API against real daemons: the seed Flask node's walkthrough on three processes, every
//! endpoint's success path and its bad inputs (each refused with the right status and nothing
//! changed), cookie auth, `/metrics`, and the CLI going through a running daemon.

mod common;
use common::{
    Daemon, Http, Node, addr, easy_params, free_port, funded, http_get, http_post,
    start_central as start, wait_until,
};
use serde_json::{Value, json};

const JSON: &str = "application/json";

fn chain_hashes(api: &str) -> Vec<String> {
    let r = http_get(&format!("{api}/chain"), None);
    assert_eq!(r.status, 200, "{r:?}");
    r.body["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["hash"].as_str().unwrap().to_owned())
        .collect()
}

fn balance(api: &str, address: &str) -> String {
    let r = http_get(&format!("{api}/wallet/balance/{address}"), None);
    assert_eq!(r.status, 200, "{r:?}");
    r.body["balance"].as_str().unwrap().to_owned()
}

fn mempool_txs(api: &str) -> u64 {
    http_get(&format!("{api}/mempool"), None).body["txs"]
        .as_u64()
        .unwrap()
}

#[test]
fn flask_walkthrough_on_three_nodes() {
    let (n0, n1, n2) = (Node::new(), Node::new(), Node::new());
    let params = easy_params(&n0);
    let alice = funded(&n0, &params);
    n1.copy_chain_from(&n0);
    n2.copy_chain_from(&n0);
    let bob = n1.new_address();
    let david = n2.new_address();
    let d: Vec<Daemon> = [&n0, &n1, &n2]
        .iter()
        .map(|n| start(n, &params, &[]))
        .collect();
    let apis: Vec<String> = d.iter().map(Daemon::api).collect();
    let cookies: Vec<String> = d.iter().map(Daemon::cookie).collect();

    // 1. Register every pair, by API URL as the Flask walkthrough does.
    for i in 0..3 {
        let others: Vec<&String> = (0..3).filter(|j| *j != i).map(|j| &apis[j]).collect();
        let r = http_post(
            &format!("{}/nodes/register", apis[i]),
            &json!({ "nodes": others }).to_string(),
            JSON,
            Some(&cookies[i]),
        );
        assert_eq!(r.status, 201, "{r:?}");
        assert_eq!(r.body["added"].as_array().unwrap().len(), 2, "{r:?}");
    }
    wait_until(30, "every node to see two peers", || {
        apis.iter()
            .all(|a| http_get(&format!("{a}/status"), None).body["peers"] == 2)
    });

    // 2. Two transactions on node 0; the second spends the first's unconfirmed change.
    let mut txids = Vec::new();
    for (to, amount) in [(&bob, json!(5)), (&david, json!("2.5"))] {
        let r = http_post(
            &format!("{}/transactions/new", apis[0]),
            &json!({ "sender": alice, "recipient": to, "amount": amount }).to_string(),
            JSON,
            Some(&cookies[0]),
        );
        assert_eq!(r.status, 201, "{r:?}");
        assert_eq!(r.body["message"], "Transaction will be added to Block 1");
        txids.push(r.body["txid"].as_str().unwrap().to_owned());
    }
    wait_until(30, "both transactions to reach every mempool", || {
        apis.iter().all(|a| mempool_txs(a) == 2)
    });

    // 3. Mine on node 0.
    let r = http_get(&format!("{}/mine", apis[0]), Some(&cookies[0]));
    assert_eq!(r.status, 200, "{r:?}");
    let block = &r.body["block"];
    assert_eq!(block["index"], 1);
    let mined: Vec<&str> = block["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["txid"].as_str().unwrap())
        .collect();
    assert_eq!(mined.len(), 3, "coinbase + two payments: {block}");
    assert!(txids.iter().all(|t| mined.contains(&t.as_str())));

    // 4. Every node's /chain returns the same blocks.
    let expected = chain_hashes(&apis[0]);
    assert_eq!(expected.len(), 2);
    assert_eq!(expected[1], block["hash"].as_str().unwrap());
    wait_until(30, "nodes 1 and 2 to hold the same chain", || {
        apis[1..].iter().all(|a| chain_hashes(a) == expected)
    });
    for a in &apis {
        assert_eq!(balance(a, &bob), "5");
        assert_eq!(balance(a, &david), "2.5");
        assert_eq!(balance(a, &alice), "12.5", "10 - 5 - 2.5 + the 10 reward");
        assert_eq!(mempool_txs(a), 0);
    }

    // Node 1 knows that whoever sent it the block has height 1 now.
    wait_until(30, "node 1 to see a peer at height 1", || {
        http_get(&format!("{}/peers", apis[1]), None).body["peers"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["height"] == 1))
    });

    // 5. Nothing left to resolve.
    for i in 1..3 {
        let r = http_get(&format!("{}/nodes/resolve", apis[i]), Some(&cookies[i]));
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body["replaced"], false, "{r:?}");
        assert_eq!(r.body["message"], "Our chain is authoritative");
    }
}

#[test]
fn resolve_downloads_a_longer_chain_and_says_so() {
    let (n0, n1) = (Node::new(), Node::new());
    let params = easy_params(&n0);
    let a = funded(&n0, &params);
    n1.copy_chain_from(&n0);
    n0.ok(&[
        "--params",
        &params,
        "generate",
        "--blocks",
        "5",
        "--address",
        &a,
    ]);
    let d0 = start(&n0, &params, &[]);
    let d1 = start(&n1, &params, &[]);
    let (api0, api1) = (d0.api(), d1.api());
    // n1 dials n0 by multiaddr; sync on connect may already download, so resolve may or may
    // not be the one that changes the chain; the total outcome is checked.
    let p2p0 = http_get(&format!("{api0}/status"), None).body["listen"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let r = http_post(
        &format!("{api1}/nodes/register"),
        &json!({ "nodes": [p2p0] }).to_string(),
        JSON,
        Some(&d1.cookie()),
    );
    assert_eq!(r.status, 201, "{r:?}");
    wait_until(30, "the nodes to connect", || {
        http_get(&format!("{api1}/status"), None).body["peers"] == 1
    });
    let r = http_get(&format!("{api1}/nodes/resolve"), Some(&d1.cookie()));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["height"], 5, "{r:?}");
    assert_eq!(chain_hashes(&api1), chain_hashes(&api0));
    let again = http_get(&format!("{api1}/nodes/resolve"), Some(&d1.cookie()));
    assert_eq!(again.body["replaced"], false, "{again:?}");
}

/// `GET path` with the given Host header; the whole raw answer.
fn raw_get(api: &str, path: &str, host: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(api.strip_prefix("http://").unwrap()).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Sends only the headers of a POST announcing a `len`-byte JSON body; returns the status and
/// the raw answer.
fn announce_body(api: &str, path: &str, len: usize, cookie: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let host = api.strip_prefix("http://").unwrap();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let token = cookie.split(':').nth(1).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Authorization: Bearer {token}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Status and JSON error of a refused request.
fn refused(r: &Http, status: u16, needle: &str) {
    assert_eq!(r.status, status, "{r:?}");
    let error = r.body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no JSON error: {r:?}"));
    assert!(
        error.to_lowercase().contains(&needle.to_lowercase()),
        "{error:?} should mention {needle:?}"
    );
}

#[test]
fn bad_requests_are_refused_with_the_right_status_and_change_nothing() {
    let node = Node::new();
    let params = easy_params(&node);
    let alice = funded(&node, &params);
    let stranger = Node::new().new_address();
    let d = start(&node, &params, &[]);
    let (api, cookie) = (d.api(), d.cookie());
    let wallet_before = std::fs::read(node.dir.join("wallet.dat")).unwrap();
    let tip_before = http_get(&format!("{api}/status"), None).body["tip"].clone();

    let pay = |body: &str, cookie: Option<&str>| {
        http_post(&format!("{api}/transactions/new"), body, JSON, cookie)
    };
    let payment = |amount: Value| {
        json!({ "sender": alice, "recipient": stranger, "amount": amount }).to_string()
    };
    let c = Some(cookie.as_str());
    refused(&pay(&payment(json!(1)), None), 401, "cookie");
    refused(
        &pay(&payment(json!(1)), Some("__cookie__:00")),
        401,
        "cookie",
    );
    refused(&pay("{not json", c), 400, "json");
    refused(&pay("[1, 2]", c), 400, "object");
    refused(&pay(r#"{"sender": 5}"#, c), 400, "sender");
    refused(&pay(&payment(json!(-1)), c), 400, "amount");
    refused(&pay(&payment(json!(0)), c), 400, "greater than zero");
    refused(&pay(&payment(json!("1e30")), c), 400, "amount");
    refused(&pay(&payment(json!(21_000_001)), c), 400, "amount");
    refused(&pay(&payment(json!(11)), c), 400, "insufficient funds");
    refused(&pay(&payment(json!("abc")), c), 400, "amount");
    let unknown_sender = json!({ "sender": stranger, "recipient": alice, "amount": 1 }).to_string();
    refused(&pay(&unknown_sender, c), 400, "not in this node's wallet");
    let bad_address = json!({ "sender": alice, "recipient": "1Nope", "amount": 1 }).to_string();
    refused(&pay(&bad_address, c), 400, "recipient");
    let r = http_post(
        &format!("{api}/transactions/new"),
        &payment(json!(1)),
        "text/plain",
        c,
    );
    assert_eq!(r.status, 415, "{r:?}");
    // A body above the limit is refused from its Content-Length, before it is read.
    let (status, text) = announce_body(&api, "/transactions/new", 300_000, &cookie);
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("\"error\""), "{text}");

    // Queries of unknown or malformed things.
    let get = |path: &str| http_get(&format!("{api}{path}"), None);
    refused(&get("/blocks/999"), 404, "no block");
    refused(
        &get(&format!("/blocks/{}", "ab".repeat(32))),
        404,
        "no block",
    );
    refused(
        &get("/blocks/xyz"),
        400,
        "neither a height nor a block hash",
    );
    refused(
        &get(&format!("/tx/{}", "cd".repeat(32))),
        404,
        "no transaction",
    );
    refused(&get("/tx/123"), 400, "not a txid");
    refused(&get("/address/1Nope"), 400, "address");
    refused(&get("/wallet/balance/1Nope"), 400, "address");
    refused(&get("/chain?limit=0"), 400, "limit");
    refused(&get("/chain?limit=100000"), 400, "limit");
    refused(&get("/chain?from=-1"), 400, "from");
    refused(&get("/no/such/thing"), 404, "no such endpoint");
    refused(
        &http_post(&format!("{api}/status"), "", JSON, None),
        405,
        "method",
    );

    // Other state-changing endpoints, without and with bad input.
    refused(&get("/mine"), 401, "cookie");
    refused(&get("/wallet/create"), 401, "cookie");
    refused(&get("/nodes/resolve"), 401, "cookie");
    let post = |path: &str, body: &str, cookie: Option<&str>| {
        http_post(&format!("{api}{path}"), body, JSON, cookie)
    };
    refused(
        &post("/nodes/register", r#"{"nodes":[]}"#, None),
        401,
        "cookie",
    );
    refused(
        &post("/nodes/register", r#"{"nodes":[]}"#, c),
        400,
        "list of nodes",
    );
    refused(
        &post("/nodes/register", r#"{"nodes":["garbage"]}"#, c),
        400,
        "neither",
    );
    refused(
        &post("/nodes/register", r#"{"nodes":["/ip4/1.2.3.4/udp/1"]}"#, c),
        400,
        "cannot dial",
    );
    refused(&post("/tx", "00ff", None), 401, "cookie");
    refused(&post("/tx", "zz", c), 400, "not hex");
    refused(&post("/tx", "00ff", c), 400, "not a transaction");
    refused(&post("/tx", r#"{"hex": 5}"#, c), 400, "hex");
    refused(
        &http_get(&format!("{api}/mine?address=1Nope"), c),
        400,
        "address",
    );

    // Nothing changed: no tx, no block, same wallet, same balance.
    assert_eq!(mempool_txs(&api), 0);
    assert_eq!(
        http_get(&format!("{api}/status"), None).body["tip"],
        tip_before
    );
    assert_eq!(balance(&api, &alice), "10");
    assert_eq!(
        std::fs::read(node.dir.join("wallet.dat")).unwrap(),
        wallet_before
    );
}

#[test]
fn raw_transactions_blocks_and_queries() {
    let node = Node::new();
    let params = easy_params(&node);
    let alice = funded(&node, &params);
    let bob = Node::new().new_address();
    let d = start(&node, &params, &[]);
    let (api, cookie) = (d.api(), d.cookie());
    let c = Some(cookie.as_str());

    // A payment: visible in /mempool and /tx as unconfirmed.
    let r = http_post(
        &format!("{api}/transactions/new"),
        &json!({ "sender": alice, "recipient": bob, "amount": "1.5", "fee": "0.01" }).to_string(),
        JSON,
        c,
    );
    assert_eq!(r.status, 201, "{r:?}");
    let txid = r.body["txid"].as_str().unwrap().to_owned();
    let m = http_get(&format!("{api}/mempool"), None);
    assert_eq!(m.body["transactions"][0]["txid"], txid.as_str(), "{m:?}");
    assert_eq!(m.body["transactions"][0]["fee"], "0.01");
    let t = http_get(&format!("{api}/tx/{txid}"), None);
    assert_eq!(t.body["status"], "mempool", "{t:?}");
    let hex = t.body["hex"].as_str().unwrap().to_owned();

    // The same raw transaction again is a conflict (already known), refused with 409.
    let again = http_post(&format!("{api}/tx"), &hex, "text/plain", c);
    refused(&again, 409, "already");

    // Mine it: confirmed, with its block; fee to the miner.
    let r = http_get(&format!("{api}/mine?address={bob}"), c);
    assert_eq!(r.status, 200, "{r:?}");
    let hash = r.body["block"]["hash"].as_str().unwrap().to_owned();
    let t = http_get(&format!("{api}/tx/{txid}"), None);
    assert_eq!(t.body["status"], "confirmed", "{t:?}");
    assert_eq!(t.body["block"], hash.as_str());
    assert_eq!(t.body["height"], 1);
    assert_eq!(t.body["confirmations"], 1);
    assert_eq!(t.body["tx"]["sender"], alice.as_str());
    assert_eq!(
        balance(&api, &bob),
        "11.51",
        "1.5 paid + 10 subsidy + 0.01 fee"
    );

    // The raw transaction once more: it is confirmed, and the answer says where.
    refused(
        &http_post(
            &format!("{api}/tx"),
            &format!("{{\"hex\": \"{hex}\"}}"),
            JSON,
            c,
        ),
        409,
        &format!("transaction {txid} is already confirmed, in block {hash} at height 1"),
    );

    // Blocks by height and by hash agree; /address lists the UTXOs.
    let by_height = http_get(&format!("{api}/blocks/1"), None);
    let by_hash = http_get(&format!("{api}/blocks/{hash}"), None);
    assert_eq!(by_height.status, 200);
    assert_eq!(by_height.body, by_hash.body);
    assert_eq!(by_height.body["main_chain"], true);
    assert_eq!(by_height.body["confirmations"], 1);
    let a = http_get(&format!("{api}/address/{bob}"), None);
    assert_eq!(a.body["balance"], "11.51", "{a:?}");
    assert_eq!(a.body["utxo_count"], 2);
    let genesis = http_get(&format!("{api}/blocks/0"), None);
    assert_eq!(genesis.body["confirmations"], 2);

    // What the explorer adds: the coins spent, fees, the PoW check, arrival times.
    let t = http_get(&format!("{api}/tx/{txid}"), None);
    assert_eq!(t.body["fee"], "0.01", "{t:?}");
    assert_eq!(t.body["index"], 1);
    assert_eq!(t.body["tx"]["inputs"][0]["amount"], "10", "{t:?}");
    assert_eq!(t.body["tx"]["inputs"][0]["address"], alice.as_str());
    let b = &by_height.body;
    assert_eq!(b["pow"]["hash_meets_target"], true, "{b}");
    assert_eq!(b["merkle_root_ok"], true);
    assert_eq!(b["fees"], "0.01");
    assert_eq!(b["transactions"][1]["fee"], "0.01");
    assert_eq!(b["transactions"][0]["fee"], "0");
    let recent = http_get(&format!("{api}/blocks/recent?count=5"), None);
    let blocks = recent.body["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 2, "{recent:?}");
    assert_eq!(blocks[0]["hash"], hash.as_str());
    assert_eq!(blocks[0]["fees"], "0.01");
    assert_eq!(blocks[0]["reward"], "10.01");
    assert_eq!(blocks[0]["reward_to"], bob.as_str());
    assert!(
        blocks[0]["arrived_ms"].as_u64().is_some(),
        "mined here while running"
    );
    assert_eq!(
        blocks[1]["arrived_ms"],
        Value::Null,
        "genesis came before the node"
    );
    for bad in ["0", "101", "x"] {
        let r = http_get(&format!("{api}/blocks/recent?count={bad}"), None);
        assert_eq!(r.status, 400, "count={bad}: {r:?}");
    }

    // The Host rule (against DNS rebinding): a foreign name is refused before any route.
    let port = api.rsplit(':').next().unwrap();
    for (host, status) in [
        (format!("localhost:{port}"), "200"),
        (format!("[::1]:{port}"), "200"),
        (format!("rebind.example:{port}"), "421"),
        ("127.0.0.1:1".to_string(), "421"),
    ] {
        let answer = raw_get(&api, "/status", &host);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "Host {host}: {answer}"
        );
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("x-content-type-options: nosniff")
        );
    }

    // Status and peers answer; the chain page is paged.
    let s = http_get(&format!("{api}/status"), None);
    assert_eq!(s.body["height"], 1);
    assert_eq!(s.body["tip"], hash.as_str());
    assert_eq!(s.body["role"], "central");
    assert_eq!(s.body["sync"], "alone");
    assert_eq!(s.body["api"], api.as_str());
    let page = http_get(&format!("{api}/chain?from=1&limit=1"), None);
    assert_eq!(page.body["length"], 2);
    assert_eq!(page.body["chain"].as_array().unwrap().len(), 1);
    assert_eq!(page.body["chain"][0]["hash"], hash.as_str());
    let peers = http_get(&format!("{api}/peers"), None);
    assert_eq!(peers.body["peers"], json!([]));

    // A new wallet address: only the address leaves the node.
    let w = http_get(&format!("{api}/wallet/create"), c);
    assert_eq!(w.status, 201, "{w:?}");
    let new = w.body["address"].as_str().unwrap();
    assert!(node.ok(&["listaddresses"]).contains(new));
    assert_eq!(
        w.body.as_object().unwrap().len(),
        2,
        "address and message only: {w:?}"
    );
}

/// `name{labels} value` lines and `# HELP` / `# TYPE` comments; returns the samples.
fn parse_prometheus(text: &str) -> Vec<(String, f64)> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap();
            assert!(kind == "HELP" || kind == "TYPE", "bad comment: {line}");
            let name = parts.next().unwrap_or_default();
            assert!(name.starts_with("gossipcoin_"), "bad metric name: {line}");
            if kind == "TYPE" {
                let t = parts.next().unwrap_or_default();
                assert!(
                    ["counter", "gauge", "histogram"].contains(&t),
                    "bad type: {line}"
                );
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad name: {line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "bad labels: {line}");
            for pair in series[name_end + 1..series.len() - 1].split("\",") {
                let (k, v) = pair
                    .split_once("=\"")
                    .unwrap_or_else(|| panic!("bad label: {line}"));
                assert!(
                    k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "{line}"
                );
                assert!(!v.is_empty() || pair.ends_with('"'), "{line}");
            }
        }
        samples.push((series.to_owned(), value));
    }
    samples
}

fn sample(samples: &[(String, f64)], series: &str) -> f64 {
    samples
        .iter()
        .find(|(s, _)| s == series)
        .map_or(0.0, |(_, v)| *v)
}

#[test]
fn metrics_parse_as_prometheus_text_and_move_when_blocks_arrive() {
    let (n0, n1) = (Node::new(), Node::new());
    let params = easy_params(&n0);
    funded(&n0, &params);
    n1.copy_chain_from(&n0);
    let d0 = start(&n0, &params, &[]);
    let p2p0 = http_get(&format!("{}/status", d0.api()), None).body["listen"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let d1 = start(&n1, &params, &["--bootstrap", &p2p0]);
    let api1 = d1.api();
    wait_until(30, "the nodes to connect", || {
        http_get(&format!("{api1}/status"), None).body["peers"] == 1
    });
    let metrics = || {
        let r = http_get(&format!("{api1}/metrics"), None);
        assert_eq!(r.status, 200);
        parse_prometheus(&r.text)
    };
    let before = metrics();
    assert_eq!(sample(&before, "gossipcoin_peers"), 1.0);
    assert_eq!(sample(&before, "gossipcoin_height"), 0.0);

    for _ in 0..3 {
        let r = http_get(&format!("{}/mine", d0.api()), Some(&d0.cookie()));
        assert_eq!(r.status, 200, "{r:?}");
    }
    wait_until(30, "node 1 to reach height 3", || {
        sample(&metrics(), "gossipcoin_height") == 3.0
    });
    let after = metrics();
    let accepted = "gossipcoin_blocks_accepted_total";
    assert_eq!(sample(&after, accepted) - sample(&before, accepted), 3.0);
    let received = sample(
        &after,
        "gossipcoin_blocks_received_total{source=\"gossip\"}",
    ) + sample(&after, "gossipcoin_blocks_received_total{source=\"sync\"}");
    assert!(received >= 3.0, "{after:?}");
    assert!(sample(&after, "gossipcoin_block_validation_seconds_count") >= 3.0);
    assert!(
        sample(
            &after,
            "gossipcoin_api_requests_total{route=\"/metrics\",status=\"200\"}"
        ) >= 2.0
    );
    let miner = parse_prometheus(&http_get(&format!("{}/metrics", d0.api()), None).text);
    assert!(sample(&miner, "gossipcoin_miner_hashes_total") >= 3.0);
    assert!(
        sample(
            &miner,
            "gossipcoin_gossip_messages_total{direction=\"out\",topic=\"blocks\"}"
        ) >= 3.0
    );
}

#[test]
fn the_cli_goes_through_a_running_daemon() {
    let node = Node::new();
    let params = easy_params(&node);
    let alice = funded(&node, &params);
    let bob = Node::new().new_address();

    // Without a daemon, the thin commands say so.
    let err = node.fails(&["status"]);
    assert!(err.contains("no node is running"), "{err}");

    let d = start(&node, &params, &[]);
    let api = d.api();
    let status = node.ok(&["status"]);
    assert!(status.contains("height      0"), "{status}");
    assert!(status.contains(&api), "{status}");

    // createwallet through the daemon: the node's wallet gets the key.
    let out = node.ok(&["createwallet"]);
    let carol = out
        .trim()
        .strip_prefix("Your new address: ")
        .unwrap()
        .to_owned();
    assert!(node.ok(&["listaddresses"]).contains(&carol));

    // send through the daemon, twice in a row (the second spends the first's change).
    for to in [&bob, &carol] {
        let out = node.ok(&["send", "--from", &alice, "--to", to, "--amount", "1"]);
        assert!(out.contains(&format!("accepted by {api}")), "{out}");
    }
    let mempool = node.ok(&["mempool"]);
    assert!(mempool.starts_with("2 transactions"), "{mempool}");
    let mined = node.ok(&["mine"]);
    assert!(
        mined.contains("at height 1 with 2 transaction(s)"),
        "{mined}"
    );
    assert_eq!(balance(&api, &bob), "1");
    assert_eq!(balance(&api, &carol), "1");
    let peers = node.ok(&["peers"]);
    assert_eq!(peers.trim(), "no peers");

    // A refused send through the daemon is a clear error.
    let err = node.fails(&["send", "--from", &bob, "--to", &alice, "--amount", "1"]);
    assert!(err.contains("not in this node's wallet"), "{err}");

    // --api reaches any node.
    let other = Node::new();
    let out = other.ok(&["status", "--api", &api]);
    assert!(out.contains("height      1"), "{out}");
}

#[test]
fn api_files_are_private_and_removed_at_stop_and_a_busy_port_is_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    let node = Node::new();
    let params = easy_params(&node);
    funded(&node, &params);
    let d = start(&node, &params, &[]);
    let api = d.api();
    let cookie = node.dir.join("api.cookie");
    let mode = std::fs::metadata(&cookie).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(d.cookie().starts_with("__cookie__:"));

    // Another node on the same API port fails at start, naming the port.
    let port = api.rsplit(':').next().unwrap();
    let other = Node::new();
    let other_params = easy_params(&other);
    funded(&other, &other_params);
    let listen = addr(free_port());
    let r = other.run(&[
        "--params",
        &other_params,
        "startnode",
        "--listen",
        &listen,
        "--api-listen",
        &format!("127.0.0.1:{port}"),
    ]);
    assert!(!r.ok);
    assert!(
        r.stderr.contains("cannot listen for the HTTP API"),
        "{}",
        r.stderr
    );

    assert!(d.stop().success());
    assert!(!cookie.exists());
    assert!(!node.dir.join("api.addr").exists());
}

#[test]
fn api_auth_none_opens_the_state_changing_endpoints() {
    let node = Node::new();
    let params = easy_params(&node);
    funded(&node, &params);
    let d = start(&node, &params, &["--api-auth", "none"]);
    let r = http_get(&format!("{}/mine", d.api()), None);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(!node.dir.join("api.cookie").exists());
    assert!(d.log_text().contains("--api-auth none"));
}
