//! Routes, request and response bodies, limits, and JSON errors that name the limit.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::batcher::{Arriving, Work};
use super::ServeOptions;
use super::{AppState, ModelState};
use crate::classifier::LabelSet;
use crate::label::{check_labels as check_label_set, Label};
use crate::probability::Prediction;
use crate::probability::{Probabilities, ProbabilityMode};

/// An error answer: `{"error": message, "code": ..., "limit": name, "max": value}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    limit: Option<(&'static str, usize)>,
    retry_after: Option<u64>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max: Option<usize>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), limit: None, retry_after: None }
    }

    /// A request over one of the server's limits (`ServeOptions` field `name`).
    fn limit(status: StatusCode, code: &'static str, name: &'static str, max: usize, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), limit: Some((name, max)), retry_after: None }
    }

    pub(crate) fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub(crate) fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            ErrorBody { error: &self.message, code: self.code, limit: self.limit.map(|l| l.0), max: self.limit.map(|l| l.1) };
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(s) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/classify", post(classify))
        .route("/v1/embed", post(embed))
        .route("/v1/embeddings", post(super::openai::embeddings))
        .route("/v1/models", get(super::openai::models))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// Every request: in-flight gauge, the request timeout (answer 503 naming `request_timeout`; the
/// dropped handler cancels its queued job), then the count and latency by route and status.
async fn track(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route: &'static str = match req.extensions().get::<MatchedPath>().map(MatchedPath::as_str) {
        Some("/v1/classify") => "/v1/classify",
        Some("/v1/embed") => "/v1/embed",
        Some("/v1/embeddings") => "/v1/embeddings",
        Some("/v1/models") => "/v1/models",
        Some("/health") => "/health",
        Some("/ready") => "/ready",
        Some("/metrics") => "/metrics",
        _ => "other",
    };
    st.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
    let timeout = st.options.request_timeout;
    let resp = match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::limit(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "request_timeout_ms",
            timeout.as_millis() as usize,
            format!("the request took longer than the server's request_timeout of {} ms", timeout.as_millis()),
        )
        .retry_after(st.options.retry_after_s)
        .into_response(),
    };
    st.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
    st.metrics.record_request(route, resp.status().as_u16(), started.elapsed().as_secs_f64());
    resp
}

/// With API keys: `Authorization: Bearer KEY` on every route but `/health` and `/ready`; a
/// missing or unknown key answers 401 (counted by reason in `/metrics`).
async fn authorize(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let keys = &st.options.api_keys;
    if keys.is_empty() || matches!(req.uri().path(), "/health" | "/ready") {
        return next.run(req).await;
    }
    let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_token);
    let refused = match given {
        Some(key) if keys.accepts(key) => return next.run(req).await,
        Some(_) => {
            st.metrics.auth_invalid.fetch_add(1, Ordering::Relaxed);
            "invalid API key"
        }
        None => {
            st.metrics.auth_missing.fetch_add(1, Ordering::Relaxed);
            "missing API key: send the header `Authorization: Bearer KEY`"
        }
    };
    let mut resp = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", refused).into_response();
    resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

/// The key of an `Authorization: Bearer KEY` header value (the scheme in any case).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, key) = value.trim().split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such route: POST /v1/classify, /v1/embed, /v1/embeddings, GET /v1/models, /health, /ready, /metrics",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed on this route")
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn ready(State(st): State<Arc<AppState>>) -> Response {
    if st.ready.load(Ordering::Relaxed) {
        let default = &st.models[0];
        Json(serde_json::json!({
            "status": "ready",
            "model": default.name,
            "model_type": default.classifier.model_type().as_str(),
            "calibrated": default.classifier.calibration().is_some(),
            "models": st.models.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
        }))
        .into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({"status": "draining"}))).into_response()
    }
}

async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], st.metrics.render()).into_response()
}

/// The body as JSON, within `max_body_bytes`: a declared Content-Length over the limit is refused
/// before a byte of the body is read; a body that turns out longer is cut off at the limit.
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    st: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    let max = st.options.max_body_bytes;
    let too_large = |size: String| {
        ApiError::limit(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "max_body_bytes",
            max,
            format!("request body of {size} bytes is over the limit of {max} bytes"),
        )
    };
    if let Some(len) = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok()) {
        if len > max as u64 {
            return Err(too_large(len.to_string()));
        }
    }
    let bytes: Bytes = match http_body_util::Limited::new(body, max).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large(format!("more than {max}"))),
        Err(e) => return Err(ApiError::bad(format!("reading the request body: {e}"))),
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        let what = if e.is_data() { "request does not match the schema" } else { "malformed JSON" };
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", format!("{what}: {e}"))
    })
}

/// Texts (or labels) of a request against the count and length limits; blank ones are refused.
pub(crate) fn check_inputs(
    items: &[String],
    field: &'static str,
    max_items: (&'static str, usize),
    max_chars: (&'static str, usize),
) -> Result<(), ApiError> {
    if items.is_empty() {
        return Err(ApiError::bad(format!("`{field}` is empty: give at least one")));
    }
    if items.len() > max_items.1 {
        return Err(ApiError::limit(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_items",
            max_items.0,
            max_items.1,
            format!("{} {field} in one request, over the limit of {}", items.len(), max_items.1),
        ));
    }
    for (i, s) in items.iter().enumerate() {
        if s.trim().is_empty() {
            return Err(ApiError::bad(format!("{field}[{i}] is empty")));
        }
        let chars = s.chars().count();
        if chars > max_chars.1 {
            return Err(ApiError::limit(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_long",
                max_chars.0,
                max_chars.1,
                format!("{field}[{i}] has {chars} characters, over the limit of {}", max_chars.1),
            ));
        }
    }
    Ok(())
}

/// A candidate label of a request: a name, or `{"name", "description"?, "examples"?}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum LabelEntry {
    Name(String),
    Label(Label),
}

impl From<LabelEntry> for Label {
    fn from(e: LabelEntry) -> Label {
        match e {
            LabelEntry::Name(n) => Label::new(n),
            LabelEntry::Label(l) => l,
        }
    }
}

/// Labels against the limits: names as `check_inputs` checks labels, descriptions and examples as
/// it checks texts, every label valid, and all their views (name, description, examples) within
/// `max_labels`, since each view is encoded like a label.
fn check_labels(labels: &[Label], o: &ServeOptions) -> Result<(), ApiError> {
    let names: Vec<String> = labels.iter().map(|l| l.name.clone()).collect();
    check_inputs(&names, "labels", ("max_labels", o.max_labels), ("max_label_chars", o.max_label_chars))?;
    if let Err(e) = check_label_set(labels) {
        return Err(ApiError::bad(e.to_string()));
    }
    for l in labels {
        let texts: Vec<String> = l.description.iter().chain(&l.examples).cloned().collect();
        if !texts.is_empty() {
            let field = "the descriptions and examples of a label";
            check_inputs(&texts, field, ("max_labels", o.max_labels), ("max_text_chars", o.max_text_chars))?;
        }
    }
    let views: usize = labels.iter().map(Label::views).sum();
    if views > o.max_labels {
        return Err(ApiError::limit(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_items",
            "max_labels",
            o.max_labels,
            format!("{views} label views (names, descriptions, examples) in one request, over the limit of {}", o.max_labels),
        ));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassifyRequest {
    texts: Vec<String>,
    labels: Vec<LabelEntry>,
    /// The k best labels per text (default and 0: all).
    #[serde(default)]
    top_k: Option<usize>,
    /// Independent per-label probabilities (calibrated sigmoid) instead of a softmax over the labels.
    #[serde(default)]
    multi_label: bool,
    /// Keep only labels with at least this probability.
    #[serde(default)]
    threshold: Option<f32>,
    /// Which served model (default: the first).
    #[serde(default)]
    model: Option<String>,
}

#[derive(Debug, Serialize)]
struct TextResult {
    labels: Vec<Prediction>,
}

#[derive(Debug, Serialize)]
struct ClassifyResponse {
    results: Vec<TextResult>,
    multi_label: bool,
    /// False: the bundle has no calibration and probabilities are the raw sigmoid(score).
    calibrated: bool,
}

async fn classify(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Result<Json<ClassifyResponse>, ApiError> {
    let arriving = st.models[0].queue.arriving();
    let req: ClassifyRequest = read_json(&st, &headers, body).await?;
    let (model, arriving) = pick_model(&st, req.model.as_deref(), arriving)?;
    let o = &st.options;
    let req_labels: Vec<Label> = req.labels.into_iter().map(Label::from).collect();
    check_inputs(&req.texts, "texts", ("max_texts", o.max_texts), ("max_text_chars", o.max_text_chars))?;
    check_labels(&req_labels, o)?;
    if let Some(t) = req.threshold {
        if !(0.0..=1.0).contains(&t) {
            return Err(ApiError::bad(format!("threshold must be a probability between 0 and 1, got {t}")));
        }
    }
    let k = match req.top_k {
        None | Some(0) => req_labels.len(),
        Some(k) => k.min(req_labels.len()),
    };
    let (labels, arriving) = label_set(&st, model, &req_labels, arriving).await?;
    let (tx, rx) = oneshot::channel();
    let queued = submit(&st, model, Work::Classify { texts: req.texts, labels: labels.clone(), reply: tx });
    drop(arriving);
    queued?;
    let scores = wait(rx).await?;
    let mode = if req.multi_label { ProbabilityMode::MultiLabel } else { ProbabilityMode::SingleLabel };
    let p = Probabilities::new(model.classifier.calibration(), mode);
    let results = scores
        .iter()
        .map(|row| {
            let mut ranked = p.rank(row, labels.labels(), k);
            if let Some(t) = req.threshold {
                ranked.retain(|l| l.probability >= t);
            }
            TextResult { labels: ranked }
        })
        .collect();
    Ok(Json(ClassifyResponse { results, multi_label: req.multi_label, calibrated: p.is_calibrated() }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmbedRequest {
    texts: Vec<String>,
    /// Which served model (default: the first).
    #[serde(default)]
    model: Option<String>,
}

#[derive(Debug, Serialize)]
struct EmbedResponse {
    embeddings: Vec<Vec<f32>>,
    dim: usize,
}

async fn embed(State(st): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Result<Json<EmbedResponse>, ApiError> {
    let arriving = st.models[0].queue.arriving();
    let req: EmbedRequest = read_json(&st, &headers, body).await?;
    let (model, arriving) = pick_model(&st, req.model.as_deref(), arriving)?;
    let o = &st.options;
    check_inputs(&req.texts, "texts", ("max_texts", o.max_texts), ("max_text_chars", o.max_text_chars))?;
    let embeddings = embed_texts(&st, model, req.texts, arriving).await?;
    Ok(Json(EmbedResponse { embeddings, dim: model.classifier.manifest().output_dim }))
}

/// Sentence embeddings of `texts` through `model`'s queue (batched with other requests).
pub(crate) async fn embed_texts(
    st: &AppState,
    model: &ModelState,
    texts: Vec<String>,
    arriving: Arriving,
) -> Result<Vec<Vec<f32>>, ApiError> {
    let (tx, rx) = oneshot::channel();
    let queued = submit(st, model, Work::Embed { texts, reply: tx });
    drop(arriving);
    queued?;
    wait(rx).await
}

/// The model a request names (the default when none), with the arriving guard moved to its queue.
pub(crate) fn pick_model<'a>(
    st: &'a AppState,
    name: Option<&str>,
    arriving: Arriving,
) -> Result<(&'a ModelState, Arriving), ApiError> {
    let Some(model) = st.model(name) else {
        let names: Vec<&str> = st.models.iter().map(|m| m.name.as_str()).collect();
        let message = format!("no model `{}` here; served: {}", name.unwrap_or_default(), names.join(", "));
        return Err(ApiError::new(StatusCode::NOT_FOUND, "model_not_found", message));
    };
    if std::ptr::eq(model, &st.models[0]) {
        return Ok((model, arriving));
    }
    drop(arriving);
    Ok((model, model.queue.arriving()))
}

/// The encoded label set from the LRU cache; on a miss it is encoded once (by a worker, queued
/// like any job) while concurrent requests for the same set wait for that one encoding. A request
/// that has to wait for an encoding stops counting as arriving (its text job comes later); on a
/// hit the guard is handed back, to be dropped once the text job is queued.
async fn label_set(
    st: &AppState,
    model: &ModelState,
    labels: &[Label],
    arriving: Arriving,
) -> Result<(Arc<LabelSet>, Option<Arriving>), ApiError> {
    let (cell, _hit) = model.labels.cell(labels);
    if let Some(cache) = cell.get() {
        return Ok((cache.clone(), Some(arriving)));
    }
    drop(arriving);
    let cache = cell
        .get_or_try_init(|| async {
            let (tx, rx) = oneshot::channel();
            submit(st, model, Work::EncodeLabels { labels: labels.to_vec(), reply: tx })?;
            wait(rx).await.map(Arc::new)
        })
        .await?;
    Ok((cache.clone(), None))
}

fn submit(st: &AppState, model: &ModelState, work: Work) -> Result<(), ApiError> {
    model.queue.push(work).map_err(|full| {
        st.metrics.rejected_queue_full.fetch_add(1, Ordering::Relaxed);
        ApiError::limit(
            StatusCode::SERVICE_UNAVAILABLE,
            "queue_full",
            "max_queue",
            full.max,
            format!("the server is busy: {} texts are waiting (limit {}); retry later", full.waiting, full.max),
        )
        .retry_after(st.options.retry_after_s)
    })
}

async fn wait<T>(rx: oneshot::Receiver<Result<T, String>>) -> Result<T, ApiError> {
    match rx.await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(msg)) => Err(ApiError::internal(msg)),
        Err(_) => {
            Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", "the server is shutting down").retry_after(1))
        }
    }
}
