//! Helpers for eddy-client's integration tests: a cluster on paused time.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use bytes::Bytes;
use eddy_broker::Cluster;
use kafka_protocol::records::{Compression, RecordBatchDecoder};

pub(crate) use eddy_broker::testing::{config, paused};

pub(crate) async fn start(dir: &Path) -> Cluster {
    eddy_broker::testing::start(dir).await.unwrap()
}

/// A started cluster with one topic of `partitions` partitions.
pub(crate) async fn start_with_topic(dir: &Path, topic: &str, partitions: u32) -> Cluster {
    eddy_broker::testing::start_with_topic(dir, topic, partitions)
        .await
        .unwrap()
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
