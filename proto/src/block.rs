//! Blocks: the fixed 80-byte header, the block hash, and the merkle root.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::hash::{BlockHash, MerkleRoot, Txid, sha256d};
use crate::pow::{Target, U256};
use crate::tx::Transaction;

/// A block header. Its PoW hash is SHA-256d over the fixed 80-byte layout of [`Self::to_bytes`]:
/// version, prev, merkle root, time, bits, nonce — integers little-endian, the nonce last so a
/// miner compresses the first 64 bytes once and only rehashes the final 16.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct BlockHeader {
    pub version: u32,
    pub prev: BlockHash,
    pub merkle_root: MerkleRoot,
    /// Seconds since the Unix epoch.
    pub time: u32,
    /// The compact PoW target.
    pub bits: u32,
    pub nonce: u32,
}

impl BlockHeader {
    /// Encoded size in bytes.
    pub const SIZE: usize = 80;
    /// Current header version.
    pub const VERSION: u32 = 1;

    /// The canonical 80-byte encoding.
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..4].copy_from_slice(&self.version.to_le_bytes());
        b[4..36].copy_from_slice(&self.prev.0);
        b[36..68].copy_from_slice(&self.merkle_root.0);
        b[68..72].copy_from_slice(&self.time.to_le_bytes());
        b[72..76].copy_from_slice(&self.bits.to_le_bytes());
        b[76..80].copy_from_slice(&self.nonce.to_le_bytes());
        b
    }

    /// Inverse of [`Self::to_bytes`].
    pub fn from_bytes(b: &[u8; Self::SIZE]) -> Self {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Self {
            version: u32_at(0),
            prev: BlockHash(b[4..36].try_into().expect("32 bytes")),
            merkle_root: MerkleRoot(b[36..68].try_into().expect("32 bytes")),
            time: u32_at(68),
            bits: u32_at(72),
            nonce: u32_at(76),
        }
    }

    /// SHA-256d of the 80-byte encoding.
    pub fn block_hash(&self) -> BlockHash {
        BlockHash(sha256d(&self.to_bytes()))
    }

    /// The work this header adds to its chain: the expected hashes to meet the target of its
    /// own `bits` ([`Target::work`]); zero when `bits` is not a usable target (such a header
    /// never passes validation).
    pub fn work(&self) -> U256 {
        Target::from_compact(self.bits).map_or(U256::ZERO, |t| t.work())
    }
}

impl Serialize for BlockHeader {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::bytes::serialize(&self.to_bytes(), s)
    }
}

impl<'de> Deserialize<'de> for BlockHeader {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::bytes::deserialize::<D, 80>(d).map(|b| Self::from_bytes(&b))
    }
}

/// A block: header and transactions, the coinbase first.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Block {
    pub header: BlockHeader,
    pub txs: Vec<Transaction>,
}

impl Block {
    /// The block hash (of the header).
    pub fn block_hash(&self) -> BlockHash {
        self.header.block_hash()
    }

    /// The height its coinbase claims (the vout of the coinbase input), if the first
    /// transaction is shaped as a coinbase.
    pub fn coinbase_height(&self) -> Option<u32> {
        let cb = self.txs.first().filter(|tx| tx.is_coinbase())?;
        Some(cb.inputs[0].prevout.vout)
    }

    /// The merkle root over this block's transactions as they are now.
    pub fn compute_merkle_root(&self) -> MerkleRoot {
        let txids: Vec<Txid> = self.txs.iter().map(Transaction::compute_txid).collect();
        merkle_root(&txids)
    }
}

/// Bitcoin's merkle tree: pairs hashed with SHA-256d, an odd last node paired with itself.
/// The root of no txids is zero; of one txid, that txid.
///
/// Duplicating the last node makes `[a, b, c]` and `[a, b, c, c]` share a root
/// (CVE-2012-2459), so validation rejects blocks with a repeated txid.
pub fn merkle_root(txids: &[Txid]) -> MerkleRoot {
    if txids.is_empty() {
        return MerkleRoot::ZERO;
    }
    let mut level: Vec<[u8; 32]> = txids.iter().map(|t| t.0).collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| {
                let right = pair.get(1).unwrap_or(&pair[0]);
                let mut buf = [0u8; 64];
                buf[..32].copy_from_slice(&pair[0]);
                buf[32..].copy_from_slice(right);
                sha256d(&buf)
            })
            .collect();
    }
    MerkleRoot(level[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes_round_trip_and_nonce_is_last() {
        let h = BlockHeader {
            version: 1,
            prev: BlockHash([1; 32]),
            merkle_root: MerkleRoot([2; 32]),
            time: 1_700_000_000,
            bits: 0x1e0fffff,
            nonce: 0xdeadbeef,
        };
        let b = h.to_bytes();
        assert_eq!(BlockHeader::from_bytes(&b), h);
        assert_eq!(&b[76..], &0xdeadbeef_u32.to_le_bytes());
        assert_eq!(crate::encode::to_bytes(&h), b.to_vec());
    }

    #[test]
    fn merkle_of_three_equals_four_with_last_repeated() {
        let t = |n: u8| Txid([n; 32]);
        assert_eq!(merkle_root(&[t(1)]).0, t(1).0);
        assert_eq!(
            merkle_root(&[t(1), t(2), t(3)]),
            merkle_root(&[t(1), t(2), t(3), t(3)])
        );
        assert_ne!(merkle_root(&[t(1), t(2)]), merkle_root(&[t(2), t(1)]));
    }
}
