//! The embedded consumer: Kafka's `KafkaConsumer` over an `eddy_broker::Cluster`.
//!
//! A [`Consumer`] is owned by one task and driven by [`Consumer::poll`], as in Kafka. It either
//! joins a consumer group ([`Consumer::subscribe`] to topics, or
//! [`Consumer::subscribe_pattern`] to a regex such as `user_.*`, whose new matching topics are
//! picked up) or reads partitions it was given by hand ([`Consumer::assign`]).
//!
//! In a group it speaks the classic protocol to the group's coordinator through
//! `Cluster::group`: JoinGroup (the leader, a consumer, runs the `range` or `roundrobin`
//! assignor over every member's subscription), SyncGroup, then Heartbeats from a background
//! task on the cluster's arbiter, so a slow processing loop does not lose the session (it
//! leaves the group only when `poll` is not called for `max_poll_interval`, as KIP-62 has it).
//! A rebalance is eager: the consumer commits (with auto-commit), calls the listener's
//! `on_revoked`, rejoins, and calls `on_assigned` with its new partitions. Positions come from
//! the group's committed offsets, else from `auto_offset_reset`.
//!
//! `poll` long-polls every fetchable partition's leader at once and returns what arrives
//! first (at most `max_poll_records`), waking early when a rebalance starts. Offsets commit
//! by hand ([`Consumer::commit_sync`], [`Consumer::commit_async`], [`Consumer::commit_offsets`])
//! or every `auto_commit_interval` inside `poll`, which commits what earlier polls returned:
//! at-least-once.
//!
//! ```
//! use std::time::Duration;
//! use eddy_broker::{ClusterConfig, EmbeddedCluster, NewTopic};
//! use eddy_client::{Consumer, ConsumerConfig, OffsetReset, Producer, ProducerConfig, ProducerRecord};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let mut config = ClusterConfig::new("demo", dir.path());
//! # config.log.map_size = 1 << 26;
//! config.group.initial_rebalance_delay = Duration::from_millis(100);
//! let eddy = EmbeddedCluster::open(config)?;
//! let cluster = eddy.cluster();
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! rt.block_on(async {
//!     cluster.create_topic(NewTopic::new("chat").partitions(3)).await?;
//!     let producer = Producer::start(&cluster, ProducerConfig::default()).await?;
//!     producer.send(ProducerRecord::new("chat", "hello").key("alice")).await?;
//!
//!     let mut consumer = Consumer::new(
//!         &cluster,
//!         ConsumerConfig::with_group("readers").auto_offset_reset(OffsetReset::Earliest),
//!     )?;
//!     consumer.subscribe(["chat"]);
//!     let mut got = Vec::new();
//!     while got.is_empty() {
//!         got = consumer.poll(Duration::from_secs(1)).await?;
//!     }
//!     assert_eq!(got[0].value.as_deref(), Some(&b"hello"[..]));
//!     consumer.close().await?; // commits and leaves the group
//!     producer.close().await;
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })?;
//! eddy.shutdown();
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use eddy_broker::consumer_protocol::{self, CONSUMER_PROTOCOL_TYPE};
use eddy_broker::group::{JoinRequest, JoinResult};
use eddy_broker::messages::{GroupOp, GroupReply};
use eddy_broker::offsets::{CommittedOffset, OFFSETS_TOPIC};
use eddy_broker::records::decode_records;
use eddy_broker::{BrokerError, Cluster};
use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;
use tracing::{debug, warn};

pub use crate::accumulator::TopicPartition;
use crate::assignor::{self, Assignor, RangeAssignor, RoundRobinAssignor};
use crate::error::ClientError;

/// `auto.offset.reset`: where to start a partition without a committed offset (or whose
/// offset is no longer in the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// The log start.
    Earliest,
    /// The high watermark: only records produced from now on (Kafka's default).
    #[default]
    Latest,
    /// Fail `poll` with [`ClientError::NoOffset`].
    None,
}

/// `partition.assignment.strategy`, one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignmentStrategy {
    /// Kafka's `range`.
    Range,
    /// Kafka's `roundrobin`.
    RoundRobin,
}

impl AssignmentStrategy {
    fn assignor(self) -> &'static dyn Assignor {
        match self {
            AssignmentStrategy::Range => &RangeAssignor,
            AssignmentStrategy::RoundRobin => &RoundRobinAssignor,
        }
    }

    fn by_name(name: &str) -> Option<AssignmentStrategy> {
        [AssignmentStrategy::Range, AssignmentStrategy::RoundRobin]
            .into_iter()
            .find(|s| s.assignor().name() == name)
    }
}

/// The consumer's settings, named after Kafka's.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// `group.id`: needed to subscribe and to commit; `None` for a consumer that only reads
    /// partitions assigned by hand.
    pub group_id: Option<String>,
    /// `client.id` (`eddy-consumer`): the prefix of the member id the coordinator gives.
    pub client_id: String,
    /// `auto.offset.reset` (latest).
    pub auto_offset_reset: OffsetReset,
    /// `enable.auto.commit` (true).
    pub enable_auto_commit: bool,
    /// `auto.commit.interval.ms` (5 s).
    pub auto_commit_interval: Duration,
    /// `session.timeout.ms` (45 s).
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms` (3 s).
    pub heartbeat_interval: Duration,
    /// `max.poll.interval.ms` (5 min): longer between polls and the member leaves the group;
    /// also the rebalance timeout it joins with.
    pub max_poll_interval: Duration,
    /// `max.poll.records` (500).
    pub max_poll_records: usize,
    /// `max.partition.fetch.bytes` (1 MiB).
    pub max_partition_fetch_bytes: usize,
    /// `fetch.max.wait.ms` (500 ms): the longest one fetch waits at a leader.
    pub fetch_max_wait: Duration,
    /// `partition.assignment.strategy` (range, then roundrobin).
    pub assignment_strategy: Vec<AssignmentStrategy>,
}

impl Default for ConsumerConfig {
    fn default() -> ConsumerConfig {
        ConsumerConfig {
            group_id: None,
            client_id: "eddy-consumer".into(),
            auto_offset_reset: OffsetReset::Latest,
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            session_timeout: Duration::from_secs(45),
            heartbeat_interval: Duration::from_secs(3),
            max_poll_interval: Duration::from_secs(300),
            max_poll_records: 500,
            max_partition_fetch_bytes: 1 << 20,
            fetch_max_wait: Duration::from_millis(500),
            assignment_strategy: vec![AssignmentStrategy::Range, AssignmentStrategy::RoundRobin],
        }
    }
}

impl ConsumerConfig {
    /// The defaults, in group `group`.
    pub fn with_group(group: impl Into<String>) -> ConsumerConfig {
        ConsumerConfig {
            group_id: Some(group.into()),
            ..ConsumerConfig::default()
        }
    }

    /// Sets `auto.offset.reset`.
    pub fn auto_offset_reset(mut self, reset: OffsetReset) -> ConsumerConfig {
        self.auto_offset_reset = reset;
        self
    }

    /// Checks the settings as Kafka's consumer does.
    pub fn validate(&self) -> Result<(), ClientError> {
        let bad = |m: &str| Err(ClientError::InvalidConfig(m.to_owned()));
        if self.group_id.as_deref() == Some("") {
            return bad("group.id must not be empty");
        }
        if self.heartbeat_interval.is_zero() || self.heartbeat_interval >= self.session_timeout {
            return bad("heartbeat.interval.ms must be positive and below session.timeout.ms");
        }
        if self.max_poll_records == 0 || self.max_partition_fetch_bytes == 0 {
            return bad("max.poll.records and max.partition.fetch.bytes must be positive");
        }
        if self.enable_auto_commit && self.auto_commit_interval.is_zero() {
            return bad("auto.commit.interval.ms must be positive");
        }
        if self.assignment_strategy.is_empty() {
            return bad("partition.assignment.strategy needs at least one assignor");
        }
        Ok(())
    }
}

/// One record returned by [`Consumer::poll`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Its topic.
    pub topic: String,
    /// Its partition.
    pub partition: u32,
    /// Its offset.
    pub offset: u64,
    /// Its timestamp (ms).
    pub timestamp: i64,
    /// Its key.
    pub key: Option<Bytes>,
    /// Its value (`None`: a tombstone).
    pub value: Option<Bytes>,
    /// Its headers, in order.
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Kafka's `ConsumerRebalanceListener`, called from inside [`Consumer::poll`].
pub trait RebalanceListener: Send {
    /// Before a rebalance takes partitions away (with auto-commit, after their positions are
    /// committed). Called with every partition the consumer held (eager protocol).
    fn on_revoked(&mut self, partitions: &[TopicPartition]);
    /// After a rebalance handed out `partitions` (maybe none), before any of their records
    /// is returned.
    fn on_assigned(&mut self, partitions: &[TopicPartition]);
    /// When partitions were lost without a chance to commit (the member was removed from
    /// the group, e.g. its session expired). Defaults to `on_revoked`.
    fn on_lost(&mut self, partitions: &[TopicPartition]) {
        self.on_revoked(partitions);
    }
}

/// A pending [`Consumer::commit_async`]: await it for the outcome, or drop it (the commit
/// still happens).
#[derive(Debug)]
pub struct CommitHandle(oneshot::Receiver<Result<(), ClientError>>);

impl Future for CommitHandle {
    type Output = Result<(), ClientError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(ClientError::Closed)))
    }
}

/// What the consumer reads.
#[derive(Debug, Clone)]
enum Subscription {
    None,
    Topics(BTreeSet<String>),
    Pattern(regex_lite::Regex),
    Manual,
}

/// The group membership, shared with the heartbeat task.
#[derive(Debug)]
struct Membership {
    member_id: String,
    generation: i32,
    /// In a generation: the heartbeat task beats.
    active: bool,
    /// The consumer must (re)join before its next fetch.
    rejoin: bool,
    /// The member was removed (unknown member, poll interval exceeded): its partitions are
    /// lost rather than revoked.
    lost: bool,
    last_poll: Instant,
    closed: bool,
}

#[derive(Debug)]
struct Shared {
    membership: Mutex<Membership>,
    /// Wakes a waiting `poll` when a rebalance starts.
    wake: Notify,
    /// Ends the heartbeat task when the consumer closes or is dropped.
    stop: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Membership> {
        // A poisoned lock only means a panic elsewhere mid-update of plain fields; go on.
        self.membership
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Marks the membership as needing a rejoin and wakes `poll`; `reset` forgets the member
    /// id (the coordinator no longer knows it).
    fn need_rejoin(&self, generation: i32, reset: bool) {
        let mut m = self.lock();
        if m.generation != generation {
            return; // already rejoined since this answer was asked for
        }
        m.active = false;
        m.rejoin = true;
        if reset {
            m.member_id.clear();
            m.generation = -1;
            m.lost = true;
        }
        drop(m);
        self.wake.notify_one();
    }
}

/// Per assigned partition.
#[derive(Debug, Default)]
struct PartitionState {
    /// The next offset `poll` returns; `None` until looked up.
    position: Option<u64>,
    /// Fetched, not yet returned.
    buffered: VecDeque<ConsumerRecord>,
    /// Where the next fetch starts (past the buffered records).
    fetch_next: u64,
    paused: bool,
    /// The last offset committed from this consumer.
    committed: Option<u64>,
    /// The partition's high watermark at the last fetch answered.
    high_watermark: Option<u64>,
    /// Its share of `eddy_consumer_topic_lag_records`.
    lag: TopicLagShare,
}

/// A partition's lag as added to its topic's `eddy_consumer_topic_lag_records`, taken back
/// when the partition leaves the consumer (revoked, unassigned, or the consumer dropped).
#[derive(Default)]
struct TopicLagShare(Option<(metrics::Gauge, u64)>);

impl TopicLagShare {
    fn set(&mut self, group: &str, topic: &str, lag: u64) {
        let (gauge, last) = self.0.get_or_insert_with(|| {
            let g = metrics::gauge!(
                eddy_metrics::CONSUMER_TOPIC_LAG,
                "group" => group.to_owned(),
                "topic" => topic.to_owned()
            );
            (g, 0)
        });
        if lag >= *last {
            gauge.increment((lag - *last) as f64);
        } else {
            gauge.decrement((*last - lag) as f64);
        }
        *last = lag;
    }
}

impl Drop for TopicLagShare {
    fn drop(&mut self) {
        if let Some((gauge, last)) = self.0.take() {
            gauge.decrement(last as f64);
        }
    }
}

impl std::fmt::Debug for TopicLagShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TopicLagShare")
            .field(&self.0.as_ref().map(|(_, l)| *l))
            .finish()
    }
}

/// A group or standalone consumer over a [`Cluster`]. See the [module docs](self).
pub struct Consumer {
    cluster: Cluster,
    config: ConsumerConfig,
    shared: Arc<Shared>,
    subscription: Subscription,
    /// Topics in the last join, and, for the leader, the partition counts it assigned from.
    joined_topics: BTreeSet<String>,
    assigned_counts: Option<BTreeMap<String, u32>>,
    metadata_seen: u64,
    partitions: BTreeMap<TopicPartition, PartitionState>,
    /// Round-robin start for fairness across partitions.
    next_start: usize,
    listener: Option<Box<dyn RebalanceListener>>,
    next_auto_commit: Instant,
    heartbeat_started: bool,
    group_label: String,
    /// Fetches sent and not answered yet, kept from one poll to the next (as Kafka's
    /// consumer keeps its fetches in flight): a poll returns as soon as one partition brings
    /// records, and the others' reads, running on the brokers' reader threads, are not
    /// thrown away and sent again.
    inflight: FuturesUnordered<InFlightFetch>,
    /// The partitions in `inflight`: one fetch at a time each.
    fetching: BTreeSet<TopicPartition>,
    /// Counts `fetch` calls, to tell a call's own fetches from those kept from earlier ones.
    fetch_round: u64,
}

/// A fetch in flight: the `fetch` call that sent it, its partition, the offset it asked
/// for, and its answer.
type InFlightFetch = Pin<
    Box<
        dyn Future<
                Output = (
                    u64,
                    TopicPartition,
                    u64,
                    Result<eddy_broker::messages::FetchReply, BrokerError>,
                ),
            > + Send,
    >,
>;

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("group", &self.config.group_id)
            .field("subscription", &self.subscription)
            .field("assignment", &self.assignment())
            .finish_non_exhaustive()
    }
}

impl Consumer {
    /// A consumer on `cluster`; it reads nothing until it subscribes or is assigned
    /// partitions.
    pub fn new(cluster: &Cluster, config: ConsumerConfig) -> Result<Consumer, ClientError> {
        config.validate()?;
        let now = Instant::now();
        let group_label = config.group_id.clone().unwrap_or_default();
        Ok(Consumer {
            cluster: cluster.clone(),
            shared: Arc::new(Shared {
                membership: Mutex::new(Membership {
                    member_id: String::new(),
                    generation: -1,
                    active: false,
                    rejoin: false,
                    lost: false,
                    last_poll: now,
                    closed: false,
                }),
                wake: Notify::new(),
                stop: Notify::new(),
            }),
            next_auto_commit: now + config.auto_commit_interval,
            config,
            subscription: Subscription::None,
            joined_topics: BTreeSet::new(),
            assigned_counts: None,
            metadata_seen: 0,
            partitions: BTreeMap::new(),
            next_start: 0,
            listener: None,
            heartbeat_started: false,
            group_label,
            inflight: FuturesUnordered::new(),
            fetching: BTreeSet::new(),
            fetch_round: 0,
        })
    }

    /// Sets the listener called when partitions are revoked and assigned.
    pub fn set_rebalance_listener(&mut self, listener: impl RebalanceListener + 'static) {
        self.listener = Some(Box::new(listener));
    }

    fn group(&self) -> Result<&str, ClientError> {
        self.config.group_id.as_deref().ok_or_else(|| {
            ClientError::InvalidConfig("this needs a group.id in the consumer's settings".into())
        })
    }

    /// Subscribes to `topics` (replacing any earlier subscription); the group's partitions
    /// of them are shared among its members from the next `poll`.
    pub fn subscribe<I, S>(&mut self, topics: I) -> Result<(), ClientError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.group()?;
        let topics: BTreeSet<String> = topics.into_iter().map(Into::into).collect();
        if topics.is_empty() {
            return Err(ClientError::IllegalState(
                "subscribe to at least one topic (unsubscribe() stops reading)".into(),
            ));
        }
        self.set_subscription(Subscription::Topics(topics))
    }

    /// Subscribes to every topic whose whole name matches `pattern` (e.g. `user_.*`), now
    /// and created later; internal topics are never matched.
    pub fn subscribe_pattern(&mut self, pattern: &str) -> Result<(), ClientError> {
        self.group()?;
        let anchored = format!("^(?:{pattern})$");
        let regex = regex_lite::Regex::new(&anchored)
            .map_err(|e| ClientError::InvalidConfig(format!("pattern {pattern:?}: {e}")))?;
        self.set_subscription(Subscription::Pattern(regex))
    }

    fn set_subscription(&mut self, subscription: Subscription) -> Result<(), ClientError> {
        if matches!(self.subscription, Subscription::Manual) {
            return Err(ClientError::IllegalState(
                "subscribing and assigning partitions by hand are exclusive: unsubscribe first"
                    .into(),
            ));
        }
        self.subscription = subscription;
        self.shared.lock().rejoin = true;
        Ok(())
    }

    /// Reads exactly `partitions`, without group membership (commits still go to the group
    /// if there is a `group.id`). Replaces any subscription.
    pub fn assign<I>(&mut self, partitions: I) -> Result<(), ClientError>
    where
        I: IntoIterator<Item = TopicPartition>,
    {
        if matches!(
            self.subscription,
            Subscription::Topics(_) | Subscription::Pattern(_)
        ) {
            return Err(ClientError::IllegalState(
                "subscribing and assigning partitions by hand are exclusive: unsubscribe first"
                    .into(),
            ));
        }
        let wanted: BTreeSet<TopicPartition> = partitions.into_iter().collect();
        self.partitions.retain(|tp, _| wanted.contains(tp));
        for tp in wanted {
            self.partitions.entry(tp).or_default();
        }
        self.subscription = Subscription::Manual;
        Ok(())
    }

    /// Stops reading: leaves the group (after an auto-commit) and drops every partition.
    pub async fn unsubscribe(&mut self) -> Result<(), ClientError> {
        let result = self.leave_group().await;
        self.subscription = Subscription::None;
        self.partitions.clear();
        self.shared.lock().rejoin = false;
        result
    }

    /// The partitions this consumer reads now.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.partitions.keys().cloned().collect()
    }

    /// The member id and generation in the group (empty and -1 outside one).
    pub fn group_membership(&self) -> (String, i32) {
        let m = self.shared.lock();
        (m.member_id.clone(), m.generation)
    }

    /// The next offset `poll` returns for a partition, once known.
    pub fn position(&self, topic: &str, partition: u32) -> Option<u64> {
        self.partitions
            .get(&(topic.to_owned(), partition))
            .and_then(|p| p.position)
    }

    /// Records of an assigned partition not yet returned by `poll`: its high watermark at
    /// the last fetch minus the position. `None` until a fetch of it has been answered.
    pub fn lag(&self, topic: &str, partition: u32) -> Option<u64> {
        let st = self.partitions.get(&(topic.to_owned(), partition))?;
        Some(st.high_watermark?.saturating_sub(st.position?))
    }

    fn state_mut(
        &mut self,
        topic: &str,
        partition: u32,
    ) -> Result<&mut PartitionState, ClientError> {
        self.partitions
            .get_mut(&(topic.to_owned(), partition))
            .ok_or_else(|| ClientError::NotAssigned {
                topic: topic.to_owned(),
                partition,
            })
    }

    /// Moves a partition's position: the next `poll` reads from `offset`.
    pub fn seek(&mut self, topic: &str, partition: u32, offset: u64) -> Result<(), ClientError> {
        let st = self.state_mut(topic, partition)?;
        st.position = Some(offset);
        st.fetch_next = offset;
        st.buffered.clear();
        Ok(())
    }

    /// Seeks to the log start of each partition.
    pub async fn seek_to_beginning(
        &mut self,
        partitions: &[TopicPartition],
    ) -> Result<(), ClientError> {
        for (t, p) in partitions {
            let offsets = self.cluster.list_offsets(t, *p, None).await?;
            self.seek(t, *p, offsets.log_start)?;
        }
        Ok(())
    }

    /// Seeks to the high watermark of each partition.
    pub async fn seek_to_end(&mut self, partitions: &[TopicPartition]) -> Result<(), ClientError> {
        for (t, p) in partitions {
            let offsets = self.cluster.list_offsets(t, *p, None).await?;
            self.seek(t, *p, offsets.high_watermark)?;
        }
        Ok(())
    }

    /// Stops returning records of these partitions until resumed (they stay assigned).
    pub fn pause(&mut self, partitions: &[TopicPartition]) -> Result<(), ClientError> {
        for (t, p) in partitions {
            let st = self.state_mut(t, *p)?;
            st.paused = true;
            // Buffered records are fetched again after resume, from the position.
            st.buffered.clear();
            if let Some(pos) = st.position {
                st.fetch_next = pos;
            }
        }
        Ok(())
    }

    /// Resumes paused partitions.
    pub fn resume(&mut self, partitions: &[TopicPartition]) -> Result<(), ClientError> {
        for (t, p) in partitions {
            self.state_mut(t, *p)?.paused = false;
        }
        Ok(())
    }

    /// The paused partitions.
    pub fn paused(&self) -> Vec<TopicPartition> {
        self.partitions
            .iter()
            .filter(|(_, s)| s.paused)
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// The group's committed offsets for these partitions.
    pub async fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<Vec<Option<u64>>, ClientError> {
        let group = self.group()?;
        let op = GroupOp::FetchOffsets {
            partitions: Some(partitions.to_vec()),
        };
        let GroupReply::Offsets(list) = self.cluster.group(group, op).await? else {
            return Err(unexpected("offset fetch"));
        };
        let found: BTreeMap<TopicPartition, u64> = list
            .into_iter()
            .filter_map(|(t, p, o)| Some(((t, p), u64::try_from(o?.offset).ok()?)))
            .collect();
        Ok(partitions.iter().map(|tp| found.get(tp).copied()).collect())
    }

    /// Fetches records: rejoins the group first if needed, then returns buffered records or
    /// waits up to `timeout` for some. Every `auto_commit_interval` it first commits the
    /// positions of what earlier polls returned.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>, ClientError> {
        let deadline = Instant::now() + timeout;
        self.shared.lock().last_poll = Instant::now();
        self.maybe_auto_commit().await?;
        let mut fetched = false;
        loop {
            self.check_metadata();
            if self.needs_join() {
                self.join_group().await?;
            }
            self.resolve_positions().await?;
            let out = self.drain_buffers();
            if !out.is_empty() {
                return Ok(out);
            }
            let now = Instant::now();
            if fetched && now >= deadline && !self.needs_join() {
                return Ok(Vec::new());
            }
            let wait = deadline
                .saturating_duration_since(now)
                .min(self.config.fetch_max_wait);
            self.fetch(wait).await?;
            fetched = true;
        }
    }

    fn needs_join(&self) -> bool {
        matches!(
            self.subscription,
            Subscription::Topics(_) | Subscription::Pattern(_)
        ) && self.shared.lock().rejoin
    }

    /// The topics the subscription means against the current metadata.
    fn subscribed_topics(&self) -> BTreeSet<String> {
        match &self.subscription {
            Subscription::Topics(t) => t.clone(),
            Subscription::Pattern(re) => self
                .cluster
                .metadata()
                .topics
                .keys()
                .map(|t| t.to_string())
                .filter(|t| t != OFFSETS_TOPIC && re.is_match(t))
                .collect(),
            Subscription::None | Subscription::Manual => BTreeSet::new(),
        }
    }

    /// A new pattern match, or (for the leader) a changed partition count, starts a
    /// rebalance.
    fn check_metadata(&mut self) {
        let metadata = self.cluster.metadata();
        if metadata.version == self.metadata_seen {
            return;
        }
        self.metadata_seen = metadata.version;
        let joined = {
            let m = self.shared.lock();
            m.active
        };
        if !joined {
            return;
        }
        let changed_topics = self.subscribed_topics() != self.joined_topics;
        let changed_counts = self
            .assigned_counts
            .as_ref()
            .is_some_and(|counts| *counts != self.partition_counts(counts.keys()));
        if changed_topics || changed_counts {
            debug!(group = %self.group_label, changed_topics, changed_counts, "metadata changed: rejoining");
            let mut m = self.shared.lock();
            m.rejoin = true;
            m.active = false;
        }
    }

    fn partition_counts<'a>(
        &self,
        topics: impl IntoIterator<Item = &'a String>,
    ) -> BTreeMap<String, u32> {
        let metadata = self.cluster.metadata();
        topics
            .into_iter()
            .filter_map(|t| {
                let meta = metadata.topic(t).ok()?;
                Some((t.clone(), meta.partitions.len() as u32))
            })
            .collect()
    }

    /// Revokes (or loses) the current partitions, then joins and syncs until the group hands
    /// this member an assignment.
    async fn join_group(&mut self) -> Result<(), ClientError> {
        let group = self.group()?.to_owned();
        let lost = std::mem::take(&mut self.shared.lock().lost);
        if !self.partitions.is_empty() {
            if self.config.enable_auto_commit && !lost {
                if let Err(e) = self.commit_positions().await {
                    warn!(%group, error = %e, "commit before rebalance failed");
                }
            }
            let revoked = self.assignment();
            self.partitions.clear();
            if let Some(l) = self.listener.as_mut() {
                if lost {
                    l.on_lost(&revoked);
                } else {
                    l.on_revoked(&revoked);
                }
            }
        }
        {
            let mut m = self.shared.lock();
            m.active = false;
        }
        self.ensure_heartbeat();
        let (generation, assignment, seen) = loop {
            // Changes after this version are checked again after the join.
            let seen = self.cluster.metadata().version;
            let topics = self.subscribed_topics();
            let subscription = consumer_protocol::Subscription {
                topics: topics.iter().cloned().collect(),
                generation: -1,
                ..Default::default()
            }
            .encode()
            .map_err(ClientError::Broker)?;
            let request = JoinRequest {
                member_id: self.shared.lock().member_id.clone(),
                client_id: self.config.client_id.clone(),
                client_host: "embedded".into(),
                session_timeout: self.config.session_timeout,
                rebalance_timeout: self.config.max_poll_interval,
                protocol_type: CONSUMER_PROTOCOL_TYPE.into(),
                protocols: self
                    .config
                    .assignment_strategy
                    .iter()
                    .map(|s| (s.assignor().name().to_owned(), subscription.clone()))
                    .collect(),
                require_known_member_id: true,
            };
            let joined = match self.cluster.group(&group, GroupOp::Join(request)).await {
                Ok(GroupReply::Joined(j)) => j,
                Ok(_) => return Err(unexpected("join")),
                Err(BrokerError::MemberIdRequired { member, .. }) => {
                    self.shared.lock().member_id = member;
                    continue;
                }
                Err(BrokerError::UnknownMember { .. }) => {
                    self.shared.lock().member_id.clear();
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            {
                let mut m = self.shared.lock();
                m.member_id = joined.member_id.clone();
                m.generation = joined.generation;
            }
            self.joined_topics = topics;
            let assignments = if joined.leader == joined.member_id {
                Some(self.assign_as_leader(&joined)?)
            } else {
                self.assigned_counts = None;
                None
            };
            let op = GroupOp::Sync {
                member: joined.member_id.clone(),
                generation: joined.generation,
                assignments,
            };
            match self.cluster.group(&group, op).await {
                Ok(GroupReply::Synced(s)) => {
                    let assignment = consumer_protocol::Assignment::decode(s.assignment)
                        .map_err(ClientError::Broker)?;
                    break (joined.generation, assignment, seen);
                }
                Ok(_) => return Err(unexpected("sync")),
                Err(
                    BrokerError::RebalanceInProgress(_) | BrokerError::IllegalGeneration { .. },
                ) => continue,
                Err(BrokerError::UnknownMember { .. }) => {
                    self.shared.lock().member_id.clear();
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
        };
        let assigned: Vec<TopicPartition> = assignment
            .partitions
            .into_iter()
            .flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p)))
            .collect();
        for tp in &assigned {
            self.partitions.entry(tp.clone()).or_default();
        }
        {
            let mut m = self.shared.lock();
            if m.generation == generation {
                m.active = true;
                m.rejoin = false;
            }
        }
        self.metadata_seen = seen;
        metrics::counter!(eddy_metrics::CONSUMER_REBALANCES, "group" => self.group_label.clone())
            .increment(1);
        debug!(%group, generation, partitions = assigned.len(), "joined");
        if let Some(l) = self.listener.as_mut() {
            l.on_assigned(&assigned);
        }
        Ok(())
    }

    /// The leader's part: every member's subscription through the chosen assignor.
    fn assign_as_leader(
        &mut self,
        joined: &JoinResult,
    ) -> Result<Vec<(String, Bytes)>, ClientError> {
        let strategy = AssignmentStrategy::by_name(&joined.protocol).ok_or_else(|| {
            ClientError::InvalidConfig(format!(
                "the group chose assignor {:?}, which this consumer does not have",
                joined.protocol
            ))
        })?;
        let mut members = Vec::with_capacity(joined.members.len());
        let mut all_topics = BTreeSet::new();
        for (id, metadata) in &joined.members {
            let sub = consumer_protocol::Subscription::decode(metadata.clone())
                .map_err(ClientError::Broker)?;
            all_topics.extend(sub.topics.iter().cloned());
            members.push(assignor::Subscription {
                member_id: id.clone(),
                topics: sub.topics,
            });
        }
        let counts = self.partition_counts(&all_topics);
        let plan = strategy.assignor().assign(&counts, &members);
        self.assigned_counts = Some(counts);
        plan.into_iter()
            .map(|(member, partitions)| {
                let mut by_topic: BTreeMap<String, Vec<u32>> = BTreeMap::new();
                for (t, p) in partitions {
                    by_topic.entry(t).or_default().push(p);
                }
                let bytes = consumer_protocol::Assignment {
                    partitions: by_topic.into_iter().collect(),
                    user_data: None,
                }
                .encode()
                .map_err(ClientError::Broker)?;
                Ok((member, bytes))
            })
            .collect()
    }

    /// Starts the heartbeat task once, on the cluster's arbiter.
    fn ensure_heartbeat(&mut self) {
        if self.heartbeat_started {
            return;
        }
        let Some(group) = self.config.group_id.clone() else {
            return;
        };
        self.heartbeat_started = true;
        let task = heartbeat_loop(
            self.cluster.clone(),
            group,
            self.shared.clone(),
            self.config.heartbeat_interval,
            self.config.max_poll_interval,
        );
        self.cluster.arbiter().spawn(task);
    }

    /// Gives every partition without a position one: the committed offset, else
    /// `auto_offset_reset`.
    async fn resolve_positions(&mut self) -> Result<(), ClientError> {
        let missing: Vec<TopicPartition> = self
            .partitions
            .iter()
            .filter(|(_, s)| s.position.is_none())
            .map(|(tp, _)| tp.clone())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let committed = if self.config.group_id.is_some() {
            self.committed(&missing).await?
        } else {
            vec![None; missing.len()]
        };
        for (tp, committed) in missing.into_iter().zip(committed) {
            let position = match committed {
                Some(offset) => offset,
                None => self.reset_offset(&tp.0, tp.1).await?,
            };
            if let Some(st) = self.partitions.get_mut(&tp) {
                st.position = Some(position);
                st.fetch_next = position;
                st.committed = committed;
            }
        }
        Ok(())
    }

    async fn reset_offset(&self, topic: &str, partition: u32) -> Result<u64, ClientError> {
        let offsets = match self.config.auto_offset_reset {
            OffsetReset::None => {
                return Err(ClientError::NoOffset {
                    topic: topic.to_owned(),
                    partition,
                })
            }
            _ => self.cluster.list_offsets(topic, partition, None).await?,
        };
        Ok(match self.config.auto_offset_reset {
            OffsetReset::Earliest => offsets.log_start,
            _ => offsets.high_watermark,
        })
    }

    /// Takes up to `max_poll_records` buffered records, starting at a rotating partition.
    fn drain_buffers(&mut self) -> Vec<ConsumerRecord> {
        let mut out = Vec::new();
        let n = self.partitions.len();
        if n == 0 {
            return out;
        }
        let start = self.next_start % n;
        self.next_start = self.next_start.wrapping_add(1);
        let keys: Vec<TopicPartition> = self.partitions.keys().cloned().collect();
        for i in 0..n {
            let tp = &keys[(start + i) % n];
            let Some(st) = self.partitions.get_mut(tp) else {
                continue;
            };
            if st.paused {
                continue;
            }
            while out.len() < self.config.max_poll_records {
                let Some(r) = st.buffered.pop_front() else {
                    break;
                };
                st.position = Some(r.offset + 1);
                out.push(r);
            }
            if st.buffered.is_empty() && st.position.is_some() {
                st.position = Some(st.fetch_next);
            }
            if out.len() >= self.config.max_poll_records {
                break;
            }
        }
        out
    }

    /// Long-polls every fetchable partition's leader at once (those without a fetch in
    /// flight already); returns when one brings records (taking what the others have ready
    /// too, and keeping the rest in flight), at `wait`, or when a rebalance starts.
    async fn fetch(&mut self, wait: Duration) -> Result<(), ClientError> {
        let targets: Vec<(TopicPartition, u64)> = self
            .partitions
            .iter()
            .filter(|(tp, s)| {
                !s.paused
                    && s.buffered.is_empty()
                    && s.position.is_some()
                    && !self.fetching.contains(*tp)
            })
            .map(|(tp, s)| (tp.clone(), s.fetch_next))
            .collect();
        if targets.is_empty() && self.inflight.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.shared.wake.notified() => {}
            }
            return Ok(());
        }
        self.fetch_round = self.fetch_round.wrapping_add(1);
        let round = self.fetch_round;
        // This call's own fetches: it waits for them (each long-polls up to `wait`), and
        // for the ones kept from earlier calls only until `wait` is over.
        let mut mine = targets.len();
        let max_bytes = self.config.max_partition_fetch_bytes;
        for (tp, offset) in targets {
            let cluster = self.cluster.clone();
            self.fetching.insert(tp.clone());
            self.inflight.push(Box::pin(async move {
                let r = cluster
                    .fetch_wait(&tp.0, tp.1, offset, max_bytes, wait)
                    .await;
                (round, tp, offset, r)
            }));
        }
        let shared = self.shared.clone();
        let woken = shared.wake.notified();
        tokio::pin!(woken);
        let until = Instant::now() + wait;
        loop {
            let (r, tp, offset, result) = tokio::select! {
                biased;
                Some(next) = self.inflight.next() => next,
                _ = &mut woken => break,
                // Every fetch of this call answered without records (errors, resets, or
                // none sent): wait out the rest rather than spin.
                _ = tokio::time::sleep_until(until), if mine == 0 => break,
            };
            self.fetching.remove(&tp);
            if r == round {
                mine -= 1;
            }
            if self.take_fetched(tp, offset, result).await? {
                // Take whatever else is already answered, without waiting; the rest stay
                // in flight for the next call.
                while let Some(Some((_, tp, offset, result))) =
                    futures_util::FutureExt::now_or_never(self.inflight.next())
                {
                    self.fetching.remove(&tp);
                    self.take_fetched(tp, offset, result).await?;
                }
                break;
            }
        }
        Ok(())
    }

    /// Buffers one fetch's records; answers whether there were any.
    async fn take_fetched(
        &mut self,
        tp: TopicPartition,
        offset: u64,
        result: Result<eddy_broker::messages::FetchReply, BrokerError>,
    ) -> Result<bool, ClientError> {
        let Some(st) = self.partitions.get_mut(&tp) else {
            return Ok(false); // revoked meanwhile
        };
        if st.fetch_next != offset || st.paused {
            return Ok(false); // sought or paused meanwhile
        }
        match result {
            Ok(reply) => {
                let records = decode_records(reply.records.clone(), offset)?;
                let next = match records.last() {
                    Some(r) => r.offset + 1,
                    None if !reply.records.is_empty() => reply.next_offset.max(offset),
                    None => offset,
                };
                st.fetch_next = next;
                let any = !records.is_empty();
                st.buffered
                    .extend(records.into_iter().map(|r| ConsumerRecord {
                        topic: tp.0.clone(),
                        partition: tp.1,
                        offset: r.offset,
                        timestamp: r.timestamp,
                        key: r.key,
                        value: r.value,
                        headers: r.headers,
                    }));
                if !any && st.position == Some(offset) {
                    st.position = Some(next); // only control records or a compacted gap
                }
                st.high_watermark = Some(reply.high_watermark);
                let lag = reply.high_watermark.saturating_sub(next);
                st.lag.set(&self.group_label, &tp.0, lag);
                if eddy_metrics::partition_series() {
                    metrics::gauge!(
                        eddy_metrics::CONSUMER_LAG,
                        "group" => self.group_label.clone(),
                        "topic" => tp.0.clone(),
                        "partition" => tp.1.to_string()
                    )
                    .set(lag as f64);
                }
                Ok(any)
            }
            Err(e) if e.is_offset_out_of_range() => {
                let position = self.reset_offset(&tp.0, tp.1).await?;
                warn!(topic = %tp.0, partition = tp.1, offset, position, "offset out of range: reset");
                if let Some(st) = self.partitions.get_mut(&tp) {
                    st.position = Some(position);
                    st.fetch_next = position;
                }
                Ok(false)
            }
            Err(e @ (BrokerError::UnknownTopic(_) | BrokerError::UnknownPartition { .. })) => {
                // Deleted under us; the next metadata check rebalances it away.
                debug!(topic = %tp.0, partition = tp.1, error = %e, "fetch from a missing partition");
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn maybe_auto_commit(&mut self) -> Result<(), ClientError> {
        if !self.config.enable_auto_commit || self.config.group_id.is_none() {
            return Ok(());
        }
        let now = Instant::now();
        if now < self.next_auto_commit {
            return Ok(());
        }
        self.next_auto_commit = now + self.config.auto_commit_interval;
        if let Err(e) = self.commit_positions().await {
            // As Kafka's auto-commit: log it, the next interval tries again.
            warn!(group = %self.group_label, error = %e, "auto-commit failed");
        }
        Ok(())
    }

    /// The positions that moved since they were last committed.
    fn uncommitted(&self) -> Vec<(TopicPartition, u64)> {
        self.partitions
            .iter()
            .filter_map(|(tp, s)| {
                let pos = s.position?;
                (s.committed != Some(pos)).then(|| (tp.clone(), pos))
            })
            .collect()
    }

    async fn commit_positions(&mut self) -> Result<(), ClientError> {
        let offsets = self.uncommitted();
        if offsets.is_empty() {
            return Ok(());
        }
        self.commit_offsets(&offsets).await
    }

    /// Commits the position of every assigned partition (what `poll` has returned so far),
    /// waiting for the coordinator's answer.
    pub async fn commit_sync(&mut self) -> Result<(), ClientError> {
        self.group()?;
        self.commit_positions().await
    }

    /// Commits these offsets (each the next offset to read) and waits. A group member's
    /// commit fails with [`ClientError::CommitFailed`] once the group has rebalanced away
    /// from its generation.
    pub async fn commit_offsets(
        &mut self,
        offsets: &[(TopicPartition, u64)],
    ) -> Result<(), ClientError> {
        let group = self.group()?.to_owned();
        let (member, generation) = self.commit_identity()?;
        let result = commit(&self.cluster, &group, &member, generation, offsets).await;
        match &result {
            Ok(()) => {
                for (tp, offset) in offsets {
                    if let Some(st) = self.partitions.get_mut(tp) {
                        st.committed = Some(*offset);
                    }
                }
            }
            Err(ClientError::CommitFailed(_)) => self.shared.need_rejoin(generation, false),
            Err(_) => {}
        }
        result
    }

    /// Commits the positions of every assigned partition without waiting: the returned
    /// handle gives the outcome.
    pub fn commit_async(&mut self) -> Result<CommitHandle, ClientError> {
        let group = self.group()?.to_owned();
        let offsets = self.uncommitted();
        let (member, generation) = self.commit_identity()?;
        let (tx, rx) = oneshot::channel();
        let cluster = self.cluster.clone();
        let shared = self.shared.clone();
        self.cluster.arbiter().spawn(async move {
            let result = if offsets.is_empty() {
                Ok(())
            } else {
                commit(&cluster, &group, &member, generation, &offsets).await
            };
            if matches!(result, Err(ClientError::CommitFailed(_))) {
                shared.need_rejoin(generation, false);
            }
            let _ = tx.send(result);
        });
        Ok(CommitHandle(rx))
    }

    /// A member commits with its id and generation; a manually assigned consumer as a
    /// standalone one (empty id, generation -1). A subscribed consumer that is not in a
    /// generation (removed from the group) cannot commit.
    fn commit_identity(&self) -> Result<(String, i32), ClientError> {
        if matches!(self.subscription, Subscription::Manual | Subscription::None) {
            return Ok((String::new(), -1));
        }
        let m = self.shared.lock();
        if m.member_id.is_empty() || m.generation < 0 {
            return Err(ClientError::CommitFailed(BrokerError::UnknownMember {
                group: self.group_label.clone(),
                member: m.member_id.clone(),
            }));
        }
        Ok((m.member_id.clone(), m.generation))
    }

    async fn leave_group(&mut self) -> Result<(), ClientError> {
        let Some(group) = self.config.group_id.clone() else {
            return Ok(());
        };
        let mut result = Ok(());
        if self.config.enable_auto_commit {
            result = self.commit_positions().await;
        }
        let member = {
            let mut m = self.shared.lock();
            m.active = false;
            m.rejoin = true;
            m.generation = -1;
            std::mem::take(&mut m.member_id)
        };
        if !member.is_empty() && !matches!(self.subscription, Subscription::Manual) {
            let revoked = self.assignment();
            if let Some(l) = self.listener.as_mut() {
                l.on_revoked(&revoked);
            }
            self.partitions.clear();
            let leave = GroupOp::Leave {
                members: vec![member],
            };
            match self.cluster.group(&group, leave).await {
                Ok(_) | Err(BrokerError::UnknownMember { .. }) => {}
                Err(e) => result = result.and(Err(e.into())),
            }
        }
        result
    }

    /// Commits (with auto-commit) and leaves the group, so its partitions move to the other
    /// members at once instead of after the session timeout. Dropping a consumer without
    /// closing it is a crash: its session expires.
    pub async fn close(mut self) -> Result<(), ClientError> {
        self.leave_group().await
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.stop.notify_one();
    }
}

fn unexpected(what: &str) -> ClientError {
    ClientError::Broker(BrokerError::Stopped(format!(
        "unexpected answer from the group coordinator to {what}"
    )))
}

async fn commit(
    cluster: &Cluster,
    group: &str,
    member: &str,
    generation: i32,
    offsets: &[(TopicPartition, u64)],
) -> Result<(), ClientError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let offsets = offsets
        .iter()
        .map(|((t, p), o)| {
            let committed = CommittedOffset {
                offset: i64::try_from(*o).unwrap_or(i64::MAX),
                leader_epoch: None,
                metadata: String::new(),
                commit_timestamp: now,
            };
            (t.clone(), *p, committed)
        })
        .collect();
    let op = GroupOp::Commit {
        member: member.to_owned(),
        generation,
        offsets,
    };
    match cluster.group(group, op).await {
        Ok(_) => {
            metrics::counter!(eddy_metrics::CONSUMER_COMMITS, "group" => group.to_owned())
                .increment(1);
            Ok(())
        }
        Err(
            e @ (BrokerError::RebalanceInProgress(_)
            | BrokerError::IllegalGeneration { .. }
            | BrokerError::UnknownMember { .. }),
        ) => Err(ClientError::CommitFailed(e)),
        Err(e) => Err(e.into()),
    }
}

/// Beats every `interval` while the member is in a generation; flags a rejoin when the
/// coordinator answers that a rebalance started or the member is gone, and leaves the group
/// when `poll` was not called for `max_poll_interval`. Ends when the consumer is dropped.
async fn heartbeat_loop(
    cluster: Cluster,
    group: String,
    shared: Arc<Shared>,
    interval: Duration,
    max_poll_interval: Duration,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shared.stop.notified() => return,
        }
        let (member, generation, stalled) = {
            let m = shared.lock();
            if m.closed {
                return;
            }
            if !m.active {
                continue;
            }
            (
                m.member_id.clone(),
                m.generation,
                m.last_poll.elapsed() > max_poll_interval,
            )
        };
        if stalled {
            warn!(%group, %member, "poll not called within max.poll.interval: leaving the group");
            shared.need_rejoin(generation, true);
            let leave = GroupOp::Leave {
                members: vec![member],
            };
            if let Err(e) = cluster.group(&group, leave).await {
                debug!(%group, error = %e, "leave after poll timeout");
            }
            continue;
        }
        match cluster
            .group(&group, GroupOp::Heartbeat { member, generation })
            .await
        {
            Ok(_) => {}
            Err(BrokerError::RebalanceInProgress(_) | BrokerError::IllegalGeneration { .. }) => {
                shared.need_rejoin(generation, false);
            }
            Err(BrokerError::UnknownMember { .. }) => shared.need_rejoin(generation, true),
            Err(e) => debug!(%group, error = %e, "heartbeat failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_defaults_are_kafkas_and_bad_settings_are_refused() {
        let c = ConsumerConfig::default();
        assert_eq!(c.auto_offset_reset, OffsetReset::Latest);
        assert!(c.enable_auto_commit);
        assert_eq!(c.max_poll_records, 500);
        assert!(c.validate().is_ok());
        let bad = [
            ConsumerConfig {
                group_id: Some(String::new()),
                ..ConsumerConfig::default()
            },
            ConsumerConfig {
                heartbeat_interval: Duration::from_secs(45),
                ..ConsumerConfig::default()
            },
            ConsumerConfig {
                max_poll_records: 0,
                ..ConsumerConfig::default()
            },
            ConsumerConfig {
                assignment_strategy: vec![],
                ..ConsumerConfig::default()
            },
        ];
        for config in bad {
            assert!(
                matches!(config.validate(), Err(ClientError::InvalidConfig(_))),
                "{config:?}"
            );
        }
    }

    #[test]
    fn test_strategies_go_by_kafkas_names() {
        assert_eq!(
            AssignmentStrategy::by_name("range"),
            Some(AssignmentStrategy::Range)
        );
        assert_eq!(
            AssignmentStrategy::by_name("roundrobin"),
            Some(AssignmentStrategy::RoundRobin)
        );
        assert_eq!(AssignmentStrategy::by_name("cooperative-sticky"), None);
    }

    #[test]
    fn test_membership_ignores_a_rejoin_for_an_old_generation() {
        let shared = Shared {
            membership: Mutex::new(Membership {
                member_id: "m-1".into(),
                generation: 4,
                active: true,
                rejoin: false,
                lost: false,
                last_poll: Instant::now(),
                closed: false,
            }),
            wake: Notify::new(),
            stop: Notify::new(),
        };
        shared.need_rejoin(3, true);
        assert!(shared.lock().active && shared.lock().member_id == "m-1");
        shared.need_rejoin(4, false);
        let m = shared.lock();
        assert!(!m.active && m.rejoin && !m.lost && m.member_id == "m-1");
    }
}
