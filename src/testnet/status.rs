//! `testnet status`: one row per node, then the tips the running nodes are on (a fork when more
//! than one) and the partition made by `testnet partition`. Process up or down from the holder
//! of its lock, height and tip from its
//! store (read-only, so a stopped node still shows where it stopped), peers, mempool and sync
//! state from its HTTP API when that answers ("-" otherwise). `--watch` redraws every second.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use super::probe::{self, ApiStatus};
use super::process::lock_holder;
use super::summary::summary;
use super::{NodeRecord, State, table};
use crate::store::Tip;

/// How often `--watch` redraws.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// Hex digits of the tip hash shown.
const SHORT_HASH: usize = 16;

/// Above this many nodes `testnet status` prints the summary instead of every node.
pub const SUMMARY_ABOVE: usize = 20;
/// Nodes looked at in parallel.
const WORKERS: usize = 16;

/// How much `testnet status` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Detail {
    /// The summary above [`SUMMARY_ABOVE`] nodes, every node below.
    #[default]
    Auto,
    Summary,
    All,
}

/// What `testnet status` shows.
#[derive(Debug, Clone)]
pub struct StatusOptions {
    pub dir: PathBuf,
    /// Redraw every second until interrupted.
    pub watch: bool,
    pub detail: Detail,
}

/// One node as seen now.
pub(super) struct Row<'a> {
    pub node: &'a NodeRecord,
    /// The pid of the process holding the node's lock.
    pub pid: Option<u32>,
    pub up: bool,
    pub tip: Option<Tip>,
    /// Why the store could not be read, if it could not.
    pub store_error: Option<String>,
    pub api: Option<ApiStatus>,
    /// The peer ids of its `/peers`, when its API answered.
    pub peers: Option<Vec<String>>,
}

/// Every node looked at, [`WORKERS`] at a time, in the order of `nodes`.
fn look_all(nodes: &[NodeRecord]) -> Vec<Row<'_>> {
    let chunk = nodes.len().div_ceil(WORKERS).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = nodes
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().map(look).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

fn look(node: &NodeRecord) -> Row<'_> {
    // The process that holds the node's lock, not whatever now has the recorded pid.
    let pid = lock_holder(&node.dir, node.pid);
    let up = pid.is_some();
    let (tip, store_error) = match probe::chain_tip(&node.dir) {
        Ok(tip) => (tip, None),
        Err(e) => (None, Some(format!("{e:#}"))),
    };
    let (api, peers) = if up {
        (probe::api_status(&node.dir), probe::api_peers(&node.dir))
    } else {
        (None, None)
    };
    Row {
        node,
        pid,
        up,
        tip,
        store_error,
        api,
        peers,
    }
}

/// `syncing 1200/3000 40%`: blocks connected of the verified headers.
fn syncing(height: u32, headers: Option<u32>) -> String {
    match headers {
        Some(h) if h > height => {
            let pct = u64::from(height) * 100 / u64::from(h);
            format!("syncing {height}/{h} {pct}%")
        }
        _ => "syncing".into(),
    }
}

/// The table: a dead node is `down`; a live one below the best height of the live nodes is
/// `behind`; otherwise the API's sync state, or `synced` when the API does not answer.
fn render(rows: &[Row]) -> String {
    let best = rows
        .iter()
        .filter(|r| r.up)
        .filter_map(|r| r.tip.map(|t| t.height))
        .max();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let dash = || "-".to_string();
            let state = match (r.up, r.tip) {
                (false, _) => "down".to_string(),
                (true, None) if r.store_error.is_some() => "store unreadable".into(),
                (true, None) => "no chain yet".into(),
                (true, Some(t)) if r.api.as_ref().is_some_and(|a| a.sync == "syncing") => {
                    syncing(t.height, r.api.as_ref().and_then(|a| a.headers_height))
                }
                (true, Some(t)) if Some(t.height) < best => "behind".into(),
                (true, Some(_)) => r
                    .api
                    .as_ref()
                    .map_or_else(|| "synced".into(), |a| a.sync.clone()),
            };
            vec![
                r.node.name.clone(),
                r.node.role.to_string(),
                r.pid.map_or_else(dash, |p| p.to_string()),
                if r.up { "up" } else { "down" }.to_string(),
                r.tip.map_or_else(dash, |t| t.height.to_string()),
                r.tip.map_or_else(dash, |t| {
                    t.hash.to_string().chars().take(SHORT_HASH).collect()
                }),
                r.api.as_ref().map_or_else(dash, |a| a.peers.to_string()),
                r.api
                    .as_ref()
                    .map_or_else(dash, |a| a.mempool.txs.to_string()),
                state,
            ]
        })
        .collect();
    table(
        &[
            "node", "role", "pid", "process", "height", "tip", "peers", "mempool", "state",
        ],
        &cells,
    )
}

/// Below the table: the tips the running nodes are on (more than one is a fork), and the
/// partition `testnet partition` made, if any.
fn network(rows: &[Row], partition: Option<&[Vec<String>]>) -> String {
    let mut tips: Vec<(Tip, Vec<&str>)> = Vec::new();
    for r in rows.iter().filter(|r| r.up) {
        let Some(t) = r.tip else { continue };
        match tips.iter_mut().find(|(k, _)| k.hash == t.hash) {
            Some((_, names)) => names.push(&r.node.name),
            None => tips.push((t, vec![&r.node.name])),
        }
    }
    tips.sort_by(|a, b| {
        b.0.chain_work
            .cmp(&a.0.chain_work)
            .then(b.1.len().cmp(&a.1.len()))
    });
    let mut out = String::new();
    match tips.len() {
        0 => {}
        1 => out.push_str(&format!(
            "one tip: {} running node(s) at height {}\n",
            tips[0].1.len(),
            tips[0].0.height
        )),
        n => {
            out.push_str(&format!("FORK: the running nodes are on {n} tips\n"));
            for (t, names) in &tips {
                let hash: String = t.hash.to_string().chars().take(SHORT_HASH).collect();
                out.push_str(&format!(
                    "  tip {hash} height {:>5}: {}\n",
                    t.height,
                    names.join(", ")
                ));
            }
        }
    }
    if let Some(groups) = partition {
        let shown: Vec<String> = groups.iter().map(|g| g.join(",")).collect();
        out.push_str(&format!(
            "PARTITIONED: {} (undo with `testnet heal`)\n",
            shown.join(" | ")
        ));
    }
    out
}

/// Runs `testnet status`.
pub fn status(opts: &StatusOptions) -> Result<()> {
    loop {
        let state = State::load_existing(&opts.dir)?;
        let rows = look_all(&state.nodes);
        let brief = match opts.detail {
            Detail::Auto => rows.len() > SUMMARY_ABOVE,
            Detail::Summary => true,
            Detail::All => false,
        };
        let text = if brief {
            summary(&rows, state.partition.as_deref())
        } else {
            format!(
                "{}\n{}",
                render(&rows),
                network(&rows, state.partition.as_deref())
            )
        };
        if !opts.watch {
            print!("{text}");
            return Ok(());
        }
        if std::io::stdout().is_terminal() {
            print!("\x1b[H\x1b[2J"); // cursor home, clear screen
        }
        println!(
            "testnet in {}, every {}s (Ctrl-C to stop)\n\n{text}",
            opts.dir.display(),
            WATCH_EVERY.as_secs()
        );
        std::thread::sleep(WATCH_EVERY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gossipcoin_proto::BlockHash;
    use gossipcoin_proto::message::Role;

    fn record(name: &str) -> NodeRecord {
        NodeRecord {
            name: name.into(),
            role: Role::Wallet,
            dir: PathBuf::from("/t"),
            pid: Some(7),
            p2p_port: 3000,
            api_port: 4000,
            p2p_addr: None,
            peer_id: None,
            address: None,
            log: PathBuf::from("/t/node.log"),
            ip: None,
        }
    }

    fn tip(height: u32) -> Option<Tip> {
        Some(Tip {
            hash: BlockHash::ZERO,
            height,
            chain_work: Default::default(),
        })
    }

    #[test]
    fn down_behind_synced_and_the_api_state() {
        let nodes: Vec<NodeRecord> = ["a", "b", "c", "d", "e"].into_iter().map(record).collect();
        let row = |i: usize, up: bool, tip: Option<Tip>, api: Option<ApiStatus>| Row {
            node: &nodes[i],
            pid: up.then_some(7),
            up,
            tip,
            store_error: None,
            api,
            peers: None,
        };
        let api = ApiStatus {
            height: 3,
            tip: "00".into(),
            sync: "alone".into(),
            headers_height: Some(3),
            peers: 0,
            mempool: probe::ApiMempool { txs: 5, bytes: 900 },
        };
        let catching_up = ApiStatus {
            height: 1,
            sync: "syncing".into(),
            headers_height: Some(4),
            ..api.clone()
        };
        let text = render(&[
            row(0, true, tip(3), None),
            row(1, true, tip(2), None),
            row(2, false, tip(9), None), // a dead node's height does not count as best
            row(3, true, tip(3), Some(api)),
            row(4, true, None, None),
            row(4, true, tip(1), Some(catching_up)),
        ]);
        let states: Vec<&str> = text
            .lines()
            .skip(1)
            .map(|l| l.rsplit("  ").next().unwrap())
            .collect();
        assert_eq!(
            states,
            [
                "synced",
                "behind",
                "down",
                "alone",
                "no chain yet",
                "syncing 1/4 25%"
            ],
            "{text}"
        );
        let d = text.lines().nth(4).unwrap();
        assert!(
            d.contains(" 0  ") && d.contains(" 5 "),
            "peers and mempool from the API: {d}"
        );
        assert!(text.lines().nth(3).unwrap().contains(" down "), "{text}");
    }
}
