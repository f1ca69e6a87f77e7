//! `scripts/subsample_data.py` (the data-quantity ablation): keeps the asked share of every
//! source, the same samples on every run, in the input's order, and refuses a bad fraction.

use std::path::{Path, PathBuf};
use std::process::Command;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/subsample_data.py")
}

fn run(input: &Path, output: &Path, args: &[&str]) -> (bool, String) {
    let o = Command::new("python3").arg(script()).arg(input).arg(output).args(args).output().unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stderr).to_string())
}

fn read(path: &Path) -> Vec<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn keeps_the_share_of_every_source_deterministically_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("train.json");
    // source a: 10 samples, source b: 4, and 2 without a source
    let mut samples: Vec<serde_json::Value> = Vec::new();
    for i in 0..10 {
        samples.push(serde_json::json!({"text": format!("a{i}"), "labels": ["x"], "source": "a"}));
    }
    for i in 0..4 {
        samples.push(serde_json::json!({"text": format!("b{i}"), "labels": ["y"], "source": "b"}));
    }
    samples.push(serde_json::json!({"text": "n0", "labels": ["z"]}));
    samples.push(serde_json::json!({"text": "n1", "labels": ["z"]}));
    std::fs::write(&input, serde_json::to_string(&samples).unwrap()).unwrap();

    let (first, second) = (dir.path().join("half1.json"), dir.path().join("half2.json"));
    for out in [&first, &second] {
        let (ok, err) = run(&input, out, &["--fraction", "0.5"]);
        assert!(ok, "{err}");
    }
    let kept = read(&first);
    assert_eq!(kept, read(&second), "two runs must keep the same samples");
    let count = |src: Option<&str>| kept.iter().filter(|s| s.get("source").and_then(|v| v.as_str()) == src).count();
    assert_eq!((count(Some("a")), count(Some("b")), count(None)), (5, 2, 1));
    // in the input's order, whole samples untouched
    let positions: Vec<usize> = kept.iter().map(|s| samples.iter().position(|t| t == s).unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
}

#[test]
fn a_fraction_outside_zero_to_one_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("train.json");
    std::fs::write(&input, r#"[{"text": "t", "labels": ["l"]}]"#).unwrap();
    let (ok, err) = run(&input, &dir.path().join("out.json"), &["--fraction", "1.5"]);
    assert!(!ok && err.contains("--fraction"), "{err}");
}

#[test]
fn a_file_that_is_not_a_list_of_samples_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.json");
    for (name, body) in [("object.json", "{}"), ("no_text.json", r#"[{"labels": ["x"]}]"#), ("broken.json", "[{")] {
        let input = dir.path().join(name);
        std::fs::write(&input, body).unwrap();
        let (ok, err) = run(&input, &out, &["--fraction", "0.5"]);
        assert!(!ok && err.contains(name) && !err.contains("Traceback"), "{name}: {err}");
    }
    assert!(!out.exists(), "nothing is written for a bad input");
}

#[test]
fn drop_source_leaves_out_exactly_that_source_and_names_an_unknown_one() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("train.json");
    let samples = serde_json::json!([
        {"text": "a0", "labels": ["x"], "source": "a"},
        {"text": "b0", "labels": ["y"], "source": "b"},
        {"text": "a1", "labels": ["x"], "source": "a"},
        {"text": "c0", "labels": ["z"], "source": "c"},
    ]);
    std::fs::write(&input, samples.to_string()).unwrap();
    let out = dir.path().join("out.json");
    let (ok, err) = run(&input, &out, &["--drop-source", "a", "--drop-source", "c"]);
    assert!(ok, "{err}");
    assert_eq!(read(&out), vec![samples[1].clone()]);
    let (ok, err) = run(&input, &out, &["--drop-source", "nope"]);
    assert!(!ok && err.contains("nope"), "{err}");
}
