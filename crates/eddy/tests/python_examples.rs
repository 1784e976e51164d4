//! `examples/python/`: the original design's producer and consumer, written with
//! kafka-python, against a running `eddy serve` changed in nothing but the bootstrap address;
//! and the server's context consumer assembling the threads of what they wrote.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{context_thread, serve, stop};
use serde_json::Value;

fn python() -> PathBuf {
    std::env::var_os("EDDY_TEST_PYTHON")
        .map(PathBuf::from)
        .expect("EDDY_TEST_PYTHON is unset: run ./scripts/test, which makes the venv")
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/python")
        .join(name)
}

fn run(name: &str, args: &[&str]) -> String {
    let out = Command::new(python())
        .arg(script(name))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_python_producer_and_consumer_work_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let (child, boot, http) = serve(dir.path());
    let first = boot.split(',').next().unwrap();
    let sent = run(
        "chat_producer.py",
        &["--bootstrap", first, "--chat", "team", "--run", "r1"],
    );
    assert_eq!(sent.lines().count(), 7, "{sent}");
    let read = run(
        "chat_consumer.py",
        &["--bootstrap", first, "--chat", "team", "--json"],
    );
    let summary: Value = serde_json::from_str(read.lines().last().unwrap()).unwrap();
    assert_eq!(summary["messages"], 7, "{read}");
    assert_eq!(summary["bubbles"], 2, "{read}");
    assert_eq!(summary["one_partition_per_bubble"], true, "{read}");

    // Its topics and its consumer group are in the series the dashboards query.
    let metrics = eddy_http::client::Client::new(http.clone(), std::time::Duration::from_secs(30))
        .request("GET", "/metrics", None)
        .unwrap();
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.lines().any(
            |l| l.starts_with("eddy_produce_records_total") && l.contains("topic=\"user_ann\"")
        ),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("eddy_group_committed_offset")
                && l.contains("group=\"chat-reader\"")),
        "{text}"
    );

    // The server's context consumer read the same topics: the thread of the last reply.
    assert_eq!(
        context_thread(&http, "r1-6"),
        ["r1-1", "r1-3", "r1-5", "r1-6"]
    );
    stop(child);
}
