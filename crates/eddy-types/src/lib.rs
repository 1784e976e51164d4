//! Owns the vocabulary every Eddy crate shares: identifiers and the error classification
//! that the edges (Kafka wire, HTTP) map to their own codes. Pure data, no I/O.
//!
//! # Layout
//! - [`PartitionId`]: the storage-level id of one partition replica inside a log directory.
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
    /// The request did not complete in time.
    Timeout,
    /// The service cannot take the request now (shutting down, overloaded); retrying may help.
    Unavailable,
    /// The storage is full (disk or map size); nothing was written.
    StorageFull,
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
            ErrorKind::NotLeader | ErrorKind::Timeout | ErrorKind::Unavailable
        )
    }
}

/// Implemented by every crate's error enum.
pub trait ClassifyError {
    /// The kind of this failure.
    fn kind(&self) -> ErrorKind;
}
