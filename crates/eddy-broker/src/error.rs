//! [`BrokerError`]: every way a cluster request can fail.

use eddy_log::LogError;
use eddy_types::{BrokerId, ClassifyError, ErrorKind, InvalidTopicName, TopicName};

/// The error of every cluster, broker and partition request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BrokerError {
    /// The topic name breaks Kafka's naming rules.
    #[error(transparent)]
    InvalidTopicName(#[from] InvalidTopicName),
    /// A topic setting is out of range.
    #[error("invalid topic settings for {topic}: {reason}")]
    InvalidTopicConfig {
        /// The topic.
        topic: String,
        /// What is wrong.
        reason: String,
    },
    /// A cluster setting is out of range.
    #[error("invalid cluster settings: {0}")]
    InvalidClusterConfig(String),
    /// No topic has this name.
    #[error("unknown topic {0}")]
    UnknownTopic(String),
    /// A topic of this name exists.
    #[error("topic {0} already exists")]
    TopicExists(TopicName),
    /// The request breaks a limit of the node (Kafka's POLICY_VIOLATION), such as
    /// `max_partitions`; nothing of it was made.
    #[error("{0}")]
    PolicyViolation(String),
    /// The topic exists but not this partition.
    #[error("topic {topic} has no partition {partition}")]
    UnknownPartition {
        /// The topic.
        topic: TopicName,
        /// The partition index asked for.
        partition: u32,
    },
    /// The request went to a broker that does not lead the partition.
    #[error("{broker} is not the leader of {topic}-{partition} (leader: {leader:?})")]
    NotLeader {
        /// The topic.
        topic: TopicName,
        /// The partition index.
        partition: u32,
        /// The broker that was asked.
        broker: BrokerId,
        /// The current leader, if any.
        leader: Option<BrokerId>,
    },
    /// The partition has no leader now (all in-sync replicas are down).
    #[error("{topic}-{partition} has no leader")]
    LeaderNotAvailable {
        /// The topic.
        topic: TopicName,
        /// The partition index.
        partition: u32,
    },
    /// The leader stepped down (or its broker stopped) after appending a produce request's
    /// records and before they were committed: they may or may not survive. Only an
    /// idempotent producer may resend them without risking a duplicate.
    #[error("{topic}-{partition}: the leader changed before the records were committed")]
    LeaderChanged {
        /// The topic.
        topic: TopicName,
        /// The partition index.
        partition: u32,
    },
    /// An idempotent producer's batch skips or repeats sequence numbers (Kafka's
    /// OUT_OF_ORDER_SEQUENCE_NUMBER); nothing was written.
    #[error(
        "{topic}-{partition}: producer {producer_id} sent sequence {got}, expected {expected}"
    )]
    OutOfOrderSequence {
        /// The topic.
        topic: TopicName,
        /// The partition index.
        partition: u32,
        /// The producer.
        producer_id: i64,
        /// The sequence expected next.
        expected: i32,
        /// The batch's first sequence.
        got: i32,
    },
    /// An idempotent producer's epoch is older than one already seen (Kafka's
    /// INVALID_PRODUCER_EPOCH): a newer instance of the producer took over.
    #[error(
        "{topic}-{partition}: producer {producer_id} epoch {got} is fenced by epoch {current}"
    )]
    ProducerFenced {
        /// The topic.
        topic: TopicName,
        /// The partition index.
        partition: u32,
        /// The producer.
        producer_id: i64,
        /// The newest epoch seen.
        current: i16,
        /// The batch's epoch.
        got: i16,
    },
    /// The request's record batches cannot be accepted as they are.
    #[error("{topic}-{partition}: {reason}")]
    InvalidRecords {
        /// The topic.
        topic: TopicName,
        /// The partition index.
        partition: u32,
        /// Why.
        reason: String,
    },
    /// A retried batch is identical to one still being appended; retry after a moment.
    #[error("{topic}-{partition}: the same batch is still being appended")]
    DuplicateInFlight {
        /// The topic.
        topic: TopicName,
        /// The partition index.
        partition: u32,
    },
    /// A replication request carried a leader epoch that is not the current one.
    #[error("{topic}-{partition}: leader epoch {requested} is not the current epoch {current}")]
    FencedLeaderEpoch {
        /// The topic.
        topic: TopicName,
        /// The partition index.
        partition: u32,
        /// The epoch the request carried.
        requested: i32,
        /// The leader's epoch.
        current: i32,
    },
    /// `acks=all` was asked but fewer replicas than `min.insync.replicas` are in sync.
    #[error("{topic}-{partition}: {isr} in-sync replicas, min.insync.replicas is {min}")]
    NotEnoughReplicas {
        /// The topic.
        topic: TopicName,
        /// The partition index.
        partition: u32,
        /// In-sync replicas now.
        isr: usize,
        /// The topic's `min.insync.replicas`.
        min: u32,
    },
    /// The broker asked is stopped.
    #[error("{0} is not running")]
    BrokerNotAvailable(BrokerId),
    /// The request did not complete in time.
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// The cluster is shutting down, or an actor stopped while the request was with it.
    #[error("the cluster is shutting down or an actor stopped: {0}")]
    Stopped(String),
    /// The partition log refused or failed.
    #[error(transparent)]
    Log(#[from] LogErrorShared),
    /// The cluster metadata on disk cannot be read.
    #[error("cluster metadata: {0}")]
    Metadata(String),
    /// A group request named a member the group does not have (Kafka's UNKNOWN_MEMBER_ID).
    #[error("group {group}: unknown member {member:?}")]
    UnknownMember {
        /// The group.
        group: String,
        /// The member id the request carried.
        member: String,
    },
    /// A group request carried another generation than the group's (ILLEGAL_GENERATION).
    #[error("group {group}: generation {got} is not the current generation {current}")]
    IllegalGeneration {
        /// The group.
        group: String,
        /// The generation the request carried.
        got: i32,
        /// The group's generation.
        current: i32,
    },
    /// The group is rebalancing: rejoin (REBALANCE_IN_PROGRESS).
    #[error("group {0} is rebalancing")]
    RebalanceInProgress(String),
    /// The member's protocol type or protocols do not match the group's
    /// (INCONSISTENT_GROUP_PROTOCOL).
    #[error("group {group}: {reason}")]
    InconsistentGroupProtocol {
        /// The group.
        group: String,
        /// What does not match.
        reason: String,
    },
    /// A new member must join again with the member id it was given (MEMBER_ID_REQUIRED,
    /// KIP-394).
    #[error("group {group}: join again with member id {member}")]
    MemberIdRequired {
        /// The group.
        group: String,
        /// The id to join with.
        member: String,
    },
    /// The session timeout is outside the broker's allowed range (INVALID_SESSION_TIMEOUT).
    #[error("session timeout {got_ms} ms is outside {min_ms}..={max_ms} ms")]
    InvalidSessionTimeout {
        /// The timeout asked for.
        got_ms: u64,
        /// `group.min.session.timeout.ms`.
        min_ms: u64,
        /// `group.max.session.timeout.ms`.
        max_ms: u64,
    },
    /// The group still has members (NON_EMPTY_GROUP).
    #[error("group {0} still has members")]
    NonEmptyGroup(String),
    /// No such group (GROUP_ID_NOT_FOUND).
    #[error("group {0} does not exist")]
    GroupNotFound(String),
    /// An empty or otherwise unusable group id (INVALID_GROUP_ID).
    #[error("invalid group id {0:?}")]
    InvalidGroupId(String),
    /// The broker asked does not coordinate the group (NOT_COORDINATOR): the leadership of
    /// its `__consumer_offsets` partition moved. Find the coordinator again and retry.
    #[error("{broker} is not the coordinator of group {group}")]
    NotCoordinator {
        /// The group.
        group: String,
        /// The broker asked.
        broker: BrokerId,
    },
    /// The coordinator is still loading the group's partition of `__consumer_offsets`
    /// (COORDINATOR_LOAD_IN_PROGRESS); retry shortly.
    #[error("the coordinator of group {0} is still loading its offsets")]
    CoordinatorLoading(String),
    /// Records could not be encoded as a Kafka record batch.
    #[error("cannot encode records: {0}")]
    Encode(String),
    /// Stored or received bytes are not valid record batches.
    #[error("cannot decode records: {0}")]
    Decode(String),
}

/// A [`LogError`] that can be handed to many waiters (one failed commit answers every request
/// in it).
#[derive(Debug, Clone, thiserror::Error)]
#[error(transparent)]
pub struct LogErrorShared(pub std::sync::Arc<LogError>);

impl From<LogError> for BrokerError {
    fn from(e: LogError) -> BrokerError {
        BrokerError::Log(LogErrorShared(std::sync::Arc::new(e)))
    }
}

impl From<actix::MailboxError> for BrokerError {
    fn from(e: actix::MailboxError) -> BrokerError {
        BrokerError::Stopped(e.to_string())
    }
}

impl BrokerError {
    /// Whether a fetch asked for an offset outside the partition's log (Kafka's
    /// OFFSET_OUT_OF_RANGE): a consumer resets its position by `auto.offset.reset`.
    pub fn is_offset_out_of_range(&self) -> bool {
        matches!(self, BrokerError::Log(e) if matches!(*e.0, LogError::OffsetOutOfRange { .. }))
    }
}

impl ClassifyError for BrokerError {
    fn kind(&self) -> ErrorKind {
        match self {
            BrokerError::InvalidTopicName(_)
            | BrokerError::InvalidTopicConfig { .. }
            | BrokerError::InvalidClusterConfig(_)
            | BrokerError::OutOfOrderSequence { .. }
            | BrokerError::ProducerFenced { .. }
            | BrokerError::InvalidRecords { .. } => ErrorKind::Invalid,
            BrokerError::UnknownTopic(_) | BrokerError::UnknownPartition { .. } => {
                ErrorKind::NotFound
            }
            BrokerError::TopicExists(_) => ErrorKind::AlreadyExists,
            BrokerError::PolicyViolation(_) => ErrorKind::Invalid,
            BrokerError::NotLeader { .. }
            | BrokerError::LeaderNotAvailable { .. }
            | BrokerError::FencedLeaderEpoch { .. }
            | BrokerError::LeaderChanged { .. } => ErrorKind::NotLeader,
            BrokerError::NotEnoughReplicas { .. } => ErrorKind::NotEnoughReplicas,
            BrokerError::BrokerNotAvailable(_)
            | BrokerError::Stopped(_)
            | BrokerError::DuplicateInFlight { .. } => ErrorKind::Unavailable,
            BrokerError::Timeout(_) => ErrorKind::Timeout,
            BrokerError::Log(e) => e.0.kind(),
            BrokerError::Metadata(_) => ErrorKind::Corrupt,
            BrokerError::UnknownMember { .. }
            | BrokerError::IllegalGeneration { .. }
            | BrokerError::InconsistentGroupProtocol { .. }
            | BrokerError::MemberIdRequired { .. }
            | BrokerError::InvalidSessionTimeout { .. }
            | BrokerError::NonEmptyGroup(_)
            | BrokerError::InvalidGroupId(_) => ErrorKind::Invalid,
            BrokerError::GroupNotFound(_) => ErrorKind::NotFound,
            BrokerError::RebalanceInProgress(_) => ErrorKind::Unavailable,
            BrokerError::NotCoordinator { .. } => ErrorKind::NotLeader,
            BrokerError::CoordinatorLoading(_) => ErrorKind::Unavailable,
            BrokerError::Encode(_) => ErrorKind::Internal,
            BrokerError::Decode(_) => ErrorKind::Corrupt,
        }
    }
}
