//! Commands that talk to a running node through its HTTP API: `status`, `peers`, `mempool`,
//! `mine`, `gettransaction`, `disconnectnode`, `setban`, `listbanned`, and the daemon paths of
//! `send`, `send --mine`, `generate` and `createwallet` (a running node owns its data
//! directory, so changes go through it instead of being written under it, and the blocks it
//! mines reach its peers).

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
    println!(
        "difficulty  {} (next bits {}, mean interval {} s)",
        text(&s, "difficulty"),
        text(&s, "bits"),
        text(&s, "mean_interval_secs")
    );
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
        "{:<54} {:<8} {:<19} {:>7} {:>7} {:>8}  address",
        "peer id", "role", "connection", "height", "score", "ping ms"
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
            "{:<54} {:<8} {:<19} {:>7} {:>7} {:>8}  {}",
            text(&p, "peer_id"),
            text(&p, "role"),
            text(&p, "connection"),
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
            "{}  {:>6} bytes  fee {}  {} units/vB",
            text(tx, "txid"),
            text(tx, "size"),
            text(tx, "fee"),
            text(tx, "fee_rate")
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
pub(super) fn send(
    api: &ApiClient,
    from: &str,
    to: &str,
    amount: &str,
    fee: Option<&str>,
) -> Result<()> {
    let answer = api.post("/transactions/new", &payment(from, to, amount, fee))?;
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

/// `generate` through the running node: `GET /mine?address=A` once per block; the node mines
/// each on its tip and relays it.
pub(super) fn generate(api: &ApiClient, blocks: u32, address: &str) -> Result<()> {
    let mut last = None;
    for _ in 0..blocks {
        let answer = api.get(&format!("/mine?address={address}"))?;
        last = answer.get("block").cloned();
    }
    match last {
        Some(block) => println!(
            "Done! Tip {} at height {} (mined by the node running at {})",
            text(&block, "hash"),
            text(&block, "index"),
            api.url()
        ),
        None => println!("Done! No block asked for."),
    }
    Ok(())
}

/// `send --mine` through the running node: it pays from its wallet, then mines a block of its
/// mempool (which holds the payment) and relays both.
pub(super) fn send_and_mine(
    api: &ApiClient,
    [from, to, amount]: [&str; 3],
    fee: Option<&str>,
    miner: Option<&str>,
) -> Result<()> {
    let paid = api.post("/transactions/new", &payment(from, to, amount, fee))?;
    let txid = text(&paid, "txid");
    let path = format!("/mine?address={}", miner.unwrap_or(from));
    let block = api.get(&path)?.get("block").cloned().unwrap_or_default();
    let included = block
        .get("transactions")
        .and_then(Value::as_array)
        .is_some_and(|txs| txs.iter().any(|t| text(t, "txid") == txid));
    if !included {
        bail!(
            "txid {txid} was accepted by {} but block {} does not hold it; it waits in the \
             mempool for the next block",
            api.url(),
            text(&block, "hash")
        );
    }
    println!(
        "Success! txid {txid} mined in block {} at height {} (by the node running at {})",
        text(&block, "hash"),
        text(&block, "index"),
        api.url()
    );
    Ok(())
}

/// `gettransaction TXID` through the running node (`GET /tx/{txid}`): where it is (mempool, or
/// block, height and confirmations), its inputs and outputs, and its fee.
pub(super) fn get_transaction(api: &ApiClient, txid: &str) -> Result<()> {
    let t = api.get(&format!("/tx/{}", txid.trim()))?;
    let tx = t.get("tx").cloned().unwrap_or_default();
    println!("txid           {}", text(&tx, "txid"));
    match t.get("status").and_then(Value::as_str) {
        Some("mempool") => println!("status         in the mempool (unconfirmed)"),
        _ => {
            println!("status         confirmed");
            println!("block          {}", text(&t, "block"));
            println!("height         {}", text(&t, "height"));
            println!("confirmations  {}", text(&t, "confirmations"));
        }
    }
    println!("size           {} bytes", text(&tx, "size"));
    println!("fee            {}", text(&t, "fee"));
    if let Some(rate) = t.get("fee_rate").and_then(Value::as_f64) {
        println!("fee rate       {rate:.3} units/vB");
    }
    let list = |key: &str| {
        tx.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    if tx.get("coinbase").and_then(Value::as_bool) == Some(true) {
        println!("input          coinbase (new coins)");
    }
    for i in list("inputs") {
        println!(
            "input          {}:{}  {} from {}",
            text(&i, "txid"),
            text(&i, "vout"),
            text(&i, "amount"),
            text(&i, "sender")
        );
    }
    for (n, o) in list("outputs").iter().enumerate() {
        println!(
            "output {n:<7} {} to {}",
            text(o, "amount"),
            text(o, "recipient")
        );
    }
    Ok(())
}

/// `disconnectnode PEER` through the running node (`POST /peers/disconnect`).
pub(super) fn disconnect_node(api: &ApiClient, peer: &str) -> Result<()> {
    api.post("/peers/disconnect", &json!({ "peer": peer }))?;
    println!("Disconnected {peer}");
    Ok(())
}

/// `setban PEER add|remove` through the running node (`POST /peers/ban`, `/peers/unban`).
pub(super) fn set_ban(api: &ApiClient, peer: &str, add: bool) -> Result<()> {
    if add {
        api.post(
            "/peers/ban",
            &json!({ "peer": peer, "reason": "setban from the command line" }),
        )?;
        println!("Banned {peer}");
    } else {
        api.post("/peers/unban", &json!({ "peer": peer }))?;
        println!("Unbanned {peer}");
    }
    Ok(())
}

/// `listbanned` through the running node (`GET /peers/banned`).
pub(super) fn list_banned(api: &ApiClient) -> Result<()> {
    let body = api.get("/peers/banned")?;
    let bans = body
        .get("banned")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if bans.is_empty() {
        println!("no bans");
    }
    for b in bans {
        println!("{}  {} s left", text(&b, "peer"), text(&b, "secs_left"));
    }
    Ok(())
}

/// `listtransactions` through the running node: `GET /wallet/transactions?count=N`, one line
/// per payment, newest first.
pub(super) fn list_transactions(api: &ApiClient, count: usize) -> Result<()> {
    if count == 0 || count > 1000 {
        bail!("--count must be 1 to 1000");
    }
    let answer = api.get(&format!("/wallet/transactions?count={count}"))?;
    let list = answer
        .get("transactions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if list.is_empty() {
        println!("No transactions in this node's wallet.");
        return Ok(());
    }
    for p in &list {
        let state = match p.get("state").and_then(Value::as_str) {
            Some("confirmed") => format!(
                "confirmed at height {} ({} confirmations)",
                text(p, "height"),
                text(p, "confirmations")
            ),
            Some("conflicted") => format!("conflicted by {}", text(p, "conflicted_by")),
            Some(other) => other.to_owned(),
            None => "-".into(),
        };
        let category = text(p, "category");
        let what = match category.as_str() {
            "send" => format!(
                "{} to {} (fee {})",
                text(p, "amount"),
                text(p, "address"),
                text(p, "fee")
            ),
            _ => format!("{} to {}", text(p, "amount"), text(p, "address")),
        };
        println!("{}  {category:<8}  {what}  {state}", text(p, "txid"));
    }
    Ok(())
}

/// `getbalance` without an address: the running node's wallet.
pub(super) fn wallet_balance(api: &ApiClient) -> Result<()> {
    let b = api.get("/wallet/balance")?;
    println!(
        "Wallet balance: {} confirmed, {} unconfirmed, {} immature ({} being spent); total {}",
        text(&b, "confirmed"),
        text(&b, "unconfirmed"),
        text(&b, "immature"),
        text(&b, "outgoing"),
        text(&b, "total")
    );
    Ok(())
}

/// `rescanwallet`: the running node reads its whole chain again for its wallet.
pub(super) fn rescan_wallet(api: &ApiClient) -> Result<()> {
    let r = api.post("/wallet/rescan", &serde_json::json!({}))?;
    println!(
        "Rescanned {} blocks in {} s: {} wallet transactions.",
        text(&r, "blocks"),
        text(&r, "secs"),
        text(&r, "transactions")
    );
    Ok(())
}

/// The body of `POST /transactions/new`; without a fee the node estimates it.
fn payment(from: &str, to: &str, amount: &str, fee: Option<&str>) -> serde_json::Value {
    let mut body = json!({ "sender": from, "recipient": to, "amount": amount });
    if let Some(fee) = fee {
        body["fee"] = json!(fee);
    }
    body
}

/// `estimatefee BLOCKS` through the running node: `GET /fee?blocks=N`.
pub(super) fn estimate_fee(api: &ApiClient, blocks: u32) -> Result<()> {
    let answer = api.get(&format!("/fee?blocks={blocks}"))?;
    let rate = |key: &str| answer.get(key).and_then(Value::as_f64).unwrap_or(0.0);
    println!(
        "Fee rate to be mined within {blocks} block(s): {:.3} units/vB (the mempool's minimum: {:.3} units/vB)",
        rate("fee_rate"),
        rate("min_fee_rate")
    );
    Ok(())
}
