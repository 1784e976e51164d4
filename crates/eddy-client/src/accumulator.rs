//! The record accumulator: the batching rules of a Kafka producer, as a plain struct.
//!
//! Records are gathered per partition into an open batch. A batch closes when the next record
//! would take it past `batch_size` bytes, or once it is `linger` old; closed batches wait in
//! their partition's queue until fewer than `max_in_flight` requests of that partition are
//! outstanding. `buffer_memory` bounds the bytes held (open, queued and in flight): a record
//! that does not fit is refused at once with [`Full`], so a caller can wait or give up, and
//! nothing is silently dropped. The producer actor drives it with the current time; no
//! runtime here.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// Settings, with Kafka's names and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccumulatorConfig {
    /// `batch.size`: a batch closes before it would exceed this many bytes (16 KiB). A single
    /// record larger than this gets a batch of its own.
    pub batch_size: usize,
    /// `linger.ms`: a batch closes this long after its first record (5 ms).
    pub linger: Duration,
    /// `buffer.memory`: bytes held at most, from send to acknowledgement (32 MiB).
    pub buffer_memory: usize,
    /// `max.in.flight.requests.per.connection`, here per partition (5, the most an idempotent
    /// producer may use).
    pub max_in_flight: usize,
}

impl Default for AccumulatorConfig {
    fn default() -> AccumulatorConfig {
        AccumulatorConfig {
            batch_size: 16 * 1024,
            linger: Duration::from_millis(5),
            buffer_memory: 32 * 1024 * 1024,
            max_in_flight: 5,
        }
    }
}

/// One record as the application handed it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRecord {
    /// The record key.
    pub key: Option<Bytes>,
    /// The record value.
    pub value: Option<Bytes>,
    /// Record headers.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Creation time, in ms since the epoch.
    pub timestamp: i64,
}

impl PendingRecord {
    /// What the record counts for against `batch.size` and `buffer.memory`: its payload plus
    /// the per-record overhead of the v2 format (a generous 21 bytes, as Kafka estimates).
    pub fn size(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Bytes::len) + 2)
            .sum();
        21 + self.key.as_ref().map_or(0, Bytes::len)
            + self.value.as_ref().map_or(0, Bytes::len)
            + headers
    }
}

/// A partition of a topic.
pub type TopicPartition = (String, u32);

/// A closed batch, ready to encode and send.
#[derive(Debug)]
pub struct ReadyBatch<T> {
    /// Where it goes.
    pub partition: TopicPartition,
    /// Its records, in send order.
    pub records: Vec<PendingRecord>,
    /// One token per record (the caller's way back to each `send`).
    pub tokens: Vec<T>,
    /// Its accounted size.
    pub bytes: usize,
}

/// Refused: the buffer holds `buffer_memory` bytes already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full {
    /// Bytes held now.
    pub held: usize,
    /// The record's size.
    pub wanted: usize,
    /// The limit.
    pub limit: usize,
}

#[derive(Debug)]
struct Open<T> {
    records: Vec<PendingRecord>,
    tokens: Vec<T>,
    bytes: usize,
    created: Instant,
}

#[derive(Debug)]
struct Lane<T> {
    open: Option<Open<T>>,
    queued: VecDeque<ReadyBatch<T>>,
    in_flight: usize,
}

impl<T> Default for Lane<T> {
    fn default() -> Lane<T> {
        Lane {
            open: None,
            queued: VecDeque::new(),
            in_flight: 0,
        }
    }
}

/// The accumulator of one producer.
#[derive(Debug)]
pub struct Accumulator<T> {
    config: AccumulatorConfig,
    lanes: BTreeMap<TopicPartition, Lane<T>>,
    /// Bytes of records held: open, queued or in flight.
    held: usize,
}

impl<T> Accumulator<T> {
    /// An empty accumulator.
    pub fn new(config: AccumulatorConfig) -> Accumulator<T> {
        Accumulator {
            config,
            lanes: BTreeMap::new(),
            held: 0,
        }
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Closes the partition's open batch if a record of `size` bytes would not fit in it, and
    /// tells whether it did: a sticky partitioner moves on before such a record, as Kafka's
    /// does (KIP-480's abort-on-new-batch), and the full batch can go at once.
    pub fn close_unless_fits(&mut self, partition: &TopicPartition, size: usize) -> bool {
        let batch_size = self.config.batch_size;
        let Some(lane) = self.lanes.get_mut(partition) else {
            return false;
        };
        if lane
            .open
            .as_ref()
            .is_some_and(|o| o.bytes + size > batch_size)
        {
            close(lane, partition);
            return true;
        }
        false
    }

    /// Adds a record to its partition's open batch, closing that batch first if the record
    /// would take it past `batch_size`. Answers whether a batch of that partition closed (a
    /// sticky partitioner moves on then).
    pub fn append(
        &mut self,
        partition: TopicPartition,
        record: PendingRecord,
        token: T,
        now: Instant,
    ) -> Result<bool, (Full, T)> {
        let size = record.size();
        if self.held + size > self.config.buffer_memory {
            let full = Full {
                held: self.held,
                wanted: size,
                limit: self.config.buffer_memory,
            };
            return Err((full, token));
        }
        self.held += size;
        let batch_size = self.config.batch_size;
        let lane = self.lanes.entry(partition.clone()).or_default();
        let mut closed = false;
        if lane
            .open
            .as_ref()
            .is_some_and(|o| o.bytes + size > batch_size)
        {
            close(lane, &partition);
            closed = true;
        }
        let open = lane.open.get_or_insert_with(|| Open {
            records: Vec::new(),
            tokens: Vec::new(),
            bytes: 0,
            created: now,
        });
        open.records.push(record);
        open.tokens.push(token);
        open.bytes += size;
        if open.bytes >= batch_size {
            close(lane, &partition);
            closed = true;
        }
        Ok(closed)
    }

    /// Closes every open batch that has lingered long enough (all of them with `flush`), and
    /// returns the batches that may be sent now, marking them in flight.
    pub fn sendable(&mut self, now: Instant, flush: bool) -> Vec<ReadyBatch<T>> {
        let linger = self.config.linger;
        let max = self.config.max_in_flight;
        let mut out = Vec::new();
        for (partition, lane) in self.lanes.iter_mut() {
            let due = lane
                .open
                .as_ref()
                .is_some_and(|o| flush || now.saturating_duration_since(o.created) >= linger);
            if due {
                close(lane, partition);
            }
            while lane.in_flight < max {
                let Some(b) = lane.queued.pop_front() else {
                    break;
                };
                lane.in_flight += 1;
                out.push(b);
            }
        }
        out
    }

    /// When the oldest open batch is due, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.lanes
            .values()
            .filter_map(|l| l.open.as_ref().map(|o| o.created + self.config.linger))
            .min()
    }

    /// A sent batch was answered (or given up): its bytes are free again.
    pub fn done(&mut self, partition: &TopicPartition, bytes: usize) {
        self.held = self.held.saturating_sub(bytes);
        if let Some(lane) = self.lanes.get_mut(partition) {
            lane.in_flight = lane.in_flight.saturating_sub(1);
            if lane.in_flight == 0 && lane.open.is_none() && lane.queued.is_empty() {
                self.lanes.remove(partition);
            }
        }
    }

    /// Takes every batch not yet sent (open or queued), releasing its bytes: for a producer
    /// that must fail them all.
    pub fn take_unsent(&mut self) -> Vec<ReadyBatch<T>> {
        let mut out = Vec::new();
        for (partition, lane) in self.lanes.iter_mut() {
            close(lane, partition);
            out.extend(lane.queued.drain(..));
        }
        self.lanes.retain(|_, lane| lane.in_flight > 0);
        for b in &out {
            self.held = self.held.saturating_sub(b.bytes);
        }
        out
    }

    /// Tells whether nothing is held (every record sent and answered).
    pub fn is_empty(&self) -> bool {
        self.held == 0
    }
}

fn close<T>(lane: &mut Lane<T>, partition: &TopicPartition) {
    if let Some(o) = lane.open.take() {
        lane.queued.push_back(ReadyBatch {
            partition: partition.clone(),
            records: o.records,
            tokens: o.tokens,
            bytes: o.bytes,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_close_unless_fits_closes_a_batch_the_next_record_would_overflow() {
        let mut acc = Accumulator::new(AccumulatorConfig {
            batch_size: 100,
            ..AccumulatorConfig::default()
        });
        let t = Instant::now();
        let p: TopicPartition = ("t".into(), 0);
        assert!(!acc.close_unless_fits(&p, 50), "no open batch");
        acc.append(p.clone(), rec(39), 0, t).unwrap(); // 60 bytes
        assert!(!acc.close_unless_fits(&p, 40));
        assert!(acc.close_unless_fits(&p, 41));
        // The closed batch goes without waiting for linger.
        assert_eq!(acc.sendable(t, false).len(), 1);
    }

    #[test]
    fn test_take_unsent_releases_open_and_queued_but_not_in_flight() {
        let mut acc = Accumulator::new(AccumulatorConfig {
            batch_size: 100,
            max_in_flight: 1,
            ..AccumulatorConfig::default()
        });
        let t = Instant::now();
        let p: TopicPartition = ("t".into(), 0);
        // Two full 100-byte batches and an open one of 31 bytes.
        acc.append(p.clone(), rec(79), 0, t).unwrap();
        acc.append(p.clone(), rec(79), 1, t).unwrap();
        acc.append(p.clone(), rec(10), 2, t).unwrap();
        // One in flight, one queued, one open.
        let sent = acc.sendable(t, false);
        assert_eq!(sent.len(), 1);
        let unsent = acc.take_unsent();
        assert_eq!(
            unsent.iter().map(|b| b.tokens.clone()).collect::<Vec<_>>(),
            vec![vec![1], vec![2]]
        );
        assert_eq!(acc.held(), 100);
        acc.done(&p, 100);
        assert!(acc.is_empty());
    }

    fn rec(len: usize) -> PendingRecord {
        PendingRecord {
            key: None,
            value: Some(Bytes::from(vec![b'x'; len])),
            headers: Vec::new(),
            timestamp: 0,
        }
    }

    fn tp(p: u32) -> TopicPartition {
        ("t".to_owned(), p)
    }

    fn config() -> AccumulatorConfig {
        AccumulatorConfig {
            batch_size: 1000,
            linger: Duration::from_millis(5),
            buffer_memory: 10_000,
            max_in_flight: 2,
        }
    }

    #[test]
    fn test_batch_closes_at_batch_size() {
        let t = Instant::now();
        let mut a = Accumulator::new(config());
        for i in 0..5 {
            a.append(tp(0), rec(279), i, t).unwrap(); // 300 bytes each
        }
        // 3 records fit in 1000 bytes; the fourth opened a new batch.
        let ready = a.sendable(t, false);
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].tokens, vec![0, 1, 2]);
        assert_eq!(a.next_deadline(), Some(t + Duration::from_millis(5)));
    }

    #[test]
    fn test_batch_closes_after_linger() {
        let t = Instant::now();
        let mut a = Accumulator::new(config());
        a.append(tp(0), rec(10), 'a', t).unwrap();
        a.append(tp(1), rec(10), 'b', t + Duration::from_millis(3))
            .unwrap();
        assert!(a.sendable(t + Duration::from_millis(4), false).is_empty());
        let ready = a.sendable(t + Duration::from_millis(5), false);
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].partition, tp(0));
        assert_eq!(a.sendable(t + Duration::from_millis(8), false).len(), 1);
        assert_eq!(a.next_deadline(), None);
    }

    #[test]
    fn test_in_flight_limit_holds_batches_back_in_order() {
        let t = Instant::now();
        let mut a = Accumulator::new(config());
        for i in 0..4 {
            a.append(tp(0), rec(979), i, t).unwrap(); // one record per batch
        }
        let first = a.sendable(t, true);
        assert_eq!(
            first.iter().map(|b| b.tokens[0]).collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert!(a.sendable(t, true).is_empty(), "two in flight already");
        a.done(&tp(0), first[0].bytes);
        let next = a.sendable(t, true);
        assert_eq!(
            next.iter().map(|b| b.tokens[0]).collect::<Vec<_>>(),
            vec![2]
        );
    }

    #[test]
    fn test_buffer_memory_refuses_and_frees() {
        let t = Instant::now();
        let mut a = Accumulator::new(config());
        for i in 0..10 {
            a.append(tp(i), rec(979), i, t).unwrap();
        }
        let (full, token) = a.append(tp(0), rec(10), 99, t).unwrap_err();
        assert_eq!((full.held, full.limit, token), (10_000, 10_000, 99));
        let sent = a.sendable(t, true);
        assert_eq!(sent.len(), 10);
        for b in &sent {
            a.done(&b.partition, b.bytes);
        }
        assert!(a.is_empty());
        a.append(tp(0), rec(10), 100, t).unwrap();
    }

    #[test]
    fn test_oversized_record_gets_its_own_batch() {
        let t = Instant::now();
        let mut a = Accumulator::new(config());
        a.append(tp(0), rec(10), 1, t).unwrap();
        a.append(tp(0), rec(5000), 2, t).unwrap();
        let ready = a.sendable(t, false);
        assert_eq!(
            ready.iter().map(|b| b.tokens.clone()).collect::<Vec<_>>(),
            vec![vec![1], vec![2]]
        );
    }
}
