//! `Controller`: the one writer of the cluster metadata.
//!
//! It starts the brokers, creates and deletes topics, records ISR changes asked by leaders,
//! watches brokers (heartbeats, and the stop notice of a broker actor) and elects new leaders
//! when one goes. Every change is computed on a copy of the metadata ([`ClusterMetadata`]'s
//! pure functions), persisted to every broker's log directory, and only then published and
//! announced; handlers that change metadata run one at a time (`AtomicResponse`).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use eddy_log::{LogStore, PartitionConfig};
use eddy_types::{BrokerId, PartitionId, TopicName};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::broker::Broker;
use super::{now, Directory, Shared};
use crate::config::ClusterConfig;
use crate::error::BrokerError;
use crate::messages::{
    AlterIsr, AlterIsrs, BrokerGone, CreatePartitions, CreateTopic, CreateTopics, DeleteTopic,
    Heartbeat, InitProducerId, NewLeaderEpoch, PartitionsChanged, PartitionsDeleted,
    ProducerIdentity, Shutdown, ShutdownCluster, StartBroker, StopBroker,
};
use crate::metadata::{
    Changes, ClusterMetadata, ClusterRecord, MetadataView, PartitionMeta, TopicMeta,
};

const CLUSTER_KEY: &[u8] = b"cluster";
const TOPIC_PREFIX: &[u8] = b"topic/";

/// A metadata record as stored in every broker's log directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum MetaRecord {
    Cluster(ClusterRecord),
    Topic(TopicMeta),
    /// A deleted topic, kept so that a stale copy elsewhere cannot bring it back.
    Deleted {
        version: u64,
    },
}

fn topic_key(name: &TopicName) -> Vec<u8> {
    let mut k = TOPIC_PREFIX.to_vec();
    k.extend_from_slice(name.as_str().as_bytes());
    k
}

/// Reads the metadata from every broker's log directory (the newest copy of each record
/// wins) and makes each directory hold exactly the partitions it should.
pub(crate) async fn load(
    config: &ClusterConfig,
    stores: &[LogStore],
) -> Result<ClusterMetadata, BrokerError> {
    let mut meta = ClusterMetadata::new(config.name.clone(), config.brokers);
    meta.replica_limit = config.max_partitions;
    let mut best: BTreeMap<Vec<u8>, (u64, MetaRecord)> = BTreeMap::new();
    for store in stores {
        if let Some(MetaRecord::Cluster(r)) = store.get_meta::<MetaRecord>(CLUSTER_KEY)? {
            if r.brokers != config.brokers {
                return Err(BrokerError::InvalidClusterConfig(format!(
                    "cluster {} was created with {} brokers, not {}; the broker count cannot change",
                    r.name, r.brokers, config.brokers
                )));
            }
            meta.version = meta.version.max(r.version);
            meta.next_partition_id = meta.next_partition_id.max(r.next_partition_id);
            meta.next_producer_id = meta.next_producer_id.max(r.next_producer_id);
        }
        for (key, rec) in store.scan_meta::<MetaRecord>(TOPIC_PREFIX)? {
            let version = match &rec {
                MetaRecord::Topic(t) => t.version,
                MetaRecord::Deleted { version } => *version,
                MetaRecord::Cluster(_) => continue,
            };
            if best.get(&key).is_none_or(|(v, _)| *v < version) {
                best.insert(key, (version, rec));
            }
        }
    }
    for (_, (version, rec)) in best {
        meta.version = meta.version.max(version);
        if let MetaRecord::Topic(t) = rec {
            if let Some(max) = t.partitions.iter().map(|p| p.id.0).max() {
                meta.next_partition_id = meta.next_partition_id.max(max + 1);
            }
            meta.topics.insert(t.name.clone(), Arc::new(t));
        }
    }
    meta.recount();
    // Each directory holds exactly its replicas: a crash between writing partitions and
    // writing metadata (or the reverse, for a delete) leaves strays to remove or create.
    for (b, store) in stores.iter().enumerate() {
        let broker = BrokerId(b as u32);
        let mut wanted: BTreeMap<PartitionId, PartitionConfig> = BTreeMap::new();
        for t in meta.topics.values() {
            for p in t.partitions.iter().filter(|p| p.replicas.contains(&broker)) {
                wanted.insert(p.id, partition_config(t));
            }
        }
        let existing = store.partitions()?;
        let stray: Vec<PartitionId> = existing
            .iter()
            .copied()
            .filter(|p| !wanted.contains_key(p))
            .collect();
        for p in &existing {
            wanted.remove(p);
        }
        if !stray.is_empty() {
            warn!(broker = %broker, count = stray.len(), "removing partitions the metadata does not know");
            store.delete_partitions(stray).await?;
        }
        if !wanted.is_empty() {
            warn!(broker = %broker, count = wanted.len(), "creating missing partition replicas");
            store
                .create_partitions(wanted.into_iter().collect())
                .await?;
        }
    }
    // Every led partition gets a new leader epoch before any broker runs: a leader hands
    // batches to its followers before its own commit, so after a crash a follower may hold
    // records its leader lost; under the new epoch the follower cuts them (KIP-101) before it
    // fetches, and before the leader can write other records at those offsets.
    let bumped = meta.restarted();
    if !bumped.topics.is_empty() {
        let changed: Vec<TopicName> = bumped.topics.iter().cloned().collect();
        if let Err(e) = persist_to(stores, &meta, &changed, &[]).await {
            // Still used for this run, whose followers it fences; unpersisted, the next start
            // may hand out the same epochs again.
            warn!(error = %e, "cannot persist the start's new leader epochs");
        }
    }
    Ok(meta)
}

/// Persists the cluster record, the `changed` topics and tombstones for `deleted`, in every
/// broker's log directory (`stores`).
fn persist_to(
    stores: &[LogStore],
    next: &ClusterMetadata,
    changed: &[TopicName],
    deleted: &[TopicName],
) -> impl Future<Output = Result<(), BrokerError>> + 'static {
    let mut records: Vec<(Vec<u8>, MetaRecord)> =
        vec![(CLUSTER_KEY.to_vec(), MetaRecord::Cluster(next.record()))];
    for name in changed {
        if let Some(t) = next.topics.get(name) {
            records.push((topic_key(name), MetaRecord::Topic((**t).clone())));
        }
    }
    for name in deleted {
        records.push((
            topic_key(name),
            MetaRecord::Deleted {
                version: next.version,
            },
        ));
    }
    let refs: Vec<(&[u8], &MetaRecord)> = records.iter().map(|(k, v)| (k.as_slice(), v)).collect();
    let pending: Vec<_> = stores.iter().map(|s| s.put_meta(&refs)).collect();
    async move {
        for p in pending {
            p.await?;
        }
        Ok(())
    }
}

fn partition_config(t: &TopicMeta) -> PartitionConfig {
    PartitionConfig {
        retention_ms: t.config.retention_ms,
        retention_bytes: t.config.retention_bytes,
    }
}

/// What the controller knows of one broker.
struct Slot {
    addr: Option<Addr<Broker>>,
    incarnation: u64,
    last_heartbeat: Instant,
}

/// The cluster's controller.
pub struct Controller {
    config: Arc<ClusterConfig>,
    /// The committed metadata (persisted and published).
    metadata: ClusterMetadata,
    view: MetadataView,
    directory: Directory,
    /// Every broker's log directory, by broker id. They stay open while a broker is stopped.
    stores: Vec<LogStore>,
    slots: Vec<Slot>,
    next_incarnation: u64,
    shutting_down: bool,
    /// Partitions' high watermarks, written by the brokers' leaders (see `crate::watermarks`).
    high_watermarks: Arc<eddy_sync::ValueTable>,
    /// Renders them at scrape time, for as long as this controller lives.
    _watermark_series: Arc<dyn eddy_metrics::Collector>,
    /// This cluster's key in `eddy_metrics::set_cluster_partitions`.
    metrics_id: u64,
    /// The start-up read of the checkpointed high watermarks.
    hw_load: Option<HwLoad>,
}

/// The thread reading the checkpointed high watermarks; dropping it stops it and waits
/// for it (it holds clones of the log stores, which must be gone when the cluster is).
struct HwLoad {
    thread: Option<std::thread::JoinHandle<()>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for HwLoad {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Tells clusters of one process apart in `eddy_metrics::set_cluster_partitions`.
static NEXT_METRICS_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("cluster", &self.config.name)
            .field("version", &self.metadata.version)
            .field("alive", &self.metadata.alive)
            .finish()
    }
}

type Atomic<T> = AtomicResponse<Controller, Result<T, BrokerError>>;

fn fail<T: 'static>(e: BrokerError) -> Atomic<T> {
    AtomicResponse::new(Box::pin(actix::fut::ready(Err(e))))
}

impl Controller {
    pub(crate) fn new(
        config: Arc<ClusterConfig>,
        metadata: ClusterMetadata,
        view: MetadataView,
        directory: Directory,
        stores: Vec<LogStore>,
    ) -> Controller {
        let t = now();
        let slots = (0..stores.len())
            .map(|_| Slot {
                addr: None,
                incarnation: 0,
                last_heartbeat: t,
            })
            .collect();
        let high_watermarks = Arc::new(eddy_sync::ValueTable::default());
        let series: Arc<dyn eddy_metrics::Collector> =
            Arc::new(crate::watermarks::HighWatermarkSeries {
                view: view.clone(),
                table: high_watermarks.clone(),
            });
        eddy_metrics::register_collector(Arc::downgrade(&series));
        Controller {
            config,
            metadata,
            view,
            directory,
            stores,
            slots,
            next_incarnation: 0,
            shutting_down: false,
            high_watermarks,
            _watermark_series: series,
            metrics_id: NEXT_METRICS_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            hw_load: None,
        }
    }

    fn start_broker(&mut self, id: BrokerId, ctx: &mut Context<Self>) -> Result<(), BrokerError> {
        let i = id.0 as usize;
        let (Some(slot), Some(store)) = (self.slots.get_mut(i), self.stores.get(i)) else {
            return Err(BrokerError::BrokerNotAvailable(id));
        };
        self.next_incarnation += 1;
        let shared = Arc::new(Shared {
            id,
            log: store.clone(),
            view: self.view.clone(),
            directory: self.directory.clone(),
            controller: ctx.address().recipient(),
            new_epoch: ctx.address().recipient(),
            config: self.config.clone(),
            fetching_paused: Default::default(),
            readers: Arc::new(tokio::sync::Semaphore::new(super::READERS_PER_BROKER)),
            high_watermarks: self.high_watermarks.clone(),
        });
        let addr = Broker::new(
            shared,
            self.next_incarnation,
            ctx.address().recipient(),
            ctx.address().recipient(),
        )
        .start();
        slot.addr = Some(addr.clone());
        slot.incarnation = self.next_incarnation;
        slot.last_heartbeat = now();
        self.directory.set(id, Some(addr));
        Ok(())
    }

    /// Persists the cluster record, the `changed` topics and tombstones for `deleted`, in
    /// every broker's log directory.
    fn persist(
        &self,
        next: &ClusterMetadata,
        changed: &[TopicName],
        deleted: &[TopicName],
    ) -> impl Future<Output = Result<(), BrokerError>> + 'static {
        persist_to(&self.stores, next, changed, deleted)
    }

    /// Creates `parts` of `topic` in the log directory of each broker holding a replica, then
    /// persists `next`. Partitions first, metadata second: a crash in between leaves strays
    /// that the next start removes, never metadata pointing at missing partitions.
    fn create_replicas(
        &self,
        next: &ClusterMetadata,
        topic: &TopicMeta,
        parts: &[PartitionMeta],
    ) -> impl Future<Output = Result<(), BrokerError>> + 'static {
        self.create_replicas_of(next, &[(topic, parts)])
    }

    /// [`Controller::create_replicas`] for many topics: one commit per log directory, one
    /// metadata commit.
    fn create_replicas_of(
        &self,
        next: &ClusterMetadata,
        topics: &[(&TopicMeta, &[PartitionMeta])],
    ) -> impl Future<Output = Result<(), BrokerError>> + 'static {
        let mut creates = Vec::new();
        for (b, store) in self.stores.iter().enumerate() {
            let mine: Vec<(PartitionId, PartitionConfig)> = topics
                .iter()
                .flat_map(|(topic, parts)| {
                    parts
                        .iter()
                        .filter(|p| p.replicas.contains(&BrokerId(b as u32)))
                        .map(|p| (p.id, partition_config(topic)))
                })
                .collect();
            if !mine.is_empty() {
                creates.push(store.create_partitions(mine));
            }
        }
        let names: Vec<TopicName> = topics.iter().map(|(t, _)| t.name.clone()).collect();
        let persist = self.persist(next, &names, &[]);
        async move {
            for c in creates {
                c.await?;
            }
            persist.await
        }
    }

    /// Makes `next` the committed metadata, publishes it and tells the brokers what changed.
    fn commit(&mut self, next: ClusterMetadata, changes: &Changes) {
        self.metadata = next;
        self.view.publish(self.metadata.clone());
        let m = &self.metadata;
        let (mut under, mut offline) = (0u64, 0u64);
        for t in m.topics.values() {
            for p in &t.partitions {
                under += u64::from(p.under_replicated());
                offline += u64::from(p.leader.is_none());
            }
        }
        metrics::gauge!(eddy_metrics::UNDER_REPLICATED_PARTITIONS).set(under as f64);
        metrics::gauge!(eddy_metrics::OFFLINE_PARTITIONS).set(offline as f64);
        metrics::gauge!(eddy_metrics::BROKERS_ALIVE).set(m.alive.len() as f64);
        eddy_metrics::set_cluster_partitions(self.metrics_id, m.partition_count());
        if changes.elections > 0 {
            metrics::counter!(eddy_metrics::LEADER_ELECTIONS)
                .increment(u64::from(changes.elections));
        }
        if !changes.partitions.is_empty() {
            self.announce(changes.partitions.clone());
        }
    }

    fn announce(&self, partitions: Vec<(TopicName, u32)>) {
        for slot in &self.slots {
            if let Some(addr) = &slot.addr {
                addr.do_send(PartitionsChanged {
                    partitions: partitions.clone(),
                });
            }
        }
    }

    /// Computes a change on a copy, persists it, then commits it; answers `answer(next)`.
    fn change<T: 'static>(
        &mut self,
        apply: impl FnOnce(&mut ClusterMetadata) -> Result<(Changes, Vec<TopicName>), BrokerError>,
        answer: impl FnOnce(&ClusterMetadata) -> Result<T, BrokerError> + 'static,
    ) -> Atomic<T> {
        let mut next = self.metadata.clone();
        let (changes, deleted) = match apply(&mut next) {
            Ok(c) => c,
            Err(e) => return fail(e),
        };
        let changed: Vec<TopicName> = changes.topics.iter().cloned().collect();
        let persist = self.persist(&next, &changed, &deleted);
        AtomicResponse::new(Box::pin(persist.into_actor(self).map(
            move |res, act, _ctx| {
                res?;
                act.commit(next, &changes);
                answer(&act.metadata)
            },
        )))
    }

    /// A broker is gone: elect new leaders for what it led.
    fn broker_failed(&mut self, id: BrokerId) -> Atomic<()> {
        if self.shutting_down || !self.metadata.alive.contains(&id) {
            return AtomicResponse::new(Box::pin(actix::fut::ready(Ok(()))));
        }
        warn!(broker = %id, "broker is gone, electing new leaders");
        if let Some(slot) = self.slots.get_mut(id.0 as usize) {
            if let Some(addr) = slot.addr.take() {
                addr.do_send(Shutdown);
            }
        }
        self.directory.set(id, None);
        self.change(|next| Ok((next.broker_failed(id), Vec::new())), |_| Ok(()))
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        let t = now();
        let timeout = self.config.broker_session_timeout;
        let expired: Vec<BrokerId> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.addr.is_some() && t.saturating_duration_since(s.last_heartbeat) > timeout
            })
            .map(|(i, _)| BrokerId(i as u32))
            .collect();
        for id in expired {
            ctx.notify(BrokerGone {
                broker: id,
                incarnation: self.slots[id.0 as usize].incarnation,
            });
        }
    }
}

/// The period of the timer that measures the actors' thread's lag.
const LAG_PROBE: Duration = Duration::from_millis(20);

impl Actor for Controller {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        eddy_metrics::set_cluster_partitions(self.metrics_id, 0);
        drop(self.hw_load.take());
    }

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Counters of rare events exist from the start (at 0), so that rate() and
        // dashboards see them before the first event.
        metrics::counter!(eddy_metrics::LEADER_ELECTIONS).increment(0);
        metrics::counter!(eddy_metrics::ISR_SHRINKS).increment(0);
        metrics::counter!(eddy_metrics::ISR_EXPANDS).increment(0);
        for b in 0..self.config.brokers {
            if let Err(e) = self.start_broker(BrokerId(b), ctx) {
                warn!(broker = b, error = %e, "cannot start broker");
            }
        }
        // Every broker is up: partitions left without a leader by the last run get one.
        let mut next = self.metadata.clone();
        let mut changes = Changes::default();
        for b in 0..self.config.brokers {
            let c = next.broker_returned(BrokerId(b));
            changes.topics.extend(c.topics);
            changes.partitions.extend(c.partitions);
            changes.elections += c.elections;
        }
        let changed: Vec<TopicName> = changes.topics.iter().cloned().collect();
        let persist = self.persist(&next, &changed, &[]);
        ctx.wait(persist.into_actor(self).map(move |res, act, _| {
            if let Err(e) = res {
                warn!(error = %e, "cannot persist start-up elections");
            }
            act.commit(next, &changes);
            // The high watermarks of partitions no leader has touched yet, for `/metrics`.
            let (meta, stores) = (act.view.snapshot(), act.stores.clone());
            let table = act.high_watermarks.clone();
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let stopping = stop.clone();
            let spawned = std::thread::Builder::new()
                .name("eddy-hw-load".into())
                .spawn(move || {
                    crate::watermarks::fill_from_checkpoints(&meta, &stores, &table, &stopping)
                });
            match spawned {
                Ok(thread) => {
                    act.hw_load = Some(HwLoad {
                        thread: Some(thread),
                        stop,
                    })
                }
                Err(e) => {
                    warn!(error = %e, "cannot start reading the checkpointed high watermarks")
                }
            }
        }));
        let interval = self.config.broker_heartbeat_interval;
        ctx.run_interval(interval, |act, ctx| act.tick(ctx));
        // The actors' thread's lag: how late a short timer fires is how long the thread was
        // held by something else meanwhile.
        let lag = metrics::histogram!(eddy_metrics::ACTOR_THREAD_LAG);
        let mut due = tokio::time::Instant::now() + LAG_PROBE;
        ctx.run_interval(LAG_PROBE, move |_, _| {
            let t = tokio::time::Instant::now();
            lag.record(t.saturating_duration_since(due).as_secs_f64());
            due = t + LAG_PROBE;
        });
        info!(cluster = %self.config.name, brokers = self.config.brokers, topics = self.metadata.topics.len(), "cluster started");
    }
}

impl Handler<CreateTopic> for Controller {
    type Result = Atomic<Arc<TopicMeta>>;

    fn handle(&mut self, msg: CreateTopic, _ctx: &mut Context<Self>) -> Self::Result {
        let mut next = self.metadata.clone();
        let topic = match next.create_topic(&msg.0, &self.config.topic_defaults) {
            Ok(t) => t,
            Err(e) => return fail(e),
        };
        // Before its partition actors start (they keep their metric handles).
        eddy_metrics::topic_created(topic.name.as_str());
        let work = self.create_replicas(&next, &topic, &topic.partitions);
        info!(topic = %topic.name, partitions = topic.partitions.len(), "creating topic");
        AtomicResponse::new(Box::pin(work.into_actor(self).map(move |res, act, _| {
            res?;
            act.commit(next, &Changes::default());
            Ok(topic)
        })))
    }
}

impl Handler<CreateTopics> for Controller {
    type Result = AtomicResponse<Controller, Vec<Result<Arc<TopicMeta>, BrokerError>>>;

    fn handle(&mut self, msg: CreateTopics, _ctx: &mut Context<Self>) -> Self::Result {
        let mut next = self.metadata.clone();
        let outcomes: Vec<Result<Arc<TopicMeta>, BrokerError>> = msg
            .0
            .iter()
            .map(|t| next.create_topic(t, &self.config.topic_defaults))
            .collect();
        let created: Vec<Arc<TopicMeta>> = outcomes.iter().filter_map(|o| o.clone().ok()).collect();
        for t in &created {
            eddy_metrics::topic_created(t.name.as_str());
        }
        if created.is_empty() {
            return AtomicResponse::new(Box::pin(actix::fut::ready(outcomes)));
        }
        let items: Vec<(&TopicMeta, &[PartitionMeta])> = created
            .iter()
            .map(|t| (&**t, t.partitions.as_slice()))
            .collect();
        let work = self.create_replicas_of(&next, &items);
        info!(topics = created.len(), "creating topics");
        AtomicResponse::new(Box::pin(work.into_actor(self).map(move |res, act, _| {
            match res {
                Ok(()) => {
                    act.commit(next, &Changes::default());
                    outcomes
                }
                // Nothing was committed: each topic that would have been made gets the error.
                Err(e) => outcomes
                    .into_iter()
                    .map(|o| o.and_then(|_| Err(e.clone())))
                    .collect(),
            }
        })))
    }
}

impl Handler<CreatePartitions> for Controller {
    type Result = Atomic<Arc<TopicMeta>>;

    fn handle(&mut self, msg: CreatePartitions, _ctx: &mut Context<Self>) -> Self::Result {
        let mut next = self.metadata.clone();
        let new = match next.add_partitions(&msg.topic, msg.total) {
            Ok(n) => n,
            Err(e) => return fail(e),
        };
        let topic = match next.topic(&msg.topic) {
            Ok(t) => t.clone(),
            Err(e) => return fail(e),
        };
        let work = self.create_replicas(&next, &topic, &new);
        AtomicResponse::new(Box::pin(work.into_actor(self).map(move |res, act, _| {
            res?;
            act.commit(next, &Changes::default());
            Ok(topic)
        })))
    }
}

impl Handler<DeleteTopic> for Controller {
    type Result = Atomic<()>;

    fn handle(&mut self, msg: DeleteTopic, _ctx: &mut Context<Self>) -> Self::Result {
        let mut next = self.metadata.clone();
        let gone = match next.delete_topic(&msg.0) {
            Ok(t) => t,
            Err(e) => return fail(e),
        };
        let persist = self.persist(&next, &[], std::slice::from_ref(&gone.name));
        info!(topic = %gone.name, "deleting topic");
        AtomicResponse::new(Box::pin(persist.into_actor(self).map(move |res, act, ctx| {
            res?;
            act.commit(next, &Changes::default());
            // Its metrics series go too (as in Kafka); late updates are dropped.
            eddy_metrics::topic_deleted(gone.name.as_str());
            let pids: Vec<PartitionId> = gone.partitions.iter().map(|p| p.id).collect();
            for pid in &pids {
                act.high_watermarks.clear(pid.0);
            }
            for slot in &act.slots {
                if let Some(addr) = &slot.addr {
                    addr.do_send(PartitionsDeleted {
                        topic: gone.name.to_string(),
                        partitions: pids.clone(),
                    });
                }
            }
            // The records go last, once nobody serves them.
            let deletes: Vec<_> = act
                .stores
                .iter()
                .map(|s| s.delete_partitions(pids.clone()))
                .collect();
            ctx.spawn(
                async move {
                    for d in deletes {
                        if let Err(e) = d.await {
                            warn!(error = %e, "deleting a topic's partitions failed; the next start retries");
                        }
                    }
                }
                .into_actor(act),
            );
            Ok(())
        })))
    }
}

impl Handler<AlterIsr> for Controller {
    type Result = Atomic<Vec<BrokerId>>;

    fn handle(&mut self, msg: AlterIsr, _ctx: &mut Context<Self>) -> Self::Result {
        let (topic, index) = (msg.topic.clone(), msg.partition);
        self.change(
            move |next| {
                let c = next.alter_isr(
                    msg.topic.as_str(),
                    msg.partition,
                    msg.leader,
                    msg.leader_epoch,
                    &msg.isr,
                )?;
                Ok((c, Vec::new()))
            },
            move |m| Ok(m.partition(topic.as_str(), index)?.isr.clone()),
        )
    }
}

impl Handler<AlterIsrs> for Controller {
    type Result = AtomicResponse<Controller, Vec<Result<Vec<BrokerId>, BrokerError>>>;

    fn handle(&mut self, msg: AlterIsrs, _ctx: &mut Context<Self>) -> Self::Result {
        // One metadata change for all of them: each applied in turn, each answered on its
        // own (a stale one refused, the others recorded).
        let mut next = self.metadata.clone();
        let mut changes = Changes::default();
        let mut refused: Vec<Option<BrokerError>> = Vec::with_capacity(msg.0.len());
        for r in &msg.0 {
            match next.alter_isr(
                r.topic.as_str(),
                r.partition,
                r.leader,
                r.leader_epoch,
                &r.isr,
            ) {
                Ok(c) => {
                    changes.topics.extend(c.topics);
                    changes.partitions.extend(c.partitions);
                    refused.push(None);
                }
                Err(e) => refused.push(Some(e)),
            }
        }
        let asked: Vec<(TopicName, u32)> = msg
            .0
            .iter()
            .map(|r| (r.topic.clone(), r.partition))
            .collect();
        let answer = move |m: &ClusterMetadata| -> Vec<Result<Vec<BrokerId>, BrokerError>> {
            asked
                .iter()
                .zip(refused)
                .map(|((t, i), e)| match e {
                    Some(e) => Err(e),
                    None => m.partition(t.as_str(), *i).map(|p| p.isr.clone()),
                })
                .collect()
        };
        if changes.topics.is_empty() {
            let out = answer(&self.metadata);
            return AtomicResponse::new(Box::pin(actix::fut::ready(out)));
        }
        let changed: Vec<TopicName> = changes.topics.iter().cloned().collect();
        let persist = self.persist(&next, &changed, &[]);
        let n = msg.0.len();
        AtomicResponse::new(Box::pin(persist.into_actor(self).map(
            move |res, act, _ctx| match res {
                Ok(()) => {
                    act.commit(next, &changes);
                    answer(&act.metadata)
                }
                Err(e) => vec![Err(e); n],
            },
        )))
    }
}

impl Handler<NewLeaderEpoch> for Controller {
    type Result = Atomic<i32>;

    fn handle(&mut self, msg: NewLeaderEpoch, _ctx: &mut Context<Self>) -> Self::Result {
        let (topic, index) = (msg.topic.clone(), msg.partition);
        self.change(
            move |next| {
                let c = next.new_leader_epoch(
                    msg.topic.as_str(),
                    msg.partition,
                    msg.leader,
                    msg.leader_epoch,
                )?;
                Ok((c, Vec::new()))
            },
            move |m| Ok(m.partition(topic.as_str(), index)?.leader_epoch),
        )
    }
}

impl Handler<InitProducerId> for Controller {
    type Result = Atomic<ProducerIdentity>;

    fn handle(&mut self, _msg: InitProducerId, _ctx: &mut Context<Self>) -> Self::Result {
        // The id is persisted with the cluster record before it is handed out, so a restart
        // never hands it out again. Changes run one at a time: the committed counter minus one
        // is the id this request allocated.
        self.change(
            |next| {
                next.allocate_producer_id();
                Ok((Changes::default(), Vec::new()))
            },
            |m| {
                Ok(ProducerIdentity {
                    producer_id: m.next_producer_id - 1,
                    epoch: 0,
                })
            },
        )
    }
}

impl Handler<StopBroker> for Controller {
    type Result = Atomic<()>;

    fn handle(&mut self, msg: StopBroker, _ctx: &mut Context<Self>) -> Self::Result {
        let running = self
            .slots
            .get(msg.0 .0 as usize)
            .is_some_and(|s| s.addr.is_some());
        if !running {
            return fail(BrokerError::BrokerNotAvailable(msg.0));
        }
        self.broker_failed(msg.0)
    }
}

impl Handler<StartBroker> for Controller {
    type Result = Atomic<()>;

    fn handle(&mut self, msg: StartBroker, ctx: &mut Context<Self>) -> Self::Result {
        let id = msg.0;
        let stopped = self
            .slots
            .get(id.0 as usize)
            .is_some_and(|s| s.addr.is_none());
        if !stopped {
            return fail(BrokerError::InvalidClusterConfig(format!(
                "{id} is running or does not exist"
            )));
        }
        if let Err(e) = self.start_broker(id, ctx) {
            return fail(e);
        }
        info!(broker = %id, "broker restarted");
        // Its replicas are followers now (or leaders again, where it was the last of an ISR):
        // tell it about all of them so that its followers start, truncate and catch up.
        let mine: Vec<(TopicName, u32)> = self
            .metadata
            .topics
            .values()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .filter(|p| p.replicas.contains(&id))
                    .map(|p| (t.name.clone(), p.index))
            })
            .collect();
        let mut next = self.metadata.clone();
        let changes = next.broker_returned(id);
        let changed: Vec<TopicName> = changes.topics.iter().cloned().collect();
        let persist = self.persist(&next, &changed, &[]);
        AtomicResponse::new(Box::pin(persist.into_actor(self).map(
            move |res, act, _| {
                res?;
                act.commit(next, &changes);
                if let Some(addr) = act.slots.get(id.0 as usize).and_then(|s| s.addr.as_ref()) {
                    addr.do_send(PartitionsChanged { partitions: mine });
                }
                Ok(())
            },
        )))
    }
}

impl Handler<Heartbeat> for Controller {
    type Result = ();

    fn handle(&mut self, msg: Heartbeat, _ctx: &mut Context<Self>) {
        if let Some(slot) = self.slots.get_mut(msg.broker.0 as usize) {
            if slot.incarnation == msg.incarnation {
                slot.last_heartbeat = now();
            }
        }
    }
}

impl Handler<BrokerGone> for Controller {
    type Result = Atomic<()>;

    fn handle(&mut self, msg: BrokerGone, _ctx: &mut Context<Self>) -> Self::Result {
        let current = self
            .slots
            .get(msg.broker.0 as usize)
            .is_some_and(|s| s.incarnation == msg.incarnation && s.addr.is_some());
        if !current {
            return AtomicResponse::new(Box::pin(actix::fut::ready(Ok(()))));
        }
        self.broker_failed(msg.broker)
    }
}

impl Handler<ShutdownCluster> for Controller {
    type Result = ();

    fn handle(&mut self, _msg: ShutdownCluster, ctx: &mut Context<Self>) {
        self.shutting_down = true;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if let Some(addr) = slot.addr.take() {
                addr.do_send(Shutdown);
            }
            self.directory.set(BrokerId(i as u32), None);
        }
        ctx.stop();
    }
}
