//! Header rules: [`check_header`] on its own (target bits and proof of work: the 80 bytes a
//! headers-first sync checks before it has any block), and [`check_header_context`] for what
//! needs more (its bits against what its parent requires, its time against the previous
//! blocks' median time and against the node's clock).
//!
//! The link to the parent (`prev`) and the height are the chain's business.

use gossipcoin_proto::{BlockHeader, Target};

use super::error::ValidationError;
use crate::params::{ChainParams, Retarget};

/// What a header's bits and time are judged against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderContext {
    /// The bits a block on this parent must carry ([`super::required_bits`]).
    pub expected_bits: u32,
    /// [`median_time_past`] of the parent and its ancestors (up to `median_time_span` blocks).
    pub median_time_past: u32,
    /// The node's clock, seconds since the Unix epoch.
    pub now: u32,
}

/// Checks the rules a header satisfies whatever chain it extends: its bits (with fixed
/// difficulty `params.pow_bits`; with ASERT any target no easier than that limit), and its hash
/// meets the target of its bits. [`super::check_block`] runs it first. Whether the bits are the
/// ones its parent requires is [`check_header_context`]'s business.
pub fn check_header(header: &BlockHeader, params: &ChainParams) -> Result<(), ValidationError> {
    let target = match params.retarget {
        Retarget::Fixed if header.bits != params.pow_bits => {
            return Err(ValidationError::WrongBits {
                got: header.bits,
                expected: params.pow_bits,
            });
        }
        Retarget::Fixed => params.target(),
        Retarget::Asert => match Target::from_compact(header.bits) {
            Ok(target) if target <= params.target() => target,
            _ => {
                return Err(ValidationError::BitsOutOfRange {
                    got: header.bits,
                    limit: params.pow_bits,
                });
            }
        },
    };
    let hash = header.block_hash();
    if !target.is_met_by(&hash) {
        return Err(ValidationError::HighHash { hash });
    }
    Ok(())
}

/// Checks that the header carries the bits its parent requires (`ctx.expected_bits`), that the
/// block time is after the median time past and at most `params.max_future_block_time` seconds
/// ahead of `ctx.now`.
///
/// Wrong bits are invalid for good (the parent fixes them), charged like bad proof of work. A
/// block too far in the future is refused for now ([`ValidationError::TimeTooNew`] is not
/// misbehaviour): it becomes acceptable as the clock advances.
pub fn check_header_context(
    header: &BlockHeader,
    ctx: &HeaderContext,
    params: &ChainParams,
) -> Result<(), ValidationError> {
    if header.bits != ctx.expected_bits {
        return Err(ValidationError::WrongBits {
            got: header.bits,
            expected: ctx.expected_bits,
        });
    }
    if header.time <= ctx.median_time_past {
        return Err(ValidationError::TimeTooOld {
            time: header.time,
            median: ctx.median_time_past,
        });
    }
    let max = ctx.now.saturating_add(params.max_future_block_time);
    if header.time > max {
        return Err(ValidationError::TimeTooNew {
            time: header.time,
            max,
        });
    }
    Ok(())
}

/// The median of the given block times: the caller passes the times of the last
/// `params.median_time_span` blocks (fewer near genesis), in any order. With an even count the
/// upper middle is taken, as Bitcoin does; with none, 0 (so genesis may carry any time).
pub fn median_time_past(times: &[u32]) -> u32 {
    if times.is_empty() {
        return 0;
    }
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    sorted[sorted.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;

    fn header(time: u32) -> BlockHeader {
        let mut h = mine(vec![coinbase(1, coins(10))], &params()).header;
        h.time = time;
        h
    }

    fn ctx() -> HeaderContext {
        HeaderContext {
            expected_bits: EASY_BITS,
            median_time_past: T0,
            now: T0 + 100,
        }
    }

    #[test]
    fn header_bits_and_proof_of_work() {
        let p = params();
        let mut h = header(T0);
        assert_eq!(check_header(&h, &p), Ok(()));
        while p.target().is_met_by(&h.block_hash()) {
            h.nonce += 1;
        }
        assert_eq!(
            check_header(&h, &p),
            Err(ValidationError::HighHash {
                hash: h.block_hash()
            })
        );
        h.bits = 0x2100ffff;
        assert_eq!(
            check_header(&h, &p),
            Err(ValidationError::WrongBits {
                got: 0x2100ffff,
                expected: EASY_BITS
            })
        );
    }

    #[test]
    fn asert_bits_within_the_limit_then_as_the_parent_requires() {
        let p = ChainParams {
            retarget: Retarget::Asert,
            ..params()
        };
        // Any target no easier than the limit passes on its own, if the hash meets it.
        let mut h = header(T0 + 1);
        h.bits = 0x2000ffff;
        while !Target::from_compact(h.bits)
            .unwrap()
            .is_met_by(&h.block_hash())
        {
            h.nonce += 1;
        }
        assert_eq!(check_header(&h, &p), Ok(()));
        for bits in [0x2100ffff, 0x1d80ffff, 0] {
            h.bits = bits;
            let err = check_header(&h, &p).unwrap_err();
            assert_eq!(
                err,
                ValidationError::BitsOutOfRange {
                    got: bits,
                    limit: EASY_BITS
                }
            );
            assert!(err.is_peer_misbehaviour());
        }
        // In context, only the bits the parent requires.
        h.bits = 0x2000ffff;
        let err = check_header_context(&h, &ctx(), &p).unwrap_err();
        assert_eq!(
            err,
            ValidationError::WrongBits {
                got: 0x2000ffff,
                expected: EASY_BITS
            }
        );
        assert!(err.is_block_misbehaviour());
        let wanted = HeaderContext {
            expected_bits: 0x2000ffff,
            ..ctx()
        };
        assert_eq!(check_header_context(&h, &wanted, &p), Ok(()));
    }

    #[test]
    fn medians() {
        assert_eq!(median_time_past(&[]), 0);
        assert_eq!(median_time_past(&[5]), 5);
        assert_eq!(median_time_past(&[9, 1, 5]), 5);
        assert_eq!(median_time_past(&[4, 1, 3, 2]), 3);
        let eleven: Vec<u32> = (0..11).rev().map(|i| 100 + i * 10).collect();
        assert_eq!(median_time_past(&eleven), 150);
    }

    #[test]
    fn time_must_be_after_the_median() {
        let p = params();
        assert_eq!(
            check_header_context(&header(T0), &ctx(), &p),
            Err(ValidationError::TimeTooOld {
                time: T0,
                median: T0
            })
        );
        assert_eq!(check_header_context(&header(T0 + 1), &ctx(), &p), Ok(()));
    }

    #[test]
    fn time_may_not_be_too_far_ahead() {
        let p = params();
        let max = T0 + 100 + p.max_future_block_time;
        assert_eq!(check_header_context(&header(max), &ctx(), &p), Ok(()));
        let err = check_header_context(&header(max + 1), &ctx(), &p).unwrap_err();
        assert_eq!(err, ValidationError::TimeTooNew { time: max + 1, max });
        assert!(!err.is_peer_misbehaviour());
        // a clock near the end of u32 time does not overflow
        let late = HeaderContext {
            expected_bits: EASY_BITS,
            median_time_past: 0,
            now: u32::MAX - 1,
        };
        assert_eq!(check_header_context(&header(u32::MAX), &late, &p), Ok(()));
    }
}
