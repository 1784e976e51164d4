//! `Broker`: one broker of the cluster, owner of one log directory.
//!
//! It routes client and replication requests to its partition actors, starting a
//! `PartitionLeader` or `PartitionFollower` on demand and stopping it when it reports itself
//! idle, so idle partitions cost no resident actor. It heartbeats to the controller and applies
//! retention to its log.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use eddy_types::PartitionId;
use tracing::{debug, info, warn};

use super::offsets_partition::{OffsetsPartition, TopicDeleted};
use super::partition_follower::PartitionFollower;
use super::partition_leader::PartitionLeader;
use super::Shared;
use crate::error::BrokerError;

/// The longest pause between two retention steps (see `Broker::enforce_retention`).
const RETENTION_PAUSE_MAX: std::time::Duration = std::time::Duration::from_millis(100);
use crate::messages::{
    BrokerGone, BrokerSnapshot, DeleteRecords, EnsureFollower, EpochEndReply, Fetch, FetchReply,
    GroupReply, GroupRequest, Heartbeat, LeaderEpochEnd, ListGroups, ListOffsets, ObserveBroker,
    ObserveLeader, ObservePartition, OffsetsReply, PartitionIdle, PartitionStopped,
    PartitionsChanged, PartitionsDeleted, Produce, ProduceReply, Refresh, ReplicaFetchReply,
    ReplicateFrom, Role, SetReplicaFetching, Shutdown, StopWhenIdle,
};
use crate::offsets::{partition_for_group, OFFSETS_TOPIC};

/// A running partition actor and how many messages the broker sent it.
struct Running<A: Actor> {
    addr: Addr<A>,
    sent: u64,
    generation: u64,
    /// For leaders: the epoch it leads in.
    epoch: i32,
}

/// One broker.
pub struct Broker {
    shared: Arc<Shared>,
    /// Tells this run of the broker apart from earlier ones (after a restart).
    incarnation: u64,
    heartbeat: Recipient<Heartbeat>,
    gone: Recipient<BrokerGone>,
    leaders: HashMap<PartitionId, Running<PartitionLeader>>,
    followers: HashMap<PartitionId, Running<PartitionFollower>>,
    /// The `__consumer_offsets` partitions this broker leads, each the coordinator of its
    /// groups: by partition index, with the leader epoch it was started in.
    coordinators: HashMap<u32, (i32, Addr<OffsetsPartition>)>,
    next_generation: u64,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("id", &self.shared.id)
            .field("incarnation", &self.incarnation)
            .field("leaders", &self.leaders.len())
            .field("followers", &self.followers.len())
            .finish()
    }
}

impl Broker {
    pub(crate) fn new(
        shared: Arc<Shared>,
        incarnation: u64,
        heartbeat: Recipient<Heartbeat>,
        gone: Recipient<BrokerGone>,
    ) -> Broker {
        // The commit metrics start with this actor (a restarted one does not report what
        // its log committed before).
        let _ = shared.log.take_commits();
        Broker {
            shared,
            incarnation,
            heartbeat,
            gone,
            leaders: HashMap::new(),
            followers: HashMap::new(),
            coordinators: HashMap::new(),
            next_generation: 0,
        }
    }

    /// The running leader of a partition this broker leads, started if needed.
    fn leader(
        &mut self,
        topic: &str,
        index: u32,
        ctx: &mut Context<Self>,
    ) -> Result<Addr<PartitionLeader>, BrokerError> {
        let meta = self.shared.view.snapshot();
        let t = meta.topic(topic)?;
        let p = meta.partition(topic, index)?;
        match p.leader {
            None => {
                return Err(BrokerError::LeaderNotAvailable {
                    topic: t.name.clone(),
                    partition: index,
                })
            }
            Some(l) if l != self.shared.id => {
                return Err(BrokerError::NotLeader {
                    topic: t.name.clone(),
                    partition: index,
                    broker: self.shared.id,
                    leader: Some(l),
                })
            }
            Some(_) => {}
        }
        if let Some(r) = self.leaders.get_mut(&p.id) {
            if r.epoch == p.leader_epoch && r.addr.connected() {
                r.sent += 1;
                return Ok(r.addr.clone());
            }
            // A leader of an older epoch that has not seen the change yet.
            r.addr.do_send(Shutdown);
            self.leaders.remove(&p.id);
        }
        if let Some(f) = self.followers.get_mut(&p.id) {
            // This broker followed the partition until now: a fetch or an append of its
            // follower may still be in flight, and must land or be dropped before a leader
            // takes the log from its end. The client tries again (as after any election).
            f.sent += 1;
            f.addr.do_send(StopWhenIdle);
            return Err(BrokerError::LeaderNotAvailable {
                topic: t.name.clone(),
                partition: index,
            });
        }
        self.next_generation += 1;
        let generation = self.next_generation;
        let leader = PartitionLeader::new(
            self.shared.clone(),
            ctx.address(),
            generation,
            t.name.clone(),
            p,
            t.config.min_insync_replicas,
        )?;
        let addr = leader.start();
        self.leaders.insert(
            p.id,
            Running {
                addr: addr.clone(),
                sent: 1,
                generation,
                epoch: p.leader_epoch,
            },
        );
        Ok(addr)
    }

    /// The coordinator of the groups on `__consumer_offsets` partition `index`, started (it
    /// then loads the partition) if this broker leads it.
    fn coordinator(
        &mut self,
        index: u32,
        group: &str,
        ctx: &mut Context<Self>,
    ) -> Result<Addr<OffsetsPartition>, BrokerError> {
        let meta = self.shared.view.snapshot();
        let p = meta.partition(OFFSETS_TOPIC, index)?;
        let not = || BrokerError::NotCoordinator {
            group: group.to_owned(),
            broker: self.shared.id,
        };
        if p.leader != Some(self.shared.id) {
            return Err(not());
        }
        if let Some((epoch, addr)) = self.coordinators.get(&index) {
            if *epoch == p.leader_epoch && addr.connected() {
                return Ok(addr.clone());
            }
            addr.do_send(Shutdown);
        }
        let addr = OffsetsPartition::new(self.shared.clone(), ctx.address(), index, p.id).start();
        self.coordinators
            .insert(index, (p.leader_epoch, addr.clone()));
        Ok(addr)
    }

    /// Sends `msg` to the partition's leader actor and answers what it answers.
    fn forward<M, R>(
        &mut self,
        topic: &str,
        index: u32,
        msg: M,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<Result<R, BrokerError>>
    where
        M: Message<Result = Result<R, BrokerError>> + Send + 'static,
        PartitionLeader: Handler<M>,
        R: Send + 'static,
    {
        match self.leader(topic, index, ctx) {
            Ok(addr) => Box::pin(async move { addr.send(msg).await? }),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }

    /// Runs (or wakes) the follower of a partition if this broker holds a follower replica.
    fn ensure_follower(&mut self, topic: &str, index: u32, ctx: &mut Context<Self>) {
        let meta = self.shared.view.snapshot();
        let Ok(t) = meta.topic(topic) else { return };
        let Some(p) = t.partitions.get(index as usize) else {
            return;
        };
        let me = self.shared.id;
        if !p.replicas.contains(&me) || p.leader == Some(me) || p.leader.is_none() {
            return;
        }
        if let Some(r) = self.followers.get_mut(&p.id) {
            if r.addr.connected() {
                r.sent += 1;
                r.addr.do_send(Refresh);
                return;
            }
        }
        self.next_generation += 1;
        let generation = self.next_generation;
        let follower = PartitionFollower::new(
            self.shared.clone(),
            ctx.address(),
            generation,
            t.name.clone(),
            p,
        );
        let addr = follower.start();
        self.followers.insert(
            p.id,
            Running {
                addr,
                sent: 0,
                generation,
                epoch: p.leader_epoch,
            },
        );
    }

    fn report(&mut self) {
        self.heartbeat.do_send(Heartbeat {
            broker: self.shared.id,
            incarnation: self.incarnation,
        });
        // Every commit since the last report, one sample each (a per-second mean would hide
        // the slow commits a request waits behind).
        let broker = self.shared.id.0.to_string();
        metrics::counter!(eddy_metrics::LOG_PAGE_CACHE_DROPPED, "broker" => broker.clone())
            .absolute(self.shared.log.stats().page_cache_dropped);
        let commits = self.shared.log.take_commits();
        if !commits.is_empty() {
            let latency =
                metrics::histogram!(eddy_metrics::LOG_COMMIT_LATENCY, "broker" => broker.clone());
            let size = metrics::histogram!(eddy_metrics::LOG_COMMIT_BYTES, "broker" => broker);
            for c in &commits {
                latency.record(c.duration.as_secs_f64());
                size.record(c.bytes as f64);
            }
        }
    }

    fn enforce_retention(&mut self, ctx: &mut Context<Self>) {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let id = self.shared.id;
        let log = self.shared.log.clone();
        // Step by step (each call frees a bounded amount; see `RETENTION_STEP_BYTES`), with a
        // pause as long as the step between steps, so that a long pass takes at most half of
        // the writer's time: appends that queued during a step commit on their own rather
        // than in one transaction with the next step (back to back, appends at 1,000
        // records/s during a 2 GB removal had p99 30-33 ms against 21-26 with a gap).
        let pass = async move {
            let mut total = eddy_log::RetentionReport::default();
            loop {
                let started = tokio::time::Instant::now();
                let r = log.enforce_retention(now_ms).await?;
                total.partitions += r.partitions;
                total.batches += r.batches;
                total.bytes += r.bytes;
                if !r.more {
                    return Ok::<_, eddy_log::LogError>(total);
                }
                tokio::time::sleep(started.elapsed().min(RETENTION_PAUSE_MAX)).await;
            }
        };
        ctx.spawn(pass.into_actor(self).map(move |res, _, _| match res {
            Ok(r) if r.batches > 0 => {
                debug!(broker = %id, partitions = r.partitions, batches = r.batches, bytes = r.bytes, "retention removed batches");
            }
            Ok(_) => {}
            Err(e) => warn!(broker = %id, error = %e, "retention pass failed"),
        }));
    }
}

impl Actor for Broker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        debug!(broker = %self.shared.id, incarnation = self.incarnation, "broker started");
        self.report();
        ctx.run_interval(self.shared.config.broker_heartbeat_interval, |act, _| {
            act.report()
        });
        ctx.run_interval(self.shared.config.retention_check_interval, |act, ctx| {
            act.enforce_retention(ctx)
        });
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        for r in self.leaders.values() {
            r.addr.do_send(Shutdown);
        }
        for r in self.followers.values() {
            r.addr.do_send(Shutdown);
        }
        for (_, c) in self.coordinators.values() {
            c.do_send(Shutdown);
        }
        self.gone.do_send(BrokerGone {
            broker: self.shared.id,
            incarnation: self.incarnation,
        });
        debug!(broker = %self.shared.id, "broker stopped");
    }
}

impl Handler<Produce> for Broker {
    type Result = ResponseFuture<Result<ProduceReply, BrokerError>>;

    fn handle(&mut self, msg: Produce, ctx: &mut Context<Self>) -> Self::Result {
        let (topic, index) = (msg.topic.clone(), msg.partition);
        self.forward(&topic, index, msg, ctx)
    }
}

impl Handler<Fetch> for Broker {
    type Result = ResponseFuture<Result<FetchReply, BrokerError>>;

    fn handle(&mut self, msg: Fetch, ctx: &mut Context<Self>) -> Self::Result {
        let (topic, index) = (msg.topic.clone(), msg.partition);
        self.forward(&topic, index, msg, ctx)
    }
}

impl Handler<ListOffsets> for Broker {
    type Result = ResponseFuture<Result<OffsetsReply, BrokerError>>;

    fn handle(&mut self, msg: ListOffsets, ctx: &mut Context<Self>) -> Self::Result {
        let (topic, index) = (msg.topic.clone(), msg.partition);
        self.forward(&topic, index, msg, ctx)
    }
}

impl Handler<ReplicateFrom> for Broker {
    type Result = ResponseFuture<Result<ReplicaFetchReply, BrokerError>>;

    fn handle(&mut self, msg: ReplicateFrom, ctx: &mut Context<Self>) -> Self::Result {
        let (topic, index) = (msg.topic.to_string(), msg.partition);
        self.forward(&topic, index, msg, ctx)
    }
}

impl Handler<DeleteRecords> for Broker {
    type Result = ResponseFuture<Result<u64, BrokerError>>;

    fn handle(&mut self, msg: DeleteRecords, ctx: &mut Context<Self>) -> Self::Result {
        let (topic, index) = (msg.topic.clone(), msg.partition);
        self.forward(&topic, index, msg, ctx)
    }
}

impl Handler<LeaderEpochEnd> for Broker {
    type Result = ResponseFuture<Result<EpochEndReply, BrokerError>>;

    fn handle(&mut self, msg: LeaderEpochEnd, ctx: &mut Context<Self>) -> Self::Result {
        let (topic, index) = (msg.topic.to_string(), msg.partition);
        self.forward(&topic, index, msg, ctx)
    }
}

impl Handler<EnsureFollower> for Broker {
    type Result = ();

    fn handle(&mut self, msg: EnsureFollower, ctx: &mut Context<Self>) {
        self.ensure_follower(msg.topic.as_str(), msg.partition, ctx);
    }
}

impl Handler<PartitionsChanged> for Broker {
    type Result = ();

    fn handle(&mut self, msg: PartitionsChanged, ctx: &mut Context<Self>) {
        let meta = self.shared.view.snapshot();
        let me = self.shared.id;
        for (topic, index) in msg.partitions {
            let Ok(p) = meta.partition(topic.as_str(), index) else {
                continue;
            };
            if topic.as_str() == OFFSETS_TOPIC {
                // A coordinator from another leader epoch must not keep answering.
                let stale = self
                    .coordinators
                    .get(&index)
                    .is_some_and(|(epoch, _)| p.leader != Some(me) || *epoch != p.leader_epoch);
                if stale {
                    if let Some((_, c)) = self.coordinators.remove(&index) {
                        c.do_send(Shutdown);
                    }
                }
            }
            if let Some(r) = self.leaders.get_mut(&p.id) {
                r.sent += 1;
                r.addr.do_send(Refresh);
            }
            if p.replicas.contains(&me) && p.leader != Some(me) {
                self.ensure_follower(topic.as_str(), index, ctx);
            } else if let Some(r) = self.followers.get_mut(&p.id) {
                r.sent += 1;
                r.addr.do_send(Refresh);
            }
        }
    }
}

impl Handler<PartitionsDeleted> for Broker {
    type Result = ();

    fn handle(&mut self, msg: PartitionsDeleted, _ctx: &mut Context<Self>) {
        // The groups' committed offsets of the topic go too, as in Kafka.
        for (_, addr) in self.coordinators.values() {
            addr.do_send(TopicDeleted(msg.topic.clone()));
        }
        let mut tables = self.shared.producers.lock();
        for pid in msg.partitions {
            if let Some(r) = self.leaders.remove(&pid) {
                r.addr.do_send(Shutdown);
            }
            if let Some(r) = self.followers.remove(&pid) {
                r.addr.do_send(Shutdown);
            }
            tables.remove(&pid);
        }
    }
}

/// Removes the running actor of `pid` from `running` if `matches(sent, generation)` holds
/// for it, and returns it.
fn remove_if<A: Actor>(
    running: &mut HashMap<PartitionId, Running<A>>,
    pid: PartitionId,
    matches: impl Fn(u64, u64) -> bool,
) -> Option<Running<A>> {
    if running
        .get(&pid)
        .is_some_and(|r| matches(r.sent, r.generation))
    {
        running.remove(&pid)
    } else {
        None
    }
}

impl Handler<PartitionIdle> for Broker {
    type Result = ();

    fn handle(&mut self, msg: PartitionIdle, _ctx: &mut Context<Self>) {
        // Only stop the actor if nothing we sent is still in its mailbox; otherwise it has
        // work again and will report later.
        let quiet = |sent: u64, _generation: u64| sent == msg.received;
        match msg.role {
            Role::Leader => {
                if let Some(r) = remove_if(&mut self.leaders, msg.partition, quiet) {
                    r.addr.do_send(Shutdown);
                }
            }
            Role::Follower => {
                if let Some(r) = remove_if(&mut self.followers, msg.partition, quiet) {
                    r.addr.do_send(Shutdown);
                }
            }
        }
    }
}

impl Handler<PartitionStopped> for Broker {
    type Result = ();

    fn handle(&mut self, msg: PartitionStopped, _ctx: &mut Context<Self>) {
        // A stop from an older generation must not forget the actor that replaced it.
        match msg.role {
            Role::Leader => {
                remove_if(&mut self.leaders, msg.partition, |_, g| g == msg.generation);
            }
            Role::Follower => {
                remove_if(&mut self.followers, msg.partition, |_, g| {
                    g == msg.generation
                });
            }
        }
    }
}

impl Handler<SetReplicaFetching> for Broker {
    type Result = ();

    fn handle(&mut self, msg: SetReplicaFetching, _ctx: &mut Context<Self>) {
        self.shared
            .fetching_paused
            .store(!msg.0, std::sync::atomic::Ordering::Relaxed);
        info!(broker = %self.shared.id, fetching = msg.0, "replica fetching switched");
    }
}

impl Handler<ObserveBroker> for Broker {
    type Result = MessageResult<ObserveBroker>;

    fn handle(&mut self, _msg: ObserveBroker, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(BrokerSnapshot {
            id: self.shared.id.0,
            leaders_running: self.leaders.len(),
            followers_running: self.followers.len(),
        })
    }
}

impl Handler<ObservePartition> for Broker {
    type Result = ResponseFuture<Option<crate::messages::LeaderSnapshot>>;

    fn handle(&mut self, msg: ObservePartition, _ctx: &mut Context<Self>) -> Self::Result {
        let meta = self.shared.view.snapshot();
        let addr = meta
            .partition(&msg.topic, msg.partition)
            .ok()
            .and_then(|p| self.leaders.get_mut(&p.id))
            .map(|r| {
                r.sent += 1;
                r.addr.clone()
            });
        Box::pin(async move {
            match addr {
                Some(a) => a.send(ObserveLeader).await.ok(),
                None => None,
            }
        })
    }
}

impl Handler<GroupRequest> for Broker {
    type Result = ResponseFuture<Result<GroupReply, BrokerError>>;

    fn handle(&mut self, msg: GroupRequest, ctx: &mut Context<Self>) -> Self::Result {
        let partitions = self
            .shared
            .view
            .snapshot()
            .topic(OFFSETS_TOPIC)
            .map(|t| t.partitions.len() as u32);
        let coordinator = partitions.and_then(|n| {
            let index = partition_for_group(&msg.group, n);
            self.coordinator(index, &msg.group, ctx)
        });
        Box::pin(async move { coordinator?.send(msg).await? })
    }
}

impl Handler<ListGroups> for Broker {
    type Result = ResponseFuture<Result<Vec<(String, crate::group::GroupState)>, BrokerError>>;

    fn handle(&mut self, msg: ListGroups, ctx: &mut Context<Self>) -> Self::Result {
        let meta = self.shared.view.snapshot();
        let me = self.shared.id;
        let led: Vec<u32> = meta
            .topic(OFFSETS_TOPIC)
            .map(|t| {
                t.partitions
                    .iter()
                    .filter(|p| p.leader == Some(me))
                    .map(|p| p.index)
                    .collect()
            })
            .unwrap_or_default();
        let shards: Vec<_> = led
            .into_iter()
            .filter_map(|i| self.coordinator(i, "", ctx).ok())
            .collect();
        Box::pin(async move {
            let mut out = Vec::new();
            for s in shards {
                out.extend(s.send(msg).await??);
            }
            Ok(out)
        })
    }
}

impl Handler<Shutdown> for Broker {
    type Result = ();

    fn handle(&mut self, _msg: Shutdown, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
