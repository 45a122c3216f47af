//! One node, read from outside its process: the files it writes (`node.addr`, `api.addr`), its
//! store opened read-only (LMDB lets another process read while the daemon writes), whether it
//! holds its `node.lock`, and its HTTP API's `GET /status`.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::api::client::ApiClient;
use crate::node::ADDR_FILE;
use crate::store::{ChainRead, Store, Tip};

use crate::api::ADDR_FILE as API_ADDR_FILE;
/// How long a `GET /status` may take before the node counts as unreachable.
const API_TIMEOUT: Duration = Duration::from_millis(800);

/// The node's main-chain tip from its store, or `None` while it has no chain yet.
pub fn chain_tip(node_dir: &Path) -> Result<Option<Tip>> {
    let path = node_dir.join("chain");
    if !Store::exists(&path) {
        return Ok(None);
    }
    let store = Store::open_read_only(&path)
        .with_context(|| format!("cannot read the store in {}", path.display()))?;
    Ok(store.read()?.tip()?)
}

/// Where a running node listens, from its `node.addr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddr {
    /// The first listen address, ending in `/p2p/<peer id>`.
    pub addr: String,
    pub peer_id: String,
}

/// The node's `node.addr`, once it has written it (it removes it when it stops).
pub fn node_addr(node_dir: &Path) -> Option<NodeAddr> {
    let text = std::fs::read_to_string(node_dir.join(ADDR_FILE)).ok()?;
    let addr = text.lines().next()?.trim().to_string();
    let peer_id = addr.rsplit_once("/p2p/")?.1.to_string();
    Some(NodeAddr { addr, peer_id })
}

/// The part of the API's `GET /status` answer that `testnet status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApiStatus {
    pub height: u32,
    pub tip: String,
    /// `synced`, `syncing` or `alone`.
    pub sync: String,
    /// The best verified header's height (absent from nodes before headers-first sync).
    #[serde(default)]
    pub headers_height: Option<u32>,
    pub peers: u32,
    pub mempool: ApiMempool,
}

/// `mempool` in [`ApiStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApiMempool {
    pub txs: u64,
    pub bytes: u64,
}

/// The node's `GET /status`, or `None` when its API is not running or does not answer: the API
/// writes `api.addr` when it listens, so a node without one is not asked.
pub fn api_status(node_dir: &Path) -> Option<ApiStatus> {
    let base = std::fs::read_to_string(node_dir.join(API_ADDR_FILE)).ok()?;
    let base = base.lines().next()?.trim().trim_end_matches('/');
    api_get(base, "/status").ok()
}

/// The peer ids of the node's `GET /peers`, or `None` when its API does not answer.
pub fn api_peers(node_dir: &Path) -> Option<Vec<String>> {
    let base = std::fs::read_to_string(node_dir.join(API_ADDR_FILE)).ok()?;
    let base = base.lines().next()?.trim().trim_end_matches('/');
    let v: serde_json::Value = api_get(base, "/peers").ok()?;
    Some(
        v["peers"]
            .as_array()?
            .iter()
            .filter_map(|p| p["peer_id"].as_str().map(str::to_string))
            .collect(),
    )
}

/// One JSON GET against a node's API, with a short timeout.
fn api_get<T: serde::de::DeserializeOwned>(base: &str, path: &str) -> Result<T> {
    let value = ApiClient::new(base, None).timeout(API_TIMEOUT).get(path)?;
    Ok(serde_json::from_value(value)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_addr_reads_the_first_line() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(node_addr(tmp.path()), None);
        std::fs::write(
            tmp.path().join(ADDR_FILE),
            "/ip4/127.0.0.1/tcp/3000/p2p/12D3KooA\n/ip4/10.0.0.1/tcp/3000/p2p/12D3KooA\n",
        )
        .unwrap();
        let a = node_addr(tmp.path()).unwrap();
        assert_eq!(a.addr, "/ip4/127.0.0.1/tcp/3000/p2p/12D3KooA");
        assert_eq!(a.peer_id, "12D3KooA");
    }

    #[test]
    fn the_api_status_contract_parses() {
        let json = r#"{"role":"central","peer_id":"12D3","listen":["/ip4/127.0.0.1/tcp/3000/p2p/12D3"],
            "genesis":"00ab","height":3,"tip":"00cd","chain_work":"0f","sync":"synced","peers":2,
            "mempool":{"txs":1,"bytes":250}}"#;
        let s: ApiStatus = serde_json::from_str(json).unwrap();
        assert_eq!((s.height, s.peers, s.mempool.txs), (3, 2, 1));
        assert_eq!(s.sync, "synced");
    }

    #[test]
    fn no_api_is_none() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(api_status(tmp.path()), None);
        // A port nobody listens on: refused at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(
            tmp.path().join(API_ADDR_FILE),
            format!("http://127.0.0.1:{port}\n"),
        )
        .unwrap();
        assert_eq!(api_status(tmp.path()), None);
    }
}
