//! Tests of the wallet's history ledger against a real chain store.

use gossipcoin_proto::{Block, BlockHeader};

use super::*;
use crate::chain::{Chain, Origin};
use crate::consensus::testutil::{T0, coins, key, out_of, params, pay, remine, signed_tx};
use crate::keys::PrivateKey;

const NOW: u32 = T0 + 100_000;

fn block_on(prev: &Block, height: u32, miner: &PrivateKey, txs: Vec<Transaction>, t: u32) -> Block {
    let mut all = vec![Transaction::coinbase(
        height,
        miner.pubkey_hash(),
        coins(10),
    )];
    all.extend(txs);
    let mut b = Block {
        header: BlockHeader {
            version: 1,
            prev: prev.block_hash(),
            merkle_root: Default::default(),
            time: prev.header.time + t,
            bits: params().pow_bits,
            nonce: 0,
        },
        txs: all,
    };
    remine(&mut b, &params());
    b
}

fn genesis() -> Block {
    let mut g = Block {
        header: BlockHeader {
            version: 1,
            prev: BlockHash::ZERO,
            merkle_root: Default::default(),
            time: T0,
            bits: params().pow_bits,
            nonce: 0,
        },
        // Key 9 (not ours) holds the first coins.
        txs: vec![Transaction::coinbase(0, key(9).pubkey_hash(), coins(10))],
    };
    remine(&mut g, &params());
    g
}

fn follow(ledger: &mut Ledger, chain: &Chain) -> Vec<Txid> {
    let view = chain.store().read().unwrap();
    let mut known = ledger.known_outpoints();
    let keys = ledger.keys().clone();
    let s = scan(&view, ledger.tip(), &keys, &mut known, 1_000).unwrap();
    assert!(s.done);
    ledger.apply(s)
}

fn categories(
    ledger: &Ledger,
    p: &ChainParams,
) -> Vec<(Txid, &'static str, Amount, Option<Amount>)> {
    ledger
        .list(0, 100, p)
        .into_iter()
        .map(|l| (l.txid, l.category.as_str(), l.amount, l.fee))
        .collect()
}

#[test]
fn receive_send_generate_and_immature_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis();
    // The chain spends genesis at once (maturity 0); the ledger is asked with a maturity of 3.
    let chain = Chain::create(&dir.path().join("chain"), params(), &g).unwrap();
    let p = ChainParams {
        coinbase_maturity: 3,
        ..params()
    };
    let (me, other) = (key(1), key(9));
    let mut ledger = Ledger::new([me.pubkey_hash()].into());

    // Key 9 pays us 4 (change 5, fee 1) in block 1, mined by us.
    let receive = signed_tx(
        &[(out_of(&g.txs[0], 0), g.txs[0].outputs[0], &other)],
        vec![pay(&me, coins(4)), pay(&other, coins(5))],
    );
    let b1 = block_on(&g, 1, &me, vec![receive.clone()], 10);
    chain.accept_block(&b1, NOW, Origin::Requested).unwrap();
    let changed = follow(&mut ledger, &chain);
    assert_eq!(changed.len(), 2);
    let cb1 = b1.txs[0].compute_txid();
    let rx = receive.compute_txid();
    assert_eq!(
        categories(&ledger, &p),
        vec![
            (rx, "receive", coins(4), Some(coins(1))),
            (cb1, "immature", coins(10), None),
        ]
    );
    assert_eq!(
        ledger.balances(&p, None),
        Balances {
            confirmed: coins(4),
            immature: coins(10),
            ..Balances::default()
        }
    );

    // We pay key 9 three of our four (fee 0): a send, and the change stays ours.
    let send = signed_tx(
        &[(out_of(&receive, 0), receive.outputs[0], &me)],
        vec![pay(&other, coins(3)), pay(&me, coins(1))],
    );
    assert!(ledger.is_relevant(&send));
    assert!(ledger.add_unconfirmed(send.clone(), None, u64::from(NOW)));
    let st = send.compute_txid();
    let listed = ledger.list(0, 1, &p);
    assert_eq!(listed[0].category, Category::Send);
    assert_eq!(listed[0].amount, coins(3));
    assert_eq!(listed[0].fee, Some(Amount::ZERO));
    assert_eq!(listed[0].address, Some(Address(other.pubkey_hash())));
    assert_eq!(listed[0].from, Some(Address(me.pubkey_hash())));
    assert_eq!(listed[0].confirmations, 0);
    let b = ledger.balances(&p, None);
    assert_eq!(
        (b.confirmed, b.outgoing, b.unconfirmed),
        (coins(4), coins(4), coins(1))
    );

    // Blocks 2 and 3 (the send in 2): the first coinbase matures at tip 3 (1 + 3 = 4 = 3 + 1).
    let b2 = block_on(&b1, 2, &other, vec![send.clone()], 10);
    let b3 = block_on(&b2, 3, &other, vec![], 10);
    for b in [&b2, &b3] {
        chain.accept_block(b, NOW, Origin::Requested).unwrap();
    }
    follow(&mut ledger, &chain);
    assert_eq!(
        categories(&ledger, &p),
        vec![
            (st, "send", coins(3), Some(Amount::ZERO)),
            (rx, "receive", coins(4), Some(coins(1))),
            (cb1, "generate", coins(10), None),
        ]
    );
    let listed = ledger.list(0, 1, &p);
    assert_eq!(listed[0].confirmations, 2);
    assert_eq!(listed[0].time, u64::from(b2.header.time));
    assert_eq!(
        ledger.balances(&p, None),
        Balances {
            confirmed: coins(11),
            ..Balances::default()
        }
    );
    let (received, sent, list) = ledger.of_key(&me.pubkey_hash());
    assert_eq!((received, sent, list.len()), (coins(15), coins(4), 3));

    // Saved and restored: the same history.
    let restored = Ledger::restore(
        ledger.keys().clone(),
        ledger.tip(),
        ledger.entries().cloned().collect(),
    );
    assert_eq!(categories(&restored, &p), categories(&ledger, &p));
    assert_eq!(restored.balances(&p, None), ledger.balances(&p, None));
}

#[test]
fn a_reorg_sends_a_receive_back_to_pending_or_conflicted_and_a_coinbase_to_orphan() {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis();
    let p = params();
    let chain = Chain::create(&dir.path().join("chain"), p.clone(), &g).unwrap();
    let (me, other) = (key(1), key(9));
    let mut ledger = Ledger::new([me.pubkey_hash()].into());
    let coin = (out_of(&g.txs[0], 0), g.txs[0].outputs[0], &other);
    let receive = signed_tx(&[coin], vec![pay(&me, coins(10))]);
    let rx = receive.compute_txid();
    // Block 1 (ours: its coinbase pays us) holds the payment to us.
    let a1 = block_on(&g, 1, &me, vec![receive.clone()], 10);
    chain.accept_block(&a1, NOW, Origin::Requested).unwrap();
    follow(&mut ledger, &chain);
    assert!(matches!(
        ledger.get(&rx).unwrap().place,
        Place::Confirmed { height: 1, .. }
    ));

    // A heavier branch without it: the payment is unconfirmed again, the coinbase an orphan.
    let b1 = block_on(&g, 1, &other, vec![], 11);
    let b2 = block_on(&b1, 2, &other, vec![], 11);
    for b in [&b1, &b2] {
        chain.accept_block(b, NOW, Origin::Requested).unwrap();
    }
    let changed = follow(&mut ledger, &chain);
    assert_eq!(changed.len(), 2, "{changed:?}");
    assert_eq!(
        ledger.get(&rx).unwrap().place,
        Place::Pending { in_mempool: false }
    );
    let cb = a1.txs[0].compute_txid();
    assert_eq!(ledger.get(&cb).unwrap().place, Place::Orphan);
    // Back in the mempool: pending. Its input still unspent on the chain.
    let in_pool: HashSet<Txid> = [rx].into();
    ledger.resolve(&in_pool, &HashSet::new());
    let line = ledger.describe(ledger.get(&rx).unwrap(), &p);
    assert_eq!((line.category, line.confirmations), (Category::Receive, 0));
    assert_eq!(line.place, Place::Pending { in_mempool: true });
    assert_eq!(
        ledger.describe(ledger.get(&cb).unwrap(), &p).category,
        Category::Orphan
    );
    assert_eq!(ledger.balances(&p, None).unconfirmed, coins(10));

    // The sender spends the same coin elsewhere on the chain: the payment is conflicted (the
    // spender is not the wallet's, so by whom is unknown).
    let double = signed_tx(&[coin], vec![pay(&other, coins(10))]);
    let b3 = block_on(&b2, 3, &other, vec![double], 10);
    chain.accept_block(&b3, NOW, Origin::Requested).unwrap();
    follow(&mut ledger, &chain);
    let gone: HashSet<OutPoint> = [coin.0].into();
    let changed = ledger.resolve(&HashSet::new(), &gone);
    assert_eq!(changed, vec![rx]);
    assert_eq!(
        ledger.get(&rx).unwrap().place,
        Place::Conflicted { by: None }
    );
    assert_eq!(ledger.balances(&p, None), Balances::default());
}

#[test]
fn a_payment_of_ours_beaten_by_another_says_by_which() {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis();
    let p = params();
    let chain = Chain::create(&dir.path().join("chain"), p.clone(), &g).unwrap();
    let (me, other) = (key(1), key(9));
    let mut ledger = Ledger::new([me.pubkey_hash()].into());
    let a1 = block_on(&g, 1, &me, vec![], 10);
    let a2 = block_on(&a1, 2, &other, vec![], 10);
    for b in [&a1, &a2] {
        chain.accept_block(b, NOW, Origin::Requested).unwrap();
    }
    follow(&mut ledger, &chain);
    let cb = (out_of(&a1.txs[0], 0), a1.txs[0].outputs[0], &me);
    let t1 = signed_tx(&[cb], vec![pay(&other, coins(10))]);
    let t2 = signed_tx(&[cb], vec![pay(&other, coins(9))]);
    ledger.add_unconfirmed(t2.clone(), None, 1);
    assert_eq!(ledger.get(&t2.compute_txid()).unwrap().fee, Some(coins(1)));
    let a3 = block_on(&a2, 3, &other, vec![t1.clone()], 10);
    chain.accept_block(&a3, NOW, Origin::Requested).unwrap();
    follow(&mut ledger, &chain);
    ledger.resolve(&HashSet::new(), &[cb.0].into());
    assert_eq!(
        ledger.get(&t2.compute_txid()).unwrap().place,
        Place::Conflicted {
            by: Some(t1.compute_txid())
        }
    );
    // A rescan from nothing finds the confirmed history again, without the unconfirmed one.
    let mut fresh = Ledger::new(ledger.keys().clone());
    follow(&mut fresh, &chain);
    let ids: Vec<Txid> = fresh.entries().map(|e| e.txid).collect();
    assert_eq!(ids, vec![a1.txs[0].compute_txid(), t1.compute_txid()]);
}

#[test]
fn a_scan_is_bounded_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let g = genesis();
    let chain = Chain::create(&dir.path().join("chain"), params(), &g).unwrap();
    let me = key(1);
    let mut tip = g.clone();
    for h in 1..=5 {
        tip = block_on(&tip, h, &me, vec![], 10);
        chain.accept_block(&tip, NOW, Origin::Requested).unwrap();
    }
    let mut ledger = Ledger::new([me.pubkey_hash()].into());
    let view = chain.store().read().unwrap();
    let keys = ledger.keys().clone();
    let mut known = HashSet::new();
    let s = scan(&view, None, &keys, &mut known, 4).unwrap();
    assert_eq!((s.blocks, s.done), (4, false));
    ledger.apply(s);
    assert_eq!(ledger.tip().map(|t| t.1), Some(3));
    let s = scan(&view, ledger.tip(), &keys, &mut known, 4).unwrap();
    assert_eq!((s.blocks, s.done), (2, true));
    ledger.apply(s);
    assert_eq!(ledger.len(), 5);
    // At the tip: nothing to read.
    let s = scan(&view, ledger.tip(), &keys, &mut known, 4).unwrap();
    assert_eq!((s.blocks, s.done, s.found.len()), (0, true, 0));
}
