//! `Amount`: a number of base units that cannot exceed `MAX_MONEY`.
//!
//! Construction checks the bound and every sum is checked, so no consensus path can overflow or
//! mint money by wrapping. The CLI speaks coins ("10", "0.5"); the wire speaks base units.

use serde::{Deserialize, Deserializer, Serialize};

/// Base units per coin.
pub const COIN: u64 = 100_000_000;
/// No amount, and no sum of amounts, may exceed this (21 million coins, as Bitcoin).
pub const MAX_MONEY: u64 = 21_000_000 * COIN;

/// A non-negative amount of base units, at most [`MAX_MONEY`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
pub struct Amount(u64);

/// Why a string or number is not a valid amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount is above the maximum of 21000000 coins")]
    TooLarge,
    #[error("amount must not be negative")]
    Negative,
    #[error("amount {0:?} is not a number of coins (e.g. 10 or 0.5)")]
    NotANumber(String),
    #[error("amount {0:?} has more than 8 decimal places")]
    TooPrecise(String),
}

impl Amount {
    /// Zero units.
    pub const ZERO: Self = Self(0);
    /// The largest valid amount.
    pub const MAX: Self = Self(MAX_MONEY);

    /// An amount of base units; `None` above [`MAX_MONEY`].
    pub const fn from_units(units: u64) -> Option<Self> {
        if units <= MAX_MONEY {
            Some(Self(units))
        } else {
            None
        }
    }

    /// Whole coins; `None` above [`MAX_MONEY`].
    pub const fn from_coins(coins: u64) -> Option<Self> {
        match coins.checked_mul(COIN) {
            Some(units) => Self::from_units(units),
            None => None,
        }
    }

    /// The number of base units.
    pub const fn units(self) -> u64 {
        self.0
    }

    /// Sum, or `None` if it would exceed [`MAX_MONEY`].
    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).and_then(Self::from_units)
    }

    /// Difference, or `None` if it would be negative.
    pub fn checked_sub(self, other: Self) -> Option<Self> {
        self.0.checked_sub(other.0).map(Self)
    }

    /// Sum of many amounts, or `None` on overflow past [`MAX_MONEY`].
    pub fn checked_sum<I: IntoIterator<Item = Self>>(iter: I) -> Option<Self> {
        iter.into_iter().try_fold(Self::ZERO, Self::checked_add)
    }

    /// Parses a number of coins with up to 8 decimals: "10", "0.5", "0.00000001".
    pub fn parse_coins(s: &str) -> Result<Self, AmountError> {
        let s = s.trim();
        let nan = || AmountError::NotANumber(s.to_string());
        if s.starts_with('-') {
            return Err(AmountError::Negative);
        }
        let (whole, frac) = match s.split_once('.') {
            Some((w, f)) => (w, f),
            None => (s, ""),
        };
        if (whole.is_empty() && frac.is_empty())
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(nan());
        }
        if frac.len() > 8 {
            return Err(AmountError::TooPrecise(s.to_string()));
        }
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            // Only digits remain, so a parse error means the number is too large.
            whole.parse().map_err(|_| AmountError::TooLarge)?
        };
        let frac_units: u64 = format!("{frac:0<8}").parse().map_err(|_| nan())?;
        let units = whole
            .checked_mul(COIN)
            .and_then(|u| u.checked_add(frac_units))
            .ok_or(AmountError::TooLarge)?;
        Self::from_units(units).ok_or(AmountError::TooLarge)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let units = u64::deserialize(d)?;
        Self::from_units(units).ok_or_else(|| serde::de::Error::custom("amount above MAX_MONEY"))
    }
}

/// Shows coins with no trailing zeros: `10`, `0.5`, `0.00000001`.
impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (whole, frac) = (self.0 / COIN, self.0 % COIN);
        if frac == 0 {
            write!(f, "{whole}")
        } else {
            let frac = format!("{frac:08}");
            write!(f, "{whole}.{}", frac.trim_end_matches('0'))
        }
    }
}

impl std::fmt::Debug for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Amount({self})")
    }
}

impl std::str::FromStr for Amount {
    type Err = AmountError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_coins(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_coins() {
        for (s, units) in [
            ("10", 10 * COIN),
            ("0.5", COIN / 2),
            ("0.00000001", 1),
            (".5", COIN / 2),
        ] {
            let a = Amount::parse_coins(s).unwrap();
            assert_eq!(a.units(), units, "{s}");
        }
        assert_eq!(Amount::from_units(150_000_000).unwrap().to_string(), "1.5");
        assert_eq!(Amount::from_coins(10).unwrap().to_string(), "10");
        assert_eq!(Amount::from_units(1).unwrap().to_string(), "0.00000001");
    }

    #[test]
    fn rejects_bad_amounts() {
        assert_eq!(Amount::parse_coins("-1"), Err(AmountError::Negative));
        assert!(matches!(
            Amount::parse_coins("abc"),
            Err(AmountError::NotANumber(_))
        ));
        assert!(matches!(
            Amount::parse_coins(""),
            Err(AmountError::NotANumber(_))
        ));
        assert!(matches!(
            Amount::parse_coins("1e5"),
            Err(AmountError::NotANumber(_))
        ));
        assert!(matches!(
            Amount::parse_coins("0.000000001"),
            Err(AmountError::TooPrecise(_))
        ));
        assert_eq!(Amount::parse_coins("21000001"), Err(AmountError::TooLarge));
        assert_eq!(
            Amount::parse_coins("99999999999999999999999"),
            Err(AmountError::TooLarge)
        );
        assert!(Amount::parse_coins("21000000").is_ok());
    }

    #[test]
    fn sums_are_checked() {
        assert_eq!(
            Amount::MAX.checked_add(Amount::from_units(1).unwrap()),
            None
        );
        assert_eq!(
            Amount::ZERO.checked_sub(Amount::from_units(1).unwrap()),
            None
        );
        assert_eq!(Amount::checked_sum([Amount::MAX, Amount::MAX]), None);
        assert!(
            postcard::from_bytes::<Amount>(&postcard::to_stdvec(&(MAX_MONEY + 1)).unwrap())
                .is_err()
        );
    }
}
