//! Owns Eddy's pipeline runtime: the context consumer, which mounts a context strategy
//! (from `eddy-context`) on a group consumer, keeps the strategy's messages and the consumed
//! offsets in its own LMDB state, and produces consumer responses from a responder; the
//! responder worker that keeps a slow or failing model off the pipeline's path; the
//! OpenAI-compatible responder; and the small client trait pipelines read and write through.
//!
//! # Layout
//! - [`client`]: [`StreamClient`] and the [`EmbeddedClient`] over an in-process cluster.
//! - [`kafka`]: [`KafkaClient`], the same over the Kafka protocol (librdkafka): Apache
//!   Kafka, Redpanda, or `eddy serve`.
//! - [`merge`]: partitions' streams merged by timestamp.
//! - [`store`]: the LMDB state (messages, offsets, pending responses; one transaction per
//!   batch).
//! - [`consumer`]: [`ContextConsumer`], its shared [`ContextHandle`] (what
//!   `GET /context/{id}` reads), and [`RunningContext`], the consumer on its own thread.
//! - [`responder`]: [`ResponderWorker`]: bounded queue, retries with backoff, circuit breaker.
//! - [`openai`]: [`OpenAiResponder`] for chat-completions endpoints.
//! - [`PipelineError`]: the crate's one error type.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use eddy_pipeline::merge::Merger;
//! use eddy_pipeline::client::Record;
//!
//! let mut m = Merger::new(Duration::from_millis(200), 100);
//! let mut read_to_end = Vec::new();
//! for (topic, ts) in [("user_ann", 20), ("user_bob", 10)] {
//!     m.push(Record { topic: topic.into(), partition: 0, offset: 0, timestamp: ts, value: None,
//!         headers: vec![] });
//!     read_to_end.push(((topic.to_owned(), 0), true));
//! }
//! let order: Vec<_> = m.release(&read_to_end, Instant::now()).into_iter().map(|r| r.topic).collect();
//! assert_eq!(order, ["user_bob", "user_ann"]);
//! ```
#![warn(missing_docs)]

pub mod client;
pub mod consumer;
mod error;
pub mod kafka;
pub mod merge;
pub mod openai;
pub mod responder;
pub mod store;

pub use client::{
    read_to_end, EmbeddedClient, OutRecord, Polled, Record, StreamClient, Subscription,
};
pub use consumer::{
    ContextConfig, ContextConsumer, ContextHandle, RespondTo, RunningContext, DELETED_AFTER,
};
pub use error::PipelineError;
pub use kafka::KafkaClient;
pub use openai::{OpenAiConfig, OpenAiResponder};
pub use responder::{ResponderWorker, WorkerConfig};
