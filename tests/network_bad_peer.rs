//! A misbehaving peer (this test process, speaking libp2p through gossipcoin's own `net`
//! module) gossips a block with bad proof of work, a transaction with a bad signature and a
//! garbage payload to a real node A, which is connected to a real node B. None of it is
//! forwarded to B, both nodes keep running, and A bans the peer.

mod common;
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
