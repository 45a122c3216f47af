//! The network's shape with the real binary (DESIGN §5, "topology as in Core, at any size"):
//! 60 nodes of `testnet up` form a connected graph in which every node holds its outbound
//! targets and nobody connects to everybody; a fresh node takes the genesis named by its chain
//! parameters from a peer that is not its bootstrap peer, and never another network's.

mod common;

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

use common::{
    Node, addr, bin, free_base, free_port, funded, http_get, http_post, poll_until, wait_until,
};
use serde_json::Value;

/// The node's peers (`/peers`), by peer id with their connection kind.
fn peers(api: &str, cookie: &str) -> Option<HashMap<String, String>> {
    let r = http_get(&format!("{api}/peers"), Some(cookie));
    if r.status != 200 {
        return None;
    }
    let list = r.body.get("peers")?.as_array()?.clone();
    Some(
        list.iter()
            .filter_map(|p| {
                Some((
                    p.get("peer_id")?.as_str()?.to_string(),
                    p.get("connection")?.as_str()?.to_string(),
                ))
            })
            .collect(),
    )
}

/// Runs `testnet down` when dropped.
struct Testnet {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Drop for Testnet {
    fn drop(&mut self) {
        let _ = std::process::Command::new(bin())
            .args(["testnet", "down", "--dir"])
            .arg(&self.dir)
            .output();
    }
}

fn node_api(dir: &Path, name: &str) -> (String, String) {
    let node = dir.join(name);
    // `testnet up` waits for the P2P side; the API may be a moment later
    wait_until(60, "the node's api.addr", || node.join("api.addr").exists());
    let api = std::fs::read_to_string(node.join("api.addr")).unwrap();
    let cookie = std::fs::read_to_string(node.join("api.cookie")).unwrap();
    (api.trim().to_string(), cookie.trim().to_string())
}

#[test]
fn sixty_nodes_form_a_connected_graph_of_bounded_degree() {
    const NODES: u16 = 60;
    let tmp = tempfile::tempdir().unwrap();
    let net = Testnet {
        dir: tmp.path().join("tn"),
        _tmp: tmp,
    };
    let base = free_base(NODES).to_string();
    let out = std::process::Command::new(bin())
        .args(["testnet", "up", "--miners", "1", "--wallets"])
        .arg((NODES - 2).to_string())
        .args(["--base-port", &base, "--timeout", "120", "--dir"])
        .arg(&net.dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "testnet up failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(net.dir.join("testnet.json")).unwrap())
            .unwrap();
    let names: Vec<String> = state["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_string())
        .collect();
    let ids: Vec<String> = state["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["peer_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), NODES as usize);
    let apis: Vec<(String, String)> = names.iter().map(|n| node_api(&net.dir, n)).collect();

    // every node reaches its targets: 8 full-relay and 2 block-relay-only outbound peers
    let mut graph: Vec<HashMap<String, String>> = Vec::new();
    let settled = poll_until(90, || {
        graph = apis
            .iter()
            .map(|(api, cookie)| peers(api, cookie).unwrap_or_default())
            .collect();
        graph.iter().all(|p| {
            let count = |k: &str| p.values().filter(|v| *v == k).count();
            count("outbound-full-relay") == 8 && count("block-relay-only") == 2
        })
    });
    let counts: Vec<(usize, usize, usize)> = graph
        .iter()
        .map(|p| {
            let count = |k: &str| p.values().filter(|v| *v == k).count();
            (
                count("outbound-full-relay"),
                count("block-relay-only"),
                p.len(),
            )
        })
        .collect();
    assert!(
        settled,
        "not every node holds 8 full-relay + 2 block-relay peers: {counts:?}"
    );
    // bounded: outbound at most the targets plus the extra room; inbound at most the cap
    for (i, p) in graph.iter().enumerate() {
        let inbound = p.values().filter(|v| *v == "inbound").count();
        assert!(inbound <= 117, "{}: {inbound} inbound", names[i]);
        assert!(p.len() <= 117 + 26, "{}: degree {}", names[i], p.len());
    }
    // The graph the targets keep: an edge for every outbound peer a node holds (the DHT's
    // short-lived query connections and their inbound ends aside). Not a full mesh...
    let index: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let mut held: Vec<HashSet<usize>> = vec![HashSet::new(); graph.len()];
    for (i, p) in graph.iter().enumerate() {
        for (id, kind) in p {
            if matches!(kind.as_str(), "outbound-full-relay" | "block-relay-only")
                && let Some(&j) = index.get(id.as_str())
            {
                held[i].insert(j);
                held[j].insert(i);
            }
        }
    }
    let mut degrees: Vec<usize> = held.iter().map(HashSet::len).collect();
    degrees.sort_unstable();
    let median = degrees[degrees.len() / 2];
    assert!(
        median < (NODES as usize - 1) / 2,
        "median degree {median} of {NODES} nodes: close to a full mesh ({degrees:?})"
    );
    assert!(
        degrees[0] >= 10,
        "a node below its 10 outbound peers: {degrees:?}"
    );
    // ...and connected: every node is reached from the central node over those links
    let mut seen = HashSet::from([0usize]);
    let mut queue = VecDeque::from([0usize]);
    while let Some(i) = queue.pop_front() {
        for &j in &held[i] {
            if seen.insert(j) {
                queue.push_back(j);
            }
        }
    }
    assert_eq!(
        seen.len(),
        NODES as usize,
        "the peer graph is not connected"
    );
}

#[test]
fn a_fresh_node_takes_the_configured_genesis_from_any_peer_and_never_another() {
    // network A: its genesis recorded in its parameters file by createblockchain
    let a = Node::new();
    let params_a = common::easy_params(&a);
    funded(&a, &params_a);
    let recorded = std::fs::read_to_string(&params_a).unwrap();
    let genesis_a = recorded
        .lines()
        .find_map(|l| l.strip_prefix("genesis = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("createblockchain --params records the genesis")
        .to_string();
    let a_daemon = common::start_central(&a, &params_a, &[]);
    let (a_api, a_cookie) = (a_daemon.api(), a_daemon.cookie());

    // network B: another genesis; it is the fresh node's bootstrap peer
    let b = Node::new();
    let params_b = common::easy_params(&b);
    funded(&b, &params_b);
    let b_port = free_port();
    let b_daemon = b.start(&[
        "--params",
        &params_b,
        "--role",
        "central",
        "--listen",
        &addr(b_port),
    ]);
    let (b_api, b_cookie) = (b_daemon.api(), b_daemon.cookie());
    let b_id = http_get(&format!("{b_api}/status"), Some(&b_cookie)).body["peer_id"]
        .as_str()
        .unwrap()
        .to_string();

    // a fresh node of network A, bootstrapping from B
    let n = Node::new();
    n.new_address();
    let n_port = free_port();
    let n_daemon = n.start(&[
        "--params",
        &params_a,
        "--role",
        "wallet",
        "--listen",
        &addr(n_port),
        "--bootstrap",
        &format!("{}/p2p/{b_id}", addr(b_port)),
    ]);
    // it reached B and asked it (B sees it), and took nothing from it
    wait_until(30, "the fresh node connected to B", || {
        peers(&b_api, &b_cookie).is_some_and(|p| p.len() == 1)
    });
    assert_eq!(n.height(), None, "adopted something from another network");

    // A dials the fresh node: an inbound peer of the fresh node, not its bootstrap
    let r = http_post(
        &format!("{a_api}/nodes/register"),
        &format!("{{\"nodes\": [\"{}\"]}}", addr(n_port)),
        "application/json",
        Some(&a_cookie),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let n_api = n_daemon.api();
    let n_cookie = n_daemon.cookie();
    let status = |api: &str, cookie: &str| http_get(&format!("{api}/status"), Some(cookie)).body;
    wait_until(30, "the fresh node's chain", || {
        status(&n_api, &n_cookie)["genesis"].as_str() == Some(genesis_a.as_str())
    });
    // B, on another genesis, is dropped at the status exchange
    wait_until(30, "B dropped", || {
        peers(&n_api, &n_cookie).is_some_and(|p| !p.contains_key(&b_id))
    });
    assert_eq!(status(&n_api, &n_cookie)["height"], 0);
    drop((n_daemon, a_daemon, b_daemon));
}
