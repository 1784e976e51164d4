//! One client connection: frames in, requests dispatched in arrival order, responses out in
//! the same order.
//!
//! A reader task takes frames off the socket: a big-endian `i32` size, checked against
//! `max_request_size` before the frame is read into memory, then the header and body. The
//! connection task parses each frame and dispatches it at once: the handler's first poll
//! sends its messages to the brokers' actors, whose mailboxes keep that order, so two
//! produce requests to a partition are appended in the order they arrived (what Kafka's
//! one-request-at-a-time processing guarantees, and what idempotent producers' sequences
//! need). Up to `MAX_IN_FLIGHT` requests then wait for their answers together (a produce
//! for its commit, a fetch for records), so pipelining clients get group commit, and the
//! answers go out strictly in order. A long-polling fetch holds up only the answers after
//! it on its own connection. Anything that is not a well-formed request of a served API
//! and version ends the connection with a log line (after the answers before it), as Kafka
//! does; ApiVersions with a version it does not know is answered with v0 and
//! UNSUPPORTED_VERSION (KIP-511).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use eddy_sync::{MemoryBudget, Permit};
use eddy_types::BrokerId;
use futures_util::stream::{FuturesOrdered, StreamExt};
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::Encodable;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use crate::error::KafkaError;
use crate::handlers::{admin, data, groups, Ctx, Shared};
use crate::request::{api_name, classify, parse, Body, Frame, Parsed};

/// Requests of one connection answered concurrently. An idempotent client keeps up to 5 in
/// flight, but librdkafka without idempotence pipelines as many as it has: it sends one
/// ProduceRequest per partition, so a record to each of 20,000 partitions is 20,000
/// requests, and they share commits only if they wait together. Their bytes are bounded by
/// the request memory budget, not by this count.
const MAX_IN_FLIGHT: usize = 1024;

/// An encoded answer, with what a fetch holds (its memory, its connection's turn) until it
/// is written.
type Encoded = (Bytes, Option<data::FetchHold>);
type Answer = Pin<Box<dyn Future<Output = Result<Option<Encoded>, KafkaError>> + Send>>;

pub(crate) async fn serve(
    shared: Arc<Shared>,
    broker: BrokerId,
    stream: TcpStream,
    peer: SocketAddr,
    mut stopped: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let (frames_tx, mut frames) = mpsc::channel(1);
    let reader = tokio::spawn(read_loop(
        rd,
        shared.config.max_request_size,
        shared.config.idle_timeout,
        shared.request_memory.clone(),
        frames_tx,
    ));
    let mut inflight: FuturesOrdered<Answer> = FuturesOrdered::new();
    let fetch_turn = Arc::new(tokio::sync::Semaphore::new(1));
    let mut reading = true;
    while reading || !inflight.is_empty() {
        tokio::select! {
            biased;
            _ = stopped.changed() => break,
            Some(answer) = inflight.next(), if !inflight.is_empty() => {
                // The answers ready behind this one go out in the same write: one commit
                // finishes hundreds of produce requests at once, and a client that reads
                // them together also serves its partitions once for all of them.
                let mut out = Vec::new();
                let mut closing = None;
                let mut next = Some(answer);
                while let Some(answer) = next.take() {
                    match answer {
                        Ok(Some(encoded)) => out.push(encoded),
                        Ok(None) => {}
                        Err(e) => {
                            closing = Some(e);
                            break;
                        }
                    }
                    if out.len() < MAX_COALESCED {
                        next = ready_answer(&mut inflight).await;
                    }
                }
                if let Err(e) = write_answers(&mut wr, &out).await {
                    debug!(%peer, error = %e, "write failed");
                    break;
                }
                drop(out);
                if let Some(e) = closing {
                    warn!(%peer, %broker, error = %e, "closing the connection");
                    break;
                }
            }
            frame = frames.recv(), if reading && inflight.len() < MAX_IN_FLIGHT => match frame {
                None => reading = false,
                Some(Err(e)) => {
                    warn!(%peer, %broker, error = %e, "closing the connection");
                    reading = false;
                }
                Some(Ok((frame, memory))) => match prepare(frame) {
                    Err(e) => {
                        warn!(%peer, %broker, error = %e, "closing the connection");
                        reading = false;
                    }
                    Ok(request) => {
                        // The request's bytes count against the budget until it is answered.
                        let served =
                            answer(shared.clone(), broker, peer, fetch_turn.clone(), request);
                        let mut answer: Answer = Box::pin(async move {
                            let out = served.await;
                            let bytes = memory.bytes() as f64;
                            drop(memory);
                            metrics::gauge!(eddy_metrics::KAFKA_REQUEST_MEMORY).decrement(bytes);
                            out
                        });
                        // Dispatch now, in arrival order: the first poll sends the request's
                        // messages to the actors.
                        let first = std::future::poll_fn(|cx| Poll::Ready(answer.as_mut().poll(cx))).await;
                        match first {
                            Poll::Ready(r) => inflight.push_back(Box::pin(std::future::ready(r))),
                            Poll::Pending => inflight.push_back(answer),
                        }
                    }
                },
            },
        }
    }
    reader.abort();
}

/// Answers written together at most (the rest wait for the next write).
const MAX_COALESCED: usize = 256;

/// The next answer if it is ready now, without waiting.
async fn ready_answer(
    inflight: &mut FuturesOrdered<Answer>,
) -> Option<Result<Option<Encoded>, KafkaError>> {
    if inflight.is_empty() {
        return None;
    }
    std::future::poll_fn(|cx| match inflight.poll_next_unpin(cx) {
        Poll::Ready(answer) => Poll::Ready(answer),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

/// Writes answers in order, small ones gathered into one buffer so that a burst of them is
/// one system call; what a fetch holds is released after its bytes are written.
async fn write_answers(
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    answers: &[Encoded],
) -> std::io::Result<()> {
    if let [(response, _)] = answers {
        return wr.write_all(response).await;
    }
    let mut buf = BytesMut::new();
    for (response, _) in answers {
        if buf.len() + response.len() > 1 << 20 && !buf.is_empty() {
            wr.write_all(&buf).await?;
            buf.clear();
        }
        if response.len() > 1 << 20 {
            wr.write_all(response).await?;
        } else {
            buf.extend_from_slice(response);
        }
    }
    if !buf.is_empty() {
        wr.write_all(&buf).await?;
    }
    Ok(())
}

type HeldFrame = (Bytes, Permit);

/// Feeds the connection task with frames until the client closes, stays silent for
/// `idle`, or sends a bad size. A frame's bytes are taken from `memory` before they are
/// read (waiting, with the socket unread, while the server holds too many requests).
async fn read_loop(
    rd: OwnedReadHalf,
    max: usize,
    idle: Duration,
    memory: MemoryBudget,
    frames: mpsc::Sender<Result<HeldFrame, KafkaError>>,
) {
    let mut rd = BufReader::with_capacity(64 << 10, rd);
    loop {
        let len = match tokio::time::timeout(idle, read_size(&mut rd, max)).await {
            Err(_) => {
                debug!("idle connection closed");
                return;
            }
            Ok(Ok(Some(len))) => len,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                let _ = frames.send(Err(e)).await;
                return;
            }
        };
        let permit = match memory.try_acquire(len) {
            Some(p) => p,
            None => {
                metrics::counter!(eddy_metrics::KAFKA_REQUEST_MEMORY_WAITS).increment(1);
                memory.acquire(len).await
            }
        };
        let held = permit.bytes() as f64;
        metrics::gauge!(eddy_metrics::KAFKA_REQUEST_MEMORY).increment(held);
        // The body of a request whose size came must follow promptly.
        let frame = match tokio::time::timeout(idle, read_body(&mut rd, len)).await {
            Err(_) => Err(KafkaError::BadRequest(format!(
                "no body of a {len}-byte request in {idle:?}"
            ))),
            Ok(Ok(body)) => Ok((body, permit)),
            Ok(Err(e)) => Err(e),
        };
        let last = frame.is_err();
        if last {
            metrics::gauge!(eddy_metrics::KAFKA_REQUEST_MEMORY).decrement(held);
        }
        if frames.send(frame).await.is_err() || last {
            return;
        }
    }
}

/// Reads a frame's size prefix and checks it; `None` at a clean end of stream.
async fn read_size(
    rd: &mut BufReader<OwnedReadHalf>,
    max: usize,
) -> Result<Option<usize>, KafkaError> {
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
    Ok(Some(len))
}

/// Reads a frame's `len` bytes, into memory it does not zero first (a produce request of
/// megabytes was written twice: zeros, then the bytes).
async fn read_body(rd: &mut BufReader<OwnedReadHalf>, len: usize) -> Result<Bytes, KafkaError> {
    let mut buf = BytesMut::with_capacity(len);
    while buf.len() < len {
        let left = (len - buf.len()) as u64;
        if (&mut *rd).take(left).read_buf(&mut buf).await? == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
    }
    Ok(buf.freeze())
}

/// Size prefix, response header, body.
fn encode<T: Encodable>(
    correlation_id: i32,
    header_version: i16,
    body: &T,
    version: i16,
) -> Result<Bytes, KafkaError> {
    // Sized up front: a fetch answer carries megabytes of batches, copied once.
    let size_hint = body.compute_size(version).unwrap_or(0) + 16;
    let mut buf = BytesMut::with_capacity(size_hint);
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

/// A parsed request, ready to serve.
enum Prepared {
    /// ApiVersions of an unknown version: the KIP-511 answer.
    Fallback { correlation_id: i32 },
    Request {
        key: ApiKey,
        version: i16,
        correlation_id: i32,
        parsed: Box<Parsed>,
    },
}

fn prepare(frame: Bytes) -> Result<Prepared, KafkaError> {
    match classify(&frame)? {
        Frame::UnknownApiVersions { correlation_id } => Ok(Prepared::Fallback { correlation_id }),
        Frame::Served {
            key,
            version,
            correlation_id,
        } => Ok(Prepared::Request {
            key,
            version,
            correlation_id,
            parsed: Box::new(parse(frame, key, version)?),
        }),
    }
}

/// Serves one request and encodes its answer; `Ok(None)` when none is due (acks=0).
async fn answer(
    shared: Arc<Shared>,
    broker: BrokerId,
    peer: SocketAddr,
    fetch_turn: Arc<tokio::sync::Semaphore>,
    request: Prepared,
) -> Result<Option<Encoded>, KafkaError> {
    let (key, version, correlation_id, Parsed { header, body }) = match request {
        Prepared::Fallback { correlation_id } => {
            let body = admin::api_versions(E::UnsupportedVersion.code());
            return encode(correlation_id, 0, &body, 0).map(|b| Some((b, None)));
        }
        Prepared::Request {
            key,
            version,
            correlation_id,
            parsed,
        } => (key, version, correlation_id, *parsed),
    };
    let shared = &*shared;
    let ctx = Ctx {
        shared,
        broker: shared.cluster.at(broker),
        client_id: header.client_id,
        peer,
        fetch_turn,
    };
    let api = api_name(&body);
    metrics::counter!(eddy_metrics::KAFKA_REQUESTS, "api" => api).increment(1);
    let started = tokio::time::Instant::now();
    let answer = serve_body(&ctx, key, version, correlation_id, body).await;
    metrics::histogram!(eddy_metrics::KAFKA_REQUEST_LATENCY, "api" => api)
        .record(started.elapsed().as_secs_f64());
    answer
}

/// Runs the handler of `body` and encodes its answer.
async fn serve_body(
    ctx: &Ctx<'_>,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: Body,
) -> Result<Option<Encoded>, KafkaError> {
    let hv = key.response_header_version(version);
    macro_rules! answer {
        ($body:expr) => {{
            let body = $body;
            encode(correlation_id, hv, &body, version).map(|b| Some((b, None)))
        }};
    }
    let v = version;
    match body {
        Body::ApiVersions => answer!(admin::api_versions(0)),
        Body::Metadata(r) => answer!(admin::metadata(ctx, v, r).await),
        Body::CreateTopics(r) => answer!(admin::create_topics(ctx, v, r).await),
        Body::DeleteTopics(r) => answer!(admin::delete_topics(ctx, v, r).await),
        Body::CreatePartitions(r) => answer!(admin::create_partitions(ctx, r).await),
        Body::DescribeConfigs(r) => answer!(admin::describe_configs(ctx, v, r)),
        Body::DescribeCluster => answer!(admin::describe_cluster(ctx, v)),
        Body::InitProducerId(r) => answer!(admin::init_producer_id(ctx, r).await),
        Body::Produce(r) => match data::produce(ctx, v, r).await {
            Some(body) => encode(correlation_id, hv, &body, version).map(|b| Some((b, None))),
            None => Ok(None),
        },
        Body::Fetch(r) => {
            let (body, held) = data::fetch(ctx, v, r).await;
            encode(correlation_id, hv, &body, version).map(|b| Some((b, Some(held))))
        }
        Body::ListOffsets(r) => answer!(data::list_offsets(ctx, v, r).await),
        Body::DeleteRecords(r) => answer!(data::delete_records(ctx, r).await),
        Body::OffsetForLeaderEpoch(r) => answer!(data::offset_for_leader_epoch(ctx, r).await),
        Body::FindCoordinator(r) => answer!(groups::find_coordinator(ctx, v, r).await),
        Body::JoinGroup(r) => answer!(groups::join_group(ctx, v, r).await),
        Body::SyncGroup(r) => answer!(groups::sync_group(ctx, v, r).await),
        Body::Heartbeat(r) => answer!(groups::heartbeat(ctx, r).await),
        Body::LeaveGroup(r) => answer!(groups::leave_group(ctx, v, r).await),
        Body::OffsetCommit(r) => answer!(groups::offset_commit(ctx, r).await),
        Body::OffsetFetch(r) => answer!(groups::offset_fetch(ctx, v, r).await),
        Body::DescribeGroups(r) => answer!(groups::describe_groups(ctx, r).await),
        Body::ListGroups(r) => answer!(groups::list_groups(ctx, v, r).await),
        Body::DeleteGroups(r) => answer!(groups::delete_groups(ctx, r).await),
    }
}
