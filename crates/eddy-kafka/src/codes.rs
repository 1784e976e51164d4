//! Every Eddy error as the Kafka error code a client expects.

use eddy_broker::BrokerError;
use eddy_log::LogError;
use kafka_protocol::error::ResponseError as E;

/// The code for an error of a partition request (produce, fetch, list offsets).
pub(crate) fn partition(e: &BrokerError) -> i16 {
    code(e, E::NotLeaderOrFollower)
}

/// The code for an error of a group request; `UnknownTopic` there means
/// `__consumer_offsets` does not exist yet.
pub(crate) fn group(e: &BrokerError) -> i16 {
    match e {
        BrokerError::UnknownTopic(_)
        | BrokerError::UnknownPartition { .. }
        | BrokerError::LeaderNotAvailable { .. } => E::CoordinatorNotAvailable.code(),
        BrokerError::NotLeader { .. } => E::NotCoordinator.code(),
        _ => code(e, E::CoordinatorNotAvailable),
    }
}

/// The code for an error of an admin request.
pub(crate) fn admin(e: &BrokerError) -> i16 {
    code(e, E::UnknownServerError)
}

/// `stopped`: the code for an actor that stopped mid-request (a leader or coordinator
/// moving), which the client should retry elsewhere.
fn code(e: &BrokerError, stopped: E) -> i16 {
    let c = match e {
        BrokerError::InvalidTopicName(_) => E::InvalidTopicException,
        BrokerError::InvalidTopicConfig { reason, .. } => {
            if reason.contains("partition") {
                E::InvalidPartitions
            } else if reason.contains("replication") {
                E::InvalidReplicationFactor
            } else {
                E::InvalidConfig
            }
        }
        BrokerError::InvalidClusterConfig(_) => E::InvalidConfig,
        BrokerError::UnknownTopic(_) | BrokerError::UnknownPartition { .. } => {
            E::UnknownTopicOrPartition
        }
        BrokerError::TopicExists(_) => E::TopicAlreadyExists,
        BrokerError::PolicyViolation(_) => E::PolicyViolation,
        BrokerError::NotLeader { .. } | BrokerError::LeaderChanged { .. } => E::NotLeaderOrFollower,
        BrokerError::LeaderNotAvailable { .. } => E::LeaderNotAvailable,
        BrokerError::OutOfOrderSequence { .. } => E::OutOfOrderSequenceNumber,
        BrokerError::ProducerFenced { .. } => E::InvalidProducerEpoch,
        BrokerError::InvalidRecords { .. } => E::InvalidRecord,
        // The same batch is being written right now: retrying finds it written.
        BrokerError::DuplicateInFlight { .. } => E::RequestTimedOut,
        BrokerError::FencedLeaderEpoch { .. } => E::FencedLeaderEpoch,
        BrokerError::NotEnoughReplicas { .. } => E::NotEnoughReplicas,
        BrokerError::BrokerNotAvailable(_) => E::BrokerNotAvailable,
        BrokerError::Timeout(_) => E::RequestTimedOut,
        BrokerError::Stopped(_) => stopped,
        BrokerError::Log(e) => match &*e.0 {
            LogError::InvalidBatch { .. } => E::CorruptMessage,
            LogError::OffsetOutOfRange { .. } => E::OffsetOutOfRange,
            LogError::UnknownPartition(_) => E::UnknownTopicOrPartition,
            LogError::NonContiguousReplicaAppend { .. } => E::NotLeaderOrFollower,
            LogError::MapFull { .. } | LogError::DiskFull { .. } => E::KafkaStorageError,
            _ => E::KafkaStorageError,
        },
        BrokerError::Metadata(_) => E::KafkaStorageError,
        BrokerError::UnknownMember { .. } => E::UnknownMemberId,
        BrokerError::IllegalGeneration { .. } => E::IllegalGeneration,
        BrokerError::RebalanceInProgress(_) => E::RebalanceInProgress,
        BrokerError::InconsistentGroupProtocol { .. } => E::InconsistentGroupProtocol,
        BrokerError::MemberIdRequired { .. } => E::MemberIdRequired,
        BrokerError::InvalidSessionTimeout { .. } => E::InvalidSessionTimeout,
        BrokerError::NonEmptyGroup(_) => E::NonEmptyGroup,
        BrokerError::GroupNotFound(_) => E::GroupIdNotFound,
        BrokerError::InvalidGroupId(_) => E::InvalidGroupId,
        BrokerError::NotCoordinator { .. } => E::NotCoordinator,
        BrokerError::CoordinatorLoading(_) => E::CoordinatorLoadInProgress,
        BrokerError::Encode(_) | BrokerError::Decode(_) => E::UnknownServerError,
    };
    c.code()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_codes_are_kafkas() {
        let not_leader = BrokerError::NotLeader {
            topic: eddy_types::TopicName::new("t").unwrap_or_else(|_| unreachable!()),
            partition: 0,
            broker: eddy_types::BrokerId(1),
            leader: Some(eddy_types::BrokerId(0)),
        };
        assert_eq!(partition(&not_leader), 6);
        assert_eq!(group(&not_leader), 16);
        assert_eq!(partition(&BrokerError::UnknownTopic("x".into())), 3);
        assert_eq!(group(&BrokerError::CoordinatorLoading("g".into())), 14);
        assert_eq!(
            group(&BrokerError::MemberIdRequired {
                group: "g".into(),
                member: "m".into()
            }),
            79
        );
        assert_eq!(partition(&BrokerError::Stopped("x".into())), 6);
        assert_eq!(group(&BrokerError::Stopped("x".into())), 15);
    }
}
