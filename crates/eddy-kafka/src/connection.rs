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

use bytes::{BufMut, Bytes, BytesMut};
use eddy_types::BrokerId;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::ResponseHeader;
use kafka_protocol::protocol::Encodable;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::error::KafkaError;
use crate::handlers::{admin, data, groups, Ctx, Shared};
use crate::request::{api_name, classify, parse, Body, Frame, Parsed};

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
    frame: Bytes,
) -> Result<Option<Bytes>, KafkaError> {
    let (key, version, correlation_id) = match classify(&frame)? {
        Frame::Served {
            key,
            version,
            correlation_id,
        } => (key, version, correlation_id),
        Frame::UnknownApiVersions { correlation_id } => {
            let body = admin::api_versions(E::UnsupportedVersion.code());
            return encode(correlation_id, 0, &body, 0).map(Some);
        }
    };
    let Parsed { header, body, .. } = parse(frame, key, version)?;
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
    metrics::counter!(eddy_metrics::KAFKA_REQUESTS, "api" => api_name(&body)).increment(1);
    macro_rules! answer {
        ($body:expr) => {{
            let body = $body;
            encode(correlation_id, hv, &body, version).map(Some)
        }};
    }
    let v = version;
    match body {
        Body::ApiVersions => answer!(admin::api_versions(0)),
        Body::Metadata(r) => answer!(admin::metadata(&ctx, v, r).await),
        Body::CreateTopics(r) => answer!(admin::create_topics(&ctx, v, r).await),
        Body::DeleteTopics(r) => answer!(admin::delete_topics(&ctx, v, r).await),
        Body::CreatePartitions(r) => answer!(admin::create_partitions(&ctx, r).await),
        Body::DescribeConfigs(r) => answer!(admin::describe_configs(&ctx, v, r)),
        Body::DescribeCluster => answer!(admin::describe_cluster(&ctx, v)),
        Body::InitProducerId(r) => answer!(admin::init_producer_id(&ctx, r).await),
        Body::Produce(r) => match data::produce(&ctx, v, r).await {
            Some(body) => encode(correlation_id, hv, &body, version).map(Some),
            None => Ok(None),
        },
        Body::Fetch(r) => answer!(data::fetch(&ctx, v, r).await),
        Body::ListOffsets(r) => answer!(data::list_offsets(&ctx, v, r).await),
        Body::DeleteRecords(r) => answer!(data::delete_records(&ctx, r).await),
        Body::OffsetForLeaderEpoch(r) => answer!(data::offset_for_leader_epoch(&ctx, r).await),
        Body::FindCoordinator(r) => answer!(groups::find_coordinator(&ctx, v, r).await),
        Body::JoinGroup(r) => answer!(groups::join_group(&ctx, v, r).await),
        Body::SyncGroup(r) => answer!(groups::sync_group(&ctx, v, r).await),
        Body::Heartbeat(r) => answer!(groups::heartbeat(&ctx, r).await),
        Body::LeaveGroup(r) => answer!(groups::leave_group(&ctx, v, r).await),
        Body::OffsetCommit(r) => answer!(groups::offset_commit(&ctx, r).await),
        Body::OffsetFetch(r) => answer!(groups::offset_fetch(&ctx, v, r).await),
        Body::DescribeGroups(r) => answer!(groups::describe_groups(&ctx, r).await),
        Body::ListGroups(r) => answer!(groups::list_groups(&ctx, v, r).await),
        Body::DeleteGroups(r) => answer!(groups::delete_groups(&ctx, r).await),
    }
}
