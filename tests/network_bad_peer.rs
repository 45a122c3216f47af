//! A misbehaving peer (this test process, speaking libp2p through gossipcoin's own `net`
//! module) gossips a block with bad proof of work, a transaction with a bad signature and a
//! garbage payload to a real node A, which is connected to a real node B. None of it is
//! forwarded to B, both nodes keep running, and A bans the peer.

mod common;
#[path = "net/raw_peer.rs"]
#[allow(dead_code)]
mod raw_peer;
use common::{Node, addr, free_port, wait_until};
use gossipcoin::net::{self, NetConfig};
use gossipcoin_proto::{Amount, Block, BlockHash, Transaction, TxIn, TxOut};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_gossip_is_not_forwarded_and_the_sender_is_banned() {
    let (a, b) = (Node::new(), Node::new());
    let owner = a.new_address();
    a.ok(&["createblockchain", "--address", &owner]);
    b.copy_chain_from(&a);
    let chain = a.ok(&["printchain"]);
    let genesis_hash: BlockHash = chain
        .lines()
        .next()
        .unwrap()
        .split(' ')
        .nth(2)
        .unwrap()
        .parse()
        .unwrap();

    let (pa, pb) = (free_port(), free_port());
    let node_a = a.start(&["--role", "central", "--listen", &addr(pa)]);
    let node_b = b.start(&[
        "--role",
        "wallet",
        "--listen",
        &addr(pb),
        "--bootstrap",
        &addr(pa),
    ]);
    tokio::task::block_in_place(|| {
        wait_until(60, "B to connect to A", || {
            node_b.log_text().contains("peer connected")
        })
    });

    // The bad peer joins A's network.
    let tmp = tempfile::tempdir().unwrap();
    let mut config = NetConfig::new(tmp.path().join("bad.key"));
    config.bootstrap = vec![addr(pa)];
    config.discovery = false;
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let (bad, _events) = net::spawn(config, stop).await.unwrap();
    bad.join(genesis_hash).await.unwrap();
    let bad_id = bad.local_peer_id().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !bad.peers().await.iter().any(|p| p.subscribed) {
        assert!(std::time::Instant::now() < deadline, "A never subscribed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // 1. A block whose header does not meet the target.
    let params = gossipcoin::params::ChainParams::devnet();
    let key = gossipcoin::keys::PrivateKey::generate();
    let mut block: Block = gossipcoin::miner::assemble_block(
        genesis_hash,
        1,
        gossipcoin::node::unix_now(),
        params.pow_bits,
        &params,
        key.pubkey_hash(),
        vec![],
        Amount::ZERO,
    )
    .unwrap();
    while params.target().is_met_by(&block.block_hash()) {
        block.header.nonce += 1;
    }
    bad.publish_block(&block).await;
    // 2. A transaction spending the genesis coin with someone else's key and signature.
    let genesis_txid: gossipcoin_proto::Txid = chain
        .lines()
        .find_map(|l| l.strip_prefix("--- Transaction ")?.strip_suffix(':'))
        .unwrap()
        .parse()
        .unwrap();
    let tx = Transaction {
        version: 1,
        inputs: vec![TxIn {
            prevout: gossipcoin_proto::OutPoint {
                txid: genesis_txid,
                vout: 0,
            },
            signature: key.sign(&[7; 32]),
            pubkey: key.public_key(),
        }],
        outputs: vec![TxOut {
            value: Amount::from_coins(1).unwrap(),
            owner: key.pubkey_hash(),
        }],
    };
    bad.publish_tx(&tx).await;
    // 3. Garbage.
    bad.publish_raw(true, b"definitely not a block".to_vec());

    tokio::task::block_in_place(|| {
        wait_until(60, "A to ban the bad peer", || {
            node_a
                .log_text()
                .lines()
                .any(|l| l.contains("banned peer") && l.contains(&bad_id))
        })
    });
    let log_a = node_a.log_text();
    assert!(
        log_a.contains(&block.block_hash().to_string()),
        "A saw the bad block"
    );
    // B never received any of it: it would have refused and logged it.
    let log_b = node_b.log_text();
    assert!(
        !log_b.contains(&block.block_hash().to_string()),
        "the bad block reached B"
    );
    assert!(
        !log_b.contains("refused"),
        "something invalid reached B:\n{log_b}"
    );
    // Both nodes are alive and agree.
    assert_eq!(a.height(), Some(0));
    assert_eq!(b.height(), Some(0));
    assert!(bad.peers().await.is_empty() || !bad.peers().await.iter().any(|p| p.subscribed));
    drop(node_b);
    drop(node_a);
}

/// Malformed request frames (undecodable bodies, `u32::MAX` length prefixes) sent to the real
/// daemon cost the sender score until it is banned: it leaves `/peers`, the ban is counted in
/// `/metrics`, and it cannot connect again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_request_frames_get_the_sender_banned() {
    let a = Node::new();
    let owner = a.new_address();
    a.ok(&["createblockchain", "--address", &owner]);
    let port = free_port();
    let node_a = a.start(&["--role", "central", "--listen", &addr(port)]);
    let api = tokio::task::block_in_place(|| node_a.api());
    let status = common::http_get(&format!("{api}/status"), None).body;
    let victim = status["listen"][0].as_str().unwrap().to_owned();

    let raw = raw_peer::RawPeer::spawn(false);
    raw.dial(&victim).await.unwrap();
    let raw_id = raw.id.to_string();
    let listed = |api: &str| {
        let peers = common::http_get(&format!("{api}/peers"), None).body;
        peers["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["peer_id"] == raw_id.as_str())
    };
    tokio::task::block_in_place(|| wait_until(30, "the raw peer in /peers", || listed(&api)));
    let victim_id: gossipcoin::net::PeerId = status["peer_id"].as_str().unwrap().parse().unwrap();
    for n in 0..12u8 {
        let frame = if n % 2 == 0 {
            raw_peer::framed(&[0xff, n, 0xff])
        } else {
            u32::MAX.to_be_bytes().to_vec()
        };
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            raw.request(victim_id, frame),
        )
        .await;
    }
    tokio::task::block_in_place(|| {
        wait_until(30, "the raw peer to leave /peers", || !listed(&api));
    });
    let metrics = common::http_get(&format!("{api}/metrics"), None).text;
    let bans: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("gossipcoin_peer_bans_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(bans >= 1, "{metrics}");
    assert!(
        metrics.contains("gossipcoin_peer_penalties_total{reason=\"malformed_request\"}"),
        "{metrics}"
    );
    // it cannot come back
    let _ = raw.dial(&victim).await;
    tokio::task::block_in_place(|| {
        assert!(
            !common::poll_until(2, || listed(&api)),
            "the banned peer came back"
        );
    });
}
