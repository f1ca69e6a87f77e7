//! The three zero-shot scorers on top of one shared BERT: BiEncoder (MeanPool + dot),
//! PolyEncoder (code-vector PolyAttention, Humeau et al. 2020, https://arxiv.org/abs/1905.01969)
//! and ColBERT (projected, L2-normalised token embeddings + MaxSim, Khattab & Zaharia 2020).
//! The exact semantics are those of the team contract (docs/architectures.md): padding never counts in a mean,
//! never wins a softmax slot, never wins a max.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::COSINE_SCALE_INIT;
use tch::nn;
use tch::{Device, Kind, Tensor};
use zsc_core::manifest::tensor_names;
use zsc_core::tokenize::TokenBatch;
use zsc_core::{MaxSimDirection, ModelSpec, ModelType, Pooling, Similarity};

use crate::encoders::{self, Encoder, EncoderConfig};
use crate::error::{Result, TrainerError};

/// Init of the PolyEncoder code vectors (normal, this std).
pub const POLY_CODES_INIT_STD: f64 = 0.02;
/// Init of the ColBERT score scale.
pub const COLBERT_SCALE_INIT: f64 = 10.0;
/// eps of the L2 normalisation (as `torch.nn.functional.normalize`).
pub const L2_EPS: f64 = 1e-12;

/// The input tensors of a [`TokenBatch`] on a device.
#[derive(Debug)]
pub struct BatchTensors {
    pub input_ids: Tensor,
    pub attention_mask: Tensor,
    pub token_type_ids: Tensor,
}

impl BatchTensors {
    pub fn new(b: &TokenBatch, device: Device) -> Result<Self> {
        let shape = [b.batch as i64, b.seq as i64];
        let n = b.batch * b.seq;
        if b.input_ids.len() != n || b.attention_mask.len() != n || b.token_type_ids.len() != n {
            return Err(TrainerError::Invalid(format!(
                "token batch of shape {shape:?} holds {} ids, {} mask and {} type values",
                b.input_ids.len(),
                b.attention_mask.len(),
                b.token_type_ids.len()
            )));
        }
        if n == 0 {
            return Err(TrainerError::Invalid("empty token batch".into()));
        }
        let t = |v: &[i64]| to_device_async(&Tensor::from_slice(v).view(shape), device);
        Ok(BatchTensors {
            input_ids: t(&b.input_ids)?,
            attention_mask: t(&b.attention_mask)?,
            token_type_ids: t(&b.token_type_ids)?,
        })
    }

    /// Copies `b` into these (static, same-shaped) device tensors without waiting: what a
    /// CUDA graph's inputs are refreshed with before each replay.
    pub fn fill_from(&self, b: &TokenBatch) -> Result<()> {
        let size = self.input_ids.size();
        if size != [b.batch as i64, b.seq as i64] {
            return Err(TrainerError::Invalid(format!("token batch {}x{} does not fit the static {size:?}", b.batch, b.seq)));
        }
        for (dst, src) in [
            (&self.input_ids, &b.input_ids),
            (&self.attention_mask, &b.attention_mask),
            (&self.token_type_ids, &b.token_type_ids),
        ] {
            copy_host_to(dst, &Tensor::from_slice(src).view([b.batch as i64, b.seq as i64]))?;
        }
        Ok(())
    }
}

/// A host tensor on `device`: on CUDA through pinned memory without waiting for the GPU (the
/// caching host allocator keeps the pinned block until the copy is done), elsewhere a plain copy.
pub fn to_device_async(t: &Tensor, device: Device) -> Result<Tensor> {
    if !device.is_cuda() {
        return Ok(t.to_device(device));
    }
    let dst = Tensor::empty(t.size(), (t.kind(), device));
    copy_host_to(&dst, t)?;
    Ok(dst)
}

/// `dst.copy_(host)`: non-blocking from pinned memory when `dst` is on CUDA.
pub fn copy_host_to(dst: &Tensor, host: &Tensor) -> Result<()> {
    if dst.device().is_cuda() {
        crate::fast_ops::copy_nonblocking(dst, &host.pin_memory(dst.device()))
    } else {
        let mut d = dst.shallow_clone();
        d.f_copy_(host).map_err(|e| TrainerError::torch("copying a batch", e))
    }
}

/// MeanPool: `sum(H * mask) / max(sum(mask), 1e-9)`; `h` `[B,T,H]`, `mask` `[B,T]` -> `[B,H]`.
pub fn mean_pool(h: &Tensor, mask: &Tensor) -> Tensor {
    let m = mask.to_kind(h.kind()).unsqueeze(-1);
    let sum = (h * &m).sum_dim_intlist(1, false, h.kind());
    let count = m.sum_dim_intlist(1, false, h.kind()).clamp_min(1e-9);
    sum / count
}

/// The sentence vector `[B,H]` of `h` `[B,T,H]` under `mask` `[B,T]` by `pooling`, as
/// sentence-transformers' `Pooling` computes it; padding never takes part.
pub fn sentence_pool(h: &Tensor, mask: &Tensor, pooling: Pooling) -> Tensor {
    match pooling {
        Pooling::Mean => mean_pool(h, mask),
        Pooling::Cls => h.select(1, 0),
        Pooling::LastToken => {
            // right padding: the last real token sits at (count - 1)
            let last = (mask.sum_dim_intlist(1, false, Kind::Int64) - 1).clamp_min(0);
            let index = last.view([-1, 1, 1]).expand([-1, 1, h.size()[2]], false);
            h.gather(1, &index, false).squeeze_dim(1)
        }
        Pooling::Max => {
            let pad = mask.eq(0).unsqueeze(-1);
            let best = h.masked_fill(&pad, f64::NEG_INFINITY).amax([1], false);
            // a row without real tokens gives zeros, not -inf
            best.where_self(&best.isfinite(), &best.zeros_like())
        }
        Pooling::MeanSqrtLenTokens => {
            let m = mask.to_kind(h.kind()).unsqueeze(-1);
            let sum = (h * &m).sum_dim_intlist(1, false, h.kind());
            sum / m.sum_dim_intlist(1, false, h.kind()).clamp_min(1e-9).sqrt()
        }
    }
}

/// BiEncoder scores: `text_vecs [N,H] @ label_vecs [M,H]^T` -> `[N,M]`.
pub fn dot_scores(text_vecs: &Tensor, label_vecs: &Tensor) -> Tensor {
    text_vecs.matmul(&label_vecs.tr())
}

/// PolyAttention, text side: `a = softmax_T(C @ H_t^T)` (padding -inf, no 1/sqrt(d)),
/// `ctx = a @ H_t`. `codes [m,H]`, `text_h [N,T,H]`, `text_mask [N,T]` -> `ctx [N,m,H]`.
pub fn poly_context(codes: &Tensor, text_h: &Tensor, text_mask: &Tensor) -> Tensor {
    let logits = codes.matmul(&text_h.transpose(1, 2)); // [N,m,T]
    let pad = text_mask.eq(0).unsqueeze(1); // [N,1,T]
    let a = logits.masked_fill(&pad, f64::NEG_INFINITY).softmax(-1, logits.kind());
    a.matmul(text_h)
}

/// PolyAttention, label side: `w = softmax_m(ctx @ l)`, `v = w @ ctx`, `score = v · l`.
/// `ctx [N,m,H]`, `label_vecs [M,H]` -> `[N,M]`.
pub fn poly_scores_from_context(ctx: &Tensor, label_vecs: &Tensor) -> Tensor {
    let w = ctx.matmul(&label_vecs.tr()).transpose(1, 2).softmax(-1, ctx.kind()); // [N,M,m]
    let v = w.matmul(ctx); // [N,M,H]
    (v * label_vecs.unsqueeze(0)).sum_dim_intlist(-1, false, ctx.kind())
}

/// PolyEncoder scores of every text against every label vector -> `[N,M]`.
pub fn poly_scores(codes: &Tensor, text_h: &Tensor, text_mask: &Tensor, label_vecs: &Tensor) -> Tensor {
    poly_scores_from_context(&poly_context(codes, text_h, text_mask), label_vecs)
}

/// PolyEncoder with `similarity: cosine`: the attended vector `v` as in [`poly_scores_from_context`],
/// then `cos(v, l) × scale`.
pub fn poly_cosine_scores_from_context(ctx: &Tensor, label_vecs: &Tensor, scale: &Tensor) -> Tensor {
    let w = ctx.matmul(&label_vecs.tr()).transpose(1, 2).softmax(-1, ctx.kind()); // [N,M,m]
    let v = l2_normalize(&w.matmul(ctx)); // [N,M,H]
    (v * l2_normalize(label_vecs).unsqueeze(0)).sum_dim_intlist(-1, false, ctx.kind()) * scale
}

/// ColBERT token embeddings: `L2normalize(H @ W^T)` per token; `h [B,T,H]`, `proj [D,H]` -> `[B,T,D]`.
pub fn colbert_embed(h: &Tensor, proj: &Tensor) -> Tensor {
    l2_normalize(&h.matmul(&proj.tr()))
}

/// MaxSim of every text against every label, in `direction` (zsc_core::MaxSimDirection):
/// label to text = mean over kept label tokens of the max over kept text tokens of the dot
/// product; text to label the other way; symmetric their mean. `text_e [N,T,D]`,
/// `text_mask [N,T]`, `label_e [M,S,D]`, `label_mask [M,S]` -> `[N,M]` (one batched matmul, as
/// pylate-rs). A side without kept tokens contributes 0, as in the runtime.
pub fn max_sim(text_e: &Tensor, text_mask: &Tensor, label_e: &Tensor, label_mask: &Tensor, direction: MaxSimDirection) -> Tensor {
    let (n, t, d) = text_e.size3().unwrap_or((0, 0, 0));
    let (m, s, _) = label_e.size3().unwrap_or((0, 0, 0));
    // [N*T, D] @ [D, M*S] -> [N, T, M, S]
    let sim = text_e.reshape([n * t, d]).matmul(&label_e.reshape([m * s, d]).tr()).view([n, t, m, s]);
    let text_keep = text_mask.view([n, t, 1, 1]);
    let label_keep = label_mask.view([1, 1, m, s]);
    // best text token per label token [N,M,S], averaged over label tokens
    let label_to_text = || max_then_mean(&sim, &text_keep, 1, &label_mask.unsqueeze(0), 2);
    // best label token per text token [N,T,M], averaged over text tokens
    let text_to_label = || max_then_mean(&sim, &label_keep, 3, &text_mask.unsqueeze(-1), 1);
    match direction {
        MaxSimDirection::LabelToText => label_to_text(),
        MaxSimDirection::TextToLabel => text_to_label(),
        MaxSimDirection::Symmetric => (label_to_text() + text_to_label()) * 0.5,
    }
}

/// The max of `sim` over axis `max_axis` among positions `max_keep` marks, then the mean over
/// axis `mean_axis` (of the result) among positions `mean_keep` marks. Positions left out are
/// replaced by `where`, never multiplied, so no -inf reaches a sum or a gradient.
fn max_then_mean(sim: &Tensor, max_keep: &Tensor, max_axis: i64, mean_keep: &Tensor, mean_axis: i64) -> Tensor {
    let best = sim.masked_fill(&max_keep.eq(0), f64::NEG_INFINITY).amax([max_axis], false);
    let keep = mean_keep.to_kind(best.kind());
    let kept = best.where_self(&keep.gt(0.0).logical_and(&best.isfinite()), &best.zeros_like());
    kept.sum_dim_intlist(mean_axis, false, best.kind()) / keep.sum_dim_intlist(mean_axis, false, best.kind()).clamp_min(1e-9)
}

/// `mask` without the first and the last real token of every row (the `[CLS]`/`[SEP]` a
/// tokenizer wraps each sequence in; rows are padded on the right), or `mask` itself when
/// `keep_special`.
pub fn without_special_tokens(mask: &Tensor, keep_special: bool) -> Tensor {
    if keep_special {
        return mask.shallow_clone();
    }
    let real = mask.sum_dim_intlist(1, true, Kind::Int64); // [B,1]
    let pos = Tensor::arange(mask.size()[1], (Kind::Int64, mask.device())).unsqueeze(0); // [1,T]
    let inner = pos.gt(0).logical_and(&pos.lt_tensor(&(real - 1)));
    mask * inner.to_kind(mask.kind())
}

/// The model head (parameters on top of the shared BERT).
#[derive(Debug)]
pub enum Head {
    /// `cosine_scale`: present with `similarity: cosine` (score = cos × scale).
    BiEncoder {
        cosine_scale: Option<Tensor>,
    },
    PolyEncoder {
        codes: Tensor,
        cosine_scale: Option<Tensor>,
    },
    Colbert {
        proj: Tensor,
        score_scale: Tensor,
    },
}

/// `x / max(||x||, eps)` along the last axis.
pub fn l2_normalize(x: &Tensor) -> Tensor {
    let norm = x.square().sum_dim_intlist(-1, true, x.kind()).sqrt().clamp_min(L2_EPS);
    x / norm
}

/// Cosine scores `[N,M]` of text vectors against label vectors, times `scale`.
pub fn cosine_scores(text_vecs: &Tensor, label_vecs: &Tensor, scale: &Tensor) -> Tensor {
    dot_scores(&l2_normalize(text_vecs), &l2_normalize(label_vecs)) * scale
}

/// Precomputed label side of the scorers, so labels are encoded once per evaluation.
#[derive(Debug)]
pub enum LabelCache {
    /// Masked-mean label vectors `[M,H]` (BiEncoder, PolyEncoder).
    Pooled(Tensor),
    /// Projected, normalised label token embeddings `[M,S,D]` and their mask `[M,S]` (ColBERT).
    Tokens { emb: Tensor, mask: Tensor },
}

impl LabelCache {
    pub fn len(&self) -> usize {
        match self {
            LabelCache::Pooled(t) => t.size()[0] as usize,
            LabelCache::Tokens { emb, .. } => emb.size()[0] as usize,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Concatenate caches of label chunks (token caches are zero-padded to the longest).
    pub fn concat(parts: Vec<LabelCache>) -> Result<LabelCache> {
        let Some(first) = parts.first() else {
            return Err(TrainerError::Invalid("no labels to score against".into()));
        };
        match first {
            LabelCache::Pooled(_) => {
                let ts: Vec<Tensor> = parts
                    .into_iter()
                    .map(|p| match p {
                        LabelCache::Pooled(t) => Ok(t),
                        _ => Err(TrainerError::Invalid("mixed label caches".into())),
                    })
                    .collect::<Result<_>>()?;
                Ok(LabelCache::Pooled(Tensor::cat(&ts, 0)))
            }
            LabelCache::Tokens { .. } => {
                let mut pairs = Vec::new();
                for p in parts {
                    match p {
                        LabelCache::Tokens { emb, mask } => pairs.push((emb, mask)),
                        _ => return Err(TrainerError::Invalid("mixed label caches".into())),
                    }
                }
                let s_max = pairs.iter().map(|(e, _)| e.size()[1]).max().unwrap_or(0);
                let (mut embs, mut masks) = (Vec::new(), Vec::new());
                for (e, m) in pairs {
                    let pad = s_max - e.size()[1];
                    // constant_pad_nd pads the last dims first: (D left, D right, S left, S right)
                    embs.push(e.constant_pad_nd([0, 0, 0, pad]));
                    masks.push(m.constant_pad_nd([0, pad]));
                }
                Ok(LabelCache::Tokens { emb: Tensor::cat(&embs, 0), mask: Tensor::cat(&masks, 0) })
            }
        }
    }
}

/// A zero-shot classifier: BERT + head, all parameters in one VarStore under their checkpoint names.
#[derive(Debug)]
pub struct ZscModel {
    pub vs: nn::VarStore,
    pub encoder: Encoder,
    pub head: Head,
    pub spec: ModelSpec,
}

impl ZscModel {
    /// Fresh model (random weights; the head initialised as the contract says). Draws from the
    /// torch RNG: call `tch::manual_seed` first for reproducible heads.
    pub fn new(spec: ModelSpec, bert_config: &EncoderConfig, device: Device) -> Result<Self> {
        spec.validate()?;
        if spec.hidden_size != bert_config.hidden_size {
            return Err(TrainerError::Invalid(format!(
                "model spec hidden_size {} differs from the BERT config's {}",
                spec.hidden_size, bert_config.hidden_size
            )));
        }
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let encoder = Encoder::new(root.clone(), bert_config);
        let h = spec.hidden_size as i64;
        let cosine_scale = (spec.similarity == Similarity::Cosine)
            .then(|| (&root / "cosine").var("score_scale", &[1], nn::Init::Const(COSINE_SCALE_INIT)));
        let head = match spec.model_type {
            ModelType::BiEncoder => Head::BiEncoder { cosine_scale },
            ModelType::PolyEncoder => {
                let m = spec.n_code_vectors.unwrap_or(0) as i64;
                let codes = (&root / "poly").var("codes", &[m, h], nn::Init::Randn { mean: 0.0, stdev: POLY_CODES_INIT_STD });
                Head::PolyEncoder { codes, cosine_scale }
            }
            ModelType::Colbert => {
                let d = spec.colbert_dim.unwrap_or(0) as i64;
                // nn.Linear's default init (kaiming uniform), no bias
                let proj = nn::linear(&root / "colbert" / "proj", h, d, nn::LinearConfig { bias: false, ..Default::default() });
                let score_scale = (&root / "colbert").var("score_scale", &[1], nn::Init::Const(COLBERT_SCALE_INIT));
                Head::Colbert { proj: proj.ws, score_scale }
            }
        };
        Ok(ZscModel { vs, encoder, head, spec })
    }

    /// Model from a Hugging Face BERT folder (`config.json` + `model.safetensors`), head freshly initialised.
    pub fn from_base(spec: ModelSpec, base_dir: &Path, device: Device) -> Result<Self> {
        if !base_dir.is_dir() {
            return Err(TrainerError::model(
                base_dir,
                "base model folder not found (expected a local Hugging Face BERT folder with config.json, model.safetensors, tokenizer.json)",
            ));
        }
        let cfg = EncoderConfig::load(&base_dir.join("config.json"))?;
        let model = ZscModel::new(spec, &cfg, device)?;
        encoders::load_hf_weights(&model.vs.variables(), &base_dir.join("model.safetensors"), &cfg)?;
        Ok(model)
    }

    /// Load all weights (encoder + head) from a checkpoint `model.safetensors`: the names must match exactly.
    pub fn load_weights(&self, path: &Path) -> Result<()> {
        let src = encoders::read_safetensors(path)?;
        let unused = encoders::copy_into_vars(&self.vs.variables(), src, &|_| true, path)?;
        if !unused.is_empty() {
            return Err(TrainerError::model(
                path,
                format!("tensors the {} model does not have: {unused:?}", self.spec.model_type),
            ));
        }
        Ok(())
    }

    /// All variables by name (sorted), on the CPU, contiguous.
    pub fn named_tensors_cpu(&self) -> BTreeMap<String, Tensor> {
        self.vs.variables().into_iter().map(|(k, v)| (k, v.detach().to_device(Device::Cpu).contiguous())).collect()
    }

    /// Write every weight to a safetensors file under its checkpoint name.
    pub fn save_weights(&self, path: &Path) -> Result<()> {
        let named: Vec<(String, Tensor)> = self.named_tensors_cpu().into_iter().collect();
        Tensor::write_safetensors(&named, path).map_err(|e| TrainerError::torch(format!("writing {}", path.display()), e))
    }

    /// The checkpoint names every weight must have: Hugging Face BERT names + head names.
    pub fn expected_weight_names(&self) -> Vec<String> {
        let mut v = self.encoder.config().weight_names();
        if self.spec.similarity == Similarity::Cosine {
            v.push(tensor_names::COSINE_SCALE.into());
        }
        match self.head {
            Head::BiEncoder { .. } => {}
            Head::PolyEncoder { .. } => v.push(tensor_names::POLY_CODES.into()),
            Head::Colbert { .. } => {
                v.push(tensor_names::COLBERT_PROJ.into());
                v.push(tensor_names::COLBERT_SCALE.into());
            }
        }
        v
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// `last_hidden_state [B,T,H]` of a token batch, plus its attention mask `[B,T]` on the device.
    pub fn encode(&self, batch: &TokenBatch, train: bool) -> Result<(Tensor, Tensor)> {
        let t = BatchTensors::new(batch, self.device())?;
        let h = self.encode_tensors(&t, train);
        Ok((h, t.attention_mask))
    }

    /// `last_hidden_state [B,T,H]` of input tensors already on the device.
    pub fn encode_tensors(&self, t: &BatchTensors, train: bool) -> Tensor {
        self.encoder.forward(&t.input_ids, &t.attention_mask, &t.token_type_ids, train)
    }

    /// Sentence vectors `[B,H]`, pooled as the base model pools.
    pub fn pooled(&self, batch: &TokenBatch, train: bool) -> Result<Tensor> {
        let (h, mask) = self.encode(batch, train)?;
        Ok(self.pool(&h, &mask))
    }

    /// [`sentence_pool`] with the model's pooling.
    pub fn pool(&self, h: &Tensor, mask: &Tensor) -> Tensor {
        sentence_pool(h, mask, self.spec.embedding.pooling)
    }

    /// ColBERT only: projected, L2-normalised token embeddings `[B,T,D]` and the mask `[B,T]`.
    pub fn token_embeddings(&self, batch: &TokenBatch, train: bool) -> Result<(Tensor, Tensor)> {
        let Head::Colbert { proj, .. } = &self.head else {
            return Err(TrainerError::Invalid(format!(
                "token embeddings need a colbert model, this is {}",
                self.spec.model_type
            )));
        };
        let (h, mask) = self.encode(batch, train)?;
        Ok((colbert_embed(&h, proj), mask))
    }

    /// Encode (already templated) labels once for scoring.
    pub fn encode_labels(&self, labels: &TokenBatch, train: bool) -> Result<LabelCache> {
        let t = BatchTensors::new(labels, self.device())?;
        Ok(self.encode_label_tensors(&t, train))
    }

    fn encode_label_tensors(&self, t: &BatchTensors, train: bool) -> LabelCache {
        let h = self.encode_tensors(t, train);
        match &self.head {
            Head::BiEncoder { .. } | Head::PolyEncoder { .. } => LabelCache::Pooled(self.pool(&h, &t.attention_mask)),
            Head::Colbert { proj, .. } => LabelCache::Tokens {
                emb: colbert_embed(&h, proj),
                mask: without_special_tokens(&t.attention_mask, self.spec.colbert_scoring.special_tokens.label()),
            },
        }
    }

    /// Logits `[N_text, N_label]` of a text batch against encoded labels.
    pub fn score_texts(&self, texts: &TokenBatch, labels: &LabelCache, train: bool) -> Result<Tensor> {
        let t = BatchTensors::new(texts, self.device())?;
        self.score_text_tensors(&t, labels, train)
    }

    fn score_text_tensors(&self, t: &BatchTensors, labels: &LabelCache, train: bool) -> Result<Tensor> {
        let h = self.encode_tensors(t, train);
        let mask = &t.attention_mask;
        match (&self.head, labels) {
            (Head::BiEncoder { cosine_scale: None }, LabelCache::Pooled(l)) => Ok(dot_scores(&self.pool(&h, mask), l)),
            (Head::BiEncoder { cosine_scale: Some(s) }, LabelCache::Pooled(l)) => Ok(cosine_scores(&self.pool(&h, mask), l, s)),
            (Head::PolyEncoder { codes, cosine_scale: None }, LabelCache::Pooled(l)) => Ok(poly_scores(codes, &h, mask, l)),
            (Head::PolyEncoder { codes, cosine_scale: Some(s) }, LabelCache::Pooled(l)) => {
                Ok(poly_cosine_scores_from_context(&poly_context(codes, &h, mask), l, s))
            }
            (Head::Colbert { proj, score_scale }, LabelCache::Tokens { emb, mask: lmask }) => {
                let scoring = self.spec.colbert_scoring;
                let text_mask = without_special_tokens(mask, scoring.special_tokens.text());
                Ok(max_sim(&colbert_embed(&h, proj), &text_mask, emb, lmask, scoring.maxsim) * score_scale)
            }
            _ => Err(TrainerError::Invalid(format!("label cache does not fit a {} model", self.spec.model_type))),
        }
    }

    /// Logits `[n_text, n_label]`: every text of `texts` against every label of `labels`.
    pub fn score_matrix(&self, texts: &TokenBatch, labels: &TokenBatch, train: bool) -> Result<Tensor> {
        let cache = self.encode_labels(labels, train)?;
        self.score_texts(texts, &cache, train)
    }

    /// [`ZscModel::score_matrix`] of input tensors already on the device (what a CUDA graph captures).
    pub fn score_matrix_tensors(&self, texts: &BatchTensors, labels: &BatchTensors, train: bool) -> Result<Tensor> {
        let cache = self.encode_label_tensors(labels, train);
        self.score_text_tensors(texts, &cache, train)
    }

    /// Names of head parameters (trained with `head_learning_rate`).
    pub fn is_head_param(name: &str) -> bool {
        name.starts_with("poly.") || name.starts_with("colbert.") || name.starts_with("cosine.")
    }

    /// Replaces the ColBERT projection by random orthonormal rows (`colbert_dim <= hidden`) or
    /// columns (`colbert_dim > hidden`): at `colbert_dim` = hidden size the projection is a
    /// rotation, so MaxSim starts from the base model's own token geometry. Draws from the torch
    /// RNG. A no-op for other heads.
    pub fn init_colbert_orthogonal(&self) -> Result<()> {
        let Head::Colbert { proj, .. } = &self.head else { return Ok(()) };
        let (d, h) = proj.size2().map_err(|e| TrainerError::torch("colbert projection", e))?;
        let opts = (Kind::Float, Device::Cpu);
        let q = if d <= h {
            Tensor::linalg_qr(&Tensor::randn([h, d], opts), "reduced").0.tr() // [d,h], orthonormal rows
        } else {
            Tensor::linalg_qr(&Tensor::randn([d, h], opts), "reduced").0 // [d,h], orthonormal columns
        };
        tch::no_grad(|| {
            let mut p = proj.shallow_clone();
            p.f_copy_(&q.to_device(proj.device())).map_err(|e| TrainerError::torch("colbert projection init", e))
        })
    }
}

/// Copy a tensor of f32 values into a `Vec<f32>` (any device, any shape).
pub fn to_vec_f32(t: &Tensor) -> Result<Vec<f32>> {
    let flat = t.detach().to_device(Device::Cpu).to_kind(Kind::Float).contiguous().view([-1]);
    Vec::<f32>::try_from(&flat).map_err(|e| TrainerError::torch("reading a tensor", e))
}

/// `[N,M]` scores as rows.
pub fn to_rows(t: &Tensor) -> Result<Vec<Vec<f32>>> {
    let (n, m) = t.size2().map_err(|e| TrainerError::torch("score matrix", e))?;
    let flat = to_vec_f32(t)?;
    Ok((0..n as usize).map(|i| flat[i * m as usize..(i + 1) * m as usize].to_vec()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use zsc_core::data::Pair;

    fn t2(v: &[f32], r: i64, c: i64) -> Tensor {
        Tensor::from_slice(v).view([r, c])
    }
    fn t3(v: &[f32], a: i64, b: i64, c: i64) -> Tensor {
        Tensor::from_slice(v).view([a, b, c])
    }
    fn mask(v: &[i64], r: i64, c: i64) -> Tensor {
        Tensor::from_slice(v).view([r, c])
    }
    fn close(t: &Tensor, want: &[f32], tol: f32) {
        let got = to_vec_f32(t).unwrap();
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= tol, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn mean_pool_ignores_padding() {
        // one row: tokens (1,2), (3,4), padding (100,100)
        let h = t3(&[1., 2., 3., 4., 100., 100.], 1, 3, 2);
        let m = mask(&[1, 1, 0], 1, 3);
        close(&mean_pool(&h, &m), &[2., 3.], 1e-6);
    }

    #[test]
    fn bi_encoder_scores_by_hand() {
        // text: tokens (1,0),(3,2) + pad (50,50) -> mean (2,1); labels: (1,1) and (0,2)+pad(9,9) -> (0,2)
        let th = t3(&[1., 0., 3., 2., 50., 50.], 1, 3, 2);
        let tm = mask(&[1, 1, 0], 1, 3);
        let lh = t3(&[1., 1., 1., 1., 0., 2., 9., 9.], 2, 2, 2);
        let lm = mask(&[1, 1, 1, 0], 2, 2);
        let s = dot_scores(&mean_pool(&th, &tm), &mean_pool(&lh, &lm));
        close(&s, &[3., 2.], 1e-6);
    }

    #[test]
    fn poly_scores_by_hand() {
        // m = 2 codes in H = 2: c0 = (1,0), c1 = (0,1); text tokens (ln 3, 0), (0, ln 3), pad (9, 9)
        let ln3 = 3f32.ln();
        let codes = t2(&[1., 0., 0., 1.], 2, 2);
        let th = t3(&[ln3, 0., 0., ln3, 9., 9.], 1, 3, 2);
        let tm = mask(&[1, 1, 0], 1, 3);
        // code0 logits over real tokens: (ln3, 0) -> a = (3/4, 1/4); ctx0 = (3/4 ln3, 1/4 ln3)
        // code1 logits: (0, ln3) -> a = (1/4, 3/4); ctx1 = (1/4 ln3, 3/4 ln3)
        let ctx = poly_context(&codes, &th, &tm);
        close(&ctx, &[0.75 * ln3, 0.25 * ln3, 0.25 * ln3, 0.75 * ln3], 1e-6);
        // label l = (1, 0): ctx@l = (3/4 ln3, 1/4 ln3); w = softmax -> (e^{.75 ln3}, e^{.25 ln3}) normalised
        let l = t2(&[1., 0.], 1, 2);
        let (e0, e1) = ((0.75 * ln3).exp(), (0.25 * ln3).exp());
        let (w0, w1) = (e0 / (e0 + e1), e1 / (e0 + e1));
        let want = w0 * 0.75 * ln3 + w1 * 0.25 * ln3; // v · l = v_x
        close(&poly_scores(&codes, &th, &tm, &l), &[want], 1e-6);
        // without the mask the pad token (9,9) would dominate both softmaxes
        let unmasked = poly_scores(&codes, &th, &mask(&[1, 1, 1], 1, 3), &l);
        assert!((to_vec_f32(&unmasked).unwrap()[0] - want).abs() > 1.0);
    }

    #[test]
    fn cosine_scores_by_hand() {
        // text (3,4) vs labels (1,0) and (0,-2): cosines 0.6 and -0.8, times the scale 20
        let t = t2(&[3., 4.], 1, 2);
        let l = t2(&[1., 0., 0., -2.], 2, 2);
        close(&cosine_scores(&t, &l, &Tensor::from_slice(&[20.0f32])), &[12.0, -16.0], 1e-5);
        // poly: one code, so w = 1 for every label and v = ctx = (3,4): the same cosines
        let ctx = t3(&[3., 4.], 1, 1, 2);
        close(&poly_cosine_scores_from_context(&ctx, &l, &Tensor::from_slice(&[20.0f32])), &[12.0, -16.0], 1e-5);
    }

    #[test]
    fn cosine_models_have_a_scale_and_keep_padding_out() {
        for ty in [ModelType::BiEncoder, ModelType::PolyEncoder] {
            let spec = ModelSpec { similarity: Similarity::Cosine, ..tiny_spec(ty) };
            let m = ZscModel::new(spec, &tiny_cfg(), Device::Cpu).unwrap();
            let mut got: Vec<String> = m.vs.variables().into_keys().collect();
            got.sort();
            let mut want = m.expected_weight_names();
            want.sort();
            assert_eq!(got, want, "{ty}");
            assert!(got.contains(&"cosine.score_scale".to_string()));
            assert!(ZscModel::is_head_param("cosine.score_scale"));
            let text = TokenBatch {
                input_ids: vec![2, 5, 3, 0],
                attention_mask: vec![1, 1, 1, 0],
                token_type_ids: vec![0; 4],
                batch: 1,
                seq: 4,
            };
            let short = TokenBatch {
                input_ids: vec![2, 5, 3],
                attention_mask: vec![1, 1, 1],
                token_type_ids: vec![0; 3],
                batch: 1,
                seq: 3,
            };
            let label = TokenBatch {
                input_ids: vec![2, 7, 3],
                attention_mask: vec![1, 1, 1],
                token_type_ids: vec![0; 3],
                batch: 1,
                seq: 3,
            };
            let a = m.score_matrix(&text, &label, false).unwrap();
            let b = m.score_matrix(&short, &label, false).unwrap();
            close(&a, &to_vec_f32(&b).unwrap(), 1e-5);
            assert!(to_vec_f32(&a).unwrap()[0].abs() <= 20.0 + 1e-4, "a cosine times 20");
        }
    }

    #[test]
    fn orthogonal_colbert_init_keeps_the_geometry() {
        tch::manual_seed(3);
        for (d, rows) in [(8usize, true), (4, true), (12, false)] {
            let spec = ModelSpec { colbert_dim: Some(d), ..tiny_spec(ModelType::Colbert) };
            let m = ZscModel::new(spec, &tiny_cfg(), Device::Cpu).unwrap();
            m.init_colbert_orthogonal().unwrap();
            let Head::Colbert { proj, .. } = &m.head else { panic!() };
            let gram = if rows { proj.matmul(&proj.tr()) } else { proj.tr().matmul(proj) };
            let n = gram.size()[0];
            let err = (gram - Tensor::eye(n, (Kind::Float, Device::Cpu))).abs().max().double_value(&[]);
            assert!(err < 1e-5, "dim {d}: W W^T - I = {err}");
        }
        // at dim = hidden the projection is a rotation: cosine of any two token vectors is unchanged
        let spec = ModelSpec { colbert_dim: Some(8), ..tiny_spec(ModelType::Colbert) };
        let m = ZscModel::new(spec, &tiny_cfg(), Device::Cpu).unwrap();
        m.init_colbert_orthogonal().unwrap();
        let Head::Colbert { proj, .. } = &m.head else { panic!() };
        let x = Tensor::randn([1, 2, 8], (Kind::Float, Device::Cpu));
        let before = l2_normalize(&x);
        let after = colbert_embed(&x, proj);
        let cos = |e: &Tensor| (e.get(0).get(0) * e.get(0).get(1)).sum(Kind::Float).double_value(&[]);
        assert!((cos(&before) - cos(&after)).abs() < 1e-5);
    }

    #[test]
    fn colbert_embed_normalises() {
        let h = t3(&[3., 4., 0., 0.], 1, 2, 2);
        let proj = t2(&[1., 0., 0., 1.], 2, 2);
        // (3,4) -> (0.6, 0.8); the zero vector stays zero thanks to eps (no NaN)
        close(&colbert_embed(&h, &proj), &[0.6, 0.8, 0., 0.], 1e-6);
    }

    #[test]
    fn max_sim_by_hand() {
        // text tokens (unit vectors): t0 = (1,0), t1 = (0,1), pad = (0.6,0.8) (would win for s1 if counted)
        let te = t3(&[1., 0., 0., 1., 0.6, 0.8], 1, 3, 2);
        let tm = mask(&[1, 1, 0], 1, 3);
        // label tokens: s0 = (1,0), s1 = (0.8,0.6), pad = (-1,0) (would lower the mean if counted)
        let le = t3(&[1., 0., 0.8, 0.6, -1., 0.], 1, 3, 2);
        let lm = mask(&[1, 1, 0], 1, 3);
        // s0: max(1, 0) = 1; s1: max(0.8, 0.6) = 0.8 (the pad would give 0.96); mean = 0.9
        close(&max_sim(&te, &tm, &le, &lm, MaxSimDirection::LabelToText), &[0.9], 1e-6);
        // t0: max(1, 0.8) = 1; t1: max(0, 0.6) = 0.6 (the label pad would give 0); mean = 0.8
        close(&max_sim(&te, &tm, &le, &lm, MaxSimDirection::TextToLabel), &[0.8], 1e-6);
        close(&max_sim(&te, &tm, &le, &lm, MaxSimDirection::Symmetric), &[0.85], 1e-6);
        // two texts x two labels shape
        let te2 = Tensor::cat(&[te.shallow_clone(), te.shallow_clone()], 0);
        let tm2 = Tensor::cat(&[tm.shallow_clone(), mask(&[1, 0, 0], 1, 3)], 0);
        let le2 = Tensor::cat(&[le.shallow_clone(), le.shallow_clone()], 0);
        let lm2 = Tensor::cat(&[lm.shallow_clone(), mask(&[1, 0, 0], 1, 3)], 0);
        // text 1 has only t0: s0 -> 1, s1 -> 0.8 ; label 1 has only s0 -> 1 for both texts
        close(&max_sim(&te2, &tm2, &le2, &lm2, MaxSimDirection::LabelToText), &[0.9, 1.0, 0.9, 1.0], 1e-6);
        // text 0 vs label 1 (s0 only): t0 -> 1, t1 -> 0, mean 0.5; text 1 (t0 only) -> 1 for both
        close(&max_sim(&te2, &tm2, &le2, &lm2, MaxSimDirection::TextToLabel), &[0.8, 0.5, 1.0, 1.0], 1e-6);
        // a side with no kept token scores 0 in both directions, never NaN or -inf
        let none = mask(&[0, 0, 0], 1, 3);
        for d in [MaxSimDirection::LabelToText, MaxSimDirection::TextToLabel, MaxSimDirection::Symmetric] {
            close(&max_sim(&te, &none, &le, &lm, d), &[0.0], 1e-6);
            close(&max_sim(&te, &tm, &le, &none, d), &[0.0], 1e-6);
        }
    }

    #[test]
    fn special_tokens_are_the_first_and_last_real_token() {
        let m = mask(&[1, 1, 1, 1, 0, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1], 3, 5);
        close(
            &without_special_tokens(&m, false).to_kind(Kind::Float),
            &[0., 1., 1., 0., 0., 0., 0., 0., 0., 0., 0., 1., 1., 1., 0.],
            0.0,
        );
        close(
            &without_special_tokens(&m, true).to_kind(Kind::Float),
            &[1., 1., 1., 1., 0., 1., 1., 0., 0., 0., 1., 1., 1., 1., 1.],
            0.0,
        );
    }

    #[test]
    fn label_cache_concat_pads() {
        let a = LabelCache::Tokens {
            emb: Tensor::ones([1, 2, 3], (Kind::Float, Device::Cpu)),
            mask: Tensor::ones([1, 2], (Kind::Int64, Device::Cpu)),
        };
        let b = LabelCache::Tokens {
            emb: Tensor::ones([2, 4, 3], (Kind::Float, Device::Cpu)),
            mask: Tensor::ones([2, 4], (Kind::Int64, Device::Cpu)),
        };
        let LabelCache::Tokens { emb, mask } = LabelCache::concat(vec![a, b]).unwrap() else { panic!() };
        assert_eq!(emb.size(), vec![3, 4, 3]);
        assert_eq!(to_vec_f32(&mask.get(0)).unwrap(), vec![1., 1., 0., 0.]);
    }

    #[test]
    fn target_matrix_via_core() {
        let p = |t: &str, l: &str| Pair { text: t.into(), label: l.into() };
        let batch = [p("a", "x"), p("a", "y"), p("b", "z")];
        let t = Tensor::from_slice(&zsc_core::targets::target_matrix(&batch)).view([3, 3]);
        close(&t, &[1., 1., 0., 1., 1., 0., 0., 0., 1.], 0.0);
    }

    fn tiny_spec(model_type: ModelType) -> ModelSpec {
        ModelSpec {
            model_type,
            hidden_size: 8,
            max_length: 16,
            n_code_vectors: Some(3),
            colbert_dim: Some(4),
            label_template: None,
            similarity: Default::default(),
            embedding: Default::default(),
            colbert_scoring: Default::default(),
        }
    }

    fn tiny_cfg() -> EncoderConfig {
        serde_json::from_value(serde_json::json!({
            "vocab_size": 30, "hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 16, "max_position_embeddings": 16
        }))
        .unwrap()
    }

    #[test]
    fn head_names_and_init() {
        for ty in [ModelType::BiEncoder, ModelType::PolyEncoder, ModelType::Colbert] {
            let m = ZscModel::new(tiny_spec(ty), &tiny_cfg(), Device::Cpu).unwrap();
            let mut got: Vec<String> = m.vs.variables().into_keys().collect();
            got.sort();
            let mut want = m.expected_weight_names();
            want.sort();
            assert_eq!(got, want, "{ty}");
            if let Head::Colbert { score_scale, proj } = &m.head {
                close(score_scale, &[10.0], 0.0);
                assert_eq!(proj.size(), vec![4, 8]);
            }
            if let Head::PolyEncoder { codes, .. } = &m.head {
                assert_eq!(codes.size(), vec![3, 8]);
            }
        }
        let vars = ZscModel::new(tiny_spec(ModelType::Colbert), &tiny_cfg(), Device::Cpu).unwrap().vs.variables();
        assert!(vars.contains_key("colbert.proj.weight") && vars.contains_key("colbert.score_scale"));
    }

    #[test]
    fn padding_does_not_change_model_scores() {
        // the same text scored alone and inside a batch padded by a longer text must agree
        tch::manual_seed(0);
        for ty in [ModelType::BiEncoder, ModelType::PolyEncoder, ModelType::Colbert] {
            let m = ZscModel::new(tiny_spec(ty), &tiny_cfg(), Device::Cpu).unwrap();
            let batch = |rows: &[&[i64]]| {
                let seq = rows.iter().map(|r| r.len()).max().unwrap();
                let mut b =
                    TokenBatch { input_ids: vec![], attention_mask: vec![], token_type_ids: vec![], batch: rows.len(), seq };
                for r in rows {
                    for j in 0..seq {
                        b.input_ids.push(*r.get(j).unwrap_or(&0));
                        b.attention_mask.push(i64::from(j < r.len()));
                        b.token_type_ids.push(0);
                    }
                }
                b
            };
            let labels = batch(&[&[1, 5, 2], &[1, 7, 8, 9, 2]]);
            let alone = m.score_matrix(&batch(&[&[1, 3, 4, 2]]), &labels, false).unwrap();
            let padded = m.score_matrix(&batch(&[&[1, 3, 4, 2], &[1, 3, 4, 5, 6, 7, 2]]), &labels, false).unwrap();
            let a = to_vec_f32(&alone).unwrap();
            let p = to_vec_f32(&padded.get(0)).unwrap();
            for (x, y) in a.iter().zip(&p) {
                assert!((x - y).abs() < 1e-5, "{ty}: {a:?} vs {p:?}");
            }
        }
    }
}
