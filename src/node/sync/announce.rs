//! Tip announcements: when our tip moves, every connected peer that does not know it yet is
//! sent our Status, at most once per [`ANNOUNCE_EVERY`]. The peer records it (its `/peers`
//! shows our real height and its sync sees our work), and its answer refreshes our view of it.
//!
//! Gossip alone leaves those views stale: a block is forwarded once along the mesh and never
//! back to the peer it came from, so a node learnt a peer's height only at connect time or when
//! that very peer sent it the block. Bitcoin Core announces each new tip to every peer with a
//! `headers` (or `inv`) message for the same reason.

use std::sync::Weak;
use std::time::Duration;

use gossipcoin_proto::BlockHash;
use gossipcoin_proto::message::{Request, Response};
use tokio::sync::watch;
use tracing::debug;

use super::Sync;
use crate::node::chain_handle::ChainState;

/// The shortest time between two rounds: the tips of a batched sync (a commit every 250 ms)
/// are announced once per round, not once per commit.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(1);

/// Announces each new tip until the chain actor (and with it the state channel) or sync ends.
pub(super) async fn run(sync: Weak<Sync>, mut state: watch::Receiver<ChainState>) {
    let mut announced: Option<BlockHash> = None;
    loop {
        // The state also changes with the mempool: only a new tip starts a round.
        if state.wait_for(|s| Some(s.tip) != announced).await.is_err() {
            return;
        }
        let Some(sync) = sync.upgrade() else { return };
        let Ok(ours) = sync.reads.status().await else {
            return;
        };
        announced = Some(ours.tip);
        let peers = sync.net.peers().await;
        let stale = peers
            .into_iter()
            .filter(|p| {
                p.status
                    .is_none_or(|s| s.tip != ours.tip && s.height <= ours.height)
            })
            .map(|p| p.peer);
        // One request per connected peer (connections are bounded), all at once; each is
        // bounded by the request timeout.
        let asks = stale.map(|peer| {
            let sync = &sync;
            async move {
                match sync.net.request(peer, Request::Status(ours)).await {
                    Ok(Response::Status(theirs)) => {
                        sync.on_peer_status(peer, theirs).await;
                    }
                    Ok(other) => {
                        debug!(target: "sync", %peer, "unexpected answer to an announcement: {other:?}")
                    }
                    Err(e) => debug!(target: "sync", %peer, "announcement failed: {e}"),
                }
            }
        });
        let n = futures::future::join_all(asks).await.len();
        if n > 0 {
            debug!(target: "sync", height = ours.height, hash = %ours.tip, peers = n, "announced our tip");
        }
        drop(sync);
        tokio::time::sleep(ANNOUNCE_EVERY).await;
    }
}
