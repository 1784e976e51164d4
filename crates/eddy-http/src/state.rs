//! What the HTTP workers share: the clusters by name (the server's main cluster and the ones
//! created through `POST /clusters`, persisted in `<data_dir>/http-clusters.json` and reopened
//! at start), one embedded producer per cluster and acks level, and the group consumers that
//! `GET /events?group=` uses between requests (closed after an idle timeout, as Kafka REST
//! proxies close their consumer instances).

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use eddy_broker::{Cluster, ClusterConfig, EmbeddedCluster};
use eddy_client::{Consumer, Producer, ProducerConfig};
use eddy_types::Acks;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::error::HttpError;
use crate::HttpConfig;

/// The registry file of clusters created through the API.
const REGISTRY_FILE: &str = "http-clusters.json";

/// A cluster the API serves.
#[derive(Debug)]
pub(crate) struct ClusterEntry {
    pub(crate) cluster: Cluster,
    pub(crate) log_directory: PathBuf,
    /// Set for clusters the API opened (it stops them when the server stops).
    owned: Mutex<Option<EmbeddedCluster>>,
    /// One producer per acks level (0, 1, all), started on first use.
    producers: [tokio::sync::OnceCell<Producer>; 3],
}

impl ClusterEntry {
    fn new(cluster: Cluster, log_directory: PathBuf, owned: Option<EmbeddedCluster>) -> Self {
        ClusterEntry {
            cluster,
            log_directory,
            owned: Mutex::new(owned),
            producers: Default::default(),
        }
    }

    /// The producer for `acks`: idempotent for `all`, as Kafka's clients default to.
    pub(crate) async fn producer(&self, acks: Acks) -> Result<&Producer, HttpError> {
        let slot = match acks {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => 2,
        };
        let cluster = &self.cluster;
        self.producers[slot]
            .get_or_try_init(|| async move {
                let config = ProducerConfig {
                    acks,
                    idempotence: acks == Acks::All,
                    // An HTTP request waits for its records: do not hold them for long.
                    linger: std::time::Duration::from_millis(1),
                    ..ProducerConfig::default()
                };
                Producer::start(cluster, config).await
            })
            .await
            .map_err(HttpError::from)
    }
}

/// A cluster created through the API, as the registry file keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ClusterSpec {
    pub(crate) name: String,
    /// Relative to the server's data directory.
    pub(crate) log_directory: String,
    pub(crate) num_brokers: u32,
    pub(crate) partitions: Option<u32>,
    pub(crate) retention_ms: Option<i64>,
}

/// Which group consumer a `GET /events?group=` uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SessionKey {
    pub(crate) cluster: String,
    pub(crate) group: String,
    pub(crate) consumer: String,
    pub(crate) topic: String,
}

/// A group consumer kept between requests.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) consumer: tokio::sync::Mutex<Option<Consumer>>,
    pub(crate) last_used: Mutex<Instant>,
}

impl Session {
    pub(crate) fn touch(&self) {
        if let Ok(mut t) = self.last_used.lock() {
            *t = Instant::now();
        }
    }
}

/// The state every worker shares.
#[derive(Debug)]
pub struct ApiState {
    pub(crate) config: HttpConfig,
    clusters: RwLock<BTreeMap<String, Arc<ClusterEntry>>>,
    default_cluster: String,
    data_dir: PathBuf,
    /// Serializes cluster creation (and the registry file).
    create: tokio::sync::Mutex<()>,
    pub(crate) sessions: Mutex<HashMap<SessionKey, Arc<Session>>>,
    pub(crate) metrics: Option<eddy_metrics::Handle>,
    pub(crate) openapi: String,
    /// The running context consumer's strategy, for `GET /context/{message_id}`.
    pub(crate) context: Option<Arc<dyn eddy_context::ContextLookup>>,
}

impl ApiState {
    /// State over `main` (the cluster the Kafka listeners serve), reopening the clusters
    /// created through the API before (listed in `<data_dir>/http-clusters.json`). Blocks
    /// while they open.
    pub fn open(
        main: Cluster,
        config: HttpConfig,
        metrics: Option<eddy_metrics::Handle>,
        context: Option<Arc<dyn eddy_context::ContextLookup>>,
    ) -> Result<ApiState, HttpError> {
        let data_dir = main.config().data_dir.clone();
        let default_cluster = main.config().name.clone();
        let main_dir = main.config().data_dir.clone();
        let mut clusters = BTreeMap::new();
        clusters.insert(
            default_cluster.clone(),
            Arc::new(ClusterEntry::new(main, main_dir, None)),
        );
        let openapi = crate::openapi::render(&config)?;
        let state = ApiState {
            config,
            clusters: RwLock::new(clusters),
            default_cluster,
            data_dir,
            create: tokio::sync::Mutex::new(()),
            sessions: Mutex::new(HashMap::new()),
            metrics,
            openapi,
            context,
        };
        for spec in state.registry()? {
            let entry = open_cluster(&state.data_dir, &spec)?;
            info!(cluster = %spec.name, "reopened a cluster created through the HTTP API");
            state.insert(spec.name, entry)?;
        }
        Ok(state)
    }

    /// The name of the server's main cluster.
    pub fn default_cluster(&self) -> &str {
        &self.default_cluster
    }

    pub(crate) fn cluster(&self, name: Option<&str>) -> Result<Arc<ClusterEntry>, HttpError> {
        let name = name.unwrap_or(&self.default_cluster);
        let clusters = self
            .clusters
            .read()
            .map_err(|_| HttpError::Unavailable("the cluster registry is poisoned".into()))?;
        clusters
            .get(name)
            .cloned()
            .ok_or_else(|| HttpError::NotFound(format!("unknown cluster {name}")))
    }

    pub(crate) fn clusters(&self) -> Result<Vec<(String, Arc<ClusterEntry>)>, HttpError> {
        let clusters = self
            .clusters
            .read()
            .map_err(|_| HttpError::Unavailable("the cluster registry is poisoned".into()))?;
        Ok(clusters
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn insert(&self, name: String, entry: ClusterEntry) -> Result<(), HttpError> {
        let mut clusters = self
            .clusters
            .write()
            .map_err(|_| HttpError::Unavailable("the cluster registry is poisoned".into()))?;
        clusters.insert(name, Arc::new(entry));
        Ok(())
    }

    fn registry_path(&self) -> PathBuf {
        self.data_dir.join(REGISTRY_FILE)
    }

    fn registry(&self) -> Result<Vec<ClusterSpec>, HttpError> {
        let path = self.registry_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                HttpError::io(
                    format!("cannot read {}", path.display()),
                    std::io::Error::other(e),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(HttpError::io(format!("cannot read {}", path.display()), e)),
        }
    }

    fn save_registry(&self, specs: &[ClusterSpec]) -> Result<(), HttpError> {
        let path = self.registry_path();
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(specs)
            .map_err(|e| HttpError::io("cannot encode the cluster registry", e.into()))?;
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&self.data_dir)?;
            std::fs::write(&tmp, &bytes)?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| HttpError::io(format!("cannot write {}", path.display()), e))
    }

    /// Creates, opens and registers a cluster.
    pub(crate) async fn create_cluster(&self, spec: ClusterSpec) -> Result<(), HttpError> {
        let _one_at_a_time = self.create.lock().await;
        if self.cluster(Some(&spec.name)).is_ok() {
            return Err(HttpError::Conflict(format!(
                "cluster {} already exists",
                spec.name
            )));
        }
        if self.clusters()?.len() >= self.config.max_clusters {
            return Err(HttpError::Limit(format!(
                "this server runs {} clusters already, its limit",
                self.config.max_clusters
            )));
        }
        let data_dir = self.data_dir.clone();
        let spec2 = spec.clone();
        let entry = actix_web::web::block(move || open_cluster(&data_dir, &spec2))
            .await
            .map_err(|e| HttpError::Unavailable(format!("cannot open the cluster: {e}")))??;
        let mut specs = self.registry()?;
        specs.push(spec.clone());
        self.save_registry(&specs)?;
        self.insert(spec.name.clone(), entry)?;
        info!(cluster = %spec.name, brokers = spec.num_brokers, "cluster created");
        Ok(())
    }

    /// Closes the group consumers idle for longer than the session timeout.
    pub(crate) fn reap_sessions(&self) {
        let timeout = self.config.session_idle_timeout;
        let expired: Vec<Arc<Session>> = match self.sessions.lock() {
            Ok(mut sessions) => {
                let mut out = Vec::new();
                sessions.retain(|_, s| {
                    let idle = s.last_used.lock().map(|t| t.elapsed()).unwrap_or_default();
                    let keep = idle < timeout;
                    if !keep {
                        out.push(s.clone());
                    }
                    keep
                });
                out
            }
            Err(_) => return,
        };
        for s in expired {
            actix_rt::spawn(async move {
                if let Some(c) = s.consumer.lock().await.take() {
                    if let Err(e) = c.close().await {
                        warn!(error = %e, "closing an idle HTTP group consumer failed");
                    }
                }
            });
        }
    }

    /// Stops the clusters the API opened.
    pub(crate) fn stop_owned(&self) {
        let entries: Vec<Arc<ClusterEntry>> = match self.clusters.read() {
            Ok(c) => c.values().cloned().collect(),
            Err(_) => return,
        };
        for e in entries {
            let owned = e.owned.lock().ok().and_then(|mut o| o.take());
            if let Some(owned) = owned {
                owned.shutdown();
            }
        }
    }
}

/// Checks a `log_directory` of `POST /clusters`: relative, inside the data directory.
pub(crate) fn check_log_directory(dir: &str) -> Result<(), HttpError> {
    let path = Path::new(dir);
    let inside = path
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if dir.is_empty() || !inside || dir.len() > 255 {
        return Err(HttpError::BadRequest(format!(
            "log_directory {dir:?} must be a relative path inside the server's data directory \
             (no '..', not absolute)"
        )));
    }
    Ok(())
}

fn open_cluster(data_dir: &Path, spec: &ClusterSpec) -> Result<ClusterEntry, HttpError> {
    let dir = data_dir.join(&spec.log_directory);
    let mut config = ClusterConfig::new(spec.name.clone(), &dir);
    config.brokers = spec.num_brokers;
    if let Some(p) = spec.partitions {
        config.topic_defaults.partitions = p;
    }
    if let Some(ms) = spec.retention_ms {
        config.topic_defaults.retention_ms = (ms >= 0).then_some(ms);
    }
    let embedded = EmbeddedCluster::open(config)?;
    Ok(ClusterEntry::new(embedded.cluster(), dir, Some(embedded)))
}
