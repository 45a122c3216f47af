//! Upgrading an older store when it is opened writable.
//!
//! - Schema 1 → 2 adds `tx_index`, filled from the main chain (every transaction of every block
//!   from genesis to the tip).
//! - Schema 2 → 3 adds `block_status`, with a status for every indexed block: main-chain blocks
//!   `FullyValid`, other stored blocks `DataStored` (and an entry without data, which older
//!   code never wrote, `HeaderValid`).
//!
//! A schema-1 store gets both. One write transaction creates what is missing, fills it and
//! writes schema version 3: it commits whole or not at all, so a crash halfway leaves the store
//! at its old version, and the next writable open starts over. A read-only open leaves an old
//! store as it is.
//!
//! It runs at open, before the [`Store`](super::Store) exists, so no other transaction of this
//! process can be alive and the map may be resized freely (doubled on `MapFull`, adopted on
//! `MapResized`). Another process may upgrade the store first: the schema version is read again
//! inside the write transaction, and a store that is no longer at version 1 or 2 is left alone.

use gossipcoin_proto::{Block, BlockHash};
use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, PutFlags, RwTxn, WithoutTls};

use super::error::{StoreError, from_heed, is_map_full, is_map_resized};
use super::tables::{
    BLOCK_STATUS, META_SCHEMA, SCHEMA_VERSION, SCHEMA_WITHOUT_STATUS, SCHEMA_WITHOUT_TX_INDEX,
    TX_INDEX, Tables, block_txids, corrupt, decode_hash, decode_value, height_key, status_value,
    tx_location_value,
};
use super::view::{BlockStatus, IndexEntry};

/// Attempts given up after (each doubles the map or adopts another process's size).
const MAX_ATTEMPTS: u32 = 8;

/// Why one attempt stopped.
enum Failure {
    MapFull,
    MapResized,
    Store(StoreError),
}

impl From<heed::Error> for Failure {
    fn from(e: heed::Error) -> Self {
        if is_map_full(&e) {
            Failure::MapFull
        } else if is_map_resized(&e) {
            Failure::MapResized
        } else {
            Failure::Store(from_heed(e))
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

/// What one committed upgrade built.
struct Upgraded {
    /// Transactions indexed, if the store was at schema 1.
    txs: Option<u64>,
    /// Statuses recorded: main-chain blocks, other stored blocks, entries without data.
    fully_valid: u64,
    data_stored: u64,
    header_valid: u64,
}

/// Upgrades a schema-1 or 2 store (opened writable as `tables`) to the current schema and
/// returns its tables, reopened.
pub(crate) fn upgrade(env: &Env<WithoutTls>, tables: Tables) -> Result<Tables, StoreError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let failure = match upgrade_once(env, tables) {
            Ok(Some(done)) => {
                if let Some(txs) = done.txs {
                    tracing::info!(
                        target: "store",
                        txs,
                        "built the transaction index (schema 1 → 2)"
                    );
                }
                tracing::info!(
                    target: "store",
                    fully_valid = done.fully_valid,
                    data_stored = done.data_stored,
                    header_valid = done.header_valid,
                    "recorded block statuses (schema 2 → 3)"
                );
                break;
            }
            Ok(None) => break, // another process upgraded it meanwhile
            Err(Failure::Store(e)) => return Err(e),
            Err(_) if attempts >= MAX_ATTEMPTS => {
                return Err(StoreError::MapGrowth(format!(
                    "upgrading the store's schema failed {attempts} times for lack of map space"
                )));
            }
            Err(failure) => failure,
        };
        let size = env.info().map_size;
        let new_size = match failure {
            Failure::MapFull => size
                .checked_mul(2)
                .ok_or_else(|| StoreError::MapGrowth(format!("cannot double {size} bytes")))?,
            _ => 0, // adopt the size another process grew the file to
        };
        // SAFETY: the store is being opened: `env` has no transaction alive in this process
        // (the failed attempt's transaction was dropped), and no other clone of it exists yet.
        unsafe { env.resize(new_size) }.map_err(from_heed)?;
    }
    match Tables::open(env)? {
        (tables, SCHEMA_VERSION) => Ok(tables),
        (_, found) => Err(StoreError::SchemaMismatch {
            found,
            expected: SCHEMA_VERSION,
        }),
    }
}

/// One attempt, in one write transaction: what it built once committed, `None` if the store is
/// no longer at schema 1 or 2.
fn upgrade_once(env: &Env<WithoutTls>, t: Tables) -> Result<Option<Upgraded>, Failure> {
    let wtxn = env.write_txn()?;
    let mut done = None;
    let outcome = env.create_databases_and_commit(wtxn, |opener, wtxn| -> Result<_, Failure> {
        let version = t
            .meta
            .get(wtxn, META_SCHEMA)?
            .and_then(|v| <[u8; 4]>::try_from(v).ok())
            .map(u32::from_be_bytes);
        let from_1 = match version {
            Some(SCHEMA_WITHOUT_TX_INDEX) => true,
            Some(SCHEMA_WITHOUT_STATUS) => false,
            _ => return Ok(CommitOrAbort::Abort(())),
        };
        // Opens the table if it exists (schema 2), creates it otherwise.
        let tx_index = opener.create_database::<Bytes, Bytes>(wtxn, Some(TX_INDEX))?;
        let txs = if from_1 {
            tx_index.clear(wtxn)?;
            Some(fill_tx_index(wtxn, t, &tx_index)?)
        } else {
            None
        };
        let status = opener.create_database::<Bytes, Bytes>(wtxn, Some(BLOCK_STATUS))?;
        status.clear(wtxn)?;
        let mut upgraded = fill_status(wtxn, t, &status)?;
        upgraded.txs = txs;
        done = Some(upgraded);
        t.meta
            .put(wtxn, META_SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
        Ok(CommitOrAbort::Commit((tx_index, status)))
    })?;
    Ok(match outcome {
        CommitOrAbort::Commit(_) => done,
        CommitOrAbort::Abort(()) => None,
    })
}

/// Gives every indexed block a status: main chain `FullyValid`, other stored blocks
/// `DataStored`, entries without data `HeaderValid`.
fn fill_status(
    wtxn: &mut RwTxn<'_>,
    t: Tables,
    status: &Database<'_, Bytes, Bytes>,
) -> Result<Upgraded, Failure> {
    let mut statuses = Vec::new();
    for item in t.block_index.iter(wtxn)? {
        let (key, value) = item?;
        let hash = decode_hash(key, "block_index", key)?;
        let entry: IndexEntry = decode_value(value, "block_index", key)?;
        let on_main_chain = t.height_hash.get(wtxn, &height_key(entry.height))? == Some(key);
        let s = if on_main_chain {
            BlockStatus::FullyValid
        } else if t.blocks.get(wtxn, key)?.is_some() {
            BlockStatus::DataStored
        } else {
            BlockStatus::HeaderValid
        };
        statuses.push((hash, s));
    }
    let mut done = Upgraded {
        txs: None,
        fully_valid: 0,
        data_stored: 0,
        header_valid: 0,
    };
    for (hash, s) in statuses {
        match s {
            BlockStatus::FullyValid => done.fully_valid += 1,
            BlockStatus::DataStored => done.data_stored += 1,
            _ => done.header_valid += 1,
        }
        status.put(wtxn, &hash.0, &status_value(s))?;
    }
    Ok(done)
}

/// Indexes every transaction of the main chain into `tx_index`; returns how many.
fn fill_tx_index(
    wtxn: &mut RwTxn<'_>,
    t: Tables,
    tx_index: &Database<'_, Bytes, Bytes>,
) -> Result<u64, Failure> {
    let mut main_chain = Vec::new();
    for item in t.height_hash.iter(wtxn)? {
        let (key, value) = item?;
        main_chain.push(decode_hash(value, "height_hash", key)?);
    }
    let mut indexed = 0;
    for hash in main_chain {
        let bytes = t
            .blocks
            .get(wtxn, &hash.0)?
            .ok_or_else(|| not_stored(&hash))?;
        let block: Block = decode_value(bytes, "blocks", &hash.0)?;
        for (txid, position) in block_txids(&block)? {
            let value = tx_location_value(&hash, position);
            match tx_index.put_with_flags(wtxn, PutFlags::NO_OVERWRITE, &txid.0, &value) {
                Err(heed::Error::Mdb(heed::MdbError::KeyExist)) => {
                    return Err(corrupt(TX_INDEX, &txid.0, "on the main chain twice").into());
                }
                r => r?,
            }
            indexed += 1;
        }
    }
    Ok(indexed)
}

fn not_stored(hash: &BlockHash) -> StoreError {
    StoreError::Corrupt(format!(
        "main-chain block {hash} is not stored: cannot build the transaction index"
    ))
}

/// Test hook: turns the closed store in `dir` into a store of schema `version` (1 or 2), as
/// written before the tables added since existed: drops `block_status` (and `tx_index` for
/// version 1), writes the version, then compacts the file (so it has no free pages left over
/// from the dropped tables).
#[cfg(test)]
pub(crate) fn downgrade(dir: &std::path::Path, version: u32) -> Result<(), StoreError> {
    use super::error::LmdbResultExt;

    let dropped: &[&str] = match version {
        SCHEMA_WITHOUT_TX_INDEX => &[BLOCK_STATUS, TX_INDEX],
        SCHEMA_WITHOUT_STATUS => &[BLOCK_STATUS],
        other => panic!("cannot downgrade to schema {other}"),
    };
    let env = super::open_env(dir, 1 << 30, false)?;
    let wtxn = env.write_txn().lmdb()?;
    env.create_databases_and_commit(wtxn, |opener, wtxn| -> heed::Result<_> {
        let meta = opener.create_database::<Bytes, Bytes>(wtxn, Some("meta"))?;
        for &name in dropped {
            let db = opener.create_database::<Bytes, Bytes>(wtxn, Some(name))?;
            // SAFETY: this env was opened just now; no other handle to the table exists and no
            // other transaction changed it.
            unsafe { db.remove(wtxn)? };
        }
        meta.put(wtxn, META_SCHEMA, &version.to_be_bytes())?;
        Ok(CommitOrAbort::<_, ()>::Commit(meta))
    })
    .lmdb()?;
    let compacted = dir.join("compacted.mdb");
    env.copy_to_path(&compacted, heed::CompactionOption::Enabled)
        .lmdb()?;
    drop(env);
    std::fs::rename(&compacted, dir.join(super::DATA_FILE))
        .map_err(|e| StoreError::io("cannot replace data.mdb", e))
}
