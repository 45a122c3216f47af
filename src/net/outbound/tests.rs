use super::*;

fn addr(a: u8, b: u8) -> Multiaddr {
    format!("/ip4/{a}.{b}.1.1/tcp/3000").parse().unwrap()
}

fn local() -> Multiaddr {
    "/ip4/127.0.0.1/tcp/3000".parse().unwrap()
}

fn cand(a: Multiaddr) -> Candidate {
    Candidate {
        peer: PeerId::random(),
        addrs: vec![a],
    }
}

#[test]
fn choice_fills_both_targets_one_peer_per_group() {
    let out = OutboundPeers::new(3, 2, None);
    let now = Instant::now();
    // 4 groups, 3 peers each
    let candidates: Vec<Candidate> = (0..12).map(|i| cand(addr(10 + i % 4, 1))).collect();
    let picked = out.choose(candidates, now);
    assert_eq!(
        picked.len(),
        4,
        "one per group while other groups are known"
    );
    let groups: HashSet<_> = picked
        .iter()
        .map(|(c, _)| Diversity::of(c.peer, &c.addrs))
        .collect();
    assert_eq!(groups.len(), 4);
    let full = picked
        .iter()
        .filter(|(_, k)| *k == PeerKind::FullRelay)
        .count();
    assert_eq!(full, 3, "full-relay first");
    assert_eq!(picked[3].1, PeerKind::BlockRelay);
}

#[test]
fn a_held_group_is_reused_only_when_no_other_is_known() {
    let mut out = OutboundPeers::new(8, 0, None);
    let now = Instant::now();
    let held = PeerId::random();
    out.promote(held, PeerKind::FullRelay, &[addr(10, 1)], now);
    // only candidates of the held group: they are taken (better than no peers at all)
    let same: Vec<Candidate> = (0..3).map(|_| cand(addr(10, 1))).collect();
    assert_eq!(out.choose(same.clone(), now).len(), 3);
    // with one other group known, only that one is taken
    let mut mixed = same;
    mixed.push(cand(addr(11, 1)));
    let picked = out.choose(mixed, now);
    assert_eq!(picked.len(), 1);
    assert_eq!(picked[0].0.addrs[0], addr(11, 1));
}

#[test]
fn local_peers_are_each_their_own_group() {
    let out = OutboundPeers::new(8, 2, None);
    let candidates: Vec<Candidate> = (0..20).map(|_| cand(local())).collect();
    assert_eq!(out.choose(candidates, Instant::now()).len(), 10);
}

#[test]
fn dials_in_flight_count_and_established_connections_take_their_kind() {
    let mut out = OutboundPeers::new(2, 1, None);
    let now = Instant::now();
    let (a, b) = (PeerId::random(), PeerId::random());
    let (ia, ib, iq) = (
        ConnectionId::new_unchecked(1),
        ConnectionId::new_unchecked(2),
        ConnectionId::new_unchecked(3),
    );
    out.dialing(ia, Some(a), PeerKind::FullRelay, now);
    out.dialing(ib, Some(b), PeerKind::BlockRelay, now);
    assert_eq!(out.missing(), (1, 0));
    // a candidate being dialled is not picked again
    let again = out.choose(
        vec![Candidate {
            peer: a,
            addrs: vec![local()],
        }],
        now,
    );
    assert!(again.is_empty());
    assert_eq!(out.established(ia, a, &local(), now), PeerKind::FullRelay);
    assert_eq!(out.established(ib, b, &local(), now), PeerKind::BlockRelay);
    assert_eq!(out.missing(), (1, 0));
    // a connection nobody dialled for a target is the DHT's
    let q = PeerId::random();
    assert_eq!(out.established(iq, q, &local(), now), PeerKind::Discovery);
    assert_eq!(out.missing(), (1, 0));
    out.promote(q, PeerKind::FullRelay, &[local()], now);
    assert_eq!(out.missing(), (0, 0));
    assert!(out.full_relay_met());
    assert!(out.choose(vec![cand(local())], now).is_empty());
}

#[test]
fn failed_and_closed_peers_back_off_doubling_and_stable_ones_reset() {
    let mut out = OutboundPeers::new(8, 0, None);
    let t0 = Instant::now();
    let p = PeerId::random();
    let id = ConnectionId::new_unchecked(7);
    out.dialing(id, Some(p), PeerKind::FullRelay, t0);
    out.dial_failed(id, None, t0);
    assert_eq!(out.missing(), (8, 0), "a failed dial no longer counts");
    assert!(out.is_backed_off(&p, t0 + Duration::from_secs(4)));
    assert!(!out.is_backed_off(&p, t0 + Duration::from_secs(6)));
    // fails again: 10 s
    let t1 = t0 + Duration::from_secs(6);
    out.dial_failed(ConnectionId::new_unchecked(8), Some(p), t1);
    assert!(out.is_backed_off(&p, t1 + Duration::from_secs(9)));
    assert!(!out.is_backed_off(&p, t1 + Duration::from_secs(11)));
    // a connection that lasted resets the backoff to its first step
    let t2 = t1 + Duration::from_secs(20);
    out.promote(p, PeerKind::FullRelay, &[local()], t2);
    let t3 = t2 + Duration::from_secs(120);
    out.closed(&p, t3);
    assert!(out.is_backed_off(&p, t3 + Duration::from_secs(4)));
    assert!(!out.is_backed_off(&p, t3 + Duration::from_secs(6)));
    assert_eq!(out.missing(), (8, 0));
}

#[test]
fn backoff_memory_is_bounded() {
    let mut out = OutboundPeers::new(8, 0, None);
    let now = Instant::now();
    for i in 0..(MAX_BACKOFF_ENTRIES + 100) {
        out.dial_failed(ConnectionId::new_unchecked(i), Some(PeerId::random()), now);
    }
    assert!(out.backoff.len() <= MAX_BACKOFF_ENTRIES);
}

#[test]
fn unanswered_dials_expire() {
    let mut out = OutboundPeers::new(1, 0, None);
    let now = Instant::now();
    out.dialing(
        ConnectionId::new_unchecked(1),
        None,
        PeerKind::FullRelay,
        now,
    );
    assert_eq!(out.missing(), (0, 0));
    out.expire(now + DIAL_TIMEOUT + Duration::from_secs(1));
    assert_eq!(out.missing(), (1, 0));
}

#[test]
fn anchors_round_trip_once_and_bad_files_give_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("anchors.json");
    let mut out = OutboundPeers::new(8, 2, Some(path.clone()));
    let now = Instant::now();
    let (a, b, f) = (PeerId::random(), PeerId::random(), PeerId::random());
    for (peer, kind, i) in [
        (a, PeerKind::BlockRelay, 1),
        (b, PeerKind::BlockRelay, 2),
        (f, PeerKind::FullRelay, 3),
    ] {
        let id = ConnectionId::new_unchecked(i);
        out.dialing(id, Some(peer), kind, now);
        out.established(id, peer, &local(), now);
    }
    out.save_anchors(|_| Some(local()));
    let read = OutboundPeers::new(8, 2, Some(path.clone())).take_anchors();
    assert_eq!(read.len(), 2, "block-relay peers only: {read:?}");
    for peer in [a, b] {
        assert!(read.contains(&local().with_p2p(peer).unwrap()));
    }
    assert!(!path.exists(), "anchors are used once");

    for bad in [&b"not json"[..], b"[\"/ip4/1.2.3.4/tcp/1\"]", b"{\"a\":1}"] {
        std::fs::write(&path, bad).unwrap();
        assert!(
            read_anchors(&path).is_empty(),
            "{}",
            String::from_utf8_lossy(bad)
        );
    }
    std::fs::write(&path, vec![b' '; 64 * 1024]).unwrap();
    assert!(read_anchors(&path).is_empty());
}
