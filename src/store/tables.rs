//! The LMDB databases of the chain store and how their keys and values are laid out.
//!
//! | table         | key                                   | value                              |
//! |---------------|---------------------------------------|------------------------------------|
//! | `meta`        | `schema_version`, `tip`, `genesis`    | u32 BE, block hash, block hash     |
//! | `block_index` | block hash (32)                       | [`IndexEntry`], postcard           |
//! | `blocks`      | block hash (32)                       | the block's canonical encoding     |
//! | `height_hash` | height, u32 big-endian (4)            | block hash (32), main chain only   |
//! | `utxo`        | [`OutPoint::to_key`] (36)             | [`Coin`], postcard                 |
//! | `addr_utxo`   | owner pubkey hash (20) ‖ outpoint key | amount in base units, u64 BE (8)   |
//! | `undo`        | block hash (32)                       | `Vec<Coin>` spent by the block     |
//!
//! Big-endian integer keys sort numerically, so `height_hash` iterates in height order and a
//! balance is one prefix scan of `addr_utxo`. Every table is raw bytes to heed; values are
//! decoded here, and bytes that do not decode are a [`StoreError::Corrupt`] naming the table and
//! key.
//!
//! [`IndexEntry`]: super::IndexEntry

use gossipcoin_proto::encode::{self, MAX_BLOCK_BYTES};
use gossipcoin_proto::{Amount, BlockHash, Coin, OutPoint, PubkeyHash};
use heed::types::Bytes;
use heed::{CommitOrAbort, Env, RoTxn, WithoutTls};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{LmdbResultExt, StoreError};

/// The on-disk layout version this code reads and writes.
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// `meta` keys.
pub(crate) const META_SCHEMA: &[u8] = b"schema_version";
pub(crate) const META_TIP: &[u8] = b"tip";
pub(crate) const META_GENESIS: &[u8] = b"genesis";

/// Length of an `addr_utxo` key: pubkey hash ‖ outpoint key.
pub(crate) const ADDR_KEY_LEN: usize = PubkeyHash::LEN + OutPoint::KEY_LEN;

/// A database of raw bytes; this module does the encoding.
pub(crate) type Db = heed::Database<'static, Bytes, Bytes>;

const NAMES: [&str; 7] = [
    "meta",
    "block_index",
    "blocks",
    "height_hash",
    "utxo",
    "addr_utxo",
    "undo",
];

/// Handles to every database of the environment (`Copy`, valid for the env's lifetime).
#[derive(Clone, Copy)]
pub(crate) struct Tables {
    pub meta: Db,
    pub block_index: Db,
    pub blocks: Db,
    pub height_hash: Db,
    pub utxo: Db,
    pub addr_utxo: Db,
    pub undo: Db,
}

impl Tables {
    fn from_array(dbs: [Db; 7]) -> Self {
        let [
            meta,
            block_index,
            blocks,
            height_hash,
            utxo,
            addr_utxo,
            undo,
        ] = dbs;
        Self {
            meta,
            block_index,
            blocks,
            height_hash,
            utxo,
            addr_utxo,
            undo,
        }
    }

    /// Creates every database and writes the schema version, in one committed transaction.
    pub(crate) fn create(env: &Env<WithoutTls>) -> Result<Self, StoreError> {
        let wtxn = env.write_txn().lmdb()?;
        let dbs = env
            .create_databases_and_commit(wtxn, |opener, wtxn| -> heed::Result<_> {
                let mut dbs = Vec::with_capacity(NAMES.len());
                for name in NAMES {
                    dbs.push(opener.create_database::<Bytes, Bytes>(wtxn, Some(name))?);
                }
                let dbs: [_; 7] = dbs.try_into().expect("one handle per name");
                dbs[0].put(wtxn, META_SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
                Ok(CommitOrAbort::<_, ()>::Commit(dbs))
            })
            .lmdb()?
            .unwrap_commit();
        Ok(Self::from_array(dbs))
    }

    /// Opens the existing databases with a read transaction (works on a read-only env) and
    /// checks the schema version.
    pub(crate) fn open(env: &Env<WithoutTls>) -> Result<Self, StoreError> {
        let rtxn = env.read_txn().lmdb()?;
        let opened = env
            .open_databases_and_commit(rtxn, |opener, rtxn| -> heed::Result<_> {
                let mut dbs = Vec::with_capacity(NAMES.len());
                for name in NAMES {
                    match opener.open_database::<Bytes, Bytes>(rtxn, Some(name))? {
                        Some(db) => dbs.push(db),
                        None => return Ok(CommitOrAbort::Abort(name)),
                    }
                }
                let dbs: [_; 7] = dbs.try_into().expect("one handle per name");
                Ok(CommitOrAbort::Commit(dbs))
            })
            .lmdb()?;
        let tables = match opened {
            CommitOrAbort::Commit(dbs) => Self::from_array(dbs),
            CommitOrAbort::Abort(missing) => {
                return Err(StoreError::Corrupt(format!(
                    "table {missing} is missing: not a complete gossipcoin chain store"
                )));
            }
        };
        let rtxn = env.read_txn().lmdb()?;
        match get(tables.meta, &rtxn, META_SCHEMA)?.map(<[u8; 4]>::try_from) {
            Some(Ok(v)) if u32::from_be_bytes(v) == SCHEMA_VERSION => Ok(tables),
            Some(Ok(v)) => Err(StoreError::SchemaMismatch {
                found: u32::from_be_bytes(v),
                expected: SCHEMA_VERSION,
            }),
            _ => Err(corrupt("meta", META_SCHEMA, "no valid schema version")),
        }
    }
}

/// Encodes a value canonically.
pub(crate) fn encode_value<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    encode::to_bytes(value)
}

/// Decodes a value read from `table` at `key`; failure is corruption, reported with both.
pub(crate) fn decode_value<T: Serialize + DeserializeOwned>(
    bytes: &[u8],
    table: &str,
    key: &[u8],
) -> Result<T, StoreError> {
    encode::from_bytes(bytes, MAX_BLOCK_BYTES).map_err(|e| corrupt(table, key, e))
}

/// A [`StoreError::Corrupt`] naming the table and key.
pub(crate) fn corrupt(table: &str, key: &[u8], what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{table}[{}]: {what}", hex::encode(key)))
}

/// A stored 32-byte block hash.
pub(crate) fn decode_hash(bytes: &[u8], table: &str, key: &[u8]) -> Result<BlockHash, StoreError> {
    BlockHash::from_slice(bytes).ok_or_else(|| corrupt(table, key, "not a 32-byte block hash"))
}

/// A stored big-endian amount of base units.
pub(crate) fn decode_amount(bytes: &[u8], table: &str, key: &[u8]) -> Result<Amount, StoreError> {
    let units = <[u8; 8]>::try_from(bytes)
        .map(u64::from_be_bytes)
        .map_err(|_| corrupt(table, key, "not an 8-byte amount"))?;
    Amount::from_units(units).ok_or_else(|| corrupt(table, key, "amount above MAX_MONEY"))
}

/// The `height_hash` key of a height.
pub(crate) fn height_key(height: u32) -> [u8; 4] {
    height.to_be_bytes()
}

/// The height in a `height_hash` key.
pub(crate) fn decode_height(key: &[u8]) -> Result<u32, StoreError> {
    <[u8; 4]>::try_from(key)
        .map(u32::from_be_bytes)
        .map_err(|_| corrupt("height_hash", key, "key is not a 4-byte height"))
}

/// The `addr_utxo` key of a coin: owner ‖ outpoint.
pub(crate) fn addr_key(owner: &PubkeyHash, outpoint: &OutPoint) -> [u8; ADDR_KEY_LEN] {
    let mut k = [0u8; ADDR_KEY_LEN];
    k[..PubkeyHash::LEN].copy_from_slice(&owner.0);
    k[PubkeyHash::LEN..].copy_from_slice(&outpoint.to_key());
    k
}

/// The owner and outpoint in an `addr_utxo` key.
pub(crate) fn decode_addr_key(key: &[u8]) -> Result<(PubkeyHash, OutPoint), StoreError> {
    let bad = || corrupt("addr_utxo", key, "key is not pubkey hash ‖ outpoint");
    if key.len() != ADDR_KEY_LEN {
        return Err(bad());
    }
    let owner = PubkeyHash::from_slice(&key[..PubkeyHash::LEN]).ok_or_else(bad)?;
    let outpoint = OutPoint::from_key(&key[PubkeyHash::LEN..]).ok_or_else(bad)?;
    Ok((owner, outpoint))
}

/// The outpoint in a `utxo` key.
pub(crate) fn decode_outpoint(key: &[u8]) -> Result<OutPoint, StoreError> {
    OutPoint::from_key(key).ok_or_else(|| corrupt("utxo", key, "key is not a 36-byte outpoint"))
}

/// The coin stored under a `utxo` key.
pub(crate) fn decode_coin(bytes: &[u8], key: &[u8]) -> Result<Coin, StoreError> {
    decode_value(bytes, "utxo", key)
}

/// Reads raw bytes from `db` (an LMDB error becomes a [`StoreError`]).
pub(crate) fn get<'t>(
    db: Db,
    txn: &'t RoTxn<'_>,
    key: &[u8],
) -> Result<Option<&'t [u8]>, StoreError> {
    db.get(txn, key).lmdb()
}
