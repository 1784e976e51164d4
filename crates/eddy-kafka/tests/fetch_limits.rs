//! What one Fetch answer may carry: the request's `max_bytes`, at most the listener's
//! `fetch_max_bytes`, filled partition by partition as Kafka fills it (the first batch whole,
//! later ones only if they fit), and the fetch memory budget shared by every connection.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Server, Wire};
use eddy_kafka::KafkaConfig;
use eddy_log::testing::batch_bytes;
use eddy_types::{Acks, BrokerId};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

/// A batch of 10 records of 10 KB each: about 100 KB.
const RECORDS: usize = 10;
const VALUE: usize = 10_000;

/// Topic `t` with 6 partitions; the two led by broker 0 get `batches` batches each. Returns
/// those partitions and the size of a batch.
async fn two_full_partitions(server: &Server, batches: usize) -> (Vec<i32>, usize) {
    let cluster = server.cluster();
    cluster
        .create_topic(eddy_broker::NewTopic::new("t").partitions(6))
        .await
        .unwrap();
    let meta = cluster.describe_topic("t").unwrap();
    let mine: Vec<i32> = meta
        .partitions
        .iter()
        .enumerate()
        .filter(|(_, p)| p.leader == Some(BrokerId(0)))
        .map(|(i, _)| i as i32)
        .take(2)
        .collect();
    assert_eq!(mine.len(), 2, "broker 0 leads two of six partitions");
    let batch = batch_bytes(RECORDS, 0, VALUE);
    for &p in &mine {
        for _ in 0..batches {
            cluster
                .produce("t", p as u32, batch.clone(), Acks::All)
                .await
                .unwrap();
        }
    }
    (mine, batch.len())
}

/// A server whose fetch memory budget (1,000 bytes) is smaller than one batch.
fn small_budget_server(dir: &std::path::Path) -> Server {
    Server::start_with(
        dir,
        KafkaConfig {
            base_port: 0,
            fetch_memory_bytes: 1_000,
            ..KafkaConfig::default()
        },
    )
}

fn fetch(partitions: &[i32], max_bytes: i32, partition_max_bytes: i32) -> FetchRequest {
    let mut t = FetchTopic::default();
    t.topic = TopicName(StrBytes::from_string("t".into()));
    t.partitions = partitions
        .iter()
        .map(|&p| {
            let mut fp = FetchPartition::default();
            fp.partition = p;
            fp.partition_max_bytes = partition_max_bytes;
            fp
        })
        .collect();
    let mut r = FetchRequest::default();
    r.max_bytes = max_bytes;
    r.min_bytes = 1;
    r.max_wait_ms = 0;
    r.topics = vec![t];
    r
}

/// Record bytes of each partition of the answer, in the order asked.
fn sizes(r: &FetchResponse) -> Vec<usize> {
    r.responses[0]
        .partitions
        .iter()
        .map(|p| {
            assert_eq!(p.error_code, 0, "{p:?}");
            p.records.as_ref().map_or(0, |b| b.len())
        })
        .collect()
}

#[test]
fn test_a_fetch_answer_stays_within_its_limits_and_the_first_batch_always_goes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        KafkaConfig {
            base_port: 0,
            fetch_max_bytes: 450_000,
            ..KafkaConfig::default()
        },
    );
    server.block_on(async {
        let (parts, batch) = two_full_partitions(&server, 4).await;
        let mut wire = Wire::connect(server.addr(0)).await;

        // The request's max_bytes: 2.5 batches. The first partition fills two; the second
        // gets what is left (half a batch), which no batch fits: nothing.
        let max = (batch * 5 / 2) as i32;
        let r = wire
            .request(12, &fetch(&parts, max, i32::MAX))
            .await
            .unwrap();
        assert_eq!(sizes(&r), vec![2 * batch, 0]);
        // Its offsets still come.
        assert_eq!(r.responses[0].partitions[1].high_watermark, 40);

        // Per partition: one batch each.
        let r = wire
            .request(12, &fetch(&parts, i32::MAX, batch as i32))
            .await
            .unwrap();
        assert_eq!(sizes(&r), vec![batch, batch]);

        // Asking for everything gets the listener's fetch_max_bytes (4.5 batches): 4 from
        // the first partition, none of the second. Before, each partition's read was
        // bounded by the client's partition_max_bytes alone.
        let r = wire
            .request(12, &fetch(&parts, i32::MAX, i32::MAX))
            .await
            .unwrap();
        assert_eq!(sizes(&r), vec![4 * batch, 0]);

        // Smaller than one batch: the first batch goes whole all the same (a consumer
        // must get past it), and nothing more.
        let r = wire.request(12, &fetch(&parts, 10, 10)).await.unwrap();
        assert_eq!(sizes(&r), vec![batch, 0]);
        // Also when the first partition asked has nothing from its offset on.
        let mut req = fetch(&parts, 10, 10);
        req.topics[0].partitions[0].fetch_offset = 40;
        let r = wire.request(12, &req).await.unwrap();
        assert_eq!(sizes(&r), vec![0, batch]);
        // And when the later partition's batch is larger than its share (its own limit is
        // 2 GiB): that one batch, not the whole partition.
        let mut req = fetch(&parts, 20_000, i32::MAX);
        req.topics[0].partitions[0].fetch_offset = 40;
        req.topics[0].partitions[0].partition_max_bytes = 10;
        let r = wire.request(12, &req).await.unwrap();
        assert_eq!(sizes(&r), vec![0, batch]);
    });
    server.stop();
}

/// With a budget smaller than one answer, fetches from many connections at once still all
/// get their records: one at a time, none stuck.
#[test]
fn test_a_small_fetch_memory_budget_makes_fetches_take_turns() {
    let dir = tempfile::tempdir().unwrap();
    let server = small_budget_server(dir.path());
    server.block_on(async {
        let (parts, batch) = two_full_partitions(&server, 2).await;
        let addr = server.addr(0);
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let parts = parts.clone();
            tasks.push(tokio::spawn(async move {
                let mut wire = Wire::connect(addr).await;
                let mut got = Vec::new();
                for _ in 0..3 {
                    let r = wire
                        .request(12, &fetch(&parts, i32::MAX, i32::MAX))
                        .await
                        .unwrap();
                    got.push(sizes(&r));
                }
                got
            }));
        }
        for t in tasks {
            let got = tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .expect("fetches finish")
                .unwrap();
            // The whole budget (1,000 bytes) is less than a batch: each answer is the
            // first batch alone.
            for sizes in got {
                assert_eq!(sizes, vec![batch, 0]);
            }
        }
    });
    server.stop();
}

/// A connection's fetches take turns for fetch memory: a fetch pipelined behind a long poll
/// does not hold memory it cannot send until the long poll ends, so another connection's
/// fetch is served meanwhile (before, it waited for that long poll).
#[test]
fn test_a_fetch_queued_behind_a_long_poll_holds_no_fetch_memory() {
    use bytes::Buf;
    use tokio::time::Instant;

    let dir = tempfile::tempdir().unwrap();
    let server = small_budget_server(dir.path());
    server.block_on(async {
        let (parts, batch) = two_full_partitions(&server, 1).await;
        let addr = server.addr(0);
        // One connection: a long poll at the end of a partition, then a fetch with records.
        let mut poll = fetch(&parts[..1], i32::MAX, i32::MAX);
        poll.topics[0].partitions[0].fetch_offset = 10;
        poll.max_wait_ms = 3_000;
        let mut a = Wire::connect(addr).await;
        let (first, f1) = a.frame(12, &poll);
        let (second, f2) = a.frame(12, &fetch(&parts[1..], i32::MAX, i32::MAX));
        let t0 = Instant::now();
        a.send_raw(&f1).await;
        a.send_raw(&f2).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Another connection's fetch is served while the long poll waits.
        let mut b = Wire::connect(addr).await;
        let r = b
            .request(12, &fetch(&parts[1..], i32::MAX, i32::MAX))
            .await
            .unwrap();
        assert_eq!(sizes(&r), vec![batch]);
        let served = t0.elapsed();
        assert!(
            served < Duration::from_millis(2_000),
            "served after {served:?}, behind the other connection's long poll"
        );
        // The first connection's answers come after the long poll, in order.
        let mut x = a.read_frame(Duration::from_secs(10)).await.unwrap();
        let mut y = a.read_frame(Duration::from_secs(10)).await.unwrap();
        assert_eq!((x.get_i32(), y.get_i32()), (first, second));
        assert!(t0.elapsed() >= Duration::from_millis(2_900));
    });
    server.stop();
}
