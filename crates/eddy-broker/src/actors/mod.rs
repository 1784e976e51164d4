//! The actors, one per file (the broker's in a folder). Each owns its mailbox, timers and
//! I/O, and drives pure state machines for the protocol decisions: `metadata` (the
//! controller's), `leader` and `fetcher` (a broker's partitions), `group` (a coordinator's).

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};

use actix::{Addr, Recipient};
use eddy_log::{BatchHeader, LogStore};
use eddy_types::{BrokerId, PartitionId};

use crate::config::ClusterConfig;
use crate::messages::{AlterIsrs, NewLeaderEpoch};
use crate::metadata::MetadataView;
use crate::producers::{BatchIdentity, ProducerTable};

pub(crate) mod broker;
pub(crate) mod controller;
pub(crate) mod group_coordinator;
pub(crate) mod offsets_partition;

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

/// What a broker shares with its child actors (the offsets partitions it leads).
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) id: BrokerId,
    pub(crate) log: LogStore,
    pub(crate) view: MetadataView,
    pub(crate) directory: Directory,
    /// The controller, for its leaders' ISR changes (batched).
    pub(crate) controller: Recipient<AlterIsrs>,
    /// The controller, for a leader's new epoch after a failed append.
    pub(crate) new_epoch: Recipient<NewLeaderEpoch>,
    pub(crate) config: Arc<ClusterConfig>,
    /// Fault injection: while set, this broker's followers do not fetch from their leaders (a
    /// replica cut off from its leader while its broker stays alive). See
    /// `Cluster::set_replica_fetching`.
    pub(crate) fetching_paused: AtomicBool,
    /// Reads running off the actors' thread now ([`READERS_PER_BROKER`] at most).
    pub(crate) readers: Arc<tokio::sync::Semaphore>,
    /// Every partition's high watermark as its leader last set it, by storage id (cluster
    /// wide): what `/metrics` reports (see `crate::watermarks`).
    pub(crate) high_watermarks: Arc<eddy_sync::ValueTable>,
}

/// Consumer reads of one broker that run at once, each on a blocking thread. A read of
/// records no longer in the page cache waits for the disk (tens to hundreds of milliseconds
/// for an answer of megabytes); on the actors' thread it would hold every actor of the
/// cluster, appends and acknowledgements included.
pub(crate) const READERS_PER_BROKER: usize = 4;

/// How many offsets back from the log end a producer table is rebuilt from. Kafka snapshots
/// producer state; Eddy rebuilds it from the tail, which covers every retry within the
/// delivery timeout of an active producer.
const REBUILD_WINDOW: u64 = 50_000;

/// The idempotent-producer table of `pid`, rebuilt from the headers of its log's tail (a
/// page per batch, not the records: 50,000 records of 1 KiB were 50 MB read before).
pub(crate) fn rebuild_producer_table(log: &LogStore, pid: PartitionId) -> ProducerTable {
    let mut table = ProducerTable::default();
    if let Ok(o) = log.offsets(pid) {
        if o.log_end == o.log_start {
            return table;
        }
        let from = o.log_start.max(o.log_end.saturating_sub(REBUILD_WINDOW));
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
    table
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

/// Tokio's clock as a std `Instant`, so tests with paused time control it.
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}
