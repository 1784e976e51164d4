//! The embedded producer against a real 3-broker cluster, on paused time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use eddy_broker::partitioner::partition_for_key;
use eddy_broker::{BrokerError, NewTopic};
use eddy_client::{ClientError, Compression, Producer, ProducerConfig, ProducerRecord};
use eddy_types::{Acks, BrokerId};

fn protocol(codec: Compression) -> kafka_protocol::records::Compression {
    use kafka_protocol::records::Compression as C;
    match codec {
        Compression::None => C::None,
        Compression::Gzip => C::Gzip,
        Compression::Snappy => C::Snappy,
        Compression::Lz4 => C::Lz4,
        Compression::Zstd => C::Zstd,
    }
}

fn value(i: usize, len: usize) -> Bytes {
    let mut v = format!("{i:08}").into_bytes();
    v.resize(len, b'.');
    Bytes::from(v)
}

#[test]
fn test_keyed_records_land_on_the_java_clients_partition_in_order_and_batched() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start(dir.path()).await;
        c.create_topic(NewTopic::new("chat").partitions(3))
            .await
            .unwrap();
        let p = Producer::start(&c, ProducerConfig::default())
            .await
            .unwrap();
        let keys = ["alice", "bob", "carol", "dave"];
        let sends: Vec<_> = (0..200)
            .map(|i| {
                let key = keys[i % keys.len()];
                p.send(ProducerRecord::new("chat", value(i, 100)).key(key))
            })
            .collect();
        let mut acked = Vec::new();
        for (i, s) in sends.into_iter().enumerate() {
            let m = s.await.unwrap();
            let key = keys[i % keys.len()];
            assert_eq!(m.partition, partition_for_key(key.as_bytes(), 3), "{key}");
            acked.push((m.partition, m.offset, i));
        }
        let mut total_batches = 0;
        for part in 0..3 {
            let (stored, batches) = committed(&c, "chat", part).await;
            total_batches += batches;
            let mine: Vec<_> = acked.iter().filter(|a| a.0 == part).collect();
            assert_eq!(stored.len(), mine.len(), "exactly the acknowledged records");
            for (s, (_, offset, i)) in stored.iter().zip(mine) {
                assert_eq!(s.offset, *offset);
                assert_eq!(s.value.as_ref().unwrap(), &value(*i, 100), "in send order");
            }
        }
        assert!(
            total_batches <= 12,
            "200 records sent together travel in a few batches, not {total_batches}"
        );
        p.close().await;
        c.shutdown().await;
    });
}

#[test]
fn test_a_lone_record_waits_for_linger_then_goes() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start(dir.path()).await;
        c.create_topic(NewTopic::new("t")).await.unwrap();
        let config = ProducerConfig {
            linger: Duration::from_millis(50),
            ..ProducerConfig::default()
        };
        let p = Producer::start(&c, config).await.unwrap();
        let d = p.send(ProducerRecord::new("t", "hi"));
        tokio::time::sleep(Duration::from_millis(40)).await;
        let log = c.replica_log(BrokerId(0)).unwrap();
        let pid = c.metadata().partition("t", 0).unwrap().id;
        assert_eq!(log.offsets(pid).unwrap().log_end, 0, "still lingering");
        let m = d.await.unwrap();
        assert_eq!((m.partition, m.offset), (0, 0));
        // flush sends at once, without waiting for linger.
        let d = p.send(ProducerRecord::new("t", "now"));
        p.flush().await.unwrap();
        assert_eq!(log.offsets(pid).unwrap().log_end, 2);
        assert_eq!(d.await.unwrap().offset, 1);
        p.close().await;
        c.shutdown().await;
    });
}

#[test]
fn test_unkeyed_records_stick_to_a_partition_per_batch_and_move_on() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start(dir.path()).await;
        c.create_topic(NewTopic::new("t").partitions(3))
            .await
            .unwrap();
        let config = ProducerConfig {
            batch_size: 1_000,
            ..ProducerConfig::default()
        };
        let p = Producer::start(&c, config).await.unwrap();
        // 100-byte values make 121-byte records: 8 per 1000-byte batch.
        let results = p
            .send_batch((0..48).map(|i| ProducerRecord::new("t", value(i, 100))))
            .await;
        let parts: Vec<u32> = results
            .iter()
            .map(|r| r.as_ref().unwrap().partition)
            .collect();
        for chunk in parts.chunks(8) {
            assert!(
                chunk.iter().all(|&x| x == chunk[0]),
                "one partition per batch: {parts:?}"
            );
        }
        for part in 0..3 {
            let n = parts.iter().filter(|&&x| x == part).count();
            assert_eq!(n, 16, "round-robin over batches: {parts:?}");
        }
        p.close().await;
        c.shutdown().await;
    });
}

#[test]
fn test_each_compression_codec_round_trips_and_is_stored_compressed() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start(dir.path()).await;
        let codecs = [
            (Compression::None, "none"),
            (Compression::Gzip, "gzip"),
            (Compression::Snappy, "snappy"),
            (Compression::Lz4, "lz4"),
            (Compression::Zstd, "zstd"),
        ];
        for (codec, name) in codecs {
            assert_eq!(name.parse::<Compression>().unwrap(), codec);
            c.create_topic(NewTopic::new(name)).await.unwrap();
            let config = ProducerConfig {
                compression: codec,
                ..ProducerConfig::default()
            };
            let p = Producer::start(&c, config).await.unwrap();
            let results = p
                .send_batch((0..50).map(|i| ProducerRecord::new(name, value(i, 500)).key("k")))
                .await;
            assert!(results.iter().all(Result::is_ok), "{name}: {results:?}");
            let (stored, _) = committed(&c, name, 0).await;
            assert_eq!(stored.len(), 50, "{name}");
            for (i, s) in stored.iter().enumerate() {
                assert_eq!(s.value.as_ref().unwrap(), &value(i, 500), "{name}");
                assert_eq!(s.compression, protocol(codec), "{name}");
            }
            let pid = c.metadata().partition(name, 0).unwrap().id;
            let log = c.replica_log(BrokerId(0)).unwrap();
            let raw = log.read(pid, 0, usize::MAX).unwrap().records.len();
            if codec == Compression::None {
                assert!(raw > 50 * 500, "{name}: {raw} bytes");
            } else {
                assert!(raw < 50 * 500 / 4, "{name} stores compressed bytes: {raw}");
            }
            p.close().await;
        }
        assert!("brotli".parse::<Compression>().is_err());
        c.shutdown().await;
    });
}

#[test]
fn test_failover_mid_stream_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start(dir.path()).await;
        c.create_topic(NewTopic::new("t").min_insync_replicas(1))
            .await
            .unwrap();
        assert_eq!(
            c.metadata().partition("t", 0).unwrap().leader,
            Some(BrokerId(0))
        );
        let p = Producer::start(&c, ProducerConfig::default())
            .await
            .unwrap();
        let first = p.send_batch((0..100).map(|i| ProducerRecord::new("t", value(i, 200))));
        assert!(first.await.iter().all(Result::is_ok));
        // The followers stop fetching: the next records reach the leader only, and wait there
        // for acks=all. Then the leader crashes: they must be sent again to the new leader.
        c.set_replica_fetching(BrokerId(1), false).await.unwrap();
        c.set_replica_fetching(BrokerId(2), false).await.unwrap();
        let sends: Vec<_> = (100..200)
            .map(|i| p.send(ProducerRecord::new("t", value(i, 200))))
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let leader_end = c
            .replica_log(BrokerId(0))
            .unwrap()
            .offsets(c.metadata().partition("t", 0).unwrap().id)
            .unwrap()
            .log_end;
        assert_eq!(
            leader_end, 200,
            "written on the old leader, not acknowledged"
        );
        c.stop_broker(BrokerId(0)).await.unwrap();
        c.set_replica_fetching(BrokerId(1), true).await.unwrap();
        c.set_replica_fetching(BrokerId(2), true).await.unwrap();
        let mut offsets = Vec::new();
        for s in sends {
            offsets.push(s.await.unwrap().offset);
        }
        let expected: Vec<i64> = (100..200).collect();
        assert_eq!(
            offsets, expected,
            "every record acknowledged once, in order"
        );
        let (stored, _) = committed(&c, "t", 0).await;
        assert_eq!(stored.len(), 200, "nothing lost, nothing written twice");
        for (i, s) in stored.iter().enumerate() {
            assert_eq!(s.value.as_ref().unwrap(), &value(i, 200));
            assert_eq!(s.sequence, i as i32, "one producer, sequences without gaps");
        }
        // The old leader returns, drops its divergent tail and agrees with the others.
        c.start_broker(BrokerId(0)).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let pid = c.metadata().partition("t", 0).unwrap().id;
        let replica = |b| {
            let log = c.replica_log(BrokerId(b)).unwrap();
            log.read(pid, 0, usize::MAX).unwrap().records
        };
        assert_eq!(
            replica(0),
            replica(1),
            "the old leader's copy equals the new one's"
        );
        assert_eq!(replica(2), replica(1));
        p.close().await;
        c.shutdown().await;
    });
}

#[test]
fn test_a_full_buffer_blocks_send_until_max_block_then_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start(dir.path()).await;
        c.create_topic(NewTopic::new("t").min_insync_replicas(3))
            .await
            .unwrap();
        // With a follower down, acks=all cannot complete: the buffer stays full.
        c.stop_broker(BrokerId(2)).await.unwrap();
        let config = ProducerConfig {
            buffer_memory: 2_500,
            max_block: Duration::from_secs(1),
            ..ProducerConfig::default()
        };
        let p = Producer::start(&c, config).await.unwrap();
        let first = p.send(ProducerRecord::new("t", value(0, 1_000)));
        let second = p.send(ProducerRecord::new("t", value(1, 1_000)));
        let third = p.send(ProducerRecord::new("t", value(2, 1_000)));
        match third.await {
            Err(ClientError::BufferFull { limit: 2_500, .. }) => {}
            other => panic!("expected BufferFull, got {other:?}"),
        }
        // The broker returns: what was taken is delivered, nothing lost.
        c.start_broker(BrokerId(2)).await.unwrap();
        assert_eq!(first.await.unwrap().offset, 0);
        assert_eq!(second.await.unwrap().offset, 1);
        let (stored, _) = committed(&c, "t", 0).await;
        assert_eq!(stored.len(), 2);
        p.close().await;
        c.shutdown().await;
    });
}

#[test]
fn test_records_waiting_for_room_are_bounded_too() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start(dir.path()).await;
        c.create_topic(NewTopic::new("t").min_insync_replicas(3))
            .await
            .unwrap();
        c.stop_broker(BrokerId(2)).await.unwrap();
        let config = ProducerConfig {
            buffer_memory: 2_500,
            max_block: Duration::from_secs(1),
            ..ProducerConfig::default()
        };
        let p = Producer::start(&c, config).await.unwrap();
        // Two records fill the buffer, two more wait for room (2,042 bytes waiting); the
        // rest are refused at once instead of piling up.
        let sends: Vec<_> = (0..10)
            .map(|i| p.send(ProducerRecord::new("t", value(i, 1_000))))
            .collect();
        let mut sends = sends.into_iter();
        let (first, second) = (sends.next().unwrap(), sends.next().unwrap());
        let waiting: Vec<_> = sends.by_ref().take(2).collect();
        let started = tokio::time::Instant::now();
        for refused in sends {
            match refused.await {
                Err(ClientError::BufferFull { waited_ms: 0, .. }) => {}
                other => panic!("expected an immediate BufferFull, got {other:?}"),
            }
        }
        assert!(started.elapsed() < Duration::from_millis(100));
        for w in waiting {
            match w.await {
                Err(ClientError::BufferFull { waited_ms, .. }) => assert!(waited_ms >= 1_000),
                other => panic!("expected BufferFull after max.block, got {other:?}"),
            }
        }
        c.start_broker(BrokerId(2)).await.unwrap();
        assert_eq!(first.await.unwrap().offset, 0);
        assert_eq!(second.await.unwrap().offset, 1);
        p.close().await;
        c.shutdown().await;
    });
}

#[test]
fn test_delivery_timeout_bounds_retries_and_names_the_last_error() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start(dir.path()).await;
        c.create_topic(NewTopic::new("t").min_insync_replicas(3))
            .await
            .unwrap();
        c.stop_broker(BrokerId(1)).await.unwrap();
        let config = ProducerConfig {
            request_timeout: Duration::from_secs(1),
            delivery_timeout: Duration::from_secs(5),
            ..ProducerConfig::default()
        };
        let p = Producer::start(&c, config).await.unwrap();
        let started = tokio::time::Instant::now();
        match p.send(ProducerRecord::new("t", "x")).await {
            Err(ClientError::DeliveryTimeout { last: Some(_), .. }) => {}
            other => panic!("expected DeliveryTimeout, got {other:?}"),
        }
        assert!(started.elapsed() <= Duration::from_secs(5));
        p.close().await;
        c.shutdown().await;
    });
}

#[test]
fn test_bad_requests_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start(dir.path()).await;
        c.create_topic(NewTopic::new("t")).await.unwrap();
        let p = Producer::start(&c, ProducerConfig::default())
            .await
            .unwrap();
        match p.send(ProducerRecord::new("nope", "x")).await {
            Err(ClientError::Broker(BrokerError::UnknownTopic(t))) => assert_eq!(t, "nope"),
            other => panic!("{other:?}"),
        }
        match p.send(ProducerRecord::new("t", "x").partition(7)).await {
            Err(ClientError::Broker(BrokerError::UnknownPartition { partition: 7, .. })) => {}
            other => panic!("{other:?}"),
        }
        let bad = ProducerConfig {
            acks: Acks::Leader,
            ..ProducerConfig::default()
        };
        assert!(matches!(
            Producer::start(&c, bad).await,
            Err(ClientError::InvalidConfig(_))
        ));
        // A good record still goes after the bad ones.
        assert_eq!(
            p.send(ProducerRecord::new("t", "ok")).await.unwrap().offset,
            0
        );
        let p2 = p.clone();
        p.close().await;
        assert!(matches!(
            p2.send(ProducerRecord::new("t", "late")).await,
            Err(ClientError::Closed)
        ));
        c.shutdown().await;
    });
}

#[test]
fn test_auto_created_topics_and_acks_one_without_idempotence() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let mut cfg = config(dir.path());
        cfg.auto_create_topics = true;
        let c = eddy_broker::Cluster::start(cfg).await.unwrap();
        let config = ProducerConfig {
            acks: Acks::Leader,
            idempotence: false,
            ..ProducerConfig::default()
        };
        let p = Producer::start(&c, config).await.unwrap();
        let m = p
            .send(ProducerRecord::new("fresh", "x").key("k"))
            .await
            .unwrap();
        assert_eq!(m.offset, 0);
        assert!(c.describe_topic("fresh").is_ok());
        // acks=1 answers before the followers have it; consumers see it once replicated.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (stored, _) = committed(&c, "fresh", m.partition).await;
        assert_eq!(stored[0].sequence, -1, "not idempotent: no sequence");
        p.close().await;
        c.shutdown().await;
    });
}
