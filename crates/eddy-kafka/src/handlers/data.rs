//! Produce, Fetch, ListOffsets: the partition requests, each served only by the partition's
//! leader (a request to another broker gets NOT_LEADER_OR_FOLLOWER).

use std::time::Duration;

use bytes::Bytes;
use eddy_broker::messages::{
    AwaitRecords, DeleteRecords, FetchBatch, FetchPartition, FetchReply, ListOffsets,
    PartitionRecords, ProduceBatch, ProduceReply,
};
use eddy_broker::BrokerError;
use eddy_sync::Permit;
use eddy_types::Acks;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    BrokerId, DeleteRecordsRequest, DeleteRecordsResponse, FetchRequest, FetchResponse,
    ListOffsetsRequest, ListOffsetsResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse, ProduceRequest, ProduceResponse,
};

use super::{index, Ctx};
use crate::codes;

/// Produce. `None` for `acks=0`: Kafka sends no response then.
pub(crate) async fn produce(
    ctx: &Ctx<'_>,
    version: i16,
    req: ProduceRequest,
) -> Option<ProduceResponse> {
    let acks = Acks::from_kafka(req.acks);
    let timeout = Duration::from_millis(u64::try_from(req.timeout_ms).unwrap_or(0));
    let refused = if acks.is_none() {
        Some(E::InvalidRequiredAcks.code())
    } else if req
        .transactional_id
        .as_ref()
        .is_some_and(|t| !t.0.is_empty())
    {
        Some(E::TransactionalIdAuthorizationFailed.code())
    } else {
        None
    };
    // Every partition of the request in one message to the broker, and one commit of its
    // log: a request touching thousands of partitions costs about what one of a few does.
    let mut slots: Vec<(String, i32, Result<usize, i16>)> = Vec::new();
    let mut parts: Vec<PartitionRecords> = Vec::new();
    for topic in &req.topic_data {
        let name = topic.name.0.to_string();
        for p in &topic.partition_data {
            let slot = match (refused, acks, index(p.index), &p.records) {
                (Some(code), ..) => Err(code),
                (None, Some(_), Some(partition), Some(records)) => {
                    parts.push(PartitionRecords {
                        topic: name.clone(),
                        partition,
                        records: records.clone(),
                    });
                    Ok(parts.len() - 1)
                }
                (None, _, None, _) => Err(E::UnknownTopicOrPartition.code()),
                (None, _, _, _) => Err(E::CorruptMessage.code()),
            };
            slots.push((name.clone(), p.index, slot));
        }
    }
    let mut replies: Vec<Option<Result<ProduceReply, i16>>> = Vec::new();
    if let (Some(acks), false) = (acks, parts.is_empty()) {
        let n = parts.len();
        let batch = ProduceBatch {
            acks,
            timeout,
            partitions: parts,
        };
        replies = match ctx.broker.send(batch).await {
            Ok(v) => v
                .into_iter()
                .map(|r| Some(r.map_err(|e| codes::partition(&e))))
                .collect(),
            Err(e) => vec![Some(Err(codes::partition(&e))); n],
        };
    }
    let pending = slots.into_iter().map(|(name, pidx, slot)| {
        let result = match slot {
            Ok(i) => replies
                .get_mut(i)
                .and_then(Option::take)
                .unwrap_or(Err(E::UnknownServerError.code())),
            Err(code) => Err(code),
        };
        (name, pidx, result)
    });
    let mut topics: Vec<TopicProduceResponse> = Vec::new();
    for (name, pidx, result) in pending {
        let mut p = PartitionProduceResponse::default();
        p.index = pidx;
        p.log_append_time_ms = -1;
        match result {
            Ok(reply) => {
                p.base_offset = reply.base_offset;
                if version >= 5 {
                    p.log_start_offset = reply.log_start;
                }
            }
            Err(code) => {
                p.error_code = code;
                p.base_offset = -1;
                p.log_start_offset = -1;
            }
        }
        match topics.last_mut() {
            Some(t) if t.name.0.as_str() == name => t.partition_responses.push(p),
            _ => {
                let mut t = TopicProduceResponse::default();
                t.name = super::topic_name(name);
                t.partition_responses.push(p);
                topics.push(t);
            }
        }
    }
    if acks == Some(Acks::None) {
        return None;
    }
    let mut r = ProduceResponse::default();
    r.responses = topics;
    Some(r)
}

/// One partition of a fetch.
#[derive(Debug, Clone)]
struct Wanted {
    topic: String,
    partition: i32,
    offset: i64,
    max_bytes: usize,
}

/// Reads the partitions of a fetch within `limit` bytes in all, as Kafka fills a fetch: in
/// order, each partition up to its own `max_bytes` and what is left of `limit`; the first
/// batch of the answer goes whole even if it is larger (so that a consumer always makes
/// progress), later ones only if they fit. One message to the broker for all of them.
/// Returns each partition's result and the record bytes in all.
async fn read_within(
    ctx: &Ctx<'_>,
    slots: &[Result<usize, i16>],
    parts: &[FetchPartition],
    limit: usize,
) -> (Vec<Result<FetchReply, i16>>, usize) {
    let mut replies: Vec<Option<Result<FetchReply, i16>>> = Vec::new();
    if !parts.is_empty() {
        let batch = FetchBatch {
            partitions: parts.to_vec(),
            max_bytes: limit,
            min_bytes: 1,
            max_wait: Duration::ZERO,
        };
        replies = match ctx.broker.send(batch).await {
            Ok(v) => v
                .into_iter()
                .map(|r| Some(r.map_err(|e| codes::partition(&e))))
                .collect(),
            Err(e) => vec![Some(Err(codes::partition(&e))); parts.len()],
        };
    }
    let mut used = 0;
    let results = slots
        .iter()
        .map(|slot| match slot {
            Ok(i) => {
                let r = replies
                    .get_mut(*i)
                    .and_then(Option::take)
                    .unwrap_or(Err(E::UnknownServerError.code()));
                if let Ok(f) = &r {
                    used += f.records.len();
                }
                r
            }
            Err(code) => Err(*code),
        })
        .collect();
    (results, used)
}

/// Fetch: the partitions read within the request's `max_bytes` (at most the listener's
/// `fetch_max_bytes`); with fewer than `min_bytes` ready, long-polls them all until one has
/// records or `max_wait_ms` passes, then reads again. Records are the stored batches, up to
/// the high watermark; sessions (KIP-227) are not kept: session id 0.
///
/// The bytes read are taken from the listener's fetch memory budget first (waiting while
/// other answers hold it), and the permit goes with the answer until it is written. A
/// connection's fetches take turns, in arrival order: answers go out in that order, so a
/// later fetch that took memory while an earlier one waited for it would hold it without
/// being written, and connections could end up holding the whole budget that way.
pub(crate) async fn fetch(
    ctx: &Ctx<'_>,
    version: i16,
    req: FetchRequest,
) -> (FetchResponse, FetchHold) {
    // The semaphore is the connection's and never closed; a closed one would mean no turn.
    let turn = ctx.fetch_turn.clone().acquire_owned().await.ok();
    let wanted: Vec<Wanted> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| Wanted {
                topic: t.topic.0.to_string(),
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: usize::try_from(p.partition_max_bytes).unwrap_or(0),
            })
        })
        .collect();
    let min_bytes = usize::try_from(req.min_bytes).unwrap_or(0);
    let max_wait = Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0));
    let limit = usize::try_from(req.max_bytes)
        .unwrap_or(0)
        .clamp(1, ctx.shared.config.fetch_max_bytes.max(1));
    let slots: Vec<Result<usize, i16>> = {
        let mut n = 0;
        wanted
            .iter()
            .map(|w| match (index(w.partition), u64::try_from(w.offset)) {
                (Some(_), Ok(_)) => {
                    n += 1;
                    Ok(n - 1)
                }
                (None, _) => Err(E::UnknownTopicOrPartition.code()),
                (_, Err(_)) => Err(E::OffsetOutOfRange.code()),
            })
            .collect()
    };
    let parts: Vec<FetchPartition> = wanted
        .iter()
        .filter_map(|w| {
            Some(FetchPartition {
                topic: w.topic.clone(),
                partition: index(w.partition)?,
                offset: u64::try_from(w.offset).ok()?,
                max_bytes: w.max_bytes,
            })
        })
        .collect();
    let budget = &ctx.shared.fetch_memory;
    let mut permit = budget.acquire(limit).await;
    let (mut results, mut used) = read_within(ctx, &slots, &parts, permit.bytes()).await;
    let failed = results.iter().any(Result::is_err);
    if used < min_bytes.max(1) && !max_wait.is_zero() && !failed && !parts.is_empty() {
        // Nothing held while waiting: the broker wakes this wait when one of the partitions
        // has records, and reads again then.
        drop(permit);
        let wait = AwaitRecords {
            partitions: parts.clone(),
            max_wait,
        };
        let _ = ctx.broker.send(wait).await;
        permit = budget.acquire(limit).await;
        (results, used) = read_within(ctx, &slots, &parts, permit.bytes()).await;
    }
    // Held until the answer is written: what was read (the first batch may be larger than
    // the share it was read for; that goes uncounted rather than wait while holding).
    permit.shrink_to(used);
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    for (w, result) in wanted.into_iter().zip(results) {
        let mut p = PartitionData::default();
        p.partition_index = w.partition;
        p.preferred_read_replica = BrokerId(-1);
        p.aborted_transactions = Some(Vec::new());
        match result {
            Ok(f) => {
                p.high_watermark = f.high_watermark as i64;
                p.last_stable_offset = f.high_watermark as i64;
                if version >= 5 {
                    p.log_start_offset = f.log_start as i64;
                }
                p.records = Some(f.records);
            }
            Err(code) => {
                p.error_code = code;
                p.high_watermark = -1;
                p.last_stable_offset = -1;
                p.records = Some(Bytes::new());
            }
        }
        match topics.last_mut() {
            Some(t) if t.topic.0.as_str() == w.topic => t.partitions.push(p),
            _ => {
                let mut t = FetchableTopicResponse::default();
                t.topic = super::topic_name(w.topic);
                t.partitions.push(p);
                topics.push(t);
            }
        }
    }
    let mut r = FetchResponse::default();
    r.responses = topics;
    (
        r,
        FetchHold {
            _memory: permit,
            _turn: turn,
        },
    )
}

/// What a fetch's answer holds until it is written: its record bytes in the fetch memory
/// budget, and its connection's fetch turn.
#[derive(Debug)]
pub(crate) struct FetchHold {
    _memory: Permit,
    _turn: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// ListOffsets: -2 earliest (log start), -1 latest (high watermark), else the first offset
/// at or after a timestamp.
pub(crate) async fn list_offsets(
    ctx: &Ctx<'_>,
    version: i16,
    req: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let mut r = ListOffsetsPartitionResponse::default();
            r.partition_index = p.partition_index;
            r.timestamp = -1;
            r.offset = -1;
            r.leader_epoch = -1;
            let query = (p.timestamp >= 0).then_some(p.timestamp);
            // The leader epoch is in the answer from v4.
            let epoch = |e: i32| if version >= 4 { e } else { -1 };
            let result = match index(p.partition_index) {
                Some(partition) => {
                    let list = ListOffsets {
                        topic: name.clone(),
                        partition,
                        timestamp: query,
                    };
                    ctx.broker.request(list).await
                }
                None => Err(BrokerError::UnknownTopic(name.clone())),
            };
            match (result, p.timestamp) {
                (Ok(o), -2) => {
                    r.offset = o.log_start as i64;
                    r.leader_epoch = epoch(o.leader_epoch);
                }
                (Ok(o), -1) => {
                    r.offset = o.high_watermark as i64;
                    r.leader_epoch = epoch(o.leader_epoch);
                }
                (Ok(o), ts) if ts >= 0 => {
                    if let Some((offset, ts)) = o.by_timestamp {
                        r.offset = offset as i64;
                        r.timestamp = ts;
                        r.leader_epoch = epoch(o.leader_epoch);
                    }
                }
                (Ok(_), _) => r.error_code = E::UnsupportedVersion.code(),
                (Err(e), _) => r.error_code = codes::partition(&e),
            }
            partitions.push(r);
        }
        let mut tr = ListOffsetsTopicResponse::default();
        tr.name = super::topic_name(name);
        tr.partitions = partitions;
        topics.push(tr);
    }
    let mut r = ListOffsetsResponse::default();
    r.topics = topics;
    r
}

/// DeleteRecords: moves each partition's log start (offset -1: the high watermark).
pub(crate) async fn delete_records(
    ctx: &Ctx<'_>,
    req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let mut r = DeleteRecordsResponse::default();
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut out = DeleteRecordsTopicResult::default();
        out.name = t.name.clone();
        for p in t.partitions {
            let mut pr = DeleteRecordsPartitionResult::default();
            pr.partition_index = p.partition_index;
            pr.low_watermark = -1;
            let offset = match p.offset {
                -1 => Ok(None),
                o => u64::try_from(o)
                    .map(Some)
                    .map_err(|_| E::OffsetOutOfRange.code()),
            };
            let result = match (index(p.partition_index), offset) {
                (None, _) => Err(E::UnknownTopicOrPartition.code()),
                (_, Err(code)) => Err(code),
                (Some(partition), Ok(offset)) => ctx
                    .broker
                    .request(DeleteRecords {
                        topic: name.clone(),
                        partition,
                        offset,
                    })
                    .await
                    .map_err(|e| codes::partition(&e)),
            };
            match result {
                Ok(start) => pr.low_watermark = start as i64,
                Err(code) => pr.error_code = code,
            }
            out.partitions.push(pr);
        }
        r.topics.push(out);
    }
    r
}

/// OffsetForLeaderEpoch (consumers checking for truncation, KIP-320): where each asked
/// epoch ends in the leader's log.
pub(crate) async fn offset_for_leader_epoch(
    ctx: &Ctx<'_>,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let mut r = OffsetForLeaderEpochResponse::default();
    for t in req.topics {
        let name = t.topic.0.to_string();
        let mut out = OffsetForLeaderTopicResult::default();
        out.topic = t.topic.clone();
        for p in t.partitions {
            let mut e = EpochEndOffset::default();
            e.partition = p.partition;
            e.leader_epoch = -1;
            e.end_offset = -1;
            let current = (p.current_leader_epoch >= 0).then_some(p.current_leader_epoch);
            let result = match index(p.partition) {
                Some(i) => ctx
                    .broker
                    .epoch_end(&name, i, current, p.leader_epoch)
                    .await
                    .map_err(|e| codes::partition(&e)),
                None => Err(E::UnknownTopicOrPartition.code()),
            };
            match result {
                Ok(reply) => {
                    if let Some((epoch, end)) = reply.end {
                        e.leader_epoch = epoch;
                        e.end_offset = end as i64;
                    }
                }
                Err(code) => e.error_code = code,
            }
            out.partitions.push(e);
        }
        r.topics.push(out);
    }
    r
}
