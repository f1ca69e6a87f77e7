//! Parity of the tch BERT with Hugging Face transformers on the real MiniLM (golden file
//! `testkit/fixtures/minilm_reference/minilm_hf_reference.{json,safetensors}`, produced by transformers 4.57.1,
//! fp32 CPU). Tolerances: last_hidden_state max abs diff <= 1e-4, masked mean <= 1e-5.

use std::collections::BTreeMap;

use tch::{Device, Tensor};
use zsc_core::tokenize::TextTokenizer;
use zsc_core::{ModelSpec, ModelType};
use zsc_testkit::fixtures::{base_model_dir, workspace_root};
use zsc_trainer::models::{mean_pool, BatchTensors};
use zsc_trainer::{EncoderConfig, ZscModel};

fn reference() -> (Vec<String>, BTreeMap<String, Tensor>) {
    let dir = workspace_root().join("testkit/fixtures/minilm_reference");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("minilm_hf_reference.json")).unwrap()).unwrap();
    let sentences = json["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
    let tensors = Tensor::read_safetensors(dir.join("minilm_hf_reference.safetensors")).unwrap().into_iter().collect();
    (sentences, tensors)
}

fn to_i64(t: &Tensor) -> Vec<i64> {
    Vec::<i64>::try_from(&t.contiguous().view([-1])).unwrap()
}

#[test]
fn minilm_matches_hugging_face() {
    let (sentences, refs) = reference();
    let base = base_model_dir();
    let cfg = EncoderConfig::load(&base.join("config.json")).unwrap();
    assert_eq!((cfg.hidden_size, cfg.num_attention_heads), (384, 12));
    let spec = ModelSpec {
        model_type: ModelType::BiEncoder,
        hidden_size: cfg.hidden_size,
        max_length: 128,
        n_code_vectors: None,
        colbert_dim: None,
        label_template: None,
        similarity: Default::default(),
        embedding: Default::default(),
        colbert_scoring: Default::default(),
    };
    let model = ZscModel::from_base(spec, &base, Device::Cpu).unwrap();

    // the shared tokenizer gives the reference ids
    let tok = TextTokenizer::from_file(&base.join("tokenizer.json"), 128).unwrap();
    let batch = tok.encode_batch(&sentences).unwrap();
    let ref_ids = &refs["input_ids"];
    let ref_mask = &refs["attention_mask"];
    assert_eq!(vec![batch.batch as i64, batch.seq as i64], ref_ids.size());
    assert_eq!(batch.input_ids, to_i64(ref_ids));
    assert_eq!(batch.attention_mask, to_i64(ref_mask));

    // the reference ids through our BERT
    let t = BatchTensors::new(&batch, Device::Cpu).unwrap();
    let h = tch::no_grad(|| model.encoder.forward(&t.input_ids, &t.attention_mask, &t.token_type_ids, false));
    let max_diff = (&h - &refs["last_hidden_state"]).abs().max().double_value(&[]);
    assert!(max_diff <= 1e-4, "last_hidden_state max abs diff {max_diff}");
    let pooled = mean_pool(&h, &t.attention_mask);
    let pool_diff = (&pooled - &refs["mean_pooled"]).abs().max().double_value(&[]);
    assert!(pool_diff <= 1e-5, "masked mean max abs diff {pool_diff}");
    eprintln!("MiniLM parity: last_hidden_state max diff {max_diff:.2e}, mean pooled {pool_diff:.2e}");

    // eval mode is deterministic, train mode applies dropout
    let again = tch::no_grad(|| model.encoder.forward(&t.input_ids, &t.attention_mask, &t.token_type_ids, false));
    assert_eq!((&h - &again).abs().max().double_value(&[]), 0.0);
    let dropped = tch::no_grad(|| model.encoder.forward(&t.input_ids, &t.attention_mask, &t.token_type_ids, true));
    assert!((&h - &dropped).abs().max().double_value(&[]) > 1e-3);
}

#[test]
fn missing_base_model_is_a_clear_error() {
    let spec = ModelSpec {
        model_type: ModelType::BiEncoder,
        hidden_size: 384,
        max_length: 16,
        n_code_vectors: None,
        colbert_dim: None,
        label_template: None,
        similarity: Default::default(),
        embedding: Default::default(),
        colbert_scoring: Default::default(),
    };
    let e = ZscModel::from_base(spec, std::path::Path::new("/nonexistent/model"), Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("/nonexistent/model") && e.contains("not found"), "{e}");
}
