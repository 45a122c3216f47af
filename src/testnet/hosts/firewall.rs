//! `testnet partition` and `heal` with `--hosts`: packets between groups are dropped by an
//! nftables table in every node's namespace (`inet gossipcoin_partition`), which drops what
//! arrives from the addresses of the other groups (every node does, so both directions are
//! cut; the sender sees no error). Nothing is banned: the connections stay open and simply stop
//! carrying anything, as on a cut cable, until TCP or libp2p's ping gives up on them. `heal` deletes
//! the table in every namespace.

use std::net::Ipv4Addr;

use anyhow::{Context, Result};

use super::{Names, ip, node_ip};

/// The nftables table of the partition rules.
pub const TABLE: &str = "gossipcoin_partition";

/// The nft script that makes a namespace drop every packet from `others`.
pub fn script(others: &[Ipv4Addr]) -> String {
    let set: Vec<String> = others.iter().map(Ipv4Addr::to_string).collect();
    let set = set.join(", ");
    // `add table` then `delete table` then the new one: a re-partition replaces the old rules.
    format!(
        "add table inet {TABLE}\n\
         delete table inet {TABLE}\n\
         table inet {TABLE} {{\n\
         \tset cut {{ type ipv4_addr; elements = {{ {set} }} }}\n\
         \tchain input {{ type filter hook input priority -10; policy accept; ip saddr @cut drop; }}\n\
         }}\n"
    )
}

/// Makes the nodes of each group (indices) drop every packet to or from the other groups.
/// Returns the number of namespaces given rules.
pub fn cut(names: &Names, groups: &[Vec<usize>]) -> Result<usize> {
    let mut done = 0;
    for (g, group) in groups.iter().enumerate() {
        let others: Vec<Ipv4Addr> = groups
            .iter()
            .enumerate()
            .filter(|(h, _)| *h != g)
            .flat_map(|(_, o)| o.iter().map(|&j| node_ip(j)))
            .collect::<Result<_>>()?;
        let rules = script(&others);
        for &i in group {
            ip::nft_in(&names.netns(i), &rules)
                .with_context(|| format!("cannot cut {} off", names.netns(i)))?;
            done += 1;
        }
    }
    Ok(done)
}

/// Deletes the partition table in the namespaces of nodes `0..nodes`; returns how many had one.
pub fn mend(names: &Names, nodes: usize) -> Result<usize> {
    let mut mended = 0;
    for i in 0..nodes {
        let ns = names.netns(i);
        if ip::nft_tables_in(&ns)?.contains(TABLE) {
            ip::nft_in(&ns, &format!("delete table inet {TABLE}\n"))?;
            mended += 1;
        }
    }
    Ok(mended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_replaces_the_table_and_drops_both_ways() {
        let s = script(&[Ipv4Addr::new(10, 77, 0, 3), Ipv4Addr::new(10, 77, 1, 2)]);
        assert!(s.starts_with("add table inet gossipcoin_partition\ndelete table"));
        assert!(s.contains("elements = { 10.77.0.3, 10.77.1.2 }"), "{s}");
        assert!(s.contains("hook input") && s.contains("ip saddr @cut drop"));
        assert!(
            !s.contains("hook output"),
            "a sender sees no error, as on a cut cable"
        );
    }
}
