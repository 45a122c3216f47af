//! `NetError`: everything that can go wrong in the network layer, with no libp2p type inside.
//!
//! libp2p errors are kept as text. [`NetError::is_peer_misbehaviour`] says whether the remote
//! peer is to blame (and so loses score), as opposed to our configuration, the local machine or
//! an unlucky network.

use std::path::PathBuf;

use gossipcoin_proto::BlockHash;

use super::PeerId;

/// Why a network operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("invalid multiaddr {addr:?}: {reason}")]
    InvalidAddress { addr: String, reason: String },
    #[error("invalid peer id {input:?}: {reason}")]
    InvalidPeerId { input: String, reason: String },
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    #[error("cannot dial {addr}: {reason}")]
    Dial { addr: String, reason: String },
    #[error("cannot {action} the node key file {}: {source}", path.display())]
    KeyIo {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the node key file {} is corrupt ({reason}); it was left untouched — move it away to \
         start with a new peer id",
        path.display()
    )]
    KeyCorrupt { path: PathBuf, reason: String },
    #[error("invalid network configuration: {0}")]
    Config(String),
    #[error("already joined the network of genesis {joined}; cannot also join {requested}")]
    AlreadyJoined {
        joined: BlockHash,
        requested: BlockHash,
    },
    #[error("request to {peer} timed out")]
    Timeout { peer: PeerId },
    #[error("request to {peer} failed: {reason}")]
    RequestFailed { peer: PeerId, reason: String },
    #[error("peer {peer} sent an invalid response: {reason}")]
    BadResponse { peer: PeerId, reason: String },
    #[error("the network service has stopped")]
    Stopped,
}

impl NetError {
    /// Whether the remote peer is to blame: it sent something no honest peer sends.
    pub fn is_peer_misbehaviour(&self) -> bool {
        matches!(self, Self::BadResponse { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bad_responses_blame_the_peer() {
        let peer: PeerId = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
            .parse()
            .unwrap();
        assert!(
            NetError::BadResponse {
                peer,
                reason: "garbage".into()
            }
            .is_peer_misbehaviour()
        );
        assert!(!NetError::Timeout { peer }.is_peer_misbehaviour());
        assert!(!NetError::Stopped.is_peer_misbehaviour());
    }
}
