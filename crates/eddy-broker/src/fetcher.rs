//! The follower side of one pair of brokers' replication: every partition this broker follows
//! from one leader broker, in one fetch session. A state machine, no actor and no I/O: its
//! broker asks it what to send next (an [`EpochEnds`] batch, a [`ReplicaFetch`]) and tells it
//! what came back and what its log did.
//!
//! A partition joins the session when its leader wakes it (records for it and it was not in
//! the session), when the metadata names this broker its follower, or when its broker starts.
//! Before it fetches under a leader epoch it has not checked, it asks the leader where its own
//! latest epoch ends (Kafka's OffsetForLeaderEpoch, KIP-101) and its broker cuts what lies
//! past that. It leaves the session once it has brought nothing for `partition_idle_timeout`,
//! so an idle partition costs nothing here and nothing at the leader. One fetch is in flight
//! at a time; its batches, for every partition, go to the log in one append, and the next
//! fetch reports the new log ends.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use eddy_types::{BrokerId, PartitionId, TopicName};

use crate::messages::{
    EpochEndReply, LeaderEpochEnd, ReplicaAnswer, ReplicaFetch, ReplicaPosition,
};

/// Wait before asking again about an epoch after a refusal or a failed question.
const SYNC_BACKOFF: Duration = Duration::from_millis(100);

/// Where a partition stands with its leader's epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sync {
    /// Its latest local epoch must be checked against the leader (from `not_before` on).
    Needed { latest: i32, not_before: Instant },
    /// The question (or the cut after it) is in flight.
    InFlight,
    /// Checked: it fetches.
    Done,
}

/// One followed partition.
#[derive(Debug, Clone)]
pub(crate) struct Followed {
    pub(crate) topic: TopicName,
    pub(crate) index: u32,
    /// The leader epoch it follows.
    pub(crate) leader_epoch: i32,
    sync: Sync,
    /// Its log end.
    pub(crate) log_end: u64,
    storage_failed: bool,
    /// Batches of it are being appended.
    appending: bool,
    /// Named in the next fetch's positions.
    reported: bool,
    /// Leave the session once the append in flight is done (its broker is about to lead it).
    release: bool,
    last_data: Instant,
    /// The leader's high watermark as of its last batches, capped at this log's end.
    pub(crate) high_watermark: u64,
    saved_high_watermark: u64,
}

/// Batches of one partition to append, from a leader's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ToAppend {
    pub(crate) pid: PartitionId,
    pub(crate) records: Bytes,
    pub(crate) high_watermark: u64,
    pub(crate) log_start: u64,
    pub(crate) leader_end: u64,
}

/// What an answer asks of the broker.
#[derive(Debug, Default)]
pub(crate) struct Answered {
    /// Append these (one log append for all), then call [`FetcherCore::appended`] for each.
    pub(crate) appends: Vec<ToAppend>,
    /// The leader has records of these for this broker: follow them if the metadata agrees.
    pub(crate) wake: Vec<(TopicName, u32)>,
    /// Refused by the leader (another epoch, or it no longer leads them): look at the
    /// metadata again.
    pub(crate) refused: Vec<PartitionId>,
}

/// The fetch settings of a link.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FetchLimits {
    pub(crate) max_wait: Duration,
    pub(crate) max_bytes: usize,
    pub(crate) partition_max_bytes: usize,
}

/// The follower side of one link.
#[derive(Debug)]
pub(crate) struct FetcherCore {
    me: BrokerId,
    session: u64,
    partitions: HashMap<PartitionId, Followed>,
    report: Vec<PartitionId>,
    removed: Vec<PartitionId>,
    /// A fetch (or the appends of its answer) is in flight.
    fetching: bool,
    /// An [`EpochEnds`] question (or the cuts after it) is in flight.
    syncing: bool,
    /// Partitions that may need their epoch checked (so that a fetch round does not walk
    /// every partition of the session).
    to_sync: Vec<PartitionId>,
}

impl FetcherCore {
    /// A link of `me` to a leader broker, in fetch session `session` (unique to this run of `me`).
    pub(crate) fn new(me: BrokerId, session: u64) -> FetcherCore {
        FetcherCore {
            me,
            session,
            partitions: HashMap::new(),
            report: Vec::new(),
            removed: Vec::new(),
            fetching: false,
            syncing: false,
            to_sync: Vec::new(),
        }
    }

    /// Partitions in the session.
    pub(crate) fn len(&self) -> usize {
        self.partitions.len()
    }

    pub(crate) fn get(&self, pid: PartitionId) -> Option<&Followed> {
        self.partitions.get(&pid)
    }

    /// Whether a position waits to be reported. `report` may also hold entries that no
    /// longer count (the partition left, or was unmarked): a partition counts while it is in
    /// the session with `reported` set.
    fn has_report(&self) -> bool {
        self.report
            .iter()
            .any(|p| self.partitions.get(p).is_some_and(|f| f.reported))
    }

    fn mark_report(&mut self, pid: PartitionId) {
        if let Some(f) = self.partitions.get_mut(&pid) {
            if !f.reported && f.sync == Sync::Done {
                f.reported = true;
                self.report.push(pid);
            }
        }
    }

    /// Follows `pid` under `leader_epoch`; this log ends at `log_end` and its latest epoch is
    /// `latest_epoch` (`None`: nothing was ever appended, nothing to check). Already
    /// followed under that epoch: its position goes out with the next fetch (what a wake
    /// asks for).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn follow(
        &mut self,
        pid: PartitionId,
        topic: &TopicName,
        index: u32,
        leader_epoch: i32,
        log_end: u64,
        latest_epoch: Option<i32>,
        now: Instant,
    ) {
        // Checked (and dropped from the list if it needs nothing) at the next sync request.
        self.to_sync.push(pid);
        let sync = match latest_epoch {
            // Its latest records came from this leader in this epoch: nothing can diverge.
            Some(latest) if latest == leader_epoch => Sync::Done,
            Some(latest) => Sync::Needed {
                latest,
                not_before: now,
            },
            None => Sync::Done,
        };
        match self.partitions.get_mut(&pid) {
            Some(f) if f.leader_epoch == leader_epoch => {
                f.release = false;
                f.last_data = now;
                self.mark_report(pid);
            }
            Some(f) => {
                // A new leader epoch: check it before fetching again.
                f.leader_epoch = leader_epoch;
                f.release = false;
                f.last_data = now;
                if !f.appending {
                    f.log_end = log_end;
                    f.sync = sync;
                } else {
                    f.sync = Sync::Needed {
                        latest: latest_epoch.unwrap_or(leader_epoch),
                        not_before: now,
                    };
                    self.to_sync.push(pid);
                }
                if f.sync == Sync::Done {
                    self.mark_report(pid);
                }
            }
            None => {
                self.partitions.insert(
                    pid,
                    Followed {
                        topic: topic.clone(),
                        index,
                        leader_epoch,
                        sync,
                        log_end,
                        storage_failed: false,
                        appending: false,
                        reported: false,
                        release: false,
                        last_data: now,
                        high_watermark: 0,
                        saved_high_watermark: 0,
                    },
                );
                self.removed.retain(|p| *p != pid);
                self.mark_report(pid);
            }
        }
    }

    /// Stops following `pid`: at once (true), or once the append of it in flight is done
    /// (false; [`FetcherCore::appended`] then says it left).
    pub(crate) fn leave(&mut self, pid: PartitionId) -> bool {
        match self.partitions.get_mut(&pid) {
            None => true,
            Some(f) if f.appending => {
                f.release = true;
                false
            }
            Some(_) => {
                // Its entry in `report`, if any, is skipped by the next fetch (a search
                // here made leaving many partitions quadratic).
                self.partitions.remove(&pid);
                self.removed.push(pid);
                true
            }
        }
    }

    /// The epoch questions to ask now, if none is in flight.
    pub(crate) fn sync_request(
        &mut self,
        now: Instant,
    ) -> Option<Vec<(PartitionId, LeaderEpochEnd)>> {
        if self.syncing {
            return None;
        }
        let mut asks = Vec::new();
        let mut candidates = std::mem::take(&mut self.to_sync);
        candidates.sort_unstable();
        candidates.dedup();
        for pid in candidates {
            let Some(f) = self.partitions.get_mut(&pid) else {
                continue;
            };
            if let Sync::Needed { latest, not_before } = f.sync {
                if now >= not_before && !f.appending {
                    f.sync = Sync::InFlight;
                    asks.push((
                        pid,
                        LeaderEpochEnd {
                            topic: f.topic.clone(),
                            partition: f.index,
                            leader_epoch: f.leader_epoch,
                            epoch: latest,
                        },
                    ));
                } else {
                    self.to_sync.push(pid);
                }
            }
        }
        if asks.is_empty() {
            return None;
        }
        self.syncing = true;
        Some(asks)
    }

    /// The earliest time a partition waiting to check its epoch may ask.
    pub(crate) fn next_sync(&self) -> Option<Instant> {
        self.to_sync
            .iter()
            .filter_map(|p| match self.partitions.get(p)?.sync {
                Sync::Needed { not_before, .. } => Some(not_before),
                _ => None,
            })
            .min()
    }

    /// The epoch questions (and the cuts after them) are done.
    pub(crate) fn sync_done(&mut self) {
        self.syncing = false;
    }

    /// `pid` is checked against `leader_epoch` (cut to `log_end` if it had to be).
    pub(crate) fn synced(&mut self, pid: PartitionId, leader_epoch: i32, log_end: u64) {
        if let Some(f) = self.partitions.get_mut(&pid) {
            if f.leader_epoch == leader_epoch && f.sync == Sync::InFlight {
                f.sync = Sync::Done;
                f.log_end = log_end;
                self.mark_report(pid);
            }
        }
    }

    /// The check of `pid` failed or was refused: ask again a little later.
    pub(crate) fn sync_failed(&mut self, pid: PartitionId, latest: i32, now: Instant) {
        if let Some(f) = self.partitions.get_mut(&pid) {
            if matches!(f.sync, Sync::InFlight | Sync::Done) {
                f.sync = Sync::Needed {
                    latest,
                    not_before: now + SYNC_BACKOFF,
                };
                self.to_sync.push(pid);
                f.reported = false; // its entry in `report` is now skipped
            }
        }
    }

    /// The next fetch, if none is in flight: the positions that changed and the partitions
    /// that left. Sent even with neither, so that the leader can wake this broker.
    pub(crate) fn fetch_request(&mut self, limits: FetchLimits) -> Option<ReplicaFetch> {
        // While epochs are being checked, a fetch with nothing to report would only park at
        // the leader, and the positions of the partitions checked would wait behind it.
        if self.fetching || (self.syncing && !self.has_report()) {
            return None;
        }
        self.fetching = true;
        let mut positions = Vec::with_capacity(self.report.len());
        for pid in self.report.drain(..) {
            if let Some(f) = self.partitions.get_mut(&pid) {
                if !f.reported {
                    continue; // left, refused or unmarked since (or a second entry)
                }
                f.reported = false;
                if f.sync == Sync::Done {
                    positions.push(ReplicaPosition {
                        topic: f.topic.clone(),
                        index: f.index,
                        pid,
                        leader_epoch: f.leader_epoch,
                        log_end: f.log_end,
                        storage_failed: f.storage_failed,
                    });
                }
            }
        }
        Some(ReplicaFetch {
            follower: self.me,
            session: self.session,
            positions,
            removed: std::mem::take(&mut self.removed),
            max_wait: limits.max_wait,
            max_bytes: limits.max_bytes,
            partition_max_bytes: limits.partition_max_bytes,
        })
    }

    /// A fetch failed as a whole (the leader broker is gone, or the request failed): every
    /// position goes out again with the next one (an answer with batches may have been lost,
    /// and the leader sends a partition nothing more until it hears where its log ends).
    pub(crate) fn fetch_failed(&mut self, request: &ReplicaFetch) {
        self.fetching = false;
        let all: Vec<PartitionId> = self.partitions.keys().copied().collect();
        for pid in all {
            self.mark_report(pid);
        }
        for pid in &request.removed {
            if !self.partitions.contains_key(pid) {
                self.removed.push(*pid);
            }
        }
    }

    /// The leader answered. Batches of partitions still followed under the epoch they were
    /// read in are to be appended (the fetch stays in flight until [`FetcherCore::appended`]
    /// has been called for each and then [`FetcherCore::fetch_done`]); anything else is
    /// dropped (a partition this broker now leads, or follows under a newer epoch, must not
    /// get batches of an older leader).
    pub(crate) fn answered(&mut self, answer: ReplicaAnswer, now: Instant) -> Answered {
        let mut out = Answered {
            wake: answer.wake,
            ..Answered::default()
        };
        for d in answer.data {
            let Some(f) = self.partitions.get_mut(&d.pid) else {
                continue;
            };
            if f.leader_epoch != d.leader_epoch || f.sync != Sync::Done || f.release {
                continue;
            }
            if d.records.is_empty() {
                f.high_watermark = d.high_watermark.min(f.log_end);
                self.mark_report(d.pid);
                continue;
            }
            f.appending = true;
            f.last_data = now;
            out.appends.push(ToAppend {
                pid: d.pid,
                records: d.records,
                high_watermark: d.high_watermark,
                log_start: d.log_start,
                leader_end: d.log_end,
            });
        }
        for (pid, _) in answer.refused {
            if let Some(f) = self.partitions.get_mut(&pid) {
                if !f.appending {
                    f.sync = Sync::Needed {
                        latest: f.leader_epoch,
                        not_before: now + SYNC_BACKOFF,
                    };
                    self.to_sync.push(pid);
                    f.reported = false; // its entry in `report` is now skipped
                }
            }
            out.refused.push(pid);
        }
        out
    }

    /// The append of `pid`'s batches is done: its log now ends at `log_end` (`Err`: the
    /// append failed; `storage` when on the storage, which the leader is told). Returns true
    /// if the partition left the session now (it was released meanwhile).
    pub(crate) fn appended(
        &mut self,
        pid: PartitionId,
        result: Result<u64, bool>,
        leader_high_watermark: u64,
        now: Instant,
    ) -> bool {
        let Some(f) = self.partitions.get_mut(&pid) else {
            return false;
        };
        f.appending = false;
        match result {
            Ok(end) => {
                f.log_end = end;
                f.storage_failed = false;
                f.high_watermark = leader_high_watermark.min(end);
                f.last_data = now;
            }
            Err(storage) => {
                f.storage_failed = storage;
                if !storage {
                    // Not in step with the leader any more: check again.
                    f.sync = Sync::Needed {
                        latest: f.leader_epoch,
                        not_before: now + SYNC_BACKOFF,
                    };
                    self.to_sync.push(pid);
                }
            }
        }
        if f.release {
            self.partitions.remove(&pid);
            self.removed.push(pid);
            return true;
        }
        self.mark_report(pid);
        false
    }

    /// The answer's appends are all done: the next fetch may go.
    pub(crate) fn fetch_done(&mut self) {
        self.fetching = false;
    }

    /// Partitions that brought nothing for `timeout` leave the session (the leader wakes
    /// them when it has records again). Returns how many left.
    pub(crate) fn leave_idle(&mut self, now: Instant, timeout: Duration) -> usize {
        let idle: Vec<PartitionId> = self
            .partitions
            .iter()
            .filter(|(_, f)| {
                !f.appending
                    && !f.release
                    && f.sync == Sync::Done
                    && now.saturating_duration_since(f.last_data) >= timeout
            })
            .map(|(p, _)| *p)
            .collect();
        for pid in &idle {
            self.leave(*pid);
        }
        idle.len()
    }

    /// High watermarks that moved since they were last saved, marked saved.
    pub(crate) fn take_high_watermarks(&mut self, out: &mut Vec<(PartitionId, u64)>) {
        for (pid, f) in &mut self.partitions {
            if f.high_watermark != f.saved_high_watermark {
                f.saved_high_watermark = f.high_watermark;
                out.push((*pid, f.high_watermark));
            }
        }
    }

    /// Every followed partition, for a broker that stops (its high watermarks saved).
    pub(crate) fn partitions(&self) -> impl Iterator<Item = (&PartitionId, &Followed)> {
        self.partitions.iter()
    }
}

/// Where a follower cuts its log after asking its leader where its latest epoch `latest`
/// ends (KIP-101): the leader's answer `reply`, the follower's log end `my_end`, and
/// `my_end_for(epoch)`, where the follower's own log has `epoch` end (for an answer about an
/// older epoch than its latest).
pub(crate) fn truncation_target(
    latest: i32,
    reply: &EpochEndReply,
    my_end: u64,
    my_end_for: impl FnOnce(i32) -> u64,
) -> u64 {
    match reply.end {
        Some((epoch, end)) if epoch == latest => end.min(my_end),
        Some((epoch, end)) => end.min(my_end_for(epoch)).min(my_end),
        None => reply.log_end.min(my_end),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::ReplicaData;

    const P: PartitionId = PartitionId(4);

    fn limits() -> FetchLimits {
        FetchLimits {
            max_wait: Duration::from_millis(500),
            max_bytes: 10 << 20,
            partition_max_bytes: 1 << 20,
        }
    }

    fn topic() -> TopicName {
        TopicName::new("t").unwrap()
    }

    fn data(pid: PartitionId, epoch: i32, records: &'static [u8]) -> ReplicaData {
        ReplicaData {
            pid,
            leader_epoch: epoch,
            records: Bytes::from_static(records),
            high_watermark: 5,
            log_start: 0,
            log_end: 9,
        }
    }

    #[test]
    fn test_an_empty_log_joins_at_once_and_reports_its_position() {
        let t = Instant::now();
        let mut f = FetcherCore::new(BrokerId(1), 9);
        f.follow(P, &topic(), 2, 3, 0, None, t);
        assert!(f.sync_request(t).is_none(), "nothing to check");
        let req = f.fetch_request(limits()).unwrap();
        assert_eq!(req.positions.len(), 1);
        assert_eq!(
            (req.positions[0].log_end, req.positions[0].leader_epoch),
            (0, 3)
        );
        assert!(f.fetch_request(limits()).is_none(), "one fetch at a time");
        f.fetch_failed(&req);
        let again = f.fetch_request(limits()).unwrap();
        assert_eq!(
            again.positions.len(),
            1,
            "reported again after a failed fetch"
        );
    }

    #[test]
    fn test_a_log_with_epochs_checks_before_it_fetches() {
        let t = Instant::now();
        let mut f = FetcherCore::new(BrokerId(1), 9);
        f.follow(P, &topic(), 2, 3, 10, Some(2), t);
        let asks = f.sync_request(t).unwrap();
        assert_eq!((asks[0].1.epoch, asks[0].1.leader_epoch), (2, 3));
        assert!(
            f.fetch_request(limits()).is_none(),
            "nothing to report while checking"
        );
        f.synced(P, 3, 7);
        f.sync_done();
        let req = f.fetch_request(limits()).unwrap();
        assert_eq!(req.positions[0].log_end, 7, "after the cut");
    }

    #[test]
    fn test_a_log_whose_latest_epoch_is_the_leaders_needs_no_check() {
        let t = Instant::now();
        let mut f = FetcherCore::new(BrokerId(1), 9);
        f.follow(P, &topic(), 2, 3, 10, Some(3), t);
        assert!(f.sync_request(t).is_none());
        assert_eq!(f.fetch_request(limits()).unwrap().positions[0].log_end, 10);
    }

    #[test]
    fn test_batches_are_appended_then_reported_and_stale_ones_dropped() {
        let t = Instant::now();
        let mut f = FetcherCore::new(BrokerId(1), 9);
        f.follow(P, &topic(), 2, 3, 0, None, t);
        f.follow(PartitionId(5), &topic(), 3, 3, 0, None, t);
        let _ = f.fetch_request(limits()).unwrap();
        let answer = ReplicaAnswer {
            data: vec![data(P, 3, b"xx"), data(PartitionId(5), 2, b"old epoch")],
            refused: vec![],
            wake: vec![(topic(), 7)],
        };
        let a = f.answered(answer, t);
        assert_eq!(a.appends.len(), 1, "the older epoch's batches are dropped");
        assert_eq!(a.wake.len(), 1);
        assert!(!f.leave(P), "released after its append");
        assert!(f.appended(P, Ok(9), 5, t), "and gone then");
        f.fetch_done();
        let req = f.fetch_request(limits()).unwrap();
        assert_eq!(req.removed, vec![P]);
        assert!(req.positions.is_empty());
    }

    #[test]
    fn test_idle_partitions_leave_the_session() {
        let t = Instant::now();
        let mut f = FetcherCore::new(BrokerId(1), 9);
        f.follow(P, &topic(), 2, 3, 0, None, t);
        assert_eq!(
            f.leave_idle(t + Duration::from_secs(30), Duration::from_secs(60)),
            0
        );
        assert_eq!(
            f.leave_idle(t + Duration::from_secs(60), Duration::from_secs(60)),
            1
        );
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn test_truncation_target_follows_kip_101() {
        let reply = |end, log_end| EpochEndReply { end, log_end };
        // Same latest epoch: cut at the leader's end of it.
        assert_eq!(truncation_target(3, &reply(Some((3, 8)), 20), 10, |_| 0), 8);
        // The leader knows only an older epoch: the lower of its end and ours.
        assert_eq!(truncation_target(3, &reply(Some((2, 8)), 20), 10, |_| 6), 6);
        // The leader's log is empty of epochs.
        assert_eq!(truncation_target(3, &reply(None, 0), 10, |_| 0), 0);
        // Nothing to cut.
        assert_eq!(
            truncation_target(3, &reply(Some((3, 12)), 20), 10, |_| 0),
            10
        );
    }
}
