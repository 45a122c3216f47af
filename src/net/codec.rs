//! The request-response codec of `/gossipcoin/sync/1`: one framed value per stream.
//!
//! A frame is a u32 big-endian length, then that many bytes of the canonical encoding
//! ([`gossipcoin_proto::encode`]). A length over the limit ([`MAX_REQUEST_BYTES`],
//! [`MAX_RESPONSE_BYTES`]) is refused before anything is allocated; the bytes are then decoded
//! with the same limit, so trailing and non-canonical bytes are refused too. Every refusal is an
//! `InvalidData` I/O error, which the service reads as the peer's misbehaviour.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use gossipcoin_proto::encode::{from_bytes, to_bytes};
use gossipcoin_proto::message::{MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, Request, Response};
use libp2p::StreamProtocol;
use libp2p::request_response;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The codec of the sync protocol (stateless).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct SyncCodec;

impl request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        let request: Request = read_frame(io, MAX_REQUEST_BYTES).await?;
        if !request.is_within_limits() {
            return Err(invalid("request exceeds its count limits".to_owned()));
        }
        Ok(request)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, MAX_RESPONSE_BYTES).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Request,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &request, MAX_REQUEST_BYTES).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Response,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &response, MAX_RESPONSE_BYTES).await
    }
}

/// Reads one frame of at most `limit` bytes and decodes it.
async fn read_frame<T, V>(io: &mut T, limit: usize) -> io::Result<V>
where
    T: AsyncRead + Unpin,
    V: Serialize + DeserializeOwned,
{
    let mut prefix = [0u8; 4];
    io.read_exact(&mut prefix).await?;
    let len = u32::from_be_bytes(prefix) as usize;
    if len > limit {
        return Err(invalid(format!(
            "frame of {len} bytes exceeds the limit of {limit}"
        )));
    }
    let mut bytes = vec![0u8; len];
    io.read_exact(&mut bytes).await?;
    from_bytes(&bytes, limit).map_err(|e| invalid(e.to_string()))
}

/// Encodes `value` and writes it as one frame; a value over `limit` is never sent.
async fn write_frame<T, V>(io: &mut T, value: &V, limit: usize) -> io::Result<()>
where
    T: AsyncWrite + Unpin,
    V: Serialize,
{
    let bytes = to_bytes(value);
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
    use futures::executor::block_on;
    use futures::io::Cursor;
    use gossipcoin_proto::message::{MAX_LOCATOR_HASHES, Role, SYNC_PROTOCOL, Status};
    use gossipcoin_proto::{BlockHash, U256};
    use libp2p::request_response::Codec;

    use super::*;

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
        }
    }

    fn read_req(bytes: Vec<u8>) -> io::Result<Request> {
        block_on(SyncCodec.read_request(&protocol(), &mut Cursor::new(bytes)))
    }

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut v = (payload.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn requests_and_responses_round_trip() {
        let mut buf = Cursor::new(Vec::new());
        let req = Request::Status(status());
        block_on(SyncCodec.write_request(&protocol(), &mut buf, req.clone())).unwrap();
        assert_eq!(read_req(buf.into_inner()).unwrap(), req);

        let mut buf = Cursor::new(Vec::new());
        let resp = Response::Error("rate limited".into());
        block_on(SyncCodec.write_response(&protocol(), &mut buf, resp.clone())).unwrap();
        let mut rd = Cursor::new(buf.into_inner());
        assert_eq!(
            block_on(SyncCodec.read_response(&protocol(), &mut rd)).unwrap(),
            resp
        );
    }

    #[test]
    fn an_oversized_length_is_refused_before_reading_the_body() {
        // Claims u32::MAX bytes but carries none: refused on the prefix alone.
        let err = read_req(u32::MAX.to_be_bytes().to_vec()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("exceeds the limit"), "{err}");
        let just_over = ((MAX_REQUEST_BYTES + 1) as u32).to_be_bytes().to_vec();
        assert_eq!(
            read_req(just_over).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        let mut rd = Cursor::new(((MAX_RESPONSE_BYTES + 1) as u32).to_be_bytes().to_vec());
        let err = block_on(SyncCodec.read_response(&protocol(), &mut rd)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn garbage_truncation_and_trailing_bytes_are_refused_without_panic() {
        for bad in [
            framed(&[0xff, 0xff, 0xff]),
            framed(&[]),
            framed(&[0x07]),
            vec![0, 0],
            {
                let mut ok = to_bytes(&Request::Status(status()));
                ok.push(0);
                framed(&ok)
            },
        ] {
            assert!(read_req(bad.clone()).is_err(), "{bad:?} was accepted");
        }
        // a frame cut short is an unexpected EOF, not a panic
        let whole = framed(&to_bytes(&Request::Status(status())));
        let err = read_req(whole[..whole.len() - 1].to_vec()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn counts_over_their_limits_are_refused() {
        let req = Request::GetBlocks {
            locator: vec![BlockHash::ZERO; MAX_LOCATOR_HASHES + 1],
            max: 1,
        };
        let err = read_req(framed(&to_bytes(&req))).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
