//! Helpers for eddy-kafka's tests: an in-process server on free ports, and a bare Kafka
//! wire client (kafka-protocol's client side) for sending exact requests and raw frames.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use eddy_broker::{ClusterConfig, EmbeddedCluster};
use eddy_kafka::{KafkaConfig, KafkaServer};
use eddy_log::{Durability, LogConfig};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A cluster with its Kafka listeners, on ports the OS picked.
pub(crate) struct Server {
    server: Option<KafkaServer>,
    runtime: Option<tokio::runtime::Runtime>,
    eddy: Option<EmbeddedCluster>,
}

impl Server {
    pub(crate) fn start(dir: &Path) -> Server {
        Server::start_with(
            dir,
            KafkaConfig {
                base_port: 0,
                ..KafkaConfig::default()
            },
        )
    }

    /// With these listener settings (`base_port` should be 0).
    pub(crate) fn start_with(dir: &Path, kafka: KafkaConfig) -> Server {
        Server::start_configured(dir, kafka, |_| {})
    }

    /// With these listener settings and the cluster's test settings changed by `change`.
    pub(crate) fn start_configured(
        dir: &Path,
        kafka: KafkaConfig,
        change: impl FnOnce(&mut ClusterConfig),
    ) -> Server {
        let mut config = ClusterConfig::new("it", dir);
        config.log = LogConfig {
            map_size: 1 << 28,
            durability: Durability::Periodic {
                interval: Duration::from_millis(100),
            },
            ..LogConfig::default()
        };
        config.auto_create_topics = true;
        config.group.initial_rebalance_delay = Duration::from_millis(300);
        change(&mut config);
        let eddy = EmbeddedCluster::open(config).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = runtime
            .block_on(KafkaServer::start(eddy.cluster(), kafka))
            .unwrap();
        Server {
            server: Some(server),
            runtime: Some(runtime),
            eddy: Some(eddy),
        }
    }

    pub(crate) fn bootstrap(&self) -> String {
        self.server.as_ref().unwrap().bootstrap()
    }

    /// Stops listeners and cluster (all acknowledged records are committed).
    pub(crate) fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(rt) = self.runtime.take() {
            let server = self.server.take();
            rt.block_on(async move { drop(server) });
            rt.shutdown_timeout(Duration::from_secs(5));
        }
        if let Some(eddy) = self.eddy.take() {
            eddy.shutdown();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Server {
    /// Broker `b`'s listener.
    pub(crate) fn addr(&self, b: usize) -> SocketAddr {
        self.server.as_ref().unwrap().addresses()[b]
    }

    /// Runs `f` on the server's network runtime.
    pub(crate) fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.as_ref().unwrap().block_on(f)
    }

    pub(crate) fn cluster(&self) -> eddy_broker::Cluster {
        self.eddy.as_ref().unwrap().cluster()
    }
}

/// A raw connection to a listener.
pub(crate) struct Wire {
    stream: TcpStream,
    next_id: i32,
}

impl Wire {
    pub(crate) async fn connect(addr: SocketAddr) -> Wire {
        Wire {
            stream: TcpStream::connect(addr).await.unwrap(),
            next_id: 1,
        }
    }

    /// Sends bytes as they are (a frame, part of one, or garbage).
    pub(crate) async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads one response frame; `None` if the server closed the connection (or sent nothing
    /// within `wait`).
    pub(crate) async fn read_frame(&mut self, wait: Duration) -> Option<Bytes> {
        let read = async {
            let size = self.stream.read_i32().await.ok()?;
            let mut buf = vec![0u8; usize::try_from(size).ok()?];
            self.stream.read_exact(&mut buf).await.ok()?;
            Some(Bytes::from(buf))
        };
        tokio::time::timeout(wait, read).await.ok().flatten()
    }

    /// Whether the server closed the connection (reads EOF within `wait`).
    pub(crate) async fn closed(&mut self, wait: Duration) -> bool {
        let mut b = [0u8; 1];
        matches!(
            tokio::time::timeout(wait, self.stream.read(&mut b)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    /// A framed request: header and body at `version`.
    pub(crate) fn frame<R: Request>(&mut self, version: i16, req: &R) -> (i32, Bytes) {
        let id = self.next_id;
        self.next_id += 1;
        let key = ApiKey::try_from(R::KEY).unwrap();
        let mut header = RequestHeader::default();
        header.request_api_key = R::KEY;
        header.request_api_version = version;
        header.correlation_id = id;
        header.client_id = Some(StrBytes::from_string("eddy-test".into()));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header
            .encode(&mut buf, key.request_header_version(version))
            .unwrap();
        req.encode(&mut buf, version).unwrap();
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        (id, buf.freeze())
    }

    /// Sends a request and decodes its response.
    pub(crate) async fn request<R: Request>(
        &mut self,
        version: i16,
        req: &R,
    ) -> Result<R::Response, String> {
        let (id, frame) = self.frame(version, req);
        self.send_raw(&frame).await;
        let mut resp = self
            .read_frame(Duration::from_secs(30))
            .await
            .ok_or_else(|| "connection closed".to_string())?;
        let key = ApiKey::try_from(R::KEY).unwrap();
        let header = ResponseHeader::decode(&mut resp, key.response_header_version(version))
            .map_err(|e| format!("header: {e}"))?;
        if header.correlation_id != id {
            return Err(format!("correlation id {} for {id}", header.correlation_id));
        }
        let body = R::Response::decode(&mut resp, version).map_err(|e| format!("body: {e:#}"))?;
        if resp.has_remaining() {
            return Err(format!("{} bytes left after the body", resp.remaining()));
        }
        Ok(body)
    }
}
