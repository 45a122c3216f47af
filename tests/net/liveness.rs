//! Dead links: a connection whose peer stops answering is closed within seconds, not when TCP
//! gives up. The link is cut in user space (no netem here): the two services talk through a
//! TCP relay that, once frozen, holds both sockets open but moves no more bytes.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gossipcoin::net::NetworkEvent;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::start_with;

/// How long a cut link may go unnoticed (pings every 5 s, 5 s timeout, 12 s liveness).
const NOTICED_WITHIN: Duration = Duration::from_secs(25);

/// Starts a relay to `target`; sending `true` on the returned sender cuts every link.
async fn relay(target: SocketAddr) -> (SocketAddr, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (cut, cut_rx) = watch::channel(false);
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = TcpStream::connect(target).await else {
                continue;
            };
            let (ri, wi) = inbound.into_split();
            let (ro, wo) = outbound.into_split();
            tokio::spawn(pump(ri, wo, cut_rx.clone()));
            tokio::spawn(pump(ro, wi, cut_rx.clone()));
        }
    });
    (addr, cut)
}

/// Copies bytes until the link is cut, then holds the sockets open forever.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut cut: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            _ = cut.changed() => if *cut.borrow() { break },
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => if to.write_all(&buf[..n]).await.is_err() { return },
            },
        }
    }
    std::future::pending::<()>().await;
    drop((from, to));
}

/// Waits for `node`'s event that `peer` disconnected.
async fn gone(node: &mut crate::Node, peer: gossipcoin::net::PeerId) {
    loop {
        match node.events.recv().await.expect("the service is running") {
            NetworkEvent::PeerDisconnected { peer: p } if p == peer => return,
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_link_is_noticed_and_the_connection_closed() {
    let no_discovery = |c: &mut gossipcoin::net::NetConfig| c.discovery = false;
    let mut a = start_with(&[], no_discovery).await;
    let mut b = start_with(&[], no_discovery).await;
    let port: u16 = a.plain_addr.rsplit('/').next().unwrap().parse().unwrap();
    let (relay, cut) = relay(SocketAddr::from(([127, 0, 0, 1], port))).await;
    b.handle
        .dial(&format!("/ip4/127.0.0.1/tcp/{}/p2p/{}", relay.port(), a.id))
        .await
        .unwrap();
    a.wait_connected(b.id).await;
    b.wait_connected(a.id).await;

    cut.send(true).unwrap();
    let t0 = Instant::now();
    let (a_id, b_id) = (a.id, b.id);
    let both = async { tokio::join!(gone(&mut a, b_id), gone(&mut b, a_id)) };
    if tokio::time::timeout(NOTICED_WITHIN, both).await.is_err() {
        panic!("the cut link was not noticed within {NOTICED_WITHIN:?}");
    }
    eprintln!(
        "measured: a cut link noticed by both ends in {:?}",
        t0.elapsed()
    );
    assert!(a.handle.peers().await.is_empty());
    assert!(b.handle.peers().await.is_empty());
    assert!(
        gossipcoin::metrics::metrics()
            .render(Default::default())
            .contains("gossipcoin_dead_links_total ")
    );
}
