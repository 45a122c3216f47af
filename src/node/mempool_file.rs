//! `<data-dir>/mempool.dat`: the mempool kept across restarts (Bitcoin Core's `mempool.dat`).
//!
//! Format (all of it, in order; integers little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `GCMEMPOL` |
//! | 1 | format version ([`FORMAT_VERSION`]) |
//! | 4 | count of transactions, u32 |
//! | count × (4 + n) | each transaction: its length n (u32), then its canonical encoding |
//! | 4 | the first 4 bytes of SHA-256d of everything before |
//!
//! Reading is bounded before anything is read: the file may not exceed what a full mempool
//! needs ([`Bounds::for_mempool`]: `max_bytes` plus 4 bytes per transaction it could hold plus
//! the header), the count may not exceed the transactions such a mempool could hold, and every
//! length is checked against [`MAX_TX_BYTES`] and the bytes left before it is used.
//!
//! [`keep`] is the node's task: at start it loads the file and offers every transaction to the
//! mempool again through the chain actor (parents before children), so what is no longer valid
//! (confirmed, conflicted, spending a coin that is gone) is dropped with a count in the log; an
//! unreadable file is reported, renamed to `mempool.dat.corrupt`, and the node starts with an
//! empty mempool. Then it writes the mempool atomically every `mempool.save_interval_secs` when
//! it changed, and once more when the node stops.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use gossipcoin_proto::encode::{self, DecodeError};
use gossipcoin_proto::{MAX_TX_BYTES, Transaction, Txid, sha256d};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::ChainHandle;
use crate::config::MempoolConfig;

/// The file's name in the data directory.
pub const FILE_NAME: &str = "mempool.dat";
/// What an unreadable file is renamed to (replacing an older one).
pub const CORRUPT_FILE_NAME: &str = "mempool.dat.corrupt";
/// The first bytes of every mempool file.
pub const MAGIC: &[u8; 8] = b"GCMEMPOL";
/// The format this code writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// No transaction the mempool accepts is smaller than this (an input alone is larger), so a
/// mempool of `max_bytes` holds at most `max_bytes / MIN_TX_BYTES` of them.
const MIN_TX_BYTES: usize = 64;
const HEADER_BYTES: usize = MAGIC.len() + 1 + 4;
const CHECKSUM_BYTES: usize = 4;

/// The most a mempool file may hold, derived from the mempool's own bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub max_file_bytes: u64,
    pub max_txs: u32,
}

impl Bounds {
    /// What a file written from a mempool of at most `max_bytes` can need.
    pub fn for_mempool(max_bytes: usize) -> Self {
        let max_txs = u32::try_from(max_bytes / MIN_TX_BYTES + 1).unwrap_or(u32::MAX);
        let framing = max_txs as u64 * 4 + (HEADER_BYTES + CHECKSUM_BYTES) as u64;
        Self {
            max_file_bytes: max_bytes as u64 + framing,
            max_txs,
        }
    }
}

/// Why a mempool file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MempoolFileError {
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
    #[error("it is {size} bytes, more than the {limit} a full mempool needs")]
    TooLarge { size: u64, limit: u64 },
    #[error("it is not a mempool file (wrong magic bytes)")]
    BadMagic,
    #[error("it has format version {found}; this gossipcoin reads version {supported}")]
    UnsupportedVersion { found: u8, supported: u8 },
    #[error("it claims {count} transactions, more than the {limit} a full mempool holds")]
    TooManyTxs { count: u32, limit: u32 },
    #[error("it is truncated (ends inside {what})")]
    Truncated { what: &'static str },
    #[error("transaction {index} claims {len} bytes, more than the limit of {MAX_TX_BYTES}")]
    TxTooLarge { index: u32, len: usize },
    #[error("{0} bytes follow the checksum")]
    TrailingBytes(usize),
    #[error("its checksum does not match its contents")]
    BadChecksum,
    #[error("transaction {index} does not decode: {source}")]
    BadTx {
        index: u32,
        #[source]
        source: DecodeError,
    },
}

/// The file's bytes for `txs`.
pub fn encode<'a>(txs: impl IntoIterator<Item = &'a Transaction>) -> Vec<u8> {
    let mut out = Vec::from(&MAGIC[..]);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&[0; 4]); // the count, filled in below
    let mut count: u32 = 0;
    for tx in txs {
        let bytes = encode::to_bytes(tx);
        // A transaction is at most MAX_TX_BYTES, so its length fits a u32.
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&bytes);
        count += 1;
    }
    out[MAGIC.len() + 1..HEADER_BYTES].copy_from_slice(&count.to_le_bytes());
    let checksum = sha256d(&out);
    out.extend_from_slice(&checksum[..CHECKSUM_BYTES]);
    out
}

/// The transactions in a file's bytes, in file order; every field is checked against `bounds`
/// before it is used.
pub fn decode(bytes: &[u8], bounds: Bounds) -> Result<Vec<Transaction>, MempoolFileError> {
    if bytes.len() as u64 > bounds.max_file_bytes {
        return Err(MempoolFileError::TooLarge {
            size: bytes.len() as u64,
            limit: bounds.max_file_bytes,
        });
    }
    let mut rest = bytes;
    if take(&mut rest, MAGIC.len(), "the magic bytes")? != MAGIC {
        return Err(MempoolFileError::BadMagic);
    }
    let version = take(&mut rest, 1, "the version")?[0];
    if version != FORMAT_VERSION {
        return Err(MempoolFileError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let count = take_u32(&mut rest, "the count")?;
    if count > bounds.max_txs {
        return Err(MempoolFileError::TooManyTxs {
            count,
            limit: bounds.max_txs,
        });
    }
    // Each entry needs at least its 4-byte length: a count the bytes cannot hold is a
    // truncation, found before anything is allocated for it.
    if (count as usize).saturating_mul(4) > rest.len() {
        return Err(MempoolFileError::Truncated {
            what: "the transactions",
        });
    }
    let mut encoded = Vec::with_capacity(count as usize);
    for index in 0..count {
        let len = take_u32(&mut rest, "a transaction's length")? as usize;
        if len > MAX_TX_BYTES {
            return Err(MempoolFileError::TxTooLarge { index, len });
        }
        encoded.push((index, take(&mut rest, len, "a transaction")?));
    }
    let checksum = take(&mut rest, CHECKSUM_BYTES, "the checksum")?;
    if !rest.is_empty() {
        return Err(MempoolFileError::TrailingBytes(rest.len()));
    }
    let body = &bytes[..bytes.len() - CHECKSUM_BYTES];
    if sha256d(body)[..CHECKSUM_BYTES] != *checksum {
        return Err(MempoolFileError::BadChecksum);
    }
    encoded
        .into_iter()
        .map(|(index, tx)| {
            encode::from_bytes(tx, MAX_TX_BYTES)
                .map_err(|source| MempoolFileError::BadTx { index, source })
        })
        .collect()
}

fn take<'a>(
    rest: &mut &'a [u8],
    n: usize,
    what: &'static str,
) -> Result<&'a [u8], MempoolFileError> {
    if rest.len() < n {
        return Err(MempoolFileError::Truncated { what });
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

fn take_u32(rest: &mut &[u8], what: &'static str) -> Result<u32, MempoolFileError> {
    let b = take(rest, 4, what)?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Reads and decodes the file at `path`; `Ok(None)` if there is none. The size is checked
/// before the file is read, and no more than the bound is ever read.
pub fn read(path: &Path, bounds: Bounds) -> Result<Option<Vec<Transaction>>, MempoolFileError> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let size = file.metadata()?.len();
    if size > bounds.max_file_bytes {
        return Err(MempoolFileError::TooLarge {
            size,
            limit: bounds.max_file_bytes,
        });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    // One byte past the bound: a file that grew since its size was read is still refused.
    file.take(bounds.max_file_bytes + 1)
        .read_to_end(&mut bytes)?;
    decode(&bytes, bounds).map(Some)
}

/// Writes `txs` to `path` atomically (temp file, fsync, rename, fsync of the directory).
pub fn write<'a>(
    path: &Path,
    txs: impl IntoIterator<Item = &'a Transaction>,
) -> Result<(), crate::atomic_file::FileError> {
    crate::atomic_file::write(path, &encode(txs))
}

/// `txs` reordered so that every transaction comes after those of the set it spends (file
/// order otherwise kept), so each can be offered to the mempool once.
pub fn parents_first(txs: Vec<Transaction>) -> Vec<Transaction> {
    let txids: Vec<Txid> = txs.iter().map(Transaction::compute_txid).collect();
    let position: HashMap<Txid, usize> = txids.iter().enumerate().map(|(i, t)| (*t, i)).collect();
    // parents still to place, per transaction; children waiting, per transaction
    let mut waiting_for = vec![0usize; txs.len()];
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); txs.len()];
    for (i, tx) in txs.iter().enumerate() {
        let parents: HashSet<usize> = tx
            .inputs
            .iter()
            .filter_map(|input| position.get(&input.prevout.txid).copied())
            .filter(|&p| p != i)
            .collect();
        waiting_for[i] = parents.len();
        for p in parents {
            children[p].push(i);
        }
    }
    let mut order = Vec::with_capacity(txs.len());
    let mut ready: std::collections::BTreeSet<usize> =
        (0..txs.len()).filter(|&i| waiting_for[i] == 0).collect();
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &c in &children[i] {
            waiting_for[c] -= 1;
            if waiting_for[c] == 0 {
                ready.insert(c);
            }
        }
    }
    // A cycle cannot come from real transactions (txids commit to their inputs); whatever is
    // left goes last and will be refused.
    let placed: HashSet<usize> = order.iter().copied().collect();
    order.extend((0..txs.len()).filter(|i| !placed.contains(i)));
    let mut slots: Vec<Option<Transaction>> = txs.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// The node's task: loads `<data_dir>/mempool.dat` into the mempool, then saves the mempool
/// there every `config.save_interval_secs` when it changed, and once more when `stop` fires
/// (or its sender is dropped). If `stop` fires while the file is still being loaded, the file
/// is left as it was.
pub async fn keep(
    chain: ChainHandle,
    data_dir: PathBuf,
    config: MempoolConfig,
    mut stop: oneshot::Receiver<()>,
) {
    let path = data_dir.join(FILE_NAME);
    let bounds = Bounds::for_mempool(config.max_bytes);
    let mut state = chain.state();
    tokio::select! {
        () = load(&chain, &path, bounds) => {}
        _ = &mut stop => {
            info!(target: "mempool", path = %path.display(),
                  "stopped while loading the mempool file: it is kept as it was");
            return;
        }
    }
    state.borrow_and_update();
    let mut tick = tokio::time::interval(config.save_interval());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if state.has_changed().unwrap_or(false) {
                    state.borrow_and_update();
                    save(&chain, &path).await;
                }
            }
            _ = &mut stop => break,
        }
    }
    save(&chain, &path).await;
}

/// Loads the file (if any) and offers its transactions to the mempool, parents first.
async fn load(chain: &ChainHandle, path: &Path, bounds: Bounds) {
    remove_temp_files(path);
    let file = path.to_path_buf();
    let read =
        tokio::task::spawn_blocking(move || read(&file, bounds).map(|o| o.map(parents_first)))
            .await;
    let txs = match read {
        Ok(Ok(Some(txs))) => txs,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            set_aside(path, &e);
            return;
        }
        Err(e) => {
            warn!(target: "mempool", path = %path.display(), "reading the mempool file failed: {e}");
            return;
        }
    };
    let total = txs.len();
    let mut accepted = 0;
    for tx in txs {
        let txid = tx.compute_txid();
        match chain.submit_tx(tx, FILE_NAME.into()).await {
            Ok(Ok(_)) => accepted += 1,
            Ok(Err(e)) => debug!(target: "mempool", %txid, "not reloaded: {e}"),
            Err(_) => return, // the chain stopped: the node is stopping
        }
    }
    info!(target: "mempool", path = %path.display(), txs = accepted, dropped = total - accepted,
          "loaded mempool file");
}

/// Removes the temporary files of saves a kill interrupted (`.mempool.dat.<pid>.<n>.tmp`, see
/// [`crate::atomic_file::write`]); only this node writes them (it holds the data dir's lock).
fn remove_temp_files(path: &Path) {
    let Some(dir) = path.parent() else { return };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = format!(".{FILE_NAME}.");
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(&prefix) && name.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Reports an unreadable file and renames it out of the way.
fn set_aside(path: &Path, reason: &MempoolFileError) {
    let aside = path.with_file_name(CORRUPT_FILE_NAME);
    match std::fs::rename(path, &aside) {
        Ok(()) => {
            warn!(target: "mempool", path = %path.display(), %reason, moved_to = %aside.display(),
                        "mempool file unreadable: set aside, starting with an empty mempool")
        }
        Err(e) => warn!(target: "mempool", path = %path.display(), %reason,
                        "mempool file unreadable, and cannot be set aside ({e}): starting with an \
                         empty mempool"),
    }
}

/// Writes the mempool to `path`; a failure is logged (the next save tries again).
async fn save(chain: &ChainHandle, path: &Path) {
    let Ok(entries) = chain.mempool().await else {
        debug!(target: "mempool", "the chain stopped: mempool not saved");
        return;
    };
    let file = path.to_path_buf();
    let count = entries.len();
    let written =
        tokio::task::spawn_blocking(move || write(&file, entries.iter().map(|e| e.tx()))).await;
    match written {
        Ok(Ok(())) => info!(target: "mempool", txs = count, "saved mempool"),
        Ok(Err(e)) => warn!(target: "mempool", "cannot save the mempool: {e}"),
        Err(e) => warn!(target: "mempool", "saving the mempool failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::testutil::{coins, key, out_of, outpoint, pay, signed_tx};

    /// A chain of `n` transactions, each spending the one before (the first a made-up coin).
    fn chain_of(n: usize) -> Vec<Transaction> {
        let k = key(1);
        let mut prev = (outpoint(7, 0), pay(&k, coins(50)));
        (0..n)
            .map(|i| {
                let out = pay(&k, coins(49 - i as u64));
                let tx = signed_tx(&[(prev.0, prev.1, &k)], vec![out]);
                prev = (out_of(&tx, 0), out);
                tx
            })
            .collect()
    }

    fn bounds() -> Bounds {
        Bounds::for_mempool(1_000_000)
    }

    fn err(bytes: &[u8]) -> MempoolFileError {
        decode(bytes, bounds()).unwrap_err()
    }

    /// Rewrites the checksum after `bytes` was edited, so only the edit is wrong.
    fn reseal(mut bytes: Vec<u8>) -> Vec<u8> {
        let body = bytes.len() - CHECKSUM_BYTES;
        let sum = sha256d(&bytes[..body]);
        bytes[body..].copy_from_slice(&sum[..CHECKSUM_BYTES]);
        bytes
    }

    #[test]
    fn round_trip_keeps_every_transaction_in_order() {
        let txs = chain_of(5);
        let bytes = encode(&txs);
        assert_eq!(&bytes[..8], MAGIC);
        assert_eq!(decode(&bytes, bounds()).unwrap(), txs);
        assert_eq!(decode(&encode([]), bounds()).unwrap(), vec![]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        assert!(read(&path, bounds()).unwrap().is_none());
        write(&path, &txs).unwrap();
        assert_eq!(read(&path, bounds()).unwrap().unwrap(), txs);
    }

    #[test]
    fn every_corruption_is_named() {
        let good = encode(&chain_of(3));
        // truncated anywhere: a clear error, never a panic
        for len in 0..good.len() {
            let e = err(&good[..len]);
            assert!(
                matches!(
                    e,
                    MempoolFileError::Truncated { .. } | MempoolFileError::BadChecksum
                ),
                "{len}: {e}"
            );
        }
        assert!(matches!(
            err(&good[..5]),
            MempoolFileError::Truncated { .. }
        ));
        let mut bad = good.clone();
        bad[0] = b'X';
        assert!(matches!(err(&bad), MempoolFileError::BadMagic));
        let mut bad = good.clone();
        bad[8] = 2;
        let e = err(&bad);
        assert!(
            matches!(
                e,
                MempoolFileError::UnsupportedVersion {
                    found: 2,
                    supported: 1
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("version 2"), "{e}");
        let mut bad = good.clone();
        bad[20] ^= 1; // inside the first transaction
        assert!(matches!(err(&bad), MempoolFileError::BadChecksum));
        let mut bad = good.clone();
        bad.push(0);
        assert!(matches!(err(&bad), MempoolFileError::TrailingBytes(1)));
        // a length beyond any transaction, with a valid checksum
        let mut bad = good.clone();
        bad[HEADER_BYTES..HEADER_BYTES + 4]
            .copy_from_slice(&(MAX_TX_BYTES as u32 + 1).to_le_bytes());
        let e = err(&reseal(bad));
        assert!(
            matches!(e, MempoolFileError::TxTooLarge { index: 0, .. }),
            "{e}"
        );
        // bytes that are no transaction, with a valid checksum
        let mut bad = good.clone();
        let first = HEADER_BYTES + 4;
        bad[first] = 0xff; // the version varint never ends where it should
        let e = err(&reseal(bad));
        assert!(matches!(e, MempoolFileError::BadTx { index: 0, .. }), "{e}");
    }

    #[test]
    fn counts_and_sizes_are_bounded_before_anything_is_allocated_or_read() {
        let b = Bounds::for_mempool(1_000_000);
        assert_eq!(b.max_txs, 1_000_000 / MIN_TX_BYTES as u32 + 1);
        assert!(b.max_file_bytes > 1_000_000);
        // a count above the bound
        let mut bytes = encode([]);
        bytes[9..13].copy_from_slice(&(b.max_txs + 1).to_le_bytes());
        let e = decode(&reseal(bytes), b).unwrap_err();
        assert!(matches!(e, MempoolFileError::TooManyTxs { .. }), "{e}");
        // a count within the bound that the bytes cannot hold: no allocation for it
        let mut bytes = encode([]);
        bytes[9..13].copy_from_slice(&b.max_txs.to_le_bytes());
        let e = decode(&reseal(bytes), b).unwrap_err();
        assert!(matches!(e, MempoolFileError::Truncated { .. }), "{e}");
        // a file above the size bound is refused from its size alone
        let small = Bounds {
            max_file_bytes: 100,
            max_txs: 10,
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(1 << 40).unwrap(); // sparse: 1 TiB that was never written
        let e = read(&path, small).unwrap_err();
        assert!(
            matches!(e, MempoolFileError::TooLarge { size, limit: 100 } if size == 1 << 40),
            "{e}"
        );
        let e = decode(&[0; 101], small).unwrap_err();
        assert!(matches!(e, MempoolFileError::TooLarge { .. }), "{e}");
    }

    #[test]
    fn parents_come_before_children_and_unrelated_order_is_kept() {
        let chain = chain_of(4);
        let k = key(2);
        let lone = signed_tx(
            &[(outpoint(9, 0), pay(&k, coins(5)), &k)],
            vec![pay(&k, coins(4))],
        );
        // children first, the unrelated one in the middle
        let shuffled = vec![
            chain[3].clone(),
            chain[2].clone(),
            lone.clone(),
            chain[1].clone(),
            chain[0].clone(),
        ];
        let ordered = parents_first(shuffled);
        assert_eq!(
            ordered,
            vec![
                lone,
                chain[0].clone(),
                chain[1].clone(),
                chain[2].clone(),
                chain[3].clone()
            ]
        );
        // a duplicate does not lose anything
        let twice = vec![chain[1].clone(), chain[0].clone(), chain[0].clone()];
        assert_eq!(parents_first(twice).len(), 3);
    }
}
