//! The example's short mode, both ways: on its in-process cluster, and with `--bootstrap`
//! against a real Kafka listener on a free port. The summary must show the chat replayed,
//! each bubble on one partition, and every kind of consumer response.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use serde_json::Value;

fn run(extra: &[&str]) -> (Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_context-bubbles"))
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
    let summary = stdout.lines().last().unwrap();
    (serde_json::from_str(summary).unwrap(), stdout)
}

fn check(summary: &Value, text: &str) {
    assert_eq!(summary["replayed"], 12, "{text}");
    assert_eq!(summary["messages"], 12, "{text}");
    assert_eq!(summary["one_partition_per_bubble"], true, "{text}");
    assert_eq!(summary["every_response_answers_a_message"], true, "{text}");
    // Three conversations and the greeting, plus the quote's own bubble at least.
    assert!(summary["bubbles"].as_u64().unwrap() >= 5, "{text}");
    for kind in ["reply", "reaction", "quote", "mention"] {
        assert!(
            summary["responses"][kind].as_u64().unwrap_or(0) >= 1,
            "no {kind}: {text}"
        );
    }
    // The readable conversation: the build-tool thread in one bubble, in order.
    let bubble = text
        .split("── bubble ")
        .find(|b| b.contains("has anyone tried the new release"))
        .unwrap();
    let first = bubble.find("has anyone tried").unwrap();
    let reply = bubble.find("the build cache is much faster").unwrap();
    assert!(first < reply, "{bubble}");
    assert!(text.contains("Eddy reacted 👋 to Ann"), "{text}");
}

#[test]
fn short_mode_embedded() {
    let (summary, text) = run(&[]);
    assert_eq!(summary["mode"], "embedded");
    check(&summary, &text);
}

#[test]
fn short_mode_over_the_kafka_protocol() {
    // The cluster's metrics, as `eddy serve` exports them to Prometheus and Grafana.
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = eddy_broker::testing::config(dir.path());
    config.auto_create_topics = false;
    let eddy = eddy_broker::EmbeddedCluster::open(config).unwrap();
    let server = eddy_kafka::testing::TestListener::start(eddy.cluster()).unwrap();
    let (summary, text) = run(&["--bootstrap", &server.bootstrap()]);
    assert_eq!(summary["mode"], "bootstrap");
    check(&summary, &text);
    // Its topics and groups are in the series the dashboards query (topics: records in per
    // topic; groups: committed offsets, hence lag, per group).
    let text = metrics.render();
    assert!(
        text.lines().any(
            |l| l.starts_with("eddy_produce_records_total") && l.contains("topic=\"user_ann\"")
        ),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("eddy_group_committed_offset")
                && l.contains("group=\"context-bubbles-")),
        "{text}"
    );
    drop(server);
    eddy.shutdown();
}
