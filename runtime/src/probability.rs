//! From scores to probabilities, with the bundle's calibration when it has one
//! (`zsc_core::calibration`, written by `zsc calibrate` or by the trainer).
//!
//! - single-label: `softmax(score / T)` over the candidate labels (they sum to 1);
//! - multi-label: `sigmoid(score / T_ml + b)` for each label on its own.
//!
//! Without a calibration both are the uncalibrated `sigmoid(score)` of earlier versions, and
//! [`Probabilities::is_calibrated`] says so: for a model trained with the softmax loss that number
//! orders labels but is not a confidence.

use zsc_core::calibration::Calibration;

use crate::scoring::sigmoid;

/// One label of a text's ranking.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Prediction {
    /// The label, as given.
    pub label: String,
    /// The raw score (logit): what the model computes, comparable within one text.
    pub score: f32,
    /// The probability: with the bundle's calibration (`zsc calibrate`) single-label
    /// `softmax(score / T)` over the candidates or multi-label `sigmoid(score / T + b)`; without
    /// one the uncalibrated `sigmoid(score)` (see [`crate::Probabilities`]).
    pub probability: f32,
}

impl Prediction {
    /// A prediction from its parts.
    pub fn new(label: impl Into<String>, score: f32, probability: f32) -> Self {
        Prediction { label: label.into(), score, probability }
    }
}

/// How the candidate labels of one text relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProbabilityMode {
    /// Exactly one label applies: probabilities over the candidates sum to 1.
    #[default]
    SingleLabel,
    /// Any number of labels apply: one independent probability per label.
    MultiLabel,
}

/// Turns score rows into probabilities for one bundle ([`crate::Classifier::probability`]).
///
/// ```no_run
/// # fn main() -> zsc::Result<()> {
/// let clf = zsc::Classifier::from_dir("bundles/minilm", zsc::ClassifierOptions::default())?;
/// let labels = ["alarm", "weather"];
/// let scores = clf.scores(&["will it rain"], &labels)?;
/// let p = clf.probability(zsc::ProbabilityMode::MultiLabel);
/// println!("{} {:?}", p.describe(labels.len()), p.of_row(&scores[0]));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Probabilities<'a> {
    calibration: Option<&'a Calibration>,
    mode: ProbabilityMode,
}

impl<'a> Probabilities<'a> {
    /// Probabilities in `mode` with `calibration` (none: the uncalibrated `sigmoid(score)`).
    pub fn new(calibration: Option<&'a Calibration>, mode: ProbabilityMode) -> Self {
        Probabilities { calibration, mode }
    }

    /// Whether a calibration is applied.
    pub fn is_calibrated(&self) -> bool {
        self.calibration.is_some()
    }

    /// Single- or multi-label.
    pub fn mode(&self) -> ProbabilityMode {
        self.mode
    }

    /// Probabilities of one text's scores against all its candidate labels (same order).
    pub fn of_row(&self, scores: &[f32]) -> Vec<f32> {
        match (self.calibration, self.mode) {
            (Some(c), ProbabilityMode::SingleLabel) => c.single_label(scores),
            (Some(c), ProbabilityMode::MultiLabel) => scores.iter().map(|&s| c.multi_label(s)).collect(),
            (None, _) => scores.iter().map(|&s| sigmoid(s)).collect(),
        }
    }

    /// The `k` best labels of one score row, best first, with their probabilities (computed over
    /// all candidates before the cut, so single-label probabilities still sum to 1 over the row).
    pub fn rank(&self, scores: &[f32], labels: &[String], k: usize) -> Vec<Prediction> {
        let p = self.of_row(scores);
        zsc_core::metrics::top_k_indices(scores, k)
            .into_iter()
            .map(|j| Prediction { label: labels[j].clone(), score: scores[j], probability: p[j] })
            .collect()
    }

    /// One line saying what the probabilities are, for command-line output.
    pub fn describe(&self, n_labels: usize) -> String {
        match (self.calibration, self.mode) {
            (Some(c), ProbabilityMode::SingleLabel) => {
                format!("p = softmax(score / {:.4}) over the {n_labels} labels (calibrated{})", c.temperature, fitted_on(c))
            }
            (Some(c), ProbabilityMode::MultiLabel) => format!(
                "p = sigmoid(score / {:.4} {:+.4}) per label (calibrated{})",
                c.multi_label_temperature,
                c.multi_label_bias,
                fitted_on(c)
            ),
            (None, _) => "p = sigmoid(score), UNCALIBRATED (orders labels, is not a confidence): run `zsc calibrate`".into(),
        }
    }
}

fn fitted_on(c: &Calibration) -> String {
    match (&c.data, &c.split) {
        (Some(d), Some(s)) => format!(" on the {s} split of {d}"),
        (Some(d), None) => format!(" on {d}"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calibration() -> Calibration {
        Calibration {
            temperature: 2.0,
            multi_label_temperature: 4.0,
            multi_label_bias: -1.0,
            data: Some("d.json".into()),
            split: Some("val".into()),
            n_texts: 1,
            n_labels: 3,
            ece_before: None,
            ece: None,
            multi_label_ece: None,
        }
    }

    #[test]
    fn modes() {
        let c = calibration();
        let scores = [2.0f32, 0.0, 4.0];
        let labels: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let single = Probabilities::new(Some(&c), ProbabilityMode::SingleLabel);
        let p = single.of_row(&scores);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        // softmax([1, 0, 2])
        let z = 1f32.exp() + 1.0 + 2f32.exp();
        assert!((p[2] - 2f32.exp() / z).abs() < 1e-6);
        let top = single.rank(&scores, &labels, 2);
        assert_eq!(top.iter().map(|l| l.label.as_str()).collect::<Vec<_>>(), ["c", "a"]);
        assert!((top[0].probability - p[2]).abs() < 1e-7, "probabilities come from the full row");
        assert!(single.describe(3).contains("softmax(score / 2.0000) over the 3 labels (calibrated on the val split of d.json)"));

        let multi = Probabilities::new(Some(&c), ProbabilityMode::MultiLabel);
        assert!((multi.of_row(&scores)[2] - sigmoid(0.0)).abs() < 1e-7); // 4/4 - 1 = 0

        let raw = Probabilities::new(None, ProbabilityMode::SingleLabel);
        assert!(!raw.is_calibrated());
        assert_eq!(raw.of_row(&scores), scores.iter().map(|&s| sigmoid(s)).collect::<Vec<_>>());
        assert!(raw.describe(3).contains("UNCALIBRATED"));
    }
}
