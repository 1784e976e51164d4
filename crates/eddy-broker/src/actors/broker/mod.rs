//! `Broker`: one broker of the cluster, owner of one log directory and of every partition
//! replica in it.
//!
//! A partition replica is not an actor of its own: the broker keeps a [`LeaderCore`] for each
//! partition it leads that has had work lately, and a [`FetcherCore`] per other broker for
//! the partitions it follows from it (one replication stream per pair of brokers, as Kafka's
//! replica fetcher). Requests that touch many partitions (a Kafka Produce or Fetch, a
//! follower broker's fetch) are one message here and one commit of the log; an idle
//! partition has no state in memory, no timer and no fetch loop. Deadlines (long polls, acks
//! timeouts) sit in one heap with one timer; the periodic look at partitions visits only the
//! ones with records above their high watermark.
//!
//! Files: this one holds the state, routing, metadata changes, timers and the groups'
//! coordinators; `leading` the requests a leader serves (produce, fetch, offsets, the
//! followers' fetches); `following` this broker's fetches from its leaders.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use eddy_types::{BrokerId, PartitionId, TopicName};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::offsets_partition::{BrokerPort, OffsetsPartition, TopicDeleted};
use super::{now, Shared};
use crate::error::BrokerError;
use crate::fetcher::FetcherCore;
use crate::leader::{Answer, Effects, LeaderCore, LeaderInit};
use crate::messages::{
    AlterIsr, AlterIsrs, BrokerGone, BrokerSnapshot, FetchBatch, GroupReply, GroupRequest,
    Heartbeat, LeaderSnapshot, ListGroups, NewLeaderEpoch, ObserveBroker, ObservePartition,
    PartitionsChanged, PartitionsDeleted, ProduceReply, ReplicaAnswer, SetReplicaFetching,
    Shutdown,
};
use crate::offsets::{partition_for_group, OFFSETS_TOPIC};
use crate::producers::ProducerTable;

mod following;
mod leading;

/// The longest pause between two retention steps (see `Broker::enforce_retention`).
const RETENTION_PAUSE_MAX: Duration = Duration::from_millis(100);
/// How often the broker looks at the partitions that need it (acks timeouts, lagging
/// followers, recovery after a failed append).
const TICK: Duration = Duration::from_millis(100);

pub(crate) type Reply = oneshot::Sender<Result<ProduceReply, BrokerError>>;

/// A partition this broker leads.
pub(super) struct Led {
    core: LeaderCore<Reply>,
    /// Tells this leader state apart from one built later for the same partition (appends
    /// in flight belong to the one that asked for them).
    generation: u64,
}

/// Handles on one topic's metrics (looked up once per topic, not per request).
#[derive(Clone)]
pub(super) struct TopicMetrics {
    produce_records: metrics::Counter,
    produce_bytes: metrics::Counter,
    fetch_requests: metrics::Counter,
    fetch_bytes: metrics::Counter,
    fetch_records: metrics::Counter,
    fetch_latency: metrics::Histogram,
}

impl TopicMetrics {
    fn new(topic: &TopicName) -> TopicMetrics {
        let t = topic.to_string();
        TopicMetrics {
            produce_records: metrics::counter!(eddy_metrics::PRODUCE_RECORDS, "topic" => t.clone()),
            produce_bytes: metrics::counter!(eddy_metrics::PRODUCE_BYTES, "topic" => t.clone()),
            fetch_requests: metrics::counter!(eddy_metrics::FETCH_REQUESTS, "topic" => t.clone()),
            fetch_bytes: metrics::counter!(eddy_metrics::FETCH_BYTES, "topic" => t.clone()),
            fetch_records: metrics::counter!(eddy_metrics::FETCH_RECORDS, "topic" => t.clone()),
            fetch_latency: metrics::histogram!(eddy_metrics::FETCH_LATENCY, "topic" => t),
        }
    }

    /// Counts one fetch's partitions of this topic once, when it is answered: `bytes` and
    /// `records` summed over them, one latency sample.
    fn fetched(&self, bytes: u64, records: u64, started: Instant) {
        self.fetch_requests.increment(1);
        if bytes > 0 {
            self.fetch_bytes.increment(bytes);
            self.fetch_records.increment(records);
        }
        self.fetch_latency
            .record(now().saturating_duration_since(started).as_secs_f64());
    }
}

/// The topics' metric handles, built on first use (again after the partition-series limit
/// is crossed, which moves the fetch-latency histograms: see `eddy_metrics::series_epoch`).
#[derive(Default)]
pub(super) struct TopicMetricsCache(HashMap<TopicName, TopicMetrics>, u64);

impl TopicMetricsCache {
    fn get(&mut self, topic: &TopicName) -> &TopicMetrics {
        let epoch = eddy_metrics::series_epoch();
        if epoch != self.1 {
            self.0.clear();
            self.1 = epoch;
        }
        if !self.0.contains_key(topic) {
            self.0.insert(topic.clone(), TopicMetrics::new(topic));
        }
        match self.0.get(topic) {
            Some(m) => m,
            None => unreachable!("inserted above"),
        }
    }

    fn remove(&mut self, topic: &str) {
        self.0.remove(topic);
    }
}

pub(super) type FetchTx = oneshot::Sender<Vec<Result<crate::messages::FetchReply, BrokerError>>>;

/// The leader side of one follower broker's replication stream from this broker.
#[derive(Default)]
pub(super) struct LeaderLink {
    /// The follower's fetch session (a new one after its broker restarts).
    session: u64,
    /// Partitions with batches for it, in the order they got them.
    ready: VecDeque<PartitionId>,
    /// Partitions with records for it that are not in its session.
    wake: Vec<(TopicName, u32)>,
    /// Positions refused, to tell it.
    refused: Vec<(PartitionId, BrokerError)>,
    /// Its fetch, while there is nothing to send.
    parked: Option<ParkedReplica>,
    next_park: u64,
}

pub(super) struct ParkedReplica {
    id: u64,
    tx: oneshot::Sender<Result<ReplicaAnswer, BrokerError>>,
    max_bytes: usize,
    partition_max_bytes: usize,
}

/// A consumer fetch waiting for one of its partitions' high watermark to move past the
/// offset it reads from.
pub(super) struct Watcher {
    partitions: Vec<(PartitionId, u64)>,
    kind: WatchKind,
}

pub(super) enum WatchKind {
    /// [`crate::messages::AwaitRecords`]: answered with nothing.
    Await(oneshot::Sender<()>),
    /// [`FetchBatch`]: read again when a mark moves; answered with what it read when its
    /// wait ends.
    Fetch {
        msg: FetchBatch,
        tx: FetchTx,
        started: Instant,
        deadline: Instant,
        replies: Vec<Result<crate::messages::FetchReply, BrokerError>>,
    },
}

/// What a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Deadline {
    /// A consumer fetch's wait ends.
    Watch(u64),
    /// A follower broker's parked fetch ends.
    Replica(BrokerId, u64),
}

/// One broker.
pub struct Broker {
    shared: Arc<Shared>,
    /// Tells this run of the broker apart from earlier ones (after a restart).
    incarnation: u64,
    heartbeat: Recipient<Heartbeat>,
    gone: Recipient<BrokerGone>,
    /// The partitions it leads that have state now.
    leaders: HashMap<PartitionId, Led>,
    /// Led partitions the periodic tick looks at.
    attention: HashSet<PartitionId>,
    /// Each follower broker's stream from here.
    links: HashMap<BrokerId, LeaderLink>,
    watchers: HashMap<u64, Watcher>,
    /// The waiting consumer fetches of each partition.
    watched: HashMap<PartitionId, Vec<u64>>,
    next_watcher: u64,
    next_generation: u64,
    topic_metrics: TopicMetricsCache,
    deadlines: BinaryHeap<Reverse<(Instant, Deadline)>>,
    /// When the deadline timer fires next.
    wakeup: Option<Instant>,
    /// ISR changes its leaders want, sent to the controller together.
    isr_queue: Vec<(PartitionId, AlterIsr)>,
    isr_in_flight: bool,
    /// This broker's fetch streams, by leader broker.
    fetchers: HashMap<BrokerId, FetcherCore>,
    /// Which stream follows each partition.
    following: HashMap<PartitionId, BrokerId>,
    /// Streams with a retry timer armed.
    retry_armed: HashSet<BrokerId>,
    /// Idempotent-producer state of the partitions it leads or follows now (rebuilt from the
    /// log's tail when a partition gets state again).
    producers: HashMap<PartitionId, ProducerTable>,
    /// The `__consumer_offsets` partitions this broker leads, each the coordinator of its
    /// groups: by partition index, with the leader epoch it was started in.
    coordinators: HashMap<u32, (i32, Addr<OffsetsPartition>)>,
    last_checkpoint: Instant,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("id", &self.shared.id)
            .field("incarnation", &self.incarnation)
            .field("leaders", &self.leaders.len())
            .field("following", &self.following.len())
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
            attention: HashSet::new(),
            links: HashMap::new(),
            watchers: HashMap::new(),
            watched: HashMap::new(),
            next_watcher: 0,
            next_generation: 0,
            topic_metrics: TopicMetricsCache::default(),
            deadlines: BinaryHeap::new(),
            wakeup: None,
            isr_queue: Vec::new(),
            isr_in_flight: false,
            fetchers: HashMap::new(),
            following: HashMap::new(),
            retry_armed: HashSet::new(),
            producers: HashMap::new(),
            coordinators: HashMap::new(),
            last_checkpoint: now(),
        }
    }

    fn me(&self) -> BrokerId {
        self.shared.id
    }

    /// The partition `topic`/`index` if this broker leads it, with its state built if it had
    /// none (from the log's end and checkpointed high watermark).
    fn led(&mut self, topic: &str, index: u32, now: Instant) -> Result<PartitionId, BrokerError> {
        let meta = self.shared.view.snapshot();
        let p = check_leads(&meta, self.me(), topic, index)?;
        let t = meta.topic(topic)?;
        if let Some(led) = self.leaders.get_mut(&p.id) {
            if led.core.epoch() == p.leader_epoch {
                led.core.touch(now);
                return Ok(p.id);
            }
            // State of an older epoch whose change has not come yet.
            self.drop_leader(p.id, StepDown::Changed);
        }
        if let Some(source) = self.following.get(&p.id).copied() {
            // This broker followed the partition until now: an append of its fetch stream
            // may still be in flight, and must land before a leader takes the log from its
            // end. The client tries again (as after any election).
            let left = self.fetchers.get_mut(&source).is_none_or(|f| f.leave(p.id));
            if !left {
                return Err(BrokerError::LeaderNotAvailable {
                    topic: t.name.clone(),
                    partition: index,
                });
            }
            self.following.remove(&p.id);
        }
        let offsets = self.shared.log.offsets(p.id)?;
        self.producers
            .entry(p.id)
            .or_insert_with(|| super::rebuild_producer_table(&self.shared.log, p.id));
        let init = LeaderInit {
            topic: t.name.clone(),
            index,
            me: self.me(),
            epoch: p.leader_epoch,
            min_insync: t.config.min_insync_replicas,
            replicas: p.replicas.clone(),
            isr: p.isr.clone(),
            log_start: offsets.log_start,
            log_end: offsets.log_end,
            high_watermark: offsets.high_watermark,
            lag_max: self.shared.config.replica_lag_time_max,
        };
        let core = LeaderCore::new(init, now);
        self.shared
            .high_watermarks
            .set(p.id.0, core.high_watermark());
        debug!(topic = %t.name, partition = index, epoch = p.leader_epoch, "leading");
        if core.needs_attention() {
            self.attention.insert(p.id);
        }
        self.next_generation += 1;
        self.leaders.insert(
            p.id,
            Led {
                core,
                generation: self.next_generation,
            },
        );
        Ok(p.id)
    }

    /// Drops the state of a led partition: its waiting producers are told the leader changed
    /// (or that it is gone), its waiting consumers answered (they ask again and learn where
    /// the leader is), its high watermark saved.
    fn drop_leader(&mut self, pid: PartitionId, why: StepDown) {
        let Some(mut led) = self.leaders.remove(&pid) else {
            return;
        };
        self.attention.remove(&pid);
        let mut out = Vec::new();
        led.core.step_down(&mut out);
        send_answers(out);
        for id in self.watched.get(&pid).cloned().unwrap_or_default() {
            self.fire_watcher(id, None);
        }
        let hw = led.core.high_watermark();
        if why != StepDown::Deleted {
            if hw != led.core.saved_high_watermark {
                drop(self.shared.log.checkpoint_high_watermarks(vec![(pid, hw)]));
            }
            if !self.following.contains_key(&pid) {
                self.producers.remove(&pid);
            }
        }
    }

    /// Ends the wait of watcher `id`: with `moved` (a high watermark it waits on moved) a
    /// fetch reads again; without, it is answered with what it read (its wait ended, or its
    /// partition's state went).
    fn fire_watcher(&mut self, id: u64, moved: Option<&mut Context<Self>>) {
        let Some(w) = self.watchers.remove(&id) else {
            return;
        };
        for (pid, _) in &w.partitions {
            if let Some(ids) = self.watched.get_mut(pid) {
                ids.retain(|i| *i != id);
                if ids.is_empty() {
                    self.watched.remove(pid);
                }
            }
        }
        match w.kind {
            WatchKind::Await(tx) => {
                let _ = tx.send(());
            }
            WatchKind::Fetch {
                mut msg,
                tx,
                started,
                deadline,
                replies,
            } => match moved {
                Some(ctx) => {
                    msg.max_wait = deadline.saturating_duration_since(now());
                    self.serve_fetch(msg, tx, started, false, ctx);
                }
                None => self.answer_fetch(&msg, tx, started, replies),
            },
        }
    }

    /// Carries out what a led partition's event asked for.
    fn apply(
        &mut self,
        pid: PartitionId,
        fx: Effects,
        out: Vec<Answer<Reply>>,
        ctx: &mut Context<Self>,
    ) {
        send_answers(out);
        let Some(led) = self.leaders.get_mut(&pid) else {
            return;
        };
        if led.core.needs_attention() {
            self.attention.insert(pid);
        }
        if fx.high_watermark_moved {
            let hw = led.core.high_watermark();
            self.shared.high_watermarks.set(pid.0, hw);
            let waiting: Vec<u64> = self
                .watched
                .get(&pid)
                .map(|ids| {
                    ids.iter()
                        .copied()
                        .filter(|id| {
                            self.watchers.get(id).is_some_and(|w| {
                                w.partitions.iter().any(|(p, off)| *p == pid && *off < hw)
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            for id in waiting {
                self.fire_watcher(id, Some(ctx));
            }
        }
        if let Some(isr) = fx.propose_isr {
            self.propose_isr(pid, isr, ctx);
        }
        if fx.ask_new_epoch {
            self.ask_new_epoch(pid, ctx);
        }
    }

    fn propose_isr(&mut self, pid: PartitionId, isr: Vec<BrokerId>, ctx: &mut Context<Self>) {
        let Some(led) = self.leaders.get(&pid) else {
            return;
        };
        info!(topic = %led.core.topic(), partition = led.core.index(), ?isr, "proposing isr change");
        self.isr_queue.push((
            pid,
            AlterIsr {
                topic: led.core.topic().clone(),
                partition: led.core.index(),
                leader: self.me(),
                leader_epoch: led.core.epoch(),
                isr,
            },
        ));
        self.send_isr_changes(ctx);
    }

    /// Sends the queued ISR changes in one request, if none is in flight (Kafka's
    /// AlterPartition manager batches the same way).
    fn send_isr_changes(&mut self, ctx: &mut Context<Self>) {
        if self.isr_in_flight || self.isr_queue.is_empty() {
            return;
        }
        self.isr_in_flight = true;
        let queued = std::mem::take(&mut self.isr_queue);
        let (pids, requests): (Vec<PartitionId>, Vec<AlterIsr>) = queued.into_iter().unzip();
        let before: Vec<usize> = pids
            .iter()
            .map(|p| self.leaders.get(p).map_or(0, |l| l.core.isr().len()))
            .collect();
        let fut = self.shared.controller.send(AlterIsrs(requests));
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.isr_in_flight = false;
            let results = match res {
                Ok(r) => r,
                Err(e) => vec![Err(BrokerError::from(e)); pids.len()],
            };
            let meta = act.shared.view.snapshot();
            let t = now();
            for ((pid, result), before) in pids.into_iter().zip(results).zip(before) {
                let Some(led) = act.leaders.get_mut(&pid) else {
                    continue;
                };
                if let Err(e) = &result {
                    warn!(topic = %led.core.topic(), partition = led.core.index(), error = %e, "isr change refused");
                }
                // The published metadata is the truth, whatever the answer was.
                let current = meta
                    .partition(led.core.topic().as_str(), led.core.index())
                    .ok()
                    .filter(|p| p.leader == Some(act.shared.id) && p.leader_epoch == led.core.epoch())
                    .map(|p| p.isr.clone());
                let Some(isr) = current else {
                    act.drop_leader(pid, StepDown::Changed);
                    continue;
                };
                if isr.len() < before {
                    metrics::counter!(eddy_metrics::ISR_SHRINKS).increment(1);
                } else if isr.len() > before {
                    metrics::counter!(eddy_metrics::ISR_EXPANDS).increment(1);
                }
                let mut out = Vec::new();
                let fx = led.core.isr_recorded(Some(isr), t, &mut out);
                act.apply(pid, fx, out, ctx);
            }
            act.send_isr_changes(ctx);
        }));
    }

    fn ask_new_epoch(&mut self, pid: PartitionId, ctx: &mut Context<Self>) {
        let Some(led) = self.leaders.get(&pid) else {
            return;
        };
        let request = NewLeaderEpoch {
            topic: led.core.topic().clone(),
            partition: led.core.index(),
            leader: self.me(),
            leader_epoch: led.core.epoch(),
        };
        let fut = self.shared.new_epoch.send(request);
        ctx.spawn(fut.into_actor(self).map(move |res, act, _| {
            match res.map_err(BrokerError::from).and_then(|r| r) {
                Ok(epoch) => {
                    if let Some(led) = act.leaders.get(&pid) {
                        info!(topic = %led.core.topic(), partition = led.core.index(), epoch, "new leader epoch; leading again under it");
                    }
                    act.drop_leader(pid, StepDown::Changed);
                }
                Err(e) => {
                    if let Some(led) = act.leaders.get_mut(&pid) {
                        warn!(topic = %led.core.topic(), partition = led.core.index(), error = %e, "new leader epoch refused");
                        led.core.new_epoch_refused(now());
                    }
                }
            }
        }));
    }

    /// Adds a deadline, arming the timer if it is the earliest.
    fn add_deadline(&mut self, at: Instant, d: Deadline, ctx: &mut Context<Self>) {
        self.deadlines.push(Reverse((at, d)));
        if self.wakeup.is_none_or(|w| at < w) {
            self.wakeup = Some(at);
            let wait = at.saturating_duration_since(now());
            ctx.run_later(wait, |act, ctx| act.deadlines_due(ctx));
        }
    }

    fn deadlines_due(&mut self, ctx: &mut Context<Self>) {
        self.wakeup = None;
        let t = now();
        while let Some(Reverse((at, d))) = self.deadlines.peek().copied() {
            if at > t {
                break;
            }
            self.deadlines.pop();
            match d {
                Deadline::Watch(id) => self.fire_watcher(id, None),
                Deadline::Replica(follower, id) => {
                    let parked = self
                        .links
                        .get(&follower)
                        .and_then(|l| l.parked.as_ref())
                        .is_some_and(|p| p.id == id);
                    if parked {
                        self.answer_link(follower, true, ctx);
                    }
                }
            }
        }
        if let Some(Reverse((at, _))) = self.deadlines.peek().copied() {
            self.wakeup = Some(at);
            ctx.run_later(at.saturating_duration_since(t), |act, ctx| {
                act.deadlines_due(ctx)
            });
        }
    }

    /// The periodic look at the led partitions that need it.
    fn tick(&mut self, ctx: &mut Context<Self>) {
        let t = now();
        let pids: Vec<PartitionId> = self.attention.iter().copied().collect();
        let mut ticked = Vec::with_capacity(pids.len());
        for pid in pids {
            let Some(led) = self.leaders.get_mut(&pid) else {
                self.attention.remove(&pid);
                continue;
            };
            if !led.core.needs_attention() {
                self.attention.remove(&pid);
                continue;
            }
            let mut out = Vec::new();
            let fx = led.core.tick(t, &mut out);
            self.apply(pid, fx, out, ctx);
            ticked.push(pid);
        }
        // Records not committed yet (a new leader's, or one restarted) need the followers,
        // even when no new append comes to wake them: all of them at once, so that a parked
        // replica fetch is answered with every partition, not the first one.
        self.notify_followers(&ticked, ctx);
    }

    /// Every so often: state of idle partitions dropped (leaders' and followers'), and the
    /// high watermarks that moved saved.
    fn housekeeping(&mut self, ctx: &mut Context<Self>) {
        let t = now();
        let idle_after = self.shared.config.partition_idle_timeout;
        let idle: Vec<PartitionId> = self
            .leaders
            .iter()
            .filter(|(_, l)| l.core.is_idle(t, idle_after))
            .map(|(p, _)| *p)
            .collect();
        let mut marks = Vec::new();
        for pid in idle {
            if let Some(led) = self.leaders.remove(&pid) {
                let hw = led.core.high_watermark();
                if hw != led.core.saved_high_watermark {
                    marks.push((pid, hw));
                }
                if !self.following.contains_key(&pid) {
                    self.producers.remove(&pid);
                }
            }
        }
        for f in self.fetchers.values_mut() {
            let before: Vec<PartitionId> = f.partitions().map(|(p, _)| *p).collect();
            if f.leave_idle(t, idle_after) > 0 {
                for pid in before {
                    if f.get(pid).is_none() {
                        self.following.remove(&pid);
                        if !self.leaders.contains_key(&pid) {
                            self.producers.remove(&pid);
                        }
                    }
                }
            }
        }
        let due = t.saturating_duration_since(self.last_checkpoint)
            >= self.shared.config.high_watermark_checkpoint_interval;
        if due {
            self.last_checkpoint = t;
            for (pid, led) in &mut self.leaders {
                let hw = led.core.high_watermark();
                if hw != led.core.saved_high_watermark {
                    led.core.saved_high_watermark = hw;
                    marks.push((*pid, hw));
                }
            }
            for f in self.fetchers.values_mut() {
                f.take_high_watermarks(&mut marks);
            }
        }
        if !marks.is_empty() {
            // Fire and forget: a lost checkpoint only means a lower mark after a restart,
            // which the leader's answers move up again.
            drop(self.shared.log.checkpoint_high_watermarks(marks));
        }
        let following: usize = self.fetchers.values().map(FetcherCore::len).sum();
        let broker = self.me().0.to_string();
        metrics::gauge!(eddy_metrics::PARTITION_ACTORS, "role" => "leader", "broker" => broker.clone())
            .set(self.leaders.len() as f64);
        metrics::gauge!(eddy_metrics::PARTITION_ACTORS, "role" => "follower", "broker" => broker)
            .set(following as f64);
        let _ = ctx;
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
        let me = ctx.address();
        let port = BrokerPort {
            produce: me.clone().recipient(),
            fetch: me.clone().recipient(),
            list_offsets: me.recipient(),
        };
        let addr = OffsetsPartition::new(self.shared.clone(), port, index, p.id).start();
        self.coordinators
            .insert(index, (p.leader_epoch, addr.clone()));
        Ok(addr)
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

/// The partition `topic`/`index` if `me` leads it in `meta`.
pub(super) fn check_leads<'m>(
    meta: &'m crate::metadata::ClusterMetadata,
    me: BrokerId,
    topic: &str,
    index: u32,
) -> Result<&'m crate::metadata::PartitionMeta, BrokerError> {
    leads_of(meta.topic(topic)?, me, index)
}

/// [`check_leads`] on a topic already looked up (a fetch's partitions come topic by topic).
pub(super) fn leads_of(
    t: &crate::metadata::TopicMeta,
    me: BrokerId,
    index: u32,
) -> Result<&crate::metadata::PartitionMeta, BrokerError> {
    let p = t
        .partitions
        .get(index as usize)
        .ok_or_else(|| BrokerError::UnknownPartition {
            topic: t.name.clone(),
            partition: index,
        })?;
    match p.leader {
        Some(l) if l == me => Ok(p),
        None => Err(BrokerError::LeaderNotAvailable {
            topic: t.name.clone(),
            partition: index,
        }),
        Some(l) => Err(BrokerError::NotLeader {
            topic: t.name.clone(),
            partition: index,
            broker: me,
            leader: Some(l),
        }),
    }
}

/// Why a led partition's state goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StepDown {
    /// Another broker leads it now, or another epoch.
    Changed,
    /// Its topic was deleted.
    Deleted,
}

/// Sends producers their answers (and times the successful ones).
fn send_answers(out: Vec<Answer<Reply>>) {
    for a in out {
        if let Some((acks, waited)) = a.waited {
            let label = if acks == eddy_types::Acks::All {
                "all"
            } else {
                "1"
            };
            metrics::histogram!(eddy_metrics::PRODUCE_LATENCY, "acks" => label)
                .record(waited.as_secs_f64());
        }
        if let Err(e) = &a.result {
            let _ = e;
        }
        let _ = a.to.send(a.result);
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
        ctx.run_interval(TICK, |act, ctx| act.tick(ctx));
        let every = (self.shared.config.partition_idle_timeout / 4)
            .min(self.shared.config.high_watermark_checkpoint_interval)
            .max(Duration::from_millis(100));
        ctx.run_interval(every, |act, ctx| act.housekeeping(ctx));
        self.start_fetchers(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        let mut marks = Vec::new();
        let pids: Vec<PartitionId> = self.leaders.keys().copied().collect();
        for pid in pids {
            if let Some(led) = self.leaders.get(&pid) {
                marks.push((pid, led.core.high_watermark()));
            }
            self.drop_leader(pid, StepDown::Deleted);
        }
        for f in self.fetchers.values_mut() {
            f.take_high_watermarks(&mut marks);
        }
        if !marks.is_empty() {
            drop(self.shared.log.checkpoint_high_watermarks(marks));
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

impl Handler<PartitionsChanged> for Broker {
    type Result = ();

    fn handle(&mut self, msg: PartitionsChanged, ctx: &mut Context<Self>) {
        let meta = self.shared.view.snapshot();
        let me = self.shared.id;
        let t = now();
        let mut touched = Vec::new();
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
            if let Some(led) = self.leaders.get_mut(&p.id) {
                if p.leader == Some(me) && p.leader_epoch == led.core.epoch() {
                    let mut out = Vec::new();
                    let fx = led.core.metadata_isr(&p.isr, t, &mut out);
                    self.apply(p.id, fx, out, ctx);
                    touched.push(p.id);
                } else {
                    info!(topic = %topic, partition = index, "no longer leader");
                    self.drop_leader(p.id, StepDown::Changed);
                }
            }
            match p.leader {
                Some(l) if l != me && p.replicas.contains(&me) => {
                    self.follow(&topic, index, p.id, l, p.leader_epoch, ctx);
                }
                _ => self.unfollow(p.id),
            }
        }
        self.notify_followers(&touched, ctx);
        self.drive_fetchers(ctx);
    }
}

impl Handler<PartitionsDeleted> for Broker {
    type Result = ();

    fn handle(&mut self, msg: PartitionsDeleted, _ctx: &mut Context<Self>) {
        // The groups' committed offsets of the topic go too, as in Kafka.
        for (_, addr) in self.coordinators.values() {
            addr.do_send(TopicDeleted(msg.topic.clone()));
        }
        self.topic_metrics.remove(&msg.topic);
        for pid in msg.partitions {
            self.drop_leader(pid, StepDown::Deleted);
            self.unfollow(pid);
            self.following.remove(&pid);
            self.producers.remove(&pid);
        }
    }
}

impl Handler<SetReplicaFetching> for Broker {
    type Result = ();

    fn handle(&mut self, msg: SetReplicaFetching, ctx: &mut Context<Self>) {
        self.shared
            .fetching_paused
            .store(!msg.0, std::sync::atomic::Ordering::Relaxed);
        info!(broker = %self.shared.id, fetching = msg.0, "replica fetching switched");
        self.drive_fetchers(ctx);
    }
}

impl Handler<ObserveBroker> for Broker {
    type Result = MessageResult<ObserveBroker>;

    fn handle(&mut self, _msg: ObserveBroker, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(BrokerSnapshot {
            id: self.shared.id.0,
            leaders_running: self.leaders.len(),
            followers_running: self.fetchers.values().map(FetcherCore::len).sum(),
        })
    }
}

impl Handler<ObservePartition> for Broker {
    type Result = MessageResult<ObservePartition>;

    fn handle(&mut self, msg: ObservePartition, _ctx: &mut Context<Self>) -> Self::Result {
        let meta = self.shared.view.snapshot();
        let snap = meta
            .partition(&msg.topic, msg.partition)
            .ok()
            .and_then(|p| self.leaders.get(&p.id))
            .map(|l| LeaderSnapshot {
                leader_epoch: l.core.epoch(),
                replication: l.core.snapshot(),
                waiting_acks: l.core.waiting_acks(),
            });
        MessageResult(snap)
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
