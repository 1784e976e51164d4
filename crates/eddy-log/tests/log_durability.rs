//! Reopening, durability modes, a full map, many partitions.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use common::*;
use eddy_log::testing::batch_bytes;
use eddy_log::{AppendMode, Durability, LogConfig, LogError, LogStore, PartitionConfig};
use eddy_types::{ClassifyError, ErrorKind, PartitionId};
use std::time::Duration;

const LEADER: AppendMode = AppendMode::Leader { leader_epoch: 3 };

#[test]
fn test_everything_comes_back_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let config = PartitionConfig {
        retention_ms: Some(60_000),
        retention_bytes: Some(1 << 30),
    };
    let before = {
        let log = open(dir.path());
        log.create_partitions(vec![(PartitionId(7), config.clone())])
            .wait()
            .unwrap();
        for _ in 0..10 {
            log.append_one(PartitionId(7), batch_bytes(3, 5, 16), LEADER)
                .wait()
                .unwrap();
        }
        log.checkpoint_high_watermarks(vec![(PartitionId(7), 21)])
            .wait()
            .unwrap();
        log.delete_records_before(PartitionId(7), 4).wait().unwrap();
        log.put_meta(&[(b"cluster", &"eddy".to_string())])
            .wait()
            .unwrap();
        let fetched = log.read(PartitionId(7), 4, usize::MAX).unwrap();
        (log.offsets(PartitionId(7)).unwrap(), fetched)
    };
    // The store above is dropped: its writer joined, its environment closed.
    let log = open(dir.path());
    assert_eq!(log.offsets(PartitionId(7)).unwrap(), before.0);
    assert_eq!(before.0.high_watermark, 21);
    assert_eq!(before.0.log_start, 4);
    assert_eq!(log.read(PartitionId(7), 4, usize::MAX).unwrap(), before.1);
    assert_eq!(log.config(PartitionId(7)).unwrap(), config);
    assert_eq!(log.epochs(PartitionId(7)).unwrap()[0].epoch, 3);
    assert_eq!(
        log.get_meta::<String>(b"cluster").unwrap().as_deref(),
        Some("eddy")
    );
    let a = log
        .append_one(PartitionId(7), batch_bytes(1, 5, 16), LEADER)
        .wait()
        .unwrap();
    assert_eq!(a.base_offset, 30);
}

#[test]
fn test_the_same_directory_cannot_be_opened_twice_in_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let _log = open(dir.path());
    let err = LogStore::open(dir.path(), small_config()).unwrap_err();
    assert!(matches!(err, LogError::AlreadyOpen { .. }), "{err}");
}

#[test]
fn test_every_commit_is_reported_once_with_its_time_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.create_partitions(vec![(PartitionId(1), PartitionConfig::default())])
        .wait()
        .unwrap();
    let _ = log.take_commits();
    let before = log.stats();
    let sizes: Vec<u64> = (1..=5)
        .map(|i| {
            let bytes = batch_bytes(i, 0, 100);
            let n = bytes.len() as u64;
            log.append_one(PartitionId(1), bytes, LEADER)
                .wait()
                .unwrap();
            n
        })
        .collect();
    let commits = log.take_commits();
    // Appends waited one by one: one commit each, in order, with the batch's bytes.
    assert_eq!(
        commits.iter().map(|c| c.bytes).collect::<Vec<_>>(),
        sizes,
        "{commits:?}"
    );
    assert!(commits.iter().all(|c| c.duration > Duration::ZERO));
    let after = log.stats();
    assert_eq!(after.commits - before.commits, 5);
    let total: Duration = commits.iter().map(|c| c.duration).sum();
    assert_eq!(
        total.as_nanos() as u64,
        after.commit_nanos - before.commit_nanos
    );
    assert!(log.take_commits().is_empty(), "taken twice");
    // Past COMMITS_KEPT between two takes, the rest are only counted.
    let many = eddy_log::COMMITS_KEPT + 10;
    for _ in 0..many {
        log.put_meta(&[(b"k", &1u32)]).wait().unwrap();
    }
    assert_eq!(log.take_commits().len(), eddy_log::COMMITS_KEPT);
    assert_eq!(log.stats().commits - after.commits, many as u64);
}

#[test]
fn test_periodic_durability_syncs_in_the_background_and_on_flush() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        durability: Durability::Periodic {
            interval: Duration::from_millis(20),
        },
        ..small_config()
    };
    {
        let log = LogStore::open(dir.path(), config.clone()).unwrap();
        log.create_partitions(vec![(PartitionId(1), PartitionConfig::default())])
            .wait()
            .unwrap();
        for _ in 0..5 {
            log.append_one(PartitionId(1), batch_bytes(2, 0, 8), LEADER)
                .wait()
                .unwrap();
        }
        log.flush().wait().unwrap();
        let after_flush = log.stats().syncs;
        assert!(after_flush >= 1, "flush did not sync");
        log.append_one(PartitionId(1), batch_bytes(2, 0, 8), LEADER)
            .wait()
            .unwrap();
        // The background sync follows within the interval; wait up to 100 intervals for it.
        let mut waited = 0;
        while log.stats().syncs == after_flush && waited < 100 {
            std::thread::sleep(Duration::from_millis(20));
            waited += 1;
        }
        assert!(log.stats().syncs > after_flush, "no background sync");
    }
    let log = LogStore::open(dir.path(), config).unwrap();
    assert_eq!(log.offsets(PartitionId(1)).unwrap().log_end, 12);
}

#[test]
fn test_a_full_map_is_an_error_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let log = LogStore::open(
        dir.path(),
        LogConfig {
            map_size: 1 << 20,
            ..LogConfig::default()
        },
    )
    .unwrap();
    log.create_partitions(vec![(PartitionId(1), PartitionConfig::default())])
        .wait()
        .unwrap();
    let mut acked = 0u64;
    let err = loop {
        match log
            .append_one(PartitionId(1), batch_bytes(8, 0, 8 * 1024), LEADER)
            .wait()
        {
            Ok(a) => acked = a.last_offset + 1,
            Err(e) => break e,
        }
        assert!(acked < 10_000, "a 1 MiB map never filled");
    };
    assert_eq!(err.kind(), ErrorKind::StorageFull, "{err}");
    assert!(err.to_string().contains("map is full"), "{err}");
    assert!(acked > 0);
    // Everything acknowledged is there and readable; the store still answers.
    let o = log.offsets(PartitionId(1)).unwrap();
    assert_eq!(o.log_end, acked);
    let f = log.read(PartitionId(1), 0, usize::MAX).unwrap();
    assert_eq!(f.next_offset, acked);
    assert_eq!(decode_all(f.records).len() as u64, acked);
    // Freeing space makes appends work again.
    log.checkpoint_high_watermarks(vec![(PartitionId(1), acked)])
        .wait()
        .unwrap();
    log.delete_records_before(PartitionId(1), acked)
        .wait()
        .unwrap();
    log.append_one(PartitionId(1), batch_bytes(1, 0, 8), LEADER)
        .wait()
        .unwrap();
}

#[test]
fn test_many_partitions_cost_nothing_to_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let n = 20_000u32;
    {
        let log = open(dir.path());
        log.create_partitions(
            (0..n)
                .map(|i| (PartitionId(i), PartitionConfig::default()))
                .collect(),
        )
        .wait()
        .unwrap();
        log.append_one(PartitionId(n - 1), batch_bytes(1, 0, 8), LEADER)
            .wait()
            .unwrap();
    }
    let log = open(dir.path());
    assert_eq!(log.partitions().unwrap().len(), n as usize);
    assert_eq!(log.offsets(PartitionId(n - 1)).unwrap().log_end, 1);
    assert_eq!(log.offsets(PartitionId(0)).unwrap().log_end, 0);
}

#[test]
fn test_the_page_cache_window_drops_the_older_part_and_every_record_still_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let window = 1u64 << 20;
    let log = LogStore::open(
        dir.path(),
        LogConfig {
            page_cache_window: window,
            ..small_config()
        },
    )
    .unwrap();
    let p = PartitionId(1);
    log.create_partitions(vec![(p, PartitionConfig::default())])
        .wait()
        .unwrap();
    // 40 batches of about 250 KB, one commit each: the file grows to about 10 MB.
    let sent: Vec<_> = (0..40)
        .map(|i| batch_bytes(100, i * 1_000, 2_500))
        .collect();
    for b in &sent {
        log.append_one(p, b.clone(), LEADER).wait().unwrap();
    }
    let size = log.disk_size().unwrap();
    let dropped = log.stats().page_cache_dropped;
    // All but the window and at most one step (the window's size here) behind it.
    assert!(
        dropped + 2 * window >= size && dropped + window <= size,
        "dropped {dropped} of {size}"
    );
    // Reads of the dropped part come from the disk, byte for byte as sent (but for the base
    // offset and the leader epoch, which the log writes).
    let mut from = 0;
    let mut batches = Vec::new();
    while from < 4_000 {
        let f = log.read(p, from, 1 << 20).unwrap();
        assert!(f.batches > 0, "nothing at {from}");
        let mut rest = &f.records[..];
        while !rest.is_empty() {
            let len = 12 + u32::from_be_bytes(rest[8..12].try_into().unwrap()) as usize;
            batches.push(rest[..len].to_vec());
            rest = &rest[len..];
        }
        from = f.next_offset;
    }
    assert_eq!(batches.len(), sent.len());
    for (i, (got, want)) in batches.iter().zip(&sent).enumerate() {
        assert_eq!(
            got[..8],
            (i as u64 * 100).to_be_bytes(),
            "base offset of {i}"
        );
        assert_eq!(got[8..12], want[8..12], "length of {i}");
        assert_eq!(got[16..], want[16..], "batch {i}");
    }
    // The reads dropped what they read behind the window, mapped pages included: what
    // stays mapped is about the window (and the tree's pages), not the 10 MB read.
    assert!(
        log.stats().page_cache_dropped >= dropped + size / 2,
        "reads dropped {} after the writer's {dropped}",
        log.stats().page_cache_dropped - dropped
    );
    let mapped = mapped_bytes(&dir.path().join("data.mdb"));
    assert!(
        mapped <= window + (2 << 20),
        "{mapped} bytes mapped of {size}"
    );

    // Reopened, with a window larger than the file: what was written before counts as
    // behind it (after a restart it is cold), so reading it leaves nothing mapped either.
    drop(log);
    let log = LogStore::open(
        dir.path(),
        LogConfig {
            page_cache_window: 1 << 30,
            ..small_config()
        },
    )
    .unwrap();
    let mut from = 0;
    while from < 4_000 {
        let f = log.read(p, from, 1 << 20).unwrap();
        assert!(f.batches > 0, "nothing at {from} after reopening");
        from = f.next_offset;
    }
    assert!(
        log.stats().page_cache_dropped >= size / 2,
        "reads dropped {} of {size}",
        log.stats().page_cache_dropped
    );
    let mapped = mapped_bytes(&dir.path().join("data.mdb"));
    assert!(
        mapped <= 2 << 20,
        "{mapped} bytes mapped of {size} after reopening"
    );
    drop(log);

    // A window of 0 leaves the page cache to the kernel.
    let dir = tempfile::tempdir().unwrap();
    let log = LogStore::open(
        dir.path(),
        LogConfig {
            page_cache_window: 0,
            ..small_config()
        },
    )
    .unwrap();
    log.create_partitions(vec![(p, PartitionConfig::default())])
        .wait()
        .unwrap();
    for b in &sent {
        log.append_one(p, b.clone(), LEADER).wait().unwrap();
    }
    assert_eq!(log.stats().page_cache_dropped, 0);
    // And what is read stays mapped (what the window's reads avoid).
    let mut from = 0;
    while from < 4_000 {
        from = log.read(p, from, 1 << 20).unwrap().next_offset;
    }
    let mapped = mapped_bytes(&dir.path().join("data.mdb"));
    assert!(mapped >= 8 << 20, "{mapped} bytes mapped");
}

/// Resident bytes of this process's mappings of `file` (`Rss` in /proc/self/smaps).
fn mapped_bytes(file: &std::path::Path) -> u64 {
    let file = std::fs::canonicalize(file).unwrap();
    let name = file.to_str().unwrap();
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut ours = false;
    let mut kb = 0;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            ours = line.ends_with(name);
        } else if ours && first == "Rss:" {
            kb += line
                .split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<u64>()
                .unwrap();
        }
    }
    kb * 1024
}
