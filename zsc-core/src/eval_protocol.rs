//! Evaluation protocol helpers of `zsc eval` (and anything else that evaluates): restricting an evaluated split to the texts of
//! another data file, and tuning the decision threshold for the best micro-F1.
//!
//! Thresholds are found and applied on the raw scores (logits). `score > t` is the same decision
//! as `sigmoid(score) > sigmoid(t)`, but an untuned bi-encoder's dot products are often far above
//! 20, where sigmoid saturates to exactly 1.0 in f32 and every probability threshold would tie.

use std::collections::{BTreeSet, HashSet};

use crate::data::Sample;
use crate::metrics::EvalReport;
use serde::{Deserialize, Serialize};

/// `zsc eval --json`: the plain [`EvalReport`] fields, plus optional protocol fields (absent
/// unless the matching option was given, so the JSON still reads as an `EvalReport`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtocolReport {
    #[serde(flatten)]
    pub report: EvalReport,
    /// `--restrict-to FILE`: only texts that occur in FILE were evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restricted_to: Option<String>,
    /// `--labels-from FILE`: the candidate labels came from FILE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels_from: Option<String>,
    /// Decision threshold as a probability (`sigmoid(threshold_logit)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Decision threshold on the raw score (logit); a pair is predicted when `score > threshold_logit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_logit: Option<f64>,
    /// Where the threshold came from: `val` (tuned for micro-F1 on the val split) or `given`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold_source: Option<String>,
    /// Micro-F1 on the val split at the tuned threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_micro_f1: Option<f64>,
    /// Micro-F1 of the evaluated split at the threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub micro_f1: Option<f64>,
    /// Macro-F1 (over labels with at least one gold text) of the evaluated split at the threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macro_f1: Option<f64>,
    /// Whether the bundle has a calibration (else the probabilities below are sigmoid(score)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibrated: Option<bool>,
    /// Expected calibration error (15 bins) of the top-1 label's single-label probability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ece: Option<f64>,
    /// Expected calibration error (15 bins) of the multi-label probability over all (text, label) pairs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_label_ece: Option<f64>,
}

impl ProtocolReport {
    /// A report with only the plain fields.
    pub fn new(report: EvalReport) -> Self {
        Self {
            report,
            restricted_to: None,
            labels_from: None,
            threshold: None,
            threshold_logit: None,
            threshold_source: None,
            val_micro_f1: None,
            micro_f1: None,
            macro_f1: None,
            calibrated: None,
            ece: None,
            multi_label_ece: None,
        }
    }
}

/// What `--restrict-to FILE` matches on: a sample's text and its set of labels.
pub type SampleKey = (String, BTreeSet<String>);

/// The key of one sample.
pub fn sample_key(s: &Sample) -> SampleKey {
    (s.text.clone(), s.labels.iter().cloned().collect())
}

/// Keep only the samples that also occur in `keep` with the same text and the same labels (order
/// kept). Matching labels too matters: a few short texts ("no idea", "thanks a lot") are in both
/// CLINC150 and NLU++ with different labels, and only the NLU++ ones belong to an NLU++ restriction.
pub fn restrict_to_samples(samples: Vec<Sample>, keep: &HashSet<SampleKey>) -> Vec<Sample> {
    samples.into_iter().filter(|s| keep.contains(&sample_key(s))).collect()
}

/// The score threshold `t` (predict a pair when `score > t`) with the best micro-F1 over all
/// (text, label) pairs, and that F1. `scores[i][j]` is text i against label j, `gold[i]` text i's
/// gold label indices. Exact: sweeps every distinct score as a cut; `t` is the midpoint between
/// the lowest predicted score and the next lower one. Ties in F1 keep the higher threshold
/// (fewer predictions). Returns `None` when there are no scores or no gold pairs.
pub fn best_micro_f1_threshold(scores: &[Vec<f32>], gold: &[Vec<usize>]) -> Option<(f32, f64)> {
    let mut pairs: Vec<(f32, bool)> = Vec::new();
    for (row, g) in scores.iter().zip(gold) {
        for (j, &v) in row.iter().enumerate() {
            if v.is_finite() {
                pairs.push((v, g.contains(&j)));
            }
        }
    }
    let positives = pairs.iter().filter(|p| p.1).count();
    if pairs.is_empty() || positives == 0 {
        return None;
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut best: Option<(f32, f64)> = None;
    let mut i = 0;
    while i < pairs.len() {
        // take the whole group of equal scores: a threshold cannot split it
        let v = pairs[i].0;
        while i < pairs.len() && pairs[i].0 == v {
            if pairs[i].1 {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        let fn_ = positives - tp;
        let f1 = 2.0 * tp as f64 / (2 * tp + fp + fn_) as f64;
        let threshold = match pairs.get(i) {
            Some(&(next, _)) => {
                let mid = v / 2.0 + next / 2.0;
                // f32 rounding can land the midpoint on `v` itself when the two are adjacent
                if mid < v {
                    mid
                } else {
                    next
                }
            }
            None => v - v.abs().max(1.0),
        };
        if best.is_none_or(|(_, b)| f1 > b) {
            best = Some((threshold, f1));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::f1_at_threshold;

    #[test]
    fn hand_computed_threshold() {
        // pairs sorted: 0.9 (gold), 0.8 (not), 0.7 (gold), 0.2 (not), 0.1 (gold), 0.0 (not)
        let scores = vec![vec![0.9, 0.8, 0.1], vec![0.7, 0.2, 0.0]];
        let gold = vec![vec![0, 2], vec![0]];
        // cut after 0.9: tp1 fp0 fn2 -> 2/5; after 0.8: tp1 fp1 fn2 -> 2/6; after 0.7: tp2 fp1 fn1 -> 4/6;
        // after 0.2: tp2 fp2 fn1 -> 4/7; after 0.1: tp3 fp2 -> 6/8; all: tp3 fp3 -> 6/9
        let (t, f1) = best_micro_f1_threshold(&scores, &gold).unwrap();
        assert!((f1 - 0.75).abs() < 1e-12);
        assert!((t - 0.05).abs() < 1e-6, "threshold {t}");
        let (micro, _) = f1_at_threshold(&scores, &gold, 3, t);
        assert!((micro - f1).abs() < 1e-12);
    }

    #[test]
    fn agrees_with_a_brute_force_search_on_saturating_logits() {
        let mut rng = crate::rng::SplitMix64::new(3);
        let scores: Vec<Vec<f32>> =
            (0..20).map(|_| (0..7).map(|_| 20.0 + (rng.next_u64() % 1000) as f32 / 100.0).collect()).collect();
        let gold: Vec<Vec<usize>> = (0..20).map(|i| vec![i % 7, (i * 3) % 7]).collect();
        let (t, f1) = best_micro_f1_threshold(&scores, &gold).unwrap();
        let (micro, _) = f1_at_threshold(&scores, &gold, 7, t);
        assert!((micro - f1).abs() < 1e-12);
        let brute = scores.iter().flatten().map(|&c| f1_at_threshold(&scores, &gold, 7, c - 1e-4).0).fold(0.0f64, f64::max);
        assert!((brute - f1).abs() < 1e-12, "sweep {f1} vs brute force {brute}");
    }

    #[test]
    fn ties_are_never_split_and_no_gold_gives_none() {
        let scores = vec![vec![1.0, 1.0], vec![1.0, 0.0]];
        let gold = vec![vec![0], vec![]];
        let (t, f1) = best_micro_f1_threshold(&scores, &gold).unwrap();
        // the three 1.0 pairs go together: tp1 fp2 -> 2/4 (the only cut above 0.0 beats all: 2/5)
        assert!((f1 - 0.5).abs() < 1e-12);
        assert!(t < 1.0 && t > 0.0);
        assert!(best_micro_f1_threshold(&scores, &[vec![], vec![]]).is_none());
        assert!(best_micro_f1_threshold(&[], &[]).is_none());
    }

    #[test]
    fn restriction_keeps_only_listed_samples_in_order() {
        let s = |t: &str, l: &[&str]| Sample { text: t.into(), labels: l.iter().map(|x| x.to_string()).collect(), source: None };
        let keep: HashSet<SampleKey> = [s("b", &["x"]), s("c", &["y", "x"]), s("d", &["z"])].iter().map(sample_key).collect();
        let out = restrict_to_samples(vec![s("a", &["x"]), s("c", &["x", "y"]), s("b", &["x"]), s("d", &["x"])], &keep);
        // label order does not matter; the same text with other labels ("d") is dropped
        assert_eq!(out, vec![s("c", &["x", "y"]), s("b", &["x"])]);
    }

    #[test]
    fn report_json_reads_as_a_plain_eval_report() {
        let base = EvalReport { split: "test".into(), n_texts: 2, n_labels: 3, top1_accuracy: 0.5, accuracy_at_k: 0.25 };
        let plain = serde_json::to_string(&ProtocolReport::new(base.clone())).unwrap();
        assert_eq!(plain, serde_json::to_string(&base).unwrap());
        let mut r = ProtocolReport::new(base.clone());
        r.micro_f1 = Some(0.4);
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"micro_f1\":0.4"));
        let back: EvalReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, base);
        let round: ProtocolReport = serde_json::from_str(&json).unwrap();
        assert_eq!(round, r);
    }
}
