//! Consensus rules as pure functions: no I/O, no storage, no async. Everything the node needs to
//! decide whether a block or transaction is valid, testable in isolation.
//!
//! Which function checks which rule (DESIGN.md §2–3):
//!
//! | function | rules |
//! |---|---|
//! | [`check_header`] | target bits (fixed: `pow_bits`; ASERT: within the limit) and proof of work of a header alone |
//! | [`check_block`] | [`check_header`]; merkle root; no repeated txid (CVE-2012-2459); block size; exactly one coinbase, first, with a null signature and key; every tx passes [`check_transaction`] |
//! | [`check_transaction`] | inputs and outputs not empty; tx size; output sum ≤ `MAX_MONEY`; no outpoint twice in one tx; no null outpoint outside a coinbase |
//! | [`check_header_context`] | bits = [`required_bits`] on the parent (fixed, or ASERT from its [`asert_anchor`], `asert.rs`); time > [`median_time_past`] of the previous blocks; time ≤ now + `max_future_block_time` |
//! | [`check_block_spends`] | coinbase carries the height; every input exists and is unspent; no outpoint spent twice in the block; per tx as [`check_tx_spends`]; coinbase ≤ subsidy + fees. Split in two for pipelining: [`check_block_coins`] (all but signatures) and [`SignatureChecks::verify`] |
//! | [`check_tx_spends`] | coinbase maturity; input and output sums ≤ `MAX_MONEY`; outputs ≤ inputs (fee); each key owns its coin; each signature |
//!
//! A node validates a received block with `check_block`, then (knowing its parent)
//! `check_header_context`, then `check_block_spends` against the parent's UTXO set; the link to
//! the parent and fork choice are the chain's business. The mempool uses `check_transaction` and
//! `check_tx_spends`.
//!
//! Coinbase maturity: a coinbase output created at height `h` is spendable from height
//! `h + max(coinbase_maturity, 1)`: never in its own block, from the next block on the devnet
//! (maturity 0), and 100 blocks later with Bitcoin's 100. Other outputs may be spent by a later
//! transaction of the very block that created them.
//!
//! What to do with a [`ValidationError`]:
//! - [`ValidationError::is_peer_misbehaviour`] false ([`ValidationError::TimeTooNew`],
//!   [`ValidationError::ImmatureCoinbase`]): the data may become valid later; drop it without
//!   penalising the sender (gossip: Ignore).
//! - [`ValidationError::is_mutation`] true (bad merkle root, repeated txid): penalise the sender,
//!   but do not mark the block hash invalid; the unaltered block may be valid.
//! - anything else: provably invalid; reject, penalise, and remember the block as invalid.
//!
//! Cost: each check encodes a transaction at most once, hashes in parallel where there are
//! thousands of hashes, and verifies signatures in parallel on all cores (rayon), so checking a
//! block costs little more than verifying its signatures.

pub mod asert;
mod block;
mod error;
mod header;
mod spend;
#[cfg(test)]
pub(crate) mod testutil;
mod transaction;
mod tx_spend;

pub use asert::{Anchor, asert_anchor, difficulty, required_bits};
pub use block::check_block;
pub use error::ValidationError;
pub use header::{HeaderContext, check_header, check_header_context, median_time_past};
pub use spend::{
    BlockSpends, SignatureChecks, check_block_coins, check_block_spends, sighash_commitments,
};
pub use transaction::check_transaction;
pub(crate) use transaction::{check_transaction_sized, txid_and_size};
pub use tx_spend::{check_tx_spends, spendable_at};
