//! `send`: build and sign a payment from the wallet, then mine it here (`--mine`) or submit it
//! to a running node, remembering the unconfirmed spend.

use std::path::Path;

use anyhow::{Result, anyhow, bail};
use gossipcoin_proto::{Address, Amount, OutPoint};
use tracing::info;

use super::{chain_dir, mine_header, open_read_only};
use crate::chain::{Accepted, Chain};
use crate::mempool::FeeRate;
use crate::node::unix_now;
use crate::params::ChainParams;
use crate::store::{ChainRead, Store};
use crate::wallet::{self, Wallet};
use crate::{consensus, miner};

/// The fee rate of a payment sent straight to a node without `--fee`: twice the default
/// minimum relay rate, as this process cannot ask that node for its estimate.
const NETWORK_FEE_RATE: FeeRate = FeeRate::from_units_per_vb(2);

pub(super) struct SendRequest {
    pub(super) from: Address,
    pub(super) to: Address,
    pub(super) amount: Amount,
    /// `None`: the default of the path taken (see `send --help`).
    pub(super) fee: Option<Amount>,
    pub(super) miner: Option<Address>,
    pub(super) threads: usize,
}

/// A signed payment, checked on its own, with the fee it pays.
struct Payment {
    tx: gossipcoin_proto::Transaction,
    txid: gossipcoin_proto::Txid,
    fee: Amount,
}

/// The wallet's key for `from`, or a clear error naming the wallet file.
fn signing_key<'w>(
    wallet: &'w Wallet,
    dir: &Path,
    from: &Address,
) -> Result<&'w crate::keys::PrivateKey> {
    wallet.key_for(&from.pubkey_hash()).ok_or_else(|| {
        anyhow!(
            "address {from} is not in this wallet ({}); see listaddresses",
            dir.join(wallet::file::WALLET_FILE).display()
        )
    })
}

/// Builds and signs `req` from `spendable`, and checks the transaction before anyone sees it.
fn build_checked(
    wallet: &Wallet,
    dir: &Path,
    req: &SendRequest,
    default_rate: FeeRate,
    spendable: &[(OutPoint, gossipcoin_proto::Coin)],
    height: u32,
    params: &ChainParams,
) -> Result<Payment> {
    let key = signing_key(wallet, dir, &req.from)?;
    let build = |fee| wallet::build_payment(key, spendable, req.to.pubkey_hash(), req.amount, fee);
    let (tx, fee) = match req.fee {
        Some(fee) => (build(fee)?, fee),
        None => crate::mempool::fit_fee(default_rate, build)?,
    };
    let txid = tx.compute_txid();
    info!(target: "wallet", %txid, from = %req.from, to = %req.to, amount = %req.amount,
          %fee, inputs = tx.inputs.len(), "signed transaction");
    let coins: Vec<_> = tx
        .inputs
        .iter()
        .map(|i| {
            spendable
                .iter()
                .find(|(op, _)| *op == i.prevout)
                .map(|(_, c)| *c)
        })
        .collect::<Option<_>>()
        .ok_or_else(|| anyhow!("built transaction spends a coin it did not select"))?;
    consensus::check_transaction(&tx)?;
    let fee = consensus::check_tx_spends(&tx, &coins, height, params)?;
    Ok(Payment { tx, txid, fee })
}

/// Builds and signs the payment, mines it into a block on top of the tip and connects it.
pub(super) fn send_and_mine(dir: &Path, params: ChainParams, req: SendRequest) -> Result<()> {
    let wallet = Wallet::load(dir)?;
    signing_key(&wallet, dir, &req.from)?; // before opening the chain: the real problem first
    if !Store::exists(chain_dir(dir)) {
        bail!(
            "no blockchain in {}: run createblockchain first",
            dir.display()
        );
    }
    let chain = Chain::open(&chain_dir(dir), params)?;
    let tip = chain.tip()?;
    let height = tip.height + 1;
    let pending = wallet::Pending::load(dir)?;
    let confirmed = confirmed_coins(chain.store(), &req.from)?;
    // Coins that unconfirmed sends already spend are off limits; their change is not
    // mineable here (its parent is not in this block), so it is not offered.
    let spendable = wallet::coins::spendable(
        confirmed,
        std::iter::empty(),
        |op| pending.spends(op),
        height,
        chain.params(),
    );
    let Payment { tx, txid, fee } = build_checked(
        &wallet,
        dir,
        &req,
        FeeRate::ZERO,
        &spendable,
        height,
        chain.params(),
    )?;

    let reward_to = req.miner.unwrap_or(req.from).pubkey_hash();
    let time = unix_now().max(chain.median_time_past(&tip.hash)? + 1);
    let mut block = miner::assemble_block(
        tip.hash,
        height,
        time,
        chain.next_bits(&tip.hash)?,
        chain.params(),
        reward_to,
        vec![tx],
        fee,
    )?;
    block.header = mine_header(&block, req.threads)?;
    match chain.accept_block(&block, unix_now(), crate::chain::Origin::Requested)? {
        Accepted::NewTip { tip, .. } => {
            println!(
                "Success! txid {txid} mined in block {} at height {}",
                tip.hash, tip.height
            );
            Ok(())
        }
        Accepted::SideBranch { hash, .. } | Accepted::NotStored { hash, .. } => {
            bail!("block {hash} did not become the tip (another process extended the chain)")
        }
    }
}

/// Builds and signs the payment from the local wallet and store (readable while a daemon runs),
/// submits it to a node and reports whether it was accepted.
pub(super) fn send_to_network(
    dir: &Path,
    params: ChainParams,
    req: SendRequest,
    node: Option<&str>,
) -> Result<()> {
    let wallet = Wallet::load(dir)?;
    signing_key(&wallet, dir, &req.from)?;
    let store = open_read_only(dir)?;
    let height = store.read()?.tip()?.map_or(0, |t| t.height) + 1;
    let mut pending = wallet::Pending::load(dir)?;
    // Follow earlier payments on the chain: confirmed or conflicted ones no longer hold coins.
    let refreshed = pending.refresh(&store.read()?)?;
    if !refreshed.changed.is_empty() || !refreshed.pruned.is_empty() || pending.needs_rewrite() {
        pending.compact(dir)?;
    }
    let confirmed = confirmed_coins(&store, &req.from)?;
    let spendable = pending.spendable(
        req.from.pubkey_hash(),
        confirmed,
        |_| false,
        height,
        &params,
    );
    let Payment { tx, txid, fee } = build_checked(
        &wallet,
        dir,
        &req,
        NETWORK_FEE_RATE,
        &spendable,
        height,
        &params,
    )?;
    drop(store);
    if pending.contains(&txid) {
        bail!("payment {txid} is already known: the same transaction was submitted before");
    }
    let addr = crate::client::target(node, dir);
    match crate::client::submit(&addr, &tx)? {
        crate::client::Submitted::Accepted(accepted) if accepted == txid => {
            let now = crate::node::now_ms() / 1000;
            pending.record(dir, wallet::Payment::new(tx, fee, now, height - 1))?;
            println!("Success! txid {txid} accepted by {addr}");
            Ok(())
        }
        crate::client::Submitted::Accepted(other) => {
            bail!("the node answered with txid {other}, not {txid}")
        }
        crate::client::Submitted::Rejected(reason) => {
            bail!("the node at {addr} refused the transaction: {reason}")
        }
    }
}

/// The coins of `owner` in the UTXO set (maturity is [`wallet::coins::spendable`]'s to judge).
fn confirmed_coins(
    store: &Store,
    owner: &Address,
) -> Result<Vec<(OutPoint, gossipcoin_proto::Coin)>> {
    let view = store.read()?;
    let mut coins = Vec::new();
    for (outpoint, _) in view.utxos_of(&owner.pubkey_hash())? {
        let coin = view.coin(&outpoint)?.ok_or_else(|| {
            anyhow!("address index names {outpoint}, which is not in the UTXO set")
        })?;
        coins.push((outpoint, coin));
    }
    Ok(coins)
}
