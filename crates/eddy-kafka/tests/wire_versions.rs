//! Every served API at every advertised version: a request goes out through a real socket
//! and its response must decode at that version, whole, on a connection that stays open.
//! Catches fields set in a version that lacks them (the encoder refuses those) and answers
//! the client's decoder would misread.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{Server, Wire};
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Request, StrBytes};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// Sends `make(version)` at every version of `R` the server advertises; answers how many
/// were checked.
async fn sweep<R: Request>(
    wire: &mut Wire,
    make: impl Fn(i16) -> R,
    check: impl Fn(i16, &R::Response),
) -> usize {
    let key = ApiKey::try_from(R::KEY).unwrap();
    let (_, lo, hi) = eddy_kafka::SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == key)
        .copied()
        .unwrap();
    for v in lo..=hi {
        let resp = wire
            .request(v, &make(v))
            .await
            .unwrap_or_else(|e| panic!("{key:?} v{v}: {e}"));
        check(v, &resp);
    }
    (hi - lo + 1) as usize
}

#[test]
fn test_every_api_answers_at_every_advertised_version() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let addr = server.addr(0);
    let cluster = server.cluster();
    let checked = server.block_on(async {
        // Group ids that broker 0 coordinates (the sweep talks to broker 0 only).
        let mut ours = Vec::new();
        let mut i = 0;
        while ours.len() < 10 {
            let g = format!("sweep-join-{i}");
            if cluster.coordinator(&g).await.unwrap() == eddy_types::BrokerId(0) {
                // Loads its __consumer_offsets partition (a client would retry
                // COORDINATOR_LOAD_IN_PROGRESS until then).
                cluster.describe_group(&g).await.unwrap();
                ours.push(g);
            }
            i += 1;
        }
        let ours = &ours;
        let mut w = Wire::connect(addr).await;
        let mut n = 0;
        n += sweep(
            &mut w,
            |_| ApiVersionsRequest::default(),
            |_, r| {
                assert_eq!(r.error_code, 0);
                assert_eq!(r.api_keys.len(), eddy_kafka::SUPPORTED.len());
            },
        )
        .await;
        n += sweep(
            &mut w,
            |v| {
                let mut r = CreateTopicsRequest::default();
                let mut t = CreatableTopic::default();
                t.name = TopicName(s(&format!("sweep-{v}")));
                t.num_partitions = 2;
                t.replication_factor = 3;
                r.topics = vec![t];
                r.timeout_ms = 10_000;
                r
            },
            |_, r| assert_eq!(r.topics[0].error_code, 0, "{r:?}"),
        )
        .await;
        n += sweep(
            &mut w,
            |v| {
                let mut r = MetadataRequest::default();
                if v > 0 {
                    r.topics = None; // all topics
                } else {
                    let mut t = MetadataRequestTopic::default();
                    t.name = Some(TopicName(s("sweep-2")));
                    r.topics = Some(vec![t]);
                }
                r
            },
            |v, r| {
                assert_eq!(r.brokers.len(), 3, "v{v}");
                assert!(r.topics.iter().any(|t| t.partitions.len() == 2), "v{v}");
            },
        )
        .await;
        n += sweep(
            &mut w,
            |_| {
                let mut r = ProduceRequest::default();
                r.acks = 1;
                r.timeout_ms = 5000;
                r
            },
            |_, r| assert!(r.responses.is_empty()),
        )
        .await;
        n += sweep(
            &mut w,
            |_| FetchRequest::default(),
            |_, r| assert_eq!(r.error_code, 0),
        )
        .await;
        n += sweep(&mut w, |_| ListOffsetsRequest::default(), |_, _| {}).await;
        n += sweep(
            &mut w,
            |v| {
                let mut r = FindCoordinatorRequest::default();
                if v >= 4 {
                    r.coordinator_keys = vec![s("sweep-group")];
                } else {
                    r.key = s("sweep-group");
                }
                r
            },
            |v, r| {
                let code = if v >= 4 {
                    r.coordinators[0].error_code
                } else {
                    r.error_code
                };
                assert_eq!(code, 0, "v{v}: {r:?}");
            },
        )
        .await;
        n += sweep(
            &mut w,
            |v| {
                let mut r = JoinGroupRequest::default();
                r.group_id = GroupId(s(&ours[v as usize]));
                r.session_timeout_ms = 10_000;
                r.rebalance_timeout_ms = 10_000;
                r.protocol_type = s("consumer");
                let mut p = JoinGroupRequestProtocol::default();
                p.name = s("range");
                p.metadata = Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 0]);
                r.protocols = vec![p];
                r
            },
            |v, r| {
                // A new member gets its id first from v4 (KIP-394); before, it joins.
                let want = if v >= 4 {
                    E::MemberIdRequired.code()
                } else {
                    0
                };
                assert_eq!(r.error_code, want, "v{v}: {r:?}");
            },
        )
        .await;
        n += sweep(
            &mut w,
            |_| SyncGroupRequest::default(),
            |_, r| assert_eq!(r.error_code, E::InvalidGroupId.code()),
        )
        .await;
        n += sweep(
            &mut w,
            |_| HeartbeatRequest::default(),
            |_, r| assert_ne!(r.error_code, 0),
        )
        .await;
        n += sweep(&mut w, |_| LeaveGroupRequest::default(), |_, _| {}).await;
        n += sweep(&mut w, |_| OffsetCommitRequest::default(), |_, _| {}).await;
        n += sweep(
            &mut w,
            |_| {
                let mut r = OffsetFetchRequest::default();
                r.group_id = GroupId(s(&ours[0]));
                r.topics = None;
                r
            },
            |_, _| {},
        )
        .await;
        n += sweep(
            &mut w,
            |_| {
                let mut r = DescribeGroupsRequest::default();
                r.groups = vec![GroupId(s(&ours[0]))];
                r
            },
            |v, r| {
                let g = &r.groups[0];
                assert_eq!(g.error_code, 0, "v{v}: {r:?}");
                assert_eq!(g.members.len(), 1, "v{v}: {r:?}");
            },
        )
        .await;
        n += sweep(
            &mut w,
            |_| ListGroupsRequest::default(),
            |_, r| assert_eq!(r.error_code, 0),
        )
        .await;
        n += sweep(
            &mut w,
            |_| {
                let mut r = DeleteGroupsRequest::default();
                r.groups_names = vec![GroupId(s("never-seen"))];
                r
            },
            |_, _| {},
        )
        .await;
        n += sweep(
            &mut w,
            |_| InitProducerIdRequest::default(),
            |_, r| {
                assert_eq!(r.error_code, 0);
                assert!(r.producer_id.0 >= 0);
            },
        )
        .await;
        n += sweep(
            &mut w,
            |v| {
                let mut r = DeleteTopicsRequest::default();
                r.topic_names = vec![TopicName(s(&format!("sweep-{}", v + 1)))];
                r.timeout_ms = 10_000;
                r
            },
            |_, r| assert_eq!(r.responses[0].error_code, 0, "{r:?}"),
        )
        .await;
        n += sweep(
            &mut w,
            |v| {
                let mut r = CreatePartitionsRequest::default();
                let mut t = create_partitions_request::CreatePartitionsTopic::default();
                t.name = TopicName(s("sweep-7"));
                t.count = 3 + i32::from(v);
                t.assignments = None;
                r.topics = vec![t];
                r.timeout_ms = 10_000;
                r
            },
            |v, r| assert_eq!(r.results[0].error_code, 0, "v{v}: {r:?}"),
        )
        .await;
        n += sweep(
            &mut w,
            |_| {
                let mut r = DescribeConfigsRequest::default();
                let mut topic = describe_configs_request::DescribeConfigsResource::default();
                topic.resource_type = 2;
                topic.resource_name = s("sweep-7");
                topic.configuration_keys = None;
                let mut broker = describe_configs_request::DescribeConfigsResource::default();
                broker.resource_type = 4;
                broker.resource_name = s("0");
                broker.configuration_keys = Some(vec![s("num.partitions")]);
                r.resources = vec![topic, broker];
                r
            },
            |v, r| {
                assert!(r.results.iter().all(|x| x.error_code == 0), "v{v}: {r:?}");
                assert!(r.results[0]
                    .configs
                    .iter()
                    .any(|c| c.name.as_str() == "retention.ms"));
                assert_eq!(r.results[1].configs.len(), 1);
            },
        )
        .await;
        n += sweep(
            &mut w,
            |_| DescribeClusterRequest::default(),
            |_, r| assert_eq!(r.brokers.len(), 3),
        )
        .await;
        n += sweep(
            &mut w,
            |_| {
                let mut r = DeleteRecordsRequest::default();
                let mut t = delete_records_request::DeleteRecordsTopic::default();
                t.name = TopicName(s("unknown-topic"));
                let mut p = delete_records_request::DeleteRecordsPartition::default();
                p.offset = -1;
                t.partitions = vec![p];
                r.topics = vec![t];
                r
            },
            |_, r| {
                assert_eq!(
                    r.topics[0].partitions[0].error_code,
                    E::UnknownTopicOrPartition.code()
                )
            },
        )
        .await;
        n += sweep(
            &mut w,
            |_| {
                let mut r = OffsetForLeaderEpochRequest::default();
                let mut t = offset_for_leader_epoch_request::OffsetForLeaderTopic::default();
                t.topic = TopicName(s("unknown-topic"));
                let mut p = offset_for_leader_epoch_request::OffsetForLeaderPartition::default();
                p.current_leader_epoch = -1;
                t.partitions = vec![p];
                r.topics = vec![t];
                r
            },
            |_, r| {
                assert_eq!(
                    r.topics[0].partitions[0].error_code,
                    E::UnknownTopicOrPartition.code()
                )
            },
        )
        .await;
        assert!(!w.closed(Duration::from_millis(100)).await);
        n
    });
    let advertised: usize = eddy_kafka::SUPPORTED
        .iter()
        .map(|(_, lo, hi)| (hi - lo + 1) as usize)
        .sum();
    assert_eq!(checked, advertised, "every advertised version was tried");
    server.stop();
}
