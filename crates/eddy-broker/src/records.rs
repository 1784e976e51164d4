//! Record batches in and out: Kafka RecordBatch v2 bytes, encoded and decoded with the
//! `kafka-protocol` crate. Used by the group coordinators for `__consumer_offsets` and by the
//! embedded consumer.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::error::BrokerError;

/// One record read back from a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// Its offset in the partition.
    pub offset: u64,
    /// Its timestamp (ms).
    pub timestamp: i64,
    /// Its key.
    pub key: Option<Bytes>,
    /// Its value (`None`: a tombstone).
    pub value: Option<Bytes>,
    /// Its headers, in order.
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Encodes `(key, value)` pairs as one uncompressed, non-idempotent batch with timestamp
/// `timestamp` (base offset 0: the log assigns offsets).
pub fn encode_batch(
    records: &[(Option<Bytes>, Option<Bytes>)],
    timestamp: i64,
) -> Result<Bytes, BrokerError> {
    let encoded: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // kafka-protocol starts a new batch whenever `offset - sequence` changes; -1, 0,
            // 1, ... keeps one batch with base sequence -1 (not idempotent).
            sequence: i as i32 - 1,
            timestamp,
            key: key.clone(),
            value: value.clone(),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, encoded.iter(), &options)
        .map_err(|e| BrokerError::Encode(e.to_string()))?;
    Ok(buf.freeze())
}

/// Records in whole batches, from their headers (nothing decoded or decompressed); a torn
/// tail is not counted.
pub fn count_records(mut bytes: &[u8]) -> u64 {
    let mut n = 0u64;
    while let Ok(h) = eddy_log::BatchHeader::parse(bytes) {
        let len = h.total_len();
        if len > bytes.len() || len < eddy_log::HEADER_LEN {
            break;
        }
        n += h.record_count.max(0) as u64;
        bytes = &bytes[len..];
    }
    n
}

/// Decodes whole batches (as a fetch returns them) into records, skipping control records
/// and records before `from` (a fetch's first batch may start before the asked offset).
pub fn decode_records(mut bytes: Bytes, from: u64) -> Result<Vec<ConsumedRecord>, BrokerError> {
    let sets = RecordBatchDecoder::decode_all(&mut bytes)
        .map_err(|e| BrokerError::Decode(e.to_string()))?;
    let mut out = Vec::new();
    for set in sets {
        for r in set.records {
            if r.control || r.offset < 0 || (r.offset as u64) < from {
                continue;
            }
            out.push(ConsumedRecord {
                offset: r.offset as u64,
                timestamp: r.timestamp,
                key: r.key,
                value: r.value,
                headers: r
                    .headers
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_counted_from_batch_headers() {
        let one = encode_batch(&vec![(None, Some(Bytes::from_static(b"a"))); 3], 0).unwrap();
        let two = encode_batch(&vec![(None, Some(Bytes::from_static(b"b"))); 4], 0).unwrap();
        let mut both = one.to_vec();
        both.extend_from_slice(&two);
        assert_eq!(count_records(&both), 7);
        // A torn tail is not counted.
        assert_eq!(count_records(&both[..both.len() - 1]), 3);
        assert_eq!(count_records(&[]), 0);
    }

    #[test]
    fn round_trip_keeps_keys_values_and_tombstones() -> Result<(), BrokerError> {
        let recs = vec![
            (
                Some(Bytes::from_static(b"a")),
                Some(Bytes::from_static(b"1")),
            ),
            (Some(Bytes::from_static(b"b")), None),
            (None, Some(Bytes::from_static(b"3"))),
        ];
        let bytes = encode_batch(&recs, 42)?;
        let back = decode_records(bytes.clone(), 0)?;
        assert_eq!(back.len(), 3);
        for (i, r) in back.iter().enumerate() {
            assert_eq!(r.offset, i as u64);
            assert_eq!(r.timestamp, 42);
            assert_eq!((r.key.clone(), r.value.clone()), recs[i]);
        }
        assert_eq!(decode_records(bytes, 2)?.len(), 1);
        Ok(())
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let r = decode_records(
            Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9, 1]),
            0,
        );
        assert!(r.is_err());
    }
}
