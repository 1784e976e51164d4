//! The example's short script, both ways: on its in-process cluster, and with
//! `--bootstrap` against a real Kafka listener on a free port. Users get every message of
//! the rooms they are in (and none of a room they left), once each, across the restart;
//! read receipts come from the committed offsets and each "read by everyone" notification
//! is sent once; last-read positions survive the restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::{json, Value};

fn run(extra: &[&str]) -> (Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chat-rooms"))
        .args(["--short", "--json"])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        serde_json::from_str(stdout.lines().last().unwrap()).unwrap(),
        stdout,
    )
}

fn check(s: &Value, text: &str) {
    let delivered = &s["delivered"];
    for user in ["ann", "bob", "cid"] {
        let got: Vec<&str> = delivered[user]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let mut unique = got.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(
            unique.len(),
            got.len(),
            "{user} got a message twice: {text}"
        );
        assert!(got.contains(&"hello everyone"), "{user}: {text}");
        assert!(got.contains(&"lunch is on me today"), "{user}: {text}");
    }
    // cid left #random before its second message; ann joined after and got its history.
    // (Order holds within a room, not across rooms.)
    let mut cid: Vec<&str> = delivered["cid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    cid.sort_unstable();
    assert_eq!(
        cid,
        [
            "anyone for coffee?",
            "hello everyone",
            "lunch is on me today"
        ],
        "{text}"
    );
    assert!(delivered["ann"]
        .as_array()
        .unwrap()
        .contains(&json!("coffee in 5, second floor")));
    assert_eq!(
        s["notified"],
        json!([
            "hello everyone",
            "anyone for coffee?",
            "coffee in 5, second floor",
            "lunch is on me today"
        ]),
        "{text}"
    );
    assert_eq!(
        s["last_read_before_restart"], s["last_read_after_restart"],
        "{text}"
    );
    assert_eq!(s["last_read_after_restart"]["ann"]["random"], 2, "{text}");
}

#[test]
fn short_script_embedded() {
    let (s, text) = run(&[]);
    assert_eq!(s["mode"], "embedded");
    check(&s, &text);
}

#[test]
fn short_script_over_the_kafka_protocol() {
    // The cluster's metrics, as `eddy serve` exports them to Prometheus and Grafana.
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let eddy =
        eddy_broker::EmbeddedCluster::open(eddy_broker::testing::config(dir.path())).unwrap();
    let server = eddy_kafka::testing::TestListener::start(eddy.cluster()).unwrap();
    let (s, text) = run(&["--bootstrap", &server.bootstrap(), "--run", "t1"]);
    assert_eq!(s["mode"], "bootstrap");
    check(&s, &text);
    // The same run again on the same cluster (a new process): everyone's last read is
    // where the first one left it, so no user gets a message of the first run again (the
    // second run says the same things anew: a text twice would be a redelivery).
    let (again, text) = run(&["--bootstrap", &server.bootstrap(), "--run", "t1"]);
    for (user, got) in again["delivered"].as_object().unwrap() {
        let got: Vec<&str> = got
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let mut unique = got.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), got.len(), "{user}: {text}");
    }
    assert_eq!(again["notified"].as_array().unwrap().len(), 4, "{text}");
    // Its topics and groups are in the series the dashboards query (topics: records in per
    // topic; groups: committed offsets, hence lag, per group).
    let text = metrics.render();
    assert!(
        text.lines()
            .any(|l| l.starts_with("eddy_produce_records_total")
                && l.contains("topic=\"chatroom_general-t1\"")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("eddy_group_committed_offset")
                && l.contains("group=\"user_ann\"")),
        "{text}"
    );
    drop(server);
    eddy.shutdown();
}
