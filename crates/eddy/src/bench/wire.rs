//! `eddy bench chat --client wire`: the chat phases through a minimal Kafka-protocol client
//! that batches per broker, as Kafka's Java client does: one ProduceRequest and one Fetch per
//! broker carrying every partition it leads (in chunks of [`CHUNK`] partitions, pipelined),
//! instead of librdkafka's request per partition and its per-partition wakeups. It measures
//! the server at partition counts where librdkafka itself is the limit.
//!
//! Reading back is a standalone consumer (no JoinGroup): every partition is fetched from
//! offset 0 by its leader, then the offsets are committed for the group in one OffsetCommit
//! (generation -1, as a consumer that assigns itself partitions does) and read back with one
//! OffsetFetch.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use serde_json::json;

/// Partitions per request.
const CHUNK: usize = 5_000;

/// One connection to one broker, blocking.
struct Conn {
    stream: TcpStream,
    next: i32,
}

trait Req: Encodable + HeaderVersion {
    const KEY: ApiKey;
    const VERSION: i16;
    type Resp: Decodable + HeaderVersion;
}

macro_rules! req {
    ($req:ty, $resp:ty, $key:expr, $v:expr) => {
        impl Req for $req {
            const KEY: ApiKey = $key;
            const VERSION: i16 = $v;
            type Resp = $resp;
        }
    };
}
req!(MetadataRequest, MetadataResponse, ApiKey::Metadata, 12);
req!(ProduceRequest, ProduceResponse, ApiKey::Produce, 9);
req!(FetchRequest, FetchResponse, ApiKey::Fetch, 12);
req!(
    FindCoordinatorRequest,
    FindCoordinatorResponse,
    ApiKey::FindCoordinator,
    3
);
req!(
    OffsetCommitRequest,
    OffsetCommitResponse,
    ApiKey::OffsetCommit,
    8
);
req!(
    OffsetFetchRequest,
    OffsetFetchResponse,
    ApiKey::OffsetFetch,
    7
);

impl Conn {
    fn open(addr: &str) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(120)))?;
        Ok(Conn { stream, next: 0 })
    }

    /// Writes `body`; answers its correlation id.
    fn send<R: Req>(&mut self, body: &R) -> anyhow::Result<i32> {
        self.next += 1;
        let mut header = RequestHeader::default();
        header.request_api_key = R::KEY as i16;
        header.request_api_version = R::VERSION;
        header.correlation_id = self.next;
        header.client_id = Some(StrBytes::from_static_str("eddy-bench-wire"));
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&[0; 4]);
        header.encode(&mut buf, R::header_version(R::VERSION))?;
        body.encode(&mut buf, R::VERSION)?;
        let len = i32::try_from(buf.len() - 4)?;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        self.stream.write_all(&buf)?;
        Ok(self.next)
    }

    /// Reads the next answer, which must be to `id`.
    fn recv<R: Req>(&mut self, id: i32) -> anyhow::Result<R::Resp> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let len = usize::try_from(i32::from_be_bytes(len))?;
        let mut frame = vec![0u8; len];
        self.stream.read_exact(&mut frame)?;
        let mut frame = Bytes::from(frame);
        let header = ResponseHeader::decode(&mut frame, R::Resp::header_version(R::VERSION))?;
        if header.correlation_id != id {
            bail!("answer {} to request {id}", header.correlation_id);
        }
        R::Resp::decode(&mut frame, R::VERSION)
    }

    fn call<R: Req>(&mut self, body: &R) -> anyhow::Result<R::Resp> {
        let id = self.send(body)?;
        self.recv::<R>(id)
    }

    /// Sends every request, then reads every answer (pipelined).
    fn pipeline<R: Req>(&mut self, bodies: &[R]) -> anyhow::Result<Vec<R::Resp>> {
        let ids: Vec<i32> = bodies
            .iter()
            .map(|b| self.send(b))
            .collect::<anyhow::Result<_>>()?;
        ids.into_iter().map(|id| self.recv::<R>(id)).collect()
    }
}

/// The brokers' addresses and the leader of every partition of `topics`.
struct Layout {
    brokers: BTreeMap<i32, String>,
    /// By leader: (topic, partition).
    led: BTreeMap<i32, Vec<(String, i32)>>,
}

fn layout(bootstrap: &str, topics: &[String]) -> anyhow::Result<Layout> {
    let first = bootstrap.split(',').next().unwrap_or(bootstrap);
    let mut c = Conn::open(first)?;
    let mut all = MetadataRequest::default();
    all.topics = None; // every topic
    let meta = c.call(&all)?;
    let brokers = meta
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
        .collect();
    let wanted: std::collections::HashSet<&str> = topics.iter().map(String::as_str).collect();
    let mut led: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
    for t in &meta.topics {
        let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else {
            continue;
        };
        if !wanted.contains(name.as_str()) {
            continue;
        }
        for p in &t.partitions {
            led.entry(p.leader_id.0)
                .or_default()
                .push((name.clone(), p.partition_index));
        }
    }
    let found: std::collections::HashSet<&str> =
        led.values().flatten().map(|(t, _)| t.as_str()).collect();
    if let Some(missing) = topics.iter().find(|t| !found.contains(t.as_str())) {
        bail!("topic {missing} has no partition with a leader in the metadata");
    }
    Ok(Layout { brokers, led })
}

/// Runs `f` for every broker with the partitions it leads, one thread each.
fn per_broker<T: Send>(
    layout: &Layout,
    f: impl Fn(&str, &[(String, i32)]) -> anyhow::Result<T> + Sync,
) -> anyhow::Result<Vec<T>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = layout
            .led
            .iter()
            .map(|(leader, parts)| {
                let addr = layout.brokers.get(leader).cloned().unwrap_or_default();
                let f = &f;
                s.spawn(move || f(&addr, parts))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(r) => r,
                Err(_) => bail!("a broker's thread panicked"),
            })
            .collect()
    })
}

/// Groups `(topic, partition)`s by topic, in order.
fn by_topic(parts: &[(String, i32)]) -> Vec<(&str, Vec<i32>)> {
    let mut out: Vec<(&str, Vec<i32>)> = Vec::new();
    for (t, p) in parts {
        match out.last_mut() {
            Some((last, ps)) if *last == t.as_str() => ps.push(*p),
            _ => out.push((t.as_str(), vec![*p])),
        }
    }
    out
}

/// One message (`message(topic, partition)`) to every partition of `topics`, acks=all.
pub(crate) fn produce(
    bootstrap: &str,
    topics: &[String],
    message: impl Fn(&str, i32) -> Vec<u8> + Sync,
) -> anyhow::Result<serde_json::Value> {
    let started = Instant::now();
    let layout = layout(bootstrap, topics)?;
    let acked = per_broker(&layout, |addr, parts| {
        let mut c = Conn::open(addr)?;
        let mut requests = Vec::new();
        for chunk in parts.chunks(CHUNK) {
            let mut r = ProduceRequest::default();
            r.acks = -1;
            r.timeout_ms = 60_000;
            for (topic, ps) in by_topic(chunk) {
                let mut td = produce_request::TopicProduceData::default();
                td.name = TopicName(StrBytes::from_string(topic.to_owned()));
                for p in ps {
                    let value = Bytes::from(message(topic, p));
                    let batch = eddy_broker::records::encode_batch(
                        &[(None, Some(value))],
                        super::now_us() as i64 / 1000,
                    )?;
                    let mut pd = produce_request::PartitionProduceData::default();
                    pd.index = p;
                    pd.records = Some(batch);
                    td.partition_data.push(pd);
                }
                r.topic_data.push(td);
            }
            requests.push(r);
        }
        let mut codes: BTreeMap<i16, u64> = BTreeMap::new();
        for resp in c.pipeline(&requests)? {
            for t in &resp.responses {
                for p in &t.partition_responses {
                    *codes.entry(p.error_code).or_default() += 1;
                }
            }
        }
        Ok(codes)
    })?;
    let mut codes: BTreeMap<i16, u64> = BTreeMap::new();
    for (code, n) in acked.into_iter().flatten() {
        *codes.entry(code).or_default() += n;
    }
    let ok = codes.get(&0).copied().unwrap_or(0);
    let errors: BTreeMap<String, u64> = codes
        .iter()
        .filter(|(c, _)| **c != 0)
        .map(|(c, n)| (c.to_string(), *n))
        .collect();
    if !errors.is_empty() {
        eprintln!("   produce (wire): refused by error code: {errors:?}");
    }
    let took = started.elapsed();
    let total: usize = layout.led.values().map(Vec::len).sum();
    eprintln!(
        "   produce (wire): {ok} of {total} acknowledged in {:.2} s",
        took.as_secs_f64()
    );
    Ok(json!({
        "acked": ok, "failed": total as u64 - ok,
        "all_acked_s": (ok == total as u64).then_some(took.as_secs_f64()),
        "took_s": took.as_secs_f64(),
    }))
}

/// A connection to `group`'s coordinator, found through the first bootstrap broker.
fn coordinator(bootstrap: &str, group: &str) -> anyhow::Result<Conn> {
    let first = bootstrap.split(',').next().unwrap_or(bootstrap);
    let mut find = FindCoordinatorRequest::default();
    find.key = StrBytes::from_string(group.to_owned());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = Conn::open(first)?.call(&find)?;
        if found.error_code == 0 {
            return Conn::open(&format!("{}:{}", found.host, found.port));
        }
        if Instant::now() >= deadline {
            bail!("FindCoordinator: error {}", found.error_code);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Records in the batches of `records` (a batch's last offset delta + 1 each).
fn records_in(mut records: &[u8]) -> u64 {
    let mut n = 0;
    while records.len() >= 27 {
        let len = i32::from_be_bytes([records[8], records[9], records[10], records[11]]);
        let Ok(len) = usize::try_from(len) else {
            break;
        };
        let Some(rest) = records.get(12 + len..) else {
            break; // a batch cut by the answer's byte limit
        };
        let delta = i32::from_be_bytes([records[23], records[24], records[25], records[26]]);
        n += u64::try_from(delta).unwrap_or(0) + 1;
        records = rest;
    }
    n
}

/// Reads every partition of `topics` from offset 0 until each gave a record (or `timeout`),
/// then commits offset 1 of each for `group` and fetches the group's offsets back.
pub(crate) fn read_commit(
    bootstrap: &str,
    topics: &[String],
    group: &str,
    timeout: Duration,
) -> anyhow::Result<serde_json::Value> {
    let started = Instant::now();
    let layout = layout(bootstrap, topics)?;
    let read = per_broker(&layout, |addr, parts| {
        let mut c = Conn::open(addr)?;
        let mut left: Vec<(String, i32)> = parts.to_vec();
        let mut got = 0u64;
        while !left.is_empty() && started.elapsed() < timeout {
            let mut requests = Vec::new();
            for chunk in left.chunks(CHUNK) {
                let mut r = FetchRequest::default();
                r.replica_id = BrokerId(-1);
                r.max_wait_ms = 500;
                r.min_bytes = 1;
                r.max_bytes = 64 << 20;
                for (topic, ps) in by_topic(chunk) {
                    let mut ft = fetch_request::FetchTopic::default();
                    ft.topic = TopicName(StrBytes::from_string(topic.to_owned()));
                    for p in ps {
                        let mut fp = fetch_request::FetchPartition::default();
                        fp.partition = p;
                        fp.fetch_offset = 0;
                        fp.partition_max_bytes = 1 << 16;
                        ft.partitions.push(fp);
                    }
                    r.topics.push(ft);
                }
                requests.push(r);
            }
            let mut done = std::collections::HashSet::new();
            for resp in c.pipeline(&requests)? {
                for t in &resp.responses {
                    for p in &t.partitions {
                        let n = p.records.as_deref().map_or(0, records_in);
                        if p.error_code == 0 && n > 0 {
                            got += n;
                            done.insert((t.topic.0.to_string(), p.partition_index));
                        }
                    }
                }
            }
            left.retain(|tp| !done.contains(tp));
        }
        Ok(got)
    })?;
    let received: u64 = read.iter().sum();
    let all_read = started.elapsed();
    let total: usize = layout.led.values().map(Vec::len).sum();
    eprintln!(
        "   read (wire): {received} of {total} in {:.2} s",
        all_read.as_secs_f64()
    );

    // Commit offset 1 of every partition for the group, then fetch them back.
    let all: Vec<(String, i32)> = layout.led.values().flatten().cloned().collect();
    let mut commit = OffsetCommitRequest::default();
    commit.group_id = GroupId(StrBytes::from_string(group.to_owned()));
    commit.generation_id_or_member_epoch = -1;
    for (topic, ps) in by_topic(&all) {
        let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
        t.name = TopicName(StrBytes::from_string(topic.to_owned()));
        for p in ps {
            let mut rp = offset_commit_request::OffsetCommitRequestPartition::default();
            rp.partition_index = p;
            rp.committed_offset = 1;
            rp.committed_leader_epoch = -1;
            t.partitions.push(rp);
        }
        commit.topics.push(t);
    }
    // Retried while the coordinator loads or moves (a fresh server loads its offsets
    // partitions first); the time of the last, successful, attempt is reported.
    let deadline = Instant::now() + timeout;
    let (mut c, commit_s, codes) = loop {
        let mut c = coordinator(bootstrap, group)?;
        let t0 = Instant::now();
        let resp = c.call(&commit)?;
        let took = t0.elapsed();
        let codes: Vec<i16> = resp
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .map(|p| p.error_code)
            .collect();
        let retriable = codes.iter().any(|c| matches!(c, 14..=16));
        if !retriable || Instant::now() >= deadline {
            break (c, took, codes);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let committed_ok = codes.iter().filter(|c| **c == 0).count();
    if let Some(code) = codes.iter().find(|c| **c != 0) {
        eprintln!("   commit (wire): error {code} on some partitions");
    }
    let mut fetch = OffsetFetchRequest::default();
    fetch.group_id = GroupId(StrBytes::from_string(group.to_owned()));
    fetch.topics = None; // everything the group has
    let t0 = Instant::now();
    let offsets = c.call(&fetch)?;
    let offset_fetch_s = t0.elapsed();
    let fetched = offsets
        .topics
        .iter()
        .map(|t| t.partitions.len())
        .sum::<usize>();
    eprintln!(
        "   commit (wire): {committed_ok} in {:.2} s, OffsetFetch: {fetched} in {:.2} s",
        commit_s.as_secs_f64(),
        offset_fetch_s.as_secs_f64()
    );
    Ok(json!({
        "received": received,
        "all_read_s": (received >= total as u64).then_some(all_read.as_secs_f64()),
        "took_s": all_read.as_secs_f64(),
        "offsets_committed": committed_ok, "commit_s": commit_s.as_secs_f64(),
        "commit_ok": committed_ok == total,
        "offsets_fetched": fetched, "offset_fetch_s": offset_fetch_s.as_secs_f64(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_counted_from_batch_headers() {
        let one = eddy_broker::records::encode_batch(&[(None, Some(Bytes::from("a")))], 0)
            .unwrap_or_default();
        let three = eddy_broker::records::encode_batch(
            &[
                (None, Some(Bytes::from("a"))),
                (None, Some(Bytes::from("b"))),
                (None, Some(Bytes::from("c"))),
            ],
            0,
        )
        .unwrap_or_default();
        let mut both = one.to_vec();
        both.extend_from_slice(&three);
        assert_eq!(records_in(&one), 1);
        assert_eq!(records_in(&both), 4);
        assert_eq!(
            records_in(&both[..both.len() - 1]),
            1,
            "a cut batch is not counted"
        );
        assert_eq!(records_in(&[]), 0);
    }

    #[test]
    fn partitions_group_by_topic_in_order() {
        let parts = vec![
            ("a".to_owned(), 0),
            ("a".to_owned(), 1),
            ("b".to_owned(), 0),
        ];
        assert_eq!(by_topic(&parts), vec![("a", vec![0, 1]), ("b", vec![0])]);
    }
}
