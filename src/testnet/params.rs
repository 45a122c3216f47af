//! The chain parameters every node of a testnet shares, in `<dir>/params.toml`: the
//! `--params` file or the built-in devnet's, with ASERT aiming at `--block-interval` if given,
//! and the network's genesis once the central node has created it (so every other node takes
//! the genesis from any peer, not only from the central node).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::params::{ChainParams, DEVNET_TOML};

/// The file `up` writes in the testnet's directory.
pub const PARAMS_FILE: &str = "params.toml";

/// Parses a block interval: whole seconds, as `5s`, `5` or `2m`; at least one second (ASERT's
/// spacing is whole seconds).
pub fn parse_interval(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let (number, unit) = match t.strip_suffix('m') {
        Some(n) => (n, 60),
        None => (t.strip_suffix('s').unwrap_or(t), 1),
    };
    let n: u32 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number of seconds (e.g. 5s, 2m)"))?;
    match n.checked_mul(unit) {
        Some(secs) if secs >= 1 => Ok(secs),
        _ => Err(format!("{text:?}: the interval must be 1 s or more")),
    }
}

/// Writes the testnet's parameters file from `base` (a `--params` file, or the built-in
/// devnet's) and `--block-interval`, keeping the genesis of the testnet's existing file (the
/// network the nodes already belong to). An existing file is reused as it is when neither is
/// given. Returns the file's path.
pub fn prepare(base: Option<&Path>, interval: Option<u32>, dir: &Path) -> Result<PathBuf> {
    let path = dir.join(PARAMS_FILE);
    let existing = path
        .exists()
        .then(|| ChainParams::load(&path))
        .transpose()
        .with_context(|| format!("the testnet's {}", path.display()))?;
    if existing.is_some() && base.is_none() && interval.is_none() {
        return Ok(path);
    }
    let written = match interval {
        Some(secs) => with_block_interval(base, secs, dir)?,
        None => {
            let text = base_text(base)?;
            ChainParams::from_toml(&text)?;
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            path
        }
    };
    if let Some(genesis) = existing.and_then(|p| p.genesis) {
        let given = ChainParams::load(&written)?.genesis;
        if given.is_none() {
            ChainParams::record_genesis(&written, genesis)?;
        }
    }
    Ok(written)
}

/// The parameters of `base` (a `--params` file, or the built-in devnet's) with
/// `retarget = "asert"` and `target_spacing_secs = secs`, validated and written to
/// `dir/params.toml`; returns that path.
pub fn with_block_interval(base: Option<&Path>, secs: u32, dir: &Path) -> Result<PathBuf> {
    let text = set_interval(&base_text(base)?, secs);
    if let Err(e) = ChainParams::from_toml(&text) {
        bail!("--block-interval: {e}");
    }
    let path = dir.join(PARAMS_FILE);
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// The text of the `--params` file, or of the built-in devnet's parameters.
fn base_text(base: Option<&Path>) -> Result<String> {
    match base {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("cannot read the --params file {}", p.display())),
        None => Ok(DEVNET_TOML.to_string()),
    }
}

/// `text` with its top-level `retarget` and `target_spacing_secs` lines replaced by ASERT at
/// `secs` (put first, where a key is always top-level; comments are kept).
fn set_interval(text: &str, secs: u32) -> String {
    let mut in_table = false;
    let kept: Vec<&str> = text
        .lines()
        .filter(|line| {
            let l = line.trim_start();
            in_table |= l.starts_with('[');
            let key = l.split('=').next().unwrap_or("").trim();
            in_table || !matches!(key, "retarget" | "target_spacing_secs")
        })
        .collect();
    format!(
        "# testnet up --block-interval {secs}s\nretarget = \"asert\"\ntarget_spacing_secs = {secs}\n\n{}\n",
        kept.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Retarget;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("5s"), Ok(5));
        assert_eq!(parse_interval("5"), Ok(5));
        assert_eq!(parse_interval("2m"), Ok(120));
        for bad in ["0s", "", "1.5s", "-2", "5h"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_interval_replaces_the_spacing_of_any_file() {
        let p = ChainParams::from_toml(&set_interval(DEVNET_TOML, 5)).unwrap();
        assert_eq!((p.retarget, p.target_spacing_secs), (Retarget::Asert, 5));
        assert_eq!(p.half_life_secs, ChainParams::devnet().half_life_secs);
        // A fixed-difficulty file without the keys becomes ASERT at that interval.
        let fixed = DEVNET_TOML
            .replace("retarget = \"asert\"", "")
            .replace("target_spacing_secs = 2", "");
        let p = ChainParams::from_toml(&set_interval(&fixed, 7)).unwrap();
        assert_eq!((p.retarget, p.target_spacing_secs), (Retarget::Asert, 7));
        let dir = tempfile::tempdir().unwrap();
        let path = with_block_interval(None, 3, dir.path()).unwrap();
        let p = ChainParams::load(&path).unwrap();
        assert_eq!(p.target_spacing_secs, 3);
    }

    #[test]
    fn the_testnet_file_keeps_its_genesis_and_is_reused_when_nothing_is_given() {
        let dir = tempfile::tempdir().unwrap();
        let path = prepare(None, None, dir.path()).unwrap();
        assert_eq!(ChainParams::load(&path).unwrap().genesis, None);
        let genesis: gossipcoin_proto::BlockHash =
            "00000a3f00000000000000000000000000000000000000000000000000000000"
                .parse()
                .unwrap();
        ChainParams::record_genesis(&path, genesis).unwrap();
        // recording twice is harmless, another genesis is refused
        ChainParams::record_genesis(&path, genesis).unwrap();
        let other = "11".repeat(32).parse().unwrap();
        assert!(ChainParams::record_genesis(&path, other).is_err());
        // reused as it is
        assert_eq!(prepare(None, None, dir.path()).unwrap(), path);
        assert_eq!(ChainParams::load(&path).unwrap().genesis, Some(genesis));
        // rewritten with another interval: same network
        prepare(None, Some(4), dir.path()).unwrap();
        let p = ChainParams::load(&path).unwrap();
        assert_eq!((p.genesis, p.target_spacing_secs), (Some(genesis), 4));
    }
}
