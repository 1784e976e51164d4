//! Settings of a cluster and of its topics, with Kafka's names in the docs.

use std::path::PathBuf;
use std::time::Duration;

use eddy_log::LogConfig;
use serde::{Deserialize, Serialize};

use crate::error::BrokerError;
use crate::group::GroupConfig;

/// Settings of a cluster: its brokers, topic defaults, and replication timings.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The cluster's name; its data lives in `<data_dir>/<name>/`.
    pub name: String,
    /// Parent directory of every cluster's data.
    pub data_dir: PathBuf,
    /// Number of brokers, all created together (default 3). Each has its own log directory,
    /// `<data_dir>/<name>/broker-<id>/`.
    pub brokers: u32,
    /// Topic settings used when a request leaves them out.
    pub topic_defaults: TopicDefaults,
    /// Create a topic on first produce or fetch (Kafka's `auto.create.topics.enable`).
    pub auto_create_topics: bool,
    /// A follower that has not caught up with its leader's log end for this long leaves the
    /// in-sync set (`replica.lag.time.max.ms`, Kafka's default 30 s).
    pub replica_lag_time_max: Duration,
    /// How long a leader holds a follower's fetch when there is nothing new
    /// (`replica.fetch.wait.max.ms`, default 500 ms).
    pub replica_fetch_wait_max: Duration,
    /// Most bytes a follower copies per fetch (`replica.fetch.max.bytes`, default 1 MiB).
    pub replica_fetch_max_bytes: usize,
    /// A partition with nothing to do for this long has its replica state dropped (its
    /// leader state, its place in a fetch session); it is built again on the next request.
    pub partition_idle_timeout: Duration,
    /// How often a broker tells the controller it is alive.
    pub broker_heartbeat_interval: Duration,
    /// A broker silent for this long is fenced and its partitions get new leaders
    /// (`broker.session.timeout.ms`, Kafka's default 9 s).
    pub broker_session_timeout: Duration,
    /// How often leaders persist their high watermark (Kafka checkpoints every 5 s).
    pub high_watermark_checkpoint_interval: Duration,
    /// How often each broker applies retention (`log.retention.check.interval.ms`; 30 s here,
    /// where Kafka checks every 5 min). Kafka drops whole segment files; here every expired
    /// batch frees its LMDB pages, which go on the environment's free list and are reused by
    /// later appends. The longer the interval, the more pages one pass frees at once: the data
    /// file grows by the writes of one interval beyond the data kept, and LMDB's writer holds
    /// the free list (and the pages of every commit that rewrites it) in memory. With 5 min,
    /// the 30-minute soak (4 MB/s written per broker) kept 1.6 GB files for 0.23 GB in use;
    /// with 30 s, 0.37 GB files.
    pub retention_check_interval: Duration,
    /// Storage settings of every broker's log directory.
    pub log: LogConfig,
    /// Consumer-group timings (`group.initial.rebalance.delay.ms`, session bounds).
    pub group: GroupConfig,
    /// Partitions of `__consumer_offsets`, fixed when it is created on first group use
    /// (`offsets.topic.num.partitions`, Kafka's default 50).
    pub offsets_partitions: u32,
    /// Replicas of each `__consumer_offsets` partition, capped at the number of brokers
    /// (`offsets.topic.replication.factor`, default 3).
    pub offsets_replication_factor: u32,
    /// A `__consumer_offsets` partition is compacted (its live keys rewritten and the older
    /// records deleted) once it holds this many more records than live keys.
    pub offsets_compact_after: u64,
    /// Partition replicas the node may hold, summed over its brokers (default 1,000,000):
    /// a topic of 10 partitions at replication factor 3 takes 30. Creating topics or
    /// partitions past it fails with a policy violation and leaves what exists untouched.
    pub max_partitions: u64,
}

impl ClusterConfig {
    /// A cluster named `name` in `data_dir` with Kafka's defaults and 3 brokers.
    pub fn new(name: impl Into<String>, data_dir: impl Into<PathBuf>) -> ClusterConfig {
        ClusterConfig {
            name: name.into(),
            data_dir: data_dir.into(),
            brokers: 3,
            topic_defaults: TopicDefaults::default(),
            auto_create_topics: false,
            replica_lag_time_max: Duration::from_secs(30),
            replica_fetch_wait_max: Duration::from_millis(500),
            replica_fetch_max_bytes: 1 << 20,
            partition_idle_timeout: Duration::from_secs(60),
            broker_heartbeat_interval: Duration::from_secs(1),
            broker_session_timeout: Duration::from_secs(9),
            high_watermark_checkpoint_interval: Duration::from_secs(5),
            retention_check_interval: Duration::from_secs(30),
            log: LogConfig::default(),
            group: GroupConfig::default(),
            offsets_partitions: 50,
            offsets_replication_factor: 3,
            offsets_compact_after: 10_000,
            max_partitions: 1_000_000,
        }
    }

    /// The cluster's own directory, `<data_dir>/<name>`.
    pub fn cluster_dir(&self) -> PathBuf {
        self.data_dir.join(&self.name)
    }

    pub(crate) fn validate(&self) -> Result<(), BrokerError> {
        let bad = |s: String| Err(BrokerError::InvalidClusterConfig(s));
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            || self.name.starts_with('.')
        {
            return bad(format!(
                "cluster name {:?} must be non-empty [a-zA-Z0-9._-] not starting with '.'",
                self.name
            ));
        }
        if self.brokers == 0 || self.brokers > 64 {
            return bad(format!("{} brokers; 1 to 64 are supported", self.brokers));
        }
        if self.topic_defaults.partitions == 0 {
            return bad("default partitions must be at least 1".into());
        }
        if self.offsets_partitions == 0 || self.offsets_replication_factor == 0 {
            return bad("__consumer_offsets needs at least 1 partition and 1 replica".into());
        }
        if self.group.min_session_timeout > self.group.max_session_timeout {
            return bad("the group min session timeout exceeds the max".into());
        }
        if self.broker_session_timeout <= self.broker_heartbeat_interval {
            return bad("broker session timeout must exceed the heartbeat interval".into());
        }
        Ok(())
    }
}

/// Topic settings used when a create request leaves them out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDefaults {
    /// `num.partitions` (default 1).
    pub partitions: u32,
    /// `default.replication.factor`; capped at the number of brokers (default 3).
    pub replication_factor: u32,
    /// `min.insync.replicas` (default 1).
    pub min_insync_replicas: u32,
    /// `retention.ms` (default 7 days; `None` keeps forever).
    pub retention_ms: Option<i64>,
    /// `retention.bytes` per partition (default unlimited).
    pub retention_bytes: Option<u64>,
}

impl Default for TopicDefaults {
    fn default() -> TopicDefaults {
        TopicDefaults {
            partitions: 1,
            replication_factor: 3,
            min_insync_replicas: 1,
            retention_ms: Some(7 * 24 * 3600 * 1000),
            retention_bytes: None,
        }
    }
}

/// The settings of one topic, as stored in the cluster metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfig {
    /// `min.insync.replicas`: `acks=all` is refused when fewer replicas are in sync.
    pub min_insync_replicas: u32,
    /// `retention.ms`: batches older than this are removed. `None`: keep forever.
    pub retention_ms: Option<i64>,
    /// `retention.bytes`: per partition. `None`: no limit.
    pub retention_bytes: Option<u64>,
}

/// A request to create a topic; unset fields take the cluster's [`TopicDefaults`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewTopic {
    /// The topic's name (checked against Kafka's rules).
    pub name: String,
    /// Number of partitions.
    pub partitions: Option<u32>,
    /// Replicas per partition, at most the number of brokers.
    pub replication_factor: Option<u32>,
    /// `min.insync.replicas`, at most the replication factor.
    pub min_insync_replicas: Option<u32>,
    /// `retention.ms`; `Some(None)` keeps forever.
    pub retention_ms: Option<Option<i64>>,
    /// `retention.bytes`; `Some(None)` means no limit.
    pub retention_bytes: Option<Option<u64>>,
}

impl NewTopic {
    /// A topic named `name` with every setting left to the defaults.
    pub fn new(name: impl Into<String>) -> NewTopic {
        NewTopic {
            name: name.into(),
            ..NewTopic::default()
        }
    }

    /// Sets the number of partitions.
    pub fn partitions(mut self, n: u32) -> NewTopic {
        self.partitions = Some(n);
        self
    }

    /// Sets the replication factor.
    pub fn replication_factor(mut self, n: u32) -> NewTopic {
        self.replication_factor = Some(n);
        self
    }

    /// Sets `min.insync.replicas`.
    pub fn min_insync_replicas(mut self, n: u32) -> NewTopic {
        self.min_insync_replicas = Some(n);
        self
    }

    /// Sets `retention.ms` (`None`: keep forever).
    pub fn retention_ms(mut self, ms: Option<i64>) -> NewTopic {
        self.retention_ms = Some(ms);
        self
    }

    /// Sets `retention.bytes` (`None`: no limit).
    pub fn retention_bytes(mut self, bytes: Option<u64>) -> NewTopic {
        self.retention_bytes = Some(bytes);
        self
    }
}
