//! The `eddy` command. `eddy serve` runs an Eddy cluster (3 brokers by default, data in
//! `./eddy-data`) with a Kafka listener per broker (127.0.0.1:9092, 9093, 9094) and the HTTP
//! API with `/metrics` (127.0.0.1:8080), until Ctrl-C or SIGTERM. Settings come from flags,
//! else `EDDY_*` environment variables, else the defaults.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context};
use eddy_broker::{ClusterConfig, EmbeddedCluster};
use eddy_http::{HttpConfig, HttpServer};
use eddy_kafka::{KafkaConfig, KafkaServer};
use metrics_exporter_prometheus::PrometheusBuilder;
use tracing::info;

/// A hostile Kafka frame's array count must not abort the process (see `LazyHugeAlloc`).
#[global_allocator]
static ALLOC: eddy_kafka::LazyHugeAlloc = eddy_kafka::LazyHugeAlloc;

const USAGE: &str = "\
usage: eddy serve [options]

Runs an Eddy cluster, its Kafka listeners and its HTTP API until Ctrl-C.

options (each also read from the environment variable shown):
  --data-dir DIR     where the brokers' logs live      EDDY_DATA_DIR   (./eddy-data)
  --cluster NAME     the cluster's name                EDDY_CLUSTER    (eddy)
  --brokers N        brokers, created together         EDDY_BROKERS    (3)
  --host HOST        the Kafka listeners' address      EDDY_HOST       (127.0.0.1)
  --kafka-port PORT  broker i listens on PORT + i      EDDY_KAFKA_PORT (9092; 0: any free port)
  --advertised-host HOST  the host clients are told    EDDY_ADVERTISED_HOST
  --auto-create-topics true|false  create topics on first use  EDDY_AUTO_CREATE_TOPICS (true)
  --http-host HOST   the HTTP API's address            EDDY_HTTP_HOST  (--host)
  --http-port PORT   the HTTP API and /metrics         EDDY_HTTP_PORT  (8080; 0: any free port)

logs go to stderr; EDDY_LOG sets their level (info)
";

/// The settings of `eddy serve`.
#[derive(Debug)]
struct Serve {
    data_dir: PathBuf,
    cluster: String,
    brokers: u32,
    host: String,
    kafka_port: u16,
    advertised_host: Option<String>,
    auto_create_topics: bool,
    http_host: Option<String>,
    http_port: u16,
}

fn env_or<T: FromStr>(name: &str, default: T) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(v) => v.parse().map_err(|e| anyhow::anyhow!("{name}={v}: {e}")),
        Err(_) => Ok(default),
    }
}

fn parse(args: &[String]) -> anyhow::Result<Serve> {
    let mut s = Serve {
        data_dir: env_or("EDDY_DATA_DIR", PathBuf::from("./eddy-data"))?,
        cluster: env_or("EDDY_CLUSTER", "eddy".to_string())?,
        brokers: env_or("EDDY_BROKERS", 3)?,
        host: env_or("EDDY_HOST", "127.0.0.1".to_string())?,
        kafka_port: env_or("EDDY_KAFKA_PORT", 9092)?,
        advertised_host: std::env::var("EDDY_ADVERTISED_HOST").ok(),
        auto_create_topics: env_or("EDDY_AUTO_CREATE_TOPICS", true)?,
        http_host: std::env::var("EDDY_HTTP_HOST").ok(),
        http_port: env_or("EDDY_HTTP_PORT", 8080)?,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .with_context(|| format!("{flag} needs a value\n\n{USAGE}"))
        };
        match flag.as_str() {
            "--data-dir" => s.data_dir = PathBuf::from(value()?),
            "--cluster" => s.cluster = value()?,
            "--brokers" => s.brokers = value()?.parse().context("--brokers")?,
            "--host" => s.host = value()?,
            "--kafka-port" => s.kafka_port = value()?.parse().context("--kafka-port")?,
            "--advertised-host" => s.advertised_host = Some(value()?),
            "--auto-create-topics" => {
                s.auto_create_topics = value()?.parse().context("--auto-create-topics")?
            }
            "--http-host" => s.http_host = Some(value()?),
            "--http-port" => s.http_port = value()?.parse().context("--http-port")?,
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown option {other}\n\n{USAGE}"),
        }
    }
    Ok(s)
}

fn main() -> anyhow::Result<()> {
    let level = env_or("EDDY_LOG", tracing::Level::INFO)?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve(parse(&args[1..])?),
        Some("-h" | "--help") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown command {other}\n\n{USAGE}"),
    }
}

fn serve(s: Serve) -> anyhow::Result<()> {
    let prometheus = PrometheusBuilder::new()
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    eddy_metrics::describe();
    let mut config = ClusterConfig::new(s.cluster.clone(), &s.data_dir);
    config.brokers = s.brokers;
    config.auto_create_topics = s.auto_create_topics;
    let eddy = EmbeddedCluster::open(config)
        .with_context(|| format!("cannot open the cluster in {}", s.data_dir.display()))?;
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
            host: s.http_host.clone().unwrap_or_else(|| s.host.clone()),
            port: s.http_port,
            ..HttpConfig::default()
        };
        let (cluster, handle) = (eddy.cluster(), prometheus.clone());
        let http = tokio::task::spawn_blocking(move || {
            HttpServer::start(cluster, http_config, Some(handle))
        })
        .await??;
        // Histograms are summarized by the recorder's upkeep.
        let upkeep = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                prometheus.run_upkeep();
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
