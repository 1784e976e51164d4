//! Options of a log directory.

use std::time::Duration;

/// When a commit reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Every commit is fsync'd before its appends are answered (LMDB's default). An append that
    /// was answered survives a process crash, an OS crash and a power cut.
    Sync,
    /// Commits are not fsync'd; a background sync runs every `interval`. An answered append
    /// survives a process crash (`kill -9`: the data is in the OS page cache). An OS crash or a
    /// power cut may lose the commits of the last `interval` and, on a file system that does not
    /// keep write order, may damage the environment (LMDB's `MDB_NOSYNC` contract).
    Periodic {
        /// Time between two background syncs.
        interval: Duration,
    },
}

/// Where write transactions run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriterMode {
    /// On the environment's writer thread, with group commit (the default, and the only mode
    /// for production: a commit never blocks the caller's thread).
    Thread,
    /// On the calling thread, one request per transaction; every `Pending` is ready when the
    /// call returns. For deterministic tests of the actors above the log (tokio's paused time
    /// would otherwise jump ahead while a commit runs on another thread).
    Inline,
}

/// Options for [`LogStore::open`](crate::LogStore::open).
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Durability of commits; [`Durability::Sync`] by default.
    pub durability: Durability,
    /// Size of the LMDB memory map, the upper bound of the directory's size. 1 TiB by default:
    /// it only reserves address space. Appends past it fail with `LogError::MapFull`.
    pub map_size: usize,
    /// The writer keeps gathering queued requests into one commit until this many bytes
    /// (1 MiB by default); one larger request is still committed on its own.
    pub max_commit_bytes: usize,
    /// How long the writer waits for more requests before committing a group smaller than
    /// `max_commit_bytes`. Zero by default: requests that arrive during a commit already form
    /// the next group, so waiting only adds latency under light load.
    pub max_commit_delay: Duration,
    /// Concurrent read transactions allowed (LMDB reader slots).
    pub max_readers: u32,
    /// Where commits run; [`WriterMode::Thread`] by default.
    pub writer: WriterMode,
    /// Bytes at the end of the data file kept in the OS page cache by the writer thread; the
    /// part behind them is dropped from it as the file grows (1 GiB by default, 0 leaves it
    /// all to the kernel). Reads of older records then come from the disk, and drop what they
    /// read once copied. Why: see the `cache` module.
    pub page_cache_window: u64,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            durability: Durability::Sync,
            map_size: 1 << 40,
            max_commit_bytes: 1 << 20,
            max_commit_delay: Duration::ZERO,
            max_readers: 1024,
            writer: WriterMode::Thread,
            page_cache_window: 1 << 30,
        }
    }
}
