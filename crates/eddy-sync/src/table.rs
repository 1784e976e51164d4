//! [`ValueTable`]: a `u64` per dense `u32` index (a partition's storage id), set and read from
//! any thread without a lock once the index's chunk exists.

use crate::sync::{Arc, AtomicU64, Ordering, RwLock};

/// Indexes per chunk: 32 KiB of values each (4 under loom, which tracks every atomic).
#[cfg(not(loom))]
const CHUNK: usize = 4096;
#[cfg(loom)]
const CHUNK: usize = 4;

/// A growable table of optional `u64` values by `u32` index. Memory is 8 bytes per index up
/// to the highest one set (in chunks of 4,096), whatever the number of readers and writers.
///
/// Stores and loads take a shared lock (an atomic increment, never held across anything but
/// the chunk lookup); only growing the table takes it exclusively. The Prometheus collector of
/// partitions' high watermarks reads it at scrape time while brokers' leaders set it as their
/// high watermarks move.
///
/// ```
/// let t = eddy_sync::ValueTable::default();
/// assert_eq!(t.get(7), None);
/// t.set(7, 42);
/// assert_eq!(t.get(7), Some(42));
/// assert!(!t.set_if_absent(7, 1));
/// t.clear(7);
/// assert_eq!(t.get(7), None);
/// ```
#[derive(Debug)]
pub struct ValueTable {
    chunks: RwLock<Vec<Arc<Vec<AtomicU64>>>>,
}

impl Default for ValueTable {
    fn default() -> ValueTable {
        ValueTable {
            chunks: RwLock::new(Vec::new()),
        }
    }
}

fn split(index: u32) -> (usize, usize) {
    let i = index as usize;
    (i / CHUNK, i % CHUNK)
}

/// Stored as `value + 1`, so that 0 means "absent" (`u64::MAX` is kept as `u64::MAX - 1`).
fn encode(value: u64) -> u64 {
    value.saturating_add(1)
}

impl ValueTable {
    /// The chunk holding `chunk`, if it exists.
    fn chunk(&self, chunk: usize) -> Option<Arc<Vec<AtomicU64>>> {
        let chunks = crate::sync::read(&self.chunks);
        chunks.get(chunk).cloned()
    }

    /// The chunk holding `chunk`, grown to it first if needed.
    fn chunk_or_grow(&self, chunk: usize) -> Arc<Vec<AtomicU64>> {
        if let Some(c) = self.chunk(chunk) {
            return c;
        }
        let mut chunks = crate::sync::write(&self.chunks);
        while chunks.len() <= chunk {
            chunks.push(Arc::new((0..CHUNK).map(|_| AtomicU64::new(0)).collect()));
        }
        chunks[chunk].clone()
    }

    /// Sets `index` to `value`.
    pub fn set(&self, index: u32, value: u64) {
        let (c, i) = split(index);
        self.chunk_or_grow(c)[i].store(encode(value), Ordering::Release);
    }

    /// Sets `index` to `value` unless it has a value; tells whether it set it.
    pub fn set_if_absent(&self, index: u32, value: u64) -> bool {
        let (c, i) = split(index);
        self.chunk_or_grow(c)[i]
            .compare_exchange(0, encode(value), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Removes the value of `index`.
    pub fn clear(&self, index: u32) {
        let (c, i) = split(index);
        if let Some(chunk) = self.chunk(c) {
            chunk[i].store(0, Ordering::Release);
        }
    }

    /// The value of `index`, if it has one.
    pub fn get(&self, index: u32) -> Option<u64> {
        let (c, i) = split(index);
        let v = self.chunk(c)?[i].load(Ordering::Acquire);
        v.checked_sub(1)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn values_far_apart_grow_the_table_and_keep_each_other() {
        let t = ValueTable::default();
        t.set(0, 0);
        t.set(1_000_000, 5);
        t.set(4095, u64::MAX);
        assert_eq!(t.get(0), Some(0));
        assert_eq!(t.get(1_000_000), Some(5));
        assert_eq!(t.get(4095), Some(u64::MAX - 1));
        assert_eq!(t.get(4096), None);
        assert_eq!(t.get(u32::MAX), None);
        assert!(t.set_if_absent(4096, 3));
        assert!(!t.set_if_absent(4096, 4));
        assert_eq!(t.get(4096), Some(3));
        t.clear(u32::MAX); // beyond the table: nothing to clear
        t.clear(0);
        assert_eq!(t.get(0), None);
    }
}
