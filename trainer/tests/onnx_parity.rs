//! Cross-crate parity: the same checkpoint through tch (trainer) and through the exported ONNX
//! bundle in ONNX Runtime (export + runtime). For each architecture on the real MiniLM:
//! encoder outputs and scores agree within 1e-4 (max abs) on the six reference sentences, and
//! an evaluation gives the same top-1 accuracy within 0.005.

use std::path::{Path, PathBuf};

use tch::Device;
use zsc::{Classifier, ClassifierOptions};
use zsc_core::data::{load_samples, unique_labels};
use zsc_core::manifest::CheckpointInfo;
use zsc_core::{ColbertScoring, MaxSimDirection, ModelSpec, ModelType, Similarity, SpecialTokenSides, SplitRatios};
use zsc_testkit::fixtures::{base_model_dir, workspace_root};
use zsc_trainer::checkpoint::{save_checkpoint, CheckpointAssets, CheckpointWrite};
use zsc_trainer::eval::{evaluate, score_texts_labels};
use zsc_trainer::{Checkpoint, ZscModel};

const TOL: f32 = 1e-4;

fn reference_sentences() -> Vec<String> {
    let path = workspace_root().join("testkit/fixtures/minilm_reference/minilm_hf_reference.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

/// A checkpoint of MiniLM with a freshly initialised head (parity does not need training).
fn minilm_checkpoint(model_type: ModelType, similarity: Similarity, colbert_scoring: ColbertScoring, dir: &Path) -> PathBuf {
    let base = base_model_dir();
    let spec = ModelSpec {
        model_type,
        hidden_size: 384,
        max_length: 128,
        n_code_vectors: (model_type == ModelType::PolyEncoder).then_some(16),
        colbert_dim: (model_type == ModelType::Colbert).then_some(128),
        label_template: None,
        similarity,
        embedding: Default::default(),
        colbert_scoring,
    };
    tch::manual_seed(11);
    let model = ZscModel::from_base(spec.clone(), &base, Device::Cpu).unwrap();
    let info = CheckpointInfo {
        format_version: zsc_core::manifest::FORMAT_VERSION,
        spec,
        base_model: base.to_string_lossy().into(),
        data: workspace_root().join("data/clinc150_unseen.json"),
        split: SplitRatios::default(),
        seed: 42,
        step: 0,
        val_loss: None,
        created_by: "onnx_parity test".into(),
    };
    let assets = CheckpointAssets::from_dir(&base).unwrap();
    save_checkpoint(dir, "best", &CheckpointWrite { model: &model, info: &info, assets: &assets, optimizer: None }).unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Checks parity and returns the runtime's scores of the reference sentences against six labels.
fn check(model_type: ModelType, similarity: Similarity) -> Vec<Vec<f32>> {
    check_scoring(model_type, similarity, ColbertScoring::default())
}

fn check_scoring(model_type: ModelType, similarity: Similarity, colbert_scoring: ColbertScoring) -> Vec<Vec<f32>> {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt_dir = minilm_checkpoint(model_type, similarity, colbert_scoring, &tmp.path().join("run"));
    let bundle = tmp.path().join("bundle");
    zsc_export::export_bundle(&ckpt_dir, &bundle, &zsc_export::ExportOptions::default()).unwrap();

    let ckpt = Checkpoint::load(&ckpt_dir, Device::Cpu).unwrap();
    assert_eq!(ckpt.model.spec.model_type, model_type, "model type must come from the checkpoint");
    let clf = Classifier::from_dir(&bundle, ClassifierOptions::default()).unwrap();
    assert_eq!(clf.model_type(), model_type);

    // 1. encoder outputs (ColBERT: projected, normalised token embeddings), real tokens only
    let texts = reference_sentences();
    let batch = ckpt.tokenizer.encode_batch(&texts).unwrap();
    let (tch_out, _mask) = tch::no_grad(|| match model_type {
        ModelType::Colbert => ckpt.model.token_embeddings(&batch, false),
        _ => ckpt.model.encode(&batch, false),
    })
    .unwrap();
    let ort_out = clf.token_embeddings(&texts).unwrap();
    let mut worst = 0f32;
    for (i, rows) in ort_out.iter().enumerate() {
        let n = batch.real_len(i);
        assert_eq!(rows.nrows(), n, "text {i}: real token count");
        let t: Vec<f32> = Vec::<f32>::try_from(tch_out.get(i as i64).narrow(0, 0, n as i64).flatten(0, -1)).unwrap();
        let o: Vec<f32> = rows.iter().copied().collect();
        worst = worst.max(max_abs_diff(&t, &o));
    }
    assert!(worst <= TOL, "{model_type}: encoder output max abs diff {worst} > {TOL}");

    // 2. scores of every text against every label
    let labels: Vec<String> =
        ["Finance", "Microelectronics", "travel", "banking", "pto request", "weather"].map(String::from).to_vec();
    let tch_scores = score_texts_labels(&ckpt.model, &ckpt.tokenizer, &texts, &labels, 4).unwrap();
    let ort_scores = clf.scores(&texts, &labels).unwrap();
    let worst = max_abs_diff(&tch_scores.concat(), &ort_scores.concat());
    // ColBERT and cosine scores are scaled by their score scale (10, 20): compare relative to it.
    let tol = if model_type == ModelType::Colbert {
        TOL * 10.0
    } else if similarity == Similarity::Cosine {
        TOL * 20.0
    } else {
        TOL
    };
    assert!(worst <= tol, "{model_type} {colbert_scoring:?}: score max abs diff {worst} > {tol}");
    let six_label_scores = ort_scores;

    // 3. the same evaluation through both stacks: top-1 within 0.005
    let samples: Vec<_> =
        load_samples(&workspace_root().join("data/clinc150_unseen.json")).unwrap().into_iter().step_by(9).collect();
    let eval_labels = unique_labels(&samples);
    let tch_eval = evaluate(&ckpt.model, &ckpt.tokenizer, &samples, &eval_labels, "all", 32).unwrap();
    let ort_scores = clf.scores(&samples.iter().map(|s| s.text.as_str()).collect::<Vec<_>>(), &eval_labels).unwrap();
    let gold: Vec<Vec<usize>> =
        samples.iter().map(|s| s.labels.iter().map(|l| eval_labels.iter().position(|x| x == l).unwrap()).collect()).collect();
    let (ort_top1, ort_at_k) = zsc_core::metrics::accuracy(&ort_scores, &gold);
    let d = (ort_top1 - tch_eval.report.top1_accuracy).abs();
    assert!(d <= 0.005, "{model_type}: top-1 tch {} vs onnx {ort_top1}", tch_eval.report.top1_accuracy);
    assert!((ort_at_k - tch_eval.report.accuracy_at_k).abs() <= 0.005);
    six_label_scores
}

#[test]
fn bi_encoder_tch_and_onnx_agree() {
    check(ModelType::BiEncoder, Similarity::Dot);
}

#[test]
fn bi_encoder_cosine_tch_and_onnx_agree() {
    check(ModelType::BiEncoder, Similarity::Cosine);
}

#[test]
fn poly_encoder_tch_and_onnx_agree() {
    check(ModelType::PolyEncoder, Similarity::Dot);
}

#[test]
fn poly_encoder_cosine_tch_and_onnx_agree() {
    check(ModelType::PolyEncoder, Similarity::Cosine);
}

#[test]
fn colbert_tch_and_onnx_agree_in_every_direction() {
    let default = check(ModelType::Colbert, Similarity::Dot);
    let mut seen = vec![default];
    for (maxsim, special_tokens) in [
        (MaxSimDirection::TextToLabel, SpecialTokenSides::Both),
        (MaxSimDirection::Symmetric, SpecialTokenSides::Neither),
        (MaxSimDirection::LabelToText, SpecialTokenSides::Label),
    ] {
        let scores = check_scoring(ModelType::Colbert, Similarity::Dot, ColbertScoring { maxsim, special_tokens });
        // the setting reaches both stacks: every scoring gives other scores than the others
        for other in &seen {
            assert!(
                scores.concat().iter().zip(other.concat()).any(|(a, b)| (a - b).abs() > 1e-3),
                "{maxsim:?} {special_tokens:?}"
            );
        }
        seen.push(scores);
    }
}
