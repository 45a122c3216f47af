//! `NetHandle`: the cloneable way for the rest of the node to use the network.
//!
//! Each method sends one [`Command`] to the service task that owns the swarm; methods with an
//! answer carry a `oneshot` for it. The command channel is unbounded on purpose: its senders are
//! our own components, the service never blocks while draining it, and a bounded channel would
//! force the synchronous [`NetHandle::report`] to drop verdicts when full.

use std::time::Duration;

use gossipcoin_proto::encode::to_bytes;
use gossipcoin_proto::message::{Request, Response, Status, TopicKind};
use gossipcoin_proto::{Block, BlockHash, Transaction, Txid, sha256d};
use libp2p::{Multiaddr, gossipsub};
use tokio::sync::{mpsc, oneshot};

use super::config::parse_addr;
use super::{MessageId, Misbehaviour, NetError, PeerId, PeerInfo, Verdict};

/// A request from a handle to the service.
pub(super) enum Command {
    Join {
        genesis: BlockHash,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    Publish {
        kind: TopicKind,
        data: Vec<u8>,
        /// The block hash or txid, for the logs.
        name: String,
    },
    Report {
        id: gossipsub::MessageId,
        peer: libp2p::PeerId,
        verdict: Verdict,
    },
    Request {
        peer: libp2p::PeerId,
        request: Request,
        reply: oneshot::Sender<Result<Response, NetError>>,
    },
    Ban {
        peer: libp2p::PeerId,
        reason: String,
        reply: oneshot::Sender<()>,
    },
    ReportPeer {
        peer: libp2p::PeerId,
        offence: Misbehaviour,
        reason: String,
    },
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    Peers {
        reply: oneshot::Sender<Vec<PeerInfo>>,
    },
    SetStatus {
        peer: libp2p::PeerId,
        status: Status,
        /// Only raise a known status's tip (keeping its role), never replace or lower it.
        raise_only: bool,
    },
    ListenAddrs {
        reply: oneshot::Sender<Vec<String>>,
    },
    /// Closes every connection to the peer (no penalty); the answer says whether it was
    /// connected.
    Disconnect {
        peer: libp2p::PeerId,
        reply: oneshot::Sender<bool>,
    },
    /// The network group of the peer's address (see [`NetHandle::peer_group`]).
    PeerGroup {
        peer: libp2p::PeerId,
        reply: oneshot::Sender<Option<std::net::IpAddr>>,
    },
    /// Lifts the peer's ban; the answer says whether it was banned.
    Unban {
        peer: libp2p::PeerId,
        reply: oneshot::Sender<bool>,
    },
    /// The banned peers and how long each ban still runs.
    Bans {
        reply: oneshot::Sender<Vec<(PeerId, Duration)>>,
    },
}

/// Talks to the network service; cheap to clone.
#[derive(Clone, Debug)]
pub struct NetHandle {
    commands: mpsc::UnboundedSender<Command>,
    local_peer_id: PeerId,
    request_timeout: Duration,
}

impl NetHandle {
    pub(super) fn new(
        commands: mpsc::UnboundedSender<Command>,
        local_peer_id: PeerId,
        request_timeout: Duration,
    ) -> Self {
        Self {
            commands,
            local_peer_id,
            request_timeout,
        }
    }

    fn send(&self, command: Command) -> Result<(), NetError> {
        self.commands.send(command).map_err(|_| NetError::Stopped)
    }

    /// Sends a command carrying a oneshot, and waits for the answer.
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetError> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx))?;
        rx.await.map_err(|_| NetError::Stopped)
    }

    /// Subscribes to the block and transaction topics of the network of `genesis`.
    ///
    /// # Errors
    /// [`NetError::AlreadyJoined`] if the node already joined another network.
    pub async fn join(&self, genesis: BlockHash) -> Result<(), NetError> {
        self.ask(|reply| Command::Join { genesis, reply }).await?
    }

    /// Gossips a block. Before any peer subscribes (or before `join`) it is queued and sent
    /// once one does; publishing the same block twice is harmless.
    pub async fn publish_block(&self, block: &Block) {
        let name = block.block_hash().to_string();
        crate::metrics::metrics().gossip("out", "blocks");
        self.publish(TopicKind::Block, to_bytes(block), name);
    }

    /// Gossips a transaction, queued like [`Self::publish_block`].
    pub async fn publish_tx(&self, tx: &Transaction) {
        let data = to_bytes(tx);
        // the txid is SHA-256d of exactly these bytes: no need to encode twice
        let name = Txid(sha256d(&data)).to_string();
        crate::metrics::metrics().gossip("out", "txs");
        self.publish(TopicKind::Tx, data, name);
    }

    /// Gossips arbitrary bytes on the block (`block = true`) or tx topic. Only for tests that
    /// play a misbehaving peer; node code uses [`Self::publish_block`] and [`Self::publish_tx`].
    #[doc(hidden)]
    pub fn publish_raw(&self, block: bool, data: Vec<u8>) {
        let kind = if block {
            TopicKind::Block
        } else {
            TopicKind::Tx
        };
        self.publish(kind, data, "raw bytes".to_string());
    }

    fn publish(&self, kind: TopicKind, data: Vec<u8>, name: String) {
        // After shutdown there is no one to publish to.
        let _ = self.send(Command::Publish { kind, data, name });
    }

    /// Reports the verdict on a gossip message: Accept forwards it, Reject charges `peer`
    /// [`Misbehaviour::High`] (three rejects get it banned), Ignore drops it. Report within
    /// [`super::REPORT_WINDOW`] of receiving it.
    pub fn report(&self, id: MessageId, peer: PeerId, verdict: Verdict) {
        let _ = self.send(Command::Report {
            id: id.0,
            peer: peer.0,
            verdict,
        });
    }

    /// Sends a sync request to `peer` (dialing it if a route is known) and waits for the answer.
    ///
    /// # Errors
    /// [`NetError::Timeout`] after the configured request timeout, [`NetError::BadResponse`]
    /// for an answer that does not decode, [`NetError::RequestFailed`] when the peer cannot be
    /// reached or the connection drops.
    pub async fn request(&self, peer: PeerId, request: Request) -> Result<Response, NetError> {
        let asked = self.ask(|reply| Command::Request {
            peer: peer.0,
            request,
            reply,
        });
        // The swarm times the request out itself; this is a backstop in case it never answers.
        match tokio::time::timeout(self.request_timeout + Duration::from_secs(5), asked).await {
            Ok(answer) => answer?,
            Err(_) => Err(NetError::Timeout { peer }),
        }
    }

    /// Charges `peer` for an offence: its score drops by [`Misbehaviour::points`], and the
    /// network disconnects or bans it when the score says so (a ban ends with
    /// [`super::NetworkEvent::PeerBanned`]). Fire and forget.
    ///
    /// `reason` starts with a short stable phrase, details after a colon
    /// (`"invalid transaction: bad signature"`): the phrase labels the penalty metric.
    pub fn report_peer(&self, peer: PeerId, offence: Misbehaviour, reason: &str) {
        let _ = self.send(Command::ReportPeer {
            peer: peer.0,
            offence,
            reason: reason.to_owned(),
        });
    }

    /// Bans `peer` now ([`Misbehaviour::Fatal`]): it is put on the block list (with its IP
    /// unless local), disconnected, and not reconnected to until the ban expires. Returns once
    /// the ban is in place.
    pub async fn ban(&self, peer: PeerId, reason: &str) {
        let reason = reason.to_owned();
        let _ = self
            .ask(|reply| Command::Ban {
                peer: peer.0,
                reason,
                reply,
            })
            .await;
    }

    /// Closes the connections to `peer` without a penalty (Bitcoin Core's `disconnectnode`):
    /// either side may connect again. Returns whether it was connected.
    pub async fn disconnect(&self, peer: PeerId) -> bool {
        self.ask(|reply| Command::Disconnect {
            peer: peer.0,
            reply,
        })
        .await
        .unwrap_or(false)
    }

    /// Asks the network to close the connections to `peer` without waiting for it (the
    /// node's own disconnects, e.g. of a peer that withholds blocks; no penalty by itself).
    pub fn disconnect_soon(&self, peer: PeerId) {
        let (reply, _) = oneshot::channel();
        let _ = self.send(Command::Disconnect {
            peer: peer.0,
            reply,
        });
    }

    /// The network group of `peer`'s address, for allowances kept per group as well as per
    /// identity: its IPv4 /16 or IPv6 /64, as an address; `None` for a local address (a
    /// loopback testnet is one address) or a peer we do not know.
    pub async fn peer_group(&self, peer: PeerId) -> Option<std::net::IpAddr> {
        self.ask(|reply| Command::PeerGroup {
            peer: peer.0,
            reply,
        })
        .await
        .ok()
        .flatten()
    }

    /// Lifts the ban of `peer` (Core's `setban remove`): it may connect and be dialed again,
    /// with a fresh score. IPs banned with it (never loopback ones) stay denied until their
    /// ban expires. Returns whether it was banned.
    pub async fn unban(&self, peer: PeerId) -> bool {
        self.ask(|reply| Command::Unban {
            peer: peer.0,
            reply,
        })
        .await
        .unwrap_or(false)
    }

    /// The banned peers, each with the time its ban still runs (Core's `listbanned`).
    pub async fn bans(&self) -> Vec<(PeerId, Duration)> {
        self.ask(|reply| Command::Bans { reply })
            .await
            .unwrap_or_default()
    }

    /// Connects to the multiaddr `addr`, returning once connected.
    ///
    /// # Errors
    /// [`NetError::InvalidAddress`], or [`NetError::Dial`] if the connection fails.
    pub async fn dial(&self, addr: &str) -> Result<(), NetError> {
        let parsed = parse_addr(addr)?;
        let asked = self.ask(|reply| Command::Dial {
            addr: parsed,
            reply,
        });
        match tokio::time::timeout(self.request_timeout, asked).await {
            Ok(answer) => answer?,
            Err(_) => Err(NetError::Dial {
                addr: addr.to_owned(),
                reason: "timed out".to_owned(),
            }),
        }
    }

    /// The connected peers (empty once the service has stopped).
    pub async fn peers(&self) -> Vec<PeerInfo> {
        self.ask(|reply| Command::Peers { reply })
            .await
            .unwrap_or_default()
    }

    /// Records the Status the sync layer received from `peer` (shown by [`Self::peers`]).
    pub fn set_peer_status(&self, peer: PeerId, status: Status) {
        let _ = self.send(Command::SetStatus {
            peer: peer.0,
            status,
            raise_only: false,
        });
    }

    /// `peer` sent us a block that became our tip `ours`: it has at least that chain now, so
    /// its known status (from the last Status exchange) moves up to it.
    pub fn note_peer_tip(&self, peer: PeerId, ours: Status) {
        let _ = self.send(Command::SetStatus {
            peer: peer.0,
            status: ours,
            raise_only: true,
        });
    }

    /// This node's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// The addresses the node listens on (empty once the service has stopped).
    pub async fn listen_addrs(&self) -> Vec<String> {
        self.ask(|reply| Command::ListenAddrs { reply })
            .await
            .unwrap_or_default()
    }
}
