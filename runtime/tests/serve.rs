//! `zsc::serve` on loopback with a tiny bundle: the API, dynamic batching, a short load test
//! (concurrency 1, 16, 64), abuse (malformed JSON, a 100 MB body, 100k labels, empty and
//! non-string texts, idle half-open connections, a slow body) followed by a check that the server
//! still answers correctly, a full queue (503 + Retry-After), and graceful shutdown. The full
//! 60-second runs with a real model are `scripts/load_test.sh` (docs/serving.md).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use zsc::serve::{ServeOptions, Server};
use zsc::{Classifier, ClassifierOptions};
use zsc_core::ModelType;

struct Running {
    addr: SocketAddr,
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    metrics: Arc<zsc::serve::Metrics>,
}

impl Running {
    async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), self.task).await.expect("server stops").unwrap();
    }
}

fn classifier() -> Arc<Classifier> {
    let bundle = &common::bundles().bi;
    Arc::new(Classifier::from_dir(bundle, ClassifierOptions::default().with_intra_threads(1)).unwrap())
}

/// `ServeOptions` is `#[non_exhaustive]`: the defaults, changed by `f`.
fn opts(f: impl FnOnce(&mut ServeOptions)) -> ServeOptions {
    with(ServeOptions::default(), f)
}

fn with(mut o: ServeOptions, f: impl FnOnce(&mut ServeOptions)) -> ServeOptions {
    f(&mut o);
    o
}

async fn start(clf: Arc<Classifier>, options: ServeOptions) -> Running {
    start_models(vec![("tiny-bi".into(), clf)], options).await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(128).build().unwrap()
}

const LABELS: [&str; 4] = ["banking", "cooking", "weather", "music"];

async fn classify(c: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let r = c.post(format!("{url}/v1/classify")).json(body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The server's answer must be the library's: same ranking and scores as `Classifier::classify`.
async fn assert_answers_correctly(clf: &Classifier, c: &reqwest::Client, url: &str) {
    let texts = ["how do i transfer money", "bake a chocolate cake", "will it rain"];
    let (status, v) = classify(c, url, &json!({"texts": texts, "labels": LABELS})).await;
    assert_eq!(status, 200, "{v}");
    let expected = clf.scores(&texts, &LABELS).unwrap();
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    for (row, res) in expected.iter().zip(results) {
        let labels = res["labels"].as_array().unwrap();
        assert_eq!(labels.len(), LABELS.len());
        let best = zsc_core::metrics::top_k_indices(row, 1)[0];
        assert_eq!(labels[0]["label"], LABELS[best]);
        for l in labels {
            let j = LABELS.iter().position(|x| *x == l["label"].as_str().unwrap()).unwrap();
            assert!((l["score"].as_f64().unwrap() - row[j] as f64).abs() < 1e-5);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_endpoints_and_probabilities() {
    let clf = classifier();
    let s = start(clf.clone(), ServeOptions::default()).await;
    let c = client();
    assert_answers_correctly(&clf, &c, &s.url).await;

    // top_k, multi_label, threshold
    let (status, v) = classify(&c, &s.url, &json!({"texts": ["x"], "labels": LABELS, "top_k": 2})).await;
    assert_eq!(status, 200);
    assert_eq!(v["results"][0]["labels"].as_array().unwrap().len(), 2);
    assert_eq!((v["multi_label"].as_bool(), v["calibrated"].as_bool()), (Some(false), Some(false)));
    let (_, v) = classify(&c, &s.url, &json!({"texts": ["x"], "labels": LABELS, "multi_label": true, "threshold": 0.0})).await;
    assert_eq!(v["multi_label"], true);
    assert_eq!(v["results"][0]["labels"].as_array().unwrap().len(), 4);
    let row = clf.scores(&["x"], &LABELS).unwrap().remove(0);
    let cut = zsc::scoring::sigmoid(row.iter().copied().fold(f32::NEG_INFINITY, f32::max)) - 1e-6;
    let (_, v) = classify(&c, &s.url, &json!({"texts": ["x"], "labels": LABELS, "multi_label": true, "threshold": cut})).await;
    let kept = v["results"][0]["labels"].as_array().unwrap();
    assert!(!kept.is_empty() && kept.iter().all(|l| l["probability"].as_f64().unwrap() >= cut as f64), "{v}");

    // embed: one vector of the encoder's width per text
    let r = c.post(format!("{}/v1/embed", s.url)).json(&json!({"texts": ["a", "b c"]})).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["dim"], common::HIDDEN);
    let e = v["embeddings"].as_array().unwrap();
    assert_eq!(e.len(), 2);
    let expected = clf.embed(&["a", "b c"]).unwrap();
    for (k, got) in e[1].as_array().unwrap().iter().enumerate() {
        assert!((got.as_f64().unwrap() - expected[[1, k]] as f64).abs() < 1e-5);
    }

    // health, ready, metrics
    let h: Value = c.get(format!("{}/health", s.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(h["status"], "ok");
    let r: Value = c.get(format!("{}/ready", s.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        (r["status"].as_str(), r["model_type"].as_str(), r["calibrated"].as_bool()),
        (Some("ready"), Some("bi_encoder"), Some(false))
    );
    let m = c.get(format!("{}/metrics", s.url)).send().await.unwrap();
    assert!(m.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let m = m.text().await.unwrap();
    assert!(m.contains("zsc_requests_total{route=\"/v1/classify\",status=\"200\"} 4"), "{m}");
    assert!(m.contains("zsc_label_cache_hits_total 3") && m.contains("zsc_label_cache_misses_total 1"), "{m}");
    assert!(m.contains("zsc_batch_texts_count") && m.contains("zsc_queue_depth 0"));

    // labels may be objects with a description and examples: scored as the library scores them
    let refund =
        zsc::Label::new("refund").with_description("money back").with_examples(["reverse the charge", "undo my payment"]);
    let body = json!({"texts": ["x", "pay me back"], "labels": [
        {"name": "refund", "description": "money back", "examples": ["reverse the charge", "undo my payment"]}, "music"]});
    let (status, v) = classify(&c, &s.url, &body).await;
    assert_eq!(status, 200, "{v}");
    let expected = clf.scores(&["x", "pay me back"], &[refund, zsc::Label::new("music")]).unwrap();
    for (row, res) in expected.iter().zip(v["results"].as_array().unwrap()) {
        for l in res["labels"].as_array().unwrap() {
            let j = usize::from(l["label"] == "music");
            assert!((l["score"].as_f64().unwrap() - row[j] as f64).abs() < 1e-5, "{v}");
        }
    }
    for (bad, says) in [
        (json!([{"name": "refund", "examples": ["ok", ""]}]), "example 1 is empty"),
        (json!(["refund", {"name": "refund"}]), "twice"),
    ] {
        let (status, v) = classify(&c, &s.url, &json!({"texts": ["x"], "labels": bad})).await;
        assert_eq!(status, 400, "{v}");
        assert!(v.to_string().contains(says), "{v}");
    }

    s.shutdown().await;
}

/// Short CI version of the load test: every request succeeds at concurrency 1, 16 and 64,
/// concurrent requests share encoder batches, memory stays flat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_load_test() {
    let clf = classifier();
    let s = start(clf.clone(), ServeOptions::default()).await;
    let c = client();
    let texts: Vec<String> = (0..97).map(|i| format!("request number {i} about {}", LABELS[i % 4])).collect();
    let rss_start = rss_kib();
    for concurrency in [1usize, 16, 64] {
        let deadline = Instant::now() + Duration::from_millis(1500);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..concurrency {
            let (c, url, texts) = (c.clone(), s.url.clone(), texts.clone());
            tasks.push(tokio::spawn(async move {
                let (mut ok, mut bad, mut i) = (0usize, 0usize, w);
                while Instant::now() < deadline {
                    let body = json!({"texts": [texts[i % texts.len()]], "labels": LABELS, "top_k": 1});
                    let (status, v) = classify(&c, &url, &body).await;
                    if status == 200 && v["results"][0]["labels"].as_array().is_some_and(|l| l.len() == 1) {
                        ok += 1;
                    } else {
                        bad += 1;
                    }
                    i += concurrency;
                }
                (ok, bad)
            }));
        }
        let (mut ok, mut bad) = (0, 0);
        for t in tasks {
            let (o, b) = t.await.unwrap();
            ok += o;
            bad += b;
        }
        let secs = started.elapsed().as_secs_f64();
        eprintln!("concurrency {concurrency}: {ok} requests in {secs:.2} s = {:.0} req/s, {bad} errors", ok as f64 / secs);
        assert_eq!(bad, 0, "errors at concurrency {concurrency}");
        assert!(ok > 0);
    }
    let m = s.metrics.render();
    // some encoder batch held texts of several concurrent requests
    let single = metric(&m, "zsc_batch_texts_bucket{le=\"1\"}");
    let total = metric(&m, "zsc_batch_texts_count");
    assert!(total > single, "no batch ever held more than one text:\n{m}");
    let rss_end = rss_kib();
    eprintln!("RSS {rss_start} KiB -> {rss_end} KiB");
    assert!(rss_end < rss_start + 200 * 1024, "memory grew by {} KiB", rss_end - rss_start);
    assert_answers_correctly(&clf, &c, &s.url).await;
    s.shutdown().await;
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok()).unwrap_or(0.0)
}

fn rss_kib() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// Send raw bytes on a fresh connection and read the answer until the server closes or answers.
fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.windows(4).any(|w| w == b"\r\n\r\n") && String::from_utf8_lossy(&out).contains("\"code\"") {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abuse_gets_4xx_naming_the_limit_and_the_server_keeps_answering() {
    let clf = classifier();
    let options = opts(|o| {
        o.header_read_timeout = Duration::from_millis(500);
        o.request_timeout = Duration::from_millis(1500);
        o.max_text_chars = 100;
    });
    let s = start(clf.clone(), options).await;
    let c = client();
    let post = |body: String| {
        let (c, url) = (c.clone(), s.url.clone());
        async move {
            let r =
                c.post(format!("{url}/v1/classify")).header("content-type", "application/json").body(body).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };

    // malformed JSON, wrong types, unknown fields
    let (st, v) = post("{\"texts\": [\"a\"], \"labels\": ".into()).await;
    assert_eq!((st, v["code"].as_str()), (400, Some("invalid_json")), "{v}");
    let (st, v) = post(json!({"texts": [1, 2], "labels": ["a"]}).to_string()).await;
    assert_eq!(st, 400);
    assert!(v["error"].as_str().unwrap().contains("expected a string"), "{v}");
    let (st, v) = post(json!({"texts": ["a"], "labels": ["a"], "top": 3}).to_string()).await;
    assert_eq!(st, 400);
    assert!(v["error"].as_str().unwrap().contains("unknown field `top`"), "{v}");
    // empty and blank texts, no labels
    let (st, v) = post(json!({"texts": [], "labels": ["a"]}).to_string()).await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = post(json!({"texts": ["ok", "  "], "labels": ["a"]}).to_string()).await;
    assert_eq!(st, 400);
    assert!(v["error"].as_str().unwrap().contains("texts[1] is empty"), "{v}");
    let (st, _) = post(json!({"texts": ["ok"], "labels": []}).to_string()).await;
    assert_eq!(st, 400);
    // 100k labels: 413 naming max_labels
    let many: Vec<String> = (0..100_000).map(|i| format!("{i}")).collect();
    let (st, v) = post(json!({"texts": ["a"], "labels": many}).to_string()).await;
    assert_eq!((st, v["limit"].as_str(), v["max"].as_u64()), (413, Some("max_labels"), Some(1000)), "{v}");
    // a text over max_text_chars
    let (st, v) = post(json!({"texts": ["x".repeat(101)], "labels": ["a"]}).to_string()).await;
    assert_eq!((st, v["limit"].as_str()), (413, Some("max_text_chars")), "{v}");
    // too many texts
    let (st, v) = post(json!({"texts": vec!["t"; 257], "labels": ["a"]}).to_string()).await;
    assert_eq!((st, v["limit"].as_str()), (413, Some("max_texts")), "{v}");
    // a bad threshold, a route and a method that do not exist
    let (st, _) = post(json!({"texts": ["a"], "labels": ["a"], "threshold": 2.0}).to_string()).await;
    assert_eq!(st, 400);
    let r = c.get(format!("{}/v2/nothing", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "not_found");
    let r = c.get(format!("{}/v1/classify", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 405);

    // A 100 MB body: refused from its Content-Length, before a byte of the body is read.
    let addr = s.addr;
    let answer = tokio::task::spawn_blocking(move || {
        raw(addr, b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n")
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"limit\":\"max_body_bytes\""), "{answer}");
    // ... and one that does not declare its size (chunked): cut off at the limit. One byte over
    // it, so that the server has read everything sent when it answers (no reset on close).
    let answer = tokio::task::spawn_blocking(move || {
        let over = (1usize << 20) + 1;
        let mut req =
            format!("POST /v1/classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{over:x}\r\n").into_bytes();
        req.extend(std::iter::repeat_n(b'x', over));
        raw(addr, &req)
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 413") && answer.contains("max_body_bytes"), "{answer}");

    // A body that never completes: the request timeout answers 503 naming the limit.
    let answer = tokio::task::spawn_blocking(move || {
        raw(addr, b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"texts\":")
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503") && answer.contains("request_timeout_ms"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1"), "{answer}");

    // Idle half-open connections: 50 clients that send half a request head and stop.
    let idle: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut t = TcpStream::connect(addr).unwrap();
            t.write_all(b"POST /v1/classify HTTP/1.1\r\nHost: x\r\n").unwrap();
            t
        })
        .collect();
    // the server still answers others meanwhile
    assert_answers_correctly(&clf, &c, &s.url).await;
    // and closes them after header_read_timeout
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for mut t in idle {
        t.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 256];
        let n = t.read(&mut buf).unwrap_or(0);
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "idle connection still open: {text}");
    }

    // after all that: correct answers, and /metrics counted the 4xx
    assert_answers_correctly(&clf, &c, &s.url).await;
    let m = c.get(format!("{}/metrics", s.url)).send().await.unwrap().text().await.unwrap();
    assert!(metric(&m, "zsc_requests_total{route=\"/v1/classify\",status=\"413\"}") >= 5.0, "{m}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_with_retry_after() {
    let clf = classifier();
    let options = opts(|o| (o.max_queue, o.max_texts, o.max_labels, o.max_batch) = (8, 8, 8, 8));
    let s = start(clf, options).await;
    let c = client();
    let texts: Vec<String> = (0..8).map(|i| format!("a somewhat longer text number {i} to keep the encoder busy")).collect();
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (c, url, texts) = (c.clone(), s.url.clone(), texts.clone());
        tasks.push(tokio::spawn(async move {
            let r = c.post(format!("{url}/v1/classify")).json(&json!({"texts": texts, "labels": LABELS})).send().await.unwrap();
            let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
            (r.status().as_u16(), retry, r.json::<Value>().await.unwrap())
        }));
    }
    let (mut ok, mut busy) = (0, 0);
    for t in tasks {
        let (status, retry, v) = t.await.unwrap();
        match status {
            200 => ok += 1,
            503 => {
                busy += 1;
                assert_eq!(retry.as_deref(), Some("1"));
                assert_eq!((v["code"].as_str(), v["limit"].as_str()), (Some("queue_full"), Some("max_queue")), "{v}");
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    eprintln!("{ok} answered, {busy} turned away");
    assert!(ok >= 1 && busy >= 1, "{ok} ok, {busy} busy");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let clf = classifier();
    let s = start(clf, opts(|o| o.max_batch = 4)).await;
    let c = client();
    let texts: Vec<String> = (0..200).map(|i| format!("text {i} with a few more words in it")).collect();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (c, url, texts) = (c.clone(), s.url.clone(), texts.clone());
        tasks.push(tokio::spawn(async move { classify(&c, &url, &json!({"texts": texts, "labels": LABELS})).await }));
    }
    // shut down while they are being served
    while s.metrics.in_flight.load(std::sync::atomic::Ordering::Relaxed) < 8 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let addr = s.addr;
    s.shutdown().await;
    for t in tasks {
        let (status, v) = t.await.unwrap();
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["results"].as_array().unwrap().len(), 200);
    }
    assert!(TcpStream::connect(addr).is_err(), "no longer listening");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_options_and_taken_ports_are_errors() {
    let clf = classifier();
    let e = Server::bind(clf.clone(), "m", opts(|o| o.workers = 0)).await.err().unwrap();
    assert!(e.to_string().contains("workers"), "{e}");
    let s = start(clf.clone(), ServeOptions::default()).await;
    let e = Server::bind(clf, "m", opts(|o| o.port = s.addr.port())).await.err().unwrap();
    assert!(e.to_string().contains(&s.addr.to_string()), "{e}");
    s.shutdown().await;
}

#[test]
fn poly_and_colbert_bundles_serve_too() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    for (bundle, t) in [(&common::bundles().poly, ModelType::PolyEncoder), (&common::bundles().colbert, ModelType::Colbert)] {
        let clf = Arc::new(Classifier::from_dir(bundle, ClassifierOptions::default()).unwrap());
        assert_eq!(clf.model_type(), t);
        rt.block_on(async {
            let s = start(clf.clone(), ServeOptions::default()).await;
            assert_answers_correctly(&clf, &client(), &s.url).await;
            s.shutdown().await;
        });
    }
}

async fn start_models(models: Vec<(String, Arc<Classifier>)>, options: ServeOptions) -> Running {
    let server = Server::bind_models(models, with(options, |o| o.port = 0)).await.unwrap();
    let addr = server.local_addr().unwrap();
    let metrics = server.metrics();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    Running { addr, url: format!("http://{addr}"), stop: Some(tx), task, metrics }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_guard_every_route_but_health_and_ready() {
    let clf = classifier();
    let s = start(clf.clone(), opts(|o| o.api_keys = zsc::serve::ApiKeys::new(["key-one", " key-two "]))).await;
    let c = client();
    let body = json!({"texts": ["x"], "labels": LABELS});
    for route in ["/health", "/ready"] {
        assert_eq!(c.get(format!("{}{route}", s.url)).send().await.unwrap().status(), 200, "{route} stays open");
    }
    let r = c.post(format!("{}/v1/classify", s.url)).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["code"], "unauthorized");
    assert!(v["error"].as_str().unwrap().contains("Authorization: Bearer"), "{v}");
    for wrong in ["key-on", "key-one2", "Basic a2V5LW9uZQ=="] {
        let header = if wrong.starts_with("Basic") { wrong.to_string() } else { format!("Bearer {wrong}") };
        let r = c.post(format!("{}/v1/classify", s.url)).header("authorization", header).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 401, "{wrong}");
    }
    for key in ["key-one", "key-two"] {
        let r = c.post(format!("{}/v1/classify", s.url)).bearer_auth(key).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200, "{key}");
    }
    assert_eq!(c.get(format!("{}/metrics", s.url)).send().await.unwrap().status(), 401);
    assert_eq!(c.get(format!("{}/v1/models", s.url)).send().await.unwrap().status(), 401);
    let text = c.get(format!("{}/metrics", s.url)).bearer_auth("key-two").send().await.unwrap().text().await.unwrap();
    // missing: the first classify, /metrics and /v1/models; invalid: the two wrong Bearer keys
    // (a Basic header has no Bearer key: missing)
    assert!(text.contains("zsc_auth_failures_total{reason=\"missing\"} 4"), "{text}");
    assert!(text.contains("zsc_auth_failures_total{reason=\"invalid\"} 2"), "{text}");
    assert!(text.contains("zsc_requests_total{route=\"/v1/classify\",status=\"401\"} 4"), "{text}");
    assert!(!format!("{:?}", zsc::serve::ApiKeys::new(["secret"])).contains("secret"));
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_models_and_openai_embeddings() {
    let bi = classifier();
    let poly = Arc::new(Classifier::from_dir(&common::bundles().poly, ClassifierOptions::default()).unwrap());
    let s = start_models(vec![("bi".into(), bi.clone()), ("poly".into(), poly.clone())], ServeOptions::default()).await;
    let c = client();
    let models: Value = c.get(format!("{}/v1/models", s.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(models["object"], "list");
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["bi", "poly"]);
    assert_eq!(
        (models["data"][0]["default"].as_bool(), models["data"][1]["model_type"].as_str()),
        (Some(true), Some("poly_encoder"))
    );

    // classify: the default, then by name; an unknown name is 404 naming the served ones
    let (_, v) = classify(&c, &s.url, &json!({"texts": ["x"], "labels": ["a b"], "model": "poly"})).await;
    let expected = poly.scores(&["x"], &["a b"]).unwrap()[0][0];
    assert!((v["results"][0]["labels"][0]["score"].as_f64().unwrap() - expected as f64).abs() < 1e-5, "{v}");
    let (_, v) = classify(&c, &s.url, &json!({"texts": ["x"], "labels": ["a b"]})).await;
    let expected = bi.scores(&["x"], &["a b"]).unwrap()[0][0];
    assert!((v["results"][0]["labels"][0]["score"].as_f64().unwrap() - expected as f64).abs() < 1e-5, "{v}");
    let (status, v) = classify(&c, &s.url, &json!({"texts": ["x"], "labels": ["a"], "model": "nope"})).await;
    assert_eq!((status, v["code"].as_str()), (404, Some("model_not_found")));
    assert!(v["error"].as_str().unwrap().contains("bi, poly"), "{v}");

    // /v1/embeddings: floats, base64 (little-endian f32), usage, the model's width only
    let embeddings = |body: Value| {
        let c = c.clone();
        let url = format!("{}/v1/embeddings", s.url);
        async move {
            let r = c.post(url).json(&body).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let texts = ["a b c", "d"];
    let expected = poly.embed(&texts).unwrap();
    let (status, v) = embeddings(json!({"input": texts, "model": "poly"})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!((v["object"].as_str(), v["model"].as_str()), (Some("list"), Some("poly")));
    let tokens: usize = poly.token_counts(&texts).unwrap().iter().sum();
    assert_eq!(v["usage"], json!({"prompt_tokens": tokens, "total_tokens": tokens}));
    for (i, item) in v["data"].as_array().unwrap().iter().enumerate() {
        assert_eq!((item["object"].as_str(), item["index"].as_u64()), (Some("embedding"), Some(i as u64)));
        for (k, x) in item["embedding"].as_array().unwrap().iter().enumerate() {
            assert!((x.as_f64().unwrap() - expected[[i, k]] as f64).abs() < 1e-5);
        }
    }
    let (_, v) = embeddings(json!({"input": "a b c", "model": "poly", "encoding_format": "base64"})).await;
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(v["data"][0]["embedding"].as_str().unwrap()).unwrap();
    let decoded: Vec<f32> = bytes.chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    assert_eq!(decoded.len(), common::HIDDEN);
    assert!(decoded.iter().zip(expected.row(0)).all(|(a, b)| (a - b).abs() < 1e-5));
    let dim = common::HIDDEN;
    assert_eq!(embeddings(json!({"input": "x", "dimensions": dim})).await.0, 200);
    for bad in [
        json!({"input": "x", "dimensions": dim - 1}),
        json!({"input": "x", "dimensions": dim + 1}),
        json!({"input": [[1, 2, 3]]}),
        json!({"input": []}),
        json!({"input": "x", "encoding_format": "int8"}),
    ] {
        let (status, v) = embeddings(bad.clone()).await;
        assert_eq!(status, 400, "{bad} -> {v}");
    }
    assert_eq!(embeddings(json!({"input": "x", "model": "gpt-4"})).await.0, 404);
    s.shutdown().await;

    // a Matryoshka model may be cut: the first dimensions, renormalised
    let s = start_models(vec![("bi".into(), bi.clone())], opts(|o| o.truncatable_embeddings = true)).await;
    let r = c.post(format!("{}/v1/embeddings", s.url)).json(&json!({"input": "a b c", "dimensions": 8})).send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    let cut: Vec<f64> = v["data"][0]["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert_eq!(cut.len(), 8);
    // the tiny bundle does not normalise: the cut is the first 8 entries as they are (the
    // renormalisation of unit vectors is unit-tested in serve/openai.rs)
    assert!(!bi.spec().embedding.normalize);
    let full = bi.embed(&["a b c"]).unwrap();
    assert!(cut.iter().zip(full.row(0)).all(|(a, b)| (a - *b as f64).abs() < 1e-5), "{cut:?}");
    s.shutdown().await;

    let e = Server::bind_models(vec![("m".into(), bi.clone()), ("m".into(), bi)], opts(|o| o.port = 0)).await.err().unwrap();
    assert!(e.to_string().contains("two models are named `m`"), "{e}");
}
