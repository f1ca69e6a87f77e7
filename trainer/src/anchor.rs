//! The base anchor (`anchor_weight`): fine-tuning on a few thousand (text, label) pairs can walk
//! the encoder away from what its pre-training taught it about texts and labels it will never see
//! here. The anchor keeps a frozen copy of the base encoder and adds to the loss, per batch, the
//! cross-entropy of the trained model's in-batch scores against the base's own score
//! distribution (its cosine similarities times [`BaseAnchor::SCALE`]), rows (text -> labels) and
//! columns (label -> texts) alike: the data's lesson is learnt as a change from the base's ranking,
//! not instead of it (distillation from the starting point, "learning without forgetting").
//! Any architecture: it only needs the batch's score matrix. Costs one no-grad forward of the base.

use std::path::Path;

use tch::{nn, Device, Kind, Tensor};

use crate::bert::{self, BertConfig, BertModel};
use crate::error::Result;
use crate::models::{l2_normalize, mean_pool, BatchTensors};

/// The frozen base encoder and the weight of its term in the loss.
#[derive(Debug)]
pub struct BaseAnchor {
    _vs: nn::VarStore,
    bert: BertModel,
    pub weight: f64,
}

impl BaseAnchor {
    /// The base's cosine scores are multiplied by this before the softmax (temperature 0.05, the
    /// scale sentence-transformers trains this family of models with).
    pub const SCALE: f64 = 20.0;
    /// Finite stand-in for -inf where a batch entry is another positive (0 * -inf would be NaN).
    const MASKED: f64 = -1e4;

    /// The base model of `base_dir` (Hugging Face folder), frozen, on `device`.
    pub fn load(base_dir: &Path, device: Device, weight: f64) -> Result<Self> {
        let cfg = BertConfig::load(&base_dir.join("config.json"))?;
        let mut vs = nn::VarStore::new(device);
        let bert = BertModel::new(vs.root(), &cfg);
        bert::load_hf_weights(&vs.variables(), &base_dir.join("model.safetensors"))?;
        vs.freeze();
        Ok(BaseAnchor { _vs: vs, bert, weight })
    }

    /// The base's in-batch logits `[texts, labels]` (no gradient, no dropout).
    pub fn scores(&self, texts: &BatchTensors, labels: &BatchTensors) -> Tensor {
        tch::no_grad(|| {
            let pooled = |t: &BatchTensors| {
                let h = self.bert.forward(&t.input_ids, &t.attention_mask, &t.token_type_ids, false);
                l2_normalize(&mean_pool(&h, &t.attention_mask).to_kind(Kind::Float))
            };
            pooled(texts).matmul(&pooled(labels).tr()) * Self::SCALE
        })
    }

    /// `weight` × the anchor term of the trained model's `logits` against the base's `base_logits`
    /// (both `[B,B+K]`), entries in `masked` (other positives, fillers) left out of both.
    pub fn loss(&self, logits: &Tensor, base_logits: &Tensor, masked: &Tensor) -> Tensor {
        anchor_term(logits, base_logits, masked) * self.weight
    }
}

/// Mean over rows and columns of the cross-entropy of softmax(`logits`) against
/// softmax(`base_logits`), `masked` entries excluded; rows over all B+K labels, columns over the
/// B pairs' labels (as in the training loss). Equals the KL divergence plus the base's (constant)
/// entropy, so its gradient is the KL's.
pub fn anchor_term(logits: &Tensor, base_logits: &Tensor, masked: &Tensor) -> Tensor {
    let b = logits.size()[0];
    let logits = logits.to_kind(Kind::Float).masked_fill(masked, BaseAnchor::MASKED);
    let base = base_logits.to_kind(Kind::Float).masked_fill(masked, BaseAnchor::MASKED);
    let cross_entropy = |logits: &Tensor, base: &Tensor, dim: i64| -> Tensor {
        let target = base.softmax(dim, Kind::Float);
        -(target * logits.log_softmax(dim, Kind::Float)).sum_dim_intlist(dim, false, Kind::Float).mean(Kind::Float)
    };
    let rows = cross_entropy(&logits, &base, 1);
    let cols = cross_entropy(&logits.narrow(1, 0, b), &base.narrow(1, 0, b), 0);
    (rows + cols) * 0.5
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entropy_of(base: &Tensor, masked: &Tensor) -> f64 {
        anchor_term(base, base, masked).double_value(&[])
    }

    #[test]
    fn anchor_term_is_smallest_where_the_model_agrees_with_the_base() {
        let base = Tensor::from_slice(&[5.0f32, 1.0, 0.0, 2.0, 4.0, 1.0, 0.0, 1.0, 3.0]).view([3, 3]);
        let none = Tensor::zeros([3, 3], (Kind::Bool, Device::Cpu));
        let at_base = entropy_of(&base, &none);
        // the minimum over logits is the base itself (cross-entropy >= entropy, Gibbs)
        for other in [&base * 2.0, base.tr().contiguous(), Tensor::zeros([3, 3], (Kind::Float, Device::Cpu)), &base + 1.0] {
            let v = anchor_term(&other, &base, &none).double_value(&[]);
            assert!(v >= at_base - 1e-6, "{v} < {at_base}");
        }
        // a constant shift changes nothing (softmax), a sharper copy does
        assert!((anchor_term(&(&base + 1.0), &base, &none).double_value(&[]) - at_base).abs() < 1e-5);
        assert!(anchor_term(&(&base * 2.0), &base, &none).double_value(&[]) > at_base + 1e-3);
    }

    #[test]
    fn masked_entries_are_left_out_and_stay_finite() {
        let base = Tensor::from_slice(&[5.0f32, 1.0, 0.0, 4.0]).view([2, 2]);
        let mask = Tensor::from_slice(&[false, true, false, false]).view([2, 2]);
        // whatever the model says at the masked entry, the term is the same and finite
        let a = anchor_term(&Tensor::from_slice(&[5.0f32, 100.0, 0.0, 4.0]).view([2, 2]), &base, &mask).double_value(&[]);
        let b = anchor_term(&Tensor::from_slice(&[5.0f32, -100.0, 0.0, 4.0]).view([2, 2]), &base, &mask).double_value(&[]);
        assert!(a.is_finite() && (a - b).abs() < 1e-6, "{a} vs {b}");
    }

    #[test]
    fn gradient_pulls_towards_the_base_ranking() {
        let base = Tensor::from_slice(&[3.0f32, 0.0, 0.0, 3.0]).view([2, 2]);
        let none = Tensor::zeros([2, 2], (Kind::Bool, Device::Cpu));
        let logits = Tensor::from_slice(&[0.0f32, 3.0, 3.0, 0.0]).view([2, 2]).set_requires_grad(true);
        anchor_term(&logits, &base, &none).backward();
        let g = logits.grad();
        // descent raises the diagonal (where the base scores high) and lowers the rest
        assert!(g.double_value(&[0, 0]) < 0.0 && g.double_value(&[0, 1]) > 0.0);
    }
}
