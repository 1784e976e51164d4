//! [`LogStore`]: one LMDB environment per log directory, its reads and its write requests.

use std::fmt;
use std::future::Future;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use eddy_types::PartitionId;
use heed::{RoTxn, WithoutTls};
use kafka_protocol::records::RecordBatchDecoder;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::batch::{self, BatchHeader, Origin, Stamped};
use crate::cache::PLAN_MAX;
use crate::config::{Durability, LogConfig, WriterMode};
use crate::error::LogError;
use crate::keys::{log_key_parts, state_key_partition, user_key, STATE_PREFIX};
use crate::state::{EpochStart, PartitionConfig, PartitionState};
use crate::writer::{
    self, batch_containing, load_state, open_view, partition_range, whole_batch, AppendMode,
    Appended, CommitSample, Dbs, ErrCtx, Health, Msg, Outcome, PreparedAppend, RetentionReport,
    SyncState, View, WriteOp, WriterStats,
};

/// One buffer of record batches to append to one partition.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    /// Target partition; it must have been created.
    pub partition: PartitionId,
    /// One or more RecordBatch v2, back to back, as a Kafka client or a leader sent them.
    pub records: Bytes,
    /// Leader append (assign offsets) or replica append (keep them).
    pub mode: AppendMode,
}

/// Whole batches read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The batches, back to back, exactly as stored; empty when there is nothing to read.
    pub records: Bytes,
    /// Number of batches in `records`.
    pub batches: usize,
    /// One past the last offset in `records` (the `from` offset when `records` is empty): where
    /// the next read continues.
    pub next_offset: u64,
    /// The partition's offsets at the time of the read.
    pub offsets: PartitionOffsets,
}

/// Where a partition's log starts and ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// First offset a reader may ask for.
    pub log_start: u64,
    /// Offset the next appended record gets.
    pub log_end: u64,
    /// Last checkpointed high watermark.
    pub high_watermark: u64,
    /// Bytes of stored batches.
    pub size_bytes: u64,
}

impl PartitionOffsets {
    fn of(st: &PartitionState) -> PartitionOffsets {
        PartitionOffsets {
            log_start: st.log_start,
            log_end: st.log_end,
            high_watermark: st.high_watermark,
            size_bytes: st.size_bytes,
        }
    }
}

/// Counters of the writer thread since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Write transactions committed.
    pub commits: u64,
    /// Requests answered by those commits (appends, checkpoints, ...).
    pub ops: u64,
    /// Bytes appended (batch bytes and metadata values).
    pub bytes: u64,
    /// Time spent applying and committing, in nanoseconds.
    pub commit_nanos: u64,
    /// Background syncs done in periodic mode.
    pub syncs: u64,
    /// Bytes of the data file dropped from the page cache: by the writer as the file grows,
    /// and by reads of records behind the window (see
    /// [`LogConfig::page_cache_window`](crate::LogConfig)).
    pub page_cache_dropped: u64,
    /// Retention calls that looked for the partitions with something due (a call that goes
    /// on with a pass stopped at its step does not look again).
    pub retention_scans: u64,
}

/// The answer to a write request, as soon as its commit is done.
///
/// Await it from async code, or call [`Pending::wait`] from a plain thread.
#[must_use = "a write request is answered through its Pending"]
pub struct Pending<T> {
    state: PendingState<T>,
}

type Finish<T> = Box<dyn FnOnce(Outcome) -> Result<T, LogError> + Send>;

enum PendingState<T> {
    Ready(Option<Result<T, LogError>>),
    Waiting {
        rx: oneshot::Receiver<Result<Outcome, LogError>>,
        finish: Option<Finish<T>>,
    },
}

// `Pending` never pins its fields: the receiver and the boxed closure are `Unpin`, and a `T`
// is only ever moved out, never polled.
impl<T> Unpin for Pending<T> {}

impl<T> fmt::Debug for Pending<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ready = matches!(self.state, PendingState::Ready(_));
        f.debug_struct("Pending").field("ready", &ready).finish()
    }
}

impl<T> Pending<T> {
    fn ready(result: Result<T, LogError>) -> Pending<T> {
        Pending {
            state: PendingState::Ready(Some(result)),
        }
    }

    /// Chains a conversion of the answer, applied when it arrives.
    fn and_then<U>(self, f: impl FnOnce(T) -> Result<U, LogError> + Send + 'static) -> Pending<U>
    where
        T: 'static,
    {
        match self.state {
            PendingState::Ready(r) => {
                Pending::ready(r.unwrap_or(Err(LogError::WriterStopped)).and_then(f))
            }
            PendingState::Waiting { rx, finish } => Pending {
                state: PendingState::Waiting {
                    rx,
                    finish: Some(Box::new(move |outcome| match finish {
                        Some(first) => first(outcome).and_then(f),
                        None => Err(LogError::WriterStopped),
                    })),
                },
            },
        }
    }

    /// Blocks the calling thread until the commit is done. Do not call it from async code:
    /// await the `Pending` there.
    pub fn wait(self) -> Result<T, LogError> {
        match self.state {
            PendingState::Ready(r) => r.unwrap_or(Err(LogError::WriterStopped)),
            PendingState::Waiting { rx, finish } => {
                let outcome = rx.blocking_recv().map_err(|_| LogError::WriterStopped)??;
                match finish {
                    Some(f) => f(outcome),
                    None => Err(LogError::WriterStopped),
                }
            }
        }
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T, LogError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match &mut this.state {
            PendingState::Ready(r) => Poll::Ready(r.take().unwrap_or(Err(LogError::WriterStopped))),
            PendingState::Waiting { rx, finish } => match Pin::new(rx).poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Err(_)) => Poll::Ready(Err(LogError::WriterStopped)),
                Poll::Ready(Ok(Err(e))) => Poll::Ready(Err(e)),
                Poll::Ready(Ok(Ok(outcome))) => match finish.take() {
                    Some(f) => Poll::Ready(f(outcome)),
                    None => Poll::Ready(Err(LogError::WriterStopped)),
                },
            },
        }
    }
}

/// A batch copied piece by piece must have ended exactly where its header said.
fn check_pieces(
    partition: PartitionId,
    batch: u64,
    copied_to: usize,
    batch_end: usize,
) -> Result<(), LogError> {
    if copied_to == batch_end {
        return Ok(());
    }
    Err(LogError::Corrupt {
        what: format!("a batch of partition {partition} before offset {batch}"),
        reason: format!(
            "its pieces end at byte {copied_to} of the read, its header says {batch_end}"
        ),
    })
}

fn unexpected<T>(outcome: Outcome) -> Result<T, LogError> {
    Err(LogError::Corrupt {
        what: "writer reply".into(),
        reason: format!("unexpected outcome {outcome:?}"),
    })
}

/// Stops and joins the writer thread (and the syncer) when the last store handle goes away.
struct WriterHandle {
    /// `None` in [`WriterMode::Inline`].
    tx: Option<Sender<Msg>>,
    thread: Option<JoinHandle<()>>,
    syncer: Option<(Sender<()>, JoinHandle<()>)>,
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Msg::Shutdown);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some((stop, t)) = self.syncer.take() {
            let _ = stop.send(());
            let _ = t.join();
        }
    }
}

struct Inner {
    // Field order matters: the writer (which holds an `Env` clone) is joined before `health`
    // drops, so the environment is closed when the last `LogStore` goes and can be opened
    // again.
    writer: WriterHandle,
    health: Arc<Health>,
    ctx: ErrCtx,
    stats: Arc<WriterStats>,
    path: PathBuf,
    /// The rest of a retention pass that stopped at its step: the pass's time and the
    /// partitions from where it stopped. The next call at the same time goes on from there
    /// rather than finding the due partitions again.
    retention_rest: Arc<RetentionRest>,
    /// Fault injection ([`LogStore::slow_reads`]): milliseconds each read of records waits.
    read_delay_ms: AtomicU64,
    /// Reads that waited so far under [`LogStore::slow_reads`].
    reads_slowed: AtomicU64,
}

type RetentionRest = Mutex<Option<(i64, Vec<PartitionId>)>>;

/// Where the last retention pass stopped (a poisoned lock still holds a valid value).
fn lock_rest(rest: &RetentionRest) -> std::sync::MutexGuard<'_, Option<(i64, Vec<PartitionId>)>> {
    rest.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The partition log of one log directory: every partition replica of one broker, in one LMDB
/// environment.
///
/// Cheap to clone; all clones share the environment and its writer thread. Reads run on the
/// calling thread in short read transactions; writes are queued to the writer thread and
/// answered through [`Pending`] after their group commit.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for LogStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogStore")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl LogStore {
    /// Opens (creating it if needed) the log directory `dir`.
    ///
    /// Reopening is O(1) in the number of partitions: nothing is scanned or loaded.
    pub fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<LogStore, LogError> {
        let dir = dir.as_ref();
        let path = dir.display().to_string();
        let ctx = ErrCtx {
            path: path.clone(),
            map_size: config.map_size,
            failing: Default::default(),
        };
        std::fs::create_dir_all(dir).map_err(|e| ctx.heed(heed::Error::Io(e)))?;
        let view = open_view(dir, &config, false).map_err(|e| ctx.heed(e))?;
        let health = Arc::new(Health::new(view.clone()));
        let stats = Arc::new(WriterStats::default());
        let sync_state = Arc::new(SyncState::default());
        let spawn_error = |e: std::io::Error| LogError::Storage {
            path: path.clone(),
            source: heed::Error::Io(e),
        };
        if config.writer == WriterMode::Inline {
            let writer = WriterHandle {
                tx: None,
                thread: None,
                syncer: None,
            };
            return Ok(LogStore {
                inner: Arc::new(Inner {
                    writer,
                    health,
                    ctx,
                    stats,
                    path: dir.to_path_buf(),
                    retention_rest: Arc::default(),
                    read_delay_ms: AtomicU64::new(0),
                    reads_slowed: AtomicU64::new(0),
                }),
            });
        }
        let (tx, rx) = mpsc::channel();
        let thread = {
            let (health, ctx, stats, sync_state) = (
                health.clone(),
                ctx.clone(),
                stats.clone(),
                sync_state.clone(),
            );
            let config = config.clone();
            let dir = dir.to_path_buf();
            std::thread::Builder::new()
                .name("eddy-log-writer".into())
                .spawn(move || writer::run(view, health, dir, config, ctx, stats, sync_state, rx))
                .map_err(spawn_error)?
        };
        let mut handle = WriterHandle {
            tx: Some(tx),
            thread: Some(thread),
            syncer: None,
        };
        if let Durability::Periodic { interval } = config.durability {
            let (stop, stop_rx) = mpsc::channel();
            let (health, ctx, stats) = (health.clone(), ctx.clone(), stats.clone());
            // On failure `handle` drops here and stops the writer.
            let t = std::thread::Builder::new()
                .name("eddy-log-syncer".into())
                .spawn(move || {
                    writer::run_syncer(health, interval, ctx, stats, sync_state, stop_rx)
                })
                .map_err(spawn_error)?;
            handle.syncer = Some((stop, t));
        }
        Ok(LogStore {
            inner: Arc::new(Inner {
                writer: handle,
                health,
                ctx,
                stats,
                path: dir.to_path_buf(),
                retention_rest: Arc::default(),
                read_delay_ms: AtomicU64::new(0),
                reads_slowed: AtomicU64::new(0),
            }),
        })
    }

    /// The log directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn submit<T>(
        &self,
        op: WriteOp,
        finish: impl FnOnce(Outcome) -> Result<T, LogError> + Send + 'static,
    ) -> Pending<T> {
        if let Some(e) = self.failure() {
            return Pending::ready(Err(e));
        }
        let Some(tx) = &self.inner.writer.tx else {
            let inner = &*self.inner;
            let outcome = self.view().and_then(|v| {
                writer::commit_now(
                    &v.env,
                    &v.dbs,
                    v.cache.as_deref(),
                    &inner.ctx,
                    &inner.stats,
                    op,
                )
            });
            return Pending::ready(outcome.and_then(finish));
        };
        let (reply, rx) = oneshot::channel();
        if tx.send(Msg::Op(op, reply)).is_err() {
            return Pending::ready(Err(LogError::WriterStopped));
        }
        Pending {
            state: PendingState::Waiting {
                rx,
                finish: Some(Box::new(finish)),
            },
        }
    }

    fn submit_done(&self, op: WriteOp) -> Pending<()> {
        self.submit(op, |o| match o {
            Outcome::Done => Ok(()),
            other => unexpected(other),
        })
    }

    fn submit_offset(&self, op: WriteOp) -> Pending<u64> {
        self.submit(op, |o| match o {
            Outcome::Offset(off) => Ok(off),
            other => unexpected(other),
        })
    }

    /// Appends buffers to one or many partitions in one commit, answering each buffer on its own.
    ///
    /// Each buffer is validated (lengths, magic, CRC-32C, counts) on the calling thread; a bad
    /// one is refused with [`LogError::InvalidBatch`] and nothing of it is written, while the
    /// others go on. The `Pending` resolves once the commit holding them is durable (per
    /// [`Durability`]).
    pub fn append(&self, requests: Vec<AppendRequest>) -> Pending<Vec<Result<Appended, LogError>>> {
        let n = requests.len();
        let mut refused: Vec<(usize, LogError)> = Vec::new();
        let mut prepared = Vec::with_capacity(n);
        for (i, r) in requests.into_iter().enumerate() {
            let origin = match r.mode {
                AppendMode::Leader { .. } => Origin::Producer,
                AppendMode::Replica => Origin::Replica,
            };
            match batch::validate(&r.records, origin) {
                Ok(spans) => prepared.push(PreparedAppend {
                    partition: r.partition,
                    bytes: r.records,
                    spans,
                    mode: r.mode,
                }),
                Err(e) => refused.push((i, e)),
            }
        }
        let merge = move |mut written: Vec<Result<Appended, LogError>>| {
            if refused.is_empty() {
                return written;
            }
            let mut out = Vec::with_capacity(n);
            let mut refused = refused.into_iter().peekable();
            let mut written = written.drain(..);
            for i in 0..n {
                match refused.peek() {
                    Some((j, _)) if *j == i => {
                        if let Some((_, e)) = refused.next() {
                            out.push(Err(e));
                        }
                    }
                    _ => out.push(written.next().unwrap_or(Err(LogError::WriterStopped))),
                }
            }
            out
        };
        if prepared.is_empty() {
            return Pending::ready(Ok(merge(Vec::new())));
        }
        self.submit(WriteOp::Append(prepared), move |o| match o {
            Outcome::Appended(written) => Ok(merge(written)),
            other => unexpected(other),
        })
    }

    /// Appends one buffer to one partition.
    pub fn append_one(
        &self,
        partition: PartitionId,
        records: Bytes,
        mode: AppendMode,
    ) -> Pending<Appended> {
        self.append(vec![AppendRequest {
            partition,
            records,
            mode,
        }])
        .and_then(|mut all| all.pop().unwrap_or(Err(LogError::WriterStopped)))
    }

    /// Fault injection for tests and drills: while `on`, every commit fails as on a full disk
    /// ([`LogError::DiskFull`]) and writes nothing; reads go on.
    pub fn fail_commits(&self, on: bool) {
        self.inner.ctx.failing.store(on, Ordering::Relaxed);
    }

    /// Fault injection for tests and drills: while `delay` is not zero, every read of records
    /// ([`LogStore::read`] and the reads like it, [`LogStore::batch_headers`],
    /// [`LogStore::offset_for_timestamp`]) first waits that long on its thread, as a read
    /// from a slow disk does. Zero turns it off.
    pub fn slow_reads(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.inner.read_delay_ms.store(ms, Ordering::Relaxed);
    }

    /// The wait of [`LogStore::slow_reads`], if on.
    fn slow_read(&self) {
        let delay = self.inner.read_delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            self.inner.reads_slowed.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(delay));
        }
    }

    /// How many reads have started to wait under [`LogStore::slow_reads`].
    pub fn slowed_reads(&self) -> u64 {
        self.inner.reads_slowed.load(Ordering::Relaxed)
    }

    /// Appends batches a leader has already checked and stamped ([`Stamped`]): they are
    /// written only if the partition's log ends at their base offset, else refused with
    /// [`LogError::NonContiguousReplicaAppend`] and nothing is written. So once one append
    /// of a leader fails, the ones it queued after it fail too, and the log never has a gap.
    pub fn append_stamped(&self, partition: PartitionId, stamped: Stamped) -> Pending<Appended> {
        let prepared = PreparedAppend {
            partition,
            bytes: stamped.bytes,
            spans: stamped.spans,
            mode: AppendMode::Replica,
        };
        self.submit(WriteOp::Append(vec![prepared]), |o| match o {
            Outcome::Appended(mut written) => written.pop().unwrap_or(Err(LogError::WriterStopped)),
            other => unexpected(other),
        })
    }

    /// [`append_stamped`](Self::append_stamped) for many partitions (or many appends of one,
    /// in order) in one request: one commit for all of them, each answered on its own, in
    /// the order given. What a produce request touching thousands of partitions needs: one
    /// message to the writer and one group commit, not one per partition.
    pub fn append_stamped_many(
        &self,
        appends: Vec<(PartitionId, Stamped)>,
    ) -> Pending<Vec<Result<Appended, LogError>>> {
        if appends.is_empty() {
            return Pending::ready(Ok(Vec::new()));
        }
        let prepared = appends
            .into_iter()
            .map(|(partition, stamped)| PreparedAppend {
                partition,
                bytes: stamped.bytes,
                spans: stamped.spans,
                mode: AppendMode::Replica,
            })
            .collect();
        self.submit(WriteOp::Append(prepared), |o| match o {
            Outcome::Appended(written) => Ok(written),
            other => unexpected(other),
        })
    }

    /// Registers partitions, all or none: fails with [`LogError::PartitionExists`] if any exists.
    pub fn create_partitions(
        &self,
        partitions: Vec<(PartitionId, PartitionConfig)>,
    ) -> Pending<()> {
        self.submit_done(WriteOp::CreatePartitions(partitions))
    }

    /// Removes partitions: they are gone from this commit on (reads and appends answer
    /// [`LogError::UnknownPartition`]). Their batches are freed by later
    /// [`enforce_retention`](Self::enforce_retention) calls, at most
    /// [`RETENTION_STEP_BYTES`](crate::RETENTION_STEP_BYTES) a call, so that removing a large
    /// partition never holds the other partitions' appends for long; the removal resumes
    /// after a restart. Unknown ids are ignored.
    pub fn delete_partitions(&self, partitions: Vec<PartitionId>) -> Pending<()> {
        self.submit_done(WriteOp::DeletePartitions(partitions))
    }

    /// Replaces a partition's retention settings.
    pub fn set_config(&self, partition: PartitionId, config: PartitionConfig) -> Pending<()> {
        self.submit_done(WriteOp::SetConfig(partition, config))
    }

    /// Persists high watermarks (each clamped to its partition's log range). Unknown partitions
    /// are skipped.
    pub fn checkpoint_high_watermarks(&self, marks: Vec<(PartitionId, u64)>) -> Pending<()> {
        self.submit_done(WriteOp::CheckpointHighWatermarks(marks))
    }

    /// Removes every record at or after `offset` (whole batches: a batch that holds `offset`
    /// goes too) and answers the new log end. Used when a follower's tail diverges from its
    /// leader's.
    pub fn truncate_to(&self, partition: PartitionId, offset: u64) -> Pending<u64> {
        self.submit_offset(WriteOp::TruncateTo(partition, offset))
    }

    /// Moves the log start to `offset` (Kafka's DeleteRecords) and removes the batches wholly
    /// before it: at most [`RETENTION_STEP_BYTES`](crate::RETENTION_STEP_BYTES) of them in this
    /// commit, the rest in later [`enforce_retention`](Self::enforce_retention) calls (reads
    /// below `offset` fail at once). Answers the new log start. `offset` past the log end is
    /// refused.
    pub fn delete_records_before(&self, partition: PartitionId, offset: u64) -> Pending<u64> {
        self.submit_offset(WriteOp::DeleteRecordsBefore(partition, offset))
    }

    /// Applies every partition's retention settings at wall-clock time `now_ms`, removing whole
    /// batches below the high watermark. Batches without timestamps (max timestamp -1) count as
    /// expired. Also removes what deleted partitions and DeleteRecords left, whatever the
    /// settings.
    ///
    /// One call removes at most [`RETENTION_STEP_BYTES`](crate::RETENTION_STEP_BYTES) (and at
    /// least one batch); [`RetentionReport::more`] then asks for another call. Between calls
    /// the writer commits other requests as usual.
    ///
    /// The partitions with something due are found in a read transaction on a thread of its
    /// own; the writer then visits only those.
    pub fn enforce_retention(&self, now_ms: i64) -> Pending<RetentionReport> {
        let rest = self.inner.retention_rest.clone();
        let report = move |o: Outcome| -> Result<RetentionReport, LogError> {
            match o {
                Outcome::Retention(r, left) => {
                    let next = (r.more && !left.is_empty()).then_some((now_ms, left));
                    *lock_rest(&rest) = next;
                    Ok(r)
                }
                other => unexpected(other),
            }
        };
        if let Some(e) = self.failure() {
            return Pending::ready(Err(e));
        }
        // The same pass going on: from where it stopped, without a new scan.
        let going_on = lock_rest(&self.inner.retention_rest)
            .take()
            .filter(|(at, _)| *at == now_ms);
        if let Some((_, partitions)) = going_on {
            return self.submit(WriteOp::Retention { now_ms, partitions }, report);
        }
        self.inner
            .stats
            .retention_scans
            .fetch_add(1, Ordering::Relaxed);
        let scan = {
            let (health, ctx) = (self.inner.health.clone(), self.inner.ctx.clone());
            move || -> Result<Vec<PartitionId>, LogError> {
                let view = health.view(&ctx)?;
                let txn = view.read_txn(&ctx)?;
                writer::retention_due(&txn, &view.dbs, &ctx, now_ms)
            }
        };
        let Some(tx) = self.inner.writer.tx.clone() else {
            // Inline mode: scan and commit on the calling thread.
            return match scan() {
                Ok(partitions) if partitions.is_empty() => {
                    Pending::ready(Ok(RetentionReport::default()))
                }
                Ok(partitions) => self.submit(WriteOp::Retention { now_ms, partitions }, report),
                Err(e) => Pending::ready(Err(e)),
            };
        };
        let (reply, rx) = oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("eddy-log-retention".into())
            .spawn(move || match scan() {
                Ok(partitions) if partitions.is_empty() => {
                    let _ = reply.send(Ok(Outcome::Retention(
                        RetentionReport::default(),
                        Vec::new(),
                    )));
                }
                Ok(partitions) => {
                    // A writer gone drops `reply`: the caller gets `WriterStopped`.
                    let _ = tx.send(Msg::Op(WriteOp::Retention { now_ms, partitions }, reply));
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            });
        if let Err(e) = spawned {
            return Pending::ready(Err(LogError::Storage {
                path: self.inner.ctx.path.clone(),
                source: heed::Error::Io(e),
            }));
        }
        Pending {
            state: PendingState::Waiting {
                rx,
                finish: Some(Box::new(report)),
            },
        }
    }

    /// Stores metadata records (serialised with rmp-serde), all in one commit.
    pub fn put_meta<T: Serialize>(&self, records: &[(&[u8], &T)]) -> Pending<()> {
        let mut kvs = Vec::with_capacity(records.len());
        for (k, v) in records {
            match rmp_serde::to_vec_named(v) {
                Ok(raw) => kvs.push((k.to_vec(), Some(raw))),
                Err(source) => {
                    return Pending::ready(Err(LogError::Encode {
                        key: String::from_utf8_lossy(k).into_owned(),
                        source,
                    }))
                }
            }
        }
        self.submit_done(WriteOp::PutMeta(kvs))
    }

    /// Deletes metadata records.
    pub fn delete_meta(&self, keys: &[&[u8]]) -> Pending<()> {
        self.submit_done(WriteOp::PutMeta(
            keys.iter().map(|k| (k.to_vec(), None)).collect(),
        ))
    }

    /// Makes every commit so far durable now (a no-op cost in `Sync` mode).
    pub fn flush(&self) -> Pending<()> {
        self.submit_done(WriteOp::Flush)
    }

    /// The environment to read from (the read-only reopening, once the writable one failed).
    fn view(&self) -> Result<View, LogError> {
        self.inner.health.view(&self.inner.ctx)
    }

    fn state(
        &self,
        dbs: &Dbs,
        txn: &RoTxn<'_, WithoutTls>,
        partition: PartitionId,
    ) -> Result<PartitionState, LogError> {
        load_state(txn, dbs, partition, &self.inner.ctx)?
            .ok_or(LogError::UnknownPartition(partition))
    }

    /// Tells whether a write has failed this directory's environment: it then serves reads
    /// only (reopened read-only) and refuses every write, until the process restarts.
    pub fn failure(&self) -> Option<LogError> {
        self.inner.health.failure(&self.inner.ctx)
    }

    /// Reads whole batches from `from` up to the log end, at most `max_bytes` of them except
    /// that the first batch is always returned whole. The first batch may start before `from`.
    pub fn read(
        &self,
        partition: PartitionId,
        from: u64,
        max_bytes: usize,
    ) -> Result<Fetched, LogError> {
        self.read_until(partition, from, max_bytes, u64::MAX)
    }

    /// Like [`LogStore::read`], but returns only batches that end before `until` (the high
    /// watermark, for consumers).
    pub fn read_until(
        &self,
        partition: PartitionId,
        from: u64,
        max_bytes: usize,
        until: u64,
    ) -> Result<Fetched, LogError> {
        self.read_bounded(partition, from, max_bytes, until, true)
    }

    /// Like [`LogStore::read_until`], but never more than `max_bytes`: a first batch larger
    /// than that is not returned (`batches` 0, `next_offset` = `from`), and with `max_bytes` 0
    /// nothing is read. Kafka serves the partitions of a fetch this way after the first one
    /// that returned records, so that the whole answer stays within the fetch's limit.
    pub fn read_capped(
        &self,
        partition: PartitionId,
        from: u64,
        max_bytes: usize,
        until: u64,
    ) -> Result<Fetched, LogError> {
        self.read_bounded(partition, from, max_bytes, until, false)
    }

    /// `first_whole`: the first batch goes even if it is larger than `max_bytes`.
    fn read_bounded(
        &self,
        partition: PartitionId,
        from: u64,
        max_bytes: usize,
        until: u64,
        first_whole: bool,
    ) -> Result<Fetched, LogError> {
        self.slow_read();
        let view = self.view()?;
        let txn = view.read_txn(&self.inner.ctx)?;
        let st = self.state(&view.dbs, &txn, partition)?;
        let offsets = PartitionOffsets::of(&st);
        if from < st.log_start || from > st.log_end {
            return Err(LogError::OffsetOutOfRange {
                partition,
                offset: from,
                log_start: st.log_start,
                log_end: st.log_end,
            });
        }
        let upper = if first_whole || max_bytes > 0 {
            until.min(st.log_end)
        } else {
            from
        };
        // The pages this read copies from behind the page-cache window: read ahead, and
        // dropped once copied.
        let mut pages = view.cache.as_deref().map(|c| c.read());
        let mut out = BytesMut::new();
        let mut batches = 0;
        let mut next_offset = from;
        if from < upper {
            let dbs = &view.dbs;
            let ctx = &self.inner.ctx;
            let start = batch_containing(&txn, dbs, ctx, partition, from)?.unwrap_or(from);
            let (lo, hi) = partition_range(partition, start);
            let mut first = true;
            let iter = dbs
                .log
                .range(&txn, &(Bound::Included(&lo[..]), Bound::Included(&hi[..])))
                .map_err(|e| ctx.heed(e))?;
            // Whether the pieces that follow belong to a batch being copied.
            let mut copying = false;
            // Where the batch being copied ends in `out`.
            let mut batch_end = 0;
            for kv in iter {
                let (k, v) = kv.map_err(|e| ctx.heed(e))?;
                if let Some(b) = &mut pages {
                    if first && b.is_behind(v) {
                        // Behind the window: first the pieces this read will copy, read
                        // ahead together (about `max_bytes` of them; their pages are not
                        // touched yet). Reads within the window skip this walk.
                        let plan = dbs
                            .log
                            .range(&txn, &(Bound::Included(&lo[..]), Bound::Included(&hi[..])))
                            .map_err(|e| ctx.heed(e))?;
                        let mut planned = 0usize;
                        for kv in plan {
                            let (_, v) = kv.map_err(|e| ctx.heed(e))?;
                            if planned > max_bytes.min(PLAN_MAX) || !b.plan(v) {
                                break;
                            }
                            planned += v.len();
                        }
                        b.read_ahead();
                    }
                    b.touched(v);
                }
                first = false;
                let (base, index) =
                    log_key_parts(k, partition).ok_or_else(|| LogError::Corrupt {
                        what: format!("log key of partition {partition}"),
                        reason: "key of another partition inside its range".into(),
                    })?;
                if index > 0 {
                    if copying {
                        out.extend_from_slice(v);
                    }
                    continue;
                }
                check_pieces(partition, base, out.len(), batch_end)?;
                copying = false;
                let header = BatchHeader::parse(v).map_err(|e| LogError::Corrupt {
                    what: format!("batch {base} of partition {partition}"),
                    reason: e.to_string(),
                })?;
                let total = header.total_len();
                let last = base + header.last_offset_delta as u64;
                if last < from {
                    continue;
                }
                if last >= upper || ((batches > 0 || !first_whole) && out.len() + total > max_bytes)
                {
                    break;
                }
                out.reserve(total);
                batch_end = out.len() + total;
                out.extend_from_slice(v);
                copying = true;
                batches += 1;
                next_offset = last + 1;
            }
            if copying {
                check_pieces(partition, next_offset, out.len(), batch_end)?;
            }
        }
        if let Some(b) = pages {
            let dropped = b.finish();
            if dropped > 0 {
                self.inner
                    .stats
                    .page_cache_dropped
                    .fetch_add(dropped, Ordering::Relaxed);
            }
        }
        Ok(Fetched {
            records: out.freeze(),
            batches,
            next_offset,
            offsets,
        })
    }

    /// Log start, log end, checkpointed high watermark and size of a partition.
    pub fn offsets(&self, partition: PartitionId) -> Result<PartitionOffsets, LogError> {
        let view = self.view()?;
        let txn = view.read_txn(&self.inner.ctx)?;
        Ok(PartitionOffsets::of(
            &self.state(&view.dbs, &txn, partition)?,
        ))
    }

    /// A partition's retention settings.
    pub fn config(&self, partition: PartitionId) -> Result<PartitionConfig, LogError> {
        let view = self.view()?;
        let txn = view.read_txn(&self.inner.ctx)?;
        Ok(self.state(&view.dbs, &txn, partition)?.config)
    }

    /// The leader epochs seen in a partition and where each starts.
    pub fn epochs(&self, partition: PartitionId) -> Result<Vec<EpochStart>, LogError> {
        let view = self.view()?;
        let txn = view.read_txn(&self.inner.ctx)?;
        Ok(self.state(&view.dbs, &txn, partition)?.epochs)
    }

    /// Kafka's OffsetForLeaderEpoch: the largest epoch not above `epoch` and the offset where
    /// the next epoch starts (the log end for the latest, and for an `epoch` above every epoch
    /// of the log). `None` when the log has no epochs (nothing was ever appended).
    pub fn end_offset_for_epoch(
        &self,
        partition: PartitionId,
        epoch: i32,
    ) -> Result<Option<(i32, u64)>, LogError> {
        let view = self.view()?;
        let txn = view.read_txn(&self.inner.ctx)?;
        Ok(self
            .state(&view.dbs, &txn, partition)?
            .end_offset_for_epoch(epoch))
    }

    /// The headers of the partition's batches from the one holding `from` to the log end, in
    /// order. Only each batch's first page is read (a batch of a megabyte is one page here,
    /// not a megabyte): what rebuilding an idempotent producer's state after a restart needs.
    pub fn batch_headers(
        &self,
        partition: PartitionId,
        from: u64,
    ) -> Result<Vec<BatchHeader>, LogError> {
        self.slow_read();
        let view = self.view()?;
        let txn = view.read_txn(&self.inner.ctx)?;
        let st = self.state(&view.dbs, &txn, partition)?;
        let (dbs, ctx) = (&view.dbs, &self.inner.ctx);
        let from = from.max(st.log_start);
        if from >= st.log_end {
            return Ok(Vec::new());
        }
        let start = batch_containing(&txn, dbs, ctx, partition, from)?.unwrap_or(from);
        let headers = writer::batch_summaries(&txn, dbs, ctx, partition, start)?
            .map(|entry| entry.map(|(_, header, _)| header))
            .collect();
        headers
    }

    /// The first record whose timestamp is at least `timestamp`, as `(offset, timestamp)`, or
    /// `None` if every record is older (Kafka's ListOffsets by time).
    ///
    /// Scans batch headers from the log start and decodes only the one batch that holds the
    /// answer.
    pub fn offset_for_timestamp(
        &self,
        partition: PartitionId,
        timestamp: i64,
    ) -> Result<Option<(u64, i64)>, LogError> {
        self.slow_read();
        let view = self.view()?;
        let txn = view.read_txn(&self.inner.ctx)?;
        let st = self.state(&view.dbs, &txn, partition)?;
        let dbs = &view.dbs;
        let ctx = &self.inner.ctx;
        let start = batch_containing(&txn, dbs, ctx, partition, st.log_start)?.unwrap_or(0);
        let (lo, hi) = partition_range(partition, start);
        let iter = dbs
            .log
            .range(&txn, &(Bound::Included(&lo[..]), Bound::Included(&hi[..])))
            .map_err(|e| ctx.heed(e))?;
        for kv in iter {
            let (k, v) = kv.map_err(|e| ctx.heed(e))?;
            let Some((base, 0)) = log_key_parts(k, partition) else {
                continue;
            };
            let header = BatchHeader::parse(v)?;
            if header.max_timestamp < timestamp {
                continue;
            }
            let mut buf = Bytes::copy_from_slice(&whole_batch(&txn, dbs, ctx, partition, base, v)?);
            let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| LogError::Corrupt {
                what: format!("batch {} of partition {partition}", header.base_offset),
                reason: e.to_string(),
            })?;
            let hit = set.records.iter().find(|r| {
                r.timestamp >= timestamp && r.offset >= 0 && r.offset as u64 >= st.log_start
            });
            if let Some(r) = hit {
                return Ok(Some((r.offset as u64, r.timestamp)));
            }
        }
        Ok(None)
    }

    /// Ids of every partition in this directory, ascending.
    pub fn partitions(&self) -> Result<Vec<PartitionId>, LogError> {
        let mut out = Vec::new();
        self.scan_states(|p, _| out.push(p))?;
        Ok(out)
    }

    /// The checkpointed high watermark of every partition in this directory, ascending by
    /// id, read in one transaction. A partition whose state does not decode is left out (and
    /// reported by any other read of it).
    pub fn high_watermarks(&self) -> Result<Vec<(PartitionId, u64)>, LogError> {
        let mut out = Vec::new();
        self.scan_states(|p, raw| {
            if let Ok(st) = rmp_serde::from_slice::<crate::state::PartitionState>(raw) {
                out.push((p, st.high_watermark));
            }
        })?;
        Ok(out)
    }

    /// Calls `f` with every partition's id and encoded state, ascending, in one read
    /// transaction.
    fn scan_states(&self, mut f: impl FnMut(PartitionId, &[u8])) -> Result<(), LogError> {
        let view = self.view()?;
        let txn = view.read_txn(&self.inner.ctx)?;
        let ctx = &self.inner.ctx;
        let iter = view
            .dbs
            .meta
            .prefix_iter(&txn, STATE_PREFIX)
            .map_err(|e| ctx.heed(e))?;
        for kv in iter {
            let (k, v) = kv.map_err(|e| ctx.heed(e))?;
            if let Some(p) = state_key_partition(k) {
                f(p, v);
            }
        }
        Ok(())
    }

    /// Reads a metadata record.
    pub fn get_meta<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, LogError> {
        let view = self.view()?;
        let txn = view.read_txn(&self.inner.ctx)?;
        let ctx = &self.inner.ctx;
        let raw = view
            .dbs
            .meta
            .get(&txn, &user_key(key))
            .map_err(|e| ctx.heed(e))?;
        raw.map(|r| {
            rmp_serde::from_slice(r).map_err(|e| LogError::Corrupt {
                what: format!("metadata record {}", String::from_utf8_lossy(key)),
                reason: e.to_string(),
            })
        })
        .transpose()
    }

    /// Reads every metadata record whose key starts with `prefix`, in key order.
    pub fn scan_meta<T: DeserializeOwned>(
        &self,
        prefix: &[u8],
    ) -> Result<Vec<(Vec<u8>, T)>, LogError> {
        let view = self.view()?;
        let txn = view.read_txn(&self.inner.ctx)?;
        let ctx = &self.inner.ctx;
        let iter = view
            .dbs
            .meta
            .prefix_iter(&txn, &user_key(prefix))
            .map_err(|e| ctx.heed(e))?;
        let mut out = Vec::new();
        for kv in iter {
            let (k, v) = kv.map_err(|e| ctx.heed(e))?;
            let key = k[1..].to_vec();
            let value = rmp_serde::from_slice(v).map_err(|e| LogError::Corrupt {
                what: format!("metadata record {}", String::from_utf8_lossy(&key)),
                reason: e.to_string(),
            })?;
            out.push((key, value));
        }
        Ok(out)
    }

    /// Counters of the writer thread.
    pub fn stats(&self) -> LogStats {
        let s = &self.inner.stats;
        LogStats {
            commits: s.commits.load(Ordering::Relaxed),
            ops: s.ops.load(Ordering::Relaxed),
            bytes: s.bytes.load(Ordering::Relaxed),
            commit_nanos: s.commit_nanos.load(Ordering::Relaxed),
            syncs: s.syncs.load(Ordering::Relaxed),
            page_cache_dropped: s.page_cache_dropped.load(Ordering::Relaxed),
            retention_scans: s.retention_scans.load(Ordering::Relaxed),
        }
    }

    /// Each commit since the last call (at most [`COMMITS_KEPT`](crate::COMMITS_KEPT) of
    /// them; [`LogStore::stats`] counts all), oldest first: per-commit times and sizes for a
    /// histogram, where `stats` only gives sums.
    pub fn take_commits(&self) -> Vec<CommitSample> {
        let mut recent = self
            .inner
            .stats
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::mem::take(&mut *recent)
    }

    /// Bytes the environment's data file takes on disk.
    pub fn disk_size(&self) -> Result<u64, LogError> {
        self.view()?
            .env
            .real_disk_size()
            .map_err(|e| self.inner.ctx.heed(e))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a panic is a failure report

    use super::*;
    use crate::keys::{log_key, piece_key, state_key};
    use crate::testing::batch_bytes;

    /// Logs written before batches were stored in pieces hold each batch whole under its
    /// head key: they read back the same.
    #[test]
    fn test_a_batch_stored_whole_reads_like_one_in_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(dir.path(), LogConfig::default()).unwrap();
        let (old, new) = (PartitionId(1), PartitionId(2));
        log.create_partitions(vec![
            (old, PartitionConfig::default()),
            (new, PartitionConfig::default()),
        ])
        .wait()
        .unwrap();
        let leader = AppendMode::Leader { leader_epoch: 0 };
        let a = batch_bytes(1, 0, 10_000);
        let b = batch_bytes(1, 1, 100);
        log.append_one(new, a.clone(), leader).wait().unwrap();
        log.append_one(new, b.clone(), leader).wait().unwrap();
        let stored = log.read(new, 0, usize::MAX).unwrap();

        // The same state and bytes, written the old way.
        let view = log.view().unwrap();
        let piece = view.dbs.piece;
        assert!(a.len() > 2 * piece);
        let mut txn = view.env.write_txn().unwrap();
        let raw = view
            .dbs
            .meta
            .get(&txn, &state_key(new))
            .unwrap()
            .unwrap()
            .to_vec();
        view.dbs.meta.put(&mut txn, &state_key(old), &raw).unwrap();
        let (first, second) = stored.records.split_at(a.len());
        view.dbs.log.put(&mut txn, &log_key(old, 0), first).unwrap();
        view.dbs
            .log
            .put(&mut txn, &log_key(old, 1), second)
            .unwrap();
        txn.commit().unwrap();
        // And the new way holds the big batch in pieces.
        let txn = view.env.read_txn().unwrap();
        let head = view.dbs.log.get(&txn, &log_key(new, 0)).unwrap().unwrap();
        assert_eq!(head.len(), piece);
        assert!(view
            .dbs
            .log
            .get(&txn, &piece_key(new, 0, 2))
            .unwrap()
            .is_some());
        drop(txn);

        let whole = log.read(old, 0, usize::MAX).unwrap();
        assert_eq!(
            (whole.records.clone(), whole.batches),
            (stored.records.clone(), 2)
        );
        assert_eq!(log.read(old, 1, 1).unwrap().records, second);
        assert_eq!(log.offset_for_timestamp(old, 0).unwrap(), Some((0, 0)));
        assert_eq!(log.truncate_to(old, 1).wait().unwrap(), 1);
        assert_eq!(log.read(old, 0, usize::MAX).unwrap().records, first);
    }

    #[test]
    fn test_batch_headers_start_at_the_batch_holding_the_offset_and_skip_the_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogStore::open(dir.path(), LogConfig::default()).unwrap();
        let p = PartitionId(7);
        log.create_partitions(vec![(p, PartitionConfig::default())])
            .wait()
            .unwrap();
        let leader = AppendMode::Leader { leader_epoch: 0 };
        // Offsets 0-2, 3 (a batch stored in pieces), 4-5.
        for (count, len) in [(3, 10), (1, 3 * log.view().unwrap().dbs.piece), (2, 10)] {
            log.append_one(p, batch_bytes(count, 0, len), leader)
                .wait()
                .unwrap();
        }
        let bases = |from| -> Vec<(i64, i32)> {
            log.batch_headers(p, from)
                .unwrap()
                .iter()
                .map(|h| (h.base_offset, h.last_offset_delta))
                .collect()
        };
        assert_eq!(bases(0), [(0, 2), (3, 0), (4, 1)]);
        assert_eq!(
            bases(1),
            [(0, 2), (3, 0), (4, 1)],
            "the batch holding offset 1"
        );
        assert_eq!(bases(3), [(3, 0), (4, 1)]);
        assert_eq!(bases(5), [(4, 1)]);
        assert_eq!(bases(6), []);
        // Nothing before the log start.
        log.delete_records_before(p, 3).wait().unwrap();
        assert_eq!(bases(0), [(3, 0), (4, 1)]);
    }
}
