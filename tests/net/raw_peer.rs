//! A hostile test peer: a bare libp2p swarm that speaks `/gossipcoin/sync/1` with a codec
//! writing whatever bytes the test gives it, and (optionally) never reading a large response,
//! like a peer that lets our answers pile up. It also answers pings, so only what it sends is
//! on trial.

use std::io;
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use gossipcoin_proto::encode::{from_bytes, to_bytes};
use gossipcoin_proto::message::{MAX_RESPONSE_BYTES, Request, Response, SYNC_PROTOCOL};
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, StreamProtocol, noise, ping, tcp, yamux};
use std::collections::HashMap;
use tokio::sync::{mpsc, oneshot};

/// Responses over this size are never read when the peer is a slow reader.
const SMALL: usize = 64 * 1024;

/// Writes requests as raw bytes; reads framed responses (or stalls on big ones).
#[derive(Clone, Default)]
struct RawCodec {
    slow_reader: bool,
}

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Response;

    async fn read_request<T>(&mut self, _: &StreamProtocol, _: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        Err(io::Error::other("this peer serves nothing"))
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut prefix = [0u8; 4];
        io.read_exact(&mut prefix).await?;
        let len = u32::from_be_bytes(prefix) as usize;
        if self.slow_reader && len > SMALL {
            // never read it: the responder's writes block once our window is full
            std::future::pending::<()>().await;
        }
        if len > MAX_RESPONSE_BYTES {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "too big"));
        }
        let mut bytes = vec![0u8; len];
        io.read_exact(&mut bytes).await?;
        from_bytes(&bytes, MAX_RESPONSE_BYTES)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        bytes: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&bytes).await?;
        io.flush().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
        _: Response,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        Err(io::Error::other("this peer serves nothing"))
    }
}

#[derive(NetworkBehaviour)]
struct RawBehaviour {
    sync: request_response::Behaviour<RawCodec>,
    ping: ping::Behaviour,
}

enum Command {
    Dial(Multiaddr, oneshot::Sender<Result<(), String>>),
    Request(
        libp2p::PeerId,
        Vec<u8>,
        oneshot::Sender<Result<Response, String>>,
    ),
}

/// A running hostile peer.
pub struct RawPeer {
    commands: mpsc::UnboundedSender<Command>,
    /// Its peer id, as the node under test names it.
    pub id: gossipcoin::net::PeerId,
}

impl RawPeer {
    /// Starts the peer; a `slow_reader` never reads responses larger than 64 KiB.
    pub fn spawn(slow_reader: bool) -> Self {
        let mut swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .unwrap()
            .with_behaviour(|_| RawBehaviour {
                sync: request_response::Behaviour::with_codec(
                    RawCodec { slow_reader },
                    [(
                        StreamProtocol::new(SYNC_PROTOCOL),
                        ProtocolSupport::Outbound,
                    )],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_secs(120)),
                ),
                ping: ping::Behaviour::default(),
            })
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
            .build();
        let id = swarm.local_peer_id().to_string().parse().unwrap();
        let (commands, mut rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut dials: Vec<oneshot::Sender<Result<(), String>>> = Vec::new();
            let mut requests: HashMap<
                OutboundRequestId,
                oneshot::Sender<Result<Response, String>>,
            > = HashMap::new();
            loop {
                tokio::select! {
                    command = rx.recv() => match command {
                        None => break,
                        Some(Command::Dial(addr, reply)) => match swarm.dial(addr) {
                            Ok(()) => dials.push(reply),
                            Err(e) => { let _ = reply.send(Err(e.to_string())); }
                        },
                        Some(Command::Request(peer, bytes, reply)) => {
                            let id = swarm.behaviour_mut().sync.send_request(&peer, bytes);
                            requests.insert(id, reply);
                        }
                    },
                    event = swarm.select_next_some() => match event {
                        SwarmEvent::ConnectionEstablished { .. } => {
                            for reply in dials.drain(..) { let _ = reply.send(Ok(())); }
                        }
                        SwarmEvent::OutgoingConnectionError { error, .. } => {
                            for reply in dials.drain(..) { let _ = reply.send(Err(error.to_string())); }
                        }
                        SwarmEvent::Behaviour(RawBehaviourEvent::Sync(event)) => match event {
                            request_response::Event::Message {
                                message: request_response::Message::Response { request_id, response },
                                ..
                            } => {
                                if let Some(reply) = requests.remove(&request_id) {
                                    let _ = reply.send(Ok(response));
                                }
                            }
                            request_response::Event::OutboundFailure { request_id, error, .. } => {
                                if let Some(reply) = requests.remove(&request_id) {
                                    let _ = reply.send(Err(error.to_string()));
                                }
                            }
                            _ => {}
                        },
                        _ => {}
                    },
                }
            }
        });
        Self { commands, id }
    }

    /// Connects to `addr` (ending in `/p2p/<id>`).
    pub async fn dial(&self, addr: &str) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        let _ = self.commands.send(Command::Dial(addr.parse().unwrap(), tx));
        rx.await.map_err(|_| "the raw peer stopped".to_owned())?
    }

    /// Sends `bytes` as one request on a new stream and waits for the answer.
    pub fn request(
        &self,
        peer: gossipcoin::net::PeerId,
        bytes: Vec<u8>,
    ) -> impl Future<Output = Result<Response, String>> + use<> {
        let (tx, rx) = oneshot::channel();
        let peer: libp2p::PeerId = peer.to_string().parse().unwrap();
        let _ = self.commands.send(Command::Request(peer, bytes, tx));
        async move { rx.await.map_err(|_| "the raw peer stopped".to_owned())? }
    }
}

/// `payload` behind its u32 big-endian length, as the sync codec frames it.
pub fn framed(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

/// A well-formed request frame.
pub fn valid_request(request: &Request) -> Vec<u8> {
    framed(&to_bytes(request))
}
