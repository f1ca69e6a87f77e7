//! The Hugging Face `config.json` of an encoder: the one definition the trainer (tch) and the
//! exporter (ONNX writer) both read, with Hugging Face's field names and defaults, for every
//! family this project builds ([`Family`]), chosen by `model_type`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

/// The encoder families, each built the way its `transformers/models/<family>/modeling_*.py` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// BERT (also bge, e5, gte-base style models, MiniLM): learned absolute positions, post-LayerNorm.
    Bert,
    /// RoBERTa and XLM-RoBERTa: BERT's layers, positions counted from `pad_token_id + 1`.
    Roberta,
    /// MPNet: BERT-like layers (`attention.attn.{q,k,v,o}`), RoBERTa positions, and a relative
    /// position bias shared by every layer.
    Mpnet,
    /// ModernBERT: pre-LayerNorm without biases, rotary positions, alternating sliding-window and
    /// global attention, gated GELU.
    ModernBert,
}

/// `model_type` values this code builds, as they appear in `config.json`.
pub const SUPPORTED_MODEL_TYPES: [&str; 5] = ["bert", "roberta", "xlm-roberta", "mpnet", "modernbert"];

impl Family {
    /// The family of a `model_type` (absent: `bert`, what older BERT configs mean).
    pub fn from_model_type(model_type: Option<&str>) -> std::result::Result<Family, String> {
        match model_type.unwrap_or("bert") {
            "bert" => Ok(Family::Bert),
            "roberta" | "xlm-roberta" => Ok(Family::Roberta),
            "mpnet" => Ok(Family::Mpnet),
            "modernbert" => Ok(Family::ModernBert),
            other => Err(format!("model_type `{other}` is not supported (supported: {})", SUPPORTED_MODEL_TYPES.join(", "))),
        }
    }

    /// Whether the model reads `token_type_ids` (BERT and RoBERTa have a token type embedding).
    pub fn uses_token_types(self) -> bool {
        matches!(self, Family::Bert | Family::Roberta)
    }

    /// Prefixes that task models put before the encoder's own keys (`bert.`, `model.`, ...).
    pub fn key_prefixes(self) -> &'static [&'static str] {
        match self {
            Family::Bert => &["bert."],
            Family::Roberta => &["roberta.", "xlm-roberta."],
            Family::Mpnet => &["mpnet."],
            Family::ModernBert => &["model."],
        }
    }
}

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
fn default_buckets() -> usize {
    32
}
fn default_global_theta() -> f64 {
    160_000.0
}
fn default_local_theta() -> f64 {
    10_000.0
}
fn default_local_attention() -> usize {
    128
}
fn default_global_every() -> usize {
    3
}

/// Activations of `hidden_act` the encoders implement: exact (erf) GELU, tanh GELU, ReLU.
pub const SUPPORTED_ACTIVATIONS: [&str; 5] = ["gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu"];

/// The subset of a Hugging Face encoder `config.json` the encoders need (HF field names; the
/// fields of one family are ignored by the others).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    /// ModernBERT calls it `hidden_activation`.
    #[serde(default = "default_act", alias = "hidden_activation")]
    pub hidden_act: String,
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// ModernBERT calls it `norm_eps`.
    #[serde(default = "default_eps", alias = "norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_embedding_type: Option<String>,
    /// RoBERTa and MPNet count positions from `pad_token_id + 1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_token_id: Option<usize>,
    /// MPNet's relative position buckets.
    #[serde(default = "default_buckets")]
    pub relative_attention_num_buckets: usize,
    /// ModernBERT: rotary base of the global layers.
    #[serde(default = "default_global_theta")]
    pub global_rope_theta: f64,
    /// ModernBERT: rotary base of the sliding-window layers.
    #[serde(default = "default_local_theta")]
    pub local_rope_theta: f64,
    /// ModernBERT: width of the sliding window (a token sees `local_attention / 2` on each side).
    #[serde(default = "default_local_attention")]
    pub local_attention: usize,
    /// ModernBERT: layer `l` is global when `l % global_attn_every_n_layers == 0`.
    #[serde(default = "default_global_every")]
    pub global_attn_every_n_layers: usize,
    #[serde(default)]
    pub norm_bias: bool,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    /// ModernBERT as transformers 5 writes it: `full_attention` / `sliding_attention` per layer
    /// (older configs: [`Self::global_attn_every_n_layers`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_types: Option<Vec<String>>,
    /// ModernBERT as transformers 5 writes it: `{"full_attention": {"rope_theta": ..},
    /// "sliding_attention": {..}}` (older configs: the two `*_rope_theta` fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<serde_json::Value>,
}

impl EncoderConfig {
    /// Read and check `config.json`: a JSON error is [`CoreError::Json`], anything the encoders
    /// cannot build (an unknown `model_type`, for one) is [`CoreError::Data`] naming the field.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| CoreError::io(path, e))?;
        // the family first: a config of another family may lack fields this struct requires
        let model_type = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("model_type").and_then(|t| t.as_str()).map(str::to_string));
        Family::from_model_type(model_type.as_deref())
            .map_err(|message| CoreError::Data { path: path.to_path_buf(), message })?;
        let cfg: EncoderConfig =
            serde_json::from_str(&text).map_err(|source| CoreError::Json { path: path.to_path_buf(), source })?;
        cfg.validate().map_err(|message| CoreError::Data { path: path.to_path_buf(), message })?;
        Ok(cfg)
    }

    /// The family, from `model_type` (checked by [`EncoderConfig::validate`]).
    pub fn family(&self) -> Family {
        Family::from_model_type(self.model_type.as_deref()).unwrap_or(Family::Bert)
    }

    /// What is wrong with this config for its family, if anything.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let family = Family::from_model_type(self.model_type.as_deref())?;
        if let Some(p) = &self.position_embedding_type {
            if p != "absolute" && matches!(family, Family::Bert | Family::Roberta) {
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
            ("relative_attention_num_buckets", self.relative_attention_num_buckets),
            ("global_attn_every_n_layers", self.global_attn_every_n_layers),
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
        if family == Family::ModernBert && !self.head_size().is_multiple_of(2) {
            return Err(format!("rotary positions need an even head size, not {}", self.head_size()));
        }
        if let Some(types) = &self.layer_types {
            if let Some(bad) = types.iter().find(|t| !matches!(t.as_str(), "full_attention" | "sliding_attention")) {
                return Err(format!("layer_types: `{bad}` is not supported (full_attention, sliding_attention)"));
            }
            if types.len() != self.num_hidden_layers {
                return Err(format!("layer_types has {} entries for {} layers", types.len(), self.num_hidden_layers));
            }
        }
        if let Some(p) = &self.rope_parameters {
            let kinds = p.as_object().map(|o| o.values().filter_map(|v| v.get("rope_type")?.as_str()).collect::<Vec<_>>());
            if let Some(bad) = kinds.unwrap_or_default().into_iter().find(|t| *t != "default") {
                return Err(format!("rope_type `{bad}` is not supported, only `default`"));
            }
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return Err(format!("layer_norm_eps {} must be a positive number", self.layer_norm_eps));
        }
        for (field, p) in [
            ("hidden_dropout_prob", self.hidden_dropout_prob),
            ("attention_probs_dropout_prob", self.attention_probs_dropout_prob),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(format!("{field} {p} must be in [0, 1)"));
            }
        }
        Ok(())
    }

    pub fn head_size(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// The first real token's position id: RoBERTa `pad_token_id + 1`, MPNet 2 (its padding
    /// index is fixed at 1 whatever the config says), BERT and ModernBERT 0.
    pub fn position_offset(&self) -> usize {
        match self.family() {
            Family::Roberta => self.pad_token_id.unwrap_or(1) + 1,
            Family::Mpnet => 2,
            Family::Bert | Family::ModernBert => 0,
        }
    }

    /// Tokens a text may have: the position table minus RoBERTa's and MPNet's offset.
    pub fn max_tokens(&self) -> usize {
        self.max_position_embeddings.saturating_sub(self.position_offset())
    }

    /// ModernBERT: whether layer `l` attends globally (else within the sliding window).
    pub fn is_global_layer(&self, l: usize) -> bool {
        match &self.layer_types {
            Some(types) => types.get(l).is_none_or(|t| t == "full_attention"),
            None => l.is_multiple_of(self.global_attn_every_n_layers),
        }
    }

    /// ModernBERT: the rotary base of the global (`true`) or the sliding-window layers.
    pub fn rope_theta(&self, global: bool) -> f64 {
        let (key, fallback) =
            if global { ("full_attention", self.global_rope_theta) } else { ("sliding_attention", self.local_rope_theta) };
        self.rope_parameters
            .as_ref()
            .and_then(|p| p.get(key))
            .and_then(|p| p.get("rope_theta"))
            .and_then(|t| t.as_f64())
            .unwrap_or(fallback)
    }

    /// Hugging Face names and shapes of every encoder weight, in model order.
    pub fn weight_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (h, i) = (self.hidden_size, self.intermediate_size);
        let mut v: Vec<(String, Vec<usize>)> = Vec::new();
        let mut push = |name: String, shape: Vec<usize>| v.push((name, shape));
        let linear = |push: &mut dyn FnMut(String, Vec<usize>), p: &str, d_in: usize, d_out: usize, bias: bool| {
            push(format!("{p}.weight"), vec![d_out, d_in]);
            if bias {
                push(format!("{p}.bias"), vec![d_out]);
            }
        };
        let norm = |push: &mut dyn FnMut(String, Vec<usize>), p: &str, bias: bool| {
            push(format!("{p}.weight"), vec![h]);
            if bias {
                push(format!("{p}.bias"), vec![h]);
            }
        };
        match self.family() {
            Family::Bert | Family::Roberta | Family::Mpnet => {
                let mpnet = self.family() == Family::Mpnet;
                push("embeddings.word_embeddings.weight".into(), vec![self.vocab_size, h]);
                push("embeddings.position_embeddings.weight".into(), vec![self.max_position_embeddings, h]);
                if !mpnet {
                    push("embeddings.token_type_embeddings.weight".into(), vec![self.type_vocab_size, h]);
                }
                norm(&mut push, "embeddings.LayerNorm", true);
                let (q, k, val, o, attn_norm) = if mpnet {
                    ("attention.attn.q", "attention.attn.k", "attention.attn.v", "attention.attn.o", "attention.LayerNorm")
                } else {
                    (
                        "attention.self.query",
                        "attention.self.key",
                        "attention.self.value",
                        "attention.output.dense",
                        "attention.output.LayerNorm",
                    )
                };
                for l in 0..self.num_hidden_layers {
                    let p = format!("encoder.layer.{l}");
                    for part in [q, k, val, o] {
                        linear(&mut push, &format!("{p}.{part}"), h, h, true);
                    }
                    norm(&mut push, &format!("{p}.{attn_norm}"), true);
                    linear(&mut push, &format!("{p}.intermediate.dense"), h, i, true);
                    linear(&mut push, &format!("{p}.output.dense"), i, h, true);
                    norm(&mut push, &format!("{p}.output.LayerNorm"), true);
                }
                if mpnet {
                    push(
                        "encoder.relative_attention_bias.weight".into(),
                        vec![self.relative_attention_num_buckets, self.num_attention_heads],
                    );
                }
            }
            Family::ModernBert => {
                push("embeddings.tok_embeddings.weight".into(), vec![self.vocab_size, h]);
                norm(&mut push, "embeddings.norm", self.norm_bias);
                for l in 0..self.num_hidden_layers {
                    let p = format!("layers.{l}");
                    // layer 0's attn_norm is an Identity: the embeddings' norm comes right before it
                    if l > 0 {
                        norm(&mut push, &format!("{p}.attn_norm"), self.norm_bias);
                    }
                    linear(&mut push, &format!("{p}.attn.Wqkv"), h, 3 * h, self.attention_bias);
                    linear(&mut push, &format!("{p}.attn.Wo"), h, h, self.attention_bias);
                    norm(&mut push, &format!("{p}.mlp_norm"), self.norm_bias);
                    linear(&mut push, &format!("{p}.mlp.Wi"), h, 2 * i, self.mlp_bias);
                    linear(&mut push, &format!("{p}.mlp.Wo"), i, h, self.mlp_bias);
                }
                norm(&mut push, "final_norm", self.norm_bias);
            }
        }
        v
    }

    /// Hugging Face names of every encoder weight, in model order.
    pub fn weight_names(&self) -> Vec<String> {
        self.weight_shapes().into_iter().map(|(n, _)| n).collect()
    }

    /// The encoder's own key for a key of a Hugging Face `model.safetensors`: strips the task
    /// model's prefix (`bert.`, `roberta.`, `mpnet.`, `model.`) and maps old `gamma`/`beta`
    /// LayerNorm names; `None` for keys no encoder weight has (pooler, pretraining heads, buffers).
    pub fn hf_key(&self, name: &str) -> Option<String> {
        let name = self.family().key_prefixes().iter().find_map(|p| name.strip_prefix(p)).unwrap_or(name);
        let skipped = ["pooler.", "cls.", "lm_head.", "head.", "decoder.", "classifier."];
        if skipped.iter().any(|p| name.starts_with(p))
            || name.starts_with("embeddings.position_ids")
            || name == "embeddings.token_type_ids"
        {
            return None;
        }
        let name = if let Some(stem) = name.strip_suffix(".gamma") {
            format!("{stem}.weight")
        } else if let Some(stem) = name.strip_suffix(".beta") {
            format!("{stem}.bias")
        } else {
            name.to_string()
        };
        Some(name)
    }
}

/// MPNet's relative position bucket of every relative position `r = j - i` (key minus query)
/// for sequences of up to `n` tokens, at index `r + n - 1`: transformers'
/// `MPNetEncoder.relative_position_bucket` (T5's bidirectional buckets, max_distance 128),
/// computed in f32 as there, so bucket edges fall where they fall in Python. transformers always
/// uses 32 buckets here; the config's `relative_attention_num_buckets` only sizes the table.
pub fn mpnet_relative_buckets(n: usize) -> Vec<i64> {
    const MAX_DISTANCE: f32 = 128.0;
    let num_buckets = 32;
    let half = (num_buckets / 2) as i64;
    let max_exact = half / 2;
    let log_ratio = (f64::from(MAX_DISTANCE) / max_exact as f64).ln() as f32;
    (-(n as i64 - 1)..n as i64)
        .map(|r| {
            let m = -r;
            let mut bucket = if m < 0 { half } else { 0 };
            let m = m.abs();
            bucket += if m < max_exact {
                m
            } else {
                let large = max_exact + ((m as f32 / max_exact as f32).ln() / log_ratio * (half - max_exact) as f32) as i64;
                large.min(half - 1)
            };
            bucket
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, json: &str) -> std::path::PathBuf {
        let p = dir.join("config.json");
        std::fs::write(&p, json).unwrap();
        p
    }

    const BASE: &str =
        r#""vocab_size": 30, "hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 16"#;

    #[test]
    fn defaults_and_errors_name_the_field() {
        let d = tempfile::tempdir().unwrap();
        let c = EncoderConfig::load(&write(d.path(), &format!("{{{BASE}}}"))).unwrap();
        assert_eq!((c.hidden_act.as_str(), c.max_position_embeddings, c.type_vocab_size), ("gelu", 512, 2));
        assert_eq!((c.hidden_dropout_prob, c.layer_norm_eps, c.head_size()), (0.1, 1e-12, 4));
        assert_eq!(c.weight_names().len(), 5 + 2 * 16);
        for (extra, needle) in [
            (r#", "hidden_act": "swish""#, "hidden_act"),
            (r#", "position_embedding_type": "relative_key""#, "position_embedding_type"),
            (r#", "layer_norm_eps": 0"#, "layer_norm_eps"),
        ] {
            let e = EncoderConfig::load(&write(d.path(), &format!("{{{BASE}{extra}}}"))).unwrap_err();
            assert!(matches!(e, CoreError::Data { .. }) && e.to_string().contains(needle), "{e}");
        }
        let bad_heads = format!("{{{}}}", BASE.replace("\"num_attention_heads\": 2", "\"num_attention_heads\": 3"));
        let e = EncoderConfig::load(&write(d.path(), &bad_heads)).unwrap_err();
        assert!(e.to_string().contains("num_attention_heads 3"), "{e}");
        let e = EncoderConfig::load(&write(d.path(), "{not json")).unwrap_err();
        assert!(matches!(e, CoreError::Json { .. }), "{e}");
    }

    #[test]
    fn an_unknown_family_is_one_line_naming_it_and_the_supported_ones() {
        let d = tempfile::tempdir().unwrap();
        // deberta-v2 configs lack nothing this struct needs, and still are refused by name
        let e = EncoderConfig::load(&write(d.path(), &format!(r#"{{{BASE}, "model_type": "deberta-v2"}}"#))).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("`deberta-v2`") && msg.contains("mpnet") && msg.contains("modernbert") && !msg.contains('\n'),
            "{msg}"
        );
        // a family is named before any field it would lack is complained about
        let e = EncoderConfig::load(&write(d.path(), r#"{"model_type": "t5", "d_model": 8}"#)).unwrap_err();
        assert!(e.to_string().contains("`t5`"), "{e}");
    }

    #[test]
    fn families_have_their_hugging_face_names() {
        let d = tempfile::tempdir().unwrap();
        let load = |extra: &str| EncoderConfig::load(&write(d.path(), &format!("{{{BASE}, {extra}}}"))).unwrap();
        let xlmr =
            load(r#""model_type": "xlm-roberta", "pad_token_id": 1, "type_vocab_size": 1, "max_position_embeddings": 514"#);
        assert_eq!((xlmr.family(), xlmr.position_offset(), xlmr.max_tokens()), (Family::Roberta, 2, 512));
        assert_eq!(
            xlmr.hf_key("roberta.encoder.layer.0.attention.self.query.weight").as_deref(),
            Some("encoder.layer.0.attention.self.query.weight")
        );
        let mpnet = load(r#""model_type": "mpnet", "pad_token_id": 1"#);
        let names = mpnet.weight_names();
        assert!(names.contains(&"encoder.layer.1.attention.attn.o.bias".to_string()));
        assert!(names.contains(&"encoder.relative_attention_bias.weight".to_string()));
        assert!(!names.iter().any(|n| n.contains("token_type")));
        assert_eq!(mpnet.hf_key("pooler.dense.weight"), None);
        let modern = load(r#""model_type": "modernbert", "hidden_activation": "gelu", "norm_eps": 1e-5"#);
        let names = modern.weight_names();
        assert_eq!(modern.layer_norm_eps, 1e-5);
        assert!(
            !names.contains(&"layers.0.attn_norm.weight".to_string()) && names.contains(&"layers.1.attn_norm.weight".to_string())
        );
        assert!(!names.iter().any(|n| n.ends_with(".bias")), "{names:?}");
        assert_eq!(modern.hf_key("model.layers.0.attn.Wqkv.weight").as_deref(), Some("layers.0.attn.Wqkv.weight"));
        assert!(modern.is_global_layer(0) && !modern.is_global_layer(1));
        assert_eq!((modern.rope_theta(true), modern.rope_theta(false)), (160_000.0, 10_000.0));
        // transformers 5 writes layer types and rope parameters instead
        let v5 = load(
            r#""model_type": "modernbert", "layer_types": ["sliding_attention", "full_attention"],
            "rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 5.0}, "sliding_attention": {"rope_type": "default", "rope_theta": 7.0}}"#,
        );
        assert!(!v5.is_global_layer(0) && v5.is_global_layer(1));
        assert_eq!((v5.rope_theta(true), v5.rope_theta(false)), (5.0, 7.0));
        let e = EncoderConfig::load(&write(
            d.path(),
            &format!(
                r#"{{{BASE}, "model_type": "modernbert", "rope_parameters": {{"full_attention": {{"rope_type": "yarn"}}}}}}"#
            ),
        ))
        .unwrap_err();
        assert!(e.to_string().contains("yarn"), "{e}");
    }

    #[test]
    fn mpnet_buckets_by_hand() {
        // 32 buckets: 16 a side; exact up to 7, then log-spaced up to 128, the far side offset by 16
        let b = mpnet_relative_buckets(200);
        let at = |r: i64| b[(r + 199) as usize];
        assert_eq!((at(0), at(-1), at(-7), at(1), at(7)), (0, 1, 7, 17, 23));
        assert_eq!((at(-8), at(-127), at(-199), at(199)), (8, 15, 15, 31));
    }
}
