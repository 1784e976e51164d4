//! Consumer responses: what a consumer (usually an LLM) answers to a message, and how each
//! answer becomes a chat message with the right bubble. A reply and a reaction stay in the
//! message's bubble; a quote opens a bubble in its thread; a mention addresses someone who
//! spoke in the context pool (thread or background), in the message's bubble.
//!
//! [`Responder`] is the trait a model sits behind; [`OfflineResponder`] is the default that
//! needs no model: deterministic rules over the message and its context.

use crate::error::ContextError;
use crate::message::{stable_partition, ChatMessage, MessageKind};
use crate::strategy::Context;

/// One answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// A reply in the message's bubble.
    Reply(String),
    /// A quote of the message with a comment: a new bubble in its thread.
    Quote(String),
    /// An emoji reaction to the message.
    Reaction(String),
    /// A message @mentioning `user` (who spoke in the context pool).
    Mention {
        /// The user id mentioned.
        user: String,
        /// The text.
        text: String,
    },
}

/// Who answers, and how its messages are named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Responding {
    /// The responder's user id.
    pub sender_id: String,
    /// Its display name.
    pub sender_name: String,
    /// Partitions of the topic the answers go to (for `partition_hint`).
    pub partitions: u32,
}

/// A model (or rules) answering messages given their context.
pub trait Responder: Send + std::fmt::Debug {
    /// Its name (for logs and metrics).
    fn name(&self) -> &str;
    /// The answers to `message` (maybe none).
    fn respond(
        &mut self,
        message: &ChatMessage,
        context: &Context,
    ) -> Result<Vec<Response>, ContextError>;
}

/// `response` to `to` as a chat message with id `message_id`, sent at `timestamp`.
pub fn response_message(
    response: &Response,
    to: &ChatMessage,
    by: &Responding,
    message_id: String,
    timestamp: i64,
) -> Result<ChatMessage, ContextError> {
    let (kind, content, context_id, mentions, emoji) = match response {
        Response::Reply(text) => (
            MessageKind::Reply,
            text.clone(),
            to.context_id.clone(),
            vec![],
            None,
        ),
        Response::Quote(text) => {
            let quoted: String = to
                .content
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(200)
                .collect();
            (
                MessageKind::Quote,
                format!("> {quoted}\n{text}"),
                format!("ctx-{message_id}"),
                vec![],
                None,
            )
        }
        Response::Reaction(emoji) => (
            MessageKind::Reaction,
            String::new(),
            to.context_id.clone(),
            vec![],
            Some(emoji.clone()),
        ),
        Response::Mention { user, text } => (
            MessageKind::Mention,
            format!("@{user} {text}"),
            to.context_id.clone(),
            vec![user.clone()],
            None,
        ),
    };
    let m = ChatMessage {
        partition_hint: Some(stable_partition(&context_id, by.partitions)),
        message_id,
        content,
        context_id,
        parent_message_id: Some(to.message_id.clone()),
        thread_id: to.thread_id.clone(),
        sender_id: by.sender_id.clone(),
        sender_name: by.sender_name.clone(),
        chat_id: to.chat_id.clone(),
        timestamp,
        mentions,
        kind,
        emoji,
    };
    m.validate()?;
    Ok(m)
}

/// The responder that needs no model: a 👋 to greetings and 👍 to thanks; to a question, a
/// reply that sums up its thread, and, when someone else in the context pool has spoken about
/// it, a mention of them; a long message gets its first line quoted back. Deterministic.
#[derive(Debug, Clone, Default)]
pub struct OfflineResponder;

fn has_word(text: &str, words: &[&str]) -> bool {
    text.split(|c: char| !c.is_alphanumeric())
        .any(|w| words.iter().any(|x| w.eq_ignore_ascii_case(x)))
}

impl Responder for OfflineResponder {
    fn name(&self) -> &str {
        "offline"
    }

    fn respond(
        &mut self,
        message: &ChatMessage,
        context: &Context,
    ) -> Result<Vec<Response>, ContextError> {
        let text = message.content.trim();
        let mut out = Vec::new();
        if has_word(text, &["thanks", "thank", "thx"]) {
            out.push(Response::Reaction("👍".into()));
            return Ok(out);
        }
        if has_word(text, &["hi", "hello", "hey"]) && text.len() < 40 {
            out.push(Response::Reaction("👋".into()));
            return Ok(out);
        }
        if text.ends_with('?') {
            let others: Vec<&str> = context
                .thread
                .iter()
                .filter(|m| m.message_id != message.message_id)
                .map(|m| m.sender_name.as_str())
                .collect();
            let summary = if others.is_empty() {
                "This starts a new conversation; nobody has answered yet.".to_owned()
            } else {
                format!(
                    "This thread has {} earlier message(s), from {}.",
                    others.len(),
                    dedup(&others).join(", ")
                )
            };
            out.push(Response::Reply(summary));
            // Someone in the pool who spoke and is not the asker.
            let pool = context.thread.iter().chain(&context.background).rev();
            if let Some(expert) = pool
                .filter(|m| m.sender_id != message.sender_id && m.message_id != message.message_id)
                .find(|m| shares_a_word(&m.content, text))
            {
                out.push(Response::Mention {
                    user: expert.sender_id.clone(),
                    text: "you wrote about this earlier; can you help?".into(),
                });
            }
            return Ok(out);
        }
        if text.chars().count() > 280 {
            out.push(Response::Quote(
                "Noted; replying to this part first.".into(),
            ));
        }
        Ok(out)
    }
}

fn dedup<'a>(names: &[&'a str]) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for n in names {
        if !out.contains(n) {
            out.push(n);
        }
    }
    out
}

fn shares_a_word(a: &str, b: &str) -> bool {
    let words = |t: &str| -> Vec<String> {
        t.split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.len() >= 5)
            .map(str::to_lowercase)
            .collect()
    };
    let wb = words(b);
    words(a).iter().any(|w| wb.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::sample_chat;
    use crate::strategy::{Budget, ContextStrategy, History};

    #[derive(Debug, Default)]
    struct Chain(History);

    impl ContextStrategy for Chain {
        fn name(&self) -> &str {
            "chain"
        }
        fn fresh(&self) -> Box<dyn ContextStrategy> {
            Box::new(Chain::default())
        }
        fn observe(&mut self, m: &ChatMessage) -> crate::Assignment {
            self.0.push(m);
            crate::Assignment {
                parent: m.parent_message_id.clone(),
                context_id: m.context_id.clone(),
            }
        }
        fn context_for(&self, id: &str, b: &Budget) -> Option<Context> {
            let seq = self.0.seq(id)?;
            let chat = self.0.at(seq)?.chat_id.clone();
            let bg: Vec<usize> = self.0.chat_before(&chat, seq).collect();
            Some(self.0.fit(seq, &self.0.explicit_chain(seq), &bg, b))
        }
    }

    fn by() -> Responding {
        Responding {
            sender_id: "bot".into(),
            sender_name: "Eddy".into(),
            partitions: 10,
        }
    }

    #[test]
    fn responses_get_the_right_bubble_thread_and_parent() {
        let to = &sample_chat()[2]; // a2, a reply in bubble A
        for (r, same_bubble, kind) in [
            (Response::Reply("ok".into()), true, MessageKind::Reply),
            (Response::Reaction("🎉".into()), true, MessageKind::Reaction),
            (Response::Quote("see".into()), false, MessageKind::Quote),
            (
                Response::Mention {
                    user: "ann".into(),
                    text: "look".into(),
                },
                true,
                MessageKind::Mention,
            ),
        ] {
            let m = response_message(&r, to, &by(), "r1".into(), 5).unwrap();
            assert_eq!(m.parent_message_id.as_deref(), Some("a2"));
            assert_eq!(m.thread_id, to.thread_id);
            assert_eq!(m.kind, kind);
            assert_eq!(m.context_id == to.context_id, same_bubble, "{r:?}");
            assert_eq!(m.partition_hint, Some(stable_partition(&m.context_id, 10)));
        }
    }

    #[test]
    fn the_offline_responder_answers_from_the_context() {
        let chat = sample_chat();
        let mut s = Chain::default();
        for m in &chat {
            s.observe(m);
        }
        let mut r = OfflineResponder;
        // a1 is a question with nothing before it.
        let a1 = &chat[0];
        let ctx = s.context_for("a1", &Budget::default()).unwrap();
        assert_eq!(
            r.respond(a1, &ctx).unwrap(),
            vec![Response::Reply(
                "This starts a new conversation; nobody has answered yet.".into()
            )]
        );
        // a3 asks cid, who wrote about the upgrade in the thread: a summary and a mention.
        let a3 = chat.iter().find(|m| m.message_id == "a3").unwrap();
        let ctx = s.context_for("a3", &Budget::default()).unwrap();
        let out = r.respond(a3, &ctx).unwrap();
        assert!(
            matches!(&out[0], Response::Reply(t) if t.contains("ann, cid")),
            "{out:?}"
        );
        assert!(out
            .iter()
            .all(|x| !matches!(x, Response::Mention { user, .. } if user == "ann")));
        // Thanks get a reaction; a long message a quote.
        let a5 = chat.iter().find(|m| m.message_id == "a5").unwrap();
        let ctx = s.context_for("a5", &Budget::default()).unwrap();
        assert_eq!(
            r.respond(a5, &ctx).unwrap(),
            vec![Response::Reaction("👍".into())]
        );
    }
}
