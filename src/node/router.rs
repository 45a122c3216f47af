//! The router: turns network events into calls on the chain task and sync, and answers the
//! peers' requests. Each arm of its loop is one call; slow work runs in its own task so the loop
//! never waits on validation or the store.

use std::sync::Arc;

use gossipcoin_proto::message::{Request, Response};
use gossipcoin_proto::{Block, Transaction};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info};

use super::chain_task::{BlockOutcome, ChainHandle};
use super::sync::Sync;
use crate::metrics::{Source, metrics};
use crate::net::{MessageId, NetHandle, NetworkEvent, PeerId, Reply, Verdict};

/// Routes until the network stops or `shutdown` turns true.
pub async fn run(
    net: NetHandle,
    mut events: mpsc::Receiver<NetworkEvent>,
    chain: ChainHandle,
    sync: Arc<Sync>,
    mut mined: mpsc::Receiver<Block>,
    mut shutdown: watch::Receiver<bool>,
) {
    let router = Router { net, chain, sync };
    // Peers connected before the router started (e.g. the one a fresh node took its genesis
    // from) are greeted now; later ones on `PeerConnected`.
    for info in router.net.peers().await {
        tokio::spawn(router.sync.clone().greet(info.peer));
    }
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => router.on_event(event),
                None => break,
            },
            Some(block) = mined.recv() => router.on_mined(block),
            _ = shutdown.changed() => break,
        }
    }
}

#[derive(Clone)]
struct Router {
    net: NetHandle,
    chain: ChainHandle,
    sync: Arc<Sync>,
}

impl Router {
    fn on_event(&self, event: NetworkEvent) {
        let this = self.clone();
        match event {
            NetworkEvent::Listening { .. }
            | NetworkEvent::PeerDisconnected { .. }
            | NetworkEvent::PeerBanned { .. } => {}
            NetworkEvent::PeerConnected { peer, .. } => {
                tokio::spawn(this.sync.greet(peer));
            }
            NetworkEvent::GossipBlock { id, peer, block } => {
                metrics().gossip("in", "blocks");
                tokio::spawn(async move { this.on_gossip_block(id, peer, block).await });
            }
            NetworkEvent::GossipTx { id, peer, tx } => {
                metrics().gossip("in", "txs");
                tokio::spawn(async move { this.on_gossip_tx(id, peer, tx).await });
            }
            NetworkEvent::InboundRequest {
                peer,
                request,
                reply,
            } => {
                tokio::spawn(async move { this.on_request(peer, request, reply).await });
            }
        }
    }

    fn on_mined(&self, block: Block) {
        let net = self.net.clone();
        tokio::spawn(async move { net.publish_block(&block).await });
    }

    async fn on_gossip_block(self, id: MessageId, peer: PeerId, block: Block) {
        let hash = block.block_hash();
        metrics().block_received(Source::Gossip);
        let Ok(outcome) = self
            .chain
            .submit_block(block.clone(), peer.to_string())
            .await
        else {
            return;
        };
        let verdict = match &outcome {
            BlockOutcome::NewTip { .. } | BlockOutcome::SideBranch { .. } => Verdict::Accept,
            BlockOutcome::Duplicate => Verdict::Ignore,
            BlockOutcome::Orphan { .. } => Verdict::Ignore,
            BlockOutcome::Invalid {
                misbehaviour: true, ..
            } => Verdict::Reject,
            BlockOutcome::Invalid {
                misbehaviour: false,
                ..
            } => Verdict::Ignore,
        };
        debug!(target: "net", %peer, %hash, ?verdict, "gossip block validated");
        self.net.report(id, peer, verdict);
        if let BlockOutcome::NewTip { .. } = outcome
            && let Ok(ours) = self.chain.status().await
        {
            self.net.note_peer_tip(peer, ours);
        }
        match outcome {
            BlockOutcome::Orphan { .. } => self.sync.on_orphan(block, peer).await,
            BlockOutcome::NewTip { .. } | BlockOutcome::SideBranch { .. } => {
                // Orphans waiting for this block can connect now.
                self.sync.connect_orphans_of(hash, &peer).await;
            }
            _ => {}
        }
    }

    async fn on_gossip_tx(self, id: MessageId, peer: PeerId, tx: Transaction) {
        metrics().tx_received(Source::Gossip);
        let Ok(result) = self.chain.submit_tx(tx, peer.to_string()).await else {
            return;
        };
        let verdict = match &result {
            Ok(_) => Verdict::Accept,
            Err(e) if e.is_peer_misbehaviour() => Verdict::Reject,
            Err(_) => Verdict::Ignore,
        };
        self.net.report(id, peer, verdict);
    }

    async fn on_request(self, peer: PeerId, request: Request, reply: Reply) {
        metrics().sync_served(match &request {
            Request::Status(_) => "status",
            Request::GetBlocks { .. } => "get_blocks",
            Request::GetBlock { .. } => "get_block",
            Request::SubmitTx(_) => "submit_tx",
        });
        let response = match request {
            Request::Status(theirs) => {
                let ours = self.chain.status().await;
                if !self.sync.on_peer_status(peer, theirs).await {
                    Response::Error("different genesis: another network".into())
                } else {
                    match ours {
                        Ok(s) => Response::Status(s),
                        Err(e) => Response::Error(e.to_string()),
                    }
                }
            }
            Request::GetBlocks { locator, max } => {
                match self.chain.blocks_after(locator, max).await {
                    Ok(blocks) => Response::Blocks(blocks),
                    Err(e) => Response::Error(e.to_string()),
                }
            }
            Request::GetBlock { hash } => match self.chain.block(hash).await {
                Ok(block) => Response::Block(block),
                Err(e) => Response::Error(e.to_string()),
            },
            Request::SubmitTx(tx) => {
                metrics().tx_received(Source::Sync);
                let relay = tx.clone();
                match self
                    .chain
                    .submit_tx(tx, format!("{peer} (submitted)"))
                    .await
                {
                    Ok(Ok(txid)) => {
                        info!(target: "mempool", %txid, %peer, "transaction submitted by a client; relaying");
                        self.net.publish_tx(&relay).await;
                        Response::TxAccepted(txid)
                    }
                    Ok(Err(e)) => Response::TxRejected(e.to_string()),
                    Err(e) => Response::Error(e.to_string()),
                }
            }
        };
        reply.send(response);
    }
}
