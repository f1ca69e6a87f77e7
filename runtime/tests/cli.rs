//! End-to-end tests of the `zsc` binary on tiny exported bundles.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use zsc_core::metrics::EvalReport;
use zsc_core::ModelType;

fn zsc(args: &[&str], cwd: Option<&Path>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_zsc"));
    c.args(args);
    if let Some(d) = cwd {
        c.current_dir(d);
    }
    c.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

const DATA: &str = r#"[
  {"text": "how do i transfer money to savings", "labels": ["banking"]},
  {"text": "what is my checking balance", "labels": ["banking"]},
  {"text": "recipe for banana bread", "labels": ["cooking"]},
  {"text": "how long do i boil an egg", "labels": ["cooking"]},
  {"text": "book a table for two tonight", "labels": ["restaurant", "booking"]},
  {"text": "reserve a room for friday", "labels": ["booking"]},
  {"text": "will it rain tomorrow", "labels": ["weather"]},
  {"text": "is it sunny in paris", "labels": ["weather"]}
]"#;

struct Fixture {
    bundle: PathBuf,
    data: PathBuf,
    /// A bundle whose manifest records the relative data path `data/train.json`.
    relative_bundle: PathBuf,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let root = common::tmp_root().join("cli-data");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let data = root.join("small.json");
        std::fs::write(&data, DATA).unwrap();
        Fixture {
            bundle: common::make_bundle("cli-bi", ModelType::BiEncoder, None, Some(&data)),
            data,
            relative_bundle: common::make_bundle("cli-relative", ModelType::PolyEncoder, None, None),
        }
    })
}

#[test]
fn classify_prints_ranked_labels() {
    let f = fixture();
    let b = f.bundle.to_str().unwrap();
    let o = zsc(
        &[
            "classify",
            "--model",
            b,
            "--label",
            "banking",
            "--label",
            "cooking",
            "--label",
            "weather",
            "--top-k",
            "2",
            "transfer money",
            "bake a cake",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("transfer money") && out.contains("bake a cake"), "{out}");
    // Two label lines per text, each with a score and a probability.
    assert_eq!(out.lines().filter(|l| l.contains("p=")).count(), 4, "{out}");
}

#[test]
fn classify_json_is_one_object_per_text() {
    let f = fixture();
    let labels_file = common::tmp_root().join("cli-data").join("labels.txt");
    std::fs::write(&labels_file, "banking\n\ncooking\nweather\n").unwrap();
    let o = zsc(
        &[
            "classify",
            "--model",
            f.bundle.to_str().unwrap(),
            "--labels-file",
            labels_file.to_str().unwrap(),
            "--label",
            "sports",
            "--json",
            "--threads",
            "1",
            "--batch-size",
            "1",
            "Zürich café 😠",
            "hello",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // `text` first, then `labels` (each `label`, `score`, `probability`).
    assert!(stdout(&o).lines().all(|l| l.starts_with("{\"text\":") && l.contains("[{\"label\":")), "{}", stdout(&o));
    let lines: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["text"], "Zürich café 😠");
    let labels = lines[1]["labels"].as_array().unwrap();
    assert_eq!(labels.len(), 4); // default top-k 5, only 4 labels
    let scores: Vec<f64> = labels.iter().map(|l| l["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "ranked: {scores:?}");
    for l in labels {
        let (s, p) = (l["score"].as_f64().unwrap(), l["probability"].as_f64().unwrap());
        assert!((1.0 / (1.0 + (-s).exp()) - p).abs() < 1e-5);
        assert!(l["label"].is_string());
    }

    // --threshold keeps only labels at or above the probability.
    let o = zsc(
        &["classify", "--model", f.bundle.to_str().unwrap(), "--label", "a", "--label", "b", "--threshold", "0.0", "--json", "x"],
        None,
    );
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["labels"].as_array().unwrap().len(), 2);
    let o = zsc(&["classify", "--model", f.bundle.to_str().unwrap(), "--label", "a", "--threshold", "1", "--json", "x"], None);
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert!(v["labels"].as_array().unwrap().len() <= 1);
}

#[test]
fn classify_errors_exit_non_zero() {
    let f = fixture();
    let b = f.bundle.to_str().unwrap();
    let o = zsc(&["classify", "--model", b, "some text"], None);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--label"), "{}", stderr(&o));

    let o = zsc(&["classify", "--model", "/nonexistent/bundle", "--label", "x", "t"], None);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("/nonexistent/bundle"), "{}", stderr(&o));

    let o = zsc(&["classify", "--model", b, "--label", "x", "fine", ""], None);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("text 1 is empty"), "{}", stderr(&o));

    let o = zsc(&["classify", "--model", b, "--label", "x", "--device", "tpu", "t"], None);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("tpu"), "{}", stderr(&o));
}

fn report(o: &Output) -> EvalReport {
    assert!(o.status.success(), "{}", stderr(o));
    let out = stdout(o);
    serde_json::from_str(out.lines().last().unwrap()).unwrap()
}

#[test]
fn eval_reports_the_trainer_metrics() {
    let f = fixture();
    let b = f.bundle.to_str().unwrap();
    // Defaults: the manifest's data file and the test split (0.25 of 8 samples).
    let r = report(&zsc(&["eval", "--model", b, "--json"], None));
    assert_eq!(r.split, "test");
    assert_eq!(r.n_texts, 2);
    assert!((0.0..=1.0).contains(&r.top1_accuracy) && (0.0..=1.0).contains(&r.accuracy_at_k));

    // The same numbers through the library.
    let all = report(&zsc(&["eval", "--model", b, "--split", "all", "--json"], None));
    assert_eq!((all.split.as_str(), all.n_texts, all.n_labels), ("all", 8, 5));
    let clf = zsc::Classifier::from_dir(&f.bundle, zsc::ClassifierOptions::default()).unwrap();
    let samples = zsc_core::data::load_samples(&f.data).unwrap();
    let labels = zsc_core::data::unique_labels(&samples);
    let scores = clf.scores(&samples.iter().map(|s| s.text.as_str()).collect::<Vec<_>>(), &labels).unwrap();
    let gold: Vec<Vec<usize>> =
        samples.iter().map(|s| s.labels.iter().map(|l| labels.iter().position(|x| x == l).unwrap()).collect()).collect();
    let (top1, at_k) = zsc_core::metrics::accuracy(&scores, &gold);
    assert!((all.top1_accuracy - top1).abs() < 1e-12 && (all.accuracy_at_k - at_k).abs() < 1e-12);

    // --labels-from another file: its labels are the candidates.
    let other = common::tmp_root().join("cli-data").join("other.json");
    std::fs::write(&other, r#"[{"text":"x","labels":["banking"]},{"text":"y","labels":["a","b","c"]}]"#).unwrap();
    let r = report(&zsc(
        &["eval", "--model", b, "--data", f.data.to_str().unwrap(), "--labels-from", other.to_str().unwrap(), "--json"],
        None,
    ));
    assert_eq!((r.split.as_str(), r.n_texts, r.n_labels), ("test", 2, 4));

    // Human-readable output without --json.
    let o = zsc(&["eval", "--model", b, "--split", "val"], None);
    assert!(o.status.success());
    assert!(stdout(&o).contains("top1 accuracy"));
}

#[test]
fn eval_explains_a_missing_data_file() {
    let f = fixture();
    // The manifest says data/train.json (relative): run from a folder without it.
    let cwd = common::tmp_root().join("cli-data");
    let o = zsc(&["eval", "--model", f.relative_bundle.to_str().unwrap()], Some(&cwd));
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("data/train.json") && e.contains("--data"), "{e}");

    let o = zsc(&["eval", "--model", f.bundle.to_str().unwrap(), "--split", "bogus"], None);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("bogus"));
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`): (status, body).
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

#[test]
fn serve_answers_over_http_and_stops_on_sigterm() {
    use std::io::BufRead;
    let f = fixture();
    let mut child = Command::new(env!("CARGO_BIN_EXE_zsc"))
        .args(["serve", "--model", f.bundle.to_str().unwrap(), "--port", "0", "--threads", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let addr = first.trim().strip_prefix("listening on http://").unwrap_or_else(|| panic!("{first}")).to_string();
    assert!(addr.starts_with("127.0.0.1:"), "loopback by default: {addr}");

    let (status, body) = http(&addr, "GET", "/ready", "");
    assert_eq!(status, 200, "{body}");
    let (status, body) =
        http(&addr, "POST", "/v1/classify", r#"{"texts": ["transfer money"], "labels": ["banking", "cooking"], "top_k": 1}"#);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["results"][0]["labels"].as_array().unwrap().len(), 1);
    let (status, body) = http(&addr, "POST", "/v1/classify", r#"{"texts": "not a list"}"#);
    assert_eq!(status, 400, "{body}");
    let (_, metrics) = http(&addr, "GET", "/metrics", "");
    assert!(metrics.contains("zsc_requests_total{route=\"/v1/classify\",status=\"400\"} 1"), "{metrics}");

    // SIGTERM: drains and exits 0
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "exit {:?}: {}", out.status, stderr(&out));
    assert!(stderr(&out).contains("stopped"), "{}", stderr(&out));
    assert!(std::net::TcpStream::connect(&addr).is_err());

    // a bad option is named
    let o = zsc(&["serve", "--model", f.bundle.to_str().unwrap(), "--max-batch", "0"], None);
    assert!(!o.status.success() && stderr(&o).contains("max_batch"), "{}", stderr(&o));
}

/// `--labels-file` in YAML with descriptions and examples: classify scores as the library does,
/// eval and calibrate take the views by name, a bad file is one error line naming it.
#[test]
fn labels_files_with_descriptions_and_examples() {
    let f = fixture();
    let dir = common::tmp_root().join("cli-data");
    let yaml = dir.join("labels.yaml");
    std::fs::write(
        &yaml,
        "- name: banking\n  description: money and accounts\n  examples: [send money home, my card is blocked]\n- cooking\n- name: weather\n  examples: [rain later?]\n",
    )
    .unwrap();
    let b = f.bundle.to_str().unwrap();
    let o = zsc(
        &["classify", "--model", b, "--labels-file", yaml.to_str().unwrap(), "--views", "mean", "--json", "transfer money"],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let line: serde_json::Value = serde_json::from_str(stdout(&o).lines().next().unwrap()).unwrap();
    let clf =
        zsc::Classifier::from_dir(&f.bundle, zsc::ClassifierOptions::default().with_view_aggregation(zsc::ViewAggregation::Mean))
            .unwrap();
    let labels = zsc::read_labels_file(&yaml).unwrap();
    let expected = clf.scores(&["transfer money"], &labels).unwrap().remove(0);
    for l in line["labels"].as_array().unwrap() {
        let j = labels.iter().position(|x| x.name == l["label"].as_str().unwrap()).unwrap();
        assert!((l["score"].as_f64().unwrap() - expected[j] as f64).abs() < 1e-5, "{line}");
    }

    let data = f.data.to_str().unwrap();
    let o =
        zsc(&["eval", "--model", b, "--data", data, "--split", "all", "--labels-file", yaml.to_str().unwrap(), "--json"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("\"ece\""), "{}", stdout(&o));

    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "- name: banking\n  examples: []\n- name: banking\n").unwrap();
    let o = zsc(&["classify", "--model", b, "--labels-file", bad.to_str().unwrap(), "x"], None);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("bad.yaml") && stderr(&o).contains("twice"), "{}", stderr(&o));
    let unknown = dir.join("unknown.yaml");
    std::fs::write(&unknown, "- name: astrology\n  examples: [my horoscope]\n").unwrap();
    let o = zsc(&["eval", "--model", b, "--data", data, "--split", "all", "--labels-file", unknown.to_str().unwrap()], None);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("astrology") && stderr(&o).contains("not a candidate label"), "{}", stderr(&o));
}

#[test]
fn a_label_template_from_the_command_line_wraps_every_label() {
    let b = fixture().bundle.to_str().unwrap().to_string();
    let score = |args: &[&str]| -> f64 {
        let o = zsc(&[&["classify", "--model", &b, "--json"], args, &["wake me at 7"]].concat(), None);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        v["labels"][0]["score"].as_f64().unwrap()
    };
    let templated = score(&["--template", "This text is about {}.", "--label", "alarm"]);
    let by_hand = score(&["--template", "{}", "--label", "This text is about alarm."]);
    let bare = score(&["--label", "alarm"]);
    assert!((templated - by_hand).abs() < 1e-5, "{templated} vs {by_hand}");
    assert!((templated - bare).abs() > 1e-4, "the template changed nothing: {templated} vs {bare}");
    let o = zsc(&["classify", "--model", &b, "--template", "About it.", "--label", "alarm", "x"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("must contain `{}`"), "{}", stderr(&o));
}
