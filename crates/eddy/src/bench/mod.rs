//! `eddy bench`: a load generator over the Kafka protocol (librdkafka), so that it measures
//! Eddy, Apache Kafka or Redpanda alike. Modes: `produce` (producers write for a duration),
//! `consume` (a consumer reads a topic from the start), `e2e` (producers at a rate, a
//! consumer timing each record from its send to its arrival). Reports records/s, MB/s and
//! latency p50/p99/p99.9/max as a table or JSON, with a progress line on stderr. With
//! `--raw-disk DIR` it also measures the disk's sequential write bandwidth with fdatasync in
//! the same run (a burst, and sustained with an fdatasync per MiB), for ratios, and in `e2e`
//! mode, after the load, the disk's own latency tail when appended to at the run's write
//! rate (is a latency tail Eddy's or the disk's?).

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use serde_json::json;

mod chat;
mod wire;

/// `eddy bench MODE`
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Mode {
    /// Producers write as fast as allowed for `--duration`.
    Produce,
    /// One consumer reads the topic from the start to its end.
    Consume,
    /// Producers write at `--rate`; a consumer times each record end to end.
    E2e,
    /// A topic per user (`--users`, 10 partitions each): one chat message to every
    /// partition, read back by a regex group, the server idle, a trickle (`--trickle-rate`).
    Chat,
}

/// `eddy bench` settings.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// produce, consume or e2e.
    #[arg(value_enum)]
    mode: Mode,
    /// The cluster (host:port,...).
    #[arg(long, short, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// The topic (created if missing).
    #[arg(long, short, default_value = "eddy-bench")]
    topic: String,
    /// Partitions of a topic it creates.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Replication factor of a topic it creates.
    #[arg(long, default_value_t = 3)]
    replication: i32,
    /// Bytes per record value.
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Keyed records (a key per record, hashed to partitions); unkeyed spread evenly.
    #[arg(long)]
    keyed: bool,
    /// Producer clients.
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// acks: 0, 1 or all (all is idempotent, as current clients default to).
    #[arg(long, default_value = "all")]
    acks: String,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    compression: String,
    /// retention.ms of a topic it creates (retention runs during the load).
    #[arg(long, allow_negative_numbers = true)]
    retention_ms: Option<i64>,
    /// retention.bytes per partition of a topic it creates.
    #[arg(long, allow_negative_numbers = true)]
    retention_bytes: Option<i64>,
    /// Records per second across all producers (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// How long producers run, in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Also measure the disk's raw write bandwidth here (256 MiB + one fdatasync, and 1 GiB
    /// with an fdatasync per MiB, which the ratios use); e2e also times, after the load, the
    /// disk alone appended to at the run's rate (one writer per replica, each piece
    /// fdatasync'd).
    #[arg(long, value_name = "DIR")]
    raw_disk: Option<PathBuf>,
    /// MiB for `--raw-disk`'s synced measurement.
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    raw_disk_mib: usize,
    /// A librdkafka property for the producers, KEY=VALUE (repeatable), applied after the
    /// bench's own settings (for example `socket.nagle.disable=false`, librdkafka's default).
    #[arg(long, value_name = "KEY=VALUE", value_parser = key_value)]
    producer_config: Vec<(String, String)>,
    /// A librdkafka property for the consumer, KEY=VALUE (repeatable), applied after the
    /// bench's own settings.
    #[arg(long, value_name = "KEY=VALUE", value_parser = key_value)]
    consumer_config: Vec<(String, String)>,
    /// Prints one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// The chat mode's settings.
    #[command(flatten)]
    chat: chat::ChatArgs,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

/// A librdkafka configuration with the bootstrap servers and Nagle's algorithm off, as
/// Kafka's Java client always has it (librdkafka's default, `socket.nagle.disable=false`,
/// holds back the last segment of a request until the ones before it are acknowledged:
/// `e2e` at 86,000 records/s on fresh servers had a p99 of 11.5-358 ms in five runs with
/// it, 9.1-35.1 ms in five without; see benches/README.md).
fn client_config(args: &BenchArgs) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &args.bootstrap)
        .set("socket.nagle.disable", "true");
    config
}

/// The overrides as a JSON object (the bench's own settings are in the documentation).
fn config_json(overrides: &[(String, String)]) -> serde_json::Value {
    overrides
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn with_overrides(mut config: ClientConfig, overrides: &[(String, String)]) -> ClientConfig {
    for (k, v) in overrides {
        config.set(k, v);
    }
    config
}

/// Latencies in microseconds, kept up to a bound (a uniform sample past it).
#[derive(Debug, Default)]
struct Latencies {
    seen: u64,
    kept: Vec<u32>,
}

const KEEP: usize = 2_000_000;

impl Latencies {
    fn add(&mut self, d: Duration) {
        let us = u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        self.seen += 1;
        if self.kept.len() < KEEP {
            self.kept.push(us);
        } else {
            // Reservoir sampling with a cheap hash of the count.
            let slot = (self.seen.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) % self.seen;
            if (slot as usize) < KEEP {
                self.kept[slot as usize] = us;
            }
        }
    }

    fn merge(&mut self, other: Latencies) {
        for us in other.kept {
            self.add(Duration::from_micros(u64::from(us)));
        }
    }

    fn summary(&mut self) -> serde_json::Value {
        if self.kept.is_empty() {
            return json!(null);
        }
        self.kept.sort_unstable();
        let at = |q: f64| {
            let i = ((self.kept.len() as f64 - 1.0) * q).round() as usize;
            f64::from(self.kept[i]) / 1000.0
        };
        json!({"p50_ms": at(0.5), "p99_ms": at(0.99), "p999_ms": at(0.999), "max_ms": at(1.0)})
    }
}

struct Delivered {
    ok: AtomicU64,
    failed: AtomicU64,
    latencies: Mutex<Latencies>,
}

struct BenchContext(Arc<Delivered>);

impl ClientContext for BenchContext {}

impl ProducerContext for BenchContext {
    type DeliveryOpaque = Box<Instant>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: Self::DeliveryOpaque) {
        match result {
            Ok(_) => {
                self.0.ok.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut l) = self.0.latencies.lock() {
                    l.add(sent.elapsed());
                }
            }
            Err(_) => {
                self.0.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn ensure_topic(args: &BenchArgs) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(args).create()?;
    let (ms, bytes) = (
        args.retention_ms.map(|v| v.to_string()),
        args.retention_bytes.map(|v| v.to_string()),
    );
    let mut topic = NewTopic::new(
        &args.topic,
        args.partitions,
        TopicReplication::Fixed(args.replication),
    );
    if let Some(ms) = &ms {
        topic = topic.set("retention.ms", ms);
    }
    if let Some(bytes) = &bytes {
        topic = topic.set("retention.bytes", bytes);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let results = rt.block_on(admin.create_topics([&topic], &AdminOptions::new()))?;
    for r in results {
        match r {
            Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => bail!("cannot create {t}: {e}"),
        }
    }
    Ok(())
}

/// A progress line on stderr until `done`.
fn progress(
    label: &'static str,
    total: Duration,
    count: Arc<AtomicU64>,
    bytes: u64,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let started = Instant::now();
        while !done.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(500));
            let elapsed = started.elapsed();
            let frac = (elapsed.as_secs_f64() / total.as_secs_f64().max(0.001)).min(1.0);
            let filled = (frac * 30.0) as usize;
            let n = count.load(Ordering::Relaxed);
            let mbs = n as f64 * bytes as f64 / elapsed.as_secs_f64().max(0.001) / 1e6;
            eprint!(
                "\r{label} [{}{}] {:>5.1}s {:>10} records {:>8.1} MB/s",
                "#".repeat(filled),
                " ".repeat(30 - filled),
                elapsed.as_secs_f64(),
                n,
                mbs
            );
            let _ = std::io::stderr().flush();
        }
        eprintln!();
    })
}

/// What a produce run delivered.
struct Produced {
    /// Records delivered in the timed run.
    records: u64,
    /// Warm-up records, sent and delivered before the clock started.
    warm_up: u64,
    took: Duration,
    latencies: Latencies,
}

/// Runs `producers` producers for the duration (at the rate, if any).
fn produce(args: &BenchArgs, stamp: bool) -> anyhow::Result<Produced> {
    let delivered = Arc::new(Delivered {
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        latencies: Mutex::new(Latencies::default()),
    });
    let idempotent = args.acks == "all" || args.acks == "-1";
    let mut producers = Vec::new();
    for _ in 0..args.producers.max(1) {
        let mut config = client_config(args);
        config
            .set("acks", &args.acks)
            .set("enable.idempotence", idempotent.to_string())
            .set("compression.type", &args.compression)
            .set("linger.ms", "5")
            .set("batch.size", "1000000")
            .set("queue.buffering.max.kbytes", "262144");
        let p: ThreadedProducer<BenchContext> = with_overrides(config, &args.producer_config)
            .create_with_context(BenchContext(delivered.clone()))
            .context("cannot create a producer")?;
        producers.push(p);
    }
    let warm_up = warm_up(&producers, args, &delivered)?;
    let duration = Duration::from_secs_f64(args.duration.max(0.1));
    let done = Arc::new(AtomicBool::new(false));
    let bar = progress(
        "produce",
        duration,
        Arc::new(AtomicU64::new(0)),
        args.record_size as u64,
        done.clone(),
    );
    let sent_counter = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let per_producer_rate = args.rate as f64 / producers.len() as f64;
    std::thread::scope(|s| -> anyhow::Result<()> {
        let mut handles = Vec::new();
        for (i, p) in producers.iter().enumerate() {
            let sent = sent_counter.clone();
            handles.push(s.spawn(move || -> anyhow::Result<()> {
                let mut value = vec![b'x'; args.record_size.max(8)];
                let mut n: u64 = 0;
                while started.elapsed() < duration {
                    if per_producer_rate > 0.0 {
                        let due = Duration::from_secs_f64(n as f64 / per_producer_rate);
                        if let Some(wait) = due.checked_sub(started.elapsed()) {
                            std::thread::sleep(wait.min(Duration::from_millis(50)));
                            continue;
                        }
                    }
                    if stamp {
                        value[..8].copy_from_slice(&now_us().to_be_bytes());
                    }
                    // A key is made only for keyed runs (the client's CPU is the bench's).
                    let key = args.keyed.then(|| format!("k{i}-{n}"));
                    let mut record =
                        BaseRecord::with_opaque_to(&args.topic, Box::new(Instant::now()))
                            .payload(&value[..]);
                    if let Some(key) = &key {
                        record = record.key(key.as_bytes());
                    }
                    match p.send(record) {
                        Ok(()) => {
                            n += 1;
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                        Err((
                            rdkafka::error::KafkaError::MessageProduction(
                                rdkafka::types::RDKafkaErrorCode::QueueFull,
                            ),
                            _,
                        )) => std::thread::sleep(Duration::from_millis(1)),
                        Err((e, _)) => return Err(e.into()),
                    }
                }
                Ok(())
            }));
        }
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a producer thread panicked"))??;
        }
        Ok(())
    })?;
    for p in &producers {
        p.flush(Duration::from_secs(120))?;
    }
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let _ = bar.join();
    let failed = delivered.failed.load(Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} records were not delivered");
    }
    let latencies = std::mem::take(
        &mut *delivered
            .latencies
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?,
    );
    Ok(Produced {
        records: delivered.ok.load(Ordering::Relaxed),
        warm_up,
        took,
        latencies,
    })
}

/// Before the clock starts, every producer sends one record to each partition and waits for
/// them: connections, metadata and (idempotent) the producer id are set-up, not throughput,
/// and records queued behind them would count their wait as latency (at 30,000 records/s the
/// first half second made e2e's p99 415 ms where the rest ran at a few ms). The values carry
/// a zero stamp, which e2e's consumer skips; their deliveries are not counted.
fn warm_up(
    producers: &[ThreadedProducer<BenchContext>],
    args: &BenchArgs,
    delivered: &Delivered,
) -> anyhow::Result<u64> {
    let value = vec![0u8; args.record_size.max(8)];
    let mut sent = 0;
    for p in producers {
        let md = p
            .client()
            .fetch_metadata(Some(&args.topic), Duration::from_secs(10))?;
        let partitions = md.topics().first().map_or(0, |t| t.partitions().len());
        for partition in 0..partitions as i32 {
            let record =
                BaseRecord::<(), [u8], _>::with_opaque_to(&args.topic, Box::new(Instant::now()))
                    .partition(partition)
                    .payload(&value[..]);
            p.send(record).map_err(|(e, _)| e)?;
            sent += 1;
        }
        p.flush(Duration::from_secs(30))?;
    }
    let failed = delivered.failed.swap(0, Ordering::Relaxed);
    if failed > 0 {
        bail!("{failed} warm-up records were not delivered");
    }
    delivered.ok.store(0, Ordering::Relaxed);
    if let Ok(mut l) = delivered.latencies.lock() {
        *l = Latencies::default();
    }
    Ok(sent)
}

/// Reads the whole topic (from the start, to the high watermarks as of the start); with
/// `stamp`, until `stop` and timing each record from the stamp in its value.
fn consume(
    args: &BenchArgs,
    stamp: Option<Arc<AtomicBool>>,
) -> anyhow::Result<(u64, u64, Duration, Latencies)> {
    let mut config = client_config(args);
    config
        .set("group.id", "eddy-bench")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        // librdkafka stops fetching for this long once its prefetch queue is full (default
        // 1,000 ms); a consumer that drains the queue meanwhile would then sit idle.
        .set("fetch.queue.backoff.ms", "10");
    let consumer: BaseConsumer = with_overrides(config, &args.consumer_config).create()?;
    let md = consumer.fetch_metadata(Some(&args.topic), Duration::from_secs(10))?;
    let partitions = md
        .topics()
        .first()
        .map(|t| t.partitions().len())
        .unwrap_or(0);
    if partitions == 0 {
        bail!("topic {} has no partitions", args.topic);
    }
    let mut tpl = TopicPartitionList::new();
    // Consume mode reads each partition up to its end as of the start (retention may move
    // its beginning meanwhile; new records do not count).
    let mut left: std::collections::HashMap<i32, i64> = std::collections::HashMap::new();
    for p in 0..partitions as i32 {
        let (lo, hi) = consumer.fetch_watermarks(&args.topic, p, Duration::from_secs(10))?;
        if hi > lo {
            left.insert(p, hi);
        }
        let start = if stamp.is_some() {
            Offset::End
        } else {
            Offset::Beginning
        };
        tpl.add_partition_offset(&args.topic, p, start)?;
    }
    consumer.assign(&tpl)?;
    let count = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let bar = progress(
        "consume",
        Duration::from_secs_f64(args.duration.max(0.1)),
        count.clone(),
        args.record_size as u64,
        done.clone(),
    );
    let mut latencies = Latencies::default();
    let mut bytes = 0u64;
    let mut first: Option<Instant> = None;
    let started = Instant::now();
    let mut idle = Instant::now();
    loop {
        match &stamp {
            Some(stop)
                if stop.load(Ordering::Relaxed) && idle.elapsed() > Duration::from_secs(2) =>
            {
                break
            }
            None if left.is_empty() => break,
            _ => {}
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                idle = Instant::now();
                let payload = m.payload().unwrap_or_default();
                if stamp.is_some() && payload.len() >= 8 && payload[..8] == [0u8; 8] {
                    // A producer's warm-up record: not part of the run.
                    continue;
                }
                first.get_or_insert_with(Instant::now);
                bytes += payload.len() as u64;
                if stamp.is_some() && payload.len() >= 8 {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&payload[..8]);
                    let sent = u64::from_be_bytes(b);
                    latencies.add(Duration::from_micros(now_us().saturating_sub(sent)));
                }
                count.fetch_add(1, Ordering::Relaxed);
                if left
                    .get(&m.partition())
                    .is_some_and(|end| m.offset() + 1 >= *end)
                {
                    left.remove(&m.partition());
                }
            }
            Some(Err(e)) => return Err(e.into()),
            None => {
                if stamp.is_none() && idle.elapsed() > Duration::from_secs(10) {
                    bail!(
                        "no record for 10 s after {} records, with {} partitions not read to their end",
                        count.load(Ordering::Relaxed),
                        left.len()
                    );
                }
            }
        }
    }
    done.store(true, Ordering::Relaxed);
    let _ = bar.join();
    let took = first.map_or(started.elapsed(), |f| f.elapsed());
    Ok((count.load(Ordering::Relaxed), bytes, took, latencies))
}

/// The disk's write bandwidth, measured in `dir`: 256 MiB written then fdatasync'd once
/// (what a burst gets, page cache included), and `mib` (1 GiB by default) in 1 MiB writes
/// each fdatasync'd (what a log that syncs every commit can sustain; on this project's
/// reference machine the two differed by up to 4x, the second falling as the disk's burst
/// ran out).
struct RawDisk {
    burst: f64,
    synced: f64,
}

fn raw_disk(dir: &std::path::Path, mib: usize) -> anyhow::Result<RawDisk> {
    let path = dir.join(format!("eddy-bench-raw-{}", std::process::id()));
    let chunk = vec![0x5au8; 1 << 20];
    let mb = |n: usize, took: Duration| (n << 20) as f64 / took.as_secs_f64() / 1e6;
    let result = (|| -> anyhow::Result<RawDisk> {
        let started = Instant::now();
        {
            let mut f = std::fs::File::create(&path)?;
            for _ in 0..256 {
                f.write_all(&chunk)?;
            }
            f.sync_data()?;
        }
        let burst = mb(256, started.elapsed());
        let started = Instant::now();
        {
            let mut f = std::fs::File::create(&path)?;
            for _ in 0..mib.max(1) {
                f.write_all(&chunk)?;
                f.sync_data()?;
            }
        }
        let synced = mb(mib.max(1), started.elapsed());
        Ok(RawDisk { burst, synced })
    })();
    let _ = std::fs::remove_file(&path);
    result
}

/// The disk's own latency tail at a log's write pattern: `writers` threads (one per replica,
/// as each broker's log has its own writer), each appending `bytes_per_s` to a file of its
/// own in pieces of at most 512 KiB, each piece followed by an fdatasync, for `duration`;
/// the time of each write + fdatasync. A file past 1 GiB is truncated and appended again, so
/// every piece lands on blocks the file system allocates then (as a growing log's commits do)
/// while the disk space used stays bounded.
fn raw_disk_appends(
    dir: &std::path::Path,
    bytes_per_s: f64,
    writers: usize,
    duration: Duration,
) -> anyhow::Result<Latencies> {
    use std::os::unix::fs::FileExt as _;
    const CAP: u64 = 1 << 30;
    // At least 100 pieces a second, as a log under this load commits many times a second.
    let piece = ((bytes_per_s / 100.0) as usize).clamp(4096, 512 << 10);
    let every = Duration::from_secs_f64(piece as f64 / bytes_per_s.max(1.0));
    let all = Arc::new(Mutex::new(Latencies::default()));
    let threads: Vec<_> = (0..writers.max(1))
        .map(|i| {
            let path = dir.join(format!("eddy-bench-raw-{}-{i}", std::process::id()));
            let all = all.clone();
            std::thread::spawn(move || -> std::io::Result<()> {
                let result = (|| {
                    let file = std::fs::File::create(&path)?;
                    let data = vec![0x5au8; piece];
                    let started = Instant::now();
                    let (mut at, mut k) = (0u64, 0u32);
                    let mut mine = Latencies::default();
                    while started.elapsed() < duration {
                        let due = started + every * k;
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        let t = Instant::now();
                        file.write_all_at(&data, at)?;
                        file.sync_data()?;
                        mine.add(t.elapsed());
                        at += piece as u64;
                        k += 1;
                        if at >= CAP {
                            file.set_len(0)?;
                            at = 0;
                        }
                    }
                    if let Ok(mut all) = all.lock() {
                        all.merge(mine);
                    }
                    Ok(())
                })();
                let _ = std::fs::remove_file(&path);
                result
            })
        })
        .collect();
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a raw-disk writer panicked"))??;
    }
    let mut all = all.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    Ok(std::mem::take(&mut *all))
}

pub(crate) fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.mode == Mode::Chat {
        let report = chat::run(&args, &args.chat)?;
        if args.json {
            println!("{report}");
        } else {
            print_flat("", &report);
        }
        return Ok(());
    }
    let raw = match &args.raw_disk {
        Some(dir) => Some(raw_disk(dir, args.raw_disk_mib)?),
        None => None,
    };
    ensure_topic(&args)?;
    let size = args.record_size.max(8) as f64;
    let mut report = json!({
        "mode": format!("{:?}", args.mode).to_lowercase(),
        "topic": args.topic, "record_size": args.record_size.max(8), "keyed": args.keyed,
        "producers": args.producers, "acks": args.acks, "compression": args.compression,
        "rate": args.rate, "partitions": args.partitions, "replication": args.replication,
        "producer_config": config_json(&args.producer_config),
        "consumer_config": config_json(&args.consumer_config),
    });
    match args.mode {
        Mode::Chat => unreachable_chat()?,
        Mode::Produce => {
            let Produced {
                records: n,
                warm_up,
                took,
                latencies: mut lat,
            } = produce(&args, false)?;
            report["records"] = json!(n);
            report["warm_up_records"] = json!(warm_up);
            report["records_per_s"] = json!(n as f64 / took.as_secs_f64());
            report["mb_per_s"] = json!(n as f64 * size / took.as_secs_f64() / 1e6);
            report["latency"] = lat.summary();
        }
        Mode::Consume => {
            let (n, bytes, took, _) = consume(&args, None)?;
            report["records"] = json!(n);
            report["records_per_s"] = json!(n as f64 / took.as_secs_f64());
            report["mb_per_s"] = json!(bytes as f64 / took.as_secs_f64() / 1e6);
        }
        Mode::E2e => {
            let stop = Arc::new(AtomicBool::new(false));
            let reader = {
                let stop = stop.clone();
                let args = BenchArgs {
                    json: true,
                    ..clone_args(&args)
                };
                std::thread::spawn(move || consume(&args, Some(stop)))
            };
            // Let the consumer reach the end before writing.
            std::thread::sleep(Duration::from_millis(1500));
            let Produced {
                records: n,
                warm_up,
                took,
                latencies: mut acked,
            } = produce(&args, true)?;
            report["warm_up_records"] = json!(warm_up);
            stop.store(true, Ordering::Relaxed);
            let (got, _, _, mut lat) = reader
                .join()
                .map_err(|_| anyhow::anyhow!("the consumer thread panicked"))??;
            report["records"] = json!(n);
            report["received"] = json!(got);
            report["records_per_s"] = json!(n as f64 / took.as_secs_f64());
            report["mb_per_s"] = json!(n as f64 * size / took.as_secs_f64() / 1e6);
            report["latency"] = lat.summary();
            // The producers' side of it: send to acknowledgement (acks=all: replicated).
            report["produce_latency"] = acked.summary();
            if let Some(dir) = &args.raw_disk {
                // The disk alone, written as the replicas' logs just wrote it: does it
                // stall by itself at this rate?
                let per_replica = n as f64 * size / took.as_secs_f64();
                let writers = usize::try_from(args.replication.max(1)).unwrap_or(1);
                let mut disk = raw_disk_appends(dir, per_replica, writers, took)?;
                report["raw_disk_append_mb_per_s"] = json!(per_replica * writers as f64 / 1e6);
                report["raw_disk_append_latency"] = disk.summary();
            }
        }
    }
    if let Some(raw) = raw {
        report["raw_disk_burst_mb_per_s"] = json!(raw.burst);
        report["raw_disk_synced_mb_per_s"] = json!(raw.synced);
        if let Some(mbs) = report["mb_per_s"].as_f64() {
            report["ratio_to_raw_disk"] = json!(mbs / raw.synced);
            // Every replica writes every byte, here all on the one disk.
            report["replicas_ratio_to_raw_disk"] =
                json!(mbs * f64::from(args.replication.max(1)) / raw.synced);
        }
    }
    if args.json {
        println!("{report}");
        return Ok(());
    }
    println!("{:<32} {}", "mode", report["mode"].as_str().unwrap_or(""));
    for (k, label) in [
        ("records", "records"),
        ("received", "records received"),
        ("records_per_s", "records/s"),
        ("mb_per_s", "MB/s"),
        ("raw_disk_burst_mb_per_s", "raw disk MB/s, burst"),
        ("raw_disk_synced_mb_per_s", "raw disk MB/s, synced per MiB"),
        ("ratio_to_raw_disk", "x raw disk (synced)"),
        ("replicas_ratio_to_raw_disk", "x raw disk, all replicas"),
        ("raw_disk_append_mb_per_s", "raw disk appends MB/s"),
    ] {
        if let Some(v) = report[k].as_f64() {
            if k.contains("ratio") {
                println!("{label:<32} {v:.2}");
            } else {
                println!("{label:<32} {v:.1}");
            }
        }
    }
    for (key, label) in [
        ("latency", "latency"),
        ("produce_latency", "produce latency"),
        ("raw_disk_append_latency", "raw disk append+fdatasync"),
    ] {
        if let Some(l) = report[key].as_object() {
            for (k, v) in l {
                println!(
                    "{:<32} {:.2}",
                    format!("{label} {k}"),
                    v.as_f64().unwrap_or(0.0)
                );
            }
        }
    }
    Ok(())
}

fn clone_args(a: &BenchArgs) -> BenchArgs {
    BenchArgs {
        mode: a.mode,
        bootstrap: a.bootstrap.clone(),
        topic: a.topic.clone(),
        partitions: a.partitions,
        replication: a.replication,
        record_size: a.record_size,
        keyed: a.keyed,
        producers: a.producers,
        acks: a.acks.clone(),
        compression: a.compression.clone(),
        retention_ms: a.retention_ms,
        retention_bytes: a.retention_bytes,
        rate: a.rate,
        duration: a.duration,
        raw_disk: None,
        raw_disk_mib: a.raw_disk_mib,
        producer_config: a.producer_config.clone(),
        consumer_config: a.consumer_config.clone(),
        json: a.json,
        chat: a.chat.clone(),
    }
}

/// Chat mode returns before the other modes' set-up.
fn unreachable_chat() -> anyhow::Result<()> {
    bail!("chat mode runs on its own")
}

/// A JSON report as one `path value` line per leaf.
fn print_flat(path: &str, v: &serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                print_flat(&p, v);
            }
        }
        serde_json::Value::Null => {}
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => println!("{path:<40} {f:.3}"),
            _ => println!("{path:<40} {n}"),
        },
        other => println!("{path:<40} {other}"),
    }
}
