//! The fixed 61-byte header of a Kafka RecordBatch v2, and validation of appended buffers.
//!
//! The log never decodes records on the append path: it reads the header, checks the CRC-32C
//! (which covers bytes 21 to the end, so not the base offset nor the leader epoch), and later
//! rewrites bytes 0..8 (base offset) and 12..16 (partition leader epoch) in place. Full record
//! decoding, with decompression, is left to the `kafka-protocol` crate and used only for
//! offset-by-timestamp lookups inside one batch.
//!
//! ```text
//!  0 baseOffset i64          | 27 firstTimestamp i64
//!  8 batchLength i32         | 35 maxTimestamp i64
//! 12 partitionLeaderEpoch i32| 43 producerId i64
//! 16 magic i8 (= 2)          | 51 producerEpoch i16
//! 17 crc u32 (CRC-32C of 21..)| 53 baseSequence i32
//! 21 attributes i16          | 57 recordCount i32
//! 23 lastOffsetDelta i32     | 61 records...
//! ```

use crate::error::LogError;

/// Length of the RecordBatch v2 header, up to and including the record count.
pub const HEADER_LEN: usize = 61;
/// Bytes before the `batchLength` field's scope starts (base offset + length itself).
const LOG_OVERHEAD: usize = 12;
const CRC_START: usize = 21;

/// The decoded fixed header of one RecordBatch v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Length of the batch after the first 12 bytes.
    pub batch_length: i32,
    /// Epoch of the leader that appended the batch.
    pub partition_leader_epoch: i32,
    /// Record format version; always 2 here.
    pub magic: i8,
    /// CRC-32C over bytes 21 to the end.
    pub crc: u32,
    /// Compression (bits 0-2), timestamp type (bit 3), transactional (4), control (5).
    pub attributes: i16,
    /// Offset of the last record minus `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub first_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Idempotent producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence number of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records.
    pub record_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

impl BatchHeader {
    /// Reads the header at the start of `buf`, without checking the CRC.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, LogError> {
        if buf.len() < HEADER_LEN {
            return Err(LogError::invalid(
                0,
                format!(
                    "{} bytes is shorter than a batch header ({HEADER_LEN})",
                    buf.len()
                ),
            ));
        }
        Ok(BatchHeader {
            base_offset: be_i64(buf, 0),
            batch_length: be_i32(buf, 8),
            partition_leader_epoch: be_i32(buf, 12),
            magic: buf[16] as i8,
            crc: u32::from_be_bytes([buf[17], buf[18], buf[19], buf[20]]),
            attributes: be_i16(buf, 21),
            last_offset_delta: be_i32(buf, 23),
            first_timestamp: be_i64(buf, 27),
            max_timestamp: be_i64(buf, 35),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, 53),
            record_count: be_i32(buf, 57),
        })
    }

    /// Total size of the batch in bytes, header included.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> i16 {
        self.attributes & 0x7
    }

    /// Tells whether the batch holds control records (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & (1 << 5) != 0
    }
}

/// How a buffer will be appended, which decides what validation applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// From a producer: offsets are reassigned, so `lastOffsetDelta` must be `count - 1`.
    Producer,
    /// From a leader: offsets are kept as they are and must be contiguous.
    Replica,
}

/// One validated batch inside an appended buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchSpan {
    /// Byte position in the buffer.
    pub(crate) start: usize,
    /// The header as sent.
    pub(crate) header: BatchHeader,
}

impl BatchSpan {
    pub(crate) fn end(&self) -> usize {
        self.start + self.header.total_len()
    }
}

/// Splits `buf` into its batches and checks each: sizes, magic, CRC-32C, codec, counts.
///
/// A buffer that is empty, has trailing bytes or any bad batch is refused whole.
pub(crate) fn validate(buf: &[u8], origin: Origin) -> Result<Vec<BatchSpan>, LogError> {
    if buf.is_empty() {
        return Err(LogError::invalid(0, "empty record set"));
    }
    let mut spans = Vec::with_capacity(1);
    let mut pos = 0;
    let mut expected_base: Option<i64> = None;
    while pos < buf.len() {
        let rest = &buf[pos..];
        let header = BatchHeader::parse(rest).map_err(|_| {
            LogError::invalid(
                pos,
                format!("{} trailing bytes do not hold a batch header", rest.len()),
            )
        })?;
        if header.magic != 2 {
            return Err(LogError::invalid(
                pos,
                format!(
                    "record format v{} is not supported, only v2 (Kafka 0.11+)",
                    header.magic
                ),
            ));
        }
        if (header.batch_length as i64) < (HEADER_LEN - LOG_OVERHEAD) as i64 {
            return Err(LogError::invalid(
                pos,
                format!("batch length {} is too small", header.batch_length),
            ));
        }
        let total = header.total_len();
        if total > rest.len() {
            return Err(LogError::invalid(
                pos,
                format!(
                    "batch length says {total} bytes but only {} remain",
                    rest.len()
                ),
            ));
        }
        let actual = crc32c::crc32c(&rest[CRC_START..total]);
        if actual != header.crc {
            return Err(LogError::invalid(
                pos,
                format!(
                    "CRC-32C mismatch: header says {:#010x}, bytes give {actual:#010x}",
                    header.crc
                ),
            ));
        }
        if header.compression() > 4 {
            return Err(LogError::invalid(
                pos,
                format!("unknown compression codec {}", header.compression()),
            ));
        }
        if header.record_count <= 0 {
            return Err(LogError::invalid(
                pos,
                format!(
                    "record count {} (a batch needs records)",
                    header.record_count
                ),
            ));
        }
        if header.last_offset_delta < 0 {
            return Err(LogError::invalid(
                pos,
                format!("negative last offset delta {}", header.last_offset_delta),
            ));
        }
        match origin {
            Origin::Producer => {
                if header.last_offset_delta != header.record_count - 1 {
                    return Err(LogError::invalid(
                        pos,
                        format!(
                            "last offset delta {} does not match record count {}",
                            header.last_offset_delta, header.record_count
                        ),
                    ));
                }
            }
            Origin::Replica => {
                if header.base_offset < 0 {
                    return Err(LogError::invalid(
                        pos,
                        format!("negative base offset {}", header.base_offset),
                    ));
                }
                if let Some(want) = expected_base {
                    if header.base_offset < want {
                        return Err(LogError::invalid(
                            pos,
                            format!(
                                "base offset {} overlaps the previous batch (next is {want})",
                                header.base_offset
                            ),
                        ));
                    }
                }
                expected_base = Some(header.last_offset() + 1);
            }
        }
        spans.push(BatchSpan { start: pos, header });
        pos += total;
    }
    Ok(spans)
}

/// Rewrites the base offset and partition leader epoch of the batch at the start of `buf`.
///
/// Neither field is covered by the CRC, so the batch stays valid.
pub(crate) fn patch_header(buf: &mut [u8], base_offset: u64, leader_epoch: i32) {
    buf[0..8].copy_from_slice(&base_offset.to_be_bytes());
    buf[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Producer batches checked and given their offsets and leader epoch by a partition leader,
/// before they are appended: the leader can hand the same bytes to its followers while its own
/// commit is under way. Made by [`Stamped::new`]; appended by
/// [`LogStore::append_stamped`](crate::LogStore::append_stamped), which writes them only at
/// their base offset (nothing is written if the log's end has moved elsewhere).
#[derive(Debug, Clone)]
pub struct Stamped {
    pub(crate) bytes: bytes::Bytes,
    pub(crate) spans: Vec<BatchSpan>,
    base_offset: u64,
    next_offset: u64,
}

impl Stamped {
    /// Checks `records` as a producer's (sizes, magic, CRC-32C, codec, counts) and rewrites
    /// each batch's base offset, from `base_offset` on, and its partition leader epoch. The
    /// buffer is changed in place when nothing else holds it, else copied once.
    pub fn new(
        records: bytes::Bytes,
        base_offset: u64,
        leader_epoch: i32,
    ) -> Result<Stamped, LogError> {
        let mut spans = validate(&records, Origin::Producer)?;
        let mut buf = match records.try_into_mut() {
            Ok(unique) => unique,
            Err(shared) => bytes::BytesMut::from(&shared[..]),
        };
        let mut next = base_offset;
        for span in &mut spans {
            patch_header(&mut buf[span.start..], next, leader_epoch);
            span.header.base_offset = next as i64;
            span.header.partition_leader_epoch = leader_epoch;
            next += span.header.last_offset_delta as u64 + 1;
        }
        Ok(Stamped {
            bytes: buf.freeze(),
            spans,
            base_offset,
            next_offset: next,
        })
    }

    /// The stamped batches, as they will be stored and served.
    pub fn bytes(&self) -> &bytes::Bytes {
        &self.bytes
    }

    /// Offset of the first record.
    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }

    /// Offset after the last record.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// The part of the batches from offset `from` (a batch's base offset) on, or `None` when
    /// no batch starts there.
    pub fn from_offset(&self, from: u64) -> Option<bytes::Bytes> {
        self.spans
            .iter()
            .find(|s| s.header.base_offset as u64 == from)
            .map(|s| self.bytes.slice(s.start..))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::batch_bytes;

    #[test]
    fn test_parse_reads_encoded_header() {
        let buf = batch_bytes(3, 1_000, 16);
        let spans = validate(&buf, Origin::Producer).unwrap();
        assert_eq!(spans.len(), 1);
        let h = spans[0].header;
        assert_eq!(h.record_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.first_timestamp, 1_000);
        assert_eq!(h.max_timestamp, 1_002);
        assert_eq!(h.total_len(), buf.len());
    }

    #[test]
    fn test_validate_refuses_bad_crc() {
        let mut buf = batch_bytes(2, 0, 8).to_vec();
        let last = buf.len() - 1;
        buf[last] ^= 0xff;
        let err = validate(&buf, Origin::Producer).unwrap_err();
        assert!(err.to_string().contains("CRC-32C mismatch"), "{err}");
    }

    #[test]
    fn test_validate_refuses_truncated_and_trailing_bytes() {
        let buf = batch_bytes(2, 0, 8);
        for cut in [1, 30, HEADER_LEN, buf.len() - 1] {
            assert!(
                validate(&buf[..cut], Origin::Producer).is_err(),
                "cut {cut}"
            );
        }
        let mut two = buf.to_vec();
        two.extend_from_slice(&[0, 1, 2]);
        assert!(validate(&two, Origin::Producer).is_err());
        assert!(validate(&[], Origin::Producer).is_err());
    }

    #[test]
    fn test_validate_refuses_negative_length_without_panic() {
        let mut buf = batch_bytes(1, 0, 8).to_vec();
        buf[8..12].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(validate(&buf, Origin::Producer).is_err());
        buf[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(validate(&buf, Origin::Producer).is_err());
    }

    #[test]
    fn test_patch_header_keeps_crc_valid() {
        let mut buf = batch_bytes(4, 0, 8).to_vec();
        patch_header(&mut buf, 12_345, 7);
        let spans = validate(&buf, Origin::Replica).unwrap();
        assert_eq!(spans[0].header.base_offset, 12_345);
        assert_eq!(spans[0].header.partition_leader_epoch, 7);
        assert_eq!(spans[0].header.last_offset(), 12_348);
    }

    #[test]
    fn test_validate_splits_several_batches() {
        let mut buf = batch_bytes(2, 0, 8).to_vec();
        let mut second = batch_bytes(3, 0, 8).to_vec();
        patch_header(&mut second, 2, 0);
        buf.extend_from_slice(&second);
        let spans = validate(&buf, Origin::Replica).unwrap();
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[1].start, spans[0].end());
        assert_eq!(spans[1].end(), buf.len());
    }

    #[test]
    fn test_stamped_rewrites_offsets_and_epoch_and_slices_at_batches() {
        let mut buf = crate::testing::batch_bytes(3, 1_000, 10).to_vec();
        buf.extend_from_slice(&crate::testing::batch_bytes(2, 2_000, 10));
        let s = Stamped::new(bytes::Bytes::from(buf), 40, 7).unwrap();
        assert_eq!((s.base_offset(), s.next_offset()), (40, 45));
        let heads: Vec<(i64, i32)> = validate(s.bytes(), Origin::Replica)
            .unwrap()
            .iter()
            .map(|sp| (sp.header.base_offset, sp.header.partition_leader_epoch))
            .collect();
        assert_eq!(heads, vec![(40, 7), (43, 7)]);
        let tail = s.from_offset(43).unwrap();
        assert_eq!(BatchHeader::parse(&tail).unwrap().base_offset, 43);
        assert!(s.from_offset(41).is_none());
        // A shared buffer is copied, not changed under its other holder.
        let shared = crate::testing::batch_bytes(1, 1, 10);
        let keep = shared.clone();
        Stamped::new(shared, 9, 1).unwrap();
        assert_eq!(BatchHeader::parse(&keep).unwrap().base_offset, 0);
        assert!(Stamped::new(bytes::Bytes::from_static(b"nope"), 0, 0).is_err());
    }
}
