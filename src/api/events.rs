//! `/events`: server-sent events for the web explorer. One `state` event at once, then one each
//! time the chain actor publishes a change (a block accepted, a transaction in or out of the
//! mempool): `{"height", "tip", "mempool_txs", "mempool_bytes", "at_ms"}`. The page reloads what
//! it shows when one arrives, so a new block appears without polling. At most
//! [`MAX_SUBSCRIBERS`] streams at once (503 beyond), each kept alive by a comment every 15 s.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde_json::json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::ApiState;
use super::error::ApiError;
use crate::node::{ChainState, now_ms};

/// Open event streams allowed at once.
pub const MAX_SUBSCRIBERS: usize = 64;

/// The event streams' slots, shared by every request.
#[derive(Clone)]
pub struct Subscribers(Arc<Semaphore>);

impl Default for Subscribers {
    fn default() -> Self {
        Self(Arc::new(Semaphore::new(MAX_SUBSCRIBERS)))
    }
}

pub async fn events(State(s): State<ApiState>) -> Response {
    let Ok(permit) = s.subscribers.0.clone().try_acquire_owned() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("too many event streams open (at most {MAX_SUBSCRIBERS}); poll /status"),
        )
        .into_response();
    };
    Sse::new(stream(s.control.watch_state(), permit))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// The current state, then every change, until the node stops. The slot is held as long as the
/// stream lives.
fn stream(
    state: watch::Receiver<ChainState>,
    permit: OwnedSemaphorePermit,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(
        (state, permit, true),
        |(mut state, permit, first)| async move {
            if !first && state.changed().await.is_err() {
                return None;
            }
            let s = *state.borrow_and_update();
            let data = json!({
                "height": s.height,
                "tip": s.tip.to_string(),
                "mempool_txs": s.mempool_txs,
                "mempool_bytes": s.mempool_bytes,
                "at_ms": now_ms(),
            });
            let event = Event::default().event("state").data(data.to_string());
            Some((Ok(event), (state, permit, false)))
        },
    )
}
