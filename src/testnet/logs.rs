//! `testnet logs`: every node's JSON log (`node.log`, one object per line, as written by
//! `--log-format json`) merged into one stream in time order:
//!
//! ```text
//! central  2026-03-21T10:00:01.123456Z  INFO net: peer connected peer=12D3… addr=/ip4/…
//! miner-1  2026-03-21T10:00:01.130002Z  INFO chain: node started role=miner height=0 …
//! ```
//! A line that is not a JSON object is shown as it is, attributed to its node, and sorts with
//! the line before it. Timestamps are compared as strings: tracing-subscriber writes them in
//! UTC with a fixed width (`2026-03-21T10:00:01.123456Z`), so string order is time order.
//!
//! Parsing, merging, filtering and rendering are pure functions (tested below); `logs` only reads
//! the files, and with `--follow` reads what they gain every 200 ms.

use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use super::State;

/// How often `--follow` looks for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// Log levels, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Level {
    fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_uppercase().as_str() {
            "ERROR" => Self::Error,
            "WARN" => Self::Warn,
            "INFO" => Self::Info,
            "DEBUG" => Self::Debug,
            "TRACE" => Self::Trace,
            _ => return None,
        })
    }

    /// The ANSI colour of the level word.
    fn colour(self) -> &'static str {
        match self {
            Self::Error => "\x1b[31m",
            Self::Warn => "\x1b[33m",
            Self::Info => "\x1b[32m",
            Self::Debug => "\x1b[34m",
            Self::Trace => "\x1b[35m",
        }
    }
}

/// What `testnet logs` shows.
#[derive(Debug, Clone)]
pub struct LogsOptions {
    pub dir: PathBuf,
    /// Only this node.
    pub node: Option<String>,
    /// Keep reading new lines until interrupted.
    pub follow: bool,
    /// Only lines whose rendered text contains this.
    pub grep: Option<String>,
    /// Only this level and more severe ones.
    pub level: Option<Level>,
}

/// One log line, parsed.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Line {
    Event(Event),
    /// Not a JSON object: shown as it is.
    Raw(String),
}

/// A JSON log event.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Event {
    timestamp: String,
    level: Option<Level>,
    level_text: String,
    target: String,
    pub(super) message: String,
    /// The event's other fields, in the order the log has them, rendered as text.
    fields: Vec<(String, String)>,
}

impl Event {
    /// When it happened: `2026-03-21T10:00:01.123456Z`.
    pub(super) fn timestamp(&self) -> &str {
        &self.timestamp
    }

    /// The value of field `key`, as rendered.
    pub(super) fn field(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find_map(|(k, v)| (k == key).then_some(v.as_str()))
    }
}

/// A line of one node's log, with the time it sorts by.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Entry {
    /// Index of the node in the list being merged.
    pub(super) node: usize,
    /// The line's timestamp, or that of the line before it in the same file.
    time: String,
    pub(super) line: Line,
}

/// A JSON object's members in the order they were written (serde_json's `Map` sorts them).
struct Ordered(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Value>()? {
                    members.push(member);
                }
                Ok(Ordered(members))
            }
        }
        d.deserialize_map(V)
    }
}

/// A field value as text: strings bare unless they need quotes, everything else as JSON.
fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) if !s.is_empty() && !s.contains(char::is_whitespace) => s.clone(),
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn parse_line(text: &str) -> Line {
    let Ok(Ordered(members)) = serde_json::from_str::<Ordered>(text) else {
        return Line::Raw(text.to_string());
    };
    let mut event = Event {
        timestamp: String::new(),
        level: None,
        level_text: String::new(),
        target: String::new(),
        message: String::new(),
        fields: Vec::new(),
    };
    for (key, value) in members {
        let text = value_text(&value);
        let plain = || value.as_str().map_or_else(|| text.clone(), str::to_string);
        match key.as_str() {
            "timestamp" => event.timestamp = plain(),
            "level" => {
                event.level = value.as_str().and_then(Level::parse);
                event.level_text = plain();
            }
            "target" => event.target = plain(),
            "message" => event.message = plain(),
            _ => event.fields.push((key, text)),
        }
    }
    Line::Event(event)
}

/// Parses the lines of node `node`'s log; a line without a timestamp takes `last_time`, which
/// is updated by every line that has one (so it carries over between `--follow` reads).
fn parse_lines<'a>(
    node: usize,
    lines: impl IntoIterator<Item = &'a str>,
    last_time: &mut String,
) -> Vec<Entry> {
    lines
        .into_iter()
        .filter(|l| !l.trim().is_empty())
        .map(|text| {
            let line = parse_line(text);
            if let Line::Event(e) = &line
                && !e.timestamp.is_empty()
            {
                last_time.clone_from(&e.timestamp);
            }
            Entry {
                node,
                time: last_time.clone(),
                line,
            }
        })
        .collect()
}

/// Puts the entries of several logs in time order. The sort is stable: equal times keep their
/// order, so each log's own order survives and lines inherited from a predecessor follow it.
fn merge(mut entries: Vec<Entry>) -> Vec<Entry> {
    entries.sort_by(|a, b| a.time.cmp(&b.time));
    entries
}

/// How lines are shown and which are kept.
struct View<'a> {
    names: &'a [String],
    /// Peer ids of the testnet's nodes and their names: field values show the name.
    peers: &'a [(String, String)],
    width: usize,
    colour: bool,
    grep: Option<&'a str>,
    level: Option<Level>,
}

/// Colours the node column cycles through.
const NODE_COLOURS: [&str; 6] = [
    "\x1b[36m", "\x1b[33m", "\x1b[35m", "\x1b[32m", "\x1b[34m", "\x1b[31m",
];
const RESET: &str = "\x1b[0m";
const DIM: &str = "\x1b[2m";

impl View<'_> {
    /// The entry as one line of text (plain or coloured), without a newline.
    fn render(&self, entry: &Entry, colour: bool) -> String {
        let paint = |code: &str, text: &str| {
            if colour {
                format!("{code}{text}{RESET}")
            } else {
                text.to_string()
            }
        };
        let name = format!("{:<w$}", self.names[entry.node], w = self.width);
        let name = paint(NODE_COLOURS[entry.node % NODE_COLOURS.len()], &name);
        match &entry.line {
            Line::Raw(text) => format!("{name}  {text}"),
            Line::Event(e) => {
                let level = format!("{:>5}", e.level_text);
                let level = match e.level {
                    Some(l) => paint(l.colour(), &level),
                    None => level,
                };
                let target = paint(DIM, &format!("{}:", e.target));
                let mut out = format!("{name}  {}  {level} {target}", e.timestamp);
                if !e.message.is_empty() {
                    out.push(' ');
                    out.push_str(&e.message);
                }
                for (k, v) in &e.fields {
                    out.push(' ');
                    out.push_str(&paint(DIM, &format!("{k}=")));
                    out.push_str(&name_peers(v, self.peers));
                }
                out
            }
        }
    }

    /// The line to print for `entry`, or `None` when a filter drops it. Lines that are not JSON
    /// have no level and pass the level filter (they are often a panic's message).
    fn show(&self, entry: &Entry) -> Option<String> {
        if let (Some(max), Line::Event(e)) = (self.level, &entry.line)
            && e.level.is_some_and(|l| l > max)
        {
            return None;
        }
        let plain = self.render(entry, false);
        if self.grep.is_some_and(|pat| !plain.contains(pat)) {
            return None;
        }
        Some(if self.colour {
            self.render(entry, true)
        } else {
            plain
        })
    }
}

/// `text` with every peer id of `peers` replaced by its node's name.
pub(super) fn name_peers(text: &str, peers: &[(String, String)]) -> String {
    let mut out = text.to_string();
    for (id, name) in peers {
        if out.contains(id.as_str()) {
            out = out.replace(id.as_str(), name);
        }
    }
    out
}

/// The testnet's peer ids and node names, for [`name_peers`].
pub(super) fn peer_names(state: &State) -> Vec<(String, String)> {
    state
        .nodes
        .iter()
        .filter_map(|n| Some((n.peer_id.clone()?, n.name.clone())))
        .filter(|(id, _)| !id.is_empty())
        .collect()
}

/// One log file being read: how far, and the unfinished last line.
pub(super) struct Tail {
    node: usize,
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    last_time: String,
}

impl Tail {
    /// Reads node `node`'s log at `path` from byte `offset` on.
    pub(super) fn new(node: usize, path: PathBuf, offset: u64) -> Self {
        Self {
            node,
            path,
            offset,
            partial: Vec::new(),
            last_time: String::new(),
        }
    }

    /// The complete lines the file gained since the last read (all of it when `to_end`, even an
    /// unfinished last line). A file that shrank was rotated or truncated: read it again.
    pub(super) fn read_new(&mut self, to_end: bool) -> Result<Vec<Entry>> {
        let mut bytes = Vec::new();
        match std::fs::File::open(&self.path) {
            Ok(mut f) => {
                if f.metadata()?.len() < self.offset {
                    self.offset = 0;
                    self.partial.clear();
                }
                f.seek(SeekFrom::Start(self.offset))?;
                self.offset += f
                    .read_to_end(&mut bytes)
                    .with_context(|| format!("cannot read {}", self.path.display()))?
                    as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", self.path.display()));
            }
        }
        self.partial.extend_from_slice(&bytes);
        let complete = if to_end {
            self.partial.len()
        } else {
            self.partial
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1)
        };
        let chunk: Vec<u8> = self.partial.drain(..complete).collect();
        let text = String::from_utf8_lossy(&chunk);
        Ok(parse_lines(self.node, text.lines(), &mut self.last_time))
    }
}

/// Runs `testnet logs`.
pub fn logs(opts: &LogsOptions) -> Result<()> {
    let state = State::load_existing(&opts.dir)?;
    let nodes: Vec<_> = match &opts.node {
        Some(name) => match state.node(name) {
            Some(n) => vec![n],
            None => {
                let names: Vec<&str> = state.nodes.iter().map(|n| n.name.as_str()).collect();
                bail!(
                    "no node {name:?} in this testnet (nodes: {})",
                    names.join(", ")
                );
            }
        },
        None => state.nodes.iter().collect(),
    };
    let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let peers = peer_names(&state);
    let view = View {
        peers: &peers,
        width: names.iter().map(String::len).max().unwrap_or(0),
        names: &names,
        colour: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        grep: opts.grep.as_deref(),
        level: opts.level,
    };
    let mut tails: Vec<Tail> = nodes
        .iter()
        .enumerate()
        .map(|(node, n)| Tail::new(node, n.log.clone(), 0))
        .collect();
    loop {
        let mut batch = Vec::new();
        for tail in &mut tails {
            batch.extend(tail.read_new(!opts.follow)?);
        }
        if !print(&view, merge(batch))? || !opts.follow {
            return Ok(());
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}

/// Prints the entries that pass the filters; `false` once stdout is closed (`| head`).
fn print(view: &View, entries: Vec<Entry>) -> Result<bool> {
    let mut out = std::io::stdout().lock();
    let written = entries
        .iter()
        .filter_map(|e| view.show(e))
        .try_for_each(|line| writeln!(out, "{line}"))
        .and_then(|()| out.flush());
    match written {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(ts: &str, level: &str, msg: &str) -> String {
        format!(
            r#"{{"timestamp":"{ts}","level":"{level}","message":"{msg}","peer":"12D3x","addr":"/ip4/127.0.0.1/tcp/3000","target":"net"}}"#
        )
    }

    fn names() -> Vec<String> {
        vec!["central".into(), "miner-1".into()]
    }

    fn view(names: &[String]) -> View<'_> {
        View {
            names,
            peers: &[],
            width: 7,
            colour: false,
            grep: None,
            level: None,
        }
    }

    #[test]
    fn an_event_renders_node_time_level_target_message_then_fields_in_order() {
        let names = names();
        let mut t = String::new();
        let e = parse_lines(
            1,
            [json("2026-01-01T00:00:01.000000Z", "INFO", "peer connected").as_str()],
            &mut t,
        );
        assert_eq!(
            view(&names).show(&e[0]).unwrap(),
            "miner-1  2026-01-01T00:00:01.000000Z   INFO net: peer connected \
             peer=12D3x addr=/ip4/127.0.0.1/tcp/3000"
        );
        let coloured = View {
            colour: true,
            ..view(&names)
        }
        .show(&e[0])
        .unwrap();
        assert!(coloured.contains("\x1b[32m INFO\x1b[0m"), "{coloured:?}");
    }

    #[test]
    fn merging_interleaves_files_by_time_and_keeps_each_files_order() {
        let (mut a, mut b) = (String::new(), String::new());
        let central = [
            json("2026-01-01T00:00:01.000000Z", "INFO", "c1"),
            json("2026-01-01T00:00:03.000000Z", "INFO", "c3"),
            json("2026-01-01T00:00:03.000000Z", "INFO", "c3b"),
        ];
        let miner = [
            json("2026-01-01T00:00:00.500000Z", "INFO", "m0"),
            json("2026-01-01T00:00:02.000000Z", "INFO", "m2"),
            json("2026-01-01T00:00:03.000000Z", "INFO", "m3"),
        ];
        let mut all = parse_lines(0, central.iter().map(String::as_str), &mut a);
        all.extend(parse_lines(1, miner.iter().map(String::as_str), &mut b));
        let order: Vec<String> = merge(all)
            .into_iter()
            .map(|e| match e.line {
                Line::Event(ev) => ev.message,
                Line::Raw(r) => r,
            })
            .collect();
        assert_eq!(order, ["m0", "c1", "m2", "c3", "c3b", "m3"]);
    }

    #[test]
    fn a_line_that_is_not_json_is_kept_after_its_predecessor() {
        let names = names();
        let mut t = String::new();
        let central = [
            json("2026-01-01T00:00:01.000000Z", "INFO", "before"),
            "thread 'main' panicked at src/node/mod.rs:1:1".to_string(),
            "42".to_string(), // JSON, but not an object
        ];
        let mut all = parse_lines(0, central.iter().map(String::as_str), &mut t);
        let mut m = String::new();
        all.extend(parse_lines(
            1,
            [json("2026-01-01T00:00:02.000000Z", "INFO", "later").as_str()],
            &mut m,
        ));
        let lines: Vec<String> = merge(all)
            .iter()
            .filter_map(|e| view(&names).show(e))
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[1],
            "central  thread 'main' panicked at src/node/mod.rs:1:1"
        );
        assert_eq!(lines[2], "central  42");
        assert!(lines[3].starts_with("miner-1  2026-01-01T00:00:02"));
        // A file that starts with a raw line sorts it first.
        let mut fresh = String::new();
        let e = parse_lines(0, ["garbage"], &mut fresh);
        assert_eq!(e[0].time, "");
    }

    #[test]
    fn the_level_filter_keeps_that_level_and_more_severe_and_raw_lines() {
        let names = names();
        let mut t = String::new();
        let lines = [
            json("2026-01-01T00:00:01.000000Z", "ERROR", "e"),
            json("2026-01-01T00:00:02.000000Z", "WARN", "w"),
            json("2026-01-01T00:00:03.000000Z", "INFO", "i"),
            json("2026-01-01T00:00:04.000000Z", "DEBUG", "d"),
            "not json".to_string(),
        ];
        let entries = parse_lines(0, lines.iter().map(String::as_str), &mut t);
        let shown = |level| {
            let v = View {
                level: Some(level),
                ..view(&names)
            };
            entries.iter().filter(|e| v.show(e).is_some()).count()
        };
        assert_eq!(shown(Level::Error), 2);
        assert_eq!(shown(Level::Warn), 3);
        assert_eq!(shown(Level::Info), 4);
        assert_eq!(shown(Level::Trace), 5);
    }

    #[test]
    fn grep_matches_the_rendered_line_including_node_and_fields() {
        let names = names();
        let mut t = String::new();
        let lines = [
            json("2026-01-01T00:00:01.000000Z", "INFO", "peer connected"),
            r#"{"timestamp":"2026-01-01T00:00:02.000000Z","level":"INFO","message":"mined block","height":3,"target":"miner"}"#.to_string(),
        ];
        let entries = parse_lines(1, lines.iter().map(String::as_str), &mut t);
        let count = |pat: &str| {
            let v = View {
                grep: Some(pat),
                ..view(&names)
            };
            entries.iter().filter(|e| v.show(e).is_some()).count()
        };
        assert_eq!(count("height=3"), 1);
        assert_eq!(count("miner-1"), 2);
        assert_eq!(count("miner: mined"), 1);
        assert_eq!(count("PEER"), 0); // plain substring, case-sensitive
    }

    #[test]
    fn peer_ids_in_fields_show_as_node_names() {
        let names = names();
        let peers = [("12D3x".to_string(), "central".to_string())];
        let v = View {
            peers: &peers,
            ..view(&names)
        };
        let mut t = String::new();
        let e = parse_lines(
            1,
            [json("2026-01-01T00:00:01.000000Z", "INFO", "peer connected").as_str()],
            &mut t,
        );
        let line = v.show(&e[0]).unwrap();
        assert!(line.contains("peer=central addr="), "{line}");
        assert_eq!(
            name_peers("12D3x (submitted)", &peers),
            "central (submitted)"
        );
    }

    #[test]
    fn values_with_spaces_are_quoted() {
        let e = parse_line(
            r#"{"timestamp":"t","level":"WARN","message":"m","reason":"bad pow","n":1.5,"ok":true,"target":"net"}"#,
        );
        let Line::Event(e) = e else {
            panic!("not an event")
        };
        assert_eq!(
            e.fields,
            [
                ("reason".to_string(), "\"bad pow\"".to_string()),
                ("n".to_string(), "1.5".to_string()),
                ("ok".to_string(), "true".to_string())
            ]
        );
    }

    #[test]
    fn tails_return_complete_lines_and_keep_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("node.log");
        let mut tail = Tail::new(0, path.clone(), 0);
        assert!(tail.read_new(false).unwrap().is_empty()); // no file yet
        std::fs::write(&path, "one\ntw").unwrap();
        assert_eq!(tail.read_new(false).unwrap().len(), 1);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"o\n").unwrap();
        let e = tail.read_new(false).unwrap();
        assert_eq!(e[0].line, Line::Raw("two".into()));
        std::fs::write(&path, "new\n").unwrap(); // truncated: start over
        assert_eq!(
            tail.read_new(false).unwrap()[0].line,
            Line::Raw("new".into())
        );
    }
}
