//! A partition leader's replication state: follower positions, the in-sync set, and the high
//! watermark. Pure: a `LeaderCore` (leader.rs) feeds it events with the current time and acts
//! on what it returns (move the high watermark, ask the controller to change the ISR).
//!
//! The rules are Kafka's:
//! - a follower's position is the offset of its last fetch (it has everything before it);
//!   it may be ahead of the leader's own durable log end, since the leader hands its batches
//!   to followers while its own commit is under way, never past what it has handed out;
//! - the high watermark is the smallest log end among the in-sync replicas, and never goes back
//!   while this leader lasts;
//! - a follower is caught up when it fetched from the leader's log end; one that has not been
//!   caught up for `replica.lag.time.max.ms` is dropped from the ISR, and one whose position
//!   reaches the high watermark is added back;
//! - an ISR change takes effect only once the controller has recorded it, and one change is
//!   in flight at a time.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use eddy_types::BrokerId;
use serde::Serialize;

/// What the leader knows of one follower.
#[derive(Debug, Clone, Copy)]
struct Follower {
    /// Its log end, as of its last fetch; `None` until it fetches from this leader.
    log_end: Option<u64>,
    /// The last time it was known to have everything the leader had.
    last_caught_up: Instant,
}

/// An observable summary of the replication state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplicationSnapshot {
    /// The leader's log end.
    pub log_end: u64,
    /// The high watermark.
    pub high_watermark: u64,
    /// The in-sync replicas (leader included).
    pub isr: Vec<u32>,
    /// Each follower's last known log end.
    pub followers: BTreeMap<u32, Option<u64>>,
    /// An ISR change waiting for the controller.
    pub pending_isr: Option<Vec<u32>>,
}

/// The leader side of one partition's replication.
#[derive(Debug, Clone)]
pub struct LeaderState {
    me: BrokerId,
    isr: Vec<BrokerId>,
    followers: BTreeMap<BrokerId, Follower>,
    log_end: u64,
    /// The end of the offsets the leader has given out: its log end plus the appends it has
    /// queued and may have handed to followers.
    assigned: u64,
    high_watermark: u64,
    lag_max: Duration,
    /// An ISR change sent to the controller and not answered yet.
    pending_isr: Option<Vec<BrokerId>>,
    /// No append yet under this leader: followers never seen count as caught up until the
    /// first one.
    fresh: bool,
}

impl LeaderState {
    /// The state of a leader that just took over: its own log end, the checkpointed high
    /// watermark, and the replica set and ISR from the metadata.
    pub fn new(
        me: BrokerId,
        replicas: &[BrokerId],
        isr: &[BrokerId],
        log_end: u64,
        high_watermark: u64,
        lag_max: Duration,
        now: Instant,
    ) -> LeaderState {
        let followers = replicas
            .iter()
            .filter(|b| **b != me)
            .map(|b| {
                let f = Follower {
                    log_end: None,
                    last_caught_up: now,
                };
                (*b, f)
            })
            .collect();
        let mut s = LeaderState {
            me,
            isr: isr.to_vec(),
            followers,
            log_end,
            assigned: log_end,
            high_watermark: high_watermark.min(log_end),
            lag_max,
            pending_isr: None,
            fresh: true,
        };
        s.advance_high_watermark();
        s
    }

    /// The leader's log end.
    pub fn log_end(&self) -> u64 {
        self.log_end
    }

    /// Offsets below this are committed: on every in-sync replica.
    pub fn high_watermark(&self) -> u64 {
        self.high_watermark
    }

    /// The in-sync replicas, leader included.
    pub fn isr(&self) -> &[BrokerId] {
        &self.isr
    }

    /// Tells whether `f` is in the ISR.
    pub fn in_sync(&self, f: BrokerId) -> bool {
        self.isr.contains(&f)
    }

    /// The brokers holding follower replicas of this partition.
    pub fn followers(&self) -> impl Iterator<Item = BrokerId> + '_ {
        self.followers.keys().copied()
    }

    /// A follower's log end as of its last report (`None`: not heard from yet).
    pub fn follower_end(&self, follower: BrokerId) -> Option<u64> {
        self.followers.get(&follower).and_then(|f| f.log_end)
    }

    /// Tells whether `broker` holds a follower replica of this partition.
    pub fn is_follower(&self, broker: BrokerId) -> bool {
        self.followers.contains_key(&broker)
    }

    /// Records that offsets up to `end` are given out (queued for the leader's log, and
    /// followers may copy them before the leader's commit).
    pub fn assigned(&mut self, end: u64) {
        self.assigned = self.assigned.max(end);
    }

    /// Records an append that moved the log end to `log_end`. Followers that had everything
    /// before it count as caught up until now. Returns the new high watermark if it moved
    /// (it does at once when the leader is the only in-sync replica).
    pub fn appended(&mut self, log_end: u64, now: Instant) -> Option<u64> {
        if log_end <= self.log_end {
            return None;
        }
        let before = self.log_end;
        let fresh = std::mem::replace(&mut self.fresh, false);
        for f in self.followers.values_mut() {
            let had_all = match f.log_end {
                Some(end) => end >= before,
                None => fresh,
            };
            if had_all {
                f.last_caught_up = now;
            }
        }
        self.log_end = log_end;
        self.assigned = self.assigned.max(log_end);
        self.advance_high_watermark()
    }

    /// Records a follower's fetch from `fetch_offset` (capped at what was given out). Returns
    /// the new high watermark if it moved, and an ISR to propose if the follower just caught
    /// up.
    pub fn follower_fetched(
        &mut self,
        follower: BrokerId,
        fetch_offset: u64,
        now: Instant,
    ) -> (Option<u64>, Option<Vec<BrokerId>>) {
        let Some(f) = self.followers.get_mut(&follower) else {
            return (None, None);
        };
        let end = fetch_offset.min(self.assigned);
        f.log_end = Some(end);
        if end >= self.log_end {
            f.last_caught_up = now;
        }
        let hw = self.advance_high_watermark();
        let expand = if !self.isr.contains(&follower)
            && self.pending_isr.is_none()
            && end >= self.high_watermark
        {
            let mut isr = self.isr.clone();
            isr.push(follower);
            self.pending_isr = Some(isr.clone());
            Some(isr)
        } else {
            None
        };
        (hw, expand)
    }

    /// Followers in the ISR that have not been caught up for longer than the allowed lag; if
    /// any, returns the ISR without them, to propose to the controller.
    pub fn check_lag(&mut self, now: Instant) -> Option<Vec<BrokerId>> {
        if self.pending_isr.is_some() {
            return None;
        }
        let log_end = self.log_end;
        let lagging: Vec<BrokerId> = self
            .isr
            .iter()
            .filter(|b| **b != self.me)
            .filter(|b| {
                self.followers.get(b).is_some_and(|f| {
                    let behind = f.log_end.map_or(!self.fresh, |e| e < log_end);
                    behind && now.saturating_duration_since(f.last_caught_up) > self.lag_max
                })
            })
            .copied()
            .collect();
        if lagging.is_empty() {
            return None;
        }
        let isr: Vec<BrokerId> = self
            .isr
            .iter()
            .copied()
            .filter(|b| !lagging.contains(b))
            .collect();
        self.pending_isr = Some(isr.clone());
        Some(isr)
    }

    /// A follower says its storage failed: if it is in the ISR (and no change is pending),
    /// returns the ISR without it, to propose to the controller.
    pub fn follower_failed(&mut self, follower: BrokerId) -> Option<Vec<BrokerId>> {
        if self.pending_isr.is_some() || follower == self.me || !self.isr.contains(&follower) {
            return None;
        }
        let isr: Vec<BrokerId> = self
            .isr
            .iter()
            .copied()
            .filter(|b| *b != follower)
            .collect();
        self.pending_isr = Some(isr.clone());
        Some(isr)
    }

    /// The controller recorded (or refused, with `None`) the proposed ISR change. Returns the
    /// new high watermark if it moved.
    pub fn isr_changed(&mut self, isr: Option<Vec<BrokerId>>) -> Option<u64> {
        self.pending_isr = None;
        if let Some(isr) = isr {
            self.isr = isr;
        }
        self.advance_high_watermark()
    }

    /// An ISR change is waiting for the controller.
    pub fn isr_change_pending(&self) -> bool {
        self.pending_isr.is_some()
    }

    fn advance_high_watermark(&mut self) -> Option<u64> {
        let mut low = self.log_end;
        for b in &self.isr {
            if *b == self.me {
                continue;
            }
            match self.followers.get(b).and_then(|f| f.log_end) {
                Some(end) => low = low.min(end),
                // A member not heard from yet holds the mark where it is.
                None => low = low.min(self.high_watermark),
            }
        }
        if low > self.high_watermark {
            self.high_watermark = low;
            Some(low)
        } else {
            None
        }
    }

    /// A serialisable summary.
    pub fn snapshot(&self) -> ReplicationSnapshot {
        ReplicationSnapshot {
            log_end: self.log_end,
            high_watermark: self.high_watermark,
            isr: self.isr.iter().map(|b| b.0).collect(),
            followers: self
                .followers
                .iter()
                .map(|(b, f)| (b.0, f.log_end))
                .collect(),
            pending_isr: self
                .pending_isr
                .as_ref()
                .map(|v| v.iter().map(|b| b.0).collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B0: BrokerId = BrokerId(0);
    const B1: BrokerId = BrokerId(1);
    const B2: BrokerId = BrokerId(2);
    const LAG: Duration = Duration::from_secs(30);

    fn leader(now: Instant) -> LeaderState {
        LeaderState::new(B0, &[B0, B1, B2], &[B0, B1, B2], 0, 0, LAG, now)
    }

    #[test]
    fn test_high_watermark_is_min_log_end_of_isr() {
        let t = Instant::now();
        let mut s = leader(t);
        assert_eq!(s.appended(10, t), None, "followers have not fetched");
        assert_eq!(s.follower_fetched(B1, 10, t), (None, None));
        assert_eq!(s.follower_fetched(B2, 4, t), (Some(4), None));
        assert_eq!(s.follower_fetched(B2, 10, t), (Some(10), None));
        assert_eq!(s.high_watermark(), 10);
        // The mark never goes back, even if a follower reports less (it truncated).
        assert_eq!(s.follower_fetched(B2, 3, t), (None, None));
        assert_eq!(s.high_watermark(), 10);
    }

    #[test]
    fn test_followers_ahead_of_the_leaders_commit_count_once_it_lands() {
        let t = Instant::now();
        let mut s = leader(t);
        s.assigned(10);
        // Both followers committed the handed batches before the leader's own commit.
        assert_eq!(s.follower_fetched(B1, 10, t), (None, None));
        assert_eq!(
            s.follower_fetched(B2, 12, t),
            (None, None),
            "capped at what was given out"
        );
        assert_eq!(
            s.high_watermark(),
            0,
            "the leader's own copy is not durable yet"
        );
        assert_eq!(s.appended(10, t), Some(10), "no further fetch needed");
        assert_eq!(s.snapshot().followers.get(&2), Some(&Some(10)));
    }

    #[test]
    fn test_leader_alone_in_isr_commits_at_once() {
        let t = Instant::now();
        let mut s = LeaderState::new(B0, &[B0, B1], &[B0], 0, 0, LAG, t);
        assert_eq!(s.appended(5, t), Some(5));
    }

    #[test]
    fn test_follower_with_failed_storage_leaves_isr_at_once() {
        let t = Instant::now();
        let mut s = leader(t);
        s.appended(10, t);
        s.follower_fetched(B1, 10, t);
        s.follower_fetched(B2, 4, t);
        assert_eq!(s.follower_failed(B0), None, "the leader is not a follower");
        assert_eq!(s.follower_failed(B2), Some(vec![B0, B1]));
        assert_eq!(s.follower_failed(B1), None, "one change at a time");
        assert_eq!(s.isr_changed(Some(vec![B0, B1])), Some(10));
        assert_eq!(s.follower_failed(B2), None, "not in the isr any more");
        // Its storage works again and it catches up: back in.
        assert_eq!(s.follower_fetched(B2, 10, t).1, Some(vec![B0, B1, B2]));
    }

    #[test]
    fn test_lagging_follower_leaves_isr_then_rejoins() {
        let t = Instant::now();
        let mut s = leader(t);
        s.appended(10, t);
        s.follower_fetched(B1, 10, t);
        s.follower_fetched(B2, 10, t);
        s.appended(20, t + Duration::from_secs(1));
        // B1 keeps up, B2 goes silent.
        s.follower_fetched(B1, 20, t + Duration::from_secs(20));
        assert_eq!(
            s.check_lag(t + Duration::from_secs(31)),
            None,
            "B2 caught up at t+1"
        );
        let shrunk = s.check_lag(t + Duration::from_secs(32)).unwrap();
        assert_eq!(shrunk, vec![B0, B1]);
        assert!(
            s.check_lag(t + Duration::from_secs(40)).is_none(),
            "one change at a time"
        );
        assert_eq!(
            s.high_watermark(),
            10,
            "still waits for B2 until the controller agrees"
        );
        assert_eq!(s.isr_changed(Some(shrunk)), Some(20));
        // B2 fetches from below the mark: not yet back; at the mark: proposed.
        assert_eq!(
            s.follower_fetched(B2, 15, t + Duration::from_secs(50)).1,
            None
        );
        let (_, grown) = s.follower_fetched(B2, 20, t + Duration::from_secs(51));
        assert_eq!(grown, Some(vec![B0, B1, B2]));
        s.isr_changed(grown);
        assert!(s.in_sync(B2));
    }

    #[test]
    fn test_idle_partition_does_not_shrink_isr() {
        let t = Instant::now();
        let mut s = leader(t);
        // Nobody fetched and nothing was appended for an hour: nothing to catch up on.
        assert_eq!(s.check_lag(t + Duration::from_secs(3600)), None);
        // The first append starts the clock for followers never seen.
        s.appended(1, t + Duration::from_secs(3600));
        assert_eq!(s.check_lag(t + Duration::from_secs(3620)), None);
        assert!(s.check_lag(t + Duration::from_secs(3631)).is_some());
    }

    #[test]
    fn test_caught_up_follower_stays_in_sync_while_leader_idles() {
        let t = Instant::now();
        let mut s = leader(t);
        s.appended(10, t);
        s.follower_fetched(B1, 10, t);
        s.follower_fetched(B2, 10, t);
        assert_eq!(s.check_lag(t + Duration::from_secs(600)), None);
        // After a long pause, an append: followers had everything before it.
        s.appended(11, t + Duration::from_secs(600));
        assert_eq!(s.check_lag(t + Duration::from_secs(620)), None);
    }

    #[test]
    fn test_refused_isr_change_clears_pending() {
        let t = Instant::now();
        let mut s = leader(t);
        s.appended(10, t);
        assert!(s.check_lag(t + Duration::from_secs(31)).is_some());
        assert!(s.isr_change_pending());
        s.isr_changed(None);
        assert_eq!(s.isr(), &[B0, B1, B2]);
        assert!(!s.isr_change_pending());
    }
}
