//! The listener's settings.

use std::time::Duration;

/// How the Kafka listeners bind and what they accept.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// The address to bind (127.0.0.1).
    pub host: String,
    /// Broker `i` listens on `base_port + i` (9092, 9093, 9094 for three brokers); 0 gives
    /// every broker a free port.
    pub base_port: u16,
    /// The host name advertised in Metadata and FindCoordinator (the bind host if `None`).
    pub advertised_host: Option<String>,
    /// `socket.request.max.bytes` (100 MiB): a larger size prefix closes the connection
    /// before anything is allocated.
    pub max_request_size: usize,
    /// `max.connections` over all listeners (4096); more are closed at accept. (`eddy serve`
    /// raises its open-files limit to the hard limit: each connection is a file.)
    pub max_connections: usize,
    /// `connections.max.idle.ms` (10 min): a connection silent this long is closed.
    pub idle_timeout: Duration,
    /// `queued.max.request.bytes` (256 MiB): request bytes read and not yet answered, over
    /// all connections. A connection whose next request does not fit stops reading until
    /// answers free room, so an overloaded server slows its clients down (TCP backpressure)
    /// instead of growing without bound. A request larger than the whole budget waits for
    /// all of it.
    pub queued_max_request_bytes: usize,
    /// `fetch.max.bytes` (55 MiB): the most record bytes one Fetch answer carries, whatever
    /// the request asks (the first batch goes whole even if it is larger).
    pub fetch_max_bytes: usize,
    /// Fetch answers' record bytes held at once, over all connections (512 MiB): from before
    /// a fetch reads until its answer is written. A fetch that does not fit waits, so many
    /// consumers reading at once slow down instead of growing the server without bound.
    /// (Kafka sends records from its files without copying them, so it has no such setting.)
    pub fetch_memory_bytes: usize,
}

impl Default for KafkaConfig {
    fn default() -> KafkaConfig {
        KafkaConfig {
            host: "127.0.0.1".into(),
            base_port: 9092,
            advertised_host: None,
            max_request_size: 100 << 20,
            max_connections: 4096,
            idle_timeout: Duration::from_secs(600),
            queued_max_request_bytes: 256 << 20,
            fetch_max_bytes: 55 << 20,
            fetch_memory_bytes: 512 << 20,
        }
    }
}
