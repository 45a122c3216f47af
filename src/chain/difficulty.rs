//! What a block on a given parent must carry, read from the store: its bits (fixed, or ASERT
//! from the chain's anchor, `consensus::asert`) and the median time past its time must exceed.
//!
//! Everything is derived from stored headers, so a restarted node, a node that synced, and the
//! miner building a template all compute the same targets.

use gossipcoin_proto::BlockHash;

use super::{Chain, ChainError};
use crate::consensus::{self, Anchor, HeaderContext};
use crate::params::{ChainParams, Retarget};
use crate::store::{ChainRead, IndexEntry, StoreError};

/// The ASERT anchor of the chain in `r` (`None` with fixed difficulty): the one the parameters
/// name, or else the genesis block, whose header is read from the store.
pub fn anchor(r: &impl ChainRead, params: &ChainParams) -> Result<Option<Anchor>, StoreError> {
    if params.retarget == Retarget::Fixed {
        return Ok(None);
    }
    let no_genesis = || StoreError::Corrupt("the store has no genesis block".into());
    let hash = r.hash_at(0)?.ok_or_else(no_genesis)?;
    let genesis = r.index(&hash)?.ok_or_else(no_genesis)?;
    Ok(consensus::asert_anchor(params, &genesis.header))
}

/// The bits a block on `parent` must carry, with the chain's `anchor` ([`anchor`]).
pub fn bits_after(params: &ChainParams, anchor: Option<&Anchor>, parent: &IndexEntry) -> u32 {
    consensus::required_bits(params, anchor, parent.height, &parent.header)
}

/// What a header on `parent` is judged against: the bits it must carry, the median time past of
/// `parent` and its ancestors (read from `r`, so uncommitted blocks of a write count), `now`.
pub fn context(
    r: &impl ChainRead,
    params: &ChainParams,
    anchor: Option<&Anchor>,
    parent: &IndexEntry,
    now: u32,
) -> Result<HeaderContext, StoreError> {
    let times = r.recent_times(&parent.hash(), params.median_time_span)?;
    Ok(HeaderContext {
        expected_bits: bits_after(params, anchor, parent),
        median_time_past: consensus::median_time_past(&times),
        now,
    })
}

impl Chain {
    /// The bits the next block on `prev` must carry: what a miner puts in its template.
    pub fn next_bits(&self, prev: &BlockHash) -> Result<u32, ChainError> {
        let r = self.store.read()?;
        let parent = r.index(prev)?.ok_or(StoreError::UnknownBlock(*prev))?;
        let anchor = anchor(&r, &self.params)?;
        Ok(bits_after(&self.params, anchor.as_ref(), &parent))
    }
}

/// Blocks over which [`Summary::mean_interval_secs`] is taken.
pub const MEAN_INTERVAL_BLOCKS: u32 = 30;

/// The difficulty at the tip of the main chain, as `/status` shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// The bits the next block must carry.
    pub next_bits: u32,
    /// How much harder that is than the proof-of-work limit (1.0 at the limit).
    pub difficulty: f64,
    /// The mean time between the last [`MEAN_INTERVAL_BLOCKS`] main-chain blocks (fewer near
    /// genesis; none at genesis), from their header times.
    pub mean_interval_secs: Option<f64>,
}

/// [`Summary`] of the main chain in `r`, whose tip is `tip`.
pub fn summary(
    r: &impl ChainRead,
    params: &ChainParams,
    tip: &BlockHash,
) -> Result<Summary, StoreError> {
    let entry = r.index(tip)?.ok_or(StoreError::UnknownBlock(*tip))?;
    let anchor = anchor(r, params)?;
    let next_bits = bits_after(params, anchor.as_ref(), &entry);
    let span = entry.height.min(MEAN_INTERVAL_BLOCKS);
    let mean_interval_secs = match r.hash_at(entry.height - span)? {
        Some(hash) if span > 0 => r.index(&hash)?.map(|old| {
            (i64::from(entry.header.time) - i64::from(old.header.time)) as f64 / f64::from(span)
        }),
        _ => None,
    };
    Ok(Summary {
        next_bits,
        difficulty: consensus::difficulty(params, next_bits),
        mean_interval_secs,
    })
}
