//! `GET /wallet/transactions[?count=N&skip=M]`: this node's wallet's payments, newest first
//! (Bitcoin Core's `listtransactions`), each with its state: pending, confirmed (block, height,
//! confirmations) or conflicted (by which confirmed transaction). Needs the cookie, like the
//! other wallet endpoints.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult, rejection};
use super::{ApiState, views};

/// Payments per answer unless `count` says otherwise, and the most one answer may hold.
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
    let tip = s.control.height();
    let payments = s.control.payments();
    let total = payments.len();
    let listed: Vec<Value> = payments
        .iter()
        .skip(q.skip.unwrap_or(0))
        .take(count)
        .map(|(txid, p)| views::payment(txid, p, tip))
        .collect();
    Ok(Json(json!({
        "transactions": listed,
        "total": total,
        "height": tip,
    })))
}
