//! Headers first: [`Chain::accept_headers`] checks and indexes a run of headers before any of
//! their blocks is known, so a peer's claimed work is proven (80 bytes and a hash per block)
//! before anything big is downloaded.

use gossipcoin_proto::{BlockHash, BlockHeader, U256};

/// A branch of headers is stored only if it ends within this many blocks' work of our tip.
pub const ANTI_DOS_BLOCKS: u64 = 144;
use tracing::debug;

use super::{Chain, ChainError, difficulty};
use crate::consensus::{self, Anchor, ValidationError};
use crate::store::{BlockStatus, ChainRead, IndexEntry, StoreError, WriteView};

/// What accepting a run of headers did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadersAccepted {
    /// The index entry of the last header of the run (already known or new).
    pub last: IndexEntry,
    /// How many of the headers were new to the index.
    pub new: usize,
}

/// How the write of a run ended: the headers indexed, and the error that stopped it (its
/// failed header, if any, is indexed too, in the same transaction).
struct Run {
    accepted: Option<HeadersAccepted>,
    error: Option<ChainError>,
}

impl Chain {
    /// Checks and indexes a run of headers, each building on the one before, the first on a
    /// header we know.
    ///
    /// - An empty run is [`ChainError::NoHeaders`]; a run that does not link up is
    ///   [`ChainError::DiscontinuousHeaders`] (nothing is stored); a first header whose parent
    ///   is not indexed is [`ChainError::UnconnectedHeaders`].
    /// - Headers already indexed are skipped (not counted as new); one known to be invalid is
    ///   [`ChainError::KnownInvalid`].
    /// - Each new header must pass [`consensus::check_header`] and
    ///   [`consensus::check_header_context`] (the bits its parent requires, header by header;
    ///   the median time past of its parent, earlier headers of the run included) and is
    ///   indexed as [`BlockStatus::HeaderValid`] at its parent's height + 1 with its parent's
    ///   work + its own (from its bits).
    /// - The first header that fails ends the run: the headers before it stay indexed, and it
    ///   is remembered as failed when the failure is for good (as for blocks: not a time ahead
    ///   of our clock) and it has valid proof of work for the bits its parent requires (one
    ///   without is never stored); a
    ///   header with valid proof of work on a failed parent is indexed as
    ///   [`BlockStatus::DescendantOfFailed`], and any header on one is
    ///   [`ChainError::InvalidAncestor`].
    ///
    /// Everything happens in one write transaction (`now`: the node's clock, seconds).
    pub fn accept_headers(
        &self,
        headers: &[BlockHeader],
        now: u32,
    ) -> Result<HeadersAccepted, ChainError> {
        let Some(first) = headers.first() else {
            return Err(ChainError::NoHeaders);
        };
        let hashes: Vec<BlockHash> = headers.iter().map(BlockHeader::block_hash).collect();
        if let Some(at) = (1..headers.len()).find(|&i| headers[i].prev != hashes[i - 1]) {
            return Err(ChainError::DiscontinuousHeaders { at });
        }
        let run = self
            .store
            .write(|w| self.index_headers(w, headers, &hashes, now))?;
        match (run.error, run.accepted) {
            (Some(e), _) => Err(e),
            (None, Some(accepted)) => {
                if accepted.new > 0 {
                    debug!(target: "chain", height = accepted.last.height, hash = %hashes[headers.len() - 1],
                           new = accepted.new, "indexed headers");
                }
                Ok(accepted)
            }
            (None, None) => Err(ChainError::UnconnectedHeaders { prev: first.prev }),
        }
    }

    /// Whether a run of `headers` on stored header `parent` ends on a branch with so little
    /// work that it is not worth storing: below our tip's work minus [`ANTI_DOS_BLOCKS`] of its
    /// blocks' work (Core's `GetAntiDoSWorkThreshold`; a fresh node's threshold is its genesis).
    /// Headers with real proof of work on an easy chain are cheap; a branch forking deep with
    /// less work than ours is never one we would follow.
    fn low_work(
        &self,
        w: &WriteView,
        headers: &[BlockHeader],
        parent: &IndexEntry,
    ) -> Result<Option<ChainError>, StoreError> {
        let Some(tip) = w.tip()? else {
            return Ok(None);
        };
        let per_block = match w.index(&tip.hash)? {
            Some(entry) => entry.header.work(),
            None => return Ok(None),
        };
        let (overflow, margin) = per_block.widening_mul_u64(ANTI_DOS_BLOCKS);
        let margin = if overflow == 0 { margin } else { U256::MAX };
        let work = headers
            .iter()
            .fold(parent.chain_work, |w, h| w.saturating_add(h.work()));
        Ok(
            (work.saturating_add(margin) < tip.chain_work).then_some(ChainError::LowWorkHeaders {
                work,
                tip: tip.chain_work,
            }),
        )
    }

    /// Inside one write transaction: indexes `headers` (with their `hashes`) up to the first
    /// that fails, and that one as failed if it is for good. An `Err` is a store failure only.
    fn index_headers(
        &self,
        w: &mut WriteView,
        headers: &[BlockHeader],
        hashes: &[BlockHash],
        now: u32,
    ) -> Result<Run, ChainError> {
        let mut parent: Option<(IndexEntry, Option<BlockStatus>)> = None;
        let mut new = 0;
        let anchor = difficulty::anchor(&*w, &self.params)?;
        let done = |last: Option<IndexEntry>, new, error| {
            Ok(Run {
                accepted: last.map(|last| HeadersAccepted { last, new }),
                error,
            })
        };
        if let Some(first) = headers.first()
            && let Some(parent) = w.index(&first.prev)?
            && let Some(low) = self.low_work(w, headers, &parent)?
        {
            return done(None, 0, Some(low));
        }
        for (header, &hash) in headers.iter().zip(hashes) {
            if let Some(known) = w.index(&hash)? {
                if w.status(&hash)?.is_some_and(BlockStatus::is_failed) {
                    let last = parent.map(|(entry, _)| entry);
                    return done(last, new, Some(ChainError::KnownInvalid { hash }));
                }
                parent = Some((known, w.status(&hash)?));
                continue;
            }
            let (parent_entry, parent_status) = match parent {
                Some(p) => p,
                None => match w.index(&header.prev)? {
                    Some(entry) => (entry, w.status(&header.prev)?),
                    None => {
                        return done(
                            None,
                            new,
                            Some(ChainError::UnconnectedHeaders { prev: header.prev }),
                        );
                    }
                },
            };
            let last = parent.map(|(entry, _)| entry);
            let entry = IndexEntry {
                header: *header,
                height: parent_entry.height + 1,
                chain_work: parent_entry.chain_work.saturating_add(header.work()),
            };
            if parent_status.is_some_and(BlockStatus::is_failed) {
                // Remembered only if it carries real proof of work: an index entry must cost
                // its sender more than the bytes of a header.
                if consensus::check_header(header, &self.params).is_ok() {
                    w.put_header(entry, BlockStatus::DescendantOfFailed)?;
                }
                let failed = header.prev;
                return done(
                    last,
                    new,
                    Some(ChainError::InvalidAncestor { hash, failed }),
                );
            }
            if let Err(source) =
                self.check_header_on(w, header, &parent_entry, anchor.as_ref(), now)?
            {
                // A header without valid proof of work is not stored at all (free to make);
                // one that has it and breaks another rule is remembered as failed. With ASERT,
                // bits other than the parent requires count as no work: a header may not choose
                // how much its proof of work is worth.
                let no_work = matches!(
                    source,
                    ValidationError::HighHash { .. }
                        | ValidationError::WrongBits { .. }
                        | ValidationError::BitsOutOfRange { .. }
                );
                if source.is_block_misbehaviour() && !no_work {
                    w.put_header(entry, BlockStatus::Failed)?;
                    debug!(target: "chain", height = entry.height, %hash, "remembered invalid header");
                }
                return done(last, new, Some(ChainError::Invalid { hash, source }));
            }
            w.put_header(entry, BlockStatus::HeaderValid)?;
            new += 1;
            parent = Some((entry, Some(BlockStatus::HeaderValid)));
        }
        done(parent.map(|(entry, _)| entry), new, None)
    }

    /// The rules of a new header on `parent`: proof of work, then its bits against what
    /// `parent` requires (ASERT from `anchor`) and its time against the median time past of
    /// `parent` (read from `w`, so uncommitted headers of this run count) and `now`.
    fn check_header_on(
        &self,
        w: &WriteView,
        header: &BlockHeader,
        parent: &IndexEntry,
        anchor: Option<&Anchor>,
        now: u32,
    ) -> Result<Result<(), ValidationError>, StoreError> {
        if let Err(e) = consensus::check_header(header, &self.params) {
            return Ok(Err(e));
        }
        let ctx = difficulty::context(w, &self.params, anchor, parent, now)?;
        Ok(consensus::check_header_context(header, &ctx, &self.params))
    }
}
