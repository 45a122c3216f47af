//! Commands that talk to a running node through its HTTP API: `status`, `peers`, `mempool`,
//! `mine`, and the daemon paths of `send` and `createwallet` (a running node owns its data
//! directory, so changes go through it instead of being written under it).

use std::path::Path;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::api::client::ApiClient;

/// `--api URL`, else the node running on the data directory.
pub(super) fn client(api: Option<&str>, dir: Option<&Path>) -> Result<ApiClient> {
    match (api, dir) {
        (Some(url), dir) => Ok(ApiClient::new(url, dir)),
        (None, Some(dir)) => ApiClient::require(dir),
        (None, None) => {
            bail!("which node? pass --api URL, or --data-dir DIR / NODE_ID of a running node")
        }
    }
}

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

pub(super) fn status(api: &ApiClient) -> Result<()> {
    let s = api.get("/status")?;
    println!("role        {}", text(&s, "role"));
    println!("peer id     {}", text(&s, "peer_id"));
    if let Some(listen) = s.get("listen").and_then(Value::as_array) {
        for l in listen {
            println!("p2p         {}", l.as_str().unwrap_or("-"));
        }
    }
    println!("api         {}", api.url());
    println!("height      {}", text(&s, "height"));
    println!("tip         {}", text(&s, "tip"));
    println!("genesis     {}", text(&s, "genesis"));
    println!("chain work  {}", text(&s, "chain_work"));
    println!("sync        {}", text(&s, "sync"));
    println!("peers       {}", text(&s, "peers"));
    let m = s.get("mempool").cloned().unwrap_or_default();
    println!(
        "mempool     {} txs, {} bytes",
        text(&m, "txs"),
        text(&m, "bytes")
    );
    Ok(())
}

pub(super) fn peers(api: &ApiClient) -> Result<()> {
    let body = api.get("/peers")?;
    let peers = body
        .get("peers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if peers.is_empty() {
        println!("no peers");
        return Ok(());
    }
    println!(
        "{:<54} {:<8} {:>7} {:>7} {:>8}  address",
        "peer id", "role", "height", "score", "ping ms"
    );
    for p in peers {
        let ping = p
            .get("ping_ms")
            .and_then(Value::as_f64)
            .map_or("-".into(), |ms| format!("{ms:.1}"));
        let score = p
            .get("score")
            .and_then(Value::as_f64)
            .map_or("-".into(), |s| format!("{s:.1}"));
        println!(
            "{:<54} {:<8} {:>7} {:>7} {:>8}  {}",
            text(&p, "peer_id"),
            text(&p, "role"),
            text(&p, "height"),
            score,
            ping,
            text(&p, "address")
        );
    }
    Ok(())
}

pub(super) fn mempool(api: &ApiClient) -> Result<()> {
    let m = api.get("/mempool")?;
    println!(
        "{} transactions, {} bytes",
        text(&m, "txs"),
        text(&m, "bytes")
    );
    for tx in m
        .get("transactions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        println!(
            "{}  {:>6} bytes  fee {}",
            text(tx, "txid"),
            text(tx, "size"),
            text(tx, "fee")
        );
    }
    Ok(())
}

pub(super) fn mine(api: &ApiClient, address: Option<&str>) -> Result<()> {
    let path = match address {
        Some(a) => format!("/mine?address={a}"),
        None => "/mine".into(),
    };
    let answer = api.get(&path)?;
    let block = answer.get("block").cloned().unwrap_or_default();
    let txs = block
        .get("transactions")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    println!(
        "Mined block {} at height {} with {} transaction(s) besides the coinbase",
        text(&block, "hash"),
        text(&block, "index"),
        txs.saturating_sub(1)
    );
    Ok(())
}

/// `send` through the running node: it builds, signs and relays from its wallet.
pub(super) fn send(api: &ApiClient, from: &str, to: &str, amount: &str, fee: &str) -> Result<()> {
    let answer = api.post(
        "/transactions/new",
        &json!({ "sender": from, "recipient": to, "amount": amount, "fee": fee }),
    )?;
    println!(
        "Success! txid {} accepted by {}",
        text(&answer, "txid"),
        api.url()
    );
    Ok(())
}

/// `createwallet` through the running node.
pub(super) fn create_wallet(api: &ApiClient) -> Result<()> {
    let answer = api.get("/wallet/create")?;
    println!("Your new address: {}", text(&answer, "address"));
    Ok(())
}
