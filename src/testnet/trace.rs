//! `testnet trace TXID|BLOCKHASH`: one payment (or block) followed across every node, from the
//! nodes' JSON logs: where it was submitted, when each node took it into its mempool and from
//! which node, which node mined it into which block, and when each node accepted that block and
//! from which node, with the delays.
//!
//! It reads the events the node writes at INFO: `payment submitted` / `transaction submitted by
//! a client` (the submission), `accepted transaction` (mempool, `from`), `confirmed
//! transaction` (`txid` → `block`), `mined block` and `accepted block` (`hash`, `from`). A node
//! that connected the block in a sync batch logs `confirmed transaction` at DEBUG only, but its
//! `accepted block` still shows when the block reached it.

use std::path::PathBuf;

use anyhow::{Result, bail};

use super::logs::{Entry, Event, Line, Tail, name_peers, peer_names};
use super::{State, table};

/// What `testnet trace` follows.
#[derive(Debug, Clone)]
pub struct TraceOptions {
    pub dir: PathBuf,
    /// A txid or a block hash (hex).
    pub id: String,
}

/// One event of the timeline.
struct Step {
    secs: f64,
    node: usize,
    what: String,
}

/// When one node saw the transaction and its block.
#[derive(Default, Clone)]
struct Seen {
    mempool: Option<(f64, String)>,
    block: Option<(f64, String)>,
}

/// Seconds since the Unix epoch of a tracing timestamp `2026-03-21T10:00:01.123456Z`.
fn secs(ts: &str) -> Option<f64> {
    let (date, time) = ts.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let (h, min) = (
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
    );
    let s = t.next()?.parse::<f64>().ok()?;
    // days from 1970-01-01 (Howard Hinnant's days_from_civil)
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + h * 3600.0 + min * 60.0 + s)
}

/// Who a `from` field names: a testnet node, the node's own miner, API or wallet, its saved
/// mempool, or a client.
fn source(from: &str, peers: &[(String, String)]) -> String {
    match from {
        "miner" => "its own miner".into(),
        "api" => "its API".into(),
        "wallet" => "its wallet".into(),
        "mempool.dat" => "its saved mempool (mempool.dat)".into(),
        "operator" => "its operator (submitblock)".into(),
        other => {
            let named = name_peers(other, peers);
            if named == other && !peers.iter().any(|(_, n)| n == other) {
                format!("client {}", short(other))
            } else {
                named
            }
        }
    }
}

fn short(id: &str) -> String {
    if id.len() > 16 {
        format!("{}…", &id[..16])
    } else {
        id.to_string()
    }
}

/// Every node's parsed log events, with their time in seconds.
fn read_all(state: &State) -> Result<Vec<(usize, f64, Event)>> {
    let mut all = Vec::new();
    for (i, n) in state.nodes.iter().enumerate() {
        let entries: Vec<Entry> = Tail::new(i, n.log.clone(), 0).read_new(true)?;
        for e in entries {
            if let Line::Event(ev) = e.line
                && let Some(t) = secs(ev.timestamp())
            {
                all.push((e.node, t, ev));
            }
        }
    }
    all.sort_by(|a, b| a.1.total_cmp(&b.1));
    Ok(all)
}

/// Runs `testnet trace`.
pub fn trace(opts: &TraceOptions) -> Result<()> {
    let state = State::load_existing(&opts.dir)?;
    let id = opts.id.trim().to_lowercase();
    if id.len() != 64 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("{:?} is not a txid or block hash (64 hex digits)", opts.id);
    }
    let events = read_all(&state)?;
    let peers = peer_names(&state);
    let names: Vec<&str> = state.nodes.iter().map(|n| n.name.as_str()).collect();
    let mut steps = Vec::new();
    let mut seen = vec![Seen::default(); state.nodes.len()];
    let is_tx = events.iter().any(|(_, _, e)| e.field("txid") == Some(&id));
    let mut block = (!is_tx).then(|| id.clone());
    let mut submitted_at = None;
    if is_tx {
        for (node, t, e) in events
            .iter()
            .filter(|(_, _, e)| e.field("txid") == Some(&id))
        {
            let from = e.field("from").unwrap_or("-");
            let what = match e.message.as_str() {
                "payment submitted" | "signed transaction" => {
                    submitted_at.get_or_insert(*t);
                    "submitted: a payment from the node's wallet".to_string()
                }
                "transaction submitted by a client; relaying" => {
                    submitted_at.get_or_insert(*t);
                    format!(
                        "submitted by a client ({})",
                        source(e.field("peer").unwrap_or("-"), &peers)
                    )
                }
                "accepted transaction" => {
                    let from = if from.ends_with("(submitted)") {
                        "a client (submitted here)".to_string()
                    } else {
                        source(from, &peers)
                    };
                    seen[*node].mempool.get_or_insert((*t, from.clone()));
                    format!("into the mempool, from {from}")
                }
                "confirmed transaction" => {
                    if block.is_none() {
                        block = e.field("block").map(str::to_string);
                    }
                    format!(
                        "confirmed in block {} at height {}",
                        short(e.field("block").unwrap_or("-")),
                        e.field("height").unwrap_or("-")
                    )
                }
                other => other.to_string(),
            };
            steps.push(Step {
                secs: *t,
                node: *node,
                what,
            });
        }
    }
    let mut mined = None;
    if let Some(b) = &block {
        for (node, t, e) in events.iter().filter(|(_, _, e)| e.field("hash") == Some(b)) {
            let height = e.field("height").unwrap_or("-");
            let what = match e.message.as_str() {
                "mined block" => {
                    mined.get_or_insert((*t, *node, height.to_string()));
                    format!(
                        "mined block {} at height {height} ({} txs with the coinbase)",
                        short(b),
                        e.field("txs").unwrap_or("-")
                    )
                }
                "accepted block" => {
                    let from = source(e.field("from").unwrap_or("-"), &peers);
                    seen[*node].block.get_or_insert((*t, from.clone()));
                    format!(
                        "accepted block {} at height {height}, from {from}",
                        short(b)
                    )
                }
                other => format!("{other} ({})", short(b)),
            };
            steps.push(Step {
                secs: *t,
                node: *node,
                what,
            });
        }
    }
    if steps.is_empty() {
        bail!(
            "no node of the testnet in {} logged {id}: not a txid or block hash it has seen \
             (or its logs were removed)",
            opts.dir.display()
        );
    }
    steps.sort_by(|a, b| a.secs.total_cmp(&b.secs));
    let start = steps[0].secs;
    let kind = if is_tx { "transaction" } else { "block" };
    println!("Trace of {kind} {id} across {} nodes\n", names.len());
    let rows: Vec<Vec<String>> = steps
        .iter()
        .map(|s| {
            vec![
                format!("+{:.3}s", s.secs - start),
                names[s.node].to_string(),
                s.what.clone(),
            ]
        })
        .collect();
    print!("{}", table(&["time", "node", "event"], &rows));

    // Per node: when it got the transaction and the block, and the block's delay since mined.
    let origin = mined.as_ref().map(|m| m.0).or_else(|| {
        seen.iter()
            .filter_map(|s| s.block.as_ref().map(|b| b.0))
            .min_by(f64::total_cmp)
    });
    let dash = || "-".to_string();
    let rows: Vec<Vec<String>> = seen
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut row = vec![names[i].to_string()];
            if is_tx {
                row.push(
                    s.mempool
                        .as_ref()
                        .map_or_else(dash, |m| format!("+{:.3}s", m.0 - start)),
                );
                row.push(s.mempool.as_ref().map_or_else(dash, |m| m.1.clone()));
            }
            row.push(
                s.block
                    .as_ref()
                    .map_or_else(dash, |b| format!("+{:.3}s", b.0 - start)),
            );
            row.push(s.block.as_ref().map_or_else(dash, |b| b.1.clone()));
            row.push(match (&s.block, origin) {
                (Some(b), Some(o)) => format!("{:.3}s", b.0 - o),
                _ => dash(),
            });
            row
        })
        .collect();
    let header: &[&str] = if is_tx {
        &["node", "mempool", "from", "block", "from", "block delay"]
    } else {
        &["node", "block", "from", "block delay"]
    };
    println!();
    print!("{}", table(header, &rows));
    println!();
    let reached = seen.iter().filter(|s| s.block.is_some()).count();
    match (&block, &mined) {
        (None, _) => println!(
            "Not confirmed yet: in the mempool of {} of {} nodes.",
            seen.iter().filter(|s| s.mempool.is_some()).count(),
            names.len()
        ),
        (Some(b), Some((t, node, height))) => {
            let last = seen
                .iter()
                .filter_map(|s| s.block.as_ref().map(|b| b.0))
                .max_by(f64::total_cmp)
                .unwrap_or(*t);
            println!(
                "Block {} at height {height}, mined by {}, reached {reached} of {} nodes within {:.3}s.",
                short(b),
                names[*node],
                names.len(),
                last - t
            );
        }
        (Some(b), None) => println!(
            "Block {}: reached {reached} of {} nodes (who mined it is not in these logs).",
            short(b),
            names.len()
        ),
    }
    if let Some(t) = submitted_at
        && let Some(first) = seen
            .iter()
            .filter_map(|s| s.block.as_ref().map(|b| b.0))
            .min_by(f64::total_cmp)
    {
        println!(
            "From submission to the first node's block: {:.3}s.",
            first - t
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_become_epoch_seconds() {
        assert_eq!(secs("1970-01-01T00:00:00.000000Z"), Some(0.0));
        assert_eq!(secs("2000-03-01T00:00:01.500000Z"), Some(951_868_801.5));
        assert_eq!(secs("2026-11-28T01:49:10Z"), Some(1_795_830_550.0));
        assert_eq!(secs("garbage"), None);
    }

    #[test]
    fn sources_name_nodes_and_say_what_else_they_are() {
        let peers = [("12D3KooWabc".to_string(), "miner-1".to_string())];
        assert_eq!(source("12D3KooWabc", &peers), "miner-1");
        assert_eq!(source("miner", &peers), "its own miner");
        assert_eq!(source("api", &peers), "its API");
        assert_eq!(source("wallet", &peers), "its wallet");
        assert!(source("12D3KooWzzzzzzzzzzzzzz", &peers).starts_with("client 12D3"));
    }
}
