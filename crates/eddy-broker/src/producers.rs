//! Idempotent producers: the per-partition table of producer ids, epochs and sequence numbers
//! that lets a leader recognise a retried batch and refuse one that skips ahead. Pure.
//!
//! The rules are Kafka's (`ProducerStateManager`):
//! - a batch without a producer id (-1) is not checked;
//! - an older epoch than the one known is fenced;
//! - a new epoch must start at sequence 0 (unless the producer is unknown here);
//! - within an epoch, a batch whose sequence range equals one of the producer's last five
//!   batches is a duplicate, answered with the offsets it got the first time; any other batch
//!   must start right after the last one (sequences wrap at `i32::MAX`);
//! - a producer this partition has never seen (or has forgotten) is accepted at any sequence.

use std::collections::{HashMap, VecDeque};

use eddy_log::BatchHeader;

/// Batches remembered per producer, as Kafka (`max.in.flight.requests.per.connection` <= 5).
pub const REMEMBERED_BATCHES: usize = 5;

/// One appended batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchRecord {
    /// Sequence of the batch's first record.
    pub first_seq: i32,
    /// Sequence of its last record.
    pub last_seq: i32,
    /// Offsets of its first and last records; `None` while its append is in flight.
    pub offsets: Option<(u64, u64)>,
}

#[derive(Debug, Clone, Default)]
struct Entry {
    epoch: i16,
    batches: VecDeque<BatchRecord>,
}

/// What to do with an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Append it.
    Append,
    /// The same batch is being appended right now: retry shortly.
    InFlight,
    /// Already appended: answer these offsets and write nothing.
    Duplicate {
        /// Offset of its first record.
        base_offset: u64,
        /// Offset of its last record.
        last_offset: u64,
    },
    /// The sequence skips or goes back (Kafka's OUT_OF_ORDER_SEQUENCE_NUMBER).
    OutOfOrder {
        /// The sequence expected next.
        expected: i32,
        /// The batch's first sequence.
        got: i32,
    },
    /// An older producer epoch (Kafka's INVALID_PRODUCER_EPOCH / PRODUCER_FENCED).
    Fenced {
        /// The epoch known here.
        current: i16,
        /// The batch's epoch.
        got: i16,
    },
}

/// The identity and sequence range a batch header carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchIdentity {
    /// Producer id; -1 when the producer is not idempotent.
    pub producer_id: i64,
    /// Producer epoch.
    pub epoch: i16,
    /// First sequence.
    pub first_seq: i32,
    /// Last sequence.
    pub last_seq: i32,
}

impl BatchIdentity {
    /// Reads it from a batch header.
    pub fn of(h: &BatchHeader) -> BatchIdentity {
        BatchIdentity {
            producer_id: h.producer_id,
            epoch: h.producer_epoch,
            first_seq: h.base_sequence,
            last_seq: next_seq(h.base_sequence, h.last_offset_delta - 1),
        }
    }

    /// Tells whether the batch comes from an idempotent producer.
    pub fn is_idempotent(&self) -> bool {
        self.producer_id >= 0 && self.first_seq >= 0
    }
}

/// `seq + n`, wrapping past `i32::MAX` to 0 as Kafka does.
fn next_seq(seq: i32, n: i32) -> i32 {
    let v = i64::from(seq) + i64::from(n) + 1;
    (v % (i64::from(i32::MAX) + 1)) as i32
}

/// The producer state of one partition.
#[derive(Debug, Clone, Default)]
pub struct ProducerTable {
    producers: HashMap<i64, Entry>,
}

impl ProducerTable {
    /// Decides what to do with a batch, before it is appended.
    pub fn check(&self, b: &BatchIdentity) -> Check {
        if !b.is_idempotent() {
            return Check::Append;
        }
        let Some(e) = self.producers.get(&b.producer_id) else {
            return Check::Append;
        };
        if b.epoch < e.epoch {
            return Check::Fenced {
                current: e.epoch,
                got: b.epoch,
            };
        }
        if b.epoch > e.epoch {
            return if b.first_seq == 0 {
                Check::Append
            } else {
                Check::OutOfOrder {
                    expected: 0,
                    got: b.first_seq,
                }
            };
        }
        if let Some(d) = e
            .batches
            .iter()
            .find(|d| d.first_seq == b.first_seq && d.last_seq == b.last_seq)
        {
            return match d.offsets {
                Some((base_offset, last_offset)) => Check::Duplicate {
                    base_offset,
                    last_offset,
                },
                None => Check::InFlight,
            };
        }
        match e.batches.back() {
            Some(last) if next_seq(last.last_seq, 0) != b.first_seq => Check::OutOfOrder {
                expected: next_seq(last.last_seq, 0),
                got: b.first_seq,
            },
            _ => Check::Append,
        }
    }

    /// Records a batch: by a leader as it submits the append (`offsets` still `None`, so that
    /// the producer's next batch, pipelined behind it, checks against it), or by a follower
    /// copying its leader.
    pub fn record(&mut self, b: &BatchIdentity, offsets: Option<(u64, u64)>) {
        if !b.is_idempotent() {
            return;
        }
        let e = self.producers.entry(b.producer_id).or_default();
        if b.epoch != e.epoch {
            e.epoch = b.epoch;
            e.batches.clear();
        }
        e.batches.push_back(BatchRecord {
            first_seq: b.first_seq,
            last_seq: b.last_seq,
            offsets,
        });
        while e.batches.len() > REMEMBERED_BATCHES {
            e.batches.pop_front();
        }
    }

    /// Fills in the offsets of a batch recorded while in flight.
    pub fn appended(&mut self, b: &BatchIdentity, base_offset: u64, last_offset: u64) {
        if let Some(e) = self.producers.get_mut(&b.producer_id) {
            for d in e.batches.iter_mut().rev() {
                if d.first_seq == b.first_seq && d.last_seq == b.last_seq {
                    d.offsets = Some((base_offset, last_offset));
                    break;
                }
            }
        }
    }

    /// Forgets a producer (after a failed append whose outcome is unknown).
    pub fn forget(&mut self, producer_id: i64) {
        self.producers.remove(&producer_id);
    }

    /// Forgets batches at or after `offset` (the log was truncated there).
    pub fn truncate(&mut self, offset: u64) {
        for e in self.producers.values_mut() {
            e.batches
                .retain(|b| b.offsets.is_none_or(|(_, last)| last < offset));
        }
        self.producers.retain(|_, e| !e.batches.is_empty());
    }

    /// Producers known.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Tells whether no producer is known.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(pid: i64, epoch: i16, first: i32, count: i32) -> BatchIdentity {
        BatchIdentity {
            producer_id: pid,
            epoch,
            first_seq: first,
            last_seq: first + (count - 1),
        }
    }

    #[test]
    fn test_retried_batch_is_a_duplicate_with_its_first_offsets() {
        let mut t = ProducerTable::default();
        let a = id(7, 0, 0, 3);
        assert_eq!(t.check(&a), Check::Append);
        t.record(&a, None);
        assert_eq!(t.check(&a), Check::InFlight);
        t.appended(&a, 10, 12);
        let b = id(7, 0, 3, 2);
        assert_eq!(t.check(&b), Check::Append);
        t.record(&b, Some((13, 14)));
        assert_eq!(
            t.check(&a),
            Check::Duplicate {
                base_offset: 10,
                last_offset: 12
            }
        );
        assert_eq!(
            t.check(&b),
            Check::Duplicate {
                base_offset: 13,
                last_offset: 14
            }
        );
    }

    #[test]
    fn test_gaps_and_stale_epochs_are_refused() {
        let mut t = ProducerTable::default();
        t.record(&id(7, 1, 0, 3), Some((0, 2)));
        assert_eq!(
            t.check(&id(7, 1, 5, 1)),
            Check::OutOfOrder {
                expected: 3,
                got: 5
            }
        );
        assert_eq!(
            t.check(&id(7, 0, 3, 1)),
            Check::Fenced { current: 1, got: 0 }
        );
        assert_eq!(
            t.check(&id(7, 2, 4, 1)),
            Check::OutOfOrder {
                expected: 0,
                got: 4
            }
        );
        assert_eq!(t.check(&id(7, 2, 0, 1)), Check::Append);
        // Unknown producers and non-idempotent batches pass.
        assert_eq!(t.check(&id(8, 0, 42, 1)), Check::Append);
        assert_eq!(t.check(&id(-1, -1, -1, 1)), Check::Append);
    }

    #[test]
    fn test_only_the_last_five_batches_are_remembered() {
        let mut t = ProducerTable::default();
        for i in 0..7 {
            t.record(&id(1, 0, i, 1), Some((i as u64, i as u64)));
        }
        assert_eq!(
            t.check(&id(1, 0, 6, 1)),
            Check::Duplicate {
                base_offset: 6,
                last_offset: 6
            }
        );
        assert_eq!(
            t.check(&id(1, 0, 2, 1)),
            Check::Duplicate {
                base_offset: 2,
                last_offset: 2
            }
        );
        assert!(matches!(t.check(&id(1, 0, 1, 1)), Check::OutOfOrder { .. }));
    }

    #[test]
    fn test_sequences_wrap_at_i32_max() {
        let mut t = ProducerTable::default();
        t.record(&id(1, 0, i32::MAX - 1, 2), Some((0, 1)));
        assert_eq!(t.check(&id(1, 0, 0, 1)), Check::Append);
        assert_eq!(next_seq(i32::MAX - 1, 1), 0);
    }

    #[test]
    fn test_truncate_forgets_cut_batches() {
        let mut t = ProducerTable::default();
        t.record(&id(1, 0, 0, 1), Some((0, 0)));
        t.record(&id(1, 0, 1, 1), Some((1, 1)));
        t.truncate(1);
        assert_eq!(t.check(&id(1, 0, 1, 1)), Check::Append);
        t.truncate(0);
        assert!(t.is_empty());
    }
}
