//! A frame to a request: the fixed header fields, the check that the API and version are
//! served, the header and the body decoded by `kafka-protocol`. Nothing here touches the
//! cluster, so [`decode_request`] is what a fuzzer drives.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;

use crate::error::KafkaError;
use crate::versions::supported;

/// A decoded request of a served API, with its header.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) header: RequestHeader,
    pub(crate) body: Body,
}

/// The request bodies served.
#[derive(Debug)]
pub(crate) enum Body {
    ApiVersions,
    Metadata(MetadataRequest),
    CreateTopics(CreateTopicsRequest),
    DeleteTopics(DeleteTopicsRequest),
    CreatePartitions(CreatePartitionsRequest),
    DescribeConfigs(DescribeConfigsRequest),
    DescribeCluster,
    InitProducerId(InitProducerIdRequest),
    Produce(ProduceRequest),
    Fetch(FetchRequest),
    ListOffsets(ListOffsetsRequest),
    DeleteRecords(DeleteRecordsRequest),
    OffsetForLeaderEpoch(OffsetForLeaderEpochRequest),
    FindCoordinator(FindCoordinatorRequest),
    JoinGroup(JoinGroupRequest),
    SyncGroup(SyncGroupRequest),
    Heartbeat(HeartbeatRequest),
    LeaveGroup(LeaveGroupRequest),
    OffsetCommit(OffsetCommitRequest),
    OffsetFetch(OffsetFetchRequest),
    DescribeGroups(DescribeGroupsRequest),
    ListGroups(ListGroupsRequest),
    DeleteGroups(DeleteGroupsRequest),
}

/// What a frame is, from its first 8 bytes.
#[derive(Debug)]
pub(crate) enum Frame {
    /// A served API at a served version.
    Served {
        key: ApiKey,
        version: i16,
        correlation_id: i32,
    },
    /// ApiVersions at a version this server does not know: answered with v0 (KIP-511).
    UnknownApiVersions { correlation_id: i32 },
}

/// Reads the API key, version and correlation id (the first 8 bytes of every request
/// header) and checks the API and version are served.
pub(crate) fn classify(frame: &Bytes) -> Result<Frame, KafkaError> {
    if frame.len() < 8 {
        return Err(KafkaError::BadRequest(format!(
            "frame of {} bytes is too short for a request header",
            frame.len()
        )));
    }
    let mut fixed = frame.slice(0..8);
    let raw_key = fixed.get_i16();
    let version = fixed.get_i16();
    let correlation_id = fixed.get_i32();
    let key = ApiKey::try_from(raw_key)
        .map_err(|_| KafkaError::BadRequest(format!("unknown API key {raw_key}")))?;
    match supported(key) {
        Some((lo, hi)) if (lo..=hi).contains(&version) => Ok(Frame::Served {
            key,
            version,
            correlation_id,
        }),
        _ if key == ApiKey::ApiVersions => Ok(Frame::UnknownApiVersions { correlation_id }),
        _ => Err(KafkaError::BadRequest(format!(
            "{key:?} v{version} is not served"
        ))),
    }
}

fn decode<T: Decodable>(frame: &mut Bytes, key: ApiKey, version: i16) -> Result<T, KafkaError> {
    T::decode(frame, version)
        .map_err(|e| KafkaError::BadRequest(format!("{key:?} v{version}: {e:#}")))
}

/// Decodes the header and body of a served request (`classify` said `Served`).
pub(crate) fn parse(mut frame: Bytes, key: ApiKey, version: i16) -> Result<Parsed, KafkaError> {
    let f = &mut frame;
    let header: RequestHeader = decode(f, key, key.request_header_version(version))?;
    let body = match key {
        ApiKey::ApiVersions => {
            let _: ApiVersionsRequest = decode(f, key, version)?;
            Body::ApiVersions
        }
        ApiKey::Metadata => Body::Metadata(decode(f, key, version)?),
        ApiKey::CreateTopics => Body::CreateTopics(decode(f, key, version)?),
        ApiKey::DeleteTopics => Body::DeleteTopics(decode(f, key, version)?),
        ApiKey::CreatePartitions => Body::CreatePartitions(decode(f, key, version)?),
        ApiKey::DescribeConfigs => Body::DescribeConfigs(decode(f, key, version)?),
        ApiKey::DescribeCluster => {
            let _: DescribeClusterRequest = decode(f, key, version)?;
            Body::DescribeCluster
        }
        ApiKey::InitProducerId => Body::InitProducerId(decode(f, key, version)?),
        ApiKey::Produce => Body::Produce(decode(f, key, version)?),
        ApiKey::Fetch => Body::Fetch(decode(f, key, version)?),
        ApiKey::ListOffsets => Body::ListOffsets(decode(f, key, version)?),
        ApiKey::DeleteRecords => Body::DeleteRecords(decode(f, key, version)?),
        ApiKey::OffsetForLeaderEpoch => Body::OffsetForLeaderEpoch(decode(f, key, version)?),
        ApiKey::FindCoordinator => Body::FindCoordinator(decode(f, key, version)?),
        ApiKey::JoinGroup => Body::JoinGroup(decode(f, key, version)?),
        ApiKey::SyncGroup => Body::SyncGroup(decode(f, key, version)?),
        ApiKey::Heartbeat => Body::Heartbeat(decode(f, key, version)?),
        ApiKey::LeaveGroup => Body::LeaveGroup(decode(f, key, version)?),
        ApiKey::OffsetCommit => Body::OffsetCommit(decode(f, key, version)?),
        ApiKey::OffsetFetch => Body::OffsetFetch(decode(f, key, version)?),
        ApiKey::DescribeGroups => Body::DescribeGroups(decode(f, key, version)?),
        ApiKey::ListGroups => Body::ListGroups(decode(f, key, version)?),
        ApiKey::DeleteGroups => Body::DeleteGroups(decode(f, key, version)?),
        other => {
            return Err(KafkaError::BadRequest(format!("{other:?} is not served")));
        }
    };
    Ok(Parsed { header, body })
}

/// Everything the listener does with a frame (without its size prefix) before serving it:
/// classify it, decode its header and body. For fuzzing and tests; `Ok` names the API.
pub fn decode_request(frame: Bytes) -> Result<ApiKey, KafkaError> {
    match classify(&frame)? {
        Frame::Served { key, version, .. } => parse(frame, key, version).map(|_| key),
        Frame::UnknownApiVersions { .. } => Ok(ApiKey::ApiVersions),
    }
}

/// A bounded label for the request counter.
pub(crate) fn api_name(body: &Body) -> &'static str {
    match body {
        Body::ApiVersions => "ApiVersions",
        Body::Metadata(_) => "Metadata",
        Body::CreateTopics(_) => "CreateTopics",
        Body::DeleteTopics(_) => "DeleteTopics",
        Body::CreatePartitions(_) => "CreatePartitions",
        Body::DescribeConfigs(_) => "DescribeConfigs",
        Body::DescribeCluster => "DescribeCluster",
        Body::InitProducerId(_) => "InitProducerId",
        Body::Produce(_) => "Produce",
        Body::Fetch(_) => "Fetch",
        Body::ListOffsets(_) => "ListOffsets",
        Body::DeleteRecords(_) => "DeleteRecords",
        Body::OffsetForLeaderEpoch(_) => "OffsetForLeaderEpoch",
        Body::FindCoordinator(_) => "FindCoordinator",
        Body::JoinGroup(_) => "JoinGroup",
        Body::SyncGroup(_) => "SyncGroup",
        Body::Heartbeat(_) => "Heartbeat",
        Body::LeaveGroup(_) => "LeaveGroup",
        Body::OffsetCommit(_) => "OffsetCommit",
        Body::OffsetFetch(_) => "OffsetFetch",
        Body::DescribeGroups(_) => "DescribeGroups",
        Body::ListGroups(_) => "ListGroups",
        Body::DeleteGroups(_) => "DeleteGroups",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_short_unknown_and_unserved_frames_are_errors_not_panics() {
        for frame in [
            &b""[..],
            &[0, 3, 0, 1][..],
            &[0x27, 0x0f, 0, 0, 0, 0, 0, 1][..],
            &[0, 0, 0, 99, 0, 0, 0, 1][..],
            &[0, 3, 0, 1, 0, 0, 0, 1, 0x7f][..],
        ] {
            assert!(
                decode_request(Bytes::copy_from_slice(frame)).is_err(),
                "{frame:?}"
            );
        }
        // ApiVersions at an unknown version is the KIP-511 fallback, not an error.
        let unknown = Bytes::from_static(&[0, 18, 0, 99, 0, 0, 0, 1]);
        assert_eq!(decode_request(unknown).ok(), Some(ApiKey::ApiVersions));
    }
}
