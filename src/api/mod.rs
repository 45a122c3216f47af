//! The node's HTTP API: JSON on 127.0.0.1 (axum), a thin layer over [`Control`].
//!
//! | file        | what it owns                                                        |
//! |-------------|---------------------------------------------------------------------|
//! | `mod.rs`    | the routes, the server, `api.addr`                                  |
//! | `auth.rs`   | the cookie (`api.cookie`) and the middleware that checks it         |
//! | `error.rs`  | `{"error": ...}` answers with the right status                      |
//! | `flask.rs`  | the seed Flask node's endpoints                                     |
//! | `query.rs`  | Bitcoin-style queries, `POST /tx`, `/metrics`                       |
//! | `views.rs`  | the JSON shapes                                                     |
//! | `explorer.rs` | `/blocks/recent`; fees, spent coins and PoW checks for the explorer |
//! | `events.rs` | `/events`: server-sent events on every chain or mempool change       |
//! | `web.rs`    | the web explorer at `/` (assets in `web/`, compiled in), its CSP     |
//! | `host.rs`   | the Host-header rule (no DNS rebinding): 421 for foreign names       |
//! | `client.rs` | the CLI's side: find a running node's API and call it               |
//! | `bans.rs`   | disconnect, ban, unban a peer; list bans (Core's `setban` & co.)    |
//! | `wallet.rs` | `/wallet/transactions` (the wallet's history), `/wallet/balance`, `/wallet/addresses`, `/wallet/address/{a}`, `/wallet/rescan` |
//!
//! Endpoints that spend or change state need the cookie; read-only ones are open (on loopback).
//! Every request must name this server in its Host header ([`host`]), and every answer says
//! `X-Content-Type-Options: nosniff`.

mod auth;
mod bans;
pub mod client;
mod error;
mod events;
mod explorer;
mod flask;
pub mod host;
mod query;
mod views;
mod wallet;
pub mod web;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::watch;
use tracing::{info, warn};

pub use auth::{COOKIE_FILE, COOKIE_USER};

use crate::config::ApiSettings;
use crate::metrics::metrics;
use crate::node::Control;
use error::ApiError;

/// The file holding the API's URL (`http://127.0.0.1:4000`), for the CLI and scripts.
pub const ADDR_FILE: &str = "api.addr";

/// The largest request body: a maximal transaction in hex, plus room for JSON around it.
const MAX_BODY: usize = 2 * gossipcoin_proto::MAX_TX_BYTES + 4096;

/// The most bytes a request's target and headers may take together (names, values and their
/// separators); more is answered 431. Real clients send well under 1 KiB.
const MAX_HEADER_BYTES: usize = 8 * 1024;

/// What every handler gets.
#[derive(Clone)]
struct ApiState {
    control: Control,
    /// This API's own URL.
    url: String,
    /// Slots for `/events` streams.
    subscribers: events::Subscribers,
}

/// A running API server: its address, and the files it wrote (removed on drop).
pub struct Server {
    pub addr: SocketAddr,
    files: Vec<PathBuf>,
}

impl Drop for Server {
    fn drop(&mut self) {
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// Binds the API, writes `api.addr` (and `api.cookie` unless auth is off) into `dir`, and
/// serves until `shutdown` turns true.
pub async fn serve(
    control: Control,
    settings: ApiSettings,
    dir: &Path,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Server> {
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen for the HTTP API on {} (in use? choose another with --api-listen)",
                settings.listen
            )
        })?;
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        warn!(target: "api", %addr, "the HTTP API listens beyond loopback: anyone who can reach \
              it can read the node (state-changing endpoints still need the cookie)");
    }
    let url = format!("http://{addr}");
    let mut files = Vec::new();
    let auth = if settings.require_cookie {
        files.push(dir.join(COOKIE_FILE));
        auth::Auth::create(dir).context("cannot write the API cookie")?
    } else {
        warn!(target: "api", "--api-auth none: ANYONE who can reach {url} can spend from this \
              node's wallet and change its state. Use only for demos.");
        auth::Auth::none()
    };
    auth::write_private(&dir.join(ADDR_FILE), format!("{url}\n").as_bytes())
        .context("cannot write api.addr")?;
    files.push(dir.join(ADDR_FILE));

    let state = ApiState {
        control,
        url: url.clone(),
        subscribers: events::Subscribers::default(),
    };
    let app = router(state, auth, host::HostRule::new(addr));
    info!(target: "api", %url, cookie = settings.require_cookie, "HTTP API listening");
    tokio::spawn(async move {
        let stop = async move {
            while !*shutdown.borrow_and_update() {
                if shutdown.changed().await.is_err() {
                    break;
                }
            }
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            warn!(target: "api", "HTTP API stopped: {e}");
        }
    });
    Ok(Server { addr, files })
}

fn router(state: ApiState, auth: auth::Auth, hosts: host::HostRule) -> Router {
    let guarded = Router::new()
        .route("/transactions/new", post(flask::new_transaction))
        .route("/mine", get(flask::mine))
        .route("/nodes/register", post(flask::register))
        .route("/nodes/resolve", get(flask::resolve))
        .route("/wallet/create", get(flask::wallet_create))
        .route("/wallet/transactions", get(wallet::transactions))
        .route("/wallet/balance", get(wallet::balance))
        .route("/wallet/addresses", get(wallet::addresses))
        .route("/wallet/address/{address}", get(wallet::address))
        .route("/wallet/rescan", post(wallet::rescan))
        .route("/tx", post(query::submit_raw))
        .route("/peers/disconnect", post(bans::disconnect))
        .route("/peers/ban", post(bans::ban))
        .route("/peers/unban", post(bans::unban))
        .route_layer(middleware::from_fn_with_state(auth, auth::require));
    let open = Router::new()
        .route("/chain", get(flask::chain))
        .route("/wallet/balance/{address}", get(flask::wallet_balance))
        .route("/status", get(query::status))
        .route("/peers", get(query::peers))
        .route("/peers/banned", get(bans::banned))
        .route("/mempool", get(query::mempool))
        .route("/fee", get(query::fee))
        .route("/blocks/recent", get(explorer::recent))
        .route("/blocks/{id}", get(query::block))
        .route("/events", get(events::events))
        .route("/tx/{txid}", get(query::tx))
        .route("/address/{address}", get(query::address))
        .route("/metrics", get(query::prometheus));
    guarded
        .merge(open)
        .merge(web::routes())
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(middleware::from_fn(refuse_oversized))
        .layer(middleware::from_fn(refuse_big_headers))
        .layer(middleware::from_fn(record))
        .layer(middleware::from_fn_with_state(hosts, host::check))
        .layer(middleware::from_fn(nosniff))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// `X-Content-Type-Options: nosniff` on every answer: a browser takes JSON as JSON and the
/// explorer's script as script, never guessing another type.
async fn nosniff(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response.headers_mut().insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    response
}

/// Refuses a body announced larger than [`MAX_BODY`] at once, before reading any of it
/// (`DefaultBodyLimit` still stops bodies without a length once they pass the limit).
async fn refuse_oversized(request: Request, next: Next) -> Response {
    let announced = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY as u64) {
        return ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {MAX_BODY} bytes"),
        )
        .into_response();
    }
    next.run(request).await
}

/// Refuses a request whose target and headers exceed [`MAX_HEADER_BYTES`] with 431.
async fn refuse_big_headers(request: Request, next: Next) -> Response {
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4) // ": " and CRLF
        .sum();
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    if headers + target > MAX_HEADER_BYTES {
        return ApiError::new(
            axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("request target and headers are larger than {MAX_HEADER_BYTES} bytes"),
        )
        .into_response();
    }
    next.run(request).await
}

/// Counts every request by route and status, and turns axum's bare error answers (405, a
/// refused body) into the API's JSON errors.
async fn record(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let response = next.run(request).await;
    let status = response.status();
    metrics().api_request(&route, status.as_u16());
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if (status.is_client_error() || status.is_server_error()) && !is_json {
        let reason = status.canonical_reason().unwrap_or("error");
        let mut fixed = ApiError::new(status, reason.to_lowercase()).into_response();
        for (name, value) in response.headers() {
            if name != CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
                fixed.headers_mut().insert(name.clone(), value.clone());
            }
        }
        return fixed;
    }
    response
}
