//! Network messages: gossip topics and the `/gossipcoin/sync/1` request-response protocol.
//!
//! Every message is encoded with [`crate::encode`] and must fit its byte limit; counts are capped
//! too, so no peer can make a node allocate or work without bound.

use serde::{Deserialize, Serialize};

use crate::block::{Block, BlockHeader};
use crate::hash::{BlockHash, Txid};
use crate::pow::U256;
use crate::tx::Transaction;

/// The request-response protocol name.
pub const SYNC_PROTOCOL: &str = "/gossipcoin/sync/1";
/// At most this many hashes in a block locator.
pub const MAX_LOCATOR_HASHES: usize = 64;
/// At most this many blocks in one `Blocks` response.
pub const MAX_BLOCKS_PER_RESPONSE: usize = 500;
/// At most this many headers in one `Headers` response (80 bytes each: 160 kB).
pub const MAX_HEADERS_PER_RESPONSE: usize = 2_000;
/// At most this many hashes in one `GetBlocksByHash` request.
pub const MAX_BLOCKS_PER_REQUEST: usize = 128;
/// A responder stops adding blocks to a batch once it holds this many bytes (one more block
/// of at most `MAX_BLOCK_BYTES` may follow).
pub const SOFT_RESPONSE_BYTES: usize = 1024 * 1024;
/// At most this many txids in one `MempoolTxids` answer (32 bytes each: 1.6 MB).
pub const MAX_MEMPOOL_TXIDS: usize = 50_000;
/// At most this many txids in one `GetTxs` request, and transactions in its `Txs` answer.
pub const MAX_TXS_PER_REQUEST: usize = 1_000;
/// The largest encoded request.
pub const MAX_REQUEST_BYTES: usize = crate::encode::MAX_TX_BYTES + 4096;
/// The largest encoded response.
pub const MAX_RESPONSE_BYTES: usize = SOFT_RESPONSE_BYTES + crate::encode::MAX_BLOCK_BYTES + 4096;
/// The largest gossip message (a block); gossipsub's `max_transmit_size` is set above it.
pub const MAX_GOSSIP_BYTES: usize = crate::encode::MAX_BLOCK_BYTES;

/// What a node runs as.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum Role {
    /// The bootstrap peer; accepts transactions from wallets that run no node.
    Central,
    /// Mines blocks from its mempool.
    Miner,
    /// Relays and tracks the chain, no mining.
    Wallet,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Central => "central",
            Self::Miner => "miner",
            Self::Wallet => "wallet",
        })
    }
}

/// A node's view of its chain, exchanged on connect.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Status {
    pub genesis: BlockHash,
    pub tip: BlockHash,
    pub height: u32,
    pub chain_work: U256,
    pub role: Role,
    /// The sender's clock when it sent this (Unix seconds; 0: not told). Peers compare it
    /// with their own to notice a wrong clock, as Core does with `version`'s time.
    pub time: u32,
}

/// A request over `/gossipcoin/sync/1`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Request {
    /// "Here is my status; what is yours?"
    Status(Status),
    /// Main-chain blocks after the first locator hash the responder knows on its main chain,
    /// in order, at most `max` (capped by [`MAX_BLOCKS_PER_RESPONSE`] and the byte limit).
    GetBlocks { locator: Vec<BlockHash>, max: u32 },
    /// One block by hash (main chain or not): to fetch an orphan's missing parent.
    GetBlock { hash: BlockHash },
    /// Submit a transaction for the responder's mempool (and relay).
    SubmitTx(Transaction),
    /// Main-chain headers after the first locator hash the responder knows on its main chain,
    /// in order, at most `max` (capped by [`MAX_HEADERS_PER_RESPONSE`]). Answered with
    /// [`Response::Headers`]; fewer than asked means the responder has no more.
    GetHeaders { locator: Vec<BlockHash>, max: u32 },
    /// Blocks by hash (main chain or not), at most [`MAX_BLOCKS_PER_REQUEST`]. Answered with
    /// [`Response::Blocks`]: the requested blocks the responder has, in the requested order,
    /// stopping early at the response byte limit. A block that was not asked for is a protocol
    /// violation.
    GetBlocksByHash { hashes: Vec<BlockHash> },
    /// "Which transactions are in your mempool?" Answered with [`Response::MempoolTxids`]:
    /// at most [`MAX_MEMPOOL_TXIDS`] txids, oldest arrival first (so a parent comes before its
    /// children). Sent once per connection, after the Status exchange.
    GetMempool,
    /// Mempool transactions by txid, at most [`MAX_TXS_PER_REQUEST`]. Answered with
    /// [`Response::Txs`]: those the responder still has, in the requested order, stopping
    /// early at about [`SOFT_RESPONSE_BYTES`]. A transaction that was not asked for is a
    /// protocol violation.
    GetTxs { txids: Vec<Txid> },
}

/// A response over `/gossipcoin/sync/1`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Response {
    Status(Status),
    Blocks(Vec<Block>),
    Block(Option<Block>),
    /// The transaction was accepted into the mempool.
    TxAccepted(Txid),
    /// The transaction was refused, and why.
    TxRejected(String),
    /// The request was refused (rate limit, wrong network, bad request), and why.
    Error(String),
    /// The answer to [`Request::GetHeaders`].
    Headers(Vec<BlockHeader>),
    /// The answer to [`Request::GetMempool`].
    MempoolTxids(Vec<Txid>),
    /// The answer to [`Request::GetTxs`].
    Txs(Vec<Transaction>),
}

/// The kind of gossip a topic carries.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TopicKind {
    Tx,
    Block,
}

/// The gossip topic of `kind` on the network of `genesis`: `/gossipcoin/<genesis8>/tx/1`,
/// where `<genesis8>` is the first 8 hex characters of the genesis hash.
pub fn topic(genesis: &BlockHash, kind: TopicKind) -> String {
    let kind = match kind {
        TopicKind::Tx => "tx",
        TopicKind::Block => "block",
    };
    format!("/gossipcoin/{}/{kind}/1", &genesis.to_string()[..8])
}

impl Response {
    /// The canonical encoding of `Response::Blocks` built from blocks that are already in their
    /// canonical encoding (as a store keeps them): byte for byte what encoding the decoded
    /// blocks would give, without decoding or re-encoding any of them.
    pub fn encode_blocks(encoded_blocks: &[Vec<u8>]) -> Vec<u8> {
        // `Blocks(vec![])` is the variant's tag followed by a zero count.
        let mut out = crate::encode::to_bytes(&Response::Blocks(Vec::new()));
        out.pop();
        out.extend(crate::encode::to_bytes(&encoded_blocks.len()));
        for block in encoded_blocks {
            out.extend_from_slice(block);
        }
        out
    }
}

impl Request {
    /// Whether the counts are within their limits (the byte limit is checked when decoding).
    pub fn is_within_limits(&self) -> bool {
        match self {
            Self::GetBlocks { locator, .. } | Self::GetHeaders { locator, .. } => {
                locator.len() <= MAX_LOCATOR_HASHES
            }
            Self::GetBlocksByHash { hashes } => hashes.len() <= MAX_BLOCKS_PER_REQUEST,
            Self::GetTxs { txids } => txids.len() <= MAX_TXS_PER_REQUEST,
            _ => true,
        }
    }

    /// The most bytes an honest answer to this request can take on a chain whose blocks are
    /// at most `max_block_bytes` (encoded): the asker refuses a longer answer from its length
    /// prefix, before reading or decoding any of it. Never more than [`MAX_RESPONSE_BYTES`];
    /// never less than room for an error message.
    pub fn max_response_bytes(&self, max_block_bytes: usize) -> usize {
        /// Room for an error answer, and for the enum tag and length prefixes.
        const SLACK: usize = 4096;
        /// Per item: its length prefix (and a little more).
        const ITEM: usize = 16;
        let block = max_block_bytes.min(crate::encode::MAX_BLOCK_BYTES) + ITEM;
        // A responder stops adding blocks past the soft limit; one more block may follow.
        let blocks = |n: usize| n.saturating_mul(block).min(SOFT_RESPONSE_BYTES + block);
        let bytes = match self {
            Self::Status(_) | Self::SubmitTx(_) => 0,
            Self::GetBlock { .. } => block,
            Self::GetBlocks { max, .. } => blocks((*max as usize).min(MAX_BLOCKS_PER_RESPONSE)),
            Self::GetBlocksByHash { hashes } => blocks(hashes.len()),
            Self::GetHeaders { max, .. } => {
                (*max as usize).min(MAX_HEADERS_PER_RESPONSE) * (BlockHeader::SIZE + ITEM)
            }
            Self::GetMempool => MAX_MEMPOOL_TXIDS * (32 + ITEM),
            Self::GetTxs { txids } => txids
                .len()
                .saturating_mul(crate::encode::MAX_TX_BYTES + ITEM)
                .min(SOFT_RESPONSE_BYTES + crate::encode::MAX_TX_BYTES + ITEM),
        };
        (bytes + SLACK).min(MAX_RESPONSE_BYTES)
    }
}

impl Response {
    /// Whether the counts of a mempool answer are within their limits (the byte limit is
    /// checked when decoding). Other answers are bounded by the byte limit and checked by
    /// whoever asked for them.
    pub fn is_within_limits(&self) -> bool {
        match self {
            Self::MempoolTxids(txids) => txids.len() <= MAX_MEMPOOL_TXIDS,
            Self::Txs(txs) => txs.len() <= MAX_TXS_PER_REQUEST,
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{from_bytes, to_bytes};

    #[test]
    fn an_answer_is_bounded_by_what_was_asked_and_the_chains_block_limit() {
        let one = Request::GetBlocksByHash {
            hashes: vec![BlockHash::ZERO],
        };
        let many = Request::GetBlocksByHash {
            hashes: vec![BlockHash::ZERO; MAX_BLOCKS_PER_REQUEST],
        };
        let mb = 1_000_000;
        assert!(one.max_response_bytes(mb) >= mb);
        assert!(one.max_response_bytes(mb) < mb + 8192);
        // Many small blocks: the soft limit plus one block, far below the protocol's maximum.
        assert!(many.max_response_bytes(mb) >= SOFT_RESPONSE_BYTES + mb);
        let few = Request::GetBlocksByHash {
            hashes: vec![BlockHash::ZERO; 20],
        };
        assert!(few.max_response_bytes(10_000) < SOFT_RESPONSE_BYTES / 2);
        assert!(many.max_response_bytes(usize::MAX) <= MAX_RESPONSE_BYTES);
        let headers = Request::GetHeaders {
            locator: vec![],
            max: u32::MAX,
        };
        assert!(headers.max_response_bytes(mb) < 300_000);
        assert!(headers.max_response_bytes(mb) >= MAX_HEADERS_PER_RESPONSE * BlockHeader::SIZE);
    }

    #[test]
    fn topics_carry_the_genesis_prefix() {
        let g: BlockHash = "00000a7e3fbdbc91bb3603b00492507354f8ca474b8878ab8ffec34f934a217c"
            .parse()
            .unwrap();
        assert_eq!(topic(&g, TopicKind::Tx), "/gossipcoin/00000a7e/tx/1");
        assert_eq!(topic(&g, TopicKind::Block), "/gossipcoin/00000a7e/block/1");
    }

    #[test]
    fn blocks_encoded_from_their_parts_equal_the_encoded_response() {
        use crate::{Amount, BlockHeader, PubkeyHash};
        let block = |n: u32| Block {
            header: BlockHeader {
                version: 1,
                prev: BlockHash([n as u8; 32]),
                merkle_root: Default::default(),
                time: n,
                bits: 0x207f_ffff,
                nonce: n,
            },
            txs: vec![Transaction::coinbase(n, PubkeyHash([1; 20]), Amount::ZERO)],
        };
        for count in [0u32, 1, 2, 127, 128, 300] {
            let blocks: Vec<Block> = (0..count).map(block).collect();
            let parts: Vec<Vec<u8>> = blocks.iter().map(to_bytes).collect();
            assert_eq!(
                Response::encode_blocks(&parts),
                to_bytes(&Response::Blocks(blocks)),
                "{count} blocks"
            );
        }
    }

    #[test]
    fn messages_round_trip_and_limits_hold() {
        let status = Status {
            genesis: BlockHash([1; 32]),
            tip: BlockHash([2; 32]),
            height: 7,
            chain_work: U256::from_u64(99),
            role: Role::Miner,
            time: 1_700_000_000,
        };
        for req in [
            Request::Status(status),
            Request::GetBlocks {
                locator: vec![BlockHash([3; 32]); 3],
                max: 10,
            },
            Request::GetBlock {
                hash: BlockHash([4; 32]),
            },
            Request::GetHeaders {
                locator: vec![BlockHash([5; 32]); 2],
                max: 2000,
            },
            Request::GetBlocksByHash {
                hashes: vec![BlockHash([6; 32]); MAX_BLOCKS_PER_REQUEST],
            },
        ] {
            assert_eq!(
                from_bytes::<Request>(&to_bytes(&req), MAX_REQUEST_BYTES).unwrap(),
                req
            );
        }
        let too_long = Request::GetBlocks {
            locator: vec![BlockHash::ZERO; MAX_LOCATOR_HASHES + 1],
            max: 1,
        };
        assert!(!too_long.is_within_limits());
        let too_many = Request::GetBlocksByHash {
            hashes: vec![BlockHash::ZERO; MAX_BLOCKS_PER_REQUEST + 1],
        };
        assert!(!too_many.is_within_limits());
        // The largest Headers answer fits the response limit.
        let header = crate::BlockHeader {
            version: 1,
            prev: BlockHash([7; 32]),
            merkle_root: Default::default(),
            time: 1,
            bits: 0x207f_ffff,
            nonce: 1,
        };
        let headers = Response::Headers(vec![header; MAX_HEADERS_PER_RESPONSE]);
        let bytes = to_bytes(&headers);
        assert!(bytes.len() <= MAX_RESPONSE_BYTES);
        assert_eq!(
            from_bytes::<Response>(&bytes, MAX_RESPONSE_BYTES).unwrap(),
            headers
        );
        let resp = Response::TxRejected("double spend".into());
        assert_eq!(
            from_bytes::<Response>(&to_bytes(&resp), MAX_RESPONSE_BYTES).unwrap(),
            resp
        );
        assert!(from_bytes::<Response>(&[0xff, 0xff], MAX_RESPONSE_BYTES).is_err());
    }

    #[test]
    fn mempool_messages_round_trip_and_their_limits_hold() {
        use crate::{Amount, PubkeyHash};
        let txid = |n: u32| Txid([n as u8; 32]);
        // The largest requests and answers fit their byte limits.
        let ask = Request::GetTxs {
            txids: (0..MAX_TXS_PER_REQUEST as u32).map(txid).collect(),
        };
        assert!(ask.is_within_limits());
        let bytes = to_bytes(&ask);
        assert!(bytes.len() <= MAX_REQUEST_BYTES, "{}", bytes.len());
        assert_eq!(
            from_bytes::<Request>(&bytes, MAX_REQUEST_BYTES).unwrap(),
            ask
        );
        assert_eq!(
            from_bytes::<Request>(&to_bytes(&Request::GetMempool), MAX_REQUEST_BYTES).unwrap(),
            Request::GetMempool
        );
        let list = Response::MempoolTxids((0..MAX_MEMPOOL_TXIDS as u32).map(txid).collect());
        assert!(list.is_within_limits());
        let bytes = to_bytes(&list);
        assert!(bytes.len() <= MAX_RESPONSE_BYTES, "{}", bytes.len());
        assert_eq!(
            from_bytes::<Response>(&bytes, MAX_RESPONSE_BYTES).unwrap(),
            list
        );
        let tx = Transaction::coinbase(1, PubkeyHash([2; 20]), Amount::ZERO);
        let txs = Response::Txs(vec![tx; 3]);
        assert_eq!(
            from_bytes::<Response>(&to_bytes(&txs), MAX_RESPONSE_BYTES).unwrap(),
            txs
        );
        // One over a count limit is refused.
        let too_many = Request::GetTxs {
            txids: vec![Txid([0; 32]); MAX_TXS_PER_REQUEST + 1],
        };
        assert!(!too_many.is_within_limits());
        assert!(
            !Response::MempoolTxids(vec![Txid([0; 32]); MAX_MEMPOOL_TXIDS + 1]).is_within_limits()
        );
        let tx = Transaction::coinbase(1, PubkeyHash([2; 20]), Amount::ZERO);
        assert!(!Response::Txs(vec![tx; MAX_TXS_PER_REQUEST + 1]).is_within_limits());
    }
}
