//! What the attacker sends, built in this process: fat gossip blocks (a cheaply mined valid
//! header over megabytes of empty transactions), oversized-coinbase side blocks on genesis, and
//! the chain of big valid blocks the amplification scenario needs on every node's disk.

use std::path::Path;

use gossipcoin::chain::Chain;
use gossipcoin::params::ChainParams;
use gossipcoin_proto::encode::{from_bytes, to_bytes};
use gossipcoin_proto::{
    Amount, Block, BlockHash, BlockHeader, MAX_TX_BYTES, MerkleRoot, OutPoint, PubkeyHash,
    PublicKey, Signature, Target, Transaction, TxIn, TxOut, Txid,
};

use crate::common::{build_chain, mine};

/// Blocks of the prebuilt chain after genesis, and one-input transactions in each: 4,250 make
/// a block of about 780 kB (the coinbase pays each of them an output, and a transaction is at
/// most 100 kB). Fourteen such blocks make every `GetBlocks` from genesis answer a full batch
/// (the 8 MiB soft limit plus one block), as the 12 blocks of ~926 kB did.
pub const BIG_BLOCKS: u32 = 14;
const BIG_BLOCK_TXS: usize = 4_250;

/// Builds genesis and `blocks` big valid blocks after it (the genesis is the same whatever
/// `blocks` is), validates and stores them in `dir/chain/data.mdb` (copied into each daemon's
/// data directory), and returns the genesis hash and the largest block's size.
pub fn chain(params: &ChainParams, dir: &Path, blocks: u32) -> (BlockHash, usize) {
    let blocks = build_chain(params, blocks, BIG_BLOCK_TXS, None);
    let largest = blocks.iter().map(|b| to_bytes(b).len()).max().unwrap_or(0);
    assert!(
        largest <= params.max_block_size,
        "a prebuilt block of {largest} bytes is over the chain's limit"
    );
    let chain = Chain::create(&dir.join("chain"), params.clone(), &blocks[0]).unwrap();
    for b in &blocks[1..] {
        chain
            .accept_block(b, u32::MAX, gossipcoin::chain::Origin::Requested)
            .unwrap();
    }
    (blocks[0].block_hash(), largest)
}

/// Mines `header` alone (its merkle root is whatever it is) until it meets its target.
fn mine_header(header: &mut BlockHeader) {
    let target = Target::from_compact(header.bits).unwrap();
    for _ in 0..u32::MAX {
        if target.is_met_by(&header.block_hash()) {
            return;
        }
        header.nonce = header.nonce.wrapping_add(1);
    }
    panic!("no nonce meets the target");
}

/// A gossip message of at most `max_bytes`: a header on `prev` with valid proof of work and a
/// wrong merkle root, over as many empty 3-byte transactions as fit. `salt` makes each one
/// distinct (a different header, so a different message id). Returns the bytes and the hash.
pub fn fat_block(
    params: &ChainParams,
    prev: BlockHash,
    time: u32,
    salt: u32,
    max_bytes: usize,
) -> (Vec<u8>, BlockHash) {
    let mut header = BlockHeader {
        version: 1,
        prev,
        merkle_root: MerkleRoot::default(),
        time: time + salt,
        bits: params.pow_bits,
        nonce: salt << 16,
    };
    mine_header(&mut header);
    let empty = to_bytes(&Transaction {
        version: Transaction::VERSION,
        inputs: vec![],
        outputs: vec![],
    });
    // The encoding of a Block is its header, a LEB128 count, then the transactions.
    let head = to_bytes(&Block {
        header,
        txs: vec![],
    });
    let header_len = head.len() - 1; // the empty count is one 0 byte
    let count = (max_bytes - header_len - 5) / empty.len();
    let mut bytes = Vec::with_capacity(max_bytes);
    bytes.extend_from_slice(&head[..header_len]);
    let mut n = count as u64;
    loop {
        let low = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            bytes.push(low);
            break;
        }
        bytes.push(low | 0x80);
    }
    for _ in 0..count {
        bytes.extend_from_slice(&empty);
    }
    (bytes, header.block_hash())
}

/// Checks once that [`fat_block`]'s hand-made bytes decode as the block they claim to be.
pub fn check_fat_block(bytes: &[u8], hash: BlockHash) -> usize {
    let block: Block = from_bytes(bytes, bytes.len()).expect("a fat block decodes");
    assert_eq!(block.block_hash(), hash);
    block.txs.len()
}

/// A side block on genesis of about `size` bytes (below the chain's limit): valid proof of work
/// and merkle root, a coinbase paying 1,000 coins (the subsidy is 10), then transactions of just
/// under the 100 kB limit that spend coins nobody has, with zero signatures, to thousands of
/// one-unit outputs. Structurally fine; invalid as soon as anyone validates its transactions.
pub fn side_block(
    params: &ChainParams,
    genesis: BlockHash,
    time: u32,
    salt: u32,
    size: usize,
) -> Block {
    let owner = |i: u32| {
        let mut b = [0u8; 20];
        b[..4].copy_from_slice(&salt.to_le_bytes());
        b[4..8].copy_from_slice(&i.to_le_bytes());
        PubkeyHash(b)
    };
    let coinbase = Transaction::coinbase(1, owner(0), Amount::from_coins(1_000).unwrap());
    let unit = Amount::from_units(1).unwrap();
    let out_len = to_bytes(&TxOut {
        value: unit,
        owner: owner(1),
    })
    .len();
    let per_tx = (MAX_TX_BYTES - 1_000) / out_len;
    let mut txs = vec![coinbase];
    let mut total = 200;
    let mut n = 0u32;
    while total + 2 * out_len < size {
        n += 1;
        let outputs = per_tx.min((size - total) / out_len - 1);
        let mut id = [0u8; 32];
        id[..4].copy_from_slice(&salt.to_le_bytes());
        id[4..8].copy_from_slice(&n.to_le_bytes());
        let tx = Transaction {
            version: Transaction::VERSION,
            inputs: vec![TxIn {
                prevout: OutPoint {
                    txid: Txid(id),
                    vout: 0,
                },
                signature: Signature::ZERO,
                pubkey: PublicKey::ZERO,
            }],
            outputs: (0..outputs as u32)
                .map(|i| TxOut {
                    value: unit,
                    owner: owner(i),
                })
                .collect(),
        };
        total += to_bytes(&tx).len();
        txs.push(tx);
    }
    let mut block = Block {
        header: BlockHeader {
            version: 1,
            prev: genesis,
            merkle_root: MerkleRoot::default(),
            time: time + salt,
            bits: params.pow_bits,
            nonce: 0,
        },
        txs,
    };
    mine(&mut block);
    assert!(to_bytes(&block).len() <= params.max_block_size);
    block
}
