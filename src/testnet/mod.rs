//! `gossipcoin testnet`: a local network of real `startnode` processes on loopback, one command
//! to start it and one to stop it.
//!
//! ```text
//!   DIR/testnet.json         what `up` started: one record per node (pid, ports, peer id, paths)
//!   DIR/central/             createwallet + createblockchain; the bootstrap peer of the others
//!   DIR/miner-1 .. miner-N   createwallet; mines to its own address
//!   DIR/wallet-1 .. wallet-M createwallet
//!   DIR/<node>/node.log      the node's JSON log;  node.out: its stdout and stderr
//! ```
//! - `up.rs` creates the nodes, starts one process each and waits, watching from outside
//!   (`ready.rs`), until all are connected and on the central node's tip;
//! - `status.rs` shows each node, forks and partitions (`summary.rs`: a summary and only the
//!   unusual nodes for a large testnet); `down.rs` stops them; `logs.rs` merges
//!   their logs by time (peer ids shown as node names); `trace.rs` follows one txid or block
//!   through them;
//! - `node.rs` kills or starts one node; `partition.rs` cuts the network in groups and heals it
//!   through the nodes' APIs (bans);
//! - `ui.rs` serves the testnet page (cards, peer graph, block arrival times) from the nodes' APIs;
//! - `hosts/` makes each node a host of its own (`up --hosts`: network namespaces on a bridge,
//!   partitions by firewall rules, WAN latency and loss through a user-space router);
//! - `probe.rs` reads a node from outside (its store read-only, `node.addr`, its HTTP API);
//!   `process.rs` finds the process holding a node's lock and signals it.
//!
//! Everything here runs the node as a separate process: nothing of the daemon is linked in
//! except the read-only store.

mod down;
pub mod hosts;
mod logs;
mod node;
mod params;
mod partition;
mod probe;
mod process;
mod ready;
mod status;
mod summary;
mod trace;
mod ui;
mod up;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use gossipcoin_proto::message::Role;
use serde::{Deserialize, Serialize};

pub use down::{DownOptions, down, down_quietly};
pub use logs::{Level, LogsOptions, logs};
pub use node::{kill, start};
pub use params::parse_interval;
pub use partition::{heal, partition};
pub use process::is_running;
pub use status::{Detail, StatusOptions, status};
pub use trace::{TraceOptions, trace};
pub use ui::{UiOptions, ui};
pub use up::{UpOptions, stop_on_ctrl_c, up};

/// The state file in the testnet directory.
pub const STATE_FILE: &str = "testnet.json";
/// Each node's JSON log, in its data directory.
pub const LOG_FILE: &str = "node.log";
/// Each node's stdout and stderr (a failure to start shows up here), in its data directory.
pub const OUT_FILE: &str = "node.out";

/// One node as `up` started it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// `central`, `miner-1`, `wallet-2`, ...: the directory name and the `--node` of `logs`.
    pub name: String,
    #[serde(with = "role_name")]
    pub role: Role,
    /// The node's data directory.
    pub dir: PathBuf,
    /// The running process; `None` once `down` stopped it (or `up` failed).
    pub pid: Option<u32>,
    pub p2p_port: u16,
    pub api_port: u16,
    /// The first line of the node's `node.addr`: its listen address ending in `/p2p/<peer id>`.
    pub p2p_addr: Option<String>,
    pub peer_id: Option<String>,
    /// The first address of the node's wallet (the central node's holds the genesis coins).
    pub address: Option<String>,
    /// The node's JSON log.
    pub log: PathBuf,
    /// Its own address with `--hosts` (in its network namespace); loopback otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
}

impl NodeRecord {
    /// The address the node listens on (P2P and API).
    pub fn listen_ip(&self) -> Ipv4Addr {
        self.ip.unwrap_or(Ipv4Addr::LOCALHOST)
    }

    /// The URL the node's HTTP API is expected at.
    pub fn api_url(&self) -> String {
        format!("http://{}:{}", self.listen_ip(), self.api_port)
    }

    /// The node's P2P listen address, without the peer id.
    pub fn multiaddr(&self) -> String {
        format!("/ip4/{}/tcp/{}", self.listen_ip(), self.p2p_port)
    }
}

/// The contents of `testnet.json`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct State {
    pub nodes: Vec<NodeRecord>,
    /// The chain parameters file `up` gave every node (`--params`), for `start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<PathBuf>,
    /// The groups of `testnet partition`, until `heal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<Vec<Vec<String>>>,
    /// The namespaces and links of `up --hosts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<hosts::HostsRecord>,
}

impl State {
    /// `DIR/testnet.json`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(STATE_FILE)
    }

    /// The state of the testnet in `dir`, or `None` when there is none.
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let path = Self::path(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let state = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a testnet state file", path.display()))?;
        Ok(Some(state))
    }

    /// Like [`State::load`], but no testnet is an error that says how to start one.
    pub fn load_existing(dir: &Path) -> Result<Self> {
        match Self::load(dir)? {
            Some(state) => Ok(state),
            None => bail!(
                "no testnet in {} (there is no {}): start one with `gossipcoin testnet up --dir {}`",
                dir.display(),
                Self::path(dir).display(),
                dir.display()
            ),
        }
    }

    /// Writes the state atomically: a temporary file renamed over the old one.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = Self::path(dir);
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&NodeRecord> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

/// `Role` as the lower-case word the command line uses (`"central"`), not serde's `"Central"`.
mod role_name {
    use gossipcoin_proto::message::Role;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(role: &Role, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(role)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Role, D::Error> {
        match String::deserialize(d)?.as_str() {
            "central" => Ok(Role::Central),
            "miner" => Ok(Role::Miner),
            "wallet" => Ok(Role::Wallet),
            other => Err(D::Error::custom(format!("unknown role {other:?}"))),
        }
    }
}

/// Lines of a text table, columns padded to their widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let padded: Vec<String> = cells
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(&mut header.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, role: Role) -> NodeRecord {
        NodeRecord {
            name: name.into(),
            role,
            dir: PathBuf::from("/t").join(name),
            pid: Some(4_000_000),
            p2p_port: 3000,
            api_port: 4000,
            p2p_addr: None,
            peer_id: None,
            address: None,
            log: PathBuf::from("/t").join(name).join(LOG_FILE),
            ip: None,
        }
    }

    #[test]
    fn state_file_round_trips_with_lower_case_roles() {
        let tmp = tempfile::tempdir().unwrap();
        let state = State {
            nodes: vec![
                record("central", Role::Central),
                record("miner-1", Role::Miner),
            ],
            ..State::default()
        };
        state.save(tmp.path()).unwrap();
        let text = std::fs::read_to_string(State::path(tmp.path())).unwrap();
        assert!(text.contains("\"role\": \"miner\""), "{text}");
        assert_eq!(State::load(tmp.path()).unwrap(), Some(state));
        assert!(!tmp.path().join(format!("{STATE_FILE}.tmp")).exists());
    }

    #[test]
    fn no_state_file_is_none_and_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(State::load(tmp.path()).unwrap(), None);
        let e = State::load_existing(tmp.path()).unwrap_err().to_string();
        assert!(
            e.contains("no testnet in") && e.contains("testnet up"),
            "{e}"
        );
        std::fs::write(State::path(tmp.path()), "{").unwrap();
        let e = State::load(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("not a testnet state file"), "{e}");
    }

    #[test]
    fn tables_pad_columns() {
        let t = table(
            &["node", "role"],
            &[
                vec!["central".into(), "central".into()],
                vec!["m".into(), "miner".into()],
            ],
        );
        assert_eq!(t, "node     role\ncentral  central\nm        miner\n");
    }
}
