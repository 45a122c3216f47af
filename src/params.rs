//! Chain parameters: the numbers that decide which blocks are valid on one network.
//!
//! Loaded once from TOML (the built-in `config/devnet.toml`, or a file given with `--params`),
//! validated, then passed by reference everywhere. Nothing else in the node hard-codes a rule.

use gossipcoin_proto::{Amount, BlockHash, MAX_BLOCK_BYTES, Target};
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
    #[error("cannot save chain parameters: {0}")]
    Write(#[from] crate::atomic_file::FileError),
}

/// How the target of each block is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Retarget {
    /// Every block carries `pow_bits` (the seed's behaviour; what a file without the key means).
    #[default]
    Fixed,
    /// aserti3-2d (`consensus::asert`): the target follows the hash rate; `pow_bits` is the
    /// easiest target allowed (the proof-of-work limit) and the genesis block's bits.
    Asert,
}

/// An ASERT anchor named by the parameters (as Bitcoin Cash's chain parameters do): blocks up to
/// and including `height` carry `pow_bits`, the blocks after it follow ASERT from this anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnchorParams {
    pub height: u32,
    /// The time of the anchor block's parent.
    pub parent_time: u32,
    /// The anchor block's bits.
    pub bits: u32,
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
    /// With `retarget = "fixed"`: the compact PoW target every block must carry and meet.
    /// With `"asert"`: the proof-of-work limit (the easiest target) and the genesis bits.
    pub pow_bits: u32,
    pub coinbase_maturity: u32,
    pub max_block_size: usize,
    /// Seconds a block's time may be ahead of the node's clock (Bitcoin: 7200).
    pub max_future_block_time: u32,
    pub median_time_span: usize,
    /// `"fixed"` (the default) or `"asert"`.
    #[serde(default)]
    pub retarget: Retarget,
    /// ASERT: the block interval it aims at, in seconds.
    #[serde(default = "default_spacing")]
    pub target_spacing_secs: u32,
    /// ASERT: the target doubles (halves) for every this many seconds the chain is behind
    /// (ahead of) its schedule.
    #[serde(default = "default_half_life")]
    pub half_life_secs: u32,
    /// ASERT: the anchor; none means the genesis block (with a parent time one spacing before
    /// its own, so block 1 carries the genesis bits).
    #[serde(default)]
    pub asert_anchor: Option<AnchorParams>,
    /// The network's genesis block (Bitcoin's chainparams): a node with an empty store adopts
    /// the block of this hash from any peer, and never another. `createblockchain` and
    /// `testnet up` record it; without it a fresh node adopts the genesis of a dialled
    /// bootstrap peer (the seed's scenario).
    #[serde(default, deserialize_with = "hash")]
    pub genesis: Option<BlockHash>,
}

/// The top-level key that names the genesis block.
pub const GENESIS_KEY: &str = "genesis";

/// Bitcoin Cash's values, also used by the published ASERT vectors.
fn default_spacing() -> u32 {
    600
}

fn default_half_life() -> u32 {
    172_800
}

fn hash<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<BlockHash>, D::Error> {
    let s = String::deserialize(d)?;
    s.parse::<BlockHash>()
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("genesis: {e}")))
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
        if self.target_spacing_secs == 0 || self.half_life_secs == 0 {
            return bad("target_spacing_secs and half_life_secs must be at least 1".into());
        }
        if let Some(anchor) = &self.asert_anchor {
            match Target::from_compact(anchor.bits) {
                Err(e) => return bad(format!("asert_anchor.bits: {e}")),
                Ok(t) if t > self.target() => {
                    return bad("asert_anchor.bits is easier than pow_bits (the limit)".into());
                }
                Ok(_) => {}
            }
        }
        Ok(())
    }

    /// Records `genesis` in the parameters file at `path` (a top-level `genesis = "<hash>"`
    /// line, written atomically). A file that already names this genesis is left as it is;
    /// one that names another is refused: a new genesis is a new network.
    pub fn record_genesis(path: &std::path::Path, genesis: BlockHash) -> Result<(), ParamsError> {
        let text = std::fs::read_to_string(path).map_err(|source| ParamsError::Read {
            path: path.display().to_string(),
            source,
        })?;
        match Self::from_toml(&text)?.genesis {
            Some(g) if g == genesis => return Ok(()),
            Some(g) => {
                return Err(ParamsError::Invalid(format!(
                    "{} already names the genesis block {g}: a chain with another genesis is \
                     another network (remove the `{GENESIS_KEY}` line to start one)",
                    path.display()
                )));
            }
            None => {}
        }
        // first in the file, where a key is always top-level
        let new = format!("{GENESIS_KEY} = \"{genesis}\"\n{text}");
        Self::from_toml(&new)?;
        Ok(crate::atomic_file::write(path, new.as_bytes())?)
    }

    /// With fixed difficulty the target every block must meet; with ASERT the proof-of-work
    /// limit, the easiest target a block may carry. A block's own target follows from its bits.
    pub fn target(&self) -> Target {
        Target::from_compact(self.pow_bits).expect("validated at load")
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
        assert_eq!(p.retarget, Retarget::Asert);
        assert_eq!((p.target_spacing_secs, p.half_life_secs), (2, 60));
        assert_eq!(p.asert_anchor, None);
    }

    #[test]
    fn a_file_without_retarget_means_fixed() {
        let old: String = DEVNET_TOML
            .lines()
            .filter(|l| {
                !["retarget", "target_spacing_secs", "half_life_secs"]
                    .iter()
                    .any(|k| l.starts_with(k))
            })
            .collect::<Vec<_>>()
            .join("\n");
        let p = ChainParams::from_toml(&old).unwrap();
        assert_eq!(p.retarget, Retarget::Fixed);
        assert_eq!((p.target_spacing_secs, p.half_life_secs), (600, 172_800));
        let anchored = format!(
            "{DEVNET_TOML}\n[asert_anchor]\nheight = 10\nparent_time = 5\nbits = 0x1d00ffff\n"
        );
        let p = ChainParams::from_toml(&anchored).unwrap();
        assert_eq!(
            p.asert_anchor,
            Some(AnchorParams {
                height: 10,
                parent_time: 5,
                bits: 0x1d00ffff
            })
        );
        let too_easy = anchored.replace("bits = 0x1d00ffff", "bits = 0x207fffff");
        assert!(ChainParams::from_toml(&too_easy).is_err());
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
            ("retarget", "\"daily\""),
            ("half_life_secs", "0"),
            ("target_spacing_secs", "0"),
        ] {
            assert!(ChainParams::from_toml(&with(k, v)).is_err(), "{k} = {v}");
        }
        assert!(ChainParams::from_toml("name = \"x\"").is_err());
        assert!(ChainParams::from_toml(&format!("{DEVNET_TOML}\nsurprise = 1")).is_err());
    }
}
