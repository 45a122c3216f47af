//! The seed Flask node's endpoints (`001_*.txt`, `003_*.txt`), same paths and JSON shapes where
//! they make sense: `POST /transactions/new`, `GET /mine`, `GET /chain`, `POST /nodes/register`,
//! `GET /nodes/resolve`, `GET /wallet/create`, `GET /wallet/balance/{address}`.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use gossipcoin_proto::{Address, Amount};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{ApiError, ApiResult, rejection};
use super::{ApiState, views};
use crate::node::{ControlError, PaymentRequest};
use crate::store::ChainRead;

/// Blocks per `/chain` page unless `limit` says otherwise, and the most a page may hold.
const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 500;

/// A JSON body, or the extractor's refusal as a JSON error.
pub fn body<T>(body: Result<Json<T>, JsonRejection>) -> ApiResult<T> {
    body.map(|Json(v)| v)
        .map_err(|r| rejection(r.status(), r.body_text()))
}

/// Query parameters, or the extractor's refusal (`?from=-1`) as a JSON error.
fn query<T>(q: Result<Query<T>, QueryRejection>) -> ApiResult<T> {
    q.map(|Query(v)| v)
        .map_err(|r| rejection(r.status(), r.body_text()))
}

pub fn parse_address(text: &str, field: &str) -> ApiResult<Address> {
    text.parse::<Address>()
        .map_err(|e| ApiError::bad_request(format!("{field}: {e}")))
}

/// An amount in coins, given as a JSON number (`50`, `0.5`) or string (`"0.5"`).
fn parse_amount(v: Option<&Value>, field: &str) -> ApiResult<Option<Amount>> {
    let text = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "{field} must be a number of coins, not {other}"
            )));
        }
    };
    Amount::parse_coins(&text)
        .map(Some)
        .map_err(|e| ApiError::bad_request(format!("{field}: {e}")))
}

fn string_field<'v>(body: &'v Value, field: &str) -> ApiResult<&'v str> {
    body.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request(format!("missing string field {field:?}")))
}

/// `POST /transactions/new {"sender", "recipient", "amount"[, "fee"]}`: pays from an address of
/// this node's wallet; 201 with the txid.
pub async fn new_transaction(
    State(s): State<ApiState>,
    json: Result<Json<Value>, JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let req = body(json)?;
    if !req.is_object() {
        return Err(ApiError::bad_request("expected a JSON object"));
    }
    let from = parse_address(string_field(&req, "sender")?, "sender")?;
    let to = parse_address(string_field(&req, "recipient")?, "recipient")?;
    let amount = parse_amount(req.get("amount"), "amount")?
        .ok_or_else(|| ApiError::bad_request("missing field \"amount\""))?;
    // Without a fee: the mempool's estimate for the payment's size.
    let fee = parse_amount(req.get("fee"), "fee")?;
    let (txid, fee) = s
        .control
        .pay(PaymentRequest {
            from,
            to,
            amount,
            fee,
        })
        .await?;
    let next = s.control.height() + 1;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "message": format!("Transaction will be added to Block {next}"),
            "txid": txid.to_string(),
            "fee": fee.to_string(),
        })),
    ))
}

#[derive(Deserialize)]
pub struct MineQuery {
    address: Option<String>,
}

/// `GET /mine[?address=A]`: mines a block of the mempool now and relays it.
pub async fn mine(
    State(s): State<ApiState>,
    q: Result<Query<MineQuery>, QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let q = query(q)?;
    let to = q
        .address
        .as_deref()
        .map(|a| parse_address(a, "address"))
        .transpose()?;
    let block = s.control.mine(to).await?;
    let height = block.coinbase_height().unwrap_or(0);
    Ok(Json(json!({
        "message": "New block mined",
        "block": views::block(&block, height),
    })))
}

#[derive(Deserialize)]
pub struct ChainQuery {
    from: Option<u32>,
    limit: Option<u32>,
}

/// `GET /chain[?from=H&limit=N]`: `{"chain": [...], "length": N}`, a page of the main chain.
pub async fn chain(
    State(s): State<ApiState>,
    q: Result<Query<ChainQuery>, QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    let q = query(q)?;
    let from = q.from.unwrap_or(0);
    let limit = q.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to {MAX_PAGE}"
        )));
    }
    let (blocks, length) = s
        .control
        .read(move |view| {
            let length = view.tip()?.map_or(0, |t| t.height + 1);
            let mut blocks = Vec::new();
            for height in from..length.min(from.saturating_add(limit)) {
                let Some(hash) = view.hash_at(height)? else {
                    break;
                };
                if let Some(block) = view.block(&hash)? {
                    blocks.push(views::block(&block, height));
                }
            }
            Ok((blocks, length))
        })
        .await?;
    Ok(Json(
        json!({ "chain": blocks, "length": length, "from": from }),
    ))
}

/// `POST /nodes/register {"nodes": [...]}`: multiaddrs, or other nodes' API URLs.
pub async fn register(
    State(s): State<ApiState>,
    json: Result<Json<Value>, JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let req = body(json)?;
    let nodes: Vec<&str> = req
        .get("nodes")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if nodes.is_empty() {
        return Err(ApiError::bad_request(
            "Error: Please supply a valid list of nodes ({\"nodes\": [\"http://127.0.0.1:4001\"]})",
        ));
    }
    let mut added = Vec::new();
    let mut failed = Vec::new();
    for node in nodes {
        let registered = match p2p_addr_of(node).await {
            Ok(addr) => s.control.register(node, &addr).await,
            Err(e) => Err(e),
        };
        match registered {
            Ok(r) => added.push(json!({ "node": r.node, "dialed": r.dialed })),
            Err(e) => failed.push(format!("{node}: {e}")),
        }
    }
    if !failed.is_empty() {
        return Err(ApiError::bad_request(failed.join("; ")));
    }
    let total: Vec<String> = s
        .control
        .peers()
        .await
        .into_iter()
        .map(|p| p.addr)
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "message": "New nodes have been added",
            "added": added,
            "total_nodes": total,
        })),
    ))
}

/// `GET /nodes/resolve`: syncs with every peer now; says whether our chain changed.
pub async fn resolve(State(s): State<ApiState>) -> ApiResult<impl IntoResponse> {
    let r = s.control.resolve().await?;
    Ok(Json(json!({
        "message": if r.changed { "Our chain was replaced" } else { "Our chain is authoritative" },
        "replaced": r.changed,
        "old_tip": r.old_tip.to_string(),
        "tip": r.tip.to_string(),
        "height": r.height,
        "peers_asked": r.peers_asked,
    })))
}

/// `GET /wallet/create`: a new key in this node's wallet. Only the address is returned: private
/// keys never leave the node.
pub async fn wallet_create(State(s): State<ApiState>) -> ApiResult<impl IntoResponse> {
    let address = s.control.create_address().await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "address": address.to_string(),
            "message": "the private key stays in this node's wallet.dat",
        })),
    ))
}

/// `GET /wallet/balance/{address}`: the confirmed balance of any address.
pub async fn wallet_balance(
    State(s): State<ApiState>,
    Path(address): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let address = parse_address(&address, "address")?;
    let balance = s
        .control
        .read(move |v| Ok(v.balance(&address.pubkey_hash())?))
        .await?;
    Ok(Json(json!({
        "address": address.to_string(),
        "balance": balance.to_string(),
    })))
}

/// The p2p multiaddr of what an operator named: a multiaddr as it is, or another node's API
/// URL, whose `/status` lists its p2p addresses.
async fn p2p_addr_of(node: &str) -> Result<String, ControlError> {
    if node.starts_with("http://") || node.starts_with("https://") {
        let url = node.trim_end_matches('/').to_owned();
        tokio::task::spawn_blocking(move || listen_addr_of(&url))
            .await
            .map_err(|e| ControlError::Internal(e.to_string()))?
    } else if node.starts_with('/') {
        Ok(node.to_owned())
    } else {
        Err(ControlError::BadRequest(format!(
            "{node:?} is neither a multiaddr (/ip4/127.0.0.1/tcp/3001/p2p/...) nor a node \
             API URL (http://127.0.0.1:4001)"
        )))
    }
}

/// Asks another node's API for its first p2p listen address.
fn listen_addr_of(url: &str) -> Result<String, ControlError> {
    let api = super::client::ApiClient::new(url, None).timeout(std::time::Duration::from_secs(5));
    let status = api
        .get("/status")
        .map_err(|e| ControlError::BadRequest(format!("cannot ask {url}: {e:#}")))?;
    status["listen"][0]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| ControlError::BadRequest(format!("{url}/status did not list a p2p address")))
}
