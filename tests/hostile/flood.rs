//! Issue 21: a flood of valid, minimum-fee transactions against an in-process node with a
//! small mempool. The pool stays within its cap, its minimum fee rate rises, and an honest
//! payment at twice the minimum rate gets in and is the first transaction of the next block.

use gossipcoin::keys::PrivateKey;
use gossipcoin::mempool::FeeRate;
use gossipcoin_proto::{Address, Amount, OutPoint, Transaction, TxOut};

use super::harness::{TestNode, child_paying, genesis, signed};

/// Splits output 0 of `tx` (owned by `key`) into `n` equal outputs to `key`, paying `fee`.
fn split(tx: &Transaction, key: &PrivateKey, n: u64, fee: u64) -> Transaction {
    let spent = tx.outputs[0];
    let each = (spent.value.units() - fee) / n;
    let outputs = (0..n)
        .map(|_| TxOut {
            value: Amount::from_units(each).unwrap(),
            owner: key.pubkey_hash(),
        })
        .collect();
    let prevout = OutPoint {
        txid: tx.compute_txid(),
        vout: 0,
    };
    signed(prevout, spent, key, outputs)
}

/// Spends output `vout` of `tx` (owned by `key`) to a fresh key, paying `rate` on its size.
fn pay_at(tx: &Transaction, vout: u32, key: &PrivateKey, rate: FeeRate) -> Transaction {
    let spent = tx.outputs[vout as usize];
    let prevout = OutPoint {
        txid: tx.compute_txid(),
        vout,
    };
    let to = PrivateKey::generate().pubkey_hash();
    let build = |fee: u64| {
        let value = Amount::from_units(spent.value.units() - fee).unwrap();
        signed(prevout, spent, key, vec![TxOut { value, owner: to }])
    };
    let size = build(0).encoded_len();
    build(rate.fee_for(size + 2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minimum_fee_flood_leaves_the_honest_payment_first_in_the_next_block() {
    let (spammer, honest) = (PrivateKey::generate(), PrivateKey::generate());
    let g = genesis();
    let b1 = child_paying(&g, 1, &spammer, vec![]);
    // The spammer split its coin into 200 (confirmed, so the flood is not one long chain).
    let fan = split(&b1.txs[0], &spammer, 200, 100_000);
    let b2 = child_paying(&b1, 2, &honest, vec![fan.clone()]);
    // A pool of 40 kB of memory (about 80 small transactions); Core's policy otherwise.
    let node = TestNode::start_configured(&g, &[b1.clone(), b2.clone()], &[], |c| {
        c.mempool.max_bytes = 40_000;
    })
    .await;
    let floor = FeeRate::from_units_per_vb(1);

    // The spammer floods at the floor.
    for vout in 0..200 {
        // Refused (pool full, below the risen minimum) or accepted and evicted later.
        let _ = node
            .control
            .submit_tx(pay_at(&fan, vout, &spammer, floor), "test")
            .await;
    }
    let entries = node.control.mempool().await.unwrap();
    let memory: usize = entries.iter().map(|e| e.memory()).sum();
    assert!(memory <= 40_000, "{memory} bytes of memory");
    assert!(entries.len() < 200, "all {} kept", entries.len());
    let min = node.control.estimate_fee(1).await.unwrap().min_fee_rate;
    assert!(min > floor, "the rolling minimum did not rise: {min}");

    // The honest payment at twice the (raised) minimum gets in.
    let rate = FeeRate::from_milli_units_per_vb(2 * min.milli_units_per_vb());
    let pay = pay_at(&b2.txs[0], 0, &honest, rate);
    let txid = node.control.submit_tx(pay, "wallet").await.unwrap();
    let block = node
        .control
        .mine(Some(Address(PrivateKey::generate().pubkey_hash())))
        .await
        .unwrap();
    assert_eq!(block.txs[1].compute_txid(), txid);
    node.stop().await.unwrap();
}
