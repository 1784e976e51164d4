//! The request handlers, one module per API family. Each takes the decoded request and
//! answers the response body; errors become Kafka error codes inside it.

pub(crate) mod admin;
pub(crate) mod data;
pub(crate) mod groups;

use eddy_broker::{BrokerClient, Cluster};
use eddy_types::BrokerId;
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

use crate::config::KafkaConfig;

/// What every connection of a server shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) cluster: Cluster,
    /// Advertised `(host, port)` by broker id.
    pub(crate) endpoints: Vec<(String, u16)>,
    pub(crate) config: KafkaConfig,
    /// Request bytes held, over every connection of every listener.
    pub(crate) request_memory: eddy_sync::MemoryBudget,
    /// Fetch answers' record bytes held, over every connection of every listener.
    pub(crate) fetch_memory: eddy_sync::MemoryBudget,
}

/// A request's context: the server and the broker whose listener received it.
#[derive(Debug, Clone)]
pub(crate) struct Ctx<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) broker: BrokerClient,
    /// The request header's client id.
    pub(crate) client_id: Option<StrBytes>,
    /// The client's address.
    pub(crate) peer: std::net::SocketAddr,
    /// The connection's turn to hold fetch memory: one fetch of a connection at a time, in
    /// arrival order (see `data::fetch`).
    pub(crate) fetch_turn: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Ctx<'_> {
    pub(crate) fn cluster(&self) -> &Cluster {
        &self.shared.cluster
    }

    pub(crate) fn endpoint(&self, broker: BrokerId) -> (StrBytes, i32) {
        match self.shared.endpoints.get(broker.0 as usize) {
            Some((host, port)) => (StrBytes::from_string(host.clone()), i32::from(*port)),
            None => (StrBytes::from_string(String::new()), -1),
        }
    }
}

pub(crate) fn str(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

pub(crate) fn topic_name(s: impl Into<String>) -> TopicName {
    TopicName(str(s))
}

/// Kafka's `int32` for a partition index; out of range indexes are never valid.
pub(crate) fn index(p: i32) -> Option<u32> {
    u32::try_from(p).ok()
}
