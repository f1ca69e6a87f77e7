//! The classifier on tiny exported bundles of all three model types: the heads recomputed by hand
//! from the encoder's token outputs, batching/sorting invariance, thread safety, edge cases and
//! load-time errors.

mod common;

use std::path::Path;
use std::sync::Arc;

use ndarray::{Array1, Array2, Axis};
use zsc::scoring::{MaxSim, MeanPool, PolyAttention};
use zsc::{Classifier, ClassifierOptions, Error, Label, LabelTemplate, ProbabilityMode, ViewAggregation};
use zsc_core::ModelType;

const TEXTS: [&str; 6] = [
    "how do i transfer money to my savings account",
    "hi",
    "what is a good recipe for banana bread with walnuts and a little cinnamon",
    "book a table for two",
    "my card was declined at the store yesterday",
    "set an alarm",
];
const LABELS: [&str; 4] = ["banking", "cooking", "restaurant reservation", "alarm clock"];

fn load(dir: &Path, batch_size: usize) -> Classifier {
    Classifier::from_dir(dir, ClassifierOptions::default().with_batch_size(batch_size).with_intra_threads(1)).unwrap()
}

fn assert_close(a: &[Vec<f32>], b: &[Vec<f32>], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert_eq!(x.len(), y.len());
        for (j, (u, v)) in x.iter().zip(y).enumerate() {
            assert!((u - v).abs() <= tol, "[{i}][{j}]: {u} vs {v}");
        }
    }
}

fn mean_rows(t: &Array2<f32>) -> Array1<f32> {
    MeanPool::pool_one(t.view(), Array1::<i64>::ones(t.nrows()).view())
}

/// Scores recomputed pair by pair from the unpadded token outputs (one text per encoder call),
/// with the head formulas written out, compared with the batched classifier.
#[test]
fn heads_match_a_by_hand_recomputation() {
    let b = common::bundles();
    for (dir, model_type) in [(&b.bi, ModelType::BiEncoder), (&b.poly, ModelType::PolyEncoder), (&b.colbert, ModelType::Colbert)]
    {
        let single = load(dir, 1);
        let batched = load(dir, 4);
        assert_eq!(batched.model_type(), model_type);
        let text_tokens = single.token_embeddings(&TEXTS).unwrap();
        let label_tokens = single.token_embeddings(&LABELS).unwrap();
        let expected: Vec<Vec<f32>> = text_tokens
            .iter()
            .map(|t| {
                label_tokens
                    .iter()
                    .map(|l| match model_type {
                        ModelType::BiEncoder => mean_rows(t).dot(&mean_rows(l)),
                        ModelType::PolyEncoder => {
                            let codes = Array2::from_shape_vec((common::N_CODES, common::HIDDEN), common::poly_codes()).unwrap();
                            // a = softmax_T(C H^T), ctx = a H; w = softmax_m(ctx l), score = (w ctx) . l
                            let logits = codes.dot(&t.t());
                            let a = softmax_rows(&logits);
                            let ctx = a.dot(t);
                            let lv = mean_rows(l);
                            let w = softmax_rows(&ctx.dot(&lv).insert_axis(Axis(0))).row(0).to_owned();
                            w.dot(&ctx).dot(&lv)
                        }
                        ModelType::Colbert => {
                            let sim = l.dot(&t.t());
                            let maxes: Vec<f32> = sim.outer_iter().map(|r| r.fold(f32::NEG_INFINITY, |m, &x| m.max(x))).collect();
                            common::COLBERT_SCALE * maxes.iter().sum::<f32>() / maxes.len() as f32
                        }
                    })
                    .collect()
            })
            .collect();
        let got = batched.scores(&TEXTS, &LABELS).unwrap();
        assert_close(&got, &expected, 1e-4);
        // Not a degenerate model: the labels are scored differently.
        assert!(got[0].iter().any(|&s| (s - got[0][0]).abs() > 1e-6), "{model_type}: {:?}", got[0]);
        if model_type == ModelType::Colbert {
            // The graph L2-normalises ColBERT token embeddings.
            for t in &text_tokens {
                for row in t.outer_iter() {
                    assert!((row.dot(&row).sqrt() - 1.0).abs() < 1e-4);
                }
            }
        }
    }
}

fn softmax_rows(x: &Array2<f32>) -> Array2<f32> {
    let mut out = x.clone();
    for mut row in out.outer_iter_mut() {
        let m = row.fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        row.mapv_inplace(|v| (v - m).exp());
        let s = row.sum();
        row /= s;
    }
    out
}

#[test]
fn batch_size_and_order_do_not_change_scores() {
    let b = common::bundles();
    for dir in [&b.bi, &b.poly, &b.colbert] {
        let reference = load(dir, 1).scores(&TEXTS, &LABELS).unwrap();
        for bs in [2, 3, 64] {
            assert_close(&load(dir, bs).scores(&TEXTS, &LABELS).unwrap(), &reference, 1e-4);
        }
        // Reversed texts give reversed rows: the original order is restored after sorting by length.
        let reversed: Vec<&str> = TEXTS.iter().rev().copied().collect();
        let mut got = load(dir, 4).scores(&reversed, &LABELS).unwrap();
        got.reverse();
        assert_close(&got, &reference, 1e-4);
    }
}

#[test]
fn embeddings_are_mean_pooled_tokens() {
    let clf = load(&common::bundles().bi, 3);
    let pooled = clf.embed(&TEXTS).unwrap();
    let tokens = clf.token_embeddings(&TEXTS).unwrap();
    for (i, t) in tokens.iter().enumerate() {
        let m = mean_rows(t);
        for (a, b) in pooled.row(i).iter().zip(m.iter()) {
            assert!((a - b).abs() < 1e-5);
        }
    }
    // "hi" is [CLS] hi [SEP].
    assert_eq!(tokens[1].nrows(), 3);
}

#[test]
fn label_cache_reuse_and_probabilities() {
    let clf = load(&common::bundles().poly, 4);
    let cache = clf.encode_labels(&LABELS).unwrap();
    assert_eq!(cache.labels(), LABELS);
    let a = clf.scores(&TEXTS, &cache).unwrap();
    let b = clf.scores(&TEXTS, &LABELS).unwrap();
    assert_close(&a, &b, 1e-6);
    let multi = clf.probability(ProbabilityMode::MultiLabel);
    for srow in &a {
        for (s, q) in srow.iter().zip(multi.of_row(srow)) {
            assert!((zsc::scoring::sigmoid(*s) - q).abs() < 1e-6 && (0.0..=1.0).contains(&q));
        }
    }
    let top = clf.classify(&TEXTS, &cache, 2).unwrap();
    // label names work where a label set does, in any owned or borrowed form
    let names: Vec<String> = LABELS.iter().map(|l| l.to_string()).collect();
    assert_eq!(clf.classify(&TEXTS, &names, 2).unwrap(), top);
    assert_eq!(clf.classify(&TEXTS, &LABELS[..], 2).unwrap(), top);
    // top_k beyond the labels gives them all, ranked; 0 is an error naming the argument
    assert!(clf.classify(&TEXTS, &cache, 99).unwrap().iter().all(|r| r.len() == LABELS.len()));
    assert!(matches!(clf.classify(&TEXTS, &cache, 0), Err(Error::InvalidOption { option: "top_k", .. })));
    for (row, t) in a.iter().zip(&top) {
        assert_eq!(t.len(), 2);
        let best = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        assert_eq!(t[0].score, best);
        assert!(t[0].score >= t[1].score);
    }
    // Threshold 0 keeps every label, threshold above 1 none.
    assert!(clf.classify_multi_label(&TEXTS, &cache, 0.0).unwrap().iter().all(|r| r.len() == LABELS.len()));
    assert!(clf.classify_multi_label(&TEXTS, &cache, 1.01).unwrap().iter().all(|r| r.is_empty()));
    // A cache from another classifier is refused.
    let other = load(&common::bundles().poly, 4);
    assert!(matches!(other.scores(&TEXTS, &cache), Err(Error::ForeignLabelSet { .. })));
}

#[test]
fn label_template_is_applied() {
    let root = common::tmp_root();
    let dir = common::make_bundle("templated", ModelType::BiEncoder, Some("This text is about {}."), None);
    let _ = root;
    let with_manifest = Classifier::from_dir(&dir, ClassifierOptions::default()).unwrap();
    assert_eq!(with_manifest.label_template(), Some("This text is about {}."));
    let disabled = Classifier::from_dir(&dir, ClassifierOptions::default().with_label_template(LabelTemplate::Disabled)).unwrap();
    let templated: Vec<String> = LABELS.iter().map(|l| format!("This text is about {l}.")).collect();
    // Manifest template == templating the labels by hand with the template disabled.
    assert_close(&with_manifest.scores(&TEXTS, &LABELS).unwrap(), &disabled.scores(&TEXTS, &templated).unwrap(), 1e-5);
    let custom =
        Classifier::from_dir(&dir, ClassifierOptions::default().with_label_template(LabelTemplate::Custom("Topic: {}".into())))
            .unwrap();
    let by_hand: Vec<String> = LABELS.iter().map(|l| format!("Topic: {l}")).collect();
    assert_close(&custom.scores(&TEXTS, &LABELS).unwrap(), &disabled.scores(&TEXTS, &by_hand).unwrap(), 1e-5);
    let bad =
        Classifier::from_dir(&dir, ClassifierOptions::default().with_label_template(LabelTemplate::Custom("no slot".into())));
    assert!(matches!(bad, Err(Error::InvalidOption { option: "label_template", .. })));
}

#[test]
fn concurrent_classification_from_threads() {
    let b = common::bundles();
    let clf = Arc::new(
        Classifier::from_dir(&b.colbert, ClassifierOptions::default().with_batch_size(2).with_sessions(2).with_intra_threads(1))
            .unwrap(),
    );
    let cache = Arc::new(clf.encode_labels(&LABELS).unwrap());
    let expected = clf.scores(&TEXTS, &*cache).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|k| {
            let clf = Arc::clone(&clf);
            let cache = Arc::clone(&cache);
            std::thread::spawn(move || {
                let mut texts: Vec<&str> = TEXTS.to_vec();
                texts.rotate_left(k);
                let mut out = Vec::new();
                for _ in 0..3 {
                    out = clf.scores(&texts, &*cache).unwrap();
                }
                out.rotate_right(k);
                out
            })
        })
        .collect();
    for h in handles {
        assert_close(&h.join().unwrap(), &expected, 1e-4);
    }
}

#[test]
fn edge_cases_are_errors_not_panics() {
    let clf = load(&common::bundles().bi, 8);
    let none: [&str; 0] = [];
    assert_eq!(clf.scores(&none, &LABELS).unwrap(), Vec::<Vec<f32>>::new());
    assert!(matches!(clf.scores(&["a", "", "c"], &LABELS), Err(Error::EmptyText { index: 1 })));
    assert!(matches!(clf.scores(&["a", "  \n"], &LABELS), Err(Error::EmptyText { index: 1 })));
    let e = clf.scores(&["ok"], &none).unwrap_err();
    assert!(matches!(e, Error::NoLabels));
    let e = clf.scores(&["ok"], &["x", " "]).unwrap_err();
    assert!(matches!(e, Error::EmptyLabel { index: 1 }), "{e}");
    assert!(e.to_string().contains("label 1"));
    assert!(clf.scores(&["", "x"], &LABELS).unwrap_err().to_string().contains("text 0"));
}

#[test]
fn unusual_inputs_work() {
    let clf = load(&common::bundles().colbert, 16);
    let long = "banking and money transfers ".repeat(400);
    let texts =
        [long.as_str(), "Überweisung auf mein Sparkonto 💸 — 東京 ñandú", "tab\there\u{0007}bell\u{0000}nul", "\u{0007}", "a"];
    let scores = clf.scores(&texts, &LABELS).unwrap();
    assert_eq!(scores.len(), texts.len());
    assert!(scores.iter().flatten().all(|s| s.is_finite()));
    // The long text is truncated to max_length tokens.
    assert_eq!(clf.token_embeddings(&[long.as_str()]).unwrap()[0].nrows(), common::MAX_LENGTH);

    // Thousands of labels, encoded in batches.
    let many: Vec<String> = (0..2000).map(|i| format!("label number {i}")).collect();
    let s = clf.scores(&texts[1..3], &many).unwrap();
    assert_eq!(s.len(), 2);
    assert!(s.iter().all(|row| row.len() == 2000 && row.iter().all(|v| v.is_finite())));
    // The same label scored alone gives the same score as inside the big list.
    let alone = clf.scores(&texts[1..2], &[many[1234].as_str()]).unwrap();
    assert!((alone[0][0] - s[0][1234]).abs() < 1e-4);
}

fn copy_bundle(src: &Path, name: &str) -> std::path::PathBuf {
    let dst = common::tmp_root().join("broken").join(name);
    let _ = std::fs::remove_dir_all(&dst);
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    dst
}

fn load_err(dir: &Path) -> String {
    Classifier::from_dir(dir, ClassifierOptions::default()).unwrap_err().to_string()
}

#[test]
fn load_errors_name_the_file() {
    let b = common::bundles();

    let e = load_err(&common::tmp_root().join("no-such-bundle"));
    assert!(e.contains("manifest.json") && e.contains("no-such-bundle"), "{e}");

    let d = copy_bundle(&b.bi, "no-encoder");
    std::fs::remove_file(d.join("encoder.onnx")).unwrap();
    let e = load_err(&d);
    assert!(e.contains("encoder.onnx") && e.contains("missing"), "{e}");

    let d = copy_bundle(&b.bi, "no-tokenizer");
    std::fs::remove_file(d.join("tokenizer.json")).unwrap();
    assert!(load_err(&d).contains("tokenizer.json"));

    let d = copy_bundle(&b.bi, "bad-manifest");
    std::fs::write(d.join("manifest.json"), "{ not json").unwrap();
    let e = load_err(&d);
    assert!(e.contains("manifest.json") && e.contains("invalid JSON"), "{e}");

    // Poly codes of the wrong shape.
    let d = copy_bundle(&b.poly, "bad-codes");
    let data = vec![0u8; 4 * 3 * common::HIDDEN];
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![3, common::HIDDEN], &data).unwrap();
    safetensors::serialize_to_file(vec![("poly.codes", view)], None, &d.join("head.safetensors")).unwrap();
    let e = load_err(&d);
    assert!(e.contains("head.safetensors") && e.contains("poly.codes") && e.contains("[3, 32]"), "{e}");

    // ColBERT head without its score scale.
    let d = copy_bundle(&b.colbert, "no-scale");
    safetensors::serialize_to_file(Vec::<(&str, safetensors::tensor::TensorView<'_>)>::new(), None, &d.join("head.safetensors"))
        .unwrap();
    let e = load_err(&d);
    assert!(e.contains("colbert.score_scale") && e.contains("missing"), "{e}");

    // Not a safetensors file at all.
    let d = copy_bundle(&b.colbert, "garbage-head");
    std::fs::write(d.join("head.safetensors"), b"garbage").unwrap();
    assert!(load_err(&d).contains("head.safetensors"));

    // ONNX I/O names that disagree with the manifest are found at load time.
    let d = copy_bundle(&b.bi, "renamed-input");
    let text = std::fs::read_to_string(d.join("manifest.json")).unwrap();
    std::fs::write(d.join("manifest.json"), text.replace("\"token_type_ids\"", "\"input_ids_2\"")).unwrap();
    let e = load_err(&d);
    assert!(e.contains("input_ids_2"), "{e}");

    // A bi-encoder graph declared as ColBERT: the output name and width disagree.
    let d = copy_bundle(&b.bi, "wrong-output-dim");
    let mut m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d.join("manifest.json")).unwrap()).unwrap();
    m["output_dim"] = serde_json::json!(common::HIDDEN + 1);
    m["spec"]["hidden_size"] = serde_json::json!(common::HIDDEN + 1);
    std::fs::write(d.join("manifest.json"), m.to_string()).unwrap();
    let e = load_err(&d);
    assert!(e.contains("encoder.onnx") && e.contains("output_dim"), "{e}");

    let d = copy_bundle(&b.bi, "corrupt-onnx");
    std::fs::write(d.join("encoder.onnx"), b"not an onnx model").unwrap();
    let e = load_err(&d);
    assert!(e.contains("encoder.onnx"), "{e}");

    let e = Classifier::from_dir(&b.bi, ClassifierOptions::default().with_batch_size(0)).unwrap_err();
    assert!(matches!(e, Error::InvalidOption { option: "batch_size", .. }));
}

/// A bundle cut short while being copied: half an `encoder.onnx` is an error naming the file.
#[test]
fn truncated_encoder_onnx_is_an_error() {
    let d = copy_bundle(&common::bundles().poly, "truncated-onnx");
    let bytes = std::fs::read(d.join("encoder.onnx")).unwrap();
    std::fs::write(d.join("encoder.onnx"), &bytes[..bytes.len() / 2]).unwrap();
    let e = load_err(&d);
    assert!(e.contains("encoder.onnx"), "{e}");
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_without_the_feature_is_a_clear_error() {
    let e = Classifier::from_dir(
        &common::bundles().bi,
        ClassifierOptions::default().with_execution_provider(zsc::ExecutionProvider::Cuda { device_id: 0 }),
    )
    .unwrap_err();
    assert!(e.to_string().contains("--features cuda"), "{e}");
}

/// Unused helpers keep `PolyAttention`/`MaxSim` exercised through the public API as well.
#[test]
fn public_scoring_api_is_usable() {
    let poly = PolyAttention::new(Array2::eye(2));
    let ctx = poly.context(Array2::eye(2).view(), Array1::ones(2).view());
    assert_eq!(PolyAttention::score(ctx.view(), Array2::eye(2).view()).len(), 2);
    let m = MaxSim::new(2.0);
    assert_eq!(m.score_many(Array2::eye(2).view(), Array2::eye(2).view(), &[0..1, 1..2]).to_vec(), vec![2.0, 2.0]);
}

fn load_with(dir: &Path, aggregation: ViewAggregation) -> Classifier {
    Classifier::from_dir(dir, ClassifierOptions::default().with_intra_threads(1).with_view_aggregation(aggregation)).unwrap()
}

/// A label with a description and examples scores its views as separate labels would, combined by
/// the aggregation; a label with a name only scores as the bare name, in every architecture.
#[test]
fn label_views_combine_as_their_separate_scores() {
    let b = common::bundles();
    let refund = Label::new("refund")
        .with_description("money going back to the customer")
        .with_examples(["please reverse the charge", "i want my money back"]);
    let views = ["refund", "money going back to the customer", "please reverse the charge", "i want my money back"];
    for dir in [&b.bi, &b.poly, &b.colbert] {
        for aggregation in [ViewAggregation::Mean, ViewAggregation::Max] {
            let clf = load_with(dir, aggregation);
            let separate = clf.scores(&TEXTS, &views).unwrap();
            let labels = [refund.clone(), Label::new("alarm clock")];
            let got = clf.scores(&TEXTS, &labels).unwrap();
            let bare = clf.scores(&TEXTS, &["alarm clock"]).unwrap();
            for ((g, s), plain) in got.iter().zip(&separate).zip(&bare) {
                let expected = match aggregation {
                    ViewAggregation::Max => s.iter().copied().fold(f32::NEG_INFINITY, f32::max),
                    _ => s.iter().sum::<f32>() / 4.0,
                };
                assert!((g[0] - expected).abs() < 1e-4, "{} {aggregation:?}: {} vs {expected}", dir.display(), g[0]);
                assert!((g[1] - plain[0]).abs() < 1e-6, "a name-only label is unchanged");
            }
            let names = clf.encode_labels(&labels).unwrap();
            assert_eq!(names.labels(), ["refund", "alarm clock"]);
        }
    }
}

/// BiEncoder prototype: the label is scored as one vector, the mean of its views' unit vectors
/// scaled to their mean length (these tiny bundles have no prompts, template or normalisation, so
/// a view's label vector is its `embed`).
#[test]
fn prototype_scores_the_mean_unit_vector_at_the_mean_length() {
    let clf = load_with(&common::bundles().bi, ViewAggregation::Prototype);
    let views = ["refund", "please reverse the charge", "i want my money back"];
    let e = clf.embed(&views).unwrap();
    let norms: Vec<f32> = e.rows().into_iter().map(|r| r.dot(&r).sqrt()).collect();
    let mut proto = ndarray::Array1::<f32>::zeros(e.ncols());
    for (r, n) in e.rows().into_iter().zip(&norms) {
        proto.scaled_add(1.0 / n, &r);
    }
    let scale = norms.iter().sum::<f32>() / 3.0 / proto.dot(&proto).sqrt();
    proto *= scale;
    let texts = clf.embed(&TEXTS).unwrap();
    let label = Label::new("refund").with_examples(["please reverse the charge", "i want my money back"]);
    let got = clf.scores(&TEXTS, &[label]).unwrap();
    for (g, t) in got.iter().zip(texts.rows()) {
        assert!((g[0] - t.dot(&proto)).abs() < 1e-3 * t.dot(&proto).abs().max(1.0), "{} vs {}", g[0], t.dot(&proto));
    }
}

#[test]
fn bad_label_views_are_errors() {
    let clf = load(&common::bundles().bi, 4);
    let e = clf.scores(&TEXTS, &[Label::new("x").with_examples(["ok", " "])]).unwrap_err();
    assert!(matches!(&e, Error::InvalidLabel { label, .. } if label == "x"), "{e}");
    let many: Vec<String> = (0..=zsc::MAX_EXAMPLES_PER_LABEL).map(|i| format!("t{i}")).collect();
    assert!(clf.scores(&TEXTS, &[Label::new("x").with_examples(many)]).is_err());
    assert!(clf.scores(&TEXTS, &[Label::new("x").with_description("")]).is_err());
}
