//! Evaluation: every text against every label (labels encoded once, texts batched by length).

use zsc_core::data::Sample;
use zsc_core::metrics::{self, EvalReport};
use zsc_core::tokenize::TextTokenizer;

use crate::error::{Result, TrainerError};
use crate::models::{self, LabelCache, ZscModel};

/// Encode raw labels (the model's label template is applied here) in batches of `batch_size`.
pub fn encode_label_cache(model: &ZscModel, tok: &TextTokenizer, labels: &[String], batch_size: usize) -> Result<LabelCache> {
    if labels.is_empty() {
        return Err(TrainerError::Invalid("no labels to score against".into()));
    }
    let templated: Vec<String> = labels.iter().map(|l| model.spec.label_input(l)).collect();
    tch::no_grad(|| {
        let mut parts = Vec::new();
        for chunk in templated.chunks(batch_size.max(1)) {
            parts.push(model.encode_labels(&tok.encode_batch(chunk)?, false)?);
        }
        LabelCache::concat(parts)
    })
}

/// Scores (logits) `[texts.len()][labels.len()]` of raw texts against raw labels, in eval mode.
/// Texts are batched in order of length (less padding); rows come back in input order.
pub fn score_texts_labels(
    model: &ZscModel,
    tok: &TextTokenizer,
    texts: &[String],
    labels: &[String],
    batch_size: usize,
) -> Result<Vec<Vec<f32>>> {
    let cache = encode_label_cache(model, tok, labels, batch_size)?;
    score_texts_cached(model, tok, texts, &cache, batch_size)
}

pub fn score_texts_cached(
    model: &ZscModel,
    tok: &TextTokenizer,
    texts: &[String],
    cache: &LabelCache,
    batch_size: usize,
) -> Result<Vec<Vec<f32>>> {
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| texts[i].len());
    let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
    tch::no_grad(|| -> Result<()> {
        for chunk in order.chunks(batch_size.max(1)) {
            let batch: Vec<String> = chunk.iter().map(|&i| model.spec.text_input(&texts[i])).collect();
            let scores = model.score_texts(&tok.encode_batch(&batch)?, cache, false)?;
            for (row, &i) in models::to_rows(&scores)?.into_iter().zip(chunk) {
                out[i] = row;
            }
        }
        Ok(())
    })?;
    Ok(out)
}

/// What an evaluation produced.
#[derive(Debug, Clone)]
pub struct EvalOutput {
    pub report: EvalReport,
    pub labels: Vec<String>,
    pub scores: Vec<Vec<f32>>,
    /// Each text's gold label indices in `labels` ([`zsc_core::data::gold_indices`]).
    pub gold: Vec<Vec<usize>>,
    /// Texts whose gold labels are not all among `labels` (only the present ones count).
    pub texts_with_unknown_gold: usize,
}

/// Score every sample's text against `labels` and compute top-1 accuracy and accuracy@k.
pub fn evaluate(
    model: &ZscModel,
    tok: &TextTokenizer,
    samples: &[Sample],
    labels: &[String],
    split_name: &str,
    batch_size: usize,
) -> Result<EvalOutput> {
    let texts: Vec<String> = samples.iter().map(|s| s.text.clone()).collect();
    let scores = score_texts_labels(model, tok, &texts, labels, batch_size)?;
    let gold = zsc_core::data::gold_indices(samples, labels);
    let unknown = samples.iter().zip(&gold).filter(|(s, g)| g.len() != s.labels.len()).count();
    if unknown > 0 {
        tracing::warn!("{unknown} text(s) have gold labels outside the {} evaluated labels", labels.len());
    }
    let (top1, at_k) = metrics::accuracy(&scores, &gold);
    Ok(EvalOutput {
        report: EvalReport {
            split: split_name.to_string(),
            n_texts: samples.len(),
            n_labels: labels.len(),
            top1_accuracy: top1,
            accuracy_at_k: at_k,
        },
        labels: labels.to_vec(),
        scores,
        gold,
        texts_with_unknown_gold: unknown,
    })
}
