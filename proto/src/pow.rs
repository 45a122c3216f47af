//! Proof of work: compact targets ("bits"), the hash ≤ target check, and chain work.
//!
//! A block hash is read as a 256-bit big-endian number (so its hex starts with zeros when it
//! meets a hard target). The work of a block is the expected number of hashes to find it,
//! ⌊2²⁵⁶ / (target + 1)⌋; the chain with the most cumulative work wins.

use serde::{Deserialize, Serialize};

use crate::hash::BlockHash;

/// A 256-bit unsigned integer, four 64-bit limbs, most significant first.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct U256([u64; 4]);

impl U256 {
    pub const ZERO: Self = Self([0; 4]);
    pub const ONE: Self = Self([0, 0, 0, 1]);
    pub const MAX: Self = Self([u64::MAX; 4]);

    /// From 32 big-endian bytes.
    pub fn from_be_bytes(b: [u8; 32]) -> Self {
        let mut limbs = [0u64; 4];
        for (i, l) in limbs.iter_mut().enumerate() {
            *l = u64::from_be_bytes(b[i * 8..i * 8 + 8].try_into().expect("8-byte slice"));
        }
        Self(limbs)
    }

    /// To 32 big-endian bytes (these sort like the numbers).
    pub fn to_be_bytes(self) -> [u8; 32] {
        let mut b = [0u8; 32];
        for (i, l) in self.0.iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&l.to_be_bytes());
        }
        b
    }

    pub fn from_u64(v: u64) -> Self {
        Self([0, 0, 0, v])
    }

    /// Sum, or `None` on overflow.
    pub fn checked_add(self, o: Self) -> Option<Self> {
        let mut r = [0u64; 4];
        let mut carry = false;
        for i in (0..4).rev() {
            let (s1, c1) = self.0[i].overflowing_add(o.0[i]);
            let (s2, c2) = s1.overflowing_add(carry as u64);
            r[i] = s2;
            carry = c1 || c2;
        }
        (!carry).then_some(Self(r))
    }

    /// Sum that stops at `U256::MAX` instead of overflowing.
    pub fn saturating_add(self, o: Self) -> Self {
        self.checked_add(o).unwrap_or(Self::MAX)
    }

    fn wrapping_sub(self, o: Self) -> Self {
        let mut r = [0u64; 4];
        let mut borrow = false;
        for i in (0..4).rev() {
            let (d1, b1) = self.0[i].overflowing_sub(o.0[i]);
            let (d2, b2) = d1.overflowing_sub(borrow as u64);
            r[i] = d2;
            borrow = b1 || b2;
        }
        Self(r)
    }

    fn bit(&self, i: usize) -> bool {
        (self.0[3 - i / 64] >> (i % 64)) & 1 == 1
    }

    fn shl1(self) -> Self {
        let l = self.0;
        Self(std::array::from_fn(|i| {
            l[i] << 1 | if i < 3 { l[i + 1] >> 63 } else { 0 }
        }))
    }

    /// Quotient of long division; `None` when dividing by zero.
    pub fn checked_div(self, d: Self) -> Option<Self> {
        if d == Self::ZERO {
            return None;
        }
        let (mut q, mut r) = (Self::ZERO, Self::ZERO);
        for i in (0..256).rev() {
            r = r.shl1();
            if self.bit(i) {
                r.0[3] |= 1;
            }
            if r >= d {
                r = r.wrapping_sub(d);
                q.0[3 - i / 64] |= 1 << (i % 64);
            }
        }
        Some(q)
    }

    fn not(self) -> Self {
        Self(self.0.map(|l| !l))
    }

    /// The number of significant bits: 0 for zero, 256 when the top bit is set.
    pub fn bit_len(&self) -> u32 {
        for (i, l) in self.0.iter().enumerate() {
            if *l != 0 {
                return (4 - i as u32) * 64 - l.leading_zeros();
            }
        }
        0
    }

    /// The low 64 bits.
    pub fn low_u64(&self) -> u64 {
        self.0[3]
    }

    /// `self << n`, bits shifted past the top dropped (zero for `n >= 256`).
    fn shl_bits(self, n: u32) -> Self {
        if n >= 256 {
            return Self::ZERO;
        }
        let (limbs, bits) = ((n / 64) as usize, n % 64);
        let l = self.0;
        Self(std::array::from_fn(|i| {
            let src = i + limbs;
            let hi = if src < 4 { l[src] << bits } else { 0 };
            let lo = if bits > 0 && src + 1 < 4 {
                l[src + 1] >> (64 - bits)
            } else {
                0
            };
            hi | lo
        }))
    }

    /// `self >> n` (zero for `n >= 256`).
    fn shr_bits(self, n: u32) -> Self {
        if n >= 256 {
            return Self::ZERO;
        }
        let (limbs, bits) = ((n / 64) as usize, n % 64);
        let l = self.0;
        Self(std::array::from_fn(|i| {
            let Some(src) = i.checked_sub(limbs) else {
                return 0;
            };
            let lo = l[src] >> bits;
            let hi = if bits > 0 && src >= 1 {
                l[src - 1] << (64 - bits)
            } else {
                0
            };
            hi | lo
        }))
    }

    /// The full product with `m`: the 64 bits above the top limb and the low 256 bits.
    pub fn widening_mul_u64(self, m: u64) -> (u64, Self) {
        let mut r = [0u64; 4];
        let mut carry = 0u128;
        for i in (0..4).rev() {
            let p = u128::from(self.0[i]) * u128::from(m) + carry;
            r[i] = p as u64;
            carry = p >> 64;
        }
        (carry as u64, Self(r))
    }

    /// The nearest `f64` (for display: ratios of targets, never for consensus).
    pub fn to_f64(&self) -> f64 {
        self.0
            .iter()
            .fold(0.0, |acc, &l| acc * 18_446_744_073_709_551_616.0 + l as f64)
    }
}

/// `self << n`, bits shifted past the top dropped (zero for `n >= 256`).
impl std::ops::Shl<u32> for U256 {
    type Output = Self;
    fn shl(self, n: u32) -> Self {
        self.shl_bits(n)
    }
}

/// `self >> n` (zero for `n >= 256`).
impl std::ops::Shr<u32> for U256 {
    type Output = Self;
    fn shr(self, n: u32) -> Self {
        self.shr_bits(n)
    }
}

impl std::fmt::Display for U256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.to_be_bytes()))
    }
}

impl std::fmt::Debug for U256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "U256(0x{self})")
    }
}

/// Why compact bits do not describe a usable target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompactError {
    #[error("compact target {0:#010x} is negative")]
    Negative(u32),
    #[error("compact target {0:#010x} overflows 256 bits")]
    Overflow(u32),
    #[error("compact target {0:#010x} is zero")]
    Zero(u32),
}

/// A PoW target: a block is valid when its hash, as a number, is at most the target.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct Target(pub U256);

impl Target {
    /// Decodes Bitcoin's compact form: 1 exponent byte, 3 mantissa bytes (sign bit must be 0).
    pub fn from_compact(bits: u32) -> Result<Self, CompactError> {
        let exponent = (bits >> 24) as usize;
        let mantissa = bits & 0x007f_ffff;
        if bits & 0x0080_0000 != 0 && mantissa != 0 {
            return Err(CompactError::Negative(bits));
        }
        let mut bytes = [0u8; 32];
        let m = mantissa.to_be_bytes(); // m[0] == 0
        for (k, &byte) in m[1..].iter().enumerate() {
            // byte k of the mantissa lands at big-endian position 32 - exponent + k
            let pos = 32 + k as isize - exponent as isize;
            if byte == 0 {
                continue;
            }
            if pos < 0 {
                return Err(CompactError::Overflow(bits));
            }
            if (pos as usize) < 32 {
                bytes[pos as usize] = byte;
            }
        }
        let t = U256::from_be_bytes(bytes);
        if t == U256::ZERO {
            return Err(CompactError::Zero(bits));
        }
        Ok(Self(t))
    }

    /// Encodes the target in Bitcoin's compact form (`GetCompact`): the 3 most significant bytes
    /// as the mantissa (shifted down a byte when its top bit would read as a sign) and the byte
    /// length as the exponent. The inverse of [`Self::from_compact`] up to the precision the
    /// compact form keeps; a target of 1 is `0x01010000`.
    pub fn to_compact(&self) -> u32 {
        let mut size = self.0.bit_len().div_ceil(8);
        let mut mantissa = if size <= 3 {
            (self.0.low_u64() << (8 * (3 - size))) as u32
        } else {
            (self.0 >> (8 * (size - 3))).low_u64() as u32
        };
        if mantissa & 0x0080_0000 != 0 {
            mantissa >>= 8;
            size += 1;
        }
        mantissa | (size << 24)
    }

    /// Whether `hash`, read big-endian, meets this target.
    pub fn is_met_by(&self, hash: &BlockHash) -> bool {
        U256::from_be_bytes(hash.0) <= self.0
    }

    /// Expected hashes to meet this target: ⌊2²⁵⁶ / (target + 1)⌋ = (¬target / (target + 1)) + 1.
    pub fn work(&self) -> U256 {
        match self.0.checked_add(U256::ONE) {
            None => U256::ONE, // target = 2²⁵⁶ − 1: every hash meets it
            Some(t1) => {
                let q = self.0.not().checked_div(t1).expect("target + 1 is nonzero");
                q.saturating_add(U256::ONE)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_decodes_like_bitcoin() {
        // Bitcoin's genesis bits: 0x00000000ffff0000...0
        let t = Target::from_compact(0x1d00ffff).unwrap();
        let mut expect = [0u8; 32];
        expect[4] = 0xff;
        expect[5] = 0xff;
        assert_eq!(t.0.to_be_bytes(), expect);
        // Work of Bitcoin's genesis is 0x100010001.
        assert_eq!(t.work(), U256::from_u64(0x1_0001_0001));
        assert!(Target::from_compact(0x1d80ffff).is_err());
        assert!(Target::from_compact(0x2300ffff).is_err());
        assert!(Target::from_compact(0x1d000000).is_err());
    }

    #[test]
    fn work_of_easy_targets() {
        // 0x207fffff is the easiest regtest target: about 2 hashes per block.
        assert_eq!(
            Target::from_compact(0x207fffff).unwrap().work(),
            U256::from_u64(2)
        );
        // devnet default ~2^20 hashes
        let w = Target::from_compact(0x1e0fffff).unwrap().work();
        assert!(
            w > U256::from_u64(1 << 20) && w < U256::from_u64(1 << 21),
            "{w}"
        );
    }

    #[test]
    fn hash_meets_target_inclusively() {
        let t = Target::from_compact(0x1e0fffff).unwrap();
        assert!(t.is_met_by(&BlockHash(t.0.to_be_bytes())));
        let mut above = t.0.to_be_bytes();
        above[31] = above[31].wrapping_add(1);
        above[30] = above[30].wrapping_add(1);
        assert!(!t.is_met_by(&BlockHash(above)));
        assert!(t.is_met_by(&BlockHash::ZERO));
    }

    #[test]
    fn compact_round_trips_like_bitcoin() {
        for bits in [
            0x1d00ffff, 0x1e0fffff, 0x207fffff, 0x1802aee8, 0x1a2b3c4d, 0x01010000, 0x03123456,
            0x04123456, 0x2100ffff,
        ] {
            let t = Target::from_compact(bits).unwrap();
            assert_eq!(t.to_compact(), bits, "{bits:#010x}");
        }
        // A mantissa with its top bit set moves up a byte; low bits are cut.
        assert_eq!(Target(U256::from_u64(0x80)).to_compact(), 0x02008000);
        assert_eq!(Target(U256::ONE).to_compact(), 0x01010000);
        assert_eq!(Target(U256::from_u64(0x1234_5678)).to_compact(), 0x04123456);
        assert_eq!(Target(U256::MAX).to_compact(), 0x2100ffff);
    }

    #[test]
    fn u256_shifts_and_products() {
        let x = U256::from_u64(0x8000_0000_0000_0001);
        assert_eq!(x.bit_len(), 64);
        assert_eq!(U256::ZERO.bit_len(), 0);
        assert_eq!(U256::MAX.bit_len(), 256);
        assert_eq!((x << 1).0, [0, 0, 1, 2]);
        assert_eq!((x << 130).0, [2, 4, 0, 0]);
        assert_eq!((x << 130) >> 130, x);
        assert_eq!(((x << 200) >> 200).0, [0, 0, 0, 1]);
        assert_eq!(U256::MAX >> 255, U256::ONE);
        assert_eq!(U256::MAX << 256, U256::ZERO);
        assert_eq!(U256::MAX.widening_mul_u64(2), (1, U256::MAX << 1));
        assert_eq!(
            U256::from_u64(u64::MAX).widening_mul_u64(u64::MAX).1.0,
            [0, 0, u64::MAX - 1, 1]
        );
        assert_eq!((U256::ONE << 100).to_f64(), 2f64.powi(100));
    }

    #[test]
    fn u256_add_and_div() {
        let a = U256::from_be_bytes([0xff; 32]);
        assert_eq!(a.checked_add(U256::ONE), None);
        assert_eq!(
            U256::from_u64(100).checked_div(U256::from_u64(7)),
            Some(U256::from_u64(14))
        );
        assert_eq!(
            U256::from_u64(u64::MAX).checked_add(U256::ONE).unwrap().0,
            [0, 0, 1, 0]
        );
    }
}
