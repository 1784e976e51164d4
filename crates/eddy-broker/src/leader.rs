//! One partition's leader replica as a state machine: no actor, no I/O, no clock of its own.
//!
//! Its broker feeds it what happens (a produce, an append committed or failed, a follower's
//! position, the time) and carries out what it asks for: append these stamped batches,
//! send these answers, propose this ISR, ask for a new leader epoch. Answers go to waiters of
//! a type the caller picks (`W`: a reply channel in the broker, a number in tests).
//!
//! The rules:
//! - offsets are given out here ([`Stamped`]): the next append starts where the queued ones
//!   end, so appends of one partition are written in order even while earlier ones commit;
//! - queued batches are handed to followers before the leader's own commit, so that the
//!   fsyncs of all replicas run at the same time; committed ones stay in memory until every
//!   follower has them (up to [`RETAIN_BYTES`]), so a follower a commit behind reads no disk;
//! - `acks=1` is answered at the leader's commit, `acks=all` once the high watermark (the
//!   smallest durable log end of the ISR, the leader's included) passes the records;
//! - an append that fails after followers may have copied it stops produce until the
//!   controller gives a new leader epoch, under which the followers cut what the leader lacks
//!   (KIP-101); if no follower was handed anything past the log end, produce goes on at once;
//! - idempotent producers' retried batches are answered with their first offsets, gaps and
//!   stale epochs refused, before anything is written.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use eddy_log::{Appended, Stamped};
use eddy_types::{Acks, BrokerId, TopicName};

use crate::error::BrokerError;
use crate::messages::ProduceReply;
use crate::producers::{BatchIdentity, Check, ProducerTable};
use crate::replication::{LeaderState, ReplicationSnapshot};

/// Bytes of committed batches a partition keeps in memory for followers that have not
/// fetched them yet; past it they read the log.
pub(crate) const RETAIN_BYTES: usize = 1 << 20;

/// What a new leader starts from: the metadata's replicas and ISR, and its own log.
#[derive(Debug, Clone)]
pub(crate) struct LeaderInit {
    pub(crate) topic: TopicName,
    pub(crate) index: u32,
    pub(crate) me: BrokerId,
    pub(crate) epoch: i32,
    pub(crate) min_insync: u32,
    pub(crate) replicas: Vec<BrokerId>,
    pub(crate) isr: Vec<BrokerId>,
    pub(crate) log_start: u64,
    pub(crate) log_end: u64,
    pub(crate) high_watermark: u64,
    pub(crate) lag_max: Duration,
}

/// An answer to a producer.
#[derive(Debug)]
pub(crate) struct Answer<W> {
    pub(crate) to: W,
    pub(crate) result: Result<ProduceReply, BrokerError>,
    /// How long it waited, and at which acks level (for the latency histogram); `None` for
    /// refusals.
    pub(crate) waited: Option<(Acks, Duration)>,
}

/// A produce, as the broker hands it to the partition's leader.
#[derive(Debug)]
pub(crate) struct ProduceIn<W> {
    pub(crate) records: Bytes,
    pub(crate) acks: Acks,
    pub(crate) timeout: Duration,
    pub(crate) to: W,
}

/// An append the leader asks its broker to make: `stamped` to the log, then
/// [`LeaderCore::append_done`] with `ticket` and the outcome.
#[derive(Debug)]
pub(crate) struct Submit<W> {
    pub(crate) stamped: Stamped,
    pub(crate) ticket: Ticket<W>,
}

/// What the leader needs back with an append's outcome.
#[derive(Debug)]
pub(crate) struct Ticket<W> {
    base: u64,
    bytes: u64,
    acks: Acks,
    tracked: Option<BatchIdentity>,
    /// `None` for `acks=0`, answered when the batch was queued.
    to: Option<W>,
    started: Instant,
    deadline: Instant,
}

/// An `acks=all` answer waiting for the high watermark to pass `need`.
#[derive(Debug)]
struct WaitingAck<W> {
    need: u64,
    reply: ProduceReply,
    to: W,
    started: Instant,
    deadline: Instant,
}

/// What the leader knows of its link to one follower, beyond the follower's position (which
/// [`LeaderState`] keeps). A follower's broker fetches for all the partitions it follows
/// from this broker at once; the leader sends a partition's batches only to a follower that
/// has it in its fetch session, one answer at a time (the next once the follower has said
/// where its log ends after appending the last), and wakes one that does not.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LinkFlags {
    /// The follower's fetch session that holds this partition (0: none). Valid only while
    /// equal to the link's current session.
    pub(crate) session: u64,
    /// The end of the batches sent that the follower has not reported appending yet.
    pub(crate) sent: Option<u64>,
    /// In the link's queue of partitions with something to send.
    pub(crate) queued: bool,
    /// The follower session in which it was last put on the link's wake list (the follower
    /// then joins it and reports its position; it is not woken twice in one session).
    pub(crate) woken: u64,
}

/// What to do for a follower when there is something new for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notify {
    /// Put the partition in the link's queue: its next answer carries batches.
    Queue,
    /// Tell the follower's broker to add the partition to its session.
    Wake,
}

/// Batches for a follower.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReplicaRead {
    /// Nothing past its position.
    Nothing,
    /// From memory (queued or recently committed), ending at `end`.
    Ready { records: Bytes, end: u64 },
    /// Committed batches no longer in memory: read `max_bytes` from `from` in the log.
    FromLog { from: u64, max_bytes: usize },
}

/// What the broker must do after an event.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Effects {
    /// The high watermark moved: wake consumers waiting on this partition.
    pub(crate) high_watermark_moved: bool,
    /// Ask the controller for this ISR.
    pub(crate) propose_isr: Option<Vec<BrokerId>>,
    /// Ask the controller for a new leader epoch for this leader.
    pub(crate) ask_new_epoch: bool,
}

/// One partition's leader.
#[derive(Debug)]
pub(crate) struct LeaderCore<W> {
    topic: TopicName,
    index: u32,
    epoch: i32,
    min_insync: u32,
    repl: LeaderState,
    log_start: u64,
    /// Offset the next appended record gets: the log end plus the queued appends.
    next_offset: u64,
    /// Stamped batches not committed yet, then committed ones some follower may still need;
    /// oldest first.
    queue: VecDeque<Stamped>,
    /// Bytes of committed batches in `queue`.
    retained: usize,
    /// Appends given to the broker and not answered yet.
    inflight: usize,
    /// The end of what followers were handed.
    handed_end: u64,
    /// An append failed: produce is refused with it until the queue drains (and, if
    /// followers may hold what failed, until a new leader epoch).
    failure: Option<BrokerError>,
    epoch_asked: bool,
    next_epoch_ask: Instant,
    /// `acks=all` answers in offset order.
    waiting: VecDeque<WaitingAck<W>>,
    /// The followers' links, in the order of `followers`.
    followers: Vec<BrokerId>,
    links: Vec<LinkFlags>,
    last_activity: Instant,
    /// The high watermark last checkpointed to the log.
    pub(crate) saved_high_watermark: u64,
}

/// Waits this long before asking again for a new epoch the controller refused.
const EPOCH_RETRY: Duration = Duration::from_secs(1);

impl<W> LeaderCore<W> {
    /// A leader that just took over (or woke up) at its log's end and checkpointed mark.
    pub(crate) fn new(init: LeaderInit, now: Instant) -> LeaderCore<W> {
        let repl = LeaderState::new(
            init.me,
            &init.replicas,
            &init.isr,
            init.log_end,
            init.high_watermark,
            init.lag_max,
            now,
        );
        let followers: Vec<BrokerId> = repl.followers().collect();
        let links = vec![LinkFlags::default(); followers.len()];
        LeaderCore {
            topic: init.topic,
            index: init.index,
            epoch: init.epoch,
            min_insync: init.min_insync,
            saved_high_watermark: repl.high_watermark(),
            repl,
            log_start: init.log_start,
            next_offset: init.log_end,
            queue: VecDeque::new(),
            retained: 0,
            inflight: 0,
            handed_end: init.log_end,
            failure: None,
            epoch_asked: false,
            next_epoch_ask: now,
            waiting: VecDeque::new(),
            followers,
            links,
            last_activity: now,
        }
    }

    pub(crate) fn topic(&self) -> &TopicName {
        &self.topic
    }

    pub(crate) fn index(&self) -> u32 {
        self.index
    }

    pub(crate) fn epoch(&self) -> i32 {
        self.epoch
    }

    pub(crate) fn high_watermark(&self) -> u64 {
        self.repl.high_watermark()
    }

    /// The leader's durable log end.
    pub(crate) fn log_end(&self) -> u64 {
        self.repl.log_end()
    }

    pub(crate) fn log_start(&self) -> u64 {
        self.log_start
    }

    /// The log start moved (DeleteRecords, retention).
    pub(crate) fn set_log_start(&mut self, log_start: u64) {
        self.log_start = self.log_start.max(log_start);
    }

    pub(crate) fn isr(&self) -> &[BrokerId] {
        self.repl.isr()
    }

    pub(crate) fn is_follower(&self, b: BrokerId) -> bool {
        self.repl.is_follower(b)
    }

    pub(crate) fn followers(&self) -> &[BrokerId] {
        &self.followers
    }

    pub(crate) fn touch(&mut self, now: Instant) {
        self.last_activity = now;
    }

    pub(crate) fn snapshot(&self) -> ReplicationSnapshot {
        self.repl.snapshot()
    }

    pub(crate) fn waiting_acks(&self) -> usize {
        self.waiting.len()
    }

    /// Refuses a request that names another leader epoch than this leader's.
    pub(crate) fn fenced(&self, requested: i32) -> Option<BrokerError> {
        (requested != self.epoch).then(|| BrokerError::FencedLeaderEpoch {
            topic: self.topic.clone(),
            partition: self.index,
            requested,
            current: self.epoch,
        })
    }

    /// Needs the broker's periodic look (acks that may time out, followers that may lag, a
    /// failure to recover from, an ISR change on its way).
    pub(crate) fn needs_attention(&self) -> bool {
        !self.waiting.is_empty()
            || self.failure.is_some()
            || self.repl.isr_change_pending()
            || self.repl.high_watermark() < self.next_offset
    }

    /// Nothing in flight or waiting, and no request for `timeout`: the broker may drop it
    /// (after checkpointing its high watermark) and build it again from the log on the next
    /// request.
    pub(crate) fn is_idle(&self, now: Instant, timeout: Duration) -> bool {
        now.saturating_duration_since(self.last_activity) >= timeout
            && self.inflight == 0
            && !self.needs_attention()
    }

    /// Handles a produce: answers it now (a refusal, `acks=0`, a duplicate already covered)
    /// or returns the append to make.
    pub(crate) fn produce(
        &mut self,
        req: ProduceIn<W>,
        table: &mut ProducerTable,
        now: Instant,
        out: &mut Vec<Answer<W>>,
    ) -> Option<Submit<W>> {
        self.last_activity = now;
        let refuse = |to: W, e: BrokerError, out: &mut Vec<Answer<W>>| {
            out.push(Answer {
                to,
                result: Err(e),
                waited: None,
            });
        };
        let isr = self.repl.isr().len();
        if req.acks == Acks::All && isr < self.min_insync as usize {
            let e = BrokerError::NotEnoughReplicas {
                topic: self.topic.clone(),
                partition: self.index,
                isr,
                min: self.min_insync,
            };
            refuse(req.to, e, out);
            return None;
        }
        if let Some(e) = &self.failure {
            refuse(req.to, e.clone(), out);
            return None;
        }
        let deadline = now + req.timeout;
        // Idempotent producers: a retried batch is answered with its first offsets; a gap
        // or a stale epoch is refused; nothing is written in either case.
        let mut tracked = None;
        let mut ids = crate::actors::headers(&req.records)
            .into_iter()
            .map(|(h, _)| BatchIdentity::of(&h));
        let first = ids.next();
        let more = ids.next().is_some();
        if let Some(id) = first.filter(BatchIdentity::is_idempotent) {
            let (topic, partition) = (self.topic.clone(), self.index);
            if more {
                let e = BrokerError::InvalidRecords {
                    topic,
                    partition,
                    reason: "an idempotent producer sends one batch per partition per request"
                        .into(),
                };
                refuse(req.to, e, out);
                return None;
            }
            let producer_id = id.producer_id;
            match table.check(&id) {
                Check::Append => {
                    table.record(&id, None);
                    tracked = Some(id);
                }
                Check::InFlight => {
                    refuse(
                        req.to,
                        BrokerError::DuplicateInFlight { topic, partition },
                        out,
                    );
                    return None;
                }
                Check::OutOfOrder { expected, got } => {
                    let e = BrokerError::OutOfOrderSequence {
                        topic,
                        partition,
                        producer_id,
                        expected,
                        got,
                    };
                    refuse(req.to, e, out);
                    return None;
                }
                Check::Fenced { current, got } => {
                    let e = BrokerError::ProducerFenced {
                        topic,
                        partition,
                        producer_id,
                        current,
                        got,
                    };
                    refuse(req.to, e, out);
                    return None;
                }
                Check::Duplicate {
                    base_offset,
                    last_offset,
                } => {
                    let reply = ProduceReply {
                        base_offset: base_offset as i64,
                        last_offset: last_offset as i64,
                        log_start: self.log_start as i64,
                    };
                    self.answer_appended(
                        reply,
                        last_offset,
                        req.acks,
                        req.to,
                        now,
                        now,
                        deadline,
                        out,
                    );
                    return None;
                }
            }
        }
        let bytes = req.records.len() as u64;
        let stamped = match Stamped::new(req.records, self.next_offset, self.epoch) {
            Ok(s) => s,
            Err(e) => {
                if let Some(id) = tracked {
                    table.forget(id.producer_id);
                }
                refuse(req.to, e.into(), out);
                return None;
            }
        };
        let to = if req.acks == Acks::None {
            out.push(Answer {
                to: req.to,
                result: Ok(ProduceReply {
                    base_offset: -1,
                    last_offset: -1,
                    log_start: -1,
                }),
                waited: None,
            });
            None
        } else {
            Some(req.to)
        };
        let ticket = Ticket {
            base: stamped.base_offset(),
            bytes,
            acks: req.acks,
            tracked,
            to,
            started: now,
            deadline,
        };
        self.inflight += 1;
        self.next_offset = stamped.next_offset();
        self.repl.assigned(self.next_offset);
        self.queue.push_back(stamped.clone());
        Some(Submit { stamped, ticket })
    }

    /// Answers a produce whose records are in the log up to `last_offset`: at once for
    /// `acks=1`, or once the high watermark passes them for `acks=all`.
    #[allow(clippy::too_many_arguments)]
    fn answer_appended(
        &mut self,
        reply: ProduceReply,
        last_offset: u64,
        acks: Acks,
        to: W,
        started: Instant,
        now: Instant,
        deadline: Instant,
        out: &mut Vec<Answer<W>>,
    ) {
        if acks == Acks::All {
            self.waiting.push_back(WaitingAck {
                need: last_offset + 1,
                reply,
                to,
                started,
                deadline,
            });
            self.release_acks(now, out);
        } else {
            out.push(Answer {
                to,
                result: Ok(reply),
                waited: Some((acks, now.saturating_duration_since(started))),
            });
        }
    }

    /// Answers every `acks=all` produce the high watermark now covers.
    fn release_acks(&mut self, now: Instant, out: &mut Vec<Answer<W>>) {
        let hw = self.repl.high_watermark();
        while self.waiting.front().is_some_and(|w| w.need <= hw) {
            if let Some(w) = self.waiting.pop_front() {
                out.push(Answer {
                    to: w.to,
                    result: Ok(w.reply),
                    waited: Some((Acks::All, now.saturating_duration_since(w.started))),
                });
            }
        }
    }

    /// The outcome of an append it asked for.
    pub(crate) fn append_done(
        &mut self,
        ticket: Ticket<W>,
        result: Result<Appended, BrokerError>,
        table: &mut ProducerTable,
        now: Instant,
        out: &mut Vec<Answer<W>>,
    ) -> Effects {
        self.inflight = self.inflight.saturating_sub(1);
        let a = match result {
            Ok(a) => a,
            Err(e) => {
                if let Some(id) = ticket.tracked {
                    // The outcome is unknown to the producer: forget what we knew of it, so
                    // that its retry is accepted as a new batch.
                    table.forget(id.producer_id);
                }
                let e = self.append_failed(ticket.base, e);
                if let Some(to) = ticket.to {
                    out.push(Answer {
                        to,
                        result: Err(e),
                        waited: None,
                    });
                }
                return Effects {
                    ask_new_epoch: self.recover(now),
                    ..Effects::default()
                };
            }
        };
        if let Some(id) = ticket.tracked {
            table.appended(&id, a.base_offset, a.last_offset);
        }
        self.log_start = self.log_start.max(a.log_start);
        let end = a.last_offset + 1;
        let moved = self.repl.appended(end, now).is_some();
        self.trim_queue();
        let mut fx = Effects {
            high_watermark_moved: moved,
            ..Effects::default()
        };
        if moved {
            self.release_acks(now, out);
        }
        if let Some(to) = ticket.to {
            let reply = ProduceReply {
                base_offset: a.base_offset as i64,
                last_offset: a.last_offset as i64,
                log_start: a.log_start as i64,
            };
            self.answer_appended(
                reply,
                a.last_offset,
                ticket.acks,
                to,
                ticket.started,
                now,
                ticket.deadline,
                out,
            );
        }
        if self.failure.is_some() {
            fx.ask_new_epoch = self.recover(now);
        }
        fx
    }

    /// Bytes appended by a ticket (for the produce counters).
    pub(crate) fn ticket_bytes(ticket: &Ticket<W>) -> u64 {
        ticket.bytes
    }

    /// The waiter of a ticket whose leader state is gone (the partition changed leader or
    /// epoch while the append was in flight): the broker tells it the leader changed.
    pub(crate) fn abandon(ticket: Ticket<W>) -> Option<W> {
        ticket.to
    }

    /// The append that starts at `base` failed with `e`. Returns the error to answer its
    /// producer with: the first failure's, for the appends queued behind it (they fail
    /// because it did).
    fn append_failed(&mut self, base: u64, e: BrokerError) -> BrokerError {
        self.queue.retain(|s| s.base_offset() != base);
        match &self.failure {
            Some(first) => first.clone(),
            None => {
                tracing::warn!(topic = %self.topic, partition = self.index, offset = base, error = %e, "append failed; refusing produce until the queue drains");
                self.failure = Some(e.clone());
                e
            }
        }
    }

    /// After a failure, once nothing is queued: go on from the log's end if no follower was
    /// handed anything past it, else (returns true) ask for a new leader epoch first.
    fn recover(&mut self, now: Instant) -> bool {
        let end = self.repl.log_end();
        let pending = self.queue.iter().any(|s| s.next_offset() > end);
        if self.failure.is_none() || pending || self.inflight > 0 {
            return false;
        }
        if self.handed_end <= end {
            tracing::info!(topic = %self.topic, partition = self.index, log_end = end, "append queue drained after a failure; taking produce again");
            self.next_offset = end;
            self.failure = None;
            return false;
        }
        if self.epoch_asked || now < self.next_epoch_ask {
            return false;
        }
        tracing::warn!(topic = %self.topic, partition = self.index, log_end = end, handed = self.handed_end, "followers may hold records this leader failed to append; asking for a new leader epoch");
        self.epoch_asked = true;
        true
    }

    /// The controller refused the new epoch: ask again a second later (the metadata may
    /// be on the failed disk too).
    pub(crate) fn new_epoch_refused(&mut self, now: Instant) {
        self.epoch_asked = false;
        self.next_epoch_ask = now + EPOCH_RETRY;
    }

    /// Drops committed batches every follower has (or past the memory bound).
    fn trim_queue(&mut self) {
        let end = self.repl.log_end();
        let slowest = self.slowest_follower();
        // Committed bytes now held.
        self.retained = self
            .queue
            .iter()
            .filter(|s| s.next_offset() <= end)
            .map(|s| s.bytes().len())
            .sum();
        while let Some(front) = self.queue.front() {
            let committed = front.next_offset() <= end;
            let everyone_has_it = slowest.is_none_or(|s| s >= front.next_offset());
            if committed && (everyone_has_it || self.retained > RETAIN_BYTES) {
                self.retained -= front.bytes().len();
                self.queue.pop_front();
            } else {
                break;
            }
        }
    }

    /// The lowest known position of a follower in the ISR (`None`: no follower in it, or one
    /// never heard from, which the queue need not wait for).
    fn slowest_follower(&self) -> Option<u64> {
        self.followers
            .iter()
            .filter(|f| self.repl.in_sync(**f))
            .filter_map(|f| self.repl.follower_end(*f))
            .min()
    }

    /// A follower's position: its log ends at `log_end` (it has every record before it), or
    /// its storage failed. `session` is its fetch session.
    pub(crate) fn follower_position(
        &mut self,
        follower: BrokerId,
        session: u64,
        log_end: u64,
        storage_failed: bool,
        now: Instant,
        out: &mut Vec<Answer<W>>,
    ) -> Effects {
        self.last_activity = now;
        let Some(i) = self.followers.iter().position(|f| *f == follower) else {
            return Effects::default();
        };
        let link = &mut self.links[i];
        if link.session != session {
            // A new session (the follower joined, or its broker restarted): nothing of the
            // old one holds.
            *link = LinkFlags {
                session,
                ..LinkFlags::default()
            };
        }
        link.sent = None;
        let mut fx = Effects::default();
        if storage_failed {
            // Offline until its storage works again: out of the ISR now.
            fx.propose_isr = self.repl.follower_failed(follower);
            if fx.propose_isr.is_some() {
                tracing::warn!(topic = %self.topic, partition = self.index, follower = %follower, "follower's storage failed; taking it out of the isr");
            }
            return fx;
        }
        let (hw, expand) = self.repl.follower_fetched(follower, log_end, now);
        if hw.is_some() {
            fx.high_watermark_moved = true;
            self.release_acks(now, out);
        }
        fx.propose_isr = expand;
        self.trim_queue();
        fx
    }

    /// The follower `follower` dropped this partition from its session `session`.
    pub(crate) fn follower_left(&mut self, follower: BrokerId, session: u64) {
        if let Some(i) = self.followers.iter().position(|f| *f == follower) {
            let link = &mut self.links[i];
            if link.session == session {
                *link = LinkFlags::default();
            }
        }
    }

    /// What to do for `follower` (in fetch session `session` now) when it may have
    /// something to fetch: queue the partition on its link, wake it, or nothing (it has
    /// everything, an answer to it is on its way, or it is queued or woken already).
    pub(crate) fn notify(&mut self, follower: BrokerId, session: u64) -> Option<Notify> {
        let i = self.followers.iter().position(|f| *f == follower)?;
        let position = self.follower_end(follower);
        let link = &mut self.links[i];
        if link.session != 0 && link.session == session {
            let behind = position.is_none_or(|p| p < self.next_offset);
            if link.sent.is_none() && !link.queued && behind {
                link.queued = true;
                return Some(Notify::Queue);
            }
            return None;
        }
        if session != 0 && link.woken != session {
            link.woken = session;
            return Some(Notify::Wake);
        }
        None
    }

    fn follower_end(&self, follower: BrokerId) -> Option<u64> {
        self.repl.follower_end(follower)
    }

    /// What `follower` gets now, taken off its link's queue: the batches past its position,
    /// from memory or from the log. Marks them sent.
    pub(crate) fn replica_read(
        &mut self,
        follower: BrokerId,
        session: u64,
        max_bytes: usize,
    ) -> ReplicaRead {
        let Some(i) = self.followers.iter().position(|f| *f == follower) else {
            return ReplicaRead::Nothing;
        };
        let Some(from) = self.follower_end(follower) else {
            return ReplicaRead::Nothing;
        };
        let link = self.links[i];
        self.links[i].queued = false;
        if link.session != session || link.sent.is_some() || from >= self.next_offset {
            return ReplicaRead::Nothing;
        }
        let read = self.read_from(from, max_bytes);
        match &read {
            ReplicaRead::Ready { end, .. } => {
                self.links[i].sent = Some(*end);
                self.handed_end = self.handed_end.max(*end);
            }
            ReplicaRead::FromLog { .. } => {
                // Committed batches: nothing handed out past the log end.
                self.links[i].sent = Some(self.repl.log_end());
            }
            ReplicaRead::Nothing => {}
        }
        read
    }

    /// The batches from `from` on: the queued ones that start there, whole, up to
    /// `max_bytes` (at least one), or a log read if they are no longer in memory.
    fn read_from(&self, from: u64, max_bytes: usize) -> ReplicaRead {
        let start = self
            .queue
            .iter()
            .position(|s| s.base_offset() <= from && from < s.next_offset());
        let Some(start) = start else {
            return if from < self.repl.log_end() {
                ReplicaRead::FromLog { from, max_bytes }
            } else {
                ReplicaRead::Nothing
            };
        };
        let mut parts: Vec<Bytes> = Vec::new();
        let (mut size, mut end) = (0usize, from);
        for (k, s) in self.queue.iter().enumerate().skip(start) {
            let part = if k == start {
                match s.from_offset(from) {
                    Some(p) => p,
                    // The follower is inside a batch (it cut there?): read the log.
                    None => return ReplicaRead::FromLog { from, max_bytes },
                }
            } else if size + s.bytes().len() > max_bytes {
                break;
            } else {
                s.bytes().clone()
            };
            size += part.len();
            end = s.next_offset();
            parts.push(part);
        }
        let records = match parts.len() {
            1 => parts.pop().unwrap_or_default(),
            _ => {
                let mut joined = bytes::BytesMut::with_capacity(size);
                for p in &parts {
                    joined.extend_from_slice(p);
                }
                joined.freeze()
            }
        };
        ReplicaRead::Ready { records, end }
    }

    /// A log read for a follower came back: it was sent up to `end` (`None`: the read
    /// failed and nothing was sent).
    pub(crate) fn replica_log_read_done(&mut self, follower: BrokerId, end: Option<u64>) {
        if let Some(i) = self.followers.iter().position(|f| *f == follower) {
            match end {
                Some(e) => self.links[i].sent = Some(e),
                None => self.links[i].sent = None,
            }
        }
    }

    /// The periodic look: `acks=all` produces past their timeout, lagging followers, a
    /// failure to recover from.
    pub(crate) fn tick(&mut self, now: Instant, out: &mut Vec<Answer<W>>) -> Effects {
        let mut fx = Effects::default();
        let mut kept = VecDeque::with_capacity(self.waiting.len());
        for w in self.waiting.drain(..) {
            if now >= w.deadline {
                out.push(Answer {
                    to: w.to,
                    result: Err(BrokerError::Timeout("acks=all produce")),
                    waited: None,
                });
            } else {
                kept.push_back(w);
            }
        }
        self.waiting = kept;
        if self.failure.is_some() {
            fx.ask_new_epoch = self.recover(now);
        }
        if let Some(isr) = self.repl.check_lag(now) {
            fx.propose_isr = Some(isr);
        }
        fx
    }

    /// The controller recorded an ISR (`None`: refused the proposal, or nothing to change
    /// but the pending flag). Returns what follows from it.
    pub(crate) fn isr_recorded(
        &mut self,
        isr: Option<Vec<BrokerId>>,
        now: Instant,
        out: &mut Vec<Answer<W>>,
    ) -> Effects {
        let mut fx = Effects::default();
        if self.repl.isr_changed(isr).is_some() {
            fx.high_watermark_moved = true;
            self.release_acks(now, out);
        }
        fx
    }

    /// The published metadata shows another ISR than this leader's, with no change of its
    /// own pending (the controller took a failed broker out).
    pub(crate) fn metadata_isr(
        &mut self,
        isr: &[BrokerId],
        now: Instant,
        out: &mut Vec<Answer<W>>,
    ) -> Effects {
        if self.repl.isr_change_pending() || isr == self.repl.isr() {
            return Effects::default();
        }
        self.isr_recorded(Some(isr.to_vec()), now, out)
    }

    /// Leaves: every waiting producer is told to go to the new leader.
    pub(crate) fn step_down(&mut self, out: &mut Vec<Answer<W>>) {
        for w in self.waiting.drain(..) {
            out.push(Answer {
                to: w.to,
                result: Err(BrokerError::LeaderChanged {
                    topic: self.topic.clone(),
                    partition: self.index,
                }),
                waited: None,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_log::testing::batch_bytes;

    const B0: BrokerId = BrokerId(0);
    const B1: BrokerId = BrokerId(1);
    const B2: BrokerId = BrokerId(2);
    const S: u64 = 7;

    fn core(t: Instant) -> LeaderCore<u32> {
        LeaderCore::new(
            LeaderInit {
                topic: TopicName::new("t").unwrap(),
                index: 0,
                me: B0,
                epoch: 3,
                min_insync: 1,
                replicas: vec![B0, B1, B2],
                isr: vec![B0, B1, B2],
                log_start: 0,
                log_end: 0,
                high_watermark: 0,
                lag_max: Duration::from_secs(30),
            },
            t,
        )
    }

    fn produce(
        c: &mut LeaderCore<u32>,
        n: usize,
        acks: Acks,
        to: u32,
        t: Instant,
    ) -> (Option<Submit<u32>>, Vec<Answer<u32>>) {
        let mut out = Vec::new();
        let mut table = ProducerTable::default();
        let req = ProduceIn {
            records: batch_bytes(n, 1, 8),
            acks,
            timeout: Duration::from_secs(30),
            to,
        };
        let s = c.produce(req, &mut table, t, &mut out);
        (s, out)
    }

    fn appended(s: &Submit<u32>) -> Appended {
        Appended {
            base_offset: s.stamped.base_offset(),
            last_offset: s.stamped.next_offset() - 1,
            log_start: 0,
        }
    }

    #[test]
    fn test_offsets_are_given_out_in_order_while_appends_are_in_flight() {
        let t = Instant::now();
        let mut c = core(t);
        let (a, _) = produce(&mut c, 3, Acks::All, 1, t);
        let (b, _) = produce(&mut c, 2, Acks::All, 2, t);
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!((a.stamped.base_offset(), a.stamped.next_offset()), (0, 3));
        assert_eq!((b.stamped.base_offset(), b.stamped.next_offset()), (3, 5));
        assert!(c.needs_attention(), "records above the high watermark");
    }

    #[test]
    fn test_acks_all_waits_for_every_isr_member_and_acks_1_for_the_leader() {
        let t = Instant::now();
        let mut c = core(t);
        let mut table = ProducerTable::default();
        let (s1, _) = produce(&mut c, 3, Acks::All, 1, t);
        let (s2, _) = produce(&mut c, 1, Acks::Leader, 2, t);
        let (s1, s2) = (s1.unwrap(), s2.unwrap());
        let mut out = Vec::new();
        let a1 = appended(&s1);
        let a2 = appended(&s2);
        c.append_done(s1.ticket, Ok(a1), &mut table, t, &mut out);
        assert!(out.is_empty(), "acks=all waits for the followers");
        c.append_done(s2.ticket, Ok(a2), &mut table, t, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].to, 2, "acks=1 answered at the leader's commit");
        out.clear();
        let fx = c.follower_position(B1, S, 4, false, t, &mut out);
        assert!(!fx.high_watermark_moved && out.is_empty());
        let fx = c.follower_position(B2, S, 3, false, t, &mut out);
        assert!(fx.high_watermark_moved);
        assert_eq!(c.high_watermark(), 3);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].to, 1);
        assert_eq!(out[0].result.as_ref().unwrap().base_offset, 0);
        assert!(c.needs_attention(), "offset 3 is still above the mark");
        c.follower_position(B2, S, 4, false, t, &mut out);
        assert!(!c.needs_attention());
    }

    #[test]
    fn test_followers_get_queued_batches_before_the_leaders_commit_one_answer_at_a_time() {
        let t = Instant::now();
        let mut c = core(t);
        let mut out = Vec::new();
        // B1 joined the session at 0.
        c.follower_position(B1, S, 0, false, t, &mut out);
        let (s, _) = produce(&mut c, 2, Acks::All, 1, t);
        let s = s.unwrap();
        assert_eq!(c.notify(B1, S), Some(Notify::Queue));
        assert_eq!(c.notify(B1, S), None, "queued once");
        assert_eq!(c.notify(B2, S), Some(Notify::Wake), "B2 has no session");
        assert_eq!(c.notify(B2, S), None, "woken once");
        let ReplicaRead::Ready { records, end } = c.replica_read(B1, S, 1 << 20) else {
            panic!("in memory")
        };
        assert_eq!((records, end), (s.stamped.bytes().clone(), 2));
        // Another append while that answer is on its way: nothing until B1 reports.
        let (_s2, _) = produce(&mut c, 1, Acks::All, 2, t);
        assert_eq!(c.notify(B1, S), None);
        assert_eq!(c.replica_read(B1, S, 1 << 20), ReplicaRead::Nothing);
        c.follower_position(B1, S, 2, false, t, &mut out);
        assert_eq!(c.notify(B1, S), Some(Notify::Queue));
        let ReplicaRead::Ready { end, .. } = c.replica_read(B1, S, 1 << 20) else {
            panic!("the second append")
        };
        assert_eq!(end, 3);
        // A new session of B1 (its broker restarted): the old flags do not count.
        assert_eq!(c.notify(B1, S + 1), Some(Notify::Wake));
    }

    #[test]
    fn test_committed_batches_stay_in_memory_until_followers_have_them() {
        let t = Instant::now();
        let mut c = core(t);
        let mut table = ProducerTable::default();
        let mut out = Vec::new();
        c.follower_position(B1, S, 0, false, t, &mut out);
        c.follower_position(B2, S, 0, false, t, &mut out);
        let (s, _) = produce(&mut c, 2, Acks::All, 1, t);
        let s = s.unwrap();
        let a = appended(&s);
        c.append_done(s.ticket, Ok(a), &mut table, t, &mut out);
        assert!(matches!(
            c.replica_read(B1, S, 1 << 20),
            ReplicaRead::Ready { end: 2, .. }
        ));
        c.follower_position(B1, S, 2, false, t, &mut out);
        c.follower_position(B2, S, 2, false, t, &mut out);
        assert!(out.iter().any(|a| a.to == 1), "acks=all released");
        // Everyone has it: gone from memory; a follower reporting less reads the log.
        c.follower_position(B2, S, 1, false, t, &mut out);
        assert_eq!(
            c.replica_read(B2, S, 1 << 20),
            ReplicaRead::FromLog {
                from: 1,
                max_bytes: 1 << 20
            }
        );
    }

    #[test]
    fn test_a_failed_append_stops_produce_until_a_new_epoch_when_followers_have_it() {
        let t = Instant::now();
        let mut c = core(t);
        let mut table = ProducerTable::default();
        let mut out = Vec::new();
        c.follower_position(B1, S, 0, false, t, &mut out);
        let (s, _) = produce(&mut c, 2, Acks::All, 1, t);
        let s = s.unwrap();
        assert!(matches!(
            c.replica_read(B1, S, 1 << 20),
            ReplicaRead::Ready { .. }
        ));
        let e = BrokerError::from(eddy_log::LogError::DiskFull {
            path: "test".into(),
        });
        let fx = c.append_done(s.ticket, Err(e), &mut table, t, &mut out);
        assert!(fx.ask_new_epoch, "B1 holds what the leader lost");
        assert!(out[0].result.is_err());
        let (none, refused) = produce(&mut c, 1, Acks::All, 2, t);
        assert!(
            none.is_none() && refused[0].result.is_err(),
            "refused until the new epoch"
        );
        c.new_epoch_refused(t);
        assert!(
            !c.tick(t, &mut out).ask_new_epoch,
            "waits before asking again"
        );
        assert!(c.tick(t + EPOCH_RETRY, &mut out).ask_new_epoch);
    }

    #[test]
    fn test_a_failed_append_nobody_copied_lets_produce_go_on_at_the_log_end() {
        let t = Instant::now();
        let mut c = core(t);
        let mut table = ProducerTable::default();
        let mut out = Vec::new();
        let (s, _) = produce(&mut c, 2, Acks::Leader, 1, t);
        let e = BrokerError::from(eddy_log::LogError::DiskFull {
            path: "test".into(),
        });
        let fx = c.append_done(s.unwrap().ticket, Err(e), &mut table, t, &mut out);
        assert!(!fx.ask_new_epoch);
        let (s, _) = produce(&mut c, 1, Acks::Leader, 2, t);
        assert_eq!(
            s.unwrap().stamped.base_offset(),
            0,
            "the failed offsets are reused"
        );
    }

    #[test]
    fn test_acks_all_times_out_and_a_step_down_answers_the_rest() {
        let t = Instant::now();
        let mut c = core(t);
        let mut table = ProducerTable::default();
        let mut out = Vec::new();
        let (s, _) = produce(&mut c, 1, Acks::All, 1, t);
        let s = s.unwrap();
        let a = appended(&s);
        c.append_done(s.ticket, Ok(a), &mut table, t, &mut out);
        let (s, _) = produce(&mut c, 1, Acks::All, 2, t + Duration::from_secs(10));
        let s = s.unwrap();
        let a = appended(&s);
        c.append_done(s.ticket, Ok(a), &mut table, t, &mut out);
        c.tick(t + Duration::from_secs(31), &mut out);
        assert_eq!(out.len(), 1);
        assert!(matches!(out[0].result, Err(BrokerError::Timeout(_))));
        out.clear();
        c.step_down(&mut out);
        assert!(matches!(
            out[0].result,
            Err(BrokerError::LeaderChanged { .. })
        ));
    }

    #[test]
    fn test_acks_all_below_min_insync_is_refused_and_writes_nothing() {
        let t = Instant::now();
        let mut c: LeaderCore<u32> = LeaderCore::new(
            LeaderInit {
                min_insync: 2,
                isr: vec![B0],
                ..core(t).init_for_tests()
            },
            t,
        );
        let (s, out) = produce(&mut c, 1, Acks::All, 1, t);
        assert!(s.is_none());
        assert!(matches!(
            out[0].result,
            Err(BrokerError::NotEnoughReplicas { isr: 1, min: 2, .. })
        ));
        let (s, _) = produce(&mut c, 1, Acks::Leader, 2, t);
        assert_eq!(s.unwrap().stamped.base_offset(), 0);
    }

    #[test]
    fn test_an_idle_leader_is_one_with_nothing_in_flight_or_waiting() {
        let t = Instant::now();
        let mut c = core(t);
        let idle = Duration::from_secs(60);
        assert!(!c.is_idle(t, idle));
        assert!(c.is_idle(t + idle, idle));
        let (s, _) = produce(&mut c, 1, Acks::Leader, 1, t + idle);
        assert!(!c.is_idle(t + idle * 3, idle), "an append in flight");
        let mut table = ProducerTable::default();
        let mut out = Vec::new();
        let s = s.unwrap();
        let a = appended(&s);
        c.append_done(s.ticket, Ok(a), &mut table, t + idle, &mut out);
        assert!(
            !c.is_idle(t + idle * 3, idle),
            "records above the high watermark"
        );
        c.follower_position(B1, S, 1, false, t + idle, &mut out);
        c.follower_position(B2, S, 1, false, t + idle, &mut out);
        assert!(c.is_idle(t + idle * 3, idle));
    }

    impl LeaderCore<u32> {
        fn init_for_tests(&self) -> LeaderInit {
            LeaderInit {
                topic: self.topic.clone(),
                index: self.index,
                me: B0,
                epoch: self.epoch,
                min_insync: self.min_insync,
                replicas: vec![B0, B1, B2],
                isr: self.repl.isr().to_vec(),
                log_start: 0,
                log_end: 0,
                high_watermark: 0,
                lag_max: Duration::from_secs(30),
            }
        }
    }
}
