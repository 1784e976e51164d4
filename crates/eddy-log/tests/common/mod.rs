//! Helpers shared by eddy-log's integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use bytes::{Bytes, BytesMut};
use eddy_log::{LogConfig, LogStore, PartitionConfig};
use eddy_types::PartitionId;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::path::Path;

/// A small map: tests open many environments at once.
pub(crate) fn small_config() -> LogConfig {
    LogConfig {
        map_size: 1 << 28,
        ..LogConfig::default()
    }
}

pub(crate) fn open(dir: &Path) -> LogStore {
    LogStore::open(dir, small_config()).expect("open log")
}

pub(crate) fn open_with_partitions(dir: &Path, ids: &[u32]) -> LogStore {
    let log = open(dir);
    log.create_partitions(
        ids.iter()
            .map(|&i| (PartitionId(i), PartitionConfig::default()))
            .collect(),
    )
    .wait()
    .expect("create partitions");
    log
}

/// A batch as an idempotent producer sends it: producer id, epoch and base sequence set.
pub(crate) fn producer_batch(
    values: &[&str],
    first_ts: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    compression: Compression,
) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: base_sequence + i as i32,
            timestamp: first_ts + i as i64,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
            headers: [(
                kafka_protocol::protocol::StrBytes::from_static_str("h"),
                Some(Bytes::from_static(b"hv")),
            )]
            .into_iter()
            .collect(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encode");
    buf.freeze()
}

/// Decodes every record in a buffer of batches.
pub(crate) fn decode_all(mut buf: Bytes) -> Vec<Record> {
    RecordBatchDecoder::decode_all(&mut buf)
        .expect("decode")
        .into_iter()
        .flat_map(|s| s.records)
        .collect()
}

/// The values of every record in a buffer of batches, as strings.
pub(crate) fn values(buf: Bytes) -> Vec<String> {
    decode_all(buf)
        .into_iter()
        .map(|r| String::from_utf8_lossy(&r.value.unwrap_or_default()).into_owned())
        .collect()
}
