//! Chain parameters: the numbers that decide which blocks are valid on one network.
//!
//! Loaded once from TOML (the built-in `config/devnet.toml`, or a file given with `--params`),
//! validated, then passed by reference everywhere. Nothing else in the node hard-codes a rule.

use gossipcoin_proto::{Amount, MAX_BLOCK_BYTES, Target, U256};
use serde::Deserialize;

/// The devnet parameters, built into the binary.
pub const DEVNET_TOML: &str = include_str!("../config/devnet.toml");

/// Why a parameter file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    #[error("cannot read chain parameters {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid chain parameters: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("invalid chain parameters: {0}")]
    Invalid(String),
}

/// The validated chain parameters.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainParams {
    pub name: String,
    /// Subsidy of a block before any halving.
    #[serde(deserialize_with = "coins")]
    pub block_subsidy: Amount,
    pub halving_interval: u32,
    /// Compact PoW target every block must carry and meet.
    pub pow_bits: u32,
    pub coinbase_maturity: u32,
    pub max_block_size: usize,
    pub max_future_block_time: u32,
    pub median_time_span: usize,
}

fn coins<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Amount, D::Error> {
    let s = String::deserialize(d)?;
    Amount::parse_coins(&s).map_err(serde::de::Error::custom)
}

impl ChainParams {
    /// The built-in devnet parameters.
    pub fn devnet() -> Self {
        Self::from_toml(DEVNET_TOML).expect("built-in config/devnet.toml is valid")
    }

    /// Parses and validates parameters from TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ParamsError> {
        let p: Self = toml::from_str(text)?;
        p.validate()?;
        Ok(p)
    }

    /// Reads and validates a parameter file.
    pub fn load(path: &std::path::Path) -> Result<Self, ParamsError> {
        let text = std::fs::read_to_string(path).map_err(|source| ParamsError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text)
    }

    fn validate(&self) -> Result<(), ParamsError> {
        let bad = |m: String| Err(ParamsError::Invalid(m));
        if let Err(e) = Target::from_compact(self.pow_bits) {
            return bad(format!("pow_bits: {e}"));
        }
        if self.halving_interval == 0 {
            return bad("halving_interval must be at least 1".into());
        }
        if self.max_block_size < 1000 || self.max_block_size > MAX_BLOCK_BYTES {
            return bad(format!(
                "max_block_size must be within 1000..={MAX_BLOCK_BYTES}"
            ));
        }
        if self.median_time_span == 0 {
            return bad("median_time_span must be at least 1".into());
        }
        Ok(())
    }

    /// The PoW target every block must meet.
    pub fn target(&self) -> Target {
        Target::from_compact(self.pow_bits).expect("validated at load")
    }

    /// The work each block adds to its chain (fixed target, so the same for every block).
    pub fn block_work(&self) -> U256 {
        self.target().work()
    }

    /// The subsidy of the block at `height`: `block_subsidy` halved every `halving_interval`.
    pub fn subsidy(&self, height: u32) -> Amount {
        let halvings = height / self.halving_interval;
        if halvings >= 64 {
            return Amount::ZERO;
        }
        Amount::from_units(self.block_subsidy.units() >> halvings).expect("smaller than subsidy")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devnet_loads() {
        let p = ChainParams::devnet();
        assert_eq!(p.block_subsidy, Amount::from_coins(10).unwrap());
        assert_eq!(p.coinbase_maturity, 0);
        assert_eq!(
            p.subsidy(p.halving_interval),
            Amount::from_units(5 * gossipcoin_proto::COIN).unwrap()
        );
        assert_eq!(p.subsidy(p.halving_interval * 64), Amount::ZERO);
    }

    #[test]
    fn bad_params_are_refused() {
        let with = |k: &str, v: &str| {
            DEVNET_TOML
                .lines()
                .map(|l| {
                    if l.starts_with(&format!("{k} =")) {
                        format!("{k} = {v}")
                    } else {
                        l.into()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        for (k, v) in [
            ("pow_bits", "0x1d80ffff"),
            ("halving_interval", "0"),
            ("max_block_size", "10"),
            ("block_subsidy", "\"-1\""),
            ("block_subsidy", "\"abc\""),
        ] {
            assert!(ChainParams::from_toml(&with(k, v)).is_err(), "{k} = {v}");
        }
        assert!(ChainParams::from_toml("name = \"x\"").is_err());
        assert!(ChainParams::from_toml(&format!("{DEVNET_TOML}\nsurprise = 1")).is_err());
    }
}
