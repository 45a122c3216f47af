//! The wallet's endpoints, all behind the cookie:
//! - `GET /wallet/transactions[?count=N&skip=M]`: the wallet's history, newest first (Bitcoin
//!   Core's `listtransactions`): every transaction paying to or spending from the wallet, from
//!   the chain and the mempool, with its category (`send`, `receive`, `generate`, `immature`,
//!   `orphan`), amount, fee, state (pending, confirmed with block, height and confirmations,
//!   conflicted by which confirmed transaction, orphan) and time;
//! - `GET /wallet/balance`: confirmed, unconfirmed, immature and outgoing coins, and the total;
//! - `GET /wallet/addresses`: each address with its balances;
//! - `GET /wallet/address/{address}`: one wallet address's confirmed received and sent totals
//!   and its history in height order (oldest first);
//! - `POST /wallet/rescan`: the history read again from the whole chain (`rescanwallet`).

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use gossipcoin_proto::Amount;
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiState;
use super::error::{ApiError, ApiResult, rejection};
use crate::wallet::ledger::{Balances, Listed, Place};

/// Lines per answer unless `count` says otherwise, and the most one answer may hold.
const DEFAULT_COUNT: usize = 100;
const MAX_COUNT: usize = 1000;

#[derive(Deserialize)]
pub struct ListQuery {
    count: Option<usize>,
    skip: Option<usize>,
}

pub async fn transactions(
    State(s): State<ApiState>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let Query(q) = q.map_err(|r| rejection(r.status(), r.body_text()))?;
    let count = q.count.unwrap_or(DEFAULT_COUNT);
    if count == 0 || count > MAX_COUNT {
        return Err(ApiError::bad_request(format!(
            "count must be 1 to {MAX_COUNT}"
        )));
    }
    let (lines, total, height) = s.control.wallet_history(q.skip.unwrap_or(0), count);
    // When this node's own payments were submitted.
    let submitted: HashMap<_, _> = s
        .control
        .payments()
        .into_iter()
        .map(|(t, p)| (t, p.submitted_at))
        .collect();
    let listed: Vec<Value> = lines
        .iter()
        .map(|l| {
            let mut v = line(l);
            if let Some(at) = submitted.get(&l.txid) {
                v["submitted_at"] = json!(at);
            }
            v
        })
        .collect();
    Ok(Json(json!({
        "transactions": listed,
        "total": total,
        "height": height,
    })))
}

/// One history line as JSON.
pub fn line(l: &Listed) -> Value {
    let state = match l.place {
        Place::Confirmed { .. } => "confirmed",
        Place::Pending { .. } => "pending",
        Place::Conflicted { .. } => "conflicted",
        Place::Orphan => "orphan",
    };
    let mut v = json!({
        "txid": l.txid.to_string(),
        "category": l.category.as_str(),
        "amount": l.amount.to_string(),
        "fee": l.fee.map(|f| f.to_string()),
        "address": l.address.map(|a| a.to_string()),
        "from": l.from.map(|a| a.to_string()),
        "state": state,
        "confirmations": l.confirmations,
        "time": l.time,
    });
    if l.from.is_some() {
        v["to"] = v["address"].clone();
    }
    match l.place {
        Place::Confirmed { block, height, .. } => {
            v["block"] = json!(block.to_string());
            v["height"] = json!(height);
        }
        Place::Pending { in_mempool } => v["in_mempool"] = json!(in_mempool),
        Place::Conflicted { by } => v["conflicted_by"] = json!(by.map(|t| t.to_string())),
        Place::Orphan => {}
    }
    v
}

/// Balances as JSON: each kind, and the total (confirmed + unconfirmed + immature − outgoing).
pub fn balances(b: &Balances) -> Value {
    let total = b
        .confirmed
        .checked_add(b.unconfirmed)
        .and_then(|t| t.checked_add(b.immature))
        .and_then(|t| t.checked_sub(b.outgoing))
        .unwrap_or(Amount::ZERO);
    json!({
        "confirmed": b.confirmed.to_string(),
        "unconfirmed": b.unconfirmed.to_string(),
        "immature": b.immature.to_string(),
        "outgoing": b.outgoing.to_string(),
        "total": total.to_string(),
    })
}

/// `GET /wallet/balance`.
pub async fn balance(State(s): State<ApiState>) -> Json<Value> {
    let mut v = balances(&s.control.wallet_balances(None));
    v["height"] = json!(s.control.wallet_history(0, 0).2);
    Json(v)
}

/// `GET /wallet/addresses`.
pub async fn addresses(State(s): State<ApiState>) -> Json<Value> {
    let listed: Vec<Value> = s
        .control
        .wallet_addresses()
        .iter()
        .map(|(a, b)| {
            let mut v = balances(b);
            v["address"] = json!(a.to_string());
            v
        })
        .collect();
    Json(json!({ "addresses": listed }))
}

/// `GET /wallet/address/{address}`.
pub async fn address(
    State(s): State<ApiState>,
    Path(text): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let address = super::flask::parse_address(&text, "address")?;
    let (received, sent, lines) = s
        .control
        .wallet_address_history(&address)
        .ok_or_else(|| ApiError::not_found(format!("{address} is not in this node's wallet")))?;
    let mut v = balances(&s.control.wallet_balances(Some(&address)));
    v["address"] = json!(address.to_string());
    v["received"] = json!(received.to_string());
    v["sent"] = json!(sent.to_string());
    v["history"] = json!(lines.iter().map(line).collect::<Vec<_>>());
    Ok(Json(v))
}

/// `POST /wallet/rescan`.
pub async fn rescan(State(s): State<ApiState>) -> ApiResult<impl IntoResponse> {
    let r = s.control.rescan_wallet().await?;
    Ok(Json(json!({
        "blocks": r.blocks,
        "transactions": r.entries,
        "secs": r.secs,
    })))
}
