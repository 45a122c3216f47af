//! Transactions: outpoints, inputs, outputs, coins and the signature hash.
//!
//! A transaction spends coins (earlier outputs, named by [`OutPoint`]) and creates new outputs,
//! each locked to a [`PubkeyHash`]. Each input carries a 64-byte compact low-S ECDSA signature
//! and the 33-byte compressed public key whose hash must equal the spent coin's owner.
//!
//! The coinbase is the first transaction of a block: one input whose outpoint is
//! [`OutPoint::coinbase`]`(height)` (zero txid, vout = block height, zero signature and key), so
//! every coinbase has a unique txid.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::amount::Amount;
use crate::encode;
use crate::hash::{PubkeyHash, Txid, sha256d};

/// A 64-byte compact ECDSA signature (r ‖ s, big-endian), low-S.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Signature(#[serde(with = "crate::bytes")] pub [u8; 64]);

/// A 33-byte compressed secp256k1 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PublicKey(#[serde(with = "crate::bytes")] pub [u8; 33]);

impl Signature {
    /// All zeros: what the coinbase input carries.
    pub const ZERO: Self = Self([0; 64]);
}

impl PublicKey {
    /// All zeros: what the coinbase input carries.
    pub const ZERO: Self = Self([0; 33]);
}

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signature({})", hex::encode(self.0))
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", hex::encode(self.0))
    }
}

/// Names one output of an earlier transaction.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct OutPoint {
    pub txid: Txid,
    pub vout: u32,
}

impl OutPoint {
    /// Length of [`OutPoint::to_key`].
    pub const KEY_LEN: usize = 36;

    /// The outpoint of a coinbase input at `height`.
    pub const fn coinbase(height: u32) -> Self {
        Self {
            txid: Txid::ZERO,
            vout: height,
        }
    }

    /// Whether this is a coinbase outpoint (zero txid).
    pub fn is_coinbase(&self) -> bool {
        self.txid == Txid::ZERO
    }

    /// Fixed 36-byte form, txid ‖ vout big-endian: sorts by txid then index (store keys).
    pub fn to_key(&self) -> [u8; Self::KEY_LEN] {
        let mut k = [0u8; Self::KEY_LEN];
        k[..32].copy_from_slice(&self.txid.0);
        k[32..].copy_from_slice(&self.vout.to_be_bytes());
        k
    }

    /// Inverse of [`OutPoint::to_key`].
    pub fn from_key(k: &[u8]) -> Option<Self> {
        let k: &[u8; Self::KEY_LEN] = k.try_into().ok()?;
        Some(Self {
            txid: Txid::from_slice(&k[..32])?,
            vout: u32::from_be_bytes(k[32..].try_into().ok()?),
        })
    }
}

impl std::fmt::Display for OutPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.txid, self.vout)
    }
}

/// Spends the coin at `prevout`, proving ownership with `signature` by `pubkey`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct TxIn {
    pub prevout: OutPoint,
    pub signature: Signature,
    pub pubkey: PublicKey,
}

/// Creates a coin of `value` spendable by the key hashing to `owner`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct TxOut {
    pub value: Amount,
    pub owner: PubkeyHash,
}

/// A transaction. Its txid is SHA-256d of this whole encoding, signatures included.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Transaction {
    pub version: u32,
    pub inputs: Vec<TxIn>,
    pub outputs: Vec<TxOut>,
}

/// An unspent output as the UTXO set keeps it: the output, the height of the block that created
/// it and whether that was a coinbase (for maturity).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Coin {
    pub output: TxOut,
    pub height: u32,
    pub is_coinbase: bool,
}

/// Domain separation for signature hashes, so no other message can be signed by mistake.
const SIGHASH_TAG: &[u8] = b"gossipcoin/sighash/1";

impl Transaction {
    /// Current transaction version.
    pub const VERSION: u32 = 1;

    /// The coinbase of the block at `height`, paying `value` to `owner`.
    pub fn coinbase(height: u32, owner: PubkeyHash, value: Amount) -> Self {
        Self {
            version: Self::VERSION,
            inputs: vec![TxIn {
                prevout: OutPoint::coinbase(height),
                signature: Signature::ZERO,
                pubkey: PublicKey::ZERO,
            }],
            outputs: vec![TxOut { value, owner }],
        }
    }

    /// Whether this is shaped as a coinbase: exactly one input with a coinbase outpoint.
    pub fn is_coinbase(&self) -> bool {
        self.inputs.len() == 1 && self.inputs[0].prevout.is_coinbase()
    }

    /// SHA-256d of the canonical encoding (signatures included).
    pub fn compute_txid(&self) -> Txid {
        Txid(sha256d(&encode::to_bytes(self)))
    }

    /// The canonical encoded size in bytes.
    pub fn encoded_len(&self) -> usize {
        encode::to_bytes(self).len()
    }

    /// Sum of output values, or `None` above `MAX_MONEY`.
    pub fn output_total(&self) -> Option<Amount> {
        Amount::checked_sum(self.outputs.iter().map(|o| o.value))
    }

    /// What every input's signature hash shares: SHA-256 over the version, every input's
    /// outpoint and every output. Computed once per transaction, so signing or checking n inputs
    /// costs O(n), not O(n²).
    pub fn sighash_commitment(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(SIGHASH_TAG);
        h.update(self.version.to_le_bytes());
        h.update((self.inputs.len() as u64).to_le_bytes());
        for input in &self.inputs {
            h.update(input.prevout.to_key());
        }
        h.update((self.outputs.len() as u64).to_le_bytes());
        for output in &self.outputs {
            h.update(output.value.units().to_le_bytes());
            h.update(output.owner.0);
        }
        h.finalize().into()
    }

    /// The 32-byte message that input `index` signs: SHA-256d(commitment ‖ index ‖ spent coin's
    /// amount ‖ spent coin's owner). See PROTOCOL.md §Signature hash.
    pub fn sighash(commitment: &[u8; 32], index: u32, spent: &TxOut) -> [u8; 32] {
        let mut pre = [0u8; 32 + 4 + 8 + 20];
        pre[..32].copy_from_slice(commitment);
        pre[32..36].copy_from_slice(&index.to_le_bytes());
        pre[36..44].copy_from_slice(&spent.value.units().to_le_bytes());
        pre[44..].copy_from_slice(&spent.owner.0);
        sha256d(&pre)
    }
}
