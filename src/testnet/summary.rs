//! `testnet status` for a large testnet: a few lines about the whole network (nodes up, heights,
//! tips and forks, degree min/median/max from each node's `/peers`, whether the peer graph is
//! connected, the recorded partition) and then only the nodes that are unusual, each with why.
//! Pure: it works on the rows `status.rs` gathered, so it is tested without a network.

use std::collections::{BTreeMap, HashMap};

use super::status::Row;
use super::table;
use crate::store::Tip;

/// The most unusual nodes listed; the rest are counted (`--all` shows every node).
pub const MAX_LISTED: usize = 40;
/// Hex digits of a tip hash shown.
const SHORT_HASH: usize = 16;

/// The median of `values` (the lower one of the middle two), `None` when empty.
fn median(values: &mut [usize]) -> Option<usize> {
    values.sort_unstable();
    values.get(values.len().saturating_sub(1) / 2).copied()
}

fn short(tip: &Tip) -> String {
    tip.hash.to_string().chars().take(SHORT_HASH).collect()
}

/// The connected parts of the peer graph among the running nodes, by size, largest first.
/// An edge is a peer id in a node's `/peers` that belongs to another node of the testnet.
pub fn components(rows: &[Row]) -> Vec<usize> {
    let index: HashMap<&str, usize> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.up)
        .filter_map(|(i, r)| Some((r.node.peer_id.as_deref()?, i)))
        .collect();
    let mut parent: Vec<usize> = (0..rows.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for (i, r) in rows.iter().enumerate().filter(|(_, r)| r.up) {
        for p in r.peers.iter().flatten() {
            if let Some(&j) = index.get(p.as_str()) {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                parent[a] = b;
            }
        }
    }
    let mut sizes: BTreeMap<usize, usize> = BTreeMap::new();
    for i in (0..rows.len()).filter(|&i| rows[i].up) {
        *sizes.entry(root(&mut parent, i)).or_default() += 1;
    }
    let mut sizes: Vec<usize> = sizes.into_values().collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    sizes
}

/// Why a node is worth a look, or `None` when it is like most.
fn unusual(r: &Row, best: Option<&Tip>, low_degree: usize) -> Option<String> {
    if !r.up {
        return Some("down".into());
    }
    let Some(tip) = r.tip else {
        return Some(match &r.store_error {
            Some(e) => format!("store unreadable: {e}"),
            None => "no chain yet".into(),
        });
    };
    if let Some(best) = best
        && tip.hash != best.hash
    {
        return Some(if tip.height < best.height {
            format!("behind: height {} of {}", tip.height, best.height)
        } else {
            format!("on another tip {} (fork)", short(&tip))
        });
    }
    let Some(api) = &r.api else {
        return Some("API does not answer".into());
    };
    if api.sync == "syncing" {
        return Some("syncing".into());
    }
    match r.peers.as_ref().map(Vec::len) {
        Some(0) => Some("isolated: no peers".into()),
        Some(d) if d < low_degree => Some(format!("few peers: {d}")),
        _ => None,
    }
}

/// The summary text; `partition` is the one `testnet partition` recorded.
pub fn summary(rows: &[Row], partition: Option<&[Vec<String>]>) -> String {
    let mut out = String::new();
    let up: Vec<&Row> = rows.iter().filter(|r| r.up).collect();
    out.push_str(&format!(
        "{} nodes: {} up, {} down\n",
        rows.len(),
        up.len(),
        rows.len() - up.len()
    ));
    let mut heights: Vec<usize> = up
        .iter()
        .filter_map(|r| r.tip.map(|t| t.height as usize))
        .collect();
    if let Some(med) = median(&mut heights) {
        out.push_str(&format!(
            "height: min {}, median {med}, max {}\n",
            heights[0],
            heights[heights.len() - 1]
        ));
    }
    // Tips by the number of running nodes on them; the best is the one with the most work.
    let mut tips: Vec<(Tip, usize)> = Vec::new();
    for t in up.iter().filter_map(|r| r.tip) {
        match tips.iter_mut().find(|(k, _)| k.hash == t.hash) {
            Some((_, n)) => *n += 1,
            None => tips.push((t, 1)),
        }
    }
    tips.sort_by(|a, b| b.0.chain_work.cmp(&a.0.chain_work).then(b.1.cmp(&a.1)));
    let best = tips.first().map(|(t, _)| t);
    match tips.len() {
        0 => {}
        1 => out.push_str(&format!(
            "one tip: {} at height {}, {} node(s)\n",
            short(&tips[0].0),
            tips[0].0.height,
            tips[0].1
        )),
        n => {
            out.push_str(&format!("FORK: the running nodes are on {n} tips\n"));
            for (t, count) in tips.iter().take(5) {
                out.push_str(&format!(
                    "  tip {} height {:>5}: {count} node(s)\n",
                    short(t),
                    t.height
                ));
            }
            if n > 5 {
                out.push_str(&format!("  ... and {} more tips\n", n - 5));
            }
        }
    }
    let mut degrees: Vec<usize> = up
        .iter()
        .filter_map(|r| r.peers.as_ref().map(Vec::len))
        .collect();
    let answered = degrees.len();
    let med = median(&mut degrees);
    if let Some(med) = med {
        out.push_str(&format!(
            "degree (peers per node, from /peers of {answered}): min {}, median {med}, max {}\n",
            degrees[0],
            degrees[degrees.len() - 1]
        ));
    }
    let parts = components(rows);
    match parts.len() {
        0 => {}
        1 => out.push_str("peer graph: connected\n"),
        n => {
            let sizes: Vec<String> = parts.iter().take(8).map(usize::to_string).collect();
            let more = if n > 8 { " + ..." } else { "" };
            out.push_str(&format!(
                "PEER GRAPH SPLIT: {n} parts of {}{more} nodes\n",
                sizes.join(" + ")
            ));
        }
    }
    if let Some(groups) = partition {
        let sizes: Vec<String> = groups.iter().map(|g| g.len().to_string()).collect();
        out.push_str(&format!(
            "PARTITIONED by `testnet partition` into {} groups of {} nodes (undo with `testnet \
             heal`)\n",
            groups.len(),
            sizes.join(" + ")
        ));
    }
    let low = med.map_or(0, |m| m / 2);
    let odd: Vec<(&Row, String)> = rows
        .iter()
        .filter_map(|r| Some((r, unusual(r, best, low)?)))
        .collect();
    if odd.is_empty() {
        out.push_str("no unusual node (`--all` lists every node)\n");
        return out;
    }
    out.push_str(&format!(
        "\n{} unusual node(s) (`--all` lists every node):\n",
        odd.len()
    ));
    let cells: Vec<Vec<String>> = odd
        .iter()
        .take(MAX_LISTED)
        .map(|(r, why)| {
            vec![
                r.node.name.clone(),
                r.tip.map_or_else(|| "-".into(), |t| t.height.to_string()),
                r.peers
                    .as_ref()
                    .map_or_else(|| "-".into(), |p| p.len().to_string()),
                why.clone(),
            ]
        })
        .collect();
    out.push_str(&table(&["node", "height", "peers", "why"], &cells));
    if odd.len() > MAX_LISTED {
        out.push_str(&format!("... and {} more\n", odd.len() - MAX_LISTED));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::NodeRecord;
    use super::super::probe::{ApiMempool, ApiStatus};
    use super::*;
    use gossipcoin_proto::BlockHash;
    use gossipcoin_proto::message::Role;
    use gossipcoin_proto::pow::U256;
    use std::path::PathBuf;

    fn record(i: usize) -> NodeRecord {
        NodeRecord {
            name: format!("wallet-{i}"),
            role: Role::Wallet,
            dir: PathBuf::from("/t"),
            pid: Some(7),
            p2p_port: 3000,
            api_port: 4000,
            p2p_addr: None,
            peer_id: Some(format!("peer{i}")),
            address: None,
            log: PathBuf::from("/t/node.log"),
            ip: None,
        }
    }

    fn tip(height: u32, byte: u8) -> Tip {
        let mut hash = [0u8; 32];
        hash[0] = byte;
        Tip {
            hash: BlockHash(hash),
            height,
            chain_work: U256::from_u64(u64::from(height)),
        }
    }

    fn api() -> ApiStatus {
        ApiStatus {
            height: 0,
            tip: String::new(),
            sync: "synced".into(),
            headers_height: None,
            peers: 0,
            mempool: ApiMempool { txs: 0, bytes: 0 },
        }
    }

    /// 300 nodes in a ring with chords (degree 4); the caller breaks some.
    fn network(nodes: &[NodeRecord]) -> Vec<Row<'_>> {
        let n = nodes.len();
        nodes
            .iter()
            .enumerate()
            .map(|(i, node)| Row {
                node,
                pid: Some(7),
                up: true,
                tip: Some(tip(12, 1)),
                store_error: None,
                api: Some(api()),
                peers: Some(
                    [1, n - 1, 7, n - 7]
                        .iter()
                        .map(|d| format!("peer{}", (i + d) % n))
                        .collect(),
                ),
            })
            .collect()
    }

    #[test]
    fn a_healthy_network_is_a_few_lines() {
        let nodes: Vec<NodeRecord> = (0..300).map(record).collect();
        let text = summary(&network(&nodes), None);
        assert!(text.contains("300 nodes: 300 up, 0 down"), "{text}");
        assert!(text.contains("height: min 12, median 12, max 12"), "{text}");
        assert!(
            text.contains("one tip: 0100000000000000 at height 12, 300 node(s)"),
            "{text}"
        );
        assert!(text.contains("min 4, median 4, max 4"), "{text}");
        assert!(text.contains("peer graph: connected"), "{text}");
        assert!(text.contains("no unusual node"), "{text}");
        assert!(text.lines().count() < 10, "{text}");
    }

    #[test]
    fn only_the_unusual_nodes_are_listed_with_why() {
        let nodes: Vec<NodeRecord> = (0..300).map(record).collect();
        let mut rows = network(&nodes);
        rows[3].up = false;
        rows[4].tip = Some(tip(11, 4)); // an ancestor of the best tip
        rows[5].tip = Some(tip(12, 2)); // same height, another block: a fork
        rows[6].peers = Some(vec![]);
        rows[7].api = None;
        let text = summary(
            &rows,
            Some(&[vec!["a".into()], vec!["b".into(), "c".into()]]),
        );
        assert!(text.contains("300 nodes: 299 up, 1 down"), "{text}");
        assert!(
            text.contains("FORK: the running nodes are on 3 tips"),
            "{text}"
        );
        assert!(
            text.contains("PARTITIONED by `testnet partition` into 2 groups of 1 + 2"),
            "{text}"
        );
        assert!(text.contains("5 unusual node(s)"), "{text}");
        let listed: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("node "))
            .skip(1)
            .collect();
        assert_eq!(listed.len(), 5, "{text}");
        for (line, (name, why)) in listed.iter().zip([
            ("wallet-3", "down"),
            ("wallet-4", "behind: height 11 of 12"),
            ("wallet-5", "on another tip 0200000000000000 (fork)"),
            ("wallet-6", "isolated: no peers"),
            ("wallet-7", "API does not answer"),
        ]) {
            assert!(line.starts_with(name) && line.ends_with(why), "{line}");
        }
    }

    #[test]
    fn a_split_graph_is_reported_and_long_lists_are_cut() {
        let nodes: Vec<NodeRecord> = (0..100).map(record).collect();
        let mut rows = network(&nodes);
        // Two halves, each a ring of its own.
        for (i, r) in rows.iter_mut().enumerate() {
            let base = i / 50 * 50;
            r.peers = Some(
                [1, 49]
                    .iter()
                    .map(|d| format!("peer{}", base + (i - base + d) % 50))
                    .collect(),
            );
            if i >= 50 {
                r.tip = Some(tip(10, 3));
            }
        }
        assert_eq!(components(&rows), [50, 50]);
        let text = summary(&rows, None);
        assert!(
            text.contains("PEER GRAPH SPLIT: 2 parts of 50 + 50 nodes"),
            "{text}"
        );
        assert!(text.contains("50 unusual node(s)"), "{text}");
        assert!(
            text.contains(&format!("... and {} more", 50 - MAX_LISTED)),
            "{text}"
        );
        // A node that is down counts in no part.
        rows[0].up = false;
        assert_eq!(components(&rows), [50, 49]);
    }
}
