//! Recorded pids, seen from outside: is the process still running, is it really the node (the
//! holder of its data directory's lock), and signals to stop it.
//!
//! The nodes outlive `testnet up`, so later commands know them only by pid. `kill(pid, 0)` says
//! whether a pid exists; on Linux a node that exited but is not reaped yet (its parent, `up`, is
//! gone, and the PID 1 of a container may reap orphans seconds late, or never) is a zombie that
//! `kill` still finds, so `/proc/<pid>/stat` is asked too. `rustix` wraps these calls safely (no
//! `unsafe` here).

use std::path::Path;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::process::{Pid, Signal, kill_process, test_kill_process};

/// How often waits look again.
const POLL: Duration = Duration::from_millis(50);

fn to_pid(pid: u32) -> Option<Pid> {
    // 0, 1 and negative numbers mean process groups, init or "everyone": never ours.
    i32::try_from(pid)
        .ok()
        .filter(|&p| p > 1)
        .and_then(Pid::from_raw)
}

/// Whether `pid` is a running process (not a zombie).
pub fn is_running(pid: u32) -> bool {
    let Some(p) = to_pid(pid) else {
        return false;
    };
    match test_kill_process(p) {
        Ok(()) => !is_zombie(pid),
        Err(Errno::PERM) => true, // exists, owned by someone else
        Err(_) => false,
    }
}

/// Whether Linux reports `pid` as exited but not yet reaped (state `Z` or `X`).
fn is_zombie(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "<pid> (<command, may contain ')'>) <state> ..."
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    matches!(state, Some("Z" | "X"))
}

/// The pid of the process that holds the node lock of the data directory `dir`, when it is a
/// running process: the node that really runs there, whatever pid `testnet.json` remembers (a
/// recorded pid may have been reused by another program, or the node restarted by hand).
///
/// Linux lists every `flock` in `/proc/locks` as `N: FLOCK ADVISORY WRITE <pid> <dev>:<inode>
/// ...`; the line whose inode is the lock file's names the holder. Elsewhere (no
/// `/proc/locks`) the recorded pid counts when the lock is held.
pub fn lock_holder(dir: &Path, recorded: Option<u32>) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let lock = dir.join(crate::datadir::LOCK_FILE);
    let inode = std::fs::metadata(&lock).ok()?.ino();
    let Ok(locks) = std::fs::read_to_string("/proc/locks") else {
        return recorded.filter(|&p| is_running(p) && crate::datadir::is_running(dir));
    };
    locks
        .lines()
        .filter(|l| !l.contains("->")) // waiters, not holders
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (kind, pid, file) = (f.get(1)?, f.get(4)?, f.get(5)?);
            let ino: u64 = file.rsplit(':').next()?.parse().ok()?;
            (*kind == "FLOCK" && ino == inode)
                .then(|| pid.parse::<u32>().ok())
                .flatten()
        })
        .find(|&pid| is_running(pid))
}

/// Sends SIGTERM (a clean shutdown: the node closes its store and removes `node.addr`).
pub fn terminate(pid: u32) -> std::io::Result<()> {
    signal(pid, Signal::TERM)
}

/// Sends SIGKILL.
pub fn kill(pid: u32) -> std::io::Result<()> {
    signal(pid, Signal::KILL)
}

fn signal(pid: u32, sig: Signal) -> std::io::Result<()> {
    let p = to_pid(pid).ok_or_else(|| std::io::Error::other(format!("invalid pid {pid}")))?;
    match kill_process(p, sig) {
        Ok(()) | Err(Errno::SRCH) => Ok(()), // already gone is what we wanted
        Err(e) => Err(e.into()),
    }
}

/// Polls until none of `pids` runs or `timeout` passes; returns those still running.
pub fn wait_until_gone(pids: &[u32], timeout: Duration) -> Vec<u32> {
    let deadline = Instant::now() + timeout;
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|&p| is_running(p)).collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_runs_until_terminated() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(is_running(pid));
        assert_eq!(wait_until_gone(&[pid], Duration::from_millis(100)), [pid]);
        terminate(pid).unwrap();
        child.wait().unwrap();
        assert!(!is_running(pid));
        terminate(pid).unwrap(); // gone: not an error
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_zombie_does_not_count_as_running() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        kill(pid).unwrap();
        // Exited but not reaped: `kill(pid, 0)` still finds it.
        assert!(wait_until_gone(&[pid], Duration::from_secs(10)).is_empty());
        assert!(test_kill_process(to_pid(pid).unwrap()).is_ok());
        child.wait().unwrap();
    }

    #[test]
    fn the_lock_holder_is_found_and_a_recorded_pid_alone_is_not_trusted() {
        let tmp = tempfile::tempdir().unwrap();
        let sleeper = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let other = Some(sleeper.id());
        assert_eq!(lock_holder(tmp.path(), other), None, "no lock file");
        let lock = crate::datadir::lock(tmp.path()).unwrap();
        assert_eq!(lock_holder(tmp.path(), other), Some(std::process::id()));
        drop(lock);
        assert_eq!(lock_holder(tmp.path(), other), None, "lock released");
        let mut sleeper = sleeper;
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
    }

    #[test]
    fn special_pids_are_never_signalled() {
        assert!(!is_running(0));
        assert!(!is_running(1));
        assert!(kill(0).is_err());
        assert!(terminate(u32::MAX).is_err());
    }
}
