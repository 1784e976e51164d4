//! Crash test: a real `eddy serve` (sync durability, its default) is killed with SIGKILL at a
//! random moment while an idempotent `acks=all` producer (librdkafka) streams numbered
//! records to it, and a consumer group has committed offsets; it is restarted on the same
//! data directory, and then every acknowledged record is there exactly once, in order in its
//! partition, and the committed offsets are intact. 20 kill points, each at a different
//! moment (seeded, so a failure can be replayed with EDDY_CRASH_SEED).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{check_numbered, create_topic, read_numbered, serve_with, Proc};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, PurgeConfig, ThreadedProducer,
};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

const PARTITIONS: i32 = 3;
const KILLS: usize = 20;
const TOPIC: &str = "crash";

struct Acked(Arc<Mutex<Vec<u64>>>);

impl ClientContext for Acked {}

impl ProducerContext for Acked {
    type DeliveryOpaque = Box<u64>;
    fn delivery(&self, result: &DeliveryResult<'_>, seq: Box<u64>) {
        if result.is_ok() {
            self.0.lock().unwrap().push(*seq);
        }
    }
}

/// A small xorshift: the kill moments.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn kill(proc: Proc) {
    let pid = proc.id().to_string();
    let status = Command::new("kill").args(["-KILL", &pid]).status().unwrap();
    assert!(status.success());
    drop(proc); // waits for it
}

fn consumer(boot: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", boot)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap()
}

#[test]
fn acknowledged_records_and_committed_offsets_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = ["--context-strategy", "off", "--durability", "sync"];
    let mut seed: u64 = std::env::var("EDDY_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_cafe);
    eprintln!("seed {seed} (EDDY_CRASH_SEED replays it)");
    let acked = Arc::new(Mutex::new(Vec::new()));
    let mut committed: BTreeMap<i32, i64> = BTreeMap::new();
    let mut seq: u64 = 0;
    for round in 0..KILLS {
        let round_started = Instant::now();
        let (server, boot, http) = serve_with(&data, &args);
        if round == 0 {
            create_topic(&http, TOPIC, PARTITIONS as u32);
        }
        // After a restart: what was acknowledged is there, once, in order; the committed
        // offsets are what was committed.
        let log = read_numbered(&boot, TOPIC, PARTITIONS, &acked.lock().unwrap());
        check_numbered(&log, &acked.lock().unwrap());
        let c = consumer(&boot, "crash-group");
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition(TOPIC, p);
        }
        let got = c.committed_offsets(tpl, Duration::from_secs(30)).unwrap();
        for (p, o) in &committed {
            let e = got.find_partition(TOPIC, *p).unwrap();
            assert_eq!(
                e.offset(),
                Offset::Offset(*o),
                "round {round}: committed offset of {p}"
            );
        }
        // Commit something new, then stream until the kill.
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            let o = log.get(&p).map_or(0, |v| v.len() as i64);
            tpl.add_partition_offset(TOPIC, p, Offset::Offset(o))
                .unwrap();
            committed.insert(p, o);
        }
        c.commit(&tpl, CommitMode::Sync).unwrap();
        let producer: ThreadedProducer<Acked> = ClientConfig::new()
            .set("bootstrap.servers", &boot)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "2")
            .set("message.timeout.ms", "3000")
            .create_with_context(Acked(acked.clone()))
            .unwrap();
        // The kill comes 20 to 400 ms into the stream, counted from its first
        // acknowledgement (the producer's start-up varies with the machine's load).
        let kill_after = Duration::from_millis(20 + next(&mut seed) % 380);
        let acked_before = acked.lock().unwrap().len();
        let mut started: Option<Instant> = None;
        let give_up = Instant::now() + Duration::from_secs(30);
        while started.is_none_or(|s| s.elapsed() < kill_after) {
            if started.is_none() {
                assert!(
                    Instant::now() < give_up,
                    "round {round}: nothing acknowledged"
                );
                if acked.lock().unwrap().len() > acked_before {
                    started = Some(Instant::now());
                }
            }
            let value = seq.to_string();
            let p = (seq % PARTITIONS as u64) as i32;
            if producer
                .send(
                    BaseRecord::<(), str, Box<u64>>::with_opaque_to(TOPIC, Box::new(seq))
                        .partition(p)
                        .payload(&value),
                )
                .is_ok()
            {
                seq += 1;
                // About 5,000 records a second: enough in flight at any kill, and a log
                // that stays quick to read back every round.
                std::thread::sleep(Duration::from_micros(200));
            } else {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        kill(server);
        eprintln!(
            "round {round}: {} acknowledged so far, {:?}",
            acked.lock().unwrap().len(),
            round_started.elapsed()
        );
        // What was not acknowledged before the kill is dropped: it may or may not be there.
        producer.purge(PurgeConfig::default().queue().inflight());
        let _ = producer.flush(Duration::from_secs(1));
        drop(producer);
    }
    let (server, boot, _) = serve_with(&data, &args);
    let acked = acked.lock().unwrap();
    let log = read_numbered(&boot, TOPIC, PARTITIONS, &acked);
    check_numbered(&log, &acked);
    assert!(
        acked.len() > 100,
        "only {} records acknowledged",
        acked.len()
    );
    drop(server);
}
