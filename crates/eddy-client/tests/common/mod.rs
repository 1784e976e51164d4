//! Helpers for eddy-client's integration tests: a cluster on paused time.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use eddy_broker::{Cluster, ClusterConfig};
use eddy_log::{Durability, LogConfig, WriterMode};
use kafka_protocol::records::{Compression, RecordBatchDecoder};

/// Runs `f` in an actix system on a current-thread runtime with paused time (timers fire as
/// soon as every task waits; see eddy-broker's tests for why the logs must be inline).
pub(crate) fn paused<F: Future>(f: F) -> F::Output {
    let system = actix_rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
    });
    system.block_on(f)
}

/// A 3-broker cluster config in `dir` with inline, unsynced commits.
pub(crate) fn config(dir: &Path) -> ClusterConfig {
    let mut c = ClusterConfig::new("test", dir);
    c.log = LogConfig {
        map_size: 1 << 26,
        writer: WriterMode::Inline,
        durability: Durability::Periodic {
            interval: Duration::from_secs(3600),
        },
        ..LogConfig::default()
    };
    c
}

pub(crate) async fn start(dir: &Path) -> Cluster {
    Cluster::start(config(dir)).await.unwrap()
}

/// One decoded record of a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) offset: i64,
    pub(crate) key: Option<Bytes>,
    pub(crate) value: Option<Bytes>,
    pub(crate) sequence: i32,
    pub(crate) compression: Compression,
}

/// Every committed record of a partition, decoded (decompressing as needed), and the number
/// of batches they came in.
pub(crate) async fn committed(
    cluster: &Cluster,
    topic: &str,
    partition: u32,
) -> (Vec<Stored>, usize) {
    let mut out = Vec::new();
    let mut batches = 0;
    let mut offset = 0;
    loop {
        let f = cluster
            .fetch(topic, partition, offset, 1 << 20)
            .await
            .unwrap();
        if f.records.is_empty() {
            break;
        }
        let mut buf = f.records.clone();
        while !buf.is_empty() {
            let set = RecordBatchDecoder::decode(&mut buf).unwrap();
            batches += 1;
            for r in set.records {
                out.push(Stored {
                    offset: r.offset,
                    key: r.key,
                    value: r.value,
                    sequence: r.sequence,
                    compression: set.compression,
                });
            }
        }
        offset = f.next_offset;
    }
    (out, batches)
}
