//! The JSON shapes of the API. Blocks keep the seed Flask node's field names where they mean
//! the same thing (`index` = height, `previous_hash`, `proof` = nonce, `timestamp`,
//! `transactions`); amounts are decimal coin strings ("10", "0.5"), exact and as the CLI
//! prints them; hashes are hex.

use gossipcoin_proto::encode::to_bytes;
use gossipcoin_proto::{Address, Block, Coin, OutPoint, PubkeyHash, Transaction, TxIn};
use serde_json::{Value, json};

use crate::mempool::MempoolEntry;
use crate::net::PeerInfo;
use crate::node::NodeStatus;

pub fn block(block: &Block, height: u32) -> Value {
    let h = &block.header;
    json!({
        "hash": block.block_hash().to_string(),
        "index": height,
        "previous_hash": h.prev.to_string(),
        "merkle_root": h.merkle_root.to_string(),
        "timestamp": h.time,
        "bits": format!("{:08x}", h.bits),
        "proof": h.nonce,
        "size": to_bytes(block).len(),
        "transactions": block.txs.iter().map(tx).collect::<Vec<_>>(),
    })
}

pub fn tx(tx: &Transaction) -> Value {
    let coinbase = tx.is_coinbase();
    let sender = tx
        .inputs
        .first()
        .filter(|_| !coinbase)
        .map(|i| input_owner(i).to_string());
    json!({
        "txid": tx.compute_txid().to_string(),
        "size": to_bytes(tx).len(),
        "coinbase": coinbase,
        "sender": sender,
        "inputs": if coinbase { vec![] } else { tx.inputs.iter().map(input).collect::<Vec<_>>() },
        "outputs": tx.outputs.iter().map(|o| json!({
            "recipient": Address(o.owner).to_string(),
            "amount": o.value.to_string(),
        })).collect::<Vec<_>>(),
    })
}

fn input_owner(i: &TxIn) -> Address {
    Address(PubkeyHash::of_pubkey(&i.pubkey))
}

fn input(i: &TxIn) -> Value {
    json!({
        "txid": i.prevout.txid.to_string(),
        "vout": i.prevout.vout,
        "sender": input_owner(i).to_string(),
    })
}

pub fn utxo(outpoint: &OutPoint, coin: &Coin) -> Value {
    json!({
        "txid": outpoint.txid.to_string(),
        "vout": outpoint.vout,
        "amount": coin.output.value.to_string(),
        "height": coin.height,
        "coinbase": coin.is_coinbase,
    })
}

pub fn mempool_entry(e: &MempoolEntry) -> Value {
    json!({
        "txid": e.txid().to_string(),
        "size": e.size(),
        "fee": e.fee().to_string(),
        "fee_rate": e.fee_rate().units_per_vb(),
        "fee_rate_unit": "units/vB",
        "ancestor_fee_rate": e.ancestors().fee_rate().units_per_vb(),
        "time": e.time(),
    })
}

pub fn status(s: &NodeStatus, api: &str) -> Value {
    json!({
        "role": s.role.to_string(),
        "peer_id": s.peer_id,
        "listen": s.listen,
        "api": api,
        "genesis": s.genesis.to_string(),
        "height": s.height,
        "tip": s.tip.to_string(),
        "chain_work": s.chain_work.to_string(),
        "bits": format!("{:#010x}", s.difficulty.next_bits),
        "difficulty": (s.difficulty.difficulty * 1000.0).round() / 1000.0,
        "mean_interval_secs": s.difficulty.mean_interval_secs.map(|m| (m * 100.0).round() / 100.0),
        "sync": s.sync.as_str(),
        "best_peer_height": s.best_peer_height,
        "headers_height": s.headers_height,
        "progress": (s.progress * 1000.0).round() / 1000.0,
        "blocks_per_sec": s.blocks_per_sec.round(),
        "peers": s.peers,
        "mempool": { "txs": s.mempool_txs, "bytes": s.mempool_bytes },
        "uptime_secs": s.uptime.as_secs(),
    })
}

pub fn peer(p: &PeerInfo) -> Value {
    json!({
        "peer_id": p.peer.to_string(),
        "address": p.addr,
        "direction": if p.outbound { "outbound" } else { "inbound" },
        "connection": p.kind.as_str(),
        "role": p.status.map(|s| s.role.to_string()),
        "height": p.status.map(|s| s.height),
        "tip": p.status.map(|s| s.tip.to_string()),
        "score": p.score,
        "gossip_score": p.gossip_score,
        "subscribed": p.subscribed,
        "ping_ms": p.ping_ms,
    })
}
