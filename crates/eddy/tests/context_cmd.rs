//! `eddy context disentangle` on a small IRC log: one link per line in the scorer's format,
//! the links a strategy infers, clear errors for unknown strategies and bad parameters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

const LOG: &str = "\
=== yohannes has joined #ubuntu
[03:10] <yohannes> can anyone recommend an app to open rar files?
[03:10] <Hikaru79> yohannes, why not WinRAR?
[03:10] <Hikaru79> http://www.rarlab.com/
[03:11] <yohannes> i am weighing my options. any other apps?
[03:11]  * Nafallo waves
[03:40] <zed> is the wifi down?
";

fn eddy(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn disentangle_writes_one_link_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    std::fs::write(input.join("chat.ascii.txt"), LOG).unwrap();
    std::fs::write(input.join("notes.txt"), "ignored").unwrap();
    let out = dir.path().join("out");
    let run = |strategy: &str| {
        let o = eddy(&[
            "context",
            "disentangle",
            "--strategy",
            strategy,
            input.to_str().unwrap(),
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read_to_string(out.join("chat.annotation.txt")).unwrap()
    };
    assert_eq!(
        run("heuristic"),
        "0 0 -\n1 1 -\n1 2 -\n2 3 -\n2 4 -\n5 5 -\n6 6 -\n"
    );
    // The "previous message" baseline: system lines stand alone.
    assert_eq!(
        run("recent-window"),
        "0 0 -\n1 1 -\n1 2 -\n2 3 -\n3 4 -\n4 5 -\n5 6 -\n"
    );

    let o = eddy(&["context", "disentangle", "--strategy", "nope", "a", "b"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("known: heuristic, recent-window, reply-chain")
    );
    let o = eddy(&[
        "context",
        "disentangle",
        "--strategy",
        "heuristic",
        "--params",
        "{\"own_gap\": 1}",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown field `own_gap`"));
}
