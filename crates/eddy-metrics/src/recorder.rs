//! The recorder `eddy serve` installs: Prometheus's, except for the series labelled with a
//! topic, which live in a registry of Eddy's own so that a deleted topic's series go with it.
//!
//! `metrics-exporter-prometheus` keeps every series it was ever given (it can only drop series
//! that stayed idle for a timeout, which would also drop a live topic's quiet counters and
//! orphan the handles actors keep). A server that makes and deletes topics all day would then
//! grow without bound, in memory and in `/metrics`. Kafka removes a topic's metrics when the
//! topic is deleted; so does this recorder: [`topic_deleted`] removes them, and for a while
//! ([`FORGET_FOR`]) ignores late updates from actors still shutting down, unless
//! [`topic_created`] makes the name live again.
//!
//! [`Handle::render`] writes Prometheus's text and then the topic series in the same format.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, SharedString, Unit};
use metrics_exporter_prometheus::{
    BuildError, Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use metrics_util::registry::{AtomicStorage, Registry};

use crate::{Kind, ALL, BYTES_BUCKETS, RATIO_BUCKETS, SECONDS_BUCKETS};

/// How long a deleted topic's name stays forgotten: updates to its series in that time (from
/// actors or clients that have not seen the deletion yet) are dropped.
pub const FORGET_FOR: Duration = Duration::from_secs(300);

/// Why the recorder could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Prometheus recorder refused its configuration.
    #[error("cannot build the Prometheus recorder: {0}")]
    Build(#[from] BuildError),
    /// Another recorder is installed already.
    #[error("a metrics recorder is installed already")]
    Installed,
}

/// The histogram buckets of a metric, by its name's unit suffix.
pub fn buckets_for(name: &str) -> &'static [f64] {
    if name.ends_with("_bytes") {
        BYTES_BUCKETS
    } else if name.ends_with("_ratio") {
        RATIO_BUCKETS
    } else {
        SECONDS_BUCKETS
    }
}

/// The series labelled with a topic.
#[derive(Debug)]
struct TopicSeries {
    registry: Registry<Key, AtomicStorage>,
    /// Histogram samples drained from the registry's buckets, per series.
    histograms: Mutex<HashMap<Key, metrics_util::storage::Histogram>>,
    /// Deleted topics, and when they were deleted.
    forgotten: Mutex<HashMap<String, Instant>>,
    /// The [`crate::series_epoch`] of the last [`TopicSeries::drop_detail`].
    dropped_at: std::sync::atomic::AtomicU64,
}

fn topic_of(key: &Key) -> Option<&str> {
    key.labels().find(|l| l.key() == "topic").map(|l| l.value())
}

fn has_partition(key: &Key) -> bool {
    key.labels().any(|l| l.key() == "partition")
}

/// `key` without its `topic` label.
fn without_topic(key: &Key) -> Key {
    let labels: Vec<metrics::Label> = key
        .labels()
        .filter(|l| l.key() != "topic")
        .cloned()
        .collect();
    Key::from_parts(key.name().to_owned(), labels)
}

impl TopicSeries {
    fn new() -> TopicSeries {
        TopicSeries {
            registry: Registry::atomic(),
            histograms: Mutex::new(HashMap::new()),
            forgotten: Mutex::new(HashMap::new()),
            dropped_at: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn is_forgotten(&self, topic: &str) -> bool {
        let forgotten = self
            .forgotten
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        !forgotten.is_empty() && forgotten.contains_key(topic)
    }

    fn forget(&self, topic: &str) {
        self.forgotten
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(topic.to_owned(), Instant::now());
        let other = |k: &Key| topic_of(k) != Some(topic);
        self.registry.retain_counters(|k, _| other(k));
        self.registry.retain_gauges(|k, _| other(k));
        self.registry.retain_histograms(|k, _| other(k));
        self.histograms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|k, _| other(k));
    }

    fn remember(&self, topic: &str) {
        self.forgotten
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(topic);
    }

    /// Drops the series that [`crate::partition_series`] being off excludes: every series
    /// labelled with a partition, and the per-topic histograms (once per change).
    fn drop_detail(&self) {
        let epoch = crate::series_epoch();
        if self.dropped_at.swap(epoch, Ordering::AcqRel) == epoch || crate::partition_series() {
            return;
        }
        self.registry.retain_counters(|k, _| !has_partition(k));
        self.registry.retain_gauges(|k, _| !has_partition(k));
        self.registry.retain_histograms(|_, _| false);
        self.histograms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Moves the samples recorded since the last call into the histograms, and stops ignoring
    /// names deleted more than [`FORGET_FOR`] ago.
    fn upkeep(&self) {
        self.drop_detail();
        let mut histograms = self
            .histograms
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.registry.visit_histograms(|key, bucket| {
            let entry = histograms.entry(key.clone()).or_insert_with(|| {
                // Every bucket list of this crate has entries, which is all `new` asks.
                metrics_util::storage::Histogram::new(buckets_for(key.name()))
                    .unwrap_or_else(|| unreachable!("an empty bucket list"))
            });
            bucket.clear_with(|samples| entry.record_many(samples));
        });
        drop(histograms);
        self.prune(Instant::now());
    }

    fn prune(&self, now: Instant) {
        self.forgotten
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, at| now.saturating_duration_since(*at) < FORGET_FOR);
    }

    /// Writes every series in Prometheus's text format, one family per name.
    fn render(&self, out: &mut String) {
        self.upkeep();
        let mut families: BTreeMap<String, Vec<String>> = BTreeMap::new();
        self.registry.visit_counters(|key, c| {
            let line = series(key.name(), None, key, None, c.load(Ordering::Acquire));
            families
                .entry(key.name().to_owned())
                .or_default()
                .push(line);
        });
        self.registry.visit_gauges(|key, g| {
            let value = f64::from_bits(g.load(Ordering::Acquire));
            let line = series(key.name(), None, key, None, value);
            families
                .entry(key.name().to_owned())
                .or_default()
                .push(line);
        });
        let histograms = self
            .histograms
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (key, h) in histograms.iter() {
            let name = key.name();
            let mut text = String::new();
            for (le, count) in h.buckets() {
                text.push_str(&series(name, Some("_bucket"), key, Some(le), count));
            }
            text.push_str(&series(
                name,
                Some("_bucket"),
                key,
                Some(f64::INFINITY),
                h.count(),
            ));
            text.push_str(&series(name, Some("_sum"), key, None, h.sum()));
            text.push_str(&series(name, Some("_count"), key, None, h.count()));
            families.entry(name.to_owned()).or_default().push(text);
        }
        drop(histograms);
        for (name, lines) in crate::series::collect().families {
            families.entry(name.to_owned()).or_default().extend(lines);
        }
        for (name, mut lines) in families {
            lines.sort();
            let (kind, help) = ALL
                .iter()
                .find(|m| m.name == name)
                .map_or(("untyped", ""), |m| {
                    let kind = match m.kind {
                        Kind::Counter => "counter",
                        Kind::Gauge => "gauge",
                        Kind::Histogram => "histogram",
                    };
                    (kind, m.help)
                });
            if !help.is_empty() {
                let _ = writeln!(out, "# HELP {name} {help}");
            }
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for l in lines {
                out.push_str(&l);
            }
            out.push('\n');
        }
    }
}

/// One line: `name[suffix]{labels[,le="…"]} value`.
fn series(
    name: &str,
    suffix: Option<&str>,
    key: &Key,
    le: Option<f64>,
    value: impl std::fmt::Display,
) -> String {
    let mut s = String::with_capacity(128);
    s.push_str(name);
    if let Some(suffix) = suffix {
        s.push_str(suffix);
    }
    s.push('{');
    let mut first = true;
    for l in key.labels() {
        if !first {
            s.push(',');
        }
        first = false;
        let _ = write!(s, "{}=\"{}\"", l.key(), escape(l.value()));
    }
    if let Some(le) = le {
        if !first {
            s.push(',');
        }
        if le.is_infinite() {
            s.push_str("le=\"+Inf\"");
        } else {
            let _ = write!(s, "le=\"{le}\"");
        }
    }
    let _ = writeln!(s, "}} {value}");
    s
}

/// A label value as the text format writes it: `\`, `"` and newlines escaped.
pub(crate) fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

static TOPICS: OnceLock<Arc<TopicSeries>> = OnceLock::new();

/// Removes every series labelled with `topic` and ignores updates to them for [`FORGET_FOR`]
/// (until [`topic_created`] is called with the name). The controller calls it when it deletes
/// a topic. Does nothing unless Eddy's recorder is installed.
pub fn topic_deleted(topic: &str) {
    if let Some(t) = TOPICS.get() {
        t.forget(topic);
    }
}

/// Makes a topic's name live again after [`topic_deleted`]: the controller calls it when it
/// creates a topic.
pub fn topic_created(topic: &str) {
    if let Some(t) = TOPICS.get() {
        t.remember(topic);
    }
}

/// The recorder: Prometheus's for every series without a `topic` label, Eddy's registry for
/// the others.
#[derive(Debug)]
pub struct Recorder {
    prometheus: PrometheusRecorder,
    topics: Arc<TopicSeries>,
}

/// Renders `/metrics` and runs the recorder's upkeep.
#[derive(Debug, Clone)]
pub struct Handle {
    prometheus: PrometheusHandle,
    topics: Arc<TopicSeries>,
}

impl Handle {
    /// All series in Prometheus's text format.
    pub fn render(&self) -> String {
        let mut out = self.prometheus.render();
        self.topics.render(&mut out);
        out
    }

    /// Summarizes the histograms' recent samples; call it every few seconds so that they do
    /// not pile up between scrapes.
    pub fn run_upkeep(&self) {
        self.prometheus.run_upkeep();
        self.topics.upkeep();
    }
}

impl Recorder {
    /// A recorder with Eddy's histogram buckets. It is not installed: see [`install`].
    pub fn new() -> Result<Recorder, Error> {
        let mut builder = PrometheusBuilder::new();
        for suffix in ["_seconds", "_bytes", "_ratio"] {
            builder = builder
                .set_buckets_for_metric(Matcher::Suffix(suffix.into()), buckets_for(suffix))?;
        }
        Ok(Recorder {
            prometheus: builder.build_recorder(),
            topics: Arc::new(TopicSeries::new()),
        })
    }

    /// A handle that renders this recorder's series.
    pub fn handle(&self) -> Handle {
        Handle {
            prometheus: self.prometheus.handle(),
            topics: self.topics.clone(),
        }
    }
}

/// Installs Eddy's recorder as the process's metrics recorder, registers the descriptions of
/// [`ALL`], and makes [`topic_deleted`] act on it.
pub fn install() -> Result<Handle, Error> {
    let recorder = Recorder::new()?;
    let handle = recorder.handle();
    let topics = recorder.topics.clone();
    metrics::set_global_recorder(recorder).map_err(|_| Error::Installed)?;
    let _ = TOPICS.set(topics);
    crate::describe();
    Ok(handle)
}

impl metrics::Recorder for Recorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_histogram(key, unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        if has_partition(key) && !crate::partition_series() {
            return Counter::noop();
        }
        match topic_of(key) {
            None => self.prometheus.register_counter(key, metadata),
            Some(t) if self.topics.is_forgotten(t) => Counter::noop(),
            Some(_) => self
                .topics
                .registry
                .get_or_create_counter(key, |c| Counter::from_arc(c.clone())),
        }
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        if has_partition(key) && !crate::partition_series() {
            return Gauge::noop();
        }
        match topic_of(key) {
            None => self.prometheus.register_gauge(key, metadata),
            Some(t) if self.topics.is_forgotten(t) => Gauge::noop(),
            Some(_) => self
                .topics
                .registry
                .get_or_create_gauge(key, |g| Gauge::from_arc(g.clone())),
        }
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        if has_partition(key) && !crate::partition_series() {
            return Histogram::noop();
        }
        match topic_of(key) {
            None => self.prometheus.register_histogram(key, metadata),
            Some(t) if self.topics.is_forgotten(t) => Histogram::noop(),
            // Past the partition-series limit, one distribution for every topic.
            Some(_) if !crate::partition_series() => self
                .prometheus
                .register_histogram(&without_topic(key), metadata),
            Some(_) => self
                .topics
                .registry
                .get_or_create_histogram(key, |h| Histogram::from_arc(h.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics::{Level, Recorder as _};

    fn meta() -> Metadata<'static> {
        Metadata::new("test", Level::INFO, None)
    }

    fn key(name: &'static str, topic: &str) -> Key {
        Key::from_parts(name, vec![metrics::Label::new("topic", topic.to_owned())])
    }

    #[test]
    fn topic_series_render_as_prometheus_text_and_go_with_their_topic() {
        let _g = crate::series::TEST_LOCK
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let r = Recorder::new().unwrap();
        let h = r.handle();
        r.register_counter(&key(crate::FETCH_REQUESTS, "a"), &meta())
            .increment(3);
        r.register_counter(&key(crate::FETCH_REQUESTS, "b\"x"), &meta())
            .increment(1);
        r.register_gauge(
            &Key::from_parts(
                crate::PARTITION_HIGH_WATERMARK,
                vec![
                    metrics::Label::new("topic", "a"),
                    metrics::Label::new("partition", "0"),
                ],
            ),
            &meta(),
        )
        .set(42.0);
        let lat = r.register_histogram(&key(crate::FETCH_LATENCY, "a"), &meta());
        lat.record(0.003);
        lat.record(0.2);
        r.register_counter(&Key::from_static_name(crate::ISR_SHRINKS), &meta())
            .increment(2);

        let text = h.render();
        assert!(text.contains("eddy_isr_shrinks_total 2"), "{text}");
        assert!(
            text.contains("# TYPE eddy_fetch_requests_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("eddy_fetch_requests_total{topic=\"a\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("eddy_fetch_requests_total{topic=\"b\\\"x\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("eddy_partition_high_watermark{topic=\"a\",partition=\"0\"} 42\n"),
            "{text}"
        );
        assert!(
            text.contains("eddy_fetch_latency_seconds_bucket{topic=\"a\",le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("eddy_fetch_latency_seconds_bucket{topic=\"a\",le=\"+Inf\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("eddy_fetch_latency_seconds_count{topic=\"a\"} 2\n"),
            "{text}"
        );
        assert_eq!(text.matches("# TYPE eddy_fetch_requests_total").count(), 1);

        r.topics.forget("a");
        // Late updates from a stale handle or a new registration are not kept.
        r.register_counter(&key(crate::FETCH_REQUESTS, "a"), &meta())
            .increment(1);
        lat.record(0.1);
        let text = h.render();
        assert!(!text.contains("topic=\"a\""), "{text}");
        assert!(text.contains("topic=\"b\\\"x\""), "{text}");
        assert!(text.contains("eddy_isr_shrinks_total 2"), "{text}");

        // Created again: its series count from zero.
        r.topics.remember("a");
        r.register_counter(&key(crate::FETCH_REQUESTS, "a"), &meta())
            .increment(5);
        let text = h.render();
        assert!(
            text.contains("eddy_fetch_requests_total{topic=\"a\"} 5\n"),
            "{text}"
        );
    }

    struct Fixed;
    impl crate::Collector for Fixed {
        fn collect(&self, out: &mut crate::Samples) {
            out.gauge(crate::TOPIC_HIGH_WATERMARK, &[("topic", "a")], 7.0);
            out.gauge(
                crate::PARTITION_HIGH_WATERMARK,
                &[("topic", "a"), ("partition", "3")],
                4.0,
            );
        }
    }

    #[test]
    fn past_the_partition_limit_partition_series_go_and_histograms_lose_their_topic() {
        let _g = crate::series::TEST_LOCK
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let r = Recorder::new().unwrap();
        let h = r.handle();
        let fixed: Arc<dyn crate::Collector> = Arc::new(Fixed);
        crate::register_collector(Arc::downgrade(&fixed));
        let committed = || {
            Key::from_parts(
                crate::GROUP_COMMITTED_OFFSET,
                vec![
                    metrics::Label::new("group", "g"),
                    metrics::Label::new("topic", "a"),
                    metrics::Label::new("partition", "0"),
                ],
            )
        };
        r.register_gauge(&committed(), &meta()).set(5.0);
        r.register_histogram(&key(crate::FETCH_LATENCY, "a"), &meta())
            .record(0.001);
        let text = h.render();
        assert!(
            text.contains("eddy_topic_high_watermark{topic=\"a\"} 7\n"),
            "{text}"
        );
        assert!(
            text.contains("eddy_partition_high_watermark{topic=\"a\",partition=\"3\"} 4\n"),
            "{text}"
        );
        assert!(text.contains("partition=\"0\"} 5"), "{text}");
        assert_eq!(
            text.matches("# TYPE eddy_topic_high_watermark gauge")
                .count(),
            1
        );

        crate::set_partition_series_limit(10);
        crate::set_cluster_partitions(777, 11);
        r.register_gauge(&committed(), &meta()).set(6.0);
        r.register_histogram(&key(crate::FETCH_LATENCY, "a"), &meta())
            .record(0.002);
        let text = h.render();
        assert!(!text.contains("partition="), "{text}");
        assert!(
            !text.contains("eddy_fetch_latency_seconds_count{topic"),
            "{text}"
        );
        assert!(
            text.contains("eddy_fetch_latency_seconds_count 1\n"),
            "{text}"
        );
        assert!(
            text.contains("eddy_topic_high_watermark{topic=\"a\"} 7\n"),
            "{text}"
        );

        crate::set_cluster_partitions(777, 0);
        crate::set_partition_series_limit(crate::PARTITION_SERIES_LIMIT);
        r.register_gauge(&committed(), &meta()).set(8.0);
        assert!(h.render().contains("partition=\"0\"} 8"));
        drop(fixed);
        assert!(!h.render().contains("eddy_topic_high_watermark"));
    }

    #[test]
    fn forgotten_names_are_kept_only_for_a_while() {
        let t = TopicSeries::new();
        t.forget("gone");
        assert!(t.is_forgotten("gone"));
        t.prune(Instant::now() + FORGET_FOR / 2);
        assert!(t.is_forgotten("gone"));
        t.prune(Instant::now() + FORGET_FOR);
        assert!(!t.is_forgotten("gone"));
    }
}
