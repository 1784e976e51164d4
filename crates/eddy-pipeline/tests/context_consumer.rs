//! The context consumer over a real cluster, through both clients (in-process, and the
//! Kafka protocol with librdkafka against a real listener on a free port): it merges
//! `user_*` topics, keeps its state in LMDB with the offsets, resumes exactly where it
//! stopped after a restart (replaying its messages through a fresh strategy), answers with
//! consumer responses that carry the right bubble, thread and parent, and goes on reading
//! while its model is stuck.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use eddy_broker::{EmbeddedCluster, NewTopic};
use eddy_client::{Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord};
use eddy_context::conformance::sample_chat;
use eddy_context::{
    stable_partition, Budget, ChatMessage, Context, ContextError, ContextLookup, ContextStrategy,
    MessageKind, OfflineResponder, Registry, Responder, Response,
};
use eddy_pipeline::store::ContextStore;
use eddy_pipeline::{ContextConfig, RunningContext, Subscription, WorkerConfig};

/// How the consumer reaches the cluster.
enum Mode {
    Embedded,
    /// Through a Kafka listener on free ports.
    Kafka(eddy_kafka::testing::TestListener),
}

impl Mode {
    fn kafka(eddy: &EmbeddedCluster) -> Mode {
        Mode::Kafka(eddy_kafka::testing::TestListener::start(eddy.cluster()).unwrap())
    }

    fn spawn(
        &self,
        eddy: &EmbeddedCluster,
        strategy: Box<dyn ContextStrategy>,
        responder: Option<Box<dyn Responder>>,
        config: ContextConfig,
    ) -> RunningContext {
        match self {
            Mode::Embedded => RunningContext::spawn(eddy.cluster(), strategy, responder, config),
            Mode::Kafka(server) => {
                RunningContext::spawn_kafka(server.bootstrap(), strategy, responder, config)
            }
        }
        .unwrap()
    }
}

const CHAT_PARTITIONS: u32 = 3;

fn strategy(name: &str) -> Box<dyn ContextStrategy> {
    let mut r = Registry::new();
    eddy_strategy_reply_chain::register(&mut r).unwrap();
    eddy_strategy_heuristic::register(&mut r).unwrap();
    r.build(name, serde_json::Value::Null).unwrap()
}

fn cluster(dir: &std::path::Path) -> EmbeddedCluster {
    let mut c = eddy_broker::testing::config(&dir.join("cluster"));
    c.group.initial_rebalance_delay = Duration::from_millis(50);
    EmbeddedCluster::open(c).unwrap()
}

/// Produces `msgs` as JSON to `user_{sender}` at the partition of their bubble; answers
/// how many records each partition got.
fn produce(eddy: &EmbeddedCluster, msgs: &[ChatMessage]) -> BTreeMap<(String, u32), u64> {
    let cluster = eddy.cluster();
    let msgs = msgs.to_vec();
    actix_rt::System::new().block_on(async move {
        let mut counts = BTreeMap::new();
        for m in &msgs {
            let topic = format!("user_{}", m.sender_id);
            if cluster.describe_topic(&topic).is_err() {
                cluster
                    .create_topic(NewTopic::new(&topic).partitions(CHAT_PARTITIONS))
                    .await
                    .unwrap();
            }
        }
        let p = Producer::start(&cluster, ProducerConfig::default())
            .await
            .unwrap();
        for m in &msgs {
            let topic = format!("user_{}", m.sender_id);
            let partition = stable_partition(&m.context_id, CHAT_PARTITIONS);
            p.send(
                ProducerRecord::new(topic.clone(), m.to_json().unwrap())
                    .partition(partition)
                    .timestamp(m.timestamp),
            )
            .await
            .unwrap();
            *counts.entry((topic, partition)).or_insert(0) += 1;
        }
        p.close().await;
        counts
    })
}

/// Every record of `topic` (all partitions, from the start) until `until` holds.
fn read_all(
    eddy: &EmbeddedCluster,
    topic: &str,
    until: impl Fn(&[ChatMessage]) -> bool,
) -> Vec<(u32, ChatMessage)> {
    let cluster = eddy.cluster();
    let topic = topic.to_owned();
    actix_rt::System::new().block_on(async move {
        let deadline = Instant::now() + Duration::from_secs(60);
        while cluster.describe_topic(&topic).is_err() {
            assert!(Instant::now() < deadline, "{topic} never created");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let n = cluster.describe_topic(&topic).unwrap().partitions.len() as u32;
        let mut c = Consumer::new(&cluster, ConsumerConfig::default()).unwrap();
        c.assign((0..n).map(|p| (topic.clone(), p))).unwrap();
        for p in 0..n {
            c.seek(&topic, p, 0).unwrap();
        }
        let mut out: Vec<(u32, ChatMessage)> = Vec::new();
        loop {
            for r in c.poll(Duration::from_millis(200)).await.unwrap() {
                out.push((r.partition, ChatMessage::decode(&r.value.unwrap()).unwrap()));
            }
            let msgs: Vec<ChatMessage> = out.iter().map(|(_, m)| m.clone()).collect();
            if until(&msgs) {
                return out;
            }
            assert!(Instant::now() < deadline, "{topic}: only {msgs:?}");
        }
    })
}

fn wait_for(handle: &dyn ContextLookup, id: &str) -> Context {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(c) = handle.context_for(id, &Budget::default()) {
            return c;
        }
        assert!(Instant::now() < deadline, "{id} was never observed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn ids(ms: &[ChatMessage]) -> Vec<&str> {
    ms.iter().map(|m| m.message_id.as_str()).collect()
}

fn config(dir: &std::path::Path) -> ContextConfig {
    ContextConfig::new(dir.join("context"), Subscription::Pattern("user_.*".into()))
}

#[test]
fn a_restart_resumes_exactly_and_responses_carry_bubble_thread_and_parent() {
    let dir = tempfile::tempdir().unwrap();
    let eddy = cluster(dir.path());
    restart_scenario(&eddy, dir.path(), &Mode::Embedded);
}

#[test]
fn the_same_over_the_kafka_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let eddy = cluster(dir.path());
    let mode = Mode::kafka(&eddy);
    restart_scenario(&eddy, dir.path(), &mode);
}

fn restart_scenario(eddy: &EmbeddedCluster, dir: &std::path::Path, mode: &Mode) {
    let chat = sample_chat();
    let (first, second) = chat.split_at(7);
    let mut counts = produce(eddy, first);

    let running = mode.spawn(
        eddy,
        strategy("reply-chain"),
        Some(Box::new(OfflineResponder)),
        config(dir),
    );
    let handle = running.handle();
    let a3 = wait_for(&handle, "a3");
    assert_eq!(ids(&a3.thread), ["a1", "a2", "a3"]);
    wait_for(&handle, "b3");
    running.stop().unwrap();

    for (tp, n) in produce(eddy, second) {
        *counts.entry(tp).or_insert(0) += n;
    }
    // A fresh strategy: the thread of a5 reaches back into what was stored before.
    let running = mode.spawn(
        eddy,
        strategy("reply-chain"),
        Some(Box::new(OfflineResponder)),
        config(dir),
    );
    let a5 = wait_for(&running.handle(), "a5");
    assert_eq!(ids(&a5.thread), ["a1", "a2", "a3", "a4", "a5"]);
    // a5 thanks: its 👍 is the last response to come.
    let responses = read_all(eddy, "user_eddy-bot", |ms| {
        ms.iter().any(|m| m.message_id == "eddy-bot-a5-0")
    });
    // Responses are read back as chat too (and not answered).
    wait_for(&running.handle(), "eddy-bot-a5-0");
    running.stop().unwrap();

    let by_id: HashMap<&str, &ChatMessage> =
        chat.iter().map(|m| (m.message_id.as_str(), m)).collect();
    let mut seen = HashSet::new();
    for (partition, r) in &responses {
        assert!(
            seen.insert(r.message_id.clone()),
            "duplicate response {}",
            r.message_id
        );
        let to = by_id[r.parent_message_id.as_deref().unwrap()];
        assert_ne!(to.kind, MessageKind::Reaction, "reactions are not answered");
        assert_eq!(r.thread_id, to.thread_id);
        assert_eq!(r.sender_id, "eddy-bot");
        match r.kind {
            MessageKind::Quote => assert_ne!(r.context_id, to.context_id),
            _ => assert_eq!(r.context_id, to.context_id, "{r:?}"),
        }
        assert_eq!(*partition, stable_partition(&r.context_id, 10));
        assert_eq!(r.partition_hint, Some(*partition));
    }
    let kinds: HashSet<MessageKind> = responses.iter().map(|(_, m)| m.kind).collect();
    assert!(kinds.contains(&MessageKind::Reply) && kinds.contains(&MessageKind::Reaction));
    let a5_reaction = responses
        .iter()
        .find(|(_, m)| m.message_id == "eddy-bot-a5-0")
        .unwrap();
    assert_eq!(a5_reaction.1.emoji.as_deref(), Some("👍"));

    // The state: each chat message once, in one order, and every chat partition's offset
    // at its end.
    let store = ContextStore::open(dir.join("context"), 1 << 30).unwrap();
    let mut stored = Vec::new();
    store
        .for_each_message(|_, m| {
            stored.push(m);
            Ok(())
        })
        .unwrap();
    let chat_ids: Vec<&str> = stored
        .iter()
        .filter(|m| m.sender_id != "eddy-bot")
        .map(|m| m.message_id.as_str())
        .collect();
    let mut unique = chat_ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(chat_ids.len(), chat.len(), "{chat_ids:?}");
    assert_eq!(unique.len(), chat.len());
    let offsets = store.offsets().unwrap();
    for (tp, n) in &counts {
        assert_eq!(offsets.get(tp), Some(n), "{tp:?}");
    }
    assert!(store.pending().unwrap().is_empty());
}

/// A model that answers only when let go.
#[derive(Debug)]
struct Stuck(Arc<(Mutex<bool>, Condvar)>);

impl Responder for Stuck {
    fn name(&self) -> &str {
        "stuck"
    }
    fn respond(&mut self, _: &ChatMessage, _: &Context) -> Result<Vec<Response>, ContextError> {
        let (lock, cv) = &*self.0;
        let mut go = lock.lock().unwrap();
        while !*go {
            go = cv.wait(go).unwrap();
        }
        Ok(vec![])
    }
}

#[test]
fn a_stuck_model_does_not_stop_the_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let eddy = cluster(dir.path());
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let mut config = config(dir.path());
    config.worker = WorkerConfig {
        queue: 1,
        ..WorkerConfig::default()
    };
    let running = RunningContext::spawn(
        eddy.cluster(),
        strategy("heuristic"),
        Some(Box::new(Stuck(gate.clone()))),
        config,
    )
    .unwrap();
    let chat = sample_chat();
    produce(&eddy, &chat);
    // Every message is observed while the model holds its first job.
    for m in &chat {
        wait_for(&running.handle(), &m.message_id);
    }
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    running.stop().unwrap();
}

#[test]
fn bad_records_are_skipped_and_counted_as_read() {
    let dir = tempfile::tempdir().unwrap();
    let eddy = cluster(dir.path());
    let cluster_handle = eddy.cluster();
    actix_rt::System::new().block_on(async move {
        cluster_handle
            .create_topic(NewTopic::new("user_zed").partitions(1))
            .await
            .unwrap();
        let p = Producer::start(&cluster_handle, ProducerConfig::default())
            .await
            .unwrap();
        for v in [&b"not json"[..], b"{\"message_id\": 5}", b"\x93\x01\x02"] {
            p.send(ProducerRecord::new("user_zed", v.to_vec()).partition(0))
                .await
                .unwrap();
        }
        p.close().await;
    });
    let mut last = sample_chat()[0].clone();
    last.sender_id = "zed".into();
    last.context_id = "Z".into();
    last.thread_id = "Z".into();
    let cluster_handle = eddy.cluster();
    actix_rt::System::new().block_on(async move {
        let p = Producer::start(&cluster_handle, ProducerConfig::default())
            .await
            .unwrap();
        p.send(ProducerRecord::new("user_zed", last.to_json().unwrap()).partition(0))
            .await
            .unwrap();
        p.close().await;
    });
    let running = RunningContext::spawn(
        eddy.cluster(),
        strategy("reply-chain"),
        None,
        config(dir.path()),
    )
    .unwrap();
    wait_for(&running.handle(), "a1");
    running.stop().unwrap();
    let store = ContextStore::open(dir.path().join("context"), 1 << 30).unwrap();
    assert_eq!(store.offsets().unwrap()[&("user_zed".to_owned(), 0)], 4);
    let mut n = 0;
    store
        .for_each_message(|_, _| {
            n += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn the_history_is_a_bounded_window_kept_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let eddy = cluster(dir.path());
    // One reply chain of 30 messages.
    let chain: Vec<ChatMessage> = (0..30)
        .map(|i| {
            let mut m = sample_chat()[0].clone();
            m.message_id = format!("w{i}");
            m.parent_message_id = (i > 0).then(|| format!("w{}", i - 1));
            m.sender_id = "win".into();
            m.context_id = "W".into();
            m.thread_id = "W".into();
            m.timestamp = 1_000 + i;
            m
        })
        .collect();
    produce(&eddy, &chain);
    let spawn = |history: usize| {
        let mut c = config(dir.path());
        c.history = history;
        RunningContext::spawn(eddy.cluster(), strategy("reply-chain"), None, c)
    };
    // The window holds once a poll's batch is processed: while the consumer is inside one
    // (the 30 may come in a single batch), readers can see more. Waits for that.
    let thread_of_last = |running: &RunningContext, history: usize| -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ctx = wait_for(&running.handle(), "w29");
            let thread: Vec<String> = ctx.thread.iter().map(|m| m.message_id.clone()).collect();
            if thread.len() < 2 * history || Instant::now() > deadline {
                return thread;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let stored = || {
        let store = ContextStore::open(dir.path().join("context"), 1 << 30).unwrap();
        store.bounds().unwrap().unwrap()
    };
    let running = spawn(4).unwrap();
    let thread = thread_of_last(&running, 4);
    // Between `history` and twice that remembered; the thread reaches back only that far.
    assert!((4..8).contains(&thread.len()), "{thread:?}");
    assert_eq!(thread.last().map(String::as_str), Some("w29"));
    let first = 30 - thread.len();
    assert_eq!(thread[0], format!("w{first}"));
    assert!(running
        .handle()
        .context_for("w0", &Budget::default())
        .is_none());
    assert_eq!(running.handle().observed(), 30);
    running.stop().unwrap();
    assert_eq!(stored(), (first as u64, 30));

    // A restart replays the same window.
    let running = spawn(4).unwrap();
    assert_eq!(thread_of_last(&running, 4), thread);
    running.stop().unwrap();

    // A restart with a shorter history forgets what is past it.
    let running = spawn(2).unwrap();
    assert_eq!(thread_of_last(&running, 2), vec!["w28", "w29"]);
    running.stop().unwrap();
    assert_eq!(stored(), (28, 30));

    // A history of nothing is refused.
    let err = spawn(0).unwrap_err();
    assert!(err.to_string().contains("history"), "{err}");
}

/// Messages from `del` in one bubble, ids `{prefix}-0`, `{prefix}-1`, ...
fn chat_of_del(prefix: &str, n: usize) -> Vec<ChatMessage> {
    (0..n)
        .map(|i| {
            let mut m = sample_chat()[0].clone();
            m.message_id = format!("{prefix}-{i}");
            m.parent_message_id = None;
            m.kind = MessageKind::Message;
            m.sender_id = "del".into();
            m.context_id = "D".into();
            m.thread_id = "D".into();
            m.content = format!("message {i}");
            m
        })
        .collect()
}

#[test]
fn a_deleted_topic_made_again_is_read_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let eddy = cluster(dir.path());
    let running = RunningContext::spawn(
        eddy.cluster(),
        strategy("reply-chain"),
        None,
        config(dir.path()),
    )
    .unwrap();
    let old = chat_of_del("old", 5);
    produce(&eddy, &old);
    for m in &old {
        wait_for(&running.handle(), &m.message_id);
    }
    let cluster_handle = eddy.cluster();
    actix_rt::System::new().block_on(async move {
        cluster_handle.delete_topic("user_del").await.unwrap();
    });
    // The consumer notices the deletion (it lists the topics every second) ...
    std::thread::sleep(eddy_pipeline::DELETED_AFTER + Duration::from_secs(3));
    // ... so the topic made again is read from offset 0, not from where the old one ended.
    let new = chat_of_del("new", 2);
    produce(&eddy, &new);
    for m in &new {
        wait_for(&running.handle(), &m.message_id);
    }
    running.stop().unwrap();
    let store = ContextStore::open(dir.path().join("context"), 1 << 30).unwrap();
    let offsets = store.offsets().unwrap();
    let p = stable_partition("D", CHAT_PARTITIONS);
    assert_eq!(offsets[&("user_del".to_owned(), p)], 2, "{offsets:?}");
}
