//! How a block changes the UTXO set, defined once: [`apply_block`] and [`unapply_block`] over
//! any [`CoinSet`]. The store's write view (connect, disconnect, reindex) and the consistency
//! check's in-memory replay both go through here, so they cannot disagree.
//!
//! A block is applied transaction by transaction: a non-coinbase transaction first spends its
//! inputs, then every transaction adds its outputs. So a transaction may spend an output of an
//! earlier one in the same block, and undoing walks everything in reverse.

use std::collections::BTreeMap;

use gossipcoin_proto::{Block, Coin, OutPoint};

use super::error::StoreError;

/// A set of unspent coins that a block can be applied to.
pub(crate) trait CoinSet {
    /// Adds a coin; [`StoreError::DuplicateCoin`] if the outpoint is already unspent.
    fn add_coin(&mut self, outpoint: OutPoint, coin: Coin) -> Result<(), StoreError>;
    /// Removes and returns a coin; [`StoreError::MissingCoin`] if it is not unspent.
    fn remove_coin(&mut self, outpoint: &OutPoint) -> Result<Coin, StoreError>;
}

impl CoinSet for BTreeMap<OutPoint, Coin> {
    fn add_coin(&mut self, outpoint: OutPoint, coin: Coin) -> Result<(), StoreError> {
        match self.insert(outpoint, coin) {
            None => Ok(()),
            Some(_) => Err(StoreError::DuplicateCoin(outpoint)),
        }
    }

    fn remove_coin(&mut self, outpoint: &OutPoint) -> Result<Coin, StoreError> {
        self.remove(outpoint)
            .ok_or(StoreError::MissingCoin(*outpoint))
    }
}

/// The number of coins a block spends (its non-coinbase inputs): the length of its undo data.
pub(crate) fn spent_count(block: &Block) -> usize {
    block
        .txs
        .iter()
        .filter(|tx| !tx.is_coinbase())
        .map(|tx| tx.inputs.len())
        .sum()
}

fn outpoint(txid: gossipcoin_proto::Txid, vout: usize) -> Result<OutPoint, StoreError> {
    let vout = u32::try_from(vout)
        .map_err(|_| StoreError::Corrupt(format!("transaction {txid} has over 2^32 outputs")))?;
    Ok(OutPoint { txid, vout })
}

/// Applies `block` (at `height`) to `set`; returns the coins it spent, in block order.
pub(crate) fn apply_block(
    set: &mut impl CoinSet,
    block: &Block,
    height: u32,
) -> Result<Vec<Coin>, StoreError> {
    let mut spent = Vec::with_capacity(spent_count(block));
    for tx in &block.txs {
        let is_coinbase = tx.is_coinbase();
        if !is_coinbase {
            for input in &tx.inputs {
                spent.push(set.remove_coin(&input.prevout)?);
            }
        }
        let txid = tx.compute_txid();
        for (vout, output) in tx.outputs.iter().enumerate() {
            let coin = Coin {
                output: *output,
                height,
                is_coinbase,
            };
            set.add_coin(outpoint(txid, vout)?, coin)?;
        }
    }
    Ok(spent)
}

/// Reverses [`apply_block`]: removes the block's outputs and restores the coins it spent from
/// `undo`. Fails if `undo` does not fit the block or an output is not as the block created it.
pub(crate) fn unapply_block(
    set: &mut impl CoinSet,
    block: &Block,
    undo: &[Coin],
) -> Result<(), StoreError> {
    let hash = block.block_hash();
    if undo.len() != spent_count(block) {
        return Err(StoreError::Corrupt(format!(
            "undo data of block {hash} has {} coins but the block spends {}",
            undo.len(),
            spent_count(block)
        )));
    }
    let mut rest = undo.len();
    for tx in block.txs.iter().rev() {
        let txid = tx.compute_txid();
        for (vout, output) in tx.outputs.iter().enumerate().rev() {
            let op = outpoint(txid, vout)?;
            let coin = set.remove_coin(&op)?;
            if coin.output != *output {
                return Err(StoreError::Corrupt(format!(
                    "unspent coin {op} differs from output {vout} of {txid} in block {hash}"
                )));
            }
        }
        if !tx.is_coinbase() {
            for input in tx.inputs.iter().rev() {
                rest -= 1;
                set.add_coin(input.prevout, undo[rest])?;
            }
        }
    }
    Ok(())
}
