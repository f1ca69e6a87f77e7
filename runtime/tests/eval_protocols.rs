//! `zsc eval` protocol options on tiny bundles: `--restrict-to` (evaluate only texts of another
//! file), `--tune-threshold` (micro-F1 threshold tuned on val, applied on test), `--threshold`.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

use zsc_core::data::{load_samples, select_split};
use zsc_core::eval_protocol::ProtocolReport;
use zsc_core::{ModelType, Split, SplitRatios};

fn zsc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zsc")).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn report(o: &Output) -> ProtocolReport {
    assert!(o.status.success(), "{}", stderr(o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    serde_json::from_str(out.lines().last().unwrap()).unwrap()
}

struct Fixture {
    bundle: PathBuf,
    data: PathBuf,
    /// The multi-label half of `data` (texts of the "multi" samples).
    multi: PathBuf,
    /// Texts that occur nowhere in `data`.
    unrelated: PathBuf,
}

/// 24 single-label samples plus 24 multi-label ones; the bundle records `data` with the test
/// fixtures' split (0.5/0.25/0.25, seed 7).
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let root = common::tmp_root().join("protocols-data");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let single: Vec<serde_json::Value> = (0..24)
            .map(|i| {
                let label = ["alpha", "beta", "gamma"][i % 3];
                serde_json::json!({"text": format!("single text number {i}"), "labels": [label]})
            })
            .collect();
        let multi: Vec<serde_json::Value> = (0..24)
            .map(|i| {
                let labels = match i % 4 {
                    0 => vec!["open an account"],
                    1 => vec!["open an account", "card"],
                    2 => vec!["card", "transfer money"],
                    _ => vec!["transfer money", "booking", "card"],
                };
                serde_json::json!({"text": format!("bank request {i}"), "labels": labels})
            })
            .collect();
        let all: Vec<serde_json::Value> = single.iter().chain(&multi).cloned().collect();
        let data = root.join("data.json");
        std::fs::write(&data, serde_json::to_string(&all).unwrap()).unwrap();
        let multi_file = root.join("multi.json");
        std::fs::write(&multi_file, serde_json::to_string(&multi).unwrap()).unwrap();
        let unrelated = root.join("unrelated.json");
        std::fs::write(&unrelated, r#"[{"text": "nothing like the others", "labels": ["x"]}]"#).unwrap();
        Fixture {
            bundle: common::make_bundle("protocols-bi", ModelType::BiEncoder, None, Some(&data)),
            data,
            multi: multi_file,
            unrelated,
        }
    })
}

fn expected_split(split: Split, only_multi: bool) -> Vec<zsc_core::data::Sample> {
    let f = fixture();
    let samples = load_samples(&f.data).unwrap();
    let chosen = select_split(&samples, SplitRatios { train: 0.5, val: 0.25, test: 0.25 }, 7, split);
    chosen.into_iter().filter(|s| !only_multi || s.text.starts_with("bank request")).collect()
}

#[test]
fn restrict_to_keeps_only_that_files_texts_of_the_split() {
    let f = fixture();
    let (b, d, m) = (f.bundle.to_str().unwrap(), f.data.to_str().unwrap(), f.multi.to_str().unwrap());
    let full = report(&zsc(&["eval", "--model", b, "--json"]));
    assert!(full.restricted_to.is_none() && full.micro_f1.is_none());
    assert_eq!(full.report.n_texts, expected_split(Split::Test, false).len());

    let r = report(&zsc(&["eval", "--model", b, "--data", d, "--split", "test", "--restrict-to", m, "--json"]));
    let expected = expected_split(Split::Test, true);
    assert!(!expected.is_empty() && expected.len() < full.report.n_texts);
    assert_eq!(r.report.split, "test");
    assert_eq!(r.report.n_texts, expected.len());
    assert_eq!(r.report.n_labels, zsc_core::data::unique_labels(&expected).len());
    assert_eq!(r.restricted_to.as_deref(), Some(m));
    assert!((0.0..=1.0).contains(&r.report.accuracy_at_k));

    // against all labels of another file instead
    let r = report(&zsc(&["eval", "--model", b, "--restrict-to", m, "--labels-from", d, "--json"]));
    assert_eq!(r.report.n_labels, 7);
    assert_eq!(r.labels_from.as_deref(), Some(d));
}

#[test]
fn tune_threshold_reports_f1_at_the_val_tuned_threshold() {
    let f = fixture();
    let (b, m) = (f.bundle.to_str().unwrap(), f.multi.to_str().unwrap());
    let r = report(&zsc(&["eval", "--model", b, "--restrict-to", m, "--tune-threshold", "--json"]));
    assert_eq!(r.threshold_source.as_deref(), Some("val"));
    let (t, tl) = (r.threshold.unwrap(), r.threshold_logit.unwrap());
    assert!((1.0 / (1.0 + (-tl).exp()) - t).abs() < 1e-12);
    for v in [r.val_micro_f1.unwrap(), r.micro_f1.unwrap(), r.macro_f1.unwrap()] {
        assert!((0.0..=1.0).contains(&v), "{v}");
    }
    // the tuned threshold is at least as good on val as predicting every pair
    let val = expected_split(Split::Val, true);
    let labels = zsc_core::data::unique_labels(&expected_split(Split::Test, true));
    let gold_pairs: usize = val.iter().map(|s| s.labels.iter().filter(|l| labels.contains(l)).count()).sum();
    let all_pairs = val.len() * labels.len();
    let predict_all = 2.0 * gold_pairs as f64 / (gold_pairs + all_pairs) as f64;
    assert!(r.val_micro_f1.unwrap() >= predict_all - 1e-12, "{:?} vs {predict_all}", r.val_micro_f1);

    // the same threshold given by hand reproduces the test F1
    let given = report(&zsc(&["eval", "--model", b, "--restrict-to", m, "--threshold", &format!("{t:.17}"), "--json"]));
    assert_eq!(given.threshold_source.as_deref(), Some("given"));
    assert!((given.micro_f1.unwrap() - r.micro_f1.unwrap()).abs() < 1e-9);
    assert!((given.macro_f1.unwrap() - r.macro_f1.unwrap()).abs() < 1e-9);
    assert_eq!(given.report, r.report);
}

#[test]
fn protocol_option_errors_exit_non_zero() {
    let f = fixture();
    let (b, d) = (f.bundle.to_str().unwrap(), f.data.to_str().unwrap());
    let o = zsc(&["eval", "--model", b, "--restrict-to", f.unrelated.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("unrelated.json"), "{}", stderr(&o));

    let o = zsc(&["eval", "--model", b, "--data", d, "--split", "all", "--tune-threshold"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--tune-threshold"), "{}", stderr(&o));

    for bad in ["1.5", "0", "nan"] {
        let o = zsc(&["eval", "--model", b, "--threshold", bad]);
        assert!(!o.status.success(), "--threshold {bad}");
        assert!(stderr(&o).contains("--threshold"), "{}", stderr(&o));
    }

    let o = zsc(&["eval", "--model", b, "--restrict-to", "/nonexistent/x.json"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("/nonexistent/x.json"), "{}", stderr(&o));
}

#[test]
fn predictions_file_has_one_line_per_text_and_agrees_with_top1() {
    let f = fixture();
    let (b, d) = (f.bundle.to_str().unwrap(), f.data.to_str().unwrap());
    let out = common::tmp_root().join("protocols-predictions.jsonl");
    let r =
        report(&zsc(&["eval", "--model", b, "--data", d, "--split", "test", "--predictions", out.to_str().unwrap(), "--json"]));
    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(&out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let expected = expected_split(Split::Test, false);
    assert_eq!(lines.len(), r.report.n_texts);
    assert_eq!(lines.len(), expected.len());
    for (line, sample) in lines.iter().zip(&expected) {
        assert_eq!(line["text"], sample.text.as_str(), "same texts, same order");
        let gold: Vec<&str> = line["gold"].as_array().unwrap().iter().map(|g| g.as_str().unwrap()).collect();
        assert_eq!(gold, sample.labels.iter().map(String::as_str).collect::<Vec<_>>());
        let predicted = line["predicted"].as_str().unwrap();
        assert_eq!(line["correct"].as_bool().unwrap(), gold.contains(&predicted), "{line}");
        assert!(line["score"].as_f64().unwrap().is_finite());
    }
    let correct = lines.iter().filter(|l| l["correct"].as_bool().unwrap()).count();
    assert!((correct as f64 / lines.len() as f64 - r.report.top1_accuracy).abs() < 1e-9, "the file agrees with top-1");
}
