//! TEMPORARY: stands in for the chain actor's headers and batch commands until they land.
use gossipcoin_proto::{Block, BlockHash, BlockHeader, U256};

use crate::chain::Origin;
use crate::node::chain_handle::{BlockOutcome, ChainGone, ChainHandle};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadersOutcome {
    Accepted {
        last: BlockHash,
        height: u32,
        chain_work: U256,
        new: usize,
    },
    Unconnected {
        prev: BlockHash,
    },
    Invalid {
        reason: String,
        blame: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    pub connected: usize,
    pub height: u32,
    pub stopped: Option<(BlockHash, BlockOutcome)>,
}

pub trait ChainStub {
    async fn submit_headers(
        &self,
        headers: Vec<BlockHeader>,
        source: String,
    ) -> Result<HeadersOutcome, ChainGone>;
    async fn submit_batch(
        &self,
        blocks: Vec<Block>,
        source: String,
    ) -> Result<BatchOutcome, ChainGone>;
}

impl ChainStub for ChainHandle {
    async fn submit_headers(
        &self,
        _headers: Vec<BlockHeader>,
        _source: String,
    ) -> Result<HeadersOutcome, ChainGone> {
        Ok(HeadersOutcome::Invalid {
            reason: "stub".into(),
            blame: false,
        })
    }
    async fn submit_batch(
        &self,
        blocks: Vec<Block>,
        source: String,
    ) -> Result<BatchOutcome, ChainGone> {
        let mut out = BatchOutcome {
            connected: 0,
            height: 0,
            stopped: None,
        };
        for b in blocks {
            let hash = b.block_hash();
            match self
                .submit_block(b, Origin::Requested, source.clone())
                .await?
            {
                BlockOutcome::NewTip { height, .. } => {
                    out.connected += 1;
                    out.height = height;
                }
                BlockOutcome::SideBranch { .. } | BlockOutcome::Duplicate => {}
                other => {
                    out.stopped = Some((hash, other));
                    break;
                }
            }
        }
        Ok(out)
    }
}
