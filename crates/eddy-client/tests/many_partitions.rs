//! A topic per user at small scale through the embedded clients: 200 topics of 10 partitions
//! (2,000 partitions, replication factor 3), one record to every partition with acks=all, all
//! acknowledged; one regex group reads every record exactly once, commits, and a new member
//! of the group finds nothing left.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use eddy_broker::NewTopic;
use eddy_client::{
    Consumer, ConsumerConfig, OffsetReset, Producer, ProducerConfig, ProducerRecord,
};
use tokio::time::Instant;

const USERS: u32 = 200;
const PARTITIONS: u32 = 10;

fn group() -> ConsumerConfig {
    ConsumerConfig::with_group("many-readers").auto_offset_reset(OffsetReset::Earliest)
}

#[test]
fn test_two_thousand_partitions_acknowledged_and_read_once_by_a_regex_group() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start(dir.path()).await;
        let topics: Vec<NewTopic> = (0..USERS)
            .map(|u| NewTopic::new(format!("user_{u}")).partitions(PARTITIONS))
            .collect();
        for r in c.create_topics(topics).await.unwrap() {
            r.unwrap();
        }

        let producer = Producer::start(&c, ProducerConfig::default())
            .await
            .unwrap();
        let mut expected = BTreeSet::new();
        let mut deliveries = Vec::new();
        for u in 0..USERS {
            for p in 0..PARTITIONS {
                let value = format!(r#"{{"user":{u},"partition":{p},"text":"hello"}}"#);
                expected.insert(value.clone());
                deliveries.push(
                    producer.send(ProducerRecord::new(format!("user_{u}"), value).partition(p)),
                );
            }
        }
        let mut acked = BTreeSet::new();
        for d in deliveries {
            let m = d.await.unwrap();
            assert_eq!(m.offset, 0, "{m:?}");
            assert!(acked.insert((m.topic, m.partition)), "acknowledged twice");
        }
        assert_eq!(acked.len(), (USERS * PARTITIONS) as usize);
        producer.close().await;

        let mut consumer = Consumer::new(&c, group()).unwrap();
        consumer.subscribe_pattern("user_.*").unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut got = Vec::new();
        while got.len() < expected.len() && Instant::now() < deadline {
            for r in consumer.poll(Duration::from_millis(200)).await.unwrap() {
                got.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
            }
        }
        let unique: BTreeSet<String> = got.iter().cloned().collect();
        assert_eq!(unique.len(), got.len(), "a record was read twice");
        assert_eq!(unique, expected);
        assert!(consumer
            .poll(Duration::from_secs(1))
            .await
            .unwrap()
            .is_empty());
        assert_eq!(consumer.assignment().len(), (USERS * PARTITIONS) as usize);
        consumer.commit_sync().await.unwrap();
        consumer.close().await.unwrap();

        // A new member resumes from the commits of every partition.
        let mut again = Consumer::new(&c, group()).unwrap();
        again.subscribe_pattern("user_.*").unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while again.assignment().len() < (USERS * PARTITIONS) as usize && Instant::now() < deadline
        {
            assert!(again
                .poll(Duration::from_millis(200))
                .await
                .unwrap()
                .is_empty());
        }
        assert_eq!(again.assignment().len(), (USERS * PARTITIONS) as usize);
        assert!(again.poll(Duration::from_secs(2)).await.unwrap().is_empty());
        assert_eq!(again.position("user_7", 3), Some(1));
        again.close().await.unwrap();
        c.shutdown().await;
    });
}
