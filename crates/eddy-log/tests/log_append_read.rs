//! Appends and reads: offsets, verbatim storage, validation, group commit, epochs, timestamps.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod common;

use bytes::Bytes;
use common::*;
use eddy_log::testing::{batch_bytes, batch_with};
use eddy_log::{AppendMode, AppendRequest, BatchHeader, LogError, PartitionConfig, Stamped};
use eddy_types::{ClassifyError, ErrorKind, PartitionId};
use kafka_protocol::records::Compression;
use std::sync::Arc;

const LEADER: AppendMode = AppendMode::Leader { leader_epoch: 0 };

#[test]
fn test_offsets_are_assigned_per_partition_and_reads_return_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_with_partitions(dir.path(), &[1, 2]);
    let (p1, p2) = (PartitionId(1), PartitionId(2));
    let a = log
        .append_one(p1, batch_bytes(3, 100, 8), LEADER)
        .wait()
        .unwrap();
    let b = log
        .append_one(p2, batch_bytes(5, 100, 8), LEADER)
        .wait()
        .unwrap();
    let c = log
        .append_one(p1, batch_bytes(2, 200, 8), LEADER)
        .wait()
        .unwrap();
    assert_eq!((a.base_offset, a.last_offset), (0, 2));
    assert_eq!((b.base_offset, b.last_offset), (0, 4));
    assert_eq!((c.base_offset, c.last_offset), (3, 4));

    // From the middle of the first batch: that whole batch comes back, and the next.
    let f = log.read(p1, 1, 1 << 20).unwrap();
    assert_eq!(f.batches, 2);
    assert_eq!(f.next_offset, 5);
    let offsets: Vec<i64> = decode_all(f.records).iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![0, 1, 2, 3, 4]);
    assert_eq!(f.offsets.log_end, 5);

    // At the log end: nothing, and no error.
    let end = log.read(p1, 5, 1 << 20).unwrap();
    assert_eq!((end.batches, end.next_offset, end.records.len()), (0, 5, 0));

    // Past the end or before the start: out of range, with the range in the error.
    let err = log.read(p1, 6, 1 << 20).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::OutOfRange);
    assert!(err.to_string().contains("log end 5"), "{err}");
    assert_eq!(
        log.read(PartitionId(9), 0, 10).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn test_max_bytes_limits_batches_but_first_batch_is_whole() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_with_partitions(dir.path(), &[1]);
    let p = PartitionId(1);
    for _ in 0..4 {
        log.append_one(p, batch_bytes(10, 0, 100), LEADER)
            .wait()
            .unwrap();
    }
    let one = log.read(p, 0, 1).unwrap();
    assert_eq!((one.batches, one.next_offset), (1, 10));
    let size = one.records.len();
    let two = log.read(p, 0, 2 * size + size / 2).unwrap();
    assert_eq!((two.batches, two.next_offset), (2, 20));
    let all = log.read(p, 0, usize::MAX).unwrap();
    assert_eq!((all.batches, all.next_offset), (4, 40));
}

#[test]
fn test_read_until_stops_before_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_with_partitions(dir.path(), &[1]);
    let p = PartitionId(1);
    for _ in 0..3 {
        log.append_one(p, batch_bytes(2, 0, 8), LEADER)
            .wait()
            .unwrap();
    }
    let f = log.read_until(p, 0, usize::MAX, 4).unwrap();
    assert_eq!((f.batches, f.next_offset), (2, 4));
    let none = log.read_until(p, 4, usize::MAX, 4).unwrap();
    assert_eq!(none.batches, 0);
}

/// A capped read never returns more than its limit, not even a first batch; 0 reads nothing.
#[test]
fn test_a_capped_read_stays_within_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_with_partitions(dir.path(), &[1]);
    let p = PartitionId(1);
    let batch = batch_bytes(2, 0, 100);
    for _ in 0..3 {
        log.append_one(p, batch.clone(), LEADER).wait().unwrap();
    }
    let len = batch.len();
    let two = log.read_capped(p, 0, 2 * len + 1, u64::MAX).unwrap();
    assert_eq!(
        (two.batches, two.next_offset, two.records.len()),
        (2, 4, 2 * len)
    );
    let none = log.read_capped(p, 0, len - 1, u64::MAX).unwrap();
    assert_eq!(
        (none.batches, none.next_offset, none.records.len()),
        (0, 0, 0)
    );
    // The uncapped read returns that first batch whole.
    assert_eq!(log.read_until(p, 0, len - 1, u64::MAX).unwrap().batches, 1);
    let zero = log.read_capped(p, 2, 0, u64::MAX).unwrap();
    assert_eq!((zero.batches, zero.next_offset), (0, 2));
    assert_eq!(zero.offsets.log_end, 6);
    // The range is still checked.
    assert!(log.read_capped(p, 7, 0, u64::MAX).is_err());
}

#[test]
fn test_batches_are_stored_verbatim_for_every_codec() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_with_partitions(dir.path(), &[1]);
    let p = PartitionId(1);
    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    let mut sent = Vec::new();
    for (i, codec) in codecs.into_iter().enumerate() {
        let batch = producer_batch(
            &["alpha", "beta", "gamma"],
            1_000,
            42,
            3,
            3 * i as i32,
            codec,
        );
        log.append_one(p, batch.clone(), AppendMode::Leader { leader_epoch: 7 })
            .wait()
            .unwrap();
        sent.push(batch);
    }
    let f = log.read(p, 0, usize::MAX).unwrap();
    assert_eq!(f.batches, 5);
    let mut pos = 0;
    for (i, batch) in sent.iter().enumerate() {
        let stored = &f.records[pos..pos + batch.len()];
        // Only the base offset (0..8) and the leader epoch (12..16) differ.
        assert_eq!(&stored[8..12], &batch[8..12]);
        assert_eq!(&stored[16..], &batch[16..], "batch {i} changed");
        let h = BatchHeader::parse(stored).unwrap();
        assert_eq!(h.base_offset, 3 * i as i64);
        assert_eq!(h.partition_leader_epoch, 7);
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (42, 3, 3 * i as i32)
        );
        assert_eq!(h.compression(), i as i16);
        pos += batch.len();
    }
    let records = decode_all(f.records);
    assert_eq!(records.len(), 15);
    assert_eq!(records[14].offset, 14);
    assert_eq!(records[14].value.as_deref(), Some(&b"gamma"[..]));
    assert_eq!(records[14].headers.len(), 1);
    assert_eq!(records[14].sequence, 14);
}

#[test]
fn test_bad_batch_is_refused_and_writes_nothing_while_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_with_partitions(dir.path(), &[1, 2]);
    let good = batch_bytes(2, 0, 8);
    let mut bad = batch_bytes(2, 0, 8).to_vec();
    let n = bad.len();
    bad[n - 3] ^= 0x55;
    let results = log
        .append(vec![
            AppendRequest {
                partition: PartitionId(1),
                records: Bytes::from(bad),
                mode: LEADER,
            },
            AppendRequest {
                partition: PartitionId(2),
                records: good.clone(),
                mode: LEADER,
            },
            AppendRequest {
                partition: PartitionId(3),
                records: good.clone(),
                mode: LEADER,
            },
            AppendRequest {
                partition: PartitionId(1),
                records: Bytes::from_static(b"garbage"),
                mode: LEADER,
            },
        ])
        .wait()
        .unwrap();
    assert_eq!(results.len(), 4);
    let crc = results[0].as_ref().unwrap_err();
    assert_eq!(crc.kind(), ErrorKind::Invalid);
    assert!(crc.to_string().contains("CRC-32C mismatch"), "{crc}");
    assert_eq!(results[1].as_ref().unwrap().base_offset, 0);
    assert!(matches!(
        results[2],
        Err(LogError::UnknownPartition(PartitionId(3)))
    ));
    assert!(matches!(results[3], Err(LogError::InvalidBatch { .. })));
    assert_eq!(log.offsets(PartitionId(1)).unwrap().log_end, 0);
    assert_eq!(log.offsets(PartitionId(1)).unwrap().size_bytes, 0);
    assert_eq!(log.offsets(PartitionId(2)).unwrap().log_end, 2);

    // A lastOffsetDelta that disagrees with the record count is refused from producers.
    let mut lying = batch_bytes(3, 0, 8).to_vec();
    lying[23..27].copy_from_slice(&5i32.to_be_bytes());
    let crc = crc32c::crc32c(&lying[21..]);
    lying[17..21].copy_from_slice(&crc.to_be_bytes());
    let err = log
        .append_one(PartitionId(1), Bytes::from(lying), LEADER)
        .wait()
        .unwrap_err();
    assert!(
        err.to_string().contains("does not match record count"),
        "{err}"
    );
}

#[test]
fn test_one_request_for_many_partitions_is_one_commit() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<u32> = (0..50).collect();
    let log = open_with_partitions(dir.path(), &ids);
    let before = log.stats();
    let requests = ids
        .iter()
        .map(|&i| AppendRequest {
            partition: PartitionId(i),
            records: batch_bytes(4, 0, 64),
            mode: LEADER,
        })
        .collect();
    let results = log.append(requests).wait().unwrap();
    assert!(results
        .iter()
        .all(|r| r.as_ref().is_ok_and(|a| a.base_offset == 0)));
    let after = log.stats();
    assert_eq!(after.commits - before.commits, 1);
    assert_eq!(after.ops - before.ops, 1);
}

#[test]
fn test_concurrent_appenders_get_contiguous_offsets_and_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open_with_partitions(dir.path(), &[1, 2]));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                let p = PartitionId(1 + t % 2);
                let mut got = Vec::new();
                for _ in 0..100 {
                    let a = log
                        .append_one(p, batch_bytes(3, 0, 16), LEADER)
                        .wait()
                        .unwrap();
                    got.push((a.base_offset, a.last_offset));
                }
                (p, got)
            })
        })
        .collect();
    let mut per_partition: std::collections::BTreeMap<PartitionId, Vec<(u64, u64)>> =
        Default::default();
    for t in threads {
        let (p, got) = t.join().unwrap();
        per_partition.entry(p).or_default().extend(got);
    }
    for (p, mut ranges) in per_partition {
        ranges.sort();
        let mut next = 0;
        for (base, last) in ranges {
            assert_eq!(base, next, "gap or overlap in {p}");
            assert_eq!(last, base + 2);
            next = last + 1;
        }
        assert_eq!(log.offsets(p).unwrap().log_end, next);
        assert_eq!(log.read(p, 0, usize::MAX).unwrap().batches, 400);
    }
    let stats = log.stats();
    assert_eq!(stats.ops, 800 + 1, "800 appends + 1 create");
    assert!(stats.commits <= stats.ops);
}

#[test]
fn test_leader_epochs_are_recorded_and_answer_offset_for_leader_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_with_partitions(dir.path(), &[1]);
    let p = PartitionId(1);
    for (epoch, count) in [(1, 3), (1, 2), (3, 4), (4, 1)] {
        log.append_one(
            p,
            batch_bytes(count, 0, 8),
            AppendMode::Leader {
                leader_epoch: epoch,
            },
        )
        .wait()
        .unwrap();
    }
    let epochs: Vec<(i32, u64)> = log
        .epochs(p)
        .unwrap()
        .iter()
        .map(|e| (e.epoch, e.start_offset))
        .collect();
    assert_eq!(epochs, vec![(1, 0), (3, 5), (4, 9)]);
    assert_eq!(log.end_offset_for_epoch(p, 1).unwrap(), Some((1, 5)));
    assert_eq!(log.end_offset_for_epoch(p, 2).unwrap(), Some((1, 5)));
    assert_eq!(log.end_offset_for_epoch(p, 4).unwrap(), Some((4, 10)));
    // Above every epoch of the log: the latest epoch and the log end.
    assert_eq!(log.end_offset_for_epoch(p, 5).unwrap(), Some((4, 10)));
}

#[test]
fn test_replica_append_keeps_offsets_and_must_be_contiguous() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_with_partitions(dir.path(), &[1, 2]);
    let (leader, follower) = (PartitionId(1), PartitionId(2));
    log.append_one(
        leader,
        batch_bytes(3, 0, 8),
        AppendMode::Leader { leader_epoch: 2 },
    )
    .wait()
    .unwrap();
    log.append_one(
        leader,
        batch_bytes(2, 0, 8),
        AppendMode::Leader { leader_epoch: 5 },
    )
    .wait()
    .unwrap();
    let fetched = log.read(leader, 0, usize::MAX).unwrap();

    // Starting anywhere but the follower's log end is refused, and nothing is written.
    let second_batch = fetched
        .records
        .slice(fetched.records.len() - batch_bytes(2, 0, 8).len()..);
    let err = log
        .append_one(follower, second_batch, AppendMode::Replica)
        .wait()
        .unwrap_err();
    assert!(matches!(
        err,
        LogError::NonContiguousReplicaAppend {
            expected: 0,
            got: 3,
            ..
        }
    ));

    let a = log
        .append_one(follower, fetched.records.clone(), AppendMode::Replica)
        .wait()
        .unwrap();
    assert_eq!((a.base_offset, a.last_offset), (0, 4));
    let copy = log.read(follower, 0, usize::MAX).unwrap();
    assert_eq!(
        copy.records, fetched.records,
        "replica bytes differ from the leader's"
    );
    assert_eq!(log.epochs(follower).unwrap(), log.epochs(leader).unwrap());
}

#[test]
fn test_stamped_appends_land_only_at_their_base_offset_and_queue_behind_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_with_partitions(dir.path(), &[1, 2]);
    let (p, other) = (PartitionId(1), PartitionId(2));
    // A leader stamps two requests before either is committed; both queue.
    let first = Stamped::new(batch_bytes(3, 0, 8), 0, 4).unwrap();
    let second = Stamped::new(batch_bytes(2, 0, 8), first.next_offset(), 4).unwrap();
    let (a, b) = (
        log.append_stamped(p, first.clone()),
        log.append_stamped(p, second.clone()),
    );
    let (a, b) = (a.wait().unwrap(), b.wait().unwrap());
    assert_eq!(
        (a.base_offset, a.last_offset, b.base_offset, b.last_offset),
        (0, 2, 3, 4)
    );
    // Stored as stamped: what a follower was handed is what the leader keeps.
    let mut handed = first.bytes().to_vec();
    handed.extend_from_slice(second.bytes());
    assert_eq!(log.read(p, 0, usize::MAX).unwrap().records, handed);
    assert_eq!(log.epochs(p).unwrap()[0].epoch, 4);

    // One that does not start at the log end (its predecessor failed) writes nothing.
    let gap = Stamped::new(batch_bytes(1, 0, 8), 7, 4).unwrap();
    let err = log.append_stamped(other, gap).wait().unwrap_err();
    assert!(matches!(
        err,
        LogError::NonContiguousReplicaAppend {
            expected: 0,
            got: 7,
            ..
        }
    ));
    assert_eq!(log.offsets(other).unwrap().log_end, 0);
}

#[test]
fn test_offset_for_timestamp_finds_the_first_record_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_with_partitions(dir.path(), &[1]);
    let p = PartitionId(1);
    log.append_one(p, batch_bytes(5, 1_000, 8), LEADER)
        .wait()
        .unwrap();
    log.append_one(p, batch_with(5, 2_000, 8, Compression::Zstd), LEADER)
        .wait()
        .unwrap();
    assert_eq!(log.offset_for_timestamp(p, 0).unwrap(), Some((0, 1_000)));
    assert_eq!(
        log.offset_for_timestamp(p, 1_003).unwrap(),
        Some((3, 1_003))
    );
    assert_eq!(
        log.offset_for_timestamp(p, 1_500).unwrap(),
        Some((5, 2_000))
    );
    assert_eq!(
        log.offset_for_timestamp(p, 2_004).unwrap(),
        Some((9, 2_004))
    );
    assert_eq!(log.offset_for_timestamp(p, 2_005).unwrap(), None);
}

#[test]
fn test_metadata_records_round_trip() {
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct TopicMeta {
        name: String,
        partitions: u32,
    }
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let a = TopicMeta {
        name: "a".into(),
        partitions: 3,
    };
    let b = TopicMeta {
        name: "b".into(),
        partitions: 10,
    };
    log.put_meta(&[(b"topic/a", &a), (b"topic/b", &b)])
        .wait()
        .unwrap();
    assert_eq!(log.get_meta::<TopicMeta>(b"topic/a").unwrap(), Some(a));
    let all = log.scan_meta::<TopicMeta>(b"topic/").unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].0, b"topic/b".to_vec());
    log.delete_meta(&[b"topic/a"]).wait().unwrap();
    assert_eq!(log.get_meta::<TopicMeta>(b"topic/a").unwrap(), None);
    // A record of another shape is a clear error, not a panic.
    let err = log.get_meta::<u64>(b"topic/b").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
}

#[test]
fn test_partitions_are_created_once_and_deleted_with_their_batches() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_with_partitions(dir.path(), &[1, 2, 3]);
    let err = log
        .create_partitions(vec![
            (PartitionId(4), PartitionConfig::default()),
            (PartitionId(2), PartitionConfig::default()),
        ])
        .wait()
        .unwrap_err();
    assert!(matches!(err, LogError::PartitionExists(PartitionId(2))));
    // All or none: 4 was not created.
    assert_eq!(
        log.partitions().unwrap(),
        vec![PartitionId(1), PartitionId(2), PartitionId(3)]
    );
    log.append_one(PartitionId(2), batch_bytes(2, 0, 8), LEADER)
        .wait()
        .unwrap();
    log.append_one(PartitionId(3), batch_bytes(2, 0, 8), LEADER)
        .wait()
        .unwrap();
    log.delete_partitions(vec![PartitionId(2)]).wait().unwrap();
    assert_eq!(
        log.partitions().unwrap(),
        vec![PartitionId(1), PartitionId(3)]
    );
    assert!(matches!(
        log.read(PartitionId(2), 0, 10),
        Err(LogError::UnknownPartition(_))
    ));
    assert_eq!(log.read(PartitionId(3), 0, usize::MAX).unwrap().batches, 1);
    // Every partition's checkpointed high watermark in one read.
    log.checkpoint_high_watermarks(vec![(PartitionId(3), 2)])
        .wait()
        .unwrap();
    assert_eq!(
        log.high_watermarks().unwrap(),
        vec![(PartitionId(1), 0), (PartitionId(3), 2)]
    );
}

#[test]
fn test_pending_can_be_awaited() {
    let dir = tempfile::tempdir().unwrap();
    let log = open_with_partitions(dir.path(), &[1]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let appended = rt.block_on(async {
        let first = log.append_one(PartitionId(1), batch_bytes(2, 0, 8), LEADER);
        let second = log.append_one(PartitionId(1), batch_bytes(2, 0, 8), LEADER);
        (first.await.unwrap(), second.await.unwrap())
    });
    assert_eq!(appended.1.base_offset, 2);
}

#[test]
fn test_inline_writer_answers_before_the_call_returns() {
    let dir = tempfile::tempdir().unwrap();
    let config = eddy_log::LogConfig {
        writer: eddy_log::WriterMode::Inline,
        ..small_config()
    };
    let log = eddy_log::LogStore::open(dir.path(), config).unwrap();
    let p = PartitionId(3);
    log.create_partitions(vec![(p, PartitionConfig::default())])
        .wait()
        .unwrap();
    let a = log
        .append_one(p, batch_bytes(2, 1, 4), LEADER)
        .wait()
        .unwrap();
    let b = log
        .append_one(p, batch_bytes(3, 2, 4), LEADER)
        .wait()
        .unwrap();
    assert_eq!((a.base_offset, b.base_offset, b.last_offset), (0, 2, 4));
    // A refused batch is refused the same way as on the writer thread.
    let bad = log
        .append_one(p, Bytes::from_static(b"junk"), LEADER)
        .wait();
    assert!(matches!(bad, Err(LogError::InvalidBatch { .. })));
    assert_eq!(log.offsets(p).unwrap().log_end, 5);
    assert_eq!(log.stats().commits, 3);
}

/// Batches larger than a page are stored in one-page pieces; every operation sees them whole,
/// at every size around the piece boundaries.
#[test]
fn test_batches_of_any_size_are_stored_in_pieces_and_read_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (p, copy) = (PartitionId(1), PartitionId(2));
    let mut sizes: Vec<usize> = (3_950..4_250).step_by(3).collect();
    sizes.extend((8_050..8_300).step_by(5));
    sizes.extend([1, 100, 65_536, 1 << 20]);
    let mut sent = Vec::new();
    {
        let log = open_with_partitions(dir.path(), &[1, 2]);
        let mut ts = 0;
        for &value_len in &sizes {
            let batch = batch_bytes(1, ts, value_len);
            let a = log.append_one(p, batch.clone(), LEADER).wait().unwrap();
            sent.push((a.base_offset, batch));
            ts += 10;
        }
        // A replica copies the stored bytes exactly.
        let all = log.read(p, 0, usize::MAX).unwrap();
        assert_eq!(all.batches, sizes.len());
        log.append_one(copy, all.records.clone(), AppendMode::Replica)
            .wait()
            .unwrap();
        assert_eq!(log.read(copy, 0, usize::MAX).unwrap().records, all.records);
    }
    // Reopened: each batch alone, from its own offset, is the producer's bytes but for the
    // base offset (bytes 0-7) and the leader epoch (12-15).
    let log = open(dir.path());
    for (offset, batch) in &sent {
        let f = log.read(p, *offset, 1).unwrap();
        assert_eq!(f.batches, 1);
        assert_eq!(f.records.len(), batch.len(), "batch at {offset}");
        assert_eq!(f.records[16..], batch[16..], "batch at {offset}");
        assert_eq!(f.records[8..12], batch[8..12]);
        let decoded = decode_all(f.records);
        assert_eq!(decoded.len(), 1);
        assert_eq!(decoded[0].offset, *offset as i64);
    }
    // Reads by size stop at batch boundaries, whatever the pieces.
    let mut from = 0;
    let mut seen = 0;
    while from < sent.len() as u64 {
        let f = log.read(p, from, 20_000).unwrap();
        assert!(f.batches >= 1);
        seen += decode_all(f.records).len();
        from = f.next_offset;
    }
    assert_eq!(seen, sent.len());
    // The timestamp index decodes the big batch whole.
    let last = sent.len() as u64 - 1;
    let ts = 10 * last as i64;
    assert_eq!(log.offset_for_timestamp(p, ts).unwrap(), Some((last, ts)));
    // Truncating and deleting take the pieces with their batch.
    assert_eq!(log.truncate_to(p, last).wait().unwrap(), last);
    assert_eq!(log.delete_records_before(p, 50).wait().unwrap(), 50);
    let rest = log.read(p, 50, usize::MAX).unwrap();
    let offsets: Vec<i64> = decode_all(rest.records.clone())
        .iter()
        .map(|r| r.offset)
        .collect();
    assert_eq!(offsets, (50..last as i64).collect::<Vec<_>>());
    let kept: usize = sent[50..last as usize].iter().map(|(_, b)| b.len()).sum();
    assert_eq!(rest.records.len(), kept);
    assert_eq!(log.offsets(p).unwrap().size_bytes, kept as u64);
}
