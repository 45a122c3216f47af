//! Node queries, Bitcoin Core style: `/status` (getblockchaininfo + getnetworkinfo), `/blocks/
//! {hash|height}` (getblock), `/tx/{txid}` (getrawtransaction), `/address/{addr}`, `/mempool`
//! (getmempoolinfo + getrawmempool), `/peers` (getpeerinfo), `POST /tx` (sendrawtransaction)
//! and `/metrics` (Prometheus).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use gossipcoin_proto::encode::{from_bytes, to_bytes};
use gossipcoin_proto::{BlockHash, MAX_TX_BYTES, Transaction, Txid};
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult, rejection};
use super::flask::parse_address;
use super::{ApiState, explorer, views};
use crate::mempool::{FeeRate, MAX_ESTIMATE_BLOCKS};
use crate::metrics::metrics;
use crate::node::ControlError;
use crate::store::ChainRead;

/// Most UTXOs listed by `/address/{addr}` (the balance always counts all).
const MAX_UTXOS_LISTED: usize = 1000;

pub async fn status(State(s): State<ApiState>) -> ApiResult<impl IntoResponse> {
    let status = s.control.status().await?;
    Ok(Json(views::status(&status, &s.url)))
}

pub async fn peers(State(s): State<ApiState>) -> impl IntoResponse {
    let peers: Vec<Value> = s.control.peers().await.iter().map(views::peer).collect();
    Json(json!({ "peers": peers }))
}

pub async fn mempool(State(s): State<ApiState>) -> ApiResult<impl IntoResponse> {
    let entries = s.control.mempool().await?;
    let bytes: usize = entries.iter().map(|e| e.size()).sum();
    let memory: usize = entries.iter().map(|e| e.memory()).sum();
    let min = s.control.estimate_fee(1).await?.min_fee_rate;
    Ok(Json(json!({
        "txs": entries.len(),
        "bytes": bytes,
        "memory": memory,
        "min_fee_rate": min.units_per_vb(),
        "fee_rate_unit": "units/vB",
        "transactions": entries.iter().map(views::mempool_entry).collect::<Vec<_>>(),
    })))
}

/// `/fee?blocks=N` (estimatesmartfee): the fee rate to pay to be mined within N blocks
/// (1 to 1008, default 2), in units/vB, with what it came from.
pub async fn fee(
    State(s): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<impl IntoResponse> {
    let blocks = match q.get("blocks") {
        None => 2,
        Some(b) => b
            .parse::<u32>()
            .ok()
            .filter(|b| (1..=MAX_ESTIMATE_BLOCKS).contains(b))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "blocks must be a number from 1 to {MAX_ESTIMATE_BLOCKS}"
                ))
            })?,
    };
    let e = s.control.estimate_fee(blocks).await?;
    let rate = |r: Option<FeeRate>| r.map(FeeRate::units_per_vb);
    Ok(Json(json!({
        "blocks": blocks,
        "fee_rate": e.fee_rate.units_per_vb(),
        "unit": "units/vB",
        "min_fee_rate": e.min_fee_rate.units_per_vb(),
        "from_history": rate(e.from_history),
        "from_mempool": rate(e.from_pool),
    })))
}

/// `/blocks/{id}`: a height (digits) or a block hash (64 hex digits), main chain or not.
pub async fn block(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    enum Id {
        Height(u32),
        Hash(BlockHash),
    }
    let parsed = if !id.is_empty() && id.len() < 11 && id.bytes().all(|b| b.is_ascii_digit()) {
        Id::Height(
            id.parse()
                .map_err(|_| ApiError::bad_request("height too large"))?,
        )
    } else {
        Id::Hash(id.parse().map_err(|_| {
            ApiError::bad_request(format!("{id:?} is neither a height nor a block hash"))
        })?)
    };
    let arrivals = s.control.arrivals().clone();
    let found = s
        .control
        .read(move |v| {
            let hash = match parsed {
                Id::Height(h) => match v.hash_at(h)? {
                    Some(hash) => hash,
                    None => return Ok(None),
                },
                Id::Hash(hash) => hash,
            };
            let (Some(block), Some(entry)) = (v.block(&hash)?, v.index(&hash)?) else {
                return Ok(None);
            };
            let tip = v.tip()?.map_or(0, |t| t.height);
            let main = v.is_on_main_chain(&hash)?;
            let mut view = views::block(&block, entry.height);
            view["main_chain"] = json!(main);
            view["confirmations"] = json!(if main { tip - entry.height + 1 } else { 0 });
            explorer::annotate_block(v, &block, &entry, main, &arrivals, &mut view)?;
            Ok(Some(view))
        })
        .await?;
    found
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no block {id}")))
}

/// `/tx/{txid}`: from the mempool, else from the main chain (the store's tx index).
pub async fn tx(State(s): State<ApiState>, Path(id): Path<String>) -> ApiResult<impl IntoResponse> {
    let txid: Txid = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{id:?} is not a txid (64 hex digits)")))?;
    if let Some(entry) = s.control.mempool_tx(txid).await? {
        let tx = entry.tx().clone();
        let spent = s
            .control
            .read(move |v| {
                let mut coins = Vec::new();
                for i in &tx.inputs {
                    coins.push(v.coin(&i.prevout)?); // None: a coin of another mempool tx
                }
                Ok(coins)
            })
            .await?;
        let mut view = views::tx(entry.tx());
        explorer::annotate_tx(entry.tx(), &spent, &mut view);
        return Ok(Json(json!({
            "status": "mempool",
            "fee": entry.fee().to_string(),
            "fee_rate": entry.fee_rate().units_per_vb(),
            "fee_rate_unit": "units/vB",
            "tx": view,
            "hex": hex::encode(to_bytes(entry.tx())),
        })));
    }
    let found = s
        .control
        .read(move |v| {
            let Some((tx, at)) = v.transaction(&txid)? else {
                return Ok(None);
            };
            let tip = v.tip()?.map_or(0, |t| t.height);
            let mut view = views::tx(&tx);
            if let Some(block) = v.block(&at.block)? {
                let spent = explorer::spent_by(v, &block, at.index as usize)?;
                explorer::annotate_tx(&tx, &spent, &mut view);
            }
            Ok(Some(json!({
                "status": "confirmed",
                "block": at.block.to_string(),
                "height": at.height,
                "index": at.index,
                "confirmations": tip - at.height + 1,
                "fee": view["fee"].clone(),
                "fee_rate": fee_rate_of(&view["fee"], tx.encoded_len()),
                "fee_rate_unit": "units/vB",
                "tx": view,
                "hex": hex::encode(to_bytes(&tx)),
            })))
        })
        .await?;
    found.map(Json).ok_or_else(|| {
        ApiError::not_found(format!(
            "no transaction {txid} in the mempool or the main chain"
        ))
    })
}

/// `/address/{addr}`: confirmed balance and unspent outputs.
pub async fn address(
    State(s): State<ApiState>,
    Path(text): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let address = parse_address(&text, "address")?;
    let view = s
        .control
        .read(move |v| {
            let owner = address.pubkey_hash();
            let utxos = v.utxos_of(&owner)?;
            let balance = v.balance(&owner)?;
            let mut listed = Vec::new();
            for (outpoint, _) in utxos.iter().take(MAX_UTXOS_LISTED) {
                if let Some(coin) = v.coin(outpoint)? {
                    listed.push(views::utxo(outpoint, &coin));
                }
            }
            Ok(json!({
                "address": address.to_string(),
                "balance": balance.to_string(),
                "utxo_count": utxos.len(),
                "utxos": listed,
                "truncated": utxos.len() > MAX_UTXOS_LISTED,
            }))
        })
        .await?;
    Ok(Json(view))
}

/// `POST /tx`: a raw signed transaction as hex (the body, or `{"hex": "..."}`); 201 with its
/// txid once the mempool accepted it and it was relayed.
pub async fn submit_raw(
    State(s): State<ApiState>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<impl IntoResponse> {
    let body = body.map_err(|r| rejection(r.status(), r.body_text()))?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("body is not text: send the transaction as hex"))?
        .trim();
    let hex_text = if text.starts_with('{') {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
        v.get("hex")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::bad_request("missing string field \"hex\""))?
            .to_owned()
    } else {
        text.to_owned()
    };
    let bytes =
        hex::decode(hex_text.trim()).map_err(|e| ApiError::bad_request(format!("not hex: {e}")))?;
    let tx: Transaction = from_bytes(&bytes, MAX_TX_BYTES)
        .map_err(|e| ApiError::bad_request(format!("not a transaction: {e}")))?;
    let id = tx.compute_txid();
    let result = s.control.submit_tx(tx, "api").await;
    if let Err(ControlError::Conflict(_)) = &result {
        // Its inputs are spent: say so plainly when it is this very transaction that spent
        // them (a payment submitted again after it was mined).
        let confirmed = s.control.read(move |v| Ok(v.transaction(&id)?)).await?;
        if let Some((_, at)) = confirmed {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "transaction {id} is already confirmed, in block {} at height {}",
                    at.block, at.height
                ),
            ));
        }
    }
    let txid = result.map_err(|e| match e {
        // a transaction that breaks a consensus rule is the caller's bad input
        ControlError::BadRequest(m) => ApiError::bad_request(m),
        other => other.into(),
    })?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "txid": txid.to_string() })),
    ))
}

/// `/metrics`: Prometheus text format.
pub async fn prometheus(State(s): State<ApiState>) -> impl IntoResponse {
    let text = metrics().render(s.control.gauges().await);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

/// The fee rate (units/vB) of a fee shown in coins, for `size` bytes; null when unknown.
fn fee_rate_of(fee: &Value, size: usize) -> Value {
    fee.as_str()
        .and_then(|f| gossipcoin_proto::Amount::parse_coins(f).ok())
        .map_or(Value::Null, |f| json!(FeeRate::of(f, size).units_per_vb()))
}
