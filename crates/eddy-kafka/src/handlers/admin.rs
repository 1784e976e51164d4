//! ApiVersions, Metadata, CreateTopics, DeleteTopics, InitProducerId.

use std::sync::Arc;

use eddy_broker::{BrokerError, NewTopic, TopicMeta};
use eddy_types::BrokerId as Id;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiVersionsResponse, BrokerId, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, InitProducerIdRequest, InitProducerIdResponse, MetadataRequest,
    MetadataResponse, ProducerId,
};

use super::{str, topic_name, Ctx};
use crate::codes;
use crate::versions::SUPPORTED;

/// ApiVersions; `error` is UNSUPPORTED_VERSION for the KIP-511 fallback. The optional
/// feature fields stay empty, so no tagged field reaches clients that misread them
/// (librdkafka 2.0.2).
pub(crate) fn api_versions(error: i16) -> ApiVersionsResponse {
    let mut r = ApiVersionsResponse::default();
    r.error_code = error;
    r.api_keys = SUPPORTED
        .iter()
        .map(|(key, lo, hi)| {
            let mut v = ApiVersion::default();
            v.api_key = *key as i16;
            v.min_version = *lo;
            v.max_version = *hi;
            v
        })
        .collect();
    r.finalized_features_epoch = -1;
    r
}

fn partition_meta(
    topic: &TopicMeta,
    alive: &std::collections::BTreeSet<Id>,
    version: i16,
) -> Vec<MetadataResponsePartition> {
    topic
        .partitions
        .iter()
        .map(|p| {
            let mut m = MetadataResponsePartition::default();
            m.partition_index = p.index as i32;
            m.error_code = if p.leader.is_some() {
                0
            } else {
                E::LeaderNotAvailable.code()
            };
            m.leader_id = BrokerId(p.leader.map_or(-1, |b| b.0 as i32));
            if version >= 7 {
                m.leader_epoch = p.leader_epoch;
            }
            m.replica_nodes = p.replicas.iter().map(|b| BrokerId(b.0 as i32)).collect();
            m.isr_nodes = p.isr.iter().map(|b| BrokerId(b.0 as i32)).collect();
            if version >= 5 {
                m.offline_replicas = p
                    .replicas
                    .iter()
                    .filter(|b| !alive.contains(b))
                    .map(|b| BrokerId(b.0 as i32))
                    .collect();
            }
            m
        })
        .collect()
}

fn topic_meta(
    topic: &TopicMeta,
    alive: &std::collections::BTreeSet<Id>,
    version: i16,
) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default();
    t.name = Some(topic_name(topic.name.as_str()));
    t.is_internal = version >= 1 && topic.name.is_internal();
    t.partitions = partition_meta(topic, alive, version);
    t.topic_authorized_operations = i32::MIN;
    t
}

fn topic_error(name: &str, code: i16) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default();
    t.name = Some(topic_name(name));
    t.error_code = code;
    t.topic_authorized_operations = i32::MIN;
    t
}

/// Metadata: every live broker with its listener, and the topics asked for (all when
/// `topics` is null, or empty before v1), created on the fly when the client allows it and
/// the cluster auto-creates topics.
pub(crate) async fn metadata(
    ctx: &Ctx<'_>,
    version: i16,
    req: MetadataRequest,
) -> MetadataResponse {
    let cluster = ctx.cluster();
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    let mut topics = Vec::new();
    if all {
        let m = cluster.metadata();
        topics.extend(m.topics.values().map(|t| topic_meta(t, &m.alive, version)));
    } else {
        for t in req.topics.unwrap_or_default() {
            let Some(name) = t.name else {
                topics.push(topic_error("", E::UnknownTopicId.code()));
                continue;
            };
            let name = name.0.to_string();
            let found = match cluster.describe_topic(&name) {
                Err(BrokerError::UnknownTopic(_))
                    if req.allow_auto_topic_creation && cluster.config().auto_create_topics =>
                {
                    match cluster.create_topic(NewTopic::new(name.clone())).await {
                        Ok(t) => Ok(t),
                        Err(BrokerError::TopicExists(_)) => cluster.describe_topic(&name),
                        Err(e) => Err(e),
                    }
                }
                other => other,
            };
            match found {
                Ok(meta) => {
                    let m = cluster.metadata();
                    topics.push(topic_meta(&meta, &m.alive, version));
                }
                Err(e) => topics.push(topic_error(&name, codes::admin(&e))),
            }
        }
    }
    let m = cluster.metadata();
    let mut r = MetadataResponse::default();
    r.brokers = m
        .alive
        .iter()
        .map(|b| {
            let (host, port) = ctx.endpoint(*b);
            let mut broker = MetadataResponseBroker::default();
            broker.node_id = BrokerId(b.0 as i32);
            broker.host = host;
            broker.port = port;
            broker
        })
        .collect();
    if version >= 2 {
        r.cluster_id = Some(str(m.name.clone()));
    }
    if version >= 1 {
        r.controller_id = BrokerId(m.alive.iter().next().map_or(-1, |b| b.0 as i32));
    }
    r.topics = topics;
    r.cluster_authorized_operations = i32::MIN;
    r
}

/// The topic settings a CreateTopics request may carry, as Kafka names them.
fn apply_config(mut topic: NewTopic, name: &str, value: Option<&str>) -> Result<NewTopic, String> {
    let parse_i64 = |v: Option<&str>| -> Result<i64, String> {
        v.unwrap_or_default()
            .parse::<i64>()
            .map_err(|e| format!("{name}: {e}"))
    };
    match name {
        "retention.ms" => {
            let ms = parse_i64(value)?;
            topic = topic.retention_ms((ms >= 0).then_some(ms));
        }
        "retention.bytes" => {
            let bytes = parse_i64(value)?;
            topic = topic.retention_bytes(u64::try_from(bytes).ok());
        }
        "min.insync.replicas" => {
            let n = parse_i64(value)?;
            let n = u32::try_from(n).map_err(|_| format!("{name} must be positive"))?;
            topic = topic.min_insync_replicas(n);
        }
        // Accepted and ignored: Eddy's defaults (delete, the producer's codec) hold.
        "cleanup.policy" if value == Some("delete") => {}
        "compression.type" if value == Some("producer") => {}
        other => return Err(format!("unsupported topic config {other}")),
    }
    Ok(topic)
}

/// CreateTopics (`validate_only` checks without creating).
pub(crate) async fn create_topics(
    ctx: &Ctx<'_>,
    version: i16,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let cluster = ctx.cluster();
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut result = CreatableTopicResult::default();
        result.name = t.name.clone();
        result.num_partitions = -1;
        result.replication_factor = -1;
        let mut new = NewTopic::new(name.clone());
        let mut refused: Option<(i16, String)> = None;
        if !t.assignments.is_empty() {
            refused = Some((
                E::InvalidRequest.code(),
                "manual replica assignments are not supported".into(),
            ));
        }
        if t.num_partitions > 0 {
            new = new.partitions(t.num_partitions as u32);
        } else if t.num_partitions == 0 || t.num_partitions < -1 {
            refused = Some((
                E::InvalidPartitions.code(),
                "partitions must be positive".into(),
            ));
        }
        if t.replication_factor > 0 {
            new = new.replication_factor(t.replication_factor as u32);
        } else if t.replication_factor == 0 || t.replication_factor < -1 {
            refused = Some((
                E::InvalidReplicationFactor.code(),
                "replication factor must be positive".into(),
            ));
        }
        for c in &t.configs {
            match apply_config(new.clone(), c.name.as_str(), c.value.as_deref()) {
                Ok(n) => new = n,
                Err(e) => refused = Some((E::InvalidConfig.code(), e)),
            }
        }
        if let Some((code, message)) = refused {
            result.error_code = code;
            result.error_message = Some(str(message));
            results.push(result);
            continue;
        }
        let outcome: Result<Option<Arc<TopicMeta>>, BrokerError> = if req.validate_only {
            match eddy_types::TopicName::new(name.clone()) {
                Err(e) => Err(e.into()),
                Ok(n) if cluster.describe_topic(&name).is_ok() => Err(BrokerError::TopicExists(n)),
                Ok(_) => Ok(None),
            }
        } else {
            cluster.create_topic(new).await.map(Some)
        };
        match outcome {
            Ok(meta) => {
                if let (Some(meta), true) = (meta, version >= 5) {
                    fill_created(&mut result, &meta);
                }
            }
            Err(e) => {
                result.error_code = codes::admin(&e);
                result.error_message = Some(str(e.to_string()));
            }
        }
        results.push(result);
    }
    let mut r = CreateTopicsResponse::default();
    r.topics = results;
    r
}

fn fill_created(result: &mut CreatableTopicResult, meta: &Arc<TopicMeta>) {
    result.num_partitions = meta.partitions.len() as i32;
    result.replication_factor = meta
        .partitions
        .first()
        .map_or(0, |p| p.replicas.len() as i16);
}

/// DeleteTopics, by name.
pub(crate) async fn delete_topics(
    ctx: &Ctx<'_>,
    version: i16,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let mut names: Vec<String> = req.topic_names.iter().map(|t| t.0.to_string()).collect();
    names.extend(
        req.topics
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string())),
    );
    let mut responses = Vec::with_capacity(names.len());
    for name in names {
        let mut r = DeletableTopicResult::default();
        r.name = Some(topic_name(name.clone()));
        if let Err(e) = ctx.cluster().delete_topic(&name).await {
            r.error_code = codes::admin(&e);
            if version >= 5 {
                r.error_message = Some(str(e.to_string()));
            }
        }
        responses.push(r);
    }
    let mut r = DeleteTopicsResponse::default();
    r.responses = responses;
    r
}

/// InitProducerId for idempotent producers (transactions are not supported).
pub(crate) async fn init_producer_id(
    ctx: &Ctx<'_>,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let mut r = InitProducerIdResponse::default();
    r.producer_id = ProducerId(-1);
    r.producer_epoch = -1;
    r.ongoing_txn_producer_id = ProducerId(-1);
    r.ongoing_txn_producer_epoch = -1;
    if req
        .transactional_id
        .as_ref()
        .is_some_and(|t| !t.0.is_empty())
    {
        r.error_code = E::TransactionalIdAuthorizationFailed.code();
        return r;
    }
    match ctx.cluster().init_producer_id().await {
        Ok(id) => {
            r.producer_id = ProducerId(id.producer_id);
            r.producer_epoch = id.epoch;
        }
        Err(e) => r.error_code = codes::admin(&e),
    }
    r
}
