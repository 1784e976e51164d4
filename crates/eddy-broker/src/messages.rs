//! The messages the cluster's actors exchange, and their replies.
//!
//! Client-facing requests (`Produce`, `ProduceBatch`, `Fetch`, `FetchBatch`, `ListOffsets`)
//! go to the broker that leads the partitions, which hands them to its leader state of each.
//! Replication requests (`ReplicaFetch`, `EpochEnds`) go from a follower broker to a leader
//! broker, one stream per pair of brokers for every partition they share. Controller
//! requests change the cluster metadata.

use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use eddy_types::{Acks, BrokerId, TopicName};
use serde::Serialize;

use crate::config::NewTopic;
use crate::error::BrokerError;
use crate::group::{GroupState, JoinRequest, JoinResult, MemberInfo, SyncResult};
use crate::metadata::TopicMeta;
use crate::offsets::CommittedOffset;
use crate::replication::ReplicationSnapshot;

/// Appends record batches (Kafka RecordBatch v2 bytes) to a partition; answered once
/// committed at the `acks` level.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<ProduceReply, BrokerError>")]
pub struct Produce {
    /// The topic.
    pub topic: String,
    /// The partition index.
    pub partition: u32,
    /// One or more record batches, back to back.
    pub records: Bytes,
    /// How much replication to wait for.
    pub acks: Acks,
    /// How long `acks=all` may wait for the in-sync replicas (Kafka's produce timeout).
    pub timeout: Duration,
}

/// Where a produce request's records went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProduceReply {
    /// Offset of the first record; -1 for `acks=0`, which is answered before the append.
    pub base_offset: i64,
    /// Offset of the last record; -1 for `acks=0`.
    pub last_offset: i64,
    /// The partition's log start; -1 for `acks=0`.
    pub log_start: i64,
}

/// Appends record batches to many partitions of one broker at once (a Kafka Produce
/// request's partitions for that broker): one message to the broker, one commit of its log
/// for all of them. Answered once every partition is, in the order given.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Vec<Result<ProduceReply, BrokerError>>")]
pub struct ProduceBatch {
    /// How much replication to wait for.
    pub acks: Acks,
    /// How long `acks=all` may wait for the in-sync replicas.
    pub timeout: Duration,
    /// The partitions and their batches.
    pub partitions: Vec<PartitionRecords>,
}

/// One partition's part of a [`ProduceBatch`].
#[derive(Debug, Clone)]
pub struct PartitionRecords {
    /// The topic.
    pub topic: String,
    /// The partition index.
    pub partition: u32,
    /// One or more record batches, back to back.
    pub records: Bytes,
}

/// Reads many partitions of one broker at once (a Kafka Fetch request's partitions for that
/// broker), in order within `max_bytes` in all: the first batch of the answer whole (a
/// consumer must get past a batch larger than its limit), later partitions only what fits;
/// partitions left without room get their offsets only. With fewer than `min_bytes` read and
/// a `max_wait`, waits until one of the partitions has new records (or the wait ends) and
/// reads again. One answer per partition, in the order given.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Vec<Result<FetchReply, BrokerError>>")]
pub struct FetchBatch {
    /// The partitions, each with its offset and its own limit.
    pub partitions: Vec<FetchPartition>,
    /// Most record bytes in the whole answer.
    pub max_bytes: usize,
    /// Answer at once when at least this many bytes are read.
    pub min_bytes: usize,
    /// Longest wait for new records when fewer than `min_bytes` were read.
    pub max_wait: Duration,
}

/// One partition of a [`FetchBatch`] or an [`AwaitRecords`].
#[derive(Debug, Clone)]
pub struct FetchPartition {
    /// The topic.
    pub topic: String,
    /// The partition index.
    pub partition: u32,
    /// The first offset wanted.
    pub offset: u64,
    /// Most bytes of this partition (the first batch of the answer goes whole).
    pub max_bytes: usize,
}

/// Waits until one of the partitions has records past its offset (its high watermark moved
/// past it), one of them fails (its leader moved), or `max_wait` passes. Reads nothing: a
/// Kafka listener waits with this holding no fetch memory, then reads.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct AwaitRecords {
    /// The partitions and the offsets wanted.
    pub partitions: Vec<FetchPartition>,
    /// Longest wait.
    pub max_wait: Duration,
}

/// Reads committed records (below the high watermark) from a partition, waiting up to
/// `max_wait` for at least `min_bytes`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<FetchReply, BrokerError>")]
pub struct Fetch {
    /// The topic.
    pub topic: String,
    /// The partition index.
    pub partition: u32,
    /// The first offset wanted.
    pub offset: u64,
    /// Most bytes to return (the first batch is returned whole unless `capped`).
    pub max_bytes: usize,
    /// Never more than `max_bytes`: a first batch larger than that is not returned, and
    /// `max_bytes` 0 reads no records (only the offsets). Kafka reads the partitions of a
    /// fetch so once an earlier one returned records, to keep the answer within its limit.
    pub capped: bool,
    /// Longest wait for new records when there are fewer than `min_bytes`.
    pub max_wait: Duration,
    /// Answer at once when at least this many bytes are readable.
    pub min_bytes: usize,
}

/// What a fetch found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchReply {
    /// Whole record batches, as stored; the first may start before the asked offset.
    pub records: Bytes,
    /// Where the next fetch continues.
    pub next_offset: u64,
    /// The partition's high watermark.
    pub high_watermark: u64,
    /// The partition's log start.
    pub log_start: u64,
    /// The leader's log end.
    pub log_end: u64,
}

/// Asks a partition leader for its offsets.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<OffsetsReply, BrokerError>")]
pub struct ListOffsets {
    /// The topic.
    pub topic: String,
    /// The partition index.
    pub partition: u32,
    /// Also look up the first record at or after this timestamp (ms).
    pub timestamp: Option<i64>,
}

/// A partition's offsets, as its leader sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OffsetsReply {
    /// First readable offset.
    pub log_start: u64,
    /// Consumers read below this.
    pub high_watermark: u64,
    /// The next offset the leader assigns.
    pub log_end: u64,
    /// For a timestamp query: the first record at or after it, as (offset, timestamp).
    pub by_timestamp: Option<(u64, i64)>,
    /// The leader's epoch.
    pub leader_epoch: i32,
}

/// A follower broker's fetch from a leader broker, for every partition it follows from it
/// (Kafka's replica fetcher: one fetch per pair of brokers, with a fetch session, KIP-227).
/// It reports only what changed since its last fetch: the log ends of the partitions it
/// appended (or joined its session with), and the partitions it left. The leader answers
/// with batches of the partitions in the session that have records past the follower's
/// position, at once if there are any, else when some arrive or `max_wait` ends.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<ReplicaAnswer, BrokerError>")]
pub(crate) struct ReplicaFetch {
    /// The fetching broker.
    pub(crate) follower: BrokerId,
    /// Its fetch session with this leader (a new one after a restart).
    pub(crate) session: u64,
    /// Positions that changed.
    pub(crate) positions: Vec<ReplicaPosition>,
    /// Partitions it no longer fetches (idle, or no longer followed).
    pub(crate) removed: Vec<eddy_types::PartitionId>,
    /// Longest wait when there is nothing new.
    pub(crate) max_wait: Duration,
    /// Most record bytes in the answer.
    pub(crate) max_bytes: usize,
    /// Most record bytes per partition (the first batch goes whole).
    pub(crate) partition_max_bytes: usize,
}

/// A follower's position in one partition.
#[derive(Debug, Clone)]
pub(crate) struct ReplicaPosition {
    pub(crate) topic: TopicName,
    pub(crate) index: u32,
    pub(crate) pid: eddy_types::PartitionId,
    /// The leader epoch it follows.
    pub(crate) leader_epoch: i32,
    /// Its log end: it has every record before it.
    pub(crate) log_end: u64,
    /// Its last append failed on its storage (disk full, read-only, failing): its replica
    /// is offline until an append succeeds again, as a Kafka replica on a failed log
    /// directory, and the leader takes it out of the ISR at once rather than after the lag
    /// timeout (acks=all requests would otherwise wait for it).
    pub(crate) storage_failed: bool,
}

/// The leader's answer to a [`ReplicaFetch`].
#[derive(Debug, Clone, Default)]
pub(crate) struct ReplicaAnswer {
    /// Batches (possibly none: a position to report again) for partitions in the session.
    pub(crate) data: Vec<ReplicaData>,
    /// Positions refused: another leader epoch, or no longer led here.
    pub(crate) refused: Vec<(eddy_types::PartitionId, BrokerError)>,
    /// Partitions with records for the follower that are not in its session: join them.
    pub(crate) wake: Vec<(TopicName, u32)>,
}

/// One partition's batches for a follower.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReplicaData {
    pub(crate) pid: eddy_types::PartitionId,
    /// The leader epoch they were read under.
    pub(crate) leader_epoch: i32,
    /// Whole batches from the follower's position, as stored.
    pub(crate) records: Bytes,
    /// The leader's high watermark.
    pub(crate) high_watermark: u64,
    /// The leader's log start.
    pub(crate) log_start: u64,
    /// The leader's log end.
    pub(crate) log_end: u64,
}

/// Many [`LeaderEpochEnd`] questions of one follower broker to one leader broker at once (a
/// follower joining many partitions, after a restart or a leader change).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Vec<(eddy_types::PartitionId, Result<EpochEndReply, BrokerError>)>")]
pub(crate) struct EpochEnds(pub(crate) Vec<(eddy_types::PartitionId, LeaderEpochEnd)>);

/// Kafka's OffsetForLeaderEpoch, asked by a follower before it fetches: where does `epoch`
/// end in the leader's log? The follower truncates what it has past that point.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<EpochEndReply, BrokerError>")]
pub struct LeaderEpochEnd {
    /// The topic.
    pub topic: TopicName,
    /// The partition index.
    pub partition: u32,
    /// The leader epoch the follower follows (fences stale leaders).
    pub leader_epoch: i32,
    /// The follower's latest epoch.
    pub epoch: i32,
}

/// Kafka's DeleteRecords: moves a partition's log start up to `offset` (at most the high
/// watermark; `None`: the high watermark). Answers the new log start; followers follow it.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<u64, BrokerError>")]
pub struct DeleteRecords {
    /// The topic.
    pub topic: String,
    /// The partition index.
    pub partition: u32,
    /// The new log start, or the high watermark.
    pub offset: Option<u64>,
}

/// The leader's answer to [`LeaderEpochEnd`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEndReply {
    /// The largest epoch not above the asked one and where it ends; `None` if the leader's log
    /// has no epochs (it is empty).
    pub end: Option<(i32, u64)>,
    /// The leader's log end.
    pub log_end: u64,
}

/// From the controller: these partitions changed leader or ISR; the published metadata has
/// the new state.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct PartitionsChanged {
    /// The changed partitions.
    pub partitions: Vec<(TopicName, u32)>,
}

/// From the controller: these partitions are gone (their topic was deleted).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct PartitionsDeleted {
    /// The deleted topic.
    pub topic: String,
    /// The storage ids of the removed partitions.
    pub partitions: Vec<eddy_types::PartitionId>,
}

/// Stops an actor.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub(crate) struct Shutdown;

/// Creates a topic.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<std::sync::Arc<TopicMeta>, BrokerError>")]
pub struct CreateTopic(pub NewTopic);

/// Creates many topics at once: one metadata commit and one partition-creating commit per
/// log directory for all of them. Answers one result per topic, in order.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Vec<Result<std::sync::Arc<TopicMeta>, BrokerError>>")]
pub struct CreateTopics(pub Vec<NewTopic>);

/// Deletes a topic and its records on every broker.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), BrokerError>")]
pub struct DeleteTopic(pub String);

/// Grows a topic to `total` partitions.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<std::sync::Arc<TopicMeta>, BrokerError>")]
pub struct CreatePartitions {
    /// The topic.
    pub topic: String,
    /// Its new partition count.
    pub total: u32,
}

/// Allocates an idempotent producer id (Kafka's InitProducerId, without transactions).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<ProducerIdentity, BrokerError>")]
pub struct InitProducerId;

/// An idempotent producer's identity: it stamps every batch with these and a sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProducerIdentity {
    /// The producer id.
    pub producer_id: i64,
    /// The producer epoch.
    pub epoch: i16,
}

/// Stops a broker as if it had crashed; its partitions fail over.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<(), BrokerError>")]
pub struct StopBroker(pub BrokerId);

/// Starts a stopped broker again; it rejoins as follower and catches up.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<(), BrokerError>")]
pub struct StartBroker(pub BrokerId);

/// A broker is alive.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub(crate) struct Heartbeat {
    pub(crate) broker: BrokerId,
    pub(crate) incarnation: u64,
}

/// A broker actor stopped (or went silent).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<(), BrokerError>")]
pub(crate) struct BrokerGone {
    pub(crate) broker: BrokerId,
    pub(crate) incarnation: u64,
}

/// A leader's request to change a partition's ISR (Kafka's AlterPartition). Answers the ISR
/// the controller recorded.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Vec<BrokerId>, BrokerError>")]
pub struct AlterIsr {
    /// The topic.
    pub topic: TopicName,
    /// The partition index.
    pub partition: u32,
    /// The asking leader.
    pub leader: BrokerId,
    /// Its epoch.
    pub leader_epoch: i32,
    /// The proposed ISR.
    pub isr: Vec<BrokerId>,
}

/// Many [`AlterIsr`] requests of one broker in one metadata change (Kafka's AlterPartition
/// carries many partitions): one answer each, in order.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Vec<Result<Vec<BrokerId>, BrokerError>>")]
pub struct AlterIsrs(pub Vec<AlterIsr>);

/// A leader whose append failed after its followers may have copied it asks for a new epoch
/// for itself (see `ClusterMetadata::new_leader_epoch`). Answers the new epoch.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<i32, BrokerError>")]
pub struct NewLeaderEpoch {
    /// The topic.
    pub topic: TopicName,
    /// The partition index.
    pub partition: u32,
    /// The asking leader.
    pub leader: BrokerId,
    /// Its current epoch.
    pub leader_epoch: i32,
}

/// Stops every broker and the controller.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct ShutdownCluster;

/// Fault injection: stops (`false`) or resumes (`true`) a broker's followers fetching from
/// their leaders, while the broker itself stays up and keeps its session.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct SetReplicaFetching(pub bool);

/// Asks a broker for a snapshot of its state.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "BrokerSnapshot")]
pub struct ObserveBroker;

/// Asks a broker for the state of one of the partitions it leads (`None` when it holds no
/// state for it now).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Option<LeaderSnapshot>")]
pub struct ObservePartition {
    /// The topic.
    pub topic: String,
    /// The partition index.
    pub partition: u32,
}

/// A broker's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokerSnapshot {
    /// The broker.
    pub id: u32,
    /// Partitions it leads that have state in memory now (it drops that state once a
    /// partition has been idle for `partition_idle_timeout`).
    pub leaders_running: usize,
    /// Partitions it follows in a fetch session now (idle ones leave the session).
    pub followers_running: usize,
}

/// A partition leader's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaderSnapshot {
    /// Its leader epoch.
    pub leader_epoch: i32,
    /// Replication state.
    pub replication: ReplicationSnapshot,
    /// `acks=all` requests waiting for the high watermark.
    pub waiting_acks: usize,
}

/// A request to a consumer group's coordinator: the broker leading the group's partition of
/// `__consumer_offsets`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<GroupReply, BrokerError>")]
pub struct GroupRequest {
    /// The group id.
    pub group: String,
    /// What is asked.
    pub op: GroupOp,
}

/// The group requests of Kafka's classic protocol, plus the admin ones.
#[derive(Debug, Clone)]
pub enum GroupOp {
    /// JoinGroup.
    Join(JoinRequest),
    /// SyncGroup; the leader's carries every member's assignment.
    Sync {
        /// The member.
        member: String,
        /// Its generation.
        generation: i32,
        /// The leader's assignments by member id.
        assignments: Option<Vec<(String, Bytes)>>,
    },
    /// Heartbeat.
    Heartbeat {
        /// The member.
        member: String,
        /// Its generation.
        generation: i32,
    },
    /// LeaveGroup, for one or more members.
    Leave {
        /// The members leaving.
        members: Vec<String>,
    },
    /// OffsetCommit. A standalone consumer sends an empty member id and generation -1.
    Commit {
        /// The member.
        member: String,
        /// Its generation.
        generation: i32,
        /// `(topic, partition, offset)`.
        offsets: Vec<(String, u32, CommittedOffset)>,
    },
    /// OffsetFetch: the given partitions, or all the group has (`None`).
    FetchOffsets {
        /// Which partitions.
        partitions: Option<Vec<(String, u32)>>,
    },
    /// DescribeGroups (members, assignments, state) with the committed offsets.
    Describe,
    /// DeleteGroups: an empty group and its offsets.
    Delete,
}

/// A coordinator's answer.
#[derive(Debug, Clone)]
pub enum GroupReply {
    /// To a join.
    Joined(JoinResult),
    /// To a sync.
    Synced(SyncResult),
    /// To a heartbeat, leave, commit or delete.
    Done,
    /// To a fetch of offsets: `(topic, partition, committed)`.
    Offsets(Vec<(String, u32, Option<CommittedOffset>)>),
    /// To a describe.
    Described(GroupDescription),
}

/// A group as its coordinator knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupDescription {
    /// The group id.
    pub group: String,
    /// Its state (`Empty`, `PreparingRebalance`, `CompletingRebalance`, `Stable`, `Dead`).
    pub state: GroupState,
    /// Its generation.
    pub generation: i32,
    /// The protocol type (`consumer` for Kafka consumers).
    pub protocol_type: Option<String>,
    /// The chosen assignor.
    pub protocol: Option<String>,
    /// The leader's member id.
    pub leader: Option<String>,
    /// The members, with their assignments (opaque bytes; see `consumer_protocol`).
    #[serde(skip)]
    pub members: Vec<MemberInfo>,
    /// Committed offsets: `(topic, partition, offset)`.
    pub offsets: Vec<(String, u32, i64)>,
}

/// Lists the groups a broker coordinates.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Vec<(String, GroupState)>, BrokerError>")]
pub struct ListGroups;
