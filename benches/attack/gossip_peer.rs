//! A misbehaving peer that speaks the whole protocol: gossipcoin's own `net` module (gossipsub
//! and sync), as `tests/network_bad_peer.rs` plays one, used to gossip what the node would
//! never send and to take connection slots with fresh identities.

use std::path::Path;
use std::time::{Duration, Instant};

use gossipcoin::net::{self, NetConfig, NetHandle};
use gossipcoin_proto::BlockHash;
use tokio::sync::watch;

/// A running `net` instance; it stops when this is dropped.
pub struct GossipPeer {
    pub handle: NetHandle,
    _stop: watch::Sender<bool>,
    drain: tokio::task::JoinHandle<()>,
}

impl Drop for GossipPeer {
    fn drop(&mut self) {
        let _ = self._stop.send(true);
        self.drain.abort();
    }
}

impl GossipPeer {
    /// A fresh identity (key in `dir`) listening on `listen` — its dials leave from that
    /// address — dialling `bootstrap`, joined to the network of `genesis`. Requests it gets are
    /// answered with an error; events are drained.
    pub async fn spawn(
        dir: &Path,
        listen: &str,
        bootstrap: &str,
        genesis: BlockHash,
    ) -> GossipPeer {
        std::fs::create_dir_all(dir).unwrap();
        let mut config = NetConfig::new(dir.join("node.key"));
        config.listen = vec![listen.to_string()];
        config.bootstrap = vec![bootstrap.to_string()];
        config.genesis = Some(genesis);
        config.discovery = false;
        let (stop, shutdown) = watch::channel(false);
        let (handle, mut events) = net::spawn(config, shutdown).await.expect("net::spawn");
        let drain = tokio::spawn(async move { while events.recv().await.is_some() {} });
        GossipPeer {
            handle,
            _stop: stop,
            drain,
        }
    }

    /// Waits (at most `limit`) until a connected peer is subscribed to our block topic, so
    /// what we publish reaches it.
    pub async fn wait_subscribed(&self, limit: Duration) -> bool {
        let t = Instant::now();
        while t.elapsed() < limit {
            if self.handle.peers().await.iter().any(|p| p.subscribed) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Whether any peer is connected.
    pub async fn connected(&self) -> bool {
        !self.handle.peers().await.is_empty()
    }
}
