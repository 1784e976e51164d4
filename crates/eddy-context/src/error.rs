//! The crate's one error type.

use eddy_types::{ClassifyError, ErrorKind};

/// What went wrong with a chat message or a strategy.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The bytes are neither a JSON nor a MessagePack chat message.
    #[error("not a chat message (JSON or MessagePack): {0}")]
    Decode(String),
    /// A message could not be encoded.
    #[error("cannot encode a chat message: {0}")]
    Encode(String),
    /// The message breaks a rule of the model.
    #[error("invalid chat message: {0}")]
    Invalid(String),
    /// No strategy has this name.
    #[error("unknown context strategy {name:?}; known: {}", known.join(", "))]
    UnknownStrategy {
        /// The name asked for.
        name: String,
        /// Every registered name.
        known: Vec<String>,
    },
    /// A strategy's parameters do not fit its type.
    #[error("bad parameters for strategy {name}: {reason}")]
    BadParams {
        /// The strategy.
        name: String,
        /// Why.
        reason: String,
    },
    /// A responder (a model) could not answer.
    #[error("responder failed: {message}")]
    Responder {
        /// What went wrong.
        message: String,
        /// Whether trying again may help (a timeout, a 429 or 5xx answer).
        retriable: bool,
    },
    /// Two strategies were registered under one name.
    #[error("a strategy named {0} is registered already")]
    Duplicate(String),
}

impl ClassifyError for ContextError {
    fn kind(&self) -> ErrorKind {
        match self {
            ContextError::UnknownStrategy { .. } => ErrorKind::NotFound,
            ContextError::Duplicate(_) => ErrorKind::AlreadyExists,
            ContextError::Encode(_) => ErrorKind::Internal,
            ContextError::Responder { .. } => ErrorKind::Unavailable,
            ContextError::Decode(_) | ContextError::Invalid(_) | ContextError::BadParams { .. } => {
                ErrorKind::Invalid
            }
        }
    }
}
