//! Malformed frames against a real listener: each gets its proper error code or closes only
//! its own connection; the server never panics or aborts, loses nothing, and other
//! connections keep working.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

/// As in the `eddy` binary: hostile array counts become lazy mappings, not aborts.
#[global_allocator]
static ALLOC: eddy_kafka::LazyHugeAlloc = eddy_kafka::LazyHugeAlloc;

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::{Server, Wire};
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const WAIT: Duration = Duration::from_secs(5);

/// A frame: size prefix, then `header` (key, version, correlation id, null client id) and
/// `body` as given.
fn frame(key: i16, version: i16, body: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i32((10 + body.len()) as i32);
    b.put_i16(key);
    b.put_i16(version);
    b.put_i32(7);
    b.put_i16(-1); // null client id (header v1)
    b.put_slice(body);
    b.freeze()
}

/// Another connection still gets ApiVersions answered.
async fn still_serving(server_addr: std::net::SocketAddr) {
    let mut w = Wire::connect(server_addr).await;
    let r = w.request(3, &ApiVersionsRequest::default()).await.unwrap();
    assert_eq!(r.error_code, 0);
}

fn produce_req(records: Bytes) -> ProduceRequest {
    let mut p = PartitionProduceData::default();
    p.index = 0;
    p.records = Some(records);
    let mut t = TopicProduceData::default();
    t.name = TopicName(StrBytes::from_string("bad".into()));
    t.partition_data = vec![p];
    let mut r = ProduceRequest::default();
    r.acks = -1;
    r.timeout_ms = 5000;
    r.topic_data = vec![t];
    r
}

/// A valid one-record batch (magic 2) as a client encodes it.
fn good_batch() -> Bytes {
    eddy_broker::records::encode_batch(&[(None, Some(Bytes::from_static(b"hello")))], 1).unwrap()
}

#[test]
fn test_malformed_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let addr = server.addr(0);
    server.block_on(async {
        let cases: Vec<(&str, Bytes)> = vec![
            (
                "negative size",
                Bytes::from_static(&[0xff, 0xff, 0xff, 0xfe]),
            ),
            ("size over the limit", {
                let mut b = BytesMut::new();
                b.put_i32(200 << 20);
                b.freeze()
            }),
            (
                "size too short for a header",
                Bytes::from_static(&[0, 0, 0, 3, 0, 3, 0]),
            ),
            ("unknown api key", frame(9999, 0, &[])),
            ("unsupported produce version", frame(0, 99, &[])),
            ("api not served", frame(ApiKey::DescribeAcls as i16, 0, &[])),
            ("garbage metadata body", frame(3, 4, &[0xde, 0xad, 0xbe])),
            ("truncated header", {
                let mut b = BytesMut::new();
                b.put_i32(9);
                b.put_i16(3);
                b.put_i16(1);
                b.put_i32(1);
                b.put_u8(0x7f); // half a client id length
                b.freeze()
            }),
            // Array counts far beyond the frame: must not turn into huge allocations.
            (
                "metadata topic count of 2^31-1",
                frame(3, 1, &[0x7f, 0xff, 0xff, 0xff]),
            ),
            (
                "metadata topic count 54M",
                frame(3, 0, &[0x03, 0x3c, 0x0c, 0x00, 0xb6]),
            ),
            (
                "produce topic count of 2^31-1",
                frame(
                    0,
                    3,
                    &[
                        0xff, 0xff, 0, 0, 0, 1, 0, 0, 0x75, 0x30, 0x7f, 0xff, 0xff, 0xff,
                    ],
                ),
            ),
            ("compact array count of 2^32-1 (metadata v9)", {
                let mut b = BytesMut::new();
                let body = [0xffu8, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0];
                b.put_i32((9 + body.len()) as i32);
                b.put_i16(3);
                b.put_i16(9);
                b.put_i32(7);
                b.put_i16(-1); // client id (not compact in header v2)
                b.put_u8(0); // no tagged fields
                b.put_slice(&body);
                b.freeze()
            }),
        ];
        for (what, bytes) in cases {
            let mut w = Wire::connect(addr).await;
            w.send_raw(&bytes).await;
            assert!(w.closed(WAIT).await, "{what}: connection not closed");
            still_serving(addr).await;
        }
        // A frame cut short: the server waits for the rest, then the client goes away.
        let mut w = Wire::connect(addr).await;
        w.send_raw(&[0, 0, 0, 100, 0, 3, 0, 1]).await;
        drop(w);
        still_serving(addr).await;
    });
    server.stop();
}

#[test]
fn test_api_versions_of_an_unknown_version_answers_v0_with_the_supported_list() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let addr = server.addr(0);
    server.block_on(async {
        let mut w = Wire::connect(addr).await;
        // KIP-511: a newer client's ApiVersions v99 (flexible header) gets a v0 answer.
        let mut b = BytesMut::new();
        b.put_i32(12);
        b.put_i16(18);
        b.put_i16(99);
        b.put_i32(42);
        b.put_i16(-1);
        b.put_u8(0);
        b.put_u8(0);
        w.send_raw(&b).await;
        let mut resp = w.read_frame(WAIT).await.expect("an answer");
        use bytes::Buf;
        assert_eq!(resp.get_i32(), 42, "correlation id");
        let body =
            <ApiVersionsResponse as kafka_protocol::protocol::Decodable>::decode(&mut resp, 0)
                .unwrap();
        assert_eq!(body.error_code, E::UnsupportedVersion.code());
        assert!(body
            .api_keys
            .iter()
            .any(|k| k.api_key == 18 && k.max_version == 3));
    });
    server.stop();
}

#[test]
fn test_garbage_and_corrupt_batches_are_refused_with_corrupt_message_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let addr = server.addr(0);
    let cluster = server.cluster();
    server.block_on(async {
        cluster
            .create_topic(eddy_broker::NewTopic::new("bad").partitions(1))
            .await
            .unwrap();
        let leader = cluster.describe_topic("bad").unwrap().partitions[0]
            .leader
            .unwrap();
        let mut w = Wire::connect(server.addr(leader.0 as usize)).await;
        let mut flipped = BytesMut::from(&good_batch()[..]);
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff; // the CRC no longer matches
        let cases = [
            (
                "garbage",
                Bytes::from_static(b"not a record batch at all, no"),
            ),
            ("bad crc", flipped.freeze()),
            ("truncated batch", good_batch().slice(..20)),
        ];
        for (what, records) in cases {
            let r = w.request(7, &produce_req(records)).await.unwrap();
            let code = r.responses[0].partition_responses[0].error_code;
            assert_eq!(code, E::CorruptMessage.code(), "{what}: {r:?}");
        }
        // Nothing was written; a good batch goes to offset 0.
        let r = w.request(7, &produce_req(good_batch())).await.unwrap();
        let p = &r.responses[0].partition_responses[0];
        assert_eq!((p.error_code, p.base_offset), (0, 0), "{r:?}");
        // A wrong acks value is refused per partition.
        let mut req = produce_req(good_batch());
        req.acks = 5;
        let r = w.request(7, &req).await.unwrap();
        assert_eq!(
            r.responses[0].partition_responses[0].error_code,
            E::InvalidRequiredAcks.code()
        );
        // A broker that does not lead the partition says so, as in Kafka.
        let other = (leader.0 as usize + 1) % 3;
        let mut w = Wire::connect(server.addr(other)).await;
        let r = w.request(7, &produce_req(good_batch())).await.unwrap();
        assert_eq!(
            r.responses[0].partition_responses[0].error_code,
            E::NotLeaderOrFollower.code()
        );
        // And one that does not coordinate a group answers NOT_COORDINATOR.
        let coordinator = cluster.coordinator("g").await.unwrap();
        let mut w = Wire::connect(server.addr((coordinator.0 as usize + 1) % 3)).await;
        let mut hb = HeartbeatRequest::default();
        hb.group_id = GroupId(StrBytes::from_string("g".into()));
        let r = w.request(4, &hb).await.unwrap();
        assert_eq!(r.error_code, E::NotCoordinator.code());
        let _ = addr;
    });
    server.stop();
}

/// Topics past `max_partitions` are refused with POLICY_VIOLATION and a message; the rest of
/// the request, and every topic made before, stays.
#[test]
fn test_create_topics_past_max_partitions_is_a_policy_violation() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_configured(
        dir.path(),
        eddy_kafka::KafkaConfig {
            base_port: 0,
            ..eddy_kafka::KafkaConfig::default()
        },
        |c| c.max_partitions = 30,
    );
    let addr = server.addr(0);
    let topic = |name: &str, partitions: i32| {
        let mut t = create_topics_request::CreatableTopic::default();
        t.name = TopicName(StrBytes::from_string(name.into()));
        t.num_partitions = partitions;
        t.replication_factor = 3;
        t
    };
    server.block_on(async move {
        let mut w = Wire::connect(addr).await;
        let mut r = CreateTopicsRequest::default();
        r.timeout_ms = 10_000;
        // 7 x 3 = 21 replicas fit; 4 more partitions (12) would make 33.
        r.topics = vec![topic("user_1", 7), topic("user_2", 4), topic("user_3", 1)];
        let resp = w.request(5, &r).await.unwrap();
        let codes: Vec<i16> = resp.topics.iter().map(|t| t.error_code).collect();
        assert_eq!(codes, vec![0, E::PolicyViolation.code(), 0], "{resp:?}");
        let message = resp.topics[1].error_message.as_ref().unwrap().to_string();
        assert!(message.contains("max_partitions is 30"), "{message}");
        // A produce to the existing topics still works; the refused one is not there.
        let mut m = MetadataRequest::default();
        m.topics = None;
        let meta = w.request(12, &m).await.unwrap();
        let mut names: Vec<(String, usize)> = meta
            .topics
            .iter()
            .map(|t| (t.name.as_ref().unwrap().to_string(), t.partitions.len()))
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![("user_1".to_string(), 7), ("user_3".to_string(), 1)]
        );
        let mut p = produce_req(good_batch());
        p.topic_data[0].name = TopicName(StrBytes::from_static_str("user_1"));
        let resp = w.request(9, &p).await.unwrap();
        assert_eq!(
            resp.responses[0].partition_responses[0].error_code, 0,
            "{resp:?}"
        );
    });
    server.stop();
}
