//! Eddy's shared-state pieces: small primitives that several tasks or threads touch at once,
//! kept here, with no runtime under them, so that `loom` can check every interleaving of them
//! (`RUSTFLAGS="--cfg loom" cargo test -p eddy-sync --release`, which `./scripts/test` runs).
//!
//! - [`MemoryBudget`]: bytes held at once, shared by every holder; waiting for room is a plain
//!   `Future` (any executor). The Kafka listener reads no request it has no room for (Kafka's
//!   `queued.max.request.bytes`) and reads no fetch answer it has no room for: overload
//!   becomes backpressure on the sockets, not memory.
//! - [`ValueTable`]: a `u64` per partition storage id, set by the brokers' leaders and read
//!   by the metrics collector at scrape time (partitions' high watermarks), 8 bytes each.
//!
//! Under `--cfg loom` the atomics and locks are loom's.

mod budget;
mod sync;
mod table;

pub use budget::{Acquire, MemoryBudget, Permit};
pub use table::ValueTable;
