//! How many series the node exports, and the series computed at scrape time.
//!
//! **Per-partition series.** A series labelled with a `partition` costs a line of `/metrics`
//! and a registry entry per partition: at a million partitions, hundreds of megabytes and a
//! scrape no Prometheus keeps up with. So they are kept only while the partitions of every
//! cluster in the process, together, are at most [`partition_series_limit`]
//! ([`PARTITION_SERIES_LIMIT`] unless set). Past it the recorder drops them (those it holds,
//! and every later update), and histograms lose their `topic` label; the per-topic sums stay.
//! Back under the limit they come back as their owners update them. Emitters ask
//! [`partition_series`] before building a partition's labels, and handles they cache are
//! rebuilt when [`series_epoch`] changes.
//!
//! **Collectors.** Values that already live in memory (a partition's high watermark in the
//! brokers' table) are not copied into gauges as they change: a [`Collector`] reads them when
//! `/metrics` is rendered.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError, Weak};

/// Partitions past which per-partition series are off, unless set otherwise.
pub const PARTITION_SERIES_LIMIT: usize = 10_000;

static LIMIT: AtomicUsize = AtomicUsize::new(PARTITION_SERIES_LIMIT);
/// Whether per-partition series are off now (kept in step with `LIMIT` and `CLUSTERS`).
static OFF: AtomicBool = AtomicBool::new(false);
static EPOCH: AtomicU64 = AtomicU64::new(0);
static CLUSTERS: Mutex<BTreeMap<u64, u64>> = Mutex::new(BTreeMap::new());
static COLLECTORS: Mutex<Vec<Weak<dyn Collector>>> = Mutex::new(Vec::new());

/// Whether series labelled with a partition are exported now.
pub fn partition_series() -> bool {
    !OFF.load(Ordering::Acquire)
}

/// The most partitions with per-partition series.
pub fn partition_series_limit() -> usize {
    LIMIT.load(Ordering::Acquire)
}

/// Changes whenever [`partition_series`] does: handles cached across it are stale.
pub fn series_epoch() -> u64 {
    EPOCH.load(Ordering::Acquire)
}

/// Sets the most partitions with per-partition series (`eddy serve --metrics-partition-series`).
pub fn set_partition_series_limit(limit: usize) {
    LIMIT.store(limit, Ordering::Release);
    update();
}

/// Tells how many partitions cluster `cluster` holds now (0 when it stops).
pub fn set_cluster_partitions(cluster: u64, partitions: u64) {
    {
        let mut c = CLUSTERS.lock().unwrap_or_else(PoisonError::into_inner);
        if partitions == 0 {
            c.remove(&cluster);
        } else {
            c.insert(cluster, partitions);
        }
    }
    update();
}

fn update() {
    let total: u64 = CLUSTERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .values()
        .sum();
    let off = total > partition_series_limit() as u64;
    if OFF.swap(off, Ordering::AcqRel) != off {
        EPOCH.fetch_add(1, Ordering::AcqRel);
    }
}

/// Something that adds gauges to `/metrics` when it is rendered.
pub trait Collector: Send + Sync {
    /// Adds its current values to `out`.
    fn collect(&self, out: &mut Samples);
}

/// Registers a collector for as long as it lives (the recorder keeps only a weak reference).
pub fn register_collector(c: Weak<dyn Collector>) {
    let mut all = COLLECTORS.lock().unwrap_or_else(PoisonError::into_inner);
    all.retain(|w| w.strong_count() > 0);
    all.push(c);
}

/// Runs every live collector.
pub(crate) fn collect() -> Samples {
    let live: Vec<_> = COLLECTORS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    let mut out = Samples::default();
    for c in live {
        c.collect(&mut out);
    }
    out
}

/// Gauge lines collected at scrape time, by metric name.
#[derive(Debug, Default)]
pub struct Samples {
    pub(crate) families: HashMap<&'static str, Vec<String>>,
}

impl Samples {
    /// One gauge sample. A series labelled `partition` is skipped while [`partition_series`]
    /// is off.
    pub fn gauge(&mut self, name: &'static str, labels: &[(&str, &str)], value: f64) {
        if !partition_series() && labels.iter().any(|(k, _)| *k == "partition") {
            return;
        }
        let mut line = String::with_capacity(64);
        line.push_str(name);
        line.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            let _ = write!(line, "{k}=\"{}\"", crate::recorder::escape(v));
        }
        let _ = writeln!(line, "}} {value}");
        self.families.entry(name).or_default().push(line);
    }
}

/// Serializes tests (in this crate) that change the process-wide settings.
#[cfg(test)]
pub(crate) static TEST_LOCK: Mutex<()> = Mutex::new(());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_series_go_off_past_the_limit_over_every_cluster() {
        let _g = TEST_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        set_partition_series_limit(100);
        let e0 = series_epoch();
        set_cluster_partitions(901, 60);
        assert!(partition_series());
        set_cluster_partitions(902, 60);
        assert!(!partition_series());
        assert_ne!(series_epoch(), e0);
        let mut s = Samples::default();
        s.gauge("g", &[("topic", "t"), ("partition", "0")], 1.0);
        s.gauge("g", &[("topic", "t")], 2.0);
        assert_eq!(s.families["g"], vec!["g{topic=\"t\"} 2\n".to_owned()]);
        set_cluster_partitions(902, 0);
        assert!(partition_series());
        set_cluster_partitions(901, 0);
        set_partition_series_limit(PARTITION_SERIES_LIMIT);
    }
}
