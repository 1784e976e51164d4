//! `/metrics` through the real Prometheus exporter (a test binary of its own: the recorder is
//! process-wide): what the HTTP API makes the cluster do shows up under Eddy's names.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{test_http_config, Server};
use serde_json::json;

#[test]
fn metrics_are_served_in_prometheus_text() {
    let prometheus = eddy_metrics::install().unwrap();
    let s = Server::start_with(test_http_config(), Some(prometheus));
    s.create_topic("metered", 1);
    let records: Vec<_> = (0..5).map(|i| json!({"value": i})).collect();
    s.post_expect(
        "/events",
        json!({"topic": "metered", "records": records}),
        200,
    );
    let read = s.get_ok("/events?topic=metered&partition=0&wait_ms=0");
    assert_eq!(read["records"].as_array().unwrap().len(), 5);
    let r = s.get("/metrics");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let text = String::from_utf8(r.body).unwrap();
    for want in [
        "eddy_produce_records_total{topic=\"metered\"} 5",
        "# TYPE eddy_produce_latency_seconds",
        "eddy_partition_high_watermark{topic=\"metered\",partition=\"0\"} 5",
        "# HELP eddy_produce_bytes_total",
        "eddy_fetch_records_total{topic=\"metered\"} 5",
        "# TYPE eddy_fetch_latency_seconds",
        "eddy_http_requests_total{route=\"/events\",method=\"POST\",status=\"200\"} 1",
        "eddy_http_requests_total{route=\"/topics\",method=\"POST\",status=\"201\"} 1",
        "eddy_producer_batch_fill_ratio",
    ] {
        assert!(text.contains(want), "{want} missing from:\n{text}");
    }

    // A deleted topic's series go with it (as in Kafka); the others stay. Made again, the
    // topic's series start from zero.
    s.create_topic("kept", 1);
    s.post_expect("/events", json!({"topic": "kept", "value": 1}), 200);
    assert_eq!(s.delete("/topics/metered").status, 204);
    let text = String::from_utf8(s.get("/metrics").body).unwrap();
    assert!(!text.contains("topic=\"metered\""), "{text}");
    assert!(
        text.contains("eddy_produce_records_total{topic=\"kept\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("eddy_http_requests_total{route=\"/events\""),
        "{text}"
    );
    s.create_topic("metered", 1);
    s.post_expect("/events", json!({"topic": "metered", "value": 1}), 200);
    let text = String::from_utf8(s.get("/metrics").body).unwrap();
    assert!(
        text.contains("eddy_produce_records_total{topic=\"metered\"} 1"),
        "{text}"
    );
}
