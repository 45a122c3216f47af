//! The router: a switchboard from network events to the ingest queues, sync and the peer
//! bookkeeping. Each arm is one call; nothing here validates, reads the store or waits on the
//! chain (at most on the orphan pool's lock), so the loop always keeps up with the network.

use std::collections::HashSet;
use std::sync::Arc;

use gossipcoin_proto::Block;
use tokio::sync::{mpsc, watch};

use super::ingest::Ingest;
use super::sync::Sync;
use super::tx_exchange;
use crate::net::{NetHandle, NetworkEvent, PeerId};

/// Routes until the network stops or `shutdown` turns true.
pub async fn run(
    net: NetHandle,
    mut events: mpsc::Receiver<NetworkEvent>,
    ingest: Ingest,
    sync: Arc<Sync>,
    mut mined: mpsc::Receiver<Block>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut router = Router {
        net,
        ingest,
        sync,
        greeted: HashSet::new(),
    };
    // Peers connected before the router started (e.g. the one a fresh node took its genesis
    // from) are greeted now; later ones on `PeerConnected`. A peer is greeted once per
    // connection: its `PeerConnected` may still be queued behind us.
    for info in router.net.peers().await {
        router.on_connected(info.peer, info.kind.relays_transactions());
    }
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => router.on_event(event).await,
                None => break,
            },
            Some(block) = mined.recv() => router.on_mined(block).await,
            _ = shutdown.changed() => break,
        }
    }
    router.ingest.close();
}

struct Router {
    net: NetHandle,
    ingest: Ingest,
    sync: Arc<Sync>,
    /// Peers greeted on their current connection (bounded by the connection slots).
    greeted: HashSet<PeerId>,
}

impl Router {
    async fn on_event(&mut self, event: NetworkEvent) {
        match event {
            NetworkEvent::Listening { .. } => {}
            NetworkEvent::PeerDisconnected { peer } => self.on_disconnected(peer),
            NetworkEvent::PeerConnected { peer, kind, .. } => {
                self.on_connected(peer, kind.relays_transactions())
            }
            NetworkEvent::PeerBanned { peer } => self.on_banned(peer).await,
            NetworkEvent::GossipBlock {
                id,
                peer,
                block,
                bytes,
            } => self.ingest.block(peer, id, block, bytes),
            NetworkEvent::GossipTx {
                id,
                peer,
                tx,
                bytes,
            } => self.ingest.tx(peer, id, tx, bytes),
            NetworkEvent::InboundRequest {
                peer,
                request,
                reply,
            } => self.ingest.request(peer, request, reply),
        }
    }

    /// A new peer: exchange Status, then learn its mempool unless it is a block-relay-only
    /// peer (one task per connection; connections are bounded).
    fn on_connected(&mut self, peer: PeerId, relay_txs: bool) {
        if !self.greeted.insert(peer) {
            return;
        }
        let (sync, ingest) = (self.sync.clone(), self.ingest.clone());
        tokio::spawn(async move {
            if sync.greet(peer).await && relay_txs {
                tx_exchange::run(peer, ingest).await;
            }
        });
    }

    /// A peer left: sync forgets it, and its orphan transactions are dropped.
    fn on_disconnected(&mut self, peer: PeerId) {
        self.greeted.remove(&peer);
        self.sync.peer_gone(peer);
        self.ingest.peer_gone(&peer);
    }

    /// A banned peer's queued work and pooled orphans are dropped.
    async fn on_banned(&mut self, peer: PeerId) {
        self.greeted.remove(&peer);
        self.ingest.drop_peer(&peer);
        self.sync.drop_peer(&peer).await;
    }

    async fn on_mined(&self, block: Block) {
        self.net.publish_block(&block).await;
    }
}
