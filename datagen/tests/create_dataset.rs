//! create-dataset against a local chat-completions stand-in (no network): the dataset is valid,
//! the client sends what the API expects, failures (429 + Retry-After, 500, malformed JSON, a
//! hung request) are survived, and an interrupted run resumes without repeating finished items.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use datagen::create_dataset::{create_dataset, CreateDatasetArgs, CreateDatasetSettings, ItemRecord, TopicPoolFile};
use serde_json::{json, Value};
use zsc_core::http::secrets::Secret;
use zsc_testkit::http_stand_in::{serve, Reply, Request};

const KEY: &str = "sk-test-123";
const MODEL: &str = "test-model";
const POOL: [&str; 10] =
    ["Sports", "Finance", "Health", "Music", "Travel", "Cooking", "Politics", "Science", "Education", "Weather"];

#[derive(Debug, Clone)]
struct Logged {
    at: Instant,
    auth: Option<String>,
    body: Value,
    path: String,
    /// Sorted topics named in a sentence request.
    triple: Option<Vec<String>>,
    outcome: &'static str,
}

#[derive(Default)]
struct ChatState {
    log: Vec<Logged>,
    topic_calls: usize,
    sentence_calls: usize,
    /// Sentence requests answered with a valid sentence, per sorted triple.
    served: HashMap<Vec<String>, usize>,
}

/// Which failure the n-th (1-based) sentence request gets.
type FailurePlan = fn(usize) -> Option<&'static str>;

fn chat_ok(content: &str) -> Reply {
    Reply::json(
        200,
        &json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": MODEL,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
        }),
    )
}

fn start_chat_server(failures: FailurePlan) -> (String, Arc<Mutex<ChatState>>) {
    let state = Arc::new(Mutex::new(ChatState::default()));
    let st = state.clone();
    let url = serve(Arc::new(move |req: &Request| {
        let body = req.json();
        let mut s = st.lock().unwrap();
        let mut logged = Logged {
            at: Instant::now(),
            auth: req.header("authorization").map(str::to_string),
            body: body.clone(),
            path: req.path.clone(),
            triple: None,
            outcome: "ok",
        };
        if logged.auth.as_deref() != Some(&format!("Bearer {KEY}")) {
            logged.outcome = "401";
            s.log.push(logged);
            return Reply::json(401, &json!({"error": {"message": "Incorrect API key provided"}}));
        }
        let schema_name = body.pointer("/response_format/json_schema/name").and_then(Value::as_str).unwrap_or("");
        let user = body.pointer("/messages/1/content").and_then(Value::as_str).unwrap_or("").to_string();
        let reply = if schema_name == "topic_pool" {
            s.topic_calls += 1;
            match s.topic_calls {
                1 => {
                    logged.outcome = "500";
                    Reply::json(500, &json!({"error": {"message": "boom"}}))
                }
                // Duplicates (case, spaces, a full stop) must be merged by the client.
                2 => chat_ok(&json!({"topics": ["Sports", " sports ", "Finance", "Health.", "Music", "Travel"]}).to_string()),
                _ => {
                    chat_ok(&json!({"topics": ["Finance", "Cooking", "Politics", "Science", "Education", "Weather"]}).to_string())
                }
            }
        } else {
            s.sentence_calls += 1;
            let mut named: Vec<String> =
                POOL.iter().filter(|t| user.contains(&format!("\"{t}\""))).map(|t| t.to_string()).collect();
            named.sort();
            logged.triple = Some(named.clone());
            match failures(s.sentence_calls) {
                Some("429") => {
                    logged.outcome = "429";
                    Reply::json(429, &json!({"error": {"message": "Rate limit reached"}})).with_header("Retry-After", "1")
                }
                Some("500") => {
                    logged.outcome = "500";
                    Reply::json(500, &json!({"error": {"message": "server error"}}))
                }
                Some("malformed") => {
                    logged.outcome = "malformed";
                    chat_ok("{\"text\": \"cut in the mid")
                }
                Some("empty") => {
                    logged.outcome = "empty";
                    chat_ok("{\"text\": \"   \"}")
                }
                Some("hang") => {
                    logged.outcome = "hang";
                    Reply::Hang(Duration::from_secs(3))
                }
                _ => {
                    *s.served.entry(named.clone()).or_default() += 1;
                    chat_ok(&json!({"text": format!("A text about {}.", named.join(" and\n "))}).to_string())
                }
            }
        };
        s.log.push(logged);
        reply
    }));
    (format!("{url}/v1"), state)
}

fn settings(
    base_url: &str,
    out: &Path,
    n_samples: usize,
    concurrency: usize,
    stop_after: Option<usize>,
) -> CreateDatasetSettings {
    let args = CreateDatasetArgs {
        out: Some(out.to_path_buf()),
        base_url: Some(base_url.to_string()),
        model: Some(MODEL.into()),
        n_topics: Some(10),
        n_samples: Some(n_samples),
        seed: Some(11),
        concurrency: Some(concurrency),
        timeout_secs: Some(1.0),
        max_retries: Some(5),
        retry_base_ms: Some(10),
        topics_per_request: Some(6),
        stop_after,
        ..Default::default()
    };
    CreateDatasetSettings::resolve(&args).expect("settings")
}

fn read_partial(path: &Path) -> Vec<ItemRecord> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn check_dataset(out: &Path, n: usize) {
    let samples = zsc_core::data::load_samples(out).expect("output passes zsc_core::data validation");
    assert_eq!(samples.len(), n);
    for s in &samples {
        assert_eq!(s.labels.len(), 3);
        assert_eq!(s.labels.iter().collect::<HashSet<_>>().len(), 3, "{s:?}");
        for l in &s.labels {
            assert!(POOL.contains(&l.as_str()), "label {l} not from the pool");
            // The stand-in names the requested topics in its sentence: the record pairs the
            // answer with the labels it was asked for.
            assert!(s.text.contains(l.as_str()), "{s:?}");
        }
        assert!(!s.text.contains('\n'), "newlines are folded: {s:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn generates_a_valid_dataset_through_failures() {
    let (url, state) = start_chat_server(|n| match n {
        1 => Some("429"),
        2 => Some("500"),
        3 => Some("malformed"),
        4 => Some("hang"),
        5 => Some("empty"),
        _ => None,
    });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gen.json");
    let s = settings(&url, &out, 20, 4, None);
    let summary = create_dataset(&s, Some(Secret::new(KEY))).await.expect("generation succeeds");
    assert!(summary.completed);
    assert_eq!((summary.generated, summary.resumed, summary.n_topics), (20, 0, 10));
    check_dataset(&out, 20);

    let pool: TopicPoolFile = serde_json::from_str(&std::fs::read_to_string(s.topics_path()).unwrap()).unwrap();
    assert_eq!(pool.topics, POOL.to_vec(), "deduplicated pool in first-seen order");
    assert_eq!(pool.seed, 11);
    assert_eq!(read_partial(&s.partial_path()).len(), 20);

    let st = state.lock().unwrap();
    // What the client sent.
    for l in &st.log {
        assert_eq!(l.path, "/v1/chat/completions");
        assert_eq!(l.auth.as_deref(), Some("Bearer sk-test-123"));
        assert_eq!(l.body["model"], MODEL);
        assert_eq!(l.body["response_format"]["type"], "json_schema");
        assert_eq!(l.body["response_format"]["json_schema"]["strict"], true);
        assert_eq!(l.body["response_format"]["json_schema"]["schema"]["type"], "object");
        assert_eq!(l.body["messages"][0]["role"], "system");
        assert_eq!(l.body["messages"][1]["role"], "user");
        assert!(l.body.get("temperature").is_none(), "temperature only when asked for");
    }
    assert_eq!(st.topic_calls, 3, "one 500 retried, then two requests to fill 10 distinct topics");
    let topic_req = st.log.iter().rfind(|l| l.triple.is_none()).unwrap();
    let ask = topic_req.body["messages"][1]["content"].as_str().unwrap();
    assert!(ask.contains("List 5 distinct") && ask.contains("Do not repeat any of these topics: Sports"), "{ask}");

    // Every failure was retried until that item succeeded; the 429's Retry-After was honoured.
    for kind in ["429", "500", "malformed", "hang", "empty"] {
        let failed =
            st.log.iter().find(|l| l.outcome == kind && l.triple.is_some()).unwrap_or_else(|| panic!("no {kind} injected"));
        let triple = failed.triple.clone().unwrap();
        assert_eq!(st.served.get(&triple), Some(&1), "{kind}: item retried to exactly one success");
        if kind == "429" {
            let retry = st.log.iter().find(|l| l.triple.as_ref() == Some(&triple) && l.at > failed.at).unwrap();
            assert!(retry.at - failed.at >= Duration::from_millis(950), "Retry-After: 1 honoured");
        }
    }
    // Each planned item was answered exactly once.
    assert_eq!(st.served.len(), 20);
    assert!(st.served.values().all(|&c| c == 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resumes_without_repeating_finished_items() {
    let (url, state) = start_chat_server(|n| (n == 2).then_some("500"));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("data").join("resumed.json");

    // First run: "interrupted" after 7 items.
    let s1 = settings(&url, &out, 30, 3, Some(7));
    let first = create_dataset(&s1, Some(Secret::new(KEY))).await.unwrap();
    assert!(!first.completed);
    assert_eq!(first.generated, 7);
    assert!(!out.exists(), "no output before every item is done");
    let finished = read_partial(&s1.partial_path());
    assert_eq!(finished.len(), 7);
    // A crash while writing leaves half a line; it must be dropped, not glued to the next one.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(s1.partial_path()).unwrap();
        f.write_all(b"{\"index\": 29, \"text\": \"half").unwrap();
    }
    let topic_calls_before = state.lock().unwrap().topic_calls;
    let log_len_before = state.lock().unwrap().log.len();

    // Second run: the same settings, to the end.
    let s2 = settings(&url, &out, 30, 3, None);
    let second = create_dataset(&s2, Some(Secret::new(KEY))).await.unwrap();
    assert!(second.completed);
    assert_eq!((second.resumed, second.generated), (7, 23));
    check_dataset(&out, 30);

    let records = read_partial(&s2.partial_path());
    let indices: Vec<usize> = records.iter().map(|r| r.index).collect();
    let unique: HashSet<usize> = indices.iter().copied().collect();
    assert_eq!(indices.len(), 30, "nothing written twice");
    assert_eq!(unique, (0..30).collect::<HashSet<_>>(), "all indices present");
    // The output keeps plan order and the first run's texts.
    let samples = zsc_core::data::load_samples(&out).unwrap();
    for r in &finished {
        assert_eq!(samples[r.index].text, r.text);
        assert_eq!(samples[r.index].labels, r.labels);
    }

    let st = state.lock().unwrap();
    assert_eq!(st.topic_calls, topic_calls_before, "the saved topic pool is reused");
    let finished_triples: HashSet<Vec<String>> = finished
        .iter()
        .map(|r| {
            let mut t = r.labels.clone();
            t.sort();
            t
        })
        .collect();
    for l in &st.log[log_len_before..] {
        let t = l.triple.as_ref().expect("second run sends only sentence requests");
        assert!(!finished_triples.contains(t), "finished item {t:?} requested again");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_key_fails_fast_without_leaking_it() {
    let (url, state) = start_chat_server(|_| None);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.json");
    let s = settings(&url, &out, 5, 2, None);
    let err = create_dataset(&s, Some(Secret::new("sk-wrong-secret"))).await.unwrap_err();
    let msg = format!("{err} {err:?}");
    assert!(msg.contains("401"), "{msg}");
    assert!(!msg.contains("sk-wrong-secret"), "the key must not appear in errors: {msg}");
    assert_eq!(state.lock().unwrap().log.len(), 1, "401 is not retried");
    assert!(!out.exists());
}
