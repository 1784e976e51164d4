//! Unmodified Kafka clients against a real Eddy server on free ports: kafka-python,
//! confluent-kafka (librdkafka 2.16) and Debian's kcat (librdkafka 2.0.2). `./scripts/test`
//! installs them (a venv in `target/test-venv`, kcat from Debian's packages); each test
//! starts its own cluster and listeners.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Server;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    let venv = std::env::var_os("EDDY_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/test-venv/bin/python"));
    assert!(
        venv.exists(),
        "{} is missing: run ./scripts/test, which installs the Python Kafka clients",
        venv.display()
    );
    venv
}

/// Runs a command to completion within `limit`, panicking with its output if it fails.
fn run(mut cmd: Command, limit: Duration) -> String {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what} timed out after {limit:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({})\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn script(name: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(python());
    cmd.arg(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/clients")
            .join(name),
    );
    cmd.args(args);
    cmd
}

#[test]
fn test_kafka_python_produces_consumes_commits_and_administers() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let out = run(
        script("kafka_python_basics.py", &[&server.bootstrap()]),
        Duration::from_secs(120),
    );
    assert!(out.contains("ok"));
    server.stop();
}

#[test]
fn test_confluent_idempotent_producer_with_every_codec_and_offsets_for_times() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    run(
        script("confluent_codecs.py", &[&server.bootstrap()]),
        Duration::from_secs(120),
    );
    server.stop();
}

#[test]
fn test_confluent_group_of_three_with_a_member_leaving_and_a_resume_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    run(
        script("confluent_group.py", &[&server.bootstrap()]),
        Duration::from_secs(180),
    );
    server.stop();
}

#[test]
fn test_confluent_admin_client_creates_describes_grows_trims_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    run(
        script("confluent_admin.py", &[&server.bootstrap()]),
        Duration::from_secs(120),
    );
    server.stop();
}

#[test]
fn test_confluent_two_thousand_partitions_acknowledged_and_read_once_by_a_regex_group() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let out = run(
        script("confluent_many_partitions.py", &[&server.bootstrap()]),
        Duration::from_secs(300),
    );
    // The phases' times, for whoever reads the test's output.
    eprintln!("{}", out.trim());
    server.stop();
}

#[test]
fn test_a_full_restart_between_produce_and_consume_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let acked = dir.path().join("acked.txt");
    let acked = acked.to_str().unwrap();
    let server = Server::start(dir.path());
    run(
        script("restart_produce.py", &[&server.bootstrap(), acked]),
        Duration::from_secs(120),
    );
    server.stop();
    let server = Server::start(dir.path());
    run(
        script("restart_consume.py", &[&server.bootstrap(), acked]),
        Duration::from_secs(120),
    );
    server.stop();
}

fn kcat(boot: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("kcat");
    cmd.arg("-b").arg(boot).args(args);
    cmd
}

fn kcat_with_input(boot: &str, args: &[&str], input: &str) -> String {
    use std::io::Write;
    let mut child = kcat(boot, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat is missing: run ./scripts/test, which installs it from Debian's packages");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kcat {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn test_kcat_lists_metadata_produces_with_keys_and_consumes_alone_and_in_a_group() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let boot = server.bootstrap();
    // Debian 12's kcat (librdkafka 2.0.2) reads our ApiVersions answer without tripping on
    // tagged fields, produces with keys and creates the topic on first use.
    kcat_with_input(
        &boot,
        &["-P", "-t", "kc", "-K", ":"],
        "k1:v1\nk2:v2\nk1:v3\n",
    );
    let meta = run(kcat(&boot, &["-L"]), Duration::from_secs(30));
    assert!(meta.contains("3 brokers"), "{meta}");
    assert!(meta.contains("topic \"kc\""), "{meta}");
    let all = run(
        kcat(
            &boot,
            &["-C", "-t", "kc", "-o", "beginning", "-e", "-f", "%k=%s\\n"],
        ),
        Duration::from_secs(60),
    );
    let mut lines: Vec<&str> = all.lines().collect();
    lines.sort();
    assert_eq!(lines, vec!["k1=v1", "k1=v3", "k2=v2"]);
    // In a group (the balanced consumer): reads everything once, then exits at the end.
    let grouped = run(
        kcat(
            &boot,
            &[
                "-G",
                "kc-group",
                "-o",
                "beginning",
                "-e",
                "-f",
                "%s\\n",
                "kc",
            ],
        ),
        Duration::from_secs(60),
    );
    let mut lines: Vec<&str> = grouped.lines().collect();
    lines.sort();
    assert_eq!(lines, vec!["v1", "v2", "v3"], "{grouped}");
    server.stop();
}
