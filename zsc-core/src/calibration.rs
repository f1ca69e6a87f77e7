//! Probability calibration: turning scores (logits) into probabilities that mean something.
//!
//! A model trained with the in-batch softmax loss only learns to *rank* labels, so `sigmoid(score)`
//! reads like a confidence but is not one (an untuned MiniLM's dot products are 10–25: every
//! label gets p ≈ 1). Calibration fits, on labelled held-out data (the val split):
//!
//! - **single-label**: a temperature `T`, `p = softmax(score / T)` over the candidate labels
//!   (temperature scaling, Guo et al. 2017, <https://arxiv.org/abs/1706.04599>), fitted by
//!   minimising the log loss of the top label's probability against whether the top label is
//!   gold: the confidence a user reads off the ranking, and the one the ECE measures. Guo et al.
//!   minimise the negative log-likelihood of the whole distribution ([`fit_temperature_nll`]);
//!   with 150+ candidate labels that fit is dominated by the tail and left the top-1 confidence of
//!   our models 0.005–0.01 ECE worse (0.054 vs 0.048 for a 100-step poly-encoder on the val split
//!   of `data/train.json`);
//! - **multi-label**: a temperature and a bias, `p = sigmoid(score / T + b)` for every (text, label)
//!   pair on its own (Platt scaling, Platt 1999, with his smoothed targets so that separable data
//!   does not send the slope to infinity), fitted by minimising the binary cross-entropy.
//!
//! Quality is reported as the expected calibration error with 15 equal-width bins
//! ([`expected_calibration_error`]). Everything here is pure arithmetic on score matrices, so the
//! trainer (tch) and the runtime (ONNX Runtime) fit and apply the very same thing.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::json_file::{read_json, write_json_atomic};

/// Bins of the expected calibration error (the usual choice since Guo et al.).
pub const ECE_BINS: usize = 15;

/// File in a checkpoint folder holding its [`Calibration`] (the trainer writes it at the end of a
/// run; `export` copies it into the bundle's `manifest.json`).
pub const CHECKPOINT_CALIBRATION_FILE: &str = "calibration.json";

/// Searched range of temperatures. Dot products of an untuned MiniLM need T ≈ 5–20, cosine
/// similarities T ≈ 0.02–0.1; the bounds only guard against degenerate data.
const MIN_TEMPERATURE: f64 = 1e-4;
const MAX_TEMPERATURE: f64 = 1e4;

/// Why a calibration could not be fitted.
#[derive(Debug, thiserror::Error)]
pub enum CalibrationError {
    #[error("no text has a gold label among the candidate labels: nothing to calibrate on")]
    NoGold,
    #[error("scores and gold labels disagree: {0}")]
    Shape(String),
    #[error("every (text, label) pair is {0}: a bias cannot be fitted")]
    OneClass(&'static str),
    #[error(
        "gold labels do not score higher than the others (fitted slope {slope:.3e}): the scores carry no signal to calibrate"
    )]
    NoSignal { slope: f64 },
    #[error("non-finite score at text {text}, label {label}")]
    NonFinite { text: usize, label: usize },
}

/// How scores become probabilities, stored in a bundle's `manifest.json` (`"calibration"`) and in
/// a checkpoint's `calibration.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Single-label: `p = softmax(score / temperature)` over the candidate labels.
    pub temperature: f64,
    /// Multi-label: `p = sigmoid(score / multi_label_temperature + multi_label_bias)`.
    pub multi_label_temperature: f64,
    pub multi_label_bias: f64,
    /// Where it was fitted: data file, split, and how much of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    #[serde(default)]
    pub n_texts: usize,
    #[serde(default)]
    pub n_labels: usize,
    /// Expected calibration error of the top-1 label on the fitting data, before (sigmoid(score),
    /// the uncalibrated output) and after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ece_before: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ece: Option<f64>,
    /// Expected calibration error over all (text, label) pairs with the multi-label sigmoid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_label_ece: Option<f64>,
}

impl Calibration {
    /// Check the values a runtime would divide by.
    pub fn validate(&self) -> Result<(), CoreError> {
        let bad = |field: &str, v: f64| CoreError::Config {
            field: format!("calibration.{field}"),
            message: format!("must be a finite positive number, got {v}"),
        };
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(bad("temperature", self.temperature));
        }
        if !(self.multi_label_temperature.is_finite() && self.multi_label_temperature > 0.0) {
            return Err(bad("multi_label_temperature", self.multi_label_temperature));
        }
        if !self.multi_label_bias.is_finite() {
            return Err(CoreError::Config {
                field: "calibration.multi_label_bias".into(),
                message: format!("must be finite, got {}", self.multi_label_bias),
            });
        }
        Ok(())
    }

    /// Single-label probabilities of one text's scores (they sum to 1).
    pub fn single_label(&self, scores: &[f32]) -> Vec<f32> {
        softmax_with_temperature(scores, self.temperature)
    }

    /// Multi-label probability of one score.
    pub fn multi_label(&self, score: f32) -> f32 {
        sigmoid_f64(score as f64 / self.multi_label_temperature + self.multi_label_bias) as f32
    }

    /// A checkpoint's `calibration.json`, if it has one.
    pub fn load_from_checkpoint(dir: &Path) -> Result<Option<Self>, CoreError> {
        let path = dir.join(CHECKPOINT_CALIBRATION_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let c: Calibration = read_json(&path)?;
        c.validate().map_err(|e| CoreError::Data { path: path.clone(), message: e.to_string() })?;
        Ok(Some(c))
    }

    /// Write `calibration.json` into a checkpoint folder (atomically).
    pub fn save_to_checkpoint(&self, dir: &Path) -> Result<(), CoreError> {
        write_json_atomic(&dir.join(CHECKPOINT_CALIBRATION_FILE), self)
    }
}

/// Result of [`fit_calibration`]: the calibration plus before/after diagnostics on the fitting data.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrationFit {
    pub calibration: Calibration,
    /// Mean negative log-likelihood of the gold labels under softmax(score) (T = 1) and softmax(score / T).
    pub nll_before: f64,
    pub nll_after: f64,
    /// Texts that had at least one gold label among the candidates (the others are skipped).
    pub n_used: usize,
}

/// Fit both calibrations on a score matrix: `scores[i][j]` is text i against candidate label j,
/// `gold[i]` the indices of text i's gold labels. Texts with no gold label among the candidates
/// are skipped. The trainer calls this at the end of training with its val-split scores; `zsc
/// calibrate` with the runtime's.
pub fn fit_calibration(scores: &[Vec<f32>], gold: &[Vec<usize>]) -> Result<CalibrationFit, CalibrationError> {
    check_shapes(scores, gold)?;
    let temperature = fit_temperature(scores, gold)?;
    let (multi_label_temperature, multi_label_bias) = fit_sigmoid(scores, gold)?;
    let n_labels = scores.first().map_or(0, Vec::len);
    let n_used = gold.iter().filter(|g| !g.is_empty()).count();
    let calibration = Calibration {
        temperature,
        multi_label_temperature,
        multi_label_bias,
        data: None,
        split: None,
        n_texts: scores.len(),
        n_labels,
        ece_before: Some(top1_ece(scores, gold, |row| row.iter().map(|&s| sigmoid_f64(s as f64) as f32).collect())),
        ece: Some(top1_ece(scores, gold, |row| softmax_with_temperature(row, temperature))),
        multi_label_ece: Some(pairwise_ece(scores, gold, |s| {
            sigmoid_f64(s as f64 / multi_label_temperature + multi_label_bias) as f32
        })),
    };
    Ok(CalibrationFit {
        calibration,
        nll_before: softmax_nll(scores, gold, 1.0),
        nll_after: softmax_nll(scores, gold, temperature),
        n_used,
    })
}

fn check_shapes(scores: &[Vec<f32>], gold: &[Vec<usize>]) -> Result<(), CalibrationError> {
    if scores.len() != gold.len() {
        return Err(CalibrationError::Shape(format!("{} score rows, {} gold rows", scores.len(), gold.len())));
    }
    for (i, (row, g)) in scores.iter().zip(gold).enumerate() {
        if let Some(&bad) = g.iter().find(|&&j| j >= row.len()) {
            return Err(CalibrationError::Shape(format!("text {i}: gold label {bad} but only {} scores", row.len())));
        }
        if let Some(j) = row.iter().position(|s| !s.is_finite()) {
            return Err(CalibrationError::NonFinite { text: i, label: j });
        }
    }
    if gold.iter().all(Vec::is_empty) {
        return Err(CalibrationError::NoGold);
    }
    Ok(())
}

/// The temperature `T` of the single-label softmax: the one minimising the mean log loss of the
/// top label's probability `softmax(score / T)[top]` against "the top label is gold" (over texts
/// with a gold label among the candidates). [`minimise_over_temperature`] does the search.
pub fn fit_temperature(scores: &[Vec<f32>], gold: &[Vec<usize>]) -> Result<f64, CalibrationError> {
    check_shapes(scores, gold)?;
    let top = Top1::new(scores, gold);
    Ok(minimise_over_temperature(|t| top.log_loss(t)))
}

/// Classic temperature scaling: the `T` minimising the mean negative log-likelihood of the gold
/// labels under `softmax(score / T)` (for a text with several gold labels, of the probability mass
/// on them). Kept for comparison; [`fit_temperature`] is what [`fit_calibration`] uses.
pub fn fit_temperature_nll(scores: &[Vec<f32>], gold: &[Vec<usize>]) -> Result<f64, CalibrationError> {
    check_shapes(scores, gold)?;
    Ok(minimise_over_temperature(|t| softmax_nll(scores, gold, t)))
}

/// Each text's top label and whether it is gold (texts without gold skipped).
struct Top1<'a> {
    rows: Vec<(&'a [f32], usize, bool)>,
}

impl<'a> Top1<'a> {
    fn new(scores: &'a [Vec<f32>], gold: &[Vec<usize>]) -> Self {
        let rows = scores
            .iter()
            .zip(gold)
            .filter(|(row, g)| !g.is_empty() && !row.is_empty())
            .map(|(row, g)| {
                let top = crate::metrics::top_k_indices(row, 1)[0];
                (row.as_slice(), top, g.contains(&top))
            })
            .collect();
        Top1 { rows }
    }

    /// Mean binary log loss of `softmax(score / T)[top]` against the top label being gold.
    fn log_loss(&self, temperature: f64) -> f64 {
        if self.rows.is_empty() {
            return 0.0;
        }
        let total: f64 = self
            .rows
            .iter()
            .map(|&(row, top, correct)| {
                let s_top = row[top] as f64;
                // p_top = 1 / sum_j exp((s_j - s_top) / T), every term <= 1
                let z: f64 = row.iter().map(|&s| ((s as f64 - s_top) / temperature).exp()).sum();
                let p = (1.0 / z).clamp(1e-12, 1.0 - 1e-12);
                if correct {
                    -p.ln()
                } else {
                    -(1.0 - p).ln()
                }
            })
            .sum();
        total / self.rows.len() as f64
    }
}

/// The temperature minimising `f(T)`: a grid over ln T in [1e-4, 1e4], then golden-section search
/// in the bracket around the best grid point (one-dimensional, cheap, robust to a flat start).
pub fn minimise_over_temperature(f: impl Fn(f64) -> f64) -> f64 {
    let f = |ln_t: f64| f(ln_t.exp());
    let (lo, hi) = (MIN_TEMPERATURE.ln(), MAX_TEMPERATURE.ln());
    const GRID: usize = 80;
    let step = (hi - lo) / GRID as f64;
    let values: Vec<f64> = (0..=GRID).map(|k| f(lo + k as f64 * step)).collect();
    let best = values.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1)).map(|(k, _)| k).unwrap_or(GRID / 2);
    let a = lo + best.saturating_sub(1) as f64 * step;
    let b = lo + (best + 1).min(GRID) as f64 * step;
    golden_section(f, a, b, 1e-7).exp()
}

/// Minimum of a unimodal `f` on `[a, b]` (golden-section search, to `tol` in x).
fn golden_section(f: impl Fn(f64) -> f64, mut a: f64, mut b: f64, tol: f64) -> f64 {
    let inv_phi = (5f64.sqrt() - 1.0) / 2.0;
    let mut c = b - inv_phi * (b - a);
    let mut d = a + inv_phi * (b - a);
    let (mut fc, mut fd) = (f(c), f(d));
    while (b - a).abs() > tol {
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - inv_phi * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + inv_phi * (b - a);
            fd = f(d);
        }
    }
    (a + b) / 2.0
}

/// Mean over texts with a gold label of `-ln sum_{g in gold} softmax(score / T)_g`.
pub fn softmax_nll(scores: &[Vec<f32>], gold: &[Vec<usize>], temperature: f64) -> f64 {
    let mut total = 0.0;
    let mut n = 0usize;
    for (row, g) in scores.iter().zip(gold) {
        if g.is_empty() || row.is_empty() {
            continue;
        }
        let z: Vec<f64> = row.iter().map(|&s| s as f64 / temperature).collect();
        let all = log_sum_exp(z.iter().copied());
        let gold_mass = log_sum_exp(g.iter().map(|&j| z[j]));
        total += all - gold_mass;
        n += 1;
    }
    if n == 0 {
        0.0
    } else {
        total / n as f64
    }
}

fn log_sum_exp(xs: impl Iterator<Item = f64> + Clone) -> f64 {
    let max = xs.clone().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + xs.map(|x| (x - max).exp()).sum::<f64>().ln()
}

/// Platt scaling of every (text, label) pair: the `(T, b)` minimising the binary cross-entropy of
/// `sigmoid(score / T + b)` against "label is gold", with Platt's smoothed targets
/// `(N+ + 1) / (N+ + 2)` and `1 / (N- + 2)`. Newton's method on (1/T, b) (the loss is convex
/// there) with a backtracking line search.
pub fn fit_sigmoid(scores: &[Vec<f32>], gold: &[Vec<usize>]) -> Result<(f64, f64), CalibrationError> {
    check_shapes(scores, gold)?;
    let mut pairs: Vec<(f64, bool)> = Vec::new();
    for (row, g) in scores.iter().zip(gold) {
        if g.is_empty() {
            continue;
        }
        for (j, &s) in row.iter().enumerate() {
            pairs.push((s as f64, g.contains(&j)));
        }
    }
    let n_pos = pairs.iter().filter(|p| p.1).count();
    let n_neg = pairs.len() - n_pos;
    if n_pos == 0 {
        return Err(CalibrationError::NoGold);
    }
    if n_neg == 0 {
        return Err(CalibrationError::OneClass("gold"));
    }
    let t_pos = (n_pos as f64 + 1.0) / (n_pos as f64 + 2.0);
    let t_neg = 1.0 / (n_neg as f64 + 2.0);
    // Mean loss, so that tolerances do not depend on the number of pairs.
    let loss = |a: f64, b: f64| -> f64 {
        pairs
            .iter()
            .map(|&(s, y)| {
                let t = if y { t_pos } else { t_neg };
                let z = a * s + b;
                // -(t ln sigmoid(z) + (1-t) ln(1 - sigmoid(z))) = softplus(z) - t z
                softplus(z) - t * z
            })
            .sum::<f64>()
            / pairs.len() as f64
    };
    let prior = (n_pos as f64 + 1.0) / (pairs.len() as f64 + 2.0);
    let (mut a, mut b) = (0.0f64, (prior / (1.0 - prior)).ln());
    let mut current = loss(a, b);
    for _ in 0..100 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for &(s, y) in &pairs {
            let t = if y { t_pos } else { t_neg };
            let p = sigmoid_f64(a * s + b);
            let r = p - t;
            let w = (p * (1.0 - p)).max(1e-12);
            ga += r * s;
            gb += r;
            haa += w * s * s;
            hab += w * s;
            hbb += w;
        }
        let n = pairs.len() as f64;
        let (ga, gb, haa, hab, hbb) = (ga / n, gb / n, haa / n + 1e-12, hab / n, hbb / n + 1e-12);
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-300 {
            break;
        }
        let da = -(hbb * ga - hab * gb) / det;
        let db = -(haa * gb - hab * ga) / det;
        let mut step = 1.0;
        let mut improved = false;
        while step > 1e-10 {
            let (na, nb) = (a + step * da, b + step * db);
            let l = loss(na, nb);
            if l <= current {
                let gain = current - l;
                a = na;
                b = nb;
                current = l;
                improved = gain > 1e-15;
                break;
            }
            step /= 2.0;
        }
        if !improved || (ga.abs() < 1e-10 && gb.abs() < 1e-10) {
            break;
        }
    }
    // 1/a below the searched temperature range would be a non-positive or absurdly flat slope.
    if !(a.is_finite() && a > 1.0 / MAX_TEMPERATURE && b.is_finite()) {
        return Err(CalibrationError::NoSignal { slope: a });
    }
    Ok(((1.0 / a).max(MIN_TEMPERATURE), b))
}

fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

/// `1 / (1 + e^-x)` without overflow.
pub fn sigmoid_f64(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `softmax(score / T)` of one row, computed in f64 (the maximum subtracted first).
pub fn softmax_with_temperature(scores: &[f32], temperature: f64) -> Vec<f32> {
    if scores.is_empty() {
        return Vec::new();
    }
    let z: Vec<f64> = scores.iter().map(|&s| s as f64 / temperature).collect();
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|&x| if max.is_finite() { (x - max).exp() } else { 1.0 }).collect();
    let total: f64 = e.iter().sum();
    e.iter().map(|&x| (x / total) as f32).collect()
}

/// Expected calibration error (Guo et al. 2017, eq. 3): `(confidence, correct)` pairs binned by
/// confidence into `bins` equal-width bins of [0, 1]; the mean over bins of
/// `|accuracy - mean confidence|`, weighted by the share of pairs in the bin.
pub fn expected_calibration_error(pairs: &[(f64, bool)], bins: usize) -> f64 {
    if pairs.is_empty() || bins == 0 {
        return 0.0;
    }
    let mut count = vec![0usize; bins];
    let mut conf = vec![0.0f64; bins];
    let mut hits = vec![0usize; bins];
    for &(p, correct) in pairs {
        let p = if p.is_finite() { p.clamp(0.0, 1.0) } else { 0.0 };
        let k = ((p * bins as f64) as usize).min(bins - 1);
        count[k] += 1;
        conf[k] += p;
        hits[k] += correct as usize;
    }
    let n = pairs.len() as f64;
    (0..bins)
        .filter(|&k| count[k] > 0)
        .map(|k| {
            let c = count[k] as f64;
            (c / n) * (hits[k] as f64 / c - conf[k] / c).abs()
        })
        .sum()
}

/// ECE of the top-1 prediction: confidence = the top label's probability (`probs` maps a score
/// row to probabilities), correct = the top label is gold. Texts without gold are skipped.
pub fn top1_ece(scores: &[Vec<f32>], gold: &[Vec<usize>], probs: impl Fn(&[f32]) -> Vec<f32>) -> f64 {
    let pairs: Vec<(f64, bool)> = scores
        .iter()
        .zip(gold)
        .filter(|(row, g)| !g.is_empty() && !row.is_empty())
        .map(|(row, g)| {
            let p = probs(row);
            let top = crate::metrics::top_k_indices(row, 1)[0];
            (p[top] as f64, g.contains(&top))
        })
        .collect();
    expected_calibration_error(&pairs, ECE_BINS)
}

/// ECE over every (text, label) pair: confidence = the pair's probability, correct = the label is
/// gold (the multi-label reading). Texts without gold are skipped.
pub fn pairwise_ece(scores: &[Vec<f32>], gold: &[Vec<usize>], prob: impl Fn(f32) -> f32) -> f64 {
    let mut pairs = Vec::new();
    for (row, g) in scores.iter().zip(gold) {
        if g.is_empty() {
            continue;
        }
        for (j, &s) in row.iter().enumerate() {
            pairs.push((prob(s) as f64, g.contains(&j)));
        }
    }
    expected_calibration_error(&pairs, ECE_BINS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn uniform(rng: &mut SplitMix64) -> f64 {
        (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Scores drawn so that softmax(score / T_true) is the true label distribution: the gold label
    /// of each text is sampled from it. The fitted temperature must come back near T_true.
    fn synthetic_single_label(t_true: f64, n: usize, labels: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<Vec<usize>>) {
        let mut rng = SplitMix64::new(seed);
        let mut scores = Vec::new();
        let mut gold = Vec::new();
        for _ in 0..n {
            let row: Vec<f32> = (0..labels).map(|_| (uniform(&mut rng) * 6.0 * t_true) as f32).collect();
            let p = softmax_with_temperature(&row, t_true);
            let u = uniform(&mut rng);
            let mut acc = 0.0;
            let mut pick = labels - 1;
            for (j, &pj) in p.iter().enumerate() {
                acc += pj as f64;
                if u < acc {
                    pick = j;
                    break;
                }
            }
            scores.push(row);
            gold.push(vec![pick]);
        }
        (scores, gold)
    }

    #[test]
    fn temperature_is_recovered() {
        for t_true in [0.05, 1.0, 8.0] {
            let (scores, gold) = synthetic_single_label(t_true, 4000, 6, 7);
            let t = fit_temperature(&scores, &gold).unwrap();
            assert!((t / t_true - 1.0).abs() < 0.1, "fitted {t}, true {t_true}");
            // fitted is at least as good as the truth on its own data (by its objective), and calibrated
            let top1 = Top1::new(&scores, &gold);
            assert!(top1.log_loss(t) <= top1.log_loss(t_true) + 1e-9);
            let ece = top1_ece(&scores, &gold, |r| softmax_with_temperature(r, t));
            assert!(ece < 0.03, "ece {ece} at T {t}");
        }
    }

    #[test]
    fn both_objectives_recover_a_true_temperature() {
        let (scores, gold) = synthetic_single_label(3.0, 4000, 8, 5);
        let top1 = fit_temperature(&scores, &gold).unwrap();
        let nll = fit_temperature_nll(&scores, &gold).unwrap();
        assert!((top1 / 3.0 - 1.0).abs() < 0.15 && (nll / 3.0 - 1.0).abs() < 0.1, "top-1 {top1}, nll {nll}");
        // the top-1 fit is the better one by its own measure, the NLL fit by its
        let t = Top1::new(&scores, &gold);
        assert!(t.log_loss(top1) <= t.log_loss(nll) + 1e-12);
        assert!(softmax_nll(&scores, &gold, nll) <= softmax_nll(&scores, &gold, top1) + 1e-12);
    }

    #[test]
    fn hand_computed_top1_log_loss() {
        // scores [0, ln 3], T = 1: p_top = 3/4; gold = top -> -ln(3/4); gold = other -> -ln(1/4)
        let scores = vec![vec![0.0f32, 3f32.ln()]];
        let right = Top1::new(&scores, &[vec![1]]);
        assert!((right.log_loss(1.0) - (4.0f64 / 3.0).ln()).abs() < 1e-6);
        let wrong = Top1::new(&scores, &[vec![0]]);
        assert!((wrong.log_loss(1.0) - 4f64.ln()).abs() < 1e-6);
    }

    #[test]
    fn hand_computed_nll() {
        // one text, scores [0, ln 3] at T = 1: softmax = [1/4, 3/4]; gold 1 -> -ln(3/4)
        let scores = vec![vec![0.0f32, 3f32.ln()]];
        assert!((softmax_nll(&scores, &[vec![1]], 1.0) - (4.0f64 / 3.0).ln()).abs() < 1e-6);
        // both gold: all the mass -> 0
        assert!(softmax_nll(&scores, &[vec![0, 1]], 1.0).abs() < 1e-9);
        // a text without gold is skipped
        assert!((softmax_nll(&[scores[0].clone(), vec![5.0, 1.0]], &[vec![1], vec![]], 1.0) - (4.0f64 / 3.0).ln()).abs() < 1e-6);
        let p = softmax_with_temperature(&[0.0, 3f32.ln()], 1.0);
        assert!((p[0] - 0.25).abs() < 1e-6 && (p[1] - 0.75).abs() < 1e-6);
        // T = 2 halves the logits: [1, sqrt 3] / (1 + sqrt 3)
        let p = softmax_with_temperature(&[0.0, 3f32.ln()], 2.0);
        assert!((p[1] as f64 - 3f64.sqrt() / (1.0 + 3f64.sqrt())).abs() < 1e-6);
    }

    /// Pairs whose gold indicator is drawn from sigmoid(score / T + b): Platt scaling recovers (T, b).
    #[test]
    fn platt_parameters_are_recovered() {
        let (t_true, b_true) = (4.0, -3.0);
        let mut rng = SplitMix64::new(11);
        let mut scores = Vec::new();
        let mut gold = Vec::new();
        for _ in 0..3000 {
            let row: Vec<f32> = (0..5).map(|_| (uniform(&mut rng) * 30.0 - 5.0) as f32).collect();
            let g: Vec<usize> = (0..5).filter(|&j| uniform(&mut rng) < sigmoid_f64(row[j] as f64 / t_true + b_true)).collect();
            scores.push(row);
            gold.push(g);
        }
        let (t, b) = fit_sigmoid(&scores, &gold).unwrap();
        assert!((t / t_true - 1.0).abs() < 0.1, "T {t}");
        assert!((b - b_true).abs() < 0.3, "b {b}");
        let ece = pairwise_ece(&scores, &gold, |s| sigmoid_f64(s as f64 / t + b) as f32);
        assert!(ece < 0.02, "{ece}");
    }

    #[test]
    fn separable_data_stays_finite() {
        // gold always scores 10, others 0: perfectly separable; Platt's targets keep the slope finite
        let scores: Vec<Vec<f32>> = (0..50).map(|_| vec![10.0, 0.0, 0.0]).collect();
        let gold: Vec<Vec<usize>> = (0..50).map(|_| vec![0]).collect();
        let (t, b) = fit_sigmoid(&scores, &gold).unwrap();
        assert!(t.is_finite() && t > 0.0 && b.is_finite(), "{t} {b}");
        let p_gold = sigmoid_f64(10.0 / t + b);
        let p_other = sigmoid_f64(b);
        assert!(p_gold > 0.9 && p_other < 0.1, "{p_gold} {p_other}");
        let t1 = fit_temperature(&scores, &gold).unwrap();
        assert!(t1 >= MIN_TEMPERATURE && t1.is_finite());
    }

    #[test]
    fn ece_by_hand() {
        // bin of 0.9 (2 pairs, 1 correct): |0.5 - 0.9| * 2/4; bin of 0.2 (2 pairs, 0 correct): |0 - 0.2| * 2/4
        let pairs = [(0.9, true), (0.9, false), (0.2, false), (0.2, false)];
        assert!((expected_calibration_error(&pairs, 15) - (0.4 * 0.5 + 0.2 * 0.5)).abs() < 1e-12);
        // p = 1.0 falls in the last bin, not out of range
        assert!(expected_calibration_error(&[(1.0, true)], 15).abs() < 1e-12);
        assert_eq!(expected_calibration_error(&[], 15), 0.0);
    }

    #[test]
    fn fit_reports_and_errors() {
        let (scores, gold) = synthetic_single_label(2.0, 500, 4, 3);
        let fit = fit_calibration(&scores, &gold).unwrap();
        assert!(fit.nll_after <= fit.nll_before + 1e-12);
        assert_eq!(fit.n_used, 500);
        let c = &fit.calibration;
        c.validate().unwrap();
        assert!(c.ece.unwrap() < c.ece_before.unwrap());
        assert_eq!((c.n_texts, c.n_labels), (500, 4));
        let p = c.single_label(&scores[0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);

        assert!(matches!(fit_calibration(&scores, &vec![vec![]; 500]), Err(CalibrationError::NoGold)));
        assert!(matches!(fit_calibration(&scores, &gold[..3]), Err(CalibrationError::Shape(_))));
        assert!(matches!(fit_calibration(&[vec![1.0]], &[vec![4]]), Err(CalibrationError::Shape(_))));
        assert!(matches!(fit_calibration(&[vec![f32::NAN, 1.0]], &[vec![0]]), Err(CalibrationError::NonFinite { .. })));
        // gold scored lowest everywhere: no positive slope exists
        let inverted: Vec<Vec<f32>> = (0..40).map(|i| vec![-5.0 - (i % 3) as f32, 5.0, 4.0]).collect();
        assert!(matches!(fit_sigmoid(&inverted, &vec![vec![0]; 40]), Err(CalibrationError::NoSignal { .. })));
    }

    #[test]
    fn checkpoint_file_round_trip_and_validation() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(Calibration::load_from_checkpoint(d.path()).unwrap(), None);
        let c = Calibration {
            temperature: 0.5,
            multi_label_temperature: 2.0,
            multi_label_bias: -1.0,
            data: Some("data/train.json".into()),
            split: Some("val".into()),
            n_texts: 10,
            n_labels: 3,
            ece_before: None,
            ece: Some(0.01),
            multi_label_ece: None,
        };
        c.save_to_checkpoint(d.path()).unwrap();
        assert_eq!(Calibration::load_from_checkpoint(d.path()).unwrap(), Some(c.clone()));
        assert!((c.multi_label(2.0) as f64 - sigmoid_f64(0.0)).abs() < 1e-7);
        let bad = Calibration { temperature: 0.0, ..c };
        assert!(bad.validate().unwrap_err().to_string().contains("calibration.temperature"));
        std::fs::write(
            d.path().join(CHECKPOINT_CALIBRATION_FILE),
            r#"{"temperature": -1, "multi_label_temperature": 1, "multi_label_bias": 0}"#,
        )
        .unwrap();
        assert!(Calibration::load_from_checkpoint(d.path()).unwrap_err().to_string().contains("temperature"));
    }
}
