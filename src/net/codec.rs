//! The request-response codec of `/gossipcoin/sync/1`: one framed value per stream.
//!
//! A frame is a u32 big-endian length, then that many bytes of the canonical encoding
//! ([`gossipcoin_proto::encode`]). A length over the limit ([`MAX_REQUEST_BYTES`],
//! [`MAX_RESPONSE_BYTES`]) is refused before anything is allocated or read; the bytes are then
//! decoded with the same limit, so trailing and non-canonical bytes are refused too.
//!
//! request-response 0.30 never reports a failed `read_request` to the behaviour (the handler
//! logs it against an unknown request id and drops the stream), so a refused request would cost
//! its sender nothing. Instead the codec hands the behaviour an [`Inbound::Malformed`] value:
//! the service answers it with an error and charges the peer. Only a stream that ends before a
//! whole length prefix, or fails at the I/O level, is an error. A bad response is an
//! `InvalidData` I/O error, which the service reads as the responder's misbehaviour.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use gossipcoin_proto::encode::{from_bytes, to_bytes};
use gossipcoin_proto::message::{MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, Request, Response};
use libp2p::StreamProtocol;
use libp2p::request_response;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A request as the codec read it. What we send is always [`Inbound::Valid`] (on the wire it is
/// a plain [`Request`]); what we receive may be [`Inbound::Malformed`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub(super) enum Inbound {
    /// A request that decoded and is within its limits.
    Valid(Request),
    /// Bytes that are not a valid request (undecodable, over a count or byte limit, cut
    /// short), and why.
    Malformed(String),
}

/// A response as it goes on the wire: a value to encode, or bytes already in the canonical
/// encoding (blocks served from the store as stored, see `Response::encode_blocks`). What is
/// read is always a `Value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Outbound {
    Value(Response),
    Encoded(Vec<u8>),
}

impl Outbound {
    /// The number of bytes it takes on the wire (without the length prefix).
    pub(super) fn len(&self) -> usize {
        match self {
            Self::Value(response) => postcard::experimental::serialized_size(response).unwrap_or(0),
            Self::Encoded(bytes) => bytes.len(),
        }
    }

    /// Whether it is an error answer (those are never charged to the byte budget).
    pub(super) fn is_error(&self) -> bool {
        matches!(self, Self::Value(Response::Error(_)))
    }
}

/// The codec of the sync protocol. libp2p clones it for each stream, so the clone that writes
/// a request is the one that reads its answer: it remembers how long an honest answer to that
/// request can be ([`Request::max_response_bytes`] on this chain's block limit) and refuses a
/// longer one from its length prefix, before reading or decoding it.
#[derive(Clone, Copy, Debug)]
pub(super) struct SyncCodec {
    /// The chain's largest block (encoded).
    max_block_bytes: usize,
    /// The longest answer this stream accepts.
    response_limit: usize,
}

impl SyncCodec {
    pub(super) fn new(max_block_bytes: usize) -> Self {
        Self {
            max_block_bytes,
            response_limit: MAX_RESPONSE_BYTES,
        }
    }
}

impl request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = Inbound;
    type Response = Outbound;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Inbound>
    where
        T: AsyncRead + Unpin + Send,
    {
        let request: Request = match read_frame(io, MAX_REQUEST_BYTES).await? {
            Ok(request) => request,
            Err(reason) => return Ok(Inbound::Malformed(reason)),
        };
        if !request.is_within_limits() {
            return Ok(Inbound::Malformed(
                "request exceeds its count limits".to_owned(),
            ));
        }
        Ok(Inbound::Valid(request))
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Outbound>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.response_limit)
            .await?
            .map(Outbound::Value)
            .map_err(invalid)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Inbound,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match request {
            Inbound::Valid(request) => {
                self.response_limit = request.max_response_bytes(self.max_block_bytes);
                write_frame(io, &request, MAX_REQUEST_BYTES).await
            }
            Inbound::Malformed(reason) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("refusing to send a malformed request ({reason})"),
            )),
        }
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Outbound,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match response {
            Outbound::Value(response) => write_frame(io, &response, MAX_RESPONSE_BYTES).await,
            Outbound::Encoded(bytes) => write_bytes(io, bytes, MAX_RESPONSE_BYTES).await,
        }
    }
}

/// Reads one frame of at most `limit` bytes and decodes it. The outer error is the stream's
/// (nothing to answer); the inner one says why the bytes are not a valid value. An over-limit
/// length is refused from the prefix alone: the body is neither read nor allocated.
async fn read_frame<T, V>(io: &mut T, limit: usize) -> io::Result<Result<V, String>>
where
    T: AsyncRead + Unpin,
    V: Serialize + DeserializeOwned,
{
    let mut prefix = [0u8; 4];
    io.read_exact(&mut prefix).await?;
    let len = u32::from_be_bytes(prefix) as usize;
    if len > limit {
        return Ok(Err(format!(
            "frame of {len} bytes exceeds the limit of {limit}"
        )));
    }
    let mut bytes = vec![0u8; len];
    match io.read_exact(&mut bytes).await {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            return Ok(Err(format!("frame cut short: {len} bytes announced")));
        }
        Err(e) => return Err(e),
    }
    Ok(from_bytes(&bytes, limit).map_err(|e| e.to_string()))
}

/// Encodes `value` and writes it as one frame; a value over `limit` is never sent.
async fn write_frame<T, V>(io: &mut T, value: &V, limit: usize) -> io::Result<()>
where
    T: AsyncWrite + Unpin,
    V: Serialize,
{
    write_bytes(io, to_bytes(value), limit).await
}

/// Writes already encoded bytes as one frame; more than `limit` bytes are never sent.
async fn write_bytes<T>(io: &mut T, bytes: Vec<u8>, limit: usize) -> io::Result<()>
where
    T: AsyncWrite + Unpin,
{
    if bytes.len() > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "refusing to send {} bytes, over the limit of {limit}",
                bytes.len()
            ),
        ));
    }
    let len = u32::try_from(bytes.len()).expect("limits are far below 4 GiB");
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(&bytes).await?;
    io.flush().await
}

fn invalid(reason: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason)
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures::executor::block_on;
    use futures::io::Cursor;
    use gossipcoin_proto::message::{MAX_LOCATOR_HASHES, Role, SYNC_PROTOCOL, Status};
    use gossipcoin_proto::{BlockHash, U256};
    use libp2p::request_response::Codec;

    use super::*;

    fn codec() -> SyncCodec {
        SyncCodec::new(1_000_000)
    }

    fn protocol() -> StreamProtocol {
        StreamProtocol::new(SYNC_PROTOCOL)
    }

    fn status() -> Status {
        Status {
            genesis: BlockHash([1; 32]),
            tip: BlockHash([2; 32]),
            height: 3,
            chain_work: U256::from_u64(4),
            role: Role::Central,
            time: 5,
        }
    }

    fn read_req(bytes: Vec<u8>) -> io::Result<Inbound> {
        block_on(codec().read_request(&protocol(), &mut Cursor::new(bytes)))
    }

    fn malformed(bytes: Vec<u8>) -> String {
        match read_req(bytes.clone()) {
            Ok(Inbound::Malformed(reason)) => reason,
            other => panic!("{bytes:?} gave {other:?}"),
        }
    }

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut v = (payload.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    /// Yields `prefix`, then fails any further read: proves the body is never read.
    struct PrefixOnly(Vec<u8>);

    impl AsyncRead for PrefixOnly {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            if self.0.is_empty() {
                return Poll::Ready(Err(io::Error::other("read past the length prefix")));
            }
            let n = buf.len().min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0.drain(..n);
            Poll::Ready(Ok(n))
        }
    }

    #[test]
    fn requests_and_responses_round_trip() {
        let mut buf = Cursor::new(Vec::new());
        let req = Inbound::Valid(Request::Status(status()));
        block_on(codec().write_request(&protocol(), &mut buf, req.clone())).unwrap();
        let bytes = buf.into_inner();
        // on the wire it is the plain public Request
        assert_eq!(bytes, framed(&to_bytes(&Request::Status(status()))));
        assert_eq!(read_req(bytes).unwrap(), req);

        let mut buf = Cursor::new(Vec::new());
        let resp = Outbound::Value(Response::Error("rate limited".into()));
        block_on(codec().write_response(&protocol(), &mut buf, resp.clone())).unwrap();
        let mut rd = Cursor::new(buf.into_inner());
        assert_eq!(
            block_on(codec().read_response(&protocol(), &mut rd)).unwrap(),
            resp
        );

        // pre-encoded bytes go out as they are, and read back as the value they encode
        let blocks = Response::Blocks(vec![]);
        let mut buf = Cursor::new(Vec::new());
        let encoded = Outbound::Encoded(Response::encode_blocks(&[]));
        assert_eq!(encoded.len(), to_bytes(&blocks).len());
        block_on(codec().write_response(&protocol(), &mut buf, encoded)).unwrap();
        let mut rd = Cursor::new(buf.into_inner());
        assert_eq!(
            block_on(codec().read_response(&protocol(), &mut rd)).unwrap(),
            Outbound::Value(blocks)
        );

        let mut buf = Cursor::new(Vec::new());
        let bad = Inbound::Malformed("x".into());
        assert!(block_on(codec().write_request(&protocol(), &mut buf, bad)).is_err());
        assert!(buf.into_inner().is_empty());
    }

    #[test]
    fn an_oversized_length_is_malformed_without_reading_the_body() {
        for len in [u32::MAX, (MAX_REQUEST_BYTES + 1) as u32] {
            let mut io = PrefixOnly(len.to_be_bytes().to_vec());
            let read = block_on(codec().read_request(&protocol(), &mut io)).unwrap();
            let Inbound::Malformed(reason) = read else {
                panic!("{read:?}")
            };
            assert!(reason.contains("exceeds the limit"), "{reason}");
        }
        let mut rd = Cursor::new(((MAX_RESPONSE_BYTES + 1) as u32).to_be_bytes().to_vec());
        let err = block_on(codec().read_response(&protocol(), &mut rd)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn garbage_truncation_and_trailing_bytes_are_malformed_without_panic() {
        for bad in [framed(&[0xff, 0xff, 0xff]), framed(&[]), framed(&[0x07]), {
            let mut ok = to_bytes(&Request::Status(status()));
            ok.push(0);
            framed(&ok)
        }] {
            malformed(bad);
        }
        // a body cut short is malformed; a stream that ends inside the prefix is an error
        let whole = framed(&to_bytes(&Request::Status(status())));
        assert!(malformed(whole[..whole.len() - 1].to_vec()).contains("cut short"));
        let err = read_req(vec![0, 0]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        // a garbage response is still an InvalidData error (the requester's side)
        let mut rd = Cursor::new(framed(&[0xff, 0xff]));
        let err = block_on(codec().read_response(&protocol(), &mut rd)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn counts_over_their_limits_are_malformed() {
        let req = Request::GetBlocks {
            locator: vec![BlockHash::ZERO; MAX_LOCATOR_HASHES + 1],
            max: 1,
        };
        assert!(malformed(framed(&to_bytes(&req))).contains("count limits"));
    }

    #[test]
    fn an_answer_longer_than_the_request_allows_is_refused_from_its_prefix() {
        let mut one = codec();
        let mut sent = Cursor::new(Vec::new());
        let ask = Request::GetBlock {
            hash: BlockHash([9; 32]),
        };
        block_on(one.write_request(&protocol(), &mut sent, Inbound::Valid(ask))).unwrap();
        // 1.5 MB for one block of a chain whose blocks are at most 1 MB: refused unread,
        // although the protocol's maximum would take it.
        let len = 1_500_000u32;
        assert!((len as usize) < MAX_RESPONSE_BYTES);
        let mut io = PrefixOnly(len.to_be_bytes().to_vec());
        let err = block_on(one.read_response(&protocol(), &mut io)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        assert!(err.to_string().contains("exceeds the limit"), "{err}");
        // A fresh stream's codec (another request) is not bound by this one's limit.
        let mut other = codec();
        let mut sent = Cursor::new(Vec::new());
        let many = Request::GetBlocksByHash {
            hashes: vec![BlockHash([9; 32]); 2],
        };
        block_on(other.write_request(&protocol(), &mut sent, Inbound::Valid(many))).unwrap();
        let mut io = PrefixOnly(len.to_be_bytes().to_vec());
        let err = block_on(other.read_response(&protocol(), &mut io)).unwrap_err();
        assert!(!err.to_string().contains("exceeds the limit"), "{err}");
    }
}
