//! Owns context bubbles: the chat message model ([`ChatMessage`]: bubble, parent, thread,
//! partition hint, kind; JSON or MessagePack), the producer side of bubbles
//! ([`BubbleAssigner`]: a reply inherits its parent's bubble, every message of a bubble lands
//! on one partition by a stable hash), the [`ContextStrategy`] trait that strategy plugins
//! implement, the [`Registry`] that builds them by name from typed parameters, and the
//! [`conformance`] suite every strategy runs. Pure: no actix, no async runtime.
//!
//! # Layout
//! - [`message`]: the model, encodings, topic layouts (`user_{id}`, `chatroom_{id}`).
//! - [`strategy`]: the trait, [`Budget`], [`Context`], and [`History`], the in-order store
//!   most strategies build on.
//! - [`registry`]: strategies by name.
//! - [`respond`]: consumer responses (reply, quote, reaction, @mention) as chat messages with
//!   the right bubble, the [`Responder`] trait and the model-free [`OfflineResponder`].
//! - [`conformance`]: the rules every strategy must keep, as one function.
//! - [`irc`]: IRC logs as messages, to score strategies on the disentanglement corpus.
//! - [`ContextError`]: the crate's one error type.
//!
//! ```
//! use eddy_context::{BubbleAssigner, Draft, MessageKind};
//!
//! let mut bubbles = BubbleAssigner::new(10, 100_000);
//! let root = bubbles.assign(Draft { message_id: "m1".into(), sender_id: "ann".into(),
//!     chat_id: "general".into(), ..Draft::default() })?;
//! let reply = bubbles.assign(Draft { message_id: "m2".into(), parent_message_id: Some("m1".into()),
//!     kind: MessageKind::Reply, sender_id: "bob".into(), chat_id: "general".into(), ..Draft::default() })?;
//! assert_eq!(reply.context_id, root.context_id);
//! assert_eq!(reply.partition_hint, root.partition_hint); // one bubble, one partition
//! # Ok::<_, eddy_context::ContextError>(())
//! ```
#![warn(missing_docs)]

pub mod conformance;
mod error;
pub mod irc;
pub mod message;
pub mod registry;
pub mod respond;
pub mod strategy;

pub use error::ContextError;
pub use message::{
    room_topic, stable_partition, user_topic, BubbleAssigner, ChatMessage, Draft, MessageKind,
};
pub use registry::Registry;
pub use respond::{response_message, OfflineResponder, Responder, Responding, Response};
pub use strategy::{Assignment, Budget, Context, ContextLookup, ContextStrategy, History};
