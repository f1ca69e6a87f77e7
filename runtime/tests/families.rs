//! Every supported encoder family, exported from a sentence-transformers folder and scored
//! through `zsc classify`, against sentence-transformers' own cosines (issue #26). The tiny
//! random models and their reference outputs come from `scripts/tiny_families.py`
//! (transformers + sentence-transformers, installed by scripts/setup.sh).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;
use zsc::{Classifier, ClassifierOptions};
use zsc_core::Quantization;
use zsc_export::{export_bundle, ExportOptions};

/// Scores and embeddings must match sentence-transformers to this (f32 graphs, random weights).
const TOLERANCE: f64 = 1e-4;
const NAMES: [&str; 6] = ["bert_cls", "bert_mean_prompt", "bert_lasttoken", "mpnet", "xlm_roberta", "modernbert"];

struct Families {
    dir: PathBuf,
    reference: Value,
}

fn families() -> &'static Families {
    static F: OnceLock<Families> = OnceLock::new();
    F.get_or_init(|| {
        let (dir, reference) = zsc_testkit::tiny_families(&common::tmp_root().join("families"));
        Families { dir, reference }
    })
}

fn export(name: &str, quantization: Quantization) -> PathBuf {
    let f = families();
    let bundle = common::tmp_root().join(format!("families-bundle-{name}-{quantization}"));
    export_bundle(&f.dir.join(name), &bundle, &ExportOptions::default().with_quantization(quantization)).unwrap();
    bundle
}

fn matrix(v: &Value) -> Vec<Vec<f64>> {
    v.as_array().unwrap().iter().map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()).collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

/// `zsc classify --json` scores of every text against every label, in the reference's label order.
fn classify_cli(bundle: &Path, texts: &[String], labels: &[String]) -> Vec<Vec<f64>> {
    let mut args: Vec<String> =
        vec!["classify".into(), "--model".into(), bundle.display().to_string(), "--json".into(), "--top-k".into(), "0".into()];
    for l in labels {
        args.extend(["--label".into(), l.clone()]);
    }
    args.extend(texts.iter().cloned());
    let out = Command::new(env!("CARGO_BIN_EXE_zsc")).args(&args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap();
            let ranked = v["labels"].as_array().unwrap();
            labels.iter().map(|l| ranked.iter().find(|r| r["label"] == l.as_str()).unwrap()["score"].as_f64().unwrap()).collect()
        })
        .collect()
}

fn max_diff(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs())).fold(0.0, f64::max)
}

#[test]
fn every_family_scores_through_zsc_classify_as_sentence_transformers_does() {
    let f = families();
    for name in NAMES {
        let r = &f.reference[name];
        let (texts, labels) = (strings(&r["texts"]), strings(&r["labels"]));
        let bundle = export(name, Quantization::None);
        let got = classify_cli(&bundle, &texts, &labels);
        let diff = max_diff(&got, &matrix(&r["cosines"]));
        println!("{name:>18}: max |zsc classify - sentence-transformers cosine| = {diff:.2e}");
        assert!(diff < TOLERANCE, "{name}: {diff}");
        // and the embeddings themselves (pooling, prompt, normalisation)
        let clf = Classifier::from_dir(&bundle, ClassifierOptions::default()).unwrap();
        let emb = clf.embed(&texts).unwrap();
        let emb: Vec<Vec<f64>> = emb.outer_iter().map(|r| r.iter().map(|&x| f64::from(x)).collect()).collect();
        let diff = max_diff(&emb, &matrix(&r["text_embeddings"]));
        assert!(diff < TOLERANCE, "{name} embeddings: {diff}");
    }
}

#[test]
fn bundles_record_the_sentence_transformers_settings() {
    let f = families();
    let m = zsc_core::BundleManifest::load(&export("bert_mean_prompt", Quantization::None)).unwrap();
    assert_eq!((m.spec.embedding.text_prompt.as_str(), m.spec.embedding.label_prompt.as_str()), ("query: ", "query: "));
    assert_eq!((m.spec.similarity, m.spec.max_length), (zsc_core::Similarity::Cosine, 64));
    let m = zsc_core::BundleManifest::load(&export("bert_cls", Quantization::None)).unwrap();
    assert_eq!((m.spec.embedding.pooling, m.spec.embedding.normalize), (zsc_core::Pooling::Cls, true));
    // families without token types have no token_type_ids input
    let m = zsc_core::BundleManifest::load(&export("modernbert", Quantization::None)).unwrap();
    assert_eq!(m.inputs, vec!["input_ids", "attention_mask"]);
    // prompts chosen at export: a named prompt for labels, none for texts
    let bundle = common::tmp_root().join("families-bundle-prompts");
    let opts = ExportOptions::default().with_prompts(Some(String::new()), Some("document".into()));
    let m = export_bundle(&f.dir.join("bert_mean_prompt"), &bundle, &opts).unwrap();
    assert_eq!((m.spec.embedding.text_prompt.as_str(), m.spec.embedding.label_prompt.as_str()), ("", "passage: "));
}

#[test]
fn int8_exports_of_every_family_stay_close_to_f32() {
    let f = families();
    for name in NAMES {
        let r = &f.reference[name];
        let (texts, labels) = (strings(&r["texts"]), strings(&r["labels"]));
        let clf = Classifier::from_dir(export(name, Quantization::Int8), ClassifierOptions::default()).unwrap();
        let got: Vec<Vec<f64>> =
            clf.scores(&texts, &labels).unwrap().into_iter().map(|r| r.into_iter().map(f64::from).collect()).collect();
        let diff = max_diff(&got, &matrix(&r["cosines"]));
        println!("{name:>18}: int8 max |cosine - sentence-transformers f32| = {diff:.3}");
        assert!(diff < 0.05, "{name}: int8 cosines off by {diff}");
    }
}
