//! A tiny random BERT in Hugging Face layout, for fast tests in every crate.
//!
//! It reuses the real base model's `tokenizer.json` (so ids and special tokens are the real ones)
//! with a small hidden size and few layers; weights are seeded normal(0, 0.02), LayerNorms 1/0.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use zsc_core::error::{CoreError, Result};
use zsc_core::rng::SplitMix64;

#[derive(Debug, Clone, Copy)]
pub struct TinyBert {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub seed: u64,
}

impl Default for TinyBert {
    fn default() -> Self {
        TinyBert {
            hidden_size: 32,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            intermediate_size: 64,
            max_position_embeddings: 128,
            seed: 0,
        }
    }
}

/// The base model folder: `$ZSC_BASE_MODEL` (set by `.cargo/config.toml`), else
/// `models/all-MiniLM-L6-v2` under the workspace root.
pub fn base_model_dir() -> PathBuf {
    if let Ok(p) = std::env::var("ZSC_BASE_MODEL") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("models").join("all-MiniLM-L6-v2")
}

/// The workspace root (for tests that need `data/` or `testkit/fixtures/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn normal(rng: &mut SplitMix64, std: f32) -> f32 {
    // Box-Muller
    let u1 = ((rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    let u2 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32 * std
}

/// The Hugging Face BERT weight names and shapes for a config.
pub fn bert_weight_shapes(vocab: usize, c: &TinyBert) -> Vec<(String, Vec<usize>)> {
    let (h, i) = (c.hidden_size, c.intermediate_size);
    let mut v = vec![
        ("embeddings.word_embeddings.weight".to_string(), vec![vocab, h]),
        ("embeddings.position_embeddings.weight".to_string(), vec![c.max_position_embeddings, h]),
        ("embeddings.token_type_embeddings.weight".to_string(), vec![2, h]),
        ("embeddings.LayerNorm.weight".to_string(), vec![h]),
        ("embeddings.LayerNorm.bias".to_string(), vec![h]),
    ];
    for l in 0..c.num_hidden_layers {
        let p = format!("encoder.layer.{l}");
        for m in ["query", "key", "value"] {
            v.push((format!("{p}.attention.self.{m}.weight"), vec![h, h]));
            v.push((format!("{p}.attention.self.{m}.bias"), vec![h]));
        }
        v.push((format!("{p}.attention.output.dense.weight"), vec![h, h]));
        v.push((format!("{p}.attention.output.dense.bias"), vec![h]));
        v.push((format!("{p}.attention.output.LayerNorm.weight"), vec![h]));
        v.push((format!("{p}.attention.output.LayerNorm.bias"), vec![h]));
        v.push((format!("{p}.intermediate.dense.weight"), vec![i, h]));
        v.push((format!("{p}.intermediate.dense.bias"), vec![i]));
        v.push((format!("{p}.output.dense.weight"), vec![h, i]));
        v.push((format!("{p}.output.dense.bias"), vec![h]));
        v.push((format!("{p}.output.LayerNorm.weight"), vec![h]));
        v.push((format!("{p}.output.LayerNorm.bias"), vec![h]));
    }
    v
}

/// Write `config.json`, `model.safetensors` and `tokenizer.json` of a tiny random BERT into `dir`.
pub fn write_tiny_bert(dir: &Path, c: TinyBert) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| CoreError::io(dir, e))?;
    let tok_src = base_model_dir().join("tokenizer.json");
    let tok_text = std::fs::read_to_string(&tok_src).map_err(|e| CoreError::io(&tok_src, e))?;
    let vocab = 30522;
    std::fs::write(dir.join("tokenizer.json"), tok_text).map_err(|e| CoreError::io(dir, e))?;
    let config = serde_json::json!({
        "architectures": ["BertModel"],
        "model_type": "bert",
        "attention_probs_dropout_prob": 0.1,
        "hidden_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_size": c.hidden_size,
        "intermediate_size": c.intermediate_size,
        "num_attention_heads": c.num_attention_heads,
        "num_hidden_layers": c.num_hidden_layers,
        "max_position_embeddings": c.max_position_embeddings,
        "type_vocab_size": 2,
        "vocab_size": vocab,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
        "initializer_range": 0.02
    });
    std::fs::write(dir.join("config.json"), serde_json::to_string_pretty(&config).unwrap_or_default())
        .map_err(|e| CoreError::io(dir, e))?;

    let mut rng = SplitMix64::new(c.seed);
    let mut buffers: BTreeMap<String, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    for (name, shape) in bert_weight_shapes(vocab, &c) {
        let n: usize = shape.iter().product();
        let values: Vec<f32> = if name.ends_with("LayerNorm.weight") {
            vec![1.0; n]
        } else if name.ends_with("bias") {
            vec![0.0; n]
        } else {
            (0..n).map(|_| normal(&mut rng, 0.02)).collect()
        };
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        buffers.insert(name, (shape, bytes));
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = buffers
        .iter()
        .map(|(k, (shape, bytes))| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|v| (k.clone(), v))
                .map_err(|e| CoreError::Invalid(e.to_string()))
        })
        .collect::<Result<_>>()?;
    let path = dir.join("model.safetensors");
    safetensors::serialize_to_file(views, None, &path).map_err(|e| CoreError::Invalid(format!("{}: {e}", path.display())))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_loadable_folder() {
        let d = tempfile::tempdir().unwrap();
        write_tiny_bert(d.path(), TinyBert::default()).unwrap();
        let bytes = std::fs::read(d.path().join("model.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st.tensor("embeddings.word_embeddings.weight").unwrap().shape(), &[30522, 32]);
        assert_eq!(st.len(), 5 + 2 * 16);
    }
}
