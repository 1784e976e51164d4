//! Partitions' high watermarks for `/metrics`, read from the brokers' table at scrape time.
//!
//! Leaders write a partition's high watermark into one cluster-wide [`ValueTable`] (8 bytes
//! per partition, no registry entry, no label strings) as it moves; the partitions no
//! leader holds in memory (idle, or led before a restart) get their checkpointed value once,
//! when the cluster starts. [`HighWatermarkSeries`] turns the table into
//! `eddy_topic_high_watermark{topic}` (always) and `eddy_partition_high_watermark{topic,
//! partition}` (while per-partition series are on) when `/metrics` is rendered: one pass
//! over the metadata's partitions per scrape, nothing per produce.

use std::sync::Arc;

use eddy_log::LogStore;
use eddy_sync::ValueTable;

use crate::metadata::{ClusterMetadata, MetadataView};

/// The collector of the high-watermark series of one cluster.
pub(crate) struct HighWatermarkSeries {
    pub(crate) view: MetadataView,
    pub(crate) table: Arc<ValueTable>,
}

impl eddy_metrics::Collector for HighWatermarkSeries {
    fn collect(&self, out: &mut eddy_metrics::Samples) {
        let meta = self.view.snapshot();
        let detail = eddy_metrics::partition_series();
        for t in meta.topics.values() {
            let name = t.name.as_str();
            let mut sum = 0u64;
            for p in &t.partitions {
                let Some(hw) = self.table.get(p.id.0) else {
                    continue;
                };
                sum = sum.saturating_add(hw);
                if detail {
                    out.gauge(
                        eddy_metrics::PARTITION_HIGH_WATERMARK,
                        &[("topic", name), ("partition", &p.index.to_string())],
                        hw as f64,
                    );
                }
            }
            out.gauge(
                eddy_metrics::TOPIC_HIGH_WATERMARK,
                &[("topic", name)],
                sum as f64,
            );
        }
    }
}

/// Fills the table with the checkpointed high watermark of every partition a leader has not
/// set yet, each read from its leader's log directory (one read transaction per directory).
/// Gives up between directories once `stop` is set.
pub(crate) fn fill_from_checkpoints(
    meta: &ClusterMetadata,
    stores: &[LogStore],
    table: &ValueTable,
    stop: &std::sync::atomic::AtomicBool,
) {
    let mut leader_of = std::collections::HashMap::new();
    for t in meta.topics.values() {
        for p in &t.partitions {
            if let Some(l) = p.leader {
                leader_of.insert(p.id, l);
            }
        }
    }
    for (b, store) in stores.iter().enumerate() {
        if stop.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let marks = match store.high_watermarks() {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(broker = b, error = %e, "cannot read the checkpointed high watermarks");
                continue;
            }
        };
        for (pid, hw) in marks {
            if leader_of.get(&pid).is_some_and(|l| l.0 as usize == b) {
                table.set_if_absent(pid.0, hw);
            }
        }
    }
}
