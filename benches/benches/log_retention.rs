//! eddy-log under retention churn: what the soak run found, as a benchmark.
//!
//! `cargo bench -p eddy-benches --bench log_retention` (add `-- --quick` for a short run, or
//! `-- --idle-only` for the last measurement alone).
//!
//! Six partitions with `retention.bytes` of 32 MiB each take appends of whole batches
//! (1 KiB records, batch sizes drawn from 16 KiB to 1 MiB as librdkafka sends them under
//! load), `sync` durability, with a retention pass after every 1 GiB appended (512 MiB with
//! `--quick`), while a reader thread reads every partition from its start again and again. Each round
//! prints the append throughput, the mean commit time, the data file's size against the bytes
//! the partitions keep, and the page counts of LMDB's free list (read with `mdb_stat` when it
//! is installed: Debian's `lmdb-utils`). Retention frees whole batches, i.e. runs of pages of
//! every size; a file much larger than what is kept, and throughput falling round after
//! round, mean LMDB is not reusing them. Last, it times a retention pass that finds nothing to
//! remove among 100,000 partitions, and what of it the writer thread does (appends wait for
//! that part).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use eddy_log::testing::batch_bytes;
use eddy_log::{AppendMode, AppendRequest, Durability, LogConfig, LogStore, PartitionConfig};
use eddy_types::PartitionId;

const LEADER: AppendMode = AppendMode::Leader { leader_epoch: 0 };
const PARTITIONS: u32 = 6;
const KEEP: u64 = 32 << 20;
const MB: f64 = 1_000_000.0;

/// `Free pages` and `Number of pages used` of `mdb_stat -ef`, when it is there.
fn free_pages(dir: &Path) -> Option<(u64, u64)> {
    let out = Command::new("mdb_stat").arg("-ef").arg(dir).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some((field("Free pages:")?, field("Number of pages used:")?))
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let scratch = eddy_benches::scratch_dir().context("bench directory")?;
    if std::env::args().any(|a| a == "--idle-only") {
        return idle_pass(&scratch.path().join("idle"));
    }
    let rounds = if quick { 4 } else { 12 };
    // As the broker's retention check sees a loaded partition.
    let per_round: usize = if quick { 512 << 20 } else { 1 << 30 };
    let log = LogStore::open(
        scratch.path(),
        LogConfig {
            durability: Durability::Sync,
            ..LogConfig::default()
        },
    )?;
    let config = PartitionConfig {
        retention_ms: None,
        retention_bytes: Some(KEEP),
    };
    log.create_partitions(
        (0..PARTITIONS)
            .map(|i| (PartitionId(i), config.clone()))
            .collect(),
    )
    .wait()?;
    // Consumers meanwhile: a thread reading every partition from its start to its end, over
    // and over, in 1 MiB reads (each a short read transaction), as fetches do.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (log, stop) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut read = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for i in 0..PARTITIONS {
                    let p = PartitionId(i);
                    let Ok(o) = log.offsets(p) else { continue };
                    let mut at = o.log_start;
                    while at < o.log_end {
                        match log.read(p, at, 1 << 20) {
                            Ok(f) if f.next_offset > at => {
                                read += f.records.len() as u64;
                                at = f.next_offset;
                            }
                            _ => break,
                        }
                    }
                }
            }
            read
        })
    };
    // Batch sizes as a loaded librdkafka producer sends them.
    let sizes = [16usize, 64, 200, 500, 1000];
    let batches: Vec<_> = sizes
        .iter()
        .map(|records| batch_bytes(*records, 0, 1_000))
        .collect();
    println!(
        "eddy-log under retention churn in {} ({rounds} rounds of {} MiB, {PARTITIONS} partitions keeping {} MiB each)",
        scratch.path().display(),
        per_round >> 20,
        KEEP >> 20
    );
    println!(
        "{:>5} {:>9} {:>12} {:>10} {:>9} {:>8} {:>12}",
        "round", "MB/s", "commit (ms)", "file (MB)", "kept (MB)", "x kept", "free pages"
    );
    let mut first = None;
    let mut last = 0.0;
    let mut n = 0usize;
    for round in 1..=rounds {
        let before = log.stats();
        let started = Instant::now();
        let mut written = 0usize;
        while written < per_round {
            let batch = &batches[n % batches.len()];
            let partition = PartitionId((n % PARTITIONS as usize) as u32);
            n += 1;
            written += batch.len();
            let appended = log
                .append(vec![AppendRequest {
                    partition,
                    records: batch.clone(),
                    mode: LEADER,
                }])
                .wait()?;
            for a in appended {
                a?;
            }
        }
        let secs = started.elapsed().as_secs_f64();
        let after = log.stats();
        // Everything is committed: let retention see it all.
        let marks = (0..PARTITIONS)
            .map(|i| {
                let p = PartitionId(i);
                log.offsets(p).map(|o| (p, o.log_end))
            })
            .collect::<Result<Vec<_>, _>>()?;
        log.checkpoint_high_watermarks(marks).wait()?;
        // One call frees at most RETENTION_STEP_BYTES: call until it is done, as the broker does.
        while log.enforce_retention(0).wait()?.more {}
        let kept: u64 = (0..PARTITIONS)
            .map(|i| log.offsets(PartitionId(i)).map(|o| o.size_bytes))
            .sum::<Result<u64, _>>()?;
        let file = log.disk_size()?;
        let mb_s = written as f64 / MB / secs;
        let commits = (after.commits - before.commits).max(1);
        let commit_ms = (after.commit_nanos - before.commit_nanos) as f64 / commits as f64 / 1e6;
        let free = free_pages(scratch.path())
            .map(|(free, used)| format!("{free}/{used}"))
            .unwrap_or_else(|| "-".into());
        println!(
            "{round:>5} {mb_s:>9.1} {commit_ms:>12.2} {:>10.0} {:>9.0} {:>8.1} {free:>12}",
            file as f64 / MB,
            kept as f64 / MB,
            file as f64 / kept.max(1) as f64
        );
        first.get_or_insert(mb_s);
        last = mb_s;
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let read = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the reader panicked"))?;
    println!("\nthe reader read {:.0} MB meanwhile", read as f64 / MB);
    if let Some(first) = first {
        println!(
            "\nlast round's throughput / first round's: {:.2} (1.0: retention costs nothing over time)",
            last / first
        );
    }
    idle_pass(&scratch.path().join("idle"))?;
    Ok(())
}

/// What one retention pass costs when nothing is due: brokers run one every
/// `retention_check_interval` (30 s). The walk over every partition runs in a read
/// transaction on a thread of its own; the writer, and the appends behind it, only see the
/// partitions found due.
fn idle_pass(dir: &Path) -> anyhow::Result<()> {
    const IDLE: u32 = 100_000;
    let log = LogStore::open(dir, LogConfig::default())?;
    let week = PartitionConfig {
        retention_ms: Some(7 * 24 * 3600 * 1000),
        retention_bytes: None,
    };
    log.create_partitions((0..IDLE).map(|i| (PartitionId(i), week.clone())).collect())
        .wait()?;
    // One batch of now in every tenth partition: the pass reads its first batch's header.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let batch = batch_bytes(10, now_ms, 100);
    for chunk in (0..IDLE).step_by(10).collect::<Vec<_>>().chunks(1_000) {
        let appended = log
            .append(
                chunk
                    .iter()
                    .map(|i| AppendRequest {
                        partition: PartitionId(*i),
                        records: batch.clone(),
                        mode: LEADER,
                    })
                    .collect(),
            )
            .wait()?;
        for a in appended {
            a?;
        }
    }
    let mut passes = Vec::new();
    let before = log.stats();
    for _ in 0..5 {
        let started = Instant::now();
        let report = log.enforce_retention(now_ms).wait()?;
        passes.push(started.elapsed().as_secs_f64() * 1e3);
        anyhow::ensure!(report.batches == 0, "a week-long retention removed batches");
    }
    let after = log.stats();
    let max = passes.iter().copied().fold(0.0, f64::max);
    println!(
        "\na retention pass with nothing due, {IDLE} partitions with retention.ms (one in ten with a batch): median {:.1} ms, max {:.1} ms, in a read transaction off the writer; the writer thread: {} commits, {:.1} ms in 5 passes",
        eddy_benches::median(passes),
        max,
        after.commits - before.commits,
        (after.commit_nanos - before.commit_nanos) as f64 / 1e6,
    );
    Ok(())
}
