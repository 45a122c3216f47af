//! What the web explorer needs beyond the Bitcoin-style queries: `/blocks/recent` (the latest
//! main-chain blocks with their fees, who the reward paid and when each arrived here), and the
//! spent coins, fees and proof-of-work check that `/blocks/{id}` and `/tx/{txid}` add to their
//! answers. Bounded: at most [`MAX_RECENT`] blocks per request.

use axum::Json;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use gossipcoin_proto::{Address, Amount, Block, Coin, Target, Transaction};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiState;
use super::error::{ApiError, ApiResult};
use crate::node::{Arrivals, ControlError};
use crate::store::{ChainRead, IndexEntry, ReadView};

/// Most blocks `/blocks/recent` answers with.
pub const MAX_RECENT: u32 = 100;
/// Blocks `/blocks/recent` answers with when not told.
const DEFAULT_RECENT: u32 = 10;

#[derive(Deserialize)]
pub struct RecentQuery {
    count: Option<u32>,
}

/// `/blocks/recent?count=N`: the tip and up to N of its ancestors, newest first.
pub async fn recent(
    State(s): State<ApiState>,
    Query(q): Query<RecentQuery>,
) -> ApiResult<impl IntoResponse> {
    let count = q.count.unwrap_or(DEFAULT_RECENT);
    if count == 0 || count > MAX_RECENT {
        return Err(ApiError::bad_request(format!(
            "count must be 1 to {MAX_RECENT}"
        )));
    }
    let arrivals = s.control.arrivals().clone();
    let blocks = s
        .control
        .read(move |v| {
            let Some(tip) = v.tip()? else {
                return Ok(vec![]);
            };
            let lowest = tip.height.saturating_sub(count - 1);
            let mut out = Vec::new();
            for height in (lowest..=tip.height).rev() {
                let Some(hash) = v.hash_at(height)? else {
                    break;
                };
                let (Some(block), Some(entry)) = (v.block(&hash)?, v.index(&hash)?) else {
                    break;
                };
                out.push(summary(v, &block, &entry, &arrivals)?);
            }
            Ok(out)
        })
        .await?;
    Ok(Json(json!({ "blocks": blocks })))
}

/// One line of the latest blocks.
fn summary(
    v: &ReadView,
    block: &Block,
    entry: &IndexEntry,
    arrivals: &Arrivals,
) -> Result<Value, ControlError> {
    let hash = entry.hash();
    let fees = block_fees(v, block, &hash)?;
    let coinbase = block.txs.first();
    Ok(json!({
        "height": entry.height,
        "hash": hash.to_string(),
        "time": entry.header.time,
        "txs": block.txs.len(),
        "size": v.block_size(&hash)?,
        "fees": fees.map(|f| f.to_string()),
        "reward": coinbase.and_then(outputs_total).map(|a| a.to_string()),
        "reward_to": coinbase.and_then(|c| c.outputs.first()).map(|o| Address(o.owner).to_string()),
        "arrived_ms": arrivals.get(&hash),
    }))
}

/// The fees of a main-chain block: what its inputs spent (from the undo data) minus what its
/// non-coinbase outputs create. `None` off the main chain (no undo data).
fn block_fees(
    v: &ReadView,
    block: &Block,
    hash: &gossipcoin_proto::BlockHash,
) -> Result<Option<Amount>, ControlError> {
    if block.txs.len() <= 1 {
        return Ok(Some(Amount::ZERO));
    }
    let Some(spent) = v.undo(hash)? else {
        return Ok(None);
    };
    let ins = Amount::checked_sum(spent.iter().map(|c| c.output.value));
    let outs = Amount::checked_sum(block.txs.iter().skip(1).filter_map(outputs_total));
    Ok(ins.zip(outs).and_then(|(i, o)| i.checked_sub(o)))
}

fn outputs_total(tx: &Transaction) -> Option<Amount> {
    Amount::checked_sum(tx.outputs.iter().map(|o| o.value))
}

/// Adds to a `/blocks/{id}` answer: the proof-of-work check, the merkle root check, chain work,
/// arrival time, and for each transaction the coins it spent and its fee (main chain only).
pub fn annotate_block(
    v: &ReadView,
    block: &Block,
    entry: &IndexEntry,
    main: bool,
    arrivals: &Arrivals,
    view: &mut Value,
) -> Result<(), ControlError> {
    let hash = entry.hash();
    let target = Target::from_compact(block.header.bits).ok();
    view["pow"] = json!({
        "target": target.map(|t| hex::encode(t.0.to_be_bytes())),
        "hash_meets_target": target.is_some_and(|t| t.is_met_by(&hash)),
    });
    view["merkle_root_ok"] = json!(block.compute_merkle_root() == block.header.merkle_root);
    view["chain_work"] = json!(entry.chain_work.to_string());
    view["arrived_ms"] = json!(arrivals.get(&hash));
    view["fees"] = json!(block_fees(v, block, &hash)?.map(|f| f.to_string()));
    if let Some(coinbase) = block.txs.first() {
        annotate_tx(coinbase, &[], &mut view["transactions"][0]);
    }
    let spent = if main { v.undo(&hash)? } else { None };
    if let Some(spent) = spent {
        let mut at = 0;
        for (i, tx) in block.txs.iter().enumerate().skip(1) {
            let n = tx.inputs.len();
            if let Some(coins) = spent.get(at..at + n) {
                let coins: Vec<Option<Coin>> = coins.iter().cloned().map(Some).collect();
                annotate_tx(tx, &coins, &mut view["transactions"][i]);
            }
            at += n;
        }
    }
    Ok(())
}

/// Adds to a transaction's view the coins its inputs spent (address and amount, where known)
/// and its fee (when every spent coin is known).
pub fn annotate_tx(tx: &Transaction, coins: &[Option<Coin>], view: &mut Value) {
    if tx.is_coinbase() {
        view["fee"] = json!("0");
        return;
    }
    for (j, coin) in coins.iter().enumerate() {
        if let Some(c) = coin {
            view["inputs"][j]["amount"] = json!(c.output.value.to_string());
            view["inputs"][j]["address"] = json!(Address(c.output.owner).to_string());
        }
    }
    let known: Option<Vec<Amount>> = coins
        .iter()
        .map(|c| c.as_ref().map(|c| c.output.value))
        .collect();
    let fee = known
        .and_then(Amount::checked_sum)
        .zip(outputs_total(tx))
        .and_then(|(i, o)| i.checked_sub(o));
    view["fee"] = json!(fee.map(|f| f.to_string()));
}

/// The coins a main-chain transaction at `index` of `block` spent, from the block's undo data.
pub fn spent_by(
    v: &ReadView,
    block: &Block,
    index: usize,
) -> Result<Vec<Option<Coin>>, ControlError> {
    let hash = block.block_hash();
    let Some(tx) = block.txs.get(index) else {
        return Ok(vec![]);
    };
    let Some(spent) = v.undo(&hash)? else {
        return Ok(vec![None; tx.inputs.len()]);
    };
    let at: usize = block
        .txs
        .iter()
        .take(index)
        .skip(1)
        .map(|t| t.inputs.len())
        .sum();
    Ok((0..tx.inputs.len())
        .map(|j| spent.get(at + j).cloned())
        .collect())
}
