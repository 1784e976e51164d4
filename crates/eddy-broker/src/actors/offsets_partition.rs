//! `OffsetsPartition`: one partition of `__consumer_offsets` on the broker that leads it, and
//! the coordinator of the groups that hash to it.
//!
//! On start it reads the partition from its log start up to the committed end into an
//! [`OffsetsState`] (the latest value per key); until then requests are refused with
//! COORDINATOR_LOAD_IN_PROGRESS. It starts a [`GroupCoordinator`] per group on demand
//! (restored from the group's last snapshot) and answers offset fetches from its state.
//! Every write (commits, membership snapshots, tombstones) goes through one queue: at most one
//! produce (`acks=all`) is in flight, carrying everything queued since the last one, so writes
//! stay in order and are group-committed; the state changes only once a write is committed.
//!
//! Compaction: once the partition holds `offsets_compact_after` more records than live keys,
//! the live values are written again and everything before them is deleted (the leader's log
//! start moves; followers follow it), which is what Kafka's log cleaner achieves for a
//! compacted topic.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use eddy_types::{Acks, PartitionId};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::group_coordinator::GroupCoordinator;
use super::Shared;
use crate::error::BrokerError;
use crate::group::{Group, GroupState};
use crate::messages::{
    Fetch, GroupOp, GroupReply, GroupRequest, ListGroups, ListOffsets, Produce, Shutdown,
};
use crate::offsets::{OffsetsKey, OffsetsState, OffsetsValue, OFFSETS_TOPIC};
use crate::records::{decode_records, encode_batch};

/// Records per batch when the live state is rewritten.
const REWRITE_BATCH: usize = 1_000;
/// How long loading may wait for the partition's records to be committed.
const LOAD_FOR: Duration = Duration::from_secs(60);

/// What an offsets partition asks of the broker that leads it: its own partition's
/// produce, fetch and offsets (recipients, not the broker's address: this actor knows only
/// the messages it sends).
#[derive(Debug, Clone)]
pub(crate) struct BrokerPort {
    pub(crate) produce: Recipient<Produce>,
    pub(crate) fetch: Recipient<Fetch>,
    pub(crate) list_offsets: Recipient<ListOffsets>,
}

/// Writes records to the partition; answered once they are committed.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), BrokerError>")]
pub(crate) struct Persist(pub(crate) Records);

/// A topic was deleted: its committed offsets go (tombstones), as Kafka deletes them.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct TopicDeleted(pub(crate) String);

type Waiter = oneshot::Sender<Result<(), BrokerError>>;
/// Records to write, keyed as in the partition (`None`: a tombstone).
type Records = Vec<(OffsetsKey, Option<OffsetsValue>)>;

/// One `__consumer_offsets` partition led by this broker.
pub(crate) struct OffsetsPartition {
    shared: Arc<Shared>,
    broker: BrokerPort,
    index: u32,
    pid: PartitionId,
    loaded: bool,
    state: OffsetsState,
    /// Records in the partition from its log start (for compaction).
    records: u64,
    groups: HashMap<String, Addr<GroupCoordinator>>,
    queue: Vec<(Records, Option<Waiter>)>,
    writing: bool,
    nonce: u64,
    /// Topics deleted while the partition was loading: their offsets go once it is loaded.
    deleted: Vec<String>,
}

impl std::fmt::Debug for OffsetsPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OffsetsPartition")
            .field("broker", &self.shared.id)
            .field("index", &self.index)
            .field("loaded", &self.loaded)
            .field("groups", &self.groups.len())
            .finish()
    }
}

/// Whether a write failure means this broker no longer leads the partition.
fn lost_leadership(e: &BrokerError) -> bool {
    matches!(
        e,
        BrokerError::NotLeader { .. }
            | BrokerError::LeaderNotAvailable { .. }
            | BrokerError::FencedLeaderEpoch { .. }
            | BrokerError::LeaderChanged { .. }
            | BrokerError::BrokerNotAvailable(_)
            | BrokerError::Stopped(_)
    )
}

impl OffsetsPartition {
    pub(crate) fn new(
        shared: Arc<Shared>,
        broker: BrokerPort,
        index: u32,
        pid: PartitionId,
    ) -> OffsetsPartition {
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ (u64::from(shared.id.0) << 56)
            ^ u64::from(index);
        OffsetsPartition {
            shared,
            broker,
            index,
            pid,
            loaded: false,
            state: OffsetsState::default(),
            records: 0,
            groups: HashMap::new(),
            queue: Vec::new(),
            writing: false,
            nonce,
            deleted: Vec::new(),
        }
    }

    fn not_coordinator(&self, group: &str) -> BrokerError {
        BrokerError::NotCoordinator {
            group: group.to_owned(),
            broker: self.shared.id,
        }
    }

    /// Reads the partition's committed records into a fresh state.
    fn load(&mut self, ctx: &mut Context<Self>) {
        let broker = self.broker.clone();
        let index = self.index;
        let fut = async move {
            let mut state = OffsetsState::default();
            let mut count = 0u64;
            let start = broker
                .list_offsets
                .send(ListOffsets {
                    topic: OFFSETS_TOPIC.to_owned(),
                    partition: index,
                    timestamp: None,
                })
                .await??;
            let mut offset = start.log_start;
            let deadline = tokio::time::Instant::now() + LOAD_FOR;
            loop {
                let reply = broker
                    .fetch
                    .send(Fetch {
                        topic: OFFSETS_TOPIC.to_owned(),
                        partition: index,
                        offset,
                        max_bytes: 1 << 20,
                        capped: false,
                        max_wait: Duration::from_millis(100),
                        min_bytes: 1,
                    })
                    .await??;
                offset = offset.max(reply.log_start);
                for r in decode_records(reply.records, offset)? {
                    count += 1;
                    if let Some(key) = r.key {
                        if let Err(e) = state.apply(&key, r.value.as_deref()) {
                            warn!(partition = index, offset = r.offset, error = %e.0, "skipping an undecodable __consumer_offsets record");
                        }
                    }
                }
                offset = offset.max(reply.next_offset);
                // Done once everything the leader has is committed and read: a write acknowledged
                // by the previous leader is then in the state.
                if offset >= reply.log_end && reply.high_watermark >= reply.log_end {
                    return Ok::<_, BrokerError>((state, count));
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(BrokerError::Timeout("loading __consumer_offsets"));
                }
            }
        };
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| match res {
            Ok((state, count)) => {
                info!(broker = %act.shared.id, partition = act.index, records = count, keys = state.live_keys(), "offsets partition loaded");
                act.state = state;
                act.records = count;
                act.loaded = true;
                let all = act.state.group_topics();
                act.report_committed(all);
                for topic in std::mem::take(&mut act.deleted) {
                    act.drop_offsets_of(&topic);
                }
                act.flush(ctx);
            }
            Err(e) => {
                warn!(broker = %act.shared.id, partition = act.index, error = %e, "cannot load the offsets partition");
                ctx.stop();
            }
        }));
    }

    /// Sets `eddy_group_topic_committed_offset` of each (group, topic) from the state.
    fn report_committed(&self, pairs: Vec<(String, String)>) {
        for (group, topic) in pairs {
            let sum = self.state.committed_sum(&group, &topic);
            metrics::gauge!(
                eddy_metrics::GROUP_TOPIC_COMMITTED_OFFSET,
                "group" => group,
                "topic" => topic
            )
            .set(sum as f64);
        }
    }

    /// Queues tombstones for every committed offset of `topic`.
    fn drop_offsets_of(&mut self, topic: &str) {
        let tombstones: Records = self
            .state
            .offsets_of_topic(topic)
            .into_iter()
            .map(|k| (k, None))
            .collect();
        if !tombstones.is_empty() {
            debug!(
                partition = self.index,
                topic,
                offsets = tombstones.len(),
                "dropping a deleted topic's offsets"
            );
            self.queue.push((tombstones, None));
        }
    }

    /// The running coordinator of `group`, started (restored) if needed.
    fn coordinator(&mut self, group: &str, ctx: &mut Context<Self>) -> Addr<GroupCoordinator> {
        if let Some(a) = self.groups.get(group) {
            if a.connected() {
                return a.clone();
            }
        }
        let config = self.shared.config.group.clone();
        self.nonce = self.nonce.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let now = tokio::time::Instant::now().into_std();
        let machine = match self.state.group(group).and_then(|g| g.group.clone()) {
            Some(s) if s.state != GroupState::Dead => {
                Group::restore(group, config, self.nonce, s, now)
            }
            _ => Group::new(group, config, self.nonce),
        };
        let addr = GroupCoordinator::new(machine, ctx.address()).start();
        self.groups.insert(group.to_owned(), addr.clone());
        addr
    }

    /// Sends everything queued as one produce, if none is in flight.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.writing || self.queue.is_empty() || !self.loaded {
            return;
        }
        let queued = std::mem::take(&mut self.queue);
        let mut batch = Vec::new();
        let mut waiters = Vec::new();
        let mut applied = Vec::new();
        for (records, waiter) in queued {
            for (k, v) in records {
                match (k.encode(), v.as_ref().map(OffsetsValue::encode).transpose()) {
                    (Ok(kb), Ok(vb)) => {
                        batch.push((Some(Bytes::from(kb)), vb.map(Bytes::from)));
                        applied.push((k, v));
                    }
                    (Err(e), _) | (_, Err(e)) => {
                        warn!(error = %e, "cannot encode an offsets record");
                    }
                }
            }
            waiters.extend(waiter);
        }
        let mut bytes = Vec::new();
        for chunk in batch.chunks(REWRITE_BATCH) {
            match encode_batch(chunk, now_ms()) {
                Ok(b) => bytes.extend_from_slice(&b),
                Err(e) => {
                    for w in waiters {
                        let _ = w.send(Err(e.clone()));
                    }
                    return;
                }
            }
        }
        if bytes.is_empty() {
            for w in waiters {
                let _ = w.send(Ok(()));
            }
            return;
        }
        let n = applied.len() as u64;
        self.writing = true;
        let write = self.broker.produce.send(Produce {
            topic: OFFSETS_TOPIC.to_owned(),
            partition: self.index,
            records: Bytes::from(bytes),
            acks: Acks::All,
            timeout: Duration::from_secs(30),
        });
        ctx.spawn(write.into_actor(self).map(move |res, act, ctx| {
            act.writing = false;
            let res = res.map_err(BrokerError::from).and_then(|r| r);
            match res {
                Ok(_) => {
                    let mut touched = Vec::new();
                    for (k, v) in applied {
                        if let OffsetsKey::Offset { group, topic, .. } = &k {
                            touched.push((group.clone(), topic.clone()));
                        }
                        // Values were checked against their keys when encoded.
                        let _ = act.state.put(k, v);
                    }
                    touched.sort_unstable();
                    touched.dedup();
                    act.report_committed(touched);
                    act.records += n;
                    for w in waiters {
                        let _ = w.send(Ok(()));
                    }
                    act.maybe_compact(ctx);
                    act.flush(ctx);
                }
                Err(e) if lost_leadership(&e) => {
                    info!(broker = %act.shared.id, partition = act.index, error = %e, "offsets partition lost its leadership");
                    let err = act.not_coordinator("");
                    for w in waiters {
                        let _ = w.send(Err(err.clone()));
                    }
                    ctx.stop();
                }
                Err(e) => {
                    for w in waiters {
                        let _ = w.send(Err(e.clone()));
                    }
                    act.flush(ctx);
                }
            }
        }));
    }

    /// Rewrites the live keys and deletes everything before them, when enough is dead.
    fn maybe_compact(&mut self, ctx: &mut Context<Self>) {
        let live = self.state.live_keys() as u64;
        if self.records <= live + self.shared.config.offsets_compact_after || self.writing {
            return;
        }
        let records: Vec<(Option<Bytes>, Option<Bytes>)> = self
            .state
            .live_records()
            .into_iter()
            .filter_map(|(k, v)| {
                Some((
                    Some(Bytes::from(k.encode().ok()?)),
                    Some(Bytes::from(v.encode().ok()?)),
                ))
            })
            .collect();
        let mut bytes = Vec::new();
        for chunk in records.chunks(REWRITE_BATCH) {
            match encode_batch(chunk, now_ms()) {
                Ok(b) => bytes.extend_from_slice(&b),
                Err(e) => return warn!(error = %e, "cannot encode the compacted offsets"),
            }
        }
        self.writing = true;
        let before = self.records;
        let rewrite = self.broker.produce.send(Produce {
            topic: OFFSETS_TOPIC.to_owned(),
            partition: self.index,
            records: Bytes::from(bytes),
            acks: Acks::All,
            timeout: Duration::from_secs(30),
        });
        let log = self.shared.log.clone();
        let pid = self.pid;
        ctx.spawn(
            rewrite
                .into_actor(self)
                .then(move |res, act, _| {
                    let res = res.map_err(BrokerError::from).and_then(|r| r);
                    let fut = async move {
                        let reply = res?;
                        let start = u64::try_from(reply.base_offset)
                            .map_err(|_| BrokerError::Timeout("compaction rewrite"))?;
                        log.delete_records_before(pid, start).await?;
                        Ok::<_, BrokerError>(())
                    };
                    fut.into_actor(act)
                })
                .map(move |res, act, ctx| {
                    act.writing = false;
                    match res {
                        Ok(()) => {
                            act.records = act.state.live_keys() as u64;
                            debug!(
                                partition = act.index,
                                before,
                                after = act.records,
                                "offsets partition compacted"
                            );
                        }
                        Err(e) if lost_leadership(&e) => ctx.stop(),
                        Err(e) => {
                            warn!(partition = act.index, error = %e, "offsets compaction failed")
                        }
                    }
                    act.flush(ctx);
                }),
        );
    }

    fn offsets_of(&self, group: &str, partitions: Option<Vec<(String, u32)>>) -> GroupReply {
        let records = self.state.group(group);
        let list = match partitions {
            Some(ps) => ps
                .into_iter()
                .map(|(t, p)| {
                    let c = records.and_then(|g| g.offsets.get(&(t.clone(), p)).cloned());
                    (t, p, c)
                })
                .collect(),
            None => records
                .map(|g| {
                    g.offsets
                        .iter()
                        .map(|((t, p), c)| (t.clone(), *p, Some(c.clone())))
                        .collect()
                })
                .unwrap_or_default(),
        };
        GroupReply::Offsets(list)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Actor for OffsetsPartition {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.load(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        for g in self.groups.values() {
            g.do_send(Shutdown);
        }
        let err = self.not_coordinator("");
        for (_, w) in self.queue.drain(..) {
            if let Some(w) = w {
                let _ = w.send(Err(err.clone()));
            }
        }
    }
}

impl Handler<Persist> for OffsetsPartition {
    type Result = ResponseFuture<Result<(), BrokerError>>;

    fn handle(&mut self, msg: Persist, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.queue.push((msg.0, Some(tx)));
        self.flush(ctx);
        Box::pin(async move {
            rx.await
                .map_err(|_| BrokerError::Stopped("the offsets partition".into()))?
        })
    }
}

impl Handler<GroupRequest> for OffsetsPartition {
    type Result = ResponseActFuture<Self, Result<GroupReply, BrokerError>>;

    fn handle(&mut self, msg: GroupRequest, ctx: &mut Context<Self>) -> Self::Result {
        if !self.loaded {
            let e = BrokerError::CoordinatorLoading(msg.group);
            return Box::pin(actix::fut::ready(Err(e)));
        }
        let group = msg.group.clone();
        match msg.op {
            GroupOp::FetchOffsets { partitions } => {
                let reply = self.offsets_of(&group, partitions);
                Box::pin(actix::fut::ready(Ok(reply)))
            }
            op => {
                let deleting = matches!(op, GroupOp::Delete);
                let describing = matches!(op, GroupOp::Describe);
                let addr = self.coordinator(&group, ctx);
                let not_coordinator = self.not_coordinator(&group);
                let ask = addr.send(GroupRequest {
                    group: group.clone(),
                    op,
                });
                Box::pin(ask.into_actor(self).then(move |res, act, ctx| {
                    let res = match res {
                        Ok(r) => r,
                        Err(_) => Err(not_coordinator),
                    };
                    let fut: ResponseFuture<Result<GroupReply, BrokerError>> = match res {
                        Ok(GroupReply::Described(mut d)) if describing => {
                            if let Some(g) = act.state.group(&group) {
                                d.offsets = g
                                    .offsets
                                    .iter()
                                    .map(|((t, p), c)| (t.clone(), *p, c.offset))
                                    .collect();
                            }
                            Box::pin(async move { Ok(GroupReply::Described(d)) })
                        }
                        Ok(reply) if deleting => {
                            // The group and all its offsets go.
                            act.groups.remove(&group);
                            let mut tombstones = vec![(
                                OffsetsKey::Group {
                                    group: group.clone(),
                                },
                                None,
                            )];
                            if let Some(g) = act.state.group(&group) {
                                for (t, p) in g.offsets.keys() {
                                    tombstones.push((
                                        OffsetsKey::Offset {
                                            group: group.clone(),
                                            topic: t.clone(),
                                            partition: *p,
                                        },
                                        None,
                                    ));
                                }
                            }
                            let (tx, rx) = oneshot::channel();
                            act.queue.push((tombstones, Some(tx)));
                            act.flush(ctx);
                            Box::pin(async move {
                                rx.await.map_err(|_| {
                                    BrokerError::Stopped("the offsets partition".into())
                                })??;
                                Ok(reply)
                            })
                        }
                        other => Box::pin(async move { other }),
                    };
                    fut.into_actor(act)
                }))
            }
        }
    }
}

impl Handler<ListGroups> for OffsetsPartition {
    type Result = Result<Vec<(String, GroupState)>, BrokerError>;

    fn handle(&mut self, _msg: ListGroups, _ctx: &mut Context<Self>) -> Self::Result {
        if !self.loaded {
            return Err(BrokerError::CoordinatorLoading(String::new()));
        }
        let mut out: Vec<(String, GroupState)> = self
            .state
            .groups()
            .map(|(name, g)| {
                let state = g.group.as_ref().map_or(GroupState::Empty, |s| s.state);
                (name.clone(), state)
            })
            .filter(|(_, s)| *s != GroupState::Dead)
            .collect();
        for name in self.groups.keys() {
            if !out.iter().any(|(n, _)| n == name) {
                out.push((name.clone(), GroupState::Empty));
            }
        }
        Ok(out)
    }
}

impl Handler<TopicDeleted> for OffsetsPartition {
    type Result = ();

    fn handle(&mut self, msg: TopicDeleted, ctx: &mut Context<Self>) {
        if self.loaded {
            self.drop_offsets_of(&msg.0);
            self.flush(ctx);
        } else {
            self.deleted.push(msg.0);
        }
    }
}

impl Handler<Shutdown> for OffsetsPartition {
    type Result = ();

    fn handle(&mut self, _msg: Shutdown, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
