//! IRC logs as chat messages, for evaluating strategies on the Ubuntu IRC disentanglement
//! corpus (`../shared/context-eval`): `[HH:MM] <nick> text` and `[HH:MM]  * nick action`
//! lines are messages (ids are line numbers, timestamps minutes counted across midnight);
//! `=== ...` lines are system messages that no strategy sees.

use crate::message::{ChatMessage, MessageKind};
use crate::strategy::ContextStrategy;

/// Turns the lines of one log into messages, in order.
#[derive(Debug, Clone, Default)]
pub struct IrcLog {
    day: i64,
    last_minute: Option<i64>,
}

impl IrcLog {
    /// A reader at the start of a log.
    pub fn new() -> IrcLog {
        IrcLog::default()
    }

    /// Line `index` as a message of `chat`; `None` for a system line or an unreadable one.
    pub fn message(&mut self, index: usize, line: &str, chat: &str) -> Option<ChatMessage> {
        let rest = line.strip_prefix('[')?;
        let (hh, rest) = rest.split_once(':')?;
        let (mm, rest) = rest.split_once(']')?;
        let minute = hh.parse::<i64>().ok()? * 60 + mm.parse::<i64>().ok()?;
        let rest = rest.trim_start();
        let (nick, text) = if let Some(r) = rest.strip_prefix('<') {
            let (nick, text) = r.split_once('>')?;
            (nick, text.trim_start())
        } else if let Some(r) = rest.strip_prefix("* ") {
            r.split_once(' ').unwrap_or((r, ""))
        } else {
            return None;
        };
        if nick.is_empty() {
            return None;
        }
        if self.last_minute.is_some_and(|last| minute < last) {
            self.day += 1;
        }
        self.last_minute = Some(minute);
        let id = index.to_string();
        Some(ChatMessage {
            message_id: id.clone(),
            content: text.to_owned(),
            context_id: format!("{chat}-{id}"),
            parent_message_id: None,
            thread_id: format!("{chat}-{id}"),
            partition_hint: None,
            sender_id: nick.to_owned(),
            sender_name: nick.to_owned(),
            chat_id: chat.to_owned(),
            timestamp: (self.day * 1440 + minute) * 60_000,
            mentions: Vec::new(),
            kind: MessageKind::Message,
            emoji: None,
        })
    }
}

/// Feeds a log to `strategy`; answers, for every line, the line it replies to (itself when it
/// starts a conversation, and for system lines).
pub fn disentangle(strategy: &mut dyn ContextStrategy, lines: &[&str], chat: &str) -> Vec<usize> {
    let mut log = IrcLog::new();
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| match log.message(i, line, chat) {
            Some(m) => strategy
                .observe(&m)
                .parent
                .and_then(|p| p.parse::<usize>().ok())
                .filter(|&p| p < i)
                .unwrap_or(i),
            None => i,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_messages() {
        let mut log = IrcLog::new();
        let m = log.message(7, "[23:59] <ann> hi: there", "c").unwrap();
        assert_eq!((m.message_id.as_str(), m.sender_id.as_str()), ("7", "ann"));
        assert_eq!(m.content, "hi: there");
        let a = log.message(8, "[00:01]  * bob waves", "c").unwrap();
        assert_eq!((a.sender_id.as_str(), a.content.as_str()), ("bob", "waves"));
        assert_eq!(a.timestamp - m.timestamp, 2 * 60_000, "midnight is crossed");
        assert!(log.message(9, "=== ann has joined #ubuntu", "c").is_none());
        assert!(log.message(10, "garbage", "c").is_none());
        let empty = log.message(11, "[00:02] <cid>", "c").unwrap();
        assert_eq!(empty.content, "");
    }
}
