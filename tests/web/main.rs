//! The web explorer and the testnet page in a real browser (headless Chromium over WebDriver)
//! against the real binary: a node's page follows its chain live, opens blocks, transactions
//! and addresses, and shows hostile text as text; the testnet page shows every node and when a
//! block reached each. Screenshots in `target/screenshots/`.

mod browser;
#[path = "../common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use browser::Browser;
use common::{Daemon, Node, addr, bin, free_port, http_get, http_post};
use serde_json::{Value, json};

/// What the hostile strings would do if they ever became markup.
const PAYLOAD: &str = "<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=2</script>";

fn start_funded(node: &Node, params: &str) -> (Daemon, String) {
    let a = node.new_address();
    node.ok(&["--params", params, "createblockchain", "--address", &a]);
    let listen = addr(free_port());
    let d = node.start(&["--params", params, "--role", "central", "--listen", &listen]);
    (d, a)
}

/// Raw `GET /` with the given Host header: (status line, headers and body).
fn get_with_host(api: &str, host: &str) -> String {
    let hostport = api.strip_prefix("http://").unwrap();
    let mut s = std::net::TcpStream::connect(hostport).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_explorer_follows_the_chain_live_and_shows_hostile_text_as_text() {
    let node = Node::new();
    let params = common::params_file(&node, "0x207fffff");
    let (daemon, alice) = start_funded(&node, &params);
    let api = daemon.api();
    let cookie = daemon.cookie();
    let bob = Node::new().new_address();

    // Block 1: the coinbase and a payment of 1 coin with a 0.25 fee.
    let paid = http_post(
        &format!("{api}/transactions/new"),
        &json!({"sender": alice, "recipient": bob, "amount": 1, "fee": "0.25"}).to_string(),
        "application/json",
        Some(&cookie),
    );
    assert_eq!(paid.status, 201, "{paid:?}");
    let txid = paid.body["txid"].as_str().unwrap().to_owned();
    let mined = http_get(&format!("{api}/mine"), Some(&cookie));
    assert_eq!(mined.status, 200, "{mined:?}");
    let block1 = mined.body["block"]["hash"].as_str().unwrap().to_owned();

    // The page and its headers: strict CSP, nosniff, no inline code; a foreign Host refused.
    let page = get_with_host(&api, api.strip_prefix("http://").unwrap());
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let lower = page.to_ascii_lowercase();
    assert!(
        lower.contains("content-security-policy: default-src 'none'; script-src 'self'"),
        "{page}"
    );
    assert!(lower.contains("x-content-type-options: nosniff"), "{page}");
    let port = api.rsplit(':').next().unwrap();
    let foreign = get_with_host(&api, &format!("rebind.example:{port}"));
    assert!(foreign.starts_with("HTTP/1.1 421"), "{foreign}");
    assert!(foreign.contains("DNS rebinding"), "{foreign}");

    let b = Browser::start().await;
    b.goto(&format!("{api}/")).await;
    b.wait_text(30, "#height", "1").await;
    // The difficulty the next block must meet, as /status gives it.
    let difficulty = b.text("#difficulty").await.unwrap_or_default();
    assert!(
        difficulty.contains("× the limit (next bits 0x"),
        "no difficulty shown: {difficulty:?}"
    );
    b.wait_for(
        10,
        "the latest blocks",
        "return document.querySelectorAll('#blocks tr.block').length;",
        vec![],
        |v| v.as_u64() == Some(2),
    )
    .await;
    let first_render = b
        .js("return document.body.dataset.firstRenderMs;", vec![])
        .await;
    eprintln!("first render of / (2 blocks): {first_render} ms after navigation start");
    b.screenshot("explorer-overview").await;
    b.js("window.__sameDocument = 'yes';", vec![]).await;

    // Open block 1 from the list, then its payment.
    b.click("#blocks tr.block[data-height='1'] td a").await;
    b.wait_text(20, "#block-hash", &block1).await;
    assert_eq!(
        b.text("#pow").await.as_deref(),
        Some("hash ≤ target: valid")
    );
    let row = format!("#txs tr.tx[data-txid='{txid}'] a");
    b.click(&row).await;
    b.wait_text(20, "#txid", &txid).await;
    assert_eq!(b.text("#tx-fee").await.as_deref(), Some("0.25 coins"));
    let inputs = b.text("#inputs").await.unwrap();
    assert!(
        inputs.contains(&alice) && inputs.contains("10 coins"),
        "the spent coin: {inputs}"
    );
    let where_ = b.text("#tx-where").await.unwrap();
    assert!(
        where_.contains("block 1") && where_.contains("1 confirmations"),
        "{where_}"
    );
    b.screenshot("explorer-transaction").await;

    // Search an address, see its balance.
    b.js("document.getElementById('q').value = arguments[0]; document.querySelector('#search button').click();", vec![json!(bob)]).await;
    b.wait_text(20, "#balance", "1").await;
    assert_eq!(b.text("#address").await.as_deref(), Some(bob.as_str()));
    b.screenshot("explorer-address").await;

    // Back to the overview; a block mined through the API appears without a reload.
    b.click("a.brand").await;
    b.wait_text(20, "#height", "1").await;
    b.wait_for(
        20,
        "the event stream",
        "return document.getElementById('live').textContent;",
        vec![],
        |v| v.as_str() == Some("live"),
    )
    .await;
    let mined = http_get(&format!("{api}/mine"), Some(&cookie));
    assert_eq!(mined.status, 200, "{mined:?}");
    let block2 = mined.body["block"]["hash"].as_str().unwrap().to_owned();
    b.wait_for(
        20,
        "block 2 in the list",
        "return !!document.querySelector(\"#blocks tr.block[data-hash='\" + arguments[0] + \"']\");",
        vec![json!(block2)],
        |v| v.as_bool() == Some(true),
    )
    .await;
    assert_eq!(b.text("#height").await.as_deref(), Some("2"));
    assert_eq!(
        b.js("return window.__sameDocument || null;", vec![]).await,
        "yes",
        "the page was not reloaded"
    );
    let shown: u64 = b
        .js(
            "return document.getElementById('height').dataset.shownMs;",
            vec![],
        )
        .await
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let recent = http_get(&format!("{api}/blocks/recent?count=1"), None);
    let arrived = recent.body["blocks"][0]["arrived_ms"]
        .as_u64()
        .expect("arrival time");
    assert_eq!(recent.body["blocks"][0]["hash"], block2.as_str());
    eprintln!(
        "block 2 accepted at {arrived} ms, on the page {} ms later",
        shown.saturating_sub(arrived)
    );
    b.screenshot("explorer-live-block").await;

    // Hostile text: in the route, in the search box, echoed by the API's error messages.
    let hostile = [
        format!("{api}/#/block/{}", urlencode(PAYLOAD)),
        format!("{api}/#/address/{}", urlencode(PAYLOAD)),
        format!("{api}/#/{}", urlencode(PAYLOAD)),
    ];
    for url in &hostile {
        b.goto(url).await;
        b.wait_for(
            20,
            "the error message",
            "const e = document.getElementById('error'); return e ? e.textContent : null;",
            vec![],
            |v| v.as_str().is_some_and(|t| t.contains("<img src=x")),
        )
        .await;
        b.assert_nothing_injected(url).await;
    }
    b.goto(&format!("{api}/")).await;
    b.wait_text(30, "#height", "2").await;
    b.js("document.getElementById('q').value = arguments[0]; document.querySelector('#search button').click();", vec![json!(PAYLOAD)]).await;
    b.wait_for(
        20,
        "the search's error",
        "const e = document.getElementById('error'); return e ? e.textContent : null;",
        vec![],
        |v| v.as_str().is_some_and(|t| t.contains("onerror")),
    )
    .await;
    b.assert_nothing_injected("search box").await;
    b.screenshot("explorer-hostile-search").await;
    drop(daemon);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                (c as char).to_string()
            } else {
                format!("%{c:02X}")
            }
        })
        .collect()
}

/// A testnet in a temp dir on free ports; `down` and the page's server stopped on drop.
struct Testnet {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    ui: Option<Child>,
}

impl Drop for Testnet {
    fn drop(&mut self) {
        if let Some(mut ui) = self.ui.take() {
            let _ = ui.kill();
            let _ = ui.wait();
        }
        let _ = Command::new(bin())
            .args(["testnet", "down", "--timeout", "5", "--dir"])
            .arg(&self.dir)
            .output();
    }
}

/// A base port with `n` free ports from it and `n` from 1000 above (`testnet up`'s layout).
fn free_base(n: u16) -> u16 {
    let seed = std::process::id() as u16;
    (0..400u16)
        .map(|i| 12_000 + (seed % 97 + i * 37) % 18_000)
        .find(|&base| {
            (0..n)
                .flat_map(|i| [base + i, base + 1000 + i])
                .all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        })
        .expect("free ports")
}

fn state(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("testnet.json")).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_testnet_page_shows_every_node_and_a_block_reaching_each() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("testnet");
    let params = {
        let text = gossipcoin::params::DEVNET_TOML
            .replace("pow_bits = 0x1e0fffff", "pow_bits = 0x207fffff")
            .replace("retarget = \"asert\"", "retarget = \"fixed\"");
        let path = tmp.path().join("easy.toml");
        std::fs::write(&path, text).unwrap();
        path
    };
    let mut net = Testnet {
        _tmp: tmp,
        dir: dir.clone(),
        ui: None,
    };
    let base = free_base(3).to_string();
    let up = Command::new(bin())
        .arg("--params")
        .arg(&params)
        .args([
            "testnet",
            "up",
            "--miners",
            "1",
            "--wallets",
            "1",
            "--timeout",
            "120",
            "--base-port",
            &base,
            "--dir",
        ])
        .arg(&dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "testnet up: {}{}",
        String::from_utf8_lossy(&up.stdout),
        String::from_utf8_lossy(&up.stderr)
    );

    // A node name is free text in testnet.json: give one a hostile name.
    let mut st = state(&dir);
    st["nodes"][2]["name"] = json!(format!("wallet-1{PAYLOAD}"));
    std::fs::write(
        dir.join("testnet.json"),
        serde_json::to_string_pretty(&st).unwrap(),
    )
    .unwrap();

    let ui_port = free_port();
    let mut ui = Command::new(bin())
        .args([
            "testnet",
            "ui",
            "--listen",
            &format!("127.0.0.1:{ui_port}"),
            "--dir",
        ])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(ui.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    net.ui = Some(ui);
    assert!(
        line.contains(&format!("http://127.0.0.1:{ui_port}/")),
        "{line}"
    );

    // The central node mines one block; it travels to the other two.
    let central = dir.join("central");
    let api = std::fs::read_to_string(central.join("api.addr"))
        .unwrap()
        .trim()
        .to_owned();
    let cookie = std::fs::read_to_string(central.join("api.cookie")).unwrap();
    let mined = http_get(&format!("{api}/mine"), Some(cookie.trim()));
    assert_eq!(mined.status, 200, "{mined:?}");
    let hash = mined.body["block"]["hash"].as_str().unwrap().to_owned();

    let b = Browser::start().await;
    b.goto(&format!("http://127.0.0.1:{ui_port}/")).await;
    b.wait_for(30, "three cards, all up", "return Array.from(document.querySelectorAll('.card')).filter(c => c.dataset.up === 'true').length;", vec![], |v| v.as_u64() == Some(3)).await;
    let delays = b
        .wait_for(
            60,
            "the block's arrival at all three nodes",
            "const r = document.querySelector(\"#arrivals tr.arrival[data-hash='\" + arguments[0] + \"']\"); \
             if (!r) return null; \
             const d = Array.from(r.querySelectorAll('td[data-delay-ms]')).map(td => Number(td.dataset.delayMs)); \
             return { delays: d, miner: r.children[2].textContent };",
            vec![json!(hash)],
            |v| v["delays"].as_array().is_some_and(|d| d.len() == 3),
        )
        .await;
    assert_eq!(delays["miner"], "central", "{delays}");
    let d: Vec<u64> = delays["delays"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    assert_eq!(
        d.iter().min(),
        Some(&0),
        "delays count from the first node: {d:?}"
    );
    eprintln!("block {hash} reached the three nodes at +{d:?} ms");
    let edges = b
        .js(
            "return document.querySelectorAll('svg.graph line').length;",
            vec![],
        )
        .await;
    assert!(
        edges.as_u64().unwrap() >= 2,
        "the peer graph links the nodes: {edges}"
    );
    let names = b
        .js(
            "return Array.from(document.querySelectorAll('.card h3')).map(h => h.textContent);",
            vec![],
        )
        .await;
    assert!(
        names[2].as_str().unwrap().contains("<img src=x"),
        "the hostile name shown as text: {names}"
    );
    b.assert_nothing_injected("testnet page").await;
    b.screenshot("testnet-page").await;
}
