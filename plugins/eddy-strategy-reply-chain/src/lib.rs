//! Owns the `reply-chain` context strategy: explicit parent links only. A message's thread is
//! the chain of `parent_message_id` links from its root to it; its bubble is its parent's
//! (or its own when it has no observed parent); its background is the most recent earlier
//! messages of the same chat. No inference: a message without a parent starts a bubble.
//!
//! ```
//! use eddy_context::Registry;
//!
//! let mut registry = Registry::new();
//! eddy_strategy_reply_chain::register(&mut registry)?;
//! let strategy = registry.build("reply-chain", serde_json::json!({"background": 5}))?;
//! assert_eq!(strategy.name(), "reply-chain");
//! # Ok::<_, eddy_context::ContextError>(())
//! ```
#![warn(missing_docs)]

use std::collections::HashMap;

use eddy_context::{
    Assignment, Budget, ChatMessage, Context, ContextError, ContextStrategy, History, Registry,
};
use serde::Deserialize;

/// The name it is registered under.
pub const NAME: &str = "reply-chain";

/// Its parameters.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Most background messages offered (the budget may cut further); default 20.
    pub background: usize,
}

impl Default for Params {
    fn default() -> Params {
        Params { background: 20 }
    }
}

/// The strategy.
#[derive(Debug, Clone)]
pub struct ReplyChain {
    params: Params,
    history: History,
    /// The bubble assigned to each message.
    bubble: HashMap<String, String>,
}

impl ReplyChain {
    /// A strategy with `params`.
    pub fn new(params: Params) -> ReplyChain {
        ReplyChain {
            params,
            history: History::new(),
            bubble: HashMap::new(),
        }
    }
}

/// Registers the strategy as `reply-chain`.
pub fn register(registry: &mut Registry) -> Result<(), ContextError> {
    registry.register(NAME, |p: Params| Box::new(ReplyChain::new(p)))
}

impl ContextStrategy for ReplyChain {
    fn fresh(&self) -> Box<dyn ContextStrategy> {
        Box::new(ReplyChain::new(self.params.clone()))
    }

    fn name(&self) -> &str {
        NAME
    }

    fn observe(&mut self, m: &ChatMessage) -> Assignment {
        let seq = self.history.push(m);
        let parent = self
            .history
            .explicit_parent(seq)
            .and_then(|p| self.history.id(p))
            .map(str::to_owned);
        let context_id = parent
            .as_deref()
            .and_then(|p| self.bubble.get(p).cloned())
            .unwrap_or_else(|| m.context_id.clone());
        self.bubble.insert(m.message_id.clone(), context_id.clone());
        Assignment { parent, context_id }
    }

    fn context_for(&self, message_id: &str, budget: &Budget) -> Option<Context> {
        let seq = self.history.seq(message_id)?;
        let chat = &self.history.at(seq)?.chat_id;
        let thread = self.history.explicit_chain(seq);
        let background: Vec<usize> = self
            .history
            .chat_before(chat, seq)
            .filter(|s| !thread.contains(s))
            .take(self.params.background)
            .collect();
        Some(self.history.fit(seq, &thread, &background, budget))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_context::conformance;

    #[test]
    fn conforms() {
        conformance::check(|| Box::new(ReplyChain::new(Params::default())));
    }

    #[test]
    fn the_thread_is_the_explicit_chain_and_background_the_rest_of_the_room() {
        let chat = conformance::sample_chat();
        let mut s = ReplyChain::new(Params::default());
        let assigned: Vec<Assignment> = chat.iter().map(|m| s.observe(m)).collect();
        let ctx = s.context_for("a4", &Budget::default()).unwrap();
        let ids: Vec<&str> = ctx.thread.iter().map(|m| m.message_id.as_str()).collect();
        assert_eq!(ids, ["a1", "a2", "a3", "a4"]);
        let bg: Vec<&str> = ctx
            .background
            .iter()
            .map(|m| m.message_id.as_str())
            .collect();
        // Same room only (x1 is in r2), in order, not the thread.
        assert_eq!(bg, ["b1", "b2", "b3", "o1"]);
        // The orphan starts its own bubble; replies keep theirs.
        let o1 = chat.iter().position(|m| m.message_id == "o1").unwrap();
        assert_eq!(assigned[o1].parent, None);
        assert_eq!(assigned[o1].context_id, "O");
        let a4 = chat.iter().position(|m| m.message_id == "a4").unwrap();
        assert_eq!(assigned[a4].parent.as_deref(), Some("a3"));
        // A tight budget keeps the message and the nearest part of its thread.
        let tight = s
            .context_for(
                "a4",
                &Budget {
                    max_messages: 2,
                    max_chars: 10_000,
                },
            )
            .unwrap();
        let ids: Vec<&str> = tight.thread.iter().map(|m| m.message_id.as_str()).collect();
        assert_eq!(ids, ["a3", "a4"]);
        assert!(tight.background.is_empty());
    }

    #[test]
    fn bad_params_are_refused_by_the_registry() {
        let mut r = Registry::new();
        register(&mut r).unwrap();
        let e = r
            .build(NAME, serde_json::json!({"backgrund": 3}))
            .unwrap_err();
        assert!(e.to_string().contains("backgrund"), "{e}");
        let e = r.build("nope", serde_json::Value::Null).unwrap_err();
        assert!(e.to_string().contains("known: reply-chain"), "{e}");
    }
}
