//! Replication, ISR changes, elections and failover, run on paused time (deterministic).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use eddy_broker::{BrokerError, NewTopic};
use eddy_log::testing::batch_bytes;
use eddy_log::{AppendMode, Stamped};
use eddy_types::{Acks, BrokerId, ClassifyError, ErrorKind};

const B0: BrokerId = BrokerId(0);
const B1: BrokerId = BrokerId(1);
const B2: BrokerId = BrokerId(2);

#[test]
fn test_acks_all_is_answered_once_every_isr_replica_has_the_records() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start(dir.path()).await;
        c.create_topic(NewTopic::new("t").partitions(3))
            .await
            .unwrap();
        let r = c
            .produce("t", 1, batch_bytes(4, 10, 8), Acks::All)
            .await
            .unwrap();
        assert_eq!((r.base_offset, r.last_offset), (0, 3));
        // Answered means committed: all three replicas hold the records already.
        for b in 0..3 {
            assert_eq!(replica_contents(&c, b, "t", 1).len(), 4, "broker {b}");
        }
        let f = c.fetch("t", 1, 0, 1 << 20).await.unwrap();
        assert_eq!(f.high_watermark, 4);
        assert_eq!(offsets_and_timestamps(&f.records).len(), 4);
        // acks=1 is answered at once; consumers see it only when replicated.
        let r = c
            .produce("t", 1, batch_bytes(2, 20, 8), Acks::Leader)
            .await
            .unwrap();
        assert_eq!(r.base_offset, 4);
        settle(Duration::from_secs(1)).await;
        let f = c.fetch("t", 1, 4, 1 << 20).await.unwrap();
        assert_eq!((f.high_watermark, f.next_offset), (6, 6));
        // acks=0 gets no offsets.
        let r = c
            .produce("t", 1, batch_bytes(1, 30, 8), Acks::None)
            .await
            .unwrap();
        assert_eq!(r.base_offset, -1);
        let snap = c.observe_partition("t", 1).await.unwrap();
        assert_eq!(snap.replication.isr, vec![1, 2, 0]);
        c.shutdown().await;
    });
}

#[test]
fn test_consumers_never_see_past_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start(dir.path()).await;
        c.create_topic(NewTopic::new("t").replication_factor(3))
            .await
            .unwrap();
        // With both followers stopped, the ISR shrinks to the leader and its appends commit
        // alone; before that, an acks=1 append sits above the high watermark.
        let leader = c.metadata().partition("t", 0).unwrap().leader.unwrap();
        assert_eq!(leader, B0);
        c.produce("t", 0, batch_bytes(3, 1, 8), Acks::All)
            .await
            .unwrap();
        c.stop_broker(B1).await.unwrap();
        c.stop_broker(B2).await.unwrap();
        let p = c.metadata().partition("t", 0).unwrap().clone();
        assert_eq!(p.isr, vec![B0], "stopped brokers leave the ISR");
        let r = c
            .produce("t", 0, batch_bytes(2, 2, 8), Acks::All)
            .await
            .unwrap();
        assert_eq!(r.last_offset, 4);
        let f = c.fetch("t", 0, 0, 1 << 20).await.unwrap();
        assert_eq!(f.high_watermark, 5);
        c.shutdown().await;
    });
}

#[test]
fn test_acks_all_refused_below_min_insync_replicas() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start(dir.path()).await;
        c.create_topic(NewTopic::new("strict").min_insync_replicas(3))
            .await
            .unwrap();
        c.produce("strict", 0, batch_bytes(1, 1, 8), Acks::All)
            .await
            .unwrap();
        c.stop_broker(B2).await.unwrap();
        let err = c
            .produce("strict", 0, batch_bytes(1, 2, 8), Acks::All)
            .await
            .unwrap_err();
        assert!(
            matches!(err, BrokerError::NotEnoughReplicas { isr: 2, min: 3, .. }),
            "{err}"
        );
        // Nothing was written by the refused request; acks=1 still works.
        let r = c
            .produce("strict", 0, batch_bytes(1, 3, 8), Acks::Leader)
            .await
            .unwrap();
        assert_eq!(r.base_offset, 1);
        c.shutdown().await;
    });
}

#[test]
fn test_leader_failover_keeps_every_acked_record_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start(dir.path()).await;
        c.create_topic(NewTopic::new("orders").min_insync_replicas(2))
            .await
            .unwrap();
        let first_leader = c.metadata().partition("orders", 0).unwrap().leader.unwrap();
        // A stream of acks=all produces, several in flight at a time; the leader's broker
        // stops in the middle of it.
        let mut acked: Vec<(i64, i64)> = Vec::new(); // (offset, batch timestamp)
        let mut failed = 0;
        for round in 0..40i64 {
            let mut inflight = Vec::new();
            for k in 0..4i64 {
                // Batch timestamps are ts and ts + 1; ts identifies the batch.
                let ts = (round * 10 + k + 1) * 10;
                let c2 = c.clone();
                inflight.push((
                    ts,
                    actix_rt::spawn(async move {
                        c2.produce("orders", 0, batch_bytes(2, ts, 16), Acks::All)
                            .await
                    }),
                ));
            }
            if round == 20 {
                c.stop_broker(first_leader).await.unwrap();
            }
            for (ts, h) in inflight {
                match h.await.unwrap() {
                    Ok(r) => acked.push((r.base_offset, ts)),
                    Err(e) => {
                        assert!(
                            matches!(
                                e,
                                BrokerError::LeaderChanged { .. } | BrokerError::Stopped(_)
                            ),
                            "{e}"
                        );
                        failed += 1;
                    }
                }
            }
        }
        let p = c.metadata().partition("orders", 0).unwrap().clone();
        assert_ne!(p.leader, Some(first_leader));
        assert_eq!(p.leader_epoch, 1);
        assert!(
            acked.len() >= 150,
            "only {} acked, {failed} failed",
            acked.len()
        );

        // Every acknowledged batch is there exactly once, at the offset it was given, in order.
        let f = c.fetch("orders", 0, 0, usize::MAX).await.unwrap();
        let log = offsets_and_timestamps(&f.records);
        for (offset, ts) in &acked {
            let hits: Vec<_> = log.iter().filter(|(_, t)| t == ts).collect();
            assert_eq!(hits.len(), 1, "batch {ts}");
            assert_eq!(hits[0].0, *offset, "batch {ts} moved");
        }
        let mut by_offset = acked.clone();
        by_offset.sort();
        assert!(
            by_offset.windows(2).all(|w| w[0].1 < w[1].1),
            "acked order kept"
        );
        // The surviving replicas agree.
        let survivors: Vec<u32> = p.isr.iter().map(|b| b.0).collect();
        let a = replica_contents(&c, survivors[0], "orders", 0);
        let b = replica_contents(&c, survivors[1], "orders", 0);
        let hw = f.high_watermark as usize;
        assert_eq!(a[..hw], b[..hw]);
        c.shutdown().await;
    });
}

#[test]
fn test_restarted_broker_truncates_its_divergent_tail_and_rejoins_the_isr() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start(dir.path()).await;
        c.create_topic(NewTopic::new("t")).await.unwrap();
        c.produce("t", 0, batch_bytes(10, 1, 8), Acks::All)
            .await
            .unwrap();
        c.stop_broker(B0).await.unwrap();
        // Records broker 0 appended as leader but never replicated (acks=1 before a crash).
        let pid = c.metadata().partition("t", 0).unwrap().id;
        let b0_log = c.replica_log(B0).unwrap();
        b0_log
            .append_one(
                pid,
                batch_bytes(3, 99, 8),
                AppendMode::Leader { leader_epoch: 0 },
            )
            .await
            .unwrap();
        // Meanwhile the new leader takes more.
        c.produce("t", 0, batch_bytes(5, 2, 8), Acks::All)
            .await
            .unwrap();
        let p = c.metadata().partition("t", 0).unwrap().clone();
        assert_eq!(
            (p.leader, p.leader_epoch, p.isr.clone()),
            (Some(B1), 1, vec![B1, B2])
        );

        c.start_broker(B0).await.unwrap();
        settle(Duration::from_secs(2)).await;
        let leader = replica_contents(&c, 1, "t", 0);
        let back = replica_contents(&c, 0, "t", 0);
        assert_eq!(
            back, leader,
            "the divergent tail is gone and the rest copied"
        );
        assert!(back.iter().all(|(_, ts)| *ts < 99));
        let p = c.metadata().partition("t", 0).unwrap().clone();
        assert_eq!(
            p.isr,
            vec![B0, B1, B2],
            "caught up, back in the ISR (replica order)"
        );
        c.shutdown().await;
    });
}

#[test]
fn test_a_leader_append_failing_after_its_followers_copied_it_gets_a_new_epoch_and_they_cut_it() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start(dir.path()).await;
        c.create_topic(NewTopic::new("t")).await.unwrap();
        c.produce("t", 0, batch_bytes(4, 1, 8), Acks::All)
            .await
            .unwrap();
        // The followers wait at the leader for more (parked fetches).
        settle(Duration::from_millis(200)).await;
        let p = c.metadata().partition("t", 0).unwrap().clone();
        let leader = p.leader.unwrap();
        let leader_log = c.replica_log(leader).unwrap();
        leader_log.fail_commits(true);
        let err = c
            .produce("t", 0, batch_bytes(3, 99, 8), Acks::All)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::StorageFull, "{err}");
        settle(Duration::from_secs(1)).await;
        // The leader handed the batch to its followers with its own commit, which failed:
        // they hold records the leader does not.
        let followers: Vec<u32> = (0..3).filter(|b| BrokerId(*b) != leader).collect();
        assert!(
            followers
                .iter()
                .any(|b| replica_contents(&c, *b, "t", 0).len() == 7),
            "no follower copied the failed append before the leader's commit failed"
        );
        assert_eq!(replica_contents(&c, leader.0, "t", 0).len(), 4);
        // Until the leader has a new epoch, produce is refused with the storage error (the
        // controller cannot record the epoch in the failed directory either), and consumers
        // see nothing past what was committed.
        let again = c
            .produce("t", 0, batch_bytes(1, 98, 8), Acks::All)
            .await
            .unwrap_err();
        assert_eq!(again.kind(), ErrorKind::StorageFull, "{again}");
        let f = c.fetch("t", 0, 0, 1 << 20).await.unwrap();
        assert_eq!(f.high_watermark, 4);

        // The disk works again: a new epoch, same leader; the followers cut what the leader
        // lacks before fetching under it; produce goes on at offset 4.
        leader_log.fail_commits(false);
        settle(Duration::from_secs(2)).await;
        let q = c.metadata().partition("t", 0).unwrap().clone();
        assert_eq!(
            (q.leader, q.leader_epoch),
            (Some(leader), p.leader_epoch + 1)
        );
        let r = c
            .produce("t", 0, batch_bytes(2, 5, 8), Acks::All)
            .await
            .unwrap();
        assert_eq!(r.base_offset, 4);
        let on_leader = replica_contents(&c, leader.0, "t", 0);
        assert_eq!(on_leader.len(), 6);
        assert!(on_leader.iter().all(|(_, ts)| *ts < 98));
        for b in followers {
            assert_eq!(replica_contents(&c, b, "t", 0), on_leader, "broker {b}");
        }
        c.shutdown().await;
    });
}

#[test]
fn test_after_a_restart_a_follower_ahead_of_its_leader_cuts_what_the_leader_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (leader, follower, epoch) = paused(async {
        let c = start(dir.path()).await;
        c.create_topic(NewTopic::new("t")).await.unwrap();
        c.produce("t", 0, batch_bytes(4, 1, 8), Acks::All)
            .await
            .unwrap();
        let p = c.metadata().partition("t", 0).unwrap().clone();
        let leader = p.leader.unwrap();
        let follower = *p.replicas.iter().find(|b| **b != leader).unwrap();
        // What a crash can leave: the follower committed a batch its leader had handed it,
        // and the leader's own commit of it was lost.
        c.set_replica_fetching(follower, false).await.unwrap();
        let handed = Stamped::new(batch_bytes(3, 99, 8), 4, p.leader_epoch).unwrap();
        c.replica_log(follower)
            .unwrap()
            .append_stamped(p.id, handed)
            .await
            .unwrap();
        assert_eq!(replica_contents(&c, follower.0, "t", 0).len(), 7);
        c.shutdown().await;
        settle(Duration::from_millis(100)).await;
        (leader, follower, p.leader_epoch)
    });
    paused(async {
        let c = start(dir.path()).await;
        // Same leader, new epoch: the follower cuts its tail before fetching, whatever the
        // leader writes at those offsets first.
        let p = c.metadata().partition("t", 0).unwrap().clone();
        assert_eq!((p.leader, p.leader_epoch), (Some(leader), epoch + 1));
        let r = c
            .produce("t", 0, batch_bytes(2, 5, 8), Acks::All)
            .await
            .unwrap();
        assert_eq!(r.base_offset, 4);
        settle(Duration::from_secs(2)).await;
        let on_leader = replica_contents(&c, leader.0, "t", 0);
        assert_eq!(on_leader.len(), 6);
        assert_eq!(replica_contents(&c, follower.0, "t", 0), on_leader);
        c.shutdown().await;
    });
}

#[test]
fn test_last_isr_member_leads_again_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start(dir.path()).await;
        c.create_topic(NewTopic::new("t").replication_factor(2))
            .await
            .unwrap();
        let p = c.metadata().partition("t", 0).unwrap().clone();
        let (leader, follower) = (p.replicas[0], p.replicas[1]);
        c.produce("t", 0, batch_bytes(1, 1, 8), Acks::All)
            .await
            .unwrap();
        c.stop_broker(follower).await.unwrap();
        c.produce("t", 0, batch_bytes(1, 2, 8), Acks::All)
            .await
            .unwrap();
        c.stop_broker(leader).await.unwrap();
        let p = c.metadata().partition("t", 0).unwrap().clone();
        assert_eq!(
            (p.leader, p.isr.clone()),
            (None, vec![leader]),
            "offline, not unclean"
        );
        // The out-of-sync follower cannot lead; the last ISR member can.
        c.start_broker(follower).await.unwrap();
        assert_eq!(c.metadata().partition("t", 0).unwrap().leader, None);
        c.start_broker(leader).await.unwrap();
        settle(Duration::from_secs(1)).await;
        let f = c.fetch("t", 0, 0, 1 << 20).await.unwrap();
        assert_eq!(f.high_watermark, 2, "nothing acknowledged was lost");
        assert_eq!(replica_contents(&c, follower.0, "t", 0).len(), 2);
        c.shutdown().await;
    });
}

#[test]
fn test_silent_broker_is_fenced_after_its_session_timeout() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start(dir.path()).await;
        c.create_topic(NewTopic::new("t").partitions(3))
            .await
            .unwrap();
        // Heartbeats keep everyone alive through a long quiet time.
        settle(Duration::from_secs(60)).await;
        assert_eq!(c.metadata().alive.len(), 3);
        assert!(c.metadata().topics["t"]
            .partitions
            .iter()
            .all(|p| p.isr.len() == 3));
        c.shutdown().await;
    });
}

#[test]
fn test_a_follower_cut_off_from_its_leader_leaves_the_isr_after_the_lag_time_and_rejoins() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let mut cfg = config(dir.path());
        cfg.replica_lag_time_max = Duration::from_secs(10);
        let c = eddy_broker::Cluster::start(cfg).await.unwrap();
        c.create_topic(NewTopic::new("t").replication_factor(3))
            .await
            .unwrap();
        assert_eq!(c.metadata().partition("t", 0).unwrap().leader, Some(B0));
        c.produce("t", 0, batch_bytes(2, 1, 8), Acks::All)
            .await
            .unwrap();
        // B2 stays up and keeps its session with the controller, but its follower stops
        // fetching: only the lag can take it out of the ISR.
        c.set_replica_fetching(B2, false).await.unwrap();
        let acked = c.produce("t", 0, batch_bytes(3, 2, 8), Acks::Leader);
        let acked = acked.await.unwrap();
        assert_eq!(acked.base_offset, 2);
        settle(Duration::from_secs(5)).await;
        let p = c.metadata().partition("t", 0).unwrap().clone();
        assert_eq!(
            p.isr,
            vec![B0, B1, B2],
            "within the lag time it stays in sync"
        );
        let f = c.fetch("t", 0, 0, 1 << 20).await.unwrap();
        assert_eq!(
            f.high_watermark, 2,
            "the lagging member holds the high watermark"
        );

        settle(Duration::from_secs(8)).await;
        let p = c.metadata().partition("t", 0).unwrap().clone();
        assert_eq!(
            p.isr,
            vec![B0, B1],
            "past replica_lag_time_max it leaves the ISR"
        );
        assert!(c.metadata().alive.contains(&B2), "B2 itself is still up");
        let f = c.fetch("t", 0, 0, 1 << 20).await.unwrap();
        assert_eq!(f.high_watermark, 5, "the shrunk ISR commits what it holds");
        // acks=all now waits only for B0 and B1.
        let r = c
            .produce("t", 0, batch_bytes(1, 3, 8), Acks::All)
            .await
            .unwrap();
        assert_eq!(r.base_offset, 5);
        // (A long-poll fetch already in flight when the link was cut may have brought offsets
        // 2..5, but none after.)
        assert!(
            replica_contents(&c, 2, "t", 0).len() < 6,
            "B2 really is behind: it lacks the record acknowledged without it"
        );

        c.set_replica_fetching(B2, true).await.unwrap();
        settle(Duration::from_secs(3)).await;
        let p = c.metadata().partition("t", 0).unwrap().clone();
        assert_eq!(p.isr.len(), 3, "caught up, it rejoins: {:?}", p.isr);
        assert_eq!(
            replica_contents(&c, 2, "t", 0),
            replica_contents(&c, 0, "t", 0)
        );
        c.shutdown().await;
    });
}

#[test]
fn test_delete_records_moves_the_log_start_on_the_leader_and_its_followers() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start(dir.path()).await;
        c.create_topic(NewTopic::new("t").partitions(1))
            .await
            .unwrap();
        for i in 0..5 {
            c.produce("t", 0, batch_bytes(2, i * 10, 8), Acks::All)
                .await
                .unwrap();
        }
        // Past the high watermark: refused, nothing deleted.
        let err = c.delete_records("t", 0, Some(11)).await.unwrap_err();
        assert!(err.is_offset_out_of_range(), "{err}");
        assert_eq!(c.delete_records("t", 0, Some(4)).await.unwrap(), 4);
        let o = c.list_offsets("t", 0, None).await.unwrap();
        assert_eq!((o.log_start, o.high_watermark), (4, 10));
        assert!(c
            .fetch("t", 0, 0, 1 << 20)
            .await
            .unwrap_err()
            .is_offset_out_of_range());
        // Followers follow the leader's log start.
        c.produce("t", 0, batch_bytes(1, 99, 8), Acks::All)
            .await
            .unwrap();
        settle(Duration::from_secs(2)).await;
        let pid = c.metadata().partition("t", 0).unwrap().id;
        for b in 0..3 {
            let start = c
                .replica_log(BrokerId(b))
                .unwrap()
                .offsets(pid)
                .unwrap()
                .log_start;
            assert_eq!(start, 4, "broker {b}");
        }
        // None: up to the high watermark.
        assert_eq!(c.delete_records("t", 0, None).await.unwrap(), 11);
        c.shutdown().await;
    });
}

#[test]
fn test_a_follower_catching_up_reads_off_the_actors_thread() {
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start(dir.path()).await;
        c.create_topic(NewTopic::new("t")).await.unwrap();
        c.create_topic(NewTopic::new("other")).await.unwrap();
        c.produce("other", 0, batch_bytes(1, 1, 8), Acks::All)
            .await
            .unwrap();
        let p = c.metadata().partition("t", 0).unwrap().clone();
        let leader = p.leader.unwrap();
        let behind = *p.replicas.iter().find(|b| **b != leader).unwrap();
        c.stop_broker(behind).await.unwrap();
        for i in 0..3 {
            c.produce("t", 0, batch_bytes(2, 10 * i, 8), Acks::Leader)
                .await
                .unwrap();
        }
        // The follower comes back far behind; its leader's reads are slow, as from a disk.
        let log = c.replica_log(leader).unwrap();
        log.slow_reads(Duration::from_millis(1500));
        c.start_broker(behind).await.unwrap();
        // An append wakes the followers (no timer here: paused time does not move while a
        // blocking thread runs).
        c.produce("t", 0, batch_bytes(1, 90, 8), Acks::Leader)
            .await
            .unwrap();
        while log.slowed_reads() == 0 {
            tokio::task::yield_now().await;
        }
        // While the leader reads for it, the actors go on.
        c.produce("other", 0, batch_bytes(1, 2, 8), Acks::Leader)
            .await
            .unwrap();
        let pid = c.metadata().partition("t", 0).unwrap().id;
        let follower_log = c.replica_log(behind).unwrap();
        assert_eq!(
            follower_log.offsets(pid).unwrap().log_end,
            0,
            "the follower's read held the actors' thread"
        );
        log.slow_reads(Duration::ZERO);
        // It catches up in the end.
        settle(Duration::from_secs(2)).await;
        assert_eq!(replica_contents(&c, behind.0, "t", 0).len(), 7);
        c.shutdown().await;
    });
}
