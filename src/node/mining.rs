//! The miner role: waits until the mempool holds `min_txs` transactions (the tutorial's rule:
//! 2), or until the first waiting transaction is `max_wait` old (or not at all with
//! `empty_blocks`), then mines a block of the mempool's best transactions paying subsidy + fees
//! to the miner's address. It waits while the
//! node syncs a chain with more verified work. The proof-of-work
//! search runs on blocking threads; a new tip from the network aborts it at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use gossipcoin_proto::{Block, PubkeyHash};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info};

use super::chain_handle::{BlockOutcome, ChainHandle};
use super::sync::SyncProgress;
use crate::chain::Origin;
use crate::config::MiningConfig;
use crate::metrics::{Source, metrics};
use crate::miner;

/// Runs until `shutdown` turns true; every block it mines and the chain accepts is sent on
/// `mined` for the network to publish.
pub async fn run(
    chain: ChainHandle,
    config: MiningConfig,
    reward_to: PubkeyHash,
    mined: mpsc::Sender<Block>,
    mut sync: watch::Receiver<SyncProgress>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut state = chain.state();
    let mut waiting_since: Option<Instant> = None;
    loop {
        // 0. Never mine while we are downloading a chain with more work whose headers we
        //    verified: the block would be wasted. A peer's mere claim does not stop us.
        if sync.borrow_and_update().syncing {
            debug!(target: "miner", "syncing: waiting before mining");
            tokio::select! {
                _ = sync.changed() => {}
                _ = shutdown.changed() => return,
            }
            continue;
        }
        // 1. Wait for enough transactions, or for the oldest to have waited long enough.
        let ready = {
            let s = *state.borrow_and_update();
            if s.mempool_txs == 0 {
                waiting_since = None;
            } else {
                waiting_since.get_or_insert_with(Instant::now);
            }
            config.empty_blocks
                || s.mempool_txs >= config.min_txs
                || waiting_since.is_some_and(|t| t.elapsed() >= config.max_wait())
        };
        if !ready {
            let deadline = waiting_since.map(|t| t + config.max_wait());
            tokio::select! {
                _ = state.changed() => {}
                _ = sleep_until(deadline) => {}
                _ = shutdown.changed() => return,
            }
            continue;
        }
        // 2. Mine a block on the current tip.
        let Ok(Some(template)) = chain.template(reward_to).await else {
            return;
        };
        if template.txs.len() < 2 && !config.empty_blocks {
            continue; // nothing valid to mine after all
        }
        let abort = Arc::new(AtomicBool::new(false));
        let (a, threads, prev) = (abort.clone(), config.threads, template.header.prev);
        info!(target: "miner", height = height_of(&template), txs = template.txs.len() - 1, "mining a block");
        let mut search = tokio::task::spawn_blocking(move || {
            let found = miner::mine_logged(&template, threads, &a);
            found.map(|header| Block {
                header,
                txs: template.txs,
            })
        });
        let found = loop {
            tokio::select! {
                result = &mut search => break result.ok().flatten(),
                _ = state.changed() => {
                    if state.borrow().tip != prev {
                        debug!(target: "miner", "a new tip arrived: aborting this attempt");
                        abort.store(true, Ordering::Relaxed);
                    }
                }
                _ = shutdown.changed() => {
                    abort.store(true, Ordering::Relaxed);
                }
            }
        };
        let Some(block) = found else {
            if *shutdown.borrow() {
                return;
            }
            info!(target: "miner", "mining attempt aborted: the tip moved");
            continue;
        };
        metrics().block_received(Source::Local);
        match chain
            .submit_block(block.clone(), Origin::Requested, "miner".into())
            .await
        {
            Ok(BlockOutcome::NewTip { .. }) => {
                if mined.send(block).await.is_err() {
                    return;
                }
            }
            Ok(other) => info!(target: "miner", "mined block not used: {other:?}"),
            Err(_) => return,
        }
    }
}

fn height_of(block: &Block) -> u32 {
    block.coinbase_height().unwrap_or(0)
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}
