//! Helpers shared by eddy-broker's integration tests.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use eddy_broker::Cluster;
use kafka_protocol::records::RecordBatchDecoder;

pub(crate) use eddy_broker::testing::{config, paused};

pub(crate) async fn start(dir: &Path) -> Cluster {
    eddy_broker::testing::start(dir).await.unwrap()
}

/// Lets the actors run for `d` of (paused) time.
pub(crate) async fn settle(d: Duration) {
    tokio::time::sleep(d).await;
}

/// The first timestamp of every record in `records` (batches back to back), with its offset.
/// Tests give each batch its own timestamp to tell batches apart.
pub(crate) fn offsets_and_timestamps(records: &Bytes) -> Vec<(i64, i64)> {
    let mut buf = records.clone();
    let mut out = Vec::new();
    while !buf.is_empty() {
        let set = RecordBatchDecoder::decode(&mut buf).unwrap();
        for r in set.records {
            out.push((r.offset, r.timestamp));
        }
    }
    out
}

/// Everything a replica holds for a partition, from offset 0.
pub(crate) fn replica_contents(
    cluster: &Cluster,
    broker: u32,
    topic: &str,
    partition: u32,
) -> Vec<(i64, i64)> {
    let meta = cluster.metadata();
    let pid = meta.partition(topic, partition).unwrap().id;
    let log = cluster.replica_log(eddy_types::BrokerId(broker)).unwrap();
    let end = log.offsets(pid).unwrap().log_end;
    let fetched = log.read(pid, 0, usize::MAX).unwrap();
    let all = offsets_and_timestamps(&fetched.records);
    assert_eq!(
        all.len() as u64,
        end,
        "a replica's records are contiguous from 0"
    );
    all
}

/// A batch as an idempotent producer sends it: `count` records with sequences from
/// `base_seq`, timestamps from `ts`.
pub(crate) fn idempotent_batch(
    producer_id: i64,
    epoch: i16,
    base_seq: i32,
    count: usize,
    ts: i64,
) -> Bytes {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: base_seq + i as i32,
            timestamp: ts + i as i64,
            key: None,
            value: Some(Bytes::from(vec![b'v'; 100])),
            headers: Default::default(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options).unwrap();
    buf.freeze()
}
