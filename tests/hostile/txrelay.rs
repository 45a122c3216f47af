//! Issue 11: ordered relay with an orphan-transaction pool, and mempool exchange on connect.
//! Transactions that arrive before their parents wait in a bounded pool charged to their
//! sender; a node that connects learns what its peer's mempool holds.

use gossipcoin::keys::PrivateKey;
use gossipcoin::node::MAX_ORPHAN_TXS;
use gossipcoin_proto::message::{MAX_MEMPOOL_TXIDS, Request, Response};
use gossipcoin_proto::{
    Amount, Block, OutPoint, PublicKey, Signature, Transaction, TxIn, TxOut, Txid,
};

use super::coins;
use super::harness::{Attacker, TestNode, child, child_paying, genesis, signed, wait_for};

/// Output 0 of `tx`.
fn out0(tx: &Transaction) -> OutPoint {
    OutPoint {
        txid: tx.compute_txid(),
        vout: 0,
    }
}

/// `n` payments by `key`, each spending output 0 of the one before, the first spending the
/// coinbase of `funding` (10 coins to `key`); each pays 1,000 units to a fresh key, a fee of
/// 1,000 units (about 5 units/vB) and the rest back to `key` (output 0).
fn chained_payments(funding: &Block, key: &PrivateKey, n: u64) -> Vec<Transaction> {
    let mut out: Vec<Transaction> = Vec::new();
    let (mut prevout, mut spent) = (out0(&funding.txs[0]), funding.txs[0].outputs[0]);
    let paid = Amount::from_units(1_000).unwrap();
    for _ in 0..n {
        let change = TxOut {
            value: spent
                .value
                .checked_sub(paid)
                .and_then(|v| v.checked_sub(paid))
                .unwrap(),
            owner: key.pubkey_hash(),
        };
        let pay = TxOut {
            value: paid,
            owner: PrivateKey::generate().pubkey_hash(),
        };
        let tx = signed(prevout, spent, key, vec![change, pay]);
        (prevout, spent) = (out0(&tx), change);
        out.push(tx);
    }
    out
}

/// A transaction spending an output nobody has seen (`tag` makes it unique): an orphan for
/// ever. Not signed: signatures are checked only once the inputs are known.
fn orphan(tag: u32) -> Transaction {
    let mut parent = [0xee; 32];
    parent[..4].copy_from_slice(&tag.to_le_bytes());
    Transaction {
        version: Transaction::VERSION,
        inputs: vec![TxIn {
            prevout: OutPoint {
                txid: Txid(parent),
                vout: 0,
            },
            signature: Signature::ZERO,
            pubkey: PublicKey::ZERO,
        }],
        outputs: vec![TxOut {
            value: coins(1),
            owner: PrivateKey::generate().pubkey_hash(),
        }],
    }
}

fn sorted(mut txids: Vec<Txid>) -> Vec<Txid> {
    txids.sort();
    txids
}

/// The measured loss: a chain of payments arriving child-first. Every one ends in the
/// victim's mempool (the orphans wait for their parents), the victim relays each once it is
/// accepted, and mines them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chained_payments_arriving_child_first_are_all_accepted_relayed_and_mined() {
    const N: u64 = 20;
    let g = genesis();
    let key = PrivateKey::generate();
    let funding = child_paying(&g, 1, &key, vec![]);
    let v = TestNode::start_with(&g, std::slice::from_ref(&funding), &[]).await;
    // W watches what V relays; it never answers V's Status, so V never asks for its mempool.
    let mut w = Attacker::connect(&v.addr, g.block_hash()).await;
    let x = Attacker::connect(&v.addr, g.block_hash()).await;
    let payments = chained_payments(&funding, &key, N);
    let txids: Vec<Txid> = payments.iter().map(Transaction::compute_txid).collect();

    for tx in payments.iter().rev() {
        x.gossip_tx(tx);
    }
    wait_for("every payment in V's mempool", || async {
        v.mempool().await.len() == N as usize
    })
    .await;
    assert_eq!(sorted(v.mempool().await), sorted(txids.clone()));
    assert!(v.orphans.is_empty(), "orphans left: {}", v.orphans.len());
    w.wait_for_gossip_txs(&txids).await;
    assert!(
        v.peer_score(x.id).await.is_some_and(|s| s >= 0.0),
        "X was penalised for orphans"
    );

    let block = v.control.mine(None).await.unwrap();
    assert_eq!(block.txs.len(), N as usize + 1);
    assert_eq!(
        sorted(
            block.txs[1..]
                .iter()
                .map(Transaction::compute_txid)
                .collect()
        ),
        sorted(txids)
    );
    assert!(v.mempool().await.is_empty());
    v.stop().await.unwrap();
}

/// More orphans than the pool holds, from one peer: the pool stays at its bound by evicting
/// that peer's oldest, another peer's orphan survives the flood, and a banned peer's orphans
/// are dropped at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_flood_stays_bounded_and_a_banned_peers_orphans_are_dropped() {
    let g = genesis();
    let v = TestNode::start(&g, &[]).await;
    let x = Attacker::connect(&v.addr, g.block_hash()).await;
    let y = Attacker::connect(&v.addr, g.block_hash()).await;

    let honest = orphan(0);
    y.gossip_tx(&honest);
    wait_for("Y's orphan to be pooled", || async {
        v.orphans.contains(&honest.compute_txid())
    })
    .await;
    let flood: Vec<Transaction> = (1..=MAX_ORPHAN_TXS as u32 + 50).map(orphan).collect();
    for tx in &flood {
        x.gossip_tx(tx);
    }
    let last = flood.last().unwrap().compute_txid();
    // One peer's transactions are handled in the order sent: once the last is pooled, all were.
    wait_for("X's last orphan to be pooled", || async {
        v.orphans.contains(&last)
    })
    .await;
    assert_eq!(v.orphans.len(), MAX_ORPHAN_TXS);
    assert!(
        v.orphans.contains(&honest.compute_txid()),
        "Y's orphan was evicted by X's flood"
    );
    assert_eq!(v.orphans.count_from(&x.id), MAX_ORPHAN_TXS - 1);
    assert!(
        !v.orphans.contains(&flood[0].compute_txid()),
        "X's oldest should go first"
    );
    assert!(v.mempool().await.is_empty());

    v.control
        .ban_peer(&x.id.to_string(), "orphan flood")
        .await
        .unwrap();
    wait_for("X's orphans to be dropped", || async {
        v.orphans.count_from(&x.id) == 0
    })
    .await;
    assert_eq!(v.orphans.len(), 1);
    assert!(v.orphans.contains(&honest.compute_txid()));
    v.stop().await.unwrap();
}

/// An orphan that turns out invalid once its parent arrives (a bad signature) is charged to
/// the peer that sent it, not to the one that delivered the parent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_orphan_transaction_costs_its_sender_once_its_parent_arrives() {
    let g = genesis();
    let key = PrivateKey::generate();
    let funding = child_paying(&g, 1, &key, vec![]);
    let v = TestNode::start_with(&g, std::slice::from_ref(&funding), &[]).await;
    let x = Attacker::connect(&v.addr, g.block_hash()).await;
    let y = Attacker::connect(&v.addr, g.block_hash()).await;
    let parent = chained_payments(&funding, &key, 1).remove(0);
    // Spends the parent's change with a key that does not own it.
    let thief = PrivateKey::generate();
    let mut bad = signed(
        out0(&parent),
        parent.outputs[0],
        &thief,
        vec![parent.outputs[0]],
    );
    bad.inputs[0].pubkey = key.public_key();

    x.gossip_tx(&bad);
    wait_for("the bad child to be pooled", || async {
        v.orphans.contains(&bad.compute_txid())
    })
    .await;
    y.gossip_tx(&parent);
    wait_for("X to be charged", || async {
        v.peer_score(x.id).await.is_none_or(|s| s < 0.0)
    })
    .await;
    assert_eq!(v.mempool().await, vec![parent.compute_txid()]);
    assert!(v.orphans.is_empty());
    let score = v.peer_score(y.id).await;
    assert!(
        score.is_some_and(|s| s >= 0.0),
        "Y was charged for X's orphan: {score:?}"
    );
    v.stop().await.unwrap();
}

/// A node that connects learns its peer's pending transactions without anyone gossiping them:
/// A's payments came back to its mempool in a reorganisation (never published), and B, on
/// the same chain with an empty mempool, fetches every one when it connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connecting_node_fetches_the_pending_transactions_of_its_peer() {
    const N: u64 = 12;
    let g = genesis();
    let key = PrivateKey::generate();
    let b1 = child_paying(&g, 1, &key, vec![]);
    let payments = chained_payments(&b1, &key, N);
    let txids: Vec<Txid> = payments.iter().map(Transaction::compute_txid).collect();
    let with_payments = child(&b1, 2, coins(10), payments);
    let a = TestNode::start_with(&g, &[b1.clone(), with_payments], &[]).await;
    // A heavier branch without them: A reorganises and the payments return to its mempool.
    let b2 = child(&b1, 2, coins(10), vec![]);
    let b3 = child(&b2, 3, coins(10), vec![]);
    a.control.submit_block(b2.clone()).await.unwrap();
    a.control.submit_block(b3.clone()).await.unwrap();
    assert_eq!(a.tip().await, b3.block_hash());
    assert_eq!(sorted(a.mempool().await), sorted(txids.clone()));

    let b = TestNode::start_with(&g, &[b1, b2, b3], &[&a.addr]).await;
    wait_for("B to fetch A's pending payments", || async {
        b.mempool().await.len() == N as usize
    })
    .await;
    assert_eq!(sorted(b.mempool().await), sorted(txids));
    assert!(
        b.orphans.is_empty(),
        "A listed parents after their children"
    );
    b.stop().await.unwrap();
    a.stop().await.unwrap();
}

/// Mempool answers over their limits or not asked for cost the peer that sent them, and leave
/// the victim's mempool as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_or_unasked_mempool_answers_cost_their_sender() {
    let g = genesis();
    let v = TestNode::start(&g, &[]).await;
    let status = v.status().await;

    // X lists one txid more than allowed.
    let mut x = Attacker::connect(&v.addr, g.block_hash()).await;
    x.serve(move |request| match request {
        Request::Status(_) => Some(Response::Status(status)),
        Request::GetMempool => Some(Response::MempoolTxids(
            (0..=MAX_MEMPOOL_TXIDS as u32)
                .map(|n| {
                    let mut t = [0; 32];
                    t[..4].copy_from_slice(&n.to_le_bytes());
                    Txid(t)
                })
                .collect(),
        )),
        _ => None,
    });
    wait_for("X to be charged for its listing", || async {
        v.peer_score(x.id).await.is_none_or(|s| s < 0.0)
    })
    .await;

    // Y lists one transaction and sends another.
    let mut y = Attacker::connect(&v.addr, g.block_hash()).await;
    let (listed, sent) = (orphan(1), orphan(2));
    let listed_id = listed.compute_txid();
    y.serve(move |request| match request {
        Request::Status(_) => Some(Response::Status(status)),
        Request::GetMempool => Some(Response::MempoolTxids(vec![listed_id])),
        Request::GetTxs { .. } => Some(Response::Txs(vec![sent.clone()])),
        _ => None,
    });
    wait_for("Y to be charged for an unasked transaction", || async {
        v.peer_score(y.id).await.is_none_or(|s| s <= -30.0)
    })
    .await;
    assert!(v.mempool().await.is_empty());
    assert!(v.orphans.is_empty(), "the unasked transaction was kept");
    v.stop().await.unwrap();
}

/// Asking for a node's mempool again within 10 s (on any connection) after being refused once,
/// or for more transactions than one request may name, costs the asker; the first listing is
/// answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mempool_requests_too_often_or_too_big_cost_their_sender() {
    let g = genesis();
    let v = TestNode::start(&g, &[]).await;
    let x = Attacker::connect(&v.addr, g.block_hash()).await;
    wait_for("V to see X", || async {
        v.peer_score(x.id).await.is_some()
    })
    .await;
    let first = x.net.request(v.id, Request::GetMempool).await;
    assert!(
        matches!(first, Ok(Response::MempoolTxids(_))),
        "the first listing is answered: {first:?}"
    );
    let again = x.net.request(v.id, Request::GetMempool).await;
    assert!(
        matches!(again, Ok(Response::Error(_))),
        "a second listing within 10 s is refused: {again:?}"
    );
    // The first refusal is free (a restarted node asks once too soon, then after 10 s); asking
    // again anyway costs.
    assert!(v.peer_score(x.id).await.is_some_and(|s| s >= 0.0));
    let third = x.net.request(v.id, Request::GetMempool).await;
    assert!(matches!(third, Ok(Response::Error(_))), "{third:?}");
    wait_for("V to charge the repeated listing", || async {
        v.peer_score(x.id).await.is_some_and(|s| s < 0.0)
    })
    .await;
    let before = v.peer_score(x.id).await.unwrap();
    let too_many = Request::GetTxs {
        txids: vec![Txid([5; 32]); gossipcoin_proto::message::MAX_TXS_PER_REQUEST + 1],
    };
    let _ = x.net.request(v.id, too_many).await;
    wait_for("V to charge the oversized GetTxs", || async {
        v.peer_score(x.id).await.is_none_or(|s| s < before)
    })
    .await;
    v.stop().await.unwrap();
}
