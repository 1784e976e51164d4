//! Crash safety: a child process appending from several threads is killed with SIGKILL at
//! random moments, many times over the same directory. After each kill, the reopened log must
//! hold exactly a prefix of what the child appended to each partition, including everything the
//! child was told was committed, with end offsets and sizes that match the batches on disk.
//!
//! The child is this same test binary, started again with an environment variable set.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use bytes::{Bytes, BytesMut};
use eddy_log::{AppendMode, BatchHeader, LogError, LogStore, PartitionConfig};
use eddy_types::PartitionId;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const CHILD_ENV: &str = "EDDY_LOG_CRASH_CHILD_DIR";
const TEST_NAME: &str = "test_kill_9_leaves_a_prefix_of_committed_appends";
const PARTITIONS: u32 = 3;
const RECORDS_PER_BATCH: usize = 5;
const KILLS: usize = 30;

/// The `k`-th batch the child appends to partition `p`: its content depends only on `(p, k)`.
fn nth_batch(p: u32, k: u64) -> Bytes {
    let records: Vec<Record> = (0..RECORDS_PER_BATCH)
        .map(|j| {
            let mut value = format!("p{p}-b{k}-r{j}|").into_bytes();
            // Sizes vary from a few bytes to about 40 KiB, so some batches overflow LMDB pages.
            let pad = ((k * 7919 + j as u64 * 104_729) % 8_000) as usize;
            value.resize(value.len() + pad, b'.');
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: j as i64,
                sequence: j as i32 - 1,
                timestamp: k as i64,
                key: None,
                value: Some(Bytes::from(value)),
                headers: Default::default(),
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode");
    buf.freeze()
}

/// Appends batches to every partition from one thread per partition until killed, printing
/// `ack <partition> <last offset>` after each commit.
fn child(dir: &str) -> ! {
    let log = LogStore::open(dir, common::small_config()).expect("child open");
    let parts: Vec<_> = (0..PARTITIONS)
        .map(|p| (PartitionId(p), PartitionConfig::default()))
        .collect();
    match log.create_partitions(parts).wait() {
        Ok(()) | Err(LogError::PartitionExists(_)) => {}
        Err(e) => panic!("child create: {e}"),
    }
    let threads: Vec<_> = (0..PARTITIONS)
        .map(|p| {
            let log = log.clone();
            std::thread::spawn(move || {
                let pid = PartitionId(p);
                let mut k = log.offsets(pid).expect("offsets").log_end / RECORDS_PER_BATCH as u64;
                loop {
                    let a = log
                        .append_one(pid, nth_batch(p, k), AppendMode::Leader { leader_epoch: 0 })
                        .wait()
                        .expect("child append");
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {p} {}", a.last_offset).expect("stdout");
                    out.flush().expect("flush");
                    k += 1;
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    unreachable!("child threads never end")
}

/// Checks that partition `p` holds batches 0..n of `nth_batch` and nothing else, comparing the
/// content of batches `from_batch..n` (the earlier ones were compared after an earlier kill), and
/// returns its log end.
fn check_prefix(log: &LogStore, p: u32, from_batch: u64) -> u64 {
    let pid = PartitionId(p);
    // A child killed before its first commit never created the partitions; the caller's
    // `end >= acked_end` check still fails if anything of it was acknowledged.
    let offsets = match log.offsets(pid) {
        Err(LogError::UnknownPartition(_)) => return 0,
        other => other.expect("offsets"),
    };
    let fetched = log.read(pid, 0, usize::MAX).expect("read");
    let mut pos = 0;
    let mut k = 0u64;
    while pos < fetched.records.len() {
        if k < from_batch {
            let header = BatchHeader::parse(&fetched.records[pos..]).expect("header");
            assert_eq!(
                header.base_offset as u64,
                k * RECORDS_PER_BATCH as u64,
                "p{p} batch {k}"
            );
            pos += header.total_len();
            k += 1;
            continue;
        }
        let header = BatchHeader::parse(&fetched.records[pos..]).expect("header");
        let len = header.total_len();
        let expected = nth_batch(p, k);
        assert_eq!(
            header.base_offset as u64,
            k * RECORDS_PER_BATCH as u64,
            "p{p} batch {k}"
        );
        // Everything but the base offset and the leader epoch is as appended. (`assert!`, not
        // `assert_eq!`: a failure should not print 40 KiB of bytes.)
        let stored = &fetched.records[pos..pos + len];
        assert!(
            len == expected.len()
                && stored[8..12] == expected[8..12]
                && stored[16..] == expected[16..],
            "p{p} batch {k} differs from what was appended"
        );
        pos += len;
        k += 1;
    }
    let end = k * RECORDS_PER_BATCH as u64;
    assert_eq!(
        offsets.log_end, end,
        "p{p}: log end disagrees with the batches on disk"
    );
    assert_eq!(
        offsets.size_bytes,
        fetched.records.len() as u64,
        "p{p}: size disagrees"
    );
    end
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn test_kill_9_leaves_a_prefix_of_committed_appends() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
    }
    let dir = tempfile::tempdir().unwrap();
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    println!("seed {seed}");
    let mut rng = Rng(seed);
    let exe = std::env::current_exe().unwrap();
    let mut total_acked = 0u64;
    let mut verified: HashMap<u32, u64> = HashMap::new();
    for round in 0..KILLS {
        let mut child = Command::new(&exe)
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut acked: HashMap<u32, u64> = HashMap::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut words = line.split_whitespace();
                if words.next() != Some("ack") {
                    continue;
                }
                let (Some(p), Some(last)) = (words.next(), words.next()) else {
                    continue;
                };
                if let (Ok(p), Ok(last)) = (p.parse::<u32>(), last.parse::<u64>()) {
                    let e = acked.entry(p).or_default();
                    *e = (*e).max(last + 1);
                }
            }
            acked
        });
        // Let it start and write for a random while: 20 to 220 ms.
        std::thread::sleep(Duration::from_millis(20 + rng.next() % 200));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "round {round}: the child ended by itself: {status}"
        );
        let acked = reader.join().unwrap();

        let log = LogStore::open(dir.path(), common::small_config()).unwrap();
        for p in 0..PARTITIONS {
            // The last round compares every batch again.
            let from = if round + 1 == KILLS {
                0
            } else {
                verified.get(&p).copied().unwrap_or(0)
            };
            let end = check_prefix(&log, p, from);
            verified.insert(p, end / RECORDS_PER_BATCH as u64);
            let acked_end = acked.get(&p).copied().unwrap_or(0);
            assert!(
                end >= acked_end,
                "round {round} seed {seed}: p{p} lost acknowledged records: log end {end}, acked up to {acked_end}"
            );
            total_acked += acked_end.min(end);
        }
    }
    assert!(
        total_acked > 0,
        "the child never got an append acknowledged"
    );
}
