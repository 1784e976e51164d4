//! The crate's one error type.

use eddy_broker::BrokerError;
use eddy_types::{ClassifyError, ErrorKind};

/// What went wrong in an embedded client.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The cluster refused or failed the request (after any retries).
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// `buffer.memory` stayed full for `max.block`: the record was not taken.
    #[error("the producer's buffer is full ({held} of {limit} bytes held) and did not drain within {waited_ms} ms")]
    BufferFull {
        /// Bytes held when the record was refused.
        held: usize,
        /// The buffer limit.
        limit: usize,
        /// How long the record waited for room.
        waited_ms: u64,
    },
    /// The record could not be delivered within `delivery.timeout`; `last` is the last
    /// failure, if a send was tried.
    #[error("{topic}-{partition}: not delivered within the delivery timeout{}", last.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default())]
    DeliveryTimeout {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The last failure, if the batch was sent at all.
        last: Option<Box<BrokerError>>,
    },
    /// A record larger than the producer's buffer can never be sent.
    #[error("a record of {size} bytes is larger than buffer.memory ({limit} bytes)")]
    RecordTooLarge {
        /// The record's accounted size.
        size: usize,
        /// `buffer.memory`.
        limit: usize,
    },
    /// A batch could not be encoded (compression failed).
    #[error("cannot encode a record batch: {0}")]
    Encode(String),
    /// The settings are inconsistent.
    #[error("invalid client settings: {0}")]
    InvalidConfig(String),
    /// A partition has no committed offset and `auto.offset.reset` is `none`.
    #[error("{topic}-{partition}: no committed offset and auto.offset.reset is none")]
    NoOffset {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },
    /// The partition is not assigned to this consumer.
    #[error("{topic}-{partition} is not assigned to this consumer")]
    NotAssigned {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },
    /// The group rebalanced since this member's generation: the commit was refused and the
    /// partitions may belong to another member now (Kafka's CommitFailedException). The
    /// consumer rejoins at its next poll.
    #[error("commit refused: {0}")]
    CommitFailed(BrokerError),
    /// The call does not fit the consumer's state (e.g. `assign` while subscribed).
    #[error("{0}")]
    IllegalState(String),
    /// The client was closed, or its actor stopped, before answering.
    #[error("the client is closed")]
    Closed,
}

impl ClassifyError for ClientError {
    fn kind(&self) -> ErrorKind {
        match self {
            ClientError::Broker(e) => e.kind(),
            ClientError::BufferFull { .. } => ErrorKind::Unavailable,
            ClientError::DeliveryTimeout { .. } => ErrorKind::Timeout,
            ClientError::RecordTooLarge { .. } | ClientError::InvalidConfig(_) => {
                ErrorKind::Invalid
            }
            ClientError::Encode(_) => ErrorKind::Internal,
            ClientError::NoOffset { .. } | ClientError::NotAssigned { .. } => ErrorKind::NotFound,
            ClientError::CommitFailed(e) => e.kind(),
            ClientError::IllegalState(_) => ErrorKind::Invalid,
            ClientError::Closed => ErrorKind::Unavailable,
        }
    }
}
