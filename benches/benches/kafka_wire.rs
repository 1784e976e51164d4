//! Produce and consume throughput through the Kafka listener with a real client (librdkafka,
//! through the `rdkafka` crate), as ratios to the embedded API (eddy-client's producer and
//! consumer) measured in the same run on the same cluster.
//!
//! `cargo bench -p eddy-benches --bench kafka_wire` (add `-- --quick` for a short run;
//! `EDDY_BENCH_DIR` picks the directory, default a temp dir; `-- --periodic` runs the cluster
//! with `periodic` durability, no fsync per commit, as Kafka runs by default;
//! `-- --max-commit-mib N` sets the log writers' group commit cap, 1 MiB by default;
//! `-- --page-cache-window-mib N` the log writers' page-cache window, 1024 by default, 0 off;
//! `-- --nagle` leaves librdkafka's clients with Nagle's algorithm on, librdkafka's default:
//! the bench turns it off, as Kafka's Java client always does).
//!
//! Every case: a 3-broker cluster with `sync` durability (an fsync per commit on every
//! replica), a fresh topic of 3 partitions with replication factor 3, unkeyed records of
//! 100 B or 1 KiB, both producers with `linger.ms=5` and `batch.size=1000000`, acks 1 (not
//! idempotent) or all (idempotent). Producers run three passes each, into fresh topics, each
//! side first in turn, the median ratio counted; with acks=all, librdkafka's own default (not
//! idempotent: up to `max.in.flight` requests per connection, where its idempotent producer
//! keeps one) is shown too, not counted. Consumers read the first acks=all topic from the
//! start, three passes each, alternating, the median ratio counted: the embedded consumer's `poll` (whole
//! batches) against librdkafka's batch consume (`rd_kafka_consume_batch_queue`); librdkafka one
//! message per poll is shown too, not counted. Each librdkafka producer pass reports the CPU
//! its threads used (in cores: CPU time over the pass's time); with acks=all a pass with
//! librdkafka's threads at nice 19 is shown too, not counted (its idempotent producer
//! busy-polls while its one request is in flight: does that spin take the shared cores from
//! the server?).
//! Target (issue 5): the Kafka path reaches at least 60% of the embedded path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use eddy_broker::{Cluster, ClusterConfig, EmbeddedCluster, NewTopic};
use eddy_client::{
    Consumer, ConsumerConfig, OffsetReset, Producer, ProducerConfig, ProducerRecord,
};
use eddy_kafka::{KafkaConfig, KafkaServer};
use eddy_types::Acks;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

#[global_allocator]
static ALLOC: eddy_kafka::LazyHugeAlloc = eddy_kafka::LazyHugeAlloc;

const PARTITIONS: u32 = 3;
/// `socket.nagle.disable` of the librdkafka clients: Nagle's algorithm off, as Kafka's Java
/// client always has it, unless `-- --nagle` asks for librdkafka's default (on).
fn nagle_off() -> &'static str {
    if std::env::args().any(|a| a == "--nagle") {
        "false"
    } else {
        "true"
    }
}

/// `batch.size` for both producers: librdkafka's default (Kafka's Java client has 16 KiB).
/// librdkafka keeps one request in flight per partition when idempotent, so small batches
/// would measure its pipelining rather than the listener.
const BATCH: usize = 1_000_000;
const MB: f64 = 1_000_000.0;

fn topic(cluster: &Cluster, rt: &tokio::runtime::Runtime, name: &str) -> anyhow::Result<()> {
    rt.block_on(
        cluster.create_topic(
            NewTopic::new(name)
                .partitions(PARTITIONS)
                .replication_factor(3),
        ),
    )?;
    Ok(())
}

/// The embedded producer: `n` records handed over in chunks, 4 chunks outstanding.
fn embedded_produce(
    cluster: &Cluster,
    rt: &tokio::runtime::Runtime,
    name: &str,
    size: usize,
    n: usize,
    acks: Acks,
) -> anyhow::Result<Duration> {
    const CHUNK: usize = 1024;
    let config = ProducerConfig {
        acks,
        idempotence: acks == Acks::All,
        batch_size: BATCH,
        linger: Duration::from_millis(5),
        ..ProducerConfig::default()
    };
    let value = bytes::Bytes::from(vec![b'x'; size]);
    rt.block_on(async {
        let producer = Producer::start(cluster, config).await?;
        // Warm up as the Kafka producer does (one record through, acknowledged).
        for r in producer
            .send_batch(std::iter::once(ProducerRecord::new(name, value.clone())))
            .await
        {
            r?;
        }
        let started = Instant::now();
        let mut outstanding = std::collections::VecDeque::new();
        let mut sent = 0;
        while sent < n || !outstanding.is_empty() {
            while sent < n && outstanding.len() < 4 {
                let k = CHUNK.min(n - sent);
                sent += k;
                let chunk = (0..k).map(|_| ProducerRecord::new(name, value.clone()));
                outstanding.push_back(producer.send_batch(chunk));
            }
            if let Some(chunk) = outstanding.pop_front() {
                for r in chunk.await {
                    r?;
                }
            }
        }
        let took = started.elapsed();
        producer.close().await;
        anyhow::Ok(took)
    })
}

/// Counts librdkafka's delivery reports.
struct Reports {
    ok: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.ok.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// librdkafka's threads in this process (named `rdk:...`), by thread id.
fn librdkafka_threads() -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| {
            let t = t.ok()?;
            let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
            let tid = t.file_name().to_str()?.parse().ok()?;
            comm.starts_with("rdk:").then_some(tid)
        })
        .collect()
}

/// CPU time (user + system) a thread of this process has used, from `/proc`.
fn thread_cpu(tid: i32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")) else {
        return Duration::ZERO;
    };
    // Fields after the command name (which may hold spaces, closed by the last ')'):
    // state is field 3, utime 14 and stime 15.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    #[allow(unsafe_code)]
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(ticks * 1_000_000 / hz)
}

/// How a librdkafka producer run went: its time, and the CPU its threads used.
struct Produced {
    took: Duration,
    client_cpu: Duration,
}

/// `nice`: librdkafka's threads run at the lowest priority (nice 19) from the warm-up on,
/// so that a thread of theirs that busy-polls yields the cores to the server (a diagnosis,
/// not a counted case).
fn kafka_produce(
    boot: &str,
    name: &str,
    size: usize,
    n: usize,
    acks: Acks,
    idempotent: bool,
    nice: bool,
) -> anyhow::Result<Produced> {
    let reports = Reports {
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    };
    let all = acks == Acks::All;
    anyhow::ensure!(all || !idempotent, "an idempotent producer uses acks=all");
    let producer: ThreadedProducer<Reports> = ClientConfig::new()
        .set("bootstrap.servers", boot)
        .set("socket.nagle.disable", nagle_off())
        .set("acks", if all { "all" } else { "1" })
        .set(
            "enable.idempotence",
            if idempotent { "true" } else { "false" },
        )
        .set("linger.ms", "5")
        .set("batch.size", BATCH.to_string())
        .set("queue.buffering.max.kbytes", "65536")
        .create_with_context(reports)?;
    let value = vec![b'x'; size];
    // Warm up: connections, metadata and (idempotent) the producer id come before the clock
    // starts, with one record sent and acknowledged; throughput is measured from there.
    producer
        .send(BaseRecord::<(), [u8]>::to(name).payload(&value[..]))
        .map_err(|(e, _)| e)?;
    producer.flush(Duration::from_secs(30))?;
    let threads = librdkafka_threads();
    if nice {
        for &tid in &threads {
            // SAFETY: setpriority has no memory preconditions; a thread id of this process.
            #[allow(unsafe_code)]
            let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19) };
            anyhow::ensure!(r == 0, "setpriority: {}", std::io::Error::last_os_error());
        }
    }
    let cpu_before: Duration = threads.iter().map(|&t| thread_cpu(t)).sum();
    let started = Instant::now();
    for _ in 0..n {
        let mut record = BaseRecord::<(), [u8]>::to(name).payload(&value[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }
    producer.flush(Duration::from_secs(120))?;
    let took = started.elapsed();
    let client_cpu = threads
        .iter()
        .map(|&t| thread_cpu(t))
        .sum::<Duration>()
        .saturating_sub(cpu_before);
    let reports = producer.context();
    let (ok, failed) = (
        reports.ok.load(Ordering::Relaxed),
        reports.failed.load(Ordering::Relaxed),
    );
    anyhow::ensure!(
        ok == n as u64 + 1 && failed == 0,
        "{ok} delivered, {failed} failed of {n}"
    );
    Ok(Produced { took, client_cpu })
}

fn embedded_consume(
    cluster: &Cluster,
    rt: &tokio::runtime::Runtime,
    name: &str,
    n: usize,
) -> anyhow::Result<Consumed> {
    rt.block_on(async {
        let config = ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest);
        let mut consumer = Consumer::new(cluster, config)?;
        consumer.assign((0..PARTITIONS).map(|p| (name.to_string(), p)))?;
        let started = Instant::now();
        let mut first = None;
        let mut got = 0;
        while got < n {
            let records = consumer.poll(Duration::from_secs(5)).await?;
            if got == 0 && !records.is_empty() {
                first = Some(Instant::now());
            }
            got += records.len();
        }
        let first = first.unwrap_or(started);
        let consumed = Consumed {
            startup: first - started,
            rest: first.elapsed(),
        };
        consumer.close().await?;
        anyhow::Ok(consumed)
    })
}

/// A librdkafka consumer of the bench topic's partitions, from the beginning.
///
/// `fetch.queue.backoff.ms` is lowered from librdkafka's 1,000 ms: once its prefetch queue
/// holds `queued.min.messages`, librdkafka stops fetching for that long, and a consumer that
/// drains the queue in the meantime then sits idle (400,000 records of 100 B: 19 MB/s with the
/// default, 165-241 MB/s with 10 ms).
fn kafka_consumer(boot: &str, name: &str) -> anyhow::Result<BaseConsumer> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", boot)
        .set("socket.nagle.disable", nagle_off())
        .set("group.id", "bench-unused")
        .set("enable.auto.commit", "false")
        .set("fetch.queue.backoff.ms", "10")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(name, p as i32, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    Ok(consumer)
}

/// librdkafka one message per call (`rdkafka`'s `BaseConsumer::poll`, an event per message).
fn kafka_consume_polled(boot: &str, name: &str, n: usize) -> anyhow::Result<Consumed> {
    let consumer = kafka_consumer(boot, name)?;
    let started = Instant::now();
    let mut first = None;
    let mut got = 0;
    while got < n {
        match consumer.poll(Duration::from_secs(5)) {
            Some(Ok(m)) => {
                if got == 0 {
                    first = Some(Instant::now());
                }
                std::hint::black_box(m.payload());
                got += 1;
            }
            Some(Err(e)) => return Err(e.into()),
            None => anyhow::bail!("no record for 5 s after {got} of {n}"),
        }
    }
    let first = first.unwrap_or(started);
    Ok(Consumed {
        startup: first - started,
        rest: first.elapsed(),
    })
}

/// librdkafka's batch consume, up to 10,000 messages per call.
fn kafka_consume(boot: &str, name: &str, n: usize) -> anyhow::Result<Consumed> {
    let mut consumer = BatchConsumer::new(kafka_consumer(boot, name)?)?;
    let started = Instant::now();
    let mut first = None;
    let mut got = 0;
    while got < n {
        let k = consumer.consume((n - got).min(10_000), Duration::from_secs(5), |payload| {
            std::hint::black_box(payload);
        })?;
        anyhow::ensure!(k > 0, "no record for 5 s after {got} of {n}");
        if got == 0 {
            first = Some(Instant::now());
        }
        got += k;
    }
    let first = first.unwrap_or(started);
    Ok(Consumed {
        startup: first - started,
        rest: first.elapsed(),
    })
}

/// librdkafka's batch consume API (`rd_kafka_consume_batch_queue`, what confluent-kafka's
/// `Consumer.consume(num_messages=...)` and other high-throughput clients call), which the
/// `rdkafka` crate does not wrap: many messages per call, as the embedded consumer's `poll`
/// returns them, where `BaseConsumer::poll` handles one event per message.
struct BatchConsumer {
    queue: std::ptr::NonNull<rdkafka::bindings::rd_kafka_queue_t>,
    /// Room for the message pointers of one call, kept across calls.
    messages: Vec<*mut rdkafka::bindings::rd_kafka_message_t>,
    /// Outlives `queue` (destroyed first, in `drop`).
    consumer: BaseConsumer,
}

#[allow(unsafe_code)]
impl BatchConsumer {
    fn new(consumer: BaseConsumer) -> anyhow::Result<BatchConsumer> {
        // SAFETY: the client pointer is valid while `consumer` lives; the queue handle it
        // returns is released in `drop`, before the consumer.
        let queue = unsafe {
            rdkafka::bindings::rd_kafka_queue_get_consumer(consumer.client().native_ptr())
        };
        let queue = std::ptr::NonNull::new(queue).context("librdkafka has no consumer queue")?;
        Ok(BatchConsumer {
            queue,
            messages: Vec::new(),
            consumer,
        })
    }

    /// Waits up to `timeout` for up to `max` messages, hands each payload to `each`, and
    /// returns how many came. A message carrying an error fails the call.
    fn consume(
        &mut self,
        max: usize,
        timeout: Duration,
        mut each: impl FnMut(&[u8]),
    ) -> anyhow::Result<usize> {
        use rdkafka::bindings as rd;
        let messages = &mut self.messages;
        messages.resize(max.max(messages.len()), std::ptr::null_mut());
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: `messages` has room for `max` pointers; librdkafka fills the first `k`.
        let k = unsafe {
            rd::rd_kafka_consume_batch_queue(self.queue.as_ptr(), ms, messages.as_mut_ptr(), max)
        };
        let k = usize::try_from(k).context("rd_kafka_consume_batch_queue failed")?;
        let mut error = None;
        for &m in &messages[..k] {
            // SAFETY: each of the first `k` pointers is a message we own until destroyed here.
            unsafe {
                let msg = &*m;
                if msg.err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                    error.get_or_insert_with(|| format!("consume error {:?}", msg.err));
                } else if !msg.payload.is_null() {
                    each(std::slice::from_raw_parts(
                        msg.payload as *const u8,
                        msg.len,
                    ));
                }
                rd::rd_kafka_message_destroy(m);
            }
        }
        match error {
            Some(e) => anyhow::bail!(e),
            None => Ok(k),
        }
    }
}

#[allow(unsafe_code)]
impl Drop for BatchConsumer {
    fn drop(&mut self) {
        // SAFETY: the handle came from `rd_kafka_queue_get_consumer` and is released once,
        // while `self.consumer` still lives.
        unsafe { rdkafka::bindings::rd_kafka_queue_destroy(self.queue.as_ptr()) };
        let _ = &self.consumer;
    }
}

/// A consume run: until the first record, then the rest (the throughput figure).
struct Consumed {
    startup: Duration,
    rest: Duration,
}

/// The number after `name` on the command line, if `name` is there.
fn mib_flag(args: &[String], name: &str) -> anyhow::Result<Option<u64>> {
    let Some(i) = args.iter().position(|a| a == name) else {
        return Ok(None);
    };
    let mib = args
        .get(i + 1)
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("{name} takes a number of MiB"))?;
    Ok(Some(mib))
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let scratch = eddy_benches::scratch_dir().context("bench directory")?;
    let periodic = std::env::args().any(|a| a == "--periodic");
    let mut config = ClusterConfig::new("bench", scratch.path());
    config.topic_defaults.min_insync_replicas = 1;
    let args: Vec<String> = std::env::args().collect();
    // `-- --max-commit-mib N`: the log writers' group commit cap (1 MiB by default).
    if let Some(mib) = mib_flag(&args, "--max-commit-mib")? {
        config.log.max_commit_bytes = (mib as usize) << 20;
    }
    // `-- --page-cache-window-mib N`: see `eddy_log::LogConfig::page_cache_window`.
    if let Some(mib) = mib_flag(&args, "--page-cache-window-mib")? {
        config.log.page_cache_window = mib << 20;
    }
    if periodic {
        config.log.durability = eddy_log::Durability::Periodic {
            interval: Duration::from_millis(1000),
        };
    }
    let commit_mib = config.log.max_commit_bytes >> 20;
    let config_window_mib = config.log.page_cache_window >> 20;
    let eddy = EmbeddedCluster::open(config)?;
    let cluster = eddy.cluster();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let server = rt.block_on(KafkaServer::start(
        cluster.clone(),
        KafkaConfig {
            base_port: 0,
            ..KafkaConfig::default()
        },
    ))?;
    let boot = server.bootstrap();
    let scale = if quick { 4 } else { 1 };
    println!(
        "kafka_wire: 3 brokers, {} durability, commits up to {} MiB, page-cache window {} MiB, {PARTITIONS} partitions x RF 3, linger 5 ms, batch.size {BATCH}, socket.nagle.disable={}; librdkafka {} vs eddy-client",
        if periodic { "periodic" } else { "sync" },
        commit_mib,
        config_window_mib,
        nagle_off(),
        rdkafka::util::get_rdkafka_version().1
    );
    let mut worst: f64 = f64::MAX;
    for (size, n) in [(100usize, 1_000_000 / scale), (1024, 200_000 / scale)] {
        let mb = (size * n) as f64 / MB;
        for acks in [Acks::Leader, Acks::All] {
            let label = if acks == Acks::All { "all" } else { "1" };
            // Three passes, each side first in turn (the disk's state after one run weighs
            // on the next), each into topics of its own; the median ratio counts.
            let mut passes = Vec::new();
            for pass in 0..3 {
                let t_embedded = format!("emb-{size}-{label}-{pass}");
                let t_kafka = format!("kafka-{size}-{label}-{pass}");
                topic(&cluster, &rt, &t_embedded)?;
                topic(&cluster, &rt, &t_kafka)?;
                let all = acks == Acks::All;
                let (e, k) = if pass % 2 == 0 {
                    let e = embedded_produce(&cluster, &rt, &t_embedded, size, n, acks)?;
                    (
                        e,
                        kafka_produce(&boot, &t_kafka, size, n, acks, all, false)?,
                    )
                } else {
                    let k = kafka_produce(&boot, &t_kafka, size, n, acks, all, false)?;
                    (
                        embedded_produce(&cluster, &rt, &t_embedded, size, n, acks)?,
                        k,
                    )
                };
                let k_secs = k.took.as_secs_f64();
                passes.push((
                    mb / e.as_secs_f64(),
                    mb / k_secs,
                    k.client_cpu.as_secs_f64() / k_secs,
                ));
            }
            let each: Vec<String> = passes
                .iter()
                .map(|(e, k, _)| format!("{:.2}", k / e))
                .collect();
            let cores: Vec<String> = passes.iter().map(|p| format!("{:.2}", p.2)).collect();
            passes.sort_by(|a, b| (a.1 / a.0).total_cmp(&(b.1 / b.0)));
            let (e_mb, k_mb, _) = passes[1];
            let ratio = k_mb / e_mb;
            worst = worst.min(ratio);
            println!(
                "produce {size:>4} B acks={label:<3}: embedded {e_mb:7.1} MB/s ({:8.0} rec/s)  kafka {k_mb:7.1} MB/s ({:8.0} rec/s)  = {ratio:.2}x  (median of 3: {}; librdkafka's threads used {} cores)",
                e_mb * MB / size as f64,
                k_mb * MB / size as f64,
                each.join(", "),
                cores.join(" / ")
            );
            let (t_embedded, t_kafka) = (
                format!("emb-{size}-{label}-0"),
                format!("kafka-{size}-{label}-0"),
            );
            if acks == Acks::All {
                // librdkafka's own default for acks=all: not idempotent, so up to
                // `max.in.flight` requests per connection (the idempotent producer keeps one).
                // Then the idempotent producer with its threads at the lowest priority: it
                // busy-polls while its one request is in flight (librdkafka computes its next
                // wake-up, "now", before it finds it may not send), and this shows what that
                // spin costs the server on shared cores.
                for (suffix, label, note, idempotent, nice) in [
                    (
                        "plain",
                        "not idempotent",
                        "librdkafka's default",
                        false,
                        false,
                    ),
                    (
                        "nice",
                        "idempotent, nice 19",
                        "librdkafka's threads at the lowest priority",
                        true,
                        true,
                    ),
                ] {
                    let t = format!("kafka-{size}-{suffix}");
                    topic(&cluster, &rt, &t)?;
                    let k = kafka_produce(&boot, &t, size, n, acks, idempotent, nice)?;
                    let k_secs = k.took.as_secs_f64();
                    let p_mb = mb / k_secs;
                    println!(
                        "  {label:<22}:                                    kafka {p_mb:7.1} MB/s ({:8.0} rec/s)  = {:.2}x  ({note}; not counted; {:.2} cores)",
                        n as f64 / k_secs,
                        p_mb / e_mb,
                        k.client_cpu.as_secs_f64() / k_secs,
                    );
                }
            }
            if acks == Acks::All {
                // Throughput from the first record on; the time to it is shown apart.
                // Three passes each, alternating; the median ratio counts.
                let mut passes = Vec::new();
                for _ in 0..3 {
                    let e = embedded_consume(&cluster, &rt, &t_embedded, n)?;
                    let k = kafka_consume(&boot, &t_kafka, n)?;
                    passes.push((
                        mb / e.rest.as_secs_f64(),
                        mb / k.rest.as_secs_f64(),
                        e.startup,
                        k.startup,
                    ));
                }
                passes.sort_by(|a, b| (a.1 / a.0).total_cmp(&(b.1 / b.0)));
                let (e_mb, k_mb, e_start, k_start) = passes[1];
                let ratio = k_mb / e_mb;
                worst = worst.min(ratio);
                let polled = kafka_consume_polled(&boot, &t_kafka, n)?;
                let p_mb = mb / polled.rest.as_secs_f64();
                println!(
                    "consume {size:>4} B          : embedded {e_mb:7.1} MB/s ({:8.0} rec/s)  kafka {k_mb:7.1} MB/s ({:8.0} rec/s)  = {ratio:.2}x  (median of 3; first record after {e_start:?} / {k_start:?})",
                    e_mb * MB / size as f64,
                    k_mb * MB / size as f64,
                );
                println!(
                    "  one message per poll  :                                    kafka {p_mb:7.1} MB/s ({:8.0} rec/s)  = {:.2}x  (not counted)",
                    p_mb * MB / size as f64,
                    p_mb / e_mb,
                );
            }
        }
    }
    println!(
        "worst kafka/embedded ratio: {worst:.2}x (target >= 0.60): {}",
        if worst >= 0.6 { "met" } else { "NOT met" }
    );
    drop(server);
    drop(rt);
    eddy.shutdown();
    Ok(())
}
