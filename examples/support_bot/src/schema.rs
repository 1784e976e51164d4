//! The typed records of each topic, checked on read: a record that does not parse, has
//! unknown fields, or breaks a rule goes to the dead-letter topic with the reason.

use serde::{Deserialize, Serialize};

/// `chat-messages`: one message of the channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChatLine {
    /// Unique id.
    pub(crate) id: String,
    /// The channel.
    pub(crate) channel: String,
    /// Who wrote it.
    pub(crate) user: String,
    /// What they wrote.
    pub(crate) text: String,
    /// When, ms since the epoch.
    pub(crate) ts: i64,
}

/// `bot-queries`: a question for the bot (a chat message with a trigger phrase).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BotQuery {
    /// The id of the chat message that asked.
    pub(crate) query_id: String,
    /// The channel.
    pub(crate) channel: String,
    /// Who asked.
    pub(crate) user: String,
    /// The question, trigger phrase removed.
    pub(crate) question: String,
    /// When, ms since the epoch.
    pub(crate) ts: i64,
}

/// `bot-responses`: the bot's answer to a query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BotResponse {
    /// The query answered.
    pub(crate) query_id: String,
    /// Where to post it.
    pub(crate) channel: String,
    /// Who asked.
    pub(crate) user: String,
    /// The answer.
    pub(crate) answer: String,
    /// The chat messages it was drawn from.
    pub(crate) sources: Vec<String>,
    /// When, ms since the epoch.
    pub(crate) ts: i64,
}

fn required(field: &str, value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{field} is empty"));
    }
    Ok(())
}

/// A record that can be checked.
pub(crate) trait Checked: Sized + serde::de::DeserializeOwned {
    /// Parses and checks `bytes`; the error is the dead-letter reason.
    fn read(bytes: &[u8]) -> Result<Self, String> {
        let v: Self = serde_json::from_slice(bytes).map_err(|e| format!("schema: {e}"))?;
        v.check()?;
        Ok(v)
    }
    /// The rules beyond the shape.
    fn check(&self) -> Result<(), String>;
}

impl Checked for ChatLine {
    fn check(&self) -> Result<(), String> {
        required("id", &self.id)?;
        required("user", &self.user)?;
        required("text", &self.text)?;
        if self.text.chars().count() > 4000 {
            return Err("text is longer than 4000 characters".into());
        }
        if self.ts <= 0 {
            return Err("ts must be positive".into());
        }
        Ok(())
    }
}

impl Checked for BotQuery {
    fn check(&self) -> Result<(), String> {
        required("query_id", &self.query_id)?;
        required("question", &self.question)
    }
}

impl Checked for BotResponse {
    fn check(&self) -> Result<(), String> {
        required("query_id", &self.query_id)?;
        required("answer", &self.answer)
    }
}
