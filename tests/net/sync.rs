//! Request-response over `/gossipcoin/sync/1`: answers, dropped replies, rate limits.

use std::time::Instant;

use gossipcoin::net::{NetError, NetworkEvent, PeerId};
use gossipcoin_proto::message::{Request, Response};

use crate::{serve_status, start, start_with, status, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_request_reaches_the_event_loop_and_its_reply_comes_back() {
    let mut a = start(&[]).await;
    let mut b = start(&[&a.addr]).await;
    b.wait_connected(a.id).await;

    let t0 = Instant::now();
    let ask = b.handle.request(a.id, Request::Status(status(1)));
    let serve = async {
        let (peer, request, reply) = a
            .wait_for("the inbound request", |e| match e {
                NetworkEvent::InboundRequest {
                    peer,
                    request,
                    reply,
                } => Some((peer, request, reply)),
                _ => None,
            })
            .await;
        assert_eq!(peer, b.id);
        assert_eq!(request, Request::Status(status(1)));
        reply.send(Response::Status(status(7)));
    };
    let (answer, ()) = within("the status exchange", async { tokio::join!(ask, serve) }).await;
    assert_eq!(answer.unwrap(), Response::Status(status(7)));
    eprintln!("measured: one Status round trip in {:?}", t0.elapsed());

    // the sync layer records the peer's status; peers() shows it
    b.handle.set_peer_status(a.id, status(7));
    let info = b.handle.peers().await;
    assert_eq!(info[0].status.map(|s| s.height), Some(7));

    // a reply dropped by the node still answers, with an error
    let ask = b.handle.request(a.id, Request::Status(status(1)));
    let drop_it = a.wait_for("the second request", |e| match e {
        NetworkEvent::InboundRequest { reply, .. } => {
            drop(reply);
            Some(())
        }
        _ => None,
    });
    let (answer, ()) = within("the dropped reply", async { tokio::join!(ask, drop_it) }).await;
    assert!(matches!(answer.unwrap(), Response::Error(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_to_an_unreachable_peer_fails_instead_of_hanging() {
    let b = start(&[]).await;
    let nobody: PeerId = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
        .parse()
        .unwrap();
    let err = within(
        "the failure",
        b.handle.request(nobody, Request::Status(status(0))),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            NetError::RequestFailed { .. } | NetError::Timeout { .. }
        ),
        "{err}"
    );
    assert!(!err.is_peer_misbehaviour());
    let err = b.handle.dial("not a multiaddr").await.unwrap_err();
    assert!(matches!(err, NetError::InvalidAddress { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_rate_limit_are_refused_and_cost_score() {
    let mut a = start_with(&[], |c| c.requests_per_second_per_peer = 5).await;
    let b = start(&[&a.addr]).await;
    let mut a_events = a.take_events();
    within("the connection", async {
        while !a.handle.peers().await.iter().any(|p| p.peer == b.id) {
            // consume events until B's connection shows up
            let _ = a_events.recv().await;
        }
    })
    .await;
    serve_status(a_events, 3);

    let asks = (0..40).map(|_| b.handle.request(a.id, Request::Status(status(0))));
    let answers = within("40 answers", futures::future::join_all(asks)).await;
    let served = answers
        .iter()
        .filter(|r| matches!(r, Ok(Response::Status(_))))
        .count();
    let limited = answers
        .iter()
        .filter(|r| matches!(r, Ok(Response::Error(e)) if e == "rate limited"))
        .count();
    eprintln!("measured: of 40 requests at once, {served} served, {limited} rate limited");
    assert!(served >= 5, "{answers:?}");
    assert!(limited >= 20, "{answers:?}");
    assert_eq!(served + limited, 40, "{answers:?}");
    let score = a
        .handle
        .peers()
        .await
        .into_iter()
        .find(|p| p.peer == b.id)
        .unwrap()
        .score;
    assert!(score < 0.0 && score > gossipcoin::net::BAN_SCORE, "{score}");
}
