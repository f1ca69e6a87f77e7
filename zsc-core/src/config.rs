//! The settings that travel with a model (model type, similarity, ColBERT scoring, split ratios)
//! and the label template. The training config (`config.yml`) is the trainer's (`zsc_trainer::config`).

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelType {
    BiEncoder,
    PolyEncoder,
    Colbert,
}

/// How a BiEncoder or PolyEncoder compares a text vector with a label vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Similarity {
    /// Dot product (the base model's own geometry; label vectors with a large norm win more often).
    #[default]
    Dot,
    /// Cosine of the two vectors times a learnable scale (the softmax's inverse temperature,
    /// tensor `cosine.score_scale`, initialised by the trainer).
    Cosine,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxSimDirection {
    /// For each label token its best text token, averaged over the label's tokens (the label is
    /// ColBERT's query; what bundles without the setting mean). Labels have 1-4 tokens, so one
    /// lucky token can decide.
    #[default]
    LabelToText,
    /// For each text token its best label token, averaged over the text's tokens.
    TextToLabel,
    /// The mean of both directions.
    Symmetric,
}

/// Which sides keep the special tokens the tokenizer wraps every sequence in (`[CLS]`...`[SEP]`,
/// `<s>`...`</s>`) when ColBERT scores: the first and the last real token of each sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpecialTokenSides {
    /// Both sides keep them (what bundles without the setting mean).
    #[default]
    Both,
    /// Only texts keep them.
    Text,
    /// Only labels keep them.
    Label,
    /// Neither side: MaxSim over content tokens only.
    #[serde(rename = "none")]
    Neither,
}

impl SpecialTokenSides {
    /// Whether texts keep their special tokens.
    pub fn text(self) -> bool {
        matches!(self, SpecialTokenSides::Both | SpecialTokenSides::Text)
    }

    /// Whether labels keep their special tokens.
    pub fn label(self) -> bool {
        matches!(self, SpecialTokenSides::Both | SpecialTokenSides::Label)
    }
}

impl std::str::FromStr for MaxSimDirection {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "label_to_text" => Ok(MaxSimDirection::LabelToText),
            "text_to_label" => Ok(MaxSimDirection::TextToLabel),
            "symmetric" => Ok(MaxSimDirection::Symmetric),
            other => Err(CoreError::Config {
                field: "colbert_maxsim".into(),
                message: format!("unknown direction `{other}`, expected one of label_to_text, text_to_label, symmetric"),
            }),
        }
    }
}

impl std::str::FromStr for SpecialTokenSides {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "both" => Ok(SpecialTokenSides::Both),
            "text" => Ok(SpecialTokenSides::Text),
            "label" => Ok(SpecialTokenSides::Label),
            "none" => Ok(SpecialTokenSides::Neither),
            other => Err(CoreError::Config {
                field: "colbert_special_tokens".into(),
                message: format!("unknown sides `{other}`, expected one of both, text, label, none"),
            }),
        }
    }
}

/// How a ColBERT model scores: trained with it and recorded in the checkpoint and the bundle, so
/// the runtime serves what training optimised (docs/colbert.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ColbertScoring {
    pub maxsim: MaxSimDirection,
    pub special_tokens: SpecialTokenSides,
}

impl ColbertScoring {
    pub fn is_default(&self) -> bool {
        *self == ColbertScoring::default()
    }
}

impl ModelType {
    pub const ALL: [ModelType; 3] = [ModelType::BiEncoder, ModelType::PolyEncoder, ModelType::Colbert];

    pub fn as_str(&self) -> &'static str {
        match self {
            ModelType::BiEncoder => "bi_encoder",
            ModelType::PolyEncoder => "poly_encoder",
            ModelType::Colbert => "colbert",
        }
    }
}

impl std::fmt::Display for ModelType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ModelType {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "bi_encoder" => Ok(ModelType::BiEncoder),
            "poly_encoder" => Ok(ModelType::PolyEncoder),
            "colbert" => Ok(ModelType::Colbert),
            other => Err(CoreError::Config {
                field: "model_type".into(),
                message: format!("unknown model type `{other}`, expected one of bi_encoder, poly_encoder, colbert"),
            }),
        }
    }
}

/// Sample-level split ratios; they must be non-negative and sum to 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitRatios {
    pub train: f64,
    pub val: f64,
    pub test: f64,
}

impl Default for SplitRatios {
    fn default() -> Self {
        SplitRatios { train: 0.8, val: 0.1, test: 0.1 }
    }
}

impl SplitRatios {
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [("train", self.train), ("val", self.val), ("test", self.test)] {
            if !(0.0..=1.0).contains(&v) || !v.is_finite() {
                return Err(CoreError::Config {
                    field: format!("split.{name}"),
                    message: format!("must be between 0 and 1, got {v}"),
                });
            }
        }
        let sum = self.train + self.val + self.test;
        if (sum - 1.0).abs() > 1e-6 {
            return Err(CoreError::Config { field: "split".into(), message: format!("train + val + test must be 1, got {sum}") });
        }
        Ok(())
    }
}

/// Apply an optional label template ("This text is about {}.") to a label.
pub fn apply_template(template: Option<&str>, label: &str) -> String {
    match template {
        Some(t) => t.replacen("{}", label, 1),
        None => label.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template() {
        assert_eq!(apply_template(Some("About {}."), "pto request"), "About pto request.");
        assert_eq!(apply_template(None, "x"), "x");
    }
}
