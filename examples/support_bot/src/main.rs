//! The help-desk bot pipeline on Eddy. A transcript of a help channel is replayed into
//! `chat-messages` (3 partitions, kept 7 days); lines with a trigger phrase ("@bot",
//! "hey bot") also become queries on `bot-queries` (3 partitions, 1 day). The processor
//! indexes every chat message in a tantivy search index, answers each query from the
//! messages it retrieves through a responder (the retrieval-only offline one, or any
//! OpenAI-compatible model) behind retries, backoff and a circuit breaker, and writes the
//! answers to `bot-responses` (3 partitions, 1 day). The delivery stage posts them to the
//! channel: stdout, or a webhook URL. Every record is read against its topic's schema; one
//! that does not fit (or whose model call or webhook post finally failed) goes to
//! `dead-letters` with the reason in a header, so nothing is lost.
//!
//! Embedded (an in-process cluster, the default) or `--bootstrap host:port` (any
//! Kafka-protocol cluster), through the same client trait (`eddy_pipeline::StreamClient`).

mod index;
mod schema;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use bytes::Bytes;
use clap::Parser;
use eddy_broker::{ClusterConfig, EmbeddedCluster};
use eddy_context::{ChatMessage, Context, ContextError, MessageKind, Responder, Response};
use eddy_pipeline::responder::Job;
use eddy_pipeline::{
    read_to_end, EmbeddedClient, KafkaClient, OpenAiConfig, OpenAiResponder, OutRecord,
    PipelineError, Record, ResponderWorker, StreamClient, WorkerConfig,
};
use serde_json::json;

use crate::index::ChatIndex;
use crate::schema::{BotQuery, BotResponse, ChatLine, Checked};

const CHAT: &str = "chat-messages";
const QUERIES: &str = "bot-queries";
const RESPONSES: &str = "bot-responses";
const DEAD: &str = "dead-letters";
const DAY_MS: i64 = 24 * 3600 * 1000;
const TIMEOUT: Duration = Duration::from_secs(10);
const TRIGGERS: [&str; 2] = ["@bot", "hey bot"];

/// The help-desk bot pipeline.
#[derive(Debug, Parser)]
struct Args {
    /// A Kafka-protocol cluster (host:port); without it, an in-process cluster.
    #[arg(long)]
    bootstrap: Option<String>,
    /// The transcript (`seconds | user | text` lines) [default: the built-in one].
    #[arg(long)]
    transcript: Option<std::path::PathBuf>,
    /// Posts answers to this URL (JSON `{channel, user, text}`) instead of stdout.
    #[arg(long)]
    webhook: Option<String>,
    /// Answers with an OpenAI-compatible model at this base URL instead of the offline
    /// retrieval responder.
    #[arg(long, env = "EDDY_OPENAI_BASE_URL")]
    openai_base_url: Option<String>,
    /// The model to ask.
    #[arg(long, env = "EDDY_OPENAI_MODEL", default_value = "llama3")]
    openai_model: String,
    /// The API key, if the endpoint wants one.
    #[arg(long, env = "EDDY_OPENAI_API_KEY", hide_env_values = true)]
    openai_api_key: Option<String>,
    /// Ends with a one-line JSON summary.
    #[arg(long)]
    json: bool,
    /// Replays the transcript at once; without it, at a tenth of its real pace (about 9 s),
    /// as a live channel would.
    #[arg(long)]
    short: bool,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The offline responder: the best retrieved message, quoted with its author.
#[derive(Debug)]
struct Retrieval;

impl Responder for Retrieval {
    fn name(&self) -> &str {
        "retrieval"
    }
    fn respond(
        &mut self,
        _message: &ChatMessage,
        context: &Context,
    ) -> Result<Vec<Response>, ContextError> {
        Ok(vec![Response::Reply(match context.background.first() {
            None => "I could not find anything about that in this channel yet.".into(),
            Some(best) => format!(
                "From the channel, @{} said: {}",
                best.sender_id, best.content
            ),
        })])
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let text = match &args.transcript {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("cannot read the transcript {}", p.display()))?,
        None => include_str!("../transcript.txt").to_owned(),
    };
    let responder: Box<dyn Responder> = match &args.openai_base_url {
        Some(url) => {
            let mut c = OpenAiConfig::new(url.clone(), args.openai_model.clone());
            c.api_key = args.openai_api_key.clone();
            c.system_prompt = Some(
                "You are the help desk bot of a chat channel. Answer the question in one line, \
                 only from the earlier messages shown; say so if they do not answer it."
                    .into(),
            );
            Box::new(OpenAiResponder::new("bot", c)?)
        }
        None => Box::new(Retrieval),
    };
    let dir = tempfile::tempdir().context("cannot make a temporary directory")?;
    let system = actix_rt::System::new();
    match &args.bootstrap {
        None => {
            let eddy = EmbeddedCluster::open(ClusterConfig::new("support-bot", dir.path()))?;
            let cluster = eddy.cluster();
            let result = system.block_on(run(
                || {
                    let cluster = cluster.clone();
                    async move { EmbeddedClient::connect(&cluster, "support-bot", TIMEOUT).await }
                },
                &text,
                responder,
                dir.path(),
                &args,
            ));
            eddy.shutdown();
            result
        }
        Some(bootstrap) => system.block_on(run(
            || {
                let bootstrap = bootstrap.clone();
                async move { KafkaClient::connect(&bootstrap, "support-bot", TIMEOUT) }
            },
            &text,
            responder,
            dir.path(),
            &args,
        )),
    }
}

/// One dead letter: where it came from and why.
fn dead_letter(r: &Record, reason: &str) -> OutRecord {
    let mut out = OutRecord::new(DEAD, r.value.clone().unwrap_or_default());
    out.headers = vec![
        ("reason".into(), Bytes::from(reason.to_owned())),
        ("source-topic".into(), Bytes::from(r.topic.clone())),
        (
            "source-partition".into(),
            Bytes::from(r.partition.to_string()),
        ),
        ("source-offset".into(), Bytes::from(r.offset.to_string())),
    ];
    out
}

async fn send<C: StreamClient>(client: &mut C, records: Vec<OutRecord>) -> anyhow::Result<()> {
    for r in client.send_all(records).await {
        r?;
    }
    Ok(())
}

/// Where each partition of `topics` ends now: this run reads from there on.
async fn ends<C: StreamClient>(
    client: &mut C,
    topics: &[&str],
) -> anyhow::Result<Vec<((String, u32), u64)>> {
    let mut tps = Vec::new();
    for t in topics {
        let n = client.partitions(t).await?.unwrap_or(0);
        tps.extend((0..n).map(|p| ((*t).to_owned(), p)));
    }
    let ends = client.end_offsets(&tps).await?;
    Ok(tps.into_iter().zip(ends).collect())
}

#[derive(Debug, Default)]
struct Summary {
    indexed: u64,
    queries: u64,
    answers: Vec<serde_json::Value>,
    dead: Vec<serde_json::Value>,
    delivered: u64,
}

async fn run<C, F, Fut>(
    connect: F,
    transcript: &str,
    responder: Box<dyn Responder>,
    dir: &std::path::Path,
    args: &Args,
) -> anyhow::Result<()>
where
    C: StreamClient,
    F: Fn() -> Fut,
    Fut: Future<Output = Result<C, PipelineError>>,
{
    let mut client = connect().await?;
    client.create_topic(CHAT, 3, Some(7 * DAY_MS)).await?;
    client.create_topic(QUERIES, 3, Some(DAY_MS)).await?;
    client.create_topic(RESPONSES, 3, Some(DAY_MS)).await?;
    client.create_topic(DEAD, 1, None).await?;
    let start = ends(&mut client, &[CHAT, QUERIES, RESPONSES, DEAD]).await?;
    let from = |topics: &[&str]| -> Vec<((String, u32), u64)> {
        start
            .iter()
            .filter(|((t, _), _)| topics.contains(&t.as_str()))
            .cloned()
            .collect()
    };
    let run = now_ms();
    let channel = format!("help-{run}");
    ingest(&mut client, transcript, &channel, run, args.short).await?;
    let mut summary = Summary::default();
    let mut processor = connect().await?;
    process(
        &mut processor,
        &from(&[CHAT, QUERIES]),
        responder,
        dir,
        &mut summary,
    )
    .await?;
    processor.close().await?;
    let mut delivery = connect().await?;
    deliver(&mut delivery, &from(&[RESPONSES]), args, &mut summary).await?;
    delivery.close().await?;
    for r in read_to_end(&mut client, &from(&[DEAD])).await? {
        let header = |k: &str| {
            r.headers
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        summary
            .dead
            .push(json!({"topic": header("source-topic"), "reason": header("reason")}));
    }
    client.close().await?;
    eprintln!(
        "{} messages indexed, {} queries, {} answers delivered, {} dead letters",
        summary.indexed,
        summary.queries,
        summary.delivered,
        summary.dead.len()
    );
    if args.json {
        println!(
            "{}",
            json!({
                "indexed": summary.indexed,
                "queries": summary.queries,
                "answers": summary.answers,
                "delivered": summary.delivered,
                "dead_letters": summary.dead,
                "mode": if args.bootstrap.is_some() { "bootstrap" } else { "embedded" },
            })
        );
    }
    Ok(())
}

/// The transcript into `chat-messages`, and the questions also into `bot-queries`.
async fn ingest<C: StreamClient>(
    client: &mut C,
    transcript: &str,
    channel: &str,
    run: i64,
    short: bool,
) -> anyhow::Result<()> {
    let lines: Vec<(i64, &str, &str)> = transcript
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.splitn(3, '|').map(str::trim).collect();
            match f[..] {
                [s, u, t] => Ok((s.parse::<i64>().context("seconds")?, u, t)),
                _ => bail!("transcript line {l:?}: want seconds | user | text"),
            }
        })
        .collect::<anyhow::Result<_>>()?;
    let base = now_ms() - lines.last().map_or(0, |l| l.0) * 1000 - 1000;
    let mut previous = 0;
    for (n, (secs, user, text)) in lines.into_iter().enumerate() {
        if !short {
            let gap = u64::try_from(secs - previous).unwrap_or(0);
            actix_rt::time::sleep(Duration::from_millis(gap * 100)).await;
        }
        previous = secs;
        let ts = base + secs * 1000;
        if user == "!raw" {
            let mut r = OutRecord::new(CHAT, Bytes::from(text.to_owned()));
            r.timestamp = Some(ts);
            send(client, vec![r]).await?;
            continue;
        }
        let line = ChatLine {
            id: format!("{run}-{n}"),
            channel: channel.to_owned(),
            user: user.to_owned(),
            text: text.to_owned(),
            ts,
        };
        let mut records = vec![OutRecord {
            key: Some(Bytes::from(line.user.clone())),
            timestamp: Some(ts),
            ..OutRecord::new(CHAT, serde_json::to_vec(&line)?)
        }];
        let lower = text.to_lowercase();
        if let Some(t) = TRIGGERS.iter().find(|t| lower.starts_with(*t)) {
            let q = BotQuery {
                query_id: line.id.clone(),
                channel: channel.to_owned(),
                user: user.to_owned(),
                question: text[t.len()..].trim().to_owned(),
                ts,
            };
            records.push(OutRecord {
                key: Some(Bytes::from(q.query_id.clone())),
                timestamp: Some(ts),
                ..OutRecord::new(QUERIES, serde_json::to_vec(&q)?)
            });
        }
        send(client, records).await?;
    }
    Ok(())
}

fn as_chat(id: &str, user: &str, channel: &str, text: &str, ts: i64) -> ChatMessage {
    ChatMessage {
        message_id: id.to_owned(),
        content: text.to_owned(),
        context_id: id.to_owned(),
        parent_message_id: None,
        thread_id: id.to_owned(),
        partition_hint: None,
        sender_id: user.to_owned(),
        sender_name: user.to_owned(),
        chat_id: channel.to_owned(),
        timestamp: ts,
        mentions: vec![],
        kind: MessageKind::Message,
        emoji: None,
    }
}

/// Indexes the chat and answers the queries, in timestamp order.
async fn process<C: StreamClient>(
    client: &mut C,
    from: &[((String, u32), u64)],
    responder: Box<dyn Responder>,
    dir: &std::path::Path,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let mut index = ChatIndex::open(&dir.join("index"))?;
    // Two retries with backoff per query; three failed queries in a row open the circuit
    // for 30 s, so a model that is down costs little.
    let worker = ResponderWorker::start(
        responder,
        WorkerConfig {
            failure_threshold: 3,
            ..WorkerConfig::default()
        },
    )?;
    let mut records = read_to_end(client, from).await?;
    // Chat messages before the queries of the same instant: a question is answered from
    // what was said before it.
    records.sort_by_key(|r| (r.timestamp, r.topic == QUERIES));
    // Per job: the query's record, the query, and the ids of the messages retrieved for it.
    let mut queries: BTreeMap<u64, (Record, BotQuery, Vec<String>)> = BTreeMap::new();
    let mut dead = Vec::new();
    let mut dirty = false;
    for r in &records {
        let bytes = r.value.clone().unwrap_or_default();
        if r.topic == CHAT {
            match ChatLine::read(&bytes) {
                Ok(line) => {
                    index.add(&line)?;
                    dirty = true;
                }
                Err(reason) => dead.push(dead_letter(r, &reason)),
            }
            continue;
        }
        let q = match BotQuery::read(&bytes) {
            Ok(q) => q,
            Err(reason) => {
                dead.push(dead_letter(r, &reason));
                continue;
            }
        };
        if dirty {
            index.commit()?;
            dirty = false;
        }
        let hits = index.search(&q.question, q.ts, &q.query_id, &TRIGGERS, 3)?;
        let message = as_chat(&q.query_id, &q.user, &q.channel, &q.question, q.ts);
        let context = Context {
            message_id: q.query_id.clone(),
            thread: vec![message.clone()],
            background: hits
                .iter()
                .map(|h| as_chat(&h.id, &h.user, &h.channel, &h.text, h.ts))
                .collect(),
        };
        let seq = queries.len() as u64;
        let sources = hits.iter().map(|h| h.id.clone()).collect();
        let mut job = Job {
            seq,
            topic: QUERIES.into(),
            message,
            context,
        };
        // The queue is bounded: wait for room rather than drop a query.
        let deadline = Instant::now() + Duration::from_secs(300);
        while let Err(back) = worker.submit(job) {
            job = *back;
            if Instant::now() > deadline {
                bail!("the responder took no job for 5 minutes");
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
        queries.insert(seq, (r.clone(), q, sources));
    }
    index.commit()?;
    summary.indexed = index.len();
    summary.queries = queries.len() as u64;
    let mut answers = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut done = 0;
    while done < queries.len() {
        let Some(d) = worker.wait(Duration::from_millis(100)) else {
            if Instant::now() > deadline {
                bail!("the responder answered {done} of {} queries", queries.len());
            }
            continue;
        };
        done += 1;
        let Some((record, q, sources)) = queries.get(&d.seq) else {
            continue;
        };
        let answer = match d.outcome {
            // The first answer's text (a reaction is its emoji).
            Ok(rs) => rs.into_iter().next().map(|r| match r {
                Response::Reply(t) | Response::Quote(t) | Response::Mention { text: t, .. } => t,
                Response::Reaction(e) => e,
            }),
            Err(e) => {
                dead.push(dead_letter(record, &format!("model failed: {e}")));
                continue;
            }
        };
        let Some(answer) = answer else { continue };
        let response = BotResponse {
            query_id: q.query_id.clone(),
            channel: q.channel.clone(),
            user: q.user.clone(),
            answer,
            sources: sources.clone(),
            ts: now_ms(),
        };
        summary.answers.push(json!({
            "question": q.question,
            "answer": response.answer,
            "sources": response.sources,
        }));
        answers.push(OutRecord {
            key: Some(Bytes::from(response.query_id.clone())),
            ..OutRecord::new(RESPONSES, serde_json::to_vec(&response)?)
        });
    }
    send(client, answers).await?;
    send(client, dead).await?;
    commit_read(client, from, &records).await
}

/// Commits the next offset of every partition read.
async fn commit_read<C: StreamClient>(
    client: &mut C,
    from: &[((String, u32), u64)],
    records: &[Record],
) -> anyhow::Result<()> {
    let mut next: BTreeMap<(String, u32), u64> = from.iter().cloned().collect();
    for r in records {
        let e = next.entry((r.topic.clone(), r.partition)).or_insert(0);
        *e = (*e).max(r.offset + 1);
    }
    let list: Vec<((String, u32), u64)> = next.into_iter().collect();
    client.commit(&list).await?;
    Ok(())
}

/// Posts the answers to the channel: stdout, or the webhook (3 tries with backoff, then a
/// dead letter).
async fn deliver<C: StreamClient>(
    client: &mut C,
    from: &[((String, u32), u64)],
    args: &Args,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let records = read_to_end(client, from).await?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let mut dead = Vec::new();
    for r in &records {
        let response = match BotResponse::read(&r.value.clone().unwrap_or_default()) {
            Ok(x) => x,
            Err(reason) => {
                dead.push(dead_letter(r, &reason));
                continue;
            }
        };
        let Some(url) = &args.webhook else {
            println!(
                "[#{}] bot → @{}: {}",
                response.channel, response.user, response.answer
            );
            summary.delivered += 1;
            continue;
        };
        let body =
            json!({"channel": response.channel, "user": response.user, "text": response.answer});
        let mut last_error = String::new();
        let mut posted = false;
        for attempt in 0..3u32 {
            match agent.post(url).send_json(&body) {
                Ok(_) => {
                    posted = true;
                    break;
                }
                Err(e) => last_error = e.to_string(),
            }
            actix_rt::time::sleep(Duration::from_millis(200 << attempt)).await;
        }
        if posted {
            summary.delivered += 1;
        } else {
            dead.push(dead_letter(r, &format!("webhook: {last_error}")));
        }
    }
    send(client, dead).await?;
    commit_read(client, from, &records).await
}
