//! The APIs and versions this listener serves, and only those are advertised.
//!
//! Each range stays inside what `kafka-protocol` encodes and decodes, and stops before a
//! version whose semantics Eddy does not implement (topic ids instead of names in Produce
//! v13 and Fetch v13+, KIP-848's member epochs in OffsetCommit v9+, batched groups in
//! OffsetFetch v8+).

use kafka_protocol::messages::ApiKey;

/// `(api, min version, max version)` for every API served.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 6),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::DescribeCluster, 0, 1),
];

/// The range served for `key`, if it is.
pub(crate) fn supported(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, lo, hi)| (*lo, *hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_every_range_is_within_what_the_codec_knows() {
        for (key, lo, hi) in SUPPORTED {
            let codec = key.valid_versions();
            assert!(
                codec.min <= *lo && *hi <= codec.max && lo <= hi,
                "{key:?} {lo}..={hi} outside {codec:?}"
            );
        }
    }
}
