//! The domain types the rest of the node sees: peer and message ids, verdicts, events, replies.
//!
//! They wrap libp2p types privately, so no libp2p type leaves `net/` and the chain, mempool and
//! API code never depend on libp2p's version.

use std::fmt;
use std::str::FromStr;

use gossipcoin_proto::message::{Request, Response, Status};
use gossipcoin_proto::{Block, Transaction};
use libp2p::gossipsub;
use tokio::sync::oneshot;

use super::NetError;
use super::codec::Outbound;

/// What a connection to a peer is for (Bitcoin Core's connection types).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerKind {
    /// The peer dialled us.
    Inbound,
    /// Opened by the DHT for one of its queries; closed soon unless the node needs a peer.
    Discovery,
    /// Dialled on request (`connect`, `testnet heal`): outside the targets.
    Manual,
    /// One of the node's block-relay-only peers: blocks, no mempool exchange, no addresses.
    BlockRelay,
    /// One of the node's full-relay outbound peers (the bootstrap peer is one).
    FullRelay,
}

impl PeerKind {
    /// The name shown in `/peers` and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Discovery => "discovery",
            Self::Manual => "manual",
            Self::BlockRelay => "block-relay-only",
            Self::FullRelay => "outbound-full-relay",
        }
    }

    /// Whether transactions and mempools are exchanged with such a peer.
    pub fn relays_transactions(self) -> bool {
        self != Self::BlockRelay
    }
}

impl fmt::Display for PeerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A peer's identity: the hash of its public key, shown in base58 (`12D3KooW...`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub(super) libp2p::PeerId);

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl PeerId {
    /// A fresh random peer id (for tests of code that keys things by peer).
    #[doc(hidden)]
    pub fn random() -> Self {
        Self(libp2p::PeerId::random())
    }
}

impl FromStr for PeerId {
    type Err = NetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self).map_err(|e| NetError::InvalidPeerId {
            input: s.to_owned(),
            reason: format!("{e}"),
        })
    }
}

/// Names one received gossip message, to report its [`Verdict`] with.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MessageId(pub(super) gossipsub::MessageId);

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({})", self.0)
    }
}

/// What the node decided about a gossip message, before it is forwarded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    /// Valid: forward it to the mesh.
    Accept,
    /// Provably invalid: drop it and penalise the peer that sent it.
    Reject,
    /// Not forwarded, no penalty: orphan, duplicate, conflict, or not checkable now.
    Ignore,
}

/// How bad a peer's offence is (Lighthouse's `PeerAction`): the points its score loses.
///
/// Scores start at 0 and slowly recover towards it; at [`super::BAN_SCORE`] (-100) the peer is
/// banned. Pick the level by how sure we are that no honest peer does it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Misbehaviour {
    /// Unmistakably hostile (a different genesis, a forged chain): ban now.
    Fatal,
    /// Invalid data an honest peer never sends (-40: three get a ban).
    High,
    /// A malformed or over-limit request or response (-10: ten get a ban).
    Mid,
    /// Over a rate or budget; a slow or greedy peer (-1).
    Low,
}

impl Misbehaviour {
    /// The points this offence costs (a ban for [`Misbehaviour::Fatal`]).
    pub fn points(self) -> f64 {
        match self {
            Self::Fatal => f64::INFINITY,
            Self::High => 40.0,
            Self::Mid => 10.0,
            Self::Low => 1.0,
        }
    }
}

/// What a peer is known to be, as [`super::NetHandle::peers`] reports it.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    pub peer: PeerId,
    /// The address of the connection (the dialled address, or the peer's address as we saw it).
    pub addr: String,
    /// We dialled it (one of its connections is outbound).
    pub outbound: bool,
    /// What the connection is for.
    pub kind: PeerKind,
    /// The peer's last [`Status`], once the sync layer has set it.
    pub status: Option<Status>,
    /// Our score of the peer: 0 is neutral, penalties lower it, at
    /// [`super::BAN_SCORE`] the peer is banned. It slowly recovers towards 0.
    pub score: f64,
    /// Gossipsub's own score of the peer, when gossipsub knows it.
    pub gossip_score: Option<f64>,
    /// Whether the peer is subscribed to our network's block topic (so gossip reaches it).
    pub subscribed: bool,
    /// Round-trip time of the last ping, in milliseconds.
    pub ping_ms: Option<f64>,
}

/// The way to answer one inbound request. Dropping it answers `Response::Error`.
pub struct Reply(pub(super) oneshot::Sender<Outbound>);

impl Reply {
    /// Sends the response; a reply the peer no longer waits for (timeout, disconnect) is lost.
    pub fn send(self, response: Response) {
        let _ = self.0.send(Outbound::Value(response));
    }

    /// Sends a response already in its canonical encoding (e.g.
    /// `Response::encode_blocks` over blocks as the store holds them), without decoding it.
    pub fn send_encoded(self, response: Vec<u8>) {
        let _ = self.0.send(Outbound::Encoded(response));
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Reply")
    }
}

/// What the network tells the rest of the node.
#[derive(Debug)]
pub enum NetworkEvent {
    /// A listener is up on `addr`.
    Listening { addr: String },
    /// The first connection to `peer` opened (the sync layer sends its Status now).
    PeerConnected {
        peer: PeerId,
        addr: String,
        /// We dialled it (an inbound connection is `false`).
        outbound: bool,
        /// What the connection is for.
        kind: PeerKind,
        /// We dialled one of `NetConfig::bootstrap` (by address or by its `/p2p/` id): the only
        /// kind of peer an empty node may adopt a genesis from.
        bootstrap: bool,
    },
    /// The last connection to `peer` closed.
    PeerDisconnected { peer: PeerId },
    /// `peer` was banned and disconnected. This is the last event about it: nothing it sent
    /// earlier and still queued should be acted on (no `PeerDisconnected` follows).
    PeerBanned { peer: PeerId },
    /// A block from gossip, decoded. Report a [`Verdict`] for `id` soon (within the gossip
    /// message-cache window, [`super::REPORT_WINDOW`]) or it is never forwarded.
    GossipBlock {
        id: MessageId,
        peer: PeerId,
        block: Block,
        /// The encoded size, for the node's byte bounds.
        bytes: usize,
    },
    /// A transaction from gossip, decoded; report a [`Verdict`] as for blocks.
    GossipTx {
        id: MessageId,
        peer: PeerId,
        tx: Transaction,
        /// The encoded size, for the node's byte bounds.
        bytes: usize,
    },
    /// A sync request from `peer`, within its byte, count and rate limits.
    InboundRequest {
        peer: PeerId,
        request: Request,
        reply: Reply,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_ids_round_trip_through_text_and_bad_ones_are_clear_errors() {
        let id = PeerId(libp2p::PeerId::random());
        assert_eq!(id.to_string().parse::<PeerId>().unwrap(), id);
        let err = "not-a-peer".parse::<PeerId>().unwrap_err();
        assert!(err.to_string().contains("not-a-peer"), "{err}");
    }
}
