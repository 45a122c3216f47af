//! WAN conditions of `testnet up --hosts`: `--latency 80ms --jitter 20ms --loss 1%` on every
//! link, `--group eu=central,wallet-1..50` to name groups of nodes and `--latency-between
//! eu,us:150ms` for the links between two groups. The latency is one way: every IP packet
//! between two hosts is held that long (± the jitter), so a ping's round trip is twice it.

use std::collections::HashMap;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// The largest latency or jitter accepted (one way).
pub const MAX_MILLIS: u32 = 10_000;

/// The latency between two named groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupLatency {
    pub a: String,
    pub b: String,
    pub latency_ms: u32,
}

/// The WAN conditions, as given on the command line and kept in `testnet.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wan {
    pub latency_ms: u32,
    pub jitter_ms: u32,
    /// Loss in parts per million of packets (1% = 10 000).
    pub loss_ppm: u32,
    /// Named groups: the node names of each.
    #[serde(default)]
    pub groups: Vec<(String, Vec<String>)>,
    #[serde(default)]
    pub between: Vec<GroupLatency>,
}

impl Wan {
    /// Whether there is anything to emulate.
    pub fn is_active(&self) -> bool {
        self.latency_ms > 0 || self.jitter_ms > 0 || self.loss_ppm > 0 || !self.between.is_empty()
    }

    /// Checks that every group of `--latency-between` is defined, and every node name of a
    /// group is one of `nodes`; returns the links per node pair as a [`Links`].
    pub fn links(&self, nodes: &[String]) -> Result<Links> {
        let mut group_of = vec![None; nodes.len()];
        for (g, (name, members)) in self.groups.iter().enumerate() {
            for m in members {
                let Some(i) = nodes.iter().position(|n| n == m) else {
                    bail!("--group {name}: no node {m:?} in this testnet");
                };
                if let Some(other) = group_of[i].replace(g) {
                    bail!("{m} is in two groups ({} and {name})", self.groups[other].0);
                }
            }
        }
        let index = |name: &str| {
            self.groups
                .iter()
                .position(|(n, _)| n == name)
                .ok_or_else(|| {
                    anyhow::anyhow!("--latency-between names {name:?}, which no --group defines")
                })
        };
        let mut between = HashMap::new();
        for l in &self.between {
            let (a, b) = (index(&l.a)?, index(&l.b)?);
            between.insert((a, b), l.latency_ms);
            between.insert((b, a), l.latency_ms);
        }
        Ok(Links {
            latency_ms: self.latency_ms,
            jitter_ms: self.jitter_ms,
            loss_ppm: self.loss_ppm,
            group_of,
            between,
        })
    }
}

/// The conditions of each pair of nodes, by index.
#[derive(Debug, Clone, Default)]
pub struct Links {
    pub latency_ms: u32,
    pub jitter_ms: u32,
    pub loss_ppm: u32,
    group_of: Vec<Option<usize>>,
    between: HashMap<(usize, usize), u32>,
}

impl Links {
    /// The one-way latency from node `from` to node `to` before jitter.
    pub fn latency_ms(&self, from: usize, to: usize) -> u32 {
        let group = |i: usize| self.group_of.get(i).copied().flatten();
        match (group(from), group(to)) {
            (Some(a), Some(b)) => self
                .between
                .get(&(a, b))
                .copied()
                .unwrap_or(self.latency_ms),
            _ => self.latency_ms,
        }
    }
}

/// `80ms`, `1.5s`, `0`: a duration in whole milliseconds, at most [`MAX_MILLIS`].
pub fn parse_millis(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let (number, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (t, 1.0)
    };
    let n: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 80ms, 1.5s)"))?;
    let ms = n * scale;
    if !ms.is_finite() || !(0.0..=f64::from(MAX_MILLIS)).contains(&ms) {
        return Err(format!("{text:?}: between 0 and {MAX_MILLIS}ms"));
    }
    Ok(ms.round() as u32)
}

/// `1%`, `0.5%`: a loss rate in parts per million (at most 100%).
pub fn parse_loss(text: &str) -> Result<u32, String> {
    let t = text.trim();
    let number = t.strip_suffix('%').unwrap_or(t);
    let pct: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a percentage (e.g. 1%)"))?;
    if !pct.is_finite() || !(0.0..=100.0).contains(&pct) {
        return Err(format!("{text:?}: between 0% and 100%"));
    }
    Ok((pct * 10_000.0).round() as u32)
}

/// `eu,us:150ms`.
pub fn parse_latency_between(text: &str) -> Result<GroupLatency, String> {
    let err = || format!("{text:?} is not GROUP,GROUP:LATENCY (e.g. eu,us:150ms)");
    let (pair, latency) = text.rsplit_once(':').ok_or_else(err)?;
    let (a, b) = pair.split_once(',').ok_or_else(err)?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() || b.is_empty() || a == b {
        return Err(err());
    }
    Ok(GroupLatency {
        a: a.into(),
        b: b.into(),
        latency_ms: parse_millis(latency)?,
    })
}

/// The most names one group may list (after ranges are expanded).
const MAX_GROUP: usize = 65_000;

/// `eu=central,miner-1,wallet-1..50`: a group's name and its node names (`wallet-1..50` is
/// wallet-1 to wallet-50).
pub fn parse_group(text: &str) -> Result<(String, Vec<String>), String> {
    let (name, members) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NAME=NODES (e.g. eu=central,wallet-1..50)"))?;
    let name = name.trim();
    if name.is_empty() || name.contains(',') {
        return Err(format!("{text:?}: a group needs a name without commas"));
    }
    let mut out = Vec::new();
    for m in members.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        match m.split_once("..") {
            Some((first, last)) => {
                let (stem, from) = first
                    .rsplit_once('-')
                    .ok_or_else(|| format!("{m:?}: a range is like wallet-1..50"))?;
                let bad = || format!("{m:?}: a range is like wallet-1..50");
                let from: usize = from.parse().map_err(|_| bad())?;
                let to: usize = last.parse().map_err(|_| bad())?;
                if to < from || out.len() + (to - from) >= MAX_GROUP {
                    return Err(bad());
                }
                out.extend((from..=to).map(|k| format!("{stem}-{k}")));
            }
            None => out.push(m.to_string()),
        }
    }
    if out.is_empty() {
        return Err(format!("{text:?}: the group lists no node"));
    }
    Ok((name.to_string(), out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_losses_and_pairs_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_millis("80ms"), Ok(80));
        assert_eq!(parse_millis("1.5s"), Ok(1500));
        assert_eq!(parse_millis("0"), Ok(0));
        for bad in ["", "-1ms", "fast", "11s", "NaNms", "inf"] {
            assert!(parse_millis(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_loss("1%"), Ok(10_000));
        assert_eq!(parse_loss("0.5"), Ok(5_000));
        for bad in ["101%", "-1%", "x"] {
            assert!(parse_loss(bad).is_err(), "{bad}");
        }
        let l = parse_latency_between("eu,us:150ms").unwrap();
        assert_eq!(
            (l.a.as_str(), l.b.as_str(), l.latency_ms),
            ("eu", "us", 150)
        );
        for bad in ["eu:150ms", "eu,eu:1ms", ",us:1ms", "eu,us", "eu,us:x"] {
            assert!(parse_latency_between(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn groups_expand_ranges_and_give_pairs_their_latency() {
        let (name, m) = parse_group("eu=central, wallet-1..3").unwrap();
        assert_eq!(name, "eu");
        assert_eq!(m, ["central", "wallet-1", "wallet-2", "wallet-3"]);
        for bad in [
            "eu",
            "=a",
            "eu=",
            "eu=w-3..1",
            "eu=w..3",
            "eu=w-1..99999999",
        ] {
            assert!(parse_group(bad).is_err(), "{bad}");
        }
        let nodes: Vec<String> = ["central", "miner-1", "wallet-1", "wallet-2"]
            .map(String::from)
            .into();
        let wan = Wan {
            latency_ms: 10,
            groups: vec![
                parse_group("eu=central,miner-1").unwrap(),
                parse_group("us=wallet-1").unwrap(),
            ],
            between: vec![parse_latency_between("eu,us:150ms").unwrap()],
            ..Wan::default()
        };
        let links = wan.links(&nodes).unwrap();
        assert_eq!(links.latency_ms(0, 2), 150);
        assert_eq!(links.latency_ms(2, 1), 150);
        assert_eq!(links.latency_ms(0, 1), 10, "inside a group");
        assert_eq!(links.latency_ms(0, 3), 10, "wallet-2 is in no group");
        let mut unknown = wan.clone();
        unknown.between[0].b = "asia".into();
        assert!(
            unknown
                .links(&nodes)
                .unwrap_err()
                .to_string()
                .contains("asia")
        );
        let mut twice = wan;
        twice.groups.push(parse_group("asia=central").unwrap());
        assert!(twice.links(&nodes).is_err());
    }
}
