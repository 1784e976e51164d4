//! Broker-actor failure under a Kafka client: while an idempotent `acks=all` producer
//! (librdkafka) streams to a 3-broker cluster through its Kafka listeners, the leader of a
//! partition is stopped; a new leader is elected, the client reroutes, every record is
//! acknowledged and present exactly once, in order; the broker comes back and catches up
//! (every partition's in-sync set is whole again).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eddy_broker::{EmbeddedCluster, NewTopic};
use eddy_kafka::testing::TestListener;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

const TOPIC: &str = "failover";
const PARTITIONS: u32 = 3;

struct Acks {
    ok: Arc<Mutex<Vec<u64>>>,
    failed: Arc<AtomicU64>,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = Box<u64>;
    fn delivery(&self, result: &DeliveryResult<'_>, seq: Box<u64>) {
        match result {
            Ok(_) => self.ok.lock().unwrap().push(*seq),
            Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn stream(producer: &ThreadedProducer<Acks>, seq: &mut u64, for_: Duration) {
    let started = Instant::now();
    while started.elapsed() < for_ {
        let value = seq.to_string();
        let record = BaseRecord::<(), str, Box<u64>>::with_opaque_to(TOPIC, Box::new(*seq))
            .partition((*seq % u64::from(PARTITIONS)) as i32)
            .payload(&value);
        if producer.send(record).is_ok() {
            *seq += 1;
            std::thread::sleep(Duration::from_micros(200));
        } else {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[test]
fn a_stopped_leader_fails_over_and_catches_up_with_nothing_lost() {
    let dir = tempfile::tempdir().unwrap();
    let eddy = EmbeddedCluster::open(eddy_broker::testing::config(dir.path())).unwrap();
    let cluster = eddy.cluster();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(cluster.create_topic(NewTopic::new(TOPIC).partitions(PARTITIONS)))
        .unwrap();
    let listener = TestListener::start(cluster.clone()).unwrap();
    let ok = Arc::new(Mutex::new(Vec::new()));
    let failed = Arc::new(AtomicU64::new(0));
    let producer: ThreadedProducer<Acks> = ClientConfig::new()
        .set("bootstrap.servers", listener.bootstrap())
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .create_with_context(Acks {
            ok: ok.clone(),
            failed: failed.clone(),
        })
        .unwrap();
    let mut seq = 0;
    stream(&producer, &mut seq, Duration::from_millis(500));
    let leader = cluster.describe_topic(TOPIC).unwrap().partitions[0]
        .leader
        .unwrap();
    rt.block_on(cluster.stop_broker(leader)).unwrap();
    stream(&producer, &mut seq, Duration::from_millis(1500));
    let now = cluster.describe_topic(TOPIC).unwrap().partitions[0].leader;
    assert!(
        now.is_some() && now != Some(leader),
        "no new leader: {now:?}"
    );
    rt.block_on(cluster.start_broker(leader)).unwrap();
    stream(&producer, &mut seq, Duration::from_millis(500));
    producer.flush(Duration::from_secs(60)).unwrap();
    assert_eq!(failed.load(Ordering::Relaxed), 0, "deliveries failed");
    let acked = ok.lock().unwrap().clone();
    assert_eq!(acked.len() as u64, seq, "every record acknowledged");

    // Everything there once, in order per partition.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", listener.bootstrap())
        .set("group.id", "failover-reader")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS as i32 {
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut seen = HashSet::new();
    let mut last: BTreeMap<i32, u64> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (seen.len() as u64) < seq {
        assert!(Instant::now() < deadline, "read {} of {seq}", seen.len());
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.unwrap();
            let v: u64 = std::str::from_utf8(m.payload().unwrap())
                .unwrap()
                .parse()
                .unwrap();
            assert!(seen.insert(v), "{v} twice");
            if let Some(prev) = last.insert(m.partition(), v) {
                assert!(
                    prev < v,
                    "partition {} out of order: {prev} then {v}",
                    m.partition()
                );
            }
        }
    }
    // The broker came back and caught up: every in-sync set is whole again.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let t = cluster.describe_topic(TOPIC).unwrap();
        if t.partitions.iter().all(|p| p.isr.len() == 3) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not caught up: {:?}",
            t.partitions
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The clients go before the listeners, or they wait on brokers that are gone.
    drop(consumer);
    drop(producer);
    drop(listener);
    eddy.shutdown();
}
