//! The routes: clusters, topics, events (publish, consume, stream), offsets, groups,
//! `/metrics` and `/openapi.json`.

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use eddy_broker::records::{decode_records, ConsumedRecord};
use eddy_broker::NewTopic;
use eddy_client::{ConsumerConfig, OffsetReset, ProducerRecord};
use eddy_types::Acks;
use futures_util::stream;

use crate::error::{error_body, HttpError};
use crate::model::*;
use crate::state::{check_log_directory, ApiState, ClusterSpec, Session, SessionKey};

type State = web::Data<ApiState>;
type Result<T> = std::result::Result<T, HttpError>;

/// Mounts every route.
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource("/clusters")
            .route(web::get().to(list_clusters))
            .route(web::post().to(create_cluster)),
    )
    .service(resource("/clusters/{name}").route(web::get().to(get_cluster)))
    .service(
        resource("/topics")
            .route(web::get().to(list_topics))
            .route(web::post().to(create_topic)),
    )
    .service(
        resource("/topics/{name}")
            .route(web::get().to(get_topic))
            .route(web::delete().to(delete_topic)),
    )
    .service(
        resource("/events")
            .route(web::get().to(consume))
            .route(web::post().to(publish)),
    )
    .service(resource("/events/stream").route(web::get().to(stream_events)))
    .service(resource("/offsets").route(web::post().to(commit_offset)))
    .service(resource("/groups").route(web::get().to(list_groups)))
    .service(resource("/groups/{id}").route(web::get().to(get_group)))
    .service(resource("/groups/{id}/consumers/{name}").route(web::delete().to(close_consumer)))
    .service(resource("/context/{message_id}").route(web::get().to(get_context)))
    .service(resource("/metrics").route(web::get().to(metrics)))
    .service(resource("/openapi.json").route(web::get().to(openapi)));
}

/// A route whose other methods get the JSON 405 body.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

fn ok_json<T: serde::Serialize>(v: &T) -> HttpResponse {
    HttpResponse::Ok().json(v)
}

// ---- clusters ----

async fn list_clusters(state: State) -> Result<HttpResponse> {
    let out: Vec<ClusterSummary> = state
        .clusters()?
        .into_iter()
        .map(|(name, e)| {
            let meta = e.cluster.metadata();
            ClusterSummary {
                default: name == state.default_cluster(),
                name,
                brokers: meta.brokers,
                brokers_alive: meta.alive.len(),
                topics: meta.topics.len(),
            }
        })
        .collect();
    Ok(ok_json(&out))
}

async fn create_cluster(state: State, body: web::Json<CreateCluster>) -> Result<HttpResponse> {
    let req = body.into_inner();
    let log_directory = req.log_directory.unwrap_or_else(|| ".".into());
    check_log_directory(&log_directory)?;
    let num_brokers = req.num_brokers.unwrap_or(3);
    if !(1..=16).contains(&num_brokers) {
        return Err(HttpError::BadRequest(format!(
            "num_brokers {num_brokers}: 1 to 16 are supported"
        )));
    }
    if let Some(p) = req.partitions {
        if !(1..=state.config.max_partitions).contains(&p) {
            return Err(HttpError::BadRequest(format!(
                "partitions {p}: 1 to {} are supported",
                state.config.max_partitions
            )));
        }
    }
    check_name("cluster", &req.name)?;
    let spec = ClusterSpec {
        name: req.name.clone(),
        log_directory,
        num_brokers,
        partitions: req.partitions,
        retention_ms: req.retention_ms,
    };
    state.create_cluster(spec).await?;
    let entry = state.cluster(Some(&req.name))?;
    let view = ClusterView::new(
        &entry.cluster.metadata(),
        entry.log_directory.display().to_string(),
    );
    Ok(HttpResponse::Created().json(view))
}

async fn get_cluster(state: State, name: web::Path<String>) -> Result<HttpResponse> {
    let entry = state.cluster(Some(&name))?;
    Ok(ok_json(&ClusterView::new(
        &entry.cluster.metadata(),
        entry.log_directory.display().to_string(),
    )))
}

fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(HttpError::BadRequest(format!(
            "{what} name {name:?} must be 1 to 64 characters of [a-zA-Z0-9._-], not starting with '.'"
        )))
    }
}

// ---- topics ----

async fn list_topics(state: State, q: web::Query<ClusterQuery>) -> Result<HttpResponse> {
    let entry = state.cluster(q.cluster.as_deref())?;
    let topics: Vec<TopicView> = entry
        .cluster
        .topics()
        .iter()
        .map(|t| TopicView::new(t))
        .collect();
    Ok(ok_json(&topics))
}

async fn create_topic(state: State, body: web::Json<CreateTopic>) -> Result<HttpResponse> {
    let req = body.into_inner();
    let entry = state.cluster(req.cluster.as_deref())?;
    if let Some(p) = req.partitions {
        if p > state.config.max_partitions {
            return Err(HttpError::BadRequest(format!(
                "partitions {p}: at most {} per request",
                state.config.max_partitions
            )));
        }
    }
    let mut topic = NewTopic::new(req.name);
    topic.partitions = req.partitions;
    topic.replication_factor = req.replication_factor;
    if let Some(ms) = req.retention_ms {
        if ms < -1 {
            return Err(HttpError::BadRequest(format!(
                "retention_ms {ms}: use -1 to keep forever"
            )));
        }
        topic.retention_ms = Some((ms >= 0).then_some(ms));
    }
    if let Some(b) = req.retention_bytes {
        if b < -1 {
            return Err(HttpError::BadRequest(format!(
                "retention_bytes {b}: use -1 for no limit"
            )));
        }
        topic.retention_bytes = Some((b >= 0).then_some(b as u64));
    }
    let meta = entry.cluster.create_topic(topic).await?;
    Ok(HttpResponse::Created().json(TopicView::new(&meta)))
}

async fn get_topic(
    state: State,
    name: web::Path<String>,
    q: web::Query<ClusterQuery>,
) -> Result<HttpResponse> {
    let entry = state.cluster(q.cluster.as_deref())?;
    let meta = entry.cluster.describe_topic(&name)?;
    Ok(ok_json(&TopicView::new(&meta)))
}

async fn delete_topic(
    state: State,
    name: web::Path<String>,
    q: web::Query<ClusterQuery>,
) -> Result<HttpResponse> {
    let entry = state.cluster(q.cluster.as_deref())?;
    if name.starts_with("__") {
        return Err(HttpError::BadRequest(format!(
            "{name} is an internal topic and cannot be deleted"
        )));
    }
    entry.cluster.delete_topic(&name).await?;
    Ok(HttpResponse::NoContent().finish())
}

// ---- events ----

async fn publish(state: State, body: web::Json<Publish>) -> Result<HttpResponse> {
    let req = body.into_inner();
    let entry = state.cluster(req.cluster.as_deref())?;
    let acks = match req.acks {
        Some(a) => a.acks()?,
        None => Acks::All,
    };
    let format = req.format;
    let single = req.key.is_some()
        || req.partition.is_some()
        || req.headers.is_some()
        || req.value.is_some()
        || req.timestamp.is_some();
    let records = match (req.records, single) {
        (Some(_), true) => {
            return Err(HttpError::BadRequest(
                "give either records or one record's fields (key, partition, headers, value), \
                 not both"
                    .into(),
            ))
        }
        (Some(r), false) if r.is_empty() => {
            return Err(HttpError::BadRequest("records is empty".into()))
        }
        (Some(r), false) => r,
        (None, _) => vec![RecordIn {
            key: req.key,
            partition: req.partition,
            headers: req.headers,
            value: req.value,
            timestamp: req.timestamp,
        }],
    };
    if records.len() > state.config.max_records {
        return Err(HttpError::BadRequest(format!(
            "{} records: at most {} per request",
            records.len(),
            state.config.max_records
        )));
    }
    // Check everything before sending anything: a bad record fails the request whole.
    let meta = entry.cluster.describe_topic(&req.topic)?;
    let partitions = meta.partitions.len() as u32;
    let mut out = Vec::with_capacity(records.len());
    for (i, r) in records.into_iter().enumerate() {
        if let Some(p) = r.partition {
            if p >= partitions {
                return Err(HttpError::NotFound(format!(
                    "record {i}: topic {} has no partition {p} ({partitions} partitions)",
                    req.topic
                )));
            }
        }
        let mut pr = ProducerRecord {
            topic: req.topic.clone(),
            partition: r.partition,
            key: r.key.map(|k| text_to_bytes(k, format, "key")).transpose()?,
            value: value_to_bytes(r.value, format)?,
            headers: Vec::new(),
            timestamp: r.timestamp,
        };
        for (k, v) in r.headers.unwrap_or_default() {
            let v = text_to_bytes(v, format, "a header value")?;
            pr.headers.push((k, Some(v)));
        }
        out.push(pr);
    }
    let producer = entry.producer(acks).await?;
    let results = producer.send_batch(out).await;
    let mut written = Vec::with_capacity(results.len());
    let mut first_error = None;
    let mut per_record = Vec::with_capacity(results.len());
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(m) => {
                let w = Written {
                    partition: m.partition,
                    offset: u64::try_from(m.offset).ok(),
                    timestamp: m.timestamp,
                };
                per_record.push(serde_json::json!(&w));
                written.push(w);
            }
            Err(e) => {
                per_record.push(serde_json::json!({"error": e.to_string()}));
                if first_error.is_none() {
                    first_error = Some((i, e));
                }
            }
        }
    }
    if let Some((i, e)) = first_error {
        // Say which records were written: nothing is lost silently.
        let e = HttpError::from(e);
        let (status, code) = e.status_and_code();
        let mut body = error_body(code, format!("record {i}: {e}"));
        body["records"] = serde_json::Value::Array(per_record);
        return Ok(HttpResponse::build(status).json(body));
    }
    Ok(ok_json(&Published {
        topic: req.topic,
        records: written,
    }))
}

struct ConsumeParams {
    max: usize,
    wait: Duration,
    format: Format,
}

fn consume_params(state: &ApiState, q: &ConsumeQuery) -> Result<ConsumeParams> {
    let max = q.max.unwrap_or(100);
    if max == 0 || max > state.config.max_records {
        return Err(HttpError::BadRequest(format!(
            "max {max}: 1 to {} records",
            state.config.max_records
        )));
    }
    let wait_ms = q.wait_ms.unwrap_or(1000);
    let limit = state.config.max_wait.as_millis() as u64;
    if wait_ms > limit {
        return Err(HttpError::BadRequest(format!(
            "wait_ms {wait_ms}: at most {limit}"
        )));
    }
    Ok(ConsumeParams {
        max,
        wait: Duration::from_millis(wait_ms),
        format: q.format.unwrap_or_default(),
    })
}

async fn consume(state: State, q: web::Query<ConsumeQuery>) -> Result<HttpResponse> {
    let q = q.into_inner();
    let params = consume_params(&state, &q)?;
    match &q.group {
        Some(group) => {
            if q.partition.is_some() || q.offset.is_some() {
                return Err(HttpError::BadRequest(
                    "give either group (group consumption) or partition and offset (a direct \
                     read), not both"
                        .into(),
                ));
            }
            consume_group(&state, &q, group.clone(), params).await
        }
        None => {
            if q.consumer.is_some() || q.reset.is_some() || q.commit.is_some() {
                return Err(HttpError::BadRequest(
                    "consumer, reset and commit apply to group consumption only".into(),
                ));
            }
            consume_partition(&state, &q, params).await
        }
    }
}

/// A direct read of one partition from an offset (default: its log start).
async fn consume_partition(
    state: &ApiState,
    q: &ConsumeQuery,
    p: ConsumeParams,
) -> Result<HttpResponse> {
    let entry = state.cluster(q.cluster.as_deref())?;
    let partition = q.partition.ok_or_else(|| {
        HttpError::BadRequest("give a group, or a partition (and an offset) to read".into())
    })?;
    let cluster = &entry.cluster;
    cluster.describe_topic(&q.topic)?;
    let offset = start_offset(cluster, &q.topic, partition, q.offset).await?;
    let (records, next_offset, high_watermark) =
        read_partition(cluster, &q.topic, partition, offset, &p).await?;
    Ok(ok_json(&Consumed {
        records,
        next_offset: Some(next_offset),
        high_watermark: Some(high_watermark),
    }))
}

/// Where a direct read starts: `offset`, else the partition's log start.
async fn start_offset(
    cluster: &eddy_broker::Cluster,
    topic: &str,
    partition: u32,
    offset: Option<u64>,
) -> Result<u64> {
    match offset {
        Some(o) => Ok(o),
        None => Ok(cluster
            .list_offsets(topic, partition, None)
            .await?
            .log_start),
    }
}

/// One direct read (a long poll of `p.wait`): at most `p.max` records from `offset`, with the
/// offset the next read starts at and the high watermark.
async fn read_partition(
    cluster: &eddy_broker::Cluster,
    topic: &str,
    partition: u32,
    offset: u64,
    p: &ConsumeParams,
) -> Result<(Vec<RecordOut>, u64, u64)> {
    let reply = cluster
        .fetch_wait(topic, partition, offset, FETCH_BYTES, p.wait)
        .await?;
    let mut records = decode_records(reply.records, offset)?;
    records.truncate(p.max);
    let next = records.last().map_or(offset, |r| r.offset + 1);
    let out = records
        .into_iter()
        .map(|r| record_out(topic.to_owned(), partition, r, p.format))
        .collect();
    Ok((out, next, reply.high_watermark))
}

/// Bytes asked per direct fetch.
const FETCH_BYTES: usize = 1 << 20;

fn group_consumer_config(group: &str, name: &str, reset: Option<Reset>) -> ConsumerConfig {
    ConsumerConfig {
        client_id: format!("eddy-http-{name}"),
        enable_auto_commit: false,
        auto_offset_reset: match reset {
            Some(Reset::Latest) => OffsetReset::Latest,
            Some(Reset::Earliest) | None => OffsetReset::Earliest,
        },
        session_timeout: Duration::from_secs(10),
        heartbeat_interval: Duration::from_secs(1),
        ..ConsumerConfig::with_group(group)
    }
}

/// Consumption as a member of `group`, through a consumer kept between requests.
async fn consume_group(
    state: &ApiState,
    q: &ConsumeQuery,
    group: String,
    p: ConsumeParams,
) -> Result<HttpResponse> {
    state.reap_sessions();
    let entry = state.cluster(q.cluster.as_deref())?;
    entry.cluster.describe_topic(&q.topic)?;
    let name = q.consumer.clone().unwrap_or_else(|| "http".into());
    check_name("consumer", &name)?;
    let key = SessionKey {
        cluster: q
            .cluster
            .clone()
            .unwrap_or_else(|| state.default_cluster().to_owned()),
        group: group.clone(),
        consumer: name.clone(),
        topic: q.topic.clone(),
    };
    let session = {
        let mut sessions = state
            .sessions
            .lock()
            .map_err(|_| HttpError::Unavailable("the session table is poisoned".into()))?;
        if let Some(s) = sessions.get(&key) {
            s.clone()
        } else {
            if sessions.len() >= state.config.max_sessions {
                return Err(HttpError::Limit(format!(
                    "{} group consumers are open, the server's limit; retry once some are idle",
                    sessions.len()
                )));
            }
            let mut config = group_consumer_config(&group, &name, q.reset);
            config.max_poll_records = state.config.max_records;
            let mut consumer = eddy_client::Consumer::new(&entry.cluster, config)?;
            consumer.subscribe([q.topic.clone()])?;
            let s = std::sync::Arc::new(Session {
                consumer: tokio::sync::Mutex::new(Some(consumer)),
                last_used: std::sync::Mutex::new(std::time::Instant::now()),
            });
            sessions.insert(key.clone(), s.clone());
            s
        }
    };
    session.touch();
    let mut guard = session.consumer.lock().await;
    let Some(consumer) = guard.as_mut() else {
        return Err(HttpError::Unavailable(
            "this group consumer was just closed for being idle; retry".into(),
        ));
    };
    let result = poll_some(consumer, &p, q.commit.unwrap_or(true)).await;
    session.touch();
    if result.is_err() {
        // Start clean next time: the member may have been fenced.
        if let Some(c) = guard.take() {
            actix_rt::spawn(async move {
                let _ = c.close().await;
            });
        }
        if let Ok(mut sessions) = state.sessions.lock() {
            sessions.remove(&key);
        }
    }
    let records = result?;
    Ok(ok_json(&Consumed {
        records,
        next_offset: None,
        high_watermark: None,
    }))
}

/// Polls once, keeps at most `max` records (the consumer is moved back to the first record
/// not returned) and commits what is returned if asked.
async fn poll_some(
    consumer: &mut eddy_client::Consumer,
    p: &ConsumeParams,
    commit: bool,
) -> Result<Vec<RecordOut>> {
    let mut records = consumer.poll(p.wait).await?;
    if records.len() > p.max {
        let mut rewind: BTreeMap<(String, u32), u64> = BTreeMap::new();
        for r in &records[p.max..] {
            rewind
                .entry((r.topic.clone(), r.partition))
                .and_modify(|o| *o = (*o).min(r.offset))
                .or_insert(r.offset);
        }
        records.truncate(p.max);
        for ((topic, partition), offset) in rewind {
            consumer.seek(&topic, partition, offset)?;
        }
    }
    if commit && !records.is_empty() {
        let mut next: BTreeMap<(String, u32), u64> = BTreeMap::new();
        for r in &records {
            let e = next.entry((r.topic.clone(), r.partition)).or_insert(0);
            *e = (*e).max(r.offset + 1);
        }
        let offsets: Vec<_> = next.into_iter().collect();
        consumer.commit_offsets(&offsets).await?;
    }
    Ok(records
        .into_iter()
        .map(|r| {
            record_out(
                r.topic,
                r.partition,
                ConsumedRecord {
                    offset: r.offset,
                    timestamp: r.timestamp,
                    key: r.key,
                    value: r.value,
                    headers: r.headers,
                },
                p.format,
            )
        })
        .collect())
}

/// Server-Sent Events: one `record` event per record as it is committed, a comment line
/// while there is nothing new (so a closed client is noticed).
async fn stream_events(state: State, q: web::Query<ConsumeQuery>) -> Result<HttpResponse> {
    let q = q.into_inner();
    let mut params = consume_params(&state, &q)?;
    if q.wait_ms.is_none() {
        params.wait = state.config.max_wait.min(Duration::from_secs(15));
    }
    let entry = state.cluster(q.cluster.as_deref())?;
    entry.cluster.describe_topic(&q.topic)?;
    let source = match (&q.group, q.partition) {
        (Some(group), None) if q.offset.is_none() => {
            let name = q.consumer.clone().unwrap_or_else(|| "sse".into());
            check_name("consumer", &name)?;
            let mut config = group_consumer_config(group, &name, q.reset);
            config.max_poll_records = params.max;
            let mut consumer = eddy_client::Consumer::new(&entry.cluster, config)?;
            consumer.subscribe([q.topic.clone()])?;
            Source::Group(Box::new(GroupStream {
                consumer: Some(consumer),
                commit: q.commit.unwrap_or(true),
            }))
        }
        (None, Some(partition)) => {
            let offset = start_offset(&entry.cluster, &q.topic, partition, q.offset).await?;
            Source::Partition {
                cluster: entry.cluster.clone(),
                topic: q.topic.clone(),
                partition,
                offset,
            }
        }
        _ => {
            return Err(HttpError::BadRequest(
                "stream needs either a group or a partition (and an offset)".into(),
            ))
        }
    };
    let events = stream::unfold((source, params), |(mut source, params)| async move {
        let chunk = match source.next(&params).await {
            Ok(records) if records.is_empty() => Bytes::from_static(b": waiting\n\n"),
            Ok(records) => {
                let mut out = String::new();
                for r in records {
                    let data = serde_json::to_string(&r).unwrap_or_default();
                    out.push_str(&format!(
                        "id: {}:{}\nevent: record\ndata: {data}\n\n",
                        r.partition, r.offset
                    ));
                }
                Bytes::from(out)
            }
            Err(e) => {
                let (_, code) = e.status_and_code();
                let data = error_body(code, e.to_string());
                let chunk = Bytes::from(format!("event: error\ndata: {data}\n\n"));
                // One error event, then the stream ends.
                return Some((Ok::<_, actix_web::Error>(chunk), (Source::Done, params)));
            }
        };
        match source {
            Source::Done => None,
            s => Some((Ok(chunk), (s, params))),
        }
    });
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .streaming(events))
}

enum Source {
    Group(Box<GroupStream>),
    Partition {
        cluster: eddy_broker::Cluster,
        topic: String,
        partition: u32,
        offset: u64,
    },
    Done,
}

/// A stream's own group consumer: closed (leaving the group) when the client goes away.
struct GroupStream {
    consumer: Option<eddy_client::Consumer>,
    commit: bool,
}

impl Drop for GroupStream {
    fn drop(&mut self) {
        if let Some(c) = self.consumer.take() {
            actix_rt::spawn(async move {
                let _ = c.close().await;
            });
        }
    }
}

impl Source {
    async fn next(&mut self, p: &ConsumeParams) -> Result<Vec<RecordOut>> {
        match self {
            Source::Group(g) => match g.consumer.as_mut() {
                Some(c) => poll_some(c, p, g.commit).await,
                None => Ok(Vec::new()),
            },
            Source::Partition {
                cluster,
                topic,
                partition,
                offset,
            } => {
                let (records, next, _) =
                    read_partition(cluster, topic, *partition, *offset, p).await?;
                *offset = next;
                Ok(records)
            }
            Source::Done => Ok(Vec::new()),
        }
    }
}

// ---- offsets and groups ----

async fn commit_offset(state: State, body: web::Json<CommitOffset>) -> Result<HttpResponse> {
    let req = body.into_inner();
    let entry = state.cluster(req.cluster.as_deref())?;
    let meta = entry.cluster.describe_topic(&req.topic)?;
    if req.partition as usize >= meta.partitions.len() {
        return Err(HttpError::NotFound(format!(
            "topic {} has no partition {}",
            req.topic, req.partition
        )));
    }
    let tp = (req.topic.clone(), req.partition);
    // A consumer of this server holding the partition commits as the member it is.
    let sessions: Vec<_> = state
        .sessions
        .lock()
        .map(|s| {
            s.iter()
                .filter(|(k, _)| {
                    k.group == req.group
                        && k.topic == req.topic
                        && Some(k.cluster.as_str())
                            == Some(req.cluster.as_deref().unwrap_or(state.default_cluster()))
                })
                .map(|(_, s)| s.clone())
                .collect()
        })
        .unwrap_or_default();
    for s in sessions {
        let mut guard = s.consumer.lock().await;
        if let Some(c) = guard.as_mut() {
            if c.assignment().contains(&tp) {
                c.commit_offsets(&[(tp.clone(), req.offset)]).await?;
                return Ok(ok_json(&serde_json::json!({"committed": req.offset})));
            }
        }
    }
    // Otherwise as a standalone consumer (generation -1), which Kafka allows for a group
    // with no active members.
    let mut c = eddy_client::Consumer::new(
        &entry.cluster,
        ConsumerConfig::with_group(req.group.clone()),
    )?;
    c.assign([tp.clone()])?;
    c.commit_offsets(&[(tp, req.offset)]).await?;
    Ok(ok_json(&serde_json::json!({"committed": req.offset})))
}

async fn list_groups(state: State, q: web::Query<ClusterQuery>) -> Result<HttpResponse> {
    let entry = state.cluster(q.cluster.as_deref())?;
    let groups: Vec<GroupSummary> = entry
        .cluster
        .list_groups()
        .await?
        .into_iter()
        .map(|(group, s)| GroupSummary {
            group,
            state: s.as_str().to_owned(),
        })
        .collect();
    Ok(ok_json(&groups))
}

async fn get_group(
    state: State,
    id: web::Path<String>,
    q: web::Query<ClusterQuery>,
) -> Result<HttpResponse> {
    let entry = state.cluster(q.cluster.as_deref())?;
    let g = entry.cluster.describe_group(&id).await?;
    // Kafka describes an unknown group as an empty one; so does an empty group with no
    // offsets: neither exists for the API.
    if g.members.is_empty() && g.partitions.is_empty() {
        return Err(HttpError::NotFound(format!("group {id} does not exist")));
    }
    Ok(ok_json(&GroupView::new(g)))
}

/// Closes the group consumer `name` of `GET /events?group=id&consumer=name` (every topic it
/// reads): it leaves the group now instead of after the idle timeout.
async fn close_consumer(
    state: State,
    path: web::Path<(String, String)>,
    q: web::Query<ClusterQuery>,
) -> Result<HttpResponse> {
    let (group, name) = path.into_inner();
    let cluster = q
        .cluster
        .clone()
        .unwrap_or_else(|| state.default_cluster().to_owned());
    let closing: Vec<_> = match state.sessions.lock() {
        Ok(mut sessions) => {
            let keys: Vec<SessionKey> = sessions
                .keys()
                .filter(|k| k.cluster == cluster && k.group == group && k.consumer == name)
                .cloned()
                .collect();
            keys.iter().filter_map(|k| sessions.remove(k)).collect()
        }
        Err(_) => {
            return Err(HttpError::Unavailable(
                "the session table is poisoned".into(),
            ))
        }
    };
    if closing.is_empty() {
        return Err(HttpError::NotFound(format!(
            "group {group} has no consumer {name} on this server"
        )));
    }
    for s in closing {
        if let Some(c) = s.consumer.lock().await.take() {
            c.close().await?;
        }
    }
    Ok(HttpResponse::NoContent().finish())
}

// ---- metrics and the API document ----

// ---- context bubbles ----

/// The most messages and characters one context may be asked for.
const MAX_CONTEXT_MESSAGES: usize = 10_000;
const MAX_CONTEXT_CHARS: usize = 10_000_000;

async fn get_context(
    state: State,
    id: web::Path<String>,
    q: web::Query<ContextQuery>,
) -> Result<HttpResponse> {
    let lookup = state
        .context
        .clone()
        .ok_or_else(|| HttpError::Unavailable("no context consumer runs in this server".into()))?;
    let default = eddy_context::Budget::default();
    let budget = eddy_context::Budget {
        max_messages: q.max_messages.unwrap_or(default.max_messages),
        max_chars: q.max_chars.unwrap_or(default.max_chars),
    };
    if !(1..=MAX_CONTEXT_MESSAGES).contains(&budget.max_messages) {
        return Err(HttpError::BadRequest(format!(
            "max_messages must be 1 to {MAX_CONTEXT_MESSAGES}"
        )));
    }
    if !(1..=MAX_CONTEXT_CHARS).contains(&budget.max_chars) {
        return Err(HttpError::BadRequest(format!(
            "max_chars must be 1 to {MAX_CONTEXT_CHARS}"
        )));
    }
    let id = id.into_inner();
    let wanted = id.clone();
    // The strategy is shared with the consumer (a lock); keep it off the reactor.
    let context = web::block(move || lookup.context_for(&wanted, &budget))
        .await
        .map_err(|e| HttpError::Unavailable(format!("context lookup: {e}")))?;
    match context {
        Some(c) => Ok(ok_json(&c)),
        None => Err(HttpError::NotFound(format!(
            "message {id:?} has not been observed by the context consumer"
        ))),
    }
}

async fn metrics(state: State) -> Result<HttpResponse> {
    let handle = state
        .metrics
        .as_ref()
        .ok_or_else(|| HttpError::NotFound("this server runs without a metrics recorder".into()))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/plain; version=0.0.4"))
        .body(handle.render()))
}

async fn openapi(state: State) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(state.openapi.clone())
}

/// A request whose path matches no route.
pub(crate) async fn not_found(req: HttpRequest) -> HttpResponse {
    let e = HttpError::NotFound(format!("no route {}; see /openapi.json", req.path()));
    actix_web::ResponseError::error_response(&e)
}

/// A request to a route that does not serve its method.
async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    let e =
        HttpError::MethodNotAllowed(format!("{} is not served on {}", req.method(), req.path()));
    actix_web::ResponseError::error_response(&e)
}
