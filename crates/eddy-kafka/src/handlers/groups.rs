//! FindCoordinator and the group APIs (JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch, DescribeGroups, ListGroups, DeleteGroups), served only by the
//! group's coordinator (another broker answers NOT_COORDINATOR).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use eddy_broker::group::JoinRequest;
use eddy_broker::messages::{GroupOp, GroupReply};
use eddy_broker::offsets::CommittedOffset;
use eddy_broker::BrokerError;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse,
};

use super::{index, str, topic_name, Ctx};
use crate::codes;

fn ms(v: i32) -> Duration {
    Duration::from_millis(u64::try_from(v).unwrap_or(0))
}

/// FindCoordinator for groups (key type 0); transactions have no coordinator here.
pub(crate) async fn find_coordinator(
    ctx: &Ctx<'_>,
    version: i16,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let keys: Vec<String> = if version >= 4 {
        req.coordinator_keys.iter().map(|k| k.to_string()).collect()
    } else {
        vec![req.key.to_string()]
    };
    let mut coordinators = Vec::with_capacity(keys.len());
    for key in keys {
        let mut c = Coordinator::default();
        c.key = str(key.clone());
        c.node_id = BrokerId(-1);
        c.port = -1;
        let found = if req.key_type != 0 {
            Err(E::CoordinatorNotAvailable.code())
        } else if key.is_empty() {
            Err(E::InvalidGroupId.code())
        } else {
            ctx.cluster()
                .coordinator(&key)
                .await
                .map_err(|e| codes::group(&e))
        };
        match found {
            Ok(b) => {
                let (host, port) = ctx.endpoint(b);
                c.node_id = BrokerId(b.0 as i32);
                c.host = host;
                c.port = port;
            }
            Err(code) => c.error_code = code,
        }
        coordinators.push(c);
    }
    let mut r = FindCoordinatorResponse::default();
    if version >= 4 {
        r.coordinators = coordinators;
    } else if let Some(c) = coordinators.pop() {
        r.error_code = c.error_code;
        r.node_id = c.node_id;
        r.host = c.host;
        r.port = c.port;
    }
    r
}

async fn op(ctx: &Ctx<'_>, group: &GroupId, op: GroupOp) -> Result<GroupReply, BrokerError> {
    ctx.broker.group(group.0.as_str(), op).await
}

/// JoinGroup; from v4 a new member first gets MEMBER_ID_REQUIRED with its id (KIP-394).
pub(crate) async fn join_group(
    ctx: &Ctx<'_>,
    version: i16,
    req: JoinGroupRequest,
) -> JoinGroupResponse {
    let join = JoinRequest {
        member_id: req.member_id.to_string(),
        client_id: ctx
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        // As Kafka shows it: `/127.0.0.1`.
        client_host: format!("/{}", ctx.peer.ip()),
        session_timeout: ms(req.session_timeout_ms),
        rebalance_timeout: if version >= 1 {
            ms(req.rebalance_timeout_ms)
        } else {
            ms(req.session_timeout_ms)
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let mut r = JoinGroupResponse::default();
    r.generation_id = -1;
    r.member_id = req.member_id.clone();
    match op(ctx, &req.group_id, GroupOp::Join(join)).await {
        Ok(GroupReply::Joined(j)) => {
            r.generation_id = j.generation;
            if version >= 7 {
                r.protocol_type = Some(str(j.protocol_type));
            }
            r.protocol_name = Some(str(j.protocol));
            r.leader = str(j.leader);
            r.member_id = str(j.member_id);
            r.members = j
                .members
                .into_iter()
                .map(|(id, metadata)| {
                    let mut m = JoinGroupResponseMember::default();
                    m.member_id = str(id);
                    m.metadata = metadata;
                    m
                })
                .collect();
        }
        Ok(_) => r.error_code = E::UnknownServerError.code(),
        Err(BrokerError::MemberIdRequired { member, .. }) => {
            r.error_code = E::MemberIdRequired.code();
            r.member_id = str(member);
        }
        Err(e) => r.error_code = codes::group(&e),
    }
    r
}

/// SyncGroup; the leader's request carries every member's assignment.
pub(crate) async fn sync_group(
    ctx: &Ctx<'_>,
    version: i16,
    req: SyncGroupRequest,
) -> SyncGroupResponse {
    let assignments = (!req.assignments.is_empty()).then(|| {
        req.assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect()
    });
    let sync = GroupOp::Sync {
        member: req.member_id.to_string(),
        generation: req.generation_id,
        assignments,
    };
    let mut r = SyncGroupResponse::default();
    match op(ctx, &req.group_id, sync).await {
        Ok(GroupReply::Synced(s)) => {
            if version >= 5 {
                r.protocol_type = Some(str(s.protocol_type));
                r.protocol_name = Some(str(s.protocol));
            }
            r.assignment = s.assignment;
        }
        Ok(_) => r.error_code = E::UnknownServerError.code(),
        Err(e) => r.error_code = codes::group(&e),
    }
    r
}

/// Heartbeat.
pub(crate) async fn heartbeat(ctx: &Ctx<'_>, req: HeartbeatRequest) -> HeartbeatResponse {
    let beat = GroupOp::Heartbeat {
        member: req.member_id.to_string(),
        generation: req.generation_id,
    };
    let mut r = HeartbeatResponse::default();
    if let Err(e) = op(ctx, &req.group_id, beat).await {
        r.error_code = codes::group(&e);
    }
    r
}

/// LeaveGroup: one member before v3, a batch from v3 (answered member by member).
pub(crate) async fn leave_group(
    ctx: &Ctx<'_>,
    version: i16,
    req: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let mut r = LeaveGroupResponse::default();
    if version < 3 {
        let leave = GroupOp::Leave {
            members: vec![req.member_id.to_string()],
        };
        if let Err(e) = op(ctx, &req.group_id, leave).await {
            r.error_code = codes::group(&e);
        }
        return r;
    }
    for m in &req.members {
        let leave = GroupOp::Leave {
            members: vec![m.member_id.to_string()],
        };
        let mut mr = MemberResponse::default();
        mr.member_id = m.member_id.clone();
        mr.group_instance_id = m.group_instance_id.clone();
        match op(ctx, &req.group_id, leave).await {
            Ok(_) => {}
            Err(e @ BrokerError::UnknownMember { .. }) => mr.error_code = codes::group(&e),
            Err(e) => {
                r.error_code = codes::group(&e);
                break;
            }
        }
        r.members.push(mr);
    }
    r
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// OffsetCommit, by a member in its generation or by a standalone consumer (generation -1).
pub(crate) async fn offset_commit(ctx: &Ctx<'_>, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let now = now_ms();
    let mut offsets = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            if let Some(i) = index(p.partition_index) {
                let committed = CommittedOffset {
                    offset: p.committed_offset,
                    leader_epoch: (p.committed_leader_epoch >= 0)
                        .then_some(p.committed_leader_epoch),
                    metadata: p
                        .committed_metadata
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_default(),
                    commit_timestamp: now,
                };
                offsets.push((t.name.0.to_string(), i, committed));
            }
        }
    }
    let commit = GroupOp::Commit {
        member: req.member_id.to_string(),
        generation: req.generation_id_or_member_epoch,
        offsets,
    };
    let code = match op(ctx, &req.group_id, commit).await {
        Ok(_) => 0,
        Err(e) => codes::group(&e),
    };
    let mut r = OffsetCommitResponse::default();
    r.topics = req
        .topics
        .iter()
        .map(|t| {
            let mut tr = OffsetCommitResponseTopic::default();
            tr.name = t.name.clone();
            tr.partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut pr = OffsetCommitResponsePartition::default();
                    pr.partition_index = p.partition_index;
                    pr.error_code = if index(p.partition_index).is_some() {
                        code
                    } else {
                        E::UnknownTopicOrPartition.code()
                    };
                    pr
                })
                .collect();
            tr
        })
        .collect();
    r
}

/// OffsetFetch for one group (v1 to v7): the partitions asked for, or all the group has.
pub(crate) async fn offset_fetch(
    ctx: &Ctx<'_>,
    version: i16,
    req: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let epoch = |e: Option<i32>| if version >= 5 { e.unwrap_or(-1) } else { -1 };
    let asked: Option<Vec<(String, u32)>> = req.topics.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|t| {
                t.partition_indexes
                    .iter()
                    .filter_map(|p| index(*p))
                    .map(|p| (t.name.0.to_string(), p))
            })
            .collect()
    });
    let fetch = GroupOp::FetchOffsets {
        partitions: asked.clone(),
    };
    let mut r = OffsetFetchResponse::default();
    let found = match op(ctx, &req.group_id, fetch).await {
        Ok(GroupReply::Offsets(list)) => list,
        Ok(_) => Vec::new(),
        Err(e) => {
            let code = codes::group(&e);
            if version >= 2 {
                r.error_code = code;
            }
            // Before v2 the error goes on every partition asked for.
            for (t, p) in asked.unwrap_or_default() {
                push_offset(&mut r.topics, t, p as i32, -1, -1, code);
            }
            return r;
        }
    };
    for (t, p, committed) in found {
        match committed {
            Some(c) => push_offset(
                &mut r.topics,
                t,
                p as i32,
                c.offset,
                epoch(c.leader_epoch),
                0,
            ),
            None => push_offset(&mut r.topics, t, p as i32, -1, -1, 0),
        }
    }
    r
}

fn push_offset(
    topics: &mut Vec<OffsetFetchResponseTopic>,
    topic: String,
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    code: i16,
) {
    let mut p = OffsetFetchResponsePartition::default();
    p.partition_index = partition;
    p.committed_offset = offset;
    p.committed_leader_epoch = leader_epoch;
    p.metadata = Some(str(""));
    p.error_code = code;
    match topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
        Some(t) => t.partitions.push(p),
        None => {
            let mut t = OffsetFetchResponseTopic::default();
            t.name = topic_name(topic);
            t.partitions.push(p);
            topics.push(t);
        }
    }
}

/// DescribeGroups.
pub(crate) async fn describe_groups(
    ctx: &Ctx<'_>,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let mut r = DescribeGroupsResponse::default();
    for g in req.groups {
        let mut d = DescribedGroup::default();
        d.group_id = g.clone();
        d.authorized_operations = i32::MIN;
        match op(ctx, &g, GroupOp::Describe).await {
            Ok(GroupReply::Described(desc)) => {
                d.group_state = str(desc.state.as_str());
                d.protocol_type = str(desc.protocol_type.unwrap_or_default());
                let protocol = desc.protocol.unwrap_or_default();
                d.members = desc
                    .members
                    .into_iter()
                    .map(|m| {
                        let mut dm = DescribedGroupMember::default();
                        dm.member_metadata = m
                            .protocols
                            .iter()
                            .find(|(name, _)| *name == protocol)
                            .map(|(_, meta)| meta.clone())
                            .unwrap_or_default();
                        dm.member_id = str(m.id);
                        dm.client_id = str(m.client_id);
                        dm.client_host = str(m.client_host);
                        dm.member_assignment = m.assignment;
                        dm
                    })
                    .collect();
                d.protocol_data = str(protocol);
            }
            Ok(_) => d.error_code = E::UnknownServerError.code(),
            Err(e) => d.error_code = codes::group(&e),
        }
        r.groups.push(d);
    }
    r
}

/// ListGroups: the groups this broker coordinates (admin clients ask every broker).
pub(crate) async fn list_groups(
    ctx: &Ctx<'_>,
    version: i16,
    req: ListGroupsRequest,
) -> ListGroupsResponse {
    let mut r = ListGroupsResponse::default();
    // The broker loads its __consumer_offsets partitions on first use; wait for that (as a
    // client would retry COORDINATOR_LOAD_IN_PROGRESS) rather than answer an empty list.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let listed = loop {
        match ctx.broker.list_groups().await {
            Err(BrokerError::CoordinatorLoading(_)) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => break other,
        }
    };
    match listed {
        Ok(groups) => {
            r.groups = groups
                .into_iter()
                .filter(|(_, state)| {
                    req.states_filter.is_empty()
                        || req
                            .states_filter
                            .iter()
                            .any(|s| s.as_str() == state.as_str())
                })
                .map(|(id, state)| {
                    let mut g = ListedGroup::default();
                    g.group_id = GroupId(str(id));
                    g.protocol_type = str("consumer");
                    if version >= 4 {
                        g.group_state = str(state.as_str());
                    }
                    g
                })
                .collect();
        }
        Err(e) => r.error_code = codes::group(&e),
    }
    r
}

/// DeleteGroups: empty groups and their offsets.
pub(crate) async fn delete_groups(ctx: &Ctx<'_>, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut r = DeleteGroupsResponse::default();
    for g in req.groups_names {
        let mut d = DeletableGroupResult::default();
        if let Err(e) = op(ctx, &g, GroupOp::Delete).await {
            d.error_code = codes::group(&e);
        }
        d.group_id = g;
        r.results.push(d);
    }
    r
}
