//! Submitting a transaction to a running node over `/gossipcoin/sync/1`, as `send` without
//! `--mine` does: a short-lived libp2p client with a throwaway identity dials the node, sends
//! `SubmitTx`, and reports the node's answer.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use gossipcoin_proto::message::{Request, Response};
use gossipcoin_proto::{Transaction, Txid};
use tokio::sync::watch;

use crate::net::{self, NetConfig, NetworkEvent};

/// How long to wait for the node to connect and answer.
const TIMEOUT: Duration = Duration::from_secs(15);

/// What the node said about the transaction.
pub enum Submitted {
    Accepted(Txid),
    Rejected(String),
}

/// The address to submit to: `explicit`, else the daemon running on `data_dir` (its
/// `node.addr`), else the central node.
pub fn target(explicit: Option<&str>, data_dir: &Path) -> String {
    if let Some(addr) = explicit {
        return addr.to_string();
    }
    let running = std::fs::read_to_string(data_dir.join(crate::node::ADDR_FILE)).ok();
    running
        .and_then(|text| text.lines().next().map(str::to_string))
        .unwrap_or_else(crate::config::central_addr)
}

/// Sends `tx` to the node at `addr` and waits for its answer.
pub fn submit(addr: &str, tx: &Transaction) -> Result<Submitted> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        tokio::time::timeout(TIMEOUT, submit_async(addr, tx))
            .await
            .map_err(|_| {
                anyhow!(
                    "no answer from the node at {addr} within {}s: is it running?",
                    TIMEOUT.as_secs()
                )
            })?
    })
}

async fn submit_async(addr: &str, tx: &Transaction) -> Result<Submitted> {
    let key_dir = std::env::temp_dir().join(format!("gossipcoin-client-{}", std::process::id()));
    std::fs::create_dir_all(&key_dir).context("cannot create a temporary directory")?;
    let result = async {
        let mut config = NetConfig::new(key_dir.join("client.key"));
        config.listen = vec![];
        config.discovery = false;
        let (_stop_tx, stop) = watch::channel(false);
        let (net, mut events) = net::spawn(config, stop).await?;
        net.dial(addr).await.with_context(|| {
            format!(
                "cannot reach a node at {addr}: is it running? (pass --node MULTIADDR to \
                     submit to another node)"
            )
        })?;
        let peer = loop {
            match events.recv().await {
                Some(NetworkEvent::PeerConnected { peer, .. }) => break peer,
                Some(_) => continue,
                None => bail!("could not connect to {addr}"),
            }
        };
        match net.request(peer, Request::SubmitTx(tx.clone())).await? {
            Response::TxAccepted(txid) => Ok(Submitted::Accepted(txid)),
            Response::TxRejected(reason) => Ok(Submitted::Rejected(reason)),
            Response::Error(reason) => Ok(Submitted::Rejected(reason)),
            other => bail!("unexpected answer from the node: {other:?}"),
        }
    }
    .await;
    let _ = std::fs::remove_dir_all(&key_dir);
    result
}
