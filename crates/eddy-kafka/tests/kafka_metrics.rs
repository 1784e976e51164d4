//! The listener's metrics, read back from the Prometheus exporter's text (a test binary of its
//! own: the recorder is process-wide).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Server, Wire};
use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};
use metrics_exporter_prometheus::PrometheusBuilder;

fn sample(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn test_requests_latency_and_open_connections_are_exported() {
    let prometheus = PrometheusBuilder::new().install_recorder().unwrap();
    eddy_metrics::describe();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let addr = server.addr(0);
    server.block_on(async {
        let mut w = Wire::connect(addr).await;
        w.request(3, &ApiVersionsRequest::default()).await.unwrap();
        w.request(3, &ApiVersionsRequest::default()).await.unwrap();
        w.request(12, &MetadataRequest::default()).await.unwrap();
        let text = prometheus.render();
        assert_eq!(
            sample(&text, r#"eddy_kafka_requests_total{api="ApiVersions"} "#),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, r#"eddy_kafka_requests_total{api="Metadata"} "#),
            Some(1.0)
        );
        assert_eq!(sample(&text, "eddy_kafka_open_connections "), Some(1.0));
        assert_eq!(
            sample(
                &text,
                r#"eddy_kafka_request_seconds_count{api="Metadata"} "#
            ),
            Some(1.0)
        );
        drop(w);
        // The gauge goes back down once the server sees the connection close.
        let mut closed = false;
        for _ in 0..100 {
            if sample(&prometheus.render(), "eddy_kafka_open_connections ") == Some(0.0) {
                closed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(closed);
    });
    server.stop();
}
