//! Which partition a record goes to, as Kafka's Java client decides it: an explicit partition
//! first; else the key hashed with murmur2 (so a key lands where the Java client puts it);
//! else round-robin, sticky per batch. Pure.

pub use eddy_types::{murmur2, partition_for_key};

/// Round-robin for unkeyed records, sticky per batch (Kafka's KIP-480): records go to one
/// partition until the producer closes a batch there, then to the next.
#[derive(Debug, Clone, Default)]
pub struct StickyRoundRobin {
    next: u32,
    current: Option<u32>,
}

impl StickyRoundRobin {
    /// The partition for the next unkeyed record.
    pub fn partition(&mut self, partitions: u32) -> u32 {
        let n = partitions.max(1);
        match self.current {
            Some(p) if p < n => p,
            _ => {
                let p = self.next % n;
                self.next = self.next.wrapping_add(1);
                self.current = Some(p);
                p
            }
        }
    }

    /// The partition unkeyed records stick to now, if one was picked.
    pub fn current(&self) -> Option<u32> {
        self.current
    }

    /// A batch was closed: the next unkeyed record moves on to another partition.
    pub fn batch_closed(&mut self) {
        self.current = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_murmur2_matches_kafkas_own_vectors() {
        // From Kafka's UtilsTest.testMurmur2.
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (input, want) in cases {
            assert_eq!(murmur2(input), want, "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn test_keys_spread_and_stay() {
        let a = partition_for_key(b"user-1", 10);
        assert_eq!(a, partition_for_key(b"user-1", 10));
        let used: std::collections::HashSet<u32> = (0..200)
            .map(|i| partition_for_key(format!("k{i}").as_bytes(), 10))
            .collect();
        assert_eq!(used.len(), 10);
        assert_eq!(
            partition_for_key(b"x", 0),
            0,
            "zero partitions does not divide by zero"
        );
    }

    #[test]
    fn test_sticky_round_robin_moves_on_per_batch() {
        let mut rr = StickyRoundRobin::default();
        assert_eq!(rr.partition(3), 0);
        assert_eq!(rr.partition(3), 0);
        rr.batch_closed();
        assert_eq!(rr.partition(3), 1);
        rr.batch_closed();
        assert_eq!(rr.partition(3), 2);
        rr.batch_closed();
        assert_eq!(rr.partition(3), 0);
    }
}
