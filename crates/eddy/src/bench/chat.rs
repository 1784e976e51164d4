//! `eddy bench chat`: the workload Eddy is built for. A topic per user (`user_{i}`, 10
//! partitions each), one small JSON chat message to every partition, read back by one
//! consumer group subscribed by regex, then the server idle, then a steady trickle spread
//! over every partition with its end-to-end latency. Each phase also runs on one topic of
//! `--partitions` (3) partitions first, so that every figure stands beside the same run's
//! figure for a few partitions.
//!
//! Phases, each timed:
//! 1. `create`: the topics, in CreateTopics requests of 1,000 topics.
//! 2. `produce`: one message to every partition (acks=all, librdkafka's defaults otherwise:
//!    not idempotent, so it keeps more than 5 requests in flight per broker; librdkafka
//!    sends a ProduceRequest per partition), until all are acknowledged. Add
//!    `--producer-config enable.idempotence=true` for an idempotent producer.
//! 3. `read`: a new group subscribed to `^{prefix}[0-9]+$` reads them all back (from the
//!    earliest offsets), then commits its offsets and fetches them again.
//! 4. `idle` (with `--server-pid`): the server's CPU and resident memory while nothing
//!    happens, and (with `--data-dir`) the disk it uses, per partition.
//! 5. `trickle` (with `--trickle-rate`): that many messages a second, spread evenly over
//!    every partition, each timed from its send to a regex group's poll.
//!
//! The produce and read phases report the CPU seconds they took in the clients (this
//! process) and, with `--server-pid`, in the server.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use rdkafka::producer::{BaseRecord, Producer as _, ThreadedProducer};
use rdkafka::Message as _;
use serde_json::json;

use super::{client_config, now_us, with_overrides, BenchArgs, BenchContext, Delivered, Latencies};

/// `eddy bench chat` settings (the other modes ignore them).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ChatArgs {
    /// Users: topics `{prefix}{i}` for i in 0..users.
    #[arg(long, default_value_t = 2_000)]
    users: usize,
    /// Partitions of each user's topic.
    #[arg(long, default_value_t = 10)]
    partitions_per_user: i32,
    /// Topic name prefix (a new one per run lets runs share a server).
    #[arg(long, default_value = "user_")]
    topic_prefix: String,
    /// Bytes of each JSON chat message (about).
    #[arg(long, default_value_t = 200)]
    message_bytes: usize,
    /// Longest wait for a phase (creation, acknowledgements, reading back).
    #[arg(long, default_value_t = 300.0)]
    phase_timeout: f64,
    /// The server's process id: its CPU and memory are sampled while idle.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The server's data directory: its disk use is reported.
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
    /// Seconds of idle sampling.
    #[arg(long, default_value_t = 10.0)]
    idle_seconds: f64,
    /// Messages per second of the trickle phase, spread evenly over every partition (0:
    /// no trickle).
    #[arg(long, default_value_t = 0)]
    trickle_rate: u64,
    /// Seconds of the trickle.
    #[arg(long, default_value_t = 30.0)]
    trickle_seconds: f64,
    /// Skips the few-partition baseline.
    #[arg(long)]
    no_baseline: bool,
    /// The client of the produce and read phases: `librdkafka` (a request per partition,
    /// a regex group) or `wire` (a request per broker for all its partitions, a standalone
    /// consumer committing for the group: see `bench/wire.rs`).
    #[arg(long, value_enum, default_value_t = ChatClient::Librdkafka)]
    client: ChatClient,
}

/// Which client `eddy bench chat` produces and reads with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ChatClient {
    /// librdkafka (rdkafka): what most users run.
    Librdkafka,
    /// A minimal Kafka-protocol client that batches per broker (as Kafka's Java client).
    Wire,
}

/// A set of topics the phases run on.
struct TopicSet {
    label: &'static str,
    topics: Vec<String>,
    partitions: i32,
    regex: String,
}

impl TopicSet {
    fn partitions_total(&self) -> u64 {
        self.topics.len() as u64 * self.partitions.max(0) as u64
    }
}

pub(crate) fn run(args: &BenchArgs, chat: &ChatArgs) -> anyhow::Result<serde_json::Value> {
    let run_id = std::process::id();
    let mut sets = Vec::new();
    if !chat.no_baseline {
        let name = format!("bench_chat_base_{run_id}");
        sets.push(TopicSet {
            label: "baseline",
            regex: format!("^{}$", regex_escape(&name)),
            topics: vec![name],
            partitions: args.partitions,
        });
    }
    sets.push(TopicSet {
        label: "users",
        topics: (0..chat.users)
            .map(|i| format!("{}{i}", chat.topic_prefix))
            .collect(),
        partitions: chat.partitions_per_user,
        regex: format!("^{}[0-9]+$", regex_escape(&chat.topic_prefix)),
    });
    let timeout = Duration::from_secs_f64(chat.phase_timeout.max(1.0));
    let mut report = json!({
        "mode": "chat",
        "users": chat.users,
        "partitions_per_user": chat.partitions_per_user,
        "replication": args.replication,
        "message_bytes": chat.message_bytes,
        "trickle_rate": chat.trickle_rate,
        "client": format!("{:?}", chat.client).to_lowercase(),
    });
    for set in &sets {
        let mut r = json!({"topics": set.topics.len(), "partitions": set.partitions_total()});
        eprintln!(
            "== {}: {} topics, {} partitions",
            set.label,
            set.topics.len(),
            set.partitions_total()
        );
        r["create_s"] = json!(create(args, set, timeout)?.as_secs_f64());
        let cpu = Cpu::start(chat.server_pid);
        let mut p = match chat.client {
            ChatClient::Librdkafka => produce_each(args, chat, set, timeout)?,
            ChatClient::Wire => super::wire::produce(&args.bootstrap, &set.topics, |t, p| {
                message(t, p, 0, chat.message_bytes)
            })?,
        };
        cpu.report(&mut p);
        r["produce"] = p;
        let cpu = Cpu::start(chat.server_pid);
        let mut read = match chat.client {
            ChatClient::Librdkafka => read_back(args, set, timeout)?,
            ChatClient::Wire => super::wire::read_commit(
                &args.bootstrap,
                &set.topics,
                &format!("bench-chat-wire-{run_id}-{}", set.label),
                timeout,
            )?,
        };
        cpu.report(&mut read);
        r["read"] = read;
        report[set.label] = r;
    }
    if let Some(pid) = chat.server_pid {
        // Let the server settle (acknowledgements, checkpoints, partition work going idle).
        std::thread::sleep(Duration::from_secs(2));
        let partitions: u64 = sets.iter().map(TopicSet::partitions_total).sum();
        report["idle"] = idle(pid, chat, partitions)?;
    }
    if chat.trickle_rate > 0 {
        for set in &sets {
            report[set.label]["trickle"] = trickle(args, chat, set)?;
        }
    }
    Ok(report)
}

/// `s` with the regex metacharacters escaped (topic names allow only `.` among them).
fn regex_escape(s: &str) -> String {
    s.replace('.', "\\.")
}

fn create(args: &BenchArgs, set: &TopicSet, timeout: Duration) -> anyhow::Result<Duration> {
    let admin: AdminClient<DefaultClientContext> = client_config(args).create()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let options = AdminOptions::new()
        .operation_timeout(Some(timeout))
        .request_timeout(Some(timeout));
    let started = Instant::now();
    for chunk in set.topics.chunks(1_000) {
        let topics: Vec<NewTopic<'_>> = chunk
            .iter()
            .map(|t| NewTopic::new(t, set.partitions, TopicReplication::Fixed(args.replication)))
            .collect();
        let results = rt.block_on(admin.create_topics(&topics, &options))?;
        for r in results {
            match r {
                Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, e)) => bail!("cannot create {t}: {e}"),
            }
        }
    }
    Ok(started.elapsed())
}

/// A chat message of about `bytes` bytes, as the original design's producer sends it, with
/// the send time in microseconds.
fn message(topic: &str, partition: i32, n: u64, bytes: usize) -> Vec<u8> {
    let mut v = json!({
        "message_id": format!("{topic}-{partition}-{n}"),
        "context_id": format!("{topic}-c{partition}"),
        "thread_id": format!("{topic}-c{partition}"),
        "parent_message_id": null,
        "partition_hint": partition,
        "sender_id": topic.trim_start_matches("user_"),
        "chat_id": topic,
        "timestamp": now_us() / 1000,
        "sent_us": now_us(),
        "content": "",
    });
    let base = v.to_string().len();
    v["content"] = json!("x".repeat(bytes.saturating_sub(base)));
    v.to_string().into_bytes()
}

/// The `sent_us` field of a message (found without parsing the whole value).
fn sent_us(value: &[u8]) -> Option<u64> {
    let key = b"\"sent_us\":";
    let at = value.windows(key.len()).position(|w| w == key)? + key.len();
    let digits: Vec<u8> = value[at..]
        .iter()
        .copied()
        .take_while(u8::is_ascii_digit)
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

fn producer(
    args: &BenchArgs,
    delivered: Arc<Delivered>,
) -> anyhow::Result<ThreadedProducer<BenchContext>> {
    let mut config = client_config(args);
    config
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "300000")
        .set("queue.buffering.max.messages", "2000000")
        .set("queue.buffering.max.kbytes", "1048576");
    with_overrides(config, &args.producer_config)
        .create_with_context(BenchContext(delivered))
        .context("cannot create a producer")
}

fn delivered() -> Arc<Delivered> {
    Arc::new(Delivered {
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        latencies: Mutex::new(Latencies::default()),
    })
}

/// Sends `value` to `topic`/`partition`, waiting while the client's queue is full.
fn send(
    p: &ThreadedProducer<BenchContext>,
    topic: &str,
    partition: i32,
    value: &[u8],
) -> anyhow::Result<()> {
    loop {
        let record = BaseRecord::<(), [u8], _>::with_opaque_to(topic, Box::new(Instant::now()))
            .partition(partition)
            .payload(value);
        match p.send(record) {
            Ok(()) => return Ok(()),
            Err((
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::types::RDKafkaErrorCode::QueueFull,
                ),
                _,
            )) => std::thread::sleep(Duration::from_millis(1)),
            Err((e, _)) => return Err(e.into()),
        }
    }
}

/// One message to every partition of the set; timed from the first send to the last
/// acknowledgement.
fn produce_each(
    args: &BenchArgs,
    chat: &ChatArgs,
    set: &TopicSet,
    timeout: Duration,
) -> anyhow::Result<serde_json::Value> {
    let d = delivered();
    let p = producer(args, d.clone())?;
    let total = set.partitions_total();
    let started = Instant::now();
    let mut n = 0u64;
    for t in &set.topics {
        for partition in 0..set.partitions {
            send(
                &p,
                t,
                partition,
                &message(t, partition, n, chat.message_bytes),
            )?;
            n += 1;
        }
    }
    let sent_in = started.elapsed();
    while d.ok.load(Ordering::Relaxed) + d.failed.load(Ordering::Relaxed) < total
        && started.elapsed() < timeout
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = started.elapsed();
    let ok = d.ok.load(Ordering::Relaxed);
    let failed = d.failed.load(Ordering::Relaxed);
    eprintln!(
        "   produce: {ok} of {total} acknowledged in {:.2} s ({failed} failed)",
        took.as_secs_f64()
    );
    let latency = match d.latencies.lock() {
        Ok(mut l) => l.summary(),
        Err(_) => json!(null),
    };
    let _ = p.flush(Duration::from_secs(1));
    Ok(json!({
        "acked": ok, "failed": failed, "sent_s": sent_in.as_secs_f64(),
        "all_acked_s": (ok == total).then_some(took.as_secs_f64()),
        "took_s": took.as_secs_f64(), "ack_latency": latency,
    }))
}

fn group_consumer(args: &BenchArgs, group: &str, reset: &str) -> anyhow::Result<BaseConsumer> {
    let mut config = client_config(args);
    config
        .set("group.id", group)
        .set("auto.offset.reset", reset)
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .set("topic.metadata.refresh.interval.ms", "5000");
    Ok(with_overrides(config, &args.consumer_config).create()?)
}

/// A new group reads one record of every partition back; then commits its offsets and
/// fetches them again (OffsetCommit and OffsetFetch over every partition).
fn read_back(
    args: &BenchArgs,
    set: &TopicSet,
    timeout: Duration,
) -> anyhow::Result<serde_json::Value> {
    let group = format!("bench-chat-{}-{}", std::process::id(), set.label);
    let c = group_consumer(args, &group, "earliest")?;
    let total = set.partitions_total();
    let started = Instant::now();
    c.subscribe(&[set.regex.as_str()])?;
    let mut got = 0u64;
    let mut assigned_at = None;
    let mut last: HashMap<(String, i32), i64> = HashMap::new();
    while got < total && started.elapsed() < timeout {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                got += 1;
                last.insert((m.topic().to_owned(), m.partition()), m.offset());
            }
            Some(Err(e)) => bail!("the consumer failed: {e}"),
            None => {}
        }
        if assigned_at.is_none() && c.assignment().is_ok_and(|a| a.count() > 0) {
            assigned_at = Some(started.elapsed());
        }
    }
    let took = started.elapsed();
    eprintln!("   read: {got} of {total} in {:.2} s", took.as_secs_f64());
    let commit_started = Instant::now();
    let commit = c.commit_consumer_state(CommitMode::Sync);
    let commit_s = commit_started.elapsed().as_secs_f64();
    let fetch_started = Instant::now();
    let committed = c.committed(timeout)?;
    let fetch_s = fetch_started.elapsed().as_secs_f64();
    let stored = committed
        .elements()
        .iter()
        .filter(|e| matches!(e.offset(), rdkafka::Offset::Offset(_)))
        .count();
    eprintln!(
        "   commit {commit_s:.2} s ({}), offset fetch {fetch_s:.2} s ({stored} committed)",
        if commit.is_ok() { "ok" } else { "failed" }
    );
    c.unsubscribe();
    Ok(json!({
        "received": got,
        "all_read_s": (got == total).then_some(took.as_secs_f64()),
        "took_s": took.as_secs_f64(),
        "assigned_s": assigned_at.map(|d| d.as_secs_f64()),
        "commit_s": commit_s, "commit_ok": commit.is_ok(),
        "offset_fetch_s": fetch_s, "offsets_committed": stored,
    }))
}

/// CPU seconds a phase took in this process (the clients) and in the server: on a small
/// machine, librdkafka's own work for thousands of partitions is a large share of a phase.
struct Cpu {
    server_pid: Option<u32>,
    client: f64,
    server: f64,
}

impl Cpu {
    fn start(server_pid: Option<u32>) -> Cpu {
        Cpu {
            server_pid,
            client: process_usage(std::process::id()).map_or(0.0, |u| u.0),
            server: server_pid
                .and_then(|pid| process_usage(pid).ok())
                .map_or(0.0, |u| u.0),
        }
    }

    fn report(&self, phase: &mut serde_json::Value) {
        if let Ok((now, _)) = process_usage(std::process::id()) {
            phase["client_cpu_s"] = json!(now - self.client);
        }
        if let Some(Ok((now, _))) = self.server_pid.map(process_usage) {
            phase["server_cpu_s"] = json!(now - self.server);
        }
    }
}

/// A process's CPU seconds (user + system) and resident bytes, from `/proc`.
fn process_usage(pid: u32) -> anyhow::Result<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("no process {pid}"))?;
    // The fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    Ok((cpu, rss_kb * 1024))
}

/// Bytes of disk allocated under `dir`.
fn disk_use(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.blocks() * 512;
            }
        }
    }
    total
}

fn idle(pid: u32, chat: &ChatArgs, partitions: u64) -> anyhow::Result<serde_json::Value> {
    let span = Duration::from_secs_f64(chat.idle_seconds.max(1.0));
    let (cpu0, _) = process_usage(pid)?;
    let t0 = Instant::now();
    std::thread::sleep(span);
    let (cpu1, rss) = process_usage(pid)?;
    let share = (cpu1 - cpu0) / t0.elapsed().as_secs_f64();
    let disk = chat.data_dir.as_deref().map(disk_use);
    eprintln!(
        "   idle: {:.1} % of a core, {:.0} MiB resident{}",
        share * 100.0,
        rss as f64 / (1 << 20) as f64,
        disk.map_or(String::new(), |d| format!(
            ", {:.0} MiB on disk",
            d as f64 / (1 << 20) as f64
        ))
    );
    let per = |b: u64| b as f64 / partitions.max(1) as f64;
    Ok(json!({
        "cpu_share": share, "rss_bytes": rss, "rss_per_partition": per(rss),
        "disk_bytes": disk, "disk_per_partition": disk.map(per),
    }))
}

/// `--trickle-rate` messages a second over every partition of the set, round robin, for
/// `--trickle-seconds`, timed from send to a regex group's poll.
fn trickle(args: &BenchArgs, chat: &ChatArgs, set: &TopicSet) -> anyhow::Result<serde_json::Value> {
    let group = format!("bench-chat-trickle-{}-{}", std::process::id(), set.label);
    let c = group_consumer(args, &group, "latest")?;
    c.subscribe(&[set.regex.as_str()])?;
    let total = set.partitions_total();
    // Joined with every partition assigned, and its positions known (a first poll of
    // `latest` asks ListOffsets), before the clock starts.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        let _ = c.poll(Duration::from_millis(100));
        if c.assignment().is_ok_and(|a| a.count() as u64 >= total) {
            break;
        }
    }
    for _ in 0..30 {
        let _ = c.poll(Duration::from_millis(100));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut lat = Latencies::default();
            let mut idle_since = Instant::now();
            loop {
                if stop.load(Ordering::Relaxed) && idle_since.elapsed() > Duration::from_secs(3) {
                    break;
                }
                if let Some(Ok(m)) = c.poll(Duration::from_millis(50)) {
                    idle_since = Instant::now();
                    if let Some(sent) = m.payload().and_then(sent_us) {
                        lat.add(Duration::from_micros(now_us().saturating_sub(sent)));
                    }
                }
            }
            lat
        })
    };
    let d = delivered();
    let p = producer(args, d.clone())?;
    let duration = Duration::from_secs_f64(chat.trickle_seconds.max(1.0));
    let rate = chat.trickle_rate as f64;
    let started = Instant::now();
    let mut n = 0u64;
    let parts = set.partitions.max(1) as u64;
    while started.elapsed() < duration {
        let due = Duration::from_secs_f64(n as f64 / rate);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait.min(Duration::from_millis(20)));
            continue;
        }
        // Round robin over every partition: consecutive messages go to different topics.
        let i = n % total.max(1);
        let (t, partition) = (&set.topics[(i / parts) as usize], (i % parts) as i32);
        send(
            &p,
            t,
            partition,
            &message(t, partition, n, chat.message_bytes),
        )?;
        n += 1;
    }
    let _ = p.flush(Duration::from_secs(60));
    stop.store(true, Ordering::Relaxed);
    let mut lat = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the trickle reader panicked"))?;
    let acked = match d.latencies.lock() {
        Ok(mut l) => l.summary(),
        Err(_) => json!(null),
    };
    let received = lat.kept.len();
    let summary = lat.summary();
    eprintln!(
        "   trickle {} msg/s over {total} partitions: {n} sent, {received} received, e2e {summary}",
        chat.trickle_rate
    );
    Ok(json!({
        "sent": n, "received": received, "failed": d.failed.load(Ordering::Relaxed),
        "latency": summary, "produce_latency": acked,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_about_the_size_asked_and_carries_its_send_time() {
        let m = message("user_7", 3, 11, 200);
        assert!((190..=230).contains(&m.len()), "{}", m.len());
        let v: serde_json::Value = serde_json::from_slice(&m).unwrap();
        assert_eq!(v["chat_id"], "user_7");
        assert_eq!(sent_us(&m), v["sent_us"].as_u64());
    }
}
