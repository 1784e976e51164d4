//! The listener's limits: `max_connections` closes connections beyond it at accept, the idle
//! timeout closes silent ones, and neither disturbs the connections being served.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Server, Wire};
use eddy_kafka::KafkaConfig;
use kafka_protocol::messages::ApiVersionsRequest;

#[test]
fn test_connections_beyond_the_limit_are_closed_and_a_freed_slot_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        KafkaConfig {
            base_port: 0,
            max_connections: 2,
            ..KafkaConfig::default()
        },
    );
    let (a0, a1) = (server.addr(0), server.addr(1));
    server.block_on(async {
        let mut first = Wire::connect(a0).await;
        let mut second = Wire::connect(a1).await; // the limit spans every listener
        for w in [&mut first, &mut second] {
            w.request(3, &ApiVersionsRequest::default()).await.unwrap();
        }
        let mut third = Wire::connect(a0).await;
        assert!(third.closed(Duration::from_secs(5)).await, "over the limit");
        // The served ones are untouched; closing one frees its slot.
        first
            .request(3, &ApiVersionsRequest::default())
            .await
            .unwrap();
        drop(second);
        let mut again = None;
        for _ in 0..50 {
            let mut w = Wire::connect(a0).await;
            if w.request(3, &ApiVersionsRequest::default()).await.is_ok() {
                again = Some(w);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(again.is_some(), "a freed slot is used again");
    });
    server.stop();
}

#[test]
fn test_an_idle_connection_is_closed_and_a_busy_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        dir.path(),
        KafkaConfig {
            base_port: 0,
            idle_timeout: Duration::from_millis(300),
            ..KafkaConfig::default()
        },
    );
    let addr = server.addr(0);
    server.block_on(async {
        let mut idle = Wire::connect(addr).await;
        let mut busy = Wire::connect(addr).await;
        for _ in 0..6 {
            busy.request(3, &ApiVersionsRequest::default())
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            idle.closed(Duration::from_secs(2)).await,
            "idle connection kept"
        );
        busy.request(3, &ApiVersionsRequest::default())
            .await
            .unwrap();
    });
    server.stop();
}

#[test]
fn test_a_long_poll_holds_up_only_its_own_connection_whose_answers_keep_their_order() {
    use bytes::Buf;
    use tokio::time::Instant;

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.block_on(async {
        let addr = quiet_partition(&server).await;
        let fetch = long_poll("quiet", 1500);

        // One connection: a long poll, then ApiVersions, pipelined.
        let mut slow = Wire::connect(addr).await;
        let (first, f1) = slow.frame(12, &fetch);
        let (second, f2) = slow.frame(3, &ApiVersionsRequest::default());
        let t0 = Instant::now();
        slow.send_raw(&f1).await;
        slow.send_raw(&f2).await;
        // Another connection is answered at once meanwhile.
        let mut other = Wire::connect(addr).await;
        other
            .request(3, &ApiVersionsRequest::default())
            .await
            .unwrap();
        assert!(
            t0.elapsed() < Duration::from_millis(1000),
            "{:?}",
            t0.elapsed()
        );
        // The slow connection answers the fetch after its wait, then ApiVersions.
        let mut a = slow.read_frame(Duration::from_secs(10)).await.unwrap();
        let mut b = slow.read_frame(Duration::from_secs(10)).await.unwrap();
        assert!(
            t0.elapsed() >= Duration::from_millis(1400),
            "{:?}",
            t0.elapsed()
        );
        assert_eq!((a.get_i32(), b.get_i32()), (first, second));
    });
    server.stop();
}

#[test]
fn test_a_short_long_poll_is_answered_when_its_own_wait_ends() {
    use tokio::time::Instant;

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.block_on(async {
        let addr = quiet_partition(&server).await;
        let mut w = Wire::connect(addr).await;
        // 40 polls of 5 ms one after the other, each waiting its whole wait (nothing comes).
        // Ended by the leader's 100 ms housekeeping tick instead, as they once were, they
        // took about 4 s; the bound leaves ten times their own 200 ms for a loaded machine.
        let t0 = Instant::now();
        for _ in 0..40 {
            let t = Instant::now();
            w.request(12, &long_poll("quiet", 5)).await.unwrap();
            assert!(t.elapsed() >= Duration::from_millis(5), "{:?}", t.elapsed());
        }
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    });
    server.stop();
}

#[test]
fn test_pipelined_produce_requests_are_appended_and_answered_in_arrival_order() {
    use bytes::{Buf, Bytes};
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
    use kafka_protocol::protocol::{Decodable, StrBytes};

    fn batch(i: usize) -> Bytes {
        eddy_broker::records::encode_batch(&[(None, Some(Bytes::from(i.to_string())))], 1).unwrap()
    }

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let cluster = server.cluster();
    server.block_on(async {
        cluster
            .create_topic(eddy_broker::NewTopic::new("order").partitions(1))
            .await
            .unwrap();
        let leader = cluster.describe_topic("order").unwrap().partitions[0]
            .leader
            .unwrap();
        let mut w = Wire::connect(server.addr(leader.0 as usize)).await;
        const N: usize = 60;
        let mut ids = Vec::new();
        for i in 0..N {
            let mut p = PartitionProduceData::default();
            p.records = Some(batch(i));
            let mut t = TopicProduceData::default();
            t.name = TopicName(StrBytes::from_string("order".into()));
            t.partition_data = vec![p];
            let mut r = ProduceRequest::default();
            r.acks = if i % 2 == 0 { -1 } else { 1 };
            r.timeout_ms = 10_000;
            r.topic_data = vec![t];
            let (id, frame) = w.frame(7, &r);
            ids.push(id);
            w.send_raw(&frame).await;
        }
        for (i, id) in ids.into_iter().enumerate() {
            let mut f = w.read_frame(Duration::from_secs(30)).await.unwrap();
            assert_eq!(f.get_i32(), id, "answer {i} out of order");
            let r = ProduceResponse::decode(&mut f, 7).unwrap();
            let p = &r.responses[0].partition_responses[0];
            assert_eq!((p.error_code, p.base_offset), (0, i as i64));
        }
        // The last answers were acks=1: they may come before the followers have the
        // records, and a fetch reads only below the high watermark. Read until it passes.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let fetched = loop {
            let f = cluster.fetch("order", 0, 0, 1 << 20).await.unwrap();
            if f.high_watermark >= N as u64 || tokio::time::Instant::now() > deadline {
                break f;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let values: Vec<String> = eddy_broker::records::decode_records(fetched.records, 0)
            .unwrap()
            .into_iter()
            .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap())
            .collect();
        let want: Vec<String> = (0..N).map(|i| i.to_string()).collect();
        assert_eq!(values, want);
    });
    server.stop();
}

#[test]
fn test_request_memory_is_bounded_and_a_full_budget_holds_back_reading_not_serving() {
    use bytes::Buf;
    use tokio::time::Instant;

    let dir = tempfile::tempdir().unwrap();
    // Room for one request at a time.
    let server = Server::start_with(
        dir.path(),
        KafkaConfig {
            base_port: 0,
            queued_max_request_bytes: 64,
            ..KafkaConfig::default()
        },
    );
    server.block_on(async {
        let addr = quiet_partition(&server).await;
        let fetch = long_poll("quiet", 1000);

        // A long poll larger than the whole budget takes all of it for its second...
        let mut slow = Wire::connect(addr).await;
        let (id, frame) = slow.frame(12, &fetch);
        assert!(frame.len() > 64);
        let t0 = Instant::now();
        slow.send_raw(&frame).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        // ...so another connection's request is read, and answered, only after it.
        let mut other = Wire::connect(addr).await;
        other
            .request(3, &ApiVersionsRequest::default())
            .await
            .unwrap();
        let waited = t0.elapsed();
        let mut f = slow.read_frame(Duration::from_secs(10)).await.unwrap();
        assert_eq!(f.get_i32(), id);
        assert!(
            waited >= Duration::from_millis(900),
            "answered after {waited:?}, while the budget was held"
        );
        // With the budget free again, requests flow at once, many in a row.
        let t1 = Instant::now();
        for _ in 0..20 {
            other
                .request(3, &ApiVersionsRequest::default())
                .await
                .unwrap();
        }
        assert!(t1.elapsed() < Duration::from_secs(5));
    });
    server.stop();
}

/// A fetch of partition 0 of `topic` from offset 0 that waits up to `wait_ms` for a record.
fn long_poll(topic: &str, wait_ms: i32) -> kafka_protocol::messages::FetchRequest {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{FetchRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let mut fetch = FetchRequest::default();
    fetch.max_wait_ms = wait_ms;
    fetch.min_bytes = 1;
    fetch.max_bytes = 1 << 20;
    let mut p = FetchPartition::default();
    p.partition_max_bytes = 1 << 20;
    let mut t = FetchTopic::default();
    t.topic = TopicName(StrBytes::from_string(topic.into()));
    t.partitions = vec![p];
    fetch.topics = vec![t];
    fetch
}

/// Makes topic `quiet` (one partition, never written); the address of its leader's listener.
async fn quiet_partition(server: &Server) -> std::net::SocketAddr {
    let cluster = server.cluster();
    cluster
        .create_topic(eddy_broker::NewTopic::new("quiet").partitions(1))
        .await
        .unwrap();
    let leader = cluster.describe_topic("quiet").unwrap().partitions[0]
        .leader
        .unwrap();
    server.addr(leader.0 as usize)
}
