//! One client connection: frames in, one request at a time, responses out in order.
//!
//! Kafka's broker reads one request from a connection, answers it, then reads the next
//! (clients pipeline into the socket; answers keep their order), so a long-polling fetch
//! holds up only its own connection. Framing is a big-endian `i32` size, then the request
//! header and body; the size is checked against `max_request_size` before the frame is read
//! into memory. Anything that is not a well-formed request of a served API and version ends
//! the connection with a log line, as Kafka does; ApiVersions with a version it does not
//! know is answered with v0 and UNSUPPORTED_VERSION (KIP-511).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use eddy_types::BrokerId;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::error::KafkaError;
use crate::handlers::{admin, data, groups, Ctx, Shared};
use crate::versions::supported;

pub(crate) async fn serve(
    shared: Arc<Shared>,
    broker: BrokerId,
    stream: TcpStream,
    peer: SocketAddr,
    mut stopped: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::with_capacity(64 << 10, rd);
    let idle = shared.config.idle_timeout;
    loop {
        let frame = tokio::select! {
            f = tokio::time::timeout(idle, read_frame(&mut rd, shared.config.max_request_size)) => f,
            _ = stopped.changed() => return,
        };
        let frame = match frame {
            Err(_) => {
                debug!(%peer, "idle connection closed");
                return;
            }
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) => return, // closed by the client
            Ok(Err(e)) => {
                warn!(%peer, %broker, error = %e, "closing the connection");
                return;
            }
        };
        let answer = tokio::select! {
            a = handle(&shared, broker, peer, frame) => a,
            _ = stopped.changed() => return,
        };
        match answer {
            Ok(Some(response)) => {
                if let Err(e) = wr.write_all(&response).await {
                    debug!(%peer, error = %e, "write failed");
                    return;
                }
            }
            Ok(None) => {}
            Err(e) => {
                warn!(%peer, %broker, error = %e, "closing the connection");
                return;
            }
        }
    }
}

/// Reads one size-prefixed frame; `None` at a clean end of stream.
async fn read_frame(
    rd: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    max: usize,
) -> Result<Option<Bytes>, KafkaError> {
    let mut size = [0u8; 4];
    match rd.read_exact(&mut size).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let size = i32::from_be_bytes(size);
    let Ok(len) = usize::try_from(size) else {
        return Err(KafkaError::BadRequest(format!(
            "negative frame size {size}"
        )));
    };
    if len > max {
        return Err(KafkaError::BadRequest(format!(
            "frame of {len} bytes is over the {max}-byte limit (socket.request.max.bytes)"
        )));
    }
    if len < 8 {
        return Err(KafkaError::BadRequest(format!(
            "frame of {len} bytes is too short for a request header"
        )));
    }
    let mut buf = BytesMut::zeroed(len);
    rd.read_exact(&mut buf).await?;
    Ok(Some(buf.freeze()))
}

fn decode<T: Decodable>(frame: &mut Bytes, key: ApiKey, version: i16) -> Result<T, KafkaError> {
    T::decode(frame, version)
        .map_err(|e| KafkaError::BadRequest(format!("{key:?} v{version}: {e:#}")))
}

/// Size prefix, response header, body.
fn encode<T: Encodable>(
    correlation_id: i32,
    header_version: i16,
    body: &T,
    version: i16,
) -> Result<Bytes, KafkaError> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    header
        .encode(&mut buf, header_version)
        .map_err(|e| KafkaError::Encode(e.to_string()))?;
    body.encode(&mut buf, version).map_err(|e| {
        KafkaError::Encode(format!("{} v{version}: {e:#}", std::any::type_name::<T>()))
    })?;
    let size = i32::try_from(buf.len() - 4)
        .map_err(|_| KafkaError::Encode("response over 2 GiB".into()))?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// Decodes, serves and encodes one request; `Ok(None)` when no response is due (acks=0).
async fn handle(
    shared: &Shared,
    broker: BrokerId,
    peer: SocketAddr,
    mut frame: Bytes,
) -> Result<Option<Bytes>, KafkaError> {
    let raw_key = (&frame[0..2]).get_i16();
    let version = (&frame[2..4]).get_i16();
    let correlation_id = (&frame[4..8]).get_i32();
    let key = ApiKey::try_from(raw_key)
        .map_err(|_| KafkaError::BadRequest(format!("unknown API key {raw_key}")))?;
    let served = supported(key).filter(|(lo, hi)| (*lo..=*hi).contains(&version));
    if served.is_none() {
        if key == ApiKey::ApiVersions {
            let body = admin::api_versions(E::UnsupportedVersion.code());
            return encode(correlation_id, 0, &body, 0).map(Some);
        }
        return Err(KafkaError::BadRequest(format!(
            "{key:?} v{version} is not served"
        )));
    }
    let header: RequestHeader = decode(&mut frame, key, key.request_header_version(version))?;
    let ctx = Ctx {
        shared,
        broker: shared.cluster.at(broker),
        client_id: header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        peer: format!("/{}", peer.ip()),
    };
    let hv = key.response_header_version(version);
    metrics::counter!(eddy_metrics::KAFKA_REQUESTS, "api" => api_name(key)).increment(1);
    macro_rules! serve {
        ($handler:expr) => {{
            let body = $handler;
            encode(correlation_id, hv, &body, version).map(Some)
        }};
    }
    let f = &mut frame;
    match key {
        ApiKey::ApiVersions => {
            let _: kafka_protocol::messages::ApiVersionsRequest = decode(f, key, version)?;
            serve!(admin::api_versions(0))
        }
        ApiKey::Metadata => serve!(admin::metadata(&ctx, version, decode(f, key, version)?).await),
        ApiKey::CreateTopics => {
            serve!(admin::create_topics(&ctx, version, decode(f, key, version)?).await)
        }
        ApiKey::DeleteTopics => {
            serve!(admin::delete_topics(&ctx, version, decode(f, key, version)?).await)
        }
        ApiKey::InitProducerId => {
            serve!(admin::init_producer_id(&ctx, decode(f, key, version)?).await)
        }
        ApiKey::Produce => match data::produce(&ctx, version, decode(f, key, version)?).await {
            Some(body) => encode(correlation_id, hv, &body, version).map(Some),
            None => Ok(None),
        },
        ApiKey::Fetch => serve!(data::fetch(&ctx, version, decode(f, key, version)?).await),
        ApiKey::ListOffsets => {
            serve!(data::list_offsets(&ctx, version, decode(f, key, version)?).await)
        }
        ApiKey::FindCoordinator => {
            serve!(groups::find_coordinator(&ctx, version, decode(f, key, version)?).await)
        }
        ApiKey::JoinGroup => {
            serve!(groups::join_group(&ctx, version, decode(f, key, version)?).await)
        }
        ApiKey::SyncGroup => {
            serve!(groups::sync_group(&ctx, version, decode(f, key, version)?).await)
        }
        ApiKey::Heartbeat => serve!(groups::heartbeat(&ctx, decode(f, key, version)?).await),
        ApiKey::LeaveGroup => {
            serve!(groups::leave_group(&ctx, version, decode(f, key, version)?).await)
        }
        ApiKey::OffsetCommit => {
            serve!(groups::offset_commit(&ctx, decode(f, key, version)?).await)
        }
        ApiKey::OffsetFetch => {
            serve!(groups::offset_fetch(&ctx, version, decode(f, key, version)?).await)
        }
        ApiKey::DescribeGroups => {
            serve!(groups::describe_groups(&ctx, decode(f, key, version)?).await)
        }
        ApiKey::ListGroups => {
            serve!(groups::list_groups(&ctx, version, decode(f, key, version)?).await)
        }
        ApiKey::DeleteGroups => {
            serve!(groups::delete_groups(&ctx, decode(f, key, version)?).await)
        }
        ApiKey::CreatePartitions => {
            serve!(admin::create_partitions(&ctx, decode(f, key, version)?).await)
        }
        ApiKey::DescribeConfigs => {
            serve!(admin::describe_configs(
                &ctx,
                version,
                decode(f, key, version)?
            ))
        }
        ApiKey::DescribeCluster => {
            let _: kafka_protocol::messages::DescribeClusterRequest = decode(f, key, version)?;
            serve!(admin::describe_cluster(&ctx, version))
        }
        ApiKey::DeleteRecords => serve!(data::delete_records(&ctx, decode(f, key, version)?).await),
        ApiKey::OffsetForLeaderEpoch => {
            serve!(data::offset_for_leader_epoch(&ctx, decode(f, key, version)?).await)
        }
        other => Err(KafkaError::BadRequest(format!("{other:?} is not served"))),
    }
}

/// A bounded label for the request counter.
fn api_name(key: ApiKey) -> &'static str {
    match key {
        ApiKey::Produce => "Produce",
        ApiKey::Fetch => "Fetch",
        ApiKey::ListOffsets => "ListOffsets",
        ApiKey::Metadata => "Metadata",
        ApiKey::OffsetCommit => "OffsetCommit",
        ApiKey::OffsetFetch => "OffsetFetch",
        ApiKey::FindCoordinator => "FindCoordinator",
        ApiKey::JoinGroup => "JoinGroup",
        ApiKey::Heartbeat => "Heartbeat",
        ApiKey::LeaveGroup => "LeaveGroup",
        ApiKey::SyncGroup => "SyncGroup",
        ApiKey::DescribeGroups => "DescribeGroups",
        ApiKey::ListGroups => "ListGroups",
        ApiKey::ApiVersions => "ApiVersions",
        ApiKey::CreateTopics => "CreateTopics",
        ApiKey::DeleteTopics => "DeleteTopics",
        ApiKey::DeleteGroups => "DeleteGroups",
        ApiKey::InitProducerId => "InitProducerId",
        ApiKey::CreatePartitions => "CreatePartitions",
        ApiKey::DescribeConfigs => "DescribeConfigs",
        ApiKey::DescribeCluster => "DescribeCluster",
        ApiKey::DeleteRecords => "DeleteRecords",
        ApiKey::OffsetForLeaderEpoch => "OffsetForLeaderEpoch",
        _ => "other",
    }
}
