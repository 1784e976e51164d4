//! The HTTP API against a real cluster, over real sockets: clusters, topics, publish and
//! consume (both formats, all acks levels), group consumption with commits and lag, offsets
//! by hand, Server-Sent Events, and every kind of bad input getting a JSON error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{assert_error, Server};
use serde_json::{json, Value};

#[test]
fn clusters_are_created_listed_described_and_reopened() {
    let mut s = Server::start();
    let list = s.get_ok("/clusters");
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "test");
    assert_eq!(list[0]["default"], true);
    assert_eq!(list[0]["brokers_alive"], 3);

    let created = s.post_expect(
        "/clusters",
        json!({"name": "second", "num_brokers": 2, "log_directory": "more", "partitions": 4, "retention_ms": -1}),
        201,
    );
    assert_eq!(created["brokers"].as_array().unwrap().len(), 2);
    assert!(s.dir.path().join("more/second").is_dir());
    assert_error(
        &s.post("/clusters", json!({"name": "second"})),
        409,
        "already_exists",
    );
    // Topics of the new cluster take its defaults, and replication is capped by its brokers.
    let t = s.post_expect(
        "/topics",
        json!({"name": "t", "cluster": "second", "replication_factor": 2}),
        201,
    );
    assert_eq!(t["partition_count"], 4);
    assert_eq!(t["retention_ms"], Value::Null);
    for p in t["partitions"].as_array().unwrap() {
        assert_eq!(p["isr"].as_array().unwrap().len(), 2, "{p}");
        assert!(p["leader"].is_u64());
    }
    s.post_expect(
        "/events",
        json!({"topic": "t", "cluster": "second", "partition": 3, "value": "kept"}),
        200,
    );
    // The main cluster does not see the other's topic.
    assert_error(&s.get("/topics/t"), 404, "not_found");

    // A restarted server reopens the clusters created through the API, records and all.
    s.restart_http();
    let c = s.get_ok("/clusters/second");
    assert_eq!(c["topics"].as_array().unwrap().len(), 1);
    let read = s.get_ok("/events?topic=t&cluster=second&partition=3&wait_ms=0");
    assert_eq!(read["records"][0]["value"], "kept");
    assert_error(&s.get("/clusters/nope"), 404, "not_found");
}

#[test]
fn topics_are_created_described_listed_and_deleted() {
    let s = Server::start();
    let t = s.post_expect(
        "/topics",
        json!({"name": "chat", "partitions": 3, "retention_ms": 60000, "retention_bytes": 1048576}),
        201,
    );
    assert_eq!(t["partition_count"], 3);
    assert_eq!(t["replication_factor"], 3);
    assert_eq!(t["retention_bytes"], 1048576);
    let leaders: Vec<_> = t["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["leader"].as_u64().unwrap())
        .collect();
    assert_eq!(leaders.len(), 3);
    assert_error(
        &s.post("/topics", json!({"name": "chat"})),
        409,
        "already_exists",
    );
    assert_eq!(s.get_ok("/topics/chat")["name"], "chat");
    let names: Vec<String> = s
        .get_ok("/topics")
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(names.contains(&"chat".to_owned()), "{names:?}");
    let cluster = s.get_ok("/clusters/test");
    assert!(cluster["topics"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "chat"));

    assert_eq!(s.delete("/topics/chat").status, 204);
    assert_error(&s.get("/topics/chat"), 404, "not_found");
    assert_error(&s.delete("/topics/chat"), 404, "not_found");
    assert_error(
        &s.post("/topics", json!({"name": "bad name!"})),
        400,
        "invalid_request",
    );
    assert_error(
        &s.post("/topics", json!({"name": "x", "replication_factor": 4})),
        400,
        "invalid_request",
    );
    assert_error(
        &s.post("/topics", json!({"name": "x", "cluster": "nope"})),
        404,
        "not_found",
    );
}

#[test]
fn records_are_published_and_read_back_in_both_formats() {
    let s = Server::start();
    s.create_topic("events", 4);
    // One record, JSON value, acks=all by default.
    let one = s.post_expect(
        "/events",
        json!({"topic": "events", "partition": 2, "value": {"text": "hello", "n": 1}, "headers": {"kind": "greeting"}}),
        200,
    );
    assert_eq!(one["records"][0]["partition"], 2);
    assert_eq!(one["records"][0]["offset"], 0);

    // A batch: records with one key land on one partition, in order.
    let batch: Vec<Value> = (0..20)
        .map(|i| json!({"key": "user-7", "value": {"i": i}}))
        .collect();
    let out = s.post_expect(
        "/events",
        json!({"topic": "events", "acks": 1, "records": batch}),
        200,
    );
    let written = out["records"].as_array().unwrap();
    assert_eq!(written.len(), 20);
    let p = written[0]["partition"].as_u64().unwrap();
    let offsets: Vec<u64> = written
        .iter()
        .map(|w| {
            assert_eq!(w["partition"].as_u64().unwrap(), p);
            w["offset"].as_u64().unwrap()
        })
        .collect();
    assert!(offsets.windows(2).all(|w| w[1] == w[0] + 1), "{offsets:?}");
    // The same key from another request goes to the same partition.
    let again = s.post_expect(
        "/events",
        json!({"topic": "events", "key": "user-7", "value": "again"}),
        200,
    );
    assert_eq!(again["records"][0]["partition"].as_u64().unwrap(), p);

    // Unkeyed records spread over the partitions.
    let spread: Vec<Value> = (0..400).map(|i| json!({"value": i})).collect();
    let mut seen = std::collections::BTreeSet::new();
    for chunk in spread.chunks(50) {
        let out = s.post_expect("/events", json!({"topic": "events", "records": chunk}), 200);
        for w in out["records"].as_array().unwrap() {
            seen.insert(w["partition"].as_u64().unwrap());
        }
    }
    assert!(seen.len() >= 2, "unkeyed records all went to {seen:?}");

    // acks=0 gets no offsets, but the record is written.
    let zero = s.post_expect(
        "/events",
        json!({"topic": "events", "acks": "0", "partition": 3, "value": "fire and forget"}),
        200,
    );
    assert_eq!(zero["records"][0]["offset"], Value::Null);

    // Read back by partition and offset.
    let read = s.get_ok("/events?topic=events&partition=2&offset=0&max=1&wait_ms=0");
    let r = &read["records"][0];
    assert_eq!(r["value"], json!({"text": "hello", "n": 1}));
    assert_eq!(r["headers"]["kind"], "greeting");
    assert_eq!(read["next_offset"], 1);
    let keyed = s.get_ok(&format!(
        "/events?topic=events&partition={p}&max=5&wait_ms=0"
    ));
    let recs = keyed["records"].as_array().unwrap();
    assert_eq!(recs.len(), 5);
    assert_eq!(recs[0]["key"], "user-7");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut from = 0;
    loop {
        let r = s.get_ok(&format!(
            "/events?topic=events&partition=3&offset={from}&wait_ms=500"
        ));
        from = r["next_offset"].as_u64().unwrap();
        if r["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["value"] == "fire and forget")
        {
            break;
        }
        assert!(Instant::now() < deadline, "the acks=0 record never showed");
    }

    // Bytes in base64, a tombstone, and bytes that are not JSON read in json format.
    let out = s.post_expect(
        "/events",
        json!({"topic": "events", "format": "base64", "records": [
            {"key": "AAE=", "value": "/wD+", "headers": {"h": "AQI="}, "partition": 1},
            {"key": "AAE=", "partition": 1},
        ]}),
        200,
    );
    let at = out["records"][0]["offset"].as_u64().unwrap();
    let b = s.get_ok(&format!(
        "/events?topic=events&partition=1&offset={at}&format=base64&wait_ms=0"
    ));
    let first = b["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "AAE=")
        .unwrap();
    assert_eq!(first["value_base64"], "/wD+");
    assert_eq!(first["headers"]["h"], "AQI=");
    let j = s.get_ok(&format!(
        "/events?topic=events&partition=1&offset={at}&wait_ms=0"
    ));
    let recs = j["records"].as_array().unwrap();
    let raw = recs.iter().find(|r| r["value_base64"] == "/wD+").unwrap();
    assert!(raw.get("value").is_none(), "{raw}");
    let tomb = recs.last().unwrap();
    assert_eq!(tomb["value"], Value::Null);
}

/// Polls a group through the API until `want` records came back (or 20 s pass).
fn drain_group(s: &Server, query: &str, want: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    while got.len() < want {
        assert!(
            Instant::now() < deadline,
            "only {} of {want} records",
            got.len()
        );
        let r = s.get_ok(&format!("/events?{query}&wait_ms=500"));
        got.extend(r["records"].as_array().unwrap().iter().cloned());
    }
    got
}

#[test]
fn group_consumption_gets_every_record_once_and_commits() {
    let s = Server::start();
    s.create_topic("room", 3);
    let records: Vec<Value> = (0..30)
        .map(|i| json!({"key": format!("k{}", i % 5), "value": i}))
        .collect();
    s.post_expect("/events", json!({"topic": "room", "records": records}), 200);

    // `max` caps a poll; what is held back comes in the next one.
    let got = drain_group(&s, "topic=room&group=readers&max=7", 30);
    assert_eq!(got.len(), 30, "records read twice");
    let mut values: Vec<i64> = got.iter().map(|r| r["value"].as_i64().unwrap()).collect();
    values.sort();
    assert_eq!(values, (0..30).collect::<Vec<_>>());
    let empty = s.get_ok("/events?topic=room&group=readers&wait_ms=200");
    assert!(empty["records"].as_array().unwrap().is_empty());

    // Everything read was committed: no lag, and the member shows with its partitions.
    let g = s.get_ok("/groups/readers");
    assert_eq!(g["state"], "Stable");
    assert_eq!(g["members"].as_array().unwrap().len(), 1);
    assert_eq!(g["members"][0]["assignment"]["room"], json!([0, 1, 2]));
    for p in g["partitions"].as_array().unwrap() {
        if p["log_end"].as_u64().unwrap() > 0 {
            assert_eq!(p["lag"], 0, "{p}");
        }
    }
    let groups = s.get_ok("/groups");
    assert!(groups
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["group"] == "readers"));

    // A second group reads everything again; with commit=false nothing is committed.
    let other = drain_group(&s, "topic=room&group=audit&commit=false", 30);
    assert_eq!(other.len(), 30);
    let g = s.get_ok("/groups/audit");
    assert!(g["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["committed"].is_null()));
    // ... until it commits by hand, through its member.
    let first = &other[0];
    s.post_expect(
        "/offsets",
        json!({"group": "audit", "topic": "room", "partition": first["partition"], "offset": 1}),
        200,
    );
    let g = s.get_ok("/groups/audit");
    let p = g["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["partition"] == first["partition"])
        .unwrap();
    assert_eq!(p["committed"], 1);
    assert_error(&s.get("/groups/nobody"), 404, "not_found");

    // Closing the HTTP consumer makes it leave at once.
    assert_eq!(s.delete("/groups/readers/consumers/http").status, 204);
    let g = s.get_ok("/groups/readers");
    assert!(g["members"].as_array().unwrap().is_empty(), "{g}");
    assert_error(
        &s.delete("/groups/readers/consumers/http"),
        404,
        "not_found",
    );
}

#[test]
fn offsets_committed_by_hand_are_where_a_new_member_starts() {
    let s = Server::start();
    s.create_topic("log", 1);
    let records: Vec<Value> = (0..10).map(|i| json!({"value": i})).collect();
    s.post_expect("/events", json!({"topic": "log", "records": records}), 200);
    // A group with no members: a standalone commit, as Kafka allows.
    let c = s.post_expect(
        "/offsets",
        json!({"group": "late", "topic": "log", "partition": 0, "offset": 7}),
        200,
    );
    assert_eq!(c["committed"], 7);
    let got = drain_group(&s, "topic=log&group=late", 3);
    let values: Vec<i64> = got.iter().map(|r| r["value"].as_i64().unwrap()).collect();
    assert_eq!(values, vec![7, 8, 9]);
    assert_error(
        &s.post(
            "/offsets",
            json!({"group": "late", "topic": "log", "partition": 5, "offset": 1}),
        ),
        404,
        "not_found",
    );
}

#[test]
fn server_sent_events_push_records_as_they_are_committed() {
    let s = Server::start();
    s.create_topic("live", 2);
    s.post_expect(
        "/events",
        json!({"topic": "live", "partition": 1, "value": "before"}),
        200,
    );
    let (head, mut events) = s
        .client
        .events("/events/stream?topic=live&partition=1&offset=0&wait_ms=200")
        .unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    let e = events.next_event().unwrap().unwrap();
    assert_eq!(e.event, "record");
    assert_eq!(e.id.as_deref(), Some("1:0"));
    let v: Value = serde_json::from_str(&e.data).unwrap();
    assert_eq!(v["value"], "before");
    // Published after the stream opened: pushed to it.
    s.post_expect(
        "/events",
        json!({"topic": "live", "partition": 1, "value": "after"}),
        200,
    );
    let e = events.next_event().unwrap().unwrap();
    let v: Value = serde_json::from_str(&e.data).unwrap();
    assert_eq!(
        (v["offset"].as_u64(), &v["value"]),
        (Some(1), &json!("after"))
    );

    // A group stream gets every partition's records, and commits them.
    let (head, mut group_events) = s
        .client
        .events("/events/stream?topic=live&group=watchers&wait_ms=200")
        .unwrap();
    assert_eq!(head.status, 200);
    s.post_expect(
        "/events",
        json!({"topic": "live", "partition": 0, "value": "zero"}),
        200,
    );
    let mut values = Vec::new();
    while values.len() < 3 {
        let e = group_events.next_event().unwrap().unwrap();
        let v: Value = serde_json::from_str(&e.data).unwrap();
        values.push(v["value"].as_str().unwrap().to_owned());
    }
    values.sort();
    assert_eq!(values, vec!["after", "before", "zero"]);
    drop(group_events);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let g = s.get_ok("/groups/watchers");
        let lag: u64 = g["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["lag"].as_u64().unwrap_or(0))
            .sum();
        // The stream's consumer left when its client went away.
        if lag == 0 && g["members"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "{g}");
        std::thread::sleep(Duration::from_millis(100));
    }

    let (head, _) = s.client.events("/events/stream?topic=live").unwrap();
    assert_eq!(head.status, 400);
    let (head, _) = s
        .client
        .events("/events/stream?topic=nope&partition=0")
        .unwrap();
    assert_eq!(head.status, 404);
}

#[test]
fn bad_input_gets_a_clear_json_error_and_changes_nothing() {
    let s = Server::start();
    s.create_topic("t", 2);
    let raw = |method: &str, path: &str, body: &[u8]| {
        s.client.request_raw(method, path, Some(body)).unwrap()
    };
    assert_error(
        &raw("POST", "/topics", b"{not json"),
        400,
        "invalid_request",
    );
    assert_error(&raw("POST", "/events", b"[1,2]"), 400, "invalid_request");
    assert_error(
        &s.post("/topics", json!({"name": "x", "bogus": true})),
        400,
        "invalid_request",
    );
    assert_error(
        &s.post("/events", json!({"topic": "t", "value": 1, "acks": 2})),
        400,
        "invalid_request",
    );
    assert_error(
        &s.post(
            "/events",
            json!({"topic": "t", "value": 1, "records": [{"value": 2}]}),
        ),
        400,
        "invalid_request",
    );
    assert_error(
        &s.post("/events", json!({"topic": "t", "records": []})),
        400,
        "invalid_request",
    );
    assert_error(
        &s.post(
            "/events",
            json!({"topic": "t", "format": "base64", "value": "%%%"}),
        ),
        400,
        "invalid_request",
    );
    assert_error(
        &s.post(
            "/events",
            json!({"topic": "t", "format": "base64", "value": {"a": 1}}),
        ),
        400,
        "invalid_request",
    );
    // A bad record fails the whole request before anything is written.
    assert_error(
        &s.post(
            "/events",
            json!({"topic": "t", "records": [{"value": 1, "partition": 0}, {"value": 2, "partition": 9}]}),
        ),
        404,
        "not_found",
    );
    assert_error(
        &s.post("/events", json!({"topic": "nope", "value": 1})),
        404,
        "not_found",
    );
    let empty = s.get_ok("/events?topic=t&partition=0&wait_ms=0");
    assert!(empty["records"].as_array().unwrap().is_empty());

    // A body over the limit: 413, before it is read whole.
    let big = vec![b'x'; s.config.body_limit + 1];
    let mut body = b"{\"topic\":\"t\",\"value\":\"".to_vec();
    body.extend_from_slice(&big);
    body.extend_from_slice(b"\"}");
    assert_error(&raw("POST", "/events", &body), 413, "too_large");

    for bad in [
        "/events?topic=t",
        "/events?topic=t&partition=-1",
        "/events?topic=t&partition=0&max=0",
        "/events?topic=t&partition=0&wait_ms=999999999",
        "/events?topic=t&partition=0&bogus=1",
        "/events?topic=t&group=g&partition=0",
        "/events?topic=t&partition=0&commit=true",
        "/events?partition=0",
    ] {
        assert_error(&s.get(bad), 400, "invalid_request");
    }
    assert_error(&s.get("/events?topic=t&partition=7"), 404, "not_found");
    assert_error(
        &s.get("/events?topic=t&partition=0&offset=99&wait_ms=0"),
        400,
        "offset_out_of_range",
    );
    assert_error(
        &s.get("/events?topic=t&group=g&consumer=bad%20name"),
        400,
        "invalid_request",
    );
    assert_error(
        &s.post("/clusters", json!({"name": "c", "log_directory": "/etc"})),
        400,
        "invalid_request",
    );
    assert_error(
        &s.post(
            "/clusters",
            json!({"name": "c", "log_directory": "a/../../b"}),
        ),
        400,
        "invalid_request",
    );
    assert_error(
        &s.post("/clusters", json!({"name": "c", "num_brokers": 0})),
        400,
        "invalid_request",
    );
    assert_error(&s.get("/nowhere"), 404, "not_found");
    assert_error(
        &s.client.request("PUT", "/topics", None).unwrap(),
        405,
        "method_not_allowed",
    );
    assert_error(
        &s.client.request("PATCH", "/topics/t", None).unwrap(),
        405,
        "method_not_allowed",
    );
    assert_error(&s.get("/topics/t/partitions"), 404, "not_found");
    assert_error(
        &s.delete("/topics/__consumer_offsets"),
        400,
        "invalid_request",
    );
    // The server is still fine.
    s.post_expect("/events", json!({"topic": "t", "value": "ok"}), 200);
}

#[test]
fn the_openapi_document_is_served() {
    let s = Server::start();
    let doc = s.get_ok("/openapi.json");
    assert_eq!(doc["openapi"], "3.0.3");
    for path in [
        "/clusters",
        "/clusters/{name}",
        "/topics",
        "/topics/{name}",
        "/events",
        "/events/stream",
        "/offsets",
        "/groups",
        "/groups/{id}",
        "/groups/{id}/consumers/{name}",
        "/metrics",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    // Without a recorder, /metrics says so.
    assert_error(&s.get("/metrics"), 404, "not_found");
}

#[test]
fn topics_past_max_partitions_are_a_409_and_nothing_is_lost() {
    let s = Server::start_configured(common::test_http_config(), None, |c| c.max_partitions = 30);
    s.post_expect(
        "/topics",
        json!({"name": "user_1", "partitions": 10, "replication_factor": 3}),
        201,
    );
    s.post_expect(
        "/events",
        json!({"topic": "user_1", "partition": 9, "value": "kept"}),
        200,
    );
    let r = s.post("/topics", json!({"name": "user_2", "partitions": 1}));
    assert_error(&r, 409, "policy_violation");
    let body = String::from_utf8_lossy(&r.body);
    assert!(body.contains("max_partitions is 30"), "{body}");
    assert_error(&s.get("/topics/user_2"), 404, "not_found");
    assert_eq!(s.get_ok("/topics/user_1")["partition_count"], 10);
    let read = s.get_ok("/events?topic=user_1&partition=9&wait_ms=0");
    assert_eq!(read["records"][0]["value"], "kept");
    // Deleting a topic makes room again.
    assert_eq!(s.delete("/topics/user_1").status, 204);
    s.post_expect("/topics", json!({"name": "user_2", "partitions": 10}), 201);
}
