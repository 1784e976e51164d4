//! Removing records: truncation, DeleteRecords, retention by time and by size.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use common::*;
use eddy_log::testing::batch_bytes;
use eddy_log::{AppendMode, LogConfig, LogError, LogStore, PartitionConfig, RETENTION_STEP_BYTES};
use eddy_types::PartitionId;

const P: PartitionId = PartitionId(1);

fn leader(epoch: i32) -> AppendMode {
    AppendMode::Leader {
        leader_epoch: epoch,
    }
}

/// Five batches of 4 records: offsets 0-3, 4-7, ..., 16-19, timestamps 1000, 2000, ..., 5000.
fn five_batches(log: &eddy_log::LogStore) -> u64 {
    let mut size = 0;
    for i in 0..5 {
        let b = batch_bytes(4, 1_000 * (i + 1), 32);
        size = b.len() as u64;
        log.append_one(P, b, leader(i as i32)).wait().unwrap();
    }
    size
}

#[test]
fn test_truncate_to_removes_whole_batches_from_the_offset_on() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_with_partitions(dir.path(), &[1]);
    let batch = five_batches(&log);
    // An unknown partition in a checkpoint is skipped; the others are saved.
    log.checkpoint_high_watermarks(vec![(PartitionId(99), 5), (P, 20)])
        .wait()
        .unwrap();
    assert_eq!(log.offsets(P).unwrap().high_watermark, 20);

    // At a batch boundary.
    assert_eq!(log.truncate_to(P, 16).wait().unwrap(), 16);
    // Inside a batch: the whole batch 8-11 goes, the log ends at 8.
    assert_eq!(log.truncate_to(P, 10).wait().unwrap(), 8);
    let o = log.offsets(P).unwrap();
    assert_eq!(
        (o.log_end, o.high_watermark, o.size_bytes),
        (8, 8, 2 * batch)
    );
    let epochs: Vec<i32> = log.epochs(P).unwrap().iter().map(|e| e.epoch).collect();
    assert_eq!(epochs, vec![0, 1]);
    // Past the end is a no-op.
    assert_eq!(log.truncate_to(P, 100).wait().unwrap(), 8);

    // Appends continue from the new end, with a new epoch.
    let a = log
        .append_one(P, batch_bytes(2, 0, 8), leader(9))
        .wait()
        .unwrap();
    assert_eq!(a.base_offset, 8);
    assert_eq!(log.end_offset_for_epoch(P, 1).unwrap(), Some((1, 8)));
    assert_eq!(log.read(P, 0, usize::MAX).unwrap().next_offset, 10);
}

#[test]
fn test_delete_records_before_moves_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_with_partitions(dir.path(), &[1]);
    let batch = five_batches(&log);
    assert_eq!(log.delete_records_before(P, 6).wait().unwrap(), 6);
    let o = log.offsets(P).unwrap();
    assert_eq!((o.log_start, o.log_end, o.size_bytes), (6, 20, 4 * batch));
    // Offsets before the log start are out of range; the straddling batch is still served.
    assert!(matches!(
        log.read(P, 5, 100),
        Err(LogError::OffsetOutOfRange { log_start: 6, .. })
    ));
    let f = log.read(P, 6, 1).unwrap();
    assert_eq!((f.batches, f.next_offset), (1, 8));
    // Lookups by time never answer an offset below the log start.
    assert_eq!(log.offset_for_timestamp(P, 0).unwrap(), Some((6, 2_002)));
    // Backwards is a no-op, past the end an error.
    assert_eq!(log.delete_records_before(P, 2).wait().unwrap(), 6);
    assert!(matches!(
        log.delete_records_before(P, 21).wait(),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // Everything: the log is empty but keeps its end.
    assert_eq!(log.delete_records_before(P, 20).wait().unwrap(), 20);
    let o = log.offsets(P).unwrap();
    assert_eq!((o.log_start, o.log_end, o.size_bytes), (20, 20, 0));
    let a = log
        .append_one(P, batch_bytes(1, 0, 8), leader(5))
        .wait()
        .unwrap();
    assert_eq!(a.base_offset, 20);
}

#[test]
fn test_retention_by_time_removes_expired_batches_below_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_with_partitions(dir.path(), &[1, 2]);
    five_batches(&log);
    log.set_config(
        P,
        PartitionConfig {
            retention_ms: Some(1_500),
            retention_bytes: None,
        },
    )
    .wait()
    .unwrap();
    // Nothing is below the high watermark yet: nothing goes.
    let r = log.enforce_retention(5_000).wait().unwrap();
    assert_eq!(r.batches, 0);

    log.checkpoint_high_watermarks(vec![(P, 20)])
        .wait()
        .unwrap();
    // Cutoff 3500: batches with max timestamps 1003, 2003, 3003 are expired.
    let r = log.enforce_retention(5_000).wait().unwrap();
    assert_eq!((r.partitions, r.batches), (1, 3));
    let o = log.offsets(P).unwrap();
    assert_eq!(o.log_start, 12);
    // Partition 2 has no retention: untouched.
    assert_eq!(
        log.config(PartitionId(2)).unwrap(),
        PartitionConfig::default()
    );
    // Far in the future, everything under the high watermark goes, and the end stays.
    log.enforce_retention(1_000_000).wait().unwrap();
    let o = log.offsets(P).unwrap();
    assert_eq!((o.log_start, o.log_end, o.size_bytes), (20, 20, 0));
}

#[test]
fn test_retention_by_size_keeps_at_least_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_with_partitions(dir.path(), &[1]);
    let batch = five_batches(&log);
    log.checkpoint_high_watermarks(vec![(P, 16)])
        .wait()
        .unwrap();
    log.set_config(
        P,
        PartitionConfig {
            retention_ms: None,
            retention_bytes: Some(2 * batch + 1),
        },
    )
    .wait()
    .unwrap();
    // 5 batches; removing a batch is allowed while at least 2 batches + 1 byte would remain:
    // two batches go, three remain.
    let r = log.enforce_retention(0).wait().unwrap();
    assert_eq!((r.batches, r.bytes), (2, 2 * batch));
    let o = log.offsets(P).unwrap();
    assert_eq!((o.log_start, o.size_bytes), (8, 3 * batch));
    // A second pass changes nothing.
    assert_eq!(log.enforce_retention(0).wait().unwrap().batches, 0);
}

/// One retention call frees a bounded amount and says when there is more; calls repeated
/// until then reach the configured size.
#[test]
fn test_retention_removes_a_bounded_step_per_call() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let parts: Vec<PartitionId> = (1..=3).map(PartitionId).collect();
    let config = PartitionConfig {
        retention_bytes: Some(2 << 20),
        ..PartitionConfig::default()
    };
    log.create_partitions(parts.iter().map(|&p| (p, config.clone())).collect())
        .wait()
        .unwrap();
    let batch = batch_bytes(1, 0, 1 << 20);
    for &p in &parts {
        for _ in 0..8 {
            log.append_one(p, batch.clone(), leader(0)).wait().unwrap();
        }
        log.checkpoint_high_watermarks(vec![(p, 8)]).wait().unwrap();
    }
    let mut calls = Vec::new();
    loop {
        let r = log.enforce_retention(0).wait().unwrap();
        assert!(
            r.bytes <= RETENTION_STEP_BYTES + batch.len() as u64,
            "one call removed {} bytes",
            r.bytes
        );
        calls.push(r);
        if !r.more {
            break;
        }
        // A guard against a pass that never ends: 18 MiB to remove, a step at least a batch.
        assert!(calls.len() <= 18, "retention never finishes: {calls:?}");
    }
    assert!(calls.len() >= 2, "{calls:?}");
    // The pass looked for the due partitions once; each later call went on from where the
    // one before stopped.
    assert_eq!(log.stats().retention_scans, 1);
    let removed: u64 = calls.iter().map(|r| r.batches).sum();
    // Each partition keeps the two newest batches (at least 2 MiB).
    assert_eq!(removed, 3 * 6, "{calls:?}");
    // A new pass looks again (and finds nothing).
    assert_eq!(log.enforce_retention(0).wait().unwrap().batches, 0);
    assert_eq!(log.stats().retention_scans, 2);
    for &p in &parts {
        let o = log.offsets(p).unwrap();
        assert_eq!((o.log_start, o.size_bytes), (6, 2 * batch.len() as u64));
    }
}

#[test]
fn test_retention_with_nothing_due_leaves_the_writer_alone() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_with_partitions(dir.path(), &[1, 2, 3]);
    five_batches(&log);
    for p in [1, 2, 3] {
        log.set_config(
            PartitionId(p),
            PartitionConfig {
                retention_ms: Some(1_500),
                retention_bytes: None,
            },
        )
        .wait()
        .unwrap();
    }
    log.checkpoint_high_watermarks(vec![(P, 20)])
        .wait()
        .unwrap();
    // The scan runs in a read transaction; with nothing expired, no commit happens.
    let before = log.stats().commits;
    let r = log.enforce_retention(2_000).wait().unwrap();
    assert_eq!((r.partitions, r.batches, r.more), (0, 0, false));
    assert_eq!(log.stats().commits, before);
    // Partitions 2 and 3 hold nothing; 1 has two batches due at 4,000 (newest 1003, 2003).
    let r = log.enforce_retention(4_000).wait().unwrap();
    assert_eq!((r.partitions, r.batches), (1, 2));
    assert_eq!(log.stats().commits, before + 1);
    assert_eq!(log.offsets(P).unwrap().log_start, 8);
}

/// Retention calls until one says there is no more; each removes a bounded step.
fn purge_all(log: &eddy_log::LogStore) -> Vec<eddy_log::RetentionReport> {
    let mut calls = Vec::new();
    loop {
        let r = log.enforce_retention(0).wait().unwrap();
        // A step stops before the entry that would pass the budget; entries are at most a
        // page (4 KiB).
        assert!(
            r.bytes <= RETENTION_STEP_BYTES + 4096,
            "one call removed {} bytes",
            r.bytes
        );
        calls.push(r);
        if !r.more {
            return calls;
        }
        assert!(calls.len() < 100, "removal never finishes: {calls:?}");
    }
}

/// A deleted partition is gone at once; its batches go in retention's bounded steps (one
/// commit that removed a gigabyte held every append of the directory for tens of seconds),
/// and the removal resumes after a restart. With a page-cache window of 1 MiB, most of what
/// goes lies behind it (read ahead, then dropped, step by step).
#[test]
fn test_a_deleted_partition_is_gone_at_once_and_its_batches_go_in_steps() {
    for window in [LogConfig::default().page_cache_window, 1 << 20] {
        deleted_partition_goes_in_steps(LogConfig {
            page_cache_window: window,
            ..small_config()
        });
    }
}

fn deleted_partition_goes_in_steps(config: LogConfig) {
    let dir = tempfile::tempdir().unwrap();
    let (big, other, later) = (PartitionId(1), PartitionId(2), PartitionId(3));
    let open = |dir: &std::path::Path| LogStore::open(dir, config.clone()).unwrap();
    let written = {
        let log = open(dir.path());
        log.create_partitions(
            [big, other, later]
                .iter()
                .map(|&p| (p, PartitionConfig::default()))
                .collect(),
        )
        .wait()
        .unwrap();
        let batch = batch_bytes(1, 0, 1 << 20);
        for _ in 0..20 {
            log.append_one(big, batch.clone(), leader(0))
                .wait()
                .unwrap();
        }
        for _ in 0..12 {
            log.append_one(later, batch.clone(), leader(0))
                .wait()
                .unwrap();
        }
        log.append_one(other, batch_bytes(2, 0, 8), leader(0))
            .wait()
            .unwrap();
        log.delete_partitions(vec![big]).wait().unwrap();
        assert_eq!(log.partitions().unwrap(), vec![other, later]);
        assert!(matches!(
            log.read(big, 0, 10),
            Err(LogError::UnknownPartition(_))
        ));
        assert!(matches!(
            log.append_one(big, batch.clone(), leader(0)).wait(),
            Err(LogError::UnknownPartition(_))
        ));
        let calls = purge_all(&log);
        // 20 MiB in steps of at most 2 MiB.
        assert!(calls.len() >= 10, "{calls:?}");
        let removed: u64 = calls.iter().map(|r| r.bytes).sum();
        assert!(removed >= 20 * batch.len() as u64, "{removed} of {calls:?}");
        assert_eq!(
            calls.iter().map(|r| r.batches).sum::<u64>(),
            20,
            "{calls:?}"
        );
        // Nothing left: another pass removes nothing.
        let again = log.enforce_retention(0).wait().unwrap();
        assert_eq!((again.bytes, again.more), (0, false));
        assert_eq!(log.read(other, 0, usize::MAX).unwrap().batches, 1);
        // Deleted, then the store closed before any pass ran.
        log.delete_partitions(vec![later]).wait().unwrap();
        12 * batch.len() as u64
    };
    let log = open(dir.path());
    assert_eq!(log.partitions().unwrap(), vec![other]);
    let calls = purge_all(&log);
    let removed: u64 = calls.iter().map(|r| r.bytes).sum();
    assert!(removed >= written, "{removed} of {written}");
    assert_eq!(
        calls.iter().map(|r| r.batches).sum::<u64>(),
        12,
        "{calls:?}"
    );
    assert_eq!(log.enforce_retention(0).wait().unwrap().bytes, 0);
    assert_eq!(log.read(other, 0, usize::MAX).unwrap().batches, 1);
}

/// A DeleteRecords over more than a retention step moves the log start at once and removes
/// one step; retention passes remove the rest in steps, also for a partition without
/// retention settings, and also after a restart.
#[test]
fn test_a_large_delete_records_moves_the_log_start_at_once_and_frees_in_steps() {
    for window in [LogConfig::default().page_cache_window, 1 << 20] {
        large_delete_records_frees_in_steps(LogConfig {
            page_cache_window: window,
            ..small_config()
        });
    }
}

fn large_delete_records_frees_in_steps(config: LogConfig) {
    let dir = tempfile::tempdir().unwrap();
    let open = |dir: &std::path::Path| LogStore::open(dir, config.clone()).unwrap();
    let (batch, ts) = (batch_bytes(1, 7_000, 1 << 20), 7_000);
    let len = batch.len() as u64;
    {
        let log = open(dir.path());
        log.create_partitions(vec![(P, PartitionConfig::default())])
            .wait()
            .unwrap();
        for _ in 0..20 {
            log.append_one(P, batch.clone(), leader(0)).wait().unwrap();
        }
        assert_eq!(log.delete_records_before(P, 15).wait().unwrap(), 15);
        let o = log.offsets(P).unwrap();
        // The log start moved; one step's worth of batches went with it.
        assert_eq!((o.log_start, o.log_end, o.high_watermark), (15, 20, 15));
        assert!(o.size_bytes >= 20 * len - RETENTION_STEP_BYTES, "{o:?}");
        assert!(o.size_bytes < 20 * len, "{o:?}");
        assert!(matches!(
            log.read(P, 14, 100),
            Err(LogError::OffsetOutOfRange { log_start: 15, .. })
        ));
        let f = log.read(P, 15, usize::MAX).unwrap();
        assert_eq!((f.batches, f.next_offset), (5, 20));
        assert_eq!(log.offset_for_timestamp(P, 0).unwrap(), Some((15, ts)));
        // Appends go on meanwhile.
        log.append_one(P, batch.clone(), leader(0)).wait().unwrap();
    }
    // After a restart, retention passes take what is left before the log start, though the
    // partition has no retention settings.
    let log = open(dir.path());
    let calls = purge_all(&log);
    assert!(calls.len() >= 7, "{calls:?}");
    assert!(
        calls.iter().all(|r| r.bytes <= RETENTION_STEP_BYTES + len),
        "{calls:?}"
    );
    let o = log.offsets(P).unwrap();
    assert_eq!((o.log_start, o.log_end, o.size_bytes), (15, 21, 6 * len));
    // Nothing left: another pass finds nothing due and removes nothing.
    let before = log.stats().commits;
    let again = log.enforce_retention(0).wait().unwrap();
    assert_eq!((again.bytes, again.more), (0, false));
    assert_eq!(log.stats().commits, before);
    assert_eq!(log.read(P, 15, usize::MAX).unwrap().batches, 6);
}

/// An id created again while its old batches are still being removed starts empty.
#[test]
fn test_a_partition_created_again_before_its_removal_ends_starts_empty() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_with_partitions(dir.path(), &[1]);
    for _ in 0..3 {
        log.append_one(P, batch_bytes(4, 0, 1 << 10), leader(0))
            .wait()
            .unwrap();
    }
    log.delete_partitions(vec![P]).wait().unwrap();
    log.create_partitions(vec![(P, PartitionConfig::default())])
        .wait()
        .unwrap();
    let read = log.read(P, 0, usize::MAX).unwrap();
    assert_eq!((read.batches, read.offsets.log_end), (0, 0));
    let a = log
        .append_one(P, batch_bytes(2, 0, 8), leader(0))
        .wait()
        .unwrap();
    assert_eq!((a.base_offset, a.last_offset), (0, 1));
    // No removal is left for it, and its new batch stays.
    assert_eq!(log.enforce_retention(0).wait().unwrap().bytes, 0);
    assert_eq!(log.read(P, 0, usize::MAX).unwrap().batches, 1);
}
