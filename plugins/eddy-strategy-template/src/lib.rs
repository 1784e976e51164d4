//! Owns the `template` context strategy: a starting point to copy for a new strategy crate
//! (see `plugins/README.md`). It gives a message its explicit reply chain as thread and the
//! sender's own earlier messages in the chat as background.
#![warn(missing_docs)]

use eddy_context::{
    Assignment, Budget, ChatMessage, Context, ContextError, ContextStrategy, History, Registry,
};
use serde::Deserialize;

/// The name it is registered under (what a config's `strategy = "..."` selects).
pub const NAME: &str = "template";

/// Its parameters, read from the config with serde; unknown fields are refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Most of the sender's earlier messages offered as background; default 5.
    pub own_messages: usize,
}

impl Default for Params {
    fn default() -> Params {
        Params { own_messages: 5 }
    }
}

/// The strategy: keep whatever state `observe` needs to answer `context_for`.
#[derive(Debug, Clone)]
pub struct Template {
    params: Params,
    history: History,
}

impl Template {
    /// A strategy with `params`.
    pub fn new(params: Params) -> Template {
        Template {
            params,
            history: History::new(),
        }
    }
}

/// Registers the strategy; a program adds it to its registry at start.
pub fn register(registry: &mut Registry) -> Result<(), ContextError> {
    registry.register(NAME, |p: Params| Box::new(Template::new(p)))
}

impl ContextStrategy for Template {
    fn fresh(&self) -> Box<dyn ContextStrategy> {
        Box::new(Template::new(self.params.clone()))
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
        Assignment {
            parent,
            context_id: m.context_id.clone(),
        }
    }

    fn context_for(&self, message_id: &str, budget: &Budget) -> Option<Context> {
        let seq = self.history.seq(message_id)?;
        let m = self.history.at(seq)?;
        let thread = self.history.explicit_chain(seq);
        let own: Vec<usize> = self
            .history
            .chat_before(&m.chat_id, seq)
            .filter(|&s| {
                self.history
                    .at(s)
                    .is_some_and(|o| o.sender_id == m.sender_id)
            })
            .take(self.params.own_messages)
            .collect();
        Some(self.history.fit(seq, &thread, &own, budget))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every strategy runs the conformance suite: this one line.
    #[test]
    fn conforms() {
        eddy_context::conformance::check(|| Box::new(Template::new(Params::default())));
    }
}
