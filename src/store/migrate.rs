//! Upgrading an older store when it is opened writable.
//!
//! Schema 1 → 2 adds `tx_index`: one write transaction creates the table, fills it from the
//! main chain (every transaction of every block from genesis to the tip) and writes schema
//! version 2. It commits whole or not at all: a crash halfway leaves a schema-1 store, and the
//! next writable open starts over. A read-only open leaves a schema-1 store as it is.
//!
//! It runs at open, before the [`Store`](super::Store) exists, so no other transaction of this
//! process can be alive and the map may be resized freely (doubled on `MapFull`, adopted on
//! `MapResized`). Another process may upgrade the store first: the schema version is read again
//! inside the write transaction, and a store that is no longer at version 1 is left alone.

use gossipcoin_proto::{Block, BlockHash};
use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, PutFlags, RwTxn, WithoutTls};

use super::error::{StoreError, from_heed, is_map_full, is_map_resized};
use super::tables::{
    META_SCHEMA, SCHEMA_VERSION, SCHEMA_WITHOUT_TX_INDEX, TX_INDEX, Tables, block_txids, corrupt,
    decode_hash, decode_value, tx_location_value,
};

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

/// Upgrades a schema-1 store (opened writable as `tables`) to the current schema and returns
/// its tables, reopened.
pub(crate) fn upgrade(env: &Env<WithoutTls>, tables: Tables) -> Result<Tables, StoreError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let failure = match build_tx_index(env, tables) {
            Ok(Some(txs)) => {
                tracing::info!(
                    target: "store",
                    txs,
                    "built the transaction index (schema 1 → 2)"
                );
                break;
            }
            Ok(None) => break, // another process upgraded it meanwhile
            Err(Failure::Store(e)) => return Err(e),
            Err(_) if attempts >= MAX_ATTEMPTS => {
                return Err(StoreError::MapGrowth(format!(
                    "building the transaction index failed {attempts} times for lack of map space"
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

/// One attempt, in one write transaction: `Some(transactions indexed)` once committed, `None`
/// if the store is no longer at schema 1.
fn build_tx_index(env: &Env<WithoutTls>, t: Tables) -> Result<Option<u64>, Failure> {
    let wtxn = env.write_txn()?;
    let mut indexed = 0;
    let outcome = env.create_databases_and_commit(wtxn, |opener, wtxn| -> Result<_, Failure> {
        let version = t
            .meta
            .get(wtxn, META_SCHEMA)?
            .and_then(|v| <[u8; 4]>::try_from(v).ok())
            .map(u32::from_be_bytes);
        if version != Some(SCHEMA_WITHOUT_TX_INDEX) {
            return Ok(CommitOrAbort::Abort(()));
        }
        let tx_index = opener.create_database::<Bytes, Bytes>(wtxn, Some(TX_INDEX))?;
        tx_index.clear(wtxn)?;
        indexed = fill(wtxn, t, &tx_index)?;
        t.meta
            .put(wtxn, META_SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
        Ok(CommitOrAbort::Commit(tx_index))
    })?;
    Ok(match outcome {
        CommitOrAbort::Commit(_) => Some(indexed),
        CommitOrAbort::Abort(()) => None,
    })
}

/// Indexes every transaction of the main chain into `tx_index`; returns how many.
fn fill(
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

/// Test hook: turns the closed store in `dir` into a schema-1 store, as written before the
/// transaction index existed: drops `tx_index`, writes version 1, then compacts the file (so it
/// has no free pages left over from the dropped table).
#[cfg(test)]
pub(crate) fn downgrade_to_schema_1(dir: &std::path::Path) -> Result<(), StoreError> {
    use super::error::LmdbResultExt;

    let env = super::open_env(dir, 1 << 30, false)?;
    let wtxn = env.write_txn().lmdb()?;
    env.create_databases_and_commit(wtxn, |opener, wtxn| -> heed::Result<_> {
        let meta = opener.create_database::<Bytes, Bytes>(wtxn, Some("meta"))?;
        let tx_index = opener.create_database::<Bytes, Bytes>(wtxn, Some(TX_INDEX))?;
        // SAFETY: this env was opened just now; no other handle to `tx_index` exists and no
        // other transaction changed it.
        unsafe { tx_index.remove(wtxn)? };
        meta.put(wtxn, META_SCHEMA, &SCHEMA_WITHOUT_TX_INDEX.to_be_bytes())?;
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
