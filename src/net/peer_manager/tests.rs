//! Unit tests of [`super`].

use super::*;

const DAY: Duration = Duration::from_secs(24 * 3600);

fn conn(n: usize) -> ConnectionId {
    ConnectionId::new_unchecked(n)
}

fn manager() -> PeerManager {
    PeerManager::new(10, DAY)
}

fn connect(m: &mut PeerManager, addr: &str, now: Instant) -> PeerId {
    let p = PeerId::random();
    assert!(m.connected(p, conn(1), addr.parse().unwrap(), PeerKind::FullRelay, now));
    p
}

#[test]
fn the_bucket_allows_a_burst_then_the_rate_and_can_go_into_debt() {
    let t0 = Instant::now();
    let mut bucket = TokenBucket::new(5.0, 5.0, t0);
    assert_eq!((0..20).filter(|_| bucket.try_take(t0)).count(), 5);
    let t1 = t0 + Duration::from_millis(400);
    assert!(bucket.try_take(t1));
    assert!(bucket.try_take(t1));
    assert!(!bucket.try_take(t1));
    let t2 = t1 + Duration::from_secs(60);
    assert_eq!((0..20).filter(|_| bucket.try_take(t2)).count(), 5);

    let mut bytes = TokenBucket::new(100.0, 200.0, t0);
    assert!(!bytes.is_exhausted(t0));
    bytes.charge(500.0, t0);
    assert!(bytes.is_exhausted(t0 + Duration::from_secs(2)));
    assert!(!bytes.is_exhausted(t0 + Duration::from_millis(3100)));
}

#[test]
fn points_add_up_to_a_ban_and_each_level_costs_what_it_says() {
    let now = Instant::now();
    let mut m = manager();
    let p = connect(&mut m, "/ip4/127.0.0.1/tcp/1", now);
    assert_eq!(
        m.report(p, Misbehaviour::High, "invalid gossip", now),
        Action::None
    );
    assert_eq!(m.score(&p), -40.0);
    assert_eq!(
        m.report(p, Misbehaviour::High, "invalid gossip", now),
        Action::None
    );
    assert_eq!(
        m.report(p, Misbehaviour::Low, "rate limited", now),
        Action::None
    );
    assert_eq!(m.score(&p), -81.0);
    assert!(!m.is_banned(&p));
    assert!(matches!(
        m.report(p, Misbehaviour::Mid, "malformed request", now),
        Action::None
    ));
    assert!(matches!(
        m.report(p, Misbehaviour::Mid, "malformed request", now),
        Action::Ban { .. }
    ));
    assert!(m.is_banned(&p));
    // a banned peer is not charged again
    assert_eq!(m.report(p, Misbehaviour::Fatal, "again", now), Action::None);

    // ten Mid offences ban
    let q = connect(&mut m, "/ip4/127.0.0.1/tcp/2", now);
    let actions: Vec<_> = (0..10)
        .map(|_| m.report(q, Misbehaviour::Mid, "malformed request", now))
        .collect();
    assert!(matches!(actions[9], Action::Ban { .. }), "{actions:?}");
    assert!(!actions[..9].iter().any(|a| matches!(a, Action::Ban { .. })));

    // Fatal bans at once
    let r = connect(&mut m, "/ip4/127.0.0.1/tcp/3", now);
    assert!(matches!(
        m.report(r, Misbehaviour::Fatal, "different genesis", now),
        Action::Ban { .. }
    ));
}

#[test]
fn a_ban_covers_a_remote_ip_but_never_a_local_one_and_expires() {
    let t0 = Instant::now();
    let mut m = PeerManager::new(10, Duration::from_secs(60));
    let remote = connect(&mut m, "/ip4/203.0.113.7/tcp/4000", t0);
    let local = connect(&mut m, "/ip4/127.0.0.1/tcp/4000", t0);
    let link = connect(&mut m, "/ip6/fe80::1/tcp/4000", t0);
    let Action::Ban { ips, until } = m.report(remote, Misbehaviour::Fatal, "x", t0) else {
        panic!("not banned")
    };
    assert_eq!(ips, vec!["203.0.113.7".parse::<IpAddr>().unwrap()]);
    assert_eq!(until, t0 + Duration::from_secs(60));
    assert!(m.is_ip_banned(&"203.0.113.7".parse().unwrap()));
    // an IPv4-mapped form of the same address is the same address
    assert!(m.is_ip_banned(&"::ffff:203.0.113.7".parse().unwrap()));
    for peer in [local, link] {
        let Action::Ban { ips, .. } = m.report(peer, Misbehaviour::Fatal, "x", t0) else {
            panic!("not banned")
        };
        assert!(ips.is_empty(), "{ips:?}");
    }
    assert!(!m.is_ip_banned(&"127.0.0.1".parse().unwrap()));
    assert_eq!(m.banned_ips.len(), 1);

    let early = m.expire_bans(t0 + Duration::from_secs(59));
    assert!(early.peers.is_empty() && early.ips.is_empty());
    let expired = m.expire_bans(t0 + Duration::from_secs(60));
    assert_eq!(expired.peers.len(), 3);
    assert_eq!(expired.ips.len(), 1);
    assert!(!m.is_banned(&remote));
    assert!(!m.is_ip_banned(&"203.0.113.7".parse().unwrap()));
}

#[test]
fn unbanning_a_peer_lets_its_ip_in_unless_another_ban_holds_it() {
    let t0 = Instant::now();
    let mut m = PeerManager::new(10, Duration::from_secs(60));
    let ip: IpAddr = "203.0.113.7".parse().unwrap();
    let other: IpAddr = "198.51.100.1".parse().unwrap();
    let p = connect(&mut m, "/ip4/203.0.113.7/tcp/4000", t0);
    let q = connect(&mut m, "/ip4/198.51.100.1/tcp/4000", t0);
    m.report(p, Misbehaviour::Fatal, "x", t0);
    m.report(q, Misbehaviour::Fatal, "x", t0);
    // a third peer banned from a saved list, sharing q's address
    let r = PeerId::random();
    m.restore(r, &[other], t0 + Duration::from_secs(30));
    assert_eq!(m.unban(&p), Some(vec![ip]));
    assert!(!m.is_banned(&p) && !m.is_ip_banned(&ip));
    assert_eq!(m.unban(&q), Some(vec![]), "r's ban still holds the IP");
    assert!(m.is_ip_banned(&other));
    assert_eq!(m.unban(&q), None, "not banned any more");
    let saved = m.saved_bans(t0);
    assert_eq!(saved.len(), 1);
    assert_eq!(
        (saved[0].peer.clone(), saved[0].ips.clone()),
        (r.to_string(), vec![other])
    );
}

#[test]
fn scores_recover_and_a_debt_survives_a_reconnect() {
    let now = Instant::now();
    let mut m = manager();
    let q = connect(&mut m, "/ip4/127.0.0.1/tcp/2", now);
    m.report(q, Misbehaviour::Mid, "bad request", now);
    m.report(q, Misbehaviour::Mid, "bad request", now);
    assert!(m.disconnected(&q, conn(1)));
    assert!(!m.is_connected(&q));
    m.recover(Duration::from_secs(100));
    assert_eq!(m.score(&q), -10.0);
    assert!(m.connected(
        q,
        conn(2),
        "/ip4/127.0.0.1/tcp/3".parse().unwrap(),
        PeerKind::Inbound,
        now
    ));
    assert_eq!(m.score(&q), -10.0);
    assert!(m.disconnected(&q, conn(2)));
    m.recover(Duration::from_secs(1000));
    assert_eq!(m.score(&q), 0.0);
    assert!(!m.peers.contains_key(&q));
}

#[test]
fn requests_are_refused_over_the_rate_the_unsent_cap_and_the_byte_budget() {
    let t0 = Instant::now();
    let mut m = PeerManager::new(100, DAY);
    let p = connect(&mut m, "/ip4/127.0.0.1/tcp/1", t0);
    m.admit_request(p, t0).unwrap();
    m.response_handed(p, 1000, t0);
    m.admit_request(p, t0).unwrap();
    m.response_handed(p, 1000, t0);
    assert_eq!(m.admit_request(p, t0), Err(Refusal::Busy));
    m.response_done(&p);
    m.admit_request(p, t0).unwrap();
    m.response_done(&p);

    // 80 MiB handed at once: busy until the debt is paid back at 16 MiB/s
    m.response_handed(p, 80 << 20, t0);
    m.response_done(&p);
    assert!(m.out_of_response_bytes(&p, t0));
    assert_eq!(m.admit_request(p, t0), Err(Refusal::Busy));
    // 32 MiB burst - 80 MiB = 48 MiB of debt, paid back at 16 MiB/s in 3 s
    assert!(m.out_of_response_bytes(&p, t0 + Duration::from_secs(2)));
    let paid = t0 + Duration::from_millis(3100);
    assert!(!m.out_of_response_bytes(&p, paid));
    m.admit_request(p, paid).unwrap();

    let mut slow = PeerManager::new(2, DAY);
    let s = connect(&mut slow, "/ip4/127.0.0.1/tcp/1", t0);
    slow.admit_request(s, t0).unwrap();
    slow.admit_request(s, t0).unwrap();
    assert_eq!(slow.admit_request(s, t0), Err(Refusal::RateLimited));
}

#[test]
fn silent_connections_are_dead_and_pings_keep_them_alive() {
    let t0 = Instant::now();
    let mut m = manager();
    let p = connect(&mut m, "/ip4/127.0.0.1/tcp/1", t0);
    let q = connect(&mut m, "/ip4/127.0.0.1/tcp/2", t0);
    let u = connect(&mut m, "/ip4/127.0.0.1/tcp/3", t0);
    m.set_ping_unsupported(&u);
    let t1 = t0 + Duration::from_secs(10);
    m.set_ping(&p, conn(1), Duration::from_millis(3), t1);
    assert!(m.dead_connections(t1).is_empty());
    let t2 = t0 + LIVENESS_TIMEOUT;
    assert_eq!(m.dead_connections(t2), vec![(q, conn(1))]);
    // reported once; a ping failure on a closing connection is not counted twice
    assert!(m.dead_connections(t2).is_empty());
    assert!(!m.mark_closing(&q, conn(1)));
    assert!(m.mark_closing(&p, conn(1)));
    assert!(PING_INTERVAL + PING_TIMEOUT < LIVENESS_TIMEOUT);
}

#[test]
fn metric_reasons_are_short_codes() {
    assert_eq!(metric_reason("invalid tx: bad signature"), "invalid_tx");
    assert_eq!(metric_reason("Malformed request"), "malformed_request");
    assert_eq!(metric_reason(""), "other");
    assert_eq!(metric_reason(&"x".repeat(100)).len(), 40);
}
