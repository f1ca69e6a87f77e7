//! BERT encoder in tch, as a tree of small structs whose `nn::Path` names are exactly the
//! Hugging Face key tree (`embeddings.word_embeddings.weight`,
//! `encoder.layer.0.attention.self.query.weight`, ...), so that one `VarStore` loads a Hugging Face
//! `model.safetensors` and saves a checkpoint that export reads under the very same names.
//!
//! Follows `transformers/models/bert/modeling_bert.py` (post-LayerNorm, exact erf GELU,
//! additive attention mask).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use crate::error::{Result, TrainerError};

pub use zsc_core::bert_config::BertConfig;

#[derive(Debug, Clone, Copy)]
enum Activation {
    GeluErf,
    GeluTanh,
    Relu,
}

fn activation(name: &str) -> std::result::Result<Activation, String> {
    match name {
        "gelu" => Ok(Activation::GeluErf),
        "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Activation::GeluTanh),
        "relu" => Ok(Activation::Relu),
        other => Err(format!("unsupported hidden_act `{other}` (expected gelu, gelu_new or relu)")),
    }
}

fn layer_norm(p: nn::Path, cfg: &BertConfig) -> nn::LayerNorm {
    nn::layer_norm(p, vec![cfg.hidden_size as i64], nn::LayerNormConfig { eps: cfg.layer_norm_eps, ..Default::default() })
}

#[derive(Debug)]
pub struct Embeddings {
    word_embeddings: nn::Embedding,
    position_embeddings: nn::Embedding,
    token_type_embeddings: nn::Embedding,
    layer_norm: nn::LayerNorm,
    dropout: f64,
}

impl Embeddings {
    pub fn new(p: nn::Path, cfg: &BertConfig) -> Self {
        let h = cfg.hidden_size as i64;
        let e = nn::EmbeddingConfig::default();
        Embeddings {
            word_embeddings: nn::embedding(&p / "word_embeddings", cfg.vocab_size as i64, h, e),
            position_embeddings: nn::embedding(&p / "position_embeddings", cfg.max_position_embeddings as i64, h, e),
            token_type_embeddings: nn::embedding(&p / "token_type_embeddings", cfg.type_vocab_size as i64, h, e),
            layer_norm: layer_norm(&p / "LayerNorm", cfg),
            dropout: cfg.hidden_dropout_prob,
        }
    }

    pub fn forward(&self, input_ids: &Tensor, token_type_ids: &Tensor, train: bool) -> Tensor {
        let seq = input_ids.size()[1];
        let positions = Tensor::arange(seq, (Kind::Int64, input_ids.device())).unsqueeze(0);
        let x = self.word_embeddings.forward(input_ids)
            + self.position_embeddings.forward(&positions)
            + self.token_type_embeddings.forward(token_type_ids);
        self.layer_norm.forward(&x).dropout(self.dropout, train)
    }
}

#[derive(Debug)]
pub struct SelfAttention {
    query: nn::Linear,
    key: nn::Linear,
    value: nn::Linear,
    num_heads: i64,
    head_dim: i64,
    dropout: f64,
}

impl SelfAttention {
    pub fn new(p: nn::Path, cfg: &BertConfig) -> Self {
        let h = cfg.hidden_size as i64;
        let lc = nn::LinearConfig::default();
        SelfAttention {
            query: nn::linear(&p / "query", h, h, lc),
            key: nn::linear(&p / "key", h, h, lc),
            value: nn::linear(&p / "value", h, h, lc),
            num_heads: cfg.num_attention_heads as i64,
            head_dim: (cfg.hidden_size / cfg.num_attention_heads) as i64,
            dropout: cfg.attention_probs_dropout_prob,
        }
    }

    /// `additive_mask` is `[B, 1, 1, T]`: 0 for real tokens, a large negative number for padding.
    pub fn forward(&self, x: &Tensor, additive_mask: &Tensor, train: bool) -> Tensor {
        let (b, t, h) = x.size3().unwrap_or((0, 0, 0));
        let split = |y: Tensor| y.view([b, t, self.num_heads, self.head_dim]).transpose(1, 2);
        let q = split(self.query.forward(x));
        let k = split(self.key.forward(x));
        let v = split(self.value.forward(x));
        // libtorch's fused attention (softmax(q k^T / sqrt(d) + mask) v, dropout on the
        // probabilities in training): what transformers' "sdpa" attention calls, fewer passes
        // over memory than the three separate ops
        let p = if train { self.dropout } else { 0.0 };
        Tensor::scaled_dot_product_attention(&q, &k, &v, Some(additive_mask), p, false, None, false)
            .transpose(1, 2)
            .contiguous()
            .view([b, t, h])
    }
}

/// Dense + dropout + residual + LayerNorm (`BertSelfOutput` and `BertOutput`).
#[derive(Debug)]
pub struct ResidualOutput {
    dense: nn::Linear,
    layer_norm: nn::LayerNorm,
    dropout: f64,
}

impl ResidualOutput {
    pub fn new(p: nn::Path, cfg: &BertConfig, in_dim: usize) -> Self {
        ResidualOutput {
            dense: nn::linear(&p / "dense", in_dim as i64, cfg.hidden_size as i64, Default::default()),
            layer_norm: layer_norm(&p / "LayerNorm", cfg),
            dropout: cfg.hidden_dropout_prob,
        }
    }

    pub fn forward(&self, x: &Tensor, residual: &Tensor, train: bool) -> Tensor {
        let y = self.dense.forward(x).dropout(self.dropout, train);
        self.layer_norm.forward(&(y + residual))
    }
}

#[derive(Debug)]
pub struct Layer {
    attention: SelfAttention,
    attention_output: ResidualOutput,
    intermediate: nn::Linear,
    output: ResidualOutput,
    activation: Activation,
}

impl Layer {
    pub fn new(p: nn::Path, cfg: &BertConfig) -> Self {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        Layer {
            attention: SelfAttention::new(&p / "attention" / "self", cfg),
            attention_output: ResidualOutput::new(&p / "attention" / "output", cfg, h),
            intermediate: nn::linear(&p / "intermediate" / "dense", h as i64, i as i64, Default::default()),
            output: ResidualOutput::new(&p / "output", cfg, i),
            // BertConfig::load accepts only the activations `activation` maps; the fallback is unreachable
            activation: activation(&cfg.hidden_act).unwrap_or(Activation::GeluErf),
        }
    }

    pub fn forward(&self, x: &Tensor, additive_mask: &Tensor, train: bool) -> Tensor {
        let a = self.attention.forward(x, additive_mask, train);
        let a = self.attention_output.forward(&a, x, train);
        let i = self.intermediate.forward(&a);
        let i = match self.activation {
            Activation::GeluErf => i.gelu("none"),
            Activation::GeluTanh => i.gelu("tanh"),
            Activation::Relu => i.relu(),
        };
        self.output.forward(&i, &a, train)
    }
}

#[derive(Debug)]
pub struct Encoder {
    layers: Vec<Layer>,
}

impl Encoder {
    pub fn new(p: nn::Path, cfg: &BertConfig) -> Self {
        let lp = &p / "layer";
        // every layer its own sub-path `layer.<i>`: reusing a path would make tch rename to `weight__1`
        Encoder { layers: (0..cfg.num_hidden_layers).map(|l| Layer::new(&lp / l, cfg)).collect() }
    }

    pub fn forward(&self, x: &Tensor, additive_mask: &Tensor, train: bool) -> Tensor {
        let mut h = x.shallow_clone();
        for layer in &self.layers {
            h = layer.forward(&h, additive_mask, train);
        }
        h
    }
}

#[derive(Debug)]
pub struct BertModel {
    pub embeddings: Embeddings,
    pub encoder: Encoder,
    pub config: BertConfig,
}

impl BertModel {
    /// Build under `p` (the VarStore root for Hugging Face names without a `bert.` prefix).
    pub fn new(p: nn::Path, cfg: &BertConfig) -> Self {
        BertModel {
            embeddings: Embeddings::new(&p / "embeddings", cfg),
            encoder: Encoder::new(&p / "encoder", cfg),
            config: cfg.clone(),
        }
    }

    /// `[B, T]` int64 inputs -> `last_hidden_state` `[B, T, H]`. Dropout only when `train`.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor, token_type_ids: &Tensor, train: bool) -> Tensor {
        let x = self.embeddings.forward(input_ids, token_type_ids, train);
        // Hugging Face uses the dtype's minimum as the additive mask; padding then gets weight exactly 0.
        let additive = (attention_mask.to_kind(Kind::Float).ones_like() - attention_mask.to_kind(Kind::Float))
            .view([attention_mask.size()[0], 1, 1, attention_mask.size()[1]])
            * f64::from(f32::MIN);
        self.encoder.forward(&x, &additive, train)
    }
}

/// Hugging Face key -> our key: strips `bert.`, maps old `gamma`/`beta` LayerNorm names; `None` for
/// keys the encoder does not use (pooler, pretraining heads, position id buffer).
pub fn hf_key(name: &str) -> Option<String> {
    let name = name.strip_prefix("bert.").unwrap_or(name);
    if name.starts_with("pooler.") || name.starts_with("cls.") || name == "embeddings.position_ids" {
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

/// Copy `src` tensors into the VarStore's variables (no grad), checking shapes.
/// `required` variables missing from `src` are an error; `src` tensors without a variable are
/// returned so the caller decides whether they are fatal.
pub fn copy_into_vars(
    vars: &HashMap<String, Tensor>,
    src: BTreeMap<String, Tensor>,
    required: &dyn Fn(&str) -> bool,
    path: &Path,
) -> Result<Vec<String>> {
    let mut missing: Vec<&String> = vars.keys().filter(|k| required(k) && !src.contains_key(*k)).collect();
    if !missing.is_empty() {
        missing.sort();
        let shown: Vec<&str> = missing.iter().take(8).map(|s| s.as_str()).collect();
        return Err(TrainerError::model(
            path,
            format!("{} weight(s) missing, e.g. {}", missing.len(), shown.join(", ")),
        ));
    }
    let mut unused = Vec::new();
    tch::no_grad(|| -> Result<()> {
        for (name, t) in src {
            match vars.get(&name) {
                Some(var) => {
                    if var.size() != t.size() {
                        return Err(TrainerError::model(
                            path,
                            format!("tensor `{name}` has shape {:?}, the model expects {:?}", t.size(), var.size()),
                        ));
                    }
                    let mut var = var.shallow_clone();
                    var.f_copy_(&t.to_kind(var.kind()).to_device(var.device()))
                        .map_err(|e| TrainerError::torch(format!("copying `{name}`"), e))?;
                }
                None => unused.push(name),
            }
        }
        Ok(())
    })?;
    Ok(unused)
}

pub fn read_safetensors(path: &Path) -> Result<BTreeMap<String, Tensor>> {
    if !path.exists() {
        return Err(TrainerError::model(path, "weights file not found"));
    }
    let list = Tensor::read_safetensors(path).map_err(|e| TrainerError::torch(format!("reading {}", path.display()), e))?;
    Ok(list.into_iter().collect())
}

/// Load a Hugging Face BERT `model.safetensors` into the encoder variables of `vars`
/// (head variables, outside `embeddings.`/`encoder.`, keep their initial values).
pub fn load_hf_weights(vars: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let mut src = BTreeMap::new();
    for (name, t) in read_safetensors(path)? {
        if let Some(key) = hf_key(&name) {
            src.insert(key, t);
        }
    }
    let is_encoder = |k: &str| k.starts_with("embeddings.") || k.starts_with("encoder.");
    let unused = copy_into_vars(vars, src, &is_encoder, path)?;
    let unexpected: Vec<&String> = unused.iter().filter(|k| is_encoder(k)).collect();
    if !unexpected.is_empty() {
        return Err(TrainerError::model(
            path,
            format!("unexpected encoder tensor(s) for this config.json: {unexpected:?}"),
        ));
    }
    if !unused.is_empty() {
        tracing::info!("{}: ignored {} tensor(s) outside the encoder, e.g. {}", path.display(), unused.len(), unused[0]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hf_keys_are_mapped() {
        assert_eq!(hf_key("bert.embeddings.LayerNorm.gamma").as_deref(), Some("embeddings.LayerNorm.weight"));
        assert_eq!(hf_key("encoder.layer.0.output.LayerNorm.beta").as_deref(), Some("encoder.layer.0.output.LayerNorm.bias"));
        assert_eq!(hf_key("bert.pooler.dense.weight"), None);
        assert_eq!(hf_key("cls.predictions.bias"), None);
        assert_eq!(hf_key("embeddings.position_ids"), None);
    }

    #[test]
    fn varstore_names_equal_hf_names() {
        let cfg = BertConfig {
            vocab_size: 50,
            hidden_size: 8,
            num_hidden_layers: 3,
            num_attention_heads: 2,
            intermediate_size: 16,
            hidden_act: "gelu".into(),
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            max_position_embeddings: 20,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            position_embedding_type: None,
            model_type: None,
        };
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let _bert = BertModel::new(vs.root(), &cfg);
        let mut got: Vec<String> = vs.variables().into_keys().collect();
        got.sort();
        let mut want = cfg.weight_names();
        want.sort();
        assert_eq!(got, want);
        // and the same list as the shared fixture (the names export reads)
        let tiny = zsc_core::fixtures::TinyBert {
            hidden_size: 8,
            num_hidden_layers: 3,
            num_attention_heads: 2,
            intermediate_size: 16,
            max_position_embeddings: 20,
            seed: 0,
        };
        let mut fixture: Vec<String> =
            zsc_core::fixtures::bert_weight_shapes(50, &tiny).into_iter().map(|(n, _)| n).collect();
        fixture.sort();
        assert_eq!(got, fixture);
    }
}
