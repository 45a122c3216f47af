//! `printchain`: every block from the tip down to genesis, with its transactions.

use std::path::Path;

use anyhow::{Result, anyhow};
use gossipcoin_proto::{Address, Block, Target};

use super::open_read_only;
use crate::params::ChainParams;
use crate::store::ChainRead;

pub(super) fn print_chain(dir: &Path, params: &ChainParams) -> Result<()> {
    let store = open_read_only(dir)?;
    let view = store.read()?;
    let tip = view.tip()?.ok_or_else(|| anyhow!("the store has no tip"))?;
    for height in (0..=tip.height).rev() {
        let hash = view
            .hash_at(height)?
            .ok_or_else(|| anyhow!("no block at height {height}"))?;
        let block = view
            .block(&hash)?
            .ok_or_else(|| anyhow!("block {hash} is missing"))?;
        print_block(height, &block, params);
    }
    Ok(())
}

fn print_block(height: u32, block: &Block, params: &ChainParams) {
    let h = &block.header;
    let pow = Target::from_compact(h.bits).is_ok_and(|t| t.is_met_by(&block.block_hash()));
    println!("============ Block {} ============", block.block_hash());
    println!("Height: {height}");
    println!("Prev. block: {}", h.prev);
    println!("Merkle root: {}", h.merkle_root);
    println!("Time: {} ({})", format_utc(h.time), h.time);
    println!("Target (bits): {:#010x}", h.bits);
    // Relative to the chain parameters' proof-of-work limit (`--params`).
    println!(
        "Difficulty: {:.3}",
        crate::consensus::difficulty(params, h.bits)
    );
    println!("Nonce: {}", h.nonce);
    println!("PoW: {pow}");
    for tx in &block.txs {
        println!("--- Transaction {}:", tx.compute_txid());
        for (i, input) in tx.inputs.iter().enumerate() {
            println!("     Input {i}:");
            if tx.is_coinbase() {
                println!("       Coinbase (height {})", input.prevout.vout);
            } else {
                println!("       TXID:      {}", input.prevout.txid);
                println!("       Out:       {}", input.prevout.vout);
                println!("       Signature: {}", hex::encode(input.signature.0));
                println!("       PubKey:    {}", hex::encode(input.pubkey.0));
                println!(
                    "       Address:   {}",
                    Address(gossipcoin_proto::PubkeyHash::of_pubkey(&input.pubkey))
                );
            }
        }
        for (i, output) in tx.outputs.iter().enumerate() {
            println!("     Output {i}:");
            println!("       Value:   {}", output.value);
            println!("       Address: {}", Address(output.owner));
        }
    }
    println!();
}

/// `YYYY-MM-DD HH:MM:SS UTC` from Unix seconds (proleptic Gregorian calendar).
fn format_utc(secs: u32) -> String {
    let (days, rem) = (i64::from(secs) / 86_400, i64::from(secs) % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00 UTC");
    }
}
