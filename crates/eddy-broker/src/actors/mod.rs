//! The actors, one per file. Each owns its mailbox, timers and I/O, and drives a pure state
//! machine from `metadata` or `replication` for the protocol decisions.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use actix::{Addr, Recipient};
use eddy_log::LogStore;
use eddy_types::BrokerId;

use crate::config::ClusterConfig;
use crate::messages::AlterIsr;
use crate::metadata::MetadataView;

pub(crate) mod broker;
pub(crate) mod controller;
pub(crate) mod partition_follower;
pub(crate) mod partition_leader;

pub use broker::Broker;
pub use controller::Controller;

/// The running brokers, by id; the controller writes it, everyone reads it to reach a peer.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    brokers: Arc<RwLock<BTreeMap<BrokerId, Addr<Broker>>>>,
}

impl Directory {
    /// The running broker `id`, if it runs.
    pub fn get(&self, id: BrokerId) -> Option<Addr<Broker>> {
        let g = match self.brokers.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.get(&id).cloned()
    }

    pub(crate) fn set(&self, id: BrokerId, addr: Option<Addr<Broker>>) {
        let mut g = match self.brokers.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        match addr {
            Some(a) => g.insert(id, a),
            None => g.remove(&id),
        };
    }
}

/// What a broker shares with its partition actors.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) id: BrokerId,
    pub(crate) log: LogStore,
    pub(crate) view: MetadataView,
    pub(crate) directory: Directory,
    pub(crate) controller: Recipient<AlterIsr>,
    pub(crate) config: Arc<ClusterConfig>,
}

/// Tokio's clock as a std `Instant`, so tests with paused time control it.
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}
