//! The listeners: one per broker, bound together, each accepting connections for its broker.

use std::net::SocketAddr;
use std::sync::Arc;

use eddy_broker::Cluster;
use eddy_types::BrokerId;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::KafkaConfig;
use crate::connection;
use crate::error::KafkaError;
use crate::handlers::Shared;

/// The Kafka listeners of a cluster. Dropping it (or [`KafkaServer::shutdown`]) stops
/// accepting and closes every connection.
#[derive(Debug)]
pub struct KafkaServer {
    addrs: Vec<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl KafkaServer {
    /// Binds a listener for every broker of `cluster` (`base_port + id`, or free ports when
    /// `base_port` is 0) and serves them on the current tokio runtime.
    pub async fn start(cluster: Cluster, config: KafkaConfig) -> Result<KafkaServer, KafkaError> {
        let brokers = cluster.config().brokers;
        let mut listeners = Vec::with_capacity(brokers as usize);
        for b in 0..brokers {
            let port = if config.base_port == 0 {
                0
            } else {
                let port = u32::from(config.base_port) + b;
                u16::try_from(port).map_err(|_| KafkaError::Bind {
                    addr: format!("{}:{port}", config.host),
                    source: std::io::Error::other("port out of range"),
                })?
            };
            let addr = format!("{}:{port}", config.host);
            let listener = TcpListener::bind(&addr)
                .await
                .map_err(|source| KafkaError::Bind { addr, source })?;
            listeners.push(listener);
        }
        let addrs: Vec<SocketAddr> = listeners
            .iter()
            .map(|l| l.local_addr())
            .collect::<Result<_, _>>()?;
        let advertised = config
            .advertised_host
            .clone()
            .unwrap_or(config.host.clone());
        let shared = Arc::new(Shared {
            cluster,
            endpoints: addrs
                .iter()
                .map(|a| (advertised.clone(), a.port()))
                .collect(),
            request_memory: eddy_sync::MemoryBudget::new(config.queued_max_request_bytes),
            fetch_memory: eddy_sync::MemoryBudget::new(config.fetch_memory_bytes),
            config,
        });
        let (stop, stopped) = watch::channel(false);
        let permits = Arc::new(Semaphore::new(shared.config.max_connections));
        let mut tasks = Vec::with_capacity(listeners.len());
        for (b, listener) in listeners.into_iter().enumerate() {
            let broker = BrokerId(b as u32);
            info!(%broker, addr = %addrs[b], "kafka listener up");
            tasks.push(tokio::spawn(accept_loop(
                listener,
                broker,
                shared.clone(),
                permits.clone(),
                stopped.clone(),
            )));
        }
        Ok(KafkaServer { addrs, stop, tasks })
    }

    /// The bound address of each broker's listener, by broker id.
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// `host:port,host:port,...`: what a client's `bootstrap.servers` takes.
    pub fn bootstrap(&self) -> String {
        self.addrs
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Stops accepting and closes every connection.
    pub fn shutdown(self) {
        // Drop does it.
    }
}

impl Drop for KafkaServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    broker: BrokerId,
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopped.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(%broker, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            warn!(%broker, %peer, "max.connections reached: closing the new connection");
            drop(stream);
            continue;
        };
        metrics::counter!(eddy_metrics::KAFKA_CONNECTIONS).increment(1);
        let shared = shared.clone();
        let stopped = stopped.clone();
        tokio::spawn(async move {
            let open = metrics::gauge!(eddy_metrics::KAFKA_OPEN_CONNECTIONS);
            open.increment(1.0);
            connection::serve(shared, broker, stream, peer, stopped).await;
            open.decrement(1.0);
            drop(permit);
        });
    }
}
