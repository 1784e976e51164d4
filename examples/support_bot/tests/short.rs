//! The support-bot pipeline, both ways: on its in-process cluster (answers on stdout), and
//! with `--bootstrap` against a real Kafka listener with answers posted to a webhook on a
//! real socket (which fails once, to be retried). The topics get their partitions and
//! retention; every query gets the answer the chat holds; records that break their schema
//! land in `dead-letters` with the reason; and with a model that cannot be reached, every
//! query ends there too, after retries, instead of being lost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};

use serde_json::Value;

const DAY_MS: i64 = 24 * 3600 * 1000;

fn run(extra: &[&str]) -> (Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_support-bot"))
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

fn check_answers(s: &Value, text: &str) {
    assert_eq!(s["indexed"], 12, "{text}");
    assert_eq!(s["queries"], 5, "{text}");
    let answers = s["answers"].as_array().unwrap();
    assert_eq!(answers.len(), 5, "{text}");
    for (question, expected) in [
        ("password", "settings page"),
        ("CSV", "reports tab"),
        ("invoices", "first day of each month"),
        ("dark mode", "version 4.2"),
        ("two factor", "thirty seconds"),
    ] {
        let a = answers
            .iter()
            .find(|a| a["question"].as_str().unwrap().contains(question))
            .unwrap_or_else(|| panic!("no answer about {question}: {text}"));
        assert!(
            a["answer"].as_str().unwrap().contains(expected),
            "{question}: {a}"
        );
        assert!(!a["sources"].as_array().unwrap().is_empty(), "{a}");
    }
    let dead = s["dead_letters"].as_array().unwrap();
    assert_eq!(dead.len(), 2, "{text}");
    for d in dead {
        assert_eq!(d["topic"], "chat-messages", "{d}");
        assert!(d["reason"].as_str().unwrap().starts_with("schema:"), "{d}");
    }
}

#[test]
fn the_pipeline_answers_from_the_chat_on_stdout() {
    let (s, text) = run(&[]);
    assert_eq!(s["mode"], "embedded");
    check_answers(&s, &text);
    assert_eq!(s["delivered"], 5, "{text}");
    assert!(
        text.contains("bot → @fay: From the channel, @bob said"),
        "{text}"
    );
}

/// Answers 503 to the first post, 200 to the rest; keeps every body.
fn webhook() -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let log = got.clone();
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(mut stream) = conn else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let line = line.trim_end().to_ascii_lowercase();
                if line.is_empty() {
                    break;
                }
                if let Some(v) = line.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let status = if n == 0 { "503 Busy" } else { "200 OK" };
            if n > 0 {
                log.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap());
            }
            let _ = stream.write_all(
                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
        }
    });
    (format!("http://{addr}/hook"), got)
}

#[test]
fn over_the_kafka_protocol_to_a_webhook_and_with_a_model_that_is_down() {
    // The cluster's metrics, as `eddy serve` exports them to Prometheus and Grafana.
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let eddy =
        eddy_broker::EmbeddedCluster::open(eddy_broker::testing::config(dir.path())).unwrap();
    let server = eddy_kafka::testing::TestListener::start(eddy.cluster()).unwrap();
    let (url, posted) = webhook();
    let (s, text) = run(&["--bootstrap", &server.bootstrap(), "--webhook", &url]);
    assert_eq!(s["mode"], "bootstrap");
    check_answers(&s, &text);
    assert_eq!(s["delivered"], 5, "{text}");
    let posted = posted.lock().unwrap().clone();
    assert_eq!(posted.len(), 5, "{posted:?}");
    assert!(posted
        .iter()
        .any(|p| p["user"] == "lee" && p["text"].as_str().unwrap().contains("thirty seconds")));
    let cluster = eddy.cluster();
    for (topic, partitions, retention) in [
        ("chat-messages", 3, Some(7 * DAY_MS)),
        ("bot-queries", 3, Some(DAY_MS)),
        ("bot-responses", 3, Some(DAY_MS)),
    ] {
        let t = cluster.describe_topic(topic).unwrap();
        assert_eq!(t.partitions.len(), partitions, "{topic}");
        assert_eq!(t.config.retention_ms, retention, "{topic}");
    }

    // A model nobody answers at: each query is tried again, then the circuit opens; every
    // query ends in dead-letters with the reason, and the run still completes.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let (s, text) = run(&[
        "--bootstrap",
        &server.bootstrap(),
        "--openai-base-url",
        &dead_url,
    ]);
    assert_eq!(s["queries"], 5, "{text}");
    assert_eq!(s["answers"].as_array().unwrap().len(), 0, "{text}");
    let model_failures: Vec<&Value> = s["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["topic"] == "bot-queries")
        .collect();
    assert_eq!(model_failures.len(), 5, "{text}");
    assert!(model_failures
        .iter()
        .all(|d| d["reason"].as_str().unwrap().starts_with("model failed")));
    assert!(model_failures
        .iter()
        .any(|d| d["reason"].as_str().unwrap().contains("circuit open")));
    // Its topics and groups are in the series the dashboards query (topics: records in per
    // topic; groups: committed offsets, hence lag, per group).
    let text = metrics.render();
    assert!(
        text.lines()
            .any(|l| l.starts_with("eddy_produce_records_total")
                && l.contains("topic=\"bot-queries\"")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("eddy_group_committed_offset")
                && l.contains("group=\"support-bot\"")),
        "{text}"
    );
    drop(server);
    eddy.shutdown();
}
