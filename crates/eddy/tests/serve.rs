//! `eddy serve` as a user runs it: a real process on free ports, found by its stdout line,
//! listed by kcat, written to and read back, then stopped with SIGTERM (exit status 0, the
//! data still there on the next start).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{kcat, serve, serve_with, stop};
use eddy_http::client::Client;

#[test]
fn test_serve_runs_answers_kafka_clients_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (child, boot, http) = serve(dir.path());
    assert_eq!(boot.split(',').count(), 3, "{boot}");
    kcat(
        &boot,
        &["-P", "-t", "chat", "-K:"],
        Some("alice:hello\nbob:hi\n"),
    );
    let meta = kcat(&boot, &["-L"], None);
    assert!(
        meta.contains("3 brokers") && meta.contains("topic \"chat\""),
        "{meta}"
    );
    // The HTTP API serves the same cluster, and /metrics counts what kcat wrote.
    let client = Client::new(http, Duration::from_secs(30));
    let topic = client.request("GET", "/topics/chat", None).unwrap();
    assert_eq!(topic.status, 200);
    assert_eq!(topic.json().unwrap()["partition_count"], 1);
    let metrics = client.request("GET", "/metrics", None).unwrap();
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains("eddy_produce_records_total{topic=\"chat\"} 2"),
        "{text}"
    );
    assert!(text.contains("eddy_kafka_requests_total"), "{text}");
    stop(child);

    // Started again on the same directory: the records are there.
    let (child, boot, _) = serve(dir.path());
    let read = kcat(
        &boot,
        &[
            "-C",
            "-t",
            "chat",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%k=%s\\n",
        ],
        None,
    );
    assert_eq!(read, "alice=hello\nbob=hi\n");
    stop(child);
}

#[test]
fn test_bad_options_are_refused_with_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(["serve", "--brokers", "many"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--brokers"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(["serve", "--nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(out.status.code(), Some(2), "bad usage exits with 2");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Usage: eddy serve"));
}

/// `/metrics` at a node with many partitions: per-partition series while the node holds at
/// most `--metrics-partition-series` partitions (`__consumer_offsets`' 50 included), then
/// only the per-topic sums, which stay right; histograms lose their topic label.
#[test]
fn test_metrics_past_the_partition_series_limit_keep_per_topic_sums() {
    let dir = tempfile::tempdir().unwrap();
    let (child, _boot, http) = serve_with(
        dir.path(),
        &[
            "--metrics-partition-series",
            "70",
            "--context-strategy",
            "off",
        ],
    );
    common::create_topic(&http, "a", 4);
    let client = Client::new(http.clone(), Duration::from_secs(30));
    let post = |path: &str, body: serde_json::Value| {
        let r = client.request("POST", path, Some(&body)).unwrap();
        assert!(r.status < 300, "{path}: {} {:?}", r.status, r.json());
    };
    for (p, n) in [(0, 3), (1, 2)] {
        for i in 0..n {
            post(
                "/events",
                serde_json::json!({"topic": "a", "partition": p, "value": format!("m{i}")}),
            );
        }
    }
    post(
        "/offsets",
        serde_json::json!({"group": "g", "topic": "a", "partition": 0, "offset": 2}),
    );
    post(
        "/offsets",
        serde_json::json!({"group": "g", "topic": "a", "partition": 1, "offset": 1}),
    );
    let consumed = client.request("GET", "/events?topic=a&partition=0&offset=0", None);
    assert_eq!(consumed.unwrap().status, 200);
    let scrape = || {
        let m = client.request("GET", "/metrics", None).unwrap();
        String::from_utf8_lossy(&m.body).into_owned()
    };
    let text = scrape();
    for line in [
        "eddy_topic_high_watermark{topic=\"a\"} 5\n",
        "eddy_partition_high_watermark{topic=\"a\",partition=\"0\"} 3\n",
        "eddy_group_topic_committed_offset{group=\"g\",topic=\"a\"} 3\n",
        "eddy_group_committed_offset{group=\"g\",topic=\"a\",partition=\"1\"} 1\n",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }

    // 20 more partitions: 74 on the node, past the limit.
    common::create_topic(&http, "b", 20);
    post("/events", serde_json::json!({"topic": "b", "value": "x"}));
    post(
        "/offsets",
        serde_json::json!({"group": "g", "topic": "a", "partition": 1, "offset": 2}),
    );
    let consumed = client.request("GET", "/events?topic=a&partition=1&offset=0", None);
    assert_eq!(consumed.unwrap().status, 200);
    let text = scrape();
    assert!(
        !text.contains("partition=\""),
        "per-partition series left:\n{text}"
    );
    for line in [
        "eddy_topic_high_watermark{topic=\"a\"} 5\n",
        "eddy_topic_high_watermark{topic=\"b\"} 1\n",
        "eddy_group_topic_committed_offset{group=\"g\",topic=\"a\"} 4\n",
        "eddy_produce_records_total{topic=\"b\"} 1\n",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
    assert!(
        !text.contains("eddy_fetch_latency_seconds_count{topic="),
        "per-topic histograms left:\n{text}"
    );
    stop(child);
}
