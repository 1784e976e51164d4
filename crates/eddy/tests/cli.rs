//! The client commands against a real `eddy serve` process: topics, produce (stdin and a
//! file), consume (direct, as a group, following), groups; tables, `--json`, errors and exit
//! codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};

use common::{serve, stop};
use serde_json::Value;

struct Eddy {
    http: String,
}

impl Eddy {
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(env!("CARGO_BIN_EXE_eddy"))
            .args(args)
            .args(["--server", &self.http])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    }

    /// Runs a command that must succeed; its stdout.
    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "eddy {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command that must fail with `code`; its stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args, None);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "eddy {args:?}: {err}");
        err
    }
}

#[test]
fn topics_produce_consume_and_groups_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (child, _boot, http) = serve(dir.path());
    let eddy = Eddy { http };

    assert_eq!(
        eddy.ok(&["topic", "create", "chat", "-p", "3"], None),
        "created topic chat (3 partitions, replication factor 3)\n"
    );
    let err = eddy.fails(&["topic", "create", "chat"], 1);
    assert!(err.contains("already exists (409 already_exists)"), "{err}");
    let list = eddy.ok(&["topic", "list"], None);
    // The context consumer's group made the internal offsets topic, as in Kafka.
    let rows: Vec<Vec<&str>> = list
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["TOPIC", "PARTITIONS", "REPLICATION", "RETENTION"],
        "{list}"
    );
    assert!(rows.contains(&vec!["chat", "3", "3", "7d"]), "{list}");
    // Columns line up: every row's second cell starts under PARTITIONS.
    let column = list.find("PARTITIONS").unwrap();
    for line in list.lines() {
        assert!(
            line.as_bytes()[column - 1] == b' ' && line.as_bytes()[column] != b' ',
            "{list}"
        );
    }
    let describe = eddy.ok(&["topic", "describe", "chat"], None);
    assert!(
        describe.contains("PARTITION  LEADER  EPOCH  REPLICAS  ISR"),
        "{describe}"
    );
    let json: Value =
        serde_json::from_str(&eddy.ok(&["topic", "describe", "chat", "--json"], None)).unwrap();
    assert_eq!(json["partitions"].as_array().unwrap().len(), 3);

    // Lines from stdin, keyed; then 1,000 lines from a file.
    let summary: Value = serde_json::from_str(&eddy.ok(
        &["produce", "chat", "-k", ":", "--json"],
        Some("alice:hello\nbob:hi there\nalice:bye\n"),
    ))
    .unwrap();
    assert_eq!(summary["records"], 3);
    let file = dir.path().join("lines.txt");
    let lines: String = (0..1000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(&file, &lines).unwrap();
    eddy.ok(
        &[
            "produce",
            "chat",
            "--file",
            file.to_str().unwrap(),
            "--batch",
            "128",
        ],
        None,
    );
    let out = eddy.run(&["produce", "chat", "-k", ":"], Some("no separator\n"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1 has no key separator"));
    let out = eddy.run(
        &["produce", "chat", "--value-format", "json"],
        Some("{not json\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1 is not JSON"));

    // Everything, read directly from every partition.
    let all = eddy.ok(&["consume", "chat"], None);
    let mut got: Vec<&str> = all.lines().collect();
    assert_eq!(got.len(), 1003);
    got.sort();
    assert!(got.contains(&"hi there") && got.contains(&"line 999"));
    let keyed = eddy.ok(&["consume", "chat", "--print-key"], None);
    assert!(keyed.contains("bob\thi there\n"), "{keyed}");
    assert_eq!(
        eddy.ok(&["consume", "chat", "--max-records", "2"], None)
            .lines()
            .count(),
        2
    );
    let one: Value = serde_json::from_str(
        eddy.ok(&["consume", "chat", "--json", "--max-records", "1"], None)
            .trim(),
    )
    .unwrap();
    assert!(one["offset"].is_u64());

    // As a group: every record once, committed, and the member gone when the command ends.
    let grouped = eddy.ok(&["consume", "chat", "--group", "readers"], None);
    assert_eq!(grouped.lines().count(), 1003);
    let groups = eddy.ok(&["groups", "list"], None);
    assert!(groups.contains("readers"), "{groups}");
    let described = eddy.ok(&["groups", "describe", "readers", "--json"], None);
    let g: Value = serde_json::from_str(&described).unwrap();
    assert!(g["members"].as_array().unwrap().is_empty(), "{g}");
    for p in g["partitions"].as_array().unwrap() {
        assert_eq!(p["lag"], 0, "{p}");
    }
    let table = eddy.ok(&["groups", "describe", "readers"], None);
    assert!(
        table.contains("TOPIC  PARTITION  COMMITTED  LOG-END  LAG  MEMBER"),
        "{table}"
    );
    // Nothing new for the group.
    assert_eq!(
        eddy.ok(
            &["consume", "chat", "--group", "readers", "--idle-ms", "1500"],
            None
        ),
        ""
    );

    // Following one partition: a record produced later shows up.
    let mut follower = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args([
            "consume", "chat", "-p", "1", "--offset", "end", "--follow", "--server", &eddy.http,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    eddy.ok(&["produce", "chat", "-p", "1"], Some("late news\n"));
    let mut line = String::new();
    BufReader::new(follower.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "late news\n");
    follower.kill().unwrap();
    let _ = follower.wait();

    assert_eq!(
        eddy.ok(&["topic", "delete", "chat"], None),
        "deleted topic chat\n"
    );
    let err = eddy.fails(&["topic", "describe", "chat"], 1);
    assert!(err.contains("404 not_found"), "{err}");
    eddy.fails(&["topic", "create"], 2);
    stop(child);

    // The server is gone: exit code 3.
    let err = eddy.fails(&["topic", "list"], 3);
    assert!(err.contains("cannot connect"), "{err}");
}
