//! Owns the vocabulary every Eddy crate shares: identifiers and the error classification
//! that the edges (Kafka wire, HTTP) map to their own codes. Pure data, no I/O.
//!
//! # Layout
//! - [`PartitionId`]: the storage-level id of one partition replica inside a log directory.
//! - [`BrokerId`], [`TopicName`] (validated as Kafka does), [`Acks`].
//! - [`murmur2`] and [`partition_for_key`]: Kafka's key hashing, shared by the producer's
//!   partitioner and the context bubbles' partition hint.
//! - [`ErrorKind`] and [`ClassifyError`]: how every crate's error enum says what kind of
//!   failure it is, so that `eddy-kafka` and `eddy-http` can each map kinds to codes in one place.
//!
//! ```
//! use eddy_types::{ErrorKind, PartitionId};
//! let p = PartitionId(7);
//! assert_eq!(p.to_string(), "p7");
//! assert!(ErrorKind::Unavailable.is_retriable());
//! ```
#![warn(missing_docs)]

use serde::{Deserialize, Serialize};
use std::fmt;

/// Identifies one partition replica inside a log directory.
///
/// The broker assigns these (one per topic partition, the same id on every broker that holds a
/// replica); the log keys every record batch by `(PartitionId, base offset)`, big-endian, so that
/// a partition is one contiguous key range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PartitionId(pub u32);

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

/// Identifies one broker of a cluster (0, 1, 2, ... in creation order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BrokerId(pub u32);

impl fmt::Display for BrokerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "broker-{}", self.0)
    }
}

/// The longest topic name Kafka accepts.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// A topic name that Kafka would accept: 1 to 249 characters of `[a-zA-Z0-9._-]`, and neither
/// `.` nor `..`.
///
/// ```
/// use eddy_types::TopicName;
/// assert!(TopicName::new("user_42").is_ok());
/// let err = TopicName::new("chat room").unwrap_err();
/// assert!(err.to_string().contains("' '"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TopicName(String);

/// Why a topic name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidTopicName {
    /// The refused name (cut to its first 300 characters).
    pub name: String,
    /// What rule it breaks.
    pub reason: String,
}

impl fmt::Display for InvalidTopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid topic name {:?}: {}", self.name, self.reason)
    }
}

impl std::error::Error for InvalidTopicName {}

impl TopicName {
    /// Checks `name` against Kafka's rules.
    pub fn new(name: impl Into<String>) -> Result<TopicName, InvalidTopicName> {
        let name = name.into();
        let refuse = |reason: String| InvalidTopicName {
            name: name.chars().take(300).collect(),
            reason,
        };
        if name.is_empty() {
            return Err(refuse("the name is empty".into()));
        }
        if name == "." || name == ".." {
            return Err(refuse("'.' and '..' are not allowed".into()));
        }
        let len = name.chars().count();
        if len > MAX_TOPIC_NAME_LEN {
            return Err(refuse(format!(
                "{len} characters, at most {MAX_TOPIC_NAME_LEN} are allowed"
            )));
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(refuse(format!(
                "{c:?} is not allowed; use only ASCII letters, digits, '.', '_' and '-'"
            )));
        }
        Ok(TopicName(name))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Tells whether the name starts with `__`, which Kafka reserves for internal topics.
    pub fn is_internal(&self) -> bool {
        self.0.starts_with("__")
    }
}

impl TryFrom<String> for TopicName {
    type Error = InvalidTopicName;
    fn try_from(s: String) -> Result<TopicName, InvalidTopicName> {
        TopicName::new(s)
    }
}

impl From<TopicName> for String {
    fn from(t: TopicName) -> String {
        t.0
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for TopicName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// How much replication a producer waits for before its record counts as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Acks {
    /// `acks=0`: answered as soon as the leader has the request; nothing is confirmed.
    None,
    /// `acks=1`: answered once the leader's log has it.
    Leader,
    /// `acks=all` (`-1`): answered once every in-sync replica has it (the high watermark passed
    /// it), and refused when fewer than `min.insync.replicas` replicas are in sync.
    All,
}

impl Acks {
    /// Reads Kafka's wire value: 0, 1 or -1.
    pub fn from_kafka(v: i16) -> Option<Acks> {
        match v {
            0 => Some(Acks::None),
            1 => Some(Acks::Leader),
            -1 => Some(Acks::All),
            _ => None,
        }
    }
}

/// What kind of failure an error is, independent of the crate that raised it.
///
/// The Kafka listener maps kinds to Kafka error codes and the HTTP API maps them to statuses,
/// each in a single function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The named thing (partition, topic, group) does not exist.
    NotFound,
    /// The named thing exists already.
    AlreadyExists,
    /// The request is malformed or breaks a rule (bad CRC, bad name); retrying will not help.
    Invalid,
    /// An offset outside the log's range was asked for.
    OutOfRange,
    /// The request went to a replica that is not the leader.
    NotLeader,
    /// Fewer replicas are in sync than the topic's `min.insync.replicas` (Kafka's
    /// NOT_ENOUGH_REPLICAS); retrying later may help.
    NotEnoughReplicas,
    /// The request did not complete in time.
    Timeout,
    /// The service cannot take the request now (shutting down, overloaded); retrying may help.
    Unavailable,
    /// The storage is full (disk or map size); nothing was written.
    StorageFull,
    /// The storage refused or failed a write (a read-only or failing disk); nothing was
    /// written. Reads may still be served.
    StorageFailed,
    /// Stored data failed a check.
    Corrupt,
    /// A bug or an unexpected storage failure.
    Internal,
}

impl ErrorKind {
    /// Tells whether a client may retry the same request unchanged.
    pub fn is_retriable(self) -> bool {
        matches!(
            self,
            ErrorKind::NotLeader
                | ErrorKind::NotEnoughReplicas
                | ErrorKind::Timeout
                | ErrorKind::Unavailable
        )
    }
}

/// Implemented by every crate's error enum.
pub trait ClassifyError {
    /// The kind of this failure.
    fn kind(&self) -> ErrorKind;
}

// ---- Kafka's key hashing: shared by the producer's partitioner and the context bubbles ----

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), as a signed 32-bit value.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner picks for `key` among `partitions`
/// (`toPositive(murmur2(key)) % partitions`). `partitions` must be at least 1.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    let positive = (murmur2(key) & 0x7fff_ffff) as u32;
    positive % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_topic_names_follow_kafka_rules() {
        for ok in ["a", "user_1", "chatroom-7.x", &"x".repeat(249)] {
            assert!(TopicName::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a b", "ü", "a/b", &"x".repeat(250)] {
            assert!(TopicName::new(bad).is_err(), "{bad}");
        }
        assert!(TopicName::new("__consumer_offsets").is_ok_and(|t| t.is_internal()));
    }

    #[test]
    fn test_acks_from_kafka() {
        assert_eq!(Acks::from_kafka(-1), Some(Acks::All));
        assert_eq!(Acks::from_kafka(2), None);
    }
}
