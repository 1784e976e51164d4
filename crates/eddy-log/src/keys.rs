//! Key layout of the two LMDB databases.
//!
//! `log`: `(partition u32 BE, base offset u64 BE)` -> the batch's first piece, and
//! `(partition, base offset, piece u32 BE)` -> its later pieces (pieces 1, 2, ...), so one
//! partition is one contiguous key range, its batches sort by offset and each batch's pieces
//! follow its head in order (a 12-byte key sorts before every longer key it prefixes). Every
//! piece fits one LMDB page (see `Dbs::piece`): a batch of any size never needs a run of
//! contiguous free pages. `meta`: a one-byte tag, then the rest: `p` + partition id -> the
//! partition's state, `d` + partition id -> a deleted partition whose batches are still being
//! removed (step by step, by retention passes), `t` + partition id -> a partition whose log
//! start moved past batches still stored (a large DeleteRecords; retention passes remove
//! them the same way), `m` + user key -> a metadata record.

use eddy_types::PartitionId;

pub(crate) const LOG_KEY_LEN: usize = 12;
pub(crate) const PIECE_KEY_LEN: usize = 16;
const STATE_TAG: u8 = b'p';
const USER_TAG: u8 = b'm';
const DELETED_TAG: u8 = b'd';
const TRIMMED_TAG: u8 = b't';

pub(crate) fn log_key(partition: PartitionId, base_offset: u64) -> [u8; LOG_KEY_LEN] {
    let mut key = [0u8; LOG_KEY_LEN];
    key[..4].copy_from_slice(&partition.0.to_be_bytes());
    key[4..].copy_from_slice(&base_offset.to_be_bytes());
    key
}

/// The key of piece `index` (1 or more) of the batch at `base_offset`.
pub(crate) fn piece_key(
    partition: PartitionId,
    base_offset: u64,
    index: u32,
) -> [u8; PIECE_KEY_LEN] {
    let mut key = [0u8; PIECE_KEY_LEN];
    key[..LOG_KEY_LEN].copy_from_slice(&log_key(partition, base_offset));
    key[LOG_KEY_LEN..].copy_from_slice(&index.to_be_bytes());
    key
}

/// The base offset of the batch a log key belongs to and the piece it names (0: the batch's
/// head), if the key belongs to `partition`.
pub(crate) fn log_key_parts(key: &[u8], partition: PartitionId) -> Option<(u64, u32)> {
    if (key.len() != LOG_KEY_LEN && key.len() != PIECE_KEY_LEN)
        || key[..4] != partition.0.to_be_bytes()
    {
        return None;
    }
    let mut off = [0u8; 8];
    off.copy_from_slice(&key[4..LOG_KEY_LEN]);
    let mut index = [0u8; 4];
    if key.len() == PIECE_KEY_LEN {
        index.copy_from_slice(&key[LOG_KEY_LEN..]);
    }
    Some((u64::from_be_bytes(off), u32::from_be_bytes(index)))
}

/// The base offset of the batch a log key (head or piece) belongs to, if the key belongs to
/// `partition`.
pub(crate) fn log_key_offset(key: &[u8], partition: PartitionId) -> Option<u64> {
    log_key_parts(key, partition).map(|(base, _)| base)
}

/// A one-byte tag, then the partition id.
fn tagged_key(tag: u8, partition: PartitionId) -> [u8; 5] {
    let mut key = [tag; 5];
    key[1..].copy_from_slice(&partition.0.to_be_bytes());
    key
}

/// The partition of a key made by [`tagged_key`] with `tag`.
fn tagged_key_partition(tag: u8, key: &[u8]) -> Option<PartitionId> {
    if key.len() != 5 || key[0] != tag {
        return None;
    }
    Some(PartitionId(u32::from_be_bytes([
        key[1], key[2], key[3], key[4],
    ])))
}

pub(crate) fn state_key(partition: PartitionId) -> [u8; 5] {
    tagged_key(STATE_TAG, partition)
}

pub(crate) const STATE_PREFIX: &[u8] = &[STATE_TAG];

pub(crate) fn state_key_partition(key: &[u8]) -> Option<PartitionId> {
    tagged_key_partition(STATE_TAG, key)
}

/// The key that marks `partition` as deleted with batches left to remove.
pub(crate) fn deleted_key(partition: PartitionId) -> [u8; 5] {
    tagged_key(DELETED_TAG, partition)
}

pub(crate) const DELETED_PREFIX: &[u8] = &[DELETED_TAG];

pub(crate) fn deleted_key_partition(key: &[u8]) -> Option<PartitionId> {
    tagged_key_partition(DELETED_TAG, key)
}

/// Marks a partition whose log start moved past batches that are still stored (a large
/// DeleteRecords): retention passes remove them, a step at a time.
pub(crate) fn trimmed_key(partition: PartitionId) -> [u8; 5] {
    tagged_key(TRIMMED_TAG, partition)
}

pub(crate) const TRIMMED_PREFIX: &[u8] = &[TRIMMED_TAG];

pub(crate) fn trimmed_key_partition(key: &[u8]) -> Option<PartitionId> {
    tagged_key_partition(TRIMMED_TAG, key)
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
    fn test_pieces_sort_after_their_head_and_before_the_next_batch() {
        let p = PartitionId(7);
        let head = log_key(p, 100);
        let one = piece_key(p, 100, 1);
        let two = piece_key(p, 100, 2);
        let big = piece_key(p, 100, 300);
        let next = log_key(p, 101);
        let mut keys = vec![
            next.to_vec(),
            big.to_vec(),
            two.to_vec(),
            head.to_vec(),
            one.to_vec(),
        ];
        keys.sort();
        assert_eq!(
            keys,
            vec![
                head.to_vec(),
                one.to_vec(),
                two.to_vec(),
                big.to_vec(),
                next.to_vec()
            ]
        );
        assert_eq!(log_key_parts(&head, p), Some((100, 0)));
        assert_eq!(log_key_parts(&big, p), Some((100, 300)));
        assert_eq!(log_key_offset(&two, p), Some(100));
        assert_eq!(log_key_parts(&two, PartitionId(8)), None);
        assert_eq!(log_key_parts(&two[..13], p), None);
    }

    #[test]
    fn test_state_key_round_trips() {
        let k = state_key(PartitionId(70_000));
        assert_eq!(state_key_partition(&k), Some(PartitionId(70_000)));
        assert!(k.starts_with(STATE_PREFIX));
        assert_eq!(state_key_partition(&user_key(b"abcd")), None);
        let d = deleted_key(PartitionId(70_000));
        assert_eq!(deleted_key_partition(&d), Some(PartitionId(70_000)));
        assert!(d.starts_with(DELETED_PREFIX) && !d.starts_with(STATE_PREFIX));
        assert_eq!(state_key_partition(&d), None);
        assert_eq!(deleted_key_partition(&k), None);
        let t = trimmed_key(PartitionId(70_000));
        assert_eq!(trimmed_key_partition(&t), Some(PartitionId(70_000)));
        assert!(t.starts_with(TRIMMED_PREFIX) && !t.starts_with(DELETED_PREFIX));
        assert_eq!(trimmed_key_partition(&d), None);
    }
}
