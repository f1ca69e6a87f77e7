//! The real all-MiniLM-L6-v2, exported as a plain Hugging Face folder (bi-encoder), against
//! Hugging Face transformers' last_hidden_state on the six reference sentences.
//! Tolerance: max abs diff ≤ 1e-4 on real tokens (observed: 2.1e-6 on real tokens,
//! 3.1e-5 on padding positions, with onnxruntime 1.31.1 CPU).

mod common;

use common::*;
use zsc_core::ModelType;
use zsc_export::{export_bundle, ExportOptions};
use zsc_testkit::fixtures::{base_model_dir, workspace_root};

const TOL: f64 = 1e-4;

#[test]
fn minilm_matches_hugging_face() {
    let reference = workspace_root().join("testkit/fixtures/minilm_reference/minilm_hf_reference.safetensors");
    assert!(reference.is_file(), "reference {} missing", reference.display());
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("minilm");
    let opts = ExportOptions { model_type: Some(ModelType::BiEncoder), ..Default::default() };
    let m = export_bundle(&base_model_dir(), &out, &opts).unwrap();
    // the sentence-transformers folder's max_seq_length, and its cosine similarity
    assert_eq!((m.spec.hidden_size, m.output_dim, m.spec.max_length), (384, 384, 256));
    assert_eq!(m.spec.similarity, zsc_core::Similarity::Cosine);
    assert_eq!(m.data, None);

    let (ok, stdout, stderr) = run_python("minilm_parity.py", &[&out, &reference, std::path::Path::new(&TOL.to_string())]);
    let r = last_json(&stdout);
    eprintln!("MiniLM parity: {r}");
    assert!(ok, "parity failed:\n{stdout}\n{stderr}");
    assert!(r["max_abs_diff_real_tokens"].as_f64().unwrap() <= TOL, "{r}");
    assert!(r["max_abs_diff_dynamic_real_tokens"].as_f64().unwrap() <= TOL, "{r}");
    // Padding positions too: HF's finfo.min mask and ours give the same numbers there.
    assert!(r["max_abs_diff_all_tokens"].as_f64().unwrap() <= TOL, "{r}");
    assert_eq!(r["dynamic_shapes"].as_array().unwrap().len(), 4);
}
