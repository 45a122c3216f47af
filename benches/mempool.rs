//! Block templates with a full mempool (issue 21): a pool filled to its 50 MB memory cap by a
//! flood of small minimum-fee payments, plus one honest payment at twice the minimum, then
//!
//! 1. `select_for_block` (the miner's template, by ancestor fee rate) — ceiling 50 ms;
//! 2. `estimate_fee` for the next block over that pool — ceiling 50 ms;
//!
//! and where the honest payment lands in the template (it must be first).
//!
//! Run with `cargo bench --bench mempool` (filling the pool signs and verifies ~80,000
//! transactions: a minute or so on 2 cores). Plain `main`: the median of several runs.

use std::hint::black_box;
use std::time::{Duration, Instant};

use gossipcoin::keys::PrivateKey;
use gossipcoin::mempool::{Mempool, MempoolLimits};
use gossipcoin::params::ChainParams;
use gossipcoin::wallet::build_payment;
use gossipcoin_proto::{Amount, Coin, OutPoint, Transaction, TxOut, Txid};
use rayon::prelude::*;

const CEILING: Duration = Duration::from_millis(50);
const POOL_BYTES: usize = 50_000_000;

fn main() {
    let params = ChainParams::devnet();
    let key = PrivateKey::from_bytes(&[7; 32]).expect("a valid key");
    let owner = key.pubkey_hash();
    let coin_of = |_: &OutPoint| {
        Some(Coin {
            output: TxOut {
                value: Amount::from_units(100_000_000).unwrap(),
                owner,
            },
            height: 1,
            is_coinbase: false,
        })
    };
    let outpoint = |n: u32| OutPoint {
        txid: Txid([(n % 251) as u8 + 1; 32]),
        vout: n,
    };
    let to = PrivateKey::from_bytes(&[8; 32]).unwrap().pubkey_hash();
    let pay = |n: u32, fee: u64| -> Transaction {
        let op = outpoint(n);
        let coin = coin_of(&op).unwrap();
        build_payment(
            &key,
            &[(op, coin)],
            to,
            Amount::from_units(50_000_000).unwrap(),
            Amount::from_units(fee).unwrap(),
        )
        .expect("a payment")
    };
    let probe = pay(0, 0);
    let size = probe.encoded_len() as u64;
    let count = 100_000u32;
    println!("signing {count} payments of {size} bytes at the minimum fee rate ...");
    let began = Instant::now();
    let flood: Vec<Transaction> = (1..=count)
        .into_par_iter()
        .map(|n| pay(n, size + 10))
        .collect();
    println!("  signed in {:.1} s", began.elapsed().as_secs_f64());
    let mut pool = Mempool::new(MempoolLimits::core(POOL_BYTES));
    pool.tick(1_800_000_000);
    let began = Instant::now();
    let mut refused = 0;
    for tx in flood {
        if let Err(e) = pool.insert(tx, &coin_of, 2, &params) {
            if refused == 0 {
                println!("  first refusal: {e}");
            }
            refused += 1;
        }
    }
    let honest = pay(count + 1, 2 * (size + 10));
    let honest_id = honest.compute_txid();
    pool.insert(honest, &coin_of, 2, &params)
        .expect("the honest payment gets in");
    println!(
        "  pool: {} txs, {} encoded bytes, {} bytes of memory (cap {POOL_BYTES}), {refused} refused or evicted, min fee rate {}; filled in {:.1} s",
        pool.len(),
        pool.bytes(),
        pool.memory(),
        pool.min_fee_rate(),
        began.elapsed().as_secs_f64()
    );
    let budget = params.max_block_size - 1000;
    let template = median(|| {
        black_box(pool.select_for_block(budget));
    });
    let (txs, _) = pool.select_for_block(budget);
    println!(
        "1. template of {} txs from a full pool: {:.2} ms (ceiling {} ms) {}; the honest payment is at position {:?}",
        txs.len(),
        template.as_secs_f64() * 1000.0,
        CEILING.as_millis(),
        verdict(template),
        txs.iter().position(|t| t.compute_txid() == honest_id)
    );
    let estimate = median(|| {
        black_box(pool.estimate_fee(1, budget));
    });
    println!(
        "2. estimate_fee(1) over a full pool: {:.2} ms (ceiling {} ms) {}; it says {}",
        estimate.as_secs_f64() * 1000.0,
        CEILING.as_millis(),
        verdict(estimate),
        pool.estimate_fee(1, budget).fee_rate
    );
}

fn median(mut f: impl FnMut()) -> Duration {
    let mut runs: Vec<Duration> = (0..7)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    runs.sort();
    runs[runs.len() / 2]
}

fn verdict(d: Duration) -> &'static str {
    if d < CEILING { "ok" } else { "OVER" }
}
