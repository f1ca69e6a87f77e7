//! Parity on the real all-MiniLM-L6-v2, exported as a bi-encoder: the runtime's mean-pooled
//! embeddings of the six reference sentences against Hugging Face transformers
//! (`testkit/fixtures/minilm_reference/minilm_hf_reference.safetensors`, fp32 CPU), and a zero-shot sanity check.

use std::path::PathBuf;

use zsc::{Classifier, ClassifierOptions};
use zsc_testkit::fixtures::{base_model_dir, workspace_root};

/// Largest absolute difference allowed per embedding component (HF fp32 vs ONNX Runtime fp32,
/// differently fused kernels): 1e-5; the observed maximum is printed (6.6e-7 when written).
const TOLERANCE: f32 = 1e-5;

fn minilm_bundle() -> PathBuf {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("runtime-tests").join("minilm-bi");
    zsc_export::export_bundle(&base_model_dir(), &out, &zsc_export::ExportOptions::default()).unwrap();
    out
}

#[test]
fn minilm_matches_huggingface_and_ranks_sensibly() {
    let reference_dir = workspace_root().join("testkit/fixtures/minilm_reference");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reference_dir.join("minilm_hf_reference.json")).unwrap()).unwrap();
    let sentences: Vec<String> = meta["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
    let bytes = std::fs::read(reference_dir.join("minilm_hf_reference.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let pooled = st.tensor("mean_pooled").unwrap();
    assert_eq!(pooled.shape(), &[sentences.len(), 384]);
    let mut expected: Vec<f32> = pooled.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    // the folder ends in sentence-transformers' Normalize module: `embed` returns unit vectors
    for row in expected.chunks_mut(384) {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        row.iter_mut().for_each(|x| *x /= norm);
    }

    let bundle = minilm_bundle();
    // Batches of 4 after sorting by length: padding differs from the reference's single batch.
    let clf = Classifier::from_dir(&bundle, ClassifierOptions::default().with_batch_size(4)).unwrap();
    assert!(clf.spec().embedding.normalize);
    let got = clf.embed(&sentences).unwrap();
    let mut max_diff = 0.0f32;
    for (g, e) in got.iter().zip(&expected) {
        max_diff = max_diff.max((g - e).abs());
    }
    println!("MiniLM mean_pooled: max |runtime - HF| = {max_diff:e} (tolerance {TOLERANCE:e})");
    assert!(max_diff <= TOLERANCE, "max difference {max_diff}");

    // Zero-shot with the untuned base model: the obvious label wins.
    let labels = ["banking", "cooking", "weather", "sports"];
    let top = clf.classify(&["how do i transfer money to my savings account"], &labels, 4).unwrap();
    println!("{:?}", top[0]);
    assert_eq!(top[0][0].label, "banking");
    let scores =
        clf.scores(&["how do i transfer money to my savings account", "what's a good recipe for pancakes"], &labels).unwrap();
    assert!(scores[0][0] > scores[0][1], "banking above cooking: {:?}", scores[0]);
    assert!(scores[1][1] > scores[1][0], "cooking above banking: {:?}", scores[1]);
}
