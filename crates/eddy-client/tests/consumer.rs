//! The embedded consumer against a real 3-broker cluster on paused time: group rebalances as
//! members join, leave and crash (each partition owned by one member per generation, nothing
//! skipped), session timeouts, a coordinator failover, restarts keeping committed offsets,
//! independent groups, regex subscriptions, manual assignment, seek, pause and resume.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use eddy_broker::group::GroupState;
use eddy_broker::records::encode_batch;
use eddy_broker::{Cluster, NewTopic};
use eddy_client::{
    ClientError, Consumer, ConsumerConfig, ConsumerRecord, OffsetReset, RebalanceListener,
    TopicPartition,
};
use eddy_types::Acks;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Produces `values` to one partition, as one batch.
async fn produce(c: &Cluster, topic: &str, partition: u32, values: &[String]) {
    let records: Vec<(Option<Bytes>, Option<Bytes>)> = values
        .iter()
        .map(|v| (None, Some(Bytes::from(v.clone()))))
        .collect();
    c.produce(
        topic,
        partition,
        encode_batch(&records, 1).unwrap(),
        Acks::All,
    )
    .await
    .unwrap();
}

/// `n` records into each partition of `topic`, valued `<tag>-<partition>-<i>`; answers the
/// values.
async fn produce_round(
    c: &Cluster,
    topic: &str,
    partitions: u32,
    n: usize,
    tag: &str,
) -> Vec<String> {
    let mut all = Vec::new();
    for p in 0..partitions {
        let values: Vec<String> = (0..n).map(|i| format!("{tag}-{p}-{i}")).collect();
        produce(c, topic, p, &values).await;
        all.extend(values);
    }
    all
}

fn value(r: &ConsumerRecord) -> String {
    String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap()
}

fn group_config(group: &str) -> ConsumerConfig {
    let mut c = ConsumerConfig::with_group(group).auto_offset_reset(OffsetReset::Earliest);
    c.session_timeout = Duration::from_secs(10);
    c.heartbeat_interval = Duration::from_secs(1);
    c.auto_commit_interval = Duration::from_secs(1);
    c
}

/// Polls until `n` records arrived or `limit` of (paused) time passed.
async fn poll_n(consumer: &mut Consumer, n: usize, limit: Duration) -> Vec<ConsumerRecord> {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        out.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    }
    out
}

/// How a member task ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// `close()`: commit and leave.
    Close,
    /// Drop without a word, as a crash.
    Crash,
}

/// What member tasks report.
#[derive(Debug)]
enum Event {
    Records(Vec<ConsumerRecord>),
    /// A member's assignment in a generation, once it polled in it.
    Owns(String, i32, Vec<TopicPartition>),
}

/// A group member polling in its own task.
struct Member {
    stop: watch::Sender<Option<Stop>>,
    done: actix_rt::task::JoinHandle<()>,
}

impl Member {
    /// Stops the member and waits until it is closed or dropped.
    async fn stop(self, how: Stop) {
        self.stop.send(Some(how)).unwrap();
        self.done.await.unwrap();
    }
}

/// Starts a group member polling in its own task until told to stop.
fn spawn_member(
    c: &Cluster,
    name: &str,
    config: ConsumerConfig,
    topics: &[&str],
    events: mpsc::UnboundedSender<Event>,
) -> Member {
    let (stop_tx, mut stop_rx) = watch::channel(None);
    let mut consumer = Consumer::new(c, config).unwrap();
    consumer.subscribe(topics.iter().copied()).unwrap();
    let name = name.to_owned();
    let done = actix_rt::spawn(async move {
        let mut reported = None;
        loop {
            if let Some(stop) = *stop_rx.borrow_and_update() {
                match stop {
                    Stop::Close => consumer.close().await.unwrap(),
                    Stop::Crash => drop(consumer),
                }
                return;
            }
            let records = consumer.poll(Duration::from_millis(200)).await.unwrap();
            let (_, generation) = consumer.group_membership();
            if reported != Some(generation) && generation > 0 {
                reported = Some(generation);
                let _ = events.send(Event::Owns(name.clone(), generation, consumer.assignment()));
            }
            if !records.is_empty() {
                let _ = events.send(Event::Records(records));
            }
        }
    });
    Member {
        stop: stop_tx,
        done,
    }
}

/// Collects events until every value in `want` was consumed; panics after `limit`.
async fn collect_until(
    events: &mut mpsc::UnboundedReceiver<Event>,
    want: &BTreeSet<String>,
    got: &mut BTreeMap<String, usize>,
    owners: &mut BTreeMap<i32, BTreeMap<String, Vec<TopicPartition>>>,
    limit: Duration,
) {
    let deadline = Instant::now() + limit;
    while !want.iter().all(|v| got.contains_key(v)) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some(ev)) = tokio::time::timeout(left, events.recv()).await else {
            let missing: Vec<_> = want
                .iter()
                .filter(|v| !got.contains_key(*v))
                .take(5)
                .collect();
            panic!("records not consumed within {limit:?}, e.g. {missing:?}");
        };
        match ev {
            Event::Records(records) => {
                for r in records {
                    *got.entry(value(&r)).or_default() += 1;
                }
            }
            Event::Owns(member, generation, parts) => {
                owners.entry(generation).or_default().insert(member, parts);
            }
        }
    }
}

/// Within each generation, no partition has two owners.
fn assert_exclusive(owners: &BTreeMap<i32, BTreeMap<String, Vec<TopicPartition>>>) {
    for (generation, members) in owners {
        let mut seen = BTreeMap::new();
        for (member, parts) in members {
            for tp in parts {
                if let Some(other) = seen.insert(tp.clone(), member.clone()) {
                    panic!("generation {generation}: {tp:?} owned by {other} and {member}");
                }
            }
        }
    }
}

#[test]
fn test_a_single_new_member_gets_its_first_record_within_the_initial_delay() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start_with_topic(dir.path(), "t", 3).await;
        produce(&c, "t", 1, &["first".into()]).await;
        let mut consumer = Consumer::new(&c, group_config("g")).unwrap();
        consumer.subscribe(["t"]).unwrap();
        let t0 = Instant::now();
        let got = poll_n(&mut consumer, 1, Duration::from_secs(60)).await;
        let waited = t0.elapsed();
        assert_eq!(value(&got[0]), "first");
        // group.initial.rebalance.delay (3 s) plus a few hundred ms at most.
        assert!(
            waited >= Duration::from_secs(3) && waited <= Duration::from_millis(3300),
            "{waited:?}"
        );
        assert_eq!(consumer.assignment().len(), 3);
        consumer.close().await.unwrap();
        c.shutdown().await;
    });
}

#[test]
fn test_members_joining_leaving_and_crashing_share_partitions_and_skip_nothing() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start_with_topic(dir.path(), "t", 6).await;
        let (tx, mut events) = mpsc::unbounded_channel();
        let mut want = BTreeSet::new();
        let mut got = BTreeMap::new();
        let mut owners = BTreeMap::new();
        let limit = Duration::from_secs(120);

        want.extend(produce_round(&c, "t", 6, 5, "r1").await);
        let a = spawn_member(&c, "a", group_config("g"), &["t"], tx.clone());
        collect_until(&mut events, &want, &mut got, &mut owners, limit).await;

        // B and C join: three members, two partitions each.
        let b = spawn_member(&c, "b", group_config("g"), &["t"], tx.clone());
        let cc = spawn_member(&c, "c", group_config("g"), &["t"], tx.clone());
        want.extend(produce_round(&c, "t", 6, 5, "r2").await);
        collect_until(&mut events, &want, &mut got, &mut owners, limit).await;
        let wait_for_members = |n: usize| {
            let c = c.clone();
            async move {
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    let d = c.describe_group("g").await.unwrap();
                    let owned: usize = d
                        .members
                        .iter()
                        .map(|m| m.assignment.iter().map(|(_, ps)| ps.len()).sum::<usize>())
                        .sum();
                    if d.members.len() == n && owned == 6 && d.state == GroupState::Stable {
                        return d;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "group never settled at {n}: {d:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let d = wait_for_members(3).await;
        for m in &d.members {
            assert_eq!(
                m.assignment.iter().map(|(_, ps)| ps.len()).sum::<usize>(),
                2
            );
        }

        // A leaves cleanly; then the coordinator's broker fails while records keep coming.
        a.stop(Stop::Close).await;
        wait_for_members(2).await;
        want.extend(produce_round(&c, "t", 6, 5, "r3").await);
        let coordinator = c.coordinator("g").await.unwrap();
        c.stop_broker(coordinator).await.unwrap();
        want.extend(produce_round(&c, "t", 6, 5, "r4").await);
        collect_until(&mut events, &want, &mut got, &mut owners, limit).await;
        assert_ne!(c.coordinator("g").await.unwrap(), coordinator);

        // B crashes: after its session times out, C owns everything, from B's last commits.
        b.stop(Stop::Crash).await;
        want.extend(produce_round(&c, "t", 6, 5, "r5").await);
        collect_until(&mut events, &want, &mut got, &mut owners, limit).await;
        let d = wait_for_members(1).await;
        assert_eq!(
            d.members[0].assignment,
            vec![("t".to_string(), (0..6).collect::<Vec<u32>>())]
        );

        assert_exclusive(&owners);
        assert!(owners.len() >= 4, "generations seen: {:?}", owners.keys());
        // Every record arrived at least once; none beyond what was produced.
        assert_eq!(got.keys().cloned().collect::<BTreeSet<_>>(), want);
        cc.stop(Stop::Close).await;
        c.start_broker(coordinator).await.unwrap();
        c.shutdown().await;
    });
}

#[test]
fn test_a_silent_member_is_removed_after_its_session_timeout() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start_with_topic(dir.path(), "t", 4).await;
        let (tx, mut events) = mpsc::unbounded_channel();
        let a = spawn_member(&c, "a", group_config("g"), &["t"], tx.clone());
        let b = spawn_member(&c, "b", group_config("g"), &["t"], tx);
        // Wait for the generation where both own two partitions.
        let mut owners: BTreeMap<i32, BTreeMap<String, Vec<TopicPartition>>> = BTreeMap::new();
        while !owners.values().any(|m| m.len() == 2) {
            if let Some(Event::Owns(m, g, p)) = events.recv().await {
                owners.entry(g).or_default().insert(m, p);
            }
        }
        let t0 = Instant::now();
        b.stop(Stop::Crash).await;
        loop {
            if let Some(Event::Owns(m, _, p)) = events.recv().await {
                if m == "a" && p.len() == 4 {
                    break;
                }
            }
        }
        // Removed once its 10 s session expired, not before (and promptly after).
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_secs(9) && waited < Duration::from_secs(15),
            "{waited:?}"
        );
        assert_exclusive(&owners);
        a.stop(Stop::Close).await;
        c.shutdown().await;
    });
}

#[test]
fn test_a_restart_keeps_committed_offsets() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start_with_topic(dir.path(), "t", 1).await;
        let first: Vec<String> = (0..10).map(|i| format!("v{i}")).collect();
        produce(&c, "t", 0, &first).await;
        let mut settings = group_config("g");
        settings.enable_auto_commit = false;
        let mut consumer = Consumer::new(&c, settings.clone()).unwrap();
        consumer.subscribe(["t"]).unwrap();
        let got = poll_n(&mut consumer, 10, Duration::from_secs(30)).await;
        assert_eq!(got.len(), 10);
        consumer.commit_sync().await.unwrap();
        assert_eq!(
            consumer.committed(&[("t".into(), 0)]).await.unwrap(),
            vec![Some(10)]
        );
        consumer.close().await.unwrap();
        produce(&c, "t", 0, &["v10".into(), "v11".into()]).await;
        c.shutdown().await;
        drop(c);

        let c = Cluster::start(config(dir.path())).await.unwrap();
        let mut consumer = Consumer::new(&c, settings).unwrap();
        consumer.subscribe(["t"]).unwrap();
        let got = poll_n(&mut consumer, 2, Duration::from_secs(30)).await;
        let offsets: Vec<u64> = got.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![10, 11], "resumed from the committed offset");
        drop(consumer);
        c.shutdown().await;
    });
}

#[test]
fn test_independent_groups_each_receive_every_record() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start_with_topic(dir.path(), "room", 3).await;
        let want: BTreeSet<String> = produce_round(&c, "room", 3, 4, "m")
            .await
            .into_iter()
            .collect();
        let mut consumers = Vec::new();
        for user in ["alice", "bob", "carol"] {
            let mut consumer = Consumer::new(&c, group_config(user)).unwrap();
            consumer.subscribe(["room"]).unwrap();
            consumers.push(consumer);
        }
        for consumer in &mut consumers {
            let got: BTreeSet<String> = poll_n(consumer, want.len(), Duration::from_secs(30))
                .await
                .iter()
                .map(value)
                .collect();
            assert_eq!(got, want);
        }
        let groups: Vec<String> = c
            .list_groups()
            .await
            .unwrap()
            .into_iter()
            .map(|(g, _)| g)
            .collect();
        assert_eq!(groups, vec!["alice", "bob", "carol"]);
        for consumer in consumers {
            consumer.close().await.unwrap();
        }
        c.shutdown().await;
    });
}

/// Records the listener calls.
#[derive(Debug, Clone, Default)]
struct Calls(Arc<Mutex<Vec<String>>>);

impl RebalanceListener for Calls {
    fn on_revoked(&mut self, partitions: &[TopicPartition]) {
        self.0
            .lock()
            .unwrap()
            .push(format!("revoked {partitions:?}"));
    }
    fn on_assigned(&mut self, partitions: &[TopicPartition]) {
        self.0
            .lock()
            .unwrap()
            .push(format!("assigned {partitions:?}"));
    }
    fn on_lost(&mut self, partitions: &[TopicPartition]) {
        self.0.lock().unwrap().push(format!("lost {partitions:?}"));
    }
}

#[test]
fn test_a_pattern_subscription_picks_up_new_matching_topics() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start_with_topic(dir.path(), "user_alice", 2).await;
        c.create_topic(NewTopic::new("other").partitions(1))
            .await
            .unwrap();
        produce(&c, "user_alice", 0, &["to alice".into()]).await;
        produce(&c, "other", 0, &["elsewhere".into()]).await;
        let mut consumer = Consumer::new(&c, group_config("bot")).unwrap();
        let calls = Calls::default();
        consumer.set_rebalance_listener(calls.clone());
        consumer.subscribe_pattern("user_.*").unwrap();
        let got = poll_n(&mut consumer, 1, Duration::from_secs(30)).await;
        assert_eq!(got.iter().map(value).collect::<Vec<_>>(), vec!["to alice"]);

        c.create_topic(NewTopic::new("user_bob").partitions(2))
            .await
            .unwrap();
        produce(&c, "user_bob", 1, &["to bob".into()]).await;
        let got = poll_n(&mut consumer, 1, Duration::from_secs(30)).await;
        assert_eq!(got.iter().map(value).collect::<Vec<_>>(), vec!["to bob"]);
        let mut assignment = consumer.assignment();
        assignment.sort();
        assert_eq!(
            assignment,
            vec![
                ("user_alice".into(), 0),
                ("user_alice".into(), 1),
                ("user_bob".into(), 0),
                ("user_bob".into(), 1)
            ]
        );
        assert_eq!(
            *calls.0.lock().unwrap(),
            vec![
                r#"assigned [("user_alice", 0), ("user_alice", 1)]"#.to_string(),
                r#"revoked [("user_alice", 0), ("user_alice", 1)]"#.to_string(),
                r#"assigned [("user_alice", 0), ("user_alice", 1), ("user_bob", 0), ("user_bob", 1)]"#.to_string(),
            ]
        );
        // Nothing is read twice across the rebalance: the position was committed first.
        assert!(consumer
            .poll(Duration::from_secs(2))
            .await
            .unwrap()
            .is_empty());
        assert!(matches!(
            consumer.subscribe_pattern("(unclosed"),
            Err(ClientError::InvalidConfig(_))
        ));
        consumer.close().await.unwrap();
        c.shutdown().await;
    });
}

#[test]
fn test_manual_assignment_seek_pause_resume_and_offset_reset() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start_with_topic(dir.path(), "t", 2).await;
        let values: Vec<String> = (0..10).map(|i| format!("v{i}")).collect();
        produce(&c, "t", 0, &values).await;
        produce(&c, "t", 1, &values).await;

        // No group: earliest reads from 0.
        let mut plain = Consumer::new(
            &c,
            ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest),
        )
        .unwrap();
        plain.assign([("t".to_string(), 0)]).unwrap();
        let got = poll_n(&mut plain, 10, Duration::from_secs(10)).await;
        assert_eq!(
            got.iter().map(|r| r.offset).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        plain.seek("t", 0, 7).unwrap();
        let got = poll_n(&mut plain, 3, Duration::from_secs(10)).await;
        assert_eq!(
            got.iter().map(|r| r.offset).collect::<Vec<_>>(),
            vec![7, 8, 9]
        );
        assert!(matches!(
            plain.seek("t", 1, 0),
            Err(ClientError::NotAssigned { .. })
        ));
        assert!(matches!(
            plain.subscribe(["t"]),
            Err(ClientError::InvalidConfig(_))
        ));

        // Out of range: reset to the earliest offset.
        plain.seek("t", 0, 1_000).unwrap();
        let got = poll_n(&mut plain, 10, Duration::from_secs(10)).await;
        assert_eq!(got.first().map(|r| r.offset), Some(0));

        // Pause and resume, with max.poll.records bounding each poll.
        let mut config =
            ConsumerConfig::with_group("manual").auto_offset_reset(OffsetReset::Earliest);
        config.max_poll_records = 4;
        config.enable_auto_commit = false;
        let mut m = Consumer::new(&c, config).unwrap();
        m.assign([("t".to_string(), 0), ("t".to_string(), 1)])
            .unwrap();
        assert!(matches!(
            m.subscribe(["t"]),
            Err(ClientError::IllegalState(_))
        ));
        m.pause(&[("t".into(), 1)]).unwrap();
        let got = poll_n(&mut m, 10, Duration::from_secs(10)).await;
        assert!(
            got.iter().all(|r| r.partition == 0),
            "paused partition read"
        );
        assert_eq!(got.len(), 10, "polls of at most four records");
        assert_eq!(m.paused(), vec![("t".to_string(), 1)]);
        assert!(m.poll(Duration::from_secs(1)).await.unwrap().is_empty());
        m.resume(&[("t".into(), 1)]).unwrap();
        let got = poll_n(&mut m, 10, Duration::from_secs(10)).await;
        assert_eq!(got.len(), 10);
        assert!(got.iter().all(|r| r.partition == 1));
        // A standalone consumer commits to its group with no member id.
        m.commit_sync().await.unwrap();
        assert_eq!(
            m.committed(&[("t".into(), 0), ("t".into(), 1)])
                .await
                .unwrap(),
            vec![Some(10), Some(10)]
        );
        let handle = m.commit_async().unwrap();
        handle.await.unwrap();

        // latest: only what comes after; none: an error without a committed offset.
        let mut latest = Consumer::new(&c, ConsumerConfig::default()).unwrap();
        latest.assign([("t".to_string(), 0)]).unwrap();
        assert!(latest
            .poll(Duration::from_millis(300))
            .await
            .unwrap()
            .is_empty());
        produce(&c, "t", 0, &["new".into()]).await;
        let got = poll_n(&mut latest, 1, Duration::from_secs(10)).await;
        assert_eq!(got.iter().map(value).collect::<Vec<_>>(), vec!["new"]);
        let mut none = Consumer::new(
            &c,
            ConsumerConfig::with_group("fresh").auto_offset_reset(OffsetReset::None),
        )
        .unwrap();
        none.assign([("t".to_string(), 0)]).unwrap();
        assert!(matches!(
            none.poll(Duration::from_millis(100)).await,
            Err(ClientError::NoOffset { .. })
        ));
        c.shutdown().await;
    });
}

#[test]
fn test_a_member_that_stops_polling_leaves_and_its_late_commit_fails() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start_with_topic(dir.path(), "t", 2).await;
        produce_round(&c, "t", 2, 3, "x").await;
        let mut config = group_config("g");
        config.enable_auto_commit = false;
        config.max_poll_interval = Duration::from_secs(20);
        let mut consumer = Consumer::new(&c, config).unwrap();
        let calls = Calls::default();
        consumer.set_rebalance_listener(calls.clone());
        consumer.subscribe(["t"]).unwrap();
        assert_eq!(
            poll_n(&mut consumer, 6, Duration::from_secs(30))
                .await
                .len(),
            6
        );
        // Processing takes longer than max.poll.interval: the heartbeat task leaves.
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(c.describe_group("g").await.unwrap().members.is_empty());
        assert!(matches!(
            consumer.commit_sync().await,
            Err(ClientError::CommitFailed(_))
        ));
        // The next poll rejoins (partitions lost, not revoked) and reads them again.
        let again = poll_n(&mut consumer, 6, Duration::from_secs(30)).await;
        assert_eq!(again.len(), 6, "uncommitted records are delivered again");
        let calls = calls.0.lock().unwrap().clone();
        assert!(calls[1].starts_with("lost"), "{calls:?}");
        consumer.close().await.unwrap();
        c.shutdown().await;
    });
}

#[test]
fn test_a_poll_that_returns_early_keeps_the_other_fetches_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start_with_topic(dir.path(), "t", 3).await;
        let values: Vec<String> = (0..5).map(|i| format!("v{i}")).collect();
        for p in 0..3 {
            produce(&c, "t", p, &values).await;
        }
        // One partition's leader reads slowly, as from a cold disk.
        let leader = c.metadata().partition("t", 2).unwrap().leader.unwrap();
        let others: BTreeSet<_> = (0..2)
            .map(|p| c.metadata().partition("t", p).unwrap().leader.unwrap())
            .collect();
        assert!(!others.contains(&leader), "partitions spread over brokers");
        let slow = c.replica_log(leader).unwrap();
        slow.slow_reads(Duration::from_millis(300));

        let mut consumer = Consumer::new(
            &c,
            ConsumerConfig::default().auto_offset_reset(OffsetReset::Earliest),
        )
        .unwrap();
        consumer
            .assign((0..3).map(|p| ("t".to_string(), p)))
            .unwrap();
        let got = poll_n(&mut consumer, 15, Duration::from_secs(10)).await;
        let mut per_partition = BTreeMap::new();
        for r in &got {
            *per_partition.entry(r.partition).or_insert(0) += 1;
        }
        assert_eq!(per_partition, BTreeMap::from([(0, 5), (1, 5), (2, 5)]));
        // The first poll returned with the fast partitions' records; the slow read went on,
        // and a later poll took its answer rather than read it again.
        assert_eq!(slow.slowed_reads(), 1, "the slow partition was read twice");
        c.shutdown().await;
    });
}
