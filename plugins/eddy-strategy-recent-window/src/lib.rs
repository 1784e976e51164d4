//! Owns the `recent-window` context strategy: the last `window` messages of the chat, ending
//! at the message, are its thread; nothing else. It links each message to its explicit parent
//! when it has one and to the chat's previous message otherwise (the "previous message"
//! baseline of disentanglement). The simplest strategy, and the one to beat.
#![warn(missing_docs)]

use std::collections::HashMap;

use eddy_context::{
    Assignment, Budget, ChatMessage, Context, ContextError, ContextStrategy, History, Registry,
};
use serde::Deserialize;

/// The name it is registered under.
pub const NAME: &str = "recent-window";

/// Its parameters.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Messages of the chat in the window, the message included; default 10.
    pub window: usize,
}

impl Default for Params {
    fn default() -> Params {
        Params { window: 10 }
    }
}

/// The strategy.
#[derive(Debug, Clone)]
pub struct RecentWindow {
    params: Params,
    history: History,
    bubble: HashMap<String, String>,
}

impl RecentWindow {
    /// A strategy with `params`.
    pub fn new(params: Params) -> RecentWindow {
        RecentWindow {
            params,
            history: History::new(),
            bubble: HashMap::new(),
        }
    }
}

/// Registers the strategy as `recent-window`.
pub fn register(registry: &mut Registry) -> Result<(), ContextError> {
    registry.register(NAME, |p: Params| Box::new(RecentWindow::new(p)))
}

impl ContextStrategy for RecentWindow {
    fn fresh(&self) -> Box<dyn ContextStrategy> {
        Box::new(RecentWindow::new(self.params.clone()))
    }

    fn name(&self) -> &str {
        NAME
    }

    fn observe(&mut self, m: &ChatMessage) -> Assignment {
        let seq = self.history.push(m);
        let parent = self
            .history
            .explicit_parent(seq)
            .or_else(|| self.history.chat_before(&m.chat_id, seq).next())
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
        let mut window: Vec<usize> = self
            .history
            .chat_before(chat, seq)
            .take(self.params.window.saturating_sub(1))
            .collect();
        window.reverse();
        window.push(seq);
        Some(self.history.fit(seq, &window, &[], budget))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_context::conformance;

    #[test]
    fn conforms() {
        conformance::check(|| Box::new(RecentWindow::new(Params::default())));
        conformance::check(|| Box::new(RecentWindow::new(Params { window: 1 })));
    }

    #[test]
    fn the_window_is_the_last_messages_of_the_room() {
        let chat = conformance::sample_chat();
        let mut s = RecentWindow::new(Params { window: 3 });
        let assigned: Vec<Assignment> = chat.iter().map(|m| s.observe(m)).collect();
        let ctx = s.context_for("a4", &Budget::default()).unwrap();
        let ids: Vec<&str> = ctx.thread.iter().map(|m| m.message_id.as_str()).collect();
        assert_eq!(ids, ["b3", "o1", "a4"]);
        // Without an explicit parent, the previous message of the same room.
        let c1 = chat.iter().position(|m| m.message_id == "c1").unwrap();
        assert_eq!(assigned[c1].parent.as_deref(), Some("a4"));
        assert_eq!(assigned[0].parent, None);
    }
}
