//! The performance numbers of the consensus core, each next to its baseline in the same run:
//!
//! 1. block validation (2,000 one-input txs, signatures included) vs bare k256 verification of
//!    the same signatures on all cores — target ≥ 80 %;
//! 2. the miner's hash rate on one thread vs a bare SHA-256d loop over an 80-byte header —
//!    target ≥ 90 %; two threads vs one — target ≥ 1.8×;
//! 3. `getbalance` with 100,000 UTXOs over 1,000 addresses — target < 5 ms per call;
//! 4. accepting a block of 2,000 txs on a store of 500,000 UTXOs — ms per block;
//! 5. initial sync: connecting 500 blocks of 50 txs (each spending an output of the block
//!    before) one `accept_block` per block vs `accept_batch`, next to bare k256 verification of
//!    the same signatures on all cores — tx/s.
//!
//! Run with `cargo bench` (or `cargo bench -- validation` for one section). Plain `main`, no
//! statistics framework: each number is the median of several runs, printed with its target.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use gossipcoin::chain::Chain;
use gossipcoin::keys::{self, PrivateKey};
use gossipcoin::params::ChainParams;
use gossipcoin::store::{ChainRead, IndexEntry, Store};
use gossipcoin::{consensus, miner};
use gossipcoin_proto::{
    Amount, Block, BlockHash, BlockHeader, Coin, OutPoint, PubkeyHash, Signature, Transaction,
    TxIn, TxOut, sha256d,
};
use rayon::prelude::*;

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    println!(
        "gossipcoin core benchmarks ({} cores)\n",
        rayon::current_num_threads()
    );
    if wanted("validation") {
        validation();
    }
    if wanted("mining") {
        mining();
    }
    if wanted("getbalance") {
        getbalance();
    }
    if wanted("connect") {
        connect();
    }
    if wanted("batch") {
        batch();
    }
}

/// Easy PoW so that building fixtures costs nothing; validation cost does not depend on it.
fn easy_params() -> ChainParams {
    ChainParams {
        pow_bits: 0x207fffff,
        retarget: gossipcoin::params::Retarget::Fixed,
        ..ChainParams::devnet()
    }
}

fn key(i: u32) -> PrivateKey {
    let mut b = [0u8; 32];
    b[..4].copy_from_slice(&(i + 1).to_be_bytes());
    b[31] = 1;
    PrivateKey::from_bytes(&b).expect("valid scalar")
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                black_box(f());
                t.elapsed()
            })
            .collect(),
    )
}

fn mine_easy(block: &mut Block) {
    block.header.merkle_root = block.compute_merkle_root();
    let target = gossipcoin_proto::Target::from_compact(block.header.bits).expect("bits");
    while !target.is_met_by(&block.block_hash()) {
        block.header.nonce += 1;
    }
}

/// A signed one-input, one-output transaction spending `coin` at `outpoint` with `key`.
fn spend(outpoint: OutPoint, coin: &TxOut, key: &PrivateKey, to: PubkeyHash) -> Transaction {
    let mut tx = Transaction {
        version: Transaction::VERSION,
        inputs: vec![TxIn {
            prevout: outpoint,
            signature: Signature::ZERO,
            pubkey: key.public_key(),
        }],
        outputs: vec![TxOut {
            value: coin.value,
            owner: to,
        }],
    };
    let c = tx.sighash_commitment();
    tx.inputs[0].signature = key.sign(&Transaction::sighash(&c, 0, coin));
    tx
}

fn validation() {
    const N: u32 = 2_000;
    let params = easy_params();
    let height = 10;
    let keys: Vec<PrivateKey> = (0..N).map(key).collect();
    let mut utxos = HashMap::new();
    let mut txs = vec![Transaction::coinbase(
        height,
        keys[0].pubkey_hash(),
        params.subsidy(height),
    )];
    for (i, k) in keys.iter().enumerate() {
        let outpoint = OutPoint {
            txid: gossipcoin_proto::Txid(sha256d(&(i as u32).to_le_bytes())),
            vout: 0,
        };
        let output = TxOut {
            value: Amount::from_coins(1).unwrap(),
            owner: k.pubkey_hash(),
        };
        utxos.insert(
            outpoint,
            Coin {
                output,
                height: 1,
                is_coinbase: false,
            },
        );
        txs.push(spend(
            outpoint,
            &output,
            k,
            keys[(i + 1) % keys.len()].pubkey_hash(),
        ));
    }
    let mut block = Block {
        header: BlockHeader {
            version: 1,
            prev: BlockHash([1; 32]),
            merkle_root: Default::default(),
            time: 1_700_000_000,
            bits: params.pow_bits,
            nonce: 0,
        },
        txs,
    };
    mine_easy(&mut block);
    let checks: Vec<([u8; 32], Signature, gossipcoin_proto::PublicKey)> = block.txs[1..]
        .iter()
        .map(|tx| {
            let coin = utxos[&tx.inputs[0].prevout].output;
            (
                Transaction::sighash(&tx.sighash_commitment(), 0, &coin),
                tx.inputs[0].signature,
                tx.inputs[0].pubkey,
            )
        })
        .collect();

    let runs = 7;
    let verify_only = time(runs, || {
        checks
            .par_iter()
            .all(|(m, s, p)| keys::verify(m, s, p).is_ok())
    });
    let parsed: Vec<_> = checks
        .iter()
        .map(|(m, s, p)| {
            (
                *m,
                k256::ecdsa::Signature::from_slice(&s.0).unwrap(),
                keys::parse_public_key(p).unwrap(),
            )
        })
        .collect();
    let verify_parsed = time(runs, || {
        use k256::ecdsa::signature::hazmat::PrehashVerifier;
        parsed
            .par_iter()
            .all(|(m, s, k)| k.verify_prehash(m, s).is_ok())
    });
    let validate = time(runs, || {
        consensus::check_block(&block, &params).expect("valid block");
        consensus::check_block_spends(&block, height, &utxos, &params).expect("valid spends")
    });
    let rate = |d: Duration| f64::from(N) / d.as_secs_f64();
    println!("1. block validation, {N} one-input txs, signatures on all cores");
    println!(
        "   check_block + check_block_spends : {:>9.0} tx/s  ({:.1} ms/block)",
        rate(validate),
        ms(validate)
    );
    println!(
        "   k256 verify incl. key parsing    : {:>9.0} tx/s",
        rate(verify_only)
    );
    println!(
        "   k256 verify, keys pre-parsed     : {:>9.0} tx/s",
        rate(verify_parsed)
    );
    println!(
        "   validation / verify              : {:>8.0} %   (target >= 80 %)",
        100.0 * rate(validate) / rate(verify_only)
    );
    println!(
        "   validation / verify pre-parsed   : {:>8.0} %\n",
        100.0 * rate(validate) / rate(verify_parsed)
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mining() {
    let header = BlockHeader {
        version: 1,
        prev: BlockHash([3; 32]),
        merkle_root: Default::default(),
        time: 1_700_000_000,
        bits: 0x1e0fffff,
        nonce: 0,
    };
    let n: u32 = 4_000_000;
    let bare = time(3, || {
        let mut h = header;
        let mut acc = 0u8;
        for nonce in 0..n {
            h.nonce = nonce;
            acc ^= sha256d(&h.to_bytes())[0];
        }
        acc
    });
    let one = time(3, || miner::hash_rate_probe(&header, n, 1));
    let two = time(3, || miner::hash_rate_probe(&header, n, 2));
    let rate = |d: Duration| f64::from(n) / d.as_secs_f64() / 1e6;
    println!("2. mining, {n} header hashes");
    println!(
        "   bare sha256d(80-byte header) loop : {:>6.2} MH/s",
        rate(bare)
    );
    println!(
        "   miner, 1 thread (midstate)        : {:>6.2} MH/s  = {:.0} % of bare (target >= 90 %)",
        rate(one),
        100.0 * rate(one) / rate(bare)
    );
    println!(
        "   miner, 2 threads                  : {:>6.2} MH/s  = {:.2}x one thread (target >= 1.8x)\n",
        rate(two),
        rate(two) / rate(one)
    );
}

/// A store whose main chain holds `blocks` blocks, each with a coinbase of `outputs` outputs
/// paying the keys `0..outputs` in turn. Only the store is used (no consensus): it is fixture
/// data for read speed.
fn store_with_utxos(dir: &std::path::Path, blocks: u32, outputs: u32) -> Store {
    let store = Store::create(dir).expect("create store");
    store.set_bulk_mode(true).expect("bulk mode");
    let owners: Vec<PubkeyHash> = (0..outputs)
        .map(|i| PubkeyHash(gossipcoin_proto::hash160(&i.to_le_bytes())))
        .collect();
    let mut prev = BlockHash::ZERO;
    let work = easy_params().target().work();
    let mut chain_work = gossipcoin_proto::U256::ZERO;
    for height in 0..blocks {
        let mut cb = Transaction::coinbase(height, owners[0], Amount::from_units(1).unwrap());
        cb.outputs = owners
            .iter()
            .map(|o| TxOut {
                value: Amount::from_units(1000).unwrap(),
                owner: *o,
            })
            .collect();
        let mut block = Block {
            header: BlockHeader {
                version: 1,
                prev,
                merkle_root: Default::default(),
                time: 1_700_000_000 + height,
                bits: 0x207fffff,
                nonce: 0,
            },
            txs: vec![cb],
        };
        block.header.merkle_root = block.compute_merkle_root();
        chain_work = chain_work.saturating_add(work);
        let entry = IndexEntry {
            header: block.header,
            height,
            chain_work,
        };
        store
            .write(|w| -> Result<(), gossipcoin::store::StoreError> {
                w.put_block(&block, entry)?;
                w.connect_block(&block, height, &[])
            })
            .expect("connect fixture block");
        prev = block.block_hash();
    }
    store.set_bulk_mode(false).expect("bulk mode off");
    store.sync().expect("sync");
    store
}

fn getbalance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Instant::now();
    let store = store_with_utxos(&dir.path().join("chain"), 100, 1_000);
    let setup = t.elapsed();
    let count = store.read().unwrap().utxo_count().unwrap();
    let owners: Vec<PubkeyHash> = (0..1_000u32)
        .map(|i| PubkeyHash(gossipcoin_proto::hash160(&i.to_le_bytes())))
        .collect();
    let calls = 1_000;
    let total = time(3, || {
        for o in owners.iter().take(calls) {
            // A fresh read snapshot per call, as the CLI does.
            black_box(store.read().unwrap().balance(o).unwrap());
        }
    });
    println!(
        "3. getbalance: {count} UTXOs over 1000 addresses (fixture built in {:.1} s)",
        setup.as_secs_f64()
    );
    println!(
        "   per call, new snapshot + prefix scan of 100 entries: {:.3} ms  (target < 5 ms)\n",
        ms(total) / calls as f64
    );
}

fn connect() {
    const SPENDS: u32 = 2_000;
    const OWNERS: u32 = 1_000;
    const BLOCKS: u32 = 500; // × 1,000 coinbase outputs = 500,000 UTXOs
    let params = easy_params();
    let keys: Vec<PrivateKey> = (0..OWNERS).map(key).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("chain");
    let t = Instant::now();
    // A valid chain: each coinbase splits the 10-coin subsidy over 1,000 keys.
    let share = Amount::from_units(params.block_subsidy.units() / u64::from(OWNERS)).unwrap();
    let coinbase = |height: u32| {
        let mut cb = Transaction::coinbase(height, keys[0].pubkey_hash(), share);
        cb.outputs = keys
            .iter()
            .map(|k| TxOut {
                value: share,
                owner: k.pubkey_hash(),
            })
            .collect();
        cb
    };
    let mut genesis = Block {
        header: BlockHeader {
            version: 1,
            prev: BlockHash::ZERO,
            merkle_root: Default::default(),
            time: 1_600_000_000,
            bits: params.pow_bits,
            nonce: 0,
        },
        txs: vec![coinbase(0)],
    };
    mine_easy(&mut genesis);
    let chain = Chain::create(&path, params.clone(), &genesis).expect("create chain");
    chain.store().set_bulk_mode(true).expect("bulk");
    let mut blocks = vec![genesis];
    for height in 1..BLOCKS {
        let prev = blocks.last().unwrap();
        let mut b = Block {
            header: BlockHeader {
                version: 1,
                prev: prev.block_hash(),
                merkle_root: Default::default(),
                time: prev.header.time + 1,
                bits: params.pow_bits,
                nonce: 0,
            },
            txs: vec![coinbase(height)],
        };
        mine_easy(&mut b);
        chain
            .accept_block(&b, u32::MAX, gossipcoin::chain::Origin::Requested)
            .expect("fixture block");
        blocks.push(b);
    }
    chain.store().set_bulk_mode(false).expect("bulk off");
    chain.store().sync().expect("sync");
    let utxos = chain.store().read().unwrap().utxo_count().unwrap();
    println!(
        "4. accept a block of {SPENDS} txs on a store of {utxos} UTXOs (fixture built in {:.1} s)",
        t.elapsed().as_secs_f64()
    );

    // Several measured blocks, each spending 2,000 different coinbase outputs (fsync on commit).
    let mut full = Vec::new();
    for round in 0..5u32 {
        let tip = blocks.last().unwrap().clone();
        let height = BLOCKS + round;
        let mut txs = vec![Transaction::coinbase(
            height,
            keys[0].pubkey_hash(),
            params.subsidy(height),
        )];
        for s in 0..SPENDS {
            let source = &blocks[(round * SPENDS + s) as usize / OWNERS as usize];
            let vout = s % OWNERS;
            let cb = &source.txs[0];
            let op = OutPoint {
                txid: cb.compute_txid(),
                vout,
            };
            txs.push(spend(
                op,
                &cb.outputs[vout as usize],
                &keys[vout as usize],
                keys[0].pubkey_hash(),
            ));
        }
        let mut b = Block {
            header: BlockHeader {
                version: 1,
                prev: tip.block_hash(),
                merkle_root: Default::default(),
                time: tip.header.time + 1,
                bits: params.pow_bits,
                nonce: 0,
            },
            txs,
        };
        mine_easy(&mut b);
        let t = Instant::now();
        chain
            .accept_block(&b, u32::MAX, gossipcoin::chain::Origin::Requested)
            .expect("measured block");
        full.push(t.elapsed());
        blocks.push(b);
    }
    println!(
        "   accept_block (all checks + signatures + one fsynced LMDB txn): median {:.0} ms/block, runs {:?}",
        ms(median(full.clone())),
        full.iter()
            .map(|d| ms(*d).round() as u64)
            .collect::<Vec<_>>()
    );
    chain
        .store()
        .check_consistency()
        .expect("consistent after the benchmark");
}

fn batch() {
    const BLOCKS: u32 = 500;
    const TXS: usize = 50;
    let params = easy_params();
    let keys: Vec<PrivateKey> = (0..TXS as u32).map(key).collect();
    let t = Instant::now();
    // Genesis pays one coin share to each key; in block h, transaction j spends the output of
    // transaction j of block h - 1 (of genesis' coinbase for h = 1), so every block spends
    // coins its predecessor created: in a batch, coins of the same write transaction.
    let share = Amount::from_units(params.block_subsidy.units() / TXS as u64).unwrap();
    let mut cb = Transaction::coinbase(0, keys[0].pubkey_hash(), share);
    cb.outputs = keys
        .iter()
        .map(|k| TxOut {
            value: share,
            owner: k.pubkey_hash(),
        })
        .collect();
    let mut genesis = Block {
        header: BlockHeader {
            version: 1,
            prev: BlockHash::ZERO,
            merkle_root: Default::default(),
            time: 1_600_000_000,
            bits: params.pow_bits,
            nonce: 0,
        },
        txs: vec![cb],
    };
    mine_easy(&mut genesis);
    // chains[j][h - 1]: transaction j of block h, signed in parallel over j.
    let chains: Vec<Vec<Transaction>> = (0..TXS)
        .into_par_iter()
        .map(|j| {
            let mut prev = (
                OutPoint {
                    txid: genesis.txs[0].compute_txid(),
                    vout: j as u32,
                },
                genesis.txs[0].outputs[j],
            );
            (1..=BLOCKS)
                .map(|_| {
                    let tx = spend(prev.0, &prev.1, &keys[j], keys[j].pubkey_hash());
                    prev = (
                        OutPoint {
                            txid: tx.compute_txid(),
                            vout: 0,
                        },
                        tx.outputs[0],
                    );
                    tx
                })
                .collect()
        })
        .collect();
    let mut blocks: Vec<Block> = Vec::with_capacity(BLOCKS as usize);
    for height in 1..=BLOCKS {
        let prev = blocks.last().unwrap_or(&genesis);
        let mut txs = vec![Transaction::coinbase(
            height,
            keys[0].pubkey_hash(),
            params.subsidy(height),
        )];
        txs.extend(chains.iter().map(|c| c[height as usize - 1].clone()));
        let mut b = Block {
            header: BlockHeader {
                version: 1,
                prev: prev.block_hash(),
                merkle_root: Default::default(),
                time: prev.header.time + 1,
                bits: params.pow_bits,
                nonce: 0,
            },
            txs,
        };
        mine_easy(&mut b);
        blocks.push(b);
    }
    // The same signatures, for bare verification: every input spends an output of `share`
    // owned by its signer.
    let coin = |tx: &Transaction| TxOut {
        value: share,
        owner: PubkeyHash::of_pubkey(&tx.inputs[0].pubkey),
    };
    let checks: Vec<([u8; 32], Signature, gossipcoin_proto::PublicKey)> = blocks
        .iter()
        .flat_map(|b| &b.txs[1..])
        .map(|tx| {
            (
                Transaction::sighash(&tx.sighash_commitment(), 0, &coin(tx)),
                tx.inputs[0].signature,
                tx.inputs[0].pubkey,
            )
        })
        .collect();
    let n = checks.len() as f64;
    println!(
        "5. initial sync: {BLOCKS} blocks of {TXS} txs, each spending the block before (fixture built in {:.1} s)",
        t.elapsed().as_secs_f64()
    );

    let fresh = |name: &str| {
        let dir = tempfile::tempdir().expect("tempdir");
        let chain =
            Chain::create(&dir.path().join(name), params.clone(), &genesis).expect("create");
        (dir, chain)
    };
    let finish = |chain: &Chain| {
        assert_eq!(
            chain.tip().unwrap().hash,
            blocks.last().unwrap().block_hash()
        );
        chain.store().check_consistency().expect("consistent");
    };
    let (_d1, one) = fresh("one");
    let t = Instant::now();
    for b in &blocks {
        one.accept_block(b, u32::MAX, gossipcoin::chain::Origin::Requested)
            .expect("valid block");
    }
    let one_by_one = t.elapsed();
    finish(&one);

    let batched = |per_call: usize| {
        let (_dir, chain) = fresh("batch");
        let t = Instant::now();
        for part in blocks.chunks(per_call) {
            let accepted = chain.accept_batch(part, u32::MAX).expect("store");
            assert!(accepted.stopped.is_none(), "{:?}", accepted.stopped);
        }
        let took = t.elapsed();
        finish(&chain);
        took
    };
    let whole = batched(blocks.len());
    let windows = batched(16);

    let verify = time(3, || {
        checks
            .par_iter()
            .all(|(m, s, p)| keys::verify(m, s, p).is_ok())
    });
    let rate = |d: Duration| n / d.as_secs_f64();
    println!(
        "   accept_block, one fsynced write per block : {:>8.0} tx/s  ({:.2} s)",
        rate(one_by_one),
        one_by_one.as_secs_f64()
    );
    println!(
        "   accept_batch, all {BLOCKS} blocks in one call  : {:>8.0} tx/s  ({:.2} s) = {:.1}x",
        rate(whole),
        whole.as_secs_f64(),
        one_by_one.as_secs_f64() / whole.as_secs_f64()
    );
    println!(
        "   accept_batch, 16 blocks per call         : {:>8.0} tx/s  ({:.2} s) = {:.1}x",
        rate(windows),
        windows.as_secs_f64(),
        one_by_one.as_secs_f64() / windows.as_secs_f64()
    );
    println!(
        "   bare k256 verify, all cores              : {:>8.0} tx/s  (accept_batch = {:.0} % of it)\n",
        rate(verify),
        100.0 * rate(whole) / rate(verify)
    );
}
