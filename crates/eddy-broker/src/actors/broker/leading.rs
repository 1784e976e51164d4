//! What a broker serves as leader: produce, consumer fetches and their waits, offsets,
//! DeleteRecords, the followers' epoch questions and their brokers' fetch streams.

use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use eddy_log::{Appended, LogError, LogStore};
use eddy_types::{Acks, BrokerId, PartitionId};
use tokio::sync::oneshot;

use super::{
    now, send_answers, Broker, Deadline, FetchTx, LeaderLink, ParkedReplica, Reply, WatchKind,
    Watcher,
};
use crate::error::BrokerError;
use crate::leader::{LeaderCore, Notify, ProduceIn, ReplicaRead, Ticket};
use crate::messages::{
    AwaitRecords, DeleteRecords, EpochEndReply, EpochEnds, Fetch, FetchBatch, FetchPartition,
    FetchReply, LeaderEpochEnd, ListOffsets, OffsetsReply, PartitionRecords, Produce, ProduceBatch,
    ProduceReply, ReplicaAnswer, ReplicaData, ReplicaFetch,
};

/// Where a partition a read needs stands.
#[derive(Debug, Clone, Copy)]
pub(super) struct ReadView {
    pub(super) pid: PartitionId,
    pub(super) high_watermark: u64,
    pub(super) log_start: u64,
    pub(super) log_end: u64,
    pub(super) leader_epoch: i32,
}

/// An append in flight, and the leader state it belongs to.
struct Pending {
    pid: PartitionId,
    /// The leader state's generation: one built after it must not get its outcome.
    generation: u64,
    topic: eddy_types::TopicName,
    index: u32,
    ticket: Ticket<Reply>,
}

/// One partition's read in a fetch, made off the broker's thread.
#[derive(Debug, Clone, Copy)]
struct ReadOne {
    slot: usize,
    pid: PartitionId,
    offset: u64,
    max_bytes: usize,
    high_watermark: u64,
    log_end: u64,
}

/// A follower's read of committed batches no longer in memory.
#[derive(Debug, Clone, Copy)]
struct LogRead {
    pid: PartitionId,
    from: u64,
    max_bytes: usize,
    leader_epoch: i32,
    high_watermark: u64,
    log_end: u64,
}

fn view_of(pid: PartitionId, core: &LeaderCore<Reply>) -> ReadView {
    ReadView {
        pid,
        high_watermark: core.high_watermark(),
        log_start: core.log_start(),
        log_end: core.log_end(),
        leader_epoch: core.epoch(),
    }
}

impl Broker {
    /// The state a read of `topic`/`index` needs, if this broker leads it: from its leader
    /// state, or, with none (idle), from the log, where an idle leader left a high watermark
    /// at its log end. A log whose mark is below its end (after a restart, or a failover)
    /// gets leader state, which moves the mark with the followers.
    pub(super) fn read_view(
        &mut self,
        topic: &str,
        index: u32,
        t: Instant,
    ) -> Result<ReadView, BrokerError> {
        let meta = self.shared.view.snapshot();
        let tm = meta.topic(topic)?;
        self.read_view_of(tm, index, t)
    }

    /// [`Self::read_view`] of a topic already looked up in the current metadata: what a fetch
    /// of thousands of partitions does for each, so a partition with leader state of the
    /// current epoch costs two lookups.
    fn read_view_of(
        &mut self,
        tm: &crate::metadata::TopicMeta,
        index: u32,
        t: Instant,
    ) -> Result<ReadView, BrokerError> {
        let p = super::leads_of(tm, self.me(), index)?;
        let pid = p.id;
        let epoch = p.leader_epoch;
        if let Some(led) = self.leaders.get_mut(&pid) {
            if led.core.epoch() == epoch {
                led.core.touch(t);
                return Ok(view_of(pid, &led.core));
            }
        } else if !self.following.contains_key(&pid) {
            let o = self.shared.log.offsets(pid)?;
            if o.high_watermark >= o.log_end {
                return Ok(ReadView {
                    pid,
                    high_watermark: o.log_end,
                    log_start: o.log_start,
                    log_end: o.log_end,
                    leader_epoch: epoch,
                });
            }
        }
        let pid = self.led(tm.name.as_str(), index, t)?;
        Ok(view_of(pid, self.led_core(pid)?))
    }

    /// [`Self::read_view`] of many partitions: one metadata snapshot, each topic looked up
    /// once per run of its partitions (a fetch lists them topic by topic).
    pub(super) fn read_views<'a>(
        &mut self,
        partitions: impl Iterator<Item = (&'a str, u32)>,
        t: Instant,
    ) -> Vec<Result<ReadView, BrokerError>> {
        let meta = self.shared.view.snapshot();
        let mut topic: Option<(&str, Option<&std::sync::Arc<crate::metadata::TopicMeta>>)> = None;
        let mut out = Vec::with_capacity(partitions.size_hint().0);
        for (name, index) in partitions {
            if topic.is_none_or(|(n, _)| n != name) {
                topic = Some((name, meta.topics.get(name)));
            }
            out.push(match topic.and_then(|(_, tm)| tm) {
                Some(tm) => self.read_view_of(tm, index, t),
                None => Err(BrokerError::UnknownTopic(name.to_owned())),
            });
        }
        out
    }

    fn led_core(&self, pid: PartitionId) -> Result<&LeaderCore<Reply>, BrokerError> {
        self.leaders
            .get(&pid)
            .map(|l| &l.core)
            .ok_or_else(|| BrokerError::Stopped("partition state gone".into()))
    }

    /// Hands each partition's batches to its leader state and appends what they accept in
    /// one request to the log (one commit). Returns each partition's answer, in order.
    fn produce_many(
        &mut self,
        acks: Acks,
        timeout: Duration,
        partitions: Vec<PartitionRecords>,
        ctx: &mut Context<Self>,
    ) -> Vec<oneshot::Receiver<Result<ProduceReply, BrokerError>>> {
        let t = now();
        let mut rxs = Vec::with_capacity(partitions.len());
        let mut submits = Vec::new();
        let mut tickets: Vec<Pending> = Vec::new();
        for p in partitions {
            let (tx, rx) = oneshot::channel();
            rxs.push(rx);
            let pid = match self.led(&p.topic, p.partition, t) {
                Ok(pid) => pid,
                Err(e) => {
                    count_refusal(&p.topic, &e);
                    let _ = tx.send(Err(e));
                    continue;
                }
            };
            let Some(led) = self.leaders.get_mut(&pid) else {
                let _ = tx.send(Err(BrokerError::Stopped("partition state gone".into())));
                continue;
            };
            let table = self.producers.entry(pid).or_default();
            let mut out = Vec::new();
            let req = ProduceIn {
                records: p.records,
                acks,
                timeout,
                to: tx,
            };
            let submit = led.core.produce(req, table, t, &mut out);
            count_refusals(led.core.topic().as_str(), &out);
            send_answers(out);
            if let Some(s) = submit {
                submits.push((pid, s.stamped));
                tickets.push(Pending {
                    pid,
                    generation: led.generation,
                    topic: led.core.topic().clone(),
                    index: led.core.index(),
                    ticket: s.ticket,
                });
            }
        }
        if tickets.is_empty() {
            return rxs;
        }
        for p in &tickets {
            if self
                .leaders
                .get(&p.pid)
                .is_some_and(|l| l.core.needs_attention())
            {
                self.attention.insert(p.pid);
            }
        }
        let pending = self.shared.log.append_stamped_many(submits);
        // The queued batches go to the followers now, so that their commits run beside
        // this one.
        let pids: Vec<PartitionId> = tickets.iter().map(|p| p.pid).collect();
        self.notify_followers(&pids, ctx);
        ctx.spawn(
            pending
                .into_actor(self)
                .map(move |res, act, ctx| act.appends_done(tickets, res, ctx)),
        );
        rxs
    }

    /// The outcome of a produce's appends.
    fn appends_done(
        &mut self,
        tickets: Vec<Pending>,
        res: Result<Vec<Result<Appended, LogError>>, LogError>,
        ctx: &mut Context<Self>,
    ) {
        let t = now();
        let n = tickets.len();
        let mut results: Vec<Result<Appended, BrokerError>> = match res {
            Ok(v) => v
                .into_iter()
                .map(|r| r.map_err(BrokerError::from))
                .collect(),
            Err(e) => vec![Err(BrokerError::from(e)); n],
        };
        results.resize_with(n, || Err(BrokerError::from(LogError::WriterStopped)));
        let mut touched = Vec::with_capacity(n);
        for (p, result) in tickets.into_iter().zip(results) {
            let (pid, ticket) = (p.pid, p.ticket);
            let current = self
                .leaders
                .get(&pid)
                .is_some_and(|l| l.generation == p.generation);
            if !current {
                // Its leader state went (another leader or epoch) while the append was in
                // flight: the producer asks the new leader.
                if let Some(to) = LeaderCore::abandon(ticket) {
                    let _ = to.send(Err(BrokerError::LeaderChanged {
                        topic: p.topic,
                        partition: p.index,
                    }));
                }
                continue;
            }
            let Some(led) = self.leaders.get_mut(&pid) else {
                continue;
            };
            let topic = led.core.topic().clone();
            if let Ok(a) = &result {
                let m = self.topic_metrics.get(&topic);
                m.produce_records
                    .increment(a.last_offset - a.base_offset + 1);
                m.produce_bytes.increment(LeaderCore::ticket_bytes(&ticket));
            }
            let table = self.producers.entry(pid).or_default();
            let mut out = Vec::new();
            let fx = led.core.append_done(ticket, result, table, t, &mut out);
            count_refusals(topic.as_str(), &out);
            self.apply(pid, fx, out, ctx);
            touched.push(pid);
        }
        // Followers that had an answer on its way when the batches were queued get them
        // now.
        self.notify_followers(&touched, ctx);
    }

    /// Serves a consumer fetch: plans it here (partitions at their high watermark need no
    /// read), reads the rest off the thread in one task, then answers or waits.
    pub(super) fn serve_fetch(
        &mut self,
        msg: FetchBatch,
        tx: FetchTx,
        started: Instant,
        capped_first: bool,
        ctx: &mut Context<Self>,
    ) {
        let t = now();
        let n = msg.partitions.len();
        let mut replies: Vec<Result<FetchReply, BrokerError>> = Vec::with_capacity(n);
        let mut pids: Vec<Option<PartitionId>> = Vec::with_capacity(n);
        let mut reads = Vec::new();
        let views = self.read_views(
            msg.partitions
                .iter()
                .map(|p| (p.topic.as_str(), p.partition)),
            t,
        );
        for ((slot, p), view) in msg.partitions.iter().enumerate().zip(views) {
            pids.push(view.as_ref().ok().map(|v| v.pid));
            match view {
                Err(e) => replies.push(Err(e)),
                Ok(v) => {
                    let at_end = p.offset >= v.high_watermark
                        && p.offset <= v.log_end
                        && p.offset >= v.log_start;
                    if !at_end {
                        reads.push(ReadOne {
                            slot,
                            pid: v.pid,
                            offset: p.offset,
                            max_bytes: p.max_bytes,
                            high_watermark: v.high_watermark,
                            log_end: v.log_end,
                        });
                    }
                    replies.push(Ok(FetchReply {
                        records: Bytes::new(),
                        next_offset: p.offset,
                        high_watermark: v.high_watermark,
                        log_start: v.log_start,
                        log_end: v.log_end,
                    }));
                }
            }
        }
        if reads.is_empty() {
            self.fetch_read(msg, tx, started, replies, pids, ctx);
            return;
        }
        let log = self.shared.log.clone();
        let readers = self.shared.readers.clone();
        let limit = msg.max_bytes;
        let task = async move {
            let _permit = readers
                .acquire_owned()
                .await
                .map_err(|e| BrokerError::Stopped(e.to_string()))?;
            tokio::task::spawn_blocking(move || read_many(&log, reads, limit, capped_first))
                .await
                .map_err(|e| BrokerError::Stopped(format!("read thread: {e}")))
        };
        ctx.spawn(task.into_actor(self).map(move |res, act, ctx| {
            match res {
                Ok(read) => {
                    for (slot, r) in read {
                        if let Some(reply) = replies.get_mut(slot) {
                            *reply = r;
                        }
                    }
                }
                Err(e) => {
                    for r in &mut replies {
                        *r = Err(e.clone());
                    }
                }
            }
            act.fetch_read(msg, tx, started, replies, pids, ctx);
        }));
    }

    /// A fetch has been read: answered if that is enough (or it may not wait), else it
    /// waits for one of its partitions' high watermark to move.
    fn fetch_read(
        &mut self,
        msg: FetchBatch,
        tx: FetchTx,
        started: Instant,
        replies: Vec<Result<FetchReply, BrokerError>>,
        pids: Vec<Option<PartitionId>>,
        ctx: &mut Context<Self>,
    ) {
        let bytes: usize = replies
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|r| r.records.len())
            .sum();
        let failed = replies.iter().any(Result::is_err);
        // Records left behind by a limit: waiting would bring no more.
        let limited = replies
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .any(|r| !r.records.is_empty() && r.next_offset < r.high_watermark);
        if msg.max_wait.is_zero() || failed || limited || bytes >= msg.min_bytes.max(1) {
            self.answer_fetch(&msg, tx, started, replies);
            return;
        }
        let t = now();
        let mut watched = Vec::with_capacity(replies.len());
        let mut moved = false;
        for (pid, r) in pids.iter().zip(&replies) {
            let (Ok(r), Some(pv)) = (r, *pid) else {
                continue;
            };
            // The mark may have moved while the read ran.
            if let Some(led) = self.leaders.get(&pv) {
                moved |= led.core.high_watermark() > r.next_offset;
            }
            watched.push((pv, r.next_offset));
        }
        let deadline = t + msg.max_wait;
        if moved {
            let mut msg = msg;
            msg.max_wait = Duration::ZERO;
            self.serve_fetch(msg, tx, started, false, ctx);
            return;
        }
        let kind = WatchKind::Fetch {
            msg,
            tx,
            started,
            deadline,
            replies,
        };
        self.watch(watched, kind, deadline, ctx);
    }

    /// Answers a consumer fetch, counting it in its topics' metrics.
    pub(super) fn answer_fetch(
        &mut self,
        msg: &FetchBatch,
        tx: FetchTx,
        started: Instant,
        replies: Vec<Result<FetchReply, BrokerError>>,
    ) {
        // Per topic, not per partition: a fetch of thousands of partitions is one sample of
        // each of its topics.
        let mut run: Option<(&str, u64, u64)> = None;
        let mut count = |run: Option<(&str, u64, u64)>| {
            if let Some((topic, bytes, records)) = run {
                if let Ok(t) = eddy_types::TopicName::new(topic) {
                    self.topic_metrics.get(&t).fetched(bytes, records, started);
                }
            }
        };
        for (p, r) in msg.partitions.iter().zip(&replies) {
            let Ok(r) = r else { continue };
            if run.is_none_or(|(topic, _, _)| topic != p.topic) {
                count(run.take());
                run = Some((p.topic.as_str(), 0, 0));
            }
            if let Some((_, bytes, records)) = run.as_mut() {
                if !r.records.is_empty() {
                    *bytes += r.records.len() as u64;
                    *records += crate::records::count_records(&r.records);
                }
            }
        }
        count(run);
        let _ = tx.send(replies);
    }

    /// Registers a waiter on `partitions` (each with the offset past which it wakes).
    pub(super) fn watch(
        &mut self,
        partitions: Vec<(PartitionId, u64)>,
        kind: WatchKind,
        deadline: Instant,
        ctx: &mut Context<Self>,
    ) {
        let id = self.next_watcher;
        self.next_watcher += 1;
        for (pid, _) in &partitions {
            self.watched.entry(*pid).or_default().push(id);
        }
        self.watchers.insert(id, Watcher { partitions, kind });
        self.add_deadline(deadline, Deadline::Watch(id), ctx);
    }

    /// Tells each follower of `pids` that there may be batches for it: queued on its
    /// stream (and sent if it has a fetch parked), or named in its wake list.
    pub(super) fn notify_followers(&mut self, pids: &[PartitionId], ctx: &mut Context<Self>) {
        let mut dirty: Vec<BrokerId> = Vec::new();
        for pid in pids {
            let Some(led) = self.leaders.get_mut(pid) else {
                continue;
            };
            for i in 0..led.core.followers().len() {
                let f = led.core.followers()[i];
                let link = self.links.entry(f).or_default();
                match led.core.notify(f, link.session) {
                    Some(Notify::Queue) => link.ready.push_back(*pid),
                    Some(Notify::Wake) => {
                        link.wake.push((led.core.topic().clone(), led.core.index()))
                    }
                    None => continue,
                }
                if !dirty.contains(&f) {
                    dirty.push(f);
                }
            }
        }
        for f in dirty {
            if self.links.get(&f).is_some_and(|l| l.parked.is_some()) {
                self.answer_link(f, false, ctx);
            }
        }
    }

    /// Answers the parked fetch of `follower`'s stream with what its queue holds (batches
    /// from memory, or read from the log off the thread), its wake list and its refusals.
    /// With nothing to send it stays parked, unless its wait `expired`.
    pub(super) fn answer_link(
        &mut self,
        follower: BrokerId,
        expired: bool,
        ctx: &mut Context<Self>,
    ) {
        let Some(link) = self.links.get_mut(&follower) else {
            return;
        };
        let Some(parked) = link.parked.take() else {
            return;
        };
        let session = link.session;
        let mut budget = parked.max_bytes;
        let mut data = Vec::new();
        let mut from_log = Vec::new();
        while budget > 0 {
            let Some(pid) = link.ready.pop_front() else {
                break;
            };
            let Some(led) = self.leaders.get_mut(&pid) else {
                continue;
            };
            let core = &mut led.core;
            match core.replica_read(follower, session, parked.partition_max_bytes.min(budget)) {
                ReplicaRead::Nothing => {}
                ReplicaRead::Ready { records, .. } => {
                    budget = budget.saturating_sub(records.len());
                    data.push(ReplicaData {
                        pid,
                        leader_epoch: core.epoch(),
                        records,
                        high_watermark: core.high_watermark(),
                        log_start: core.log_start(),
                        log_end: core.log_end(),
                    });
                }
                ReplicaRead::FromLog { from, max_bytes } => {
                    budget = budget.saturating_sub(max_bytes);
                    from_log.push(LogRead {
                        pid,
                        from,
                        max_bytes,
                        leader_epoch: core.epoch(),
                        high_watermark: core.high_watermark(),
                        log_end: core.log_end(),
                    });
                }
            }
        }
        let nothing = data.is_empty()
            && from_log.is_empty()
            && link.wake.is_empty()
            && link.refused.is_empty();
        if nothing && !expired {
            link.parked = Some(parked);
            return;
        }
        let mut answer = ReplicaAnswer {
            data,
            refused: std::mem::take(&mut link.refused),
            wake: std::mem::take(&mut link.wake),
        };
        if from_log.is_empty() {
            let _ = parked.tx.send(Ok(answer));
            return;
        }
        let log = self.shared.log.clone();
        let readers = self.shared.readers.clone();
        let task = async move {
            let _permit = readers.acquire_owned().await.ok();
            let reads = tokio::task::spawn_blocking(move || {
                from_log
                    .into_iter()
                    .map(|r| (r, log.read(r.pid, r.from, r.max_bytes)))
                    .collect::<Vec<_>>()
            })
            .await;
            reads.unwrap_or_default()
        };
        ctx.spawn(task.into_actor(self).map(move |reads, act, _| {
            for (r, read) in reads {
                let end = match read {
                    Ok(f) if !f.records.is_empty() => {
                        let end = f.next_offset;
                        answer.data.push(ReplicaData {
                            pid: r.pid,
                            leader_epoch: r.leader_epoch,
                            records: f.records,
                            high_watermark: r.high_watermark,
                            log_start: f.offsets.log_start,
                            log_end: r.log_end,
                        });
                        Some(end)
                    }
                    Ok(_) => None,
                    Err(e) => {
                        tracing::debug!(partition = %r.pid, error = %e, "replica read failed");
                        None
                    }
                };
                if let Some(led) = act.leaders.get_mut(&r.pid) {
                    led.core.replica_log_read_done(follower, end);
                }
            }
            let _ = parked.tx.send(Ok(answer));
        }));
    }

    /// Where `msg.epoch` ends in this leader's log (Kafka's OffsetForLeaderEpoch).
    fn epoch_end(
        &mut self,
        msg: &LeaderEpochEnd,
        t: Instant,
    ) -> Result<EpochEndReply, BrokerError> {
        let pid = self.led(msg.topic.as_str(), msg.partition, t)?;
        let core = self.led_core(pid)?;
        if let Some(e) = core.fenced(msg.leader_epoch) {
            return Err(e);
        }
        let log_end = core.log_end();
        let end = self.shared.log.end_offset_for_epoch(pid, msg.epoch)?;
        // The log may hold appends not answered yet: never point a follower past what the
        // leader knows committed.
        Ok(EpochEndReply {
            end: end.map(|(e, o)| (e, o.min(log_end))),
            log_end,
        })
    }
}

/// Reads the partitions of a fetch in order within `limit` bytes in all: the first batch
/// of the answer whole (unless `capped_first`), later partitions only what fits, each
/// within its own limit; partitions left without room read nothing.
fn read_many(
    log: &LogStore,
    reads: Vec<ReadOne>,
    limit: usize,
    capped_first: bool,
) -> Vec<(usize, Result<FetchReply, BrokerError>)> {
    let mut left = limit;
    let mut any = capped_first;
    let mut out = Vec::with_capacity(reads.len());
    for r in reads {
        let max = r.max_bytes.min(left);
        let f = if any {
            log.read_capped(r.pid, r.offset, max, r.high_watermark)
        } else {
            log.read_until(r.pid, r.offset, max, r.high_watermark)
        };
        let reply = f.map_err(BrokerError::from).map(|f| {
            left = left.saturating_sub(f.records.len());
            any |= !f.records.is_empty();
            FetchReply {
                next_offset: f.next_offset,
                records: f.records,
                high_watermark: r.high_watermark,
                log_start: f.offsets.log_start,
                log_end: r.log_end,
            }
        });
        out.push((r.slot, reply));
    }
    out
}

/// Counts a refused produce by its error's kind.
fn count_refusal(topic: &str, e: &impl eddy_types::ClassifyError) {
    metrics::counter!(eddy_metrics::PRODUCE_ERRORS, "topic" => topic.to_owned(), "error" => format!("{:?}", e.kind())).increment(1);
}

fn count_refusals(topic: &str, out: &[crate::leader::Answer<Reply>]) {
    for a in out {
        if let Err(e) = &a.result {
            count_refusal(topic, e);
        }
    }
}

impl Handler<ProduceBatch> for Broker {
    type Result = ResponseFuture<Vec<Result<ProduceReply, BrokerError>>>;

    fn handle(&mut self, msg: ProduceBatch, ctx: &mut Context<Self>) -> Self::Result {
        let rxs = self.produce_many(msg.acks, msg.timeout, msg.partitions, ctx);
        Box::pin(async move {
            let mut out = Vec::with_capacity(rxs.len());
            for rx in rxs {
                out.push(
                    rx.await
                        .unwrap_or_else(|e| Err(BrokerError::Stopped(e.to_string()))),
                );
            }
            out
        })
    }
}

impl Handler<Produce> for Broker {
    type Result = ResponseFuture<Result<ProduceReply, BrokerError>>;

    fn handle(&mut self, msg: Produce, ctx: &mut Context<Self>) -> Self::Result {
        let one = PartitionRecords {
            topic: msg.topic,
            partition: msg.partition,
            records: msg.records,
        };
        let rx = self
            .produce_many(msg.acks, msg.timeout, vec![one], ctx)
            .pop();
        Box::pin(async move {
            match rx {
                Some(rx) => rx
                    .await
                    .unwrap_or_else(|e| Err(BrokerError::Stopped(e.to_string()))),
                None => Err(BrokerError::Stopped("no answer".into())),
            }
        })
    }
}

impl Handler<FetchBatch> for Broker {
    type Result = ResponseFuture<Vec<Result<FetchReply, BrokerError>>>;

    fn handle(&mut self, msg: FetchBatch, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        let n = msg.partitions.len();
        self.serve_fetch(msg, tx, now(), false, ctx);
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|e| vec![Err(BrokerError::Stopped(e.to_string())); n])
        })
    }
}

impl Handler<Fetch> for Broker {
    type Result = ResponseFuture<Result<FetchReply, BrokerError>>;

    fn handle(&mut self, msg: Fetch, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        let batch = FetchBatch {
            partitions: vec![FetchPartition {
                topic: msg.topic,
                partition: msg.partition,
                offset: msg.offset,
                max_bytes: msg.max_bytes,
            }],
            max_bytes: msg.max_bytes,
            min_bytes: msg.min_bytes,
            max_wait: msg.max_wait,
        };
        self.serve_fetch(batch, tx, now(), msg.capped, ctx);
        Box::pin(async move {
            match rx.await {
                Ok(mut v) => v
                    .pop()
                    .unwrap_or_else(|| Err(BrokerError::Stopped("no answer".into()))),
                Err(e) => Err(BrokerError::Stopped(e.to_string())),
            }
        })
    }
}

impl Handler<AwaitRecords> for Broker {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: AwaitRecords, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        let t = now();
        let mut watched = Vec::with_capacity(msg.partitions.len());
        let mut ready = msg.max_wait.is_zero();
        let views = self.read_views(
            msg.partitions
                .iter()
                .map(|p| (p.topic.as_str(), p.partition)),
            t,
        );
        for (p, view) in msg.partitions.iter().zip(views) {
            match view {
                Ok(v) if v.high_watermark <= p.offset => watched.push((v.pid, p.offset)),
                // Records past the offset, or an error to tell: the caller reads now.
                _ => ready = true,
            }
        }
        if ready || watched.is_empty() {
            let _ = tx.send(());
        } else {
            self.watch(watched, WatchKind::Await(tx), t + msg.max_wait, ctx);
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<ListOffsets> for Broker {
    type Result = ResponseFuture<Result<OffsetsReply, BrokerError>>;

    fn handle(&mut self, msg: ListOffsets, _ctx: &mut Context<Self>) -> Self::Result {
        let v = match self.read_view(&msg.topic, msg.partition, now()) {
            Ok(v) => v,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let reply = move |log_start, by_timestamp: Option<(u64, i64)>| OffsetsReply {
            log_start,
            high_watermark: v.high_watermark,
            log_end: v.log_end,
            by_timestamp: by_timestamp.filter(|(off, _)| *off < v.high_watermark),
            leader_epoch: v.leader_epoch,
        };
        let Some(ts) = msg.timestamp else {
            // The log's own start: retention moves it without telling the leader state.
            let answer = self
                .shared
                .log
                .offsets(v.pid)
                .map_err(BrokerError::from)
                .map(|o| reply(o.log_start, None));
            return Box::pin(std::future::ready(answer));
        };
        // A lookup by time walks the batch headers from the log start: a page each, maybe
        // from the disk. Off the actors' thread, like a fetch's reads.
        let log = self.shared.log.clone();
        let readers = self.shared.readers.clone();
        let pid = v.pid;
        Box::pin(async move {
            let _permit = readers
                .acquire_owned()
                .await
                .map_err(|e| BrokerError::Stopped(e.to_string()))?;
            tokio::task::spawn_blocking(move || {
                let log_start = log.offsets(pid)?.log_start;
                Ok(reply(log_start, log.offset_for_timestamp(pid, ts)?))
            })
            .await
            .map_err(|e| BrokerError::Stopped(format!("read thread: {e}")))?
        })
    }
}

impl Handler<DeleteRecords> for Broker {
    type Result = ResponseFuture<Result<u64, BrokerError>>;

    fn handle(&mut self, msg: DeleteRecords, ctx: &mut Context<Self>) -> Self::Result {
        let pid = match self.led(&msg.topic, msg.partition, now()) {
            Ok(pid) => pid,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let (hw, log_start) = match self.led_core(pid) {
            Ok(c) => (c.high_watermark(), c.log_start()),
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let offset = msg.offset.unwrap_or(hw);
        if offset > hw {
            // Only committed records can be deleted (Kafka: OFFSET_OUT_OF_RANGE).
            let e = BrokerError::from(LogError::OffsetOutOfRange {
                partition: pid,
                offset,
                log_start,
                log_end: hw,
            });
            return Box::pin(std::future::ready(Err(e)));
        }
        let (tx, rx) = oneshot::channel();
        let pending = self.shared.log.delete_records_before(pid, offset);
        ctx.spawn(pending.into_actor(self).map(move |res, act, _| {
            if let (Ok(start), Some(led)) = (&res, act.leaders.get_mut(&pid)) {
                led.core.set_log_start(*start);
            }
            let _ = tx.send(res.map_err(BrokerError::from));
        }));
        Box::pin(async move {
            rx.await
                .unwrap_or_else(|e| Err(BrokerError::Stopped(e.to_string())))
        })
    }
}

impl Handler<LeaderEpochEnd> for Broker {
    type Result = Result<EpochEndReply, BrokerError>;

    fn handle(&mut self, msg: LeaderEpochEnd, _ctx: &mut Context<Self>) -> Self::Result {
        self.epoch_end(&msg, now())
    }
}

impl Handler<EpochEnds> for Broker {
    type Result = MessageResult<EpochEnds>;

    fn handle(&mut self, msg: EpochEnds, _ctx: &mut Context<Self>) -> Self::Result {
        let t = now();
        MessageResult(
            msg.0
                .into_iter()
                .map(|(pid, q)| (pid, self.epoch_end(&q, t)))
                .collect(),
        )
    }
}

impl Handler<ReplicaFetch> for Broker {
    type Result = ResponseFuture<Result<ReplicaAnswer, BrokerError>>;

    fn handle(&mut self, msg: ReplicaFetch, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        let answer = async move {
            rx.await
                .unwrap_or_else(|e| Err(BrokerError::Stopped(e.to_string())))
        };
        let t = now();
        let follower = msg.follower;
        let link = self.links.entry(follower).or_default();
        if link.session != msg.session {
            // The follower's broker started a new session (it restarted): what the link
            // knew of the old one goes.
            if let Some(p) = link.parked.take() {
                let _ = p.tx.send(Ok(ReplicaAnswer::default()));
            }
            *link = LeaderLink {
                session: msg.session,
                next_park: link.next_park,
                ..LeaderLink::default()
            };
        } else if let Some(p) = link.parked.take() {
            // Superseded by this one.
            let _ = p.tx.send(Ok(ReplicaAnswer::default()));
        }
        let session = msg.session;
        for pid in &msg.removed {
            if let Some(led) = self.leaders.get_mut(pid) {
                led.core.follower_left(follower, session);
            }
        }
        let mut refused = Vec::new();
        let mut touched = Vec::with_capacity(msg.positions.len());
        for pos in msg.positions {
            let pid = match self.led(pos.topic.as_str(), pos.index, t) {
                Ok(pid) if pid == pos.pid => pid,
                Ok(_) => {
                    refused.push((pos.pid, BrokerError::UnknownTopic(pos.topic.to_string())));
                    continue;
                }
                Err(e) => {
                    refused.push((pos.pid, e));
                    continue;
                }
            };
            let Some(led) = self.leaders.get_mut(&pid) else {
                continue;
            };
            if let Some(e) = led.core.fenced(pos.leader_epoch) {
                refused.push((pid, e));
                continue;
            }
            if !led.core.is_follower(follower) {
                refused.push((
                    pid,
                    BrokerError::InvalidTopicConfig {
                        topic: pos.topic.to_string(),
                        reason: format!("{follower} holds no replica of partition {}", pos.index),
                    },
                ));
                continue;
            }
            let mut out = Vec::new();
            let fx = led.core.follower_position(
                follower,
                session,
                pos.log_end,
                pos.storage_failed,
                t,
                &mut out,
            );
            self.apply(pid, fx, out, ctx);
            touched.push(pid);
        }
        let link = self.links.entry(follower).or_default();
        link.refused.extend(refused);
        let id = link.next_park;
        link.next_park += 1;
        link.parked = Some(ParkedReplica {
            id,
            tx,
            max_bytes: msg.max_bytes,
            partition_max_bytes: msg.partition_max_bytes,
        });
        // Partitions it just reported may have more for it.
        self.notify_followers(&touched, ctx);
        self.answer_link(follower, msg.max_wait.is_zero(), ctx);
        if self
            .links
            .get(&follower)
            .and_then(|l| l.parked.as_ref())
            .is_some_and(|p| p.id == id)
        {
            self.add_deadline(t + msg.max_wait, Deadline::Replica(follower, id), ctx);
        }
        Box::pin(answer)
    }
}
