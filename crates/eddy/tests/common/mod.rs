//! `eddy serve` as a child process on free ports, for the binary's tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts `eddy serve` on free ports in `dir`; answers the child, its bootstrap list and
/// its HTTP address.
pub fn serve(dir: &Path) -> (Proc, String, String) {
    serve_with(dir, &[])
}

/// [`serve`] with more flags.
pub fn serve_with(dir: &Path, extra: &[&str]) -> (Proc, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args([
            "serve",
            "--kafka-port",
            "0",
            "--http-port",
            "0",
            "--data-dir",
        ])
        .arg(dir)
        .args(extra)
        .env("EDDY_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    let boot = line
        .strip_prefix("eddy: kafka listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    let line = lines.next().unwrap().unwrap();
    let http = line
        .strip_prefix("eddy: http listening on ")
        .unwrap_or_else(|| panic!("unexpected second line {line:?}"))
        .to_owned();
    // Keep draining stdout so the server never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (Proc::new(child), boot, http)
}

/// A child process killed if the test fails before stopping it (it would otherwise hold the
/// test runner's stderr open).
#[derive(Debug)]
pub struct Proc(Option<Child>);

impl Proc {
    /// Kills `child` when dropped.
    pub fn new(child: Child) -> Proc {
        Proc(Some(child))
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn stop(mut proc: Proc) {
    let mut child = proc.0.take().unwrap();
    let pid = child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "eddy exited with {status}");
            return;
        }
        assert!(Instant::now() < deadline, "eddy did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs kcat against `boot` with `input` on its stdin; its stdout. Fails the test if kcat
/// fails.
pub fn kcat(boot: &str, args: &[&str], input: Option<&str>) -> String {
    let mut child = Command::new("kcat")
        .arg("-b")
        .arg(boot)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat is missing: run ./scripts/test, which installs it");
    let mut stdin = child.stdin.take().unwrap();
    if let Some(input) = input {
        stdin.write_all(input.as_bytes()).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kcat {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `GET /context/{id}` of a running server, once its context consumer has observed `id`;
/// the message ids of the thread.
pub fn context_thread(http: &str, id: &str) -> Vec<String> {
    let api = eddy_http::client::Client::new(http.to_owned(), Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = api.request("GET", &format!("/context/{id}"), None).unwrap();
        if r.status == 200 {
            let v: serde_json::Value = r.json().unwrap();
            return v["thread"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["message_id"].as_str().unwrap().to_owned())
                .collect();
        }
        assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));
        assert!(Instant::now() < deadline, "{id} was never observed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every record of `topic` (partitions `0..partitions`) whose value is a number (others, such
/// as probes, are skipped), per partition in offset order. Reads until every number of
/// `acked` has come and each partition is read to its high watermark of that moment (after
/// a restart the mark catches up once followers fetch), or fails after a minute naming what
/// is missing.
pub fn read_numbered(
    boot: &str,
    topic: &str,
    partitions: i32,
    acked: &[u64],
) -> std::collections::BTreeMap<i32, Vec<u64>> {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    use rdkafka::{Message, Offset, TopicPartitionList};
    let c: BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", boot)
        .set("group.id", "numbered-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut missing: std::collections::HashSet<u64> = acked.iter().copied().collect();
    let mut out: std::collections::BTreeMap<i32, Vec<u64>> = Default::default();
    let mut next_offset: std::collections::BTreeMap<i32, i64> = Default::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match c.poll(Duration::from_millis(100)) {
            Some(m) => {
                let m = m.unwrap();
                next_offset.insert(m.partition(), m.offset() + 1);
                let text = std::str::from_utf8(m.payload().unwrap_or_default()).unwrap();
                if let Ok(v) = text.trim().parse::<u64>() {
                    missing.remove(&v);
                    out.entry(m.partition()).or_default().push(v);
                }
            }
            None if missing.is_empty() => {
                let at_end = (0..partitions).all(|p| {
                    let (_, hi) = c
                        .fetch_watermarks(topic, p, Duration::from_secs(30))
                        .unwrap();
                    next_offset.get(&p).copied().unwrap_or(0) >= hi
                });
                if at_end {
                    return out;
                }
            }
            None => {}
        }
        if Instant::now() > deadline {
            let mut m: Vec<u64> = missing.into_iter().collect();
            m.sort_unstable();
            panic!(
                "{} acknowledged records missing, from {:?}",
                m.len(),
                &m[..m.len().min(10)]
            );
        }
    }
}

/// Each partition of `log` in increasing order without repeats, no number in two places,
/// and every acknowledged number present.
pub fn check_numbered(log: &std::collections::BTreeMap<i32, Vec<u64>>, acked: &[u64]) {
    let mut seen = std::collections::HashSet::new();
    for (p, values) in log {
        for w in values.windows(2) {
            assert!(
                w[0] < w[1],
                "partition {p} out of order or repeated: {} then {}",
                w[0],
                w[1]
            );
        }
        for v in values {
            assert!(seen.insert(*v), "{v} is in the log twice");
        }
    }
    for a in acked {
        assert!(seen.contains(a), "acknowledged record {a} is missing");
    }
}

/// `eddy topic create TOPIC --partitions N` against a running server's HTTP API; fails the
/// test if it fails.
pub fn create_topic(http: &str, topic: &str, partitions: u32) {
    let out = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args([
            "topic",
            "create",
            topic,
            "--partitions",
            &partitions.to_string(),
        ])
        .args(["--server", http])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
