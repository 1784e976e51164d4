//! ApiVersions, Metadata, CreateTopics, DeleteTopics, InitProducerId.

use std::sync::Arc;

use eddy_broker::{BrokerError, NewTopic, TopicMeta};
use eddy_types::BrokerId as Id;
use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    ApiVersionsResponse, BrokerId, CreatePartitionsRequest, CreatePartitionsResponse,
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeClusterResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    InitProducerIdRequest, InitProducerIdResponse, MetadataRequest, MetadataResponse, ProducerId,
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
    // The topics to make, by their index in `results`: all in one metadata change.
    let mut to_create: Vec<(usize, NewTopic)> = Vec::new();
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
        if !req.validate_only {
            to_create.push((results.len(), new));
            results.push(result);
            continue;
        }
        let checked = match eddy_types::TopicName::new(name.clone()) {
            Err(e) => Err(BrokerError::from(e)),
            Ok(n) if cluster.describe_topic(&name).is_ok() => Err(BrokerError::TopicExists(n)),
            Ok(_) => Ok(()),
        };
        if let Err(e) = checked {
            result.error_code = codes::admin(&e);
            result.error_message = Some(str(e.to_string()));
        }
        results.push(result);
    }
    if !to_create.is_empty() {
        let (slots, topics): (Vec<usize>, Vec<NewTopic>) = to_create.into_iter().unzip();
        let outcomes: Vec<Result<Arc<TopicMeta>, BrokerError>> =
            match cluster.create_topics(topics).await {
                Ok(o) => o,
                Err(e) => slots.iter().map(|_| Err(e.clone())).collect(),
            };
        for (slot, outcome) in slots.into_iter().zip(outcomes) {
            let result = &mut results[slot];
            match outcome {
                Ok(meta) if version >= 5 => fill_created(result, &meta),
                Ok(_) => {}
                Err(e) => {
                    result.error_code = codes::admin(&e);
                    result.error_message = Some(str(e.to_string()));
                }
            }
        }
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

/// DescribeCluster: the live brokers and their listeners.
pub(crate) fn describe_cluster(ctx: &Ctx<'_>, version: i16) -> DescribeClusterResponse {
    let m = ctx.cluster().metadata();
    let mut r = DescribeClusterResponse::default();
    r.cluster_id = str(m.name.clone());
    r.controller_id = BrokerId(m.alive.iter().next().map_or(-1, |b| b.0 as i32));
    if version >= 1 {
        r.endpoint_type = 1; // brokers
    }
    r.cluster_authorized_operations = i32::MIN;
    r.brokers = m
        .alive
        .iter()
        .map(|b| {
            let (host, port) = ctx.endpoint(*b);
            let mut d = DescribeClusterBroker::default();
            d.broker_id = BrokerId(b.0 as i32);
            d.host = host;
            d.port = port;
            d
        })
        .collect();
    r
}

/// Kafka's config sources and types, as DescribeConfigs reports them.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;
const BOOLEAN: i8 = 1;
const STRING: i8 = 2;
const INT: i8 = 3;
const LONG: i8 = 5;
const LIST: i8 = 7;

/// A config entry: (name, value, source, type).
type Entry = (&'static str, String, i8, i8);

fn topic_configs(ctx: &Ctx<'_>, topic: &TopicMeta) -> Vec<Entry> {
    let d = &ctx.cluster().config().topic_defaults;
    let c = &topic.config;
    let source = |differs: bool| {
        if differs {
            DYNAMIC_TOPIC_CONFIG
        } else {
            DEFAULT_CONFIG
        }
    };
    vec![
        (
            "retention.ms",
            c.retention_ms.unwrap_or(-1).to_string(),
            source(c.retention_ms != d.retention_ms),
            LONG,
        ),
        (
            "retention.bytes",
            c.retention_bytes.map_or(-1, |b| b as i64).to_string(),
            source(c.retention_bytes != d.retention_bytes),
            LONG,
        ),
        (
            "min.insync.replicas",
            c.min_insync_replicas.to_string(),
            source(c.min_insync_replicas != d.min_insync_replicas),
            INT,
        ),
        ("cleanup.policy", "delete".into(), DEFAULT_CONFIG, LIST),
        (
            "compression.type",
            "producer".into(),
            DEFAULT_CONFIG,
            STRING,
        ),
    ]
}

fn broker_configs(ctx: &Ctx<'_>, broker: u32) -> Vec<Entry> {
    let c = ctx.cluster().config();
    let d = &c.topic_defaults;
    let s = STATIC_BROKER_CONFIG;
    vec![
        ("broker.id", broker.to_string(), s, INT),
        ("num.partitions", d.partitions.to_string(), s, INT),
        (
            "default.replication.factor",
            d.replication_factor.to_string(),
            s,
            INT,
        ),
        (
            "min.insync.replicas",
            d.min_insync_replicas.to_string(),
            s,
            INT,
        ),
        (
            "log.retention.ms",
            d.retention_ms.unwrap_or(-1).to_string(),
            s,
            LONG,
        ),
        (
            "log.retention.bytes",
            d.retention_bytes.map_or(-1, |b| b as i64).to_string(),
            s,
            LONG,
        ),
        (
            "auto.create.topics.enable",
            c.auto_create_topics.to_string(),
            s,
            BOOLEAN,
        ),
        (
            "group.initial.rebalance.delay.ms",
            c.group.initial_rebalance_delay.as_millis().to_string(),
            s,
            INT,
        ),
        (
            "offsets.topic.num.partitions",
            c.offsets_partitions.to_string(),
            s,
            INT,
        ),
        (
            "offsets.topic.replication.factor",
            c.offsets_replication_factor.to_string(),
            s,
            INT,
        ),
        (
            "socket.request.max.bytes",
            ctx.shared.config.max_request_size.to_string(),
            s,
            INT,
        ),
    ]
}

/// DescribeConfigs for topics (type 2) and brokers (type 4). Every value is read-only here:
/// Eddy has no AlterConfigs.
pub(crate) fn describe_configs(
    ctx: &Ctx<'_>,
    version: i16,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let mut r = DescribeConfigsResponse::default();
    for res in req.resources {
        let mut out = DescribeConfigsResult::default();
        out.resource_type = res.resource_type;
        out.resource_name = res.resource_name.clone();
        let name = res.resource_name.to_string();
        let entries = match res.resource_type {
            2 => match ctx.cluster().describe_topic(&name) {
                Ok(t) => Ok(topic_configs(ctx, &t)),
                Err(e) => Err((codes::admin(&e), e.to_string())),
            },
            4 => match name.parse::<u32>() {
                Ok(b) if b < ctx.cluster().config().brokers => Ok(broker_configs(ctx, b)),
                _ => Err((E::InvalidRequest.code(), format!("no broker {name:?}"))),
            },
            t => Err((
                E::InvalidRequest.code(),
                format!("resource type {t} is not supported"),
            )),
        };
        match entries {
            Ok(entries) => {
                out.configs = entries
                    .into_iter()
                    .filter(|(n, ..)| {
                        res.configuration_keys
                            .as_ref()
                            .is_none_or(|keys| keys.iter().any(|k| k.as_str() == *n))
                    })
                    .map(|(n, value, source, kind)| {
                        let mut c = DescribeConfigsResourceResult::default();
                        c.name = str(n);
                        c.value = Some(str(value));
                        c.read_only = true;
                        c.config_source = source;
                        if version >= 3 {
                            c.config_type = kind;
                        }
                        c
                    })
                    .collect();
            }
            Err((code, message)) => {
                out.error_code = code;
                out.error_message = Some(str(message));
            }
        }
        r.results.push(out);
    }
    r
}

/// CreatePartitions: grows topics to `count` partitions (placement is Eddy's).
pub(crate) async fn create_partitions(
    ctx: &Ctx<'_>,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut r = CreatePartitionsResponse::default();
    for t in req.topics {
        let mut out = CreatePartitionsTopicResult::default();
        out.name = t.name.clone();
        let name = t.name.0.to_string();
        let outcome = if t.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
            Err((
                E::InvalidRequest.code(),
                "manual replica assignments are not supported".to_string(),
            ))
        } else {
            match (u32::try_from(t.count), ctx.cluster().describe_topic(&name)) {
                (Err(_), _) => Err((E::InvalidPartitions.code(), "count must be positive".into())),
                (_, Err(e)) => Err((codes::admin(&e), e.to_string())),
                (Ok(n), Ok(meta)) if n <= meta.partitions.len() as u32 => Err((
                    E::InvalidPartitions.code(),
                    format!("{name} has {} partitions already", meta.partitions.len()),
                )),
                (Ok(_), Ok(_)) if req.validate_only => Ok(()),
                (Ok(n), Ok(_)) => ctx
                    .cluster()
                    .create_partitions(&name, n)
                    .await
                    .map(|_| ())
                    .map_err(|e| (codes::admin(&e), e.to_string())),
            }
        };
        if let Err((code, message)) = outcome {
            out.error_code = code;
            out.error_message = Some(str(message));
        }
        r.results.push(out);
    }
    r
}
