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
//! | `tx_index`    | txid (32)                             | block hash (32) ‖ position, u32 BE |
//! | `block_status`| block hash (32)                       | [`BlockStatus`], one byte          |
//!
//! Big-endian integer keys sort numerically, so `height_hash` iterates in height order and a
//! balance is one prefix scan of `addr_utxo`. Every table is raw bytes to heed; values are
//! decoded here, and bytes that do not decode are a [`StoreError::Corrupt`] naming the table and
//! key.
//!
//! `tx_index` lists every main-chain transaction (coinbases included: a coinbase commits to its
//! height, so its txid is unique) with the block holding it and its position in the block; like
//! `height_hash` and `undo` it changes only when a block is connected or disconnected.
//!
//! `block_status` holds the validation state of every `block_index` entry (and nothing else):
//! an entry whose status has data (`DataStored`, `FullyValid`) has its block in `blocks`, the
//! others (`HeaderValid`, `Failed`, `DescendantOfFailed`) do not.
//!
//! Schema versions: 1 had no `tx_index`; 2 added it; 3 added `block_status`. Opening an older
//! store writable builds what it lacks in one write transaction (`migrate.rs`); opened
//! read-only, it works without (`Tables::tx_index` / `Tables::block_status` are `None`, and
//! statuses are derived from the index: main chain `FullyValid`, else `DataStored`).
//!
//! [`IndexEntry`]: super::IndexEntry
//! [`BlockStatus`]: super::BlockStatus

use gossipcoin_proto::encode::{self, MAX_BLOCK_BYTES};
use gossipcoin_proto::{Amount, Block, BlockHash, Coin, OutPoint, PubkeyHash, Txid};
use heed::types::Bytes;
use heed::{CommitOrAbort, Env, RoTxn, WithoutTls};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::{LmdbResultExt, StoreError};
use super::view::BlockStatus;

/// The on-disk layout version this code reads and writes.
pub(crate) const SCHEMA_VERSION: u32 = 3;
/// The first layout, without `tx_index` nor `block_status`: still opened (read-only as is,
/// writable after building both).
pub(crate) const SCHEMA_WITHOUT_TX_INDEX: u32 = 1;
/// The layout without `block_status`: still opened (read-only as is, writable after building
/// it).
pub(crate) const SCHEMA_WITHOUT_STATUS: u32 = 2;

/// `meta` keys.
pub(crate) const META_SCHEMA: &[u8] = b"schema_version";
pub(crate) const META_TIP: &[u8] = b"tip";
pub(crate) const META_GENESIS: &[u8] = b"genesis";

/// Length of an `addr_utxo` key: pubkey hash ‖ outpoint key.
pub(crate) const ADDR_KEY_LEN: usize = PubkeyHash::LEN + OutPoint::KEY_LEN;

/// Length of a `tx_index` value: block hash ‖ position (u32 BE).
pub(crate) const TX_LOCATION_LEN: usize = BlockHash::LEN + 4;

/// The name of the table added by schema 2.
pub(crate) const TX_INDEX: &str = "tx_index";
/// The name of the table added by schema 3.
pub(crate) const BLOCK_STATUS: &str = "block_status";

/// A database of raw bytes; this module does the encoding.
pub(crate) type Db = heed::Database<'static, Bytes, Bytes>;

/// The tables of schema 1 (every current table but `tx_index` and `block_status`).
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
    /// `None` only in a schema-1 store opened read-only, which has no transaction index.
    pub tx_index: Option<Db>,
    /// `None` only in a schema-1 or 2 store opened read-only, which has no status table.
    pub block_status: Option<Db>,
}

impl Tables {
    fn from_array(dbs: [Db; 7], tx_index: Option<Db>, block_status: Option<Db>) -> Self {
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
            tx_index,
            block_status,
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
                let tx_index = opener.create_database::<Bytes, Bytes>(wtxn, Some(TX_INDEX))?;
                let status = opener.create_database::<Bytes, Bytes>(wtxn, Some(BLOCK_STATUS))?;
                dbs[0].put(wtxn, META_SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
                Ok(CommitOrAbort::<_, ()>::Commit((dbs, tx_index, status)))
            })
            .lmdb()?
            .unwrap_commit();
        Ok(Self::from_array(dbs.0, Some(dbs.1), Some(dbs.2)))
    }

    /// Opens the existing databases with a read transaction (works on a read-only env) and
    /// checks the schema version; returns the tables and that version. A schema-1 store comes
    /// back without `tx_index` and `block_status`, a schema-2 store without `block_status`
    /// (even if tables of those names exist): the caller builds them when the store is
    /// writable. Any version but 1, 2 and [`SCHEMA_VERSION`] is refused.
    ///
    /// The tables and the version are read in one transaction: a writer upgrading the store at
    /// the same moment is seen entirely or not at all.
    pub(crate) fn open(env: &Env<WithoutTls>) -> Result<(Self, u32), StoreError> {
        let rtxn = env.read_txn().lmdb()?;
        let mut version_bytes: Option<Vec<u8>> = None;
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
                let tx_index = opener.open_database::<Bytes, Bytes>(rtxn, Some(TX_INDEX))?;
                let status = opener.open_database::<Bytes, Bytes>(rtxn, Some(BLOCK_STATUS))?;
                version_bytes = dbs[0].get(rtxn, META_SCHEMA)?.map(<[u8]>::to_vec);
                Ok(CommitOrAbort::Commit((dbs, tx_index, status)))
            })
            .lmdb()?;
        let (dbs, tx_index, status) = match opened {
            CommitOrAbort::Commit(dbs) => dbs,
            CommitOrAbort::Abort(_) if env.unnamed_database_stat().entries == 0 => {
                return Err(StoreError::Incomplete {
                    path: env.path().to_path_buf(),
                });
            }
            CommitOrAbort::Abort(missing) => {
                return Err(StoreError::Corrupt(format!(
                    "table {missing} is missing: not a complete gossipcoin chain store"
                )));
            }
        };
        let version = match version_bytes.as_deref().map(<[u8; 4]>::try_from) {
            Some(Ok(v)) => u32::from_be_bytes(v),
            _ => return Err(corrupt("meta", META_SCHEMA, "no valid schema version")),
        };
        let missing = |table: &str| {
            StoreError::Corrupt(format!(
                "table {table} is missing: not a complete gossipcoin chain store"
            ))
        };
        match version {
            SCHEMA_VERSION | SCHEMA_WITHOUT_STATUS if tx_index.is_none() => Err(missing(TX_INDEX)),
            SCHEMA_VERSION if status.is_none() => Err(missing(BLOCK_STATUS)),
            SCHEMA_VERSION => Ok((Self::from_array(dbs, tx_index, status), version)),
            SCHEMA_WITHOUT_STATUS => Ok((Self::from_array(dbs, tx_index, None), version)),
            SCHEMA_WITHOUT_TX_INDEX => Ok((Self::from_array(dbs, None, None), version)),
            found => Err(StoreError::SchemaMismatch {
                found,
                expected: SCHEMA_VERSION,
            }),
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

/// The `tx_index` value of the transaction at `position` in block `block`.
pub(crate) fn tx_location_value(block: &BlockHash, position: u32) -> [u8; TX_LOCATION_LEN] {
    let mut v = [0u8; TX_LOCATION_LEN];
    v[..BlockHash::LEN].copy_from_slice(&block.0);
    v[BlockHash::LEN..].copy_from_slice(&position.to_be_bytes());
    v
}

/// The block hash and position in a `tx_index` value stored under `key`.
pub(crate) fn decode_tx_location(bytes: &[u8], key: &[u8]) -> Result<(BlockHash, u32), StoreError> {
    let bad = || corrupt(TX_INDEX, key, "value is not block hash ‖ 4-byte position");
    if bytes.len() != TX_LOCATION_LEN {
        return Err(bad());
    }
    let block = BlockHash::from_slice(&bytes[..BlockHash::LEN]).ok_or_else(bad)?;
    let position = <[u8; 4]>::try_from(&bytes[BlockHash::LEN..]).map_err(|_| bad())?;
    Ok((block, u32::from_be_bytes(position)))
}

/// The txid in a `tx_index` key.
pub(crate) fn decode_txid(key: &[u8]) -> Result<Txid, StoreError> {
    Txid::from_slice(key).ok_or_else(|| corrupt(TX_INDEX, key, "key is not a 32-byte txid"))
}

/// The txid of each transaction of `block` with its position: what `tx_index` lists for the
/// block. Computes every txid.
pub(crate) fn block_txids(block: &Block) -> Result<Vec<(Txid, u32)>, StoreError> {
    block
        .txs
        .iter()
        .enumerate()
        .map(|(position, tx)| {
            let position = u32::try_from(position).map_err(|_| {
                let hash = block.block_hash();
                StoreError::Corrupt(format!("block {hash} has over 2^32 transactions"))
            })?;
            Ok((tx.compute_txid(), position))
        })
        .collect()
}

/// The `block_status` value of a status.
pub(crate) fn status_value(status: BlockStatus) -> [u8; 1] {
    [match status {
        BlockStatus::HeaderValid => 1,
        BlockStatus::DataStored => 2,
        BlockStatus::FullyValid => 3,
        BlockStatus::Failed => 4,
        BlockStatus::DescendantOfFailed => 5,
    }]
}

/// The status stored in `block_status` under `key`.
pub(crate) fn decode_status(bytes: &[u8], key: &[u8]) -> Result<BlockStatus, StoreError> {
    match bytes {
        [1] => Ok(BlockStatus::HeaderValid),
        [2] => Ok(BlockStatus::DataStored),
        [3] => Ok(BlockStatus::FullyValid),
        [4] => Ok(BlockStatus::Failed),
        [5] => Ok(BlockStatus::DescendantOfFailed),
        _ => Err(corrupt(
            BLOCK_STATUS,
            key,
            "not a block status byte (1 to 5)",
        )),
    }
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
