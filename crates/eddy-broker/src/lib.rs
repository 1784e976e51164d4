//! Owns the broker cluster: the controller, the brokers, and the leader and follower replicas
//! of every partition, as actix actors over each broker's [`eddy_log::LogStore`]; topic
//! metadata, replication (ISR, high watermark, KIP-101 truncation), leader election and
//! `acks=0/1/all`; and [`Cluster`], the embedded API over them.
//!
//! # Layout
//! - [`metadata`]: cluster metadata and every change to it (create topic, elect, alter ISR);
//!   pure functions, unit-tested without a runtime.
//! - [`replication`]: a leader's follower positions, ISR and high watermark; pure.
//! - `leader`: one partition's leader as a state machine (offsets, the append queue,
//!   acknowledgements, what each follower gets, recovery after a failed append); pure.
//! - `fetcher`: the follower side of one pair of brokers' replication stream (fetch
//!   session, epoch checks, what to append); pure.
//! - [`partitioner`]: Kafka's murmur2 key hashing and sticky round-robin; pure.
//! - [`producers`]: idempotent producers' sequence table (duplicates, gaps, fencing); pure.
//! - [`group`]: a consumer group's membership (join, sync, heartbeat, leave, sessions,
//!   generations), Kafka's classic group protocol; pure.
//! - [`offsets`]: what groups keep in `__consumer_offsets` (keys, values, the group's
//!   partition as Kafka picks it, the latest value per key); pure.
//! - `actors`: `Controller` (metadata writer, elections), `Broker` (every replica of its log
//!   directory: it drives the `leader` and `fetcher` state machines), `OffsetsPartition` and
//!   `GroupCoordinator` (consumer groups).
//! - `watermarks`: partitions' high watermarks for `/metrics`, in a table leaders write and
//!   a collector reads at scrape time.
//! - `testing` (feature `testing`): a test cluster config and paused-time actix systems.
//! - [`messages`]: what the actors exchange. [`config`]: cluster and topic settings.
//!   [`BrokerError`]: the crate's one error type.
//!
//! # Example
//! ```
//! use eddy_broker::{ClusterConfig, EmbeddedCluster, NewTopic};
//! use eddy_log::testing::batch_bytes;
//! use eddy_types::Acks;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let mut config = ClusterConfig::new("demo", dir.path());
//! config.log.map_size = 1 << 26; // small map for a doc test; the default reserves 1 TiB
//! // Three brokers, each with its own log directory under <dir>/demo/.
//! let eddy = EmbeddedCluster::open(config)?;
//! let cluster = eddy.cluster();
//!
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! rt.block_on(async {
//!     cluster.create_topic(NewTopic::new("chat").partitions(3)).await?;
//!     // Batches are Kafka RecordBatch v2 bytes; `acks=all` answers once all 3 replicas have it.
//!     let reply = cluster.produce("chat", 0, batch_bytes(5, 1_000, 16), Acks::All).await?;
//!     assert_eq!((reply.base_offset, reply.last_offset), (0, 4));
//!     let fetched = cluster.fetch("chat", 0, 0, 1 << 20).await?;
//!     assert_eq!((fetched.next_offset, fetched.high_watermark), (5, 5));
//!     Ok::<_, eddy_broker::BrokerError>(())
//! })?;
//! eddy.shutdown();
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod actors;
pub mod config;
pub mod consumer_protocol;
mod error;
mod fetcher;
pub mod group;
mod leader;
pub mod messages;
pub mod metadata;
pub mod offsets;
pub mod partitioner;
pub mod producers;
pub mod records;
pub mod replication;
#[cfg(feature = "testing")]
pub mod testing;
mod watermarks;

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use eddy_log::LogStore;
use eddy_types::{Acks, BrokerId};

pub use actors::{Broker, Controller, Directory};
pub use config::{ClusterConfig, NewTopic, TopicConfig, TopicDefaults};
pub use error::{BrokerError, LogErrorShared};
pub use messages::{
    AwaitRecords, Fetch, FetchBatch, FetchPartition, ListOffsets, PartitionRecords, Produce,
    ProduceBatch,
};
use messages::{
    BrokerSnapshot, CreatePartitions, CreateTopic, CreateTopics, DeleteTopic, FetchReply,
    LeaderSnapshot, ObserveBroker, ObservePartition, OffsetsReply, ProduceReply, ShutdownCluster,
    StartBroker, StopBroker,
};
pub use metadata::{ClusterMetadata, MetadataView, PartitionMeta, TopicMeta};

/// How long the embedded API keeps retrying a request refused with a retriable routing error
/// (no leader yet, leader moved, not enough replicas in sync).
const ROUTING_RETRY_FOR: Duration = Duration::from_secs(30);
const ROUTING_BACKOFF: Duration = Duration::from_millis(50);

/// A handle on a running cluster: cheap to clone, usable from any thread (requests are
/// messages to the cluster's actors). Its async methods need a tokio runtime with timers
/// (retries back off with `tokio::time::sleep`); an actix system is one.
#[derive(Debug, Clone)]
pub struct Cluster {
    controller: Addr<Controller>,
    /// Every broker's log directory, by broker id.
    stores: Arc<Vec<LogStore>>,
    view: MetadataView,
    directory: Directory,
    config: Arc<ClusterConfig>,
    /// The arbiter the cluster's actors run on; clients' actors start there too.
    arbiter: actix_rt::ArbiterHandle,
}

impl Cluster {
    /// Opens (or creates) the cluster's log directories, loads its metadata and starts its
    /// actors. Must run inside an actix system (`actix_rt::System`); see [`EmbeddedCluster`]
    /// to get one on its own thread.
    pub async fn start(config: ClusterConfig) -> Result<Cluster, BrokerError> {
        config.validate()?;
        let dir = config.cluster_dir();
        let mut stores = Vec::with_capacity(config.brokers as usize);
        for b in 0..config.brokers {
            stores.push(LogStore::open(
                dir.join(format!("broker-{b}")),
                config.log.clone(),
            )?);
        }
        let metadata = actors::controller::load(&config, &stores).await?;
        let view = MetadataView::new(metadata.clone());
        let directory = Directory::default();
        let config = Arc::new(config);
        let controller = Controller::new(
            config.clone(),
            metadata,
            view.clone(),
            directory.clone(),
            stores.clone(),
        )
        .start();
        Ok(Cluster {
            controller,
            stores: Arc::new(stores),
            view,
            directory,
            config,
            arbiter: actix_rt::Arbiter::current(),
        })
    }

    /// The arbiter the cluster's actors run on. Embedded clients start their actors on it
    /// (`Actor::start_in_arbiter`), so they work from any thread.
    pub fn arbiter(&self) -> &actix_rt::ArbiterHandle {
        &self.arbiter
    }

    /// The cluster's settings.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The log directory of broker `broker` (open while the cluster runs, even when that
    /// broker is stopped): for inspection and tests. Writing to it behind the cluster's back
    /// breaks replication.
    pub fn replica_log(&self, broker: BrokerId) -> Option<LogStore> {
        self.stores.get(broker.0 as usize).cloned()
    }

    /// The latest published metadata.
    pub fn metadata(&self) -> Arc<ClusterMetadata> {
        self.view.snapshot()
    }

    /// Creates a topic.
    pub async fn create_topic(&self, topic: NewTopic) -> Result<Arc<TopicMeta>, BrokerError> {
        self.controller.send(CreateTopic(topic)).await?
    }

    /// Creates many topics in one metadata change (what a CreateTopics request of many
    /// topics needs: one commit for all, not one each). One result per topic, in order.
    pub async fn create_topics(
        &self,
        topics: Vec<NewTopic>,
    ) -> Result<Vec<Result<Arc<TopicMeta>, BrokerError>>, BrokerError> {
        Ok(self.controller.send(CreateTopics(topics)).await?)
    }

    /// Deletes a topic and its records.
    pub async fn delete_topic(&self, topic: &str) -> Result<(), BrokerError> {
        self.controller.send(DeleteTopic(topic.to_owned())).await?
    }

    /// Grows a topic to `total` partitions.
    pub async fn create_partitions(
        &self,
        topic: &str,
        total: u32,
    ) -> Result<Arc<TopicMeta>, BrokerError> {
        self.controller
            .send(CreatePartitions {
                topic: topic.to_owned(),
                total,
            })
            .await?
    }

    /// The topics, by name.
    pub fn topics(&self) -> Vec<Arc<TopicMeta>> {
        self.metadata().topics.values().cloned().collect()
    }

    /// One topic's metadata.
    pub fn describe_topic(&self, topic: &str) -> Result<Arc<TopicMeta>, BrokerError> {
        self.metadata().topic(topic).cloned()
    }

    /// The running broker that leads a partition now.
    fn leader_of(&self, topic: &str, partition: u32) -> Result<Addr<Broker>, BrokerError> {
        let m = self.metadata();
        let t = m.topic(topic)?;
        let p = m.partition(topic, partition)?;
        let leader = p.leader.ok_or_else(|| BrokerError::LeaderNotAvailable {
            topic: t.name.clone(),
            partition,
        })?;
        self.directory
            .get(leader)
            .ok_or(BrokerError::BrokerNotAvailable(leader))
    }

    /// Sends a request to the partition's leader, following leadership changes: a request
    /// refused before it was written (no leader, not the leader, too few in-sync replicas)
    /// is sent again, for up to 30 s. `create` (produce only, as in Kafka, where only a
    /// producer's metadata request creates topics): an unknown topic is created first when
    /// the cluster allows it. A read of a deleted topic never brings it back.
    async fn to_leader<M, R>(
        &self,
        topic: &str,
        partition: u32,
        msg: M,
        create: bool,
    ) -> Result<R, BrokerError>
    where
        M: Message<Result = Result<R, BrokerError>> + Clone + Send + 'static,
        Broker: Handler<M>,
        R: Send + 'static,
    {
        let deadline = tokio::time::Instant::now() + ROUTING_RETRY_FOR;
        loop {
            let attempt = match self.leader_of(topic, partition) {
                Ok(b) => b
                    .send(msg.clone())
                    .await
                    .map_err(BrokerError::from)
                    .and_then(|r| r),
                Err(e) => Err(e),
            };
            // Only refusals that guarantee nothing was written are resent.
            match attempt {
                Err(BrokerError::UnknownTopic(name))
                    if create && self.config.auto_create_topics =>
                {
                    match self.create_topic(NewTopic::new(name)).await {
                        Ok(_) | Err(BrokerError::TopicExists(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(
                    e @ (BrokerError::NotLeader { .. }
                    | BrokerError::LeaderNotAvailable { .. }
                    | BrokerError::NotEnoughReplicas { .. }
                    | BrokerError::BrokerNotAvailable(_)),
                ) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(e);
                    }
                    tokio::time::sleep(ROUTING_BACKOFF).await;
                }
                other => return other,
            }
        }
    }

    /// Appends record batches to a partition and answers once they are committed at `acks`.
    pub async fn produce(
        &self,
        topic: &str,
        partition: u32,
        records: Bytes,
        acks: Acks,
    ) -> Result<ProduceReply, BrokerError> {
        let msg = Produce {
            topic: topic.to_owned(),
            partition,
            records,
            acks,
            timeout: Duration::from_secs(30),
        };
        self.to_leader(topic, partition, msg, true).await
    }

    /// Reads committed batches from `offset`, without waiting.
    pub async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: usize,
    ) -> Result<FetchReply, BrokerError> {
        self.fetch_wait(topic, partition, offset, max_bytes, Duration::ZERO)
            .await
    }

    /// Reads committed batches from `offset`, waiting up to `max_wait` for some to arrive.
    pub async fn fetch_wait(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: usize,
        max_wait: Duration,
    ) -> Result<FetchReply, BrokerError> {
        let msg = Fetch {
            topic: topic.to_owned(),
            partition,
            offset,
            max_bytes,
            capped: false,
            max_wait,
            min_bytes: 1,
        };
        self.to_leader(topic, partition, msg, false).await
    }

    /// A partition's log start, high watermark and log end (and an offset by timestamp).
    pub async fn list_offsets(
        &self,
        topic: &str,
        partition: u32,
        timestamp: Option<i64>,
    ) -> Result<OffsetsReply, BrokerError> {
        let msg = ListOffsets {
            topic: topic.to_owned(),
            partition,
            timestamp,
        };
        self.to_leader(topic, partition, msg, false).await
    }

    /// Moves a partition's log start to `offset` (`None`: the high watermark), deleting the
    /// records before it (Kafka's DeleteRecords); answers the new log start.
    pub async fn delete_records(
        &self,
        topic: &str,
        partition: u32,
        offset: Option<u64>,
    ) -> Result<u64, BrokerError> {
        let msg = messages::DeleteRecords {
            topic: topic.to_owned(),
            partition,
            offset,
        };
        self.to_leader(topic, partition, msg, false).await
    }

    /// Allocates an idempotent producer id (persisted before it is handed out).
    pub async fn init_producer_id(&self) -> Result<messages::ProducerIdentity, BrokerError> {
        self.controller.send(messages::InitProducerId).await?
    }

    /// Creates `__consumer_offsets` if it does not exist yet (on first group use, as Kafka
    /// does) and answers its partition count.
    async fn offsets_topic(&self) -> Result<u32, BrokerError> {
        if let Ok(t) = self.metadata().topic(offsets::OFFSETS_TOPIC) {
            return Ok(t.partitions.len() as u32);
        }
        let replicas = self
            .config
            .offsets_replication_factor
            .min(self.config.brokers);
        let topic = NewTopic::new(offsets::OFFSETS_TOPIC)
            .partitions(self.config.offsets_partitions)
            .replication_factor(replicas)
            .retention_ms(None)
            .retention_bytes(None);
        match self.create_topic(topic).await {
            Ok(t) => Ok(t.partitions.len() as u32),
            Err(BrokerError::TopicExists(_)) => Ok(self
                .metadata()
                .topic(offsets::OFFSETS_TOPIC)?
                .partitions
                .len() as u32),
            Err(e) => Err(e),
        }
    }

    /// The broker coordinating `group` now: the leader of its `__consumer_offsets` partition.
    pub async fn coordinator(&self, group: &str) -> Result<BrokerId, BrokerError> {
        let n = self.offsets_topic().await?;
        let index = offsets::partition_for_group(group, n);
        let m = self.metadata();
        m.partition(offsets::OFFSETS_TOPIC, index)?
            .leader
            .ok_or_else(|| BrokerError::CoordinatorLoading(group.to_owned()))
    }

    /// Sends a request to `group`'s coordinator (Kafka's JoinGroup, SyncGroup, Heartbeat,
    /// LeaveGroup, OffsetCommit, OffsetFetch, DescribeGroups, DeleteGroups), finding it again
    /// while it moves or loads, for up to 30 s.
    pub async fn group(
        &self,
        group: &str,
        op: messages::GroupOp,
    ) -> Result<messages::GroupReply, BrokerError> {
        if group.is_empty() {
            return Err(BrokerError::InvalidGroupId(group.to_owned()));
        }
        let deadline = tokio::time::Instant::now() + ROUTING_RETRY_FOR;
        loop {
            let attempt = match self.coordinator(group).await {
                Ok(broker) => self.at(broker).group(group, op.clone()).await,
                Err(e) => Err(e),
            };
            match attempt {
                Err(
                    e @ (BrokerError::NotCoordinator { .. }
                    | BrokerError::CoordinatorLoading(_)
                    | BrokerError::BrokerNotAvailable(_)
                    | BrokerError::LeaderNotAvailable { .. }
                    | BrokerError::Stopped(_)),
                ) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(e);
                    }
                    tokio::time::sleep(ROUTING_BACKOFF).await;
                }
                other => return other,
            }
        }
    }

    /// A group as `kafka-consumer-groups --describe` shows it: state, members and their
    /// assignments, and per partition the committed offset, the log end (high watermark) and
    /// the lag.
    pub async fn describe_group(&self, group: &str) -> Result<GroupOverview, BrokerError> {
        let messages::GroupReply::Described(d) =
            self.group(group, messages::GroupOp::Describe).await?
        else {
            return Err(BrokerError::Stopped("unexpected reply to describe".into()));
        };
        let mut owners: std::collections::BTreeMap<(String, u32), String> = Default::default();
        let mut members = Vec::with_capacity(d.members.len());
        for m in &d.members {
            let assignment = consumer_protocol::Assignment::decode(m.assignment.clone())
                .map(|a| a.partitions)
                .unwrap_or_default();
            for (t, ps) in &assignment {
                for p in ps {
                    owners.insert((t.clone(), *p), m.id.clone());
                }
            }
            members.push(MemberOverview {
                member_id: m.id.clone(),
                client_id: m.client_id.clone(),
                host: m.client_host.clone(),
                assignment,
            });
        }
        let committed: std::collections::BTreeMap<(String, u32), i64> = d
            .offsets
            .iter()
            .map(|(t, p, o)| ((t.clone(), *p), *o))
            .collect();
        let mut keys: Vec<(String, u32)> = owners.keys().cloned().collect();
        keys.extend(committed.keys().cloned());
        keys.sort();
        keys.dedup();
        let mut partitions = Vec::with_capacity(keys.len());
        for (topic, partition) in keys {
            let committed = committed.get(&(topic.clone(), partition)).copied();
            let log_end = self
                .list_offsets(&topic, partition, None)
                .await
                .ok()
                .map(|o| o.high_watermark);
            let lag = match (committed, log_end) {
                (Some(c), Some(e)) => Some(e.saturating_sub(c.max(0) as u64)),
                _ => None,
            };
            partitions.push(PartitionLag {
                member_id: owners.get(&(topic.clone(), partition)).cloned(),
                topic,
                partition,
                committed,
                log_end,
                lag,
            });
        }
        Ok(GroupOverview {
            group: d.group,
            state: d.state,
            generation: d.generation,
            protocol: d.protocol,
            members,
            partitions,
        })
    }

    /// Every group, with its state, from every running broker's coordinators.
    pub async fn list_groups(&self) -> Result<Vec<(String, group::GroupState)>, BrokerError> {
        if self.metadata().topic(offsets::OFFSETS_TOPIC).is_err() {
            return Ok(Vec::new());
        }
        let deadline = tokio::time::Instant::now() + ROUTING_RETRY_FOR;
        'again: loop {
            let mut out = Vec::new();
            for b in 0..self.config.brokers {
                if self.directory.get(BrokerId(b)).is_none() {
                    continue; // a stopped broker coordinates nothing
                }
                match self.at(BrokerId(b)).list_groups().await {
                    Ok(groups) => out.extend(groups),
                    Err(e @ BrokerError::CoordinatorLoading(_)) => {
                        if tokio::time::Instant::now() >= deadline {
                            return Err(e);
                        }
                        tokio::time::sleep(ROUTING_BACKOFF).await;
                        continue 'again;
                    }
                    Err(e) => return Err(e),
                }
            }
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out.dedup_by(|a, b| a.0 == b.0);
            return Ok(out);
        }
    }

    /// Deletes an empty group and its committed offsets (NON_EMPTY_GROUP while it has
    /// members).
    pub async fn delete_group(&self, group: &str) -> Result<(), BrokerError> {
        self.group(group, messages::GroupOp::Delete)
            .await
            .map(|_| ())
    }

    /// Stops a broker as a crash would: its partitions fail over to other in-sync replicas.
    pub async fn stop_broker(&self, broker: BrokerId) -> Result<(), BrokerError> {
        self.controller.send(StopBroker(broker)).await?
    }

    /// Starts a stopped broker; it rejoins as follower, truncates and catches up.
    pub async fn start_broker(&self, broker: BrokerId) -> Result<(), BrokerError> {
        self.controller.send(StartBroker(broker)).await?
    }

    /// Fault injection for tests and drills: stops (`false`) or resumes (`true`) the
    /// followers of `broker` fetching from their leaders, as a network cut between replicas
    /// would, while the broker stays up. Its replicas fall behind and, after
    /// `replica_lag_time_max`, leave the ISR; resumed, they catch up and rejoin.
    pub async fn set_replica_fetching(
        &self,
        broker: BrokerId,
        enabled: bool,
    ) -> Result<(), BrokerError> {
        let b = self
            .directory
            .get(broker)
            .ok_or(BrokerError::BrokerNotAvailable(broker))?;
        Ok(b.send(messages::SetReplicaFetching(enabled)).await?)
    }

    /// A running broker's snapshot.
    pub async fn observe_broker(&self, broker: BrokerId) -> Option<BrokerSnapshot> {
        self.directory.get(broker)?.send(ObserveBroker).await.ok()
    }

    /// The replication state of a partition's leader actor, if it runs.
    pub async fn observe_partition(&self, topic: &str, partition: u32) -> Option<LeaderSnapshot> {
        let leader = self.leader_of(topic, partition).ok()?;
        leader
            .send(ObservePartition {
                topic: topic.to_owned(),
                partition,
            })
            .await
            .ok()
            .flatten()
    }

    /// Stops every broker and the controller. Acknowledged records are already durable.
    pub async fn shutdown(&self) {
        let _ = self.controller.send(ShutdownCluster).await;
    }

    /// Requests addressed to one broker, as its Kafka listener receives them: never
    /// rerouted or retried, so a broker that does not lead the partition (or coordinate the
    /// group) answers `NotLeader` (`NotCoordinator`) and the client finds the right one.
    pub fn at(&self, broker: BrokerId) -> BrokerClient {
        BrokerClient {
            id: broker,
            cluster: self.clone(),
        }
    }
}

/// A handle on one broker of a [`Cluster`]; see [`Cluster::at`].
#[derive(Debug, Clone)]
pub struct BrokerClient {
    id: BrokerId,
    cluster: Cluster,
}

impl BrokerClient {
    /// The broker.
    pub fn id(&self) -> BrokerId {
        self.id
    }

    /// The cluster.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    fn addr(&self) -> Result<Addr<Broker>, BrokerError> {
        self.cluster
            .directory
            .get(self.id)
            .ok_or(BrokerError::BrokerNotAvailable(self.id))
    }

    /// Sends a partition request ([`Produce`], [`Fetch`], [`ListOffsets`],
    /// [`messages::DeleteRecords`]) to this broker, which serves it if it leads the partition
    /// and answers `NotLeader` otherwise.
    pub async fn request<M, R>(&self, msg: M) -> Result<R, BrokerError>
    where
        M: Message<Result = Result<R, BrokerError>> + Send + 'static,
        Broker: Handler<M>,
        R: Send + 'static,
    {
        self.addr()?.send(msg).await?
    }

    /// Sends a request of many partitions ([`ProduceBatch`], [`FetchBatch`],
    /// [`AwaitRecords`]) to this broker; each partition it does not lead is answered
    /// `NotLeader`.
    pub async fn send<M>(&self, msg: M) -> Result<M::Result, BrokerError>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        Broker: Handler<M>,
    {
        Ok(self.addr()?.send(msg).await?)
    }

    /// Where `epoch` ends in the partition's log (Kafka's OffsetForLeaderEpoch), if this
    /// broker leads it; `current_epoch` (the client's view of the leader epoch) fences a
    /// stale client, `None` skips that check.
    pub async fn epoch_end(
        &self,
        topic: &str,
        partition: u32,
        current_epoch: Option<i32>,
        epoch: i32,
    ) -> Result<messages::EpochEndReply, BrokerError> {
        let meta = self.cluster.metadata();
        let p = meta.partition(topic, partition)?;
        let msg = messages::LeaderEpochEnd {
            topic: meta.topic(topic)?.name.clone(),
            partition,
            leader_epoch: current_epoch.unwrap_or(p.leader_epoch),
            epoch,
        };
        self.addr()?.send(msg).await?
    }

    /// A group request, if this broker coordinates the group.
    pub async fn group(
        &self,
        group: &str,
        op: messages::GroupOp,
    ) -> Result<messages::GroupReply, BrokerError> {
        if group.is_empty() {
            return Err(BrokerError::InvalidGroupId(group.to_owned()));
        }
        let msg = messages::GroupRequest {
            group: group.to_owned(),
            op,
        };
        self.addr()?.send(msg).await?
    }

    /// The groups this broker coordinates.
    pub async fn list_groups(&self) -> Result<Vec<(String, group::GroupState)>, BrokerError> {
        if self
            .cluster
            .metadata()
            .topic(offsets::OFFSETS_TOPIC)
            .is_err()
        {
            return Ok(Vec::new());
        }
        self.addr()?.send(messages::ListGroups).await?
    }
}

/// A group as `kafka-consumer-groups --describe` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupOverview {
    /// The group id.
    pub group: String,
    /// Its state.
    pub state: group::GroupState,
    /// Its generation.
    pub generation: i32,
    /// The assignor in use.
    pub protocol: Option<String>,
    /// Its members.
    pub members: Vec<MemberOverview>,
    /// Every partition assigned or with a committed offset.
    pub partitions: Vec<PartitionLag>,
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MemberOverview {
    /// Its member id.
    pub member_id: String,
    /// Its client id.
    pub client_id: String,
    /// Where it connects from.
    pub host: String,
    /// Its partitions by topic (empty if its assignment is not the consumer protocol's).
    pub assignment: Vec<(String, Vec<u32>)>,
}

/// A group's position on one partition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PartitionLag {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The member it is assigned to.
    pub member_id: Option<String>,
    /// The committed offset (the next record to read).
    pub committed: Option<i64>,
    /// The partition's high watermark (what consumers can read up to).
    pub log_end: Option<u64>,
    /// `log_end - committed`.
    pub lag: Option<u64>,
}

/// A cluster running on its own thread with its own actix system: the way to embed Eddy in a
/// program that does not run actix itself.
#[derive(Debug)]
pub struct EmbeddedCluster {
    cluster: Cluster,
    system: actix_rt::System,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EmbeddedCluster {
    /// Starts the cluster on a new thread and waits until it is up.
    pub fn open(config: ClusterConfig) -> Result<EmbeddedCluster, BrokerError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("eddy-{}", config.name))
            .spawn(move || {
                let system = actix_rt::System::new();
                let started = system.block_on(Cluster::start(config));
                let ok = started.is_ok();
                let _ = tx.send(started.map(|c| (c, actix_rt::System::current())));
                if ok {
                    let _ = system.run();
                }
            })
            .map_err(|e| BrokerError::Stopped(format!("cannot spawn the cluster thread: {e}")))?;
        let (cluster, system) = rx
            .recv()
            .map_err(|_| BrokerError::Stopped("the cluster thread died while starting".into()))??;
        Ok(EmbeddedCluster {
            cluster,
            system,
            thread: Some(thread),
        })
    }

    /// A handle on the cluster.
    pub fn cluster(&self) -> Cluster {
        self.cluster.clone()
    }

    /// Stops the cluster and waits for its thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.cluster.controller.do_send(ShutdownCluster);
            // Let the brokers handle their shutdown before the system ends.
            let system = self.system.clone();
            system.arbiter().spawn(async move {
                actix_rt::time::sleep(Duration::from_millis(50)).await;
                actix_rt::System::current().stop();
            });
            let _ = t.join();
        }
    }
}

impl Drop for EmbeddedCluster {
    fn drop(&mut self) {
        self.stop();
    }
}
