//! The transaction worker: ordered relay with an orphan pool.
//!
//! One worker drains the transaction queue (one peer's transactions in the order sent, peers
//! in turn) into the mempool, through the chain actor:
//!
//! - **accepted**: gossip gets Accept (gossipsub forwards it), a transaction from a `SubmitTx`
//!   or a peer's mempool is published; then the orphans spending its outputs are queued to be
//!   tried again;
//! - **inputs unknown** (gossip, or fetched from a peer's mempool): pooled as an orphan charged
//!   to the peer ([`super::tx_orphans`]) — unless one of its missing inputs belongs to a
//!   confirmed transaction: then it spends a coin already spent on chain and is dropped
//!   (Ignore). A `SubmitTx` with unknown inputs is refused, as by Core's `sendrawtransaction`:
//!   a client submits parents first;
//! - **provably invalid**: gossip gets Reject, a fetched or submitted one a High penalty;
//! - anything else (duplicate, conflict, fee, full pool): Ignore.
//!
//! The gossip verdict on an orphan **waits** while it is pooled: gossipsub remembers every
//! message it has seen (a minute), so an orphan ignored at once could not be published again
//! when its parent arrives. It is reported when the orphan leaves the pool: Accept once it is
//! accepted (gossipsub forwards it; it is also published, which reaches peers once gossipsub
//! has forgotten it), Reject if it proves invalid, Ignore if it is evicted, expires or its
//! sender leaves. Gossipsub keeps a message for [`REPORT_WINDOW`] (30 s): an orphan accepted
//! 30–60 s after it arrived is not relayed by this node (later ones are published again).
//!
//! Orphans to try again are taken **one between every two queued transactions**, so a long
//! chain unlocked at once neither starves the other peers nor recurses. An orphan accepted
//! later unlocks its own children; one found invalid costs the peer that sent it. When the
//! chain's tip changes every orphan is tried again (a block may have confirmed a parent).

use std::sync::Arc;
use std::time::Instant;

use gossipcoin_proto::message::Response;
use gossipcoin_proto::{OutPoint, Transaction, Txid};
use tracing::{debug, info};

use super::chain_handle::ChainGone;
use super::ingest::{TxJob, Workers};
use super::queue::FairQueue;
use super::tx_orphans::{Added, Orphan, SharedTxOrphans};
use crate::mempool::MempoolError;
use crate::metrics::{Source, metrics};
use crate::net::{MessageId, Misbehaviour, NetHandle, PeerId, REPORT_WINDOW, Verdict};

/// The orphan pool of the node: each orphan's sender, and the gossip message whose verdict
/// waits for it.
pub type OrphanTxs = SharedTxOrphans<PeerId, MessageId>;

/// Drains `queue` until it is closed (or the chain stops).
pub(super) async fn run(queue: Arc<FairQueue<PeerId, TxJob>>, w: Workers) {
    let mut state = w.chain.state();
    let mut tip = state.borrow_and_update().tip;
    loop {
        let now_tip = state.borrow_and_update().tip;
        if now_tip != tip {
            tip = now_tip;
            let queued = w.orphans.lock().retry_all();
            if queued > 0 {
                debug!(target: "mempool", orphans = queued, hash = %tip, "new tip: trying the orphan transactions again");
            }
        }
        let orphan = w.orphans.lock().next_work();
        let next = match orphan {
            Some(orphan) => {
                if retry_orphan(&w, orphan).await.is_err() {
                    return;
                }
                match queue.try_pop() {
                    Some(next) => next,
                    None => continue,
                }
            }
            None => tokio::select! {
                next = queue.pop() => match next {
                    Some(next) => next,
                    None => return,
                },
                changed = state.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    continue;
                }
            },
        };
        let (peer, job) = next;
        if handle(&w, peer, job).await.is_err() {
            return;
        }
    }
}

/// What became of a transaction offered to the mempool.
enum Offered {
    Accepted(Txid),
    /// Its inputs are unknown (and not spent on chain): to be pooled.
    Orphan(Txid, usize),
    Refused(MempoolError),
}

async fn handle(w: &Workers, peer: PeerId, job: TxJob) -> Result<(), ChainGone> {
    match job {
        TxJob::Gossip { id, tx } => {
            metrics().tx_received(Source::Gossip);
            let verdict = match offer(w, tx, peer, true).await? {
                (Offered::Accepted(_), _) => Verdict::Accept,
                (Offered::Orphan(txid, missing), tx) => {
                    // the verdict waits in the pool
                    pool(w, tx, txid, peer, missing, Some(id));
                    return Ok(());
                }
                (Offered::Refused(e), _) if e.is_peer_misbehaviour() => Verdict::Reject,
                (Offered::Refused(_), _) => Verdict::Ignore,
            };
            w.net.report(id, peer, verdict);
        }
        TxJob::Fetched { tx, done } => {
            match offer(w, tx, peer, true).await? {
                (Offered::Accepted(txid), tx) => {
                    debug!(target: "mempool", %txid, %peer, "transaction from the peer's mempool accepted; relaying");
                    w.net.publish_tx(&tx).await;
                }
                (Offered::Orphan(txid, missing), tx) => pool(w, tx, txid, peer, missing, None),
                (Offered::Refused(e), _) if e.is_peer_misbehaviour() => {
                    w.net.report_peer(
                        peer,
                        Misbehaviour::High,
                        &format!("invalid transaction: from its mempool: {e}"),
                    );
                }
                _ => {}
            }
            drop(done);
        }
        TxJob::Submit { tx, reply } => {
            metrics().tx_received(Source::Sync);
            let response = match offer(w, tx, peer, false).await? {
                (Offered::Accepted(txid), tx) => {
                    info!(target: "mempool", %txid, %peer, "transaction submitted by a client; relaying");
                    w.net.publish_tx(&tx).await;
                    Response::TxAccepted(txid)
                }
                (Offered::Refused(e), _) => {
                    if e.is_peer_misbehaviour() {
                        w.net.report_peer(
                            peer,
                            Misbehaviour::High,
                            &format!("submitted an invalid transaction: {e}"),
                        );
                    }
                    Response::TxRejected(e.to_string())
                }
                // never pooled (`may_pool` is false); answered as a refusal all the same
                (Offered::Orphan(..), _) => Response::TxRejected(
                    "the transaction spends outputs this node does not know: submit its parents first"
                        .into(),
                ),
            };
            reply.send(response);
        }
    }
    Ok(())
}

/// Offers `tx` from `peer` to the mempool; with `may_pool`, one whose inputs are unknown is
/// found to be an orphan (the caller pools it). Returns the transaction back.
async fn offer(
    w: &Workers,
    tx: Transaction,
    peer: PeerId,
    may_pool: bool,
) -> Result<(Offered, Transaction), ChainGone> {
    let source = if may_pool {
        peer.to_string()
    } else {
        format!("{peer} (submitted)")
    };
    let offered = match w.chain.submit_tx(tx.clone(), source).await? {
        Ok(txid) => {
            unlock_children(w, txid, &tx);
            Offered::Accepted(txid)
        }
        Err(MempoolError::MissingInputs { txid, missing })
            if may_pool && !spent_on_chain(w, &missing).await =>
        {
            Offered::Orphan(txid, missing.len())
        }
        Err(e) => Offered::Refused(e),
    };
    Ok((offered, tx))
}

/// Whether one of the `missing` inputs belongs to a confirmed transaction, i.e. was spent on
/// chain (a read error counts as no: the transaction is pooled and expires if it must).
async fn spent_on_chain(w: &Workers, missing: &[OutPoint]) -> bool {
    let mut parents: Vec<Txid> = missing.iter().map(|o| o.txid).collect();
    parents.sort_unstable();
    parents.dedup();
    w.reads.any_confirmed(parents).await.unwrap_or(false)
}

/// Pools `tx` from `peer` as an orphan, with the gossip message whose verdict waits (if any).
fn pool(
    w: &Workers,
    tx: Transaction,
    txid: Txid,
    peer: PeerId,
    missing: usize,
    held: Option<MessageId>,
) {
    let bytes = tx.encoded_len();
    let (added, pooled) = {
        let mut orphans = w.orphans.lock();
        let added = orphans.add(tx, txid, bytes, peer, held, Instant::now());
        (added, orphans.len())
    };
    metrics().orphan_txs(pooled);
    match added {
        Added::Pooled { removed } => {
            metrics().orphan_event("pooled", 1);
            info!(target: "mempool", %txid, %peer, missing, orphans = pooled,
                  "orphan transaction pooled until a parent arrives");
            let now = Instant::now();
            for orphan in removed {
                let event = if orphan.expires_by(now) {
                    "expired"
                } else {
                    "evicted"
                };
                debug!(target: "mempool", txid = %orphan.txid, peer = %orphan.from, event, "orphan transaction dropped");
                metrics().orphan_event(event, 1);
                release(&w.net, orphan, Verdict::Ignore);
            }
        }
        Added::Known { held } | Added::TooLarge { held } => {
            debug!(target: "mempool", %txid, %peer, bytes, "orphan transaction already pooled or too large");
            if let Some(id) = held {
                w.net.report(id, peer, Verdict::Ignore);
            }
        }
    }
}

/// Reports the verdict held for an orphan leaving the pool (if it is still worth reporting).
fn release(net: &NetHandle, orphan: Orphan<PeerId, MessageId>, verdict: Verdict) -> bool {
    match orphan.held {
        Some(id) if orphan.arrived.elapsed() < REPORT_WINDOW => {
            net.report(id, orphan.from, verdict);
            true
        }
        _ => false,
    }
}

/// `tx` (`txid`) entered the mempool: the orphans spending its outputs are to be tried again.
fn unlock_children(w: &Workers, txid: Txid, tx: &Transaction) {
    let unlocked = w.orphans.lock().unlocked_by(txid, tx.outputs.len());
    if unlocked > 0 {
        debug!(target: "mempool", %txid, orphans = unlocked, "a parent arrived: trying its orphan transactions again");
    }
}

/// Tries a pooled orphan again, as if its sender had just sent it.
async fn retry_orphan(w: &Workers, orphan: Orphan<PeerId, MessageId>) -> Result<(), ChainGone> {
    let (txid, from) = (orphan.txid, orphan.from);
    let source = format!("{from} (orphan)");
    let result = w.chain.submit_tx(orphan.tx.clone(), source).await?;
    let event = match result {
        Ok(_) => {
            info!(target: "mempool", %txid, peer = %from, "orphan transaction accepted; relaying");
            unlock_children(w, txid, &orphan.tx);
            let tx = orphan.tx.clone();
            // Accept forwards the original message; publishing reaches peers once gossipsub
            // has forgotten it (a no-op "duplicate" before).
            release(&w.net, orphan, Verdict::Accept);
            w.net.publish_tx(&tx).await;
            "accepted"
        }
        Err(MempoolError::MissingInputs { missing, .. }) => {
            if spent_on_chain(w, &missing).await {
                debug!(target: "mempool", %txid, peer = %from, "orphan transaction spends a coin spent on chain: dropped");
                release(&w.net, orphan, Verdict::Ignore);
                "dropped"
            } else {
                let gone = w.orphans.lock().put_back(orphan, Instant::now());
                for orphan in gone {
                    metrics().orphan_event("evicted", 1);
                    release(&w.net, orphan, Verdict::Ignore);
                }
                "waiting"
            }
        }
        Err(e) if e.is_peer_misbehaviour() => {
            info!(target: "mempool", %txid, peer = %from, "orphan transaction invalid: {e}");
            // Reject charges the sender; past the report window, it is charged directly.
            if !release(&w.net, orphan, Verdict::Reject) {
                w.net.report_peer(
                    from,
                    Misbehaviour::High,
                    &format!("invalid transaction: an orphan it sent: {e}"),
                );
            }
            "invalid"
        }
        Err(e) => {
            debug!(target: "mempool", %txid, peer = %from, "orphan transaction dropped: {e}");
            release(&w.net, orphan, Verdict::Ignore);
            "dropped"
        }
    };
    if event != "waiting" {
        metrics().orphan_event(event, 1);
    }
    metrics().orphan_txs(w.orphans.len());
    Ok(())
}

/// Drops the orphans `peer` sent (it disconnected or was banned); returns how many.
pub(super) fn drop_orphans_of(orphans: &OrphanTxs, net: &NetHandle, peer: &PeerId) -> usize {
    let (dropped, left) = {
        let mut pool = orphans.lock();
        (pool.drop_peer(peer), pool.len())
    };
    let count = dropped.len();
    for orphan in dropped {
        release(net, orphan, Verdict::Ignore);
    }
    metrics().orphan_event("peer_gone", count);
    metrics().orphan_txs(left);
    count
}
