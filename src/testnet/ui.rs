//! `testnet ui`: the testnet page. A small HTTP server on loopback serves the page (assets from
//! `src/api/web/`) and `/snapshot`: every node of `testnet.json` read through its own API at
//! that moment: status, peers, and the latest blocks with the local time each arrived there,
//! turned into cards, graph edges (by peer id → node name) and an arrival timeline per block
//! (delay of each node after the first that had it; who mined it, from the reward address).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};

use super::{NodeRecord, State as Testnet};
use crate::api::client::ApiClient;
use crate::api::host::{self, HostRule};
use crate::api::web::{self, asset};

/// How long one node's API gets to answer one question.
const API_TIMEOUT: Duration = Duration::from_millis(800);
/// Latest blocks asked of each node, and shown.
const BLOCKS: u32 = 8;

/// What `testnet ui` serves.
#[derive(Debug, Clone)]
pub struct UiOptions {
    pub dir: PathBuf,
    pub listen: SocketAddr,
}

/// Runs the testnet page's server until Ctrl-C.
pub fn ui(opts: &UiOptions) -> Result<()> {
    Testnet::load_existing(&opts.dir)?; // a clear error now rather than an empty page
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let dir = opts.dir.clone();
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("cannot listen on {}", opts.listen))?;
        let addr = listener.local_addr()?;
        println!("Testnet page: http://{addr}/  (Ctrl-C to stop)");
        let app = Router::new()
            .route("/", get(|| async { asset(web::HTML, web::TESTNET_HTML) }))
            .route(
                "/web/testnet.js",
                get(|| async { asset(web::JS, web::TESTNET_JS) }),
            )
            .route(
                "/web/style.css",
                get(|| async { asset(web::CSS, web::STYLE_CSS) }),
            )
            .route("/snapshot", get(snapshot))
            .layer(middleware::from_fn_with_state(
                HostRule::new(addr),
                host::check,
            ))
            .with_state(dir);
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok(())
    })
}

async fn snapshot(State(dir): State<PathBuf>) -> impl IntoResponse {
    let built = tokio::task::spawn_blocking(move || -> Result<Value> {
        let state = Testnet::load_existing(&dir)?;
        let seen: Vec<Seen> = std::thread::scope(|s| {
            let handles: Vec<_> = state
                .nodes
                .iter()
                .map(|n| s.spawn(move || look(n)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        });
        let mut page = assemble(&dir.display().to_string(), &state.nodes, &seen);
        page["partition"] = json!(state.partition);
        Ok(page)
    })
    .await;
    match built {
        Ok(Ok(v)) => axum::Json(v).into_response(),
        Ok(Err(e)) => failed(format!("{e:#}")),
        Err(e) => failed(e.to_string()),
    }
}

fn failed(message: String) -> axum::response::Response {
    let body = axum::Json(json!({ "error": message }));
    (axum::http::StatusCode::INTERNAL_SERVER_ERROR, body).into_response()
}

/// What one node's API said (or why it said nothing).
#[derive(Default)]
struct Seen {
    up: bool,
    status: Option<Value>,
    peers: Vec<String>,
    blocks: Vec<Value>,
    error: Option<String>,
}

fn look(node: &NodeRecord) -> Seen {
    let up = super::process::lock_holder(&node.dir, node.pid).is_some();
    if !up {
        return Seen::default();
    }
    let client = ApiClient::new(&node.api_url(), None).timeout(API_TIMEOUT);
    let mut seen = Seen {
        up,
        ..Seen::default()
    };
    match client.get("/status") {
        Ok(v) => seen.status = Some(v),
        Err(e) => seen.error = Some(format!("{e:#}")),
    }
    if let Ok(v) = client.get("/peers") {
        seen.peers = v["peers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["peer_id"].as_str().map(str::to_owned))
            .collect();
    }
    if let Ok(v) = client.get(&format!("/blocks/recent?count={BLOCKS}")) {
        seen.blocks = v["blocks"].as_array().cloned().unwrap_or_default();
    }
    seen
}

/// One block as the nodes reported it: height, reward address, arrival time at each node.
type Heard = (u64, Option<String>, Vec<Option<u64>>);

/// The page's data from what each node said: pure, so the arithmetic is tested below.
fn assemble(dir: &str, nodes: &[NodeRecord], seen: &[Seen]) -> Value {
    let by_peer: BTreeMap<&str, &str> = nodes
        .iter()
        .filter_map(|n| Some((n.peer_id.as_deref()?, n.name.as_str())))
        .collect();
    let by_address: BTreeMap<&str, &str> = nodes
        .iter()
        .filter_map(|n| Some((n.address.as_deref()?, n.name.as_str())))
        .collect();
    let cards: Vec<Value> = nodes
        .iter()
        .zip(seen)
        .map(|(n, s)| {
            let st = s.status.as_ref();
            json!({
                "name": n.name,
                "role": n.role.to_string(),
                "up": s.up,
                "api": n.api_url(),
                "peer_id": n.peer_id,
                "height": st.map(|v| v["height"].clone()),
                "tip": st.map(|v| v["tip"].clone()),
                "peers": st.map(|v| v["peers"].clone()),
                "mempool_txs": st.map(|v| v["mempool"]["txs"].clone()),
                "sync": st.map(|v| v["sync"].clone()),
                "error": s.error,
            })
        })
        .collect();
    let mut edges = BTreeSet::new();
    for (n, s) in nodes.iter().zip(seen) {
        for p in &s.peers {
            if let Some(other) = by_peer.get(p.as_str()) {
                let (a, b) = if n.name.as_str() < *other {
                    (n.name.as_str(), *other)
                } else {
                    (*other, n.name.as_str())
                };
                edges.insert((a.to_owned(), b.to_owned()));
            }
        }
    }
    let mut blocks: BTreeMap<String, Heard> = BTreeMap::new();
    for (i, s) in seen.iter().enumerate() {
        for b in &s.blocks {
            let Some(hash) = b["hash"].as_str() else {
                continue;
            };
            let entry = blocks.entry(hash.to_owned()).or_insert_with(|| {
                (
                    b["height"].as_u64().unwrap_or(0),
                    b["reward_to"].as_str().map(str::to_owned),
                    vec![None; nodes.len()],
                )
            });
            entry.2[i] = b["arrived_ms"].as_u64();
        }
    }
    let mut latest: Vec<_> = blocks.into_iter().collect();
    latest.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(&b.0)));
    latest.truncate(BLOCKS as usize);
    let timeline: Vec<Value> = latest
        .into_iter()
        .map(|(hash, (height, reward_to, at))| {
            let first = at.iter().flatten().min().copied();
            let miner = reward_to
                .as_deref()
                .and_then(|a| by_address.get(a).copied());
            json!({
                "height": height,
                "hash": hash,
                "miner": miner,
                "reward_to": reward_to,
                "first_ms": first,
                "arrivals": nodes.iter().zip(&at).map(|(n, ms)| json!({
                    "node": n.name,
                    "ms": ms,
                    "delay_ms": ms.zip(first).map(|(m, f)| m - f),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut page = json!({
        "dir": dir,
        "nodes": cards,
        "edges": edges.iter().map(|(a, b)| json!([a, b])).collect::<Vec<_>>(),
        "blocks": timeline,
    });
    health(&mut page, &edges);
    page
}

/// Adds what the page's banner says: the tips of the running nodes (more than one is a fork),
/// each card's place against the best tip (`"chain": "best" | "behind" | "fork"`), and the
/// parts of the peer graph among the running nodes.
fn health(page: &mut Value, edges: &BTreeSet<(String, String)>) {
    let Some(cards) = page["nodes"].as_array_mut() else {
        return;
    };
    // Tips by height, then by how many nodes are on them (heights, not work: what /status says).
    let mut tips: Vec<(u64, String, usize)> = Vec::new();
    for c in cards.iter().filter(|c| c["up"] == true) {
        let (Some(h), Some(t)) = (c["height"].as_u64(), c["tip"].as_str()) else {
            continue;
        };
        match tips.iter_mut().find(|(_, k, _)| k == t) {
            Some((_, _, n)) => *n += 1,
            None => tips.push((h, t.to_owned(), 1)),
        }
    }
    tips.sort_by(|a, b| b.0.cmp(&a.0).then(b.2.cmp(&a.2)));
    let best = tips.first().cloned();
    for c in cards.iter_mut() {
        let chain = match (&best, c["height"].as_u64(), c["tip"].as_str()) {
            (Some((_, b, _)), Some(_), Some(t)) if t == b => "best",
            (Some((bh, _, _)), Some(h), Some(_)) if h < *bh => "behind",
            (Some(_), Some(_), Some(_)) => "fork",
            _ => "unknown",
        };
        c["chain"] = json!(chain);
    }
    // Parts of the graph: union-find over the running nodes by name.
    let up: Vec<String> = cards
        .iter()
        .filter(|c| c["up"] == true)
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect();
    let mut part: BTreeMap<&str, usize> = up
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    for (a, b) in edges {
        let (Some(&pa), Some(&pb)) = (part.get(a.as_str()), part.get(b.as_str())) else {
            continue;
        };
        if pa != pb {
            for v in part.values_mut().filter(|v| **v == pb) {
                *v = pa;
            }
        }
    }
    let parts: BTreeSet<usize> = part.values().copied().collect();
    page["tips"] = json!(
        tips.iter()
            .map(|(h, t, n)| json!({"height": h, "tip": t, "nodes": n}))
            .collect::<Vec<_>>()
    );
    page["graph_parts"] = json!(parts.len());
}

#[cfg(test)]
mod tests {
    use super::*;
    use gossipcoin_proto::message::Role;

    fn node(name: &str, peer: &str, address: &str) -> NodeRecord {
        NodeRecord {
            name: name.into(),
            role: Role::Miner,
            dir: PathBuf::from("/t").join(name),
            pid: Some(1),
            p2p_port: 3000,
            api_port: 4000,
            p2p_addr: None,
            peer_id: Some(peer.into()),
            address: Some(address.into()),
            log: PathBuf::from("/t/node.log"),
            ip: None,
        }
    }

    #[test]
    fn edges_by_name_and_delays_after_the_first_arrival() {
        let nodes = [node("a", "PA", "addrA"), node("b", "PB", "addrB")];
        let block = |ms: Option<u64>| json!({"hash": "h1", "height": 5, "reward_to": "addrB", "arrived_ms": ms});
        let seen = [
            Seen {
                up: true,
                peers: vec!["PB".into(), "Pstranger".into()],
                blocks: vec![block(Some(1_030))],
                ..Seen::default()
            },
            Seen {
                up: true,
                peers: vec!["PA".into()],
                blocks: vec![block(Some(1_000))],
                ..Seen::default()
            },
        ];
        let v = assemble("/t", &nodes, &seen);
        assert_eq!(
            v["edges"],
            json!([["a", "b"]]),
            "one edge, strangers left out"
        );
        let b = &v["blocks"][0];
        assert_eq!(b["miner"], "b");
        assert_eq!(b["arrivals"][0]["delay_ms"], 30);
        assert_eq!(b["arrivals"][1]["delay_ms"], 0);
        let only_b = [
            Seen::default(),
            Seen {
                up: true,
                blocks: vec![block(None)],
                ..Seen::default()
            },
        ];
        let v = assemble("/t", &nodes, &only_b);
        assert_eq!(v["blocks"][0]["arrivals"][1]["delay_ms"], Value::Null);
        assert_eq!(v["nodes"][0]["up"], false);
    }

    #[test]
    fn two_tips_are_a_fork_and_the_split_graph_is_counted() {
        let nodes: Vec<NodeRecord> = ["a", "b", "c", "d"]
            .iter()
            .map(|n| node(n, &format!("P{n}"), n))
            .collect();
        let at = |height: u64, tip: &str, peers: &[&str]| Seen {
            up: true,
            status: Some(
                json!({"height": height, "tip": tip, "peers": peers.len(), "sync": "synced"}),
            ),
            peers: peers.iter().map(|p| p.to_string()).collect(),
            ..Seen::default()
        };
        // a-b on tip X (height 2), c-d on tip Y (height 1): a partition with two chains.
        let seen = [
            at(2, "X", &["Pb"]),
            at(2, "X", &["Pa"]),
            at(1, "Y", &["Pd"]),
            at(1, "Y", &["Pc"]),
        ];
        let v = assemble("/t", &nodes, &seen);
        assert_eq!(v["tips"].as_array().unwrap().len(), 2, "{v}");
        assert_eq!(v["tips"][0]["tip"], "X");
        assert_eq!(v["graph_parts"], 2);
        let chain: Vec<&str> = (0..4)
            .map(|i| v["nodes"][i]["chain"].as_str().unwrap())
            .collect();
        assert_eq!(chain, ["best", "best", "behind", "behind"]);
        // Same height, another block: a fork, not merely behind.
        let seen = [
            at(2, "X", &["Pb", "Pc"]),
            at(2, "X", &["Pa"]),
            at(2, "Z", &["Pa", "Pd"]),
            at(2, "X", &["Pc"]),
        ];
        let v = assemble("/t", &nodes, &seen);
        assert_eq!(v["nodes"][2]["chain"], "fork");
        assert_eq!(v["graph_parts"], 1);
    }
}
