//! Embedded produce throughput through the broker cluster: replication factor 1 vs 3, acks=1
//! vs all, as ratios to the log's raw append throughput measured in the same run.
//!
//! The last two cases send the same records through the embedded producer (eddy-client:
//! accumulator, sticky partitioner, idempotence) instead of prebuilt batches.
//!
//! `cargo bench -p eddy-benches --bench produce_acks` (add `-- --quick` for a short run;
//! `EDDY_BENCH_DIR` picks the directory, default a temp dir).
//!
//! Every case: 1 KiB records in 16 KiB batches (Kafka's default `batch.size`), a topic of 3
//! partitions (leaders on the 3 brokers), 4 requests in flight per partition, `sync` durability
//! (an fsync per commit on every replica). The baseline appends the same batches with the same
//! concurrency straight to one `LogStore` (one log directory, no replication, no actors).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use eddy_broker::{ClusterConfig, EmbeddedCluster, NewTopic};
use eddy_client::{Producer, ProducerConfig, ProducerRecord};
use eddy_log::testing::batch_bytes;
use eddy_log::{AppendMode, LogConfig, LogStore, PartitionConfig};
use eddy_types::{Acks, PartitionId};

const RECORD: usize = 1_000;
const PER_BATCH: usize = 16;
const PARTITIONS: u32 = 3;
const IN_FLIGHT: usize = 4;
const MB: f64 = 1_000_000.0;

fn raw_log_mb_s(dir: &Path, run: Duration) -> anyhow::Result<f64> {
    let log = LogStore::open(dir, LogConfig::default())?;
    let pids: Vec<PartitionId> = (0..PARTITIONS).map(PartitionId).collect();
    log.create_partitions(
        pids.iter()
            .map(|p| (*p, PartitionConfig::default()))
            .collect(),
    )
    .wait()?;
    let batch = batch_bytes(PER_BATCH, 0, RECORD);
    let bytes = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + run;
    let started = Instant::now();
    let mut threads = Vec::new();
    for p in &pids {
        for _ in 0..IN_FLIGHT {
            let (log, batch, bytes, p) = (log.clone(), batch.clone(), bytes.clone(), *p);
            threads.push(std::thread::spawn(move || -> anyhow::Result<()> {
                while Instant::now() < deadline {
                    log.append_one(p, batch.clone(), AppendMode::Leader { leader_epoch: 0 })
                        .wait()?;
                    bytes.fetch_add(batch.len() as u64, Ordering::Relaxed);
                }
                Ok(())
            }));
        }
    }
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("appender panicked"))??;
    }
    Ok(bytes.load(Ordering::Relaxed) as f64 / MB / started.elapsed().as_secs_f64())
}

fn cluster_mb_s(dir: &Path, rf: u32, acks: Acks, run: Duration) -> anyhow::Result<f64> {
    let mut config = ClusterConfig::new("bench", dir);
    config.topic_defaults.min_insync_replicas = 1;
    let eddy = EmbeddedCluster::open(config)?;
    let cluster = eddy.cluster();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // The produce tasks are local: a `Cluster` request is an actix future, not `Send`.
    let local = tokio::task::LocalSet::new();
    let mb_s = local.block_on(&rt, async {
        cluster
            .create_topic(
                NewTopic::new("bench")
                    .partitions(PARTITIONS)
                    .replication_factor(rf),
            )
            .await?;
        let batch = batch_bytes(PER_BATCH, 0, RECORD);
        let bytes = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + run;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for p in 0..PARTITIONS {
            for _ in 0..IN_FLIGHT {
                let (cluster, batch, bytes) = (cluster.clone(), batch.clone(), bytes.clone());
                tasks.push(tokio::task::spawn_local(async move {
                    while Instant::now() < deadline {
                        cluster.produce("bench", p, batch.clone(), acks).await?;
                        bytes.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    }
                    Ok::<_, eddy_broker::BrokerError>(())
                }));
            }
        }
        for t in tasks {
            t.await??;
        }
        anyhow::Ok(bytes.load(Ordering::Relaxed) as f64 / MB / started.elapsed().as_secs_f64())
    });
    eddy.shutdown();
    mb_s
}

/// The same load through the embedded producer: unkeyed 1 KiB records handed over in chunks
/// (sticky partitioning, 16 KiB batches, 5 ms linger), up to `CHUNKS` chunks outstanding.
/// Counts record value bytes (a few percent under the batch bytes the other cases count).
fn producer_mb_s(
    dir: &Path,
    rf: u32,
    config: ProducerConfig,
    run: Duration,
) -> anyhow::Result<f64> {
    const CHUNK: usize = 512;
    const CHUNKS: usize = 4;
    let mut cluster_config = ClusterConfig::new("bench", dir);
    cluster_config.topic_defaults.min_insync_replicas = 1;
    let eddy = EmbeddedCluster::open(cluster_config)?;
    let cluster = eddy.cluster();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let value = bytes::Bytes::from(vec![b'x'; RECORD]);
    let mb_s = rt.block_on(async {
        cluster
            .create_topic(
                NewTopic::new("bench")
                    .partitions(PARTITIONS)
                    .replication_factor(rf),
            )
            .await?;
        let producer = Producer::start(&cluster, config).await?;
        let deadline = Instant::now() + run;
        let started = Instant::now();
        let mut outstanding = std::collections::VecDeque::new();
        let mut records = 0u64;
        while Instant::now() < deadline {
            while outstanding.len() < CHUNKS {
                let chunk = (0..CHUNK).map(|_| ProducerRecord::new("bench", value.clone()));
                outstanding.push_back(producer.send_batch(chunk));
            }
            if let Some(chunk) = outstanding.pop_front() {
                for r in chunk.await {
                    r?;
                    records += 1;
                }
            }
        }
        for chunk in outstanding {
            for r in chunk.await {
                r?;
                records += 1;
            }
        }
        let secs = started.elapsed().as_secs_f64();
        producer.close().await;
        anyhow::Ok((records * RECORD as u64) as f64 / MB / secs)
    })?;
    eddy.shutdown();
    Ok(mb_s)
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let run = Duration::from_secs(if quick { 3 } else { 10 });
    let scratch = eddy_benches::scratch_dir().context("bench directory")?;
    println!("produce_acks: 1 KiB records, {PER_BATCH} per batch, {PARTITIONS} partitions, {IN_FLIGHT} in flight each, sync durability, {run:?} per case");

    let raw = raw_log_mb_s(&scratch.path().join("raw"), run)?;
    println!("raw log append (1 dir, no replication): {raw:8.1} MB/s");
    let cases = [
        ("RF 1, acks=1  ", 1, Acks::Leader),
        ("RF 1, acks=all", 1, Acks::All),
        ("RF 3, acks=1  ", 3, Acks::Leader),
        ("RF 3, acks=all", 3, Acks::All),
    ];
    let mut results = Vec::new();
    for (i, (name, rf, acks)) in cases.iter().enumerate() {
        let dir = scratch.path().join(format!("case-{i}"));
        let mb_s = cluster_mb_s(&dir, *rf, *acks, run)?;
        println!("{name}: {mb_s:8.1} MB/s  = {:.2}x raw log", mb_s / raw);
        results.push(mb_s);
    }
    let ratio = results[3] / results[0];
    println!(
        "RF 3 + acks=all vs RF 1 + acks=1: {:.2}x (target >= 0.25): {}",
        ratio,
        if ratio >= 0.25 { "met" } else { "NOT met" }
    );

    println!("through the embedded producer (eddy-client):");
    let plain = ProducerConfig {
        acks: Acks::Leader,
        idempotence: false,
        ..ProducerConfig::default()
    };
    let one = producer_mb_s(&scratch.path().join("producer-1"), 1, plain, run)?;
    println!(
        "RF 1, acks=1, not idempotent  : {one:8.1} MB/s  = {:.2}x raw log",
        one / raw
    );
    let all = producer_mb_s(
        &scratch.path().join("producer-3"),
        3,
        ProducerConfig::default(),
        run,
    )?;
    println!(
        "RF 3, acks=all, idempotent    : {all:8.1} MB/s  = {:.2}x raw log",
        all / raw
    );
    let ratio = all / one;
    println!(
        "producer RF 3 + acks=all vs RF 1 + acks=1: {:.2}x (target >= 0.25): {}",
        ratio,
        if ratio >= 0.25 { "met" } else { "NOT met" }
    );
    Ok(())
}
