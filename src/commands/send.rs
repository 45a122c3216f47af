//! `send`: build and sign a payment from the wallet, then mine it here (`--mine`) or submit it
//! to a running node, remembering the unconfirmed spend.

use std::path::Path;

use anyhow::{Result, anyhow, bail};
use gossipcoin_proto::{Address, Amount, OutPoint};
use tracing::info;

use super::{chain_dir, mine_header, open_read_only};
use crate::chain::{Accepted, Chain};
use crate::node::unix_now;
use crate::params::ChainParams;
use crate::store::{ChainRead, Store};
use crate::wallet::{self, Wallet};
use crate::{consensus, miner};

pub(super) struct SendRequest {
    pub(super) from: Address,
    pub(super) to: Address,
    pub(super) amount: Amount,
    pub(super) fee: Amount,
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
    spendable: &[(OutPoint, gossipcoin_proto::Coin)],
    height: u32,
    params: &ChainParams,
) -> Result<Payment> {
    let key = signing_key(wallet, dir, &req.from)?;
    let tx = wallet::build_payment(key, spendable, req.to.pubkey_hash(), req.amount, req.fee)?;
    let txid = tx.compute_txid();
    info!(target: "wallet", %txid, from = %req.from, to = %req.to, amount = %req.amount,
          fee = %req.fee, inputs = tx.inputs.len(), "signed transaction");
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
    let confirmed = spendable_coins(chain.store(), chain.params(), &req.from, height)?;
    // Coins that unconfirmed sends already spend are off limits; their change is not yet
    // mineable here (its parent is not in this block).
    let spendable: Vec<_> = pending
        .spendable(&req.from.pubkey_hash(), confirmed, height)
        .into_iter()
        .filter(|(_, c)| c.height < height)
        .collect();
    let Payment { tx, txid, fee } =
        build_checked(&wallet, dir, &req, &spendable, height, chain.params())?;

    let reward_to = req.miner.unwrap_or(req.from).pubkey_hash();
    let time = unix_now().max(chain.median_time_past(&tip.hash)? + 1);
    let mut block = miner::assemble_block(
        tip.hash,
        height,
        time,
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
    {
        let view = store.read()?;
        pending.prune(|op| view.coin(op).ok().flatten().is_some());
    }
    let confirmed = spendable_coins(&store, &params, &req.from, height)?;
    let spendable = pending.spendable(&req.from.pubkey_hash(), confirmed, height);
    let Payment { tx, txid, .. } = build_checked(&wallet, dir, &req, &spendable, height, &params)?;
    drop(store);
    let addr = crate::client::target(node, dir);
    match crate::client::submit(&addr, &tx)? {
        crate::client::Submitted::Accepted(accepted) if accepted == txid => {
            pending.push(tx);
            pending.save(dir)?;
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

/// The coins of `owner` that a transaction in a block at `height` may spend.
fn spendable_coins(
    store: &Store,
    params: &ChainParams,
    owner: &Address,
    height: u32,
) -> Result<Vec<(OutPoint, gossipcoin_proto::Coin)>> {
    let maturity = params.coinbase_maturity.max(1);
    let view = store.read()?;
    let mut coins = Vec::new();
    for (outpoint, _) in view.utxos_of(&owner.pubkey_hash())? {
        let coin = view.coin(&outpoint)?.ok_or_else(|| {
            anyhow!("address index names {outpoint}, which is not in the UTXO set")
        })?;
        if coin.is_coinbase && height.saturating_sub(coin.height) < maturity {
            continue;
        }
        coins.push((outpoint, coin));
    }
    Ok(coins)
}
