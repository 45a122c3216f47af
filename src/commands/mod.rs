//! The commands: each turns parsed CLI arguments into calls on the wallet, chain, store or
//! node, and prints the tutorial's outputs on stdout. `send` lives in `send.rs`, `printchain`
//! in `print.rs`, `testnet` in `testnet.rs`.

mod daemon;
mod print;
mod send;
mod testnet;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result, anyhow, bail};
use gossipcoin_proto::{Address, Amount, Block, BlockHash};
use tracing::info;

use crate::chain::Chain;
use crate::cli::{Cli, Command};
use crate::miner;
use crate::node::unix_now;
use crate::params::ChainParams;
use crate::store::{ChainRead, Store};
use crate::wallet::Wallet;

/// Runs one command.
pub fn run(cli: Cli) -> Result<()> {
    let params = match &cli.params {
        Some(path) => ChainParams::load(path)?,
        None => ChainParams::devnet(),
    };
    let dir = || data_dir(&cli);
    let api_client = || daemon::client(cli.api.as_deref(), dir().ok().as_deref());
    match &cli.command {
        Command::Createwallet => {
            let dir = dir()?;
            match crate::api::client::ApiClient::of_running_node(&dir)? {
                Some(api) => daemon::create_wallet(&api),
                None => create_wallet(&dir),
            }
        }
        Command::Listaddresses => list_addresses(&dir()?),
        Command::Createblockchain { address } => {
            let dir = dir()?;
            refuse_if_running(&dir, "createblockchain")?;
            create_blockchain(&dir, params, cli.params.as_deref(), address)
        }
        Command::Getbalance {
            address: Some(address),
        } => get_balance(&dir()?, address),
        Command::Getbalance { address: None } => daemon::wallet_balance(&api_client()?),
        Command::Rescanwallet => daemon::rescan_wallet(&api_client()?),
        Command::Estimatefee { blocks } => {
            let dir = dir()?;
            match crate::api::client::ApiClient::of_running_node(&dir)? {
                Some(api) => daemon::estimate_fee(&api, *blocks),
                None => anyhow::bail!(
                    "estimatefee asks the node running on {}: none runs there (start one with startnode)",
                    dir.display()
                ),
            }
        }
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
            let req = send::SendRequest {
                from: parse_address(from)?,
                to: parse_address(to)?,
                amount: parse_amount(amount, "amount")?,
                fee: fee.as_deref().map(parse_fee).transpose()?,
                miner: miner_address.as_deref().map(parse_address).transpose()?,
                threads: *threads,
            };
            let dir = dir()?;
            if *mine {
                // A running node owns the store: pay through it, then have it mine.
                return match crate::api::client::ApiClient::of_running_node(&dir)? {
                    Some(api) => daemon::send_and_mine(
                        &api,
                        [from, to, amount],
                        fee.as_deref(),
                        miner_address.as_deref(),
                    ),
                    None => send::send_and_mine(&dir, params, req),
                };
            }
            match (node, crate::api::client::ApiClient::of_running_node(&dir)?) {
                (None, Some(api)) => daemon::send(&api, from, to, amount, fee.as_deref()),
                _ => send::send_to_network(&dir, params, req, node.as_deref()),
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
            min_fee_rate,
            api_listen,
            api_auth,
        } => {
            let overrides = crate::config::Overrides {
                role: role.map(Into::into),
                config_file: config.clone(),
                listen: listen.clone(),
                bootstrap: bootstrap.clone(),
                miner_address: miner_address.clone(),
                genesis: genesis.clone(),
                threads: *threads,
                min_fee_rate: *min_fee_rate,
                node_id: cli.node_id,
                api_listen: api_listen.clone(),
                api_auth_none: *api_auth == crate::cli::ApiAuth::None,
            };
            start_node(&dir()?, params, overrides)
        }
        Command::Generate { blocks, address } => {
            let dir = dir()?;
            match crate::api::client::ApiClient::of_running_node(&dir)? {
                Some(api) => daemon::generate(&api, *blocks, address),
                None => generate(&dir, params, *blocks, address),
            }
        }
        Command::Printchain => print::print_chain(&dir()?, &params),
        Command::Reindexutxo => {
            let dir = dir()?;
            refuse_if_running(&dir, "reindexutxo")?;
            reindex_utxo(&dir)
        }
        Command::Verifychain => verify_chain(&dir()?),
        Command::Status => daemon::status(&api_client()?),
        Command::Peers => daemon::peers(&api_client()?),
        Command::Mempool => daemon::mempool(&api_client()?),
        Command::Mine { address } => daemon::mine(&api_client()?, address.as_deref()),
        Command::Gettransaction { txid } => daemon::get_transaction(&api_client()?, txid),
        Command::Listtransactions { count } => daemon::list_transactions(&api_client()?, *count),
        Command::Disconnectnode { peer } => daemon::disconnect_node(&api_client()?, peer),
        Command::Setban { peer, command } => daemon::set_ban(
            &api_client()?,
            peer,
            *command == crate::cli::BanCommand::Add,
        ),
        Command::Listbanned => daemon::list_banned(&api_client()?),
        Command::Demo { dir } => crate::demo::run(dir.as_deref()),
        Command::Config {
            command: crate::cli::ConfigCommand::Show { role },
        } => show_config(cli.params.as_deref(), role.map(Into::into)),
        Command::Testnet { command } => testnet::run(command, cli.params.as_deref()),
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

/// Refuses `command` while a node runs on `dir`: it would write the store behind the node's
/// back (DESIGN §6: the daemon owns its data directory).
fn refuse_if_running(dir: &Path, command: &str) -> Result<()> {
    if crate::datadir::is_running(dir) {
        bail!(
            "a node is running on {} and owns its store: `{command}` would write behind its \
             back. Stop the node first (Ctrl-C, or `kill -TERM` its pid), then run it again",
            dir.display()
        );
    }
    Ok(())
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
    let file = dir.join(crate::wallet::file::WALLET_FILE);
    if !file.exists() {
        bail!(
            "no wallet in {} (no {}): create one with `gossipcoin createwallet`",
            dir.display(),
            file.display()
        );
    }
    let wallet = Wallet::load(dir)?;
    for address in wallet.addresses() {
        println!("{address}");
    }
    Ok(())
}

/// `createblockchain`: mines a genesis block paying `address` and creates the store with it;
/// with `--params FILE`, records the new network's genesis in that file for its other nodes.
fn create_blockchain(
    dir: &Path,
    params: ChainParams,
    params_file: Option<&Path>,
    address: &str,
) -> Result<()> {
    let address = parse_address(address)?;
    Store::remove_incomplete(chain_dir(dir))?;
    if Store::exists(chain_dir(dir)) {
        bail!(
            "a blockchain already exists in {}",
            chain_dir(dir).display()
        );
    }
    if let Some(existing) = params.genesis {
        bail!(
            "the chain parameters already name the genesis block {existing}: that network \
             exists, so start a node to join it (a new genesis would be a new network; remove \
             the `genesis` line from the parameters file to start one)"
        );
    }
    create_dir(dir)?;
    let time = unix_now();
    let mut genesis = miner::assemble_block(
        BlockHash::ZERO,
        0,
        time,
        params.pow_bits,
        &params,
        address.pubkey_hash(),
        vec![],
        Amount::ZERO,
    )?;
    genesis.header = mine_header(&genesis, 1)?;
    let chain = Chain::create(&chain_dir(dir), params, &genesis)?;
    let hash = chain.tip()?.hash;
    println!("Done! Genesis block {hash}");
    if let Some(path) = params_file {
        ChainParams::record_genesis(path, hash)?;
        println!(
            "Recorded genesis = \"{hash}\" in {}: nodes started with this file join only this \
             network, and take its genesis from any peer.",
            path.display()
        );
    }
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

fn start_node(dir: &Path, params: ChainParams, overrides: crate::config::Overrides) -> Result<()> {
    if overrides.role.is_none() && overrides.config_file.is_none() {
        let (role, why) = crate::config::default_role(&overrides);
        info!(target: "net", %role, "no --role given: starting as a {role} node ({why}); \
              pass --role central|miner|wallet to choose");
    }
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
        let (api, data_dir) = (config.api, config.data_dir.clone());
        let node = crate::node::start(config, params, stop_rx.clone()).await?;
        let _api = crate::api::serve(node.control(), api, &data_dir, stop_rx).await?;
        node.run().await
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

/// Mines `block`'s header on `threads` threads and logs the search.
fn mine_header(block: &Block, threads: usize) -> Result<gossipcoin_proto::BlockHeader> {
    miner::mine_logged(block, threads.max(1), &AtomicBool::new(false))
        .ok_or_else(|| anyhow!("mining stopped before a block was found"))
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
            chain.next_bits(&tip.hash)?,
            chain.params(),
            address.pubkey_hash(),
            vec![],
            Amount::ZERO,
        )?;
        block.header = mine_header(&block, 1)?;
        chain.accept_block(&block, unix_now(), crate::chain::Origin::Requested)?;
    }
    let tip = chain.tip()?;
    println!("Done! Tip {} at height {}", tip.hash, tip.height);
    Ok(())
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

/// `config show`: the chain parameters file in effect, then the built-in role files.
fn show_config(params: Option<&Path>, role: Option<gossipcoin_proto::message::Role>) -> Result<()> {
    use gossipcoin_proto::message::Role;
    if role.is_none() {
        match params {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                println!("# chain parameters: {} (--params)\n{text}", path.display());
            }
            None => println!(
                "# chain parameters: config/devnet.toml (built in)\n{}",
                crate::params::DEVNET_TOML
            ),
        }
    }
    let roles = match role {
        Some(r) => vec![r],
        None => vec![Role::Central, Role::Miner, Role::Wallet],
    };
    for r in roles {
        println!(
            "# role file: config/{r}.toml (built in; --config FILE replaces it)\n{}",
            crate::config::builtin(r)
        );
    }
    Ok(())
}

fn verify_chain(dir: &Path) -> Result<()> {
    let store = open_read_only(dir)?;
    let report = store.check_consistency()?;
    println!("{report}");
    Ok(())
}
