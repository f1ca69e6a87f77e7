//! `zsc calibrate` end to end on the real all-MiniLM-L6-v2 (exported as a bi-encoder, untuned: its
//! raw dot products of 10–25 make sigmoid(score) ≈ 1 for every label): the fit lands in the
//! manifest, `zsc classify` then prints calibrated softmax probabilities (and says so), `zsc eval`
//! reports a lower calibration error, and `--multi-label` uses the calibrated sigmoid.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use zsc_testkit::fixtures::{base_model_dir, workspace_root};

fn zsc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zsc")).args(args).output().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A fresh MiniLM bundle and a small CLINC150 data file (every 6th text of the 3 held-out dev
/// domains: 150 texts, 45 intents).
fn fixture() -> (PathBuf, PathBuf) {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("runtime-tests").join("calibration");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let bundle = root.join("minilm-bi");
    // dot products (the sentence-transformers folder would choose cosine): scores of 10-25
    let opts = zsc_export::ExportOptions::default().with_similarity(zsc_core::Similarity::Dot);
    zsc_export::export_bundle(&base_model_dir(), &bundle, &opts).unwrap();
    let all: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(workspace_root().join("data/clinc150_unseen_dev.json")).unwrap()).unwrap();
    let some: Vec<&serde_json::Value> = all.iter().step_by(6).collect();
    let data = root.join("dev150.json");
    std::fs::write(&data, serde_json::to_string(&some).unwrap()).unwrap();
    (bundle, data)
}

fn last_json(out: &str) -> serde_json::Value {
    serde_json::from_str(out.lines().last().unwrap()).unwrap()
}

fn manifest(bundle: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(bundle.join("manifest.json")).unwrap()).unwrap()
}

#[test]
fn calibrate_then_classify_prints_calibrated_probabilities() {
    let (bundle, data) = fixture();
    let (b, d) = (bundle.to_str().unwrap(), data.to_str().unwrap());
    let labels = ["--label", "timer", "--label", "alarm", "--label", "weather", "--label", "shopping list update"];

    // before: uncalibrated, and the output says so
    let out = ok(&zsc(&[&["classify", "--model", b][..], &labels[..], &["set a timer for ten minutes"][..]].concat()));
    assert!(out.lines().next().unwrap().contains("UNCALIBRATED"), "{out}");
    let before = last_json(&ok(&zsc(&["eval", "--model", b, "--data", d, "--split", "all", "--json"])));
    assert_eq!(before["calibrated"], false);

    // calibrate on the whole small file (--split all), then the manifest holds the fit
    let o = zsc(&["calibrate", "--model", b, "--data", d, "--split", "all", "--json"]);
    let fit = last_json(&ok(&o));
    let t = fit["temperature"].as_f64().unwrap();
    assert!(t > 1.0 && t < 100.0, "dot products of 10-25 need a temperature well above 1: {t}");
    assert_eq!(manifest(&bundle)["calibration"], fit);
    assert_eq!((fit["split"].as_str(), fit["n_texts"].as_u64(), fit["n_labels"].as_u64()), (Some("all"), Some(150), Some(45)));
    assert!(fit["ece"].as_f64().unwrap() < fit["ece_before"].as_f64().unwrap());
    // the rest of the manifest is untouched
    let m = manifest(&bundle);
    assert_eq!(m["spec"]["model_type"], "bi_encoder");
    zsc::Classifier::from_dir(&bundle, zsc::ClassifierOptions::default()).unwrap();

    // after: softmax over the candidates, labelled calibrated, summing to 1
    let out =
        ok(&zsc(&[&["classify", "--model", b, "--top-k", "0"][..], &labels[..], &["set a timer for ten minutes"][..]].concat()));
    let header = out.lines().next().unwrap();
    assert!(header.contains("softmax") && header.contains("calibrated on the all split"), "{out}");
    let o =
        zsc(&[&["classify", "--model", b, "--json", "--top-k", "0"][..], &labels[..], &["set a timer for ten minutes"][..]]
            .concat());
    let line = last_json(&ok(&o));
    assert_eq!((line["calibrated"].as_bool(), line["multi_label"].as_bool()), (Some(true), Some(false)));
    let ps: Vec<f64> = line["labels"].as_array().unwrap().iter().map(|l| l["probability"].as_f64().unwrap()).collect();
    assert!((ps.iter().sum::<f64>() - 1.0).abs() < 1e-4, "{ps:?}");
    assert_eq!(line["labels"][0]["label"], "timer");
    // an irrelevant label no longer gets p ≈ 1
    let o = zsc(&[
        &["classify", "--model", b, "--json", "--top-k", "0", "--multi-label"][..],
        &labels[..],
        &["set a timer for ten minutes"][..],
    ]
    .concat());
    let line = last_json(&ok(&o));
    let weather = line["labels"].as_array().unwrap().iter().find(|l| l["label"] == "weather").unwrap();
    assert!(weather["probability"].as_f64().unwrap() < 0.5, "{line}");

    // eval reports the calibration error
    let after = last_json(&ok(&zsc(&["eval", "--model", b, "--data", d, "--split", "all", "--json"])));
    assert_eq!(after["calibrated"], true);
    let (eb, ea) = (before["ece"].as_f64().unwrap(), after["ece"].as_f64().unwrap());
    assert!(ea < 0.1 && ea < eb, "ECE {eb} -> {ea}");
    assert!(after["multi_label_ece"].as_f64().unwrap() < before["multi_label_ece"].as_f64().unwrap());
    let human = ok(&zsc(&["eval", "--model", b, "--data", d, "--split", "all"]));
    assert!(human.contains("ECE top-1") && human.contains("(calibrated)"), "{human}");

    // errors: not a local folder, an empty split
    let o = zsc(&["calibrate", "--model", "org/name", "--data", d]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("not a local bundle folder"));
    let o = zsc(&["calibrate", "--model", b]);
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--data"),
        "an untuned base model records no data"
    );
}
