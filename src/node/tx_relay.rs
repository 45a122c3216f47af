//! The transaction worker: ordered relay with an orphan pool.
//!
//! One worker drains the transaction queue (one peer's transactions in the order sent, peers
//! in turn) into the mempool, through the chain actor:
//!
//! - **accepted**: gossip gets Accept (gossipsub forwards it), a transaction from a `SubmitTx`
//!   or a peer's mempool is published; then the orphans spending its outputs are queued to be
//!   tried again;
//! - **inputs unknown** (gossip, or fetched from a peer's mempool): pooled as an orphan charged
//!   to the peer ([`super::tx_orphans`]), gossip verdict Ignore (not forwarded, no penalty) —
//!   unless one of its missing inputs belongs to a confirmed transaction: then it spends a coin
//!   already spent on chain and is dropped. A `SubmitTx` with unknown inputs is refused, as by
//!   Core's `sendrawtransaction`: a client submits parents first;
//! - **provably invalid**: gossip gets Reject, a fetched or submitted one a High penalty;
//! - anything else (duplicate, conflict, fee, full pool): Ignore.
//!
//! Orphans to try again are taken **one between every two queued transactions**, so a long
//! chain unlocked at once neither starves the other peers nor recurses. An orphan accepted
//! later is relayed like any new transaction and unlocks its own children; one found invalid
//! costs the peer that sent it. When the chain's tip changes every orphan is tried again (a
//! block may have confirmed a parent).

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
use crate::net::{Misbehaviour, PeerId, Verdict};

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
    /// Pooled as an orphan (or already pooled).
    Orphan,
    Refused(MempoolError),
}

async fn handle(w: &Workers, peer: PeerId, job: TxJob) -> Result<(), ChainGone> {
    match job {
        TxJob::Gossip { id, tx } => {
            metrics().tx_received(Source::Gossip);
            let verdict = match offer(w, tx, peer, true).await? {
                (Offered::Accepted(_), _) => Verdict::Accept,
                (Offered::Refused(e), _) if e.is_peer_misbehaviour() => Verdict::Reject,
                _ => Verdict::Ignore,
            };
            w.net.report(id, peer, verdict);
        }
        TxJob::Fetched { tx, done } => {
            match offer(w, tx, peer, true).await? {
                (Offered::Accepted(txid), tx) => {
                    debug!(target: "mempool", %txid, %peer, "transaction from the peer's mempool accepted; relaying");
                    w.net.publish_tx(&tx).await;
                }
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
                (Offered::Orphan, _) => Response::TxRejected(
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
/// pooled as an orphan. Returns the transaction back for relaying.
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
            pool(w, tx.clone(), txid, peer, missing.len());
            Offered::Orphan
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

fn pool(w: &Workers, tx: Transaction, txid: Txid, peer: PeerId, missing: usize) {
    let bytes = tx.encoded_len();
    let now = Instant::now();
    let (added, expired, pooled) = {
        let mut orphans = w.orphans.lock();
        let expired = orphans.expire(now);
        let added = orphans.add(tx, txid, bytes, peer, now);
        (added, expired, orphans.len())
    };
    for (txid, from) in &expired {
        debug!(target: "mempool", %txid, peer = %from, "orphan transaction expired");
    }
    metrics().orphan_event("expired", expired.len());
    metrics().orphan_txs(pooled);
    match added {
        Added::Pooled { evicted } => {
            metrics().orphan_event("pooled", 1);
            metrics().orphan_event("evicted", evicted);
            info!(target: "mempool", %txid, %peer, missing, evicted, orphans = pooled,
                  "orphan transaction pooled until a parent arrives");
        }
        Added::Known => {}
        Added::TooLarge => {
            debug!(target: "mempool", %txid, %peer, bytes, "orphan transaction too large to keep")
        }
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
async fn retry_orphan(w: &Workers, orphan: Orphan<PeerId>) -> Result<(), ChainGone> {
    let (txid, from) = (orphan.txid, orphan.from);
    let source = format!("{from} (orphan)");
    let result = w.chain.submit_tx(orphan.tx.clone(), source).await?;
    let event = match result {
        Ok(_) => {
            info!(target: "mempool", %txid, peer = %from, "orphan transaction accepted; relaying");
            w.net.publish_tx(&orphan.tx).await;
            unlock_children(w, txid, &orphan.tx);
            "accepted"
        }
        Err(MempoolError::MissingInputs { missing, .. }) => {
            if spent_on_chain(w, &missing).await {
                debug!(target: "mempool", %txid, peer = %from, "orphan transaction spends a coin spent on chain: dropped");
                "dropped"
            } else {
                w.orphans.lock().put_back(orphan, Instant::now());
                "waiting"
            }
        }
        Err(e) if e.is_peer_misbehaviour() => {
            info!(target: "mempool", %txid, peer = %from, "orphan transaction invalid: {e}");
            w.net.report_peer(
                from,
                Misbehaviour::High,
                &format!("invalid transaction: an orphan it sent: {e}"),
            );
            "invalid"
        }
        Err(e) => {
            debug!(target: "mempool", %txid, peer = %from, "orphan transaction dropped: {e}");
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
pub(super) fn drop_orphans_of(orphans: &SharedTxOrphans<PeerId>, peer: &PeerId) -> usize {
    let (dropped, left) = {
        let mut pool = orphans.lock();
        (pool.drop_peer(peer), pool.len())
    };
    metrics().orphan_event("peer_gone", dropped);
    metrics().orphan_txs(left);
    dropped
}
