//! gossipcoin-proto: everything that is hashed or crosses the network.
//!
//! - [`hash`]: `BlockHash`, `Txid`, `MerkleRoot`, `PubkeyHash`, SHA-256d, HASH160
//! - [`amount`]: `Amount`, `COIN`, `MAX_MONEY`, checked sums, coin strings
//! - [`tx`]: `OutPoint`, `TxIn`, `TxOut`, `Transaction`, `Coin`, the signature hash
//! - [`block`]: the 80-byte `BlockHeader`, `Block`, the merkle root
//! - [`pow`]: compact targets and cumulative work
//! - [`address`]: Base58Check addresses
//! - [`encode`]: the canonical encoding and its limits
//! - [`message`]: gossip topics, the sync request/response messages and their limits
//!
//! Byte layouts are specified in `PROTOCOL.md` beside this crate. This crate does no I/O and
//! knows nothing of storage, networking or async runtimes.

pub mod address;
pub mod amount;
pub mod block;
mod bytes;
pub mod encode;
pub mod hash;
pub mod message;
pub mod pow;
pub mod tx;

pub use address::{Address, AddressError};
pub use amount::{Amount, AmountError, COIN, MAX_MONEY};
pub use block::{Block, BlockHeader, merkle_root};
pub use encode::{DecodeError, MAX_BLOCK_BYTES, MAX_TX_BYTES};
pub use hash::{BlockHash, MerkleRoot, PubkeyHash, Txid, hash160, sha256d};
pub use pow::{CompactError, Target, U256};
pub use tx::{Coin, OutPoint, PublicKey, Signature, Transaction, TxIn, TxOut};
