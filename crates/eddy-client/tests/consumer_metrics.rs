//! Group and consumer metrics, read back from the Prometheus exporter's text (a test binary of
//! its own: the recorder is process-wide).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use eddy_broker::records::encode_batch;
use eddy_client::{Consumer, ConsumerConfig, OffsetReset};
use eddy_types::Acks;

/// The sample of `name` with exactly these labels, if exported.
fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn test_lag_rebalances_and_commits_are_exported() {
    // Eddy's recorder, as `eddy serve` installs it (high watermarks are read at scrape time).
    let prometheus = eddy_metrics::install().unwrap();
    let dir = tempfile::tempdir().unwrap();
    paused(async {
        let c = start_with_topic(dir.path(), "t", 1).await;
        let batch = |n: usize| {
            let records: Vec<_> = (0..n)
                .map(|i| (None, Some(Bytes::from(format!("v{i}")))))
                .collect();
            encode_batch(&records, 1).unwrap()
        };
        c.produce("t", 0, batch(5), Acks::All).await.unwrap();

        let mut config = ConsumerConfig::with_group("g").auto_offset_reset(OffsetReset::Earliest);
        config.enable_auto_commit = false;
        let mut consumer = Consumer::new(&c, config).unwrap();
        consumer.subscribe(["t"]).unwrap();
        let mut got = 0;
        while got < 5 {
            got += consumer
                .poll(Duration::from_millis(200))
                .await
                .unwrap()
                .len();
        }
        consumer.commit_sync().await.unwrap();
        // Three more records the group has not read: hw 8, committed 5.
        c.produce("t", 0, batch(3), Acks::All).await.unwrap();

        let text = prometheus.render();
        let tp = r#"topic="t",partition="0""#;
        let group_tp = format!(r#"group="g",{tp}"#);
        assert_eq!(
            sample(&text, "eddy_consumer_lag_records", &group_tp),
            Some(0.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, "eddy_consumer_rebalances_total", r#"group="g""#),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "eddy_consumer_commits_total", r#"group="g""#),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "eddy_group_rebalances_total", r#"group="g""#),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, "eddy_group_offset_commits_total", r#"group="g""#),
            Some(1.0)
        );
        // Lag of any client, Kafka's included: high watermark minus committed offset.
        let hw = sample(&text, "eddy_partition_high_watermark", tp).unwrap();
        let committed = sample(&text, "eddy_group_committed_offset", &group_tp).unwrap();
        assert_eq!((hw, committed), (8.0, 5.0));
        // The same per topic: what stays when per-partition series are off.
        let t = r#"topic="t""#;
        let group_t = r#"group="g",topic="t""#;
        assert_eq!(sample(&text, "eddy_topic_high_watermark", t), Some(8.0));
        assert_eq!(
            sample(&text, "eddy_group_topic_committed_offset", group_t),
            Some(5.0)
        );
        assert_eq!(
            sample(&text, "eddy_consumer_topic_lag_records", group_t),
            Some(0.0)
        );
        assert!(text.contains("# HELP eddy_consumer_lag_records"));

        consumer.close().await.unwrap();
        c.shutdown().await;
    });
}
