//! Merging partitions' record streams by timestamp, as Kafka Streams does. Records wait in
//! one queue per partition (offset order is kept inside a partition, so consumed offsets
//! stay contiguous); the next record released is the oldest head among the queues, but only
//! while every assigned partition either has records waiting or has been read to its end:
//! otherwise an older record may still come from the one that is behind. A partition that
//! stays behind holds the merge back for at most `max_wait`; more than `max_held` records
//! waiting are released regardless. Pure: time is passed in.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::client::Record;
use eddy_client::TopicPartition;

/// The k-way merge. See the [module docs](self).
#[derive(Debug)]
pub struct Merger {
    queues: BTreeMap<TopicPartition, VecDeque<Record>>,
    max_wait: Duration,
    held: usize,
    max_held: usize,
    blocked_since: Option<Instant>,
}

impl Merger {
    /// Waits at most `max_wait` for a partition that is behind; holds at most `max_held`.
    pub fn new(max_wait: Duration, max_held: usize) -> Merger {
        Merger {
            queues: BTreeMap::new(),
            max_wait,
            held: 0,
            max_held: max_held.max(1),
            blocked_since: None,
        }
    }

    /// Takes the next record of its partition (records of one partition come in offset order).
    pub fn push(&mut self, record: Record) {
        self.held += 1;
        self.queues
            .entry((record.topic.clone(), record.partition))
            .or_default()
            .push_back(record);
    }

    /// Forgets what is held for `tp` (it was sought elsewhere or taken away).
    pub fn drop_partition(&mut self, tp: &TopicPartition) {
        if let Some(q) = self.queues.remove(tp) {
            self.held -= q.len();
        }
    }

    /// How many records wait.
    pub fn held(&self) -> usize {
        self.held
    }

    /// The records due, oldest first. `assigned` lists every partition read, each with
    /// whether it has been read to its end.
    pub fn release(&mut self, assigned: &[(TopicPartition, bool)], now: Instant) -> Vec<Record> {
        let mut out = Vec::new();
        while let Some(tp) = self
            .queues
            .iter()
            .filter_map(|(tp, q)| q.front().map(|r| (r.timestamp, tp)))
            .min()
            .map(|(_, tp)| tp.clone())
        {
            let behind = assigned
                .iter()
                .any(|(p, at_end)| !at_end && self.queues.get(p).is_none_or(VecDeque::is_empty));
            if behind {
                let since = *self.blocked_since.get_or_insert(now);
                if now.saturating_duration_since(since) < self.max_wait
                    && self.held <= self.max_held
                {
                    return out;
                }
            } else {
                self.blocked_since = None;
            }
            if let Some(q) = self.queues.get_mut(&tp) {
                if let Some(r) = q.pop_front() {
                    self.held -= 1;
                    out.push(r);
                }
                if q.is_empty() {
                    self.queues.remove(&tp);
                }
            }
        }
        self.blocked_since = None;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(topic: &str, offset: u64, timestamp: i64) -> Record {
        Record {
            topic: topic.into(),
            partition: 0,
            offset,
            timestamp,
            value: None,
            headers: Vec::new(),
        }
    }

    fn ids(rs: &[Record]) -> Vec<(String, u64)> {
        rs.iter().map(|r| (r.topic.clone(), r.offset)).collect()
    }

    fn parts(list: &[(&str, bool)]) -> Vec<(TopicPartition, bool)> {
        list.iter()
            .map(|(t, e)| (((*t).to_owned(), 0), *e))
            .collect()
    }

    #[test]
    fn streams_merge_by_timestamp_and_partitions_keep_their_order() {
        let now = Instant::now();
        let mut m = Merger::new(Duration::from_secs(1), 100);
        for r in [
            rec("a", 0, 10),
            rec("a", 1, 30),
            rec("b", 0, 20),
            rec("b", 1, 40),
        ] {
            m.push(r);
        }
        let out = m.release(&parts(&[("a", true), ("b", true)]), now);
        assert_eq!(
            ids(&out),
            vec![
                ("a".into(), 0),
                ("b".into(), 0),
                ("a".into(), 1),
                ("b".into(), 1)
            ]
        );
        // A partition whose clock goes backwards still comes out in offset order.
        m.push(rec("a", 5, 50));
        m.push(rec("a", 6, 5));
        m.push(rec("b", 2, 20));
        assert_eq!(
            ids(&m.release(&parts(&[("a", true), ("b", true)]), now)),
            vec![("b".into(), 2), ("a".into(), 5), ("a".into(), 6)]
        );
        assert_eq!(m.held(), 0);
    }

    #[test]
    fn a_partition_behind_holds_the_merge_back_for_a_while() {
        let t0 = Instant::now();
        let mut m = Merger::new(Duration::from_millis(200), 100);
        m.push(rec("a", 0, 1000));
        m.push(rec("a", 1, 3000));
        // b has not answered yet: it may hold something older than a's records.
        let assigned = parts(&[("a", false), ("b", false)]);
        assert!(m.release(&assigned, t0).is_empty());
        m.push(rec("b", 0, 2000));
        // Both have records: the merge goes on until one of them runs dry.
        assert_eq!(
            ids(&m.release(&assigned, t0)),
            vec![("a".into(), 0), ("b".into(), 0)]
        );
        // b ran dry at t0 and is behind: a@3000 waits until max_wait has passed since.
        assert!(m
            .release(&assigned, t0 + Duration::from_millis(100))
            .is_empty());
        assert_eq!(
            m.release(&assigned, t0 + Duration::from_millis(250)).len(),
            1
        );
        // Read to its end, b holds nothing back.
        m.push(rec("a", 2, 4000));
        assert_eq!(m.release(&parts(&[("a", false), ("b", true)]), t0).len(), 1);
    }

    #[test]
    fn too_many_waiting_records_are_released_regardless() {
        let now = Instant::now();
        let mut m = Merger::new(Duration::from_secs(3600), 3);
        for o in 0..4 {
            m.push(rec("c", o, 2000));
        }
        m.drop_partition(&("nothing".into(), 0));
        assert_eq!(
            m.release(&parts(&[("c", false), ("d", false)]), now).len(),
            1
        );
        m.drop_partition(&("c".into(), 0));
        assert_eq!(m.held(), 0);
    }
}
