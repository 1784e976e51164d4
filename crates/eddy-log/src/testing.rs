//! Builders of real record batches, for tests and benchmarks of this crate and the ones above it.
//!
//! Batches are encoded by the `kafka-protocol` crate, exactly as a Kafka client would send them.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// Encodes `count` records with values of `value_len` bytes and timestamps `first_ts`,
/// `first_ts + 1`, ..., uncompressed, as a producer would (base offset 0).
///
/// Record `i` has key `k{i}` and a value that starts with `v{i}:` and is padded with `x`.
pub fn batch_bytes(count: usize, first_ts: i64, value_len: usize) -> Bytes {
    batch_with(count, first_ts, value_len, Compression::None)
}

/// Like [`batch_bytes`], with a chosen compression codec.
pub fn batch_with(
    count: usize,
    first_ts: i64,
    value_len: usize,
    compression: Compression,
) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| {
            let mut value = format!("v{i}:").into_bytes();
            value.resize(value_len.max(value.len()), b'x');
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // kafka-protocol starts a new batch whenever `offset - sequence` changes, and
                // takes the first record's sequence as the base: -1, 0, 1, ... keeps one batch
                // with base sequence -1, as a non-idempotent producer sends.
                sequence: i as i32 - 1,
                timestamp: first_ts + i as i64,
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(value)),
                headers: Default::default(),
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    // Encoding plain in-memory records into a growable buffer cannot fail for v2.
    #[allow(clippy::expect_used)]
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options).expect("encode batch");
    buf.freeze()
}
