//! [`StreamClient`] over the Kafka protocol with librdkafka (the `rdkafka` crate): the same
//! pipelines against Apache Kafka, Redpanda, or Eddy's own listener (`eddy serve`).
//!
//! Partitions are assigned by hand at the pipeline's stored offsets (no group rebalances);
//! offsets are committed to the group only for monitoring. librdkafka does not tell which
//! topic an end-of-partition event is for, and asking every idle partition's leader for its
//! high watermark costs a round trip each, so this client never reports a partition as read
//! to its end: a timestamp merge over it waits its `max_wait` (200 ms in the context
//! consumer) whenever a partition has nothing buffered, then goes on. Waits are
//! asynchronous (the poll itself never blocks), so stopping is prompt.

use std::time::{Duration, Instant};

use bytes::Bytes;
use eddy_client::TopicPartition;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::client::{OutRecord, Polled, Record, StreamClient};
use crate::error::PipelineError;

const MAX_POLL_RECORDS: usize = 500;
/// How long one wait between empty polls lasts.
const POLL_STEP: Duration = Duration::from_millis(10);

/// A librdkafka consumer and producer. See the [module docs](self).
pub struct KafkaClient {
    consumer: BaseConsumer,
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    /// The partitions assigned.
    assigned: Vec<TopicPartition>,
    timeout: Duration,
}

impl std::fmt::Debug for KafkaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaClient")
            .field("partitions", &self.assigned.len())
            .finish_non_exhaustive()
    }
}

fn kafka(e: KafkaError) -> PipelineError {
    PipelineError::Kafka(e.to_string())
}

impl KafkaClient {
    /// Clients of the cluster at `bootstrap` (host:port, comma-separated), committing to
    /// `group`; a produced record is acknowledged by all in-sync replicas (idempotent) within
    /// `delivery_timeout`.
    pub fn connect(
        bootstrap: &str,
        group: &str,
        delivery_timeout: Duration,
    ) -> Result<KafkaClient, PipelineError> {
        let mut base = ClientConfig::new();
        base.set("bootstrap.servers", bootstrap)
            .set("client.id", "eddy-pipeline");
        let consumer: BaseConsumer = base
            .clone()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", "100")
            .create()
            .map_err(kafka)?;
        let producer: FutureProducer = base
            .clone()
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "1")
            .set(
                "message.timeout.ms",
                delivery_timeout.as_millis().max(1).to_string(),
            )
            .create()
            .map_err(kafka)?;
        let admin: AdminClient<DefaultClientContext> = base.create().map_err(kafka)?;
        Ok(KafkaClient {
            consumer,
            producer,
            admin,
            assigned: Vec::new(),
            timeout: Duration::from_secs(10),
        })
    }
}

impl StreamClient for KafkaClient {
    async fn topics(&mut self) -> Result<Vec<(String, u32)>, PipelineError> {
        let md = self
            .consumer
            .fetch_metadata(None, self.timeout)
            .map_err(kafka)?;
        Ok(md
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| (t.name().to_owned(), t.partitions().len() as u32))
            .collect())
    }

    fn assign(&mut self, partitions: &[(TopicPartition, u64)]) -> Result<(), PipelineError> {
        let mut tpl = TopicPartitionList::new();
        for ((topic, p), offset) in partitions {
            tpl.add_partition_offset(topic, *p as i32, Offset::Offset(*offset as i64))
                .map_err(kafka)?;
        }
        self.consumer.assign(&tpl).map_err(kafka)?;
        self.assigned = partitions.iter().map(|(tp, _)| tp.clone()).collect();
        Ok(())
    }

    async fn poll(&mut self, timeout: Duration) -> Result<Polled, PipelineError> {
        let deadline = Instant::now() + timeout;
        let mut records = Vec::new();
        loop {
            while records.len() < MAX_POLL_RECORDS {
                let Some(m) = self.consumer.poll(Duration::ZERO) else {
                    break;
                };
                let m = match m {
                    Ok(m) => m,
                    Err(KafkaError::PartitionEOF(_)) => continue,
                    Err(e) => return Err(kafka(e)),
                };
                let headers = m
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| {
                                (
                                    h.key.to_owned(),
                                    h.value.map(Bytes::copy_from_slice).unwrap_or_default(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                records.push(Record {
                    topic: m.topic().to_owned(),
                    partition: m.partition() as u32,
                    offset: m.offset() as u64,
                    timestamp: m.timestamp().to_millis().unwrap_or(0),
                    value: m.payload().map(Bytes::copy_from_slice),
                    headers,
                });
            }
            if !records.is_empty() || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(POLL_STEP).await;
        }
        let progress = self.assigned.iter().map(|tp| (tp.clone(), false)).collect();
        Ok(Polled { records, progress })
    }

    async fn commit(&mut self, offsets: &[(TopicPartition, u64)]) -> Result<(), PipelineError> {
        let mut tpl = TopicPartitionList::new();
        for ((topic, p), offset) in offsets {
            tpl.add_partition_offset(topic, *p as i32, Offset::Offset(*offset as i64))
                .map_err(kafka)?;
        }
        // Waits for the coordinator, as the embedded client does: a commit read back right
        // after (read receipts) must see it.
        self.consumer.commit(&tpl, CommitMode::Sync).map_err(kafka)
    }

    async fn committed(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<Vec<Option<u64>>, PipelineError> {
        let mut tpl = TopicPartitionList::new();
        for (topic, p) in partitions {
            tpl.add_partition(topic, *p as i32);
        }
        let got = self
            .consumer
            .committed_offsets(tpl, self.timeout)
            .map_err(kafka)?;
        Ok(partitions
            .iter()
            .map(
                |(t, p)| match got.find_partition(t, *p as i32).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) if o >= 0 => Some(o as u64),
                    _ => None,
                },
            )
            .collect())
    }

    async fn end_offsets(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<Vec<u64>, PipelineError> {
        let mut out = Vec::with_capacity(partitions.len());
        for (t, p) in partitions {
            // A topic made by another client may not be in this client's metadata cache
            // (librdkafka: UnknownPartition), and a watermark query does not fetch it: ask
            // for the topic's metadata, then query again.
            let deadline = Instant::now() + self.timeout;
            let high = loop {
                match self.consumer.fetch_watermarks(t, *p as i32, self.timeout) {
                    Ok((_, high)) => break high,
                    Err(KafkaError::MetadataFetch(
                        RDKafkaErrorCode::UnknownPartition
                        | RDKafkaErrorCode::UnknownTopicOrPartition
                        | RDKafkaErrorCode::UnknownTopic,
                    )) if Instant::now() < deadline => {
                        // An error here shows in the next query's answer.
                        let _ = self.consumer.fetch_metadata(Some(t), self.timeout);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) => return Err(kafka(e)),
                }
            };
            out.push(high.max(0) as u64);
        }
        Ok(out)
    }

    async fn partitions(&mut self, topic: &str) -> Result<Option<u32>, PipelineError> {
        let md = self
            .consumer
            .fetch_metadata(Some(topic), self.timeout)
            .map_err(kafka)?;
        Ok(md
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
            .map(|t| t.partitions().len() as u32))
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
        let retention = retention_ms.map(|ms| ms.to_string());
        let mut new = NewTopic::new(topic, partitions as i32, TopicReplication::Fixed(-1));
        if let Some(ms) = &retention {
            new = new.set("retention.ms", ms);
        }
        let results = self
            .admin
            .create_topics([&new], &AdminOptions::new())
            .await
            .map_err(kafka)?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, code)) => {
                    return Err(PipelineError::Kafka(format!("creating {t}: {code}")))
                }
            }
        }
        // Metadata may lag the creation a little.
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(n) = self.partitions(topic).await? {
                return Ok(n);
            }
            if Instant::now() >= deadline {
                return Err(PipelineError::Kafka(format!(
                    "{topic} was created but its metadata never showed"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn send_all(&mut self, records: Vec<OutRecord>) -> Vec<Result<(), PipelineError>> {
        let sends = records.iter().map(|r| {
            let mut fr = FutureRecord::to(&r.topic).payload(&r.value[..]);
            if let Some(k) = &r.key {
                fr = fr.key(&k[..]);
            }
            if let Some(p) = r.partition {
                fr = fr.partition(p as i32);
            }
            if let Some(t) = r.timestamp {
                fr = fr.timestamp(t);
            }
            if !r.headers.is_empty() {
                let mut hs = OwnedHeaders::new();
                for (k, v) in &r.headers {
                    hs = hs.insert(Header {
                        key: k,
                        value: Some(&v[..]),
                    });
                }
                fr = fr.headers(hs);
            }
            self.producer.send(fr, self.timeout)
        });
        futures_util::future::join_all(sends)
            .await
            .into_iter()
            .map(|r| r.map(|_| ()).map_err(|(e, _)| kafka(e)))
            .collect()
    }

    async fn close(self) -> Result<(), PipelineError> {
        use rdkafka::producer::Producer as _;
        self.producer.flush(self.timeout).map_err(kafka)
    }
}
