//! The JSON bodies and query strings of the API, and how record keys, values and headers move
//! between JSON and bytes. Every request type refuses unknown fields.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use eddy_broker::metadata::{ClusterMetadata, TopicMeta};
use eddy_broker::records::ConsumedRecord;
use eddy_types::Acks;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::HttpError;

/// How record keys, values and header values are written in JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Values are JSON documents, stored as their compact text; keys and header values are
    /// strings, stored as UTF-8. On read, a value that is not JSON comes back as
    /// `value_base64`.
    #[default]
    Json,
    /// Keys, values and header values are base64 strings of the bytes.
    Base64,
}

/// `acks` as Kafka spells it: `0`, `1`, `-1` or `"all"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum AcksParam {
    /// `0`, `1` or `-1`.
    Number(i64),
    /// `"all"`, `"0"`, `"1"`, `"-1"`.
    Text(AcksText),
}

/// A short string for [`AcksParam`] (a separate type keeps `AcksParam` `Copy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcksText(Acks);

impl<'de> Deserialize<'de> for AcksText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<AcksText, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "all" | "-1" => Ok(AcksText(Acks::All)),
            "1" => Ok(AcksText(Acks::Leader)),
            "0" => Ok(AcksText(Acks::None)),
            other => Err(serde::de::Error::custom(format!(
                "acks {other:?} is not one of 0, 1, all"
            ))),
        }
    }
}

impl AcksParam {
    pub(crate) fn acks(self) -> Result<Acks, HttpError> {
        match self {
            AcksParam::Number(-1) => Ok(Acks::All),
            AcksParam::Number(1) => Ok(Acks::Leader),
            AcksParam::Number(0) => Ok(Acks::None),
            AcksParam::Number(n) => Err(HttpError::BadRequest(format!(
                "acks {n} is not one of 0, 1, -1, \"all\""
            ))),
            AcksParam::Text(AcksText(a)) => Ok(a),
        }
    }
}

/// `POST /clusters`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateCluster {
    /// The cluster's name.
    pub name: String,
    /// Brokers, created together (default 3).
    pub num_brokers: Option<u32>,
    /// Parent directory of the cluster's data, relative to the server's data directory
    /// (default: the data directory itself). The cluster lives in `<log_directory>/<name>/`.
    pub log_directory: Option<String>,
    /// Default partitions of its topics (default 1).
    pub partitions: Option<u32>,
    /// Default `retention.ms` of its topics (default 7 days; -1 keeps forever).
    pub retention_ms: Option<i64>,
}

/// A cluster as `GET /clusters/{name}` shows it.
#[derive(Debug, Serialize)]
pub struct ClusterView {
    /// Its name.
    pub name: String,
    /// Its data directory.
    pub log_directory: String,
    /// Its brokers.
    pub brokers: Vec<BrokerView>,
    /// Its topics (internal ones included).
    pub topics: Vec<TopicView>,
}

/// One line of `GET /clusters`.
#[derive(Debug, Serialize)]
pub struct ClusterSummary {
    /// Its name.
    pub name: String,
    /// Number of brokers.
    pub brokers: u32,
    /// Brokers up now.
    pub brokers_alive: usize,
    /// Number of topics.
    pub topics: usize,
    /// Whether the Kafka listeners serve it (the server's main cluster).
    pub default: bool,
}

/// A broker of a cluster.
#[derive(Debug, Serialize)]
pub struct BrokerView {
    /// Its id.
    pub id: u32,
    /// Whether it is up.
    pub alive: bool,
}

/// `POST /topics`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTopic {
    /// The topic's name.
    pub name: String,
    /// The cluster (default: the server's main cluster).
    pub cluster: Option<String>,
    /// Partitions (the cluster's default otherwise).
    pub partitions: Option<u32>,
    /// Replicas per partition (default: 3, at most the number of brokers).
    pub replication_factor: Option<u32>,
    /// `retention.ms` (-1 keeps forever).
    pub retention_ms: Option<i64>,
    /// `retention.bytes` per partition (-1: no limit).
    pub retention_bytes: Option<i64>,
}

/// A topic, with every partition's leader and in-sync replicas.
#[derive(Debug, Serialize)]
pub struct TopicView {
    /// Its name.
    pub name: String,
    /// Number of partitions.
    pub partition_count: usize,
    /// Replicas per partition.
    pub replication_factor: usize,
    /// `retention.ms` (`null`: forever).
    pub retention_ms: Option<i64>,
    /// `retention.bytes` (`null`: no limit).
    pub retention_bytes: Option<u64>,
    /// `min.insync.replicas`.
    pub min_insync_replicas: u32,
    /// Its partitions.
    pub partitions: Vec<PartitionView>,
}

/// A partition's placement.
#[derive(Debug, Serialize)]
pub struct PartitionView {
    /// Its index.
    pub partition: u32,
    /// The leading broker (`null`: offline).
    pub leader: Option<u32>,
    /// The leader epoch.
    pub leader_epoch: i32,
    /// Brokers holding a replica.
    pub replicas: Vec<u32>,
    /// In-sync replicas.
    pub isr: Vec<u32>,
}

impl TopicView {
    pub(crate) fn new(t: &TopicMeta) -> TopicView {
        TopicView {
            name: t.name.to_string(),
            partition_count: t.partitions.len(),
            replication_factor: t.partitions.first().map_or(0, |p| p.replicas.len()),
            retention_ms: t.config.retention_ms,
            retention_bytes: t.config.retention_bytes,
            min_insync_replicas: t.config.min_insync_replicas,
            partitions: t
                .partitions
                .iter()
                .map(|p| PartitionView {
                    partition: p.index,
                    leader: p.leader.map(|b| b.0),
                    leader_epoch: p.leader_epoch,
                    replicas: p.replicas.iter().map(|b| b.0).collect(),
                    isr: p.isr.iter().map(|b| b.0).collect(),
                })
                .collect(),
        }
    }
}

impl ClusterView {
    pub(crate) fn new(meta: &ClusterMetadata, log_directory: String) -> ClusterView {
        ClusterView {
            name: meta.name.clone(),
            log_directory,
            brokers: (0..meta.brokers)
                .map(|id| BrokerView {
                    id,
                    alive: meta.alive.contains(&eddy_types::BrokerId(id)),
                })
                .collect(),
            topics: meta.topics.values().map(|t| TopicView::new(t)).collect(),
        }
    }
}

/// `?cluster=` on the topic and group routes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterQuery {
    /// The cluster (default: the server's main cluster).
    pub cluster: Option<String>,
}

/// The query of `GET /context/{message_id}`: the budget.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextQuery {
    /// Most messages, thread and background together (default 50).
    pub max_messages: Option<usize>,
    /// Most characters of content (default 16,000).
    pub max_chars: Option<usize>,
}

/// One record of `POST /events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordIn {
    /// The key: a string (json format) or base64.
    pub key: Option<String>,
    /// An explicit partition; else the key decides, else round-robin.
    pub partition: Option<u32>,
    /// Headers: name to a string (json) or base64 value.
    pub headers: Option<BTreeMap<String, String>>,
    /// The value: any JSON (json format) or a base64 string; `null` or absent is a tombstone.
    #[serde(default)]
    pub value: Option<Value>,
    /// Creation time, ms since the epoch (default: now).
    pub timestamp: Option<i64>,
}

/// `POST /events`: one record (`key`, `partition`, `headers`, `value` at the top level) or
/// many (`records`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    /// The topic.
    pub topic: String,
    /// The cluster (default: the server's main cluster).
    pub cluster: Option<String>,
    /// `0`, `1` or `all` (default `all`).
    pub acks: Option<AcksParam>,
    /// How keys and values are written (default `json`).
    #[serde(default)]
    pub format: Format,
    /// A batch of records.
    pub records: Option<Vec<RecordIn>>,
    /// The one record's key.
    pub key: Option<String>,
    /// The one record's partition.
    pub partition: Option<u32>,
    /// The one record's headers.
    pub headers: Option<BTreeMap<String, String>>,
    /// The one record's value.
    #[serde(default)]
    pub value: Option<Value>,
    /// The one record's timestamp.
    pub timestamp: Option<i64>,
}

/// Where one published record was written.
#[derive(Debug, Serialize)]
pub struct Written {
    /// Its partition.
    pub partition: u32,
    /// Its offset (`null` with acks=0, which gets no offsets).
    pub offset: Option<u64>,
    /// Its timestamp.
    pub timestamp: i64,
}

/// The answer to `POST /events`.
#[derive(Debug, Serialize)]
pub struct Published {
    /// The topic.
    pub topic: String,
    /// One entry per record, in request order.
    pub records: Vec<Written>,
}

/// `GET /events` and `GET /events/stream`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumeQuery {
    /// The topic.
    pub topic: String,
    /// The cluster (default: the server's main cluster).
    pub cluster: Option<String>,
    /// Consume as a member of this group.
    pub group: Option<String>,
    /// Within a group: the name of this consumer instance (default `http`). Instances of a
    /// group share its partitions.
    pub consumer: Option<String>,
    /// Without a group: the partition to read.
    pub partition: Option<u32>,
    /// Without a group: the first offset to read (default 0: the log start).
    pub offset: Option<u64>,
    /// Most records to return (default 100).
    pub max: Option<usize>,
    /// How long to wait for a record (default 1000 ms).
    pub wait_ms: Option<u64>,
    /// How keys and values are written (default `json`).
    pub format: Option<Format>,
    /// In a group, where to start without a committed offset: `earliest` (default) or
    /// `latest`.
    pub reset: Option<Reset>,
    /// In a group: commit the returned records before answering (default true).
    pub commit: Option<bool>,
}

/// `auto.offset.reset` of an HTTP group consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reset {
    /// The log start.
    Earliest,
    /// The log end.
    Latest,
}

/// One consumed record.
#[derive(Debug, Serialize)]
pub struct RecordOut {
    /// Its topic.
    pub topic: String,
    /// Its partition.
    pub partition: u32,
    /// Its offset.
    pub offset: u64,
    /// Its timestamp (ms).
    pub timestamp: i64,
    /// Its key.
    pub key: Option<String>,
    /// Its value (json format, when it is JSON; `null`: a tombstone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// Its value in base64 (base64 format, or a value that is not JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
    /// Its headers.
    pub headers: BTreeMap<String, Option<String>>,
}

/// The answer to `GET /events`.
#[derive(Debug, Serialize)]
pub struct Consumed {
    /// The records, in offset order per partition.
    pub records: Vec<RecordOut>,
    /// Without a group: where the next read starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<u64>,
    /// Without a group: the partition's high watermark.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub high_watermark: Option<u64>,
}

/// `POST /offsets`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitOffset {
    /// The group.
    pub group: String,
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The next offset the group reads.
    pub offset: u64,
    /// The cluster (default: the server's main cluster).
    pub cluster: Option<String>,
}

/// A group in `GET /groups`.
#[derive(Debug, Serialize)]
pub struct GroupSummary {
    /// The group id.
    pub group: String,
    /// Its state.
    pub state: String,
}

/// `GET /groups/{id}`.
#[derive(Debug, Serialize)]
pub struct GroupView {
    /// The group id.
    pub group: String,
    /// Its state.
    pub state: String,
    /// Its generation.
    pub generation: i32,
    /// The assignor in use.
    pub protocol: Option<String>,
    /// Its members.
    pub members: Vec<MemberView>,
    /// Per partition: owner, committed offset, log end and lag.
    pub partitions: Vec<LagView>,
}

/// A group member.
#[derive(Debug, Serialize)]
pub struct MemberView {
    /// Its member id.
    pub member_id: String,
    /// Its client id.
    pub client_id: String,
    /// Where it connects from.
    pub host: String,
    /// Its partitions by topic.
    pub assignment: BTreeMap<String, Vec<u32>>,
}

/// A group's position on one partition.
#[derive(Debug, Serialize)]
pub struct LagView {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The member it is assigned to.
    pub member_id: Option<String>,
    /// The committed offset.
    pub committed: Option<i64>,
    /// The high watermark.
    pub log_end: Option<u64>,
    /// `log_end - committed`.
    pub lag: Option<u64>,
}

impl GroupView {
    pub(crate) fn new(g: eddy_broker::GroupOverview) -> GroupView {
        GroupView {
            group: g.group,
            state: g.state.as_str().to_owned(),
            generation: g.generation,
            protocol: g.protocol,
            members: g
                .members
                .into_iter()
                .map(|m| MemberView {
                    member_id: m.member_id,
                    client_id: m.client_id,
                    host: m.host,
                    assignment: m.assignment.into_iter().collect(),
                })
                .collect(),
            partitions: g
                .partitions
                .into_iter()
                .map(|p| LagView {
                    topic: p.topic,
                    partition: p.partition,
                    member_id: p.member_id,
                    committed: p.committed,
                    log_end: p.log_end,
                    lag: p.lag,
                })
                .collect(),
        }
    }
}

/// Bytes of a key or header value written as a string in `format`.
pub(crate) fn text_to_bytes(s: String, format: Format, what: &str) -> Result<Bytes, HttpError> {
    match format {
        Format::Json => Ok(Bytes::from(s)),
        Format::Base64 => BASE64
            .decode(s.as_bytes())
            .map(Bytes::from)
            .map_err(|e| HttpError::BadRequest(format!("{what} is not valid base64: {e}"))),
    }
}

/// Bytes of a value written in `format` (`None`: a tombstone).
pub(crate) fn value_to_bytes(v: Option<Value>, format: Format) -> Result<Option<Bytes>, HttpError> {
    match (v, format) {
        (None | Some(Value::Null), _) => Ok(None),
        (Some(v), Format::Json) => Ok(Some(Bytes::from(v.to_string()))),
        (Some(Value::String(s)), Format::Base64) => text_to_bytes(s, format, "value").map(Some),
        (Some(_), Format::Base64) => Err(HttpError::BadRequest(
            "with format base64 a value must be a base64 string".into(),
        )),
    }
}

fn bytes_to_text(b: &[u8], format: Format) -> String {
    match format {
        Format::Json => match std::str::from_utf8(b) {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(b).into_owned(),
        },
        Format::Base64 => BASE64.encode(b),
    }
}

/// A consumed record in `format`.
pub(crate) fn record_out(
    topic: String,
    partition: u32,
    record: ConsumedRecord,
    format: Format,
) -> RecordOut {
    let ConsumedRecord {
        offset,
        timestamp,
        key,
        value,
        headers,
    } = record;
    let (value, value_base64) = match (value, format) {
        (None, _) => (Some(Value::Null), None),
        (Some(v), Format::Json) => match serde_json::from_slice::<Value>(&v) {
            Ok(json) => (Some(json), None),
            Err(_) => (None, Some(BASE64.encode(&v))),
        },
        (Some(v), Format::Base64) => (None, Some(BASE64.encode(&v))),
    };
    RecordOut {
        topic,
        partition,
        offset,
        timestamp,
        key: key.map(|k| bytes_to_text(&k, format)),
        value,
        value_base64,
        headers: headers
            .into_iter()
            .map(|(k, v)| (k, v.map(|v| bytes_to_text(&v, format))))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(value: Option<Bytes>) -> ConsumedRecord {
        ConsumedRecord {
            offset: 1,
            timestamp: 2,
            key: None,
            value,
            headers: vec![],
        }
    }

    #[test]
    fn values_round_trip_in_both_formats() {
        let json = value_to_bytes(Some(serde_json::json!({"a": [1, 2]})), Format::Json).unwrap();
        assert_eq!(json.as_deref(), Some(&b"{\"a\":[1,2]}"[..]));
        let out = record_out("t".into(), 0, rec(json), Format::Json);
        assert_eq!(out.value, Some(serde_json::json!({"a": [1, 2]})));

        let raw = value_to_bytes(Some(Value::String("AAEC".into())), Format::Base64).unwrap();
        assert_eq!(raw.as_deref(), Some(&[0u8, 1, 2][..]));
        // Bytes that are not JSON come back as base64 even in json format.
        let out = record_out("t".into(), 0, rec(raw), Format::Json);
        assert_eq!(
            (out.value, out.value_base64.as_deref()),
            (None, Some("AAEC"))
        );
    }

    #[test]
    fn bad_base64_and_non_string_values_are_refused() {
        assert!(value_to_bytes(Some(Value::String("%%".into())), Format::Base64).is_err());
        assert!(value_to_bytes(Some(serde_json::json!(5)), Format::Base64).is_err());
        assert_eq!(
            value_to_bytes(Some(Value::Null), Format::Json).unwrap(),
            None
        );
    }

    #[test]
    fn acks_spellings() {
        let parse = |s: &str| serde_json::from_str::<AcksParam>(s).unwrap().acks();
        assert_eq!(parse("\"all\"").unwrap(), Acks::All);
        assert_eq!(parse("-1").unwrap(), Acks::All);
        assert_eq!(parse("1").unwrap(), Acks::Leader);
        assert_eq!(parse("0").unwrap(), Acks::None);
        assert!(parse("2").is_err());
        assert!(serde_json::from_str::<AcksParam>("\"most\"").is_err());
    }
}
