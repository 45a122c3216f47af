//! The canonical encoding: postcard 1.x with size limits, no trailing bytes, one form per value.
//!
//! Hashes are always computed from [`to_bytes`] output. [`from_bytes`] checks the length limit
//! before decoding anything, rejects trailing bytes, and rejects inputs that decode but do not
//! re-encode to the same bytes (e.g. an over-long varint), so one value has exactly one encoding.

use serde::{Serialize, de::DeserializeOwned};

/// The largest block any node accepts on the wire or from disk, whatever the chain parameters
/// say (they may only lower it).
pub const MAX_BLOCK_BYTES: usize = 4 * 1024 * 1024;
/// The largest transaction accepted on its own.
pub const MAX_TX_BYTES: usize = 100_000;

/// Why bytes are not a valid encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{len} bytes exceed the limit of {limit}")]
    TooLarge { len: usize, limit: usize },
    #[error("malformed encoding: {0}")]
    Malformed(String),
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
    #[error("non-canonical encoding")]
    NonCanonical,
}

/// Encodes a value canonically.
pub fn to_bytes<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // postcard only fails to serialize for unsupported serde shapes (none here) or a full
    // fixed buffer (a Vec grows), so this cannot fail for our types.
    postcard::to_stdvec(value).expect("postcard serialization of a gossipcoin type")
}

/// Decodes exactly one value from `bytes`, at most `limit` bytes long.
pub fn from_bytes<T: Serialize + DeserializeOwned>(
    bytes: &[u8],
    limit: usize,
) -> Result<T, DecodeError> {
    if bytes.len() > limit {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            limit,
        });
    }
    let (value, rest) =
        postcard::take_from_bytes::<T>(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    if to_bytes(&value) != bytes {
        return Err(DecodeError::NonCanonical);
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Amount, OutPoint, PubkeyHash, Transaction, TxOut};

    fn tx() -> Transaction {
        let owner = PubkeyHash([7; 20]);
        Transaction::coinbase(5, owner, Amount::from_coins(10).unwrap())
    }

    #[test]
    fn round_trip() {
        let bytes = to_bytes(&tx());
        assert_eq!(
            from_bytes::<Transaction>(&bytes, MAX_TX_BYTES).unwrap(),
            tx()
        );
    }

    #[test]
    fn rejects_trailing_oversized_truncated_and_non_canonical() {
        let mut bytes = to_bytes(&tx());
        let len = bytes.len();
        assert_eq!(
            from_bytes::<Transaction>(&bytes, len - 1),
            Err(DecodeError::TooLarge {
                len,
                limit: len - 1
            })
        );
        assert!(matches!(
            from_bytes::<Transaction>(&bytes[..len - 3], MAX_TX_BYTES),
            Err(DecodeError::Malformed(_))
        ));
        bytes.push(0);
        assert_eq!(
            from_bytes::<Transaction>(&bytes, MAX_TX_BYTES),
            Err(DecodeError::TrailingBytes(1))
        );
        // version 1 as an over-long varint (0x81 0x00) decodes to 1 but is not canonical
        let mut long = vec![0x81, 0x00];
        long.extend_from_slice(&to_bytes(&tx())[1..]);
        assert_eq!(
            from_bytes::<Transaction>(&long, MAX_TX_BYTES),
            Err(DecodeError::NonCanonical)
        );
    }

    #[test]
    fn huge_length_prefix_does_not_allocate_or_panic() {
        // version 1, then an input count of u32::MAX
        let bytes = [0x01, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(from_bytes::<Transaction>(&bytes, MAX_TX_BYTES).is_err());
        let _ = OutPoint::coinbase(0);
        let _ = TxOut {
            value: Amount::ZERO,
            owner: PubkeyHash::ZERO,
        };
    }
}
