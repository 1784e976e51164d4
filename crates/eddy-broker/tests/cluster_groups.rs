//! Group coordinators on the cluster: the classic protocol through `Cluster::group`, offsets
//! in `__consumer_offsets`, coordinator failover, restart, session timeouts, compaction.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use eddy_broker::consumer_protocol::{Assignment, Subscription, CONSUMER_PROTOCOL_TYPE};
use eddy_broker::group::{GroupState, JoinRequest, JoinResult};
use eddy_broker::messages::{GroupOp, GroupReply};
use eddy_broker::offsets::{CommittedOffset, OFFSETS_TOPIC};
use eddy_broker::{BrokerError, Cluster, NewTopic};
use eddy_log::testing::batch_bytes;
use eddy_types::{Acks, BrokerId};

fn join_req(member: &str, topics: &[&str]) -> JoinRequest {
    let sub = Subscription {
        topics: topics.iter().map(|t| t.to_string()).collect(),
        generation: -1,
        ..Default::default()
    };
    JoinRequest {
        member_id: member.into(),
        client_id: "test".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout: Duration::from_secs(10),
        rebalance_timeout: Duration::from_secs(30),
        protocol_type: CONSUMER_PROTOCOL_TYPE.into(),
        protocols: vec![("range".into(), sub.encode().unwrap())],
        require_known_member_id: false,
    }
}

async fn join(c: &Cluster, group: &str, member: &str) -> Result<JoinResult, BrokerError> {
    match c
        .group(group, GroupOp::Join(join_req(member, &["t"])))
        .await?
    {
        GroupReply::Joined(j) => Ok(j),
        other => panic!("{other:?}"),
    }
}

async fn sync(
    c: &Cluster,
    group: &str,
    j: &JoinResult,
    assignments: Option<Vec<(String, Bytes)>>,
) -> Result<Assignment, BrokerError> {
    let op = GroupOp::Sync {
        member: j.member_id.clone(),
        generation: j.generation,
        assignments,
    };
    match c.group(group, op).await? {
        GroupReply::Synced(s) => Ok(Assignment::decode(s.assignment).unwrap()),
        other => panic!("{other:?}"),
    }
}

fn committed(offset: i64) -> CommittedOffset {
    CommittedOffset {
        offset,
        leader_epoch: None,
        metadata: String::new(),
        commit_timestamp: 0,
    }
}

async fn commit(
    c: &Cluster,
    group: &str,
    member: &str,
    generation: i32,
    offsets: &[(u32, i64)],
) -> Result<(), BrokerError> {
    let offsets = offsets
        .iter()
        .map(|(p, o)| ("t".to_string(), *p, committed(*o)))
        .collect();
    c.group(
        group,
        GroupOp::Commit {
            member: member.into(),
            generation,
            offsets,
        },
    )
    .await
    .map(|_| ())
}

async fn fetch_offsets(c: &Cluster, group: &str) -> Vec<(String, u32, i64)> {
    match c
        .group(group, GroupOp::FetchOffsets { partitions: None })
        .await
        .unwrap()
    {
        GroupReply::Offsets(list) => list
            .into_iter()
            .map(|(t, p, o)| (t, p, o.unwrap().offset))
            .collect(),
        other => panic!("{other:?}"),
    }
}

fn assignment(topic: &str, partitions: &[u32]) -> Bytes {
    Assignment {
        partitions: vec![(topic.into(), partitions.to_vec())],
        user_data: None,
    }
    .encode()
    .unwrap()
}

#[test]
fn test_two_members_rebalance_commit_describe_and_leave() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start(dir.path()).await;
        c.create_topic(NewTopic::new("t").partitions(2))
            .await
            .unwrap();
        for p in 0..2 {
            c.produce("t", p, batch_bytes(5, 1, 8), Acks::All)
                .await
                .unwrap();
        }
        // The first member waits out the initial rebalance delay (3 s), then leads alone.
        let t0 = tokio::time::Instant::now();
        let a = join(&c, "g", "").await.unwrap();
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_secs(3) && waited < Duration::from_secs(4),
            "{waited:?}"
        );
        assert_eq!((a.generation, a.leader.as_str()), (1, a.member_id.as_str()));
        assert_eq!(a.members.len(), 1);
        let got = sync(
            &c,
            "g",
            &a,
            Some(vec![(a.member_id.clone(), assignment("t", &[0, 1]))]),
        )
        .await
        .unwrap();
        assert_eq!(got.partitions, vec![("t".to_string(), vec![0, 1])]);
        commit(&c, "g", &a.member_id, 1, &[(0, 2), (1, 5)])
            .await
            .unwrap();

        // A second member: the first learns of the rebalance from its heartbeat, rejoins.
        let c2 = c.clone();
        let b_join = tokio::spawn(async move { join(&c2, "g", "").await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let hb = c
            .group(
                "g",
                GroupOp::Heartbeat {
                    member: a.member_id.clone(),
                    generation: 1,
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(hb, BrokerError::RebalanceInProgress(_)), "{hb}");
        let a2 = join(&c, "g", &a.member_id).await.unwrap();
        let b = b_join.await.unwrap().unwrap();
        assert_eq!((a2.generation, b.generation), (2, 2));
        assert_eq!(a2.members.len(), 2);
        // Stale generation and unknown member are refused with Kafka's errors.
        let stale = commit(&c, "g", &a.member_id, 1, &[(0, 3)])
            .await
            .unwrap_err();
        assert!(
            matches!(
                stale,
                BrokerError::IllegalGeneration {
                    got: 1,
                    current: 2,
                    ..
                }
            ),
            "{stale}"
        );
        let unknown = c
            .group(
                "g",
                GroupOp::Heartbeat {
                    member: "nobody".into(),
                    generation: 2,
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(unknown, BrokerError::UnknownMember { .. }),
            "{unknown}"
        );

        let (leader, follower) = if a2.leader == a2.member_id {
            (&a2, &b)
        } else {
            (&b, &a2)
        };
        let c3 = c.clone();
        let f = follower.clone();
        let follower_sync = tokio::spawn(async move { sync(&c3, "g", &f, None).await });
        let plan = vec![
            (leader.member_id.clone(), assignment("t", &[0])),
            (follower.member_id.clone(), assignment("t", &[1])),
        ];
        let mine = sync(&c, "g", leader, Some(plan)).await.unwrap();
        let theirs = follower_sync.await.unwrap().unwrap();
        assert_eq!(mine.partitions, vec![("t".to_string(), vec![0])]);
        assert_eq!(theirs.partitions, vec![("t".to_string(), vec![1])]);

        let d = c.describe_group("g").await.unwrap();
        assert_eq!((d.state, d.generation), (GroupState::Stable, 2));
        assert_eq!(d.members.len(), 2);
        let lags: Vec<_> = d
            .partitions
            .iter()
            .map(|p| {
                (
                    p.partition,
                    p.member_id.is_some(),
                    p.committed,
                    p.log_end,
                    p.lag,
                )
            })
            .collect();
        assert_eq!(
            lags,
            vec![
                (0, true, Some(2), Some(5), Some(3)),
                (1, true, Some(5), Some(5), Some(0))
            ]
        );
        assert_eq!(
            c.list_groups().await.unwrap(),
            vec![("g".to_string(), GroupState::Stable)]
        );

        // Deleting a group with members is refused; once both leave it goes, offsets too.
        let busy = c.delete_group("g").await.unwrap_err();
        assert!(matches!(busy, BrokerError::NonEmptyGroup(_)), "{busy}");
        c.group(
            "g",
            GroupOp::Leave {
                members: vec![a2.member_id.clone(), b.member_id.clone()],
            },
        )
        .await
        .unwrap();
        assert_eq!(
            c.describe_group("g").await.unwrap().state,
            GroupState::Empty
        );
        c.delete_group("g").await.unwrap();
        assert!(fetch_offsets(&c, "g").await.is_empty());
        assert!(c.list_groups().await.unwrap().is_empty());
        c.shutdown().await;
    });
}

#[test]
fn test_a_silent_member_is_removed_after_its_session_timeout() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let mut cfg = config(dir.path());
        cfg.group.initial_rebalance_delay = Duration::ZERO;
        let c = Cluster::start(cfg).await.unwrap();
        let a = join(&c, "g", "").await.unwrap();
        sync(&c, "g", &a, Some(vec![])).await.unwrap();
        // Heartbeats keep it for longer than one session...
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_secs(4)).await;
            c.group(
                "g",
                GroupOp::Heartbeat {
                    member: a.member_id.clone(),
                    generation: a.generation,
                },
            )
            .await
            .unwrap();
        }
        assert_eq!(c.describe_group("g").await.unwrap().members.len(), 1);
        // ...silence removes it after 10 s.
        tokio::time::sleep(Duration::from_millis(9_900)).await;
        assert_eq!(c.describe_group("g").await.unwrap().members.len(), 1);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let d = c.describe_group("g").await.unwrap();
        assert_eq!((d.state, d.members.len()), (GroupState::Empty, 0));
        let gone = c
            .group(
                "g",
                GroupOp::Heartbeat {
                    member: a.member_id.clone(),
                    generation: a.generation,
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(gone, BrokerError::UnknownMember { .. }), "{gone}");
        c.shutdown().await;
    });
}

#[test]
fn test_offsets_and_groups_survive_a_restart_and_a_coordinator_failover() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.group.initial_rebalance_delay = Duration::ZERO;
    let member = paused(async {
        let c = Cluster::start(cfg.clone()).await.unwrap();
        // A standalone consumer (no member id) commits to an empty group.
        commit(&c, "solo", "", -1, &[(0, 7)]).await.unwrap();
        let a = join(&c, "g", "").await.unwrap();
        sync(
            &c,
            "g",
            &a,
            Some(vec![(a.member_id.clone(), assignment("t", &[0]))]),
        )
        .await
        .unwrap();
        commit(&c, "g", &a.member_id, a.generation, &[(0, 11)])
            .await
            .unwrap();

        // The coordinator's broker dies: another replica of its offsets partition takes over
        // and loads the same state.
        let before = c.coordinator("g").await.unwrap();
        c.stop_broker(before).await.unwrap();
        let after = c.coordinator("g").await.unwrap();

        assert_ne!(before, after);
        assert_eq!(fetch_offsets(&c, "g").await, vec![("t".to_string(), 0, 11)]);
        c.start_broker(before).await.unwrap();
        c.shutdown().await;
        a.member_id
    });
    paused(async {
        let c = Cluster::start(cfg).await.unwrap();
        assert_eq!(fetch_offsets(&c, "g").await, vec![("t".to_string(), 0, 11)]);
        assert_eq!(
            fetch_offsets(&c, "solo").await,
            vec![("t".to_string(), 0, 7)]
        );
        let d = c.describe_group("g").await.unwrap();
        assert_eq!(
            d.members
                .iter()
                .map(|m| m.member_id.clone())
                .collect::<Vec<_>>(),
            vec![member]
        );
        assert_eq!(d.members[0].assignment, vec![("t".to_string(), vec![0])]);
        c.shutdown().await;
    });
}

#[test]
fn test_the_offsets_partition_is_compacted_and_keeps_the_latest_values() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.offsets_compact_after = 50;
    cfg.offsets_partitions = 1;
    paused(async {
        let c = Cluster::start(cfg.clone()).await.unwrap();
        for i in 0..200 {
            commit(&c, "solo", "", -1, &[(0, i), (1, 1000 + i)])
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let leader = c.coordinator("solo").await.unwrap();
        let m = c.metadata();
        let p = m.partition(OFFSETS_TOPIC, 0).unwrap();
        for b in &p.replicas {
            let o = c.replica_log(*b).unwrap().offsets(p.id).unwrap();
            assert!(o.log_end >= 400, "{o:?}");
            assert!(
                o.log_end - o.log_start <= 2 + 50 + 2,
                "broker {b} (leader {leader}): {o:?}"
            );
        }
        assert_eq!(
            fetch_offsets(&c, "solo").await,
            vec![("t".to_string(), 0, 199), ("t".to_string(), 1, 1199)]
        );
        c.shutdown().await;
    });
    paused(async {
        let c = Cluster::start(cfg).await.unwrap();
        assert_eq!(
            fetch_offsets(&c, "solo").await,
            vec![("t".to_string(), 0, 199), ("t".to_string(), 1, 1199)]
        );
        assert!(c.replica_log(BrokerId(0)).is_some());
        c.shutdown().await;
    });
}

async fn commit_standalone(c: &Cluster, group: &str, offsets: &[(&str, u32, i64)]) {
    let offsets = offsets
        .iter()
        .map(|(t, p, o)| (t.to_string(), *p, committed(*o)))
        .collect();
    c.group(
        group,
        GroupOp::Commit {
            member: String::new(),
            generation: -1,
            offsets,
        },
    )
    .await
    .unwrap();
}

/// Both groups of the deletion test hold only their offsets of `t`.
async fn only_offsets_of_t_left(c: &Cluster) {
    assert_eq!(
        fetch_offsets(c, "solo").await,
        vec![("t".to_string(), 0, 7)]
    );
    assert_eq!(
        fetch_offsets(c, "other").await,
        vec![("t".to_string(), 0, 2)]
    );
}

#[test]
fn test_deleting_a_topic_deletes_its_committed_offsets_in_every_group() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    paused(async {
        let c = Cluster::start(cfg.clone()).await.unwrap();
        c.create_topic(NewTopic::new("gone").partitions(2))
            .await
            .unwrap();
        // Two groups (on different offsets partitions, most likely) read both topics.
        commit_standalone(&c, "solo", &[("t", 0, 7), ("gone", 0, 3), ("gone", 1, 4)]).await;
        commit_standalone(&c, "other", &[("gone", 1, 9), ("t", 0, 2)]).await;
        c.delete_topic("gone").await.unwrap();
        // The tombstones are written after the deletion's answer.
        for _ in 0..100 {
            if fetch_offsets(&c, "solo").await.len() == 1
                && fetch_offsets(&c, "other").await.len() == 1
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        only_offsets_of_t_left(&c).await;
        // A topic made again under the name starts with no offsets.
        c.create_topic(NewTopic::new("gone")).await.unwrap();
        assert_eq!(
            fetch_offsets(&c, "solo").await,
            vec![("t".to_string(), 0, 7)]
        );
        c.shutdown().await;
    });
    // The tombstones are in __consumer_offsets: a restart does not bring the offsets back.
    paused(async {
        let c = Cluster::start(cfg).await.unwrap();
        only_offsets_of_t_left(&c).await;
        c.shutdown().await;
    });
}
