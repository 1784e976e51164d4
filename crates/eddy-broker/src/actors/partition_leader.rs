//! `PartitionLeader`: the leader replica of one partition on one broker.
//!
//! It appends producer batches to its broker's log, serves consumers below the high watermark,
//! serves its followers' fetches, and answers `acks=all` producers once the high watermark
//! passes their records. The replication rules live in [`LeaderState`]; this actor feeds it
//! events and carries out what it returns. Started by its broker on the first request, stopped
//! when idle (nothing in flight, nothing parked, no request for `partition_idle_timeout`).
//!
//! It gives each request its offsets itself ([`Stamped`]) and hands the stamped batches to
//! parked follower fetches as soon as it queues them for its own log: the leader's commit and
//! the followers' run at the same time, not one after the other, and the high watermark (the
//! smallest durable log end of the ISR, the leader's included) passes the records once the
//! slower of them lands. If an append fails after followers may have copied it, the leader
//! refuses produce until the controller has given it a new leader epoch, under which the
//! followers cut what the leader does not have (KIP-101) before they fetch again.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use eddy_log::{Appended, LogError, Stamped};
use eddy_types::{Acks, BrokerId, PartitionId, TopicName};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::broker::Broker;
use super::{headers, now, HwCheckpoint, Shared};
use crate::error::BrokerError;
use crate::messages::{
    AlterIsr, DeleteRecords, EnsureFollower, EpochEndReply, Fetch, FetchReply, LeaderEpochEnd,
    LeaderSnapshot, ListOffsets, NewLeaderEpoch, ObserveLeader, OffsetsReply, PartitionIdle,
    PartitionStopped, Produce, ProduceReply, Refresh, ReplicaFetchReply, ReplicateFrom, Role,
    Shutdown,
};
use crate::metadata::PartitionMeta;
use crate::producers::{BatchIdentity, Check, ProducerTable};
use crate::replication::LeaderState;

/// How often the leader checks deadlines, follower lag and idleness.
const TICK: Duration = Duration::from_millis(100);
/// Wait before asking the controller again for a new epoch it refused.
const EPOCH_RETRY: Duration = Duration::from_secs(1);

type Reply<T> = oneshot::Sender<Result<T, BrokerError>>;

/// An `acks=all` request waiting for the high watermark to pass `need`.
struct WaitingAck {
    need: u64,
    reply: ProduceReply,
    tx: Reply<ProduceReply>,
    deadline: Instant,
    started: Instant,
}

/// A fetch with nothing to return yet, held until records arrive or its wait ends.
enum Parked {
    Consumer {
        msg: Fetch,
        tx: Reply<FetchReply>,
        deadline: Instant,
        /// Names it for the timer that ends its wait.
        id: u64,
    },
    Replica {
        msg: ReplicateFrom,
        tx: Reply<ReplicaFetchReply>,
        deadline: Instant,
    },
}

/// The leader replica of one partition.
pub(crate) struct PartitionLeader {
    /// The partition's topic and index (for errors, metrics and the controller).
    topic: TopicName,
    index: u32,
    /// Its storage id in the broker's log.
    pid: PartitionId,
    /// The epoch this actor leads in; any metadata with another epoch ends it.
    epoch: i32,
    min_insync: u32,
    shared: Arc<Shared>,
    /// The owning broker, told when this actor idles or stops.
    broker: Addr<Broker>,
    /// Tells this actor apart from an earlier or later one for the same partition.
    generation: u64,
    /// Follower positions, ISR and high watermark.
    repl: LeaderState,
    /// `acks=all` requests in offset order.
    waiting: VecDeque<WaitingAck>,
    /// Fetches waiting for records.
    parked: Vec<Parked>,
    /// The id of the next consumer fetch parked.
    next_park_id: u64,
    /// Reads (consumers' and followers') running on a blocking thread, not answered yet.
    reading: usize,
    /// Appends submitted to the log and not answered yet.
    inflight: usize,
    /// Offset the next appended record gets: the log end plus the queued appends.
    next_offset: u64,
    /// The queued appends, oldest first, until their commit is answered: parked follower
    /// fetches are served from them.
    unflushed: VecDeque<Stamped>,
    /// The end of what followers were handed from `unflushed`.
    handed_end: u64,
    /// An append failed: produce is refused with this error until the queue has drained
    /// (and, if followers may hold what failed, until a new leader epoch).
    failure: Option<BrokerError>,
    /// A new leader epoch has been asked of the controller and not answered yet.
    epoch_asked: bool,
    /// When to ask again after a refusal.
    next_epoch_ask: Instant,
    /// Messages handled (the broker compares it with what it sent before stopping us).
    received: u64,
    last_activity: Instant,
    idle_reported: bool,
    /// When each follower last fetched; one not seen lately is woken on append.
    follower_seen: BTreeMap<BrokerId, Instant>,
    checkpoint: HwCheckpoint,
    /// `eddy_partition_high_watermark` for this partition (a handle: no lookup per move).
    hw_gauge: metrics::Gauge,
    /// The fetch metrics of this partition's topic, as handles (no label allocation per fetch).
    fetch_metrics: FetchMetrics,
    /// `eddy_produce_records_total` and `eddy_produce_bytes_total` of the topic, as handles.
    produce_records: metrics::Counter,
    produce_bytes: metrics::Counter,
}

/// Handles on the per-topic fetch metrics, cloned into each fetch's answer.
#[derive(Clone)]
struct FetchMetrics {
    requests: metrics::Counter,
    bytes: metrics::Counter,
    records: metrics::Counter,
    latency: metrics::Histogram,
}

impl FetchMetrics {
    fn new(topic: &TopicName) -> FetchMetrics {
        let t = topic.to_string();
        FetchMetrics {
            requests: metrics::counter!(eddy_metrics::FETCH_REQUESTS, "topic" => t.clone()),
            bytes: metrics::counter!(eddy_metrics::FETCH_BYTES, "topic" => t.clone()),
            records: metrics::counter!(eddy_metrics::FETCH_RECORDS, "topic" => t.clone()),
            latency: metrics::histogram!(eddy_metrics::FETCH_LATENCY, "topic" => t),
        }
    }

    /// Counts a fetch once, when it is answered (at once or after a long poll).
    fn answered(&self, reply: &FetchReply, started: Instant) {
        self.requests.increment(1);
        self.bytes.increment(reply.records.len() as u64);
        self.records
            .increment(crate::records::count_records(&reply.records));
        self.latency.record(started.elapsed().as_secs_f64());
    }
}

impl PartitionLeader {
    /// Runs `f` on this partition's idempotent-producer table, under the broker's lock.
    fn producer_table<R>(&self, f: impl FnOnce(&mut ProducerTable) -> R) -> R {
        f(self.shared.producers.lock().entry(self.pid).or_default())
    }

    /// Builds the leader of `meta` from the broker's log (log end and checkpointed mark).
    pub(crate) fn new(
        shared: Arc<Shared>,
        broker: Addr<Broker>,
        generation: u64,
        topic: TopicName,
        meta: &PartitionMeta,
        min_insync: u32,
    ) -> Result<PartitionLeader, BrokerError> {
        let offsets = shared.log.offsets(meta.id)?;
        shared.producers.ensure(&shared.log, meta.id);
        let t = now();
        let repl = LeaderState::new(
            shared.id,
            &meta.replicas,
            &meta.isr,
            offsets.log_end,
            offsets.high_watermark,
            shared.config.replica_lag_time_max,
            t,
        );
        let hw_gauge = metrics::gauge!(
            eddy_metrics::PARTITION_HIGH_WATERMARK,
            "topic" => topic.to_string(),
            "partition" => meta.index.to_string()
        );
        Ok(PartitionLeader {
            hw_gauge,
            fetch_metrics: FetchMetrics::new(&topic),
            produce_records: metrics::counter!(eddy_metrics::PRODUCE_RECORDS, "topic" => topic.to_string()),
            produce_bytes: metrics::counter!(eddy_metrics::PRODUCE_BYTES, "topic" => topic.to_string()),
            index: meta.index,
            pid: meta.id,
            epoch: meta.leader_epoch,
            min_insync,
            broker,
            generation,
            checkpoint: HwCheckpoint::new(repl.high_watermark()),
            repl,
            topic,
            shared,
            waiting: VecDeque::new(),
            parked: Vec::new(),
            next_park_id: 0,
            reading: 0,
            inflight: 0,
            next_offset: offsets.log_end,
            unflushed: VecDeque::new(),
            handed_end: offsets.log_end,
            failure: None,
            epoch_asked: false,
            next_epoch_ask: t,
            received: 0,
            last_activity: t,
            idle_reported: false,
            follower_seen: BTreeMap::new(),
        })
    }

    fn touch(&mut self) {
        self.received += 1;
        self.last_activity = now();
        self.idle_reported = false;
    }

    fn not_leader(&self) -> BrokerError {
        let leader = self
            .current_meta()
            .and_then(|p| p.leader)
            .filter(|l| *l != self.shared.id);
        BrokerError::NotLeader {
            topic: self.topic.clone(),
            partition: self.index,
            broker: self.shared.id,
            leader,
        }
    }

    fn current_meta(&self) -> Option<PartitionMeta> {
        let m = self.shared.view.snapshot();
        m.partition(self.topic.as_str(), self.index).ok().cloned()
    }

    /// Answers every `acks=all` request the high watermark now covers.
    fn release_acks(&mut self) {
        let hw = self.repl.high_watermark();
        while self.waiting.front().is_some_and(|w| w.need <= hw) {
            if let Some(w) = self.waiting.pop_front() {
                record_latency("all", w.started);
                let _ = w.tx.send(Ok(w.reply));
            }
        }
    }

    /// Answers a produce whose records are in the log up to `last_offset`: at once for
    /// `acks=1`, or once the high watermark passes them for `acks=all`.
    fn answer_appended(
        &mut self,
        reply: ProduceReply,
        last_offset: u64,
        acks: Acks,
        tx: Reply<ProduceReply>,
        started: Instant,
        deadline: Instant,
    ) {
        match acks {
            Acks::All => {
                self.waiting.push_back(WaitingAck {
                    need: last_offset + 1,
                    reply,
                    tx,
                    deadline,
                    started,
                });
                self.release_acks();
            }
            _ => {
                record_latency("1", started);
                let _ = tx.send(Ok(reply));
            }
        }
    }

    fn high_watermark_moved(&mut self) {
        self.hw_gauge.set(self.repl.high_watermark() as f64);
        self.release_acks();
        self.serve_parked(false, false);
    }

    /// Answers parked fetches that now have something, or whose wait ended (`expire`); only
    /// the followers' with `replicas_only` (a queued append has nothing for consumers).
    fn serve_parked(&mut self, expire: bool, replicas_only: bool) {
        if self.parked.is_empty() {
            return;
        }
        let t = now();
        let parked = std::mem::take(&mut self.parked);
        for p in parked {
            match p {
                p @ Parked::Consumer { .. } if replicas_only => self.parked.push(p),
                Parked::Consumer { tx, .. } if tx.is_closed() => {}
                Parked::Consumer {
                    msg,
                    tx,
                    deadline,
                    id,
                } => {
                    let done = expire && t >= deadline;
                    match self.read_for_consumer(&msg) {
                        Ok(r) if satisfied(&msg, &r) || done => {
                            let _ = tx.send(Ok(r));
                        }
                        Ok(_) => self.parked.push(Parked::Consumer {
                            msg,
                            tx,
                            deadline,
                            id,
                        }),
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                }
                Parked::Replica { msg, tx, deadline } => {
                    let done = expire && t >= deadline;
                    match self.read_for_replica(&msg) {
                        Ok(r) if !r.records.is_empty() || done => {
                            let _ = tx.send(Ok(r));
                        }
                        Ok(_) => self.parked.push(Parked::Replica { msg, tx, deadline }),
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                }
            }
        }
    }

    /// The wait of the consumer fetch `id` ended: it gets what there is (if it is still
    /// parked: records may have answered it already).
    fn wait_ended(&mut self, id: u64) {
        let Some(at) = self
            .parked
            .iter()
            .position(|p| matches!(p, Parked::Consumer { id: i, .. } if *i == id))
        else {
            return;
        };
        if let Parked::Consumer { msg, tx, .. } = self.parked.swap_remove(at) {
            let _ = tx.send(self.read_for_consumer(&msg));
        }
    }

    /// Reads on the actor's thread: only for fetches parked at the end of the log, whose
    /// records are the newest (in the page cache).
    fn read_for_consumer(&self, msg: &Fetch) -> Result<FetchReply, BrokerError> {
        read_records(
            &self.shared.log,
            self.pid,
            msg,
            self.repl.high_watermark(),
            self.repl.log_end(),
        )
    }

    /// A fetch's first read, on a blocking thread (at most [`super::READERS_PER_BROKER`] of
    /// a broker at once): it may be of records long evicted from the page cache, and a read
    /// from the disk must not hold the actors' thread. Below the high watermark nothing
    /// changes but the log start (retention, DeleteRecords), which the read checks in its
    /// own transaction.
    fn read_off_thread(
        &self,
        msg: &Fetch,
    ) -> impl std::future::Future<Output = Result<FetchReply, BrokerError>> + 'static {
        let (pid, hw, log_end) = (self.pid, self.repl.high_watermark(), self.repl.log_end());
        let msg = msg.clone();
        self.off_thread(move |log| read_records(log, pid, &msg, hw, log_end))
    }

    /// A follower's read of batches the leader has committed (a follower catching up after
    /// a restart reads far behind the end), on a blocking thread like a consumer's.
    fn replica_read_off_thread(
        &self,
        msg: &ReplicateFrom,
    ) -> impl std::future::Future<Output = Result<ReplicaFetchReply, BrokerError>> + 'static {
        let (pid, hw, durable) = (self.pid, self.repl.high_watermark(), self.repl.log_end());
        let (from, max_bytes) = (msg.fetch_offset, msg.max_bytes);
        self.off_thread(move |log| {
            let f = log.read(pid, from, max_bytes)?;
            Ok(ReplicaFetchReply {
                records: f.records,
                high_watermark: hw,
                log_start: f.offsets.log_start,
                log_end: durable,
            })
        })
    }

    /// Runs `read` on a blocking thread, once one of the broker's reader permits is free.
    fn off_thread<T: Send + 'static>(
        &self,
        read: impl FnOnce(&eddy_log::LogStore) -> Result<T, BrokerError> + Send + 'static,
    ) -> impl std::future::Future<Output = Result<T, BrokerError>> + 'static {
        let log = self.shared.log.clone();
        let readers = self.shared.readers.clone();
        async move {
            let _permit = readers
                .acquire_owned()
                .await
                .map_err(|e| BrokerError::Stopped(e.to_string()))?;
            tokio::task::spawn_blocking(move || read(&log))
                .await
                .map_err(|e| BrokerError::Stopped(format!("read thread: {e}")))?
        }
    }

    /// A fetch's first read came back: answer it, or park it until records arrive.
    fn first_read_done(
        &mut self,
        msg: Fetch,
        tx: Reply<FetchReply>,
        read: Result<FetchReply, BrokerError>,
        deadline: Instant,
        ctx: &mut Context<Self>,
    ) {
        let read = match read {
            // Records were committed while it read: they are the newest, read them here.
            Ok(r) if !satisfied(&msg, &r) && r.high_watermark != self.repl.high_watermark() => {
                self.read_for_consumer(&msg)
            }
            other => other,
        };
        match read {
            Ok(r) if satisfied(&msg, &r) || msg.max_wait.is_zero() => {
                let _ = tx.send(Ok(r));
            }
            Ok(_) => {
                let id = self.next_park_id;
                self.next_park_id += 1;
                // Its own timer: the tick comes only every 100 ms, and clients ask for
                // waits of a few ms (librdkafka's consumers in `eddy bench`: 10 ms).
                let wait = deadline.saturating_duration_since(now());
                ctx.run_later(wait, move |act, _| act.wait_ended(id));
                self.parked.push(Parked::Consumer {
                    msg,
                    tx,
                    deadline,
                    id,
                });
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        }
    }

    /// What a follower at `msg.fetch_offset` gets: stored batches below the log end this
    /// actor knows committed, past it the queued append that starts there.
    fn read_for_replica(&mut self, msg: &ReplicateFrom) -> Result<ReplicaFetchReply, BrokerError> {
        let durable = self.repl.log_end();
        if msg.fetch_offset < durable {
            let f = self
                .shared
                .log
                .read(self.pid, msg.fetch_offset, msg.max_bytes)?;
            return Ok(ReplicaFetchReply {
                records: f.records,
                high_watermark: self.repl.high_watermark(),
                log_start: f.offsets.log_start,
                log_end: durable,
            });
        }
        // The queued appends from the one holding the fetch offset on, whole, up to
        // `max_bytes` (at least one); joined only when there is more than one.
        let mut parts: Vec<bytes::Bytes> = Vec::new();
        let (mut size, mut end) = (0usize, self.handed_end);
        for s in self.unflushed.iter() {
            let part = if parts.is_empty() {
                if !(s.base_offset() <= msg.fetch_offset && msg.fetch_offset < s.next_offset()) {
                    continue;
                }
                match s.from_offset(msg.fetch_offset) {
                    Some(p) => p,
                    None => break,
                }
            } else if size + s.bytes().len() > msg.max_bytes {
                break;
            } else {
                s.bytes().clone()
            };
            size += part.len();
            end = end.max(s.next_offset());
            parts.push(part);
        }
        self.handed_end = end;
        let records = match parts.len() {
            0 => bytes::Bytes::new(),
            1 => parts.pop().unwrap_or_default(),
            _ => {
                let mut joined = bytes::BytesMut::with_capacity(size);
                for p in &parts {
                    joined.extend_from_slice(p);
                }
                joined.freeze()
            }
        };
        Ok(ReplicaFetchReply {
            records,
            high_watermark: self.repl.high_watermark(),
            log_start: self.shared.log.offsets(self.pid)?.log_start,
            log_end: durable,
        })
    }

    /// An append was queued: hand it to the followers waiting for records, and wake the
    /// ones not fetching.
    fn queued(&mut self, stamped: Stamped) {
        self.next_offset = stamped.next_offset();
        self.repl.assigned(self.next_offset);
        self.unflushed.push_back(stamped);
        self.serve_parked(false, true);
        self.wake_followers(now());
    }

    /// The append that starts at `base` failed with `e`. Returns the error to answer its
    /// producer with: the first failure's, for the appends queued behind it (they fail
    /// because it did).
    fn append_failed(&mut self, base: u64, e: BrokerError, ctx: &mut Context<Self>) -> BrokerError {
        self.unflushed.retain(|s| s.base_offset() != base);
        let answer = match &self.failure {
            Some(first) => first.clone(),
            None => {
                warn!(topic = %self.topic, partition = self.index, offset = base, error = %e, "append failed; refusing produce until the queue drains");
                self.failure = Some(e.clone());
                e
            }
        };
        self.recover(ctx);
        answer
    }

    /// After a failure, once nothing is queued: go on from the log's end if no follower was
    /// handed anything past it, else ask for a new leader epoch first.
    fn recover(&mut self, ctx: &mut Context<Self>) {
        if self.failure.is_none() || !self.unflushed.is_empty() || self.inflight > 0 {
            return;
        }
        let end = self.repl.log_end();
        if self.handed_end <= end {
            info!(topic = %self.topic, partition = self.index, log_end = end, "append queue drained after a failure; taking produce again");
            self.next_offset = end;
            self.failure = None;
            return;
        }
        if self.epoch_asked || now() < self.next_epoch_ask {
            return;
        }
        warn!(topic = %self.topic, partition = self.index, log_end = end, handed = self.handed_end, "followers may hold records this leader failed to append; asking for a new leader epoch");
        self.epoch_asked = true;
        let request = NewLeaderEpoch {
            topic: self.topic.clone(),
            partition: self.index,
            leader: self.shared.id,
            leader_epoch: self.epoch,
        };
        let fut = self.shared.new_epoch.send(request);
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| {
            act.epoch_asked = false;
            match res.map_err(BrokerError::from).and_then(|r| r) {
                Ok(epoch) => {
                    info!(topic = %act.topic, partition = act.index, epoch, "new leader epoch; restarting as its leader");
                    act.step_down(ctx);
                }
                // Asked again a second later (the metadata may be on the failed disk too).
                Err(e) => {
                    warn!(topic = %act.topic, partition = act.index, error = %e, "new leader epoch refused");
                    act.next_epoch_ask = now() + EPOCH_RETRY;
                }
            }
        }));
    }

    /// An append finished: move the log end, wake followers, serve parked replica fetches.
    fn appended(&mut self, a: &Appended) {
        let end = a.last_offset + 1;
        while self
            .unflushed
            .front()
            .is_some_and(|s| s.next_offset() <= end)
        {
            self.unflushed.pop_front();
        }
        let t = now();
        if let Some(_hw) = self.repl.appended(end, t) {
            self.high_watermark_moved();
        }
        self.serve_parked(false, false);
        self.wake_followers(t);
    }

    /// Starts (through their brokers) the followers not seen fetching lately: they run on
    /// demand and would not otherwise learn there is something to copy.
    fn wake_followers(&mut self, t: Instant) {
        let stale = self.shared.config.replica_fetch_wait_max * 2;
        let followers: Vec<BrokerId> = self.repl.followers().collect();
        for f in followers {
            let recent = self
                .follower_seen
                .get(&f)
                .is_some_and(|seen| t.saturating_duration_since(*seen) < stale);
            if !recent {
                if let Some(peer) = self.shared.directory.get(f) {
                    peer.do_send(EnsureFollower {
                        topic: self.topic.clone(),
                        partition: self.index,
                    });
                    // Do not wake it again on every append while it starts.
                    self.follower_seen.insert(f, t);
                }
            }
        }
    }

    fn propose_isr(&mut self, isr: Vec<BrokerId>, ctx: &mut Context<Self>) {
        let before = self.repl.isr().len();
        let request = AlterIsr {
            topic: self.topic.clone(),
            partition: self.index,
            leader: self.shared.id,
            leader_epoch: self.epoch,
            isr: isr.clone(),
        };
        info!(topic = %self.topic, partition = self.index, ?isr, "proposing isr change");
        let fut = self.shared.controller.send(request);
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            if let Ok(Err(e)) | Err(e) = res.map_err(BrokerError::from) {
                warn!(topic = %act.topic, partition = act.index, error = %e, "isr change refused");
            }
            // The published metadata is the truth, whatever the answer was.
            match act.current_meta() {
                Some(p) if p.leader == Some(act.shared.id) && p.leader_epoch == act.epoch => {
                    let after = p.isr.len();
                    if after < before {
                        metrics::counter!(eddy_metrics::ISR_SHRINKS).increment(1);
                    } else if after > before {
                        metrics::counter!(eddy_metrics::ISR_EXPANDS).increment(1);
                    }
                    if act.repl.isr_changed(Some(p.isr)).is_some() {
                        act.high_watermark_moved();
                    }
                }
                _ => act.step_down(ctx),
            }
        }));
    }

    fn checkpoint(&mut self, force: bool) {
        let hw = self.repl.high_watermark();
        self.checkpoint.note(&self.shared, self.pid, hw, force);
    }

    /// Leaves: everything waiting is told to go to the new leader.
    fn step_down(&mut self, ctx: &mut Context<Self>) {
        for w in self.waiting.drain(..) {
            let _ = w.tx.send(Err(BrokerError::LeaderChanged {
                topic: self.topic.clone(),
                partition: self.index,
            }));
        }
        let err = self.not_leader();
        for p in self.parked.drain(..) {
            match p {
                Parked::Consumer { tx, .. } => {
                    let _ = tx.send(Err(err.clone()));
                }
                Parked::Replica { tx, .. } => {
                    let _ = tx.send(Err(err.clone()));
                }
            }
        }
        self.checkpoint(true);
        self.broker.do_send(PartitionStopped {
            partition: self.pid,
            role: Role::Leader,
            generation: self.generation,
        });
        ctx.stop();
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        let t = now();
        // acks=all requests past their timeout.
        while let Some(pos) = self.waiting.iter().position(|w| t >= w.deadline) {
            if let Some(w) = self.waiting.remove(pos) {
                let _ = w.tx.send(Err(BrokerError::Timeout("acks=all produce")));
            }
        }
        self.serve_parked(true, false);
        if self.failure.is_some() {
            self.recover(ctx);
        }
        // Records not yet committed (a new leader's, or one restarted) need the followers,
        // even when no new append comes to wake them.
        if self.repl.high_watermark() < self.repl.log_end() {
            self.wake_followers(t);
        }
        if let Some(isr) = self.repl.check_lag(t) {
            self.propose_isr(isr, ctx);
        }
        self.checkpoint(false);
        let idle = t.saturating_duration_since(self.last_activity)
            >= self.shared.config.partition_idle_timeout;
        if idle
            && !self.idle_reported
            && self.inflight == 0
            // A leader waiting for a new epoch must not be replaced by one under the old.
            && self.failure.is_none()
            && self.waiting.is_empty()
            && self.parked.is_empty()
            && self.reading == 0
            && !self.repl.isr_change_pending()
        {
            self.checkpoint(true);
            self.idle_reported = true;
            self.broker.do_send(PartitionIdle {
                partition: self.pid,
                role: Role::Leader,
                received: self.received,
            });
        }
    }

    fn fenced(&self, requested: i32) -> Option<BrokerError> {
        if requested == self.epoch {
            return None;
        }
        Some(BrokerError::FencedLeaderEpoch {
            topic: self.topic.clone(),
            partition: self.index,
            requested,
            current: self.epoch,
        })
    }
}

/// Reads `msg`'s records below the high watermark `hw`.
fn read_records(
    log: &eddy_log::LogStore,
    pid: PartitionId,
    msg: &Fetch,
    hw: u64,
    log_end: u64,
) -> Result<FetchReply, BrokerError> {
    let f = if msg.capped {
        log.read_capped(pid, msg.offset, msg.max_bytes, hw)?
    } else {
        log.read_until(pid, msg.offset, msg.max_bytes, hw)?
    };
    Ok(FetchReply {
        next_offset: f.next_offset,
        records: f.records,
        high_watermark: hw,
        log_start: f.offsets.log_start,
        log_end,
    })
}

/// Whether a read answers its fetch now: `min_bytes` of records, or as many as the fetch's
/// limit let it take while more are readable (waiting would bring no more; it would only
/// read the same again on every append).
fn satisfied(msg: &Fetch, r: &FetchReply) -> bool {
    r.records.len() >= msg.min_bytes.max(1)
        || (!r.records.is_empty() && r.next_offset < r.high_watermark)
}

/// Counts a refused produce by its error's kind.
fn count_refusal(topic: &TopicName, e: &impl eddy_types::ClassifyError) {
    metrics::counter!(eddy_metrics::PRODUCE_ERRORS, "topic" => topic.to_string(), "error" => format!("{:?}", e.kind())).increment(1);
}

fn record_latency(acks: &'static str, started: Instant) {
    metrics::histogram!(eddy_metrics::PRODUCE_LATENCY, "acks" => acks)
        .record(now().saturating_duration_since(started).as_secs_f64());
}

impl Actor for PartitionLeader {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        debug!(topic = %self.topic, partition = self.index, epoch = self.epoch, "partition leader started");
        metrics::gauge!(eddy_metrics::PARTITION_ACTORS, "role" => "leader").increment(1.0);
        self.hw_gauge.set(self.repl.high_watermark() as f64);
        ctx.run_interval(TICK, |act, ctx| act.tick(ctx));
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        metrics::gauge!(eddy_metrics::PARTITION_ACTORS, "role" => "leader").decrement(1.0);
        debug!(topic = %self.topic, partition = self.index, "partition leader stopped");
    }
}

impl Handler<Produce> for PartitionLeader {
    type Result = ResponseFuture<Result<ProduceReply, BrokerError>>;

    fn handle(&mut self, msg: Produce, ctx: &mut Context<Self>) -> Self::Result {
        self.touch();
        let started = now();
        let (tx, rx) = oneshot::channel();
        let answer = async move {
            rx.await
                .unwrap_or_else(|e| Err(BrokerError::Stopped(e.to_string())))
        };
        let isr = self.repl.isr().len();
        if msg.acks == Acks::All && isr < self.min_insync as usize {
            metrics::counter!(eddy_metrics::PRODUCE_ERRORS, "topic" => self.topic.to_string(), "error" => "not_enough_replicas").increment(1);
            let _ = tx.send(Err(BrokerError::NotEnoughReplicas {
                topic: self.topic.clone(),
                partition: self.index,
                isr,
                min: self.min_insync,
            }));
            return Box::pin(answer);
        }
        if let Some(e) = &self.failure {
            count_refusal(&self.topic, e);
            let _ = tx.send(Err(e.clone()));
            return Box::pin(answer);
        }
        // Idempotent producers: a retried batch is answered with its first offsets, a gap or
        // a stale epoch is refused; nothing is written in either case.
        let ids: Vec<BatchIdentity> = headers(&msg.records)
            .iter()
            .map(|(h, _)| BatchIdentity::of(h))
            .collect();
        let mut tracked: Option<BatchIdentity> = None;
        let mut early: Option<Result<(u64, u64), BrokerError>> = None;
        if ids.iter().any(BatchIdentity::is_idempotent) {
            let (topic, partition) = (self.topic.clone(), self.index);
            if ids.len() != 1 {
                early = Some(Err(BrokerError::InvalidRecords {
                    topic,
                    partition,
                    reason: "an idempotent producer sends one batch per partition per request"
                        .into(),
                }));
            } else {
                let id = ids[0];
                let producer_id = id.producer_id;
                let mut tables = self.shared.producers.lock();
                let table = tables.entry(self.pid).or_default();
                early = match table.check(&id) {
                    Check::Append => {
                        table.record(&id, None);
                        tracked = Some(id);
                        None
                    }
                    Check::InFlight => {
                        Some(Err(BrokerError::DuplicateInFlight { topic, partition }))
                    }
                    Check::OutOfOrder { expected, got } => {
                        Some(Err(BrokerError::OutOfOrderSequence {
                            topic,
                            partition,
                            producer_id,
                            expected,
                            got,
                        }))
                    }
                    Check::Fenced { current, got } => Some(Err(BrokerError::ProducerFenced {
                        topic,
                        partition,
                        producer_id,
                        current,
                        got,
                    })),
                    Check::Duplicate {
                        base_offset,
                        last_offset,
                    } => Some(Ok((base_offset, last_offset))),
                };
            }
        }
        match early {
            Some(Err(e)) => {
                count_refusal(&self.topic, &e);
                let _ = tx.send(Err(e));
                return Box::pin(answer);
            }
            Some(Ok((base_offset, last_offset))) => {
                let log_start = self
                    .shared
                    .log
                    .offsets(self.pid)
                    .map_or(-1, |o| o.log_start as i64);
                let reply = ProduceReply {
                    base_offset: base_offset as i64,
                    last_offset: last_offset as i64,
                    log_start,
                };
                let deadline = started + msg.timeout;
                self.answer_appended(reply, last_offset, msg.acks, tx, started, deadline);
                return Box::pin(answer);
            }
            None => {}
        }
        let bytes = msg.records.len() as u64;
        let stamped = match Stamped::new(msg.records, self.next_offset, self.epoch) {
            Ok(s) => s,
            Err(e) => {
                if let Some(id) = tracked {
                    self.producer_table(|t| t.forget(id.producer_id));
                }
                count_refusal(&self.topic, &e);
                let _ = tx.send(Err(e.into()));
                return Box::pin(answer);
            }
        };
        let base = stamped.base_offset();
        let pending = self.shared.log.append_stamped(self.pid, stamped.clone());
        self.inflight += 1;
        self.queued(stamped);
        let mut tx = Some(tx);
        if msg.acks == Acks::None {
            if let Some(tx) = tx.take() {
                let _ = tx.send(Ok(ProduceReply {
                    base_offset: -1,
                    last_offset: -1,
                    log_start: -1,
                }));
            }
        }
        let acks = msg.acks;
        let deadline = started + msg.timeout;
        ctx.spawn(pending.into_actor(self).map(
            move |res: Result<Appended, LogError>, act, ctx| {
                act.inflight -= 1;
                let a = match res {
                    Ok(a) => a,
                    Err(e) => {
                        if let Some(id) = tracked {
                            // The outcome is unknown to the producer: forget what we knew of it,
                            // so its retry is accepted as a new batch.
                            act.producer_table(|t| t.forget(id.producer_id));
                        }
                        let e = act.append_failed(base, e.into(), ctx);
                        count_refusal(&act.topic, &e);
                        if let Some(tx) = tx {
                            let _ = tx.send(Err(e));
                        }
                        return;
                    }
                };
                act.produce_records
                    .increment(a.last_offset - a.base_offset + 1);
                act.produce_bytes.increment(bytes);
                let reply = ProduceReply {
                    base_offset: a.base_offset as i64,
                    last_offset: a.last_offset as i64,
                    log_start: a.log_start as i64,
                };
                if let Some(id) = tracked {
                    act.producer_table(|t| t.appended(&id, a.base_offset, a.last_offset));
                }
                act.appended(&a);
                let Some(tx) = tx else { return };
                act.answer_appended(reply, a.last_offset, acks, tx, started, deadline);
            },
        ));
        Box::pin(answer)
    }
}

impl Handler<Fetch> for PartitionLeader {
    type Result = ResponseFuture<Result<FetchReply, BrokerError>>;

    fn handle(&mut self, msg: Fetch, ctx: &mut Context<Self>) -> Self::Result {
        self.touch();
        let fetch_metrics = self.fetch_metrics.clone();
        let started = Instant::now();
        let (tx, rx) = oneshot::channel();
        let deadline = now() + msg.max_wait;
        self.reading += 1;
        let read = self.read_off_thread(&msg);
        ctx.spawn(read.into_actor(self).map(move |read, act, ctx| {
            act.reading -= 1;
            act.first_read_done(msg, tx, read, deadline, ctx);
        }));
        Box::pin(async move {
            let reply = rx
                .await
                .unwrap_or_else(|e| Err(BrokerError::Stopped(e.to_string())));
            if let Ok(r) = &reply {
                fetch_metrics.answered(r, started);
            }
            reply
        })
    }
}

impl Handler<ReplicateFrom> for PartitionLeader {
    type Result = ResponseFuture<Result<ReplicaFetchReply, BrokerError>>;

    fn handle(&mut self, msg: ReplicateFrom, ctx: &mut Context<Self>) -> Self::Result {
        self.touch();
        let (tx, rx) = oneshot::channel();
        let answer = async move {
            rx.await
                .unwrap_or_else(|e| Err(BrokerError::Stopped(e.to_string())))
        };
        if let Some(e) = self.fenced(msg.leader_epoch) {
            let _ = tx.send(Err(e));
            return Box::pin(answer);
        }
        if !self.repl.is_follower(msg.follower) {
            let _ = tx.send(Err(BrokerError::InvalidTopicConfig {
                topic: self.topic.to_string(),
                reason: format!(
                    "{} holds no replica of partition {}",
                    msg.follower, self.index
                ),
            }));
            return Box::pin(answer);
        }
        let t = now();
        self.follower_seen.insert(msg.follower, t);
        let (hw, expand) = if msg.storage_failed {
            // Offline until its storage works again: out of the ISR now.
            let shrink = self.repl.follower_failed(msg.follower);
            if shrink.is_some() {
                warn!(topic = %self.topic, partition = self.index, follower = %msg.follower, "follower's storage failed; taking it out of the isr");
            }
            (None, shrink)
        } else {
            self.repl
                .follower_fetched(msg.follower, msg.fetch_offset, t)
        };
        if hw.is_some() {
            self.high_watermark_moved();
        }
        if let Some(isr) = expand {
            self.propose_isr(isr, ctx);
        }
        if msg.fetch_offset < self.repl.log_end() {
            // Behind the leader's committed log: read there, off the actors' thread.
            self.reading += 1;
            let read = self.replica_read_off_thread(&msg);
            ctx.spawn(read.into_actor(self).map(move |read, act, _| {
                act.reading -= 1;
                let _ = tx.send(read);
            }));
            return Box::pin(answer);
        }
        match self.read_for_replica(&msg) {
            Ok(r) if !r.records.is_empty() || msg.max_wait.is_zero() => {
                let _ = tx.send(Ok(r));
            }
            Ok(_) => {
                let deadline = t + msg.max_wait;
                self.parked.push(Parked::Replica { msg, tx, deadline });
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        }
        Box::pin(answer)
    }
}

impl Handler<LeaderEpochEnd> for PartitionLeader {
    type Result = Result<EpochEndReply, BrokerError>;

    fn handle(&mut self, msg: LeaderEpochEnd, _ctx: &mut Context<Self>) -> Self::Result {
        self.touch();
        if let Some(e) = self.fenced(msg.leader_epoch) {
            return Err(e);
        }
        let end = self.shared.log.end_offset_for_epoch(self.pid, msg.epoch)?;
        let log_end = self.repl.log_end();
        // The log may hold appends this actor has not seen answered yet: never point a
        // follower past what the replication state knows.
        Ok(EpochEndReply {
            end: end.map(|(e, o)| (e, o.min(log_end))),
            log_end,
        })
    }
}

impl Handler<DeleteRecords> for PartitionLeader {
    type Result = ResponseFuture<Result<u64, BrokerError>>;

    fn handle(&mut self, msg: DeleteRecords, _ctx: &mut Context<Self>) -> Self::Result {
        self.touch();
        let hw = self.repl.high_watermark();
        let offset = msg.offset.unwrap_or(hw);
        if offset > hw {
            // Only committed records can be deleted (Kafka: OFFSET_OUT_OF_RANGE).
            let e = self
                .shared
                .log
                .offsets(self.pid)
                .map(|o| LogError::OffsetOutOfRange {
                    partition: self.pid,
                    offset,
                    log_start: o.log_start,
                    log_end: hw,
                });
            let e = match e {
                Ok(e) | Err(e) => BrokerError::from(e),
            };
            return Box::pin(async move { Err(e) });
        }
        let pending = self.shared.log.delete_records_before(self.pid, offset);
        Box::pin(async move { Ok(pending.await?) })
    }
}

impl Handler<ListOffsets> for PartitionLeader {
    type Result = ResponseFuture<Result<OffsetsReply, BrokerError>>;

    fn handle(&mut self, msg: ListOffsets, _ctx: &mut Context<Self>) -> Self::Result {
        self.touch();
        let (hw, log_end, leader_epoch) =
            (self.repl.high_watermark(), self.repl.log_end(), self.epoch);
        let reply = move |log_start, by_timestamp: Option<(u64, i64)>| OffsetsReply {
            log_start,
            high_watermark: hw,
            log_end,
            by_timestamp: by_timestamp.filter(|(off, _)| *off < hw),
            leader_epoch,
        };
        let Some(ts) = msg.timestamp else {
            let answer = self.shared.log.offsets(self.pid).map_err(BrokerError::from);
            return Box::pin(std::future::ready(answer.map(|o| reply(o.log_start, None))));
        };
        // A lookup by time walks the batch headers from the log start: a page each, maybe
        // from the disk. Off the actors' thread, like a fetch's first read.
        let pid = self.pid;
        Box::pin(self.off_thread(move |log| {
            let log_start = log.offsets(pid)?.log_start;
            Ok(reply(log_start, log.offset_for_timestamp(pid, ts)?))
        }))
    }
}

impl Handler<Refresh> for PartitionLeader {
    type Result = ();

    fn handle(&mut self, _msg: Refresh, ctx: &mut Context<Self>) {
        self.touch();
        match self.current_meta() {
            Some(p) if p.leader == Some(self.shared.id) && p.leader_epoch == self.epoch => {
                if !self.repl.isr_change_pending()
                    && p.isr != self.repl.isr()
                    && self.repl.isr_changed(Some(p.isr)).is_some()
                {
                    self.high_watermark_moved();
                }
            }
            _ => {
                info!(topic = %self.topic, partition = self.index, epoch = self.epoch, "no longer leader");
                self.step_down(ctx);
            }
        }
    }
}

impl Handler<ObserveLeader> for PartitionLeader {
    type Result = MessageResult<ObserveLeader>;

    fn handle(&mut self, _msg: ObserveLeader, _ctx: &mut Context<Self>) -> Self::Result {
        self.touch();
        MessageResult(LeaderSnapshot {
            leader_epoch: self.epoch,
            replication: self.repl.snapshot(),
            waiting_acks: self.waiting.len(),
        })
    }
}

impl Handler<Shutdown> for PartitionLeader {
    type Result = ();

    fn handle(&mut self, _msg: Shutdown, ctx: &mut Context<Self>) {
        self.received += 1;
        self.step_down(ctx);
    }
}
