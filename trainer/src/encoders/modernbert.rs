//! ModernBERT in tch (`transformers/models/modernbert/modeling_modernbert.py`): pre-norm layers
//! (layer 0 without its attention norm), no biases unless the config asks, rotary positions on
//! queries and keys, global layers and sliding-window layers (`|i - j| <= local_attention / 2`),
//! a gated GELU MLP (`Wi` -> input, gate), and a final norm.

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::{additive_mask, Activation, EncoderConfig};

/// LayerNorm with an optional bias (`nn::layer_norm` always has one).
#[derive(Debug)]
pub struct Norm {
    weight: Tensor,
    bias: Option<Tensor>,
    eps: f64,
}

impl Norm {
    fn new(p: nn::Path, cfg: &EncoderConfig) -> Self {
        let h = cfg.hidden_size as i64;
        Norm {
            weight: p.var("weight", &[h], nn::Init::Const(1.0)),
            bias: cfg.norm_bias.then(|| p.var("bias", &[h], nn::Init::Const(0.0))),
            eps: cfg.layer_norm_eps,
        }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.layer_norm([self.weight.size()[0]], Some(&self.weight), self.bias.as_ref(), self.eps, true)
    }
}

fn linear(p: nn::Path, d_in: usize, d_out: usize, bias: bool) -> nn::Linear {
    nn::linear(p, d_in as i64, d_out as i64, nn::LinearConfig { bias, ..Default::default() })
}

/// `x * cos + rotate_half(x) * sin`, `rotate_half(x) = cat(-x[.., d/2:], x[.., :d/2])`.
fn rotate(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
    let half = x.size()[3] / 2;
    let rotated = Tensor::cat(&[-x.narrow(3, half, half), x.narrow(3, 0, half)], 3);
    x * cos + rotated * sin
}

/// `cos`, `sin` `[T, d]` of the rotary embedding with base `theta` (angles repeated twice).
fn rotary(theta: f64, head_size: usize, t: i64, device: tch::Device) -> (Tensor, Tensor) {
    let inv: Vec<f32> = (0..head_size / 2).map(|k| (1.0 / theta.powf((2 * k) as f64 / head_size as f64)) as f32).collect();
    let inv = Tensor::from_slice(&inv).to_device(device);
    let inv = Tensor::cat(&[&inv, &inv], 0).unsqueeze(0); // [1, d]
    let angles = Tensor::arange(t, (Kind::Float, device)).unsqueeze(1) * inv; // [T, d]
    (angles.cos(), angles.sin())
}

#[derive(Debug)]
pub struct ModernLayer {
    attn_norm: Option<Norm>,
    wqkv: nn::Linear,
    wo: nn::Linear,
    mlp_norm: Norm,
    wi: nn::Linear,
    mlp_wo: nn::Linear,
    global: bool,
    num_heads: i64,
    activation: Activation,
    dropout: f64,
}

impl ModernLayer {
    fn new(p: nn::Path, cfg: &EncoderConfig, l: usize) -> Self {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        ModernLayer {
            attn_norm: (l > 0).then(|| Norm::new(&p / "attn_norm", cfg)),
            wqkv: linear(&p / "attn" / "Wqkv", h, 3 * h, cfg.attention_bias),
            wo: linear(&p / "attn" / "Wo", h, h, cfg.attention_bias),
            mlp_norm: Norm::new(&p / "mlp_norm", cfg),
            wi: linear(&p / "mlp" / "Wi", h, 2 * i, cfg.mlp_bias),
            mlp_wo: linear(&p / "mlp" / "Wo", i, h, cfg.mlp_bias),
            global: cfg.is_global_layer(l),
            num_heads: cfg.num_attention_heads as i64,
            activation: Activation::from_name(&cfg.hidden_act),
            dropout: cfg.attention_probs_dropout_prob,
        }
    }

    fn forward(&self, x: &Tensor, rope: &(Tensor, Tensor), mask: &Tensor, train: bool) -> Tensor {
        let (b, t, h) = x.size3().unwrap_or((0, 0, 0));
        let normed = self.attn_norm.as_ref().map_or_else(|| x.shallow_clone(), |n| n.forward(x));
        // [B, T, 3H] -> [3, B, heads, T, d]: columns are q | k | v, each head-major
        let qkv = self.wqkv.forward(&normed).view([b, t, 3, self.num_heads, h / self.num_heads]).permute([2, 0, 3, 1, 4]);
        let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
        let (q, k) = (rotate(&q, &rope.0, &rope.1), rotate(&k, &rope.0, &rope.1));
        let p = if train { self.dropout } else { 0.0 };
        let ctx = Tensor::scaled_dot_product_attention(&q, &k, &v, Some(mask.to_kind(q.kind())), p, false, None, false);
        let x = x + self.wo.forward(&ctx.transpose(1, 2).contiguous().view([b, t, h]));
        let gated = self.wi.forward(&self.mlp_norm.forward(&x)).chunk(2, -1);
        x.shallow_clone() + self.mlp_wo.forward(&(self.activation.apply(&gated[0]) * &gated[1]))
    }
}

#[derive(Debug)]
pub struct ModernBertModel {
    tok_embeddings: nn::Embedding,
    embedding_norm: Norm,
    layers: Vec<ModernLayer>,
    final_norm: Norm,
    pub config: EncoderConfig,
}

impl ModernBertModel {
    pub fn new(p: nn::Path, cfg: &EncoderConfig) -> Self {
        let e = &p / "embeddings";
        let lp = &p / "layers";
        ModernBertModel {
            tok_embeddings: nn::embedding(
                &e / "tok_embeddings",
                cfg.vocab_size as i64,
                cfg.hidden_size as i64,
                Default::default(),
            ),
            embedding_norm: Norm::new(&e / "norm", cfg),
            layers: (0..cfg.num_hidden_layers).map(|l| ModernLayer::new(&lp / l, cfg, l)).collect(),
            final_norm: Norm::new(&p / "final_norm", cfg),
            config: cfg.clone(),
        }
    }

    /// `[B, T]` inputs -> `last_hidden_state` `[B, T, H]`. Dropout only when `train`.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Tensor {
        let cfg = &self.config;
        let (t, device) = (input_ids.size()[1], input_ids.device());
        let mut x = self.embedding_norm.forward(&self.tok_embeddings.forward(input_ids)).dropout(cfg.hidden_dropout_prob, train);
        let hs = cfg.head_size();
        let global_rope = rotary(cfg.rope_theta(true), hs, t, device);
        let local_rope = rotary(cfg.rope_theta(false), hs, t, device);
        let global_mask = additive_mask(attention_mask); // [B, 1, 1, T]
                                                         // outside the window: the same finfo.min as padding (minimum, never -inf from a sum)
        let pos = Tensor::arange(t, (Kind::Int64, device));
        let outside = (pos.unsqueeze(0) - pos.unsqueeze(1)).abs().gt((cfg.local_attention / 2) as i64);
        let window = outside.to_kind(Kind::Float) * f64::from(f32::MIN); // [T, T]
        let local_mask = global_mask.minimum(&window.unsqueeze(0).unsqueeze(0)); // [B, 1, T, T]
        for layer in &self.layers {
            let (rope, mask) = if layer.global { (&global_rope, &global_mask) } else { (&local_rope, &local_mask) };
            x = layer.forward(&x, rope, mask, train);
        }
        self.final_norm.forward(&x)
    }
}
