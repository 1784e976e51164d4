//! `eddy serve`: settings from flags, else `EDDY_*` environment variables, else a TOML config
//! file (`--config`), else the embedded defaults; then the cluster, its Kafka listeners, the
//! context consumer (context bubbles of `user_*` and `chatroom_*` topics, and consumer
//! responses if a responder is chosen) and the HTTP API, until Ctrl-C or SIGTERM.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use eddy_broker::{ClusterConfig, EmbeddedCluster};
use eddy_context::{OfflineResponder, Responder};
use eddy_http::{HttpConfig, HttpServer};
use eddy_kafka::{KafkaConfig, KafkaServer};
use eddy_log::Durability;
use eddy_pipeline::{
    ContextConfig, OpenAiConfig, OpenAiResponder, RespondTo, RunningContext, Subscription,
};
use serde::Deserialize;
use tracing::info;

/// `eddy serve`'s flags; each also read from the environment variable shown.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// A TOML file with any of the settings below (flags and variables win).
    #[arg(long, env = "EDDY_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where the brokers' logs live [default: ./eddy-data].
    #[arg(long, env = "EDDY_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The cluster's name [default: eddy].
    #[arg(long, env = "EDDY_CLUSTER", value_name = "NAME")]
    cluster: Option<String>,
    /// Brokers, created together [default: 3].
    #[arg(long, env = "EDDY_BROKERS", value_name = "N")]
    brokers: Option<u32>,
    /// The listeners' address [default: 127.0.0.1].
    #[arg(long, env = "EDDY_HOST")]
    host: Option<String>,
    /// Broker i's Kafka listener is on PORT + i; 0 picks free ports [default: 9092].
    #[arg(long, env = "EDDY_KAFKA_PORT", value_name = "PORT")]
    kafka_port: Option<u16>,
    /// The host Kafka clients are told to connect to [default: --host].
    #[arg(long, env = "EDDY_ADVERTISED_HOST")]
    advertised_host: Option<String>,
    /// Create a topic on first produce or fetch [default: true].
    #[arg(long, env = "EDDY_AUTO_CREATE_TOPICS", value_name = "BOOL")]
    auto_create_topics: Option<bool>,
    /// Partition replicas the node may hold over all its brokers (a topic of 10 partitions
    /// at replication factor 3 takes 30); creating past it is refused [default: 1000000].
    #[arg(long, env = "EDDY_MAX_PARTITIONS", value_name = "N")]
    max_partitions: Option<u64>,
    /// `/metrics` has per-partition series (high watermark, committed offset, lag) while the
    /// node holds at most this many partitions; past it, per-topic sums only [default: 10000].
    #[arg(long, env = "EDDY_METRICS_PARTITION_SERIES", value_name = "N")]
    metrics_partition_series: Option<usize>,
    /// The HTTP API's address [default: --host].
    #[arg(long, env = "EDDY_HTTP_HOST", value_name = "HOST")]
    http_host: Option<String>,
    /// The HTTP API and /metrics; 0 picks a free port [default: 8080].
    #[arg(long, env = "EDDY_HTTP_PORT", value_name = "PORT")]
    http_port: Option<u16>,
    /// `sync` (fsync before answering, the default) or `periodic:<ms>` (fsync in the
    /// background every <ms>; a crash may lose the last <ms> of acknowledged records).
    #[arg(long, env = "EDDY_DURABILITY", value_name = "MODE")]
    durability: Option<String>,
    /// MiB at the end of each log directory's data file kept in the OS page cache; the part
    /// behind them is dropped from it as the log grows, so new writes reuse freed memory
    /// (0 leaves it all to the kernel) [default: 1024].
    #[arg(long, env = "EDDY_PAGE_CACHE_WINDOW_MB", value_name = "MIB")]
    page_cache_window_mb: Option<u64>,
    /// The context consumer's strategy (reply-chain, recent-window, heuristic), or `off`
    /// [default: heuristic].
    #[arg(long, env = "EDDY_CONTEXT_STRATEGY", value_name = "NAME")]
    context_strategy: Option<String>,
    /// The strategy's parameters, as JSON [default: its defaults].
    #[arg(long, env = "EDDY_CONTEXT_PARAMS", value_name = "JSON")]
    context_params: Option<String>,
    /// The chat topics the context consumer reads (a regex on whole names)
    /// [default: (user|chatroom)_.*].
    #[arg(long, env = "EDDY_CONTEXT_TOPICS", value_name = "REGEX")]
    context_topics: Option<String>,
    /// Chat messages the context consumer remembers (context reaches no further back; it
    /// keeps between N and 2N) [default: 50000].
    #[arg(long, env = "EDDY_CONTEXT_HISTORY", value_name = "N")]
    context_history: Option<usize>,
    /// Who answers chat messages with consumer responses: none, offline (rules, no model) or
    /// openai (an OpenAI-compatible endpoint) [default: none].
    #[arg(long, env = "EDDY_RESPONDER", value_name = "KIND")]
    responder: Option<String>,
    /// Which messages the responder answers: all or mentions [default: all].
    #[arg(long, env = "EDDY_RESPOND_TO", value_name = "WHICH")]
    respond_to: Option<String>,
    /// The responder's user id in the chat [default: eddy-bot].
    #[arg(long, env = "EDDY_BOT_ID", value_name = "ID")]
    bot_id: Option<String>,
    /// The responder's display name [default: Eddy].
    #[arg(long, env = "EDDY_BOT_NAME", value_name = "NAME")]
    bot_name: Option<String>,
    /// The OpenAI-compatible API's base URL, e.g. http://127.0.0.1:11434/v1 (Ollama).
    #[arg(long, env = "EDDY_OPENAI_BASE_URL", value_name = "URL")]
    openai_base_url: Option<String>,
    /// The model to ask.
    #[arg(long, env = "EDDY_OPENAI_MODEL", value_name = "MODEL")]
    openai_model: Option<String>,
    /// The API key, if the endpoint wants one (better from the environment than a flag).
    #[arg(
        long,
        env = "EDDY_OPENAI_API_KEY",
        value_name = "KEY",
        hide_env_values = true
    )]
    openai_api_key: Option<String>,
}

/// The same settings, from a config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    cluster: Option<String>,
    brokers: Option<u32>,
    host: Option<String>,
    kafka_port: Option<u16>,
    advertised_host: Option<String>,
    auto_create_topics: Option<bool>,
    max_partitions: Option<u64>,
    metrics_partition_series: Option<usize>,
    http_host: Option<String>,
    http_port: Option<u16>,
    durability: Option<String>,
    page_cache_window_mb: Option<u64>,
    context_strategy: Option<String>,
    context_params: Option<toml::Value>,
    context_topics: Option<String>,
    context_history: Option<usize>,
    responder: Option<String>,
    respond_to: Option<String>,
    bot_id: Option<String>,
    bot_name: Option<String>,
    openai: Option<OpenAiConfig>,
}

/// Who answers chat messages.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ResponderSetting {
    None,
    Offline,
    OpenAi(OpenAiConfig),
}

/// The context consumer's resolved settings.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ContextSettings {
    pub(crate) strategy: String,
    pub(crate) params: serde_json::Value,
    pub(crate) topics: String,
    pub(crate) history: usize,
    pub(crate) responder: ResponderSetting,
    pub(crate) respond_to: RespondTo,
    pub(crate) bot_id: String,
    pub(crate) bot_name: String,
}

/// The resolved settings.
#[derive(Debug, PartialEq)]
pub(crate) struct Settings {
    pub(crate) data_dir: PathBuf,
    pub(crate) cluster: String,
    pub(crate) brokers: u32,
    pub(crate) host: String,
    pub(crate) kafka_port: u16,
    pub(crate) advertised_host: Option<String>,
    pub(crate) auto_create_topics: bool,
    pub(crate) max_partitions: u64,
    pub(crate) metrics_partition_series: usize,
    pub(crate) http_host: String,
    pub(crate) http_port: u16,
    pub(crate) durability: Durability,
    /// Bytes; see `eddy_log::LogConfig::page_cache_window`.
    pub(crate) page_cache_window: u64,
    /// `None`: no context consumer.
    pub(crate) context: Option<ContextSettings>,
}

fn parse_durability(s: &str) -> anyhow::Result<Durability> {
    if s == "sync" {
        return Ok(Durability::Sync);
    }
    if let Some(ms) = s.strip_prefix("periodic:") {
        let ms: u64 = ms
            .parse()
            .with_context(|| format!("durability {s:?}: the interval must be milliseconds"))?;
        if ms == 0 {
            bail!("durability {s:?}: the interval must be positive");
        }
        return Ok(Durability::Periodic {
            interval: Duration::from_millis(ms),
        });
    }
    bail!("durability {s:?} is not sync or periodic:<ms>")
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("bad config file {}", path.display()))
}

impl ServeArgs {
    /// Flags (and variables) over the file over the defaults.
    pub(crate) fn resolve(self) -> anyhow::Result<Settings> {
        let file = match &self.config {
            Some(p) => read_file(p)?,
            None => FileConfig::default(),
        };
        let host = self
            .host
            .or(file.host)
            .unwrap_or_else(|| "127.0.0.1".into());
        let durability = match self.durability.or(file.durability) {
            Some(d) => parse_durability(&d)?,
            None => Durability::Sync,
        };
        let page_cache_window = self
            .page_cache_window_mb
            .or(file.page_cache_window_mb)
            .unwrap_or(1024)
            .checked_mul(1 << 20)
            .context("page_cache_window_mb is too large")?;
        let context = resolve_context(
            ContextArgs {
                strategy: self.context_strategy.or(file.context_strategy),
                params: match (self.context_params, file.context_params) {
                    (Some(json), _) => {
                        Some(serde_json::from_str(&json).context("--context-params is not JSON")?)
                    }
                    (None, Some(t)) => {
                        Some(serde_json::to_value(t).context("context_params is not a table")?)
                    }
                    (None, None) => None,
                },
                topics: self.context_topics.or(file.context_topics),
                history: self.context_history.or(file.context_history),
                responder: self.responder.or(file.responder),
                respond_to: self.respond_to.or(file.respond_to),
                bot_id: self.bot_id.or(file.bot_id),
                bot_name: self.bot_name.or(file.bot_name),
            },
            OpenAiArgs {
                base_url: self.openai_base_url,
                model: self.openai_model,
                api_key: self.openai_api_key,
                file: file.openai,
            },
        )?;
        Ok(Settings {
            context,
            data_dir: self
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./eddy-data")),
            cluster: self
                .cluster
                .or(file.cluster)
                .unwrap_or_else(|| "eddy".into()),
            brokers: self.brokers.or(file.brokers).unwrap_or(3),
            kafka_port: self.kafka_port.or(file.kafka_port).unwrap_or(9092),
            advertised_host: self.advertised_host.or(file.advertised_host),
            auto_create_topics: self
                .auto_create_topics
                .or(file.auto_create_topics)
                .unwrap_or(true),
            max_partitions: self
                .max_partitions
                .or(file.max_partitions)
                .unwrap_or(1_000_000),
            metrics_partition_series: self
                .metrics_partition_series
                .or(file.metrics_partition_series)
                .unwrap_or(eddy_metrics::PARTITION_SERIES_LIMIT),
            http_host: self
                .http_host
                .or(file.http_host)
                .unwrap_or_else(|| host.clone()),
            http_port: self.http_port.or(file.http_port).unwrap_or(8080),
            host,
            durability,
            page_cache_window,
        })
    }
}

struct ContextArgs {
    strategy: Option<String>,
    params: Option<serde_json::Value>,
    topics: Option<String>,
    history: Option<usize>,
    responder: Option<String>,
    respond_to: Option<String>,
    bot_id: Option<String>,
    bot_name: Option<String>,
}

struct OpenAiArgs {
    base_url: Option<String>,
    model: Option<String>,
    api_key: Option<String>,
    file: Option<OpenAiConfig>,
}

fn resolve_context(a: ContextArgs, o: OpenAiArgs) -> anyhow::Result<Option<ContextSettings>> {
    let strategy = a.strategy.unwrap_or_else(|| "heuristic".into());
    if strategy == "off" {
        return Ok(None);
    }
    let bot_name = a.bot_name.unwrap_or_else(|| "Eddy".into());
    let history = a.history.unwrap_or(50_000);
    if history == 0 {
        bail!("context_history must be at least 1");
    }
    let responder = match a.responder.as_deref().unwrap_or("none") {
        "none" => ResponderSetting::None,
        "offline" => ResponderSetting::Offline,
        "openai" => {
            let mut c = o.file.unwrap_or_else(|| OpenAiConfig::new("", ""));
            if let Some(u) = o.base_url {
                c.base_url = u;
            }
            if let Some(m) = o.model {
                c.model = m;
            }
            if o.api_key.is_some() {
                c.api_key = o.api_key;
            }
            if c.base_url.is_empty() || c.model.is_empty() {
                bail!("--responder openai needs --openai-base-url and --openai-model (or [openai] base_url and model in the config file)");
            }
            ResponderSetting::OpenAi(c)
        }
        other => bail!("responder {other:?} is not none, offline or openai"),
    };
    let respond_to = match a.respond_to.as_deref().unwrap_or("all") {
        "all" => RespondTo::All,
        "mentions" => RespondTo::Mentions,
        other => bail!("respond_to {other:?} is not all or mentions"),
    };
    Ok(Some(ContextSettings {
        strategy,
        params: a.params.unwrap_or(serde_json::Value::Null),
        topics: a.topics.unwrap_or_else(|| "(user|chatroom)_.*".into()),
        history,
        responder,
        respond_to,
        bot_id: a.bot_id.unwrap_or_else(|| "eddy-bot".into()),
        bot_name,
    }))
}

/// Starts the context consumer over `cluster`, its state in `<data_dir>/context`.
fn start_context(
    s: &ContextSettings,
    data_dir: &Path,
    cluster: eddy_broker::Cluster,
) -> anyhow::Result<RunningContext> {
    let strategy = crate::context::registry()?.build(&s.strategy, s.params.clone())?;
    let responder: Option<Box<dyn Responder>> = match &s.responder {
        ResponderSetting::None => None,
        ResponderSetting::Offline => Some(Box::new(OfflineResponder)),
        ResponderSetting::OpenAi(c) => Some(Box::new(OpenAiResponder::new(
            s.bot_name.clone(),
            c.clone(),
        )?)),
    };
    let mut config = ContextConfig::new(
        data_dir.join("context"),
        Subscription::Pattern(s.topics.clone()),
    );
    config.respond_to = s.respond_to;
    config.history = s.history;
    config.responding.sender_id = s.bot_id.clone();
    config.responding.sender_name = s.bot_name.clone();
    RunningContext::spawn(cluster, strategy, responder, config)
        .context("cannot start the context consumer")
}

/// Runs until Ctrl-C or SIGTERM.
/// Raises the soft limit of open files to the hard one: every client connection is a file,
/// and the usual soft limit (1,024) is under the listener's `max_connections`.
fn raise_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %e, "cannot raise the open files limit");
        }
    }
}

pub(crate) fn run(s: Settings) -> anyhow::Result<()> {
    raise_open_files_limit();
    // Prometheus's recorder, except that a deleted topic's series go with it.
    let prometheus = eddy_metrics::install().context("cannot install the metrics recorder")?;
    eddy_metrics::set_partition_series_limit(s.metrics_partition_series);
    let mut config = ClusterConfig::new(s.cluster.clone(), &s.data_dir);
    config.brokers = s.brokers;
    config.auto_create_topics = s.auto_create_topics;
    config.max_partitions = s.max_partitions;
    config.log.durability = s.durability;
    config.log.page_cache_window = s.page_cache_window;
    let eddy = EmbeddedCluster::open(config)
        .with_context(|| format!("cannot open the cluster in {}", s.data_dir.display()))?;
    let context = match &s.context {
        Some(c) => Some(start_context(c, &s.data_dir, eddy.cluster())?),
        None => None,
    };
    let lookup = context.as_ref().map(|c| {
        std::sync::Arc::new(c.handle()) as std::sync::Arc<dyn eddy_context::ContextLookup>
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the network runtime")?;
    let kafka = KafkaConfig {
        host: s.host.clone(),
        base_port: s.kafka_port,
        advertised_host: s.advertised_host.clone(),
        ..KafkaConfig::default()
    };
    let result = runtime.block_on(async {
        let server = KafkaServer::start(eddy.cluster(), kafka).await?;
        let http_config = HttpConfig {
            host: s.http_host.clone(),
            port: s.http_port,
            ..HttpConfig::default()
        };
        let (cluster, handle) = (eddy.cluster(), prometheus.clone());
        let http = tokio::task::spawn_blocking(move || {
            HttpServer::start_with_context(cluster, http_config, Some(handle), lookup)
        })
        .await??;
        // Histograms are summarized by the recorder's upkeep; once a minute, free memory goes
        // back to the system (see `memory`).
        let upkeep = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            let mut ticks = 0u64;
            loop {
                tick.tick().await;
                prometheus.run_upkeep();
                ticks += 1;
                if ticks % 12 == 0 {
                    let _ = tokio::task::spawn_blocking(crate::memory::release_free).await;
                }
            }
        });
        // Scripts and tests read these lines to find the ports.
        println!("eddy: kafka listening on {}", server.bootstrap());
        println!("eddy: http listening on {}", http.local_addr());
        info!(data = %s.data_dir.display(), cluster = %s.cluster, brokers = s.brokers, "eddy is up");
        shutdown_signal().await;
        info!("shutting down");
        upkeep.abort();
        drop(server);
        tokio::task::spawn_blocking(move || http.stop()).await?;
        anyhow::Ok(())
    });
    drop(runtime);
    if let Some(c) = context {
        if let Err(e) = c.stop() {
            tracing::warn!(error = %e, "the context consumer ended with an error");
        }
    }
    eddy.shutdown();
    result
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(config: Option<PathBuf>) -> ServeArgs {
        ServeArgs {
            config,
            data_dir: None,
            cluster: None,
            brokers: None,
            host: None,
            kafka_port: None,
            advertised_host: None,
            auto_create_topics: None,
            max_partitions: None,
            metrics_partition_series: None,
            http_host: None,
            http_port: None,
            durability: None,
            page_cache_window_mb: None,
            context_strategy: None,
            context_params: None,
            context_topics: None,
            context_history: None,
            responder: None,
            respond_to: None,
            bot_id: None,
            bot_name: None,
            openai_base_url: None,
            openai_model: None,
            openai_api_key: None,
        }
    }

    #[test]
    fn defaults_are_the_embedded_ones() {
        let s = args(None).resolve().unwrap();
        assert_eq!(s.data_dir, PathBuf::from("./eddy-data"));
        assert_eq!((s.brokers, s.kafka_port, s.http_port), (3, 9092, 8080));
        assert_eq!(
            (s.host.as_str(), s.http_host.as_str()),
            ("127.0.0.1", "127.0.0.1")
        );
        assert_eq!(s.durability, Durability::Sync);
        assert_eq!(s.page_cache_window, 1 << 30);
        let c = s.context.unwrap();
        assert_eq!(
            (c.strategy.as_str(), c.topics.as_str()),
            ("heuristic", "(user|chatroom)_.*")
        );
        assert_eq!(c.responder, ResponderSetting::None);
        assert_eq!(c.history, 50_000);
    }

    #[test]
    fn the_context_consumer_and_its_responder_are_configured() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("eddy.toml");
        std::fs::write(
            &file,
            "context_strategy = \"recent-window\"\nresponder = \"openai\"\n\
             [context_params]\nwindow = 5\n\
             [openai]\nbase_url = \"http://127.0.0.1:11434/v1\"\nmodel = \"llama3\"\n",
        )
        .unwrap();
        let mut a = args(Some(file.clone()));
        a.openai_api_key = Some("k".into());
        let c = a.resolve().unwrap().context.unwrap();
        assert_eq!(c.strategy, "recent-window");
        assert_eq!(c.params, serde_json::json!({"window": 5}));
        match c.responder {
            ResponderSetting::OpenAi(o) => {
                assert_eq!(o.model, "llama3");
                assert_eq!(o.api_key.as_deref(), Some("k"));
            }
            other => panic!("{other:?}"),
        }
        let mut a = args(None);
        a.responder = Some("openai".into());
        assert!(format!("{:#}", a.resolve().unwrap_err()).contains("--openai-base-url"));
        let mut a = args(None);
        a.responder = Some("psychic".into());
        assert!(a.resolve().is_err());
        let mut a = args(None);
        a.context_strategy = Some("off".into());
        assert!(a.resolve().unwrap().context.is_none());
        let mut a = args(None);
        a.context_history = Some(0);
        assert!(format!("{:#}", a.resolve().unwrap_err()).contains("context_history"));
        let mut a = args(None);
        a.context_history = Some(7);
        assert_eq!(a.resolve().unwrap().context.unwrap().history, 7);
    }

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("eddy.toml");
        std::fs::write(
            &file,
            "brokers = 5\nhttp_port = 9000\nhost = \"0.0.0.0\"\ndurability = \"periodic:200\"\n\
             page_cache_window_mb = 64\n",
        )
        .unwrap();
        let mut a = args(Some(file.clone()));
        a.brokers = Some(1);
        let s = a.resolve().unwrap();
        assert_eq!((s.brokers, s.http_port), (1, 9000));
        assert_eq!(s.http_host, "0.0.0.0");
        assert_eq!(
            s.durability,
            Durability::Periodic {
                interval: Duration::from_millis(200)
            }
        );
        assert_eq!(s.page_cache_window, 64 << 20);
        std::fs::write(&file, "brokerz = 5\n").unwrap();
        let mut a = args(None);
        a.page_cache_window_mb = Some(u64::MAX);
        assert!(format!("{:#}", a.resolve().unwrap_err()).contains("page_cache_window_mb"));
        let e = args(Some(file)).resolve().unwrap_err();
        assert!(format!("{e:#}").contains("brokerz"), "{e:#}");
        assert!(parse_durability("sometimes").is_err());
        assert!(parse_durability("periodic:0").is_err());
    }
}
