//! Initial sync: [`Chain::accept_batch`] connects a run of blocks several per write
//! transaction, verifying one block's signatures on the rayon pool while the chain thread checks
//! the next block's coins.
//!
//! Connecting one block per fsynced transaction, validation then commit, leaves the cores idle
//! for most of the time. Here, per chunk of blocks (at most [`BATCH_MAX_BLOCKS`], or what
//! [`BATCH_COMMIT_INTERVAL`] of work connects):
//! 1. the context-free checks and the signature-hash commitments of the whole batch run first,
//!    in parallel;
//! 2. in one write transaction, block after block: the header's bits against what its parent
//!    requires and its time against the median time past (earlier blocks of the transaction
//!    included), the input coins from the write view
//!    (which sees the coins the earlier blocks of the transaction created), every spending rule
//!    but the signatures, then `put_block` and `connect_block`; the block's signatures are handed
//!    to the rayon pool meanwhile;
//! 3. once every signature of the chunk is verified, the transaction is committed (fsynced, as
//!    every commit). If anything failed, it is aborted instead, and its blocks are redone one
//!    by one with [`Chain::accept_block`] up to the failing one, which so gets exactly the
//!    error, status and blame it would have had alone.
//!
//! A block that does not extend the tip (a fork, a block already stored) goes through
//! `accept_block` alone, with its reorganisation rules.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use gossipcoin_proto::Block;
use rayon::prelude::*;
use tracing::debug;

use super::{Accepted, Chain, ChainError, Origin, difficulty, prior_coins};
use crate::consensus;
use crate::store::{BlockStatus, ChainRead, IndexEntry, StoreError, Tip, WriteView};

/// A write transaction of [`Chain::accept_batch`] is committed after this much work...
pub const BATCH_COMMIT_INTERVAL: Duration = Duration::from_millis(250);
/// ...or this many blocks, whichever comes first.
pub const BATCH_MAX_BLOCKS: usize = 500;

/// What `accept_batch` did.
#[derive(Debug)]
pub struct BatchAccepted {
    /// The tip after each connected block, in order (one per connected block).
    pub connected: Vec<Tip>,
    /// The first block that was not connected (its index in the batch) and why; the blocks
    /// after it were not looked at. None when all connected.
    pub stopped: Option<(usize, ChainError)>,
}

/// One committed write of [`Chain::accept_batch_with`], reported as soon as it is durable.
#[derive(Debug, Clone, Copy)]
pub struct BatchCommit<'a> {
    /// Each block this write connected: its index in the batch and the tip after it, in order.
    pub connected: &'a [(usize, Tip)],
    /// Blocks a reorganisation in this write removed from the main chain, tip first (only
    /// when a block went through `accept_block`).
    pub disconnected: &'a [Block],
    /// How long the write took, validation and commit included.
    pub elapsed: Duration,
}

/// How a chunk's write transaction ended, when it did not fail on the store.
enum Chunk {
    /// Committed: these blocks are connected (their index in the batch and the tip after each).
    Committed(Vec<(usize, Tip)>),
    /// Aborted: block `at` broke a rule (the lowest such block of the chunk).
    Failed { at: usize },
}

/// Why a chunk's write transaction did not commit.
enum Abort {
    /// Block `at` of the batch broke a rule.
    Failed {
        at: usize,
    },
    Store(StoreError),
}

impl From<StoreError> for Abort {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl Chain {
    /// Connects `blocks`, each the child of the one before and the first the child of the tip,
    /// several per write transaction. Store failures are Err; a bad block is `stopped`.
    ///
    /// The result is the same as [`Chain::accept_block`] (with [`Origin::Requested`]) on each
    /// block in turn: the same tip, UTXO set and statuses, the same error for the first bad
    /// block, which is remembered as failed just the same. Blocks already stored are skipped;
    /// a block that does not extend the tip goes through `accept_block` alone (a fork with
    /// more work is reorganised to; one with no more work is stored as a side branch and not
    /// counted as connected).
    pub fn accept_batch(&self, blocks: &[Block], now: u32) -> Result<BatchAccepted, ChainError> {
        self.accept_batch_with(blocks, now, |_| {})
    }

    /// [`Self::accept_batch`], calling `on_commit` after each committed write that connected
    /// blocks, as soon as it is durable (so the caller can announce them even if a later write
    /// fails on the store and this returns `Err`).
    pub fn accept_batch_with(
        &self,
        blocks: &[Block],
        now: u32,
        mut on_commit: impl FnMut(BatchCommit<'_>),
    ) -> Result<BatchAccepted, ChainError> {
        // The context-free checks and signature commitments of every block, in parallel. A block
        // that fails them is left to `accept_block`, which finds the same error.
        let prepared: Vec<Option<Vec<[u8; 32]>>> = blocks
            .par_iter()
            .map(|b| {
                consensus::check_block(b, &self.params)
                    .ok()
                    .map(|()| consensus::sighash_commitments(b))
            })
            .collect();
        let mut out = BatchAccepted {
            connected: Vec::new(),
            stopped: None,
        };
        let mut i = 0;
        // Blocks before this index go through `accept_block` one by one (after a failed chunk).
        let mut one_by_one_until = 0;
        while i < blocks.len() {
            if i >= one_by_one_until
                && prepared[i].is_some()
                && blocks[i].header.prev == self.tip()?.hash
            {
                let started = Instant::now();
                match self.connect_chunk(blocks, &prepared, i, now)? {
                    Chunk::Committed(connected) if !connected.is_empty() => {
                        on_commit(BatchCommit {
                            connected: &connected,
                            disconnected: &[],
                            elapsed: started.elapsed(),
                        });
                        i += connected.len();
                        out.connected.extend(connected.iter().map(|&(_, tip)| tip));
                        continue;
                    }
                    // Block i is stored or known invalid already: `accept_block` says which.
                    Chunk::Committed(_) => one_by_one_until = i + 1,
                    Chunk::Failed { at } => one_by_one_until = at + 1,
                }
            }
            let started = Instant::now();
            match self.accept_block(&blocks[i], now, Origin::Requested) {
                Ok(Accepted::NewTip { tip, disconnected }) => {
                    on_commit(BatchCommit {
                        connected: &[(i, tip)],
                        disconnected: &disconnected,
                        elapsed: started.elapsed(),
                    });
                    out.connected.push(tip);
                }
                Ok(Accepted::SideBranch { .. } | Accepted::NotStored { .. })
                | Err(ChainError::Duplicate { .. }) => {}
                Err(e) if e.is_fatal() => return Err(e),
                Err(e) => {
                    out.stopped = Some((i, e));
                    break;
                }
            }
            i += 1;
        }
        Ok(out)
    }

    /// One write transaction connecting blocks from `start` on, while they extend the tip, are
    /// new, passed the context-free checks and the chunk has room.
    fn connect_chunk(
        &self,
        blocks: &[Block],
        prepared: &[Option<Vec<[u8; 32]>>],
        start: usize,
        now: u32,
    ) -> Result<Chunk, ChainError> {
        let mut timings = Vec::new();
        let written = self.store.write(|w| {
            timings.clear();
            self.connect_in(w, blocks, prepared, start, now, &mut timings)
        });
        match written {
            Ok(connected) => {
                for (&(k, tip), ms) in connected.iter().zip(&timings) {
                    debug!(target: "chain", height = tip.height, hash = %tip.hash,
                           txs = blocks[k].txs.len(), ms, "connected block");
                }
                Ok(Chunk::Committed(connected))
            }
            Err(Abort::Failed { at }) => {
                debug!(target: "chain", block = at, "a block of the batch broke a rule: its write is redone block by block");
                Ok(Chunk::Failed { at })
            }
            Err(Abort::Store(e)) => Err(e.into()),
        }
    }

    /// The inside of [`Self::connect_chunk`]'s write transaction. `timings` gets the
    /// milliseconds each connected block took on this thread.
    fn connect_in(
        &self,
        w: &mut WriteView,
        blocks: &[Block],
        prepared: &[Option<Vec<[u8; 32]>>],
        start: usize,
        now: u32,
        timings: &mut Vec<u64>,
    ) -> Result<Vec<(usize, Tip)>, Abort> {
        let started = Instant::now();
        let mut tip = w
            .tip()?
            .ok_or_else(|| StoreError::Corrupt("store has no tip".into()))?;
        let mut connected: Vec<(usize, Tip)> = Vec::new();
        let anchor = difficulty::anchor(&*w, &self.params)?;
        // The lowest block of the chunk found to break a rule.
        let mut failed: Option<usize> = None;
        let (verified, results) = mpsc::channel::<(usize, bool)>();
        let first_bad = |results: &mpsc::Receiver<(usize, bool)>| {
            results
                .try_iter()
                .filter(|&(_, ok)| !ok)
                .map(|(k, _)| k)
                .min()
        };
        // Signature checks borrow the blocks: the scope waits for all of them before it ends,
        // on this thread (which keeps the write transaction).
        let walked = rayon::in_place_scope(|scope| -> Result<(), Abort> {
            for (k, block) in blocks.iter().enumerate().skip(start) {
                let full = connected.len() >= BATCH_MAX_BLOCKS
                    || (!connected.is_empty() && started.elapsed() >= BATCH_COMMIT_INTERVAL);
                if full {
                    break;
                }
                if let Some(bad) = first_bad(&results) {
                    failed = Some(bad);
                    break;
                }
                let Some(commitments) = &prepared[k] else {
                    break;
                };
                let hash = block.block_hash();
                if block.header.prev != tip.hash
                    || !matches!(w.status(&hash)?, None | Some(BlockStatus::HeaderValid))
                {
                    break;
                }
                let block_started = Instant::now();
                let height = tip.height + 1;
                let entry = IndexEntry {
                    header: block.header,
                    height,
                    chain_work: tip.chain_work.saturating_add(block.header.work()),
                };
                let parent = w
                    .index(&tip.hash)?
                    .ok_or(StoreError::UnknownBlock(tip.hash))?;
                let ctx = difficulty::context(w, &self.params, anchor.as_ref(), &parent, now)?;
                if consensus::check_header_context(&block.header, &ctx, &self.params).is_err() {
                    failed = Some(k);
                    break;
                }
                let coins = prior_coins(w, block)?;
                let Ok((spends, signatures)) =
                    consensus::check_block_coins(block, height, &coins, &self.params, commitments)
                else {
                    failed = Some(k);
                    break;
                };
                let verified = verified.clone();
                scope.spawn(move |_| {
                    let _ = verified.send((k, signatures.verify().is_ok()));
                });
                w.put_block(block, entry)?;
                w.connect_block(block, height, &spends.spent)?;
                tip = Tip {
                    hash,
                    height,
                    chain_work: entry.chain_work,
                };
                connected.push((k, tip));
                timings.push(block_started.elapsed().as_millis() as u64);
            }
            Ok(())
        });
        walked?;
        drop(verified);
        if let Some(bad) = first_bad(&results) {
            failed = Some(failed.map_or(bad, |f| f.min(bad)));
        }
        match failed {
            Some(at) => Err(Abort::Failed { at }),
            None => Ok(connected),
        }
    }
}
