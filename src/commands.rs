//! The offline commands: each turns parsed CLI arguments into calls on the wallet, chain and
//! store, and prints the tutorial's outputs on stdout.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use gossipcoin_proto::{Address, Amount, Block, BlockHash, OutPoint, Target};
use tracing::info;

use crate::chain::{Accepted, Chain};
use crate::cli::{Cli, Command};
use crate::node::unix_now;
use crate::params::ChainParams;
use crate::store::{ChainRead, Store};
use crate::wallet::{self, Wallet};
use crate::{consensus, miner};

/// Runs one command.
pub fn run(cli: Cli) -> Result<()> {
    let params = match &cli.params {
        Some(path) => ChainParams::load(path)?,
        None => ChainParams::devnet(),
    };
    let dir = || data_dir(&cli);
    match &cli.command {
        Command::Createwallet => create_wallet(&dir()?),
        Command::Listaddresses => list_addresses(&dir()?),
        Command::Createblockchain { address } => create_blockchain(&dir()?, params, address),
        Command::Getbalance { address } => get_balance(&dir()?, address),
        Command::Send {
            from,
            to,
            amount,
            fee,
            mine,
            miner_address,
            threads,
            node,
        } => {
            let req = SendRequest {
                from: parse_address(from)?,
                to: parse_address(to)?,
                amount: parse_amount(amount, "amount")?,
                fee: parse_fee(fee)?,
                miner: miner_address.as_deref().map(parse_address).transpose()?,
                threads: *threads,
            };
            if *mine {
                send_and_mine(&dir()?, params, req)
            } else {
                send_to_network(&dir()?, params, req, node.as_deref())
            }
        }
        Command::Startnode {
            role,
            config,
            listen,
            bootstrap,
            miner_address,
            genesis,
            threads,
        } => {
            let overrides = crate::config::Overrides {
                role: role.map(Into::into),
                config_file: config.clone(),
                listen: listen.clone(),
                bootstrap: bootstrap.clone(),
                miner_address: miner_address.clone(),
                genesis: genesis.clone(),
                threads: *threads,
                node_id: cli.node_id,
            };
            start_node(&dir()?, params, overrides)
        }
        Command::Generate { blocks, address } => generate(&dir()?, params, *blocks, address),
        Command::Printchain => print_chain(&dir()?),
        Command::Reindexutxo => reindex_utxo(&dir()?),
        Command::Verifychain => verify_chain(&dir()?),
        Command::Demo { keep } => crate::demo::run(*keep),
    }
}

/// `--data-dir`, else `./node_<NODE_ID>`. A path that exists but is not a directory is refused.
fn data_dir(cli: &Cli) -> Result<PathBuf> {
    let dir = match (&cli.data_dir, cli.node_id) {
        (Some(d), _) => d.clone(),
        (None, Some(id)) => PathBuf::from(format!("node_{id}")),
        (None, None) => bail!("no data directory: pass --data-dir DIR or set NODE_ID (e.g. 3000)"),
    };
    if dir.exists() && !dir.is_dir() {
        bail!(
            "data directory {} exists but is not a directory",
            dir.display()
        );
    }
    Ok(dir)
}

fn chain_dir(dir: &Path) -> PathBuf {
    dir.join("chain")
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))
}

fn parse_address(s: &str) -> Result<Address> {
    Ok(s.parse::<Address>()?)
}

fn parse_amount(s: &str, what: &str) -> Result<Amount> {
    let a = Amount::parse_coins(s).with_context(|| format!("invalid {what}"))?;
    if a == Amount::ZERO {
        bail!("invalid {what}: must be greater than zero");
    }
    Ok(a)
}

fn parse_fee(s: &str) -> Result<Amount> {
    Amount::parse_coins(s).context("invalid fee")
}

fn create_wallet(dir: &Path) -> Result<()> {
    create_dir(dir)?;
    let address = Wallet::create_address(dir)?;
    info!(target: "wallet", %address, "created a new key");
    println!("Your new address: {address}");
    Ok(())
}

fn list_addresses(dir: &Path) -> Result<()> {
    let wallet = Wallet::load(dir)?;
    for address in wallet.addresses() {
        println!("{address}");
    }
    Ok(())
}

fn create_blockchain(dir: &Path, params: ChainParams, address: &str) -> Result<()> {
    let address = parse_address(address)?;
    if Store::exists(chain_dir(dir)) {
        bail!(
            "a blockchain already exists in {}",
            chain_dir(dir).display()
        );
    }
    create_dir(dir)?;
    let time = unix_now();
    let mut genesis = miner::assemble_block(
        BlockHash::ZERO,
        0,
        time,
        &params,
        address.pubkey_hash(),
        vec![],
        Amount::ZERO,
    )?;
    genesis.header = mine_header(&genesis, 1)?;
    let chain = Chain::create(&chain_dir(dir), params, &genesis)?;
    println!("Done! Genesis block {}", chain.tip()?.hash);
    Ok(())
}

fn get_balance(dir: &Path, address: &str) -> Result<()> {
    let address = parse_address(address)?;
    let store = open_read_only(dir)?;
    let balance = store.read()?.balance(&address.pubkey_hash())?;
    println!("Balance of '{address}': {balance}");
    Ok(())
}

fn open_read_only(dir: &Path) -> Result<Store> {
    let path = chain_dir(dir);
    if !Store::exists(&path) {
        bail!(
            "no blockchain in {}: run createblockchain first, or copy the data directory of a \
             node that has one",
            dir.display()
        );
    }
    Ok(Store::open_read_only(&path)?)
}

struct SendRequest {
    from: Address,
    to: Address,
    amount: Amount,
    fee: Amount,
    miner: Option<Address>,
    threads: usize,
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
fn send_and_mine(dir: &Path, params: ChainParams, req: SendRequest) -> Result<()> {
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
    match chain.accept_block(&block, unix_now())? {
        Accepted::NewTip { tip, .. } => {
            println!(
                "Success! txid {txid} mined in block {} at height {}",
                tip.hash, tip.height
            );
            Ok(())
        }
        Accepted::SideBranch { hash, .. } => {
            bail!("block {hash} did not become the tip (another process extended the chain)")
        }
    }
}

/// Builds and signs the payment from the local wallet and store (readable while a daemon runs),
/// submits it to a node and reports whether it was accepted.
fn send_to_network(
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

fn start_node(dir: &Path, params: ChainParams, overrides: crate::config::Overrides) -> Result<()> {
    let config = crate::config::NodeConfig::load(dir, overrides)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            info!(target: "net", "signal received: shutting down");
            let _ = stop_tx.send(true);
        });
        crate::node::run(config, params, stop_rx).await
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
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

/// Mines `block`'s header on `threads` threads and logs the search.
fn mine_header(block: &Block, threads: usize) -> Result<gossipcoin_proto::BlockHeader> {
    let (abort, hashes) = (AtomicBool::new(false), AtomicU64::new(0));
    let height = block.txs.first().map_or(0, |cb| cb.inputs[0].prevout.vout);
    let started = Instant::now();
    let header = miner::mine_counting(block.header, threads.max(1), &abort, &hashes)
        .ok_or_else(|| anyhow!("mining stopped before a block was found"))?;
    let (hashes, secs) = (
        hashes.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
    );
    info!(target: "miner", height, hash = %header.block_hash(), nonce = header.nonce, hashes,
          mhs = format!("{:.2}", hashes as f64 / secs.max(1e-9) / 1e6), "mined block");
    Ok(header)
}

fn generate(dir: &Path, params: ChainParams, blocks: u32, address: &str) -> Result<()> {
    let address = parse_address(address)?;
    if !Store::exists(chain_dir(dir)) {
        bail!(
            "no blockchain in {}: run createblockchain first",
            dir.display()
        );
    }
    let chain = Chain::open(&chain_dir(dir), params)?;
    for _ in 0..blocks {
        let tip = chain.tip()?;
        let time = unix_now().max(chain.median_time_past(&tip.hash)? + 1);
        let mut block = miner::assemble_block(
            tip.hash,
            tip.height + 1,
            time,
            chain.params(),
            address.pubkey_hash(),
            vec![],
            Amount::ZERO,
        )?;
        block.header = mine_header(&block, 1)?;
        chain.accept_block(&block, unix_now())?;
    }
    let tip = chain.tip()?;
    println!("Done! Tip {} at height {}", tip.hash, tip.height);
    Ok(())
}

fn print_chain(dir: &Path) -> Result<()> {
    let store = open_read_only(dir)?;
    let view = store.read()?;
    let tip = view.tip()?.ok_or_else(|| anyhow!("the store has no tip"))?;
    for height in (0..=tip.height).rev() {
        let hash = view
            .hash_at(height)?
            .ok_or_else(|| anyhow!("no block at height {height}"))?;
        let block = view
            .block(&hash)?
            .ok_or_else(|| anyhow!("block {hash} is missing"))?;
        print_block(height, &block);
    }
    Ok(())
}

fn print_block(height: u32, block: &Block) {
    let h = &block.header;
    let pow = Target::from_compact(h.bits).is_ok_and(|t| t.is_met_by(&block.block_hash()));
    println!("============ Block {} ============", block.block_hash());
    println!("Height: {height}");
    println!("Prev. block: {}", h.prev);
    println!("Merkle root: {}", h.merkle_root);
    println!("Time: {} ({})", format_utc(h.time), h.time);
    println!("Target (bits): {:#010x}", h.bits);
    println!("Nonce: {}", h.nonce);
    println!("PoW: {pow}");
    for tx in &block.txs {
        println!("--- Transaction {}:", tx.compute_txid());
        for (i, input) in tx.inputs.iter().enumerate() {
            println!("     Input {i}:");
            if tx.is_coinbase() {
                println!("       Coinbase (height {})", input.prevout.vout);
            } else {
                println!("       TXID:      {}", input.prevout.txid);
                println!("       Out:       {}", input.prevout.vout);
                println!("       Signature: {}", hex::encode(input.signature.0));
                println!("       PubKey:    {}", hex::encode(input.pubkey.0));
                println!(
                    "       Address:   {}",
                    Address(gossipcoin_proto::PubkeyHash::of_pubkey(&input.pubkey))
                );
            }
        }
        for (i, output) in tx.outputs.iter().enumerate() {
            println!("     Output {i}:");
            println!("       Value:   {}", output.value);
            println!("       Address: {}", Address(output.owner));
        }
    }
    println!();
}

/// `YYYY-MM-DD HH:MM:SS UTC` from Unix seconds (proleptic Gregorian calendar).
fn format_utc(secs: u32) -> String {
    let (days, rem) = (i64::from(secs) / 86_400, i64::from(secs) % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn reindex_utxo(dir: &Path) -> Result<()> {
    if !Store::exists(chain_dir(dir)) {
        bail!(
            "no blockchain in {}: run createblockchain first",
            dir.display()
        );
    }
    let store = Store::open(chain_dir(dir))?;
    store.write(|w| w.reindex_utxo())?;
    let count = store.read()?.utxo_count()?;
    println!("Done! There are {count} unspent outputs in the UTXO set.");
    Ok(())
}

fn verify_chain(dir: &Path) -> Result<()> {
    let store = open_read_only(dir)?;
    let report = store.check_consistency()?;
    println!("{report}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00 UTC");
    }
}
