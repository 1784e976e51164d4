//! Idempotent producers: producer ids, duplicates, gaps, fencing, and exactly-once delivery of
//! retried batches across a leader failover.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use eddy_broker::{BrokerError, NewTopic};
use eddy_types::{Acks, BrokerId};

#[test]
fn test_producer_ids_are_unique_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let last = paused(async {
        let c = start(dir.path()).await;
        let a = c.init_producer_id().await.unwrap();
        let b = c.init_producer_id().await.unwrap();
        assert_ne!(a.producer_id, b.producer_id);
        c.shutdown().await;
        b.producer_id
    });
    paused(async {
        let c = start(dir.path()).await;
        assert!(c.init_producer_id().await.unwrap().producer_id > last);
        c.shutdown().await;
    });
}

#[test]
fn test_retries_are_deduplicated_and_gaps_refused() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start(dir.path()).await;
        c.create_topic(NewTopic::new("t")).await.unwrap();
        let p = c.init_producer_id().await.unwrap().producer_id;
        let first = idempotent_batch(p, 0, 0, 3, 10);
        let a = c.produce("t", 0, first.clone(), Acks::All).await.unwrap();
        let again = c.produce("t", 0, first, Acks::All).await.unwrap();
        assert_eq!(
            (again.base_offset, again.last_offset),
            (a.base_offset, a.last_offset)
        );
        let next = c
            .produce("t", 0, idempotent_batch(p, 0, 3, 2, 20), Acks::All)
            .await
            .unwrap();
        assert_eq!(next.base_offset, 3);
        assert_eq!(
            c.list_offsets("t", 0, None).await.unwrap().log_end,
            5,
            "no duplicate written"
        );

        let gap = c
            .produce("t", 0, idempotent_batch(p, 0, 9, 1, 30), Acks::All)
            .await
            .unwrap_err();
        assert!(
            matches!(
                gap,
                BrokerError::OutOfOrderSequence {
                    expected: 5,
                    got: 9,
                    ..
                }
            ),
            "{gap}"
        );
        // A new epoch starts at 0; then the old epoch is fenced.
        c.produce("t", 0, idempotent_batch(p, 1, 0, 1, 40), Acks::All)
            .await
            .unwrap();
        let old = c
            .produce("t", 0, idempotent_batch(p, 0, 5, 1, 50), Acks::All)
            .await
            .unwrap_err();
        assert!(
            matches!(
                old,
                BrokerError::ProducerFenced {
                    current: 1,
                    got: 0,
                    ..
                }
            ),
            "{old}"
        );
        assert_eq!(c.list_offsets("t", 0, None).await.unwrap().log_end, 6);
        c.shutdown().await;
    });
}

#[test]
fn test_retried_batches_land_exactly_once_across_a_failover() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start(dir.path()).await;
        c.create_topic(NewTopic::new("t").min_insync_replicas(2))
            .await
            .unwrap();
        let leader = c.metadata().partition("t", 0).unwrap().leader.unwrap();
        // Four idempotent producers, one request in flight each, resending whatever fails.
        let acked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut producers = Vec::new();
        for k in 0..4i64 {
            let c = c.clone();
            let acked = acked.clone();
            producers.push(actix_rt::spawn(async move {
                let pid = c.init_producer_id().await.unwrap().producer_id;
                let mut retries = 0;
                for seq in 0..60i32 {
                    let ts = (k * 1000 + i64::from(seq)) * 10;
                    let batch = idempotent_batch(pid, 0, seq * 2, 2, ts);
                    loop {
                        match c.produce("t", 0, batch.clone(), Acks::All).await {
                            Ok(_) => {
                                acked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                break;
                            }
                            Err(e) => {
                                assert!(
                                    matches!(
                                        e,
                                        BrokerError::LeaderChanged { .. }
                                            | BrokerError::Stopped(_)
                                            | BrokerError::DuplicateInFlight { .. }
                                    ),
                                    "{e}"
                                );
                                retries += 1;
                                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                            }
                        }
                    }
                }
                retries
            }));
        }
        // Stop the leader's broker in the middle of the stream.
        while acked.load(std::sync::atomic::Ordering::Relaxed) < 100 {
            tokio::task::yield_now().await;
        }
        c.stop_broker(leader).await.unwrap();
        let mut retries = 0;
        for p in producers {
            retries += p.await.unwrap();
        }
        let f = c.fetch("t", 0, 0, usize::MAX).await.unwrap();
        let log = offsets_and_timestamps(&f.records);
        assert_eq!(
            log.len(),
            4 * 60 * 2,
            "every batch exactly once ({retries} retries)"
        );
        assert!(retries > 0, "the failover happened mid-stream");
        for k in 0..4i64 {
            let mine: Vec<i64> = log
                .iter()
                .map(|(_, ts)| *ts)
                .filter(|ts| ts / 10_000 == k)
                .collect();
            assert!(
                mine.windows(2).all(|w| w[0] < w[1]),
                "producer {k} in order"
            );
        }
        c.start_broker(BrokerId(leader.0)).await.unwrap();
        c.shutdown().await;
    });
}
