//! Owns Eddy's HTTP/JSON API (actix-web): clusters (create, list, describe), topics (create,
//! list, describe, delete), events (publish one or many records at an acks level; consume as
//! a group member or from a partition and offset, by long poll or as Server-Sent Events),
//! offsets (commit by hand), groups (list, describe with lag), `/metrics` in Prometheus text
//! and `/openapi.json`, the document the API is tested against. Also a small blocking HTTP
//! client ([`client`]) for the `eddy` command line and the tests.
//!
//! # Layout
//! - [`HttpServer`] and [`HttpConfig`]: the server on its own thread and actix system, bound
//!   before `start` returns (port 0 picks a free port).
//! - `api`: the routes; every failure is a JSON body `{"error": {"code", "message"}}`.
//! - [`model`]: request and response bodies (unknown fields refused), and how keys and values
//!   travel as JSON or base64.
//! - `state`: the clusters by name, one producer per cluster and acks level, the group
//!   consumers kept between `GET /events` requests.
//! - `openapi`: the OpenAPI document, with this server's limits filled in.
//! - [`HttpError`]: the crate's one error type and its mapping to statuses.
#![warn(missing_docs)]
// The OpenAPI document is one `serde_json::json!` literal.
#![recursion_limit = "512"]

mod api;
pub mod client;
mod error;
pub mod model;
mod openapi;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, ResponseError};
use eddy_broker::Cluster;
use tracing::info;

pub use error::HttpError;
pub use state::ApiState;

/// Settings of the HTTP server.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The address to listen on (default 127.0.0.1).
    pub host: String,
    /// The port (default 8080; 0 picks a free one).
    pub port: u16,
    /// Worker threads (default 2).
    pub workers: usize,
    /// Largest request body (default 16 MiB): a larger one gets 413 before it is read whole.
    pub body_limit: usize,
    /// Longest `wait_ms` of a consume request (default 30 s).
    pub max_wait: Duration,
    /// Most records per publish or consume request (default 10,000).
    pub max_records: usize,
    /// Most partitions per topic created through the API (default 10,000).
    pub max_partitions: u32,
    /// Most clusters one server runs, its main one included (default 16).
    pub max_clusters: usize,
    /// Most group consumers kept between requests (default 1,000).
    pub max_sessions: usize,
    /// A group consumer unused for this long is closed and leaves its group (default 60 s).
    pub session_idle_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> HttpConfig {
        HttpConfig {
            host: "127.0.0.1".into(),
            port: 8080,
            workers: 2,
            body_limit: 16 << 20,
            max_wait: Duration::from_secs(30),
            max_records: 10_000,
            max_partitions: 10_000,
            max_clusters: 16,
            max_sessions: 1_000,
            session_idle_timeout: Duration::from_secs(60),
        }
    }
}

/// A running HTTP server. Stops when dropped.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
    state: Arc<ApiState>,
}

impl HttpServer {
    /// Serves `main` (and the clusters created through the API before, which it reopens)
    /// on `config.host:config.port`; `metrics` renders `/metrics`. Returns once the socket is
    /// bound.
    pub fn start(
        main: Cluster,
        config: HttpConfig,
        metrics: Option<eddy_metrics::Handle>,
    ) -> Result<HttpServer, HttpError> {
        HttpServer::start_with_context(main, config, metrics, None)
    }

    /// [`HttpServer::start`], also serving `GET /context/{message_id}` from `context` (a
    /// running context consumer's strategy).
    pub fn start_with_context(
        main: Cluster,
        config: HttpConfig,
        metrics: Option<eddy_metrics::Handle>,
        context: Option<Arc<dyn eddy_context::ContextLookup>>,
    ) -> Result<HttpServer, HttpError> {
        let state = Arc::new(ApiState::open(main, config.clone(), metrics, context)?);
        let data = web::Data::from(state.clone());
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("eddy-http".into())
            .spawn(move || {
                let system = actix_rt::System::new();
                system.block_on(async move {
                    let app_data = data.clone();
                    let limit = config.body_limit;
                    let server = actix_web::HttpServer::new(move || {
                        App::new()
                            .wrap_fn(|req, srv| {
                                let started = std::time::Instant::now();
                                let method = req.method().to_string();
                                let answer = actix_web::dev::Service::call(srv, req);
                                async move {
                                    let res = answer.await?;
                                    record_request(&res, method, started);
                                    Ok(res)
                                }
                            })
                            .app_data(app_data.clone())
                            .app_data(json_config(limit))
                            .app_data(query_config())
                            .configure(api::routes)
                            .default_service(web::to(api::not_found))
                    })
                    .workers(config.workers.max(1))
                    .disable_signals()
                    .shutdown_timeout(5)
                    .bind((config.host.as_str(), config.port))
                    .map_err(|e| {
                        HttpError::io(
                            format!("cannot listen on {}:{}", config.host, config.port),
                            e,
                        )
                    });
                    let server = match server {
                        Ok(s) => s,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    let addr = server.addrs().first().copied();
                    let server = server.run();
                    let Some(addr) = addr else {
                        let _ = tx.send(Err(HttpError::Unavailable("no address bound".into())));
                        return;
                    };
                    let _ = tx.send(Ok((addr, server.handle())));
                    // Idle group consumers are closed even when no request comes.
                    let reaper = data.clone();
                    actix_rt::spawn(async move {
                        let mut tick = actix_rt::time::interval(Duration::from_secs(1));
                        loop {
                            tick.tick().await;
                            reaper.reap_sessions();
                        }
                    });
                    let _ = server.await;
                });
            })
            .map_err(|e| HttpError::io("cannot spawn the HTTP thread", e))?;
        let (addr, handle) = rx
            .recv()
            .map_err(|_| HttpError::Unavailable("the HTTP thread died while starting".into()))??;
        info!(%addr, "HTTP API listening");
        Ok(HttpServer {
            addr,
            handle,
            thread: Some(thread),
            state,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets running requests finish (up to 5 s), closes the group consumers
    /// and stops the clusters created through the API.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(t) = self.thread.take() {
            drop(self.handle.stop(true));
            let _ = t.join();
            self.state.stop_owned();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Counts a request under its route pattern (bounded: never the path itself).
fn record_request(
    res: &actix_web::dev::ServiceResponse,
    method: String,
    started: std::time::Instant,
) {
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    metrics::counter!(
        eddy_metrics::HTTP_REQUESTS,
        "route" => route.clone(),
        "method" => method,
        "status" => res.status().as_u16().to_string()
    )
    .increment(1);
    metrics::histogram!(eddy_metrics::HTTP_REQUEST_LATENCY, "route" => route)
        .record(started.elapsed().as_secs_f64());
}

fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|err, _req| {
            use actix_web::error::JsonPayloadError as J;
            let e = match &err {
                J::Overflow { .. } | J::OverflowKnownLength { .. } => {
                    HttpError::TooLarge(err.to_string())
                }
                J::ContentType => HttpError::BadRequest(
                    "the body must be JSON with Content-Type: application/json".into(),
                ),
                _ => HttpError::BadRequest(format!("invalid JSON body: {err}")),
            };
            actix_web::error::InternalError::from_response(err, e.error_response()).into()
        })
}

fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        let e = HttpError::BadRequest(format!("invalid query string: {err}"));
        actix_web::error::InternalError::from_response(err, e.error_response()).into()
    })
}
