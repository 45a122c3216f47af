//! One row per scenario and the table that prints them against the targets.

use crate::network::HonestBlock;

/// Target: peak RSS growth of the victim under attack, MiB.
pub const RSS_TARGET_MIB: f64 = 64.0;
/// Target: extra delay of an honest block to the victim, over the baseline, ms.
pub const DELAY_TARGET_MS: f64 = 1_000.0;
/// Target: time for an honest node to connect during the lock-out, s.
pub const CONNECT_TARGET_S: f64 = 5.0;
/// Target: time to notice a dead link, s.
pub const DEAD_LINK_TARGET_S: f64 = 15.0;

/// A duration measured until a deadline: `Err(limit)` when it was not reached.
pub type Timed = Result<f64, f64>;

/// What one scenario measured.
#[derive(Default)]
pub struct Row {
    pub name: String,
    /// Peak VmRSS growth of A over its baseline, MiB.
    pub rss_mib: Option<f64>,
    /// An honest block mined by B during the attack.
    pub block: Option<HonestBlock>,
    /// Honest node connect time (worst of the measured ones), s.
    pub connect: Option<Timed>,
    /// Dead-link detection time, s.
    pub dead_link: Option<Timed>,
    /// Per-scenario facts, one per line.
    pub facts: Vec<String>,
    /// Set when the scenario itself failed (panicked).
    pub failed: Option<String>,
}

impl Row {
    pub fn new(name: &str) -> Row {
        Row {
            name: name.to_string(),
            ..Row::default()
        }
    }

    pub fn fact(&mut self, fact: impl Into<String>) {
        let fact = fact.into();
        println!("   {fact}");
        self.facts.push(fact);
    }
}

fn mark(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISS" }
}

fn ms(v: Option<f64>) -> String {
    v.map_or("none".into(), |v| format!("{v:.0}"))
}

fn timed(t: Option<Timed>, target: f64) -> String {
    match t {
        None => "-".into(),
        Some(Ok(s)) => format!("{s:.1} {}", mark(s < target)),
        Some(Err(limit)) => format!(">{limit:.0} MISS"),
    }
}

/// Prints the table; `baseline` is the honest block without attacker (B→A, B→C in ms).
pub fn print_table(rows: &[Row], baseline: Option<HonestBlock>) {
    let base_a = baseline.and_then(|b| b.to_a);
    println!(
        "\n{:<16} {:>14} {:>22} {:>8} {:>12} {:>13}",
        "scenario", "A RSS +MiB", "block B->A ms (+base)", "B->C ms", "connect s", "dead link s"
    );
    println!(
        "{:<16} {:>14} {:>22} {:>8} {:>12} {:>13}",
        "(target)",
        format!("< {RSS_TARGET_MIB:.0}"),
        format!("+ <= {DELAY_TARGET_MS:.0}"),
        "",
        format!("< {CONNECT_TARGET_S:.0}"),
        format!("<= {DEAD_LINK_TARGET_S:.0}")
    );
    for row in rows {
        if let Some(why) = &row.failed {
            println!("{:<16} FAILED: {why}", row.name);
            continue;
        }
        let rss = row.rss_mib.map_or("-".into(), |r| {
            format!("{r:.1} {}", mark(r < RSS_TARGET_MIB))
        });
        let block = match row.block {
            None => "-".into(),
            Some(b) => match (b.to_a, base_a) {
                (Some(a), Some(base)) => {
                    format!(
                        "{a:.0} (+{:.0}) {}",
                        a - base,
                        mark(a - base <= DELAY_TARGET_MS)
                    )
                }
                (a, _) => format!("{} MISS", ms(a)),
            },
        };
        let to_c = row.block.map_or("-".into(), |b| ms(b.to_c));
        println!(
            "{:<16} {:>14} {:>22} {:>8} {:>12} {:>13}",
            row.name,
            rss,
            block,
            to_c,
            timed(row.connect, CONNECT_TARGET_S),
            timed(row.dead_link, DEAD_LINK_TARGET_S)
        );
        for f in &row.facts {
            println!("{:<16}   · {f}", "");
        }
    }
}
