//! `wallet.history`: the wallet's history ([`Ledger`]) as last saved, so a restarted node goes on
//! from the block it had followed instead of reading the whole chain again.
//!
//! The file is derived data: the chain can always rebuild it (`rescanwallet`). It is written
//! atomically (temp file, fsync, rename; [`crate::atomic_file`]) and read bounded
//! ([`MAX_FILE_BYTES`]). Format: magic `GCHISTRY`, a format byte ([`FORMAT_VERSION`]), the
//! postcard encoding of [`Saved`], and the first 4 bytes of SHA-256d of everything before. A file
//! that fails a check, was written for other keys, or is missing means a rescan from genesis.

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

use gossipcoin_proto::encode::{from_bytes, to_bytes};
use gossipcoin_proto::{BlockHash, PubkeyHash, sha256d};
use serde::{Deserialize, Serialize};

use super::WalletError;
use super::ledger::{Entry, Ledger};

/// The file's name in the data directory.
pub const HISTORY_FILE: &str = "wallet.history";
/// The format version this program writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Bytes the file may have; a larger one is refused before it is read (about a million
/// transactions).
pub const MAX_FILE_BYTES: u64 = 512 * 1024 * 1024;

const MAGIC: &[u8; 8] = b"GCHISTRY";
const CHECKSUM_LEN: usize = 4;

/// What the file holds.
#[derive(Serialize, Deserialize)]
pub struct Saved {
    /// The keys the history was built for, sorted.
    pub keys: Vec<PubkeyHash>,
    /// The last main-chain block followed.
    pub tip: Option<(BlockHash, u32)>,
    /// Every entry, oldest first.
    pub entries: Vec<Entry>,
}

/// Why a saved history is not used.
#[derive(Debug, PartialEq, Eq)]
pub enum NotUsed {
    Missing,
    /// Damaged or of another format: the reason.
    Invalid(String),
    /// Built for another set of keys (keys were added by hand, or another wallet copied in).
    OtherKeys,
}

/// The file's bytes for `ledger`.
pub fn encode(ledger: &Ledger) -> Vec<u8> {
    let mut keys: Vec<PubkeyHash> = ledger.keys().iter().copied().collect();
    keys.sort_unstable();
    let saved = Saved {
        keys,
        tip: ledger.tip(),
        entries: ledger.entries().cloned().collect(),
    };
    let mut out = MAGIC.to_vec();
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&to_bytes(&saved));
    let check = sha256d(&out);
    out.extend_from_slice(&check[..CHECKSUM_LEN]);
    out
}

/// Writes `bytes` (from [`encode`]) as `<dir>/wallet.history`, atomically.
pub fn save(dir: &Path, bytes: &[u8]) -> Result<(), WalletError> {
    super::file::write_atomically(&dir.join(HISTORY_FILE), bytes)
}

/// Reads `<dir>/wallet.history` for `keys`.
pub fn load(dir: &Path, keys: &HashSet<PubkeyHash>) -> Result<Ledger, NotUsed> {
    let path = dir.join(HISTORY_FILE);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(NotUsed::Missing),
        Err(e) => return Err(NotUsed::Invalid(format!("cannot open: {e}"))),
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| NotUsed::Invalid(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(NotUsed::Invalid(format!(
            "larger than the limit of {MAX_FILE_BYTES} bytes"
        )));
    }
    let saved = decode(&bytes).map_err(NotUsed::Invalid)?;
    let mut mine: Vec<PubkeyHash> = keys.iter().copied().collect();
    mine.sort_unstable();
    if saved.keys != mine {
        return Err(NotUsed::OtherKeys);
    }
    Ok(Ledger::restore(keys.clone(), saved.tip, saved.entries))
}

fn decode(bytes: &[u8]) -> Result<Saved, String> {
    if bytes.len() < MAGIC.len() + 1 + CHECKSUM_LEN || !bytes.starts_with(MAGIC) {
        return Err("not a wallet history file".into());
    }
    let (body, check) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
    if sha256d(body)[..CHECKSUM_LEN] != *check {
        return Err("checksum mismatch".into());
    }
    if body[MAGIC.len()] != FORMAT_VERSION {
        return Err(format!("format version {}", body[MAGIC.len()]));
    }
    let saved: Saved = from_bytes(&body[MAGIC.len() + 1..], bytes.len())
        .map_err(|e| format!("bad contents: {e}"))?;
    // Every entry's txid must be its transaction's.
    if let Some(e) = saved.entries.iter().find(|e| e.tx.compute_txid() != e.txid) {
        return Err(format!("entry {} does not match its transaction", e.txid));
    }
    Ok(saved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::testutil::{coins, key};
    use crate::wallet::ledger::Place;
    use gossipcoin_proto::Transaction;

    #[test]
    fn round_trip_and_every_bad_file_means_a_rescan() {
        let dir = tempfile::tempdir().unwrap();
        let keys: HashSet<PubkeyHash> = [key(1).pubkey_hash()].into();
        assert_eq!(load(dir.path(), &keys).unwrap_err(), NotUsed::Missing);
        let tx = Transaction::coinbase(1, key(1).pubkey_hash(), coins(10));
        let entry = Entry {
            txid: tx.compute_txid(),
            tx,
            fee: None,
            place: Place::Confirmed {
                block: BlockHash([7; 32]),
                height: 1,
                index: 0,
                time: 5,
            },
            first_seen: 5,
        };
        let ledger = Ledger::restore(keys.clone(), Some((BlockHash([7; 32]), 1)), vec![entry]);
        let bytes = encode(&ledger);
        save(dir.path(), &bytes).unwrap();
        let back = load(dir.path(), &keys).unwrap();
        assert_eq!(back.tip(), ledger.tip());
        assert_eq!(
            back.entries().collect::<Vec<_>>(),
            ledger.entries().collect::<Vec<_>>()
        );
        // Another key set: not used.
        let more: HashSet<PubkeyHash> = [key(1).pubkey_hash(), key(2).pubkey_hash()].into();
        assert_eq!(load(dir.path(), &more).unwrap_err(), NotUsed::OtherKeys);
        // Damaged, truncated, foreign: not used, with a reason.
        let mut flipped = bytes.clone();
        flipped[20] ^= 1;
        for bad in [
            flipped,
            bytes[..bytes.len() - 3].to_vec(),
            b"hello".to_vec(),
        ] {
            std::fs::write(dir.path().join(HISTORY_FILE), &bad).unwrap();
            assert!(matches!(
                load(dir.path(), &keys).unwrap_err(),
                NotUsed::Invalid(_)
            ));
        }
        // Oversized: refused before it is read.
        let f = std::fs::File::create(dir.path().join(HISTORY_FILE)).unwrap();
        f.set_len(MAX_FILE_BYTES + 1).unwrap();
        assert!(matches!(
            load(dir.path(), &keys).unwrap_err(),
            NotUsed::Invalid(r) if r.contains("limit")
        ));
    }
}
