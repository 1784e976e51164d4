//! A [`Responder`] over an OpenAI-compatible chat-completions endpoint: OpenAI itself, or a
//! local server (llama.cpp's `llama-server`, vLLM, Ollama) at any base URL. The message's
//! context is the prompt; the model answers with one line that becomes a consumer response:
//! plain text (a reply), `REACT <emoji>`, `QUOTE <text>`, `@<user> <text>` (a mention of
//! someone in the context pool), or `PASS`. Calls are blocking with a timeout: run it in the
//! [`crate::responder`] worker, which retries and never blocks the pipeline.

use std::time::Duration;

use eddy_context::{ChatMessage, Context, ContextError, Responder, Response};
use serde::Deserialize;
use serde_json::{json, Value};

/// Where and how to call the model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiConfig {
    /// The API's base URL, up to and including its version (e.g. `http://127.0.0.1:11434/v1`
    /// for Ollama, `https://api.openai.com/v1`); `/chat/completions` is appended.
    pub base_url: String,
    /// The model name.
    pub model: String,
    /// The bearer token, if the endpoint wants one.
    #[serde(default)]
    pub api_key: Option<String>,
    /// One call's limit, connect to last byte (30 s).
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// `max_tokens` (256).
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// `temperature` (0.2).
    #[serde(default = "default_temperature")]
    pub temperature: f32,
    /// Replaces the default system prompt.
    #[serde(default)]
    pub system_prompt: Option<String>,
}

fn default_timeout() -> u64 {
    30_000
}
fn default_max_tokens() -> u32 {
    256
}
fn default_temperature() -> f32 {
    0.2
}

impl OpenAiConfig {
    /// A config with the defaults for `base_url` and `model`.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> OpenAiConfig {
        OpenAiConfig {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            timeout_ms: default_timeout(),
            max_tokens: default_max_tokens(),
            temperature: default_temperature(),
            system_prompt: None,
        }
    }
}

/// The responder. See the [module docs](self).
#[derive(Debug)]
pub struct OpenAiResponder {
    agent: ureq::Agent,
    url: String,
    config: OpenAiConfig,
    name: String,
}

const SYSTEM_PROMPT: &str = "You are {name}, a member of a group chat. You are shown the \
thread of one message and some earlier messages of the chat. Answer with exactly one line: \
a short reply; or REACT followed by one emoji; or QUOTE followed by a comment on the \
message; or @user_id followed by a question for someone who spoke earlier; or PASS to say \
nothing.";

impl OpenAiResponder {
    /// A responder named `name` (its display name in the chat) calling `config`'s endpoint.
    pub fn new(
        name: impl Into<String>,
        config: OpenAiConfig,
    ) -> Result<OpenAiResponder, ContextError> {
        let base = config.base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ContextError::Invalid(format!(
                "base_url {:?} must start with http:// or https://",
                config.base_url
            )));
        }
        if config.model.trim().is_empty() {
            return Err(ContextError::Invalid("model must not be empty".into()));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_millis(config.timeout_ms.max(1))))
            .http_status_as_error(false)
            .build()
            .into();
        Ok(OpenAiResponder {
            agent,
            url: format!("{base}/chat/completions"),
            config,
            name: name.into(),
        })
    }

    fn prompt(&self, message: &ChatMessage, context: &Context) -> String {
        let line = |m: &ChatMessage| {
            let who = if m.sender_name.is_empty() {
                &m.sender_id
            } else {
                &m.sender_name
            };
            format!(
                "[{}] {} ({}): {}",
                m.message_id, who, m.sender_id, m.content
            )
        };
        let mut p = String::new();
        if !context.background.is_empty() {
            p.push_str("Earlier in the chat:\n");
            for m in &context.background {
                p.push_str(&line(m));
                p.push('\n');
            }
            p.push('\n');
        }
        p.push_str("The thread:\n");
        for m in context
            .thread
            .iter()
            .filter(|m| m.message_id != message.message_id)
        {
            p.push_str(&line(m));
            p.push('\n');
        }
        p.push_str("\nThe message to answer:\n");
        p.push_str(&line(message));
        p
    }
}

/// The model's line as responses; `pool` are the user ids a mention may address.
pub fn parse_answer(text: &str, pool: &[&str]) -> Vec<Response> {
    let line = text.trim().lines().next().unwrap_or("").trim();
    if line.is_empty() || line.eq_ignore_ascii_case("pass") {
        return vec![];
    }
    if let Some(emoji) = line.strip_prefix("REACT") {
        let emoji = emoji.trim();
        return if emoji.is_empty() {
            vec![]
        } else {
            vec![Response::Reaction(emoji.to_owned())]
        };
    }
    if let Some(comment) = line.strip_prefix("QUOTE") {
        return vec![Response::Quote(comment.trim().to_owned())];
    }
    if let Some(rest) = line.strip_prefix('@') {
        let (user, text) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        if pool.contains(&user) {
            return vec![Response::Mention {
                user: user.to_owned(),
                text: text.trim().to_owned(),
            }];
        }
    }
    vec![Response::Reply(line.to_owned())]
}

fn failure(message: String, retriable: bool) -> ContextError {
    ContextError::Responder { message, retriable }
}

impl Responder for OpenAiResponder {
    fn name(&self) -> &str {
        "openai"
    }

    fn respond(
        &mut self,
        message: &ChatMessage,
        context: &Context,
    ) -> Result<Vec<Response>, ContextError> {
        let system = self
            .config
            .system_prompt
            .clone()
            .unwrap_or_else(|| SYSTEM_PROMPT.replace("{name}", &self.name));
        let body = json!({
            "model": self.config.model,
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": self.prompt(message, context)},
            ],
            "max_tokens": self.config.max_tokens,
            "temperature": self.config.temperature,
            "stream": false,
        });
        let mut request = self.agent.post(&self.url);
        if let Some(key) = &self.config.api_key {
            request = request.header("Authorization", &format!("Bearer {key}"));
        }
        let mut response = request.send_json(&body).map_err(|e| {
            // Timeouts, refused or reset connections, DNS: worth another try.
            failure(format!("{}: {e}", self.url), true)
        })?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(4 << 20)
            .read_to_string()
            .map_err(|e| failure(format!("{}: reading the answer: {e}", self.url), true))?;
        if status != 200 {
            let retriable = status == 408 || status == 429 || status >= 500;
            let detail: String = text.chars().take(300).collect();
            return Err(failure(
                format!("{} answered {status}: {detail}", self.url),
                retriable,
            ));
        }
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| failure(format!("{}: the answer is not JSON: {e}", self.url), false))?;
        let content = v
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                failure(
                    format!("{}: no choices[0].message.content in the answer", self.url),
                    false,
                )
            })?;
        let pool: Vec<&str> = context
            .thread
            .iter()
            .chain(&context.background)
            .map(|m| m.sender_id.as_str())
            .filter(|s| *s != message.sender_id || context.thread.len() > 1)
            .collect();
        Ok(parse_answer(content, &pool))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_become_responses() {
        let pool = ["ann", "bob"];
        assert_eq!(parse_answer("PASS", &pool), vec![]);
        assert_eq!(parse_answer("  \n", &pool), vec![]);
        assert_eq!(
            parse_answer("REACT 🎉", &pool),
            vec![Response::Reaction("🎉".into())]
        );
        assert_eq!(
            parse_answer("QUOTE good point\nmore", &pool),
            vec![Response::Quote("good point".into())]
        );
        assert_eq!(
            parse_answer("@bob can you check?", &pool),
            vec![Response::Mention {
                user: "bob".into(),
                text: "can you check?".into()
            }]
        );
        // A mention of someone outside the pool is only text.
        assert_eq!(
            parse_answer("@eve hi", &pool),
            vec![Response::Reply("@eve hi".into())]
        );
        assert_eq!(
            parse_answer("Sure, at 3.", &pool),
            vec![Response::Reply("Sure, at 3.".into())]
        );
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(OpenAiResponder::new("Eddy", OpenAiConfig::new("ftp://x", "m")).is_err());
        assert!(OpenAiResponder::new("Eddy", OpenAiConfig::new("http://x/v1", " ")).is_err());
        assert!(OpenAiResponder::new("Eddy", OpenAiConfig::new("http://x/v1/", "m")).is_ok());
    }
}
