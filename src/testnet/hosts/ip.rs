//! `ip` (iproute2) and `nft` (nftables) run as child processes, their failures turned into
//! errors that show the command and what it printed; and what exists now (namespaces, links).

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Fails with an install hint when `program` is not on the PATH.
pub fn require(program: &str, package: &str) -> Result<()> {
    match Command::new(program)
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => Ok(()),
        Err(_) => bail!("--hosts needs `{program}` (Debian: apt-get install {package})"),
    }
}

/// Runs `program args`, feeding `stdin`; an error names the command and its stderr.
fn exec(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip ARGS`.
pub fn run(args: &[&str]) -> Result<()> {
    exec("ip", args, None).map(drop)
}

/// `ip -n NS -batch -` with one command per line.
pub fn run_batch_in(ns: &str, lines: &[String]) -> Result<()> {
    let script = lines.join("\n") + "\n";
    exec("ip", &["-n", ns, "-batch", "-"], Some(&script)).map(drop)
}

/// `nft -f -` inside namespace `ns`.
pub fn nft_in(ns: &str, script: &str) -> Result<()> {
    exec("ip", &["netns", "exec", ns, "nft", "-f", "-"], Some(script)).map(drop)
}

/// `nft list tables` inside namespace `ns`.
pub fn nft_tables_in(ns: &str) -> Result<String> {
    exec("ip", &["netns", "exec", ns, "nft", "list", "tables"], None)
}

/// The named network namespaces (`ip netns list`, first word of each line).
pub fn netns_list() -> Result<Vec<String>> {
    Ok(exec("ip", &["netns", "list"], None)?
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect())
}

/// The links of the root namespace, with their alias.
pub fn links() -> Result<Vec<(String, Option<String>)>> {
    let text = exec("ip", &["-j", "link", "show"], None)?;
    let json: Value = serde_json::from_str(&text).context("`ip -j link show` is not JSON")?;
    Ok(json
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| {
            let name = l["ifname"].as_str()?.to_string();
            Some((name, l["ifalias"].as_str().map(str::to_string)))
        })
        .collect())
}

/// Whether a link of that name exists in the root namespace.
pub fn link_exists(name: &str) -> Result<bool> {
    Ok(links()?.iter().any(|(l, _)| l == name))
}
