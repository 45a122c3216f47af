//! `testnet partition A,B C,D` and `testnet heal`: the network cut in groups and joined again,
//! with no root and no firewall, through each node's API (Core's `setban`): every node bans the
//! peer ids of the nodes of the other groups (it drops them and refuses them while the ban
//! runs), and dials the nodes of its own group so that each group stays connected. `heal` lifts
//! those bans and dials across the old groups. The groups are kept in `testnet.json` for
//! `status`.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::hosts::{self, Names};
use super::{NodeRecord, State};
use crate::api::client::ApiClient;

/// A node's API, with its cookie (read from its data directory).
fn api(node: &NodeRecord) -> Result<ApiClient> {
    ApiClient::of_running_node(&node.dir)?.with_context(|| {
        format!(
            "{} is not running: start it with `testnet start`",
            node.name
        )
    })
}

/// Parses `central,miner-1 miner-2,wallet-1` into groups of node indices.
fn groups(state: &State, args: &[String]) -> Result<Vec<Vec<usize>>> {
    let mut used = vec![false; state.nodes.len()];
    let mut out = Vec::new();
    for arg in args {
        let mut group = Vec::new();
        for name in arg.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let Some(i) = state.nodes.iter().position(|n| n.name == name) else {
                let names: Vec<&str> = state.nodes.iter().map(|n| n.name.as_str()).collect();
                bail!(
                    "no node {name:?} in this testnet (nodes: {})",
                    names.join(", ")
                );
            };
            if std::mem::replace(&mut used[i], true) {
                bail!("{name} is in two groups");
            }
            group.push(i);
        }
        if group.is_empty() {
            bail!("an empty group in {args:?}");
        }
        out.push(group);
    }
    if out.len() < 2 {
        bail!("a partition needs two groups or more, e.g. `central,miner-1 miner-2,wallet-1`");
    }
    Ok(out)
}

fn peer_id(node: &NodeRecord) -> Result<&str> {
    node.peer_id
        .as_deref()
        .with_context(|| format!("{} has no recorded peer id (never started?)", node.name))
}

/// Asks `from` to dial `to` (`POST /nodes/register`); failures are reported, not fatal.
fn connect(from: &ApiClient, to: &NodeRecord) -> bool {
    let Some(addr) = &to.p2p_addr else {
        return false;
    };
    from.post("/nodes/register", &json!({ "nodes": [addr] }))
        .is_ok()
}

/// Runs `testnet partition`.
pub fn partition(dir: &Path, args: &[String]) -> Result<()> {
    let mut state = State::load_existing(dir)?;
    let groups = groups(&state, args)?;
    if let Some(h) = &state.hosts {
        let cut = hosts::cut(&Names::from_tag(&h.tag), &groups)?;
        // Each group stays connected: its nodes dial each other (a node that knew only the
        // central node across the cut would be alone otherwise).
        for group in &groups {
            for &i in group {
                let api = api(&state.nodes[i])?;
                for &j in group.iter().filter(|&&j| j != i) {
                    connect(&api, &state.nodes[j]);
                }
            }
        }
        let named = names_of(&state, &groups);
        state.partition = Some(named.clone());
        state.save(dir)?;
        let shown: Vec<String> = named.iter().map(|g| g.join(",")).collect();
        println!(
            "Partitioned: {} (firewall rules in {cut} namespaces drop every packet between the \
             groups). Watch it with `gossipcoin testnet status --dir {d}`; heal with \
             `gossipcoin testnet heal --dir {d}`.",
            shown.join(" | "),
            d = dir.display()
        );
        return Ok(());
    }
    let mut bans = 0;
    for (g, group) in groups.iter().enumerate() {
        for &i in group {
            let node = &state.nodes[i];
            let api = api(node)?;
            for (h, other) in groups.iter().enumerate().filter(|(h, _)| *h != g) {
                let _ = h;
                for &j in other {
                    let target = &state.nodes[j];
                    api.post(
                        "/peers/ban",
                        &json!({ "peer": peer_id(target)?, "reason": "testnet partition" }),
                    )
                    .with_context(|| format!("{} cannot ban {}", node.name, target.name))?;
                    bans += 1;
                }
            }
            for &j in group.iter().filter(|&&j| j != i) {
                connect(&api, &state.nodes[j]);
            }
        }
    }
    let named = names_of(&state, &groups);
    state.partition = Some(named.clone());
    state.save(dir)?;
    let shown: Vec<String> = named.iter().map(|g| g.join(",")).collect();
    println!(
        "Partitioned: {} ({bans} bans). Each group now grows its own chain if it has a miner.\n\
         Watch it with `gossipcoin testnet status --dir {d}`; heal with `gossipcoin testnet heal \
         --dir {d}`.",
        shown.join(" | "),
        d = dir.display()
    );
    Ok(())
}

/// The node names of each group.
fn names_of(state: &State, groups: &[Vec<usize>]) -> Vec<Vec<String>> {
    groups
        .iter()
        .map(|g| g.iter().map(|&i| state.nodes[i].name.clone()).collect())
        .collect()
}

/// Runs `testnet heal`.
pub fn heal(dir: &Path) -> Result<()> {
    let mut state = State::load_existing(dir)?;
    let mended = match &state.hosts {
        Some(h) => Some(hosts::mend(&Names::from_tag(&h.tag), state.nodes.len())?),
        None => None,
    };
    let ours: Vec<&str> = state
        .nodes
        .iter()
        .filter_map(|n| n.peer_id.as_deref())
        .collect();
    let running: Vec<(usize, ApiClient)> = state
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| Some((i, ApiClient::of_running_node(&n.dir).ok()??)))
        .collect();
    let mut lifted = 0;
    for (_, api) in &running {
        let banned = api.get("/peers/banned")?;
        let peers: Vec<String> = banned
            .get("banned")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|b| b.get("peer").and_then(Value::as_str).map(str::to_string))
            .filter(|p| ours.contains(&p.as_str()))
            .collect();
        for peer in peers {
            api.post("/peers/unban", &json!({ "peer": peer }))?;
            lifted += 1;
        }
    }
    // Reconnect across the old groups (every pair once when no groups are recorded).
    let group_of = |i: usize| {
        state
            .partition
            .as_ref()
            .and_then(|gs| gs.iter().position(|g| g.contains(&state.nodes[i].name)))
    };
    let mut dialed = 0;
    for (a, (i, api)) in running.iter().enumerate() {
        for (j, _) in running.iter().skip(a + 1) {
            let across = group_of(*i) != group_of(*j) || state.partition.is_none();
            if across && connect(api, &state.nodes[*j]) {
                dialed += 1;
            }
        }
    }
    state.partition = None;
    state.save(dir)?;
    let undone = match mended {
        Some(n) => format!("firewall rules removed in {n} namespaces"),
        None => format!("{lifted} bans lifted"),
    };
    println!(
        "Healed: {undone}, {dialed} connections made across the groups. The nodes converge on \
         the chain with the most work; watch it with `gossipcoin testnet status --dir {}`.",
        dir.display()
    );
    Ok(())
}
