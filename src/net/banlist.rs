//! The ban list on disk (`<data-dir>/banlist.json`, like Bitcoin Core's `banlist.json`): the
//! bans in force, so a restart does not let a banned peer straight back in.
//!
//! Written atomically (temp file, fsync, rename) whenever a ban starts, is lifted or runs out;
//! read once at start. The file is bounded before it is read ([`MAX_FILE_BYTES`]); a file that
//! cannot be read or parsed is reported with a warning and set aside, and the node starts with
//! no bans — a lost ban list is never a reason not to start.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

/// The largest ban list read: 10,000 bans of a peer id and a few IPs fit in well under this.
pub(super) const MAX_FILE_BYTES: u64 = 4 << 20;

/// One ban in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct SavedBan {
    /// The banned peer id, base58.
    pub peer: String,
    /// The IPs banned with it (never loopback or link-local).
    #[serde(default)]
    pub ips: Vec<IpAddr>,
    /// When the ban ends, in seconds since 1970.
    pub until_unix: u64,
}

#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    bans: Vec<SavedBan>,
}

const VERSION: u32 = 1;

/// `until` (a monotonic instant) as seconds since 1970.
pub(super) fn to_unix(until: Instant, now: Instant) -> u64 {
    let left = until.saturating_duration_since(now);
    (SystemTime::now() + left)
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How long a ban ending at `until_unix` still runs (zero when it has ended).
pub(super) fn time_left(until_unix: u64) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Duration::from_secs(until_unix.saturating_sub(now))
}

/// The bans saved at `path`; none when there is no file, and none (with a warning, the file
/// renamed to `banlist.json.bad`) when it is unusable.
pub(super) fn load(path: &Path) -> Vec<SavedBan> {
    match read(path) {
        Ok(bans) => {
            if !bans.is_empty() {
                info!(target: "net", path = %path.display(), bans = bans.len(), "loaded the ban list");
            }
            bans
        }
        Err(None) => Vec::new(),
        Err(Some(reason)) => {
            let aside = path.with_extension("json.bad");
            let _ = std::fs::rename(path, &aside);
            warn!(target: "net", path = %path.display(), set_aside = %aside.display(), reason,
                  "the ban list is unusable: starting with no bans");
            Vec::new()
        }
    }
}

/// `Err(None)`: no file; `Err(Some(why))`: an unusable one.
fn read(path: &Path) -> Result<Vec<SavedBan>, Option<String>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(None),
        Err(e) => return Err(Some(e.to_string())),
    };
    let len = file.metadata().map_err(|e| Some(e.to_string()))?.len();
    if len > MAX_FILE_BYTES {
        return Err(Some(format!(
            "{len} bytes, more than the {MAX_FILE_BYTES} a ban list may have"
        )));
    }
    let parsed: File = serde_json::from_reader(std::io::BufReader::new(file))
        .map_err(|e| Some(format!("not a ban list: {e}")))?;
    if parsed.version != VERSION {
        return Err(Some(format!(
            "version {}, this gossipcoin reads version {VERSION}",
            parsed.version
        )));
    }
    Ok(parsed.bans)
}

/// Writes `bans` to `path` atomically; a failure is a warning (the bans stay in force in
/// memory).
pub(super) fn save(path: &Path, bans: Vec<SavedBan>) {
    let file = File {
        version: VERSION,
        bans,
    };
    let result = serde_json::to_vec_pretty(&file)
        .map_err(|e| e.to_string())
        .and_then(|bytes| crate::atomic_file::write(path, &bytes).map_err(|e| e.to_string()));
    if let Err(e) = result {
        warn!(target: "net", path = %path.display(), "cannot save the ban list: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(n: u8) -> SavedBan {
        SavedBan {
            peer: format!("peer{n}"),
            ips: vec![IpAddr::from([10, 0, 0, n])],
            until_unix: 4_000_000_000 + u64::from(n),
        }
    }

    #[test]
    fn round_trip_and_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("banlist.json");
        assert!(load(&path).is_empty());
        save(&path, vec![ban(1), ban(2)]);
        assert_eq!(load(&path), vec![ban(1), ban(2)]);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "a temporary file was left: {left:?}");
    }

    #[test]
    fn an_unusable_file_is_set_aside_and_means_no_bans() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("banlist.json");
        for bad in [
            b"{ not json".to_vec(),
            br#"{"version": 9, "bans": []}"#.to_vec(),
            vec![b' '; MAX_FILE_BYTES as usize + 1],
        ] {
            std::fs::write(&path, &bad).unwrap();
            assert!(load(&path).is_empty());
            assert!(!path.exists());
            assert_eq!(
                std::fs::read(dir.path().join("banlist.json.bad")).unwrap(),
                bad
            );
        }
    }

    #[test]
    fn times_convert_both_ways() {
        let now = Instant::now();
        let unix = to_unix(now + Duration::from_secs(3600), now);
        let left = time_left(unix);
        assert!(left <= Duration::from_secs(3600) && left >= Duration::from_secs(3598));
        assert_eq!(time_left(1), Duration::ZERO);
    }
}
