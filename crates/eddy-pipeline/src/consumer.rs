//! The context consumer: reads chat topics (a list, or a pattern such as `user_.*`, checked
//! against the cluster's topics every `refresh_interval`), merges the partitions' streams
//! by timestamp ([`crate::merge`]),
//! gives every new message to the strategy, and commits the messages, the next offsets and
//! the messages awaiting a response to its LMDB state ([`crate::store`]) in one transaction
//! per batch. On start it replays the stored messages through the strategy and seeks every
//! partition it reads to its stored offset, so a restart resumes exactly where it stopped.
//! It assigns itself the partitions rather than joining a group's rebalances (one instance
//! owns the state; a restart would otherwise wait out the old member's session), and
//! commits its offsets to its group too, for lag in the dashboards. Messages to answer go, with their context, to the [`ResponderWorker`]; its
//! answers are produced back as consumer responses (to the room's topic, or to the
//! responder's own `user_{id}` topic for messages read from user topics) and acknowledged
//! before their messages leave the pending set. Response ids are derived from the message
//! id, so a response re-sent after a crash is recognised as a duplicate.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use eddy_broker::Cluster;
use eddy_client::TopicPartition;
use eddy_context::{
    response_message, user_topic, Budget, ChatMessage, Context, ContextLookup, ContextStrategy,
    MessageKind, Responder, Responding,
};
use eddy_types::ClassifyError;
use metrics::{counter, gauge, histogram};
use tokio::sync::oneshot;
use tracing::{debug, warn};

use crate::client::{EmbeddedClient, Matcher, OutRecord, Record, StreamClient, Subscription};
use crate::error::PipelineError;
use crate::kafka::KafkaClient;
use crate::merge::Merger;
use crate::responder::{Done, Job, ResponderWorker, WorkerConfig};
use crate::store::{Batch, ContextStore};

/// How long a topic with stored offsets must be missing from the cluster's list before its
/// offsets are forgotten (deleted, not just in error for a moment).
pub const DELETED_AFTER: Duration = Duration::from_secs(5);

/// Which messages get a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RespondTo {
    /// Every message from someone else (reactions excepted).
    All,
    /// Messages that @mention the responder.
    Mentions,
    /// None: the consumer only assembles context.
    None,
}

/// The context consumer's settings.
#[derive(Debug, Clone)]
pub struct ContextConfig {
    /// What to read.
    pub subscription: Subscription,
    /// The consumer group it commits its offsets to, for monitoring (`eddy-context`).
    pub group: String,
    /// How often the cluster's topics are checked against the subscription (1 s).
    pub refresh_interval: Duration,
    /// Where its LMDB state lives.
    pub state_dir: PathBuf,
    /// The LMDB map size: the most the state may grow to (64 GiB; sparse).
    pub map_size: usize,
    /// Messages remembered (50,000): the state and the strategy hold at least the last
    /// `history` messages observed and fewer than twice that. When they reach twice, the
    /// oldest are forgotten (from the state, and from the strategy, rebuilt from the rest
    /// with [`ContextStrategy::fresh`]): context never reaches further back, and memory and
    /// the state stay bounded however long the consumer runs.
    pub history: usize,
    /// How long the merge by timestamp waits for a partition that is behind (200 ms).
    pub merge_wait: Duration,
    /// The most records waiting in the merge (10,000).
    pub max_held: usize,
    /// One poll's wait (100 ms).
    pub poll_timeout: Duration,
    /// The context given to the responder.
    pub budget: Budget,
    /// Which messages are answered (all).
    pub respond_to: RespondTo,
    /// Who answers: its user id, display name, and the partitions of its `user_{id}` topic.
    pub responding: Responding,
    /// The responder worker's queue, retries and circuit breaker.
    pub worker: WorkerConfig,
    /// How long producing one response may take (10 s).
    pub delivery_timeout: Duration,
}

impl ContextConfig {
    /// The defaults, with state in `state_dir`, reading `subscription`.
    pub fn new(state_dir: impl Into<PathBuf>, subscription: Subscription) -> ContextConfig {
        ContextConfig {
            subscription,
            group: "eddy-context".into(),
            refresh_interval: Duration::from_secs(1),
            state_dir: state_dir.into(),
            map_size: 1 << 36,
            history: 50_000,
            merge_wait: Duration::from_millis(200),
            max_held: 10_000,
            poll_timeout: Duration::from_millis(100),
            budget: Budget::default(),
            respond_to: RespondTo::All,
            responding: Responding {
                sender_id: "eddy-bot".into(),
                sender_name: "Eddy".into(),
                partitions: 10,
            },
            worker: WorkerConfig::default(),
            delivery_timeout: Duration::from_secs(10),
        }
    }
}

/// Counts a running context consumer publishes.
#[derive(Debug, Default)]
struct Progress {
    /// Messages in its state.
    observed: AtomicU64,
    /// Messages waiting for a response (queued, with the model, or answered and not yet
    /// produced).
    pending: AtomicU64,
}

/// The strategy of a running context consumer, shared with readers such as the HTTP API.
#[derive(Clone)]
pub struct ContextHandle {
    strategy: Arc<Mutex<Box<dyn ContextStrategy>>>,
    name: String,
    progress: Arc<Progress>,
    /// `eddy_context_assembly_seconds{strategy}`, built once (no label per call).
    assembly: metrics::Histogram,
}

impl std::fmt::Debug for ContextHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextHandle")
            .field("strategy", &self.name)
            .finish()
    }
}

impl ContextHandle {
    fn lock(&self) -> MutexGuard<'_, Box<dyn ContextStrategy>> {
        // A panic inside a strategy poisons the lock; its state is as good as it was.
        self.strategy.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The strategy's name.
    pub fn strategy(&self) -> &str {
        &self.name
    }

    /// Messages observed since the consumer's state was created (forgotten ones included),
    /// as of its last commit.
    pub fn observed(&self) -> u64 {
        self.progress.observed.load(Ordering::Relaxed)
    }

    /// Messages still waiting for their responses to be produced, as of the last commit.
    pub fn pending_responses(&self) -> u64 {
        self.progress.pending.load(Ordering::Relaxed)
    }
}

impl ContextLookup for ContextHandle {
    fn context_for(&self, message_id: &str, budget: &Budget) -> Option<Context> {
        let started = Instant::now();
        let context = self.lock().context_for(message_id, budget);
        self.assembly.record(started.elapsed());
        context
    }
}

/// The consumer. See the [module docs](self).
pub struct ContextConsumer<C: StreamClient> {
    client: C,
    config: ContextConfig,
    handle: ContextHandle,
    store: ContextStore,
    merger: Merger,
    offsets: BTreeMap<TopicPartition, u64>,
    ids: HashSet<String>,
    /// The position of the oldest message remembered.
    first_seq: u64,
    next_seq: u64,
    worker: Option<ResponderWorker>,
    pending_done: Vec<u64>,
    /// Messages in the pending set of the state.
    pending: u64,
    topic_partitions: HashMap<String, u32>,
    matcher: Matcher,
    reading: BTreeSet<TopicPartition>,
    next_refresh: Instant,
    /// Topics with stored offsets that the cluster no longer lists, since when.
    missing_since: HashMap<String, Instant>,
}

impl<C: StreamClient> std::fmt::Debug for ContextConsumer<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextConsumer")
            .field("strategy", &self.handle.name)
            .field("observed", &self.next_seq)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl<C: StreamClient> ContextConsumer<C> {
    /// Opens the state in `config.state_dir`, replays it through `strategy` (which must be
    /// fresh), and queues again the messages that were waiting for `responder`.
    pub fn open(
        client: C,
        mut strategy: Box<dyn ContextStrategy>,
        responder: Option<Box<dyn Responder>>,
        config: ContextConfig,
    ) -> Result<ContextConsumer<C>, PipelineError> {
        if config.responding.sender_id.is_empty() || config.responding.partitions == 0 {
            return Err(PipelineError::Config(
                "the responder needs a user id and at least one partition".into(),
            ));
        }
        if config.history == 0 {
            return Err(PipelineError::Config(
                "the history must keep at least one message".into(),
            ));
        }
        let matcher = config.subscription.matcher()?;
        let store = ContextStore::open(&config.state_dir, config.map_size)?;
        let (mut first_seq, next_seq) = store.bounds()?.unwrap_or((0, 0));
        // A state kept with a longer history than this one: forget what is past it.
        if next_seq - first_seq >= 2 * config.history as u64 {
            first_seq = next_seq - config.history as u64;
            store.forget_before(first_seq)?;
        }
        let ids = replay(&store, strategy.as_mut())?;
        let offsets = store.offsets()?;
        let name = strategy.name().to_owned();
        let worker = match responder {
            Some(r) if config.respond_to != RespondTo::None => {
                Some(ResponderWorker::start(r, config.worker.clone())?)
            }
            _ => None,
        };
        let mut consumer = ContextConsumer {
            client,
            handle: ContextHandle {
                strategy: Arc::new(Mutex::new(strategy)),
                assembly: histogram!(eddy_metrics::CONTEXT_ASSEMBLY_LATENCY, "strategy" => name.clone()),
                name,
                progress: Arc::default(),
            },
            merger: Merger::new(config.merge_wait, config.max_held),
            config,
            store,
            offsets,
            ids,
            first_seq,
            next_seq,
            worker,
            pending_done: Vec::new(),
            pending: 0,
            topic_partitions: HashMap::new(),
            matcher,
            reading: BTreeSet::new(),
            missing_since: HashMap::new(),
            next_refresh: Instant::now(),
        };
        gauge!(eddy_metrics::CONTEXT_HISTORY, "strategy" => consumer.handle.name.clone())
            .set((consumer.next_seq - consumer.first_seq) as f64);
        let mut jobs = Vec::new();
        let pending = consumer.store.pending()?;
        consumer.pending = pending.len() as u64;
        consumer
            .handle
            .progress
            .observed
            .store(consumer.next_seq, Ordering::Relaxed);
        consumer
            .handle
            .progress
            .pending
            .store(consumer.pending, Ordering::Relaxed);
        for (seq, topic) in pending {
            match consumer.store.message(seq)? {
                Some(m) => jobs.push((seq, topic, m)),
                None => consumer.pending_done.push(seq),
            }
        }
        consumer.submit(jobs);
        Ok(consumer)
    }

    /// The shared strategy, for `context_for` from elsewhere.
    pub fn handle(&self) -> ContextHandle {
        self.handle.clone()
    }

    /// Messages observed so far (replayed ones included).
    pub fn observed(&self) -> u64 {
        self.next_seq
    }

    /// Reads until `stop` fires (or its sender is dropped).
    pub async fn run(mut self, mut stop: oneshot::Receiver<()>) -> Result<(), PipelineError> {
        let result = loop {
            tokio::select! {
                _ = &mut stop => break Ok(()),
                step = self.step() => match step {
                    Ok(_) => {}
                    Err(e) if e.kind().is_retriable() => {
                        warn!(error = %e, "context consumer: retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Err(e) => break Err(e),
                },
            }
        };
        // What is held and not stored is read again after a restart.
        let closed = self.client.close().await;
        result.and(closed)
    }

    /// Reads the partitions of the topics the subscription matches now: new ones from their
    /// stored offsets (or the start), gone ones forgotten.
    async fn refresh(&mut self) -> Result<(), PipelineError> {
        let topics = self.client.topics().await?;
        self.forget_deleted(&topics)?;
        let wanted: BTreeSet<TopicPartition> = topics
            .into_iter()
            .filter(|(t, _)| self.matcher.matches(t))
            .flat_map(|(t, n)| (0..n).map(move |p| (t.clone(), p)))
            .collect();
        if wanted == self.reading {
            return Ok(());
        }
        // Everything is read again from the stored offsets: what the merge held is dropped
        // (it comes again), so no record is taken twice.
        let list: Vec<(TopicPartition, u64)> = wanted
            .iter()
            .map(|tp| (tp.clone(), self.offsets.get(tp).copied().unwrap_or(0)))
            .collect();
        self.client.assign(&list)?;
        for tp in self.reading.iter().chain(&wanted) {
            self.merger.drop_partition(tp);
        }
        debug!(partitions = wanted.len(), "context consumer: reading");
        self.reading = wanted;
        Ok(())
    }

    /// Forgets the offsets of topics missing from `topics` for [`DELETED_AFTER`] (a topic
    /// with a metadata error is missing from the Kafka client's list for a moment): a topic
    /// made again under the name then starts at offset 0, as Kafka deletes a deleted topic's
    /// group offsets.
    fn forget_deleted(&mut self, topics: &[(String, u32)]) -> Result<(), PipelineError> {
        let now = Instant::now();
        let listed: HashSet<&str> = topics.iter().map(|(name, _)| name.as_str()).collect();
        let mut missing: BTreeSet<&str> = BTreeSet::new();
        for (t, _) in self.offsets.keys() {
            if !listed.contains(t.as_str()) {
                missing.insert(t);
            }
        }
        self.missing_since
            .retain(|t, _| missing.contains(t.as_str()));
        let mut gone = Vec::new();
        for t in missing {
            let since = *self.missing_since.entry(t.to_owned()).or_insert(now);
            if now.duration_since(since) >= DELETED_AFTER {
                let all = (t.to_owned(), 0)..=(t.to_owned(), u32::MAX);
                gone.extend(self.offsets.range(all).map(|(tp, _)| tp.clone()));
            }
        }
        if gone.is_empty() {
            return Ok(());
        }
        debug!(
            partitions = gone.len(),
            "context consumer: forgetting deleted partitions"
        );
        self.commit(&Batch {
            offsets_gone: gone.clone(),
            ..Batch::default()
        })?;
        for tp in &gone {
            self.offsets.remove(tp);
            self.missing_since.remove(&tp.0);
        }
        Ok(())
    }

    /// One poll: new messages observed and committed, finished responses produced. Answers
    /// how many messages were observed.
    pub async fn step(&mut self) -> Result<usize, PipelineError> {
        if Instant::now() >= self.next_refresh {
            self.refresh().await?;
            self.next_refresh = Instant::now() + self.config.refresh_interval;
        }
        let polled = if self.reading.is_empty() {
            tokio::time::sleep(self.config.poll_timeout).await;
            crate::client::Polled::default()
        } else {
            self.client.poll(self.config.poll_timeout).await?
        };
        for r in polled.records {
            let tp = (r.topic.clone(), r.partition);
            if !self.reading.contains(&tp) || r.offset < self.offsets.get(&tp).copied().unwrap_or(0)
            {
                continue;
            }
            self.merger.push(r);
        }
        let released = self.merger.release(&polled.progress, Instant::now());
        let observed = self.ingest(released).await?;
        self.deliver().await?;
        Ok(observed)
    }

    fn should_respond(&self, m: &ChatMessage) -> bool {
        let me = &self.config.responding.sender_id;
        if self.worker.is_none() || &m.sender_id == me || m.kind == MessageKind::Reaction {
            return false;
        }
        match self.config.respond_to {
            RespondTo::All => true,
            RespondTo::Mentions => {
                m.mentions.iter().any(|x| x == me) || m.content.contains(&format!("@{me}"))
            }
            RespondTo::None => false,
        }
    }

    async fn ingest(&mut self, released: Vec<Record>) -> Result<usize, PipelineError> {
        let mut batch = Batch {
            pending_done: std::mem::take(&mut self.pending_done),
            ..Batch::default()
        };
        let mut next: BTreeMap<TopicPartition, u64> = BTreeMap::new();
        let mut jobs = Vec::new();
        let (mut invalid, mut duplicate) = (0u64, 0u64);
        if !released.is_empty() {
            let mut strategy = self.handle.lock();
            for r in released {
                next.insert((r.topic.clone(), r.partition), r.offset + 1);
                let decoded = match &r.value {
                    Some(v) => ChatMessage::decode(v),
                    None => Err(eddy_context::ContextError::Invalid("a tombstone".into())),
                };
                let m = match decoded {
                    Ok(m) => m,
                    Err(e) => {
                        debug!(topic = %r.topic, partition = r.partition, offset = r.offset, error = %e, "not a chat message; skipped");
                        invalid += 1;
                        continue;
                    }
                };
                if self.ids.contains(&m.message_id) {
                    duplicate += 1;
                    continue;
                }
                let seq = self.next_seq;
                strategy.observe(&m);
                batch.messages.push((seq, m.to_msgpack()?));
                self.ids.insert(m.message_id.clone());
                self.next_seq += 1;
                if self.should_respond(&m) {
                    batch.pending_add.push((seq, r.topic.clone()));
                    jobs.push((seq, r.topic, m));
                }
            }
        }
        batch.offsets = next.iter().map(|(tp, o)| (tp.clone(), *o)).collect();
        let observed = batch.messages.len();
        self.commit(&batch)?;
        self.offsets.extend(next);
        let name = self.handle.name.clone();
        if observed > 0 {
            counter!(eddy_metrics::CONTEXT_MESSAGES, "strategy" => name.clone(), "outcome" => "observed")
                .increment(observed as u64);
            if self.next_seq - self.first_seq >= 2 * self.config.history as u64 {
                self.forget_oldest()?;
            }
            gauge!(eddy_metrics::CONTEXT_HISTORY, "strategy" => name.clone())
                .set((self.next_seq - self.first_seq) as f64);
        }
        if invalid > 0 {
            counter!(eddy_metrics::CONTEXT_MESSAGES, "strategy" => name.clone(), "outcome" => "invalid")
                .increment(invalid);
        }
        if duplicate > 0 {
            counter!(eddy_metrics::CONTEXT_MESSAGES, "strategy" => name, "outcome" => "duplicate")
                .increment(duplicate);
        }
        if !batch.offsets.is_empty() {
            // For lag in the dashboards; the stored offsets are what a restart uses.
            if let Err(e) = self.client.commit(&batch.offsets).await {
                debug!(error = %e, "context consumer: group commit failed");
            }
        }
        self.submit(jobs);
        Ok(observed)
    }

    fn submit(&mut self, jobs: Vec<(u64, String, ChatMessage)>) {
        let Some(worker) = &self.worker else {
            self.pending_done.extend(jobs.iter().map(|j| j.0));
            return;
        };
        let responder = worker.name().to_owned();
        for (seq, topic, message) in jobs {
            let Some(context) = self
                .handle
                .context_for(&message.message_id, &self.config.budget)
            else {
                self.pending_done.push(seq);
                continue;
            };
            if let Err(job) = worker.submit(Job {
                seq,
                topic,
                message,
                context,
            }) {
                warn!(message = %job.message.message_id, "responder queue full; message not answered");
                counter!(eddy_metrics::CONTEXT_RESPONSES, "responder" => responder.clone(), "outcome" => "dropped")
                    .increment(1);
                self.pending_done.push(job.seq);
            }
        }
        gauge!(eddy_metrics::CONTEXT_RESPONDER_QUEUE, "responder" => responder)
            .set(worker.queued() as f64);
    }

    /// The topic answers to a message read from `source` go to, and its partition count.
    async fn answer_topic(&mut self, source: &str) -> Result<(String, u32), PipelineError> {
        let topic = if source.starts_with("user_") {
            user_topic(&self.config.responding.sender_id)
        } else {
            source.to_owned()
        };
        if let Some(&n) = self.topic_partitions.get(&topic) {
            return Ok((topic, n));
        }
        let n = self
            .client
            .ensure_topic(&topic, self.config.responding.partitions)
            .await?;
        self.topic_partitions.insert(topic.clone(), n);
        Ok((topic, n))
    }

    async fn deliver(&mut self) -> Result<(), PipelineError> {
        let Some(worker) = &self.worker else {
            return Ok(());
        };
        let finished: Vec<Done> = worker.finished();
        if finished.is_empty() {
            return Ok(());
        }
        let responder = worker.name().to_owned();
        for done in finished {
            histogram!(eddy_metrics::CONTEXT_RESPONDER_LATENCY, "responder" => responder.clone())
                .record(done.took);
            self.pending_done.push(done.seq);
            let answers = match done.outcome {
                Ok(a) => a,
                Err(e) => {
                    warn!(message = %done.message.message_id, error = %e, "no response");
                    counter!(eddy_metrics::CONTEXT_RESPONSES, "responder" => responder.clone(), "outcome" => "failed")
                        .increment(1);
                    continue;
                }
            };
            if answers.is_empty() {
                continue;
            }
            let (topic, partitions) = match self.answer_topic(&done.topic).await {
                Ok(t) => t,
                Err(e) if e.kind().is_retriable() => {
                    warn!(error = %e, "cannot reach the answer topic");
                    counter!(eddy_metrics::CONTEXT_RESPONSES, "responder" => responder.clone(), "outcome" => "produce_failed")
                        .increment(answers.len() as u64);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let by = Responding {
                partitions,
                ..self.config.responding.clone()
            };
            let mut records = Vec::with_capacity(answers.len());
            for (i, a) in answers.iter().enumerate() {
                let id = format!("{}-{}-{}", by.sender_id, done.message.message_id, i);
                // Never before the message it answers, whatever the clocks say.
                let at = now_ms().max(done.message.timestamp + 1);
                let m = response_message(a, &done.message, &by, id, at)?;
                records.push(OutRecord {
                    topic: topic.clone(),
                    partition: m.partition_hint,
                    key: Some(Bytes::from(m.context_id.clone())),
                    value: Bytes::from(m.to_json()?),
                    timestamp: Some(m.timestamp),
                    headers: Vec::new(),
                });
            }
            let (mut sent, mut failed) = (0u64, 0u64);
            for r in self.client.send_all(records).await {
                match r {
                    Ok(()) => sent += 1,
                    Err(e) => {
                        warn!(error = %e, "a response was not produced");
                        failed += 1;
                    }
                }
            }
            counter!(eddy_metrics::CONTEXT_RESPONSES, "responder" => responder.clone(), "outcome" => "sent")
                .increment(sent);
            if failed > 0 {
                counter!(eddy_metrics::CONTEXT_RESPONSES, "responder" => responder.clone(), "outcome" => "produce_failed")
                    .increment(failed);
            }
        }
        if let Some(worker) = &self.worker {
            gauge!(eddy_metrics::CONTEXT_RESPONDER_QUEUE, "responder" => responder)
                .set(worker.queued() as f64);
        }
        // Answered messages leave the pending set now, so that a restart does not answer
        // them again (after a crash right here it does; the ids make that a duplicate).
        let batch = Batch {
            pending_done: std::mem::take(&mut self.pending_done),
            ..Batch::default()
        };
        self.commit(&batch)
    }

    /// Forgets all but the last `history` messages: from the state, then from the strategy,
    /// which is replaced by a fresh one fed the rest (built before the swap, so that readers
    /// of the handle wait only for the swap itself).
    fn forget_oldest(&mut self) -> Result<(), PipelineError> {
        let started = Instant::now();
        let keep_from = self.next_seq - self.config.history as u64;
        let removed = self.store.forget_before(keep_from)?;
        let mut fresh = self.handle.lock().fresh();
        self.ids = replay(&self.store, fresh.as_mut())?;
        *self.handle.lock() = fresh;
        self.first_seq = keep_from;
        debug!(removed, kept = self.next_seq - keep_from, took = ?started.elapsed(), "context consumer: oldest messages forgotten");
        Ok(())
    }

    /// Writes `batch` to the state and publishes the counts.
    fn commit(&mut self, batch: &Batch) -> Result<(), PipelineError> {
        self.store.commit(batch)?;
        self.pending = (self.pending + batch.pending_add.len() as u64)
            .saturating_sub(batch.pending_done.len() as u64);
        let p = &self.handle.progress;
        p.observed.store(self.next_seq, Ordering::Relaxed);
        p.pending.store(self.pending, Ordering::Relaxed);
        Ok(())
    }
}

/// Feeds every stored message, in order, to `strategy`; answers their ids.
fn replay(
    store: &ContextStore,
    strategy: &mut dyn ContextStrategy,
) -> Result<HashSet<String>, PipelineError> {
    let mut ids = HashSet::new();
    store.for_each_message(|_, m| {
        strategy.observe(&m);
        ids.insert(m.message_id);
        Ok(())
    })?;
    Ok(ids)
}

/// A context consumer running on its own thread (with its own actix system), over an
/// in-process cluster or a Kafka-protocol one. Stops when dropped.
#[derive(Debug)]
pub struct RunningContext {
    handle: ContextHandle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), PipelineError>>>,
}

impl RunningContext {
    /// Opens the state, replays it, and starts reading `cluster`; returns once the replay
    /// is done (a bad state directory or setting fails here).
    pub fn spawn(
        cluster: Cluster,
        strategy: Box<dyn ContextStrategy>,
        responder: Option<Box<dyn Responder>>,
        config: ContextConfig,
    ) -> Result<RunningContext, PipelineError> {
        let (group, timeout) = (config.group.clone(), config.delivery_timeout);
        RunningContext::spawn_with(
            move || async move { EmbeddedClient::connect(&cluster, &group, timeout).await },
            strategy,
            responder,
            config,
        )
    }

    /// As [`RunningContext::spawn`], over the Kafka-protocol cluster at `bootstrap`
    /// (Apache Kafka, Redpanda, or `eddy serve`).
    pub fn spawn_kafka(
        bootstrap: String,
        strategy: Box<dyn ContextStrategy>,
        responder: Option<Box<dyn Responder>>,
        config: ContextConfig,
    ) -> Result<RunningContext, PipelineError> {
        let (group, timeout) = (config.group.clone(), config.delivery_timeout);
        RunningContext::spawn_with(
            move || async move { KafkaClient::connect(&bootstrap, &group, timeout) },
            strategy,
            responder,
            config,
        )
    }

    /// As [`RunningContext::spawn`], over the client `connect` makes (on the consumer's
    /// thread, inside its actix system).
    pub fn spawn_with<C, F, Fut>(
        connect: F,
        strategy: Box<dyn ContextStrategy>,
        responder: Option<Box<dyn Responder>>,
        config: ContextConfig,
    ) -> Result<RunningContext, PipelineError>
    where
        C: StreamClient + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<C, PipelineError>>,
    {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("eddy-context".into())
            .spawn(move || {
                let system = actix_rt::System::new();
                system.block_on(async move {
                    let opened = connect()
                        .await
                        .and_then(|c| ContextConsumer::open(c, strategy, responder, config));
                    match opened {
                        Ok(consumer) => {
                            let _ = ready_tx.send(Ok(consumer.handle()));
                            consumer.run(stop_rx).await
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            Ok(())
                        }
                    }
                })
            })
            .map_err(|e| PipelineError::Stopped(format!("cannot start its thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(handle)) => Ok(RunningContext {
                handle,
                stop: Some(stop_tx),
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(PipelineError::Stopped("it ended while starting".into()))
            }
        }
    }

    /// The shared strategy.
    pub fn handle(&self) -> ContextHandle {
        self.handle.clone()
    }

    /// Stops reading, leaves the group, and answers how the consumer ended.
    pub fn stop(mut self) -> Result<(), PipelineError> {
        self.finish()
    }

    fn finish(&mut self) -> Result<(), PipelineError> {
        drop(self.stop.take());
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(PipelineError::Stopped("its thread panicked".into()))),
            None => Ok(()),
        }
    }
}

impl Drop for RunningContext {
    fn drop(&mut self) {
        if let Err(e) = self.finish() {
            warn!(error = %e, "the context consumer ended with an error");
        }
    }
}
