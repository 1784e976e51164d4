//! Owns Eddy's metric vocabulary: the name, unit, labels and meaning of every metric any Eddy
//! crate emits. Crates record with the `metrics` macros using these constants only, so the
//! Grafana dashboards and the Prometheus endpoint agree on one list.
//!
//! Names follow `eddy_<subsystem>_<name>_<unit>[_total]`. Labels stay bounded: `topic`,
//! `partition`, `broker`, `group`, `strategy`; never a message, key or context id. Counters are
//! bumped once per batch or request, not once per record.
//!
//! # Layout
//! - One `pub const` per metric, grouped by subsystem.
//! - [`ALL`]: every metric with its kind and description; [`describe`] registers the
//!   descriptions with the installed recorder (call it once at start-up).
//!
//! ```
//! assert!(eddy_metrics::ALL.iter().any(|m| m.name == eddy_metrics::PRODUCE_RECORDS));
//! assert!(eddy_metrics::ALL.iter().all(|m| m.name.starts_with("eddy_")));
//! ```
#![warn(missing_docs)]

use metrics::Unit;

/// Records appended by partition leaders. Labels: `topic`.
pub const PRODUCE_RECORDS: &str = "eddy_produce_records_total";
/// Batch bytes appended by partition leaders. Labels: `topic`.
pub const PRODUCE_BYTES: &str = "eddy_produce_bytes_total";
/// Produce requests refused, by reason. Labels: `topic`, `error`.
pub const PRODUCE_ERRORS: &str = "eddy_produce_errors_total";
/// Time from a produce request reaching its leader to its answer at the asked acks level.
/// Labels: `acks`.
pub const PRODUCE_LATENCY: &str = "eddy_produce_latency_seconds";
/// Consumer fetches answered by partition leaders. Labels: `topic`.
pub const FETCH_REQUESTS: &str = "eddy_fetch_requests_total";
/// Bytes returned to consumers. Labels: `topic`.
pub const FETCH_BYTES: &str = "eddy_fetch_bytes_total";
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
/// Partition actors running. Labels: `broker`, `role` (`leader` or `follower`).
pub const PARTITION_ACTORS: &str = "eddy_partition_actors";
/// Brokers of the cluster that are up.
pub const BROKERS_ALIVE: &str = "eddy_brokers_alive";
/// Duration of one LMDB write transaction of a broker's log (apply and commit).
/// Labels: `broker`.
pub const LOG_COMMIT_LATENCY: &str = "eddy_log_commit_seconds";
/// Bytes per batch the embedded producer sent. Labels: `topic`.
pub const PRODUCER_BATCH_BYTES: &str = "eddy_producer_batch_bytes";

/// Batches the embedded producer sent again after a retriable failure. Labels: `topic`.
pub const PRODUCER_RETRIES: &str = "eddy_producer_retries_total";

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
        "consumer fetches answered by partition leaders",
    ),
    m(
        FETCH_BYTES,
        Kind::Counter,
        Unit::Bytes,
        "bytes returned to consumers",
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
        "partition leader and follower actors running",
    ),
    m(
        BROKERS_ALIVE,
        Kind::Gauge,
        Unit::Count,
        "brokers of the cluster that are up",
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
