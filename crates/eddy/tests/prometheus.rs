//! The dashboards against a real Prometheus (Debian's `prometheus`, installed by
//! `./scripts/test`): it scrapes a running `eddy serve` (with its context consumer and the
//! offline responder) under a short workload (HTTP, kcat, chat messages and a context
//! lookup), and every PromQL expression of `grafana/dashboards/*.json` returns data through
//! Prometheus's HTTP API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{kcat, serve_with, stop, Proc};
use eddy_http::client::{encode_component, Client};
use serde_json::{json, Value};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn dashboard_exprs() -> Vec<(String, String)> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => m.iter().for_each(|(k, v)| match (k.as_str(), v) {
                ("expr", Value::String(e)) => out.push(e.clone()),
                _ => walk(v, out),
            }),
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../grafana/dashboards");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let d: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut es = Vec::new();
        walk(&d, &mut es);
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        out.extend(es.into_iter().map(|e| (file.clone(), e)));
    }
    out
}

#[test]
fn every_dashboard_query_returns_data_from_a_real_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let (eddy, boot, http) = serve_with(&dir.path().join("eddy"), &["--responder", "offline"]);
    let api = Client::new(http.clone(), Duration::from_secs(30));

    let port = free_port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: eddy\n    \
             static_configs:\n      - targets: [\"{http}\"]\n"
        ),
    )
    .unwrap();
    let prometheus = Proc::new(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("prometheus is missing: run ./scripts/test, which installs it"),
    );
    let prom = Client::new(format!("127.0.0.1:{port}"), Duration::from_secs(30));

    // A short workload: HTTP publish (acks 1 and all) and reads, a group over HTTP, kcat.
    let r = api
        .request(
            "POST",
            "/topics",
            Some(&json!({"name": "chat", "partitions": 3})),
        )
        .unwrap();
    assert_eq!(r.status, 201);
    for acks in ["1", "all"] {
        let records: Vec<Value> = (0..50)
            .map(|i| json!({"key": format!("u{i}"), "value": i}))
            .collect();
        let r = api
            .request(
                "POST",
                "/events",
                Some(&json!({"topic": "chat", "acks": acks, "records": records})),
            )
            .unwrap();
        assert_eq!(r.status, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = 0;
    while got < 100 {
        assert!(Instant::now() < deadline, "the group read {got} of 100");
        let r = api
            .request(
                "GET",
                "/events?topic=chat&group=readers&commit=true&wait_ms=500",
                None,
            )
            .unwrap();
        got += r.json().unwrap()["records"].as_array().unwrap().len();
    }
    api.request("GET", "/events?topic=chat&partition=0&wait_ms=0", None)
        .unwrap();
    kcat(&boot, &["-P", "-t", "chat", "-K:"], Some("a:1\nb:2\n"));
    kcat(
        &boot,
        &["-C", "-t", "chat", "-o", "beginning", "-e", "-q"],
        None,
    );

    // Chat for the context consumer: a group chat in user topics, answered by the offline
    // responder, and a context looked up over HTTP.
    let chat = eddy_context::conformance::sample_chat();
    let mut users: Vec<&str> = chat.iter().map(|m| m.sender_id.as_str()).collect();
    users.sort_unstable();
    users.dedup();
    for user in users {
        let r = api
            .request(
                "POST",
                "/topics",
                Some(&json!({"name": format!("user_{user}"), "partitions": 2})),
            )
            .unwrap();
        assert_eq!(r.status, 201);
    }
    for m in &chat {
        let r = api
            .request(
                "POST",
                "/events",
                Some(&json!({"topic": format!("user_{}", m.sender_id), "value": serde_json::to_value(m).unwrap()})),
            )
            .unwrap();
        assert_eq!(r.status, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while api.request("GET", "/context/a5", None).unwrap().status != 200 {
        assert!(Instant::now() < deadline, "a5 never observed");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Wait until every query answers with data (rates need two scrapes of each series).
    let exprs = dashboard_exprs();
    assert!(exprs.len() > 20, "{exprs:?}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut missing;
    loop {
        missing = Vec::new();
        for (file, e) in &exprs {
            let r = prom.request(
                "GET",
                &format!("/api/v1/query?query={}", encode_component(e)),
                None,
            );
            let ok = match r {
                Ok(r) if r.status == 200 => {
                    let v = r.json().unwrap();
                    v["status"] == "success"
                        && v["data"]["result"]
                            .as_array()
                            .is_some_and(|a| !a.is_empty())
                }
                Ok(r) => panic!(
                    "{file}: {e}: Prometheus refused it: {}",
                    String::from_utf8_lossy(&r.body)
                ),
                Err(_) => false,
            };
            if !ok {
                missing.push(format!("{file}: {e}"));
            }
        }
        if missing.is_empty() || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(
        missing.is_empty(),
        "queries without data:\n{}",
        missing.join("\n")
    );
    drop(prometheus);
    stop(eddy);
}
