//! The `ContextStrategy` trait every strategy plugin implements, the budget it assembles
//! context within, and [`History`], the in-order message store most strategies build on.

use std::collections::HashMap;

use crate::message::ChatMessage;

/// How much context a consumer (an LLM's prompt) can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Most messages, thread and background together.
    pub max_messages: usize,
    /// Most characters of content, thread and background together. The message itself is
    /// always included, even when it alone is longer.
    pub max_chars: usize,
}

impl Default for Budget {
    fn default() -> Budget {
        Budget {
            max_messages: 50,
            max_chars: 16_000,
        }
    }
}

/// The context of one message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Context {
    /// The message.
    pub message_id: String,
    /// Its thread, from the root (or as far back as the budget allows) to the message itself,
    /// in order.
    pub thread: Vec<ChatMessage>,
    /// Other earlier messages of the group chat, in order.
    pub background: Vec<ChatMessage>,
}

/// Where a strategy put a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The message it answers (explicit, or inferred); `None`: it starts a bubble.
    pub parent: Option<String>,
    /// The bubble.
    pub context_id: String,
}

/// A context strategy: sees every message in order and assembles, for a message, its thread
/// and background from the wider group chat, within a budget. Plain synchronous Rust; the
/// framework runs it in an actor and persists what it needs. Implementations must be
/// deterministic (same messages, same answers) and must never use a message observed after
/// the one asked about.
pub trait ContextStrategy: Send + std::fmt::Debug {
    /// The name it is registered under.
    fn name(&self) -> &str;

    /// Takes the next message of the merged stream (in timestamp order); answers the link and
    /// bubble it assigned. Called once per message; `message_id`s are unique.
    fn observe(&mut self, message: &ChatMessage) -> Assignment;

    /// The context of an observed message (`None` if it was never observed).
    fn context_for(&self, message_id: &str, budget: &Budget) -> Option<Context>;

    /// A new instance with the same parameters that has observed nothing. The context
    /// consumer remembers a bounded window of messages: when it forgets the oldest, it feeds
    /// the rest to a fresh instance and drops this one, so a strategy needs no eviction of
    /// its own.
    fn fresh(&self) -> Box<dyn ContextStrategy>;
}

/// Answers `context_for` for messages a running pipeline observed: what the HTTP API's
/// `GET /context/{message_id}` asks. Implemented by the context consumer's shared handle.
pub trait ContextLookup: Send + Sync + std::fmt::Debug {
    /// The context of `message_id`, `None` if it was never observed.
    fn context_for(&self, message_id: &str, budget: &Budget) -> Option<Context>;
}

/// Messages in the order observed, indexed by id and by chat.
#[derive(Debug, Default, Clone)]
pub struct History {
    messages: Vec<ChatMessage>,
    by_id: HashMap<String, usize>,
    by_chat: HashMap<String, Vec<usize>>,
}

impl History {
    /// An empty history.
    pub fn new() -> History {
        History::default()
    }

    /// Appends a message; answers its position. A repeated id keeps its first position.
    pub fn push(&mut self, m: &ChatMessage) -> usize {
        if let Some(&seq) = self.by_id.get(&m.message_id) {
            return seq;
        }
        let seq = self.messages.len();
        self.by_id.insert(m.message_id.clone(), seq);
        self.by_chat.entry(m.chat_id.clone()).or_default().push(seq);
        self.messages.push(m.clone());
        seq
    }

    /// How many messages it holds.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// A message's position.
    pub fn seq(&self, message_id: &str) -> Option<usize> {
        self.by_id.get(message_id).copied()
    }

    /// The message at a position.
    pub fn at(&self, seq: usize) -> Option<&ChatMessage> {
        self.messages.get(seq)
    }

    /// Positions of the messages of `chat` before `seq`, most recent first.
    pub fn chat_before<'a>(&'a self, chat: &str, seq: usize) -> impl Iterator<Item = usize> + 'a {
        let list = self.by_chat.get(chat).map(Vec::as_slice).unwrap_or(&[]);
        let end = list.partition_point(|&s| s < seq);
        list[..end].iter().rev().copied()
    }

    /// The position of the explicit parent of the message at `seq`, if that parent was
    /// observed before it.
    pub fn explicit_parent(&self, seq: usize) -> Option<usize> {
        let parent = self.messages.get(seq)?.parent_message_id.as_deref()?;
        self.seq(parent).filter(|&p| p < seq)
    }

    /// The id of the message at `seq`.
    pub fn id(&self, seq: usize) -> Option<&str> {
        self.messages.get(seq).map(|m| m.message_id.as_str())
    }

    /// The explicit reply chain ending at `seq`, root first; stops at a parent never observed
    /// or observed later (a malformed link), and at a cycle.
    pub fn explicit_chain(&self, seq: usize) -> Vec<usize> {
        let mut chain = vec![seq];
        let mut at = seq;
        while let Some(p) = self.explicit_parent(at) {
            chain.push(p);
            at = p;
        }
        chain.reverse();
        chain
    }

    /// Context for the message at `seq` from a thread (positions, root first, ending at `seq`)
    /// and background candidates (positions before `seq`, most wanted first), within
    /// `budget`: the message first, then the thread from its end backwards, then background.
    pub fn fit(
        &self,
        seq: usize,
        thread: &[usize],
        background: &[usize],
        budget: &Budget,
    ) -> Context {
        let mut chars = 0usize;
        let mut count = 0usize;
        let mut take = |s: usize, force: bool| -> bool {
            let Some(m) = self.messages.get(s) else {
                return false;
            };
            let len = m.content.chars().count();
            if force || (count < budget.max_messages && chars + len <= budget.max_chars) {
                count += 1;
                chars += len;
                true
            } else {
                false
            }
        };
        // The message itself, then its thread backwards while the budget lasts.
        let mut kept_thread = Vec::new();
        if seq >= self.messages.len() {
            return Context {
                message_id: String::new(),
                thread: Vec::new(),
                background: Vec::new(),
            };
        }
        take(seq, true);
        kept_thread.push(seq);
        for &s in thread.iter().rev() {
            if s >= seq {
                continue;
            }
            if !take(s, false) {
                break;
            }
            kept_thread.push(s);
        }
        kept_thread.reverse();
        let mut kept_bg: Vec<usize> = Vec::new();
        for &s in background {
            if s >= seq || kept_thread.contains(&s) || kept_bg.contains(&s) {
                continue;
            }
            if !take(s, false) {
                break;
            }
            kept_bg.push(s);
        }
        kept_bg.sort_unstable();
        Context {
            message_id: self.messages[seq].message_id.clone(),
            thread: kept_thread
                .iter()
                .map(|&s| self.messages[s].clone())
                .collect(),
            background: kept_bg.iter().map(|&s| self.messages[s].clone()).collect(),
        }
    }
}
