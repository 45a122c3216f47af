//! A raw `/gossipcoin/sync/1` client written directly on libp2p: it writes request frames byte
//! for byte as given (garbage, a `u32::MAX` length, valid requests) and either counts the
//! responses' bytes as they arrive or never reads them (the slow reader).

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use gossipcoin_proto::encode::{from_bytes, to_bytes};
use gossipcoin_proto::message::{Request, Response, SYNC_PROTOCOL};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, StreamProtocol, SwarmBuilder, noise, tcp, yamux};
use tokio::sync::mpsc;

/// The longest response the counting reader accepts.
const MAX_RESPONSE: usize = 32 * 1024 * 1024;

/// The frame of a well-formed request: u32 big-endian length, then its canonical encoding.
pub fn frame(request: &Request) -> Vec<u8> {
    let body = to_bytes(request);
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// How the peer treats responses.
#[derive(Clone, Copy, Debug)]
pub enum Reading {
    /// Read every response to its end, counting bytes.
    Count,
    /// Never read a response; give up on it after this long.
    Hold(Duration),
}

/// What happened so far, shared with the swarm task.
#[derive(Default)]
pub struct Stats {
    pub sent: AtomicU64,
    pub responses: AtomicU64,
    /// Frame bytes of every response read (length prefixes included).
    pub response_bytes: AtomicU64,
    /// Responses by their first byte: the `Response` variant (1 = Blocks, 5 = Error, …).
    pub variants: Mutex<BTreeMap<u8, u64>>,
    pub failures: Mutex<BTreeMap<String, u64>>,
    /// The texts of `Response::Error` answers.
    pub errors: Mutex<BTreeMap<String, u64>>,
    pub connected: AtomicBool,
    pub closed: AtomicU64,
}

impl Stats {
    /// Requests without a response or a failure yet.
    pub fn outstanding(&self) -> u64 {
        let failed: u64 = self.failures.lock().unwrap().values().sum();
        self.sent.load(Ordering::Relaxed) - self.responses.load(Ordering::Relaxed) - failed
    }

    pub fn summary(&self) -> String {
        let variants: Vec<String> = self
            .variants
            .lock()
            .unwrap()
            .iter()
            .map(|(v, n)| format!("{n} {}", variant_name(*v)))
            .collect();
        let failures: Vec<String> = self
            .failures
            .lock()
            .unwrap()
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        let errors: Vec<String> = self
            .errors
            .lock()
            .unwrap()
            .iter()
            .map(|(k, n)| format!("{n}x {k:?}"))
            .collect();
        format!(
            "sent {}, answered {} [{}], failed [{}], connection closed {}x{}",
            self.sent.load(Ordering::Relaxed),
            self.responses.load(Ordering::Relaxed),
            variants.join(", "),
            failures.join(", "),
            self.closed.load(Ordering::Relaxed),
            if errors.is_empty() {
                String::new()
            } else {
                format!("; errors: {}", errors.join(", "))
            }
        )
    }
}

fn variant_name(v: u8) -> &'static str {
    match v {
        0 => "Status",
        1 => "Blocks",
        2 => "Block",
        3 => "TxAccepted",
        4 => "TxRejected",
        5 => "Error",
        _ => "other",
    }
}

/// A connected raw peer; its swarm task ends when this is dropped.
pub struct RawPeer {
    frames: mpsc::UnboundedSender<Vec<u8>>,
    pub stats: Arc<Stats>,
    pub peer_id: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawPeer {
    /// Dials `addr` (a multiaddr) with a fresh identity; returns once connected (10 s at most).
    pub async fn connect(addr: &str, reading: Reading) -> RawPeer {
        let hold = match reading {
            Reading::Count => Duration::from_secs(60),
            Reading::Hold(d) => d + Duration::from_secs(5),
        };
        let behaviour = request_response::Behaviour::with_codec(
            RawCodec { reading },
            [(
                StreamProtocol::new(SYNC_PROTOCOL),
                ProtocolSupport::Outbound,
            )],
            request_response::Config::default()
                .with_request_timeout(hold)
                .with_max_concurrent_streams(1_000),
        );
        let mut swarm = SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .expect("tcp transport")
            .with_behaviour(|_| behaviour)
            .expect("behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(600)))
            .build();
        let peer_id = swarm.local_peer_id().to_string();
        swarm
            .dial(addr.parse::<Multiaddr>().expect("multiaddr"))
            .expect("dial");
        let remote = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match swarm.next().await {
                    Some(SwarmEvent::ConnectionEstablished { peer_id, .. }) => break Some(peer_id),
                    Some(SwarmEvent::OutgoingConnectionError { .. }) | None => break None,
                    Some(_) => {}
                }
            }
        })
        .await
        .ok()
        .flatten()
        .expect("the raw peer could not connect");
        let stats = Arc::new(Stats::default());
        stats.connected.store(true, Ordering::Relaxed);
        let (frames, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let shared = stats.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    frame = rx.recv() => match frame {
                        Some(frame) => {
                            swarm.behaviour_mut().send_request(&remote, frame);
                        }
                        None => break,
                    },
                    event = swarm.select_next_some() => record(&shared, event),
                }
            }
        });
        RawPeer {
            frames,
            stats,
            peer_id,
            task,
        }
    }

    /// Sends one frame (exactly these bytes) on a new stream.
    pub fn send(&self, frame: Vec<u8>) {
        if self.frames.send(frame).is_ok() {
            self.stats.sent.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn record(stats: &Stats, event: SwarmEvent<request_response::Event<Vec<u8>, Answer>>) {
    use request_response::{Event, Message};
    match event {
        SwarmEvent::Behaviour(Event::Message {
            message: Message::Response { response, .. },
            ..
        }) => {
            stats.responses.fetch_add(1, Ordering::Relaxed);
            stats
                .response_bytes
                .fetch_add(response.bytes, Ordering::Relaxed);
            *stats
                .variants
                .lock()
                .unwrap()
                .entry(response.variant)
                .or_default() += 1;
            if let Some(text) = response.error {
                *stats.errors.lock().unwrap().entry(text).or_default() += 1;
            }
        }
        SwarmEvent::Behaviour(Event::OutboundFailure { error, .. }) => {
            let kind = match error {
                request_response::OutboundFailure::Io(e) => format!("io ({:?})", e.kind()),
                other => format!("{other:?}"),
            };
            *stats.failures.lock().unwrap().entry(kind).or_default() += 1;
        }
        SwarmEvent::ConnectionClosed {
            num_established, ..
        } => {
            stats.closed.fetch_add(1, Ordering::Relaxed);
            if num_established == 0 {
                stats.connected.store(false, Ordering::Relaxed);
            }
        }
        _ => {}
    }
}

/// What the counting reader keeps of a response.
#[derive(Debug)]
struct Answer {
    /// Frame bytes, length prefix included.
    bytes: u64,
    /// The first byte of the body: the `Response` variant.
    variant: u8,
    /// The text of a small `Response::Error`.
    error: Option<String>,
}

/// Writes requests verbatim; reads (or holds) responses per [`Reading`].
#[derive(Clone, Copy)]
struct RawCodec {
    reading: Reading,
}

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Answer;

    async fn read_request<T>(&mut self, _: &StreamProtocol, _: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        Err(io::Error::other("this peer serves nothing"))
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Answer>
    where
        T: AsyncRead + Unpin + Send,
    {
        if let Reading::Hold(d) = self.reading {
            tokio::time::sleep(d).await;
            return Err(io::Error::other("held unread"));
        }
        let mut prefix = [0u8; 4];
        io.read_exact(&mut prefix).await?;
        let len = u32::from_be_bytes(prefix) as usize;
        if len > MAX_RESPONSE {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "huge response"));
        }
        const SMALL: usize = 4096;
        let mut buf = vec![0u8; 64 * 1024];
        let (mut left, mut first, mut small) = (len, None, Vec::new());
        while left > 0 {
            let n = io.read(&mut buf[..left.min(64 * 1024)]).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            first.get_or_insert(buf[0]);
            if len <= SMALL {
                small.extend_from_slice(&buf[..n]);
            }
            left -= n;
        }
        let error = match from_bytes::<Response>(&small, SMALL) {
            Ok(Response::Error(text)) => Some(text),
            _ => None,
        };
        Ok(Answer {
            bytes: 4 + len as u64,
            variant: first.unwrap_or(255),
            error,
        })
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&req).await?;
        io.flush().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
        _: Answer,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        Err(io::Error::other("this peer serves nothing"))
    }
}
