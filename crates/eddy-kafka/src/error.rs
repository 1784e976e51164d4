//! The crate's one error type.

/// What can go wrong starting or running the listeners (request errors are answered to the
/// client as Kafka error codes, not raised).
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// A connection failed (closed, reset, timed out).
    #[error("connection i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A client sent something that is not a Kafka request (the connection is closed).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A response could not be encoded.
    #[error("cannot encode a response: {0}")]
    Encode(String),
}
