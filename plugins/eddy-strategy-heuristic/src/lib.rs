//! Owns the `heuristic` context strategy: conversation disentanglement without a model. A
//! message with an explicit parent keeps it; any other message is attached to a bubble by
//! rules over who it addresses, who spoke recently and time gaps:
//!
//! 1. It addresses someone (its `mentions`, or a leading `nick:` / `nick,` naming a recent
//!    speaker, as IRC users write): it answers that person's latest message, if they spoke
//!    within `address_window_secs`.
//! 2. Else, if someone addressed its sender after the sender last spoke, within
//!    `respond_gap_secs`: it answers that message.
//! 3. Else, if its sender spoke within `own_gap_secs`: it continues their own last message.
//! 4. Else, optionally (`overlap` > 0), the recent message sharing the most content words
//!    (Jaccard at least `overlap`) within the last `overlap_window` messages.
//! 5. Else it starts a new bubble.
//!
//! Scored on `../shared/context-eval` (the Ubuntu IRC dev split), see this crate's README.
//! The thread of a message is the chain of these links, root first.
#![warn(missing_docs)]

use std::collections::{HashMap, HashSet};

use eddy_context::{
    Assignment, Budget, ChatMessage, Context, ContextError, ContextStrategy, History, Registry,
};
use serde::Deserialize;

/// The name it is registered under.
pub const NAME: &str = "heuristic";

/// Its parameters.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// An addressed person's latest message counts if it is at most this old (default 3600).
    pub address_window_secs: i64,
    /// A message addressing the sender counts if at most this old (default 300).
    pub respond_gap_secs: i64,
    /// The sender's own last message counts if at most this old (default 600).
    pub own_gap_secs: i64,
    /// Word-overlap fallback threshold (Jaccard of content words); 0 turns it off (default:
    /// off; on the dev split it lowers every score slightly).
    pub overlap: f64,
    /// Messages looked back at by the overlap fallback (default 20).
    pub overlap_window: usize,
    /// Most background messages offered (default 20).
    pub background: usize,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            address_window_secs: 3600,
            respond_gap_secs: 300,
            own_gap_secs: 600,
            overlap: 0.0,
            overlap_window: 20,
            background: 20,
        }
    }
}

/// What the strategy remembers of one chat.
#[derive(Debug, Clone, Default)]
struct Room {
    /// Latest message (seq, ms) of each speaker, by lower-cased name and id.
    last_by: HashMap<String, (usize, i64)>,
    /// Latest message (seq, ms) addressing each speaker.
    addressed: HashMap<String, (usize, i64)>,
    /// Recent messages' content words, for the overlap fallback.
    recent: Vec<(usize, HashSet<String>)>,
}

/// The strategy.
#[derive(Debug, Clone)]
pub struct Heuristic {
    params: Params,
    history: History,
    rooms: HashMap<String, Room>,
    /// Assigned parent of each message, by position.
    parent: Vec<Option<usize>>,
    bubble: Vec<String>,
}

impl Heuristic {
    /// A strategy with `params`.
    pub fn new(params: Params) -> Heuristic {
        Heuristic {
            params,
            history: History::new(),
            rooms: HashMap::new(),
            parent: Vec::new(),
            bubble: Vec::new(),
        }
    }

    /// The chain of assigned links ending at `seq`, root first.
    fn chain(&self, seq: usize) -> Vec<usize> {
        let mut out = vec![seq];
        let mut at = seq;
        while let Some(Some(p)) = self.parent.get(at) {
            if *p >= at {
                break;
            }
            out.push(*p);
            at = *p;
        }
        out.reverse();
        out
    }
}

/// Registers the strategy as `heuristic`.
pub fn register(registry: &mut Registry) -> Result<(), ContextError> {
    registry.register(NAME, |p: Params| Box::new(Heuristic::new(p)))
}

const STOP: &[&str] = &[
    "that", "this", "with", "have", "what", "when", "where", "which", "there", "their", "about",
    "would", "could", "should", "from", "your", "just", "like", "into", "then", "than", "them",
    "they", "will", "been", "were", "does", "dont", "doesnt", "cant", "know", "need", "want",
    "using", "used", "some",
];

fn content_words(text: &str) -> HashSet<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| w.len() >= 4)
        .map(str::to_ascii_lowercase)
        .filter(|w| !STOP.contains(&w.as_str()))
        .collect()
}

/// The person a message addresses: its first mention, else a leading `nick:`, `nick,` or
/// `nick ` naming someone who has spoken in the room (and is not the sender).
fn addressee(m: &ChatMessage, room: &Room, me: &str) -> Option<String> {
    for u in &m.mentions {
        let u = u.to_lowercase();
        if u != me && room.last_by.contains_key(&u) {
            return Some(u);
        }
    }
    let first: String = m
        .content
        .trim_start()
        .trim_start_matches('@')
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ':' && *c != ',')
        .collect::<String>()
        .to_lowercase();
    (first != me && room.last_by.contains_key(&first)).then_some(first)
}

impl ContextStrategy for Heuristic {
    fn fresh(&self) -> Box<dyn ContextStrategy> {
        Box::new(Heuristic::new(self.params.clone()))
    }

    fn name(&self) -> &str {
        NAME
    }

    fn observe(&mut self, m: &ChatMessage) -> Assignment {
        let seq = self.history.push(m);
        if seq < self.parent.len() {
            // Seen before (a replay): the same answer as then.
            return Assignment {
                parent: self.parent[seq]
                    .and_then(|p| self.history.at(p))
                    .map(|p| p.message_id.clone()),
                context_id: self.bubble[seq].clone(),
            };
        }
        let p = &self.params;
        let me = if m.sender_name.is_empty() {
            m.sender_id.to_lowercase()
        } else {
            m.sender_name.to_lowercase()
        };
        let now = m.timestamp;
        let room = self.rooms.entry(m.chat_id.clone()).or_default();
        let within = |at: i64, secs: i64| now.saturating_sub(at) <= secs.saturating_mul(1000);
        let explicit = self.history.explicit_parent(seq);
        let addr = addressee(m, room, &me);
        // Only the overlap fallback needs the words; building them is most of the cost.
        let words = if p.overlap > 0.0 {
            content_words(&m.content)
        } else {
            HashSet::new()
        };
        let parent = explicit.or_else(|| {
            if let Some(a) = &addr {
                return room
                    .last_by
                    .get(a)
                    .filter(|(_, at)| within(*at, p.address_window_secs))
                    .map(|(s, _)| *s);
            }
            let own = room.last_by.get(&me).copied();
            if let Some((s, at)) = room.addressed.get(&me).copied() {
                let after_own = own.is_none_or(|(o, _)| s > o);
                if after_own && within(at, p.respond_gap_secs) {
                    return Some(s);
                }
            }
            if let Some((s, at)) = own {
                if within(at, p.own_gap_secs) {
                    return Some(s);
                }
            }
            if p.overlap > 0.0 && !words.is_empty() {
                let start = room.recent.len().saturating_sub(p.overlap_window);
                let mut best: Option<(f64, usize)> = None;
                for (s, w) in &room.recent[start..] {
                    if w.is_empty() {
                        continue;
                    }
                    let inter = words.intersection(w).count() as f64;
                    let score = inter / words.union(w).count() as f64;
                    if score >= p.overlap && best.is_none_or(|(b, _)| score > b) {
                        best = Some((score, *s));
                    }
                }
                return best.map(|(_, s)| s);
            }
            None
        });
        room.last_by.insert(me.clone(), (seq, now));
        if !m.sender_id.is_empty() {
            room.last_by.insert(m.sender_id.to_lowercase(), (seq, now));
        }
        if let Some(a) = addr {
            room.addressed.insert(a, (seq, now));
        }
        if p.overlap > 0.0 {
            room.recent.push((seq, words));
            if room.recent.len() > 4 * p.overlap_window.max(1) {
                let cut = room.recent.len() - p.overlap_window.max(1);
                room.recent.drain(..cut);
            }
        }
        let context_id = parent
            .and_then(|s| self.bubble.get(s).cloned())
            .unwrap_or_else(|| m.context_id.clone());
        self.parent.push(parent);
        self.bubble.push(context_id.clone());
        Assignment {
            parent: parent.and_then(|s| self.history.id(s)).map(str::to_owned),
            context_id,
        }
    }

    fn context_for(&self, message_id: &str, budget: &Budget) -> Option<Context> {
        let seq = self.history.seq(message_id)?;
        let chat = &self.history.at(seq)?.chat_id;
        let thread = self.chain(seq);
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
    use eddy_context::{conformance, MessageKind};

    fn irc(i: usize, min: i64, who: &str, text: &str) -> ChatMessage {
        ChatMessage {
            message_id: i.to_string(),
            content: text.into(),
            context_id: format!("c{i}"),
            parent_message_id: None,
            thread_id: format!("c{i}"),
            partition_hint: None,
            sender_id: who.into(),
            sender_name: who.into(),
            chat_id: "#ubuntu".into(),
            timestamp: min * 60_000,
            mentions: vec![],
            kind: MessageKind::Message,
            emoji: None,
        }
    }

    #[test]
    fn conforms() {
        conformance::check(|| Box::new(Heuristic::new(Params::default())));
        conformance::check(|| {
            Box::new(Heuristic::new(Params {
                overlap: 0.2,
                ..Params::default()
            }))
        });
    }

    #[test]
    fn addressing_answering_and_continuing_are_linked() {
        let chat = [
            irc(
                0,
                0,
                "yohannes",
                "can anyone recommend an app to open rar files?",
            ),
            irc(1, 0, "hikaru", "yohannes, why not WinRAR?"),
            irc(2, 0, "hikaru", "http://www.rarlab.com/"),
            irc(
                3,
                1,
                "yohannes",
                "i am weighing my options. any other apps?",
            ),
            irc(4, 1, "nafallo", "file-roller"),
            irc(5, 30, "zed", "is the wifi down for anyone?"),
            irc(6, 31, "yohannes", "thanks all"),
        ];
        let mut s = Heuristic::new(Params::default());
        let parents: Vec<Option<String>> = chat.iter().map(|m| s.observe(m).parent).collect();
        let p = |i: usize| parents[i].as_deref();
        assert_eq!(p(0), None, "a question starts a bubble");
        assert_eq!(p(1), Some("0"), "addressed to yohannes: his latest message");
        assert_eq!(p(2), Some("1"), "hikaru continues himself");
        assert_eq!(p(3), Some("1"), "yohannes answers who addressed him");
        assert_eq!(
            p(4),
            None,
            "nafallo said nothing before and addresses no one"
        );
        assert_eq!(p(5), None, "a new speaker, a new bubble");
        assert_eq!(p(6), None, "30 minutes later: a new bubble");
        let ctx = s.context_for("3", &Budget::default()).unwrap();
        let thread: Vec<&str> = ctx.thread.iter().map(|m| m.message_id.as_str()).collect();
        assert_eq!(thread, ["0", "1", "3"]);
        let a = s.observe(&chat[3]);
        assert_eq!(a.parent.as_deref(), Some("1"), "a replay answers the same");
    }

    #[test]
    fn explicit_parents_and_mentions_win() {
        let mut s = Heuristic::new(Params::default());
        s.observe(&irc(0, 0, "ann", "first"));
        s.observe(&irc(1, 0, "bob", "second"));
        let mut reply = irc(2, 0, "cid", "bob: not this one");
        reply.parent_message_id = Some("0".into());
        reply.kind = MessageKind::Reply;
        assert_eq!(s.observe(&reply).parent.as_deref(), Some("0"));
        let mut mention = irc(3, 0, "dan", "hello there");
        mention.mentions = vec!["ann".into()];
        assert_eq!(s.observe(&mention).parent.as_deref(), Some("0"));
    }
}
