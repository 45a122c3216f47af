//! `gossipcoin demo`: runs the tutorial's single-node steps (NODE 3000) end to end in a fresh
//! temporary data directory, by running this same binary as separate commands and printing each
//! one with its output, exactly as a user would type them.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Runs the scenario; `keep` leaves the data directory in place and prints its path.
pub fn run(keep: bool) -> Result<()> {
    let exe = std::env::current_exe().context("cannot find the gossipcoin binary")?;
    let tmp = std::env::temp_dir().join(format!("gossipcoin-demo-{}", std::process::id()));
    let result = scenario(&exe, &tmp);
    if keep {
        println!("\nData directory kept at {}", tmp.display());
    } else {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

fn scenario(exe: &Path, dir: &Path) -> Result<()> {
    println!(
        "# The seed's NODE 3000 steps, on a fresh data directory {}\n",
        dir.display()
    );
    let gc = |args: &[&str]| step(exe, dir, args);
    println!("# Three wallets: CENTRAL_NODE, WALLET_1, WALLET_2");
    let central = address(&gc(&["createwallet"])?)?;
    let wallet_1 = address(&gc(&["createwallet"])?)?;
    let wallet_2 = address(&gc(&["createwallet"])?)?;
    println!("\n# A chain whose genesis block pays CENTRAL_NODE the 10-coin subsidy");
    gc(&["createblockchain", "--address", &central])?;
    gc(&[
        "send", "--from", &central, "--to", &wallet_1, "--amount", "10", "--mine",
    ])?;
    gc(&[
        "send", "--from", &central, "--to", &wallet_2, "--amount", "10", "--mine",
    ])?;
    println!("\n# The tutorial's balances: 10, 10, 10");
    for a in [&central, &wallet_1, &wallet_2] {
        gc(&["getbalance", "--address", a])?;
    }
    println!("\n# The store agrees with itself");
    gc(&["verifychain"])?;
    Ok(())
}

/// Runs one command, echoing it and its stdout; fails on a non-zero exit.
fn step(exe: &Path, dir: &Path, args: &[&str]) -> Result<String> {
    println!("$ gossipcoin {}", args.join(" "));
    let out = Command::new(exe)
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .output()
        .with_context(|| format!("cannot run gossipcoin {}", args.join(" ")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{stdout}");
    if !out.status.success() {
        bail!(
            "`gossipcoin {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}

/// The address in "Your new address: <addr>".
fn address(createwallet_output: &str) -> Result<String> {
    createwallet_output
        .trim()
        .strip_prefix("Your new address: ")
        .map(str::to_string)
        .context("createwallet printed no address")
}
