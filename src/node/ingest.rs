//! Ingestion: the bounded queues between the network and the chain, and the workers that drain
//! them. Nothing a peer sends becomes a task of its own.
//!
//! | queue | worker(s) | what |
//! |---|---|---|
//! | blocks | 1 | gossip blocks, validated by the chain actor in arrival order |
//! | txs | 1 | gossip transactions, `SubmitTx` requests and transactions fetched from a peer's mempool, one peer's in the order sent, with the orphan pool ([`super::tx_relay`]) |
//! | requests | 2 | Status, headers, blocks (answered from store snapshots), a peer's view of our mempool |
//!
//! Each queue is a [`FairQueue`]: bounded in items and bytes (in all and per peer), peers
//! served in turn. A full queue answers at once — gossip gets Ignore (not forwarded, no
//! penalty: the fault is ours), a request gets an error — and counts it in
//! `gossipcoin_ingest_dropped_total`. When a peer is banned its queued work is dropped, and
//! when it is banned or disconnects, its orphan transactions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gossipcoin_proto::message::{MAX_MEMPOOL_TXIDS, Request, Response, SOFT_RESPONSE_BYTES};
use gossipcoin_proto::{Block, BlockHash, Transaction};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::chain_handle::{BlockOutcome, ChainHandle};
use super::queue::{Bounds, FairQueue, Full};
use super::reads::Reads;
use super::sync::Sync;
use super::tx_relay::{self, OrphanTxs};
use crate::chain::Origin;
use crate::metrics::{Source, metrics};
use crate::net::{MessageId, Misbehaviour, NetHandle, PeerId, Reply, Verdict};

/// Side-branch blocks (equal work, unrequested) stored per peer per [`SIDE_WINDOW`].
pub const MAX_SIDE_BLOCKS_PER_PEER: u32 = 8;
/// The window of [`MAX_SIDE_BLOCKS_PER_PEER`].
pub const SIDE_WINDOW: Duration = Duration::from_secs(3600);
/// Request workers (reads from snapshots).
const REQUEST_WORKERS: usize = 2;
/// A peer is sent our mempool's txids at most once per this long.
pub const MEMPOOL_SERVE_INTERVAL: Duration = Duration::from_secs(10);

/// A gossip block waiting for validation.
struct BlockJob {
    id: MessageId,
    block: Block,
    bytes: usize,
}

/// A transaction waiting for the mempool, from gossip, a `SubmitTx` request or the peer's
/// mempool.
pub(super) enum TxJob {
    Gossip {
        id: MessageId,
        tx: Transaction,
    },
    Submit {
        tx: Transaction,
        reply: Reply,
    },
    /// Fetched from the peer's mempool on connect ([`super::tx_exchange`]); `done`, when
    /// there is one, is dropped once the transaction has been handled.
    Fetched {
        tx: Transaction,
        done: Option<oneshot::Sender<()>>,
    },
}

/// A read request waiting for a worker.
struct RequestJob {
    request: Request,
    reply: Reply,
}

/// The queues; cheap to clone.
#[derive(Clone)]
pub struct Ingest {
    blocks: Arc<FairQueue<PeerId, BlockJob>>,
    txs: Arc<FairQueue<PeerId, TxJob>>,
    requests: Arc<FairQueue<PeerId, RequestJob>>,
    net: NetHandle,
    chain: ChainHandle,
    orphans: OrphanTxs,
    mempool_served: Arc<MempoolServes>,
}

/// What the workers need.
#[derive(Clone)]
pub struct Workers {
    pub net: NetHandle,
    pub chain: ChainHandle,
    pub reads: Reads,
    pub sync: Arc<Sync>,
    /// Transactions waiting for a parent, with the peer that sent each.
    pub orphans: OrphanTxs,
}

impl Ingest {
    /// Creates the queues for blocks of at most `max_block_bytes` and starts their workers.
    pub fn start(workers: Workers, max_block_bytes: usize) -> Self {
        let blocks = Arc::new(FairQueue::new(Bounds {
            items: 64,
            bytes: 16 * max_block_bytes,
            bytes_per_peer: 3 * max_block_bytes,
        }));
        let txs = Arc::new(FairQueue::new(Bounds {
            items: 4096,
            bytes: 16 << 20,
            bytes_per_peer: 2 << 20,
        }));
        let requests = Arc::new(FairQueue::new(Bounds {
            items: 256,
            bytes: 256,
            bytes_per_peer: 16,
        }));
        let ingest = Self {
            blocks,
            txs,
            requests,
            net: workers.net.clone(),
            chain: workers.chain.clone(),
            orphans: workers.orphans.clone(),
            mempool_served: Arc::new(MempoolServes::default()),
        };
        tokio::spawn(block_worker(ingest.blocks.clone(), workers.clone()));
        tokio::spawn(tx_relay::run(ingest.txs.clone(), workers.clone()));
        for _ in 0..REQUEST_WORKERS {
            tokio::spawn(request_worker(
                ingest.requests.clone(),
                workers.clone(),
                ingest.mempool_served.clone(),
            ));
        }
        ingest
    }

    /// Queues a gossip block, or answers Ignore at once when there is no room.
    pub fn block(&self, peer: PeerId, id: MessageId, block: Block, bytes: usize) {
        metrics().gossip("in", "blocks");
        if let Err((job, full)) = self.blocks.push(peer, BlockJob { id, block, bytes }, bytes) {
            dropped("blocks", full, &peer);
            self.net.report(job.id, peer, Verdict::Ignore);
        }
    }

    /// Queues a gossip transaction, or answers Ignore at once when there is no room.
    pub fn tx(&self, peer: PeerId, id: MessageId, tx: Transaction, bytes: usize) {
        metrics().gossip("in", "txs");
        if let Err((job, full)) = self.txs.push(peer, TxJob::Gossip { id, tx }, bytes) {
            dropped("txs", full, &peer);
            if let TxJob::Gossip { id, .. } = job {
                self.net.report(id, peer, Verdict::Ignore);
            }
        }
    }

    /// Queues a transaction fetched from `peer`'s mempool behind the peer's others; false
    /// (and `done` dropped) when there is no room.
    pub fn fetched(
        &self,
        peer: PeerId,
        tx: Transaction,
        bytes: usize,
        done: Option<oneshot::Sender<()>>,
    ) -> bool {
        metrics().tx_received(Source::Sync);
        match self.txs.push(peer, TxJob::Fetched { tx, done }, bytes) {
            Ok(()) => true,
            Err((_, full)) => {
                dropped("txs", full, &peer);
                false
            }
        }
    }

    /// The network, for the mempool exchange.
    pub fn net(&self) -> &NetHandle {
        &self.net
    }

    /// The chain, for the mempool exchange.
    pub fn chain(&self) -> &ChainHandle {
        &self.chain
    }

    /// The orphan-transaction pool.
    pub fn orphans(&self) -> &OrphanTxs {
        &self.orphans
    }

    /// Queues a request; `SubmitTx` joins the peer's transactions, in order.
    pub fn request(&self, peer: PeerId, request: Request, reply: Reply) {
        let kind = request_kind(&request);
        metrics().sync_served(kind);
        let refused = match request {
            Request::SubmitTx(tx) => {
                let bytes = tx.encoded_len();
                self.txs
                    .push(peer, TxJob::Submit { tx, reply }, bytes)
                    .err()
                    .map(|(job, full)| (full, job_reply(job)))
            }
            request => self
                .requests
                .push(peer, RequestJob { request, reply }, 1)
                .err()
                .map(|(job, full)| (full, Some(job.reply))),
        };
        if let Some((full, reply)) = refused {
            dropped(kind, full, &peer);
            if let Some(reply) = reply {
                reply.send(Response::Error("busy: try again later".into()));
            }
        }
    }

    /// Drops everything a banned peer has queued, and its orphan transactions.
    pub fn drop_peer(&self, peer: &PeerId) {
        let blocks = self.blocks.drop_peer(peer);
        let txs = self.txs.drop_peer(peer);
        let requests = self.requests.drop_peer(peer).len();
        let orphans = tx_relay::drop_orphans_of(&self.orphans, &self.net, peer);
        if !blocks.is_empty() || !txs.is_empty() || requests > 0 || orphans > 0 {
            info!(target: "net", %peer, blocks = blocks.len(), txs = txs.len(), requests, orphans,
                  "dropped a banned peer's queued work");
        }
        for job in blocks {
            self.net.report(job.id, *peer, Verdict::Ignore);
        }
        for job in txs {
            if let TxJob::Gossip { id, .. } = job {
                self.net.report(id, *peer, Verdict::Ignore);
            }
        }
    }

    /// A peer disconnected: its orphan transactions are dropped (its queued work is still
    /// handled: it was sent before it left).
    pub fn peer_gone(&self, peer: &PeerId) {
        let orphans = tx_relay::drop_orphans_of(&self.orphans, &self.net, peer);
        if orphans > 0 {
            debug!(target: "mempool", %peer, orphans, "dropped a disconnected peer's orphan transactions");
        }
    }

    /// Stops taking work; the workers finish what is queued and end.
    pub fn close(&self) {
        self.blocks.close();
        self.txs.close();
        self.requests.close();
    }
}

fn job_reply(job: TxJob) -> Option<Reply> {
    match job {
        TxJob::Submit { reply, .. } => Some(reply),
        TxJob::Gossip { .. } | TxJob::Fetched { .. } => None,
    }
}

fn dropped(queue: &'static str, full: Full, peer: &PeerId) {
    metrics().ingest_dropped(queue, full.label());
    debug!(target: "net", %peer, queue, reason = full.label(), "no room in the queue: dropped");
}

fn request_kind(request: &Request) -> &'static str {
    match request {
        Request::Status(_) => "status",
        Request::GetBlocks { .. } => "get_blocks",
        Request::GetBlock { .. } => "get_block",
        Request::SubmitTx(_) => "submit_tx",
        Request::GetHeaders { .. } => "get_headers",
        Request::GetBlocksByHash { .. } => "get_blocks_by_hash",
        Request::GetMempool => "get_mempool",
        Request::GetTxs { .. } => "get_txs",
    }
}

/// When each peer was last sent our mempool's txids: at most once per
/// [`MEMPOOL_SERVE_INTERVAL`] (the list can be long, and building it takes the chain actor's
/// time), kept across reconnects, so reconnecting buys no extra listing. A restarted node
/// that asks too soon is told "busy" once, free of charge, and asks again after the interval
/// ([`super::tx_exchange`]); asking again within it costs.
#[derive(Default)]
struct MempoolServes {
    /// When it was last served, and how often refused since.
    last: std::sync::Mutex<HashMap<PeerId, (Instant, u32)>>,
}

/// What [`MempoolServes::may_serve`] decided.
#[derive(Debug, PartialEq, Eq)]
enum MempoolServe {
    Now,
    /// Within the interval; `again` when this is not the first refusal in it.
    TooSoon {
        again: bool,
    },
}

impl MempoolServes {
    /// Whether `peer` may be sent the list now; if so, it is counted as sent.
    fn may_serve(&self, peer: PeerId, now: Instant) -> MempoolServe {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.retain(|_, (at, _)| now.saturating_duration_since(*at) < MEMPOOL_SERVE_INTERVAL);
        match last.get_mut(&peer) {
            Some((_, refused)) => {
                *refused += 1;
                MempoolServe::TooSoon {
                    again: *refused > 1,
                }
            }
            None => {
                last.insert(peer, (now, 0));
                MempoolServe::Now
            }
        }
    }
}

/// Equal-work side blocks stored per sender: each identity, and each network group (a
/// non-local IPv4 /16 or IPv6 /64: new identities buy no more), may make us store a few per
/// hour.
#[derive(Default)]
struct SideAllowance {
    used: HashMap<SideKey, (u32, Instant)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SideKey {
    Peer(PeerId),
    Group(std::net::IpAddr),
}

impl SideAllowance {
    fn keys(peer: PeerId, group: Option<std::net::IpAddr>) -> impl Iterator<Item = SideKey> {
        std::iter::once(SideKey::Peer(peer)).chain(group.map(SideKey::Group))
    }

    fn has_room(&mut self, peer: PeerId, group: Option<std::net::IpAddr>, now: Instant) -> bool {
        self.used
            .retain(|_, (_, since)| now.saturating_duration_since(*since) < SIDE_WINDOW);
        Self::keys(peer, group).all(|key| {
            self.used
                .get(&key)
                .is_none_or(|(n, _)| *n < MAX_SIDE_BLOCKS_PER_PEER)
        })
    }

    fn charge(&mut self, peer: PeerId, group: Option<std::net::IpAddr>, now: Instant) {
        for key in Self::keys(peer, group) {
            self.used.entry(key).or_insert((0, now)).0 += 1;
        }
    }
}

/// Who sent each side block we stored from gossip (the most recent [`MAX_SIDE_SENDERS`]): a
/// side block is fully checked only when its branch is connected, and its sender is charged
/// then.
#[derive(Default)]
struct SideSenders {
    by_hash: HashMap<BlockHash, PeerId>,
    order: std::collections::VecDeque<BlockHash>,
}

/// Side blocks whose senders are remembered.
const MAX_SIDE_SENDERS: usize = 4096;

impl SideSenders {
    fn insert(&mut self, hash: BlockHash, peer: PeerId) {
        if self.order.len() >= MAX_SIDE_SENDERS
            && let Some(old) = self.order.pop_front()
        {
            self.by_hash.remove(&old);
        }
        self.by_hash.insert(hash, peer);
        self.order.push_back(hash);
    }

    fn sender(&self, hash: &BlockHash) -> Option<PeerId> {
        self.by_hash.get(hash).copied()
    }
}

async fn block_worker(queue: Arc<FairQueue<PeerId, BlockJob>>, w: Workers) {
    let mut side = SideAllowance::default();
    let mut side_senders = SideSenders::default();
    while let Some((peer, job)) = queue.pop().await {
        let BlockJob { id, block, bytes } = job;
        let hash = block.block_hash();
        metrics().block_received(Source::Gossip);
        let group = w.net.peer_group(peer).await;
        let origin = Origin::Unrequested {
            may_store_side: side.has_room(peer, group, Instant::now()),
        };
        let Ok(outcome) = w
            .chain
            .submit_block(block.clone(), origin, peer.to_string())
            .await
        else {
            return;
        };
        let verdict = match &outcome {
            BlockOutcome::NewTip { .. } => Verdict::Accept,
            BlockOutcome::Invalid { blame: true, .. } => Verdict::Reject,
            _ => Verdict::Ignore,
        };
        debug!(target: "net", %peer, %hash, ?verdict, "gossip block validated");
        w.net.report(id, peer, verdict);
        match outcome {
            BlockOutcome::NewTip { .. } => {
                if let Ok(ours) = w.reads.status().await {
                    w.net.note_peer_tip(peer, ours);
                    w.sync.delivered(peer, ours);
                }
                w.sync.connect_orphans_of(hash).await;
            }
            BlockOutcome::SideBranch { .. } => {
                side.charge(peer, group, Instant::now());
                side_senders.insert(hash, peer);
                w.sync.connect_orphans_of(hash).await;
            }
            BlockOutcome::Invalid {
                failed_ancestor: Some(failed),
                ..
            } => {
                // Its branch was tried because of this block, and a side block under it was
                // invalid: that block's sender pays for it, and so does whoever built on it.
                if let Some(sender) = side_senders.sender(&failed) {
                    warn!(target: "chain", peer = %sender, hash = %failed, "a side block proved invalid when its branch was connected: charging its sender");
                    w.net.report_peer(
                        sender,
                        Misbehaviour::High,
                        "sent a side block that proved invalid when its branch was connected",
                    );
                }
                w.net.report_peer(
                    peer,
                    Misbehaviour::Mid,
                    "built on a block that proved invalid",
                );
            }
            BlockOutcome::Orphan { .. } => w.sync.on_orphan(block, peer, bytes).await,
            _ => {}
        }
    }
}

async fn request_worker(
    queue: Arc<FairQueue<PeerId, RequestJob>>,
    w: Workers,
    served: Arc<MempoolServes>,
) {
    while let Some((peer, RequestJob { request, reply })) = queue.pop().await {
        let response = match request {
            Request::Status(theirs) => match w.reads.status().await {
                Ok(ours) if w.sync.on_peer_status(peer, theirs).await => Response::Status(ours),
                Ok(_) => Response::Error("different genesis: another network".into()),
                Err(e) => Response::Error(e.to_string()),
            },
            Request::GetBlocks { locator, max } => {
                let served =
                    w.reads
                        .encoded_blocks_after(locator, max as usize, SOFT_RESPONSE_BYTES);
                match served.await {
                    Ok(encoded) => {
                        reply.send_encoded(encoded);
                        continue;
                    }
                    Err(e) => Response::Error(e.to_string()),
                }
            }
            Request::GetBlock { hash } => match w.reads.block(hash).await {
                Ok(block) => Response::Block(block),
                Err(e) => Response::Error(e.to_string()),
            },
            Request::GetHeaders { locator, max } => {
                match w.reads.headers_after(locator, max as usize).await {
                    Ok(headers) => Response::Headers(headers),
                    Err(e) => Response::Error(e.to_string()),
                }
            }
            Request::GetBlocksByHash { hashes } => {
                let served = w.reads.encoded_blocks_by_hash(hashes, SOFT_RESPONSE_BYTES);
                match served.await {
                    Ok(encoded) => {
                        reply.send_encoded(encoded);
                        continue;
                    }
                    Err(e) => Response::Error(e.to_string()),
                }
            }
            Request::GetMempool => match served.may_serve(peer, Instant::now()) {
                MempoolServe::TooSoon { again } => {
                    if again {
                        w.net.report_peer(
                            peer,
                            Misbehaviour::Low,
                            "over a rate: asked for our mempool again within 10 s",
                        );
                    }
                    Response::Error("busy: our mempool was sent to you moments ago".into())
                }
                MempoolServe::Now => match w.chain.mempool_txids(MAX_MEMPOOL_TXIDS).await {
                    Ok(txids) => Response::MempoolTxids(txids),
                    Err(e) => Response::Error(e.to_string()),
                },
            },
            Request::GetTxs { txids } => {
                match w.chain.mempool_txs(txids, SOFT_RESPONSE_BYTES).await {
                    Ok(txs) => Response::Txs(txs),
                    Err(e) => Response::Error(e.to_string()),
                }
            }
            // queued with the transactions, never here
            Request::SubmitTx(_) => Response::Error("unexpected request".into()),
        };
        reply.send(response);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_allowance_runs_out_per_identity_and_per_group_and_comes_back() {
        let t0 = Instant::now();
        let (p, q) = (PeerId::random(), PeerId::random());
        let mut side = SideAllowance::default();
        for _ in 0..MAX_SIDE_BLOCKS_PER_PEER {
            assert!(side.has_room(p, None, t0));
            side.charge(p, None, t0);
        }
        assert!(!side.has_room(p, None, t0));
        assert!(side.has_room(q, None, t0));
        assert!(side.has_room(p, None, t0 + SIDE_WINDOW));
        // Four identities of one group share its allowance: new identities buy nothing.
        let group = Some("203.0.0.0".parse().unwrap());
        let ids: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
        let mut side = SideAllowance::default();
        let mut stored = 0;
        for id in ids.iter().cycle().take(32) {
            if side.has_room(*id, group, t0) {
                side.charge(*id, group, t0);
                stored += 1;
            }
        }
        assert_eq!(stored, MAX_SIDE_BLOCKS_PER_PEER);
        let elsewhere = Some("198.51.0.0".parse().unwrap());
        assert!(side.has_room(ids[0], elsewhere, t0) || !side.has_room(ids[0], None, t0));
        assert!(side.has_room(PeerId::random(), elsewhere, t0));
    }

    #[test]
    fn a_peer_gets_our_mempool_list_once_per_interval() {
        let t0 = Instant::now();
        let (p, q) = (PeerId::random(), PeerId::random());
        let served = MempoolServes::default();
        let half = t0 + MEMPOOL_SERVE_INTERVAL / 2;
        assert_eq!(served.may_serve(p, t0), MempoolServe::Now);
        // Too soon (a reconnect changes nothing): the first refusal is free, the next costs.
        assert_eq!(
            served.may_serve(p, half),
            MempoolServe::TooSoon { again: false }
        );
        assert_eq!(
            served.may_serve(p, half),
            MempoolServe::TooSoon { again: true }
        );
        assert_eq!(served.may_serve(q, half), MempoolServe::Now);
        assert_eq!(
            served.may_serve(p, t0 + MEMPOOL_SERVE_INTERVAL),
            MempoolServe::Now
        );
    }
}
