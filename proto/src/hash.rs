//! Hash newtypes and the hash functions behind them.
//!
//! Every hash in gossipcoin is a distinct type so a txid can never be passed where a block hash is
//! expected. Hashes are stored and hashed in their natural byte order and shown as plain hex of
//! those bytes (no Bitcoin-style byte reversal: one less thing to explain).

use ripemd::Ripemd160;
use sha2::{Digest, Sha256};

/// SHA-256 applied twice, as Bitcoin does for txids, block hashes and checksums.
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    Sha256::digest(Sha256::digest(data)).into()
}

/// RIPEMD-160(SHA-256(data)): the hash that turns a public key into an address payload.
pub fn hash160(data: &[u8]) -> [u8; 20] {
    Ripemd160::digest(Sha256::digest(data)).into()
}

/// Error for a hex string that is not a hash of the right length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: expected {len} hex characters")]
pub struct ParseHashError {
    kind: &'static str,
    len: usize,
}

macro_rules! hash_newtype {
    ($(#[$doc:meta])* $name:ident, $len:expr, $kind:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default,
                 serde::Serialize, serde::Deserialize)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;
            /// All zero bytes (the "null" hash).
            pub const ZERO: Self = Self([0; $len]);

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Builds the hash from a slice of exactly the right length.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                bytes.try_into().ok().map(Self)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }

        impl std::str::FromStr for $name {
            type Err = ParseHashError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let err = ParseHashError { kind: $kind, len: 2 * $len };
                let bytes = hex::decode(s).map_err(|_| err.clone())?;
                Self::from_slice(&bytes).ok_or(err)
            }
        }
    };
}

hash_newtype!(
    /// Hash of a block: SHA-256d of its 80-byte header.
    BlockHash, 32, "block hash"
);
hash_newtype!(
    /// Transaction id: SHA-256d of the full encoding, signatures included.
    Txid, 32, "txid"
);
hash_newtype!(
    /// Root of the merkle tree over a block's txids.
    MerkleRoot, 32, "merkle root"
);
hash_newtype!(
    /// RIPEMD-160(SHA-256(compressed public key)): who may spend an output.
    PubkeyHash, 20, "pubkey hash"
);

impl PubkeyHash {
    /// The pubkey hash of a 33-byte compressed public key.
    pub fn of_pubkey(pubkey: &crate::PublicKey) -> Self {
        Self(hash160(&pubkey.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256d_of_empty_matches_bitcoin() {
        assert_eq!(
            hex::encode(sha256d(b"")),
            "5df6e0e2761359d30a8275058e299fcc0381534545f55cf43e41983f5d4c9456"
        );
    }

    #[test]
    fn hash_hex_round_trip_and_errors() {
        let h = Txid([0xab; 32]);
        let s = h.to_string();
        assert_eq!(s.parse::<Txid>().unwrap(), h);
        assert!("abc".parse::<Txid>().is_err());
        assert!("zz".repeat(32).parse::<Txid>().is_err());
    }
}
