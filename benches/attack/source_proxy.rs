//! A TCP forwarder that makes connections reach the victim from another loopback address.
//!
//! libp2p's TCP transport cannot choose a dial's source address: with port reuse it binds
//! `0.0.0.0:<listen port>`, so the kernel picks 127.0.0.1 for a loopback destination even when
//! the swarm listens on 127.0.0.2 (checked: A then lists every such peer from 127.0.0.1). The
//! lock-out scenario's identities therefore dial this forwarder, which opens each connection to
//! A from `source` and copies bytes both ways.

use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinSet;

/// A running forwarder; its connections close when it is dropped.
pub struct SourceProxy {
    /// The multiaddr to dial instead of the target.
    pub addr: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SourceProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SourceProxy {
    /// Listens on a free 127.0.0.1 port; every connection to it is forwarded to `target` from
    /// `source`.
    pub async fn start(target: SocketAddr, source: IpAddr) -> SourceProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                conns.spawn(async move {
                    let socket = TcpSocket::new_v4()?;
                    socket.bind(SocketAddr::new(source, 0))?;
                    let mut outbound = socket.connect(target).await?;
                    inbound.set_nodelay(true)?;
                    outbound.set_nodelay(true)?;
                    tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await
                });
            }
        });
        SourceProxy {
            addr: format!("/ip4/127.0.0.1/tcp/{port}"),
            task,
        }
    }
}
