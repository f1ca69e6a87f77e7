//! Evaluation: every text scored against all unique labels.
//! - `top1_accuracy`: share of texts whose best-scoring label is one of their gold labels.
//! - `accuracy_at_k`: per text, k = number of gold labels, the share of gold labels among the
//!   top k; averaged over texts (equals top-1 accuracy for single-label data).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub split: String,
    pub n_texts: usize,
    pub n_labels: usize,
    pub top1_accuracy: f64,
    pub accuracy_at_k: f64,
}

/// Indices of the `k` highest scores, best first (ties broken by lower index; NaN ranks last).
pub fn top_k_indices(scores: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| {
        let (x, y) = (scores[a], scores[b]);
        match (x.is_nan(), y.is_nan()) {
            (true, true) => a.cmp(&b),
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ => y.partial_cmp(&x).unwrap_or(std::cmp::Ordering::Equal).then(a.cmp(&b)),
        }
    });
    idx.truncate(k);
    idx
}

/// `scores[i]` holds text i's scores against all labels; `gold[i]` its gold label indices.
/// Returns (top1_accuracy, accuracy_at_k).
pub fn accuracy(scores: &[Vec<f32>], gold: &[Vec<usize>]) -> (f64, f64) {
    assert_eq!(scores.len(), gold.len());
    if scores.is_empty() {
        return (0.0, 0.0);
    }
    let mut top1 = 0.0;
    let mut at_k = 0.0;
    for (s, g) in scores.iter().zip(gold) {
        let k = g.len().max(1);
        let top = top_k_indices(s, k);
        if top.first().is_some_and(|b| g.contains(b)) {
            top1 += 1.0;
        }
        at_k += top.iter().filter(|i| g.contains(i)).count() as f64 / k as f64;
    }
    let n = scores.len() as f64;
    (top1 / n, at_k / n)
}

/// Micro and macro F1 of multi-label predictions `score > threshold`.
pub fn f1_at_threshold(scores: &[Vec<f32>], gold: &[Vec<usize>], n_labels: usize, threshold: f32) -> (f64, f64) {
    let (mut tp, mut fp, mut fn_) = (vec![0usize; n_labels], vec![0usize; n_labels], vec![0usize; n_labels]);
    for (s, g) in scores.iter().zip(gold) {
        for (j, &v) in s.iter().enumerate() {
            let pred = v > threshold;
            let is_gold = g.contains(&j);
            match (pred, is_gold) {
                (true, true) => tp[j] += 1,
                (true, false) => fp[j] += 1,
                (false, true) => fn_[j] += 1,
                _ => {}
            }
        }
    }
    let f1 = |tp: usize, fp: usize, fn_: usize| {
        let d = 2 * tp + fp + fn_;
        if d == 0 {
            0.0
        } else {
            2.0 * tp as f64 / d as f64
        }
    };
    let micro = f1(tp.iter().sum(), fp.iter().sum(), fn_.iter().sum());
    let present: Vec<usize> = (0..n_labels).filter(|&j| tp[j] + fn_[j] > 0).collect();
    let macro_ = if present.is_empty() {
        0.0
    } else {
        present.iter().map(|&j| f1(tp[j], fp[j], fn_[j])).sum::<f64>() / present.len() as f64
    };
    (micro, macro_)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_accuracy() {
        let scores = vec![vec![0.9, 0.1, 0.5], vec![0.2, 0.8, 0.7], vec![0.3, 0.2, 0.1]];
        let gold = vec![vec![0], vec![2, 1], vec![1, 2]];
        let (t1, ak) = accuracy(&scores, &gold);
        // text0: top1 hit, 1/1; text1: top1=1 hit, top2={1,2} 2/2; text2: top1=0 miss, top2={0,1} 1/2
        assert!((t1 - 2.0 / 3.0).abs() < 1e-12);
        assert!((ak - (1.0 + 1.0 + 0.5) / 3.0).abs() < 1e-12);
    }

    #[test]
    fn nan_ranks_last() {
        assert_eq!(top_k_indices(&[f32::NAN, 0.1, 0.3], 3), vec![2, 1, 0]);
    }

    #[test]
    fn f1() {
        let scores = vec![vec![0.9, 0.9], vec![0.1, 0.9]];
        let gold = vec![vec![0], vec![1]];
        let (micro, macro_) = f1_at_threshold(&scores, &gold, 2, 0.5);
        // tp=2 fp=1 fn=0 -> 4/5 ; label0 f1=1, label1 tp=1 fp=1 -> 2/3
        assert!((micro - 0.8).abs() < 1e-12);
        assert!((macro_ - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
    }
}
