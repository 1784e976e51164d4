//! Per-partition state kept in the `meta` database, next to the partition's batches.
//!
//! It is rewritten in the same transaction as every append, truncation or deletion, so after a
//! crash it always matches the batches on disk. Nothing of it is kept in memory: an idle
//! partition costs only its keys on disk.

use serde::{Deserialize, Serialize};

/// Settings of one partition replica that the log itself enforces.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionConfig {
    /// Batches whose largest timestamp is older than this many milliseconds are removed by
    /// [`LogStore::enforce_retention`](crate::LogStore::enforce_retention). `None`: keep forever.
    pub retention_ms: Option<i64>,
    /// Oldest batches are removed while the partition would stay at or above this many bytes
    /// without them. `None`: no size limit.
    pub retention_bytes: Option<u64>,
}

/// First offset written under a leader epoch (Kafka's leader-epoch cache, KIP-101).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochStart {
    /// The leader epoch.
    pub epoch: i32,
    /// The first offset appended in that epoch.
    pub start_offset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PartitionState {
    pub(crate) config: PartitionConfig,
    /// First offset a reader may ask for.
    pub(crate) log_start: u64,
    /// Offset the next appended record gets.
    pub(crate) log_end: u64,
    /// Sum of the stored batch sizes.
    pub(crate) size_bytes: u64,
    /// Last high watermark the broker checkpointed.
    pub(crate) high_watermark: u64,
    /// Ascending by epoch and by start offset.
    pub(crate) epochs: Vec<EpochStart>,
}

impl PartitionState {
    pub(crate) fn new(config: PartitionConfig) -> PartitionState {
        PartitionState {
            config,
            log_start: 0,
            log_end: 0,
            size_bytes: 0,
            high_watermark: 0,
            epochs: Vec::new(),
        }
    }

    /// Records that `epoch` starts at `offset`, if it is newer than the latest known epoch.
    pub(crate) fn note_epoch(&mut self, epoch: i32, offset: u64) {
        if epoch < 0 {
            return;
        }
        match self.epochs.last() {
            Some(last) if last.epoch >= epoch => {}
            _ => self.epochs.push(EpochStart {
                epoch,
                start_offset: offset,
            }),
        }
    }

    /// Forgets epochs that start at or after `end` (after a truncation).
    pub(crate) fn truncate_epochs(&mut self, end: u64) {
        self.epochs.retain(|e| e.start_offset < end);
    }

    /// Kafka's `OffsetForLeaderEpoch` answer: the largest epoch `<= requested` and the offset
    /// where the epoch after it starts (or the log end for the latest epoch).
    ///
    /// An epoch above every epoch in this log gets the latest epoch and the log end: this log
    /// holds nothing written after `requested` began. (Kafka answers "undefined" there, because
    /// its leaders record their epoch when they take over; Eddy's leaders record it with their
    /// first append, so a follower may know a newer epoch than its leader's log.)
    pub(crate) fn end_offset_for_epoch(&self, requested: i32) -> Option<(i32, u64)> {
        let latest = self.epochs.last()?;
        if requested >= latest.epoch {
            return Some((latest.epoch, self.log_end));
        }
        let higher = self.epochs.iter().find(|e| e.epoch > requested)?;
        match self.epochs.iter().rev().find(|e| e.epoch <= requested) {
            Some(floor) => Some((floor.epoch, higher.start_offset)),
            None => Some((requested, higher.start_offset)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_with(epochs: &[(i32, u64)], log_end: u64) -> PartitionState {
        let mut s = PartitionState::new(PartitionConfig::default());
        for &(e, o) in epochs {
            s.note_epoch(e, o);
        }
        s.log_end = log_end;
        s
    }

    #[test]
    fn test_end_offset_for_epoch_follows_kafka() {
        let s = state_with(&[(1, 0), (3, 10), (4, 25)], 40);
        assert_eq!(s.end_offset_for_epoch(4), Some((4, 40)));
        assert_eq!(s.end_offset_for_epoch(3), Some((3, 25)));
        // Epoch 2 never led: the answer is the epoch before it and where epoch 3 starts.
        assert_eq!(s.end_offset_for_epoch(2), Some((1, 10)));
        assert_eq!(s.end_offset_for_epoch(0), Some((0, 0)));
        assert_eq!(s.end_offset_for_epoch(9), Some((4, 40)));
        assert_eq!(state_with(&[], 5).end_offset_for_epoch(1), None);
    }

    #[test]
    fn test_note_epoch_ignores_older_and_unknown_epochs() {
        let mut s = state_with(&[(2, 0)], 0);
        s.note_epoch(1, 5);
        s.note_epoch(2, 6);
        s.note_epoch(-1, 7);
        assert_eq!(s.epochs.len(), 1);
        s.note_epoch(3, 8);
        s.truncate_epochs(8);
        assert_eq!(s.epochs.len(), 1);
    }
}
