//! `gossipcoin testnet router --dir DIR` (hidden; `up --hosts` with WAN conditions starts it):
//! a user-space router between the nodes' namespaces, because this machine's kernel has no
//! netem. It makes a TUN device `gw0` in every node's namespace and routes 10.77.0.0/16 there
//! (`route_through`); each IPv4 packet a node sends to another comes out of its `gw0`, goes
//! through the [`Scheduler`] (loss, latency ± jitter, a bounded queue) and is written into the
//! destination's `gw0` when due. One reader task per device and one releaser, all owned by a
//! `JoinSet`; SIGTERM stops it, and the devices vanish with it.

use std::fs::File;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::sched::{Decision, Scheduler};
use super::tun::{enter_netns, open_tun};
use super::{Names, index_of, route_through};
use crate::testnet::State;

/// The router's TUN device in each namespace.
pub const DEVICE: &str = "gw0";
/// Written (with the router's pid) once every device is up and routed.
pub const READY_FILE: &str = "router.ready";
/// The router's output, in the testnet's directory.
pub const OUT_FILE: &str = "router.out";
/// The most bytes of packets held at once (a router's buffer): past it packets are dropped.
const MAX_QUEUED: usize = 256 << 20;
/// The largest packet read (TUN's MTU is 1500; room for a larger one set by hand).
const MAX_PACKET: usize = 65_536;

/// What `testnet router` serves.
#[derive(Debug, Clone)]
pub struct RouterOptions {
    pub dir: PathBuf,
}

/// Counters shown when the router stops.
#[derive(Debug, Default)]
struct Counts {
    forwarded: u64,
    lost: u64,
    full: u64,
    unroutable: u64,
}

struct Shared {
    sched: Mutex<Scheduler>,
    due: Notify,
    counts: Mutex<Counts>,
}

/// Runs the router until SIGTERM or Ctrl-C.
pub fn run_router(opts: &RouterOptions) -> Result<()> {
    let state = State::load_existing(&opts.dir)?;
    let hosts = state
        .hosts
        .as_ref()
        .context("this testnet was not started with --hosts")?;
    let wan = hosts.wan.clone().unwrap_or_default();
    let names = Names::from_tag(&hosts.tag);
    let node_names: Vec<String> = state.nodes.iter().map(|n| n.name.clone()).collect();
    let links = wan.links(&node_names)?;

    let home = File::open("/proc/thread-self/ns/net").context("cannot open this namespace")?;
    let mut devices = Vec::with_capacity(state.nodes.len());
    for i in 0..state.nodes.len() {
        let ns = File::open(format!("/run/netns/{}", names.netns(i)))
            .with_context(|| format!("no namespace {}", names.netns(i)))?;
        enter_netns(&ns).context("setns")?;
        let tun = open_tun(DEVICE);
        enter_netns(&home).context("setns back")?;
        devices
            .push(tun.with_context(|| format!("cannot make a TUN device in {}", names.netns(i)))?);
        route_through(&names, i, DEVICE)?;
    }
    let seed = {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).context("no randomness")?;
        u64::from_le_bytes(b)
    };
    let shared = Arc::new(Shared {
        sched: Mutex::new(Scheduler::new(links, MAX_QUEUED, seed)),
        due: Notify::new(),
        counts: Mutex::new(Counts::default()),
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let devices: Vec<Arc<AsyncFd<File>>> = devices
            .into_iter()
            .map(|d| {
                // SAFETY: the `File` owns its descriptor, open until the `AsyncFd` drops it,
                // and always returns that same descriptor.
                unsafe { AsyncFd::register(d) }
                    .map(Arc::new)
                    .map_err(|e| anyhow::anyhow!("cannot watch a TUN device: {e}"))
            })
            .collect::<Result<_>>()?;
        let mut tasks = JoinSet::new();
        for (from, dev) in devices.iter().enumerate() {
            tasks.spawn(read_loop(from, devices.len(), dev.clone(), shared.clone()));
        }
        tasks.spawn(release_loop(devices.clone(), shared.clone()));
        std::fs::write(
            opts.dir.join(READY_FILE),
            format!("{}\n", std::process::id()),
        )?;
        println!(
            "router: {} nodes, latency {}ms ± {}ms, loss {}%",
            devices.len(),
            wan.latency_ms,
            wan.jitter_ms,
            f64::from(wan.loss_ppm) / 10_000.0
        );
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
            Some(done) = tasks.join_next() => {
                done.context("a router task panicked")??;
            }
        }
        tasks.shutdown().await;
        let c = shared
            .counts
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        println!(
            "router: stopped; forwarded {}, lost {}, dropped on a full queue {}, unroutable {}",
            c.forwarded, c.lost, c.full, c.unroutable
        );
        let _ = std::fs::remove_file(opts.dir.join(READY_FILE));
        Ok(())
    })
}

/// The destination of an IPv4 packet.
fn destination(packet: &[u8]) -> Option<Ipv4Addr> {
    if packet.len() < 20 || packet[0] >> 4 != 4 {
        return None;
    }
    Some(Ipv4Addr::new(
        packet[16], packet[17], packet[18], packet[19],
    ))
}

/// Reads node `from`'s packets and schedules them.
async fn read_loop(
    from: usize,
    nodes: usize,
    dev: Arc<AsyncFd<File>>,
    shared: Arc<Shared>,
) -> Result<()> {
    let mut buf = vec![0u8; MAX_PACKET];
    loop {
        let mut guard = dev.readable().await?;
        let n = match guard.try_io(|d| d.get_ref().read(&mut buf)) {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(e.into()),
            Err(_would_block) => continue,
        };
        let packet = &buf[..n];
        let to = destination(packet).and_then(index_of);
        let decision = match to {
            Some(to) if to != from && to < nodes => {
                let mut s = shared
                    .sched
                    .lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?;
                Some(s.offer(Instant::now(), from, to, packet.to_vec()))
            }
            _ => None,
        };
        let mut c = shared
            .counts
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        match decision {
            Some(Decision::Queued(_)) => shared.due.notify_one(),
            Some(Decision::Lost) => c.lost += 1,
            Some(Decision::Full) => c.full += 1,
            None => c.unroutable += 1,
        }
    }
}

/// Writes each packet into its destination's device when it is due.
async fn release_loop(devices: Vec<Arc<AsyncFd<File>>>, shared: Arc<Shared>) -> Result<()> {
    loop {
        let next = shared
            .sched
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .next_due();
        match next {
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at.into()) => {}
                    _ = shared.due.notified() => {}
                }
            }
            None => shared.due.notified().await,
        }
        let now = Instant::now();
        loop {
            let item = shared
                .sched
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .pop_due(now);
            let Some((to, packet)) = item else { break };
            let Some(dev) = devices.get(to) else {
                continue;
            };
            // A full device queue (EAGAIN) drops the packet, as a full link would.
            let sent = dev.get_ref().write(&packet).is_ok();
            let mut c = shared
                .counts
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?;
            if sent {
                c.forwarded += 1;
            } else {
                c.full += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ipv4_packets_have_a_destination() {
        let mut p = vec![0u8; 20];
        p[0] = 0x45;
        p[16..20].copy_from_slice(&[10, 77, 0, 3]);
        assert_eq!(destination(&p), Some(Ipv4Addr::new(10, 77, 0, 3)));
        assert_eq!(index_of(destination(&p).unwrap()), Some(1));
        p[0] = 0x60;
        assert_eq!(destination(&p), None, "IPv6");
        assert_eq!(destination(&[0x45; 10]), None, "short");
    }
}
