//! The actors, one per file. Each owns its mailbox, timers and I/O, and drives a pure state
//! machine from `metadata` or `replication` for the protocol decisions.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use actix::{Addr, Recipient};
use eddy_log::{BatchHeader, LogStore};
use eddy_types::{BrokerId, PartitionId};

use crate::config::ClusterConfig;
use crate::messages::{AlterIsr, NewLeaderEpoch};
use crate::metadata::MetadataView;
use crate::producers::{BatchIdentity, ProducerTable};

pub(crate) mod broker;
pub(crate) mod controller;
pub(crate) mod group_coordinator;
pub(crate) mod offsets_partition;
pub(crate) mod partition_follower;
pub(crate) mod partition_leader;

pub use broker::Broker;
pub use controller::Controller;

/// The running brokers, by id; the controller writes it, everyone reads it to reach a peer.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    brokers: Arc<RwLock<BTreeMap<BrokerId, Addr<Broker>>>>,
}

impl Directory {
    /// The running broker `id`, if it runs.
    pub fn get(&self, id: BrokerId) -> Option<Addr<Broker>> {
        let g = match self.brokers.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.get(&id).cloned()
    }

    pub(crate) fn set(&self, id: BrokerId, addr: Option<Addr<Broker>>) {
        let mut g = match self.brokers.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        match addr {
            Some(a) => g.insert(id, a),
            None => g.remove(&id),
        };
    }
}

/// What a broker shares with its partition actors.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) id: BrokerId,
    pub(crate) log: LogStore,
    pub(crate) view: MetadataView,
    pub(crate) directory: Directory,
    pub(crate) controller: Recipient<AlterIsr>,
    /// The controller, for a leader's new epoch after a failed append.
    pub(crate) new_epoch: Recipient<NewLeaderEpoch>,
    pub(crate) config: Arc<ClusterConfig>,
    /// Idempotent-producer state of the partitions this broker leads or follows. Kept at the
    /// broker, not in the partition actors, so it survives their idle stops and a follower has
    /// it ready when it becomes leader.
    pub(crate) producers: ProducerTables,
    /// Fault injection: while set, this broker's followers do not fetch from their leaders (a
    /// replica cut off from its leader while its broker stays alive). See
    /// `Cluster::set_replica_fetching`.
    pub(crate) fetching_paused: AtomicBool,
    /// Consumer reads running off the actors' thread now ([`READERS_PER_BROKER`] at most).
    pub(crate) readers: Arc<tokio::sync::Semaphore>,
}

/// Consumer reads of one broker that run at once, each on a blocking thread. A read of
/// records no longer in the page cache waits for the disk (tens to hundreds of milliseconds
/// for an answer of megabytes); on the actors' thread it would hold every actor of the
/// cluster, appends and acknowledgements included.
pub(crate) const READERS_PER_BROKER: usize = 4;

/// Producer tables by partition, shared by a broker's partition actors (all on one thread;
/// the lock is never held across an await).
#[derive(Debug, Clone, Default)]
pub(crate) struct ProducerTables(Arc<Mutex<HashMap<PartitionId, ProducerTable>>>);

/// How many offsets back from the log end a table is rebuilt from after a restart. Kafka
/// snapshots producer state; Eddy rebuilds it from the tail, which covers every retry within
/// the delivery timeout of an active producer.
const REBUILD_WINDOW: u64 = 50_000;

impl ProducerTables {
    pub(crate) fn lock(&self) -> MutexGuard<'_, HashMap<PartitionId, ProducerTable>> {
        match self.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Makes sure the table of `pid` exists, rebuilding it from the log's tail if needed.
    pub(crate) fn ensure(&self, log: &LogStore, pid: PartitionId) {
        if self.lock().contains_key(&pid) {
            return;
        }
        let mut table = ProducerTable::default();
        if let Ok(o) = log.offsets(pid) {
            let from = o.log_start.max(o.log_end.saturating_sub(REBUILD_WINDOW));
            // The headers alone: a page per batch, not the records (50,000 records of 1 KiB
            // were 50 MB read on the actors' thread).
            let heads = log.batch_headers(pid, from).unwrap_or_else(|e| {
                // Retried batches of this partition's producers may then be written twice.
                tracing::warn!(partition = %pid, error = %e, "cannot rebuild the producer table");
                Vec::new()
            });
            for h in heads {
                let base = h.base_offset as u64;
                let last = base + h.last_offset_delta as u64;
                table.record(&BatchIdentity::of(&h), Some((base, last)));
            }
        }
        self.lock().entry(pid).or_insert(table);
    }
}

/// The headers of the batches in `buf` (back to back) with each batch's byte range start;
/// stops at the first one that does not parse (the log refuses such a buffer anyway).
pub(crate) fn headers(buf: &[u8]) -> Vec<(BatchHeader, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let Ok(h) = BatchHeader::parse(&buf[pos..]) else {
            break;
        };
        out.push((h, pos));
        pos += h.total_len();
    }
    out
}

/// A replica's saved high watermark: saved again only when it moved, at most once per
/// `high_watermark_checkpoint_interval` unless forced (leaders force it when stepping down).
#[derive(Debug)]
pub(crate) struct HwCheckpoint {
    saved: u64,
    at: std::time::Instant,
}

impl HwCheckpoint {
    pub(crate) fn new(saved: u64) -> HwCheckpoint {
        HwCheckpoint { saved, at: now() }
    }

    /// Saves `hw` for `pid` if due. Fire and forget: a lost checkpoint only means a lower
    /// mark after a restart, which the leader's answers move up again.
    pub(crate) fn note(&mut self, shared: &Shared, pid: PartitionId, hw: u64, force: bool) {
        let t = now();
        let due = force
            || t.saturating_duration_since(self.at)
                >= shared.config.high_watermark_checkpoint_interval;
        if hw != self.saved && due {
            drop(shared.log.checkpoint_high_watermarks(vec![(pid, hw)]));
            self.saved = hw;
            self.at = t;
        }
    }
}

/// Tokio's clock as a std `Instant`, so tests with paused time control it.
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}
