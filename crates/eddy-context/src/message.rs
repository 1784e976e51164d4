//! The chat message and its bubble: what a message carries, how it travels (JSON or
//! MessagePack, both read), which bubble and partition a new message gets, and the topic
//! layouts.
//!
//! A message either starts a context bubble or continues one. Every message of a bubble must
//! land on one partition from its first message on, so `partition_hint` is a *stable* hash of
//! `context_id`: Kafka's murmur2, the hash its default partitioner applies to keys, so a Kafka
//! producer keying records by `context_id` picks the same partition. (The original Python
//! sketch picked a random partition for a new bubble and Python's per-process-randomized
//! `hash()` for replies, which splits a bubble across partitions and across restarts.)

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::ContextError;

/// What a message is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    /// A message that replies to nothing: it starts a new bubble and thread.
    #[default]
    Message,
    /// A reply to `parent_message_id`: it continues the parent's bubble.
    Reply,
    /// A quote of `parent_message_id`: a new bubble in the parent's thread.
    Quote,
    /// An emoji reaction (`emoji`) to `parent_message_id`, in the parent's bubble.
    Reaction,
    /// A message addressed to `mentions`, with no parent: a new bubble and thread.
    Mention,
}

/// A chat message, as producers and consumers exchange it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Unique id of this message.
    pub message_id: String,
    /// Its text (empty for a reaction).
    #[serde(default)]
    pub content: String,
    /// The bubble it belongs to.
    pub context_id: String,
    /// The message it replies to, quotes or reacts to.
    #[serde(default)]
    pub parent_message_id: Option<String>,
    /// Groups related bubbles; equals `context_id` for the first message of a thread.
    pub thread_id: String,
    /// The partition the producer chose: `stable_partition(context_id, partitions)`.
    #[serde(default)]
    pub partition_hint: Option<u32>,
    /// Who sent it.
    pub sender_id: String,
    /// Their display name.
    #[serde(default)]
    pub sender_name: String,
    /// The chat (room or direct conversation) it was sent in.
    pub chat_id: String,
    /// When it was sent, ms since the epoch.
    pub timestamp: i64,
    /// Users it @mentions (user ids).
    #[serde(default)]
    pub mentions: Vec<String>,
    /// What it is.
    #[serde(default)]
    pub kind: MessageKind,
    /// The emoji of a reaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
}

impl ChatMessage {
    /// Checks the rules a consumer relies on.
    pub fn validate(&self) -> Result<(), ContextError> {
        let bad = |m: String| Err(ContextError::Invalid(m));
        if self.message_id.is_empty() || self.context_id.is_empty() || self.thread_id.is_empty() {
            return bad("message_id, context_id and thread_id must not be empty".into());
        }
        if self.parent_message_id.as_deref() == Some(self.message_id.as_str()) {
            return bad(format!("message {} is its own parent", self.message_id));
        }
        let needs_parent = matches!(
            self.kind,
            MessageKind::Reply | MessageKind::Quote | MessageKind::Reaction
        );
        if needs_parent && self.parent_message_id.is_none() {
            return bad(format!(
                "a {:?} needs parent_message_id ({})",
                self.kind, self.message_id
            ));
        }
        if self.kind == MessageKind::Reaction && self.emoji.as_deref().unwrap_or("").is_empty() {
            return bad(format!("reaction {} has no emoji", self.message_id));
        }
        Ok(())
    }

    /// The message as JSON (what the original Python clients send with `json.dumps`).
    pub fn to_json(&self) -> Result<Vec<u8>, ContextError> {
        serde_json::to_vec(self).map_err(|e| ContextError::Encode(e.to_string()))
    }

    /// The message as MessagePack (field names kept, so either side may add fields).
    pub fn to_msgpack(&self) -> Result<Vec<u8>, ContextError> {
        rmp_serde::to_vec_named(self).map_err(|e| ContextError::Encode(e.to_string()))
    }

    /// Reads a message in either encoding: JSON when the first non-blank byte is `{`, else
    /// MessagePack. The result is validated.
    pub fn decode(bytes: &[u8]) -> Result<ChatMessage, ContextError> {
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        let msg: ChatMessage = if first == Some(&b'{') {
            serde_json::from_slice(bytes).map_err(|e| ContextError::Decode(e.to_string()))?
        } else {
            rmp_serde::from_slice(bytes).map_err(|e| ContextError::Decode(e.to_string()))?
        };
        msg.validate()?;
        Ok(msg)
    }
}

/// The partition of a bubble: Kafka's `toPositive(murmur2(context_id)) % partitions`.
pub fn stable_partition(context_id: &str, partitions: u32) -> u32 {
    eddy_types::partition_for_key(context_id.as_bytes(), partitions)
}

/// The topic of one user's messages: `user_{user_id}`.
pub fn user_topic(user_id: &str) -> String {
    format!("user_{user_id}")
}

/// The topic of one chat room: `chatroom_{room_id}`.
pub fn room_topic(room_id: &str) -> String {
    format!("chatroom_{room_id}")
}

/// Partitions of a `user_*` topic unless configured otherwise.
pub const DEFAULT_USER_PARTITIONS: u32 = 10;

/// A message to send, before its bubble is decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Draft {
    /// Its id (unique).
    pub message_id: String,
    /// Its text.
    pub content: String,
    /// What it replies to, quotes or reacts to.
    pub parent_message_id: Option<String>,
    /// Who sends it.
    pub sender_id: String,
    /// Their display name.
    pub sender_name: String,
    /// The chat.
    pub chat_id: String,
    /// When, ms since the epoch.
    pub timestamp: i64,
    /// Users it @mentions.
    pub mentions: Vec<String>,
    /// What it is.
    pub kind: MessageKind,
    /// A reaction's emoji.
    pub emoji: Option<String>,
}

/// The producer side of bubbles: gives each new message its `context_id`, `thread_id` and
/// `partition_hint`. A reply or reaction inherits its parent's bubble; a quote opens a new
/// bubble in its parent's thread; anything else opens a new bubble and thread, named after
/// its first message (`ctx-<message_id>`). A parent it has not seen (sent by another
/// process, or before a restart) is an orphan's: it opens a new bubble, as a strategy would.
#[derive(Debug, Clone)]
pub struct BubbleAssigner {
    partitions: u32,
    /// message id -> (context id, thread id), for messages sent through this assigner.
    known: HashMap<String, (String, String)>,
    limit: usize,
}

impl BubbleAssigner {
    /// An assigner for topics of `partitions` partitions that remembers the bubbles of the
    /// last `limit` messages.
    pub fn new(partitions: u32, limit: usize) -> BubbleAssigner {
        BubbleAssigner {
            partitions: partitions.max(1),
            known: HashMap::new(),
            limit: limit.max(1),
        }
    }

    /// Teaches the assigner a message sent elsewhere (read back from the topic).
    pub fn learn(&mut self, m: &ChatMessage) {
        if self.known.len() >= self.limit {
            // Forget everything rather than grow without bound; later replies to forgotten
            // messages open new bubbles, which strategies handle as orphans.
            self.known.clear();
        }
        self.known.insert(
            m.message_id.clone(),
            (m.context_id.clone(), m.thread_id.clone()),
        );
    }

    /// The message with its bubble decided.
    pub fn assign(&mut self, d: Draft) -> Result<ChatMessage, ContextError> {
        let parent = d.parent_message_id.as_ref().and_then(|p| self.known.get(p));
        let own = format!("ctx-{}", d.message_id);
        let (context_id, thread_id) = match (d.kind, parent) {
            (MessageKind::Reply | MessageKind::Reaction, Some((c, t))) => (c.clone(), t.clone()),
            (MessageKind::Quote, Some((_, t))) => (own, t.clone()),
            _ => (own.clone(), own),
        };
        let m = ChatMessage {
            partition_hint: Some(stable_partition(&context_id, self.partitions)),
            message_id: d.message_id,
            content: d.content,
            context_id,
            parent_message_id: d.parent_message_id,
            thread_id,
            sender_id: d.sender_id,
            sender_name: d.sender_name,
            chat_id: d.chat_id,
            timestamp: d.timestamp,
            mentions: d.mentions,
            kind: d.kind,
            emoji: d.emoji,
        };
        m.validate()?;
        self.learn(&m);
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(id: &str, parent: Option<&str>, kind: MessageKind) -> Draft {
        Draft {
            message_id: id.into(),
            content: format!("text of {id}"),
            parent_message_id: parent.map(Into::into),
            sender_id: "u1".into(),
            sender_name: "Ann".into(),
            chat_id: "room".into(),
            timestamp: 1,
            kind,
            emoji: (kind == MessageKind::Reaction).then(|| "👍".into()),
            ..Draft::default()
        }
    }

    #[test]
    fn replies_stay_in_their_bubble_and_partition() {
        let mut a = BubbleAssigner::new(10, 1000);
        let root = a.assign(draft("m1", None, MessageKind::Message)).unwrap();
        assert_eq!(root.context_id, "ctx-m1");
        assert_eq!(root.thread_id, root.context_id);
        let reply = a
            .assign(draft("m2", Some("m1"), MessageKind::Reply))
            .unwrap();
        let deeper = a
            .assign(draft("m3", Some("m2"), MessageKind::Reply))
            .unwrap();
        let like = a
            .assign(draft("m4", Some("m3"), MessageKind::Reaction))
            .unwrap();
        for m in [&reply, &deeper, &like] {
            assert_eq!(m.context_id, root.context_id);
            assert_eq!(m.partition_hint, root.partition_hint);
        }
        let quote = a
            .assign(draft("m5", Some("m2"), MessageKind::Quote))
            .unwrap();
        assert_eq!(quote.context_id, "ctx-m5");
        assert_eq!(quote.thread_id, root.thread_id);
        let orphan = a
            .assign(draft("m6", Some("gone"), MessageKind::Reply))
            .unwrap();
        assert_eq!(orphan.context_id, "ctx-m6");
    }

    #[test]
    fn the_partition_hash_is_kafkas_and_stable() {
        // Kafka's murmur2 of "ctx-m1", the same in every process and run.
        let p = stable_partition("ctx-m1", 10);
        assert_eq!(p, stable_partition("ctx-m1", 10));
        assert_eq!(
            p,
            ((eddy_types::murmur2(b"ctx-m1") & 0x7fff_ffff) as u32) % 10
        );
        assert_eq!(user_topic("42"), "user_42");
        assert_eq!(room_topic("general"), "chatroom_general");
    }

    #[test]
    fn both_encodings_are_read() {
        let mut a = BubbleAssigner::new(10, 10);
        let m = a.assign(draft("m1", None, MessageKind::Message)).unwrap();
        assert_eq!(ChatMessage::decode(&m.to_json().unwrap()).unwrap(), m);
        assert_eq!(ChatMessage::decode(&m.to_msgpack().unwrap()).unwrap(), m);
        // What a Python producer sends with json.dumps: optional fields left out.
        let py = br#"{"message_id": "x", "content": "hi", "context_id": "c", "thread_id": "c",
            "sender_id": "u", "chat_id": "r", "timestamp": 5, "parent_message_id": null}"#;
        let m = ChatMessage::decode(py).unwrap();
        assert_eq!((m.kind, m.partition_hint), (MessageKind::Message, None));
        assert!(ChatMessage::decode(b"\x01\x02garbage").is_err());
        assert!(ChatMessage::decode(b"{\"message_id\": 1}").is_err());
        let bad = br#"{"message_id": "x", "context_id": "c", "thread_id": "c", "sender_id": "u",
            "chat_id": "r", "timestamp": 5, "kind": "reply"}"#;
        assert!(matches!(
            ChatMessage::decode(bad),
            Err(ContextError::Invalid(_))
        ));
    }
}
