//! Context bubbles, end to end: a group chat replayed from a transcript into per-user topics
//! (`user_<id>`, 10 partitions), each message given its bubble by the producer (a reply
//! inherits its parent's, and `partition_hint` keeps a bubble on one partition), the context
//! consumer running a strategy over all of them, and an LLM consumer (the model-free offline
//! responder by default, or any OpenAI-compatible endpoint) answering with replies, quotes,
//! emoji reactions and @mentions. At the end the whole conversation is printed, grouped by
//! bubble.
//!
//! Embedded (an in-process cluster, the default) or `--bootstrap host:port` (any
//! Kafka-protocol cluster: `eddy serve`, Apache Kafka, Redpanda), through the same client
//! trait (`eddy_pipeline::StreamClient`).
//!
//! `--short` replays the first 12 messages; `--json` ends with a one-line summary for scripts
//! and tests.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use clap::Parser;
use eddy_broker::{ClusterConfig, EmbeddedCluster};
use eddy_context::{
    user_topic, BubbleAssigner, ChatMessage, Draft, MessageKind, OfflineResponder, Registry,
    Responder,
};
use eddy_pipeline::{
    read_to_end, ContextConfig, EmbeddedClient, KafkaClient, OpenAiConfig, OpenAiResponder,
    OutRecord, RunningContext, StreamClient, Subscription,
};
use serde_json::json;

const PARTITIONS: u32 = 10;
const BOT: &str = "eddy-bot";

/// Replays a group chat into per-user topics and answers it with an LLM consumer.
#[derive(Debug, Parser)]
struct Args {
    /// A Kafka-protocol cluster (host:port); without it, an in-process cluster.
    #[arg(long)]
    bootstrap: Option<String>,
    /// The context strategy: heuristic, reply-chain or recent-window.
    #[arg(long, default_value = "heuristic")]
    strategy: String,
    /// The transcript (`seconds | id | parent or - | sender | text` lines) [default: the
    /// built-in one].
    #[arg(long)]
    transcript: Option<PathBuf>,
    /// Replays only the first 12 messages.
    #[arg(long)]
    short: bool,
    /// Ends with a one-line JSON summary.
    #[arg(long)]
    json: bool,
    /// An OpenAI-compatible endpoint for the answers (e.g. http://127.0.0.1:11434/v1);
    /// without it, the offline responder.
    #[arg(long, env = "EDDY_OPENAI_BASE_URL")]
    openai_base_url: Option<String>,
    /// The model to ask.
    #[arg(long, env = "EDDY_OPENAI_MODEL", default_value = "llama3")]
    openai_model: String,
    /// The API key, if the endpoint wants one.
    #[arg(long, env = "EDDY_OPENAI_API_KEY", hide_env_values = true)]
    openai_api_key: Option<String>,
}

/// One line of the transcript.
#[derive(Debug, Clone)]
struct Line {
    secs: i64,
    id: String,
    parent: Option<String>,
    sender: String,
    text: String,
}

fn parse_transcript(text: &str) -> anyhow::Result<Vec<Line>> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let raw = raw.trim();
        if raw.is_empty() || raw.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = raw.splitn(5, '|').map(str::trim).collect();
        let [secs, id, parent, sender, text] = f[..] else {
            bail!("transcript line {}: want 5 fields separated by |", n + 1);
        };
        out.push(Line {
            secs: secs
                .parse()
                .with_context(|| format!("transcript line {}: seconds", n + 1))?,
            id: id.to_owned(),
            parent: (parent != "-").then(|| parent.to_owned()),
            sender: sender.to_owned(),
            text: text.to_owned(),
        });
    }
    Ok(out)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let text = match &args.transcript {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("cannot read the transcript {}", p.display()))?,
        None => include_str!("../transcript.txt").to_owned(),
    };
    let mut lines = parse_transcript(&text)?;
    if args.short {
        lines.truncate(12);
    }
    if lines.is_empty() {
        bail!("the transcript has no messages");
    }
    let mut registry = Registry::new();
    eddy_strategy_reply_chain::register(&mut registry)?;
    eddy_strategy_recent_window::register(&mut registry)?;
    eddy_strategy_heuristic::register(&mut registry)?;
    let strategy = registry.build(&args.strategy, serde_json::Value::Null)?;
    let responder: Box<dyn Responder> = match &args.openai_base_url {
        Some(url) => {
            let mut c = OpenAiConfig::new(url.clone(), args.openai_model.clone());
            c.api_key = args.openai_api_key.clone();
            Box::new(OpenAiResponder::new("Eddy", c)?)
        }
        None => Box::new(OfflineResponder),
    };
    let dir = tempfile::tempdir().context("cannot make a temporary directory")?;
    // Each run is its own chat, so that runs against a shared cluster do not mix.
    let run = now_ms();
    let mut users: Vec<String> = lines.iter().map(|l| l.sender.clone()).collect();
    users.sort();
    users.dedup();
    let mut config = ContextConfig::new(
        dir.path().join("context"),
        Subscription::Topics(
            users
                .iter()
                .map(|u| user_topic(u))
                .chain([user_topic(BOT)])
                .collect(),
        ),
    );
    config.group = format!("context-bubbles-{run}");
    config.responding.sender_id = BOT.into();
    config.responding.partitions = PARTITIONS;

    let system = actix_rt::System::new();
    match &args.bootstrap {
        None => {
            let eddy = EmbeddedCluster::open(ClusterConfig::new(
                "context-bubbles",
                dir.path().join("cluster"),
            ))?;
            let cluster = eddy.cluster();
            let result = system.block_on(async {
                let client = EmbeddedClient::connect(
                    &cluster,
                    "context-bubbles-reader",
                    Duration::from_secs(10),
                )
                .await?;
                let context =
                    RunningContext::spawn(cluster.clone(), strategy, Some(responder), config)?;
                replay(client, context, &lines, &users, run, &args).await
            });
            eddy.shutdown();
            result
        }
        Some(bootstrap) => system.block_on(async {
            let client =
                KafkaClient::connect(bootstrap, "context-bubbles-reader", Duration::from_secs(10))?;
            let context =
                RunningContext::spawn_kafka(bootstrap.clone(), strategy, Some(responder), config)?;
            replay(client, context, &lines, &users, run, &args).await
        }),
    }
}

/// Produces the chat, waits for the consumer's answers, reads everything back and prints it.
async fn replay<C: StreamClient>(
    mut client: C,
    context: RunningContext,
    lines: &[Line],
    users: &[String],
    run: i64,
    args: &Args,
) -> anyhow::Result<()> {
    let chat_id = format!("team-{run}");
    for u in users.iter().map(String::as_str).chain([BOT]) {
        client.ensure_topic(&user_topic(u), PARTITIONS).await?;
    }
    // The producer side: bubbles and partition hints, then one record per message.
    let start = now_ms() - lines.last().map_or(0, |l| l.secs) * 1000 - 1000;
    let mut bubbles = BubbleAssigner::new(PARTITIONS, 100_000);
    let mut ids = HashMap::new();
    for l in lines {
        let message_id = format!("{run}-{}", l.id);
        let parent =
            match &l.parent {
                Some(p) => Some(ids.get(p).cloned().with_context(|| {
                    format!("{} replies to {p}, which comes later or never", l.id)
                })?),
                None => None,
            };
        ids.insert(l.id.clone(), message_id.clone());
        let mentions = l
            .text
            .split_whitespace()
            .filter_map(|w| w.strip_prefix('@'))
            .map(|w| {
                w.trim_end_matches(|c: char| !c.is_alphanumeric())
                    .to_owned()
            })
            .collect();
        let m = bubbles.assign(Draft {
            message_id,
            content: l.text.clone(),
            kind: if parent.is_some() {
                MessageKind::Reply
            } else {
                MessageKind::Message
            },
            parent_message_id: parent,
            sender_id: l.sender.clone(),
            sender_name: capitalized(&l.sender),
            chat_id: chat_id.clone(),
            timestamp: start + l.secs * 1000,
            mentions,
            emoji: None,
        })?;
        let sent = client
            .send_all(vec![OutRecord {
                topic: user_topic(&m.sender_id),
                partition: m.partition_hint,
                key: Some(Bytes::from(m.context_id.clone())),
                value: Bytes::from(m.to_json()?),
                timestamp: Some(m.timestamp),
                headers: Vec::new(),
            }])
            .await;
        for r in sent {
            r?;
        }
    }
    // Every message observed and every answer produced, and nothing new for a while.
    let handle = context.handle();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = (u64::MAX, Instant::now());
    loop {
        let observed = handle.observed();
        if observed != last.0 {
            last = (observed, Instant::now());
        }
        let settled = observed >= lines.len() as u64
            && handle.pending_responses() == 0
            && last.1.elapsed() >= Duration::from_secs(1);
        if settled {
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "the context consumer observed {observed} messages and still waits on {} answers",
                handle.pending_responses()
            );
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    context.stop()?;

    // Everything back from the topics, this run's chat only.
    let mut partitions = Vec::new();
    for u in users.iter().map(String::as_str).chain([BOT]) {
        let topic = user_topic(u);
        let n = client.partitions(&topic).await?.unwrap_or(0);
        partitions.extend((0..n).map(|p| ((topic.clone(), p), 0)));
    }
    let mut messages: Vec<(u32, ChatMessage)> = Vec::new();
    for r in read_to_end(&mut client, &partitions).await? {
        let Some(v) = r.value else { continue };
        if let Ok(m) = ChatMessage::decode(&v) {
            if m.chat_id == chat_id {
                messages.push((r.partition, m));
            }
        }
    }
    client.close().await?;
    messages
        .sort_by(|a, b| (a.1.timestamp, &a.1.message_id).cmp(&(b.1.timestamp, &b.1.message_id)));
    print_conversation(&messages, run, args, lines.len())
}

/// An id without this run's prefix.
fn short_id(id: &str, run: i64) -> String {
    id.replace(&format!("{run}-"), "")
}

fn print_conversation(
    messages: &[(u32, ChatMessage)],
    run: i64,
    args: &Args,
    replayed: usize,
) -> anyhow::Result<()> {
    let by_id: HashMap<&str, &ChatMessage> = messages
        .iter()
        .map(|(_, m)| (m.message_id.as_str(), m))
        .collect();
    let mut bubbles: BTreeMap<(i64, &str), Vec<&(u32, ChatMessage)>> = BTreeMap::new();
    let mut first: HashMap<&str, i64> = HashMap::new();
    for pm in messages {
        let ctx = pm.1.context_id.as_str();
        let t = *first.entry(ctx).or_insert(pm.1.timestamp);
        bubbles.entry((t, ctx)).or_default().push(pm);
    }
    let mut one_partition = true;
    let mut parents_known = true;
    let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
    for ((_, ctx), list) in &bubbles {
        let partition = list[0].0;
        one_partition &= list.iter().all(|(p, _)| *p == partition);
        let thread = &list[0].1.thread_id;
        let thread_note = if thread == ctx {
            String::new()
        } else {
            format!(", in the thread of {}", short_id(thread, run))
        };
        println!(
            "── bubble {} (partition {partition}{thread_note})",
            short_id(ctx, run)
        );
        for (_, m) in list {
            let to = m.parent_message_id.as_deref().map(|p| {
                by_id
                    .get(p)
                    .map_or_else(|| short_id(p, run), |pm| pm.sender_name.clone())
            });
            if m.sender_id == BOT {
                *kinds.entry(kind_name(m.kind)).or_default() += 1;
                parents_known &= m
                    .parent_message_id
                    .as_deref()
                    .is_some_and(|p| by_id.contains_key(p));
            }
            let line = match (m.kind, &to) {
                (MessageKind::Reaction, Some(to)) => format!(
                    "{} reacted {} to {to}",
                    m.sender_name,
                    m.emoji.as_deref().unwrap_or("?")
                ),
                (MessageKind::Quote, Some(to)) => format!(
                    "{} quoted {to}:\n      {}",
                    m.sender_name,
                    m.content.replace('\n', "\n      ")
                ),
                (_, Some(to)) => format!("{} → {to}: {}", m.sender_name, m.content),
                (_, None) => format!("{}: {}", m.sender_name, m.content),
            };
            println!("   {:>4}  {line}", short_id(&m.message_id, run));
        }
    }
    if args.json {
        let chat = messages.iter().filter(|(_, m)| m.sender_id != BOT).count();
        println!(
            "{}",
            json!({
                "replayed": replayed,
                "messages": chat,
                "bubbles": bubbles.len(),
                "responses": kinds,
                "one_partition_per_bubble": one_partition,
                "every_response_answers_a_message": parents_known,
                "strategy": args.strategy,
                "mode": if args.bootstrap.is_some() { "bootstrap" } else { "embedded" },
            })
        );
    }
    Ok(())
}

fn kind_name(k: MessageKind) -> &'static str {
    match k {
        MessageKind::Message => "message",
        MessageKind::Reply => "reply",
        MessageKind::Quote => "quote",
        MessageKind::Reaction => "reaction",
        MessageKind::Mention => "mention",
    }
}
