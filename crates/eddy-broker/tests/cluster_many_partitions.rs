//! Many partitions on one node: 2,000 topics of 10 partitions (20,000 partitions, 60,000
//! replicas over 3 brokers), a record in each, all of them back after a restart. Prints the
//! start-up time (real time) for whoever reads the test's output; the figures that matter are
//! in `eddy bench chat`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Instant;

use common::*;
use eddy_broker::{Cluster, NewTopic};
use eddy_log::testing::batch_bytes;
use eddy_types::Acks;

const TOPICS: u32 = 2_000;
const PARTITIONS: u32 = 10;

async fn start_big(dir: &std::path::Path) -> Cluster {
    let mut config = config(dir);
    config.log.map_size = 1 << 30;
    Cluster::start(config).await.unwrap()
}

#[test]
fn test_restart_with_twenty_thousand_partitions_keeps_every_record() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start_big(dir.path()).await;
        let topics: Vec<NewTopic> = (0..TOPICS)
            .map(|t| NewTopic::new(format!("user_{t}")).partitions(PARTITIONS))
            .collect();
        let created = Instant::now();
        for r in c.create_topics(topics).await.unwrap() {
            r.unwrap();
        }
        eprintln!(
            "created {} partitions in {:?}",
            TOPICS * PARTITIONS,
            created.elapsed()
        );
        let produced = Instant::now();
        let mut acks = Vec::new();
        for t in 0..TOPICS {
            for p in 0..PARTITIONS {
                let c = c.clone();
                acks.push(actix_rt::spawn(async move {
                    let topic = format!("user_{t}");
                    // Each record's timestamp names its partition.
                    let ts = i64::from(t * PARTITIONS + p);
                    c.produce(&topic, p, batch_bytes(1, ts, 8), Acks::All).await
                }));
            }
        }
        for a in acks {
            let reply = a.await.unwrap().unwrap();
            assert_eq!(reply.base_offset, 0);
        }
        eprintln!("one record to each, acks=all, in {:?}", produced.elapsed());
        c.shutdown().await;
    });
    paused(async {
        let started = Instant::now();
        let c = start_big(dir.path()).await;
        eprintln!(
            "restarted with {} partitions in {:?}",
            TOPICS * PARTITIONS,
            started.elapsed()
        );
        assert_eq!(c.metadata().topics.len(), TOPICS as usize);
        let read = Instant::now();
        for t in 0..TOPICS {
            let topic = format!("user_{t}");
            for p in 0..PARTITIONS {
                let f = c.fetch(&topic, p, 0, 1 << 20).await.unwrap();
                let ts = i64::from(t * PARTITIONS + p);
                assert_eq!(
                    offsets_and_timestamps(&f.records),
                    vec![(0, ts)],
                    "{topic} {p}"
                );
                assert_eq!(f.high_watermark, 1, "{topic} {p}");
            }
        }
        eprintln!("read every partition back in {:?}", read.elapsed());
        c.shutdown().await;
    });
}
