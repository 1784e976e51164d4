//! Owns the partition log: every partition replica of one broker, stored as Kafka RecordBatch v2
//! bytes in one LMDB environment (through `heed`), with a synchronous API that the broker's
//! actors call. No actix, no async runtime.
//!
//! # Design
//! - **One environment per log directory**, two databases in it. `log` maps
//!   `(partition u32 BE, base offset u64 BE)` to the batch bytes, so a partition is one
//!   contiguous key range; `meta` holds each partition's state (log start and end, size, high
//!   watermark checkpoint, leader epochs, retention settings) and metadata records, all
//!   rmp-serde. No database or file per partition: 100,000 partitions cost 100,000 small state
//!   records, nothing in memory, and reopening scans nothing.
//! - **Batches are stored verbatim.** An append checks the CRC-32C and the header, then writes the
//!   producer's bytes with only the base offset and the partition leader epoch rewritten (both lie
//!   outside the CRC). Compression, producer id/epoch/sequence, timestamps and headers stay as
//!   sent; reads return the stored bytes.
//! - **Group commit on a dedicated writer thread.** Every write (appends for any partitions,
//!   truncations, checkpoints, metadata) queues to the environment's writer thread, which commits
//!   what has gathered (up to about 1 MiB) in one transaction and then answers each request.
//!   Reads never wait for it.
//! - **Durability is explicit**: see [`Durability`].
//! - **A bounded page-cache window.** As the data file grows, the writer drops the page cache
//!   of its part more than [`LogConfig::page_cache_window`] behind the end, so new commits
//!   reuse freshly freed memory, and reads of records behind it drop what they read (see
//!   the `cache` module for the figures).
//! - **Storage failures lose nothing committed.** A full or read-only disk refuses the commit
//!   and writes nothing (`DiskFull`, `ReadOnly`). A commit that leaves LMDB in its fatal state
//!   (its meta-page write failed) makes the writer reopen the environment read-only: reads go
//!   on, writes get `LogError::Failed` until the process restarts.
//!
//! # Layout
//! - `store`: [`LogStore`], reads, and the write requests answered by [`Pending`].
//! - `writer`: the writer thread, how each request changes the databases, and the
//!   environment's health (its read-only reopening).
//! - `cache`: the page-cache window.
//! - `batch`: the RecordBatch v2 header, validation, offset rewriting.
//! - `state`, `keys`, `config`, `error`: partition state, key layout, options, [`LogError`].
//! - [`testing`]: builders of real batches for tests and benchmarks.
//!
//! # Example
//! ```
//! use eddy_log::{AppendMode, LogConfig, LogStore, PartitionConfig, testing::batch_bytes};
//! use eddy_types::PartitionId;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let log = LogStore::open(dir.path(), LogConfig { map_size: 1 << 26, ..LogConfig::default() })?;
//! let p = PartitionId(1);
//! log.create_partitions(vec![(p, PartitionConfig::default())]).wait()?;
//!
//! let leader = AppendMode::Leader { leader_epoch: 0 };
//! let first = log.append_one(p, batch_bytes(3, 1_000, 10), leader).wait()?;
//! let second = log.append_one(p, batch_bytes(2, 2_000, 10), leader).wait()?;
//! assert_eq!((first.base_offset, second.base_offset, second.last_offset), (0, 3, 4));
//!
//! // Reading from offset 4 returns the whole batch that holds it, starting at 3.
//! let fetched = log.read(p, 4, 1 << 20)?;
//! assert_eq!((fetched.batches, fetched.next_offset), (1, 5));
//! assert_eq!(log.offset_for_timestamp(p, 2_001)?, Some((4, 2_001)));
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod batch;
mod cache;
mod config;
mod error;
mod keys;
mod state;
mod store;
pub mod testing;
mod writer;

pub use batch::{BatchHeader, Stamped, HEADER_LEN};
pub use cache::{MIN_STEP, TRIM_STEP};
pub use config::{Durability, LogConfig, WriterMode};
pub use error::LogError;
pub use state::{EpochStart, PartitionConfig};
pub use store::{AppendRequest, Fetched, LogStats, LogStore, PartitionOffsets, Pending};
pub use writer::{
    AppendMode, Appended, CommitSample, RetentionReport, COMMITS_KEPT, RETENTION_STEP_BYTES,
};
