//! The Grafana dashboards in `grafana/dashboards/` name only metrics of this vocabulary (a
//! histogram's `_bucket`, `_sum` and `_count` series included), and every dashboard has
//! queries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use eddy_metrics::{Kind, ALL};
use serde_json::Value;

fn dashboards() -> Vec<(PathBuf, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../grafana/dashboards");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            out.push((path, serde_json::from_str(&text).unwrap()));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Every `expr` in a dashboard.
fn exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

/// The `eddy_...` identifiers in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("eddy_") {
        let start = i + at;
        let boundary =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if boundary {
            names.push(expr[start..end].to_owned());
        }
        i = end;
    }
    names
}

fn known(name: &str) -> bool {
    ALL.iter().any(|m| {
        m.name == name
            || (m.kind == Kind::Histogram
                && ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name.strip_suffix(s) == Some(m.name)))
    })
}

#[test]
fn dashboards_use_only_exported_metric_names() {
    let all = dashboards();
    assert!(all.len() >= 4, "dashboards missing: {all:?}");
    for (path, d) in all {
        let mut es = Vec::new();
        exprs(&d, &mut es);
        assert!(!es.is_empty(), "{} has no queries", path.display());
        for e in es {
            let names = metric_names(&e);
            assert!(
                !names.is_empty(),
                "{}: {e} names no Eddy metric",
                path.display()
            );
            for n in names {
                assert!(
                    known(&n),
                    "{}: {n} (in {e}) is not an Eddy metric",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn names_are_found_in_expressions() {
    assert_eq!(
        metric_names("sum(rate(eddy_a_total[1m])) / x_eddy_b + eddy_c_bucket"),
        vec!["eddy_a_total", "eddy_c_bucket"]
    );
    assert!(known("eddy_log_commit_seconds_bucket"));
    assert!(!known("eddy_produce_records_total_bucket"));
}
