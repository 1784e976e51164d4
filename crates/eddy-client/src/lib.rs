//! Owns Eddy's embedded clients. Today: the producer's batching rules ([`accumulator`]), a
//! pure struct with its unit tests. The producer actor that drives it over
//! `eddy_broker::Cluster` (partitioner, sequence numbers, compression, retries, delivery
//! timeout) and the embedded consumer come next; see ARCHITECTURE.md.
//!
//! # Layout
//! - [`accumulator`]: per-partition batches closed by `batch.size` or `linger.ms`,
//!   `buffer.memory` accounting, `max.in.flight` per partition.
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
