//! `eddy bench` against a running `eddy serve`: produce, consume and end-to-end modes report
//! what they moved and their latencies (figures are for `benches/README.md`, not asserted).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{serve, stop};
use serde_json::Value;

fn bench(boot: &str, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(["bench"])
        .args(args)
        .args(["--bootstrap", boot, "--json", "--duration", "1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

#[test]
fn produce_consume_and_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let (child, boot, http) = serve(dir.path());
    let p = bench(
        &boot,
        &[
            "produce",
            "--record-size",
            "100",
            "--keyed",
            "--compression",
            "lz4",
            "--producer-config",
            "socket.nagle.disable=false",
        ],
    );
    // Overrides reach the client and the report says which were given.
    assert_eq!(
        p["producer_config"]["socket.nagle.disable"].as_str(),
        Some("false"),
        "{p}"
    );
    let n = p["records"].as_u64().unwrap();
    assert!(n > 0, "{p}");
    assert!(p["latency"]["p99_ms"].as_f64().unwrap() >= p["latency"]["p50_ms"].as_f64().unwrap());
    // One warm-up record per partition went before the clock (3 partitions, 1 producer).
    assert_eq!(p["warm_up_records"].as_u64(), Some(3), "{p}");
    let c = bench(
        &boot,
        &["consume", "--consumer-config", "fetch.wait.max.ms=50"],
    );
    assert_eq!(c["records"].as_u64().unwrap(), n + 3, "{c}");
    let e = bench(
        &boot,
        &[
            "e2e",
            "--topic",
            "e2e",
            "--rate",
            "2000",
            "--retention-ms",
            "3600000",
            "--retention-bytes",
            "1048576",
            "--raw-disk",
            dir.path().to_str().unwrap(),
            "--raw-disk-mib",
            "8",
        ],
    );
    assert_eq!(e["received"], e["records"], "{e}");
    assert!(e["latency"]["max_ms"].as_f64().unwrap() > 0.0, "{e}");
    // e2e also reports its producers' side: send to acknowledgement.
    assert!(
        e["produce_latency"]["max_ms"].as_f64().unwrap() > 0.0,
        "{e}"
    );
    assert_eq!(e["warm_up_records"].as_u64(), Some(3), "{e}");
    assert!(e["raw_disk_burst_mb_per_s"].as_f64().unwrap() > 0.0, "{e}");
    assert!(e["raw_disk_synced_mb_per_s"].as_f64().unwrap() > 0.0, "{e}");
    // e2e reports the throughput it held, so the ratios come with it (3 replicas).
    let (mbs, ratio, all) = (
        e["mb_per_s"].as_f64().unwrap(),
        e["ratio_to_raw_disk"].as_f64().unwrap(),
        e["replicas_ratio_to_raw_disk"].as_f64().unwrap(),
    );
    assert!(mbs > 0.0 && (all - 3.0 * ratio).abs() < 1e-9, "{e}");
    // After the run, the disk alone at the same write rate (3 replicas' appends, each
    // piece fdatasync'd): its latency tail, and the rate it wrote at.
    let appends = e["raw_disk_append_mb_per_s"].as_f64().unwrap();
    assert!((appends - 3.0 * mbs).abs() < 1e-6 * appends.max(1.0), "{e}");
    let disk = &e["raw_disk_append_latency"];
    assert!(
        disk["max_ms"].as_f64().unwrap() >= disk["p50_ms"].as_f64().unwrap(),
        "{e}"
    );
    assert!(disk["p50_ms"].as_f64().unwrap() > 0.0, "{e}");
    // It leaves nothing behind in the directory.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|f| f.ok())
        .filter(|f| {
            f.file_name()
                .to_string_lossy()
                .starts_with("eddy-bench-raw")
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // The topic it made has the retention asked for (in force during the run).
    let api = eddy_http::client::Client::new(http, std::time::Duration::from_secs(30));
    let t: Value = api
        .request("GET", "/topics/e2e", None)
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        (&t["retention_ms"], &t["retention_bytes"]),
        (&Value::from(3_600_000), &Value::from(1_048_576)),
        "{t}"
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(["bench", "sideways"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    // A property that is not KEY=VALUE is a usage error; one librdkafka does not know fails
    // the run with librdkafka's message.
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_eddy"))
            .args(["bench", "produce", "--bootstrap", &boot, "--duration", "1"])
            .args(extra)
            .output()
            .unwrap()
    };
    assert_eq!(
        run(&["--producer-config", "lingerms"]).status.code(),
        Some(2)
    );
    let unknown = run(&["--producer-config", "no.such.property=1"]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no.such.property"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
    stop(child);
}

/// `eddy bench chat` with both clients, at a small size: every partition of the user topics
/// acknowledged, read back and committed.
#[test]
fn chat_with_librdkafka_and_the_wire_client() {
    let dir = tempfile::tempdir().unwrap();
    let (child, boot, _http) = serve(dir.path());
    for (client, prefix) in [("librdkafka", "rd_user_"), ("wire", "wire_user_")] {
        let r = bench(
            &boot,
            &[
                "chat",
                "--users",
                "5",
                "--topic-prefix",
                prefix,
                "--client",
                client,
                "--no-baseline",
                "--idle-seconds",
                "0",
                "--phase-timeout",
                "60",
            ],
        );
        let users = &r["users"];
        assert_eq!(r["client"], client, "{r}");
        assert_eq!(users["partitions"], 50, "{r}");
        assert_eq!(users["produce"]["acked"], 50, "{r}");
        assert_eq!(users["read"]["received"], 50, "{r}");
        assert_eq!(users["read"]["commit_ok"], true, "{r}");
    }
    stop(child);
}
