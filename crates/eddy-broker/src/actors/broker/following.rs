//! What a broker does as follower: one fetch stream per leader broker ([`FetcherCore`]),
//! which checks epochs (KIP-101) in batches, fetches every followed partition in one
//! request and appends what comes back in one log append.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix::prelude::*;
use eddy_log::{AppendMode, AppendRequest};
use eddy_types::{BrokerId, ClassifyError, ErrorKind, PartitionId, TopicName};
use tracing::{debug, info, warn};

use super::{now, Broker};
use crate::error::BrokerError;
use crate::fetcher::{truncation_target, FetchLimits, FetcherCore, ToAppend};
use crate::messages::{EpochEnds, LeaderEpochEnd, ReplicaAnswer};
use crate::producers::BatchIdentity;

/// Wait before trying a stream again after an error, while its leader broker is down, or
/// while fetching is paused.
const BACKOFF: Duration = Duration::from_millis(100);

/// Fetch sessions, unique within the process: a broker that restarts starts new ones, and
/// its leaders drop what they knew of the old.
static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

impl Broker {
    /// A stream to every other broker.
    pub(super) fn start_fetchers(&mut self, ctx: &mut Context<Self>) {
        let me = self.me();
        for b in 0..self.shared.config.brokers {
            let leader = BrokerId(b);
            if leader == me {
                continue;
            }
            let session = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
            self.fetchers.insert(leader, FetcherCore::new(me, session));
        }
        self.drive_fetchers(ctx);
    }

    fn limits(&self) -> FetchLimits {
        let c = &self.shared.config;
        FetchLimits {
            max_wait: c.replica_fetch_wait_max,
            // Kafka's replica.fetch.response.max.bytes is 10 MiB by default, with 1 MiB per
            // partition.
            max_bytes: c.replica_fetch_max_bytes.saturating_mul(10),
            partition_max_bytes: c.replica_fetch_max_bytes,
        }
    }

    /// Follows `pid` from `leader` under `epoch` (moving it from another stream if it was on
    /// one); already followed there under that epoch, its position goes out again.
    pub(super) fn follow(
        &mut self,
        topic: &TopicName,
        index: u32,
        pid: PartitionId,
        leader: BrokerId,
        epoch: i32,
        ctx: &mut Context<Self>,
    ) {
        let _ = ctx;
        if self.leaders.contains_key(&pid) {
            self.drop_leader(pid, super::StepDown::Changed);
        }
        if let Some(prev) = self.following.get(&pid).copied() {
            if prev != leader {
                // An append of the old stream still in flight lands first; that stream
                // drops the partition once it is done.
                if let Some(f) = self.fetchers.get_mut(&prev) {
                    f.leave(pid);
                }
            }
        }
        let t = now();
        let Some(f) = self.fetchers.get_mut(&leader) else {
            return;
        };
        if f.get(pid).is_some_and(|p| p.leader_epoch == epoch) {
            f.follow(pid, topic, index, epoch, 0, None, t);
            self.following.insert(pid, leader);
            return;
        }
        let log = &self.shared.log;
        let (offsets, epochs) = match (log.offsets(pid), log.epochs(pid)) {
            (Ok(o), Ok(e)) => (o, e),
            (Err(e), _) | (_, Err(e)) => {
                warn!(topic = %topic, partition = index, error = %e, "cannot read the log to follow it");
                return;
            }
        };
        self.producers
            .entry(pid)
            .or_insert_with(|| super::super::rebuild_producer_table(log, pid));
        let latest = epochs.last().map(|e| e.epoch);
        f.follow(pid, topic, index, epoch, offsets.log_end, latest, t);
        self.following.insert(pid, leader);
    }

    /// Stops following `pid` (once an append of it in flight is done).
    pub(super) fn unfollow(&mut self, pid: PartitionId) {
        let Some(leader) = self.following.get(&pid).copied() else {
            return;
        };
        let left = self.fetchers.get_mut(&leader).is_none_or(|f| f.leave(pid));
        if left {
            self.following.remove(&pid);
            if !self.leaders.contains_key(&pid) {
                self.producers.remove(&pid);
            }
        }
    }

    pub(super) fn drive_fetchers(&mut self, ctx: &mut Context<Self>) {
        let leaders: Vec<BrokerId> = self.fetchers.keys().copied().collect();
        for l in leaders {
            self.drive(l, ctx);
        }
    }

    /// Tries the stream to `leader` again after `wait` (once: a retry already armed covers
    /// it).
    fn retry(&mut self, leader: BrokerId, wait: Duration, ctx: &mut Context<Self>) {
        if self.retry_armed.insert(leader) {
            ctx.run_later(wait, move |act, ctx| {
                act.retry_armed.remove(&leader);
                act.drive(leader, ctx);
            });
        }
    }

    /// Sends what the stream to `leader` has to send: epoch questions, the next fetch.
    pub(super) fn drive(&mut self, leader: BrokerId, ctx: &mut Context<Self>) {
        let paused = self.shared.fetching_paused.load(Ordering::Relaxed);
        let Some(peer) = self.shared.directory.get(leader).filter(|_| !paused) else {
            self.retry(leader, BACKOFF, ctx);
            return;
        };
        let t = now();
        let limits = self.limits();
        let Some(f) = self.fetchers.get_mut(&leader) else {
            return;
        };
        if let Some(asks) = f.sync_request(t) {
            self.sync(leader, peer.clone(), asks, ctx);
        } else if let Some(at) = self.fetchers.get(&leader).and_then(FetcherCore::next_sync) {
            if at > t {
                self.retry(leader, at - t, ctx);
            }
        }
        let Some(f) = self.fetchers.get_mut(&leader) else {
            return;
        };
        let Some(req) = f.fetch_request(limits) else {
            return;
        };
        let sent = req.clone();
        ctx.spawn(peer.send(req).into_actor(self).map(move |res, act, ctx| {
            match res.map_err(BrokerError::from).and_then(|r| r) {
                Ok(answer) => act.fetched(leader, answer, ctx),
                Err(e) => {
                    debug!(leader = %leader, error = %e, "replica fetch failed");
                    if let Some(f) = act.fetchers.get_mut(&leader) {
                        f.fetch_failed(&sent);
                    }
                    act.retry(leader, BACKOFF, ctx);
                }
            }
        }));
    }

    /// Asks `leader` where the latest epochs of these partitions end, cuts what lies past
    /// that in this log, and lets them fetch.
    fn sync(
        &mut self,
        leader: BrokerId,
        peer: Addr<Broker>,
        asks: Vec<(PartitionId, LeaderEpochEnd)>,
        ctx: &mut Context<Self>,
    ) {
        let latest: HashMap<PartitionId, (i32, i32)> = asks
            .iter()
            .map(|(p, q)| (*p, (q.epoch, q.leader_epoch)))
            .collect();
        let fut = peer.send(EpochEnds(asks));
        ctx.spawn(fut.into_actor(self).then(move |res, act, _ctx| {
            let t = now();
            let mut cuts = Vec::new();
            let mut done = Vec::new();
            let log = act.shared.log.clone();
            match res {
                Ok(replies) => {
                    for (pid, reply) in replies {
                        let Some((epoch, leader_epoch)) = latest.get(&pid).copied() else {
                            continue;
                        };
                        let Some(f) = act.fetchers.get_mut(&leader) else {
                            continue;
                        };
                        let reply = match reply {
                            Ok(r) => r,
                            Err(e) => {
                                debug!(partition = %pid, error = %e, "epoch question refused");
                                f.sync_failed(pid, epoch, t);
                                continue;
                            }
                        };
                        let Ok(my_end) = log.offsets(pid).map(|o| o.log_end) else {
                            f.sync_failed(pid, epoch, t);
                            continue;
                        };
                        let target = truncation_target(epoch, &reply, my_end, |e| {
                            log.end_offset_for_epoch(pid, e)
                                .ok()
                                .flatten()
                                .map_or(0, |(_, o)| o)
                        });
                        if target >= my_end {
                            done.push((pid, leader_epoch, my_end));
                        } else {
                            info!(partition = %pid, from = my_end, to = target, "truncating divergent tail");
                            cuts.push((pid, epoch, leader_epoch, target, log.truncate_to(pid, target)));
                        }
                    }
                }
                Err(e) => {
                    debug!(leader = %leader, error = %e, "epoch questions failed");
                    if let Some(f) = act.fetchers.get_mut(&leader) {
                        for (pid, (epoch, _)) in &latest {
                            f.sync_failed(*pid, *epoch, t);
                        }
                    }
                }
            }
            if let Some(f) = act.fetchers.get_mut(&leader) {
                for (pid, leader_epoch, end) in done {
                    f.synced(pid, leader_epoch, end);
                }
            }
            async move {
                let mut out = Vec::with_capacity(cuts.len());
                for (pid, epoch, leader_epoch, target, cut) in cuts {
                    out.push((pid, epoch, leader_epoch, target, cut.await));
                }
                out
            }
            .into_actor(act)
            .map(move |cuts, act, ctx| {
                let t = now();
                for (pid, epoch, leader_epoch, target, res) in cuts {
                    match res {
                        Ok(_) => {
                            if let Some(table) = act.producers.get_mut(&pid) {
                                table.truncate(target);
                            }
                            if let Some(f) = act.fetchers.get_mut(&leader) {
                                f.synced(pid, leader_epoch, target);
                            }
                        }
                        Err(e) => {
                            warn!(partition = %pid, error = %e, "truncation failed");
                            if let Some(f) = act.fetchers.get_mut(&leader) {
                                f.sync_failed(pid, epoch, t);
                            }
                        }
                    }
                }
                if let Some(f) = act.fetchers.get_mut(&leader) {
                    f.sync_done();
                }
                act.drive(leader, ctx);
            })
        }));
    }

    /// The leader broker answered the stream's fetch.
    fn fetched(&mut self, leader: BrokerId, answer: ReplicaAnswer, ctx: &mut Context<Self>) {
        let t = now();
        let Some(f) = self.fetchers.get_mut(&leader) else {
            return;
        };
        let got = f.answered(answer, t);
        let meta = self.shared.view.snapshot();
        let me = self.me();
        for (topic, index) in got.wake {
            let Ok(p) = meta.partition(topic.as_str(), index) else {
                continue;
            };
            if p.leader == Some(leader) && p.replicas.contains(&me) {
                self.follow(&topic, index, p.id, leader, p.leader_epoch, ctx);
            }
        }
        for pid in got.refused {
            // Not led there (any more) under that epoch: follow what the metadata says.
            let Some((topic, index)) = self
                .fetchers
                .get(&leader)
                .and_then(|f| f.get(pid))
                .map(|p| (p.topic.clone(), p.index))
            else {
                continue;
            };
            match meta.partition(topic.as_str(), index) {
                Ok(p) if p.leader == Some(leader) => {}
                Ok(p)
                    if p.id == pid
                        && p.replicas.contains(&me)
                        && p.leader.is_some_and(|l| l != me) =>
                {
                    if let Some(l) = p.leader {
                        self.follow(&topic, index, pid, l, p.leader_epoch, ctx);
                    }
                }
                _ => self.unfollow(pid),
            }
        }
        if got.appends.is_empty() {
            if let Some(f) = self.fetchers.get_mut(&leader) {
                f.fetch_done();
            }
            self.drive(leader, ctx);
            return;
        }
        self.append_replicated(leader, got.appends, ctx);
    }

    /// Appends the batches of an answer in one log append, then reports them.
    fn append_replicated(
        &mut self,
        leader: BrokerId,
        appends: Vec<ToAppend>,
        ctx: &mut Context<Self>,
    ) {
        let requests: Vec<AppendRequest> = appends
            .iter()
            .map(|a| AppendRequest {
                partition: a.pid,
                records: a.records.clone(),
                mode: AppendMode::Replica,
            })
            .collect();
        let pending = self.shared.log.append(requests);
        ctx.spawn(pending.into_actor(self).map(move |res, act, ctx| {
            let t = now();
            let n = appends.len();
            let mut results: Vec<Result<eddy_log::Appended, BrokerError>> = match res {
                Ok(v) => v.into_iter().map(|r| r.map_err(BrokerError::from)).collect(),
                Err(e) => vec![Err(BrokerError::from(e)); n],
            };
            results.resize_with(n, || Err(BrokerError::from(eddy_log::LogError::WriterStopped)));
            let mut bytes = 0u64;
            let mut lag = 0u64;
            let mut starts = Vec::new();
            for (a, r) in appends.into_iter().zip(results) {
                let result = match r {
                    Ok(done) => {
                        bytes += a.records.len() as u64;
                        let end = done.last_offset + 1;
                        lag = lag.max(a.leader_end.saturating_sub(end));
                        // The leader's producer state comes with its batches, so that this
                        // replica knows retried batches if it leads one day.
                        if let Some(table) = act.producers.get_mut(&a.pid) {
                            for (h, _) in super::super::headers(&a.records) {
                                let id = BatchIdentity::of(&h);
                                if id.is_idempotent() {
                                    let base = h.base_offset as u64;
                                    table.record(&id, Some((base, base + h.last_offset_delta as u64)));
                                }
                            }
                        }
                        // Records the leader deleted (DeleteRecords) go here too.
                        let target = a.log_start.min(end);
                        if target > done.log_start {
                            starts.push((a.pid, target));
                        }
                        Ok(end)
                    }
                    Err(e) => {
                        warn!(partition = %a.pid, error = %e, "replica append failed");
                        Err(matches!(e.kind(), ErrorKind::StorageFull | ErrorKind::StorageFailed))
                    }
                };
                let Some(f) = act.fetchers.get_mut(&leader) else {
                    continue;
                };
                if f.appended(a.pid, result, a.high_watermark, t)
                    && act.following.get(&a.pid) == Some(&leader)
                {
                    act.following.remove(&a.pid);
                }
            }
            for (pid, target) in starts {
                // Fire and forget: the writer orders it with the appends.
                drop(act.shared.log.delete_records_before(pid, target));
            }
            let broker = act.me().0.to_string();
            metrics::counter!(eddy_metrics::REPLICATION_BYTES, "broker" => broker.clone())
                .increment(bytes);
            metrics::gauge!(eddy_metrics::REPLICA_LAG, "broker" => broker, "leader" => leader.0.to_string())
                .set(lag as f64);
            if let Some(f) = act.fetchers.get_mut(&leader) {
                f.fetch_done();
            }
            act.drive(leader, ctx);
        }));
    }
}
