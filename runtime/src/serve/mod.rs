//! `zsc serve`: the classifier as an HTTP service (tokio + hyper + axum).
//!
//! - `POST /v1/classify` `{"texts": [...], "labels": [...], "top_k"?, "multi_label"?, "threshold"?}`
//!   → `{"results": [{"labels": [{"label", "score", "probability"}, ...]}, ...], "multi_label",
//!   "calibrated"}`, labels ranked best first;
//! - `POST /v1/embed` `{"texts": [...]}` → `{"embeddings": [[...], ...], "dim"}` (mean-pooled);
//! - `POST /v1/embeddings`: OpenAI's embeddings API (`input` a string or a list, `model`,
//!   `encoding_format` `float` or `base64`, `dimensions`, `usage`), for the clients that speak it;
//! - `GET /v1/models`: the models served, OpenAI's list format; requests choose one with `model`
//!   (default: the first);
//! - `GET /health` (the process answers), `GET /ready` (model loaded, not draining),
//!   `GET /metrics` (Prometheus text: requests by route and status, latency, batch sizes, queue,
//!   refused keys).
//!
//! With API keys ([`ServeOptions::api_keys`]) every route but `/health` and `/ready` wants
//! `Authorization: Bearer KEY`; keys are compared in constant time, a missing or wrong one gets
//! 401 with a JSON error and is counted in `/metrics`.
//!
//! Requests from all connections meet in one queue per model; its worker threads batch them dynamically
//! and label sets are encoded once and kept in an LRU cache.
//! Limits answer 4xx JSON naming the limit ([`ServeOptions`]); a full queue answers 503 with
//! `Retry-After`. Shutdown ([`Server::run`]'s future) stops accepting, lets in-flight requests
//! finish and drains the queue. Binds to loopback unless told otherwise.

mod api;
mod batcher;
mod label_sets;
mod metrics;
mod openai;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::Classifier;
use batcher::Queue;
use label_sets::LabelSets;
pub use metrics::Metrics;

/// Settings of the service; `Default` is what `zsc serve` uses without flags.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ServeOptions {
    /// Address to bind; loopback by default (put a reverse proxy or load balancer in front).
    pub host: IpAddr,
    /// Port; 0 picks a free one ([`Server::local_addr`] says which).
    pub port: u16,
    /// Most texts one encoder batch takes from the queue (across requests).
    pub max_batch: usize,
    /// How long the oldest queued job may wait for a batch to fill.
    pub max_wait: Duration,
    /// Inference threads (each with its own ONNX Runtime session).
    pub workers: usize,
    /// Most texts (and labels waiting to be encoded) in the queue; beyond it: 503 + Retry-After.
    pub max_queue: usize,
    /// Largest request body (413 beyond).
    pub max_body_bytes: usize,
    /// Most texts in one request.
    pub max_texts: usize,
    /// Most labels in one request.
    pub max_labels: usize,
    /// Longest text, in characters.
    pub max_text_chars: usize,
    /// Longest label, in characters.
    pub max_label_chars: usize,
    /// Labels, over all label sets, that the LRU cache of encoded label sets holds.
    pub label_cache_labels: usize,
    /// A request (body read, queue wait, inference) that takes longer answers 503.
    pub request_timeout: Duration,
    /// A connection that sends no complete request head within this time is closed (slow or idle
    /// half-open clients), keep-alive connections included.
    pub header_read_timeout: Duration,
    /// Most open connections; more wait to be accepted.
    pub max_connections: usize,
    /// Seconds in the `Retry-After` of 503 answers.
    pub retry_after_s: u64,
    /// How long shutdown waits for in-flight requests before closing connections.
    pub drain_timeout: Duration,
    /// Keys a request must present as `Authorization: Bearer KEY` (none: no authentication).
    pub api_keys: ApiKeys,
    /// `/v1/embeddings` may cut vectors to `dimensions` (and renormalise them): only for models
    /// trained for it (Matryoshka); otherwise `dimensions` must be the model's own width.
    pub truncatable_embeddings: bool,
}

/// API keys, never printed (`Debug` shows how many).
#[derive(Clone, Default, PartialEq)]
pub struct ApiKeys(Vec<String>);

impl ApiKeys {
    /// These keys (blank ones and surrounding whitespace dropped).
    pub fn new<S: AsRef<str>>(keys: impl IntoIterator<Item = S>) -> Self {
        ApiKeys(keys.into_iter().map(|k| k.as_ref().trim().to_string()).filter(|k| !k.is_empty()).collect())
    }

    /// No keys: the server asks for none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `given` is one of the keys, comparing with every key in time that does not depend
    /// on where the bytes differ.
    pub fn accepts(&self, given: &str) -> bool {
        self.0.iter().fold(false, |found, key| found | constant_time_eq(key.as_bytes(), given.as_bytes()))
    }
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} key(s))", self.0.len())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y));
    std::hint::black_box(diff) == 0
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8080,
            max_batch: 64,
            max_wait: Duration::from_millis(2),
            workers: 1,
            max_queue: 2048,
            max_body_bytes: 1 << 20,
            max_texts: 256,
            max_labels: 1000,
            max_text_chars: 10_000,
            max_label_chars: 1000,
            label_cache_labels: 50_000,
            request_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            retry_after_s: 1,
            drain_timeout: Duration::from_secs(30),
            api_keys: ApiKeys::default(),
            truncatable_embeddings: false,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// An option is out of range.
    #[error("invalid serve option `{option}`: {message}")]
    InvalidOption {
        /// The option's name.
        option: &'static str,
        /// What is wrong with its value.
        message: String,
    },
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A worker thread could not be started.
    #[error("starting worker thread: {0}")]
    Worker(#[source] std::io::Error),
    /// No model, or two with one name.
    #[error("models: {0}")]
    Models(String),
}

impl ServeOptions {
    /// Check every limit (done by [`Server::bind`] too).
    pub fn validate(&self) -> Result<(), ServeError> {
        let bad = |option, message: String| Err(ServeError::InvalidOption { option, message });
        for (name, v) in [
            ("max_batch", self.max_batch),
            ("workers", self.workers),
            ("max_queue", self.max_queue),
            ("max_body_bytes", self.max_body_bytes),
            ("max_texts", self.max_texts),
            ("max_labels", self.max_labels),
            ("max_text_chars", self.max_text_chars),
            ("max_label_chars", self.max_label_chars),
            ("max_connections", self.max_connections),
        ] {
            if v == 0 {
                return bad(name, "must be at least 1".into());
            }
        }
        if self.max_queue < self.max_texts.max(self.max_labels) {
            return bad(
                "max_queue",
                format!(
                    "{} cannot hold one full request (max_texts {}, max_labels {})",
                    self.max_queue, self.max_texts, self.max_labels
                ),
            );
        }
        if self.label_cache_labels < self.max_labels {
            return bad("label_cache_labels", format!("{} is below max_labels {}", self.label_cache_labels, self.max_labels));
        }
        if self.request_timeout.is_zero() || self.header_read_timeout.is_zero() {
            return bad("request_timeout", "timeouts must be positive".into());
        }
        Ok(())
    }
}

/// One served model: its classifier, queue (with its workers) and label-set cache.
pub(crate) struct ModelState {
    name: String,
    classifier: Arc<Classifier>,
    queue: Arc<Queue>,
    labels: LabelSets,
}

/// Shared by every request.
pub(crate) struct AppState {
    /// The served models; the first is the default.
    models: Vec<ModelState>,
    options: ServeOptions,
    metrics: Arc<Metrics>,
    ready: AtomicBool,
}

impl AppState {
    /// The model a request names (the default when it names none).
    fn model(&self, name: Option<&str>) -> Option<&ModelState> {
        match name {
            None => self.models.first(),
            Some(n) => self.models.iter().find(|m| m.name == n),
        }
    }
}

/// A bound server: [`Server::bind`], then [`Server::run`] until the shutdown future completes.
pub struct Server {
    listener: TcpListener,
    state: Arc<AppState>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Bind the address and start the inference workers for one model. `model_name` is what
    /// `/ready` and `/v1/models` report and what requests may name. The classifier should have
    /// `options.workers` sessions (`ClassifierOptions::with_sessions`) for the workers to run in
    /// parallel.
    pub async fn bind(
        classifier: Arc<Classifier>,
        model_name: impl Into<String>,
        options: ServeOptions,
    ) -> Result<Self, ServeError> {
        Self::bind_models(vec![(model_name.into(), classifier)], options).await
    }

    /// Several models in one process, each with its own queue, `options.workers` workers and
    /// label-set cache; requests choose one by name, the first is the default.
    pub async fn bind_models(models: Vec<(String, Arc<Classifier>)>, options: ServeOptions) -> Result<Self, ServeError> {
        options.validate()?;
        check_model_names(&models)?;
        let addr = SocketAddr::new(options.host, options.port);
        let listener = TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { addr, source })?;
        let metrics = Arc::new(Metrics::default());
        let mut workers = Vec::new();
        let mut served = Vec::with_capacity(models.len());
        for (name, classifier) in models {
            let queue = Arc::new(Queue::new(options.max_queue, metrics.clone()));
            for i in 0..options.workers {
                let (clf, q) = (classifier.clone(), queue.clone());
                let (max_batch, max_wait) = (options.max_batch, options.max_wait);
                let handle = std::thread::Builder::new()
                    .name(format!("zsc-worker-{}-{i}", served.len()))
                    .spawn(move || batcher::run_worker(clf, q, max_batch, max_wait))
                    .map_err(ServeError::Worker)?;
                workers.push(handle);
            }
            let labels = LabelSets::new(options.label_cache_labels, metrics.clone());
            served.push(ModelState { name, classifier, queue, labels });
        }
        let state = Arc::new(AppState { models: served, options, metrics, ready: AtomicBool::new(true) });
        Ok(Server { listener, state, workers })
    }

    /// The bound address (the real port when asked for port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The server's metrics (what `GET /metrics` renders).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.state.metrics.clone()
    }

    /// Serve until `shutdown` completes; then stop accepting, let in-flight requests finish (up
    /// to `drain_timeout`), run what is still queued, and stop the workers.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let Server { listener, state, workers } = self;
        let app = api::router(state.clone());
        let graceful = GracefulShutdown::new();
        let slots = Arc::new(Semaphore::new(state.options.max_connections));
        let header_timeout = state.options.header_read_timeout;
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                _ = &mut shutdown => break,
            };
            let stream = tokio::select! {
                r = listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(e) => {
                        // out of file descriptors and the like: back off instead of spinning
                        tracing::warn!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!("connection: {e}");
                }
                drop(permit);
            });
        }
        state.ready.store(false, Ordering::Relaxed);
        drop(listener);
        tracing::info!("shutting down: waiting for in-flight requests");
        tokio::select! {
            _ = graceful.shutdown() => {}
            _ = tokio::time::sleep(state.options.drain_timeout) => {
                tracing::warn!("in-flight requests still running after {:?}; closing", state.options.drain_timeout);
            }
        }
        for m in &state.models {
            m.queue.close();
        }
        let _ = tokio::task::spawn_blocking(move || {
            for w in workers {
                let _ = w.join();
            }
        })
        .await;
    }
}

fn check_model_names(models: &[(String, Arc<Classifier>)]) -> Result<(), ServeError> {
    if models.is_empty() {
        return Err(ServeError::Models("give at least one model".into()));
    }
    for (i, (name, _)) in models.iter().enumerate() {
        if name.trim().is_empty() {
            return Err(ServeError::Models(format!("model {i} has an empty name")));
        }
        if models[..i].iter().any(|(n, _)| n == name) {
            return Err(ServeError::Models(format!("two models are named `{name}`")));
        }
    }
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM: what `zsc serve` passes to [`Server::run`].
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_options_are_named() {
        ServeOptions::default().validate().unwrap();
        let e = ServeOptions { max_batch: 0, ..Default::default() }.validate().unwrap_err();
        assert!(e.to_string().contains("max_batch"));
        let e = ServeOptions { max_queue: 10, ..Default::default() }.validate().unwrap_err();
        assert!(e.to_string().contains("max_queue"));
        let e = ServeOptions { label_cache_labels: 5, ..Default::default() }.validate().unwrap_err();
        assert!(e.to_string().contains("label_cache_labels"));
        assert!(ServeOptions::default().host.is_loopback(), "loopback by default");
    }
}
