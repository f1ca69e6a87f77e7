//! BERT, RoBERTa / XLM-RoBERTa and MPNet in tch, as a tree of small structs whose `nn::Path`
//! names are exactly the Hugging Face key tree (`embeddings.word_embeddings.weight`,
//! `encoder.layer.0.attention.self.query.weight`, ...).
//!
//! Follows `transformers/models/bert/modeling_bert.py` (post-LayerNorm, exact erf GELU, additive
//! attention mask); RoBERTa counts positions from `pad_token_id + 1` and MPNet from 2
//! (`create_position_ids_from_input_ids`); MPNet names its attention `attention.attn.{q,k,v,o}`
//! and adds one relative position bias to every layer's scores (`modeling_mpnet.py`).

use tch::nn::{self, Module};
use tch::{Kind, Tensor};
use zsc_core::encoder_config::mpnet_relative_buckets;
use zsc_core::Family;

use super::{additive_mask, Activation, EncoderConfig};

fn layer_norm(p: nn::Path, cfg: &EncoderConfig) -> nn::LayerNorm {
    nn::layer_norm(p, vec![cfg.hidden_size as i64], nn::LayerNormConfig { eps: cfg.layer_norm_eps, ..Default::default() })
}

#[derive(Debug)]
pub struct Embeddings {
    word_embeddings: nn::Embedding,
    position_embeddings: nn::Embedding,
    /// None for MPNet, which has no token types.
    token_type_embeddings: Option<nn::Embedding>,
    layer_norm: nn::LayerNorm,
    dropout: f64,
    /// RoBERTa and MPNet: real tokens count from `padding_idx + 1`; BERT: `None`, positions 0..T.
    padding_idx: Option<i64>,
}

impl Embeddings {
    pub fn new(p: nn::Path, cfg: &EncoderConfig) -> Self {
        let h = cfg.hidden_size as i64;
        let e = nn::EmbeddingConfig::default();
        let family = cfg.family();
        Embeddings {
            word_embeddings: nn::embedding(&p / "word_embeddings", cfg.vocab_size as i64, h, e),
            position_embeddings: nn::embedding(&p / "position_embeddings", cfg.max_position_embeddings as i64, h, e),
            token_type_embeddings: family
                .uses_token_types()
                .then(|| nn::embedding(&p / "token_type_embeddings", cfg.type_vocab_size as i64, h, e)),
            layer_norm: layer_norm(&p / "LayerNorm", cfg),
            dropout: cfg.hidden_dropout_prob,
            padding_idx: (family != Family::Bert).then(|| cfg.position_offset() as i64 - 1),
        }
    }

    pub fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor, token_type_ids: &Tensor, train: bool) -> Tensor {
        let positions = match self.padding_idx {
            None => Tensor::arange(input_ids.size()[1], (Kind::Int64, input_ids.device())).unsqueeze(0),
            // the mask stands for `input_ids != pad` (right padding: the same positions)
            Some(pad) => attention_mask.cumsum(1, Kind::Int64) * attention_mask + pad,
        };
        let mut x = self.word_embeddings.forward(input_ids) + self.position_embeddings.forward(&positions);
        if let Some(tt) = &self.token_type_embeddings {
            x += tt.forward(token_type_ids);
        }
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
    /// `names`: the query, key and value sub-paths (`query`/`key`/`value`, MPNet `q`/`k`/`v`).
    pub fn new(p: nn::Path, cfg: &EncoderConfig, names: [&str; 3]) -> Self {
        let h = cfg.hidden_size as i64;
        let lc = nn::LinearConfig::default();
        SelfAttention {
            query: nn::linear(&p / names[0], h, h, lc),
            key: nn::linear(&p / names[1], h, h, lc),
            value: nn::linear(&p / names[2], h, h, lc),
            num_heads: cfg.num_attention_heads as i64,
            head_dim: (cfg.hidden_size / cfg.num_attention_heads) as i64,
            dropout: cfg.attention_probs_dropout_prob,
        }
    }

    /// `additive_mask` is `[B, 1, 1, T]` (0 for real tokens, a large negative number for padding),
    /// or `[B, heads, T, T]` with MPNet's position bias added.
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
    /// `dense` and `norm`: the sub-paths of the linear layer and the LayerNorm.
    pub fn new(dense: nn::Path, norm: nn::Path, cfg: &EncoderConfig, in_dim: usize) -> Self {
        ResidualOutput {
            dense: nn::linear(dense, in_dim as i64, cfg.hidden_size as i64, Default::default()),
            layer_norm: layer_norm(norm, cfg),
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
    pub fn new(p: nn::Path, cfg: &EncoderConfig) -> Self {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        let (attention, attention_output) = if cfg.family() == Family::Mpnet {
            let a = &p / "attention";
            (
                SelfAttention::new(&a / "attn", cfg, ["q", "k", "v"]),
                ResidualOutput::new(&a / "attn" / "o", &a / "LayerNorm", cfg, h),
            )
        } else {
            let (a, o) = (&p / "attention" / "self", &p / "attention" / "output");
            (SelfAttention::new(a, cfg, ["query", "key", "value"]), ResidualOutput::new(&o / "dense", &o / "LayerNorm", cfg, h))
        };
        Layer {
            attention,
            attention_output,
            intermediate: nn::linear(&p / "intermediate" / "dense", h as i64, i as i64, Default::default()),
            output: ResidualOutput::new(&p / "output" / "dense", &p / "output" / "LayerNorm", cfg, i),
            activation: Activation::from_name(&cfg.hidden_act),
        }
    }

    pub fn forward(&self, x: &Tensor, additive_mask: &Tensor, train: bool) -> Tensor {
        let a = self.attention.forward(x, additive_mask, train);
        let a = self.attention_output.forward(&a, x, train);
        let i = self.activation.apply(&self.intermediate.forward(&a));
        self.output.forward(&i, &a, train)
    }
}

/// MPNet's relative position bias: `encoder.relative_attention_bias` `[buckets, heads]` and the
/// bucket of every (query, key) pair up to `max_position_embeddings`, kept on the device so the
/// forward slices it without a host copy (CUDA graphs).
#[derive(Debug)]
pub struct PositionBias {
    table: nn::Embedding,
    buckets: Tensor,
}

impl PositionBias {
    fn new(p: nn::Path, cfg: &EncoderConfig) -> Self {
        let n = cfg.max_position_embeddings;
        let rel = mpnet_relative_buckets(n);
        // bucket of key j for query i: rel[j - i + n - 1]
        let pairs: Vec<i64> = (0..n).flat_map(|i| (0..n).map(move |j| (j, i))).map(|(j, i)| rel[j + n - 1 - i]).collect();
        let buckets = Tensor::from_slice(&pairs).view([n as i64, n as i64]).to_device(p.device());
        let table = nn::embedding(
            &p / "relative_attention_bias",
            cfg.relative_attention_num_buckets as i64,
            cfg.num_attention_heads as i64,
            Default::default(),
        );
        PositionBias { table, buckets }
    }

    /// `[1, heads, T, T]` for a sequence of `t` tokens.
    fn forward(&self, t: i64) -> Tensor {
        let b = self.buckets.narrow(0, 0, t).narrow(1, 0, t);
        self.table.forward(&b).permute([2, 0, 1]).unsqueeze(0)
    }
}

#[derive(Debug)]
pub struct Encoder {
    layers: Vec<Layer>,
    position_bias: Option<PositionBias>,
}

impl Encoder {
    pub fn new(p: nn::Path, cfg: &EncoderConfig) -> Self {
        let lp = &p / "layer";
        // every layer its own sub-path `layer.<i>`: reusing a path would make tch rename to `weight__1`
        Encoder {
            layers: (0..cfg.num_hidden_layers).map(|l| Layer::new(&lp / l, cfg)).collect(),
            position_bias: (cfg.family() == Family::Mpnet).then(|| PositionBias::new(p, cfg)),
        }
    }

    pub fn forward(&self, x: &Tensor, additive_mask: &Tensor, train: bool) -> Tensor {
        let mut h = x.shallow_clone();
        // MPNet: one bias for every layer, after the 1/sqrt(d) scaling and before the mask
        let additive_mask = match &self.position_bias {
            Some(bias) => bias.forward(x.size()[1]).to_kind(additive_mask.kind()) + additive_mask,
            None => additive_mask.shallow_clone(),
        };
        let additive_mask = &additive_mask;
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
    pub config: EncoderConfig,
}

impl BertModel {
    /// Build under `p` (the VarStore root for Hugging Face names without a `bert.` prefix).
    pub fn new(p: nn::Path, cfg: &EncoderConfig) -> Self {
        BertModel {
            embeddings: Embeddings::new(&p / "embeddings", cfg),
            encoder: Encoder::new(&p / "encoder", cfg),
            config: cfg.clone(),
        }
    }

    /// `[B, T]` int64 inputs -> `last_hidden_state` `[B, T, H]`. Dropout only when `train`.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor, token_type_ids: &Tensor, train: bool) -> Tensor {
        let x = self.embeddings.forward(input_ids, attention_mask, token_type_ids, train);
        self.encoder.forward(&x, &additive_mask(attention_mask), train)
    }
}
