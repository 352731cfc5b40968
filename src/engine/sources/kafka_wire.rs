//! One connection to a Kafka broker for `kafka_fetch`: the protocol's framing (kafka-protocol
//! encodes and decodes the messages), the Fetch version agreed with the broker, one request
//! outstanding at a time.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, FetchRequest, FetchResponse, RequestHeader,
    ResponseHeader,
};
use kafka_protocol::protocol::{
    Decodable, Encodable, HeaderVersion, StrBytes, encode_request_header_into_buffer,
};

use super::super::{EngineError, Result};

/// How long one request may take before the connection counts as broken
/// (`socket.timeout.ms` as our consumers set it).
const SOCKET_TIMEOUT: Duration = Duration::from_secs(10);
/// The newest Fetch version asked for: 13 and later name topics by id.
const FETCH_VERSION_MAX: i16 = 12;
/// The oldest Fetch version read: 4 brought isolation levels and record batches (Kafka 0.11).
const FETCH_VERSION_MIN: i16 = 4;

/// Error codes after which the fetch is asked again (of the leader the metadata names then):
/// NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION (a partition not
/// known to this broker yet), REQUEST_TIMED_OUT, NETWORK_EXCEPTION, NOT_ENOUGH_REPLICAS,
/// KAFKA_STORAGE_ERROR, FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH and OFFSET_NOT_AVAILABLE,
/// as the Java consumer retries them.
pub(super) fn retriable(code: i16) -> bool {
    matches!(code, 3 | 5 | 6 | 7 | 13 | 19 | 56 | 74 | 75 | 78)
}

/// One connection to a broker, asking one thing at a time.
pub(super) struct Conn {
    stream: TcpStream,
    fetch_version: i16,
    correlation: i32,
    client_id: StrBytes,
    /// The last answer's bytes: once every slice of them is dropped (its records decoded),
    /// the next answer is read into the same memory. A fresh buffer per answer (4 MB then)
    /// cost music_kafka ~45k more page faults than librdkafka's read.
    last: Option<Bytes>,
}

impl Conn {
    pub(super) fn open(addr: &str, client_id: &StrBytes) -> Result<Self> {
        let err = |e: std::io::Error| EngineError::Broker(format!("cannot connect to {addr}: {e}"));
        let to = addr.to_socket_addrs().map_err(err)?.next().ok_or_else(|| {
            EngineError::Broker(format!("the broker address {addr} resolves to nothing"))
        })?;
        let stream = TcpStream::connect_timeout(&to, SOCKET_TIMEOUT).map_err(err)?;
        stream.set_nodelay(true).map_err(err)?;
        stream.set_read_timeout(Some(SOCKET_TIMEOUT)).map_err(err)?;
        stream.set_write_timeout(Some(SOCKET_TIMEOUT)).map_err(err)?;
        let mut conn = Self {
            stream,
            fetch_version: 0,
            correlation: 0,
            client_id: client_id.clone(),
            last: None,
        };
        conn.send(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())?;
        let versions: ApiVersionsResponse = conn.receive(0)?;
        let fetch = versions.api_keys.iter().find(|k| k.api_key == ApiKey::Fetch as i16);
        let Some(fetch) = fetch.filter(|k| k.max_version >= FETCH_VERSION_MIN) else {
            return Err(EngineError::Broker(format!(
                "the broker at {addr} does not serve Fetch v{FETCH_VERSION_MIN} (Kafka 0.11)"
            )));
        };
        conn.fetch_version = fetch.max_version.min(FETCH_VERSION_MAX);
        Ok(conn)
    }

    pub(super) fn send_fetch(&mut self, request: &FetchRequest) -> Result<()> {
        self.send(ApiKey::Fetch, self.fetch_version, request)
    }

    pub(super) fn receive_fetch(&mut self) -> Result<FetchResponse> {
        self.receive(self.fetch_version)
    }

    fn send<T: Encodable>(&mut self, key: ApiKey, version: i16, body: &T) -> Result<()> {
        self.correlation = self.correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(self.client_id.clone()));
        let mut buf = BytesMut::new();
        buf.put_i32(0); // the size, filled in below
        encode_request_header_into_buffer(&mut buf, &header)
            .and_then(|()| body.encode(&mut buf, version))
            .map_err(|e| EngineError::Broker(format!("cannot encode a Kafka request: {e}")))?;
        let size = i32::try_from(buf.len() - 4).unwrap_or(i32::MAX);
        buf[..4].copy_from_slice(&size.to_be_bytes());
        self.stream.write_all(&buf).map_err(io_err)
    }

    /// The answer to the request sent last.
    fn receive<T: Decodable + HeaderVersion>(&mut self, version: i16) -> Result<T> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).map_err(io_err)?;
        let size = usize::try_from(i32::from_be_bytes(size))
            .map_err(|_| EngineError::Broker("a Kafka answer with a negative size".into()))?;
        let mut room = match self.last.take().map(Bytes::try_into_mut) {
            Some(Ok(mine)) => Vec::from(mine),
            _ => Vec::new(),
        };
        room.clear();
        // (and room to spare: read_to_end doubles a full buffer before it looks for the end)
        room.reserve(size + 64);
        // (read_to_end fills the spare room without zeroing it first)
        let read = (&mut self.stream).take(size as u64).read_to_end(&mut room).map_err(io_err)?;
        if read < size {
            return Err(io_err(std::io::ErrorKind::UnexpectedEof.into()));
        }
        let mut buf = Bytes::from(room);
        self.last = Some(buf.clone());
        let bad =
            |e: anyhow::Error| EngineError::Broker(format!("a Kafka answer is malformed: {e}"));
        let header = ResponseHeader::decode(&mut buf, T::header_version(version)).map_err(bad)?;
        // one request is outstanding at a time: the answer is to the last one sent
        if header.correlation_id != self.correlation {
            return Err(EngineError::Broker(format!(
                "a Kafka answer to request {} came for request {}",
                header.correlation_id, self.correlation
            )));
        }
        T::decode(&mut buf, version).map_err(bad)
    }
}

fn io_err(e: std::io::Error) -> EngineError {
    EngineError::Broker(format!("the broker connection failed: {e}"))
}
