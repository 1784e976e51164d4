//! Owns Eddy's metric vocabulary: the name, unit, labels and meaning of every metric any Eddy
//! crate emits. Crates record with the `metrics` macros using these constants only, so the
//! Grafana dashboards and the Prometheus endpoint agree on one list. Also owns the recorder
//! `eddy serve` installs ([`install`]): Prometheus's, with a topic's series removed when the
//! topic is deleted ([`topic_deleted`]).
//!
//! Names follow `eddy_<subsystem>_<name>_<unit>[_total]`. Labels stay bounded: `topic`,
//! `partition`, `broker`, `group`, `strategy`; never a message, key or context id. Counters are
//! bumped once per batch or request, not once per record.
//!
//! Cardinality: a node may hold a million partitions. Series labelled with a `partition` are
//! kept only while the node holds at most [`partition_series_limit`] partitions (10,000 by
//! default); past it they are dropped and only their per-topic sums remain
//! ([`TOPIC_HIGH_WATERMARK`], [`GROUP_TOPIC_COMMITTED_OFFSET`], [`CONSUMER_TOPIC_LAG`]), and
//! histograms lose their `topic` label (one distribution for the node). See `series`.
//!
//! # Layout
//! - One `pub const` per metric, grouped by subsystem.
//! - [`ALL`]: every metric with its kind and description; [`describe`] registers the
//!   descriptions with the installed recorder (call it once at start-up).
//! - `recorder`: [`install`], [`Handle`] (renders `/metrics`), [`topic_deleted`] and
//!   [`topic_created`].
//! - `series`: the per-partition series switch ([`partition_series`],
//!   [`set_partition_series_limit`], [`set_cluster_partitions`]) and the [`Collector`]s
//!   read at scrape time.
//!
//! ```
//! assert!(eddy_metrics::ALL.iter().any(|m| m.name == eddy_metrics::PRODUCE_RECORDS));
//! assert!(eddy_metrics::ALL.iter().all(|m| m.name.starts_with("eddy_")));
//! ```
#![warn(missing_docs)]

use metrics::Unit;

mod recorder;
mod series;
pub use recorder::{
    buckets_for, install, topic_created, topic_deleted, Error, Handle, Recorder, FORGET_FOR,
};
pub use series::{
    partition_series, partition_series_limit, register_collector, series_epoch,
    set_cluster_partitions, set_partition_series_limit, Collector, Samples, PARTITION_SERIES_LIMIT,
};

/// Records appended by partition leaders. Labels: `topic`.
pub const PRODUCE_RECORDS: &str = "eddy_produce_records_total";
/// Batch bytes appended by partition leaders. Labels: `topic`.
pub const PRODUCE_BYTES: &str = "eddy_produce_bytes_total";
/// Produce requests refused, by reason. Labels: `topic`, `error`.
pub const PRODUCE_ERRORS: &str = "eddy_produce_errors_total";
/// Time from a produce request reaching its leader to its answer at the asked acks level.
/// Labels: `acks`.
pub const PRODUCE_LATENCY: &str = "eddy_produce_latency_seconds";
/// Consumer fetches answered by partition leaders, once per topic a fetch reads (however
/// many of its partitions). Labels: `topic`.
pub const FETCH_REQUESTS: &str = "eddy_fetch_requests_total";
/// Bytes returned to consumers. Labels: `topic`.
pub const FETCH_BYTES: &str = "eddy_fetch_bytes_total";
/// Records returned to consumers (counted from batch headers). Labels: `topic`.
pub const FETCH_RECORDS: &str = "eddy_fetch_records_total";
/// Time from a consumer fetch reaching its leader to its answer (long-poll waits included),
/// one sample per topic a fetch reads. Labels: `topic` (none past the partition-series limit,
/// see [`partition_series`]).
pub const FETCH_LATENCY: &str = "eddy_fetch_latency_seconds";
/// How far the follower replicas of one replication stream are behind their leader's log
/// end, in records (offsets): the most of the partitions in its last answer. Labels:
/// `broker` (the follower), `leader` (the leader broker).
pub const REPLICA_LAG: &str = "eddy_replica_lag_records";
/// Bytes copied by followers from their leaders. Labels: `broker` (the follower).
pub const REPLICATION_BYTES: &str = "eddy_replication_bytes_total";
/// Followers removed from an in-sync replica set.
pub const ISR_SHRINKS: &str = "eddy_isr_shrinks_total";
/// Followers added back to an in-sync replica set.
pub const ISR_EXPANDS: &str = "eddy_isr_expands_total";
/// Partition leaders elected by the controller (new topics excluded).
pub const LEADER_ELECTIONS: &str = "eddy_leader_elections_total";
/// Partitions whose in-sync set is smaller than their replica set.
pub const UNDER_REPLICATED_PARTITIONS: &str = "eddy_under_replicated_partitions";
/// Partitions with no leader.
pub const OFFLINE_PARTITIONS: &str = "eddy_offline_partitions";
/// Partitions with replica state in memory (leader state; a place in a fetch session). Labels:
/// `broker`, `role` (`leader` or `follower`).
pub const PARTITION_ACTORS: &str = "eddy_partition_actors";
/// Brokers of the cluster that are up.
pub const BROKERS_ALIVE: &str = "eddy_brokers_alive";
/// How late a 20 ms timer on the brokers' actor thread fired: how long one piece of work
/// (a read, a decode) held every actor of the cluster.
pub const ACTOR_THREAD_LAG: &str = "eddy_actor_thread_lag_seconds";
/// Duration of each LMDB write transaction of a broker's log (apply and commit, fsync
/// included in `sync` mode; up to 4,096 commits per reporting interval). Labels: `broker`.
pub const LOG_COMMIT_LATENCY: &str = "eddy_log_commit_seconds";
/// Bytes appended by each LMDB commit of a broker's log (the group commit's size).
/// Labels: `broker`.
pub const LOG_COMMIT_BYTES: &str = "eddy_log_commit_bytes";
/// Bytes of a broker's log file dropped from the OS page cache behind its page-cache window
/// (`eddy_log::LogConfig::page_cache_window`). Labels: `broker`.
pub const LOG_PAGE_CACHE_DROPPED: &str = "eddy_log_page_cache_dropped_bytes_total";
/// How full the embedded producer's batches are when sent: bytes / `batch.size` (above 1 for
/// a single record larger than `batch.size`). Labels: `topic` (none past the partition-series
/// limit).
pub const PRODUCER_BATCH_FILL: &str = "eddy_producer_batch_fill_ratio";
/// Bytes per batch the embedded producer sent. Labels: `topic` (none past the
/// partition-series limit).
pub const PRODUCER_BATCH_BYTES: &str = "eddy_producer_batch_bytes";

/// Batches the embedded producer sent again after a retriable failure. Labels: `topic`.
pub const PRODUCER_RETRIES: &str = "eddy_producer_retries_total";
/// A partition's high watermark, as its leader last set it (read at scrape time). Labels:
/// `topic`, `partition`. A per-partition series: off while the node holds more partitions
/// than [`partition_series_limit`]. With [`GROUP_COMMITTED_OFFSET`] it gives every group's
/// lag in PromQL, whatever the client.
pub const PARTITION_HIGH_WATERMARK: &str = "eddy_partition_high_watermark";
/// The sum of a topic's partitions' high watermarks: how many records the topic ever took,
/// less those truncated away. With [`GROUP_TOPIC_COMMITTED_OFFSET`] it gives a group's lag
/// per topic at any number of partitions. Labels: `topic`.
pub const TOPIC_HIGH_WATERMARK: &str = "eddy_topic_high_watermark";
/// Consumer groups that completed a rebalance into a new generation (at the coordinator).
/// Labels: `group`.
pub const GROUP_REBALANCES: &str = "eddy_group_rebalances_total";
/// Offset commit requests written to `__consumer_offsets` (at the coordinator). Labels: `group`.
pub const GROUP_OFFSET_COMMITS: &str = "eddy_group_offset_commits_total";
/// The offset a group last committed for a partition. Labels: `group`, `topic`, `partition`.
/// A per-partition series (see [`partition_series`]).
pub const GROUP_COMMITTED_OFFSET: &str = "eddy_group_committed_offset";
/// The sum of the offsets a group committed for a topic's partitions (at the coordinator).
/// [`TOPIC_HIGH_WATERMARK`] minus it is the group's lag on the topic, when the group has
/// committed every partition of it. Labels: `group`, `topic`.
pub const GROUP_TOPIC_COMMITTED_OFFSET: &str = "eddy_group_topic_committed_offset";
/// An embedded consumer's lag: the high watermark minus its fetch position, at its last
/// fetch. Labels: `group` (empty without one), `topic`, `partition`. A per-partition series
/// (see [`partition_series`]).
pub const CONSUMER_LAG: &str = "eddy_consumer_lag_records";
/// An embedded consumer's lag summed over the partitions of a topic it holds. Labels:
/// `group` (empty without one), `topic`.
pub const CONSUMER_TOPIC_LAG: &str = "eddy_consumer_topic_lag_records";
/// Rebalances an embedded consumer went through (each join into a generation).
/// Labels: `group`.
pub const CONSUMER_REBALANCES: &str = "eddy_consumer_rebalances_total";
/// Offset commits an embedded consumer made (by hand or automatic). Labels: `group`.
pub const CONSUMER_COMMITS: &str = "eddy_consumer_commits_total";
/// Connections accepted by the Kafka listeners.
pub const KAFKA_CONNECTIONS: &str = "eddy_kafka_connections_total";
/// Kafka requests served, by API. Labels: `api`.
pub const KAFKA_REQUESTS: &str = "eddy_kafka_requests_total";
/// Time from a Kafka request's dispatch to its answer being ready (long polls included).
/// Labels: `api`.
pub const KAFKA_REQUEST_LATENCY: &str = "eddy_kafka_request_seconds";
/// Kafka connections open now.
pub const KAFKA_OPEN_CONNECTIONS: &str = "eddy_kafka_open_connections";
/// Bytes of Kafka requests read and not yet answered, over every connection (bounded by
/// `queued.max.request.bytes`).
pub const KAFKA_REQUEST_MEMORY: &str = "eddy_kafka_request_memory_bytes";
/// Times a connection stopped reading because the request memory was full (backpressure).
pub const KAFKA_REQUEST_MEMORY_WAITS: &str = "eddy_kafka_request_memory_waits_total";
/// HTTP requests served. Labels: `route` (the route pattern, e.g. `/topics/{name}`, or
/// `unmatched`), `method`, `status`.
pub const HTTP_REQUESTS: &str = "eddy_http_requests_total";
/// Time to answer an HTTP request (for streams: until the stream starts). Labels: `route`.
pub const HTTP_REQUEST_LATENCY: &str = "eddy_http_request_seconds";

/// Chat messages the context consumer took from its topics, by outcome: `observed` (given to
/// the strategy), `duplicate` (a message id seen before), `invalid` (not a chat message).
/// Labels: `strategy`, `outcome`.
pub const CONTEXT_MESSAGES: &str = "eddy_context_messages_total";
/// Time to assemble one message's context (thread and background) with the strategy, in the
/// context consumer or for `GET /context/{id}`. Labels: `strategy`.
pub const CONTEXT_ASSEMBLY_LATENCY: &str = "eddy_context_assembly_seconds";
/// Messages the context consumer's strategy holds: the last `history` observed, up to twice
/// that before the oldest are forgotten. Labels: `strategy`.
pub const CONTEXT_HISTORY: &str = "eddy_context_history_messages";
/// Consumer responses by outcome: `sent` (produced and acknowledged), `failed` (the responder
/// failed after its retries, or its circuit is open), `dropped` (the responder's queue was
/// full), `produce_failed`. Labels: `responder`, `outcome`.
pub const CONTEXT_RESPONSES: &str = "eddy_context_responses_total";
/// Time one responder call took (a model's answer, retries included). Labels: `responder`.
pub const CONTEXT_RESPONDER_LATENCY: &str = "eddy_context_responder_seconds";
/// Messages waiting for the responder. Labels: `responder`.
pub const CONTEXT_RESPONDER_QUEUE: &str = "eddy_context_responder_queue";

/// Histogram buckets for `_seconds` metrics: 0.1 ms to 30 s.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];
/// Histogram buckets for `_bytes` metrics: 1 KiB to 16 MiB.
pub const BYTES_BUCKETS: &[f64] = &[
    1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
];
/// Histogram buckets for `_ratio` metrics.
pub const RATIO_BUCKETS: &[f64] = &[0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 2.0];

/// What kind of metric a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// A distribution (exported as a Prometheus summary or histogram).
    Histogram,
}

/// One entry of the vocabulary.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// The exported name.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
    /// Its unit.
    pub unit: Unit,
    /// What it measures (the Prometheus `# HELP` line).
    pub help: &'static str,
}

const fn m(name: &'static str, kind: Kind, unit: Unit, help: &'static str) -> Metric {
    Metric {
        name,
        kind,
        unit,
        help,
    }
}

/// Every metric Eddy emits.
pub const ALL: &[Metric] = &[
    m(
        PRODUCE_RECORDS,
        Kind::Counter,
        Unit::Count,
        "records appended by partition leaders",
    ),
    m(
        PRODUCE_BYTES,
        Kind::Counter,
        Unit::Bytes,
        "record batch bytes appended by partition leaders",
    ),
    m(
        PRODUCE_ERRORS,
        Kind::Counter,
        Unit::Count,
        "produce requests refused, by error",
    ),
    m(
        PRODUCE_LATENCY,
        Kind::Histogram,
        Unit::Seconds,
        "produce request time until answered at its acks level",
    ),
    m(
        FETCH_REQUESTS,
        Kind::Counter,
        Unit::Count,
        "consumer fetches answered by partition leaders, once per topic a fetch reads",
    ),
    m(
        FETCH_BYTES,
        Kind::Counter,
        Unit::Bytes,
        "bytes returned to consumers",
    ),
    m(
        FETCH_RECORDS,
        Kind::Counter,
        Unit::Count,
        "records returned to consumers",
    ),
    m(
        FETCH_LATENCY,
        Kind::Histogram,
        Unit::Seconds,
        "consumer fetch time at the leader, long-poll waits included",
    ),
    m(
        REPLICA_LAG,
        Kind::Gauge,
        Unit::Count,
        "offsets a follower replica is behind its leader's log end",
    ),
    m(
        LOG_COMMIT_BYTES,
        Kind::Histogram,
        Unit::Bytes,
        "bytes appended per LMDB commit of a broker's log",
    ),
    m(
        LOG_PAGE_CACHE_DROPPED,
        Kind::Counter,
        Unit::Bytes,
        "bytes of a broker's log file dropped from the page cache behind its window",
    ),
    m(
        PRODUCER_BATCH_FILL,
        Kind::Histogram,
        Unit::Count,
        "embedded producer batch bytes over batch.size when sent",
    ),
    m(
        HTTP_REQUESTS,
        Kind::Counter,
        Unit::Count,
        "HTTP requests served, by route, method and status",
    ),
    m(
        HTTP_REQUEST_LATENCY,
        Kind::Histogram,
        Unit::Seconds,
        "time to answer an HTTP request",
    ),
    m(
        CONTEXT_MESSAGES,
        Kind::Counter,
        Unit::Count,
        "chat messages the context consumer took, by outcome",
    ),
    m(
        CONTEXT_ASSEMBLY_LATENCY,
        Kind::Histogram,
        Unit::Seconds,
        "time to assemble one message's context with the strategy",
    ),
    m(
        CONTEXT_HISTORY,
        Kind::Gauge,
        Unit::Count,
        "messages the context consumer's strategy holds",
    ),
    m(
        CONTEXT_RESPONSES,
        Kind::Counter,
        Unit::Count,
        "consumer responses, by outcome",
    ),
    m(
        CONTEXT_RESPONDER_LATENCY,
        Kind::Histogram,
        Unit::Seconds,
        "time one responder call took, retries included",
    ),
    m(
        CONTEXT_RESPONDER_QUEUE,
        Kind::Gauge,
        Unit::Count,
        "messages waiting for the responder",
    ),
    m(
        REPLICATION_BYTES,
        Kind::Counter,
        Unit::Bytes,
        "bytes copied by followers from leaders",
    ),
    m(
        ISR_SHRINKS,
        Kind::Counter,
        Unit::Count,
        "followers removed from an in-sync replica set",
    ),
    m(
        ISR_EXPANDS,
        Kind::Counter,
        Unit::Count,
        "followers added back to an in-sync replica set",
    ),
    m(
        LEADER_ELECTIONS,
        Kind::Counter,
        Unit::Count,
        "partition leaders elected after a failure or return",
    ),
    m(
        UNDER_REPLICATED_PARTITIONS,
        Kind::Gauge,
        Unit::Count,
        "partitions with fewer in-sync replicas than replicas",
    ),
    m(
        OFFLINE_PARTITIONS,
        Kind::Gauge,
        Unit::Count,
        "partitions without a leader",
    ),
    m(
        PARTITION_ACTORS,
        Kind::Gauge,
        Unit::Count,
        "partitions with leader state, and partitions in fetch sessions, per broker",
    ),
    m(
        BROKERS_ALIVE,
        Kind::Gauge,
        Unit::Count,
        "brokers of the cluster that are up",
    ),
    m(
        ACTOR_THREAD_LAG,
        Kind::Histogram,
        Unit::Seconds,
        "how late a 20 ms timer on the brokers' actor thread fired",
    ),
    m(
        LOG_COMMIT_LATENCY,
        Kind::Histogram,
        Unit::Seconds,
        "LMDB write transaction time (apply and commit)",
    ),
    m(
        PRODUCER_BATCH_BYTES,
        Kind::Histogram,
        Unit::Bytes,
        "bytes per batch sent by the embedded producer",
    ),
    m(
        PRODUCER_RETRIES,
        Kind::Counter,
        Unit::Count,
        "batches the embedded producer sent again after a retriable failure",
    ),
    m(
        PARTITION_HIGH_WATERMARK,
        Kind::Gauge,
        Unit::Count,
        "a partition's high watermark, set by its leader",
    ),
    m(
        TOPIC_HIGH_WATERMARK,
        Kind::Gauge,
        Unit::Count,
        "the sum of a topic's partitions' high watermarks",
    ),
    m(
        GROUP_REBALANCES,
        Kind::Counter,
        Unit::Count,
        "rebalances a group completed into a new generation, at its coordinator",
    ),
    m(
        GROUP_OFFSET_COMMITS,
        Kind::Counter,
        Unit::Count,
        "offset commit requests a group's coordinator wrote",
    ),
    m(
        GROUP_COMMITTED_OFFSET,
        Kind::Gauge,
        Unit::Count,
        "the offset a group last committed for a partition",
    ),
    m(
        GROUP_TOPIC_COMMITTED_OFFSET,
        Kind::Gauge,
        Unit::Count,
        "the sum of the offsets a group committed for a topic's partitions",
    ),
    m(
        CONSUMER_TOPIC_LAG,
        Kind::Gauge,
        Unit::Count,
        "an embedded consumer's lag summed over a topic's partitions",
    ),
    m(
        CONSUMER_LAG,
        Kind::Gauge,
        Unit::Count,
        "an embedded consumer's lag behind the high watermark, per partition",
    ),
    m(
        CONSUMER_REBALANCES,
        Kind::Counter,
        Unit::Count,
        "rebalances an embedded consumer went through",
    ),
    m(
        CONSUMER_COMMITS,
        Kind::Counter,
        Unit::Count,
        "offset commits made by embedded consumers",
    ),
    m(
        KAFKA_CONNECTIONS,
        Kind::Counter,
        Unit::Count,
        "connections accepted by the Kafka listeners",
    ),
    m(
        KAFKA_REQUESTS,
        Kind::Counter,
        Unit::Count,
        "Kafka requests served, by API",
    ),
    m(
        KAFKA_REQUEST_LATENCY,
        Kind::Histogram,
        Unit::Seconds,
        "Kafka request time until its answer is ready, by API",
    ),
    m(
        KAFKA_OPEN_CONNECTIONS,
        Kind::Gauge,
        Unit::Count,
        "Kafka connections open now",
    ),
    m(
        KAFKA_REQUEST_MEMORY,
        Kind::Gauge,
        Unit::Bytes,
        "bytes of Kafka requests read and not yet answered",
    ),
    m(
        KAFKA_REQUEST_MEMORY_WAITS,
        Kind::Counter,
        Unit::Count,
        "times a Kafka connection waited for request memory (backpressure)",
    ),
];

/// Registers the unit and description of every metric with the installed recorder.
pub fn describe() {
    for metric in ALL {
        match metric.kind {
            Kind::Counter => metrics::describe_counter!(metric.name, metric.unit, metric.help),
            Kind::Gauge => metrics::describe_gauge!(metric.name, metric.unit, metric.help),
            Kind::Histogram => {
                metrics::describe_histogram!(metric.name, metric.unit, metric.help)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn test_names_are_unique_and_follow_the_convention() {
        let mut seen = HashSet::new();
        for metric in ALL {
            assert!(seen.insert(metric.name), "{} twice", metric.name);
            assert!(metric.name.starts_with("eddy_"), "{}", metric.name);
            let is_total = metric.name.ends_with("_total");
            assert_eq!(is_total, metric.kind == Kind::Counter, "{}", metric.name);
        }
    }
}
