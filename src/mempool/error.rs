//! `MempoolError`: why a transaction was not added to the pool, and whether that proves the
//! peer that sent it misbehaved.
//!
//! Gossip maps [`MempoolError::is_peer_misbehaviour`] true to Reject (penalise the sender) and
//! false to Ignore: a duplicate, a conflict with a transaction seen first, an orphan, a fee under
//! our own policy or a full pool say nothing bad about the sender.

use gossipcoin_proto::{OutPoint, Txid};

use crate::consensus::ValidationError;

/// Why [`super::Mempool::insert`] refused a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    #[error("transaction {txid} is already in the mempool")]
    AlreadyKnown { txid: Txid },
    #[error(
        "transaction {txid} spends {outpoint}, which mempool transaction {with} already spends"
    )]
    Conflict {
        txid: Txid,
        outpoint: OutPoint,
        with: Txid,
    },
    /// Some inputs are neither in the UTXO set nor outputs of a pool transaction: an orphan (its
    /// parents may arrive later) or a spend of something already spent on chain.
    #[error(
        "transaction {txid} spends {} output(s) that are neither unspent nor in the mempool",
        missing.len()
    )]
    MissingInputs { txid: Txid, missing: Vec<OutPoint> },
    #[error(
        "transaction {txid} pays {fee_rate} units per 1000 bytes, below the minimum of {min_fee_rate}"
    )]
    FeeTooLow {
        txid: Txid,
        fee_rate: u64,
        min_fee_rate: u64,
    },
    #[error(
        "the mempool is full: transaction {txid} ({fee_rate} units per 1000 bytes) would be the \
         first to be evicted"
    )]
    PoolFull { txid: Txid, fee_rate: u64 },
    /// The node could not read its UTXO set to check the transaction (not the sender's fault).
    #[error("the node cannot check transactions right now: {0}")]
    Unavailable(String),
    /// The transaction breaks a consensus rule (or spends an immature coinbase).
    #[error("invalid transaction: {0}")]
    Invalid(#[from] ValidationError),
}

impl MempoolError {
    /// Whether the transaction is provably invalid, so the peer that relayed it misbehaved.
    ///
    /// Only [`MempoolError::Invalid`] can be, and then as the consensus error says (a spend of
    /// an immature coinbase may become valid and is not misbehaviour).
    pub fn is_peer_misbehaviour(&self) -> bool {
        match self {
            Self::Invalid(e) => e.is_peer_misbehaviour(),
            Self::AlreadyKnown { .. }
            | Self::Conflict { .. }
            | Self::MissingInputs { .. }
            | Self::FeeTooLow { .. }
            | Self::PoolFull { .. }
            | Self::Unavailable(_) => false,
        }
    }
}
