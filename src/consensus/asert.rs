//! Difficulty that follows the hash rate: ASERT, in the integer form specified for Bitcoin Cash
//! on 2020-11-15 ("aserti3-2d", the absolutely scheduled exponentially rising targets).
//!
//! The target of a block depends on one fixed *anchor* block and on its own parent only:
//!
//! ```text
//! target = anchor_target · 2^((time_delta − spacing · (height_delta + 1)) / half_life)
//! ```
//!
//! where `time_delta` is the parent's time minus the anchor's parent's time and `height_delta`
//! the parent's height minus the anchor's. A chain on schedule keeps the anchor's target; every
//! `half_life` seconds it runs ahead of schedule halve the target (harder), every `half_life`
//! seconds behind double it, up to the proof-of-work limit. As nothing accumulates from block to
//! block, a header chain is checked header by header with integer arithmetic alone.
//!
//! The power of two is computed in fixed point with 16 fractional bits: the integer part is a
//! shift, the fractional part a cubic polynomial approximating `2^x` on `[0, 1)`. The product of
//! the anchor target and the factor (up to 273 bits) is shifted in a 320-bit value, so nothing
//! overflows before the result is compared with the limit. Heights are `u64` and times `i64`,
//! deltas `i128`: the published vectors (`testdata/asert/`) cross heights 2³¹ and 2⁶³ and go
//! back in time.

use gossipcoin_proto::{BlockHeader, CompactError, Target, U256};

use crate::params::{ChainParams, Retarget};

/// Fixed-point one: the exponent carries 16 fractional bits.
const RADIX: i128 = 1 << 16;

/// The block ASERT counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    pub height: u64,
    /// The time of the anchor block's parent.
    pub parent_time: i64,
    target: Target,
}

impl Anchor {
    /// An anchor at `height` whose parent has `parent_time` and which carries `bits`.
    ///
    /// # Errors
    /// When `bits` is not a usable compact target.
    pub fn new(height: u64, parent_time: i64, bits: u32) -> Result<Self, CompactError> {
        Ok(Self {
            height,
            parent_time,
            target: Target::from_compact(bits)?,
        })
    }

    /// The anchor's own target.
    pub fn target(&self) -> Target {
        self.target
    }
}

/// The algorithm's parameters: target spacing, half-life and proof-of-work limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asert {
    spacing: i128,
    half_life: i128,
    limit: Target,
    limit_bits: u32,
}

impl Asert {
    /// ASERT aiming at `spacing_secs` between blocks, with `half_life_secs` (at least 1) and
    /// `limit_bits` as the easiest target.
    ///
    /// # Errors
    /// When `limit_bits` is not a usable compact target.
    pub fn new(
        spacing_secs: u32,
        half_life_secs: u32,
        limit_bits: u32,
    ) -> Result<Self, CompactError> {
        Ok(Self {
            spacing: i128::from(spacing_secs),
            half_life: i128::from(half_life_secs.max(1)),
            limit: Target::from_compact(limit_bits)?,
            limit_bits,
        })
    }

    /// The compact bits the block after the one at `parent_height` with `parent_time` must
    /// carry, counting from `anchor`.
    pub fn next_bits(&self, anchor: &Anchor, parent_height: u64, parent_time: i64) -> u32 {
        let time_delta = i128::from(parent_time) - i128::from(anchor.parent_time);
        let height_delta = i128::from(parent_height) - i128::from(anchor.height);
        // Truncating division (toward zero), as the specification's reference code.
        let exponent = (time_delta - self.spacing * (height_delta + 1)) * RADIX / self.half_life;
        // Floor: an arithmetic shift rounds down, so `frac` is in [0, 1) for negative exponents
        // too.
        let shifts = exponent >> 16;
        let frac = (exponent & 0xffff) as u128;
        let poly = 195_766_423_245_049 * frac
            + 971_821_376 * frac * frac
            + 5_127 * frac * frac * frac
            + (1 << 47);
        // 2^frac in 16-bit fixed point: within [65536, 131072).
        let factor = 65_536 + (poly >> 48) as u64;
        let (high, low) = self.anchor_product(anchor, factor);
        // target · factor · 2^shifts / 2^16, floored.
        let shift = shifts - 16;
        let bit_len = if high != 0 {
            320 - high.leading_zeros()
        } else {
            low.bit_len()
        };
        if i128::from(bit_len) + shift > 256 {
            // 2^256 or more: above any limit.
            return self.limit_bits;
        }
        let next = if shift >= 0 {
            low << shift as u32
        } else {
            shr_320(high, low, (-shift).min(320) as u32)
        };
        if next == U256::ZERO {
            return Target(U256::ONE).to_compact();
        }
        if next > self.limit.0 {
            return self.limit_bits;
        }
        Target(next).to_compact()
    }

    /// The 320-bit product `anchor target · factor`: the bits above 256, and the low 256 bits.
    fn anchor_product(&self, anchor: &Anchor, factor: u64) -> (u64, U256) {
        anchor.target.0.widening_mul_u64(factor)
    }
}

/// `(high · 2^256 + low) >> n` for `n` in `0..=320`, when the result fits 256 bits.
fn shr_320(high: u64, low: U256, n: u32) -> U256 {
    if n >= 320 {
        return U256::ZERO;
    }
    if n > 256 {
        return U256::from_u64(high >> (n - 256));
    }
    let carried = U256::from_u64(high) << (256 - n);
    let shifted = low >> n;
    // The two never overlap: `carried` holds bits at 256 − n and up, `shifted` below.
    shifted.checked_add(carried).unwrap_or(U256::MAX)
}

/// The ASERT anchor of a chain whose genesis header is `genesis`: the one the parameters name,
/// or else the genesis block itself, with a parent time one spacing before its own (so that
/// block 1 carries the genesis bits when it comes on schedule). `None` with fixed difficulty.
pub fn asert_anchor(params: &ChainParams, genesis: &BlockHeader) -> Option<Anchor> {
    if params.retarget == Retarget::Fixed {
        return None;
    }
    match params.asert_anchor {
        Some(a) => Anchor::new(u64::from(a.height), i64::from(a.parent_time), a.bits).ok(),
        None => Anchor::new(
            0,
            i64::from(genesis.time) - i64::from(params.target_spacing_secs),
            genesis.bits,
        )
        .ok(),
    }
}

/// The bits the block after `parent` (at `parent_height`) must carry: `pow_bits` with fixed
/// difficulty, with no anchor, and up to the anchor's height; ASERT from `anchor` after it.
pub fn required_bits(
    params: &ChainParams,
    anchor: Option<&Anchor>,
    parent_height: u32,
    parent: &BlockHeader,
) -> u32 {
    let Some(anchor) = anchor else {
        return params.pow_bits;
    };
    if params.retarget == Retarget::Fixed || u64::from(parent_height) < anchor.height {
        return params.pow_bits;
    }
    match Asert::new(
        params.target_spacing_secs,
        params.half_life_secs,
        params.pow_bits,
    ) {
        Ok(asert) => asert.next_bits(anchor, u64::from(parent_height), i64::from(parent.time)),
        Err(_) => params.pow_bits, // validated at load: unreachable
    }
}

/// How much harder `bits` is than the chain's proof-of-work limit (1.0 at the limit): the
/// human-readable difficulty shown by `/status` and `printchain`. Display only.
pub fn difficulty(params: &ChainParams, bits: u32) -> f64 {
    match Target::from_compact(bits) {
        Ok(t) => params.target().0.to_f64() / t.0.to_f64(),
        Err(_) => 0.0,
    }
}

#[cfg(test)]
#[path = "asert_tests.rs"]
mod tests;
