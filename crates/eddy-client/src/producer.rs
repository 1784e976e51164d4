//! The embedded producer: one actor per producer, driving the [`Accumulator`].
//!
//! [`Producer::send`] hands a record to the actor and returns a [`Delivery`] future at once, so
//! many records can be in the air and batched together. The actor picks the partition
//! (explicit, else murmur2 of the key, else sticky round-robin), appends to the accumulator,
//! and sends every batch that closes (by `batch.size` or `linger`) to the partition leader
//! through [`Cluster`], at most `max_in_flight` per partition. An idempotent producer (the
//! default, as in Kafka 3) stamps each batch with its producer id, epoch and per-partition
//! sequence, so a retried batch is never written twice. Batches are compressed with gzip,
//! snappy, lz4 or zstd (kafka-protocol's codecs). A failed batch is retried with exponential
//! backoff while the error is retriable and `delivery_timeout` allows; each record's future
//! resolves to its (partition, offset) only once the batch is committed at the chosen acks.
//!
//! ```
//! use eddy_broker::{ClusterConfig, EmbeddedCluster, NewTopic};
//! use eddy_client::{Producer, ProducerConfig, ProducerRecord};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let mut config = ClusterConfig::new("demo", dir.path());
//! # config.log.map_size = 1 << 26;
//! let eddy = EmbeddedCluster::open(config)?;
//! let cluster = eddy.cluster();
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! rt.block_on(async {
//!     cluster.create_topic(NewTopic::new("chat").partitions(3)).await?;
//!     let producer = Producer::start(&cluster, ProducerConfig::default()).await?;
//!     // Both sends are in the air together; each answers after acks=all.
//!     let a = producer.send(ProducerRecord::new("chat", "hello").key("alice"));
//!     let b = producer.send(ProducerRecord::new("chat", "again").key("alice"));
//!     let (a, b) = (a.await?, b.await?);
//!     assert_eq!(a.partition, b.partition); // one key, one partition
//!     assert_eq!(b.offset, a.offset + 1);
//!     producer.close().await;
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })?;
//! eddy.shutdown();
//! # Ok(()) }
//! ```

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use eddy_broker::messages::{ProduceReply, ProducerIdentity};
use eddy_broker::partitioner::{partition_for_key, StickyRoundRobin};
use eddy_broker::{BrokerError, Cluster, NewTopic};
use eddy_types::{Acks, ClassifyError};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use tokio::sync::oneshot;
use tracing::{debug, warn};

use crate::accumulator::{
    Accumulator, AccumulatorConfig, PendingRecord, ReadyBatch, TopicPartition,
};
use crate::error::ClientError;

/// Batch compression (`compression.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// No compression (Kafka's default).
    #[default]
    None,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl Compression {
    fn codec(self) -> kafka_protocol::records::Compression {
        use kafka_protocol::records::Compression as C;
        match self {
            Compression::None => C::None,
            Compression::Gzip => C::Gzip,
            Compression::Snappy => C::Snappy,
            Compression::Lz4 => C::Lz4,
            Compression::Zstd => C::Zstd,
        }
    }
}

impl FromStr for Compression {
    type Err = ClientError;

    fn from_str(s: &str) -> Result<Compression, ClientError> {
        match s {
            "none" => Ok(Compression::None),
            "gzip" => Ok(Compression::Gzip),
            "snappy" => Ok(Compression::Snappy),
            "lz4" => Ok(Compression::Lz4),
            "zstd" => Ok(Compression::Zstd),
            other => Err(ClientError::InvalidConfig(format!(
                "compression.type {other:?} is not one of none, gzip, snappy, lz4, zstd"
            ))),
        }
    }
}

/// Producer settings, with Kafka's names and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerConfig {
    /// `acks` (all).
    pub acks: Acks,
    /// `batch.size` (16 KiB).
    pub batch_size: usize,
    /// `linger.ms` (5 ms).
    pub linger: Duration,
    /// `buffer.memory` (32 MiB).
    pub buffer_memory: usize,
    /// `max.in.flight.requests.per.connection`, here per partition (5).
    pub max_in_flight: usize,
    /// `max.block.ms`: how long a record may wait for room in `buffer.memory` (60 s).
    /// Records waiting for room are bounded by `buffer.memory` too: a send that finds that
    /// many bytes already waiting is refused at once with `BufferFull`, so a producer never
    /// holds more than twice `buffer.memory` however fast records are sent.
    pub max_block: Duration,
    /// `retries` (unbounded: the delivery timeout bounds them).
    pub retries: u32,
    /// `retry.backoff.ms` (100 ms), doubled per attempt up to `retry_backoff_max` (1 s).
    pub retry_backoff: Duration,
    /// `retry.backoff.max.ms` (1 s).
    pub retry_backoff_max: Duration,
    /// `request.timeout.ms`: one attempt's limit (30 s).
    pub request_timeout: Duration,
    /// `delivery.timeout.ms`: from `send` to the final answer, retries included (120 s).
    pub delivery_timeout: Duration,
    /// `compression.type` (none).
    pub compression: Compression,
    /// `enable.idempotence` (true): requires `acks=all`.
    pub idempotence: bool,
}

impl Default for ProducerConfig {
    fn default() -> ProducerConfig {
        let acc = AccumulatorConfig::default();
        ProducerConfig {
            acks: Acks::All,
            batch_size: acc.batch_size,
            linger: acc.linger,
            buffer_memory: acc.buffer_memory,
            max_in_flight: acc.max_in_flight,
            max_block: Duration::from_secs(60),
            retries: u32::MAX,
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(1),
            request_timeout: Duration::from_secs(30),
            delivery_timeout: Duration::from_secs(120),
            compression: Compression::None,
            idempotence: true,
        }
    }
}

impl ProducerConfig {
    /// Checks the settings as Kafka's producer does.
    pub fn validate(&self) -> Result<(), ClientError> {
        let bad = |m: String| Err(ClientError::InvalidConfig(m));
        if self.batch_size == 0 || self.buffer_memory == 0 {
            return bad("batch.size and buffer.memory must be positive".into());
        }
        if self.max_in_flight == 0 {
            return bad("max.in.flight.requests.per.connection must be at least 1".into());
        }
        if self.idempotence {
            if self.acks != Acks::All {
                return bad(format!(
                    "enable.idempotence needs acks=all, not {:?}",
                    self.acks
                ));
            }
            if self.max_in_flight > 5 {
                return bad(format!(
                    "enable.idempotence allows at most 5 requests in flight, not {}",
                    self.max_in_flight
                ));
            }
            if self.retries == 0 {
                return bad("enable.idempotence needs retries > 0".into());
            }
        }
        if self.delivery_timeout < self.linger + self.request_timeout {
            return bad(format!(
                "delivery.timeout ({:?}) must be at least linger + request.timeout ({:?})",
                self.delivery_timeout,
                self.linger + self.request_timeout
            ));
        }
        Ok(())
    }

    fn accumulator(&self) -> AccumulatorConfig {
        AccumulatorConfig {
            batch_size: self.batch_size,
            linger: self.linger,
            buffer_memory: self.buffer_memory,
            max_in_flight: self.max_in_flight,
        }
    }

    /// The wait before attempt `attempt + 1` (attempt 1 is the first retry).
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.retry_backoff
            .saturating_mul(factor)
            .min(self.retry_backoff_max.max(self.retry_backoff))
    }
}

/// A record to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerRecord {
    /// The topic.
    pub topic: String,
    /// An explicit partition; else the key decides, else sticky round-robin.
    pub partition: Option<u32>,
    /// The key.
    pub key: Option<Bytes>,
    /// The value (`None` is a tombstone).
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Creation time in ms since the epoch; `None` means now.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record with a value and nothing else set.
    pub fn new(topic: impl Into<String>, value: impl Into<Bytes>) -> ProducerRecord {
        ProducerRecord {
            topic: topic.into(),
            value: Some(value.into()),
            ..ProducerRecord::default()
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<Bytes>) -> ProducerRecord {
        self.key = Some(key.into());
        self
    }

    /// Sends to this partition.
    pub fn partition(mut self, partition: u32) -> ProducerRecord {
        self.partition = Some(partition);
        self
    }

    /// Adds a header.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> ProducerRecord {
        self.headers.push((key.into(), Some(value.into())));
        self
    }

    /// Sets the creation timestamp (ms since the epoch).
    pub fn timestamp(mut self, ms: i64) -> ProducerRecord {
        self.timestamp = Some(ms);
        self
    }
}

/// Where a record was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The record's offset; -1 with `acks=0`, which gets no offsets.
    pub offset: i64,
    /// The record's timestamp.
    pub timestamp: i64,
}

type Reply = oneshot::Sender<Result<RecordMetadata, ClientError>>;

/// The answer to one [`Producer::send`]: resolves once the record is committed at the
/// producer's acks (or has failed for good).
#[derive(Debug)]
#[must_use = "a Delivery tells whether the record was written"]
pub struct Delivery(oneshot::Receiver<Result<RecordMetadata, ClientError>>);

impl Future for Delivery {
    type Output = Result<RecordMetadata, ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(ClientError::Closed)))
    }
}

/// A handle on a producer actor; cheap to clone, usable from any thread and any async
/// runtime. Call [`Producer::close`] (or [`Producer::flush`]) before dropping the last handle
/// to wait for what is still buffered.
#[derive(Debug, Clone)]
pub struct Producer {
    addr: Addr<ProducerActor>,
}

impl Producer {
    /// Starts a producer on the cluster's arbiter. An idempotent producer gets its producer
    /// id first, so a failure to get one is reported here.
    pub async fn start(cluster: &Cluster, config: ProducerConfig) -> Result<Producer, ClientError> {
        config.validate()?;
        let identity = if config.idempotence {
            Some(cluster.init_producer_id().await?)
        } else {
            None
        };
        let actor = ProducerActor {
            cluster: cluster.clone(),
            acc: Accumulator::new(config.accumulator()),
            config,
            sticky: HashMap::new(),
            identity,
            identity_requested: false,
            sequences: HashMap::new(),
            unacked: HashMap::new(),
            waiting: WaitQueue::default(),
            waiting_timer: None,
            creating: HashSet::new(),
            linger_timer: None,
            flushers: Vec::new(),
            closing: false,
            fatal: None,
        };
        let addr = ProducerActor::start_in_arbiter(cluster.arbiter(), move |_| actor);
        Ok(Producer { addr })
    }

    /// Hands a record over and returns at once; the [`Delivery`] resolves to where it was
    /// written.
    pub fn send(&self, record: ProducerRecord) -> Delivery {
        let (tx, rx) = oneshot::channel();
        self.addr.do_send(Enqueue(vec![(record, tx)]));
        Delivery(rx)
    }

    /// Hands many records over in one message; answers one result per record, in order.
    pub fn send_batch(
        &self,
        records: impl IntoIterator<Item = ProducerRecord>,
    ) -> impl Future<Output = Vec<Result<RecordMetadata, ClientError>>> + Send + 'static {
        let mut items = Vec::new();
        let mut deliveries = Vec::new();
        for record in records {
            let (tx, rx) = oneshot::channel();
            items.push((record, tx));
            deliveries.push(Delivery(rx));
        }
        self.addr.do_send(Enqueue(items));
        async move {
            let mut out = Vec::with_capacity(deliveries.len());
            for d in deliveries {
                out.push(d.await);
            }
            out
        }
    }

    /// Sends every buffered record now (ignoring `linger`) and waits until all records handed
    /// over before this call are answered.
    pub async fn flush(&self) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.addr.do_send(Flush {
            done: tx,
            close: false,
        });
        rx.await.map_err(|_| ClientError::Closed)
    }

    /// Flushes, then stops the producer; later sends fail with [`ClientError::Closed`].
    pub async fn close(self) {
        let (tx, rx) = oneshot::channel();
        self.addr.do_send(Flush {
            done: tx,
            close: true,
        });
        let _ = rx.await;
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Enqueue(Vec<(ProducerRecord, Reply)>);

#[derive(Message)]
#[rtype(result = "()")]
struct Flush {
    done: oneshot::Sender<()>,
    close: bool,
}

/// What the accumulator carries per record: the way back to its `send`.
#[derive(Debug)]
struct Token {
    reply: Reply,
    /// When `send` was called (the delivery timeout counts from here).
    created: Instant,
    timestamp: i64,
}

/// A record waiting to enter the accumulator (for room, or for its topic to be created).
#[derive(Debug)]
struct Waiting {
    record: ProducerRecord,
    reply: Reply,
    since: Instant,
    /// What it counts for against `buffer.memory`.
    size: usize,
}

/// The records waiting to enter the accumulator, in order, and the bytes they hold.
#[derive(Debug, Default)]
struct WaitQueue {
    items: VecDeque<Waiting>,
    bytes: usize,
}

impl WaitQueue {
    fn push_back(&mut self, w: Waiting) {
        self.bytes += w.size;
        self.items.push_back(w);
    }

    fn push_front(&mut self, w: Waiting) {
        self.bytes += w.size;
        self.items.push_front(w);
    }

    fn pop_front(&mut self) -> Option<Waiting> {
        let w = self.items.pop_front()?;
        self.bytes -= w.size;
        Some(w)
    }

    fn take_all(&mut self) -> VecDeque<Waiting> {
        self.bytes = 0;
        std::mem::take(&mut self.items)
    }

    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// What a record counts for against `buffer.memory` (as [`PendingRecord::size`]).
fn record_size(r: &ProducerRecord) -> usize {
    let headers: usize = r
        .headers
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().map_or(0, Bytes::len) + 2)
        .sum();
    21 + r.key.as_ref().map_or(0, Bytes::len) + r.value.as_ref().map_or(0, Bytes::len) + headers
}

/// A batch sent and not yet answered for good.
#[derive(Debug)]
struct InFlight {
    partition: TopicPartition,
    payload: Bytes,
    tokens: Vec<Token>,
    /// Bytes it holds in the accumulator.
    held: usize,
    /// Producer id and base sequence, for an idempotent batch.
    sequence: Option<(i64, i32)>,
    attempts: u32,
    deadline: Instant,
}

/// The producer actor.
struct ProducerActor {
    cluster: Cluster,
    config: ProducerConfig,
    acc: Accumulator<Token>,
    sticky: HashMap<String, StickyRoundRobin>,
    identity: Option<ProducerIdentity>,
    identity_requested: bool,
    /// Next sequence per partition (idempotent producers).
    sequences: HashMap<TopicPartition, i32>,
    /// Sent, unanswered idempotent batches per partition: (producer id, base sequence).
    unacked: HashMap<TopicPartition, BTreeSet<(i64, i32)>>,
    /// Records not yet in the accumulator, in send order.
    waiting: WaitQueue,
    waiting_timer: Option<SpawnHandle>,
    /// Topics being auto-created.
    creating: HashSet<String>,
    linger_timer: Option<(Instant, SpawnHandle)>,
    flushers: Vec<(oneshot::Sender<()>, bool)>,
    closing: bool,
    /// A failure that ends the producer (no producer id can be had).
    fatal: Option<BrokerError>,
}

/// Tokio's clock as a std `Instant`, so tests with paused time control it.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Kafka's sequence arithmetic: sequences wrap from `i32::MAX` to 0.
fn sequence_add(base: i32, n: usize) -> i32 {
    ((i64::from(base) + n as i64) % (1i64 << 31)) as i32
}

fn encode(
    records: &[PendingRecord],
    identity: Option<(ProducerIdentity, i32)>,
    compression: Compression,
) -> Result<Bytes, ClientError> {
    let (producer_id, producer_epoch) =
        identity.map_or((-1, -1), |(i, _)| (i.producer_id, i.epoch));
    let encoded: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: identity.map_or(-1, |(_, base)| sequence_add(base, i)),
            timestamp: r.timestamp,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone()))
                .collect(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: compression.codec(),
    };
    RecordBatchEncoder::encode(&mut buf, encoded.iter(), &options)
        .map_err(|e| ClientError::Encode(e.to_string()))?;
    Ok(buf.freeze())
}

fn fail_all(tokens: Vec<Token>, error: &ClientError) {
    for t in tokens {
        let _ = t.reply.send(Err(error.clone()));
    }
}

impl ProducerActor {
    /// Moves waiting records into the accumulator, in order, while there is room.
    fn admit(&mut self, ctx: &mut Context<Self>) {
        let t = now();
        // One metadata snapshot for every record admitted now, not a lookup each.
        let metadata = self.cluster.metadata();
        while let Some(w) = self.waiting.pop_front() {
            if let Some(e) = &self.fatal {
                let _ = w.reply.send(Err(e.clone().into()));
                continue;
            }
            let topic = match metadata.topic(&w.record.topic) {
                Ok(topic) => topic,
                Err(BrokerError::UnknownTopic(_)) if self.cluster.config().auto_create_topics => {
                    self.create_topic(w.record.topic.clone(), ctx);
                    self.waiting.push_front(w);
                    return;
                }
                Err(e) => {
                    let _ = w.reply.send(Err(e.into()));
                    continue;
                }
            };
            let count = topic.partitions.len() as u32;
            let name = topic.name.as_str().to_owned();
            let unkeyed = w.record.partition.is_none() && w.record.key.is_none();
            let partition = match (w.record.partition, &w.record.key) {
                (Some(p), _) if p < count => p,
                (Some(p), _) => {
                    let e = BrokerError::UnknownPartition {
                        topic: topic.name.clone(),
                        partition: p,
                    };
                    let _ = w.reply.send(Err(e.into()));
                    continue;
                }
                (None, Some(key)) => partition_for_key(key, count),
                (None, None) => self
                    .sticky
                    .entry(name.clone())
                    .or_default()
                    .partition(count),
            };
            let timestamp = w.record.timestamp.unwrap_or_else(wall_clock_ms);
            let pending = PendingRecord {
                key: w.record.key.clone(),
                value: w.record.value.clone(),
                headers: w.record.headers.clone(),
                timestamp,
            };
            let size = pending.size();
            let mut partition = partition;
            if unkeyed && self.acc.close_unless_fits(&(name.clone(), partition), size) {
                // The sticky batch is full: this record starts the next partition's batch.
                let rr = self.sticky.entry(name.clone()).or_default();
                rr.batch_closed();
                partition = rr.partition(count);
            }
            let limit = self.config.buffer_memory;
            if size > limit {
                let _ = w
                    .reply
                    .send(Err(ClientError::RecordTooLarge { size, limit }));
                continue;
            }
            if self.acc.held() + size > limit {
                let waited = t.saturating_duration_since(w.since);
                if waited >= self.config.max_block {
                    let _ = w.reply.send(Err(ClientError::BufferFull {
                        held: self.acc.held(),
                        limit,
                        waited_ms: waited.as_millis() as u64,
                    }));
                    continue;
                }
                // Wait for room (an answered batch calls `admit` again) or for max.block.
                let wait = self.config.max_block - waited;
                self.waiting.push_front(w);
                if let Some(h) = self.waiting_timer.take() {
                    ctx.cancel_future(h);
                }
                self.waiting_timer = Some(ctx.run_later(wait, |act, ctx| {
                    act.waiting_timer = None;
                    act.admit(ctx);
                }));
                return;
            }
            let token = Token {
                reply: w.reply,
                created: w.since,
                timestamp,
            };
            match self
                .acc
                .append((name.clone(), partition), pending, token, t)
            {
                Ok(closed) => {
                    if closed && unkeyed {
                        self.sticky.entry(name).or_default().batch_closed();
                    }
                }
                Err((full, token)) => {
                    // Not reached: room was checked above.
                    let _ = token.reply.send(Err(ClientError::BufferFull {
                        held: full.held,
                        limit: full.limit,
                        waited_ms: 0,
                    }));
                }
            }
        }
    }

    fn create_topic(&mut self, topic: String, ctx: &mut Context<Self>) {
        if !self.creating.insert(topic.clone()) {
            return;
        }
        let cluster = self.cluster.clone();
        let name = topic.clone();
        let fut = async move { cluster.create_topic(NewTopic::new(name)).await };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.creating.remove(&topic);
            match res {
                Ok(_) | Err(BrokerError::TopicExists(_)) => {}
                Err(e) => {
                    // Refuse every waiting record of that topic; the others go on.
                    let error = ClientError::from(e);
                    for w in act.waiting.take_all() {
                        if w.record.topic == topic {
                            let _ = w.reply.send(Err(error.clone()));
                        } else {
                            act.waiting.push_back(w);
                        }
                    }
                }
            }
            act.admit(ctx);
            act.drain(ctx);
        }));
    }

    /// Sends every batch that may go now, and arms the linger timer for the next one.
    fn drain(&mut self, ctx: &mut Context<Self>) {
        if self.config.idempotence && self.identity.is_none() {
            if self.acc.is_empty() {
                self.check_flushed(ctx);
            } else {
                self.request_identity(ctx);
            }
            return;
        }
        let t = now();
        let flush = self.closing || !self.flushers.is_empty();
        for batch in self.acc.sendable(t, flush) {
            self.dispatch(batch, t, ctx);
        }
        self.arm_linger(ctx);
        self.check_flushed(ctx);
    }

    fn arm_linger(&mut self, ctx: &mut Context<Self>) {
        let Some(due) = self.acc.next_deadline() else {
            return;
        };
        if let Some((at, handle)) = self.linger_timer {
            if at <= due {
                return;
            }
            ctx.cancel_future(handle);
        }
        let wait = due.saturating_duration_since(now());
        let handle = ctx.run_later(wait, |act, ctx| {
            act.linger_timer = None;
            act.drain(ctx);
        });
        self.linger_timer = Some((due, handle));
    }

    fn dispatch(&mut self, batch: ReadyBatch<Token>, t: Instant, ctx: &mut Context<Self>) {
        let ReadyBatch {
            partition,
            records,
            tokens,
            bytes: held,
        } = batch;
        if let Some(rr) = self.sticky.get_mut(&partition.0) {
            if rr.current() == Some(partition.1) {
                rr.batch_closed();
            }
        }
        let oldest = tokens.iter().map(|t| t.created).min().unwrap_or(t);
        let deadline = oldest + self.config.delivery_timeout;
        if t >= deadline {
            let e = ClientError::DeliveryTimeout {
                topic: partition.0.clone(),
                partition: partition.1,
                last: None,
            };
            fail_all(tokens, &e);
            self.acc.done(&partition, held);
            return;
        }
        let stamp = self.identity.map(|id| {
            let base = self.sequences.get(&partition).copied().unwrap_or(0);
            (id, base)
        });
        let payload = match encode(&records, stamp, self.config.compression) {
            Ok(p) => p,
            Err(e) => {
                fail_all(tokens, &e);
                self.acc.done(&partition, held);
                return;
            }
        };
        let sequence = stamp.map(|(id, base)| {
            self.sequences
                .insert(partition.clone(), sequence_add(base, records.len()));
            self.unacked
                .entry(partition.clone())
                .or_default()
                .insert((id.producer_id, base));
            (id.producer_id, base)
        });
        metrics::histogram!(eddy_metrics::PRODUCER_BATCH_BYTES, "topic" => partition.0.clone())
            .record(payload.len() as f64);
        metrics::histogram!(eddy_metrics::PRODUCER_BATCH_FILL, "topic" => partition.0.clone())
            .record(payload.len() as f64 / self.config.batch_size.max(1) as f64);
        let batch = InFlight {
            partition,
            payload,
            tokens,
            held,
            sequence,
            attempts: 0,
            deadline,
        };
        self.send(batch, ctx);
    }

    fn send(&mut self, batch: InFlight, ctx: &mut Context<Self>) {
        let remaining = batch.deadline.saturating_duration_since(now());
        let limit = remaining.min(self.config.request_timeout);
        let cluster = self.cluster.clone();
        let (topic, partition) = batch.partition.clone();
        let payload = batch.payload.clone();
        let acks = self.config.acks;
        let fut = async move {
            let produce = cluster.produce(&topic, partition, payload, acks);
            match tokio::time::timeout(limit, produce).await {
                Ok(answer) => answer,
                Err(_) => Err(BrokerError::Timeout("produce request")),
            }
        };
        ctx.spawn(
            fut.into_actor(self)
                .map(move |res, act, ctx| act.answered(batch, res, ctx)),
        );
    }

    fn answered(
        &mut self,
        mut batch: InFlight,
        res: Result<ProduceReply, BrokerError>,
        ctx: &mut Context<Self>,
    ) {
        match res {
            Ok(reply) => {
                self.settle(&batch);
                let (topic, partition) = batch.partition.clone();
                for (i, t) in batch.tokens.into_iter().enumerate() {
                    let offset = if reply.base_offset < 0 {
                        -1
                    } else {
                        reply.base_offset + i as i64
                    };
                    let _ = t.reply.send(Ok(RecordMetadata {
                        topic: topic.clone(),
                        partition,
                        offset,
                        timestamp: t.timestamp,
                    }));
                }
                self.acc.done(&batch.partition, batch.held);
            }
            Err(e) => {
                let t = now();
                // A batch refused for a gap is retried while an earlier batch of the same
                // producer is still unanswered: the gap is that batch, which a retry fills.
                let earlier_pending = batch.sequence.is_some_and(|(id, base)| {
                    self.unacked
                        .get(&batch.partition)
                        .is_some_and(|s| s.iter().any(|&(i, b)| i == id && b < base))
                });
                let retriable = e.kind().is_retriable()
                    || (matches!(e, BrokerError::OutOfOrderSequence { .. }) && earlier_pending);
                let backoff = self.config.backoff(batch.attempts + 1);
                if retriable && batch.attempts < self.config.retries && t + backoff < batch.deadline
                {
                    batch.attempts += 1;
                    debug!(topic = %batch.partition.0, partition = batch.partition.1, attempt = batch.attempts, error = %e, "retrying a batch");
                    metrics::counter!(eddy_metrics::PRODUCER_RETRIES, "topic" => batch.partition.0.clone())
                        .increment(1);
                    ctx.run_later(backoff, move |act, ctx| act.send(batch, ctx));
                    return;
                }
                self.settle(&batch);
                let error = if retriable {
                    ClientError::DeliveryTimeout {
                        topic: batch.partition.0.clone(),
                        partition: batch.partition.1,
                        last: Some(Box::new(e)),
                    }
                } else {
                    ClientError::Broker(e)
                };
                warn!(topic = %batch.partition.0, partition = batch.partition.1, error = %error, "batch failed");
                fail_all(batch.tokens, &error);
                self.acc.done(&batch.partition, batch.held);
                if let Some((id, _)) = batch.sequence {
                    // The batch's fate is unknown or it left a gap: continue under a new
                    // producer id, whose sequences start at 0 (Kafka bumps the epoch).
                    if self.identity.is_some_and(|i| i.producer_id == id) {
                        self.identity = None;
                        self.sequences.clear();
                    }
                }
            }
        }
        self.admit(ctx);
        self.drain(ctx);
    }

    /// The batch is answered for good: it no longer holds back later sequences.
    fn settle(&mut self, batch: &InFlight) {
        if let Some(seq) = batch.sequence {
            if let Some(s) = self.unacked.get_mut(&batch.partition) {
                s.remove(&seq);
                if s.is_empty() {
                    self.unacked.remove(&batch.partition);
                }
            }
        }
    }

    fn request_identity(&mut self, ctx: &mut Context<Self>) {
        if self.identity_requested {
            return;
        }
        self.identity_requested = true;
        let cluster = self.cluster.clone();
        let fut = async move { cluster.init_producer_id().await };
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| {
            act.identity_requested = false;
            match res {
                Ok(id) => {
                    act.identity = Some(id);
                    act.drain(ctx);
                }
                Err(e) if e.kind().is_retriable() => {
                    let wait = act.config.retry_backoff_max;
                    ctx.run_later(wait, |act, ctx| act.drain(ctx));
                }
                Err(e) => {
                    warn!(error = %e, "no producer id: the producer fails every record");
                    act.fail_everything(e, ctx);
                }
            }
        }));
    }

    fn fail_everything(&mut self, e: BrokerError, ctx: &mut Context<Self>) {
        let error = ClientError::from(e.clone());
        self.fatal = Some(e);
        for batch in self.acc.take_unsent() {
            fail_all(batch.tokens, &error);
        }
        for w in self.waiting.take_all() {
            let _ = w.reply.send(Err(error.clone()));
        }
        self.check_flushed(ctx);
    }

    fn check_flushed(&mut self, ctx: &mut Context<Self>) {
        if !(self.acc.is_empty() && self.waiting.is_empty()) {
            return;
        }
        let mut close = false;
        for (done, c) in self.flushers.drain(..) {
            close |= c;
            let _ = done.send(());
        }
        if close || self.closing {
            ctx.stop();
        }
    }
}

impl Actor for ProducerActor {
    type Context = Context<Self>;
}

impl Handler<Enqueue> for ProducerActor {
    type Result = ();

    fn handle(&mut self, msg: Enqueue, ctx: &mut Context<Self>) {
        let since = now();
        for (record, reply) in msg.0 {
            if self.closing {
                let _ = reply.send(Err(ClientError::Closed));
                continue;
            }
            let size = record_size(&record);
            let limit = self.config.buffer_memory;
            if !self.waiting.is_empty() && self.waiting.bytes + size > limit {
                let _ = reply.send(Err(ClientError::BufferFull {
                    held: self.acc.held() + self.waiting.bytes,
                    limit,
                    waited_ms: 0,
                }));
                continue;
            }
            self.waiting.push_back(Waiting {
                record,
                reply,
                since,
                size,
            });
        }
        self.admit(ctx);
        self.drain(ctx);
    }
}

impl Handler<Flush> for ProducerActor {
    type Result = ();

    fn handle(&mut self, msg: Flush, ctx: &mut Context<Self>) {
        self.closing |= msg.close;
        self.flushers.push((msg.done, msg.close));
        self.drain(ctx);
        self.check_flushed(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_settings_are_checked_as_kafka_does() {
        assert!(ProducerConfig::default().validate().is_ok());
        let c = |f: fn(&mut ProducerConfig)| {
            let mut c = ProducerConfig::default();
            f(&mut c);
            c.validate()
        };
        assert!(
            c(|c| c.acks = Acks::Leader).is_err(),
            "idempotence needs acks=all"
        );
        assert!(c(|c| c.max_in_flight = 6).is_err());
        assert!(c(|c| c.retries = 0).is_err());
        assert!(c(|c| c.delivery_timeout = Duration::from_secs(1)).is_err());
        assert!(c(|c| {
            c.idempotence = false;
            c.acks = Acks::None;
            c.max_in_flight = 50;
        })
        .is_ok());
    }

    #[test]
    fn test_backoff_doubles_up_to_the_max() {
        let c = ProducerConfig::default();
        let ms: Vec<u128> = (1..=6).map(|a| c.backoff(a).as_millis()).collect();
        assert_eq!(ms, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(c.backoff(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn test_sequences_wrap_as_kafkas() {
        assert_eq!(sequence_add(5, 3), 8);
        assert_eq!(sequence_add(i32::MAX, 1), 0);
        assert_eq!(sequence_add(i32::MAX - 1, 3), 1);
    }

    #[test]
    fn test_an_idempotent_batch_carries_its_identity_and_sequences() {
        let records: Vec<PendingRecord> = (0..3)
            .map(|i| PendingRecord {
                key: None,
                value: Some(Bytes::from(vec![b'a' + i; 10])),
                headers: vec![("h".into(), Some(Bytes::from_static(b"v")))],
                timestamp: 1_000 + i64::from(i),
            })
            .collect();
        let id = ProducerIdentity {
            producer_id: 42,
            epoch: 3,
        };
        let bytes = encode(&records, Some((id, 7)), Compression::Lz4).unwrap();
        let mut buf = bytes.clone();
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).unwrap();
        assert_eq!(set.compression, kafka_protocol::records::Compression::Lz4);
        let seqs: Vec<i32> = set.records.iter().map(|r| r.sequence).collect();
        assert_eq!(seqs, vec![7, 8, 9]);
        assert!(set
            .records
            .iter()
            .all(|r| r.producer_id == 42 && r.producer_epoch == 3));
        assert_eq!(set.records[2].headers.len(), 1);
        let plain = encode(&records, None, Compression::None).unwrap();
        let mut buf = plain.clone();
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).unwrap();
        assert!(set
            .records
            .iter()
            .all(|r| r.producer_id == -1 && r.sequence == -1));
    }
}
