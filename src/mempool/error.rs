//! `MempoolError`: why a transaction was not added to the pool, and whether that proves the
//! peer that sent it misbehaved.
//!
//! Gossip maps [`MempoolError::is_peer_misbehaviour`] true to Reject (penalise the sender) and
//! false to Ignore: a duplicate, a conflict with a transaction seen first, an orphan, a fee under
//! our own policy or a full pool say nothing bad about the sender.

use gossipcoin_proto::{Amount, OutPoint, Txid};

use super::FeeRate;
use super::packages::ChainLimit;
use super::replace::ReplacementError;
use crate::consensus::ValidationError;

/// Why [`super::Mempool::insert`] refused a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    #[error("transaction {txid} is already in the mempool")]
    AlreadyKnown { txid: Txid },
    /// An input another pool transaction spends, and not enough fee to replace it (a higher
    /// fee rate than it, and its fees plus the incremental rate on the new size).
    #[error(
        "transaction {txid} spends {outpoint}, which mempool transaction {with} already spends \
         (a replacement must pay a higher fee rate and more fees)"
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
    #[error("transaction {txid} pays {fee_rate}, below the mempool's minimum of {min_fee_rate}")]
    FeeTooLow {
        txid: Txid,
        fee_rate: FeeRate,
        min_fee_rate: FeeRate,
    },
    #[error(
        "the mempool is full: transaction {txid} ({fee_rate}) would be the first to be evicted"
    )]
    PoolFull { txid: Txid, fee_rate: FeeRate },
    /// An output worth less than what spending it costs at the dust rate.
    #[error(
        "transaction {txid} output {vout} pays {value}, below the dust threshold of {threshold}"
    )]
    Dust {
        txid: Txid,
        vout: u32,
        value: Amount,
        threshold: Amount,
    },
    /// Past the limits on chains of unconfirmed transactions.
    #[error("transaction {txid} is refused: {limit}")]
    TooLongChain { txid: Txid, limit: ChainLimit },
    /// A replacement refused for another reason than its fee.
    #[error(
        "transaction {txid} cannot replace the mempool transactions it conflicts with: {reason}"
    )]
    ReplacementRefused {
        txid: Txid,
        reason: ReplacementError,
    },
    /// The transaction was in the pool and a transaction paying more replaced it.
    #[error("transaction {txid} was replaced in the mempool by {by}, which pays more")]
    Replaced { txid: Txid, by: Txid },
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
            | Self::Dust { .. }
            | Self::TooLongChain { .. }
            | Self::ReplacementRefused { .. }
            | Self::Replaced { .. }
            | Self::Unavailable(_) => false,
        }
    }
}
