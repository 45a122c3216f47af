//! Breaking the network on purpose, Bitcoin Core's `disconnectnode`, `setban` and `listbanned`:
//! `POST /peers/disconnect`, `POST /peers/ban`, `POST /peers/unban` (cookie-protected like every
//! state change) and `GET /peers/banned`. `testnet partition` and `heal` are built on these.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::ApiState;
use super::error::ApiResult;
use super::flask::body;

/// `{"peer": "<peer id>", "reason": "..."}` (the reason is optional, for the logs).
#[derive(Deserialize)]
pub struct PeerRequest {
    peer: String,
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /peers/disconnect {"peer": ID}`: closes the connections, no penalty; 404 if not
/// connected.
pub async fn disconnect(
    State(s): State<ApiState>,
    json: Result<Json<PeerRequest>, JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let req = body(json)?;
    s.control.disconnect_peer(&req.peer).await?;
    Ok(Json(json!({ "disconnected": req.peer })))
}

/// `POST /peers/ban {"peer": ID, "reason": "..."}`: banned until unbanned (or the ban's end).
pub async fn ban(
    State(s): State<ApiState>,
    json: Result<Json<PeerRequest>, JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let req = body(json)?;
    let reason = req.reason.as_deref().unwrap_or("banned through the API");
    s.control.ban_peer(&req.peer, reason).await?;
    Ok(Json(json!({ "banned": req.peer })))
}

/// `POST /peers/unban {"peer": ID}`: 404 if it was not banned.
pub async fn unban(
    State(s): State<ApiState>,
    json: Result<Json<PeerRequest>, JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let req = body(json)?;
    s.control.unban_peer(&req.peer).await?;
    Ok(Json(json!({ "unbanned": req.peer })))
}

/// `GET /peers/banned`: `{"banned": [{"peer": ID, "secs_left": N}, ...]}`.
pub async fn banned(State(s): State<ApiState>) -> impl IntoResponse {
    let bans: Vec<_> = s
        .control
        .bans()
        .await
        .into_iter()
        .map(|(peer, secs)| json!({ "peer": peer, "secs_left": secs }))
        .collect();
    Json(json!({ "banned": bans }))
}
