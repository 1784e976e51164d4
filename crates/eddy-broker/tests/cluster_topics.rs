//! Topic administration, persistence across restarts, and on-demand partition actors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use eddy_broker::{BrokerError, Cluster, NewTopic};
use eddy_log::testing::batch_bytes;
use eddy_types::{Acks, BrokerId, ClassifyError, ErrorKind};

#[test]
fn test_topic_admin_and_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start(dir.path()).await;
        let t = c
            .create_topic(
                NewTopic::new("user_1")
                    .partitions(10)
                    .replication_factor(2)
                    .retention_ms(Some(60_000))
                    .retention_bytes(Some(1 << 20)),
            )
            .await
            .unwrap();
        assert_eq!(t.partitions.len(), 10);
        assert!(t
            .partitions
            .iter()
            .all(|p| p.replicas.len() == 2 && p.isr.len() == 2));
        // Leaders are balanced: 10 partitions over 3 brokers.
        let mut per_broker = [0; 3];
        for p in &t.partitions {
            per_broker[p.leader.unwrap().0 as usize] += 1;
        }
        assert!(
            per_broker.iter().all(|n| (3..=4).contains(n)),
            "{per_broker:?}"
        );

        let err = c.create_topic(NewTopic::new("user 1")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid);
        assert!(err.to_string().contains("' '"), "{err}");
        let err = c
            .create_topic(NewTopic::new("x").replication_factor(4))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("3 brokers"), "{err}");
        let err = c.create_topic(NewTopic::new("user_1")).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);

        c.create_partitions("user_1", 12).await.unwrap();
        assert_eq!(c.describe_topic("user_1").unwrap().partitions.len(), 12);
        c.produce("user_1", 11, batch_bytes(1, 1, 4), Acks::All)
            .await
            .unwrap();
        let err = c
            .produce("user_1", 12, batch_bytes(1, 1, 4), Acks::All)
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            BrokerError::UnknownPartition { partition: 12, .. }
        ));

        c.create_topic(NewTopic::new("gone")).await.unwrap();
        c.produce("gone", 0, batch_bytes(1, 1, 4), Acks::All)
            .await
            .unwrap();
        let pid = c.describe_topic("gone").unwrap().partitions[0].id;
        c.delete_topic("gone").await.unwrap();
        settle(Duration::from_millis(10)).await;
        let names: Vec<String> = c.topics().iter().map(|t| t.name.to_string()).collect();
        assert_eq!(names, vec!["user_1"]);
        for b in 0..3 {
            let log = c.replica_log(BrokerId(b)).unwrap();
            assert!(
                !log.partitions().unwrap().contains(&pid),
                "records deleted on broker {b}"
            );
        }
        let err = c
            .produce("gone", 0, batch_bytes(1, 1, 4), Acks::All)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);

        // A bad batch is refused with the log's reason and nothing is written.
        let err = c
            .produce(
                "user_1",
                0,
                bytes::Bytes::from_static(b"not a batch"),
                Acks::All,
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
        assert_eq!(c.list_offsets("user_1", 0, None).await.unwrap().log_end, 0);
        c.shutdown().await;
    });
}

#[test]
fn test_auto_create_on_first_produce_when_enabled() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let mut config = config(dir.path());
        config.auto_create_topics = true;
        let c = Cluster::start(config).await.unwrap();
        c.produce("fresh", 0, batch_bytes(1, 1, 4), Acks::All)
            .await
            .unwrap();
        assert_eq!(c.describe_topic("fresh").unwrap().partitions.len(), 1);
        // Reads never create: a consumer still reading a deleted topic does not bring it back.
        c.delete_topic("fresh").await.unwrap();
        for err in [
            c.fetch("fresh", 0, 0, 1024).await.unwrap_err(),
            c.list_offsets("fresh", 0, None).await.unwrap_err(),
        ] {
            assert!(matches!(err, BrokerError::UnknownTopic(_)), "{err}");
        }
        assert!(c.describe_topic("fresh").is_err(), "recreated by a read");
        c.shutdown().await;
    });
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start(dir.path()).await;
        let err = c
            .produce("fresh", 0, batch_bytes(1, 1, 4), Acks::All)
            .await
            .unwrap_err();
        assert!(matches!(err, BrokerError::UnknownTopic(_)));
        c.shutdown().await;
    });
}

#[test]
fn test_restart_brings_back_topics_leaders_epochs_and_records() {
    let dir = tempfile::tempdir().unwrap();
    let before = paused(async {
        let c = start(dir.path()).await;
        c.create_topic(NewTopic::new("a").partitions(3))
            .await
            .unwrap();
        c.create_topic(NewTopic::new("b").replication_factor(1))
            .await
            .unwrap();
        for p in 0..3 {
            c.produce("a", p, batch_bytes(5, 100, 8), Acks::All)
                .await
                .unwrap();
        }
        // One failover, so that epochs and ISRs are not the initial ones.
        c.stop_broker(BrokerId(0)).await.unwrap();
        c.produce("a", 0, batch_bytes(2, 200, 8), Acks::All)
            .await
            .unwrap();
        c.start_broker(BrokerId(0)).await.unwrap();
        settle(Duration::from_secs(2)).await;
        let m = c.metadata();
        c.shutdown().await;
        settle(Duration::from_millis(100)).await;
        m
    });
    paused(async {
        let c = start(dir.path()).await;
        settle(Duration::from_millis(100)).await;
        let after = c.metadata();
        // The same topics, assignments, leaders and ISRs; every led partition has a new
        // leader epoch (a start fences whatever a follower copied that its leader lost).
        assert_eq!(
            after.topics.keys().collect::<Vec<_>>(),
            before.topics.keys().collect::<Vec<_>>()
        );
        for (name, t) in &before.topics {
            let a = &after.topics[name];
            assert_eq!(a.config, t.config);
            for (p, q) in t.partitions.iter().zip(&a.partitions) {
                assert_eq!(
                    (p.id, &p.replicas, p.leader, &p.isr),
                    (q.id, &q.replicas, q.leader, &q.isr)
                );
                assert!(p.leader.is_some());
                assert_eq!(q.leader_epoch, p.leader_epoch + 1, "{name} {}", p.index);
            }
        }
        assert_eq!(after.next_partition_id, before.next_partition_id);
        let f = c.fetch("a", 0, 0, 1 << 20).await.unwrap();
        assert_eq!(offsets_and_timestamps(&f.records).len(), 7);
        assert_eq!(f.high_watermark, 7);
        for b in 0..3 {
            assert_eq!(replica_contents(&c, b, "a", 0).len(), 7, "broker {b}");
        }
        c.produce("a", 0, batch_bytes(1, 300, 8), Acks::All)
            .await
            .unwrap();
        c.shutdown().await;
    });
}

#[test]
fn test_idle_partitions_run_no_actors() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start(dir.path()).await;
        // 1,000 per-user topics of 10 partitions: 10,000 partitions, 30,000 replicas.
        for u in 0..1000 {
            c.create_topic(NewTopic::new(format!("user_{u}")).partitions(10))
                .await
                .unwrap();
        }
        let running = |c: Cluster| async move {
            let mut n = (0, 0);
            for b in 0..3 {
                let s = c.observe_broker(BrokerId(b)).await.unwrap();
                n.0 += s.leaders_running;
                n.1 += s.followers_running;
            }
            n
        };
        assert_eq!(
            running(c.clone()).await,
            (0, 0),
            "nothing runs for idle partitions"
        );
        c.produce("user_7", 3, batch_bytes(1, 1, 8), Acks::All)
            .await
            .unwrap();
        assert_eq!(
            running(c.clone()).await,
            (1, 2),
            "one leader and its two followers"
        );
        // Idle for twice the idle timeout: followers stop, then the leader.
        settle(c.config().partition_idle_timeout * 3).await;
        assert_eq!(running(c.clone()).await, (0, 0));
        // And everything still works after.
        let r = c
            .produce("user_7", 3, batch_bytes(1, 2, 8), Acks::All)
            .await
            .unwrap();
        assert_eq!(r.base_offset, 1);
        c.shutdown().await;
    });
}

#[test]
fn test_retention_removes_expired_batches_on_every_replica() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let mut config = config(dir.path());
        config.retention_check_interval = Duration::from_secs(10);
        let c = Cluster::start(config).await.unwrap();
        c.create_topic(NewTopic::new("short").retention_ms(Some(60_000)))
            .await
            .unwrap();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        // Two hours old, twice; then a fresh one.
        c.produce("short", 0, batch_bytes(3, now_ms - 7_200_000, 8), Acks::All)
            .await
            .unwrap();
        c.produce("short", 0, batch_bytes(2, now_ms - 7_100_000, 8), Acks::All)
            .await
            .unwrap();
        c.produce("short", 0, batch_bytes(1, now_ms, 8), Acks::All)
            .await
            .unwrap();
        // High watermarks get checkpointed (every 5 s), then retention runs (every 10 s).
        settle(Duration::from_secs(25)).await;
        let o = c.list_offsets("short", 0, None).await.unwrap();
        assert_eq!((o.log_start, o.log_end), (5, 6), "expired batches removed");
        let pid = c.describe_topic("short").unwrap().partitions[0].id;
        for b in 0..3 {
            let log = c.replica_log(BrokerId(b)).unwrap();
            assert_eq!(log.offsets(pid).unwrap().log_start, 5, "broker {b}");
        }
        let f = c.fetch("short", 0, 5, 1 << 20).await.unwrap();
        assert_eq!(offsets_and_timestamps(&f.records), vec![(5, now_ms)]);
        c.shutdown().await;
    });
}

#[test]
fn test_a_slow_read_or_lookup_by_time_holds_neither_appends_nor_other_fetches() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start(dir.path()).await;
        c.create_topic(NewTopic::new("cold")).await.unwrap();
        c.create_topic(NewTopic::new("hot")).await.unwrap();
        for (i, topic) in ["cold", "hot"].into_iter().enumerate() {
            c.produce(topic, 0, batch_bytes(3, 10 * i as i64, 8), Acks::All)
                .await
                .unwrap();
        }
        // Every read of the cold partition's leader waits, as a read from a slow disk does.
        let leader = c.metadata().partition("cold", 0).unwrap().leader.unwrap();
        let log = c.replica_log(leader).unwrap();
        log.slow_reads(Duration::from_millis(1500));
        let cold = {
            let c = c.clone();
            actix_rt::spawn(async move { c.fetch("cold", 0, 0, 1 << 20).await })
        };
        // The fetch reaches the leader, whose read starts. (No timer here: paused time does
        // not move while a blocking thread runs.)
        while log.slowed_reads() == 0 {
            tokio::task::yield_now().await;
        }
        // Meanwhile the actors go on: an append is committed and answered...
        let r = c
            .produce("hot", 0, batch_bytes(2, 20, 8), Acks::Leader)
            .await
            .unwrap();
        assert_eq!(r.base_offset, 3);
        assert!(
            !cold.is_finished(),
            "the append waited for the slow read: reads hold the actors' thread"
        );
        // ...and so is another fetch (the slow read goes on: it took its wait when it began).
        log.slow_reads(Duration::ZERO);
        let f = c.fetch("hot", 0, 0, 1 << 20).await.unwrap();
        assert_eq!(
            offsets_and_timestamps(&f.records)[..3],
            [(0, 10), (1, 11), (2, 12)]
        );
        assert!(!cold.is_finished());
        // The slow read answers in the end, with the records.
        let f = cold.await.unwrap().unwrap();
        assert_eq!(f.high_watermark, 3);
        assert_eq!(offsets_and_timestamps(&f.records).len(), 3);

        // A lookup by time walks the log too, off the actors' thread as well.
        log.slow_reads(Duration::from_millis(1500));
        let slowed = log.slowed_reads();
        let by_time = {
            let c = c.clone();
            actix_rt::spawn(async move { c.list_offsets("cold", 0, Some(1)).await })
        };
        while log.slowed_reads() == slowed {
            tokio::task::yield_now().await;
        }
        c.produce("hot", 0, batch_bytes(1, 30, 8), Acks::Leader)
            .await
            .unwrap();
        assert!(
            !by_time.is_finished(),
            "the append waited for the lookup by time"
        );
        let o = by_time.await.unwrap().unwrap();
        assert_eq!(o.by_timestamp, Some((1, 1)));
        c.shutdown().await;
    });
}

#[test]
fn test_a_fetch_whose_limit_is_below_its_min_bytes_is_answered_once_its_limit_is_full() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start(dir.path()).await;
        c.create_topic(NewTopic::new("t")).await.unwrap();
        for i in 0..4 {
            c.produce("t", 0, batch_bytes(1, i, 100), Acks::All)
                .await
                .unwrap();
        }
        let leader = c.metadata().partition("t", 0).unwrap().leader.unwrap();
        let fetch = |offset| eddy_broker::messages::Fetch {
            topic: "t".into(),
            partition: 0,
            offset,
            // One batch of these (about 170 bytes), not two.
            max_bytes: 300,
            capped: false,
            max_wait: Duration::from_secs(10),
            min_bytes: 1 << 20,
        };
        // More is readable than the limit lets it take: waiting would bring no more.
        let started = tokio::time::Instant::now();
        let f: eddy_broker::messages::FetchReply = c.at(leader).request(fetch(0)).await.unwrap();
        assert_eq!(offsets_and_timestamps(&f.records), [(0, 0)]);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        // At the end of the log it waits for min_bytes, up to max_wait.
        let started = tokio::time::Instant::now();
        let f: eddy_broker::messages::FetchReply = c.at(leader).request(fetch(3)).await.unwrap();
        assert_eq!(offsets_and_timestamps(&f.records), [(3, 3)]);
        assert!(
            started.elapsed() >= Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        c.shutdown().await;
    });
}
