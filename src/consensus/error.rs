//! `ValidationError`: one variant per consensus rule, with the context needed to act on it.
//!
//! Messages are lower-case and name the offending transaction, input or outpoint. Two questions
//! callers ask of every error have a method each:
//! - [`ValidationError::is_peer_misbehaviour`]: did the sender provably send invalid data (reject
//!   and penalise), or may the data become valid later (ignore, no penalty)?
//! - [`ValidationError::is_mutation`]: may the block header still belong to a valid block whose
//!   transactions were altered in transit (so its hash must not be remembered as invalid)?

use gossipcoin_proto::{Amount, BlockHash, MerkleRoot, OutPoint, Txid};

use crate::keys::SigError;

/// Why a block, header or transaction breaks a consensus rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    // ---- block, context-free ----
    #[error("block is {size} bytes, above the limit of {max} bytes")]
    BlockTooLarge { size: usize, max: usize },
    #[error("block has {count} transactions, more than {max} could fit in its size limit")]
    TooManyTransactions { count: usize, max: usize },
    #[error("transaction {index} of the block has no inputs or no outputs")]
    EmptyTransaction { index: usize },
    #[error("block has target bits {got:#010x}, but this chain requires {expected:#010x}")]
    WrongBits { got: u32, expected: u32 },
    #[error(
        "block has target bits {got:#010x}, not a target within this chain's limit {limit:#010x}"
    )]
    BitsOutOfRange { got: u32, limit: u32 },
    #[error("block hash {hash} does not meet the proof-of-work target")]
    HighHash { hash: BlockHash },
    #[error("merkle root {header} in the header does not match the transactions ({computed})")]
    BadMerkleRoot {
        header: MerkleRoot,
        computed: MerkleRoot,
    },
    #[error("block repeats transaction {txid} (a mutated block, CVE-2012-2459)")]
    DuplicateTxid { txid: Txid },
    #[error("block has no coinbase transaction")]
    NoCoinbase,
    #[error("the coinbase must be the first transaction, but transaction {index} is a coinbase")]
    CoinbaseNotFirst { index: usize },
    #[error("block has more than one coinbase: transaction {index} is a second one")]
    MultipleCoinbase { index: usize },
    #[error("coinbase input must carry an all-zero signature and public key")]
    BadCoinbaseInput,

    // ---- block, header context ----
    #[error("block time {time} is not after the median time {median} of the previous blocks")]
    TimeTooOld { time: u32, median: u32 },
    #[error("block time {time} is too far in the future (at most {max} now); check the clocks")]
    TimeTooNew { time: u32, max: u32 },

    // ---- transaction, context-free ----
    #[error("transaction {txid} has no inputs")]
    EmptyInputs { txid: Txid },
    #[error("transaction {txid} has no outputs")]
    EmptyOutputs { txid: Txid },
    #[error("transaction {txid} is {size} bytes, above the limit of {max} bytes")]
    TxTooLarge { txid: Txid, size: usize, max: usize },
    #[error("transaction {txid} spends {outpoint} in two of its inputs")]
    DuplicateInput { txid: Txid, outpoint: OutPoint },
    #[error("input {input} of transaction {txid} has a coinbase (null) outpoint")]
    NullPrevout { txid: Txid, input: u32 },
    #[error("amounts of transaction {txid} add up to more than 21000000 coins")]
    AmountOverflow { txid: Txid },

    // ---- spending, against the UTXO set ----
    #[error("coinbase transaction {txid} is only valid as the first transaction of a block")]
    UnexpectedCoinbase { txid: Txid },
    #[error("coinbase outpoint carries height {got}, but the block is at height {expected}")]
    BadCoinbaseHeight { got: u32, expected: u32 },
    #[error("transaction {txid} spends {outpoint}, which is not an unspent output of this chain")]
    MissingInput { txid: Txid, outpoint: OutPoint },
    #[error("transaction {txid} spends {outpoint}, which the block already spent")]
    DoubleSpend { txid: Txid, outpoint: OutPoint },
    #[error(
        "transaction {txid} spends coinbase output {outpoint} from height {coin_height} at \
         height {height}; it can be spent from height {spendable_at}"
    )]
    ImmatureCoinbase {
        txid: Txid,
        outpoint: OutPoint,
        coin_height: u32,
        height: u32,
        spendable_at: u32,
    },
    #[error("transaction {txid} spends {inputs} coins but its outputs pay {outputs}")]
    OutputsExceedInputs {
        txid: Txid,
        inputs: Amount,
        outputs: Amount,
    },
    #[error("coinbase pays {paid} coins, but subsidy plus fees allow only {allowed}")]
    CoinbaseTooLarge { paid: Amount, allowed: Amount },
    #[error("input {input} of transaction {txid}: the public key does not own the spent coin")]
    PubkeyMismatch { txid: Txid, input: u32 },
    #[error("input {input} of transaction {txid} has a bad signature: {reason}")]
    BadSignature {
        txid: Txid,
        input: u32,
        reason: SigError,
    },
}

impl ValidationError {
    /// Whether the data is provably invalid, so the peer that sent it misbehaved.
    ///
    /// `false` only for what may become valid later: a block time too far ahead of our clock
    /// (our clock may be behind), and a spend of an immature coinbase (a loose transaction
    /// becomes valid once the coin matures; a peer one block ahead of us may relay it honestly).
    /// A *block* failing the maturity rule is still invalid for good, as its height is fixed.
    pub fn is_peer_misbehaviour(&self) -> bool {
        !matches!(
            self,
            Self::TimeTooNew { .. } | Self::ImmatureCoinbase { .. }
        )
    }

    /// [`Self::is_peer_misbehaviour`] for an error found in a *block*: a block's height is
    /// fixed, so a spend of an immature coinbase in it never becomes valid. Only a block time
    /// ahead of our clock may.
    pub fn is_block_misbehaviour(&self) -> bool {
        !matches!(self, Self::TimeTooNew { .. })
    }

    /// Whether the header may still belong to a valid block whose transaction list was altered
    /// in transit: a bad merkle root, a repeated txid that keeps the root, or a structural
    /// fault found before the merkle root was checked (too many or empty transactions, too
    /// large). The sender sent invalid data, but the block hash must not be remembered as
    /// invalid: the unaltered block with the same hash may be valid.
    pub fn is_mutation(&self) -> bool {
        matches!(
            self,
            Self::BadMerkleRoot { .. }
                | Self::DuplicateTxid { .. }
                | Self::TooManyTransactions { .. }
                | Self::EmptyTransaction { .. }
                | Self::BlockTooLarge { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_may_become_valid_is_not_misbehaviour() {
        let txid = Txid([1; 32]);
        let outpoint = OutPoint { txid, vout: 0 };
        assert!(!ValidationError::TimeTooNew { time: 2, max: 1 }.is_peer_misbehaviour());
        let immature = ValidationError::ImmatureCoinbase {
            txid,
            outpoint,
            coin_height: 1,
            height: 1,
            spendable_at: 2,
        };
        assert!(!immature.is_peer_misbehaviour());
        for e in [
            ValidationError::TimeTooOld { time: 1, median: 1 },
            ValidationError::HighHash {
                hash: BlockHash::ZERO,
            },
            ValidationError::MissingInput { txid, outpoint },
            ValidationError::BadSignature {
                txid,
                input: 0,
                reason: SigError::Mismatch,
            },
        ] {
            assert!(e.is_peer_misbehaviour(), "{e}");
            assert!(!e.is_mutation(), "{e}");
        }
        assert!(ValidationError::DuplicateTxid { txid }.is_mutation());
    }

    #[test]
    fn messages_name_the_culprit() {
        let e = ValidationError::BadSignature {
            txid: Txid([0xab; 32]),
            input: 3,
            reason: SigError::HighS,
        };
        let msg = e.to_string();
        assert!(msg.starts_with("input 3 of transaction abab"), "{msg}");
        assert!(msg.ends_with("high S value (malleable)"), "{msg}");
        let e = ValidationError::CoinbaseTooLarge {
            paid: Amount::from_coins(11).unwrap(),
            allowed: Amount::from_units(1_050_000_000).unwrap(),
        };
        assert_eq!(
            e.to_string(),
            "coinbase pays 11 coins, but subsidy plus fees allow only 10.5"
        );
    }
}
