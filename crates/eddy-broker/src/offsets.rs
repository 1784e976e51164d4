//! What consumer groups keep in the internal topic `__consumer_offsets`: pure.
//!
//! A group lives on one partition of that topic, chosen as Kafka chooses it (Java's
//! `String.hashCode` of the group id), so the broker leading that partition coordinates it.
//! Each record's key says what it is about (a committed offset of (group, topic, partition), or
//! a group's membership); its value is the latest state, rmp-serde encoded; a record without a
//! value (a tombstone) deletes the key. [`OffsetsState`] is the fold of a partition's records:
//! the latest value per key, which is what a compacted topic keeps.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::group::GroupSnapshot;

/// The internal topic's name.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Java's `String.hashCode` (over UTF-16 code units, wrapping).
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The `__consumer_offsets` partition of a group, as Kafka computes it
/// (`Utils.abs(groupId.hashCode) % partitions`, where `abs(MIN_VALUE)` is 0).
pub fn partition_for_group(group: &str, partitions: u32) -> u32 {
    let h = java_string_hash(group);
    let positive = if h == i32::MIN { 0 } else { h.unsigned_abs() };
    positive % partitions.max(1)
}

/// A record key of `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum OffsetsKey {
    /// A committed offset.
    Offset {
        /// The group.
        group: String,
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },
    /// A group's membership.
    Group {
        /// The group.
        group: String,
    },
}

impl OffsetsKey {
    /// The group the key belongs to.
    pub fn group(&self) -> &str {
        match self {
            OffsetsKey::Offset { group, .. } | OffsetsKey::Group { group } => group,
        }
    }

    /// The key's bytes.
    pub fn encode(&self) -> Result<Vec<u8>, rmp_serde::encode::Error> {
        rmp_serde::to_vec(self)
    }
}

/// A committed offset, as OffsetCommit carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    /// The next offset to read.
    pub offset: i64,
    /// The leader epoch of the last record read, if the client knows it.
    pub leader_epoch: Option<i32>,
    /// Free-form metadata from the client.
    pub metadata: String,
    /// When it was committed, ms since the epoch.
    pub commit_timestamp: i64,
}

/// A record value of `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OffsetsValue {
    /// For an [`OffsetsKey::Offset`].
    Offset(CommittedOffset),
    /// For an [`OffsetsKey::Group`].
    Group(GroupSnapshot),
}

impl OffsetsValue {
    /// The value's bytes.
    pub fn encode(&self) -> Result<Vec<u8>, rmp_serde::encode::Error> {
        rmp_serde::to_vec(self)
    }
}

/// A record of `__consumer_offsets` that does not decode (it is skipped, and reported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undecodable(pub String);

/// What one group has in `__consumer_offsets`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupRecords {
    /// Its membership, if it ever had members.
    pub group: Option<GroupSnapshot>,
    /// Its committed offsets by (topic, partition).
    pub offsets: BTreeMap<(String, u32), CommittedOffset>,
}

/// The latest value of every key of one `__consumer_offsets` partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetsState {
    groups: BTreeMap<String, GroupRecords>,
}

impl OffsetsState {
    /// Applies one record (`value: None` is a tombstone).
    pub fn apply(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), Undecodable> {
        let key: OffsetsKey =
            rmp_serde::from_slice(key).map_err(|e| Undecodable(format!("key: {e}")))?;
        let value: Option<OffsetsValue> = match value {
            Some(v) => {
                Some(rmp_serde::from_slice(v).map_err(|e| Undecodable(format!("value: {e}")))?)
            }
            None => None,
        };
        self.put(key, value)
    }

    /// Sets (or, with `None`, removes) the value of a key.
    pub fn put(&mut self, key: OffsetsKey, value: Option<OffsetsValue>) -> Result<(), Undecodable> {
        let matching = matches!(
            (&key, &value),
            (_, None)
                | (OffsetsKey::Offset { .. }, Some(OffsetsValue::Offset(_)))
                | (OffsetsKey::Group { .. }, Some(OffsetsValue::Group(_)))
        );
        if !matching {
            return Err(Undecodable(format!(
                "{key:?}: the value does not match the key"
            )));
        }
        let group = key.group().to_owned();
        let entry = self.groups.entry(group.clone()).or_default();
        match (key, value) {
            (
                OffsetsKey::Offset {
                    topic, partition, ..
                },
                Some(OffsetsValue::Offset(o)),
            ) => {
                entry.offsets.insert((topic, partition), o);
            }
            (
                OffsetsKey::Offset {
                    topic, partition, ..
                },
                _,
            ) => {
                entry.offsets.remove(&(topic, partition));
            }
            (OffsetsKey::Group { .. }, Some(OffsetsValue::Group(g))) => entry.group = Some(g),
            (OffsetsKey::Group { .. }, _) => entry.group = None,
        }
        if entry.group.is_none() && entry.offsets.is_empty() {
            self.groups.remove(&group);
        }
        Ok(())
    }

    /// One group's records.
    pub fn group(&self, group: &str) -> Option<&GroupRecords> {
        self.groups.get(group)
    }

    /// The sum of the offsets `group` committed for the partitions of `topic`.
    pub fn committed_sum(&self, group: &str, topic: &str) -> i64 {
        let Some(g) = self.groups.get(group) else {
            return 0;
        };
        let from = (topic.to_owned(), 0);
        g.offsets
            .range(from..)
            .take_while(|((t, _), _)| t == topic)
            .map(|(_, o)| o.offset.max(0))
            .fold(0i64, i64::saturating_add)
    }

    /// Every (group, topic) with committed offsets here.
    pub fn group_topics(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (group, records) in &self.groups {
            let mut last: Option<&str> = None;
            for (t, _) in records.offsets.keys() {
                if last != Some(t.as_str()) {
                    out.push((group.clone(), t.clone()));
                    last = Some(t.as_str());
                }
            }
        }
        out
    }

    /// The groups with records here.
    pub fn groups(&self) -> impl Iterator<Item = (&String, &GroupRecords)> {
        self.groups.iter()
    }

    /// The keys of every group's committed offsets for `topic`.
    pub fn offsets_of_topic(&self, topic: &str) -> Vec<OffsetsKey> {
        let mut keys = Vec::new();
        for (group, records) in &self.groups {
            for (t, p) in records.offsets.keys() {
                if t == topic {
                    keys.push(OffsetsKey::Offset {
                        group: group.clone(),
                        topic: t.clone(),
                        partition: *p,
                    });
                }
            }
        }
        keys
    }

    /// How many keys have a value: what a compacted copy of the partition holds.
    pub fn live_keys(&self) -> usize {
        self.groups
            .values()
            .map(|g| g.offsets.len() + usize::from(g.group.is_some()))
            .sum()
    }

    /// Every live key with its value, in key order: the records a compacted copy holds.
    pub fn live_records(&self) -> Vec<(OffsetsKey, OffsetsValue)> {
        let mut out = Vec::with_capacity(self.live_keys());
        for (group, records) in &self.groups {
            if let Some(g) = &records.group {
                out.push((
                    OffsetsKey::Group {
                        group: group.clone(),
                    },
                    OffsetsValue::Group(g.clone()),
                ));
            }
            for ((topic, partition), o) in &records.offsets {
                out.push((
                    OffsetsKey::Offset {
                        group: group.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                    },
                    OffsetsValue::Offset(o.clone()),
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::GroupState;

    #[test]
    fn test_java_string_hash_matches_java() {
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        // Java's classic collision, and the string whose hash is Integer.MIN_VALUE.
        assert_eq!(java_string_hash("Aa"), java_string_hash("BB"));
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        // Non-ASCII hashes UTF-16 code units: U+1F600 is a surrogate pair.
        assert_eq!(java_string_hash("é"), 0xE9);
        assert_eq!(java_string_hash("😀"), 0xD83D * 31 + 0xDE00);
    }

    #[test]
    fn test_groups_map_to_partitions_as_kafka_does() {
        assert_eq!(partition_for_group("polygenelubricants", 50), 0);
        assert_eq!(partition_for_group("hello", 50), 99_162_322 % 50);
        // A negative hash uses its absolute value.
        let h = java_string_hash("my-group");
        assert!(h < 0, "{h}");
        assert_eq!(partition_for_group("my-group", 50), h.unsigned_abs() % 50);
        assert_eq!(partition_for_group("x", 0), 0, "no partitions: no panic");
    }

    fn offset(o: i64) -> OffsetsValue {
        OffsetsValue::Offset(CommittedOffset {
            offset: o,
            leader_epoch: Some(1),
            metadata: String::new(),
            commit_timestamp: 5,
        })
    }

    fn key(group: &str, topic: &str, partition: u32) -> OffsetsKey {
        OffsetsKey::Offset {
            group: group.into(),
            topic: topic.into(),
            partition,
        }
    }

    #[test]
    fn test_the_latest_value_per_key_wins_and_tombstones_delete() {
        let mut s = OffsetsState::default();
        let k = key("g", "chat", 0).encode().unwrap();
        for o in [3, 7, 9] {
            s.apply(&k, Some(&offset(o).encode().unwrap())).unwrap();
        }
        s.apply(
            &key("g", "chat", 1).encode().unwrap(),
            Some(&offset(2).encode().unwrap()),
        )
        .unwrap();
        let snap = GroupSnapshot {
            state: GroupState::Empty,
            generation: 4,
            protocol_type: Some("consumer".into()),
            protocol: None,
            leader: None,
            members: vec![],
        };
        let gk = OffsetsKey::Group { group: "g".into() }.encode().unwrap();
        s.apply(
            &gk,
            Some(&OffsetsValue::Group(snap.clone()).encode().unwrap()),
        )
        .unwrap();
        let g = s.group("g").unwrap();
        assert_eq!(g.offsets[&("chat".to_string(), 0)].offset, 9);
        assert_eq!(g.group.as_ref(), Some(&snap));
        assert_eq!(s.live_keys(), 3);
        assert_eq!(s.live_records().len(), 3);
        // Rebuilding from the live records gives the same state (a compacted copy).
        let mut copy = OffsetsState::default();
        for (k, v) in s.live_records() {
            copy.apply(&k.encode().unwrap(), Some(&v.encode().unwrap()))
                .unwrap();
        }
        assert_eq!(copy, s);
        // Per (group, topic) sums, for `/metrics` at any number of partitions.
        s.apply(
            &key("g", "chat2", 0).encode().unwrap(),
            Some(&offset(100).encode().unwrap()),
        )
        .unwrap();
        assert_eq!(s.committed_sum("g", "chat"), 11);
        assert_eq!(s.committed_sum("g", "chat2"), 100);
        assert_eq!(s.committed_sum("g", "cha"), 0);
        assert_eq!(s.committed_sum("other", "chat"), 0);
        assert_eq!(
            s.group_topics(),
            vec![("g".into(), "chat".into()), ("g".into(), "chat2".into())]
        );
        s.apply(&key("g", "chat2", 0).encode().unwrap(), None)
            .unwrap();
        s.apply(&k, None).unwrap();
        s.apply(&key("g", "chat", 1).encode().unwrap(), None)
            .unwrap();
        s.apply(&gk, None).unwrap();
        assert!(s.group("g").is_none(), "a group with nothing left is gone");
        assert_eq!(s.live_keys(), 0);
    }

    #[test]
    fn test_garbage_is_reported_not_applied() {
        let mut s = OffsetsState::default();
        assert!(s.apply(b"\xc1garbage", None).is_err());
        let k = key("g", "t", 0).encode().unwrap();
        assert!(s.apply(&k, Some(b"\xc1")).is_err());
        let wrong = OffsetsValue::Group(GroupSnapshot {
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: vec![],
        });
        assert!(s.apply(&k, Some(&wrong.encode().unwrap())).is_err());
        assert_eq!(s, OffsetsState::default());
    }
}
