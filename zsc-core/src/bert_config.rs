//! The Hugging Face BERT `config.json`: the one definition the trainer (tch) and the exporter
//! (ONNX writer) both read, with Hugging Face's field names and defaults.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

fn default_act() -> String {
    "gelu".into()
}
fn default_dropout() -> f64 {
    0.1
}
fn default_max_pos() -> usize {
    512
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}

/// Activations of `hidden_act` the encoders implement: exact (erf) GELU, tanh GELU, ReLU.
pub const SUPPORTED_ACTIVATIONS: [&str; 5] = ["gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu"];

/// The subset of a Hugging Face BERT `config.json` the encoder needs (HF field names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_embedding_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
}

impl BertConfig {
    /// Read and check `config.json`: a JSON error is [`CoreError::Json`], anything the encoders
    /// cannot build is [`CoreError::Data`] naming the field.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| CoreError::io(path, e))?;
        let cfg: BertConfig =
            serde_json::from_str(&text).map_err(|source| CoreError::Json { path: path.to_path_buf(), source })?;
        cfg.validate().map_err(|message| CoreError::Data { path: path.to_path_buf(), message })?;
        Ok(cfg)
    }

    /// What is wrong with this config for a BERT encoder, if anything.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if let Some(t) = &self.model_type {
            if t != "bert" {
                return Err(format!("model_type `{t}` is not supported, only `bert`"));
            }
        }
        if let Some(p) = &self.position_embedding_type {
            if p != "absolute" {
                return Err(format!("position_embedding_type `{p}` is not supported, only `absolute`"));
            }
        }
        if !SUPPORTED_ACTIVATIONS.contains(&self.hidden_act.as_str()) {
            return Err(format!(
                "unsupported hidden_act `{}` (expected one of {})",
                self.hidden_act,
                SUPPORTED_ACTIVATIONS.join(", ")
            ));
        }
        for (field, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ] {
            if v == 0 {
                return Err(format!("{field} must be at least 1"));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!(
                "hidden_size {} must be a positive multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return Err(format!("layer_norm_eps {} must be a positive number", self.layer_norm_eps));
        }
        for (field, p) in [("hidden_dropout_prob", self.hidden_dropout_prob), ("attention_probs_dropout_prob", self.attention_probs_dropout_prob)] {
            if !(0.0..1.0).contains(&p) {
                return Err(format!("{field} {p} must be in [0, 1)"));
            }
        }
        Ok(())
    }

    pub fn head_size(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Hugging Face names of every encoder weight, in model order.
    pub fn weight_names(&self) -> Vec<String> {
        let mut v: Vec<String> = [
            "embeddings.word_embeddings.weight",
            "embeddings.position_embeddings.weight",
            "embeddings.token_type_embeddings.weight",
            "embeddings.LayerNorm.weight",
            "embeddings.LayerNorm.bias",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for l in 0..self.num_hidden_layers {
            for part in [
                "attention.self.query",
                "attention.self.key",
                "attention.self.value",
                "attention.output.dense",
                "attention.output.LayerNorm",
                "intermediate.dense",
                "output.dense",
                "output.LayerNorm",
            ] {
                v.push(format!("encoder.layer.{l}.{part}.weight"));
                v.push(format!("encoder.layer.{l}.{part}.bias"));
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, json: &str) -> std::path::PathBuf {
        let p = dir.join("config.json");
        std::fs::write(&p, json).unwrap();
        p
    }

    #[test]
    fn defaults_and_errors_name_the_field() {
        let d = tempfile::tempdir().unwrap();
        let base = r#""vocab_size": 30, "hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 16"#;
        let c = BertConfig::load(&write(d.path(), &format!("{{{base}}}"))).unwrap();
        assert_eq!((c.hidden_act.as_str(), c.max_position_embeddings, c.type_vocab_size), ("gelu", 512, 2));
        assert_eq!((c.hidden_dropout_prob, c.layer_norm_eps, c.head_size()), (0.1, 1e-12, 4));
        assert_eq!(c.weight_names().len(), 5 + 2 * 16);
        for (extra, needle) in [
            (r#", "hidden_act": "swish""#, "hidden_act"),
            (r#", "model_type": "roberta""#, "model_type"),
            (r#", "position_embedding_type": "relative_key""#, "position_embedding_type"),
            (r#", "layer_norm_eps": 0"#, "layer_norm_eps"),
        ] {
            let e = BertConfig::load(&write(d.path(), &format!("{{{base}{extra}}}"))).unwrap_err();
            assert!(matches!(e, CoreError::Data { .. }) && e.to_string().contains(needle), "{e}");
        }
        let bad_heads = format!("{{{}}}", base.replace("\"num_attention_heads\": 2", "\"num_attention_heads\": 3"));
        let e = BertConfig::load(&write(d.path(), &bad_heads)).unwrap_err();
        assert!(e.to_string().contains("num_attention_heads 3"), "{e}");
        let e = BertConfig::load(&write(d.path(), "{not json")).unwrap_err();
        assert!(matches!(e, CoreError::Json { .. }), "{e}");
    }
}
