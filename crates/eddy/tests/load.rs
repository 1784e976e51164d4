//! Load: one `eddy serve` (3 brokers, replication 3) given 10,000 topics and 1,000 client
//! connections at once stays within bounded memory, and keeps serving.
//!
//! The topics are made through the Kafka listener (librdkafka's AdminClient, 500 per
//! CreateTopics request); the connections are raw sockets spread over the three listeners,
//! each answered an ApiVersions request, all held open together, while a librdkafka producer
//! writes to 1,000 of the topics and reads one back. The server's resident memory is read from
//! /proc before and after each step; the test fails past fixed bounds per topic and per
//! connection, and prints what it measured.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{serve_with, stop};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};

const TOPICS: usize = 10_000;
const CONNECTIONS: usize = 1_000;
/// Resident memory allowed per (1-partition, 3-replica) topic, and per open connection.
const KIB_PER_TOPIC: u64 = 16;
const KIB_PER_CONNECTION: u64 = 160;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// ApiVersions v0, by hand: size, api key 18, version 0, correlation id, client id.
fn api_versions(correlation: i32) -> Vec<u8> {
    let client = b"load";
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&correlation.to_be_bytes());
    body.extend_from_slice(&(client.len() as i16).to_be_bytes());
    body.extend_from_slice(client);
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// Sends ApiVersions on `s` and reads its whole answer; the correlation id it carried.
fn ask(s: &mut TcpStream, correlation: i32) -> i32 {
    s.write_all(&api_versions(correlation)).unwrap();
    let mut size = [0u8; 4];
    s.read_exact(&mut size).unwrap();
    let mut answer = vec![0u8; i32::from_be_bytes(size) as usize];
    s.read_exact(&mut answer).unwrap();
    i32::from_be_bytes([answer[0], answer[1], answer[2], answer[3]])
}

#[test]
fn ten_thousand_topics_and_a_thousand_connections_stay_within_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (server, boot, _) = serve_with(dir.path(), &["--context-strategy", "off"]);
    let pid = server.id();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let start = rss_kib(pid);

    // 10,000 topics.
    let t0 = Instant::now();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &boot)
        .create()
        .unwrap();
    let names: Vec<String> = (0..TOPICS).map(|i| format!("load-{i:05}")).collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(120)));
    for chunk in names.chunks(500) {
        let topics: Vec<NewTopic<'_>> = chunk
            .iter()
            .map(|n| NewTopic::new(n, 1, TopicReplication::Fixed(3)))
            .collect();
        let results = rt.block_on(admin.create_topics(&topics, &options)).unwrap();
        for r in results {
            r.unwrap();
        }
    }
    let created = t0.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let with_topics = rss_kib(pid);

    let t1 = Instant::now();
    // 1,000 connections at once, each answered, all held open.
    let ports: Vec<String> = boot.split(',').map(str::to_owned).collect();
    let mut conns: Vec<TcpStream> = (0..CONNECTIONS)
        .map(|i| {
            let s = TcpStream::connect(&ports[i % ports.len()]).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            s
        })
        .collect();
    for (i, s) in conns.iter_mut().enumerate() {
        assert_eq!(ask(s, i as i32), i as i32);
    }
    let connected = t1.elapsed();
    // While they are open, real clients are served: a record to each of 1,000 topics, and
    // one of them read back.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &boot)
        .set("acks", "all")
        .set("linger.ms", "20")
        .create()
        .unwrap();
    rt.block_on(async {
        // All handed over first (send_result queues at once), then awaited.
        let sends: Vec<_> = names
            .iter()
            .step_by(TOPICS / 1000)
            .map(|t| {
                producer
                    .send_result(FutureRecord::<(), str>::to(t).payload("hello"))
                    .map_err(|(e, _)| e)
                    .unwrap()
            })
            .collect();
        for s in sends {
            s.await.unwrap().map_err(|(e, _)| e).unwrap();
        }
    });
    let written = t1.elapsed();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &boot)
        .set("group.id", "load-reader")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&names[TOPICS / 2], 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let value = loop {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            break m.unwrap().payload().map(<[u8]>::to_vec);
        }
        assert!(Instant::now() < deadline, "nothing read back");
    };
    assert_eq!(value.as_deref(), Some(&b"hello"[..]));
    // Every held connection is still served.
    for (i, s) in conns.iter_mut().enumerate() {
        assert_eq!(ask(s, 10_000 + i as i32), 10_000 + i as i32);
    }
    let with_connections = rss_kib(pid);
    drop(conns);

    let per_topic = with_topics.saturating_sub(start) / TOPICS as u64;
    let per_connection = with_connections.saturating_sub(with_topics) / CONNECTIONS as u64;
    eprintln!(
        "rss: {start} KiB at start, {with_topics} KiB with {TOPICS} topics (created in \
         {created:?}, {per_topic} KiB each), {with_connections} KiB with {CONNECTIONS} \
         connections and 1,000 topics written ({per_connection} KiB each); connected in \
         {connected:?}, written by {written:?}"
    );
    assert!(
        with_topics <= start + TOPICS as u64 * KIB_PER_TOPIC,
        "{per_topic} KiB per topic"
    );
    assert!(
        with_connections <= with_topics + CONNECTIONS as u64 * KIB_PER_CONNECTION,
        "{per_connection} KiB per connection (and written topic)"
    );
    drop((producer, consumer, admin));
    stop(server);
}
