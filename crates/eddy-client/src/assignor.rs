//! Partition assignors, as Kafka's consumers run them: the group leader (a consumer) computes
//! the assignment and the coordinator hands it out. Pure.
//!
//! - [`RangeAssignor`] (`range`): per topic, consecutive ranges of partitions to the members
//!   subscribed to it, sorted by member id; the first `partitions % members` get one more.
//! - [`RoundRobinAssignor`] (`roundrobin`): every partition of every subscribed topic, sorted,
//!   dealt in turn to the members (sorted by id), skipping members not subscribed to its topic.
//!
//! Both give the same answer as Kafka's Java classes for the same input, so a group can mix
//! Eddy's embedded consumers and Kafka clients.

use std::collections::{BTreeMap, BTreeSet};

/// What one member subscribes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The member id.
    pub member_id: String,
    /// The topics.
    pub topics: Vec<String>,
}

/// Partitions by member id; every member of the input has an entry (maybe empty).
pub type Assignment = BTreeMap<String, Vec<(String, u32)>>;

/// A partition assignment strategy.
pub trait Assignor: std::fmt::Debug + Send + Sync {
    /// Its protocol name (`range`, `roundrobin`).
    fn name(&self) -> &'static str;

    /// Assigns the partitions of the subscribed topics; `partitions` gives each topic's
    /// partition count (topics missing from it are skipped).
    fn assign(&self, partitions: &BTreeMap<String, u32>, members: &[Subscription]) -> Assignment;
}

fn empty(members: &[Subscription]) -> Assignment {
    members
        .iter()
        .map(|m| (m.member_id.clone(), Vec::new()))
        .collect()
}

/// Kafka's `RangeAssignor`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RangeAssignor;

impl Assignor for RangeAssignor {
    fn name(&self) -> &'static str {
        "range"
    }

    fn assign(&self, partitions: &BTreeMap<String, u32>, members: &[Subscription]) -> Assignment {
        let mut out = empty(members);
        let mut by_topic: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for m in members {
            for t in &m.topics {
                by_topic.entry(t).or_default().insert(&m.member_id);
            }
        }
        for (topic, subscribers) in by_topic {
            let Some(&count) = partitions.get(topic) else {
                continue;
            };
            let n = subscribers.len() as u32;
            let (per, extra) = (count / n, count % n);
            for (i, member) in subscribers.into_iter().enumerate() {
                let i = i as u32;
                let start = i * per + i.min(extra);
                let len = per + u32::from(i < extra);
                if let Some(list) = out.get_mut(member) {
                    list.extend((start..start + len).map(|p| (topic.to_owned(), p)));
                }
            }
        }
        out
    }
}

/// Kafka's `RoundRobinAssignor`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundRobinAssignor;

impl Assignor for RoundRobinAssignor {
    fn name(&self) -> &'static str {
        "roundrobin"
    }

    fn assign(&self, partitions: &BTreeMap<String, u32>, members: &[Subscription]) -> Assignment {
        let mut out = empty(members);
        let mut sorted: Vec<&Subscription> = members.iter().collect();
        sorted.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        if sorted.is_empty() {
            return out;
        }
        let topics: BTreeSet<&str> = members
            .iter()
            .flat_map(|m| m.topics.iter().map(String::as_str))
            .collect();
        let mut next = 0usize;
        for topic in topics {
            let Some(&count) = partitions.get(topic) else {
                continue;
            };
            for p in 0..count {
                // The next member in the circle subscribed to this topic (one exists: the
                // topic came from a subscription).
                for _ in 0..sorted.len() {
                    let m = sorted[next % sorted.len()];
                    next += 1;
                    if m.topics.iter().any(|t| t == topic) {
                        if let Some(list) = out.get_mut(&m.member_id) {
                            list.push((topic.to_owned(), p));
                        }
                        break;
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(id: &str, topics: &[&str]) -> Subscription {
        Subscription {
            member_id: id.into(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
        }
    }

    fn tp(list: &[(&str, u32)]) -> Vec<(String, u32)> {
        list.iter().map(|(t, p)| (t.to_string(), *p)).collect()
    }

    fn counts(list: &[(&str, u32)]) -> BTreeMap<String, u32> {
        list.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    #[test]
    fn test_range_matches_kafkas_documented_example() {
        // Kafka's RangeAssignor javadoc: C0, C1; t0 and t1 with 3 partitions each.
        let a = RangeAssignor.assign(
            &counts(&[("t0", 3), ("t1", 3)]),
            &[sub("C1", &["t0", "t1"]), sub("C0", &["t0", "t1"])],
        );
        assert_eq!(a["C0"], tp(&[("t0", 0), ("t0", 1), ("t1", 0), ("t1", 1)]));
        assert_eq!(a["C1"], tp(&[("t0", 2), ("t1", 2)]));
    }

    #[test]
    fn test_roundrobin_matches_kafkas_documented_examples() {
        let a = RoundRobinAssignor.assign(
            &counts(&[("t0", 3), ("t1", 3)]),
            &[sub("C0", &["t0", "t1"]), sub("C1", &["t0", "t1"])],
        );
        assert_eq!(a["C0"], tp(&[("t0", 0), ("t0", 2), ("t1", 1)]));
        assert_eq!(a["C1"], tp(&[("t0", 1), ("t1", 0), ("t1", 2)]));
        // Uneven subscriptions (the javadoc's second example).
        let a = RoundRobinAssignor.assign(
            &counts(&[("t0", 1), ("t1", 2), ("t2", 3)]),
            &[
                sub("C0", &["t0"]),
                sub("C1", &["t0", "t1"]),
                sub("C2", &["t0", "t1", "t2"]),
            ],
        );
        assert_eq!(a["C0"], tp(&[("t0", 0)]));
        assert_eq!(a["C1"], tp(&[("t1", 0)]));
        assert_eq!(a["C2"], tp(&[("t1", 1), ("t2", 0), ("t2", 1), ("t2", 2)]));
    }

    #[test]
    fn test_every_partition_goes_to_exactly_one_subscriber() {
        let parts = counts(&[("a", 7), ("b", 1), ("c", 0), ("user_1", 5)]);
        let members = [
            sub("m3", &["a", "user_1"]),
            sub("m1", &["a", "b", "missing"]),
            sub("m2", &["user_1", "c"]),
            sub("idle", &[]),
        ];
        let assignors: [&dyn Assignor; 2] = [&RangeAssignor, &RoundRobinAssignor];
        for assignor in assignors {
            let a = assignor.assign(&parts, &members);
            assert_eq!(a.len(), 4, "{}: every member has an entry", assignor.name());
            let mut seen = BTreeSet::new();
            for (member, list) in &a {
                let s = members.iter().find(|m| m.member_id == *member).unwrap();
                for (t, p) in list {
                    assert!(
                        s.topics.contains(t),
                        "{}: {member} got {t}",
                        assignor.name()
                    );
                    assert!(
                        seen.insert((t.clone(), *p)),
                        "{}: {t}-{p} twice",
                        assignor.name()
                    );
                }
            }
            assert_eq!(seen.len(), 7 + 1 + 5, "{}", assignor.name());
            assert!(a["idle"].is_empty());
        }
        assert!(RangeAssignor.assign(&parts, &[]).is_empty());
        assert!(RoundRobinAssignor.assign(&parts, &[]).is_empty());
    }
}
