//! The consumer protocol's opaque bytes: what a Kafka consumer puts in JoinGroup (its
//! subscription) and what the group leader hands out in SyncGroup (each member's
//! assignment). The coordinator only relays them; Eddy decodes them to describe groups, and
//! its embedded consumer encodes them exactly as the Java client does, so that embedded and
//! Kafka-protocol consumers can share a group.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTp;
use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTp;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::error::BrokerError;

/// The protocol type Kafka consumers join with.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// The newest version of both structures this side writes and reads in full.
const VERSION: i16 = 3;

/// A member's subscription.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    /// Topics it wants.
    pub topics: Vec<String>,
    /// Partitions it owned in the previous generation (cooperative assignors use it).
    pub owned: Vec<(String, Vec<u32>)>,
    /// The generation those were owned in, or -1.
    pub generation: i32,
    /// Assignor-specific data.
    pub user_data: Option<Bytes>,
}

/// A member's assignment: partitions by topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    /// `(topic, partitions)`.
    pub partitions: Vec<(String, Vec<u32>)>,
    /// Assignor-specific data.
    pub user_data: Option<Bytes>,
}

fn with_version<T: Encodable>(value: &T) -> Result<Bytes, BrokerError> {
    let mut buf = BytesMut::new();
    buf.put_i16(VERSION);
    value
        .encode(&mut buf, VERSION)
        .map_err(|e| BrokerError::Encode(e.to_string()))?;
    Ok(buf.freeze())
}

fn read_version(bytes: &mut Bytes, what: &str) -> Result<i16, BrokerError> {
    if bytes.remaining() < 2 {
        return Err(BrokerError::Decode(format!("{what}: too short")));
    }
    let v = bytes.get_i16();
    if v < 0 {
        return Err(BrokerError::Decode(format!("{what}: version {v}")));
    }
    // Newer versions only append fields: read what this side knows (as Kafka does).
    Ok(v.min(VERSION))
}

fn partitions(list: &[u32]) -> Vec<i32> {
    list.iter().map(|&p| p as i32).collect()
}

fn back(list: Vec<i32>) -> Vec<u32> {
    list.into_iter()
        .filter(|&p| p >= 0)
        .map(|p| p as u32)
        .collect()
}

impl Subscription {
    /// The bytes a consumer sends as its protocol metadata.
    pub fn encode(&self) -> Result<Bytes, BrokerError> {
        let s = ConsumerProtocolSubscription::default()
            .with_topics(
                self.topics
                    .iter()
                    .map(|t| StrBytes::from_string(t.clone()))
                    .collect(),
            )
            .with_user_data(self.user_data.clone())
            .with_owned_partitions(
                self.owned
                    .iter()
                    .map(|(t, ps)| {
                        OwnedTp::default()
                            .with_topic(TopicName(StrBytes::from_string(t.clone())))
                            .with_partitions(partitions(ps))
                    })
                    .collect(),
            )
            .with_generation_id(self.generation);
        with_version(&s)
    }

    /// Reads a member's protocol metadata.
    pub fn decode(mut bytes: Bytes) -> Result<Subscription, BrokerError> {
        let v = read_version(&mut bytes, "subscription")?;
        let s = ConsumerProtocolSubscription::decode(&mut bytes, v)
            .map_err(|e| BrokerError::Decode(format!("subscription: {e}")))?;
        Ok(Subscription {
            topics: s.topics.into_iter().map(|t| t.to_string()).collect(),
            owned: s
                .owned_partitions
                .into_iter()
                .map(|tp| (tp.topic.0.to_string(), back(tp.partitions)))
                .collect(),
            generation: if v >= 2 { s.generation_id } else { -1 },
            user_data: s.user_data,
        })
    }
}

impl Assignment {
    /// The bytes the leader sends for a member.
    pub fn encode(&self) -> Result<Bytes, BrokerError> {
        let a = ConsumerProtocolAssignment::default()
            .with_assigned_partitions(
                self.partitions
                    .iter()
                    .map(|(t, ps)| {
                        AssignedTp::default()
                            .with_topic(TopicName(StrBytes::from_string(t.clone())))
                            .with_partitions(partitions(ps))
                    })
                    .collect(),
            )
            .with_user_data(self.user_data.clone());
        with_version(&a)
    }

    /// Reads an assignment; empty bytes (a member the leader gave nothing) is empty.
    pub fn decode(mut bytes: Bytes) -> Result<Assignment, BrokerError> {
        if bytes.is_empty() {
            return Ok(Assignment::default());
        }
        let v = read_version(&mut bytes, "assignment")?;
        let a = ConsumerProtocolAssignment::decode(&mut bytes, v)
            .map_err(|e| BrokerError::Decode(format!("assignment: {e}")))?;
        Ok(Assignment {
            partitions: a
                .assigned_partitions
                .into_iter()
                .map(|tp| (tp.topic.0.to_string(), back(tp.partitions)))
                .collect(),
            user_data: a.user_data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_round_trip() -> Result<(), BrokerError> {
        let s = Subscription {
            topics: vec!["a".into(), "b".into()],
            owned: vec![("a".into(), vec![0, 2])],
            generation: 4,
            user_data: Some(Bytes::from_static(b"u")),
        };
        assert_eq!(Subscription::decode(s.encode()?)?, s);
        Ok(())
    }

    #[test]
    fn assignment_round_trip_and_empty() -> Result<(), BrokerError> {
        let a = Assignment {
            partitions: vec![("a".into(), vec![1]), ("b".into(), vec![0, 3])],
            user_data: None,
        };
        assert_eq!(Assignment::decode(a.encode()?)?, a);
        assert_eq!(Assignment::decode(Bytes::new())?, Assignment::default());
        Ok(())
    }

    #[test]
    fn version_0_subscription_as_old_clients_send_it() -> Result<(), BrokerError> {
        // version 0, topics ["t"], user data null
        let raw: &[u8] = &[0, 0, 0, 0, 0, 1, 0, 1, b't', 0xff, 0xff, 0xff, 0xff];
        let s = Subscription::decode(Bytes::copy_from_slice(raw))?;
        assert_eq!(s.topics, vec!["t".to_string()]);
        assert_eq!(s.generation, -1);
        Ok(())
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(Subscription::decode(Bytes::from_static(&[0, 3, 0, 0, 0, 9])).is_err());
        assert!(Assignment::decode(Bytes::from_static(&[0])).is_err());
    }
}
