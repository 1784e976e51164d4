//! The writer thread of one log directory: group commit of everything that changes the log.
//!
//! LMDB allows one write transaction per environment at a time and heed's `RwTxn` is not
//! `Send`, so each environment gets one dedicated OS thread that owns all writes. Requests queue
//! on a channel; the thread takes every request that is waiting (up to
//! [`LogConfig::max_commit_bytes`](crate::LogConfig)), applies them in one transaction, commits
//! once and answers them all. Requests that arrive while a commit is being fsync'd form the next
//! group, so the commit size grows with the load by itself.
//!
//! Each request is applied so that a refused request writes nothing: every check happens before
//! the first put. A storage failure (map full, disk full, I/O error) aborts the whole group;
//! its requests are then retried one transaction each, so one oversized request does not fail the
//! requests that happened to share its commit.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use eddy_types::PartitionId;
use heed::types::Bytes as RawBytes;
use heed::{
    CommitOrAbort, Database, Env, EnvFlags, EnvOpenOptions, MdbError, RoTxn, RwTxn, WithoutTls,
};
use std::io::Write;
use tokio::sync::oneshot;
use tracing::{debug, error, info};

use crate::batch::{patch_header, BatchHeader, BatchSpan, HEADER_LEN as BATCH_HEADER_LEN};
use crate::cache::{CacheTrim, PageCache};
use crate::config::{Durability, LogConfig};
use crate::error::LogError;
use crate::keys::{
    deleted_key, deleted_key_partition, log_key, log_key_offset, log_key_parts, piece_key,
    state_key, state_key_partition, trimmed_key, trimmed_key_partition, user_key, DELETED_PREFIX,
    LOG_KEY_LEN, STATE_PREFIX, TRIMMED_PREFIX,
};
use crate::state::{PartitionConfig, PartitionState};

/// The two databases of an environment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dbs {
    pub(crate) log: Database<'static, RawBytes, RawBytes>,
    pub(crate) meta: Database<'static, RawBytes, RawBytes>,
    /// The largest piece of a batch stored under one key: a page less LMDB's page header,
    /// so that every piece is exactly one overflow page.
    ///
    /// LMDB stores a value over half a page in a run of contiguous pages. Batches of up to
    /// a MiB stored whole made every append look for a run of up to 257 free pages; once
    /// retention had freed pages here and there, LMDB merged ever more of its free list to
    /// find one, wrote that list back at every commit and grew the file instead (the soak
    /// run: commits of 0.3 to 2.3 s, 682,609 of 779,714 pages free). One-page pieces take
    /// any free page.
    pub(crate) piece: usize,
}

/// LMDB's page header, which an overflow page's data follows.
const PAGE_HEADER: usize = 16;

/// How a validated buffer is appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendMode {
    /// A leader's append of producer batches: the log assigns offsets from its end and stamps
    /// every batch with `leader_epoch`.
    Leader {
        /// Epoch of the appending leader, written into each batch header.
        leader_epoch: i32,
    },
    /// A follower's append of batches fetched from the leader: offsets and epochs are kept, and
    /// the first batch must start at this replica's log end.
    Replica,
}

/// The answer to one appended buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Offset of the first appended record.
    pub base_offset: u64,
    /// Offset of the last appended record.
    pub last_offset: u64,
    /// The partition's log start offset after the append.
    pub log_start: u64,
}

/// What a retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Partitions that lost at least one batch.
    pub partitions: u64,
    /// Batches removed.
    pub batches: u64,
    /// Bytes removed.
    pub bytes: u64,
    /// The pass stopped at [`RETENTION_STEP_BYTES`] with more to remove: call again.
    pub more: bool,
}

/// The most one retention call removes (in whole batches; at least one batch), so that one
/// commit never frees more than about 500 pages. The batches of a deleted partition go the
/// same way.
///
/// LMDB keeps the pages a transaction frees as one free-list record, and rewrites the part of
/// a record it has started to reuse at every later commit: a pass that freed a gigabyte at
/// once would add megabytes to every commit until the appends had used it up. And every
/// removed piece's page is read (see `delete_read_ahead`), which appends wait behind. With
/// appends to another topic at 1,000 records/s on this project's reference machine, their
/// p99 while retention removed about 1.5 GB per broker: 169 and 2,822 ms in 8 MiB steps, 55
/// and 58 ms in 8 MiB steps read ahead, 14 ms twice in 2 MiB steps read ahead; while a
/// deleted partition of 1.5 GB went: 664, 72 and 18.5 ms (one commit of 33 s before steps).
pub const RETENTION_STEP_BYTES: u64 = 2 << 20;

#[derive(Debug)]
pub(crate) struct PreparedAppend {
    pub(crate) partition: PartitionId,
    pub(crate) bytes: Bytes,
    pub(crate) spans: Vec<BatchSpan>,
    pub(crate) mode: AppendMode,
}

#[derive(Debug)]
pub(crate) enum WriteOp {
    Append(Vec<PreparedAppend>),
    CreatePartitions(Vec<(PartitionId, PartitionConfig)>),
    DeletePartitions(Vec<PartitionId>),
    SetConfig(PartitionId, PartitionConfig),
    CheckpointHighWatermarks(Vec<(PartitionId, u64)>),
    TruncateTo(PartitionId, u64),
    DeleteRecordsBefore(PartitionId, u64),
    /// Retention of `partitions` (the ones [`retention_due`] found with something to remove).
    Retention {
        now_ms: i64,
        partitions: Vec<PartitionId>,
    },
    PutMeta(Vec<(Vec<u8>, Option<Vec<u8>>)>),
    Flush,
}

impl WriteOp {
    /// Bytes this op adds to a commit, for group sizing.
    fn weight(&self) -> usize {
        match self {
            WriteOp::Append(items) => items.iter().map(|i| i.bytes.len()).sum(),
            WriteOp::PutMeta(kvs) => kvs
                .iter()
                .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
                .sum(),
            WriteOp::CreatePartitions(ps) => ps.len() * 64,
            _ => 64,
        }
    }
}

#[derive(Debug)]
pub(crate) enum Outcome {
    Appended(Vec<Result<Appended, LogError>>),
    Done,
    Offset(u64),
    /// What a retention call removed, and the partitions from where it stopped (empty when
    /// it did not stop at its step).
    Retention(RetentionReport, Vec<PartitionId>),
}

pub(crate) type Reply = oneshot::Sender<Result<Outcome, LogError>>;

#[derive(Debug)]
pub(crate) enum Msg {
    Op(WriteOp, Reply),
    Shutdown,
}

/// Counters of the writer, read by [`LogStore::stats`](crate::LogStore::stats).
#[derive(Debug, Default)]
pub(crate) struct WriterStats {
    pub(crate) commits: AtomicU64,
    pub(crate) ops: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) commit_nanos: AtomicU64,
    pub(crate) syncs: AtomicU64,
    pub(crate) page_cache_dropped: AtomicU64,
    pub(crate) retention_scans: AtomicU64,
    /// Each commit since the last [`LogStore::take_commits`](crate::LogStore::take_commits),
    /// up to [`COMMITS_KEPT`].
    pub(crate) recent: Mutex<Vec<CommitSample>>,
}

/// Commits kept between two [`LogStore::take_commits`](crate::LogStore::take_commits) calls;
/// later ones are only counted in [`LogStats`](crate::LogStats).
pub const COMMITS_KEPT: usize = 4096;

/// One commit of the writer: how long it took (applying and committing, fsync included in
/// `Sync` mode) and the bytes it carried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CommitSample {
    /// From the start of the write transaction to the end of its commit.
    pub duration: Duration,
    /// Bytes appended (batch bytes and metadata values).
    pub bytes: u64,
}

/// What the writer needs to name its errors.
#[derive(Debug, Clone)]
pub(crate) struct ErrCtx {
    pub(crate) path: String,
    pub(crate) map_size: usize,
    /// Fault injection: while set, every commit fails as on a full disk.
    pub(crate) failing: Arc<AtomicBool>,
}

impl ErrCtx {
    pub(crate) fn heed(&self, e: heed::Error) -> LogError {
        LogError::from_heed(e, &self.path, self.map_size)
    }
}

/// Reads a partition's state inside any transaction.
pub(crate) fn load_state(
    txn: &RoTxn<'_>,
    dbs: &Dbs,
    partition: PartitionId,
    ctx: &ErrCtx,
) -> Result<Option<PartitionState>, LogError> {
    let Some(raw) = dbs
        .meta
        .get(txn, &state_key(partition))
        .map_err(|e| ctx.heed(e))?
    else {
        return Ok(None);
    };
    rmp_serde::from_slice(raw)
        .map(Some)
        .map_err(|e| LogError::Corrupt {
            what: format!("state of partition {partition}"),
            reason: e.to_string(),
        })
}

/// The batches of `partition` whose base offset is at least `from_base`, in offset order.
pub(crate) fn partition_range(partition: PartitionId, from_base: u64) -> ([u8; 12], [u8; 12]) {
    (log_key(partition, from_base), log_key(partition, u64::MAX))
}

/// An environment and its two databases.
#[derive(Clone)]
pub(crate) struct View {
    pub(crate) env: Env<WithoutTls>,
    pub(crate) dbs: Dbs,
    /// The page-cache window of its data file (`None`: off).
    pub(crate) cache: Option<Arc<PageCache>>,
}

impl View {
    pub(crate) fn read_txn(&self, ctx: &ErrCtx) -> Result<RoTxn<'_, WithoutTls>, LogError> {
        self.env.read_txn().map_err(|e| ctx.heed(e))
    }
}

/// Opens (read-only: without creating anything) the environment of `dir`.
pub(crate) fn open_view(
    dir: &Path,
    config: &LogConfig,
    read_only: bool,
) -> Result<View, heed::Error> {
    let mut options = EnvOpenOptions::new().read_txn_without_tls();
    options
        .map_size(config.map_size)
        .max_dbs(2)
        .max_readers(config.max_readers);
    let mut flags = match config.durability {
        Durability::Sync => EnvFlags::empty(),
        Durability::Periodic { .. } => EnvFlags::NO_SYNC,
    };
    if read_only {
        // On a read-only filesystem LMDB then goes on without its lock file.
        flags |= EnvFlags::READ_ONLY;
    }
    if config.page_cache_window > 0 {
        // A fault in the map reads just its page: reads behind the window ask for their
        // read-ahead themselves (see the `cache` module).
        flags |= EnvFlags::NO_READ_AHEAD;
    }
    // SAFETY: LMDB maps the directory's data file. The mapping stays sound as long as no one
    // modifies the file outside LMDB or breaks its lock file; the directory belongs to this
    // broker alone, heed refuses a second open in this process, and NO_LOCK is not used.
    #[allow(unsafe_code)]
    let env = unsafe {
        options.flags(flags);
        options.open(dir)
    }?;
    let dbs = if read_only {
        let rtxn = env.read_txn()?;
        env.open_databases_and_commit(rtxn, |opener, rtxn| -> Result<_, heed::Error> {
            let log = opener.open_database::<RawBytes, RawBytes>(rtxn, Some("log"))?;
            let meta = opener.open_database::<RawBytes, RawBytes>(rtxn, Some("meta"))?;
            Ok(CommitOrAbort::<_, ()>::Commit((log, meta)))
        })?
        .unwrap_commit()
    } else {
        let wtxn = env.write_txn()?;
        let (log, meta) = env
            .create_databases_and_commit(wtxn, |opener, wtxn| -> Result<_, heed::Error> {
                let log = opener.create_database::<RawBytes, RawBytes>(wtxn, Some("log"))?;
                let meta = opener.create_database::<RawBytes, RawBytes>(wtxn, Some("meta"))?;
                Ok(CommitOrAbort::<_, ()>::Commit((log, meta)))
            })?
            .unwrap_commit();
        (Some(log), Some(meta))
    };
    let page = env.unnamed_database_stat().page_size as usize;
    let cache = PageCache::open(&env, dir, config.page_cache_window).map(Arc::new);
    match dbs {
        (Some(log), Some(meta)) => Ok(View {
            cache,
            env,
            dbs: Dbs {
                log,
                meta,
                piece: page.saturating_sub(PAGE_HEADER).max(BATCH_HEADER_LEN),
            },
        }),
        _ => Err(heed::Error::Mdb(MdbError::NotFound)),
    }
}

/// The environment the store reads from, and whether a write failed it.
///
/// A commit whose meta-page write fails (the disk turned read-only or failed at that moment)
/// leaves LMDB in its fatal state, where every later transaction, reads too, gets
/// `MDB_PANIC`. The writer then closes that environment and reopens it read-only: the
/// broker goes on serving reads of everything committed, and refuses writes until restart.
pub(crate) struct Health {
    view: RwLock<Option<View>>,
    /// Why a write failed the environment; set once (checked on every write, without a lock).
    failed: OnceLock<String>,
}

impl Health {
    pub(crate) fn new(view: View) -> Health {
        Health {
            view: RwLock::new(Some(view)),
            failed: OnceLock::new(),
        }
    }

    pub(crate) fn view(&self, ctx: &ErrCtx) -> Result<View, LogError> {
        let view = self
            .view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match view {
            Some(v) => Ok(v),
            None => Err(self.failure(ctx).unwrap_or(LogError::WriterStopped)),
        }
    }

    pub(crate) fn failure(&self, ctx: &ErrCtx) -> Option<LogError> {
        self.failed.get().map(|reason| LogError::Failed {
            path: ctx.path.clone(),
            reason: reason.clone(),
        })
    }

    /// Closes the failed environment (`own` is the writer's handle of it) and opens it again
    /// read-only.
    fn reopen_read_only(
        &self,
        own: View,
        dir: &Path,
        config: &LogConfig,
        ctx: &ErrCtx,
        reason: String,
    ) {
        error!(path = %ctx.path, %reason, "a write failed the log environment: it serves reads only from now on, and refuses writes until restart");
        let _ = self.failed.set(reason);
        // Readers wait on the lock while the environment is swapped; the ones that hold a
        // handle finish their short transactions (failing) and let it go.
        let mut slot = self.view.write().unwrap_or_else(PoisonError::into_inner);
        drop(own);
        if let Some(View { env, cache, .. }) = slot.take() {
            // The page-cache window holds the environment open too.
            drop(cache);
            if !env
                .prepare_for_closing()
                .wait_timeout(Duration::from_secs(10))
            {
                error!(path = %ctx.path, "the failed environment did not close; reads fail too");
                return;
            }
        }
        match open_view(dir, config, true) {
            Ok(v) => {
                info!(path = %ctx.path, "log environment reopened read-only");
                *slot = Some(v);
            }
            Err(e) => {
                error!(path = %ctx.path, error = %e, "cannot reopen the log environment read-only; reads fail too")
            }
        }
    }
}

/// Tells whether LMDB refuses every transaction of `env` from now on.
fn is_fatal(env: &Env<WithoutTls>) -> bool {
    matches!(env.read_txn(), Err(heed::Error::Mdb(MdbError::Panic)))
}

/// Commit generations shared by the writer and the periodic syncer.
#[derive(Debug, Default)]
pub(crate) struct SyncState {
    /// Bumped after every successful commit.
    committed: AtomicU64,
}

/// Runs the writer loop until `Shutdown` arrives or every sender is gone.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    view: View,
    health: Arc<Health>,
    dir: PathBuf,
    config: LogConfig,
    ctx: ErrCtx,
    stats: Arc<WriterStats>,
    sync_state: Arc<SyncState>,
    rx: Receiver<Msg>,
) {
    let periodic = matches!(config.durability, Durability::Periodic { .. });
    let mut live = Some(view);
    let mut trim = CacheTrim::default();
    let mut running = true;
    while running {
        let Ok(first) = rx.recv() else { break };
        let mut group: Vec<(WriteOp, Reply)> = Vec::new();
        let mut weight = 0usize;
        take(first, &mut group, &mut weight, &mut running);
        let deadline = Instant::now() + config.max_commit_delay;
        while running && weight < config.max_commit_bytes {
            match rx.try_recv() {
                Ok(m) => take(m, &mut group, &mut weight, &mut running),
                Err(TryRecvError::Empty) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    match rx.recv_timeout(left) {
                        Ok(m) => take(m, &mut group, &mut weight, &mut running),
                        Err(_) => break,
                    }
                }
                Err(TryRecvError::Disconnected) => break,
            }
        }
        let Some(View { env, dbs, cache }) = &live else {
            for (_, reply) in group {
                let _ = reply.send(Err(health.failure(&ctx).unwrap_or(LogError::WriterStopped)));
            }
            continue;
        };
        let wants_flush = group.iter().any(|(op, _)| matches!(op, WriteOp::Flush));
        let answers = commit_group(env, dbs, cache.as_deref(), &ctx, &stats, group);
        let failed = answers.iter().find_map(|(_, _, a)| a.as_ref().err());
        if let Some(e) = failed {
            if is_fatal(env) {
                let reason = e.to_string();
                // Everything of the group is answered with its own error; later ones get
                // the failure.
                for (_, reply, answer) in answers {
                    let _ = reply.send(answer);
                }
                if let Some(v) = live.take() {
                    health.reopen_read_only(v, &dir, &config, &ctx, reason);
                }
                continue;
            }
        }
        sync_state.committed.fetch_add(1, Ordering::Release);
        // In periodic mode a flush is answered only after its own sync; the background
        // syncer handles the rest. (In sync mode every commit was fsync'd already.)
        let mut sync_error = None;
        if periodic && wants_flush {
            match env.force_sync() {
                Ok(()) => {
                    stats.syncs.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    error!(path = %ctx.path, error = %e, "flush sync failed");
                    sync_error = Some(e.to_string());
                }
            }
        }
        for (is_flush, reply, answer) in answers {
            let answer = match (&sync_error, is_flush) {
                (Some(e), true) => Err(LogError::Storage {
                    path: ctx.path.clone(),
                    source: heed::Error::Io(std::io::Error::other(format!("sync failed: {e}"))),
                }),
                _ => answer,
            };
            let _ = reply.send(answer);
        }
        // After the answers, so that no request waits for it.
        let dropped = trim.after_commit(cache.as_deref());
        if dropped > 0 {
            stats
                .page_cache_dropped
                .fetch_add(dropped, Ordering::Relaxed);
        }
    }
    if let (true, Some(v)) = (periodic, &live) {
        if let Err(e) = v.env.force_sync() {
            error!(path = %ctx.path, error = %e, "final sync failed");
        }
    }
    debug!(path = %ctx.path, "log writer stopped");
}

/// Periodic mode's background sync: every `interval`, fsyncs the environment if anything was
/// committed since the last sync. It runs on its own thread so that a slow fsync never stalls
/// the writer; a sync covers every commit that finished before it started.
pub(crate) fn run_syncer(
    health: Arc<Health>,
    interval: Duration,
    ctx: ErrCtx,
    stats: Arc<WriterStats>,
    sync_state: Arc<SyncState>,
    stop: Receiver<()>,
) {
    let mut synced = 0u64;
    // A message or a hang-up on `stop` ends the loop.
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(interval) {
        let committed = sync_state.committed.load(Ordering::Acquire);
        if committed == synced {
            continue;
        }
        if health.failure(&ctx).is_some() {
            return;
        }
        // A handle only for this sync: a failed environment can then be closed and reopened.
        let Ok(view) = health.view(&ctx) else {
            return;
        };
        match view.env.force_sync() {
            Ok(()) => {
                synced = committed;
                stats.syncs.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => error!(path = %ctx.path, error = %e, "periodic sync failed"),
        }
    }
}

/// Commits one request on the calling thread ([`WriterMode::Inline`](crate::WriterMode)).
pub(crate) fn commit_now(
    env: &Env<WithoutTls>,
    dbs: &Dbs,
    cache: Option<&PageCache>,
    ctx: &ErrCtx,
    stats: &WriterStats,
    op: WriteOp,
) -> Result<Outcome, LogError> {
    let (reply, mut rx) = oneshot::channel();
    for (_, reply, answer) in commit_group(env, dbs, cache, ctx, stats, vec![(op, reply)]) {
        let _ = reply.send(answer);
    }
    rx.try_recv().map_err(|_| LogError::WriterStopped)?
}

/// Adds a queued message to the group being gathered.
fn take(m: Msg, group: &mut Vec<(WriteOp, Reply)>, weight: &mut usize, running: &mut bool) {
    match m {
        Msg::Op(op, reply) => {
            *weight += op.weight();
            group.push((op, reply));
        }
        Msg::Shutdown => *running = false,
    }
}

/// Commits a group and returns each request's answer, to be sent once the data is as durable
/// as the mode promises.
fn commit_group(
    env: &Env<WithoutTls>,
    dbs: &Dbs,
    cache: Option<&PageCache>,
    ctx: &ErrCtx,
    stats: &WriterStats,
    group: Vec<(WriteOp, Reply)>,
) -> Vec<(bool, Reply, Result<Outcome, LogError>)> {
    let started = Instant::now();
    let weight: usize = group.iter().map(|(op, _)| op.weight()).sum();
    let is_flush = |op: &WriteOp| matches!(op, WriteOp::Flush);
    match try_commit(env, dbs, cache, ctx, group.iter().map(|(op, _)| op)) {
        Ok(outcomes) => {
            record(stats, started, group.len(), weight);
            group
                .into_iter()
                .zip(outcomes)
                .map(|((op, reply), outcome)| (is_flush(&op), reply, outcome))
                .collect()
        }
        Err(e) if group.len() == 1 => match group.into_iter().next() {
            Some((op, reply)) => vec![(is_flush(&op), reply, Err(e))],
            None => Vec::new(),
        },
        Err(e) => {
            debug!(path = %ctx.path, error = %e, ops = group.len(), "group commit failed, retrying ops one by one");
            group
                .into_iter()
                .map(|(op, reply)| {
                    let started = Instant::now();
                    let answer = match try_commit(env, dbs, cache, ctx, std::iter::once(&op)) {
                        Ok(mut outcomes) => {
                            record(stats, started, 1, op.weight());
                            outcomes.pop().unwrap_or(Err(LogError::WriterStopped))
                        }
                        Err(e) => Err(e),
                    };
                    (is_flush(&op), reply, answer)
                })
                .collect()
        }
    }
}

fn record(stats: &WriterStats, started: Instant, ops: usize, weight: usize) {
    let took = started.elapsed();
    stats.commits.fetch_add(1, Ordering::Relaxed);
    stats.ops.fetch_add(ops as u64, Ordering::Relaxed);
    stats.bytes.fetch_add(weight as u64, Ordering::Relaxed);
    stats
        .commit_nanos
        .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    let mut recent = stats.recent.lock().unwrap_or_else(PoisonError::into_inner);
    if recent.len() < COMMITS_KEPT {
        recent.push(CommitSample {
            duration: took,
            bytes: weight as u64,
        });
    }
}

/// Applies `ops` in one transaction and commits. `Err` means nothing was committed.
fn try_commit<'a>(
    env: &Env<WithoutTls>,
    dbs: &Dbs,
    cache: Option<&PageCache>,
    ctx: &ErrCtx,
    ops: impl Iterator<Item = &'a WriteOp>,
) -> Result<Vec<Result<Outcome, LogError>>, LogError> {
    if ctx.failing.load(Ordering::Relaxed) {
        return Err(LogError::DiskFull {
            path: ctx.path.clone(),
        });
    }
    let mut txn = env.write_txn().map_err(|e| ctx.heed(e))?;
    let mut outcomes = Vec::new();
    for op in ops {
        outcomes.push(apply(&mut txn, dbs, cache, ctx, op)?);
    }
    txn.commit().map_err(|e| ctx.heed(e))?;
    Ok(outcomes)
}

/// Applies one op. Outer `Err`: storage failure, abort the transaction. Inner `Err`: the op was
/// refused before it wrote anything.
fn apply(
    txn: &mut RwTxn<'_>,
    dbs: &Dbs,
    cache: Option<&PageCache>,
    ctx: &ErrCtx,
    op: &WriteOp,
) -> Result<Result<Outcome, LogError>, LogError> {
    match op {
        WriteOp::Append(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.push(append_one(txn, dbs, ctx, item)?);
            }
            Ok(Ok(Outcome::Appended(out)))
        }
        WriteOp::CreatePartitions(parts) => {
            for (p, _) in parts {
                if dbs
                    .meta
                    .get(txn, &state_key(*p))
                    .map_err(|e| ctx.heed(e))?
                    .is_some()
                {
                    return Ok(Err(LogError::PartitionExists(*p)));
                }
            }
            for (p, config) in parts {
                // An id deleted before with batches still left: they go now, at once (ids
                // are not reused by the broker, so this is rare).
                if dbs
                    .meta
                    .delete(txn, &deleted_key(*p))
                    .map_err(|e| ctx.heed(e))?
                {
                    let (lo, hi) = partition_range(*p, 0);
                    dbs.log
                        .delete_range(txn, &(Bound::Included(&lo[..]), Bound::Included(&hi[..])))
                        .map_err(|e| ctx.heed(e))?;
                }
                dbs.meta
                    .delete(txn, &trimmed_key(*p))
                    .map_err(|e| ctx.heed(e))?;
                save_state(txn, dbs, ctx, *p, &PartitionState::new(config.clone()))?;
            }
            Ok(Ok(Outcome::Done))
        }
        WriteOp::DeletePartitions(parts) => {
            // The partition goes at once; its batches are removed by retention passes, at
            // most `RETENTION_STEP_BYTES` a commit (removing a gigabyte in one commit held
            // every append of the directory for tens of seconds).
            for p in parts {
                dbs.meta
                    .delete(txn, &state_key(*p))
                    .map_err(|e| ctx.heed(e))?;
                // Its batches go as a deleted partition's, all of them.
                dbs.meta
                    .delete(txn, &trimmed_key(*p))
                    .map_err(|e| ctx.heed(e))?;
                let (lo, hi) = partition_range(*p, 0);
                let has_batches = dbs
                    .log
                    .range(txn, &(Bound::Included(&lo[..]), Bound::Included(&hi[..])))
                    .map_err(|e| ctx.heed(e))?
                    .next()
                    .is_some();
                if has_batches {
                    dbs.meta
                        .put(txn, &deleted_key(*p), &[])
                        .map_err(|e| ctx.heed(e))?;
                }
            }
            Ok(Ok(Outcome::Done))
        }
        WriteOp::SetConfig(p, config) => {
            let mut st = match load_state(txn, dbs, *p, ctx)? {
                Some(st) => st,
                None => return Ok(Err(LogError::UnknownPartition(*p))),
            };
            st.config = config.clone();
            save_state(txn, dbs, ctx, *p, &st)?;
            Ok(Ok(Outcome::Done))
        }
        WriteOp::CheckpointHighWatermarks(marks) => {
            for (p, hw) in marks {
                // A partition deleted since the caller looked is skipped: checkpoints of the
                // others still count.
                let Some(mut st) = load_state(txn, dbs, *p, ctx)? else {
                    continue;
                };
                st.high_watermark = (*hw).clamp(st.log_start, st.log_end);
                save_state(txn, dbs, ctx, *p, &st)?;
            }
            Ok(Ok(Outcome::Done))
        }
        WriteOp::TruncateTo(p, offset) => truncate_to(txn, dbs, ctx, *p, *offset),
        WriteOp::DeleteRecordsBefore(p, offset) => delete_before(txn, dbs, cache, ctx, *p, *offset),
        WriteOp::Retention { now_ms, partitions } => {
            retention(txn, dbs, cache, ctx, *now_ms, partitions)
        }
        WriteOp::PutMeta(kvs) => {
            for (k, v) in kvs {
                let key = user_key(k);
                match v {
                    Some(v) => dbs.meta.put(txn, &key, v),
                    None => dbs.meta.delete(txn, &key).map(|_| ()),
                }
                .map_err(|e| ctx.heed(e))?;
            }
            Ok(Ok(Outcome::Done))
        }
        WriteOp::Flush => Ok(Ok(Outcome::Done)),
    }
}

fn save_state(
    txn: &mut RwTxn<'_>,
    dbs: &Dbs,
    ctx: &ErrCtx,
    partition: PartitionId,
    st: &PartitionState,
) -> Result<(), LogError> {
    let raw = rmp_serde::to_vec_named(st).map_err(|source| LogError::Encode {
        key: format!("state of partition {partition}"),
        source,
    })?;
    dbs.meta
        .put(txn, &state_key(partition), &raw)
        .map_err(|e| ctx.heed(e))
}

fn append_one(
    txn: &mut RwTxn<'_>,
    dbs: &Dbs,
    ctx: &ErrCtx,
    item: &PreparedAppend,
) -> Result<Result<Appended, LogError>, LogError> {
    let p = item.partition;
    let mut st = match load_state(txn, dbs, p, ctx) {
        Ok(Some(st)) => st,
        Ok(None) => return Ok(Err(LogError::UnknownPartition(p))),
        Err(e @ LogError::Corrupt { .. }) => return Ok(Err(e)),
        Err(e) => return Err(e),
    };
    if item.mode == AppendMode::Replica {
        // Validation guarantees at least one span with a non-negative base offset.
        let first = item
            .spans
            .first()
            .map_or(0, |s| s.header.base_offset as u64);
        if first != st.log_end {
            return Ok(Err(LogError::NonContiguousReplicaAppend {
                partition: p,
                expected: st.log_end,
                got: first,
            }));
        }
    }
    let base_offset = st.log_end;
    let mut next = st.log_end;
    for span in &item.spans {
        let raw = &item.bytes[span.start..span.end()];
        let delta = span.header.last_offset_delta as u64;
        match item.mode {
            AppendMode::Leader { leader_epoch } => {
                // The header with our offset and epoch, then the rest verbatim.
                let mut head = [0u8; 16];
                head.copy_from_slice(&raw[..16]);
                patch_header(&mut head, next, leader_epoch);
                put_batch(txn, dbs, ctx, p, next, &head, &raw[16..])?;
                st.note_epoch(leader_epoch, next);
            }
            AppendMode::Replica => {
                next = span.header.base_offset as u64;
                put_batch(txn, dbs, ctx, p, next, &raw[..16], &raw[16..])?;
                st.note_epoch(span.header.partition_leader_epoch, next);
            }
        }
        next += delta + 1;
        st.size_bytes += raw.len() as u64;
    }
    st.log_end = next;
    save_state(txn, dbs, ctx, p, &st)?;
    Ok(Ok(Appended {
        base_offset,
        last_offset: next - 1,
        log_start: st.log_start,
    }))
}

/// Stores one batch (`head`, its first 16 bytes, then `rest`) in pieces of at most
/// `dbs.piece` bytes, each copied once, straight into its LMDB page.
fn put_batch(
    txn: &mut RwTxn<'_>,
    dbs: &Dbs,
    ctx: &ErrCtx,
    p: PartitionId,
    base: u64,
    head: &[u8],
    rest: &[u8],
) -> Result<(), LogError> {
    let first = (head.len() + rest.len()).min(dbs.piece);
    let (in_first, later) = rest.split_at(first.saturating_sub(head.len()).min(rest.len()));
    dbs.log
        .put_reserved(txn, &log_key(p, base), first, |w| {
            w.write_all(head)?;
            w.write_all(in_first)
        })
        .map_err(|e| ctx.heed(e))?;
    // A batch is at most a request (`u32` bytes of pieces would be 16 TiB).
    for (index, piece) in (1u32..).zip(later.chunks(dbs.piece)) {
        dbs.log
            .put(txn, &piece_key(p, base, index), piece)
            .map_err(|e| ctx.heed(e))?;
    }
    Ok(())
}

/// The whole batch whose head (first piece) at `base` is `head`: `head` itself when the batch
/// fits one piece, else the head and its pieces joined.
pub(crate) fn whole_batch<'t>(
    txn: &'t RoTxn<'_>,
    dbs: &Dbs,
    ctx: &ErrCtx,
    p: PartitionId,
    base: u64,
    head: &'t [u8],
) -> Result<std::borrow::Cow<'t, [u8]>, LogError> {
    let header = BatchHeader::parse(head)?;
    let total = header.total_len();
    if head.len() >= total {
        return Ok(std::borrow::Cow::Borrowed(head));
    }
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(head);
    let lo = piece_key(p, base, 1);
    let hi = piece_key(p, base, u32::MAX);
    let iter = dbs
        .log
        .range(txn, &(Bound::Included(&lo[..]), Bound::Included(&hi[..])))
        .map_err(|e| ctx.heed(e))?;
    for kv in iter {
        let (_, v) = kv.map_err(|e| ctx.heed(e))?;
        out.extend_from_slice(v);
    }
    if out.len() != total {
        return Err(LogError::Corrupt {
            what: format!("batch {base} of partition {p}"),
            reason: format!("its pieces hold {} of its {total} bytes", out.len()),
        });
    }
    Ok(std::borrow::Cow::Owned(out))
}

/// Base offset, last offset, size and max timestamp of each batch from `from_base` on.
pub(crate) fn batch_summaries<'t>(
    txn: &'t RoTxn<'_>,
    dbs: &Dbs,
    ctx: &ErrCtx,
    p: PartitionId,
    from_base: u64,
) -> Result<impl Iterator<Item = Result<(u64, BatchHeader, usize), LogError>> + 't, LogError> {
    let (lo, hi) = partition_range(p, from_base);
    let iter = dbs
        .log
        .range(txn, &(Bound::Included(&lo[..]), Bound::Included(&hi[..])))
        .map_err(|e| ctx.heed(e))?;
    let ctx = ctx.clone();
    Ok(iter.filter_map(move |kv| {
        let parsed = kv.map_err(|e| ctx.heed(e)).and_then(|(k, v)| {
            let (base, index) = log_key_parts(k, p).ok_or_else(|| LogError::Corrupt {
                what: format!("log key of partition {p}"),
                reason: "key of another partition inside its range".into(),
            })?;
            if index > 0 {
                return Ok(None);
            }
            let header = BatchHeader::parse(v).map_err(|e| LogError::Corrupt {
                what: format!("batch {base} of partition {p}"),
                reason: e.to_string(),
            })?;
            Ok(Some((base, header, header.total_len())))
        });
        parsed.transpose()
    }))
}

fn truncate_to(
    txn: &mut RwTxn<'_>,
    dbs: &Dbs,
    ctx: &ErrCtx,
    p: PartitionId,
    offset: u64,
) -> Result<Result<Outcome, LogError>, LogError> {
    let mut st = match load_state(txn, dbs, p, ctx)? {
        Some(st) => st,
        None => return Ok(Err(LogError::UnknownPartition(p))),
    };
    if offset >= st.log_end {
        return Ok(Ok(Outcome::Offset(st.log_end)));
    }
    // Every batch whose last offset is at or past `offset` goes; a batch that straddles
    // `offset` goes whole (as Kafka truncates segments at batch boundaries).
    let mut cut: Option<u64> = None;
    let mut removed_bytes = 0u64;
    {
        let start_base = batch_containing(txn, dbs, ctx, p, offset)?.unwrap_or(offset);
        for entry in batch_summaries(txn, dbs, ctx, p, start_base)? {
            let (base, header, len) = entry?;
            if base + header.last_offset_delta as u64 >= offset {
                cut.get_or_insert(base);
                removed_bytes += len as u64;
            }
        }
    }
    let new_end = cut.map_or(offset, |c| c.min(offset));
    let (lo, hi) = partition_range(p, new_end);
    dbs.log
        .delete_range(txn, &(Bound::Included(&lo[..]), Bound::Included(&hi[..])))
        .map_err(|e| ctx.heed(e))?;
    st.log_end = new_end;
    st.log_start = st.log_start.min(new_end);
    st.size_bytes = st.size_bytes.saturating_sub(removed_bytes);
    st.high_watermark = st.high_watermark.min(new_end);
    st.truncate_epochs(new_end);
    save_state(txn, dbs, ctx, p, &st)?;
    Ok(Ok(Outcome::Offset(new_end)))
}

/// Base offset of the batch holding `offset`, or of the last batch before it.
pub(crate) fn batch_containing(
    txn: &RoTxn<'_>,
    dbs: &Dbs,
    ctx: &ErrCtx,
    p: PartitionId,
    offset: u64,
) -> Result<Option<u64>, LogError> {
    let key = log_key(p, offset);
    let found = dbs
        .log
        .get_lower_than_or_equal_to(txn, &key[..])
        .map_err(|e| ctx.heed(e))?;
    Ok(found.and_then(|(k, _)| log_key_offset(k, p)))
}

fn delete_before(
    txn: &mut RwTxn<'_>,
    dbs: &Dbs,
    cache: Option<&PageCache>,
    ctx: &ErrCtx,
    p: PartitionId,
    offset: u64,
) -> Result<Result<Outcome, LogError>, LogError> {
    let mut st = match load_state(txn, dbs, p, ctx)? {
        Some(st) => st,
        None => return Ok(Err(LogError::UnknownPartition(p))),
    };
    if offset > st.log_end {
        return Ok(Err(LogError::OffsetOutOfRange {
            partition: p,
            offset,
            log_start: st.log_start,
            log_end: st.log_end,
        }));
    }
    if offset <= st.log_start {
        return Ok(Ok(Outcome::Offset(st.log_start)));
    }
    // The log start moves at once; of the batches wholly before it, this commit removes at
    // most one retention step, and retention passes remove the rest the same way (freeing a
    // gigabyte in one commit would hold every append of the directory for seconds).
    let removed = remove_prefix(
        txn,
        dbs,
        cache,
        ctx,
        p,
        RETENTION_STEP_BYTES,
        |_, last, _| last < offset,
    )?;
    if removed.more {
        dbs.meta
            .put(txn, &trimmed_key(p), &[])
            .map_err(|e| ctx.heed(e))?;
    }
    st.size_bytes = st.size_bytes.saturating_sub(removed.bytes);
    st.log_start = offset;
    st.high_watermark = st.high_watermark.max(offset);
    save_state(txn, dbs, ctx, p, &st)?;
    Ok(Ok(Outcome::Offset(offset)))
}

/// Removes batches from the start of `p` while `goes(header, last_offset, size_so_far)`
/// holds, at most `budget` bytes of them (and at least one): `more` says the budget stopped
/// it before a batch that goes. Returns what was removed; `bytes` and `batches` are zero if
/// nothing was.
#[allow(clippy::too_many_arguments)]
fn remove_prefix(
    txn: &mut RwTxn<'_>,
    dbs: &Dbs,
    cache: Option<&PageCache>,
    ctx: &ErrCtx,
    p: PartitionId,
    budget: u64,
    mut goes: impl FnMut(&BatchHeader, u64, u64) -> bool,
) -> Result<RemovedPrefix, LogError> {
    let mut removed = RemovedPrefix::default();
    {
        for entry in batch_summaries(txn, dbs, ctx, p, 0)? {
            let (base, header, len) = entry?;
            let last = base + header.last_offset_delta as u64;
            if !goes(&header, last, removed.bytes) {
                break;
            }
            if removed.batches > 0 && removed.bytes + len as u64 > budget {
                removed.more = true;
                break;
            }
            removed.bytes += len as u64;
            removed.batches += 1;
            removed.next_offset = last + 1;
        }
    }
    if removed.batches > 0 {
        let lo = log_key(p, 0);
        let hi = log_key(p, removed.next_offset);
        delete_read_ahead(
            txn,
            dbs,
            cache,
            ctx,
            (Bound::Included(&lo[..]), Bound::Excluded(&hi[..])),
        )?;
    }
    Ok(removed)
}

/// Deletes a key range of the log. Removing an entry reads its page (LMDB reads an overflow
/// page's header to free it); behind the page-cache window those pages are on the disk only,
/// and read a page per fault they took about 17 ms per MB on this project's reference machine
/// (a 1.9 GB partition in 33 s). So with the window on, the pages behind it are asked for all
/// at once first (LMDB hands out an overflow page's address without reading it), and dropped
/// again afterwards, as a read behind the window does.
fn delete_read_ahead(
    txn: &mut RwTxn<'_>,
    dbs: &Dbs,
    cache: Option<&PageCache>,
    ctx: &ErrCtx,
    range: (Bound<&[u8]>, Bound<&[u8]>),
) -> Result<(), LogError> {
    let mut pages = cache.map(PageCache::read);
    if let Some(pages) = &mut pages {
        for kv in dbs.log.range(txn, &range).map_err(|e| ctx.heed(e))? {
            let (_, v) = kv.map_err(|e| ctx.heed(e))?;
            pages.plan(v);
            pages.touched(v);
        }
        pages.read_ahead();
    }
    dbs.log.delete_range(txn, &range).map_err(|e| ctx.heed(e))?;
    if let Some(pages) = pages {
        pages.finish();
    }
    Ok(())
}

/// What one step of removing a deleted partition's batches removed.
#[derive(Debug, Default)]
struct Purged {
    /// Entries: batch heads and their later pieces.
    entries: u64,
    /// Batch heads among them.
    batches: u64,
    /// The entries' bytes.
    bytes: u64,
    /// Entries are left past the budget.
    more: bool,
}

/// Removes the first entries of deleted partition `p` up to `budget` bytes (at least one),
/// without parsing them (a batch that does not parse goes too), and its deleted mark with
/// the last. Nothing happens to a partition without the mark (a live one, or one already
/// gone).
fn purge_deleted(
    txn: &mut RwTxn<'_>,
    dbs: &Dbs,
    cache: Option<&PageCache>,
    ctx: &ErrCtx,
    p: PartitionId,
    budget: u64,
) -> Result<Purged, LogError> {
    let mut purged = Purged::default();
    if dbs
        .meta
        .get(txn, &deleted_key(p))
        .map_err(|e| ctx.heed(e))?
        .is_none()
    {
        return Ok(purged);
    }
    let (lo, hi) = partition_range(p, 0);
    let mut last: Option<Vec<u8>> = None;
    for kv in dbs
        .log
        .range(txn, &(Bound::Included(&lo[..]), Bound::Included(&hi[..])))
        .map_err(|e| ctx.heed(e))?
    {
        let (k, v) = kv.map_err(|e| ctx.heed(e))?;
        if purged.entries > 0 && purged.bytes + v.len() as u64 > budget {
            purged.more = true;
            break;
        }
        purged.entries += 1;
        purged.batches += u64::from(k.len() == LOG_KEY_LEN);
        purged.bytes += v.len() as u64;
        last = Some(k.to_vec());
    }
    if let Some(last) = &last {
        delete_read_ahead(
            txn,
            dbs,
            cache,
            ctx,
            (Bound::Included(&lo[..]), Bound::Included(&last[..])),
        )?;
    }
    if !purged.more {
        dbs.meta
            .delete(txn, &deleted_key(p))
            .map_err(|e| ctx.heed(e))?;
    }
    Ok(purged)
}

#[derive(Debug, Default)]
struct RemovedPrefix {
    bytes: u64,
    batches: u64,
    /// One past the last removed offset.
    next_offset: u64,
    /// The budget stopped the removal before a batch that goes.
    more: bool,
}

/// Retention's rules for the first batch of a partition (Kafka's): only whole batches below the
/// high watermark go; by time, the batches whose newest record is older than the cutoff; by
/// size, the oldest batches while the partition would still hold at least `retention.bytes`
/// without them. `removed_so_far` is what the pass already took from this partition.
fn retention_takes(
    st: &PartitionState,
    now_ms: i64,
    header: &BatchHeader,
    last: u64,
    removed_so_far: u64,
) -> bool {
    // Left behind by a DeleteRecords that moved the log start past them.
    if last < st.log_start {
        return true;
    }
    if last >= st.high_watermark {
        return false;
    }
    let len = header.total_len() as u64;
    let expired = st
        .config
        .retention_ms
        .is_some_and(|ms| header.max_timestamp < now_ms.saturating_sub(ms));
    let oversize = st.config.retention_bytes.is_some_and(|l| {
        st.size_bytes
            .saturating_sub(removed_so_far)
            .saturating_sub(len)
            >= l
    });
    expired || oversize
}

/// The partitions whose first batch retention would remove now, in key order. Runs in a read
/// transaction, off the writer thread: a node with 100,000 partitions that have a retention
/// setting takes about 0.1 s to walk them, which the writer would otherwise spend with every
/// append waiting.
pub(crate) fn retention_due(
    txn: &RoTxn<'_>,
    dbs: &Dbs,
    ctx: &ErrCtx,
    now_ms: i64,
) -> Result<Vec<PartitionId>, LogError> {
    let iter = dbs
        .meta
        .prefix_iter(txn, STATE_PREFIX)
        .map_err(|e| ctx.heed(e))?;
    let mut due = Vec::new();
    // Deleted partitions with batches left come first.
    for kv in dbs
        .meta
        .prefix_iter(txn, DELETED_PREFIX)
        .map_err(|e| ctx.heed(e))?
    {
        let (k, _) = kv.map_err(|e| ctx.heed(e))?;
        due.extend(deleted_key_partition(k));
    }
    // Then the ones with batches left before their log start.
    let mut trimmed = std::collections::HashSet::new();
    for kv in dbs
        .meta
        .prefix_iter(txn, TRIMMED_PREFIX)
        .map_err(|e| ctx.heed(e))?
    {
        let (k, _) = kv.map_err(|e| ctx.heed(e))?;
        if let Some(p) = trimmed_key_partition(k) {
            due.push(p);
            trimmed.insert(p);
        }
    }
    for kv in iter {
        let (k, v) = kv.map_err(|e| ctx.heed(e))?;
        let Some(p) = state_key_partition(k).filter(|p| !trimmed.contains(p)) else {
            continue;
        };
        // A state that does not decode is skipped here and reported by reads and appends.
        let Ok(st) = rmp_serde::from_slice::<PartitionState>(v) else {
            continue;
        };
        if st.config.retention_ms.is_none() && st.config.retention_bytes.is_none() {
            continue;
        }
        // A batch that does not parse is left to the writer's pass, which reports it.
        let first = batch_summaries(txn, dbs, ctx, p, 0)?.next();
        let takes = match first {
            Some(Ok((base, header, _))) => retention_takes(
                &st,
                now_ms,
                &header,
                base + header.last_offset_delta as u64,
                0,
            ),
            Some(Err(_)) => true,
            None => false,
        };
        if takes {
            due.push(p);
        }
    }
    Ok(due)
}

fn retention(
    txn: &mut RwTxn<'_>,
    dbs: &Dbs,
    cache: Option<&PageCache>,
    ctx: &ErrCtx,
    now_ms: i64,
    partitions: &[PartitionId],
) -> Result<Result<Outcome, LogError>, LogError> {
    let mut report = RetentionReport::default();
    // Where the call stopped: the partition it was at (it may have more).
    let mut last = 0;
    for (i, &p) in partitions.iter().enumerate() {
        if report.more {
            break;
        }
        last = i;
        // The state again, under the write transaction: it may have changed since the scan.
        let budget = RETENTION_STEP_BYTES.saturating_sub(report.bytes);
        let mut st = match load_state(txn, dbs, p, ctx) {
            Ok(Some(st)) => st,
            Ok(None) => {
                dbs.meta
                    .delete(txn, &trimmed_key(p))
                    .map_err(|e| ctx.heed(e))?;
                let removed = purge_deleted(txn, dbs, cache, ctx, p, budget)?;
                if removed.entries > 0 {
                    report.partitions += 1;
                    report.batches += removed.batches;
                    report.bytes += removed.bytes;
                }
                report.more = removed.more || report.bytes >= RETENTION_STEP_BYTES;
                continue;
            }
            Err(LogError::Corrupt { .. }) => continue,
            Err(e) => return Err(e),
        };
        let removed = remove_prefix(txn, dbs, cache, ctx, p, budget, |header, last, so_far| {
            retention_takes(&st, now_ms, header, last, so_far)
        })?;
        report.more = removed.more || report.bytes + removed.bytes >= RETENTION_STEP_BYTES;
        if !removed.more {
            // Nothing is left before the log start (if a DeleteRecords had left anything).
            dbs.meta
                .delete(txn, &trimmed_key(p))
                .map_err(|e| ctx.heed(e))?;
        }
        if removed.batches > 0 {
            st.size_bytes = st.size_bytes.saturating_sub(removed.bytes);
            st.log_start = st.log_start.max(removed.next_offset);
            save_state(txn, dbs, ctx, p, &st)?;
            report.partitions += 1;
            report.batches += removed.batches;
            report.bytes += removed.bytes;
        }
    }
    let rest = if report.more {
        partitions[last..].to_vec()
    } else {
        Vec::new()
    };
    Ok(Ok(Outcome::Retention(report, rest)))
}
