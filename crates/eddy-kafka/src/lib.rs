//! Owns Eddy's Kafka wire protocol listener: one TCP listener per broker of a cluster, framing,
//! request headers, the supported APIs and versions, and the mapping of every Eddy error to the
//! Kafka error code clients expect. Message bodies are decoded and encoded by the
//! `kafka-protocol` crate; record batches pass through as the stored bytes.
//!
//! # Layout
//! - [`KafkaServer`] (`server`): binds the listeners (base port + broker index, or port 0),
//!   accepts connections up to `max_connections`, one task per connection.
//! - `connection`: a connection's loop: the size prefix (checked against
//!   `max_request_size` before anything is allocated, and its bytes taken from the request
//!   memory budget all connections share, `queued_max_request_bytes`: no room, no reading),
//!   the header, requests dispatched in arrival order, answers in order (as Kafka's broker
//!   does), idle timeout.
//! - `request`: a frame to a request (API and version check, header, body);
//!   [`decode_request`] runs it alone, for the fuzzer.
//! - `versions`: the APIs and versions advertised in ApiVersions, and only those are served.
//! - `handlers`: one module per API family, each over `eddy_broker::BrokerClient` (requests
//!   addressed to this listener's broker, never rerouted: a non-leader answers
//!   NOT_LEADER_OR_FOLLOWER, a non-coordinator NOT_COORDINATOR).
//! - `codes`: `BrokerError` to Kafka error codes.
//! - [`LazyHugeAlloc`] (`alloc`): the global allocator a process running a listener installs,
//!   so that a hostile frame's absurd array count cannot abort it (see the module).
//! - [`KafkaError`]: the crate's one error type.
#![warn(missing_docs)]

mod alloc;
mod codes;
mod config;
mod connection;
mod error;
mod handlers;
mod request;
mod server;
mod versions;

pub use alloc::{LazyHugeAlloc, HUGE};
pub use config::KafkaConfig;
pub use error::KafkaError;
pub use request::decode_request;
pub use server::KafkaServer;
pub use versions::SUPPORTED;

/// Helpers for other crates' tests (feature `testing`): a Kafka listener on free ports.
#[cfg(feature = "testing")]
pub mod testing {
    use eddy_broker::Cluster;

    use crate::{KafkaConfig, KafkaError, KafkaServer};

    /// Kafka listeners serving `cluster` on free ports, with a runtime of their own (so
    /// that a test's client can block). Stops when dropped.
    #[derive(Debug)]
    pub struct TestListener {
        server: Option<KafkaServer>,
        runtime: Option<tokio::runtime::Runtime>,
    }

    impl TestListener {
        /// Starts the listeners.
        pub fn start(cluster: Cluster) -> Result<TestListener, KafkaError> {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(KafkaError::Io)?;
            let config = KafkaConfig {
                base_port: 0,
                ..KafkaConfig::default()
            };
            let server = runtime.block_on(KafkaServer::start(cluster, config))?;
            Ok(TestListener {
                server: Some(server),
                runtime: Some(runtime),
            })
        }

        /// `host:port,...` of every broker's listener.
        pub fn bootstrap(&self) -> String {
            self.server
                .as_ref()
                .map(KafkaServer::bootstrap)
                .unwrap_or_default()
        }
    }

    impl Drop for TestListener {
        fn drop(&mut self) {
            drop(self.server.take());
            if let Some(rt) = self.runtime.take() {
                rt.shutdown_background();
            }
        }
    }
}
