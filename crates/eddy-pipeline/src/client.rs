//! The small client trait a pipeline reads and writes through, and its embedded
//! implementation over an in-process cluster (`eddy_client`'s consumer and producer).
//! A Kafka-protocol implementation (for Apache Kafka, Redpanda, or Eddy's own listener)
//! plugs in behind the same trait.

use std::time::Duration;

use bytes::Bytes;
use eddy_broker::{BrokerError, Cluster, NewTopic};
use eddy_client::{
    Consumer, ConsumerConfig, OffsetReset, Producer, ProducerConfig, ProducerRecord, TopicPartition,
};

use crate::error::PipelineError;

/// One record read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its topic.
    pub topic: String,
    /// Its partition.
    pub partition: u32,
    /// Its offset.
    pub offset: u64,
    /// Its timestamp (ms).
    pub timestamp: i64,
    /// Its value (`None`: a tombstone).
    pub value: Option<Bytes>,
    /// Its headers, in order.
    pub headers: Vec<(String, Bytes)>,
}

/// What one poll brought.
#[derive(Debug, Default)]
pub struct Polled {
    /// Records, in offset order per partition.
    pub records: Vec<Record>,
    /// Every partition assigned now, with whether it has been read to its end (as of its
    /// last fetch): what a timestamp merge needs to know whether an older record may still
    /// come.
    pub progress: Vec<(TopicPartition, bool)>,
}

/// What a pipeline reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscription {
    /// These topics.
    Topics(Vec<String>),
    /// Every topic whose whole name matches this regex (e.g. `user_.*`), created later too;
    /// internal topics (`__*`) never.
    Pattern(String),
}

impl Subscription {
    /// Checks it: a pattern must be a valid regex, a list must not be empty.
    pub fn matcher(&self) -> Result<Matcher, PipelineError> {
        match self {
            Subscription::Topics(t) if t.is_empty() => Err(PipelineError::Config(
                "subscribe to at least one topic".into(),
            )),
            Subscription::Topics(t) => Ok(Matcher::Topics(t.clone())),
            Subscription::Pattern(p) => regex_lite::Regex::new(&format!("^(?:{p})$"))
                .map(Matcher::Pattern)
                .map_err(|e| PipelineError::Config(format!("topic pattern {p:?}: {e}"))),
        }
    }
}

/// A checked [`Subscription`].
#[derive(Debug, Clone)]
pub enum Matcher {
    /// These topics.
    Topics(Vec<String>),
    /// Whole names matching.
    Pattern(regex_lite::Regex),
}

impl Matcher {
    /// Whether `topic` is read.
    pub fn matches(&self, topic: &str) -> bool {
        match self {
            Matcher::Topics(t) => t.iter().any(|x| x == topic),
            Matcher::Pattern(r) => !topic.starts_with("__") && r.is_match(topic),
        }
    }
}

/// One record to write.
#[derive(Debug, Clone)]
pub struct OutRecord {
    /// The topic.
    pub topic: String,
    /// The partition (`None`: the client's partitioner picks).
    pub partition: Option<u32>,
    /// The key.
    pub key: Option<Bytes>,
    /// The value.
    pub value: Bytes,
    /// The record's timestamp, ms (`None`: the time of sending).
    pub timestamp: Option<i64>,
    /// Its headers.
    pub headers: Vec<(String, Bytes)>,
}

impl OutRecord {
    /// A record of `value` for `topic`, the partitioner's choice of partition, no key.
    pub fn new(topic: impl Into<String>, value: impl Into<Bytes>) -> OutRecord {
        OutRecord {
            topic: topic.into(),
            partition: None,
            key: None,
            value: value.into(),
            timestamp: None,
            headers: Vec::new(),
        }
    }
}

/// The client a pipeline runs on: a consumer of partitions it is told to read (no group
/// rebalances: the pipeline keeps its own offsets, so a restart never waits for an old
/// member's session to expire), which commits to its group for lag monitoring, and a
/// producer that waits for acknowledgements. All calls come from one task.
#[allow(async_fn_in_trait)] // one task drives the client; no Send bound wanted.
pub trait StreamClient {
    /// Every topic with its partition count (internal ones included).
    async fn topics(&mut self) -> Result<Vec<(String, u32)>, PipelineError>;
    /// Reads exactly `partitions` from now on, each from the offset given (an offset below
    /// the log start reads from the log start).
    fn assign(&mut self, partitions: &[(TopicPartition, u64)]) -> Result<(), PipelineError>;
    /// Records that arrived within `timeout` (maybe none).
    async fn poll(&mut self, timeout: Duration) -> Result<Polled, PipelineError>;
    /// Commits these next offsets to the group and waits for the coordinator (the context
    /// consumer commits for lag monitoring, its own state being authoritative; the chat
    /// rooms' read receipts are these commits).
    async fn commit(&mut self, offsets: &[(TopicPartition, u64)]) -> Result<(), PipelineError>;
    /// The offsets the client's group committed for `partitions` (`None`: none yet).
    async fn committed(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<Vec<Option<u64>>, PipelineError>;
    /// The high watermarks of `partitions`: where a reader is caught up.
    async fn end_offsets(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<Vec<u64>, PipelineError>;
    /// The partition count of `topic`, `None` if it does not exist.
    async fn partitions(&mut self, topic: &str) -> Result<Option<u32>, PipelineError>;
    /// Creates `topic` with `partitions` (and `retention_ms`, `None` for the cluster's
    /// default) unless it exists; answers its partition count.
    async fn create_topic(
        &mut self,
        topic: &str,
        partitions: u32,
        retention_ms: Option<i64>,
    ) -> Result<u32, PipelineError>;
    /// [`StreamClient::create_topic`] with the default retention.
    async fn ensure_topic(&mut self, topic: &str, partitions: u32) -> Result<u32, PipelineError> {
        self.create_topic(topic, partitions, None).await
    }
    /// Writes `records` and waits for each one's acknowledgement.
    async fn send_all(&mut self, records: Vec<OutRecord>) -> Vec<Result<(), PipelineError>>;
    /// Flushes the producer and closes the consumer.
    async fn close(self) -> Result<(), PipelineError>;
}

/// [`StreamClient`] over an in-process cluster.
#[derive(Debug)]
pub struct EmbeddedClient {
    cluster: Cluster,
    consumer: Consumer,
    producer: Producer,
}

impl EmbeddedClient {
    /// A consumer on `cluster` committing to `group` (reading from the earliest offset where
    /// it has no position) and an idempotent `acks=all` producer whose deliveries time out
    /// after `delivery_timeout`. Call from inside an actix system.
    pub async fn connect(
        cluster: &Cluster,
        group: &str,
        delivery_timeout: Duration,
    ) -> Result<EmbeddedClient, PipelineError> {
        let mut config = ConsumerConfig::with_group(group).auto_offset_reset(OffsetReset::Earliest);
        config.enable_auto_commit = false;
        config.fetch_max_wait = Duration::from_millis(100);
        let consumer = Consumer::new(cluster, config)?;
        let linger = Duration::from_millis(1);
        let producer = Producer::start(
            cluster,
            ProducerConfig {
                delivery_timeout,
                request_timeout: delivery_timeout.saturating_sub(linger),
                linger,
                ..ProducerConfig::default()
            },
        )
        .await?;
        Ok(EmbeddedClient {
            cluster: cluster.clone(),
            consumer,
            producer,
        })
    }
}

impl StreamClient for EmbeddedClient {
    async fn topics(&mut self) -> Result<Vec<(String, u32)>, PipelineError> {
        Ok(self
            .cluster
            .topics()
            .iter()
            .map(|t| (t.name.to_string(), t.partitions.len() as u32))
            .collect())
    }

    fn assign(&mut self, partitions: &[(TopicPartition, u64)]) -> Result<(), PipelineError> {
        self.consumer
            .assign(partitions.iter().map(|(tp, _)| tp.clone()))?;
        for (tp, offset) in partitions {
            self.consumer.seek(&tp.0, tp.1, *offset)?;
        }
        Ok(())
    }

    async fn poll(&mut self, timeout: Duration) -> Result<Polled, PipelineError> {
        let records = self.consumer.poll(timeout).await?;
        let progress = self
            .consumer
            .assignment()
            .into_iter()
            .map(|tp| {
                let at_end = self.consumer.lag(&tp.0, tp.1) == Some(0);
                (tp, at_end)
            })
            .collect();
        Ok(Polled {
            progress,
            records: records
                .into_iter()
                .map(|r| Record {
                    topic: r.topic,
                    partition: r.partition,
                    offset: r.offset,
                    timestamp: r.timestamp,
                    value: r.value,
                    headers: r
                        .headers
                        .into_iter()
                        .map(|(k, v)| (k, v.unwrap_or_default()))
                        .collect(),
                })
                .collect(),
        })
    }

    async fn commit(&mut self, offsets: &[(TopicPartition, u64)]) -> Result<(), PipelineError> {
        Ok(self.consumer.commit_offsets(offsets).await?)
    }

    async fn committed(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<Vec<Option<u64>>, PipelineError> {
        Ok(self.consumer.committed(partitions).await?)
    }

    async fn end_offsets(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<Vec<u64>, PipelineError> {
        let mut out = Vec::with_capacity(partitions.len());
        for (t, p) in partitions {
            out.push(self.cluster.list_offsets(t, *p, None).await?.high_watermark);
        }
        Ok(out)
    }

    async fn partitions(&mut self, topic: &str) -> Result<Option<u32>, PipelineError> {
        match self.cluster.describe_topic(topic) {
            Ok(t) => Ok(Some(t.partitions.len() as u32)),
            Err(BrokerError::UnknownTopic(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn create_topic(
        &mut self,
        topic: &str,
        partitions: u32,
        retention_ms: Option<i64>,
    ) -> Result<u32, PipelineError> {
        if let Some(n) = self.partitions(topic).await? {
            return Ok(n);
        }
        let mut new = NewTopic::new(topic).partitions(partitions);
        if let Some(ms) = retention_ms {
            new.retention_ms = Some(Some(ms));
        }
        match self.cluster.create_topic(new).await {
            Ok(t) => Ok(t.partitions.len() as u32),
            Err(BrokerError::TopicExists(_)) => {
                Ok(self.partitions(topic).await?.unwrap_or(partitions))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn send_all(&mut self, records: Vec<OutRecord>) -> Vec<Result<(), PipelineError>> {
        let deliveries: Vec<_> = records
            .into_iter()
            .map(|r| {
                let mut pr = ProducerRecord::new(r.topic, r.value);
                if let Some(k) = r.key {
                    pr = pr.key(k);
                }
                if let Some(p) = r.partition {
                    pr = pr.partition(p);
                }
                if let Some(t) = r.timestamp {
                    pr = pr.timestamp(t);
                }
                for (k, v) in r.headers {
                    pr = pr.header(k, v);
                }
                self.producer.send(pr)
            })
            .collect();
        let mut out = Vec::with_capacity(deliveries.len());
        for d in deliveries {
            out.push(d.await.map(|_| ()).map_err(PipelineError::from));
        }
        out
    }

    async fn close(self) -> Result<(), PipelineError> {
        self.producer.close().await;
        drop(self.consumer); // assigned by hand: no group to leave
        Ok(())
    }
}

/// Reads `partitions` from the offsets given up to their high watermarks as of the call:
/// every record, in offset order per partition. Leaves the client assigned to them.
pub async fn read_to_end<C: StreamClient>(
    client: &mut C,
    partitions: &[(TopicPartition, u64)],
) -> Result<Vec<Record>, PipelineError> {
    let tps: Vec<TopicPartition> = partitions.iter().map(|(tp, _)| tp.clone()).collect();
    let ends = client.end_offsets(&tps).await?;
    let mut next: std::collections::BTreeMap<TopicPartition, u64> =
        partitions.iter().cloned().collect();
    let goal: std::collections::BTreeMap<TopicPartition, u64> = tps.into_iter().zip(ends).collect();
    client.assign(partitions)?;
    let mut out = Vec::new();
    while goal
        .iter()
        .any(|(tp, end)| next.get(tp).is_some_and(|n| n < end))
    {
        let polled = client.poll(Duration::from_millis(200)).await?;
        for r in polled.records {
            let tp = (r.topic.clone(), r.partition);
            let Some(end) = goal.get(&tp) else { continue };
            if r.offset >= *end {
                continue;
            }
            next.insert(tp, r.offset + 1);
            out.push(r);
        }
    }
    Ok(out)
}
