//! `PartitionFollower`: a follower replica of one partition, copying its leader's log.
//!
//! Before fetching under a new leader epoch it asks the leader where its own latest epoch ends
//! (Kafka's OffsetForLeaderEpoch, KIP-101) and truncates any divergent tail; then it fetches
//! from its log end in a loop, each fetch telling the leader its position. Started by its
//! broker when the leader wakes it or the metadata names it; stops when idle or when it is no
//! longer a follower.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use eddy_log::AppendMode;
use eddy_types::{BrokerId, ClassifyError, ErrorKind, PartitionId, TopicName};
use tracing::{debug, info, warn};

use super::broker::Broker;
use super::{headers, now, HwCheckpoint, Shared};
use crate::error::BrokerError;
use crate::messages::{
    EpochEndReply, LeaderEpochEnd, PartitionIdle, PartitionStopped, Refresh, ReplicaFetchReply,
    ReplicateFrom, Role, Shutdown, StopWhenIdle,
};
use crate::metadata::PartitionMeta;
use crate::producers::BatchIdentity;

/// Wait before retrying after an error or when the partition has no leader.
const BACKOFF: Duration = Duration::from_millis(100);

/// A follower replica of one partition.
pub(crate) struct PartitionFollower {
    topic: TopicName,
    index: u32,
    pid: PartitionId,
    shared: Arc<Shared>,
    broker: Addr<Broker>,
    generation: u64,
    /// The leader epoch this replica has truncated against; fetching needs it to match the
    /// metadata's.
    synced_epoch: Option<i32>,
    /// A request to the leader (or a log write) is in flight.
    busy: bool,
    /// Messages handled from the broker (for the idle handshake).
    received: u64,
    /// Last time a fetch brought records (or the actor started).
    last_data: Instant,
    idle_reported: bool,
    checkpoint: HwCheckpoint,
    /// The last replica append failed on the storage; told to the leader with each fetch.
    storage_failed: bool,
    /// Asked to stop ([`StopWhenIdle`]) while a request or a write was in flight: it stops
    /// once that is done, so that no append of it lands after it is gone (its broker is
    /// about to lead the partition, from the log end it sees then).
    stopping: bool,
}

impl PartitionFollower {
    pub(crate) fn new(
        shared: Arc<Shared>,
        broker: Addr<Broker>,
        generation: u64,
        topic: TopicName,
        meta: &PartitionMeta,
    ) -> PartitionFollower {
        shared.producers.ensure(&shared.log, meta.id);
        let t = now();
        PartitionFollower {
            topic,
            index: meta.index,
            pid: meta.id,
            shared,
            broker,
            generation,
            synced_epoch: None,
            busy: false,
            received: 0,
            last_data: t,
            idle_reported: false,
            checkpoint: HwCheckpoint::new(0),
            storage_failed: false,
            stopping: false,
        }
    }

    fn stop(&mut self, ctx: &mut Context<Self>) {
        self.broker.do_send(PartitionStopped {
            partition: self.pid,
            role: Role::Follower,
            generation: self.generation,
        });
        ctx.stop();
    }

    fn retry_later(&mut self, ctx: &mut Context<Self>, wait: Duration) {
        ctx.run_later(wait, |act, ctx| act.step(ctx));
    }

    /// Decides the next move from the published metadata.
    fn step(&mut self, ctx: &mut Context<Self>) {
        if self.stopping {
            if !self.busy {
                self.stop(ctx);
            }
            return;
        }
        if self.busy || self.idle_reported {
            return;
        }
        let meta = self.shared.view.snapshot();
        let Ok(p) = meta.partition(self.topic.as_str(), self.index).cloned() else {
            return self.stop(ctx);
        };
        let me = self.shared.id;
        if p.id != self.pid || p.leader == Some(me) || !p.replicas.contains(&me) {
            return self.stop(ctx);
        }
        let Some(leader) = p.leader else {
            return self.retry_later(ctx, BACKOFF);
        };
        let Some(peer) = self.shared.directory.get(leader) else {
            return self.retry_later(ctx, BACKOFF);
        };
        if self.shared.fetching_paused.load(Ordering::Relaxed) {
            return self.retry_later(ctx, BACKOFF);
        }
        if self.synced_epoch == Some(p.leader_epoch) {
            self.fetch(peer, p.leader_epoch, ctx);
        } else {
            self.truncate(peer, p.leader_epoch, ctx);
        }
    }

    /// KIP-101: find where this replica's log stops agreeing with the leader's and cut there.
    fn truncate(&mut self, peer: Addr<Broker>, leader_epoch: i32, ctx: &mut Context<Self>) {
        let epochs = match self.shared.log.epochs(self.pid) {
            Ok(e) => e,
            Err(e) => {
                warn!(topic = %self.topic, partition = self.index, error = %e, "cannot read epochs");
                return self.retry_later(ctx, BACKOFF * 5);
            }
        };
        let Some(latest) = epochs.last().copied() else {
            // Nothing was ever appended here: nothing to cut.
            self.synced_epoch = Some(leader_epoch);
            return self.step(ctx);
        };
        self.busy = true;
        let request = LeaderEpochEnd {
            topic: self.topic.clone(),
            partition: self.index,
            leader_epoch,
            epoch: latest.epoch,
        };
        let fut = peer.send(request);
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.busy = false;
            let reply: EpochEndReply = match res.map_err(BrokerError::from).and_then(|r| r) {
                Ok(r) => r,
                Err(e) => {
                    debug!(topic = %act.topic, partition = act.index, error = %e, "epoch lookup failed");
                    return act.retry_later(ctx, BACKOFF);
                }
            };
            let my_end = match act.shared.log.offsets(act.pid) {
                Ok(o) => o.log_end,
                Err(_) => return act.retry_later(ctx, BACKOFF * 5),
            };
            let target = match reply.end {
                Some((epoch, end)) if epoch == latest.epoch => end.min(my_end),
                Some((epoch, end)) => {
                    let mine = act
                        .shared
                        .log
                        .end_offset_for_epoch(act.pid, epoch)
                        .ok()
                        .flatten()
                        .map_or(0, |(_, o)| o);
                    end.min(mine).min(my_end)
                }
                None => reply.log_end.min(my_end),
            };
            if target >= my_end {
                act.synced_epoch = Some(leader_epoch);
                return act.step(ctx);
            }
            info!(topic = %act.topic, partition = act.index, from = my_end, to = target, "truncating divergent tail");
            act.busy = true;
            let cut = act.shared.log.truncate_to(act.pid, target);
            ctx.spawn(cut.into_actor(act).map(move |res, act, ctx| {
                act.busy = false;
                match res {
                    Ok(_) => {
                        act.shared
                            .producers
                            .lock()
                            .entry(act.pid)
                            .or_default()
                            .truncate(target);
                        act.synced_epoch = Some(leader_epoch);
                        act.step(ctx);
                    }
                    Err(e) => {
                        warn!(topic = %act.topic, partition = act.index, error = %e, "truncation failed");
                        act.retry_later(ctx, BACKOFF * 5);
                    }
                }
            }));
        }));
    }

    fn fetch(&mut self, peer: Addr<Broker>, leader_epoch: i32, ctx: &mut Context<Self>) {
        let log_end = match self.shared.log.offsets(self.pid) {
            Ok(o) => o.log_end,
            Err(e) => {
                warn!(topic = %self.topic, partition = self.index, error = %e, "cannot read offsets");
                return self.retry_later(ctx, BACKOFF * 5);
            }
        };
        self.busy = true;
        let request = ReplicateFrom {
            topic: self.topic.clone(),
            partition: self.index,
            follower: self.shared.id,
            leader_epoch,
            fetch_offset: log_end,
            max_bytes: self.shared.config.replica_fetch_max_bytes,
            max_wait: self.shared.config.replica_fetch_wait_max,
            storage_failed: self.storage_failed,
        };
        let fut = peer.send(request);
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.busy = false;
            match res.map_err(BrokerError::from).and_then(|r| r) {
                Ok(reply) => act.fetched(reply, leader_epoch, ctx),
                Err(BrokerError::FencedLeaderEpoch { .. })
                | Err(BrokerError::NotLeader { .. })
                | Err(BrokerError::LeaderNotAvailable { .. }) => {
                    act.synced_epoch = None;
                    act.retry_later(ctx, BACKOFF);
                }
                Err(e) => {
                    debug!(topic = %act.topic, partition = act.index, error = %e, "replica fetch failed");
                    act.synced_epoch = None;
                    act.retry_later(ctx, BACKOFF);
                }
            }
        }));
    }

    fn fetched(&mut self, reply: ReplicaFetchReply, leader_epoch: i32, ctx: &mut Context<Self>) {
        // An answer from before a leader change is not appended: under the new epoch this
        // replica first cuts what the new leader lacks (or, now the leader, stops).
        let meta = self.shared.view.snapshot();
        let current = meta
            .partition(self.topic.as_str(), self.index)
            .is_ok_and(|p| {
                p.id == self.pid
                    && p.leader_epoch == leader_epoch
                    && p.leader != Some(self.shared.id)
            });
        if self.stopping || !current {
            return self.step(ctx);
        }
        let t = now();
        self.follow_log_start(reply.log_start);
        if reply.records.is_empty() {
            self.note_high_watermark(reply.high_watermark, reply.log_end, None);
            let idle = t.saturating_duration_since(self.last_data)
                >= self.shared.config.partition_idle_timeout;
            if idle {
                self.idle_reported = true;
                self.broker.do_send(PartitionIdle {
                    partition: self.pid,
                    role: Role::Follower,
                    received: self.received,
                });
                return;
            }
            return self.step(ctx);
        }
        self.last_data = t;
        let bytes = reply.records.len() as u64;
        // Copy the leader's producer state along with its batches, so that this replica can
        // recognise retried batches if it becomes leader.
        let ids: Vec<(BatchIdentity, u64, u64)> = headers(&reply.records)
            .iter()
            .map(|(h, _)| {
                let base = h.base_offset as u64;
                (
                    BatchIdentity::of(h),
                    base,
                    base + h.last_offset_delta as u64,
                )
            })
            .filter(|(id, _, _)| id.is_idempotent())
            .collect();
        self.busy = true;
        let append = self
            .shared
            .log
            .append_one(self.pid, reply.records, AppendMode::Replica);
        ctx.spawn(append.into_actor(self).map(move |res, act, ctx| {
            act.busy = false;
            match res {
                Ok(a) => {
                    act.storage_failed = false;
                    if !ids.is_empty() {
                        let mut tables = act.shared.producers.lock();
                        let table = tables.entry(act.pid).or_default();
                        for (id, base, last) in &ids {
                            table.record(id, Some((*base, *last)));
                        }
                    }
                    metrics::counter!(eddy_metrics::REPLICATION_BYTES, "broker" => act.shared.id.0.to_string())
                        .increment(bytes);
                    act.note_high_watermark(reply.high_watermark, reply.log_end, Some(a.last_offset + 1));
                    act.step(ctx);
                }
                Err(e) => {
                    warn!(topic = %act.topic, partition = act.index, error = %e, "replica append failed");
                    act.storage_failed = matches!(
                        e.kind(),
                        ErrorKind::StorageFull | ErrorKind::StorageFailed
                    );
                    // Nothing was written when the storage failed: the log is still in
                    // step with the leader. Anything else: check it again.
                    if !act.storage_failed {
                        act.synced_epoch = None;
                    }
                    act.retry_later(ctx, BACKOFF * 5);
                }
            }
        }));
    }

    /// Moves this replica's log start up to the leader's (records deleted there, by
    /// DeleteRecords or compaction, go here too; retention runs on each broker anyway).
    fn follow_log_start(&mut self, leader_start: u64) {
        let Ok(o) = self.shared.log.offsets(self.pid) else {
            return;
        };
        let target = leader_start.min(o.log_end);
        if target > o.log_start {
            // Fire and forget: the writer thread orders it with the appends.
            let _pending = self.shared.log.delete_records_before(self.pid, target);
        }
    }

    /// The follower's high watermark is the leader's, capped at its own log end; it is
    /// checkpointed so that, if this replica becomes leader after a restart, consumers resume
    /// close to where they were.
    /// Checkpoints the high watermark this replica may expose, and reports how far it is
    /// behind the leader's log end.
    fn note_high_watermark(&mut self, leader_hw: u64, leader_end: u64, log_end: Option<u64>) {
        let end = match log_end {
            Some(e) => e,
            None => match self.shared.log.offsets(self.pid) {
                Ok(o) => o.log_end,
                Err(_) => return,
            },
        };
        metrics::gauge!(
            eddy_metrics::REPLICA_LAG,
            "topic" => self.topic.to_string(),
            "partition" => self.index.to_string(),
            "broker" => self.shared.id.0.to_string()
        )
        .set(leader_end.saturating_sub(end) as f64);
        let hw = leader_hw.min(end);
        self.checkpoint.note(&self.shared, self.pid, hw, false);
    }

    /// The broker id of this replica.
    pub(crate) fn broker_id(&self) -> BrokerId {
        self.shared.id
    }
}

impl Actor for PartitionFollower {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        debug!(topic = %self.topic, partition = self.index, broker = %self.broker_id(), "partition follower started");
        metrics::gauge!(eddy_metrics::PARTITION_ACTORS, "role" => "follower").increment(1.0);
        self.step(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        metrics::gauge!(eddy_metrics::PARTITION_ACTORS, "role" => "follower").decrement(1.0);
    }
}

impl Handler<Refresh> for PartitionFollower {
    type Result = ();

    fn handle(&mut self, _msg: Refresh, ctx: &mut Context<Self>) {
        self.received += 1;
        self.idle_reported = false;
        self.last_data = now();
        self.step(ctx);
    }
}

impl Handler<Shutdown> for PartitionFollower {
    type Result = ();

    fn handle(&mut self, _msg: Shutdown, ctx: &mut Context<Self>) {
        self.received += 1;
        self.stop(ctx);
    }
}

impl Handler<StopWhenIdle> for PartitionFollower {
    type Result = ();

    fn handle(&mut self, _msg: StopWhenIdle, ctx: &mut Context<Self>) {
        self.received += 1;
        if self.busy {
            self.stopping = true;
        } else {
            self.stop(ctx);
        }
    }
}
