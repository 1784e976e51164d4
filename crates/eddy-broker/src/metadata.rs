//! The cluster metadata (topics, replica assignments, leaders, leader epochs, in-sync sets) and
//! every change the controller makes to it. Pure: no actors, no I/O; the controller persists
//! what these functions change and publishes the result.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use eddy_types::{BrokerId, PartitionId, TopicName};
use serde::{Deserialize, Serialize};

use crate::config::{NewTopic, TopicConfig, TopicDefaults};
use crate::error::BrokerError;

/// The most partitions one request may create (guards against a typo allocating millions).
pub const MAX_PARTITIONS_PER_TOPIC: u32 = 100_000;

/// One partition of a topic: where its replicas live and who leads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMeta {
    /// The partition's index in its topic (0..n).
    pub index: u32,
    /// The storage id of its replicas in every broker's log directory.
    pub id: PartitionId,
    /// Brokers holding a replica, the preferred leader first.
    pub replicas: Vec<BrokerId>,
    /// The current leader; `None` when no in-sync replica is up (the partition is offline).
    pub leader: Option<BrokerId>,
    /// Bumped at every leader change (Kafka's leader epoch, stamped into every batch).
    pub leader_epoch: i32,
    /// In-sync replicas, in replica order.
    pub isr: Vec<BrokerId>,
    /// Bumped at every change of this record (leader or ISR).
    pub partition_epoch: i32,
}

impl PartitionMeta {
    /// Tells whether fewer replicas are in sync than exist.
    pub fn under_replicated(&self) -> bool {
        self.isr.len() < self.replicas.len()
    }
}

/// A topic with its settings and partitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    /// The topic's name.
    pub name: TopicName,
    /// Its settings.
    pub config: TopicConfig,
    /// Its partitions, by index.
    pub partitions: Vec<PartitionMeta>,
    /// The metadata version at this record's last change; on load, the highest copy wins.
    pub version: u64,
}

/// The cluster-wide record stored next to the topics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ClusterRecord {
    pub(crate) name: String,
    pub(crate) brokers: u32,
    pub(crate) next_partition_id: u32,
    pub(crate) version: u64,
    #[serde(default)]
    pub(crate) next_producer_id: i64,
}

/// Everything the controller knows about the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMetadata {
    /// The cluster's name.
    pub name: String,
    /// Number of brokers (ids 0..brokers).
    pub brokers: u32,
    /// Brokers that are up now (not persisted).
    pub alive: BTreeSet<BrokerId>,
    /// Topics by name. Each is behind an `Arc` so publishing a new snapshot copies pointers,
    /// not partitions.
    pub topics: BTreeMap<TopicName, Arc<TopicMeta>>,
    /// The storage id the next new partition gets.
    pub next_partition_id: u32,
    /// The id the next idempotent producer gets (Kafka's InitProducerId).
    pub next_producer_id: i64,
    /// Bumped at every change.
    pub version: u64,
    /// Partition replicas this node may hold, over all its brokers (`max_partitions`);
    /// creating past it is a policy violation. Not persisted.
    pub replica_limit: u64,
    /// Partitions and replicas of all topics, kept with `topics` (see [`Self::recount`]).
    partition_count: u64,
    replica_count: u64,
}

/// What a change did, for the controller to persist and announce.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Topics whose record changed (persist them).
    pub topics: BTreeSet<TopicName>,
    /// Partitions whose leader or ISR changed.
    pub partitions: Vec<(TopicName, u32)>,
    /// Partitions that got a new leader because of a failure or a return.
    pub elections: u32,
}

impl Changes {
    fn touch(&mut self, topic: &TopicName, index: u32) {
        self.topics.insert(topic.clone());
        self.partitions.push((topic.clone(), index));
    }
}

/// Replicas of a topic's partitions.
fn replicas_of(t: &TopicMeta) -> u64 {
    t.partitions.iter().map(|p| p.replicas.len() as u64).sum()
}

impl ClusterMetadata {
    /// An empty cluster with `brokers` brokers, all alive.
    pub fn new(name: impl Into<String>, brokers: u32) -> ClusterMetadata {
        ClusterMetadata {
            name: name.into(),
            brokers,
            alive: (0..brokers).map(BrokerId).collect(),
            topics: BTreeMap::new(),
            next_partition_id: 0,
            next_producer_id: 0,
            version: 0,
            replica_limit: u64::MAX,
            partition_count: 0,
            replica_count: 0,
        }
    }

    /// Recounts partitions and replicas after `topics` was filled directly (at load).
    pub fn recount(&mut self) {
        self.partition_count = self
            .topics
            .values()
            .map(|t| t.partitions.len() as u64)
            .sum();
        self.replica_count = self.topics.values().map(|t| replicas_of(t)).sum();
    }

    /// Partitions of all topics.
    pub fn partition_count(&self) -> u64 {
        self.partition_count
    }

    /// Partition replicas of all topics.
    pub fn replica_count(&self) -> u64 {
        self.replica_count
    }

    /// Refuses `count` more partitions of `rf` replicas past `replica_limit`.
    fn check_room(&self, topic: &str, count: u32, rf: u32) -> Result<(), BrokerError> {
        let asked = u64::from(count) * u64::from(rf);
        if self.replica_count.saturating_add(asked) > self.replica_limit {
            return Err(BrokerError::PolicyViolation(format!(
                "{topic}: {count} partitions of {rf} replicas would make {} partition replicas on this node; max_partitions is {} ({} used)",
                self.replica_count.saturating_add(asked),
                self.replica_limit,
                self.replica_count
            )));
        }
        Ok(())
    }

    pub(crate) fn record(&self) -> ClusterRecord {
        ClusterRecord {
            name: self.name.clone(),
            brokers: self.brokers,
            next_partition_id: self.next_partition_id,
            version: self.version,
            next_producer_id: self.next_producer_id,
        }
    }

    /// The topic named `name`.
    pub fn topic(&self, name: &str) -> Result<&Arc<TopicMeta>, BrokerError> {
        self.topics
            .get(name)
            .ok_or_else(|| BrokerError::UnknownTopic(name.to_owned()))
    }

    /// One partition of a topic.
    pub fn partition(&self, topic: &str, index: u32) -> Result<&PartitionMeta, BrokerError> {
        let t = self.topic(topic)?;
        t.partitions
            .get(index as usize)
            .ok_or_else(|| BrokerError::UnknownPartition {
                topic: t.name.clone(),
                partition: index,
            })
    }

    fn bump(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    /// Assigns `count` new partitions, starting at index `first`, round-robin over the brokers.
    /// The preferred leader rotates with the cluster's total partition count, so leaders stay
    /// balanced across topics; followers are the next brokers in id order.
    fn assign(
        &mut self,
        first: u32,
        count: u32,
        rf: u32,
    ) -> Result<Vec<PartitionMeta>, BrokerError> {
        let n = self.brokers;
        let total = self.partition_count;
        let mut out = Vec::with_capacity(count as usize);
        for i in 0..count {
            let start = ((total + u64::from(i)) % u64::from(n)) as u32;
            let replicas: Vec<BrokerId> = (0..rf).map(|k| BrokerId((start + k) % n)).collect();
            let isr: Vec<BrokerId> = replicas
                .iter()
                .copied()
                .filter(|b| self.alive.contains(b))
                .collect();
            let id = PartitionId(self.next_partition_id);
            self.next_partition_id = self.next_partition_id.checked_add(1).ok_or_else(|| {
                BrokerError::InvalidClusterConfig("partition ids exhausted".into())
            })?;
            out.push(PartitionMeta {
                index: first + i,
                id,
                leader: isr.first().copied(),
                replicas,
                leader_epoch: 0,
                isr,
                partition_epoch: 0,
            });
        }
        if out.iter().any(|p| p.leader.is_none()) {
            return Err(BrokerError::InvalidClusterConfig(
                "no broker holding a replica is up".into(),
            ));
        }
        Ok(out)
    }

    /// Creates a topic; validates its name and settings against the cluster.
    pub fn create_topic(
        &mut self,
        request: &NewTopic,
        defaults: &TopicDefaults,
    ) -> Result<Arc<TopicMeta>, BrokerError> {
        let name = TopicName::new(request.name.clone())?;
        if self.topics.contains_key(name.as_str()) {
            return Err(BrokerError::TopicExists(name));
        }
        let invalid = |reason: String| BrokerError::InvalidTopicConfig {
            topic: name.to_string(),
            reason,
        };
        let partitions = request.partitions.unwrap_or(defaults.partitions);
        if partitions == 0 || partitions > MAX_PARTITIONS_PER_TOPIC {
            return Err(invalid(format!(
                "{partitions} partitions; 1 to {MAX_PARTITIONS_PER_TOPIC} are allowed"
            )));
        }
        let rf = request
            .replication_factor
            .unwrap_or_else(|| defaults.replication_factor.min(self.brokers));
        if rf == 0 || rf > self.brokers {
            return Err(invalid(format!(
                "replication factor {rf}; the cluster has {} brokers",
                self.brokers
            )));
        }
        let min_isr = request
            .min_insync_replicas
            .unwrap_or_else(|| defaults.min_insync_replicas.min(rf));
        if min_isr == 0 || min_isr > rf {
            return Err(invalid(format!(
                "min.insync.replicas {min_isr}; 1 to the replication factor {rf} are allowed"
            )));
        }
        let retention_ms = request.retention_ms.unwrap_or(defaults.retention_ms);
        if retention_ms.is_some_and(|ms| ms <= 0) {
            return Err(invalid("retention.ms must be positive (or unset)".into()));
        }
        let retention_bytes = request.retention_bytes.unwrap_or(defaults.retention_bytes);
        self.check_room(name.as_str(), partitions, rf)?;
        let saved_next = self.next_partition_id;
        let parts = match self.assign(0, partitions, rf) {
            Ok(p) => p,
            Err(e) => {
                self.next_partition_id = saved_next;
                return Err(e);
            }
        };
        let version = self.bump();
        let topic = Arc::new(TopicMeta {
            name: name.clone(),
            config: TopicConfig {
                min_insync_replicas: min_isr,
                retention_ms,
                retention_bytes,
            },
            partitions: parts,
            version,
        });
        self.partition_count += u64::from(partitions);
        self.replica_count += u64::from(partitions) * u64::from(rf);
        self.topics.insert(name, topic.clone());
        Ok(topic)
    }

    /// Hands out a new idempotent producer id.
    pub fn allocate_producer_id(&mut self) -> i64 {
        let id = self.next_producer_id;
        self.next_producer_id += 1;
        self.bump();
        id
    }

    /// Grows a topic to `total` partitions; returns the new ones.
    pub fn add_partitions(
        &mut self,
        topic: &str,
        total: u32,
    ) -> Result<Vec<PartitionMeta>, BrokerError> {
        let t = self.topic(topic)?.clone();
        let have = t.partitions.len() as u32;
        if total <= have || total > MAX_PARTITIONS_PER_TOPIC {
            return Err(BrokerError::InvalidTopicConfig {
                topic: topic.to_owned(),
                reason: format!(
                    "{total} partitions asked; it has {have}, and at most {MAX_PARTITIONS_PER_TOPIC} are allowed"
                ),
            });
        }
        let rf = t.partitions.first().map_or(1, |p| p.replicas.len() as u32);
        self.check_room(topic, total - have, rf)?;
        let saved_next = self.next_partition_id;
        let new = match self.assign(have, total - have, rf) {
            Ok(p) => p,
            Err(e) => {
                self.next_partition_id = saved_next;
                return Err(e);
            }
        };
        let version = self.bump();
        self.partition_count += u64::from(total - have);
        self.replica_count += u64::from(total - have) * u64::from(rf);
        let mut t = (*t).clone();
        t.partitions.extend(new.iter().cloned());
        t.version = version;
        self.topics.insert(t.name.clone(), Arc::new(t));
        Ok(new)
    }

    /// Removes a topic; returns it so its partitions can be deleted from the logs.
    pub fn delete_topic(&mut self, topic: &str) -> Result<Arc<TopicMeta>, BrokerError> {
        let t = self
            .topics
            .remove(topic)
            .ok_or_else(|| BrokerError::UnknownTopic(topic.to_owned()))?;
        self.partition_count = self
            .partition_count
            .saturating_sub(t.partitions.len() as u64);
        self.replica_count = self.replica_count.saturating_sub(replicas_of(&t));
        self.bump();
        Ok(t)
    }

    /// Applies `f` to every partition, rewriting the topics it changes.
    fn update_partitions(
        &mut self,
        mut f: impl FnMut(&mut PartitionMeta, &BTreeSet<BrokerId>) -> Option<bool>,
    ) -> Changes {
        let mut changes = Changes::default();
        let alive = self.alive.clone();
        let version = self.version + 1;
        for topic in self.topics.values_mut() {
            let mut copy: Option<TopicMeta> = None;
            for i in 0..topic.partitions.len() {
                let mut p = match &copy {
                    Some(c) => c.partitions[i].clone(),
                    None => topic.partitions[i].clone(),
                };
                let Some(elected) = f(&mut p, &alive) else {
                    continue;
                };
                p.partition_epoch += 1;
                if elected {
                    p.leader_epoch += 1;
                    changes.elections += 1;
                }
                let c = copy.get_or_insert_with(|| (**topic).clone());
                changes.touch(&c.name, p.index);
                c.partitions[i] = p;
            }
            if let Some(mut c) = copy {
                c.version = version;
                *topic = Arc::new(c);
            }
        }
        if !changes.topics.is_empty() {
            self.version = version;
        }
        changes
    }

    /// A broker went down: it leaves every ISR (unless it is the last member, which Kafka keeps
    /// so that it can lead again), and the partitions it led get a new leader from their ISR,
    /// with a new leader epoch. A partition whose ISR has no live member is left without leader.
    pub fn broker_failed(&mut self, broker: BrokerId) -> Changes {
        self.alive.remove(&broker);
        self.update_partitions(|p, alive| {
            if !p.replicas.contains(&broker) {
                return None;
            }
            let was_leader = p.leader == Some(broker);
            let in_isr = p.isr.contains(&broker);
            if !was_leader && !in_isr {
                return None;
            }
            if p.isr.len() > 1 {
                p.isr.retain(|b| *b != broker);
            }
            if was_leader {
                p.leader = p.isr.iter().copied().find(|b| alive.contains(b));
            }
            Some(was_leader)
        })
    }

    /// A broker came back: partitions left without a leader whose ISR holds it elect it.
    /// It rejoins other ISRs through its leaders once it has caught up.
    pub fn broker_returned(&mut self, broker: BrokerId) -> Changes {
        self.alive.insert(broker);
        self.update_partitions(|p, _| {
            if p.leader.is_none() && p.isr.contains(&broker) {
                p.leader = Some(broker);
                Some(true)
            } else {
                None
            }
        })
    }

    /// The partition, if `leader` leads it in `leader_epoch`; else `FencedLeaderEpoch`.
    fn leaders_partition(
        &self,
        topic: &str,
        index: u32,
        leader: BrokerId,
        leader_epoch: i32,
    ) -> Result<PartitionMeta, BrokerError> {
        let p = self.partition(topic, index)?;
        if p.leader != Some(leader) || p.leader_epoch != leader_epoch {
            return Err(BrokerError::FencedLeaderEpoch {
                topic: self.topic(topic)?.name.clone(),
                partition: index,
                requested: leader_epoch,
                current: p.leader_epoch,
            });
        }
        Ok(p.clone())
    }

    /// A leader that cannot keep its log in step with what it handed to its followers (its
    /// append failed after they may have copied it) asks for a new epoch: it stays leader, and
    /// followers cut what they copied past its log end before fetching under the new epoch
    /// (KIP-101). Refused when the leader or epoch is stale.
    pub fn new_leader_epoch(
        &mut self,
        topic: &str,
        index: u32,
        leader: BrokerId,
        leader_epoch: i32,
    ) -> Result<Changes, BrokerError> {
        self.leaders_partition(topic, index, leader, leader_epoch)?;
        let mut c = self.update_one(topic, index, |_| true)?;
        c.elections = 0; // the same leader: no election
        Ok(c)
    }

    /// The cluster starts: every partition with a leader gets a new leader epoch. A leader
    /// hands batches to followers before its own commit, so after a crash a follower may hold
    /// records its leader lost; the new epoch makes the follower cut them before it fetches,
    /// before the leader can write other records at the same offsets.
    pub fn restarted(&mut self) -> Changes {
        let mut c = self.update_partitions(|p, _| p.leader.is_some().then_some(true));
        c.elections = 0; // the same leaders: no election
        c
    }

    /// A leader's request to change a partition's ISR (Kafka's AlterPartition). Refused when
    /// the leader or epoch is stale, or when the new set is not a set of live replicas holding
    /// the leader.
    pub fn alter_isr(
        &mut self,
        topic: &str,
        index: u32,
        leader: BrokerId,
        leader_epoch: i32,
        isr: &[BrokerId],
    ) -> Result<Changes, BrokerError> {
        let p = self.leaders_partition(topic, index, leader, leader_epoch)?;
        let name = self.topic(topic)?.name.clone();
        let added_dead = isr
            .iter()
            .any(|b| !p.isr.contains(b) && !self.alive.contains(b));
        if !isr.contains(&leader) || isr.iter().any(|b| !p.replicas.contains(b)) || added_dead {
            return Err(BrokerError::InvalidTopicConfig {
                topic: name.to_string(),
                reason: format!("isr {isr:?} is not a set of live replicas holding the leader"),
            });
        }
        let wanted: BTreeSet<BrokerId> = isr.iter().copied().collect();
        self.update_one(topic, index, |q| {
            q.isr = q
                .replicas
                .iter()
                .copied()
                .filter(|b| wanted.contains(b))
                .collect();
            false
        })
    }

    /// Changes one partition (`f` returns whether it elected a leader): a copy of its topic
    /// only, not a walk over every partition of the cluster.
    fn update_one(
        &mut self,
        topic: &str,
        index: u32,
        f: impl FnOnce(&mut PartitionMeta) -> bool,
    ) -> Result<Changes, BrokerError> {
        let version = self.version + 1;
        let t = self.topic(topic)?.clone();
        let mut copy = (*t).clone();
        let Some(p) = copy.partitions.get_mut(index as usize) else {
            return Err(BrokerError::UnknownPartition {
                topic: t.name.clone(),
                partition: index,
            });
        };
        let mut changes = Changes::default();
        p.partition_epoch += 1;
        if f(p) {
            p.leader_epoch += 1;
            changes.elections += 1;
        }
        changes.touch(&copy.name, index);
        copy.version = version;
        self.topics.insert(copy.name.clone(), Arc::new(copy));
        self.version = version;
        Ok(changes)
    }
}

/// The published metadata, read by every broker.
///
/// The controller is its only writer; readers take a cheap snapshot (`Arc` clone).
#[derive(Debug, Clone)]
pub struct MetadataView {
    current: Arc<RwLock<Arc<ClusterMetadata>>>,
}

impl MetadataView {
    pub(crate) fn new(metadata: ClusterMetadata) -> MetadataView {
        MetadataView {
            current: Arc::new(RwLock::new(Arc::new(metadata))),
        }
    }

    /// The latest published metadata.
    pub fn snapshot(&self) -> Arc<ClusterMetadata> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub(crate) fn publish(&self, metadata: ClusterMetadata) {
        let next = Arc::new(metadata);
        match self.current.write() {
            Ok(mut g) => *g = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(brokers: u32) -> ClusterMetadata {
        ClusterMetadata::new("t", brokers)
    }

    fn topic(name: &str, partitions: u32) -> NewTopic {
        NewTopic::new(name).partitions(partitions)
    }

    #[test]
    fn test_replicas_round_robin_and_leaders_balanced() {
        let mut m = cluster(3);
        let d = TopicDefaults::default();
        let a = m.create_topic(&topic("a", 3), &d).unwrap();
        let leaders: Vec<u32> = a.partitions.iter().map(|p| p.leader.unwrap().0).collect();
        assert_eq!(leaders, vec![0, 1, 2]);
        assert_eq!(
            a.partitions[1].replicas,
            vec![BrokerId(1), BrokerId(2), BrokerId(0)]
        );
        // A second one-partition topic does not pile onto broker 0 again.
        let b = m.create_topic(&topic("b", 1), &d).unwrap();
        let c = m.create_topic(&topic("c", 1), &d).unwrap();
        assert_eq!(b.partitions[0].leader, Some(BrokerId(0)));
        assert_eq!(c.partitions[0].leader, Some(BrokerId(1)));
        let ids: Vec<u32> = [&a, &b, &c]
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.id.0))
            .collect();
        assert_eq!(ids, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn test_create_topic_validates() {
        let mut m = cluster(3);
        let d = TopicDefaults::default();
        assert!(matches!(
            m.create_topic(&topic("bad name", 1), &d),
            Err(BrokerError::InvalidTopicName(_))
        ));
        assert!(m.create_topic(&topic("x", 0), &d).is_err());
        assert!(m
            .create_topic(&NewTopic::new("x").replication_factor(4), &d)
            .is_err());
        assert!(m
            .create_topic(
                &NewTopic::new("x")
                    .replication_factor(2)
                    .min_insync_replicas(3),
                &d
            )
            .is_err());
        assert!(m.create_topic(&topic("x", 1), &d).is_ok());
        assert!(matches!(
            m.create_topic(&topic("x", 1), &d),
            Err(BrokerError::TopicExists(_))
        ));
        // Failed requests consumed no partition ids.
        assert_eq!(m.next_partition_id, 1);
    }

    #[test]
    fn test_leader_failure_elects_from_isr_and_bumps_epoch() {
        let mut m = cluster(3);
        let t = m
            .create_topic(&topic("a", 3), &TopicDefaults::default())
            .unwrap();
        assert_eq!(t.partitions[0].leader, Some(BrokerId(0)));
        let ch = m.broker_failed(BrokerId(0));
        assert_eq!(ch.elections, 1);
        assert_eq!(ch.partitions.len(), 3, "broker 0 left every ISR");
        let p0 = m.partition("a", 0).unwrap();
        assert_eq!(p0.leader, Some(BrokerId(1)));
        assert_eq!(p0.leader_epoch, 1);
        assert_eq!(p0.isr, vec![BrokerId(1), BrokerId(2)]);
        let p1 = m.partition("a", 1).unwrap();
        assert_eq!((p1.leader, p1.leader_epoch), (Some(BrokerId(1)), 0));
        assert_eq!(p1.partition_epoch, 1);
        // Returning does not re-elect a partition that has a leader.
        let back = m.broker_returned(BrokerId(0));
        assert_eq!(back.elections, 0);
        assert!(m.alive.contains(&BrokerId(0)));
    }

    #[test]
    fn test_last_isr_member_is_kept_and_leads_again_when_back() {
        let mut m = cluster(2);
        m.create_topic(&topic("a", 1), &TopicDefaults::default())
            .unwrap();
        // Shrink to the leader alone, then lose it: nobody may lead.
        m.alter_isr("a", 0, BrokerId(0), 0, &[BrokerId(0)]).unwrap();
        m.broker_failed(BrokerId(0));
        let p = m.partition("a", 0).unwrap();
        assert_eq!((p.leader, p.isr.clone()), (None, vec![BrokerId(0)]));
        // Broker 1 (out of sync) coming back changes nothing; broker 0 leads again.
        assert_eq!(m.broker_returned(BrokerId(1)).elections, 0);
        assert_eq!(m.broker_returned(BrokerId(0)).elections, 1);
        let p = m.partition("a", 0).unwrap();
        assert_eq!((p.leader, p.leader_epoch), (Some(BrokerId(0)), 2));
    }

    #[test]
    fn test_new_epochs_keep_leaders_and_refuse_stale_askers() {
        let mut m = cluster(3);
        m.create_topic(&topic("a", 3), &TopicDefaults::default())
            .unwrap();
        let leader = m.partition("a", 1).unwrap().leader.unwrap();
        assert!(
            m.new_leader_epoch("a", 1, leader, 5).is_err(),
            "stale epoch"
        );
        let other = BrokerId((leader.0 + 1) % 3);
        assert!(m.new_leader_epoch("a", 1, other, 0).is_err(), "not leader");
        let c = m.new_leader_epoch("a", 1, leader, 0).unwrap();
        assert_eq!((c.elections, c.partitions.len()), (0, 1));
        let p = m.partition("a", 1).unwrap();
        assert_eq!((p.leader, p.leader_epoch), (Some(leader), 1));
        assert_eq!(m.partition("a", 0).unwrap().leader_epoch, 0);
        // A start bumps every led partition, leaders unchanged; a leaderless one is left.
        let c = m.restarted();
        assert_eq!((c.elections, c.partitions.len()), (0, 3));
        let epochs: Vec<i32> = (0..3)
            .map(|i| m.partition("a", i).unwrap().leader_epoch)
            .collect();
        assert_eq!(epochs, vec![1, 2, 1]);
        for b in 0..3 {
            m.broker_failed(BrokerId(b));
        }
        let p = m.partition("a", 0).unwrap().clone();
        assert_eq!(p.leader, None);
        assert!(m.restarted().partitions.is_empty());
        assert_eq!(m.partition("a", 0).unwrap().leader_epoch, p.leader_epoch);
    }

    #[test]
    fn test_alter_isr_checks_leader_epoch_and_members() {
        let mut m = cluster(3);
        m.create_topic(&topic("a", 1), &TopicDefaults::default())
            .unwrap();
        let leader = BrokerId(0);
        assert!(
            m.alter_isr("a", 0, leader, 7, &[leader]).is_err(),
            "stale epoch"
        );
        assert!(
            m.alter_isr("a", 0, BrokerId(1), 0, &[BrokerId(1)]).is_err(),
            "not leader"
        );
        assert!(
            m.alter_isr("a", 0, leader, 0, &[BrokerId(1)]).is_err(),
            "leader missing"
        );
        assert!(m
            .alter_isr("a", 0, leader, 0, &[leader, BrokerId(5)])
            .is_err());
        let ch = m
            .alter_isr("a", 0, leader, 0, &[BrokerId(2), leader])
            .unwrap();
        assert_eq!(ch.partitions, vec![(TopicName::new("a").unwrap(), 0)]);
        assert_eq!(m.partition("a", 0).unwrap().isr, vec![leader, BrokerId(2)]);
        // A dead broker cannot be added back.
        m.broker_failed(BrokerId(1));
        assert!(m
            .alter_isr("a", 0, leader, 0, &[leader, BrokerId(1), BrokerId(2)])
            .is_err());
    }

    #[test]
    fn test_add_partitions_and_delete() {
        let mut m = cluster(3);
        let d = TopicDefaults::default();
        m.create_topic(&topic("a", 2), &d).unwrap();
        assert!(m.add_partitions("a", 2).is_err());
        let new = m.add_partitions("a", 4).unwrap();
        assert_eq!(new.iter().map(|p| p.index).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(m.topic("a").unwrap().partitions.len(), 4);
        let gone = m.delete_topic("a").unwrap();
        assert_eq!(gone.partitions.len(), 4);
        assert!(matches!(m.topic("a"), Err(BrokerError::UnknownTopic(_))));
    }

    #[test]
    fn test_replica_limit_refuses_and_keeps_what_exists() {
        let mut m = cluster(3);
        m.replica_limit = 10;
        let d = TopicDefaults::default();
        // 3 partitions of 3 replicas: 9 of 10.
        m.create_topic(&topic("a", 3), &d).unwrap();
        assert_eq!(m.replica_count(), 9);
        let version = m.version;
        let next = m.next_partition_id;
        let err = m.create_topic(&topic("b", 1), &d).unwrap_err();
        assert!(matches!(err, BrokerError::PolicyViolation(_)), "{err}");
        assert!(err.to_string().contains("max_partitions is 10"), "{err}");
        assert!(matches!(
            m.add_partitions("a", 4),
            Err(BrokerError::PolicyViolation(_))
        ));
        // Nothing changed: no topic, no partition id, no version.
        assert!(m.topic("b").is_err());
        assert_eq!(m.topic("a").unwrap().partitions.len(), 3);
        assert_eq!((m.version, m.next_partition_id), (version, next));
        // One replica fits.
        m.create_topic(&NewTopic::new("c").replication_factor(1), &d)
            .unwrap();
        assert_eq!(m.replica_count(), 10);
        // Deleting frees room, and a recount agrees with the running count.
        m.delete_topic("a").unwrap();
        assert_eq!(m.replica_count(), 1);
        m.create_topic(&topic("b", 3), &d).unwrap();
        let counted = m.replica_count();
        m.recount();
        assert_eq!(m.replica_count(), counted);
    }
}
