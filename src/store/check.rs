//! The consistency check behind `verifychain` and the crash tests.
//!
//! On one snapshot it verifies, and reports every violation as a line of
//! [`StoreError::Inconsistent`]:
//! - `height_hash` is contiguous from 0; each entry's block is indexed at that height, stored
//!   (and hashes to its key), links to the previous height by `prev`, and adds its own work to
//!   the previous chain work;
//! - the tip in `meta` is the last `height_hash` entry, the genesis in `meta` the first;
//! - every main-chain block, and only those, has undo data, equal to what a replay spends;
//! - `utxo` and `addr_utxo` agree one-to-one (same outpoints, owners and amounts);
//! - `utxo` equals a replay of the main chain from genesis, computed in memory;
//! - `tx_index` lists every main-chain transaction at its block and position, and nothing else
//!   (so it has as many entries as the main chain has transactions). A schema-1 store opened
//!   read-only has no `tx_index`: that part is skipped;
//! - every `block_index` entry has a status in `block_status`, and nothing else has one; its
//!   data is in `blocks` exactly when its status has data (so entries without data are
//!   `HeaderValid`, `Failed` or `DescendantOfFailed`), and `blocks` holds nothing else;
//!   main-chain blocks are `FullyValid`; the indexed children of a failed block are
//!   `DescendantOfFailed`. In a store of schema 1 or 2 opened read-only, statuses are derived
//!   from the index (see [`ChainRead::status`]).
//!
//! Bytes that do not decode are returned as [`StoreError::Corrupt`] at once.

use std::collections::BTreeMap;
use std::iter::Peekable;

use gossipcoin_proto::{BlockHash, Coin, OutPoint, Target, Txid};

use super::Store;
use super::error::{LmdbResultExt, StoreError};
use super::tables::{
    META_GENESIS, META_TIP, addr_key, block_txids, decode_addr_key, decode_amount, decode_coin,
    decode_hash, decode_height, decode_outpoint, decode_status, decode_tx_location, decode_txid,
    decode_value, get,
};
use super::utxo::apply_block;
use super::view::{BlockStatus, ChainRead, IndexEntry, Tip};

/// What [`Store::check_consistency`] looked at.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ConsistencyReport {
    /// The tip, if the chain is not empty.
    pub tip: Option<Tip>,
    /// Main-chain blocks checked and replayed (tip height + 1).
    pub main_chain_blocks: u64,
    /// Entries in the block index (all known headers, side branches included).
    pub index_entries: u64,
    /// Blocks stored (side branches included).
    pub stored_blocks: u64,
    /// Index entries without data (headers only, failed blocks and their descendants).
    pub headers_only: u64,
    /// Index entries marked failed or descendant of failed.
    pub failed_blocks: u64,
    /// Unspent coins (equal to the address index entries).
    pub utxos: u64,
    /// Sum of every unspent coin's value, in base units.
    pub total_value: u128,
    /// Transactions in the main-chain blocks checked (coinbases included).
    pub main_chain_txs: u64,
    /// Entries in the transaction index (equal to `main_chain_txs`); `None` if the store has
    /// no transaction index (a schema-1 store opened read-only).
    pub indexed_txs: Option<u64>,
}

impl std::fmt::Display for ConsistencyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.tip {
            Some(t) => writeln!(
                f,
                "Tip: height {} hash {} work {}",
                t.height, t.hash, t.chain_work
            )?,
            None => writeln!(f, "Tip: none (empty chain)")?,
        }
        let coins = gossipcoin_proto::Amount::from_units(
            u64::try_from(self.total_value).unwrap_or(u64::MAX),
        );
        writeln!(f, "Main-chain blocks replayed: {}", self.main_chain_blocks)?;
        writeln!(
            f,
            "Index entries: {}, stored blocks: {}, headers only: {}, failed: {}",
            self.index_entries, self.stored_blocks, self.headers_only, self.failed_blocks
        )?;
        match coins {
            Some(c) => writeln!(f, "Unspent outputs: {} holding {} coins", self.utxos, c)?,
            None => writeln!(
                f,
                "Unspent outputs: {} holding {} base units",
                self.utxos, self.total_value
            )?,
        }
        match self.indexed_txs {
            Some(indexed) => {
                writeln!(
                    f,
                    "Transactions: {} on the main chain, {indexed} indexed",
                    self.main_chain_txs
                )?;
                write!(
                    f,
                    "OK: tip, height index, UTXO set, address index, transaction index and block \
                     statuses agree with the blocks"
                )
            }
            None => {
                writeln!(
                    f,
                    "Transactions: {} on the main chain, no transaction index (schema 1: open \
                     the store writable to build it)",
                    self.main_chain_txs
                )?;
                write!(
                    f,
                    "OK: tip, height index, UTXO set, address index and block statuses agree with \
                     the blocks"
                )
            }
        }
    }
}

/// Problems listed in full; beyond this they are only counted.
const MAX_LISTED: usize = 100;

#[derive(Default)]
struct Problems {
    listed: Vec<String>,
    unlisted: usize,
}

impl Problems {
    fn push(&mut self, problem: String) {
        if self.listed.len() < MAX_LISTED {
            self.listed.push(problem);
        } else {
            self.unlisted += 1;
        }
    }

    fn into_result(mut self, report: ConsistencyReport) -> Result<ConsistencyReport, StoreError> {
        if self.listed.is_empty() {
            return Ok(report);
        }
        if self.unlisted > 0 {
            self.listed.push(format!("... and {} more", self.unlisted));
        }
        Err(StoreError::Inconsistent(self.listed))
    }
}

impl Store {
    /// Verifies every invariant between the tables on one snapshot (reads everything: the
    /// UTXO set is replayed in memory). `Err(StoreError::Inconsistent)` lists what is wrong.
    pub fn check_consistency(&self) -> Result<ConsistencyReport, StoreError> {
        check(&self.read()?)
    }
}

/// The check itself, on any view.
pub(crate) fn check<V: ChainRead>(view: &V) -> Result<ConsistencyReport, StoreError> {
    let s = view.snap();
    let mut problems = Problems::default();
    let mut report = ConsistencyReport {
        index_entries: s.t.block_index.len(s.txn).lmdb()?,
        stored_blocks: s.t.blocks.len(s.txn).lmdb()?,
        ..ConsistencyReport::default()
    };

    // The main chain, height by height, replayed into `replay` while it stays replayable.
    let mut replay = Some(BTreeMap::<OutPoint, Coin>::new());
    let mut prev: Option<(BlockHash, IndexEntry)> = None;
    let mut height0: Option<BlockHash> = None;
    let mut last: Option<(u32, BlockHash)> = None;
    // Every main-chain transaction's place, and whether every main-chain block was read.
    let mut main_txs = BTreeMap::<Txid, (BlockHash, u32, u32)>::new();
    let mut all_txs_read = true;
    for item in s.t.height_hash.iter(s.txn).lmdb()? {
        let (key, value) = item.lmdb()?;
        let height = decode_height(key)?;
        let hash = decode_hash(value, "height_hash", key)?;
        let expected = last.map_or(0, |(h, _)| h.saturating_add(1));
        if height != expected {
            problems.push(format!(
                "height_hash skips from height {expected} to {height}"
            ));
            replay = None;
            prev = None;
        }
        if height == 0 {
            height0 = Some(hash);
        }
        last = Some((height, hash));
        report.main_chain_blocks += 1;
        let at = format!("main-chain block {hash} at height {height}");

        let Some(entry) = view.index(&hash)? else {
            problems.push(format!("{at} is not in block_index"));
            (replay, prev) = (None, None);
            continue;
        };
        if entry.height != height {
            problems.push(format!("{at} is indexed at height {}", entry.height));
        }
        let work = Target::from_compact(entry.header.bits).map(|t| t.work());
        let work = match work {
            Ok(work) => work,
            Err(e) => {
                problems.push(format!("{at} has unusable bits: {e}"));
                Default::default()
            }
        };
        let expected_work = match &prev {
            Some((prev_hash, prev_entry)) => {
                if entry.header.prev != *prev_hash {
                    problems.push(format!(
                        "{at} does not link to {prev_hash} below it: its prev is {}",
                        entry.header.prev
                    ));
                }
                Some(prev_entry.chain_work.saturating_add(work))
            }
            None if height == 0 => Some(work),
            None => None,
        };
        if expected_work.is_some_and(|w| w != entry.chain_work) {
            problems.push(format!(
                "{at} has chain work {}, not parent's + its own",
                entry.chain_work
            ));
        }
        prev = Some((hash, entry));
        match stored_status(view, &hash)? {
            Some(BlockStatus::FullyValid) => {}
            other => problems.push(format!("{at} has status {other:?}, not FullyValid")),
        }

        let undo = view.undo(&hash)?;
        if undo.is_none() {
            problems.push(format!("{at} has no undo data"));
        }
        let block = match view.block(&hash)? {
            Some(block) if block.block_hash() == hash => block,
            Some(block) => {
                problems.push(format!("{at} is stored as block {}", block.block_hash()));
                (replay, all_txs_read) = (None, false);
                continue;
            }
            None => {
                problems.push(format!("{at} is not stored"));
                (replay, all_txs_read) = (None, false);
                continue;
            }
        };
        for (txid, position) in block_txids(&block)? {
            report.main_chain_txs += 1;
            if let Some((first, ..)) = main_txs.insert(txid, (hash, height, position)) {
                problems.push(format!(
                    "transaction {txid} is in {at} and in main-chain block {first}"
                ));
            }
        }
        if let Some(set) = &mut replay {
            match apply_block(set, &block, height) {
                Ok(spent) if undo.as_ref().is_some_and(|u| *u != spent) => {
                    problems.push(format!("{at} has undo data that differs from a replay"));
                }
                Ok(_) => {}
                Err(e) => {
                    problems.push(format!("replaying {at} failed: {e}"));
                    replay = None;
                }
            }
        }
    }

    // Tip and genesis in meta against height_hash.
    let meta_hash = |key: &[u8]| -> Result<Option<BlockHash>, StoreError> {
        get(s.t.meta, s.txn, key)?
            .map(|b| decode_hash(b, "meta", key))
            .transpose()
    };
    match (meta_hash(META_TIP)?, last) {
        (None, None) => {}
        (Some(tip), Some((height, last_hash))) => {
            if tip != last_hash {
                problems.push(format!(
                    "meta tip is {tip} but the main chain ends with {last_hash} at height {height}"
                ));
            } else if let Some((_, entry)) = prev.filter(|(h, _)| *h == tip) {
                report.tip = Some(Tip {
                    hash: tip,
                    height: entry.height,
                    chain_work: entry.chain_work,
                });
            }
        }
        (Some(tip), None) => problems.push(format!("meta tip is {tip} but height_hash is empty")),
        (None, Some((height, _))) => problems.push(format!(
            "meta has no tip but height_hash goes up to height {height}"
        )),
    }
    let genesis = meta_hash(META_GENESIS)?;
    if genesis != height0 {
        problems.push(format!(
            "meta genesis is {genesis:?} but height 0 of height_hash is {height0:?}"
        ));
    }
    let undo_entries = s.t.undo.len(s.txn).lmdb()?;
    if undo_entries != report.main_chain_blocks {
        problems.push(format!(
            "undo has {undo_entries} entries for {} main-chain blocks",
            report.main_chain_blocks
        ));
    }

    // tx_index against the main chain's transactions (both ways).
    if let Some(tx_index) = s.t.tx_index {
        report.indexed_txs = Some(tx_index.len(s.txn).lmdb()?);
        let mut expected = main_txs.iter().peekable();
        for item in tx_index.iter(s.txn).lmdb()? {
            let (key, value) = item.lmdb()?;
            let txid = decode_txid(key)?;
            let (block, position) = decode_tx_location(value, key)?;
            while let Some((missing, place)) = expected.next_if(|(t, _)| **t < txid) {
                problems.push(not_indexed(missing, place));
            }
            match expected.next_if(|(t, _)| **t == txid) {
                Some((_, &(hash, height, at))) if (hash, at) != (block, position) => {
                    problems.push(format!(
                        "tx_index places transaction {txid} at position {position} of block \
                         {block}, but it is at position {at} of main-chain block {hash} at height \
                         {height}"
                    ));
                }
                Some(_) => {}
                None if all_txs_read => problems.push(format!(
                    "tx_index lists transaction {txid} (position {position} of block {block}) but \
                     it is not on the main chain"
                )),
                None => {}
            }
        }
        for (missing, place) in expected {
            problems.push(not_indexed(missing, place));
        }
        if !all_txs_read {
            problems.push("tx_index was not checked for extra entries: see above".into());
        }
    }

    check_statuses(view, &mut report, &mut problems)?;

    // utxo against addr_utxo (both ways) and against the replay.
    let mut replayed = replay.as_ref().map(|set| set.iter().peekable());
    for item in s.t.utxo.iter(s.txn).lmdb()? {
        let (key, value) = item.lmdb()?;
        let (outpoint, coin) = (decode_outpoint(key)?, decode_coin(value, key)?);
        report.utxos += 1;
        report.total_value += u128::from(coin.output.value.units());
        let akey = addr_key(&coin.output.owner, &outpoint);
        match get(s.t.addr_utxo, s.txn, &akey)? {
            None => problems.push(format!(
                "unspent coin {outpoint} of {} is missing from addr_utxo",
                coin.output.owner
            )),
            Some(b) if decode_amount(b, "addr_utxo", &akey)? != coin.output.value => problems.push(
                format!("addr_utxo has another amount for unspent coin {outpoint}"),
            ),
            Some(_) => {}
        }
        if let Some(replayed) = &mut replayed {
            compare_with_replay(replayed, Some((&outpoint, &coin)), &mut problems);
        }
    }
    if let Some(replayed) = &mut replayed {
        compare_with_replay(replayed, None, &mut problems);
    } else {
        problems.push("the UTXO set was not compared with a replay: see above".into());
    }
    for item in s.t.addr_utxo.iter(s.txn).lmdb()? {
        let (key, _) = item.lmdb()?;
        let (owner, outpoint) = decode_addr_key(key)?;
        match view.coin(&outpoint)? {
            None => problems.push(format!(
                "addr_utxo lists {outpoint} for {owner} but it is not unspent"
            )),
            Some(coin) if coin.output.owner != owner => problems.push(format!(
                "addr_utxo lists {outpoint} for {owner} but its owner is {}",
                coin.output.owner
            )),
            Some(_) => {}
        }
    }
    problems.into_result(report)
}

/// The status of `hash` as stored (`None` if missing, where [`ChainRead::status`] would call
/// it corrupt), or derived from the index in a store without `block_status`.
fn stored_status<V: ChainRead>(
    view: &V,
    hash: &BlockHash,
) -> Result<Option<BlockStatus>, StoreError> {
    let s = view.snap();
    match s.t.block_status {
        Some(table) => get(table, s.txn, &hash.0)?
            .map(|b| decode_status(b, &hash.0))
            .transpose(),
        None => view.status(hash),
    }
}

/// Every index entry's status against its data and its parent's status; `block_status` and
/// `blocks` hold nothing for blocks the index does not know.
fn check_statuses<V: ChainRead>(
    view: &V,
    report: &mut ConsistencyReport,
    problems: &mut Problems,
) -> Result<(), StoreError> {
    let s = view.snap();
    // hash → (parent, status)
    let mut entries = BTreeMap::<BlockHash, (BlockHash, Option<BlockStatus>)>::new();
    let (mut with_data, mut with_status) = (0u64, 0u64);
    for item in s.t.block_index.iter(s.txn).lmdb()? {
        let (key, value) = item.lmdb()?;
        let hash = decode_hash(key, "block_index", key)?;
        let entry: IndexEntry = decode_value(value, "block_index", key)?;
        let at = format!("block {hash} at height {}", entry.height);
        let status = stored_status(view, &hash)?;
        let has_data = view.has_block(&hash)?;
        if has_data {
            with_data += 1;
        } else {
            report.headers_only += 1;
        }
        match status {
            None => problems.push(format!("{at} is indexed but has no status")),
            Some(status) => {
                with_status += 1;
                if status.is_failed() {
                    report.failed_blocks += 1;
                }
                match (status.has_data(), has_data) {
                    (true, false) => {
                        problems.push(format!("{at} is {status:?} but its data is not stored"))
                    }
                    (false, true) => {
                        problems.push(format!("{at} is {status:?} but its data is stored"))
                    }
                    _ => {}
                }
            }
        }
        entries.insert(hash, (entry.header.prev, status));
    }
    for (hash, (parent, status)) in &entries {
        let Some((_, Some(parent_status))) = entries.get(parent) else {
            continue;
        };
        if parent_status.is_failed() && *status != Some(BlockStatus::DescendantOfFailed) {
            problems.push(format!(
                "block {hash} is {status:?} but its parent {parent} is {parent_status:?}"
            ));
        }
    }
    if with_data != report.stored_blocks {
        problems.push(format!(
            "blocks has {} entries but only {with_data} indexed blocks are stored",
            report.stored_blocks
        ));
    }
    if let Some(table) = s.t.block_status {
        let statuses = table.len(s.txn).lmdb()?;
        if statuses != with_status {
            problems.push(format!(
                "block_status has {statuses} entries for {with_status} indexed blocks with one"
            ));
        }
    }
    Ok(())
}

/// The problem of a main-chain transaction missing from `tx_index`.
fn not_indexed(txid: &Txid, &(hash, height, position): &(BlockHash, u32, u32)) -> String {
    format!(
        "transaction {txid} at position {position} of main-chain block {hash} at height {height} \
         is missing from tx_index"
    )
}

/// Advances the replayed set up to `actual` (or to its end with `None`), reporting every coin
/// present on one side only or different on the two.
fn compare_with_replay<'a>(
    replayed: &mut Peekable<impl Iterator<Item = (&'a OutPoint, &'a Coin)>>,
    actual: Option<(&OutPoint, &Coin)>,
    problems: &mut Problems,
) {
    while let Some((op, coin)) = replayed.next_if(|(op, _)| actual.is_none_or(|(a, _)| *op < a)) {
        problems.push(format!(
            "coin {op} ({} units) is unspent by replay but missing from utxo",
            coin.output.value.units()
        ));
    }
    let Some((outpoint, coin)) = actual else {
        return;
    };
    match replayed.next_if(|(op, _)| *op == outpoint) {
        Some((_, expected)) if expected != coin => problems.push(format!(
            "unspent coin {outpoint} is {coin:?} but a replay gives {expected:?}"
        )),
        Some(_) => {}
        None => problems.push(format!(
            "unspent coin {outpoint} is not unspent in a replay of the main chain"
        )),
    }
}
