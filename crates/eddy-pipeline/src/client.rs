//! The small client trait a pipeline reads and writes through, and its embedded
//! implementation over an in-process cluster (`eddy_client`'s consumer and producer).
//! A Kafka-protocol implementation (for Apache Kafka, Redpanda, or Eddy's own listener)
//! plugs in behind the same trait.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use eddy_broker::{BrokerError, Cluster, NewTopic};
use eddy_client::{
    Consumer, ConsumerConfig, OffsetReset, Producer, ProducerConfig, ProducerRecord,
    RebalanceListener, TopicPartition,
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
}

/// What one poll brought.
#[derive(Debug, Default)]
pub struct Polled {
    /// Records, in offset order per partition.
    pub records: Vec<Record>,
    /// Partitions handed to this consumer by a rebalance during the poll: the caller seeks
    /// them to its own stored positions (records of them in `records` came from the
    /// client's starting position).
    pub assigned: Vec<TopicPartition>,
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
    /// Every topic whose whole name matches this regex (e.g. `user_.*`), created later too.
    Pattern(String),
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
}

/// The client a pipeline runs on: a group consumer that can seek, and a producer that waits
/// for acknowledgements. All calls come from one task.
#[allow(async_fn_in_trait)] // one task drives the client; no Send bound wanted.
pub trait StreamClient {
    /// Sets what to read (as a member of the client's group).
    fn subscribe(&mut self, subscription: &Subscription) -> Result<(), PipelineError>;
    /// Records that arrived within `timeout` (maybe none), and newly assigned partitions.
    async fn poll(&mut self, timeout: Duration) -> Result<Polled, PipelineError>;
    /// The next poll of `tp` starts at `offset` (an offset below the log start reads from
    /// the log start).
    fn seek(&mut self, tp: &TopicPartition, offset: u64) -> Result<(), PipelineError>;
    /// Commits these next offsets to the group (for lag monitoring; the pipeline's own
    /// state is authoritative).
    async fn commit(&mut self, offsets: &[(TopicPartition, u64)]) -> Result<(), PipelineError>;
    /// The partition count of `topic`, `None` if it does not exist.
    async fn partitions(&mut self, topic: &str) -> Result<Option<u32>, PipelineError>;
    /// Creates `topic` with `partitions` unless it exists; answers its partition count.
    async fn ensure_topic(&mut self, topic: &str, partitions: u32) -> Result<u32, PipelineError>;
    /// Writes `records` and waits for each one's acknowledgement.
    async fn send_all(&mut self, records: Vec<OutRecord>) -> Vec<Result<(), PipelineError>>;
    /// Leaves the group and flushes the producer.
    async fn close(self) -> Result<(), PipelineError>;
}

#[derive(Debug, Default)]
struct Assigned(Arc<Mutex<Vec<TopicPartition>>>);

impl RebalanceListener for Assigned {
    fn on_revoked(&mut self, _partitions: &[TopicPartition]) {}
    fn on_assigned(&mut self, partitions: &[TopicPartition]) {
        let mut list = self.0.lock().unwrap_or_else(|p| p.into_inner());
        list.extend_from_slice(partitions);
    }
}

/// [`StreamClient`] over an in-process cluster.
#[derive(Debug)]
pub struct EmbeddedClient {
    cluster: Cluster,
    consumer: Consumer,
    producer: Producer,
    assigned: Arc<Mutex<Vec<TopicPartition>>>,
}

impl EmbeddedClient {
    /// A member of `group` on `cluster` (reading from the earliest offset where it has no
    /// position, committing only when asked) and an idempotent `acks=all` producer whose
    /// deliveries time out after `delivery_timeout`. Call from inside an actix system.
    pub async fn connect(
        cluster: &Cluster,
        group: &str,
        delivery_timeout: Duration,
    ) -> Result<EmbeddedClient, PipelineError> {
        let mut config = ConsumerConfig::with_group(group).auto_offset_reset(OffsetReset::Earliest);
        config.enable_auto_commit = false;
        config.fetch_max_wait = Duration::from_millis(100);
        let mut consumer = Consumer::new(cluster, config)?;
        let assigned = Arc::new(Mutex::new(Vec::new()));
        consumer.set_rebalance_listener(Assigned(assigned.clone()));
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
            assigned,
        })
    }
}

impl StreamClient for EmbeddedClient {
    fn subscribe(&mut self, subscription: &Subscription) -> Result<(), PipelineError> {
        match subscription {
            Subscription::Topics(topics) => self.consumer.subscribe(topics.iter().cloned())?,
            Subscription::Pattern(p) => self.consumer.subscribe_pattern(p)?,
        }
        Ok(())
    }

    async fn poll(&mut self, timeout: Duration) -> Result<Polled, PipelineError> {
        let records = self.consumer.poll(timeout).await?;
        let assigned =
            std::mem::take(&mut *self.assigned.lock().unwrap_or_else(|p| p.into_inner()));
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
                })
                .collect(),
            assigned,
        })
    }

    fn seek(&mut self, tp: &TopicPartition, offset: u64) -> Result<(), PipelineError> {
        Ok(self.consumer.seek(&tp.0, tp.1, offset)?)
    }

    async fn commit(&mut self, offsets: &[(TopicPartition, u64)]) -> Result<(), PipelineError> {
        Ok(self.consumer.commit_offsets(offsets).await?)
    }

    async fn partitions(&mut self, topic: &str) -> Result<Option<u32>, PipelineError> {
        match self.cluster.describe_topic(topic) {
            Ok(t) => Ok(Some(t.partitions.len() as u32)),
            Err(BrokerError::UnknownTopic(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn ensure_topic(&mut self, topic: &str, partitions: u32) -> Result<u32, PipelineError> {
        if let Some(n) = self.partitions(topic).await? {
            return Ok(n);
        }
        match self
            .cluster
            .create_topic(NewTopic::new(topic).partitions(partitions))
            .await
        {
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
        Ok(self.consumer.close().await?)
    }
}
