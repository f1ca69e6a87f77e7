//! `config.yml`: every training setting, with defaults. Unknown keys are errors (a typo must
//! never be silently ignored), and every error names the field.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelType {
    BiEncoder,
    PolyEncoder,
    Colbert,
}

/// The training objective on a batch's B×B score matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// BCE-with-logits against the target matrix (identity + pairs sharing a text or a label),
    /// optionally weighting positives (`pos_weight_scale`): the reference design.
    #[default]
    Bce,
    /// Symmetric in-batch softmax cross-entropy: each text's own label against the batch's other
    /// labels, and each label's own text against the other texts (the InfoNCE / "multiple
    /// negatives ranking" loss of sentence-transformers), other positives of the target matrix
    /// left out of the denominators. Shift-invariant per row: the encoder need not push negative
    /// dot products below 0, only below the positive's. `pos_weight_scale` does not apply.
    Softmax,
}

impl ModelType {
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
                message: format!(
                    "unknown model type `{other}`, expected one of bi_encoder, poly_encoder, colbert"
                ),
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
            return Err(CoreError::Config {
                field: "split".into(),
                message: format!("train + val + test must be 1, got {sum}"),
            });
        }
        Ok(())
    }
}

/// Settings of a training run (`config.yml`). Command-line flags override them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// `bi_encoder | poly_encoder | colbert`.
    pub model_type: ModelType,
    /// Hugging Face BERT folder (config.json, model.safetensors, tokenizer.json) or hub repo id.
    pub base_model: String,
    /// Training data: a JSON list of `{"text": ..., "labels": [...]}`.
    pub data: PathBuf,
    pub split: SplitRatios,
    pub seed: u64,
    pub output_dir: PathBuf,
    pub run_name: String,
    /// `cpu | cuda | auto`.
    pub device: String,
    /// Tokens per text or label after truncation.
    pub max_length: usize,
    /// (text, label) pairs per batch.
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Learning rate of the head parameters (poly codes, ColBERT projection and scale).
    pub head_learning_rate: Option<f64>,
    /// Learning rate of ColBERT's `score_scale` alone (default: the head learning rate). Adam
    /// moves a parameter by about its learning rate per step, so at 1e-3 the scale (init 10)
    /// stays near 10 for a whole run; a larger rate lets the softmax temperature be learned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score_scale_learning_rate: Option<f64>,
    pub weight_decay: f64,
    /// Share of `max_steps` spent warming the learning rate up linearly; then linear decay to 0.
    pub warmup_ratio: f64,
    pub max_steps: usize,
    pub max_grad_norm: f64,
    /// Validate (and maybe save `best/`) every this many steps.
    pub val_every: usize,
    /// Cap on validation batches (0 = the whole val split).
    pub val_batches: usize,
    /// Training objective: `bce` (the reference design) or `softmax` (see [`LossKind`]).
    pub loss: LossKind,
    /// Multiply the automatic positive weight (negatives / positives) by this; `null` = no weighting.
    pub pos_weight_scale: Option<f64>,
    /// Number of PolyEncoder code vectors.
    pub n_code_vectors: usize,
    /// ColBERT projection size.
    pub colbert_dim: usize,
    /// Optional label template such as "This text is about {}."; `{}` is the label.
    pub label_template: Option<String>,
    /// Freeze the embeddings and the lowest N transformer layers.
    pub freeze_layers: usize,
    /// Optional zero-shot probe: a data file whose labels are kept out of training (e.g. the
    /// held-out CLINC150 domains' val utterances). At every validation its texts are scored
    /// against all its labels and the top-1 accuracy goes to `metrics.jsonl` and the plot, so a
    /// run shows whether it still transfers to unseen labels. Monitoring only: `best/` stays the
    /// lowest val loss.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe_data: Option<PathBuf>,
    /// Settings of `trainer create-dataset` (read by the datagen crate; ignored by training).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_dataset: Option<serde_yaml::Value>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            model_type: ModelType::BiEncoder,
            base_model: "models/all-MiniLM-L6-v2".into(),
            data: "data/train.json".into(),
            split: SplitRatios::default(),
            seed: 42,
            output_dir: "runs".into(),
            run_name: "default".into(),
            device: "auto".into(),
            max_length: 64,
            batch_size: 32,
            learning_rate: 2e-5,
            head_learning_rate: None,
            score_scale_learning_rate: None,
            weight_decay: 0.01,
            warmup_ratio: 0.1,
            max_steps: 200,
            max_grad_norm: 1.0,
            val_every: 50,
            val_batches: 20,
            loss: LossKind::Bce,
            pos_weight_scale: None,
            n_code_vectors: 16,
            colbert_dim: 128,
            label_template: None,
            freeze_layers: 0,
            probe_data: None,
            create_dataset: None,
        }
    }
}

impl TrainConfig {
    pub fn from_yaml_str(text: &str, path: &Path) -> Result<Self> {
        if text.trim().is_empty() {
            return Ok(TrainConfig::default());
        }
        let cfg: TrainConfig = serde_yaml::from_str(text)
            .map_err(|source| CoreError::Yaml { path: path.to_path_buf(), source })?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| CoreError::io(path, e))?;
        Self::from_yaml_str(&text, path)
    }

    pub fn validate(&self) -> Result<()> {
        let positive = |field: &str, v: usize| {
            if v == 0 {
                Err(CoreError::Config { field: field.into(), message: "must be at least 1".into() })
            } else {
                Ok(())
            }
        };
        positive("max_length", self.max_length)?;
        positive("batch_size", self.batch_size)?;
        positive("max_steps", self.max_steps)?;
        positive("val_every", self.val_every)?;
        positive("n_code_vectors", self.n_code_vectors)?;
        positive("colbert_dim", self.colbert_dim)?;
        if self.max_length < 3 {
            return Err(CoreError::Config {
                field: "max_length".into(),
                message: "must leave room for [CLS], [SEP] and one token (>= 3)".into(),
            });
        }
        for (field, v) in [("learning_rate", self.learning_rate), ("weight_decay", self.weight_decay)] {
            if !v.is_finite() || v < 0.0 {
                return Err(CoreError::Config { field: field.into(), message: format!("must be >= 0, got {v}") });
            }
        }
        for (field, v) in [("head_learning_rate", self.head_learning_rate), ("score_scale_learning_rate", self.score_scale_learning_rate)] {
            if let Some(v) = v {
                if !v.is_finite() || v < 0.0 {
                    return Err(CoreError::Config { field: field.into(), message: format!("must be >= 0, got {v}") });
                }
            }
        }
        if !(0.0..=1.0).contains(&self.warmup_ratio) {
            return Err(CoreError::Config {
                field: "warmup_ratio".into(),
                message: format!("must be between 0 and 1, got {}", self.warmup_ratio),
            });
        }
        if let Some(s) = self.pos_weight_scale {
            if !s.is_finite() || s <= 0.0 {
                return Err(CoreError::Config { field: "pos_weight_scale".into(), message: format!("must be > 0, got {s}") });
            }
        }
        if let Some(t) = &self.label_template {
            if !t.contains("{}") {
                return Err(CoreError::Config {
                    field: "label_template".into(),
                    message: format!("must contain `{{}}` where the label goes, got {t:?}"),
                });
            }
        }
        if !matches!(self.device.as_str(), "cpu" | "cuda" | "auto") && !self.device.starts_with("cuda:") {
            return Err(CoreError::Config {
                field: "device".into(),
                message: format!("expected cpu, cuda, cuda:N or auto, got {:?}", self.device),
            });
        }
        self.split.validate()
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

    fn parse(s: &str) -> Result<TrainConfig> {
        TrainConfig::from_yaml_str(s, Path::new("config.yml"))
    }

    #[test]
    fn defaults_and_overrides() {
        let c = parse("model_type: colbert\ncolbert_dim: 64\n").unwrap();
        assert_eq!(c.model_type, ModelType::Colbert);
        assert_eq!(c.colbert_dim, 64);
        assert_eq!(c.batch_size, TrainConfig::default().batch_size);
    }

    #[test]
    fn unknown_key_is_named() {
        let e = parse("batch_sise: 3\n").unwrap_err().to_string();
        assert!(e.contains("batch_sise"), "{e}");
    }

    #[test]
    fn wrong_type_is_named() {
        let e = parse("batch_size: lots\n").unwrap_err().to_string();
        assert!(e.contains("batch_size"), "{e}");
    }

    #[test]
    fn unknown_model_type_is_named() {
        let e = parse("model_type: cross_encoder\n").unwrap_err().to_string();
        assert!(e.contains("cross_encoder") && e.contains("bi_encoder"), "{e}");
    }

    #[test]
    fn bad_split_is_rejected() {
        let e = parse("split: {train: 0.5, val: 0.1, test: 0.1}\n").unwrap_err().to_string();
        assert!(e.contains("split"), "{e}");
    }

    #[test]
    fn create_dataset_section_is_accepted() {
        let c = parse("create_dataset:\n  n_topics: 5\n").unwrap();
        assert!(c.create_dataset.is_some());
    }

    #[test]
    fn template() {
        assert_eq!(apply_template(Some("About {}."), "pto request"), "About pto request.");
        assert_eq!(apply_template(None, "x"), "x");
    }
}
