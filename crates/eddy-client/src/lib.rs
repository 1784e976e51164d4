//! Owns Eddy's embedded clients. [`Producer`] is an actor per producer that batches records
//! ([`accumulator`], a pure struct with its unit tests), picks partitions as Kafka's Java
//! client does, stamps idempotent sequences, compresses, and sends batches to the partition
//! leaders of an `eddy_broker::Cluster`, with retries and a delivery timeout. [`Consumer`] is
//! Kafka's consumer: group membership (join, sync, heartbeats, rebalances with listener
//! callbacks, the leader's assignment), topic or regex subscriptions, manual assignment,
//! poll, seek, pause and resume, and offset commits by hand or automatic.
//!
//! # Layout
//! - [`producer`]: the producer actor and its handle ([`Producer`], [`ProducerConfig`],
//!   [`ProducerRecord`], [`Delivery`]).
//! - [`accumulator`]: per-partition batches closed by `batch.size` or `linger.ms`,
//!   `buffer.memory` accounting, `max.in.flight` per partition.
//! - [`consumer`]: the consumer ([`Consumer`], [`ConsumerConfig`], [`ConsumerRecord`],
//!   [`RebalanceListener`]).
//! - [`assignor`]: Kafka's `range` and `roundrobin` partition assignors, run by the group
//!   leader; pure.
//! - [`ClientError`]: the crate's one error type.
//!
//! ```
//! use std::time::Instant;
//! use eddy_client::accumulator::{Accumulator, AccumulatorConfig, PendingRecord};
//!
//! let mut acc = Accumulator::new(AccumulatorConfig::default());
//! let record = PendingRecord { key: None, value: Some("hi".into()), headers: vec![], timestamp: 0 };
//! acc.append(("chat".into(), 0), record, "token", Instant::now()).unwrap();
//! // Nothing is sendable before linger.ms, unless flushed.
//! assert_eq!(acc.sendable(Instant::now(), true).len(), 1);
//! ```
#![warn(missing_docs)]

pub mod accumulator;
pub mod assignor;
pub mod consumer;
mod error;
pub mod producer;

pub use accumulator::TopicPartition;
pub use consumer::{
    AssignmentStrategy, CommitHandle, Consumer, ConsumerConfig, ConsumerRecord, OffsetReset,
    RebalanceListener,
};
pub use error::ClientError;
pub use producer::{
    Compression, Delivery, Producer, ProducerConfig, ProducerRecord, RecordMetadata,
};
