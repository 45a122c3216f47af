//! Golden vectors: exact bytes and hashes of a fixed block. An accidental change to the encoding,
//! the header layout, the txid or the merkle root makes these fail loudly.

use gossipcoin_proto::encode::{from_bytes, to_bytes};
use gossipcoin_proto::{
    Address, Amount, Block, BlockHash, BlockHeader, MAX_BLOCK_BYTES, PubkeyHash, Target,
    Transaction, hash160,
};

/// A genesis block paying 10 coins to private key 1's address, mined at the easiest target.
fn genesis() -> Block {
    let pubkey =
        hex::decode("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798").unwrap();
    let owner = PubkeyHash(hash160(&pubkey));
    let coinbase = Transaction::coinbase(0, owner, Amount::from_coins(10).unwrap());
    let mut block = Block {
        header: BlockHeader {
            version: 1,
            prev: BlockHash::ZERO,
            merkle_root: Default::default(),
            time: 1_700_000_000,
            bits: 0x207fffff,
            nonce: 0,
        },
        txs: vec![coinbase],
    };
    block.header.merkle_root = block.compute_merkle_root();
    let target = Target::from_compact(block.header.bits).unwrap();
    while !target.is_met_by(&block.block_hash()) {
        block.header.nonce += 1;
    }
    block
}

#[test]
fn genesis_block_vector() {
    let block = genesis();
    let bytes = to_bytes(&block);
    assert_eq!(hex::encode(&bytes), GENESIS_HEX);
    assert_eq!(block.txs[0].compute_txid().to_string(), GENESIS_TXID);
    assert_eq!(block.header.merkle_root.to_string(), GENESIS_TXID);
    assert_eq!(block.block_hash().to_string(), GENESIS_HASH);
    assert_eq!(from_bytes::<Block>(&bytes, MAX_BLOCK_BYTES).unwrap(), block);
    assert_eq!(
        Address(block.txs[0].outputs[0].owner).to_string(),
        "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH"
    );
}

/// The sync protocol's variants are only ever appended: each keeps its tag (the first byte of
/// its encoding), so older peers still understand every message they knew.
#[test]
fn sync_message_tags_are_pinned() {
    use gossipcoin_proto::Txid;
    use gossipcoin_proto::message::{Request, Response};
    let tag = |bytes: Vec<u8>| bytes[0];
    assert_eq!(
        tag(to_bytes(&Request::GetBlock {
            hash: BlockHash::ZERO
        })),
        2
    );
    assert_eq!(
        tag(to_bytes(&Request::GetBlocksByHash { hashes: vec![] })),
        5
    );
    assert_eq!(to_bytes(&Request::GetMempool), [6]);
    let get_txs = Request::GetTxs {
        txids: vec![Txid([0xab; 32])],
    };
    assert_eq!(
        hex::encode(to_bytes(&get_txs)),
        format!("0701{}", "ab".repeat(32))
    );
    assert_eq!(tag(to_bytes(&Response::Headers(vec![]))), 6);
    assert_eq!(
        hex::encode(to_bytes(&Response::MempoolTxids(vec![Txid([0xcd; 32])]))),
        format!("0701{}", "cd".repeat(32))
    );
    let genesis = genesis();
    let txs = Response::Txs(genesis.txs.clone());
    assert_eq!(
        to_bytes(&txs),
        [vec![8, 1], to_bytes(&genesis.txs[0])].concat()
    );
}

const GENESIS_HEX: &str = "010000000000000000000000000000000000000000000000000000000000000000000000b0890e358f3bf80af31133b5130d029877563541aed54d3f381b5d7da29cfceb00f15365ffff7f200000000001010100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000018094ebdc03751e76e8199196d454941c45d1b3a323f1433bd6";
const GENESIS_TXID: &str = "b0890e358f3bf80af31133b5130d029877563541aed54d3f381b5d7da29cfceb";
const GENESIS_HASH: &str = "3e987afbb9a82aa2ea4252c56a246ac206496ecd70d6afab45c94f3fdd7f1fe8";
