//! Mempool exchange on connect: after the Status exchange with a new peer, ask it which
//! transactions it holds (`GetMempool`), fetch those we lack (`GetTxs`, in chunks) and feed them
//! through that peer's transaction queue, as if it had gossiped them: same order, bounds,
//! orphan pool and penalties. So a restarted node learns the pending payments without anyone
//! sending them again.
//!
//! Bounded and accountable: once per connection; at most [`MAX_MEMPOOL_TXIDS`] txids listed;
//! one chunk of at most [`MAX_TXS_PER_REQUEST`] in flight, the next asked for only once the
//! previous one was validated; what arrives is charged to the peer's queue (bytes per peer).
//! A listing over its limit or with a txid twice, or an answer of the wrong kind, is a Mid
//! offence; a transaction not asked for (or out of the asked order, or twice) is High; either
//! ends the exchange. A peer lists its pool by fee rate (parents first), and we fetch at most
//! [`MAX_FETCH_BYTES`] of it (the default mempool cap): the best paying part of a flooded pool,
//! never more than our pool could hold.

use std::collections::HashSet;

use gossipcoin_proto::message::{MAX_MEMPOOL_TXIDS, MAX_TXS_PER_REQUEST, Request, Response};
use gossipcoin_proto::{Transaction, Txid};
use tokio::sync::oneshot;
use tracing::{debug, info};

use super::ingest::{Ingest, MEMPOOL_SERVE_INTERVAL};
use crate::consensus;
use crate::net::{Misbehaviour, PeerId};

/// Encoded bytes of transactions one exchange fetches at most.
pub const MAX_FETCH_BYTES: usize = 50_000_000;

/// Learns `peer`'s mempool and fetches what we lack. Called once per connection, after the
/// Status exchange.
pub async fn run(peer: PeerId, ingest: Ingest) {
    let net = ingest.net().clone();
    let mut answer = net.request(peer, Request::GetMempool).await;
    if let Ok(Response::Error(why)) = &answer
        && why.starts_with("busy")
    {
        // It listed its mempool to us moments ago (we restarted, or reconnected): once more
        // after its interval, so what it holds still reaches us.
        debug!(target: "mempool", %peer, "peer listed its mempool to us moments ago: asking again in {}s", MEMPOOL_SERVE_INTERVAL.as_secs());
        tokio::time::sleep(MEMPOOL_SERVE_INTERVAL).await;
        answer = net.request(peer, Request::GetMempool).await;
    }
    let listed = match answer {
        Ok(Response::MempoolTxids(txids)) => txids,
        Ok(Response::Error(why)) => {
            debug!(target: "mempool", %peer, "peer did not list its mempool: {why}");
            return;
        }
        Ok(other) => {
            let reason = format!("bad mempool answer: expected txids, got {}", kind(&other));
            net.report_peer(peer, Misbehaviour::Mid, &reason);
            return;
        }
        Err(e) => {
            debug!(target: "mempool", %peer, "mempool request failed: {e}");
            return;
        }
    };
    if let Err(why) = check_listing(&listed) {
        net.report_peer(
            peer,
            Misbehaviour::Mid,
            &format!("bad mempool answer: {why}"),
        );
        return;
    }
    let count = listed.len();
    let Ok(missing) = ingest.chain().mempool_missing(listed).await else {
        return;
    };
    let wanted: Vec<Txid> = {
        let orphans = ingest.orphans().lock();
        missing
            .into_iter()
            .filter(|t| !orphans.contains(t))
            .collect()
    };
    if wanted.is_empty() {
        debug!(target: "mempool", %peer, listed = count, "peer's mempool holds nothing new");
        return;
    }
    info!(target: "mempool", %peer, listed = count, missing = wanted.len(), "fetching the transactions of the peer's mempool we lack");
    let (mut fetched, mut from, mut fetched_bytes) = (0, 0, 0usize);
    while from < wanted.len() && fetched_bytes < MAX_FETCH_BYTES {
        let asked: Vec<Txid> = wanted[from..]
            .iter()
            .take(MAX_TXS_PER_REQUEST)
            .copied()
            .collect();
        let txs = match net
            .request(
                peer,
                Request::GetTxs {
                    txids: asked.clone(),
                },
            )
            .await
        {
            Ok(Response::Txs(txs)) => txs,
            Ok(Response::Error(why)) => {
                debug!(target: "mempool", %peer, "peer did not send its transactions: {why}");
                break;
            }
            Ok(other) => {
                let reason = format!(
                    "bad mempool answer: expected transactions, got {}",
                    kind(&other)
                );
                net.report_peer(peer, Misbehaviour::Mid, &reason);
                break;
            }
            Err(e) => {
                debug!(target: "mempool", %peer, "transactions request failed: {e}");
                break;
            }
        };
        let (checked, settled) = match check_txs(&asked, txs) {
            Ok(ok) => ok,
            Err(why) => {
                net.report_peer(
                    peer,
                    Misbehaviour::High,
                    &format!("protocol violation: {why}"),
                );
                break;
            }
        };
        from += settled;
        fetched += checked.len();
        fetched_bytes += checked.iter().map(|(_, bytes)| *bytes).sum::<usize>();
        // The last one of the chunk tells when the chunk has been handled.
        let mut wait = None;
        let last = checked.len().saturating_sub(1);
        for (i, (tx, bytes)) in checked.into_iter().enumerate() {
            let done = (i == last).then(|| {
                let (done, handled) = oneshot::channel::<()>();
                wait = Some(handled);
                done
            });
            ingest.fetched(peer, tx, bytes, done);
        }
        if let Some(handled) = wait {
            // Err when dropped: handled, or the peer's queue was dropped (banned).
            let _ = handled.await;
        }
    }
    debug!(target: "mempool", %peer, fetched, "mempool exchange done");
}

/// Checks a `MempoolTxids` listing: within the count limit, no txid twice.
fn check_listing(txids: &[Txid]) -> Result<(), String> {
    if txids.len() > MAX_MEMPOOL_TXIDS {
        return Err(format!(
            "{} txids listed, more than {MAX_MEMPOOL_TXIDS}",
            txids.len()
        ));
    }
    let mut seen = HashSet::with_capacity(txids.len());
    if let Some(dup) = txids.iter().find(|t| !seen.insert(**t)) {
        return Err(format!("txid {dup} listed twice"));
    }
    Ok(())
}

/// Checks a `Txs` answer to a request for `asked`: each transaction must be one asked for,
/// in the asked order, none twice. Returns the transactions with their encoded sizes, and how
/// many of `asked` are settled (up to the last one answered; all of them for an empty answer,
/// which means the peer has none of them any more). The rest is asked for again: the answer
/// stopped at its byte bound.
fn check_txs(
    asked: &[Txid],
    txs: Vec<Transaction>,
) -> Result<(Vec<(Transaction, usize)>, usize), String> {
    if txs.len() > asked.len() {
        return Err(format!(
            "{} transactions sent for {} asked",
            txs.len(),
            asked.len()
        ));
    }
    if txs.is_empty() {
        return Ok((Vec::new(), asked.len()));
    }
    let mut next = 0;
    let mut out = Vec::with_capacity(txs.len());
    for tx in txs {
        let (txid, size) = consensus::txid_and_size(&tx);
        match asked[next..].iter().position(|t| *t == txid) {
            Some(at) => next += at + 1,
            None => {
                return Err(format!(
                    "transaction {txid} was not asked for (or not in the asked order, or twice)"
                ));
            }
        }
        out.push((tx, size));
    }
    Ok((out, next))
}

fn kind(response: &Response) -> &'static str {
    match response {
        Response::Status(_) => "status",
        Response::Blocks(_) => "blocks",
        Response::Block(_) => "block",
        Response::TxAccepted(_) => "tx_accepted",
        Response::TxRejected(_) => "tx_rejected",
        Response::Error(_) => "error",
        Response::Headers(_) => "headers",
        Response::MempoolTxids(_) => "mempool_txids",
        Response::Txs(_) => "txs",
    }
}

#[cfg(test)]
mod tests {
    use gossipcoin_proto::{Amount, PubkeyHash};

    use super::*;

    fn txs(n: u32) -> (Vec<Transaction>, Vec<Txid>) {
        let txs: Vec<Transaction> = (0..n)
            .map(|h| Transaction::coinbase(h, PubkeyHash([1; 20]), Amount::ZERO))
            .collect();
        let ids = txs.iter().map(Transaction::compute_txid).collect();
        (txs, ids)
    }

    #[test]
    fn a_listing_over_its_limit_or_with_a_txid_twice_is_refused() {
        let (_, ids) = txs(3);
        assert!(check_listing(&ids).is_ok());
        assert!(check_listing(&[]).is_ok());
        let twice = [ids[0], ids[1], ids[0]];
        assert!(check_listing(&twice).unwrap_err().contains("twice"));
        let many = vec![Txid([0; 32]); MAX_MEMPOOL_TXIDS + 1];
        assert!(check_listing(&many).unwrap_err().contains("more than"));
    }

    #[test]
    fn an_answer_must_be_what_was_asked_in_order() {
        let (all, ids) = txs(5);
        // All of them, or some in order: settled up to the last one sent.
        let (got, settled) = check_txs(&ids, all.clone()).unwrap();
        assert_eq!((got.len(), settled), (5, 5));
        let (got, settled) = check_txs(&ids, vec![all[1].clone(), all[3].clone()]).unwrap();
        assert_eq!((got.len(), settled), (2, 4));
        assert_eq!(got[0].1, all[1].encoded_len());
        // None: the peer has none of them any more.
        assert_eq!(check_txs(&ids, vec![]).unwrap().1, 5);
        // Out of order, twice, unasked, too many.
        assert!(check_txs(&ids, vec![all[3].clone(), all[1].clone()]).is_err());
        assert!(check_txs(&ids, vec![all[1].clone(), all[1].clone()]).is_err());
        let (other, _) = txs(6);
        assert!(check_txs(&ids[..2], vec![other[5].clone()]).is_err());
        assert!(check_txs(&ids[..2], all[..3].to_vec()).is_err());
    }
}
