//! `GroupCoordinator`: one consumer group, run by the broker that leads the group's partition
//! of `__consumer_offsets`.
//!
//! It drives the pure [`Group`] machine: requests go in with the time, answers (some of them
//! for requests parked earlier, a rebalance finishing) come out and are delivered through the
//! parked requests' channels. One timer follows [`Group::next_deadline`] (sessions, rebalance
//! waits). Each membership change is written to `__consumer_offsets` through the partition's
//! [`OffsetsPartition`] actor, in order; offset commits are checked against the generation
//! here and written there before they are answered.

use std::collections::HashMap;
use std::time::Instant;

use actix::prelude::*;
use tokio::sync::oneshot;
use tracing::debug;

use super::offsets_partition::{OffsetsPartition, Persist};
use crate::error::BrokerError;
use crate::group::{Answer, Group, JoinResult, SyncResult};
use crate::messages::{GroupDescription, GroupOp, GroupReply, GroupRequest, Shutdown};
use crate::offsets::{OffsetsKey, OffsetsValue};

/// One group's coordinator.
pub(crate) struct GroupCoordinator {
    group: Group,
    partition: Addr<OffsetsPartition>,
    joins: HashMap<String, oneshot::Sender<Result<JoinResult, BrokerError>>>,
    syncs: HashMap<String, oneshot::Sender<Result<SyncResult, BrokerError>>>,
    timer: Option<(Instant, SpawnHandle)>,
    /// The generation last counted in `eddy_group_rebalances_total`.
    counted_generation: i32,
}

impl std::fmt::Debug for GroupCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCoordinator")
            .field("group", &self.group.id())
            .field("state", &self.group.state())
            .field("generation", &self.group.generation())
            .finish()
    }
}

/// The time the group machine runs on: tokio's clock (paused in tests), as a std instant.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl GroupCoordinator {
    pub(crate) fn new(group: Group, partition: Addr<OffsetsPartition>) -> GroupCoordinator {
        GroupCoordinator {
            counted_generation: group.generation(),
            group,
            partition,
            joins: HashMap::new(),
            syncs: HashMap::new(),
            timer: None,
        }
    }

    /// Delivers the machine's answers, persists a membership change, re-arms the timer.
    fn settle(&mut self, ctx: &mut Context<Self>) {
        if self.group.generation() > self.counted_generation {
            self.counted_generation = self.group.generation();
            metrics::counter!(eddy_metrics::GROUP_REBALANCES, "group" => self.group.id().to_owned())
                .increment(1);
        }
        for answer in self.group.take_answers() {
            match answer {
                Answer::Join { member, result } => {
                    if let Some(tx) = self.joins.remove(&member) {
                        let _ = tx.send(result);
                    }
                }
                Answer::Sync { member, result } => {
                    if let Some(tx) = self.syncs.remove(&member) {
                        let _ = tx.send(result);
                    }
                }
            }
        }
        if let Some(snapshot) = self.group.take_dirty() {
            if !matches!(snapshot.state, crate::group::GroupState::Dead) {
                let key = OffsetsKey::Group {
                    group: self.group.id().to_owned(),
                };
                self.partition
                    .do_send(Persist(vec![(key, Some(OffsetsValue::Group(snapshot)))]));
            }
        }
        let next = self.group.next_deadline();
        match (next, &self.timer) {
            (Some(at), Some((armed, _))) if *armed == at => {}
            _ => {
                if let Some((_, h)) = self.timer.take() {
                    ctx.cancel_future(h);
                }
                if let Some(at) = next {
                    let wait = at.saturating_duration_since(now());
                    let h = ctx.run_later(wait, |act, ctx| {
                        act.timer = None;
                        act.group.tick(now());
                        act.settle(ctx);
                    });
                    self.timer = Some((at, h));
                }
            }
        }
    }

    fn handle_op(
        &mut self,
        op: GroupOp,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<Result<GroupReply, BrokerError>> {
        let t = now();
        let ready = |r: Result<GroupReply, BrokerError>| -> ResponseFuture<_> {
            Box::pin(async move { r })
        };
        match op {
            GroupOp::Join(req) => match self.group.join(req, t) {
                Ok(member) => {
                    let (tx, rx) = oneshot::channel();
                    self.joins.insert(member, tx);
                    Box::pin(async move {
                        match rx.await {
                            Ok(r) => r.map(GroupReply::Joined),
                            Err(_) => Err(BrokerError::Stopped("the group coordinator".into())),
                        }
                    })
                }
                Err(e) => ready(Err(e)),
            },
            GroupOp::Sync {
                member,
                generation,
                assignments,
            } => match self.group.sync(&member, generation, assignments, t) {
                Ok(()) => {
                    let (tx, rx) = oneshot::channel();
                    self.syncs.insert(member, tx);
                    Box::pin(async move {
                        match rx.await {
                            Ok(r) => r.map(GroupReply::Synced),
                            Err(_) => Err(BrokerError::Stopped("the group coordinator".into())),
                        }
                    })
                }
                Err(e) => ready(Err(e)),
            },
            GroupOp::Heartbeat { member, generation } => ready(
                self.group
                    .heartbeat(&member, generation, t)
                    .map(|()| GroupReply::Done),
            ),
            GroupOp::Leave { members } => {
                let mut first_err = None;
                for m in members {
                    if let Err(e) = self.group.leave(&m, t) {
                        first_err.get_or_insert(e);
                    }
                }
                ready(first_err.map_or(Ok(GroupReply::Done), Err))
            }
            GroupOp::Commit {
                member,
                generation,
                offsets,
            } => {
                if let Err(e) = self.group.check_commit(&member, generation) {
                    return ready(Err(e));
                }
                let group = self.group.id().to_owned();
                let records: Vec<_> = offsets
                    .into_iter()
                    .map(|(topic, partition, offset)| {
                        (
                            OffsetsKey::Offset {
                                group: group.clone(),
                                topic,
                                partition,
                            },
                            Some(OffsetsValue::Offset(offset)),
                        )
                    })
                    .collect();
                let detail = eddy_metrics::partition_series();
                let gauges: Vec<(metrics::Gauge, i64)> = records
                    .iter()
                    .filter(|_| detail)
                    .filter_map(|(key, value)| match (key, value) {
                        (
                            OffsetsKey::Offset {
                                topic, partition, ..
                            },
                            Some(OffsetsValue::Offset(o)),
                        ) => Some((
                            metrics::gauge!(
                                eddy_metrics::GROUP_COMMITTED_OFFSET,
                                "group" => group.clone(),
                                "topic" => topic.clone(),
                                "partition" => partition.to_string()
                            ),
                            o.offset,
                        )),
                        _ => None,
                    })
                    .collect();
                let write = self.partition.send(Persist(records));
                Box::pin(async move {
                    write.await??;
                    metrics::counter!(eddy_metrics::GROUP_OFFSET_COMMITS, "group" => group)
                        .increment(1);
                    for (gauge, offset) in gauges {
                        gauge.set(offset as f64);
                    }
                    Ok(GroupReply::Done)
                })
            }
            GroupOp::Describe => {
                let s = self.group.snapshot();
                ready(Ok(GroupReply::Described(GroupDescription {
                    group: self.group.id().to_owned(),
                    state: s.state,
                    generation: s.generation,
                    protocol_type: s.protocol_type,
                    protocol: s.protocol,
                    leader: s.leader,
                    members: s.members,
                    offsets: Vec::new(),
                })))
            }
            GroupOp::Delete => {
                let r = self.group.delete().map(|()| GroupReply::Done);
                if r.is_ok() {
                    debug!(group = self.group.id(), "group deleted");
                    ctx.stop();
                }
                ready(r)
            }
            // Answered by the partition actor from its state.
            GroupOp::FetchOffsets { .. } => ready(Err(BrokerError::Stopped(
                "offset fetches are answered by the offsets partition".into(),
            ))),
        }
    }
}

impl Actor for GroupCoordinator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // A restored group's members get a full session from now to heartbeat again.
        self.settle(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        // Parked requests see their channel close: the client finds the coordinator again.
        self.joins.clear();
        self.syncs.clear();
    }
}

impl Handler<GroupRequest> for GroupCoordinator {
    type Result = ResponseFuture<Result<GroupReply, BrokerError>>;

    fn handle(&mut self, msg: GroupRequest, ctx: &mut Context<Self>) -> Self::Result {
        let reply = self.handle_op(msg.op, ctx);
        self.settle(ctx);
        reply
    }
}

impl Handler<Shutdown> for GroupCoordinator {
    type Result = ();

    fn handle(&mut self, _msg: Shutdown, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
