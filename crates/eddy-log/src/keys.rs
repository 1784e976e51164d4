//! Key layout of the two LMDB databases.
//!
//! `log`: `(partition u32 BE, base offset u64 BE)` -> the batch bytes, so one partition is one
//! contiguous key range and its batches sort by offset. `meta`: a one-byte tag, then the rest:
//! `p` + partition id -> the partition's state, `m` + user key -> a metadata record.

use eddy_types::PartitionId;

pub(crate) const LOG_KEY_LEN: usize = 12;
const STATE_TAG: u8 = b'p';
const USER_TAG: u8 = b'm';

pub(crate) fn log_key(partition: PartitionId, base_offset: u64) -> [u8; LOG_KEY_LEN] {
    let mut key = [0u8; LOG_KEY_LEN];
    key[..4].copy_from_slice(&partition.0.to_be_bytes());
    key[4..].copy_from_slice(&base_offset.to_be_bytes());
    key
}

/// Returns the base offset in a log key, if the key belongs to `partition`.
pub(crate) fn log_key_offset(key: &[u8], partition: PartitionId) -> Option<u64> {
    if key.len() != LOG_KEY_LEN || key[..4] != partition.0.to_be_bytes() {
        return None;
    }
    let mut off = [0u8; 8];
    off.copy_from_slice(&key[4..]);
    Some(u64::from_be_bytes(off))
}

pub(crate) fn state_key(partition: PartitionId) -> [u8; 5] {
    let mut key = [STATE_TAG; 5];
    key[1..].copy_from_slice(&partition.0.to_be_bytes());
    key
}

pub(crate) const STATE_PREFIX: &[u8] = &[STATE_TAG];

pub(crate) fn state_key_partition(key: &[u8]) -> Option<PartitionId> {
    if key.len() != 5 || key[0] != STATE_TAG {
        return None;
    }
    Some(PartitionId(u32::from_be_bytes([
        key[1], key[2], key[3], key[4],
    ])))
}

pub(crate) fn user_key(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 1);
    out.push(USER_TAG);
    out.extend_from_slice(key);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_log_keys_sort_by_partition_then_offset() {
        let a = log_key(PartitionId(1), u64::MAX);
        let b = log_key(PartitionId(2), 0);
        let c = log_key(PartitionId(2), 256);
        assert!(a < b && b < c);
        assert_eq!(log_key_offset(&c, PartitionId(2)), Some(256));
        assert_eq!(log_key_offset(&c, PartitionId(1)), None);
    }

    #[test]
    fn test_state_key_round_trips() {
        let k = state_key(PartitionId(70_000));
        assert_eq!(state_key_partition(&k), Some(PartitionId(70_000)));
        assert!(k.starts_with(STATE_PREFIX));
        assert_eq!(state_key_partition(&user_key(b"abcd")), None);
    }
}
