//! The crate's one error type.

use eddy_broker::BrokerError;
use eddy_client::ClientError;
use eddy_context::ContextError;
use eddy_types::{ClassifyError, ErrorKind};

/// What went wrong in a pipeline.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The client (consumer or producer) failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The cluster refused an administrative request.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// A message, strategy or responder failed.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// A Kafka-protocol client (librdkafka) failed.
    #[error("kafka client: {0}")]
    Kafka(String),
    /// The context consumer's LMDB state could not be read or written.
    #[error("context state in {path}: {source}")]
    Store {
        /// The state directory.
        path: String,
        /// LMDB's error.
        #[source]
        source: heed::Error,
    },
    /// The state holds bytes this version cannot read.
    #[error("context state in {path} is corrupt: {reason}")]
    Corrupt {
        /// The state directory.
        path: String,
        /// What could not be read.
        reason: String,
    },
    /// A setting is wrong.
    #[error("invalid pipeline setting: {0}")]
    Config(String),
    /// The pipeline stopped (or its thread could not start).
    #[error("the pipeline stopped: {0}")]
    Stopped(String),
}

impl ClassifyError for PipelineError {
    fn kind(&self) -> ErrorKind {
        match self {
            PipelineError::Client(e) => e.kind(),
            PipelineError::Broker(e) => e.kind(),
            PipelineError::Context(e) => e.kind(),
            PipelineError::Store { .. } | PipelineError::Corrupt { .. } => ErrorKind::Internal,
            PipelineError::Config(_) => ErrorKind::Invalid,
            PipelineError::Kafka(_) => ErrorKind::Unavailable,
            PipelineError::Stopped(_) => ErrorKind::Unavailable,
        }
    }
}
