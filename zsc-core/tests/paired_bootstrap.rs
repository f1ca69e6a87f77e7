//! `scripts/paired_bootstrap.py` (is model B better than model A on the same test texts?) on
//! hand-made prediction files whose answer is known.

use std::path::{Path, PathBuf};
use std::process::Command;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/paired_bootstrap.py")
}

/// `dir/task.jsonl` with texts t0.. and the given correctness.
fn write(dir: &Path, task: &str, correct: &[bool]) {
    std::fs::create_dir_all(dir).unwrap();
    let lines: Vec<String> =
        correct.iter().enumerate().map(|(i, c)| serde_json::json!({"text": format!("t{i}"), "correct": c}).to_string()).collect();
    std::fs::write(dir.join(format!("{task}.jsonl")), lines.join("\n") + "\n").unwrap();
}

fn run(a: &Path, b: &Path) -> (bool, serde_json::Value, String) {
    let o = Command::new("python3").arg(script()).arg(a).arg(b).args(["--json", "--resamples", "2000"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    let v = serde_json::from_str(stdout.lines().last().unwrap_or("null")).unwrap_or(serde_json::Value::Null);
    (o.status.success(), v, String::from_utf8_lossy(&o.stderr).to_string())
}

#[test]
fn a_clear_gain_has_an_interval_above_zero_and_a_tie_is_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    // task x: 200 texts, A right on the first 100, B on the first 160 -> +30 points, 60 B-only
    let x_a: Vec<bool> = (0..200).map(|i| i < 100).collect();
    let x_b: Vec<bool> = (0..200).map(|i| i < 160).collect();
    write(&a, "x", &x_a);
    write(&b, "x", &x_b);
    // task y: the same answers -> exactly 0
    write(&a, "y", &x_a);
    write(&b, "y", &x_a);
    // a task only A has is left out
    write(&a, "z", &x_a);
    let (ok, v, err) = run(&a, &b);
    assert!(ok, "{err}");
    let x = &v["tasks"]["x"];
    assert!((x["diff"].as_f64().unwrap() - 0.30).abs() < 1e-12, "{v}");
    assert_eq!((x["b_only"].as_u64(), x["a_only"].as_u64()), (Some(60), Some(0)));
    let ci = x["ci95"].as_array().unwrap();
    assert!(ci[0].as_f64().unwrap() > 0.2 && ci[1].as_f64().unwrap() <= 0.4, "{v}");
    assert_eq!(v["tasks"]["y"]["ci95"], serde_json::json!([0.0, 0.0]), "{v}");
    assert!(v["tasks"].get("z").is_none());
    assert!((v["macro"]["diff"].as_f64().unwrap() - 0.15).abs() < 1e-12, "{v}");
}

#[test]
fn different_texts_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    write(&a, "x", &[true, false]);
    write(&b, "x", &[true, false, true]);
    let (ok, _, err) = run(&a, &b);
    assert!(!ok && err.contains("same texts"), "{err}");
}
