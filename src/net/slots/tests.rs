//! Unit tests of [`super`].

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// `n` candidates from `group`, the i-th connected i seconds after `t0`.
fn cands(t0: Instant, groups: &[&str]) -> Vec<Candidate> {
    groups
        .iter()
        .enumerate()
        .map(|(i, g)| Candidate {
            group: net_group(ip(g)),
            since: t0 + Duration::from_secs(i as u64),
            rtt: None,
            useful: None,
        })
        .collect()
}

#[test]
fn groups_are_the_loopback_ip_or_a_prefix() {
    assert_eq!(net_group(ip("127.0.0.2")), ip("127.0.0.2"));
    assert_eq!(net_group(ip("::1")), ip("::1"));
    assert_eq!(net_group(ip("::ffff:127.0.0.3")), ip("127.0.0.3"));
    assert_eq!(net_group(ip("203.0.113.9")), ip("203.0.0.0"));
    assert_eq!(net_group(ip("::ffff:203.0.113.9")), ip("203.0.0.0"));
    assert_eq!(net_group(ip("2001:db8:1:2::5")), ip("2001:db8::"));
    assert_eq!(
        established_limit(ip("127.0.0.2")),
        ESTABLISHED_PER_LOOPBACK_IP
    );
    assert_eq!(established_limit(ip("::1")), ESTABLISHED_PER_LOOPBACK_IP);
    assert_eq!(established_limit(ip("10.0.0.1")), ESTABLISHED_PER_IP);
}

#[test]
fn with_nothing_known_the_youngest_of_the_biggest_group_goes() {
    let t0 = Instant::now();
    // 4 honest peers from distinct groups, then 6 from one attacker address
    let mut groups = vec!["1.1.0.1", "2.2.0.1", "3.3.0.1", "4.4.0.1"];
    groups.extend(["127.0.0.2"; 6]);
    let c = cands(t0, &groups);
    assert_eq!(select_to_evict(&c), Some(9));
    // the attacker's connections came first: its older half is protected by uptime, yet
    // what is left of it is still the biggest group, and its youngest goes, not the
    // honest newcomers
    let mut groups = vec!["127.0.0.2"; 8];
    groups.extend(["1.1.0.1", "2.2.0.1", "3.3.0.1", "4.4.0.1"]);
    let c = cands(t0, &groups);
    assert_eq!(select_to_evict(&c), Some(7));
}

#[test]
fn one_address_is_one_group_only_on_loopback() {
    let t0 = Instant::now();
    // the oldest half (0, 1, 2) is protected; of the rest, two addresses share 9.9/16,
    // the biggest group, whose youngest (4) goes rather than the youngest of all (5)
    let c = cands(
        t0,
        &[
            "5.5.0.1", "6.6.0.1", "9.9.1.1", "9.9.2.2", "9.9.3.3", "7.7.0.1",
        ],
    );
    assert_eq!(select_to_evict(&c), Some(4));
    // on loopback each address is its own group: a tie of singletons, the youngest goes
    let c = cands(
        t0,
        &[
            "127.0.0.1",
            "127.0.0.2",
            "127.0.0.3",
            "127.0.0.4",
            "127.0.0.5",
            "127.0.0.6",
        ],
    );
    assert_eq!(select_to_evict(&c), Some(5));
}

#[test]
fn useful_and_fast_peers_are_protected() {
    let t0 = Instant::now();
    let mut c = cands(t0, &["127.0.0.2"; 8]);
    // without protection the youngest (7) goes
    assert_eq!(select_to_evict(&c), Some(7));
    // 7 delivered a block: protected; 6 goes
    c[7].useful = Some(t0 + Duration::from_secs(100));
    assert_eq!(select_to_evict(&c), Some(6));
    // 6 has the lowest ping: protected too; of the rest (0..=5) the older half is
    // protected and 5 goes
    for (i, cand) in c.iter_mut().enumerate() {
        cand.rtt = Some(Duration::from_millis(50 - i as u64));
    }
    assert_eq!(select_to_evict(&c), Some(5));
}

#[test]
fn protection_is_bounded_so_someone_can_always_go() {
    let t0 = Instant::now();
    let mut c = cands(t0, &["127.0.0.1"; 4]);
    for cand in &mut c {
        cand.useful = Some(t0);
        cand.rtt = Some(Duration::from_millis(1));
    }
    // 1 useful, 0 by ping (a quarter of 3), 1 by uptime: one of the last two goes
    let victim = select_to_evict(&c).unwrap();
    assert!(victim >= 2, "{victim}");
    // a single inbound peer can be replaced
    assert_eq!(select_to_evict(&c[..1]), Some(0));
    assert_eq!(select_to_evict(&[]), None);
}

#[test]
fn many_useful_peers_protect_at_most_eight() {
    let t0 = Instant::now();
    let mut c = cands(t0, &["127.0.0.1"; 40]);
    for (i, cand) in c.iter_mut().enumerate() {
        cand.useful = Some(t0 + Duration::from_secs(i as u64));
    }
    // 32..=39 (most recent) protected; of 0..=31, 0..=15 by uptime; 31 goes
    assert_eq!(select_to_evict(&c), Some(31));
}

fn multiaddr(s: &str) -> Multiaddr {
    s.parse().unwrap()
}

#[test]
fn pending_connections_are_limited_per_address_and_bans_expire() {
    let mut slots = Slots::new(4);
    let local = multiaddr("/ip4/127.0.0.1/tcp/1");
    let attacker = multiaddr("/ip4/127.0.0.2/tcp/5000");
    for n in 0..PENDING_PER_IP {
        slots
            .handle_pending_inbound_connection(ConnectionId::new_unchecked(n), &local, &attacker)
            .unwrap();
    }
    let next = ConnectionId::new_unchecked(100);
    assert!(
        slots
            .handle_pending_inbound_connection(next, &local, &attacker)
            .is_err()
    );
    // another address is not affected
    let honest = multiaddr("/ip4/127.0.0.1/tcp/6000");
    slots
        .handle_pending_inbound_connection(next, &local, &honest)
        .unwrap();

    // a handshake that fails frees its slot
    slots.on_swarm_event(FromSwarm::ListenFailure(ListenFailure {
        local_addr: &local,
        send_back_addr: &attacker,
        error: &libp2p::swarm::ListenError::Aborted,
        connection_id: ConnectionId::new_unchecked(0),
        peer_id: None,
    }));
    let again = ConnectionId::new_unchecked(101);
    slots
        .handle_pending_inbound_connection(again, &local, &attacker)
        .unwrap();

    // a banned address is refused until the ban expires or is lifted
    let banned = multiaddr("/ip6/::ffff:203.0.113.9/tcp/7");
    slots.ban_ip(ip("203.0.113.9"), Instant::now() + Duration::from_secs(60));
    let c = ConnectionId::new_unchecked(102);
    let err = slots
        .handle_pending_inbound_connection(c, &local, &banned)
        .unwrap_err();
    assert!(err.to_string().contains("banned") || format!("{err:?}").contains("Banned"));
    slots.unban_ip(ip("203.0.113.9"));
    slots
        .handle_pending_inbound_connection(c, &local, &banned)
        .unwrap();
    slots.ban_ip(ip("198.51.100.1"), Instant::now());
    let expired = multiaddr("/ip4/198.51.100.1/tcp/7");
    slots
        .handle_pending_inbound_connection(ConnectionId::new_unchecked(103), &local, &expired)
        .unwrap();
}

/// The measured lock-out: half-open sockets from many addresses (each within its own
/// limit) fill the handshake table. A newcomer still gets a place, the oldest handshake of
/// the biggest group gives up its own and is refused if it completes, and the table stays
/// at its size.
#[test]
fn a_full_handshake_table_makes_room_for_a_newcomer() {
    let mut slots = Slots::new(50);
    let local = multiaddr("/ip4/127.0.0.1/tcp/1");
    let mut n = 0;
    // 16 loopback addresses × 8 (their limit) = 128, the table's size; 127.0.0.2 first.
    for a in 2..18 {
        let remote = multiaddr(&format!("/ip4/127.0.0.{a}/tcp/5000"));
        for _ in 0..PENDING_PER_IP {
            slots
                .handle_pending_inbound_connection(ConnectionId::new_unchecked(n), &local, &remote)
                .unwrap();
            n += 1;
        }
    }
    assert_eq!(slots.pending.len(), MAX_PENDING_INBOUND as usize);
    // Forty more addresses keep arriving; and then an honest newcomer.
    let honest = multiaddr("/ip4/127.0.1.1/tcp/6000");
    let newcomer = ConnectionId::new_unchecked(10_000);
    slots
        .handle_pending_inbound_connection(newcomer, &local, &honest)
        .expect("a newcomer is never refused for a full table");
    assert_eq!(slots.pending.len(), MAX_PENDING_INBOUND as usize);
    assert_eq!(slots.evicted_pending.len(), 1);
    let evicted = *slots.evicted_pending.iter().next().unwrap();
    assert!(evicted.to_string() != newcomer.to_string());
    // The evicted handshake is refused when it completes; the newcomer is admitted.
    let attacker = multiaddr("/ip4/127.0.0.2/tcp/5000");
    let err = slots
        .handle_established_inbound_connection(evicted, PeerId::random(), &local, &attacker)
        .map(|_| ())
        .unwrap_err();
    assert!(format!("{err:?}").contains("PendingEvicted"), "{err:?}");
    slots
        .handle_established_inbound_connection(newcomer, PeerId::random(), &local, &honest)
        .expect("the newcomer completes its handshake");
}

#[test]
fn an_ipv6_64_is_one_address() {
    let mut slots = Slots::new(4);
    let local = multiaddr("/ip6/::1/tcp/1");
    for n in 0..PENDING_PER_IP {
        let remote = multiaddr(&format!("/ip6/2001:db8:1:2::{:x}/tcp/5000", n + 1));
        slots
            .handle_pending_inbound_connection(ConnectionId::new_unchecked(n), &local, &remote)
            .unwrap();
    }
    let same_64 = multiaddr("/ip6/2001:db8:1:2:ffff::1/tcp/5000");
    assert!(
        slots
            .handle_pending_inbound_connection(ConnectionId::new_unchecked(99), &local, &same_64)
            .is_err()
    );
    let other_64 = multiaddr("/ip6/2001:db8:1:3::1/tcp/5000");
    slots
        .handle_pending_inbound_connection(ConnectionId::new_unchecked(98), &local, &other_64)
        .unwrap();
}

/// Establishes inbound connection `n` from `remote` as the swarm would.
fn establish(slots: &mut Slots, n: usize, remote: &Multiaddr) -> Result<PeerId, ConnectionDenied> {
    let local = multiaddr("/ip4/127.0.0.1/tcp/1");
    let id = ConnectionId::new_unchecked(n);
    let peer = PeerId::random();
    slots.handle_pending_inbound_connection(id, &local, remote)?;
    slots.handle_established_inbound_connection(id, peer, &local, remote)?;
    let endpoint = ConnectedPoint::Listener {
        local_addr: local,
        send_back_addr: remote.clone(),
    };
    slots.on_swarm_event(FromSwarm::ConnectionEstablished(ConnectionEstablished {
        peer_id: peer,
        connection_id: id,
        endpoint: &endpoint,
        failed_addresses: &[],
        other_established: 0,
    }));
    Ok(peer)
}

fn closes(slots: &mut Slots) -> Vec<ConnectionId> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    while let Poll::Ready(ToSwarm::CloseConnection {
        connection: CloseConnection::One(id),
        ..
    }) = slots.poll(&mut cx)
    {
        out.push(id);
    }
    out
}

#[test]
fn established_connections_are_limited_per_address() {
    let mut slots = Slots::new(50);
    let remote = multiaddr("/ip4/203.0.113.9/tcp/5000");
    for n in 0..ESTABLISHED_PER_IP {
        establish(&mut slots, n, &remote).unwrap();
    }
    assert!(establish(&mut slots, 99, &remote).is_err());
    // the refused one left no pending entry behind
    assert!(slots.pending.is_empty());
    // loopback has room for a local testnet
    let local = multiaddr("/ip4/127.0.0.5/tcp/5000");
    for n in 100..100 + ESTABLISHED_PER_IP + 1 {
        establish(&mut slots, n, &local).unwrap();
    }
    assert!(closes(&mut slots).is_empty());
}

#[test]
fn a_newcomer_to_full_slots_evicts_and_closed_connections_free_their_slot() {
    let mut slots = Slots::new(6);
    let attacker = multiaddr("/ip4/127.0.0.2/tcp/5000");
    let mut peers = Vec::new();
    for n in 0..6 {
        peers.push(establish(&mut slots, n, &attacker).unwrap());
    }
    assert!(closes(&mut slots).is_empty());
    let honest = multiaddr("/ip4/127.0.0.1/tcp/6000");
    establish(&mut slots, 10, &honest).unwrap();
    // the attacker's youngest connection goes, not the newcomer
    assert_eq!(closes(&mut slots), vec![ConnectionId::new_unchecked(5)]);
    // while it closes, it is not counted: the attacker's next newcomer evicts another of
    // its own (the honest peer is alone in its group)
    establish(&mut slots, 11, &attacker).unwrap();
    assert_eq!(closes(&mut slots), vec![ConnectionId::new_unchecked(4)]);
    let endpoint = ConnectedPoint::Listener {
        local_addr: multiaddr("/ip4/127.0.0.1/tcp/1"),
        send_back_addr: attacker.clone(),
    };
    for (n, peer) in [(5, peers[5]), (4, peers[4])] {
        slots.on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
            peer_id: peer,
            connection_id: ConnectionId::new_unchecked(n),
            endpoint: &endpoint,
            cause: None,
            remaining_established: 0,
        }));
    }
    assert_eq!(slots.inbound.len(), 6);
    assert!(slots.closing.is_empty());
}

#[test]
fn the_hard_cap_holds_while_evicted_connections_are_closing() {
    let mut slots = Slots::new(1);
    let mut refused = 0;
    for n in 0..20 {
        let remote = multiaddr(&format!("/ip4/127.0.0.{}/tcp/5000", n + 1));
        if establish(&mut slots, n, &remote).is_err() {
            refused += 1;
        }
    }
    // nobody closed: 1 slot + the slack, the rest refused
    assert_eq!(slots.inbound.len(), 1 + EVICTION_SLACK as usize);
    assert_eq!(refused, 20 - 1 - EVICTION_SLACK as usize);
}
