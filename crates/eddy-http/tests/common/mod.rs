//! A real Eddy cluster with its HTTP API on a free port, and a client of it.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use eddy_broker::EmbeddedCluster;
use eddy_http::client::{Client, Response};
use eddy_http::{HttpConfig, HttpServer};
use serde_json::Value;

pub struct Server {
    pub dir: tempfile::TempDir,
    pub eddy: Option<EmbeddedCluster>,
    pub http: Option<HttpServer>,
    pub client: Client,
    pub config: HttpConfig,
    metrics: Option<eddy_metrics::Handle>,
    context: Option<std::sync::Arc<dyn eddy_context::ContextLookup>>,
}

pub fn test_http_config() -> HttpConfig {
    HttpConfig {
        port: 0,
        ..HttpConfig::default()
    }
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(test_http_config(), None)
    }

    pub fn start_with(config: HttpConfig, metrics: Option<eddy_metrics::Handle>) -> Server {
        Server::start_configured(config, metrics, |_| {})
    }

    /// With the cluster's test settings changed by `change`.
    pub fn start_configured(
        config: HttpConfig,
        metrics: Option<eddy_metrics::Handle>,
        change: impl FnOnce(&mut eddy_broker::ClusterConfig),
    ) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut cluster = eddy_broker::testing::config(dir.path());
        // Groups form at once: the tests have every member they will have.
        cluster.group.initial_rebalance_delay = Duration::from_millis(50);
        change(&mut cluster);
        let eddy = EmbeddedCluster::open(cluster).unwrap();
        let http = HttpServer::start(eddy.cluster(), config.clone(), metrics.clone()).unwrap();
        let client = Client::new(http.local_addr().to_string(), Duration::from_secs(60));
        Server {
            dir,
            eddy: Some(eddy),
            http: Some(http),
            client,
            config,
            metrics,
            context: None,
        }
    }

    /// Restarts the HTTP server serving `GET /context/{id}` from `context`.
    pub fn attach_context(&mut self, context: std::sync::Arc<dyn eddy_context::ContextLookup>) {
        self.context = Some(context);
        self.restart_http();
    }

    /// Stops the HTTP server and starts it again over the same cluster.
    pub fn restart_http(&mut self) {
        if let Some(h) = self.http.take() {
            h.stop();
        }
        let cluster = self.eddy.as_ref().unwrap().cluster();
        let http = HttpServer::start_with_context(
            cluster,
            self.config.clone(),
            self.metrics.clone(),
            self.context.clone(),
        )
        .unwrap();
        self.client = Client::new(http.local_addr().to_string(), Duration::from_secs(60));
        self.http = Some(http);
    }

    pub fn addr(&self) -> String {
        self.http.as_ref().unwrap().local_addr().to_string()
    }

    pub fn get(&self, path: &str) -> Response {
        self.client.request("GET", path, None).unwrap()
    }

    pub fn post(&self, path: &str, body: Value) -> Response {
        self.client.request("POST", path, Some(&body)).unwrap()
    }

    pub fn delete(&self, path: &str) -> Response {
        self.client.request("DELETE", path, None).unwrap()
    }

    /// `GET` that must answer 200; its JSON.
    pub fn get_ok(&self, path: &str) -> Value {
        let r = self.get(path);
        assert_eq!(
            r.status,
            200,
            "GET {path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.json().unwrap()
    }

    /// `POST` that must answer `status`; its JSON.
    pub fn post_expect(&self, path: &str, body: Value, status: u16) -> Value {
        let r = self.post(path, body.clone());
        assert_eq!(
            r.status,
            status,
            "POST {path} {body}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.json().unwrap()
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        self.post_expect(
            "/topics",
            serde_json::json!({"name": name, "partitions": partitions}),
            201,
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(h) = self.http.take() {
            h.stop();
        }
        if let Some(e) = self.eddy.take() {
            e.shutdown();
        }
    }
}

/// Asserts an error answer: its status and the JSON error code.
pub fn assert_error(r: &Response, status: u16, code: &str) {
    let body = String::from_utf8_lossy(&r.body).into_owned();
    assert_eq!(r.status, status, "{body}");
    let json: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    assert_eq!(json["error"]["code"], code, "{body}");
    assert!(
        json["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}
