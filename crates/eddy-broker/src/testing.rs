//! Helpers for tests of the cluster and of what runs on it (feature `testing`): a cluster
//! config fit for tests and an actix system on paused time.
//!
//! On paused time, timers fire in order as soon as every actor waits, so replication
//! timeouts, session timeouts and rebalance delays take no real time and runs repeat
//! exactly. The cluster's logs must then commit inline ([`config`] does), so that no commit
//! happens on another thread while time is paused.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use eddy_log::{Durability, LogConfig, WriterMode};

use crate::{BrokerError, Cluster, ClusterConfig, NewTopic};

/// Runs `f` in an actix system on a current-thread tokio runtime with paused time.
///
/// # Panics
/// If the runtime cannot be built (no threads or timers on this machine): a test set-up
/// failure, never a client's doing.
#[allow(clippy::expect_used)]
pub fn paused<F: Future>(f: F) -> F::Output {
    let system = actix_rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a current-thread tokio runtime")
    });
    system.block_on(f)
}

/// A 3-broker cluster named `test` in `dir` with inline, unsynced commits (tests need no
/// power-cut safety), a small LMDB map, and retention checked only hourly.
pub fn config(dir: &Path) -> ClusterConfig {
    let mut c = ClusterConfig::new("test", dir);
    // Test batches mostly carry timestamps of 1970 (tests give `encode_batch` small ones): a
    // retention pass would delete them under the default 7-day `retention.ms` in the middle of
    // a paused-clock test. Tests of retention set their own interval.
    c.retention_check_interval = Duration::from_secs(3600);
    c.log = LogConfig {
        map_size: 1 << 26,
        writer: WriterMode::Inline,
        durability: Durability::Periodic {
            interval: Duration::from_secs(3600),
        },
        ..LogConfig::default()
    };
    c
}

/// Starts a cluster with [`config`].
pub async fn start(dir: &Path) -> Result<Cluster, BrokerError> {
    Cluster::start(config(dir)).await
}

/// Starts a cluster with [`config`] and creates `topic` with `partitions` partitions
/// (replication factor 3).
pub async fn start_with_topic(
    dir: &Path,
    topic: &str,
    partitions: u32,
) -> Result<Cluster, BrokerError> {
    let c = start(dir).await?;
    c.create_topic(NewTopic::new(topic).partitions(partitions))
        .await?;
    Ok(c)
}
