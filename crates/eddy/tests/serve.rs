//! `eddy serve` as a user runs it: a real process on free ports, found by its stdout line,
//! listed by kcat, written to and read back, then stopped with SIGTERM (exit status 0, the
//! data still there on the next start).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::{kcat, serve, stop};
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
