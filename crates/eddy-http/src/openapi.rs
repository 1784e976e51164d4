//! The OpenAPI 3.0 document of the API, served at `/openapi.json` with this server's limits
//! (records per request, longest wait, partitions per topic) filled in. The test suite runs
//! schemathesis against it, so it must say exactly what the routes accept and answer.

use serde_json::{json, Value};

use crate::error::HttpError;
use crate::HttpConfig;

fn error_responses(codes: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for c in codes {
        let what = match *c {
            "400" => "Invalid request (bad field, unknown field, bad JSON)",
            "404" => "Unknown cluster, topic, partition or group",
            "405" => "Method not served on this path",
            "409" => {
                "Exists already, a limit of the server reached, or a commit refused by the group"
            }
            "413" => "Body or record too large",
            "500" => "Unexpected failure",
            _ => "The cluster cannot serve the request now; retry",
        };
        out.insert(
            (*c).to_owned(),
            json!({"description": what, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
        );
    }
    Value::Object(out)
}

fn ok(status: &str, description: &str, schema: Value, errors: &[&str]) -> Value {
    let mut r = error_responses(errors);
    r[status] =
        json!({"description": description, "content": {"application/json": {"schema": schema}}});
    r
}

fn body(schema: Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

fn query(name: &str, required: bool, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": required, "schema": schema, "description": description})
}

fn path(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}, "description": description})
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

const U32: u64 = u32::MAX as u64;

fn document(c: &HttpConfig) -> Value {
    let max_wait = c.max_wait.as_millis() as u64;
    let cluster_q = query(
        "cluster",
        false,
        json!({"type": "string"}),
        "The cluster (default: the server's main cluster).",
    );
    let nullable_str = json!({"type": "string", "nullable": true});
    let nullable_int = json!({"type": "integer", "nullable": true});
    let record_fields = json!({
        "key": {"type": "string", "nullable": true, "description": "A string (json format) or base64."},
        "partition": {"type": "integer", "minimum": 0, "maximum": U32, "nullable": true},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}, "nullable": true,
            "description": "Header name to value: a string (json format) or base64."},
        "value": {"nullable": true, "oneOf": [
                {"type": "object"}, {"type": "array", "items": {}}, {"type": "string"},
                {"type": "number"}, {"type": "boolean"}],
            "description": "Any JSON (json format) or a base64 string; null is a tombstone."},
        "timestamp": {"type": "integer", "format": "int64", "nullable": true},
    });
    let mut publish_props = record_fields.clone();
    for (k, v) in json!({
        "topic": {"type": "string"},
        "cluster": nullable_str,
        "acks": {"oneOf": [{"type": "integer", "enum": [-1, 0, 1]}, {"type": "string", "enum": ["all", "-1", "0", "1"]}], "nullable": true},
        "format": {"type": "string", "enum": ["json", "base64"]},
        "records": {"type": "array", "nullable": true, "minItems": 1, "maxItems": c.max_records,
            "items": schema_ref("RecordIn")},
    })
    .as_object()
    .into_iter()
    .flatten()
    {
        publish_props[k] = v.clone();
    }
    let consume_params = json!([
        query("topic", true, json!({"type": "string"}), "The topic."),
        cluster_q,
        query(
            "group",
            false,
            json!({"type": "string"}),
            "Consume as a member of this group."
        ),
        query(
            "consumer",
            false,
            json!({"type": "string"}),
            "In a group: this consumer instance's name (default http)."
        ),
        query(
            "partition",
            false,
            json!({"type": "integer", "minimum": 0, "maximum": U32}),
            "Without a group: the partition."
        ),
        query(
            "offset",
            false,
            json!({"type": "integer", "format": "int64", "minimum": 0}),
            "Without a group: the first offset (default: the log start)."
        ),
        query(
            "max",
            false,
            json!({"type": "integer", "minimum": 1, "maximum": c.max_records}),
            "Most records (default 100)."
        ),
        query(
            "wait_ms",
            false,
            json!({"type": "integer", "minimum": 0, "maximum": max_wait}),
            "Longest wait for a record (default 1000)."
        ),
        query(
            "format",
            false,
            json!({"type": "string", "enum": ["json", "base64"]}),
            "How keys and values are written."
        ),
        query(
            "reset",
            false,
            json!({"type": "string", "enum": ["earliest", "latest"]}),
            "In a group, where to start with no committed offset."
        ),
        query(
            "commit",
            false,
            json!({"type": "boolean"}),
            "In a group: commit what is returned (default true)."
        ),
    ]);
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Eddy HTTP API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Clusters, topics, events, offsets and consumer groups of an Eddy server. Every error is {\"error\": {\"code\", \"message\"}}.",
        },
        "paths": {
            "/clusters": {
                "get": {"operationId": "listClusters", "responses": ok("200", "The clusters", json!({"type": "array", "items": schema_ref("ClusterSummary")}), &["500"])},
                "post": {"operationId": "createCluster", "requestBody": body(schema_ref("CreateCluster")),
                    "responses": ok("201", "Created", schema_ref("Cluster"), &["400", "409", "413", "500", "503"])},
            },
            "/clusters/{name}": {
                "get": {"operationId": "getCluster", "parameters": [path("name", "The cluster.")],
                    "responses": ok("200", "The cluster", schema_ref("Cluster"), &["404", "500"])},
            },
            "/topics": {
                "get": {"operationId": "listTopics", "parameters": [cluster_q],
                    "responses": ok("200", "The topics", json!({"type": "array", "items": schema_ref("Topic")}), &["400", "404", "500"])},
                "post": {"operationId": "createTopic", "requestBody": body(schema_ref("CreateTopic")),
                    "responses": ok("201", "Created", schema_ref("Topic"), &["400", "404", "409", "413", "500", "503"])},
            },
            "/topics/{name}": {
                "get": {"operationId": "getTopic", "parameters": [path("name", "The topic."), cluster_q],
                    "responses": ok("200", "The topic", schema_ref("Topic"), &["400", "404", "500"])},
                "delete": {"operationId": "deleteTopic", "parameters": [path("name", "The topic."), cluster_q],
                    "responses": {
                        "204": {"description": "Deleted with its records"},
                        "400": error_responses(&["400"])["400"], "404": error_responses(&["404"])["404"],
                        "500": error_responses(&["500"])["500"], "503": error_responses(&["503"])["503"],
                    }},
            },
            "/events": {
                "post": {"operationId": "publish", "description": "Publishes one record (fields at the top level) or many (records); answers once they are committed at the acks level.",
                    "requestBody": body(json!({"type": "object", "additionalProperties": false, "required": ["topic"], "properties": publish_props})),
                    "responses": ok("200", "Where each record was written", schema_ref("Published"), &["400", "404", "409", "413", "500", "503"])},
                "get": {"operationId": "consume", "description": "Long-polls for records, as a group member (group) or from a partition and offset.",
                    "parameters": consume_params,
                    "responses": ok("200", "Records", schema_ref("Consumed"), &["400", "404", "409", "500", "503"])},
            },
            "/events/stream": {
                "get": {"operationId": "stream", "description": "Server-Sent Events: a record event per record as it is committed.",
                    "parameters": consume_params,
                    "responses": {
                        "200": {"description": "An event stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                        "400": error_responses(&["400"])["400"], "404": error_responses(&["404"])["404"],
                        "500": error_responses(&["500"])["500"], "503": error_responses(&["503"])["503"],
                    }},
            },
            "/offsets": {
                "post": {"operationId": "commitOffset", "requestBody": body(schema_ref("CommitOffset")),
                    "responses": ok("200", "Committed", json!({"type": "object", "required": ["committed"], "properties": {"committed": {"type": "integer"}}}), &["400", "404", "409", "413", "500", "503"])},
            },
            "/groups": {
                "get": {"operationId": "listGroups", "parameters": [cluster_q],
                    "responses": ok("200", "The groups", json!({"type": "array", "items": schema_ref("GroupSummary")}), &["400", "404", "500", "503"])},
            },
            "/groups/{id}": {
                "get": {"operationId": "getGroup", "parameters": [path("id", "The group."), cluster_q],
                    "responses": ok("200", "The group", schema_ref("Group"), &["400", "404", "500", "503"])},
            },
            "/groups/{id}/consumers/{name}": {
                "delete": {"operationId": "closeConsumer", "description": "Closes a group consumer of GET /events: it leaves the group now.",
                    "parameters": [path("id", "The group."), path("name", "The consumer instance."), cluster_q],
                    "responses": {
                        "204": {"description": "Closed"},
                        "400": error_responses(&["400"])["400"], "404": error_responses(&["404"])["404"],
                        "500": error_responses(&["500"])["500"], "503": error_responses(&["503"])["503"],
                    }},
            },
            "/context/{message_id}": {
                "get": {"operationId": "getContext",
                    "description": "The context the running context consumer's strategy assembles for an observed chat message: its thread (root to the message) and background from the group chat, within the budget.",
                    "parameters": [path("message_id", "The chat message."),
                        query("max_messages", false, json!({"type": "integer", "minimum": 1, "maximum": 10_000}), "Most messages, thread and background together (default 50)."),
                        query("max_chars", false, json!({"type": "integer", "minimum": 1, "maximum": 10_000_000}), "Most characters of content (default 16000).")],
                    "responses": ok("200", "The context", schema_ref("Context"), &["400", "404", "500", "503"])},
            },
            "/metrics": {
                "get": {"operationId": "metrics", "responses": {
                    "200": {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}},
                    "404": error_responses(&["404"])["404"],
                }},
            },
            "/openapi.json": {
                "get": {"operationId": "openapi", "responses": {"200": {"description": "This document", "content": {"application/json": {"schema": {"type": "object"}}}}}},
            },
        },
        "components": {"schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {
                "error": {"type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"}}},
                "records": {"type": "array", "description": "On a failed publish: each record's outcome."},
            }},
            "CreateCluster": {"type": "object", "additionalProperties": false, "required": ["name"], "properties": {
                "name": {"type": "string", "pattern": "^[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,63}$"},
                "num_brokers": {"type": "integer", "minimum": 1, "maximum": 16, "nullable": true},
                "log_directory": {"type": "string", "nullable": true, "description": "Relative to the server's data directory."},
                "partitions": {"type": "integer", "minimum": 1, "maximum": c.max_partitions, "nullable": true},
                "retention_ms": {"type": "integer", "format": "int64", "nullable": true},
            }},
            "ClusterSummary": {"type": "object", "required": ["name", "brokers", "brokers_alive", "topics", "default"], "properties": {
                "name": {"type": "string"}, "brokers": {"type": "integer"}, "brokers_alive": {"type": "integer"},
                "topics": {"type": "integer"}, "default": {"type": "boolean"}}},
            "Cluster": {"type": "object", "required": ["name", "log_directory", "brokers", "topics"], "properties": {
                "name": {"type": "string"}, "log_directory": {"type": "string"},
                "brokers": {"type": "array", "items": {"type": "object", "required": ["id", "alive"], "properties": {
                    "id": {"type": "integer"}, "alive": {"type": "boolean"}}}},
                "topics": {"type": "array", "items": schema_ref("Topic")}}},
            "CreateTopic": {"type": "object", "additionalProperties": false, "required": ["name"], "properties": {
                "name": {"type": "string", "pattern": "^[a-zA-Z0-9._-]{1,249}$"}, "cluster": nullable_str,
                "partitions": {"type": "integer", "minimum": 1, "maximum": c.max_partitions, "nullable": true},
                "replication_factor": {"type": "integer", "minimum": 1, "maximum": U32, "nullable": true},
                "retention_ms": {"type": "integer", "format": "int64", "minimum": -1, "nullable": true},
                "retention_bytes": {"type": "integer", "format": "int64", "minimum": -1, "nullable": true}}},
            "Topic": {"type": "object", "required": ["name", "partition_count", "replication_factor", "min_insync_replicas", "partitions"], "properties": {
                "name": {"type": "string"}, "partition_count": {"type": "integer"}, "replication_factor": {"type": "integer"},
                "retention_ms": nullable_int, "retention_bytes": nullable_int, "min_insync_replicas": {"type": "integer"},
                "partitions": {"type": "array", "items": {"type": "object", "required": ["partition", "leader_epoch", "replicas", "isr"], "properties": {
                    "partition": {"type": "integer"}, "leader": nullable_int, "leader_epoch": {"type": "integer"},
                    "replicas": {"type": "array", "items": {"type": "integer"}}, "isr": {"type": "array", "items": {"type": "integer"}}}}}}},
            "RecordIn": {"type": "object", "additionalProperties": false, "properties": record_fields},
            "Published": {"type": "object", "required": ["topic", "records"], "properties": {
                "topic": {"type": "string"},
                "records": {"type": "array", "items": {"type": "object", "required": ["partition", "timestamp"], "properties": {
                    "partition": {"type": "integer"}, "offset": nullable_int, "timestamp": {"type": "integer"}}}}}},
            "Consumed": {"type": "object", "required": ["records"], "properties": {
                "records": {"type": "array", "items": schema_ref("Record")},
                "next_offset": {"type": "integer"}, "high_watermark": {"type": "integer"}}},
            "Record": {"type": "object", "required": ["topic", "partition", "offset", "timestamp", "headers"], "properties": {
                "topic": {"type": "string"}, "partition": {"type": "integer"}, "offset": {"type": "integer"},
                "timestamp": {"type": "integer"}, "key": nullable_str,
                "value": {"nullable": true, "description": "JSON (json format, JSON values); null is a tombstone."},
                "value_base64": {"type": "string"},
                "headers": {"type": "object", "additionalProperties": {"type": "string", "nullable": true}}}},
            "CommitOffset": {"type": "object", "additionalProperties": false, "required": ["group", "topic", "partition", "offset"], "properties": {
                "group": {"type": "string"}, "topic": {"type": "string"},
                "partition": {"type": "integer", "minimum": 0, "maximum": U32},
                "offset": {"type": "integer", "format": "int64", "minimum": 0},
                "cluster": nullable_str}},
            "ChatMessage": {"type": "object", "required": ["message_id", "content", "context_id", "parent_message_id", "thread_id", "partition_hint", "sender_id", "sender_name", "chat_id", "timestamp", "mentions", "kind"], "properties": {
                "message_id": {"type": "string"}, "content": {"type": "string"}, "context_id": {"type": "string"},
                "parent_message_id": nullable_str, "thread_id": {"type": "string"},
                "partition_hint": {"type": "integer", "minimum": 0, "nullable": true},
                "sender_id": {"type": "string"}, "sender_name": {"type": "string"}, "chat_id": {"type": "string"},
                "timestamp": {"type": "integer", "format": "int64"},
                "mentions": {"type": "array", "items": {"type": "string"}},
                "kind": {"type": "string", "enum": ["message", "reply", "quote", "reaction", "mention"]},
                "emoji": {"type": "string"}}},
            "Context": {"type": "object", "required": ["message_id", "thread", "background"], "properties": {
                "message_id": {"type": "string"},
                "thread": {"type": "array", "items": schema_ref("ChatMessage"), "description": "Root to the message, in order."},
                "background": {"type": "array", "items": schema_ref("ChatMessage"), "description": "Earlier messages of the group chat, in order."}}},
            "GroupSummary": {"type": "object", "required": ["group", "state"], "properties": {
                "group": {"type": "string"}, "state": {"type": "string"}}},
            "Group": {"type": "object", "required": ["group", "state", "generation", "members", "partitions"], "properties": {
                "group": {"type": "string"}, "state": {"type": "string"}, "generation": {"type": "integer"},
                "protocol": nullable_str,
                "members": {"type": "array", "items": {"type": "object", "required": ["member_id", "client_id", "host", "assignment"], "properties": {
                    "member_id": {"type": "string"}, "client_id": {"type": "string"}, "host": {"type": "string"},
                    "assignment": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "integer"}}}}}},
                "partitions": {"type": "array", "items": {"type": "object", "required": ["topic", "partition"], "properties": {
                    "topic": {"type": "string"}, "partition": {"type": "integer"}, "member_id": nullable_str,
                    "committed": nullable_int, "log_end": nullable_int, "lag": nullable_int}}}}},
        }},
    })
}

/// The document as served.
pub(crate) fn render(config: &HttpConfig) -> Result<String, HttpError> {
    serde_json::to_string(&document(config))
        .map_err(|e| HttpError::io("cannot encode the OpenAPI document", e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_filled_in() {
        let config = HttpConfig {
            max_records: 7,
            ..HttpConfig::default()
        };
        let doc = document(&config);
        let records = &doc["paths"]["/events"]["post"]["requestBody"]["content"]
            ["application/json"]["schema"]["properties"]["records"];
        assert_eq!(records["maxItems"], 7);
        // Every $ref points at a schema that exists.
        let text = doc.to_string();
        for part in text.split("#/components/schemas/").skip(1) {
            let name: String = part.chars().take_while(|c| c.is_alphanumeric()).collect();
            assert!(
                doc["components"]["schemas"].get(&name).is_some(),
                "missing schema {name}"
            );
        }
    }
}
