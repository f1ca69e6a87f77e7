//! The encoder families in tch, one file each, chosen by `config.json`'s `model_type`
//! ([`zsc_core::Family`]): [`bert`] (BERT, RoBERTa / XLM-RoBERTa and MPNet, which share their
//! layers) and [`modernbert`]. Every module's `nn::Path` names are exactly the Hugging Face key
//! tree, so one `VarStore` loads a Hugging Face `model.safetensors` and saves a checkpoint that
//! export reads under the very same names.

pub mod bert;
pub mod modernbert;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use tch::{nn, Kind, Tensor};
use zsc_core::Family;

use crate::error::{Result, TrainerError};

pub use zsc_core::EncoderConfig;

/// An encoder of any supported family: token ids in, last hidden state out.
#[derive(Debug)]
pub enum Encoder {
    Bert(Box<bert::BertModel>),
    ModernBert(Box<modernbert::ModernBertModel>),
}

impl Encoder {
    /// Build under `p` (the VarStore root: Hugging Face names without a task-model prefix).
    pub fn new(p: nn::Path, cfg: &EncoderConfig) -> Self {
        match cfg.family() {
            Family::Bert | Family::Roberta | Family::Mpnet => Encoder::Bert(Box::new(bert::BertModel::new(p, cfg))),
            Family::ModernBert => Encoder::ModernBert(Box::new(modernbert::ModernBertModel::new(p, cfg))),
        }
    }

    pub fn config(&self) -> &EncoderConfig {
        match self {
            Encoder::Bert(m) => &m.config,
            Encoder::ModernBert(m) => &m.config,
        }
    }

    /// `[B, T]` int64 inputs -> `last_hidden_state` `[B, T, H]`. Dropout only when `train`.
    /// `token_type_ids` is read only by the families that have token types.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor, token_type_ids: &Tensor, train: bool) -> Tensor {
        match self {
            Encoder::Bert(m) => m.forward(input_ids, attention_mask, token_type_ids, train),
            Encoder::ModernBert(m) => m.forward(input_ids, attention_mask, train),
        }
    }
}

/// Activations of `hidden_act`.
#[derive(Debug, Clone, Copy)]
pub enum Activation {
    GeluErf,
    GeluTanh,
    Relu,
}

impl Activation {
    /// `EncoderConfig::load` accepts only the names mapped here; anything else falls back to erf GELU.
    pub fn from_name(name: &str) -> Self {
        match name {
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            _ => Activation::GeluErf,
        }
    }

    pub fn apply(self, x: &Tensor) -> Tensor {
        match self {
            Activation::GeluErf => x.gelu("none"),
            Activation::GeluTanh => x.gelu("tanh"),
            Activation::Relu => x.relu(),
        }
    }
}

/// `[B, T]` mask -> additive `[B, 1, 1, T]`: 0 for real tokens, the dtype's minimum for padding
/// (Hugging Face's value; padding then gets weight exactly 0).
pub fn additive_mask(attention_mask: &Tensor) -> Tensor {
    let m = attention_mask.to_kind(Kind::Float);
    (m.ones_like() - m).view([attention_mask.size()[0], 1, 1, attention_mask.size()[1]]) * f64::from(f32::MIN)
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
        return Err(TrainerError::model(path, format!("{} weight(s) missing, e.g. {}", missing.len(), shown.join(", "))));
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

/// Load a Hugging Face `model.safetensors` of `cfg`'s family into the encoder variables of `vars`
/// (head variables keep their initial values). Every encoder weight must be there; a tensor of
/// the encoder's key tree that the config has no place for is an error; pooler and pretraining
/// heads are skipped.
pub fn load_hf_weights(vars: &HashMap<String, Tensor>, path: &Path, cfg: &EncoderConfig) -> Result<()> {
    let mut src = BTreeMap::new();
    let mut skipped = 0;
    for (name, t) in read_safetensors(path)? {
        match cfg.hf_key(&name) {
            Some(key) if t.kind() != Kind::Int64 => {
                src.insert(key, t);
            }
            _ => skipped += 1,
        }
    }
    let names: std::collections::HashSet<String> = cfg.weight_names().into_iter().collect();
    let is_encoder = |k: &str| names.contains(k);
    let unused = copy_into_vars(vars, src, &is_encoder, path)?;
    let looks_like_encoder = |k: &str| ["embeddings.", "encoder.", "layers.", "final_norm."].iter().any(|p| k.starts_with(p));
    let unexpected: Vec<&String> = unused.iter().filter(|k| looks_like_encoder(k)).collect();
    if !unexpected.is_empty() {
        return Err(TrainerError::model(path, format!("unexpected encoder tensor(s) for this config.json: {unexpected:?}")));
    }
    if !unused.is_empty() || skipped > 0 {
        tracing::info!("{}: ignored {} tensor(s) outside the encoder", path.display(), unused.len() + skipped);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: serde_json::Value) -> EncoderConfig {
        let mut v = serde_json::json!({
            "vocab_size": 50, "hidden_size": 8, "num_hidden_layers": 3, "num_attention_heads": 2,
            "intermediate_size": 16, "max_position_embeddings": 20
        });
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value(v).unwrap()
    }

    /// tch would rename a reused path to `weight__1`; the saved names must be exactly Hugging Face's.
    #[test]
    fn varstore_names_equal_hf_names_for_every_family() {
        for extra in [
            serde_json::json!({}),
            serde_json::json!({"model_type": "xlm-roberta", "pad_token_id": 1, "type_vocab_size": 1}),
            serde_json::json!({"model_type": "mpnet"}),
            serde_json::json!({"model_type": "modernbert"}),
            serde_json::json!({"model_type": "modernbert", "norm_bias": true, "attention_bias": true, "mlp_bias": true}),
        ] {
            let c = cfg(extra.clone());
            let vs = nn::VarStore::new(tch::Device::Cpu);
            let _enc = Encoder::new(vs.root(), &c);
            let mut got: Vec<String> = vs.variables().into_keys().collect();
            got.sort();
            let mut want = c.weight_names();
            want.sort();
            assert_eq!(got, want, "{extra}");
            for (name, shape) in c.weight_shapes() {
                let v = &vs.variables()[&name];
                assert_eq!(v.size(), shape.iter().map(|&d| d as i64).collect::<Vec<_>>(), "{name}");
            }
        }
        // and the BERT list is the shared fixture's (the names export reads)
        let tiny = zsc_testkit::fixtures::TinyBert {
            hidden_size: 8,
            num_hidden_layers: 3,
            num_attention_heads: 2,
            intermediate_size: 16,
            max_position_embeddings: 20,
            seed: 0,
        };
        let mut fixture: Vec<String> = zsc_testkit::fixtures::bert_weight_shapes(50, &tiny).into_iter().map(|(n, _)| n).collect();
        fixture.sort();
        let mut bert = cfg(serde_json::json!({})).weight_names();
        bert.sort();
        assert_eq!(bert, fixture);
    }
}
