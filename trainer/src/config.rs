//! `config.yml`: every training setting, with defaults. Unknown keys are errors (a typo must
//! never be silently ignored), and every error names the field.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zsc_core::error::{CoreError, Result};
use zsc_core::{MaxSimDirection, ModelType, Similarity, SpecialTokenSides, SplitRatios};

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

/// Init of the learnable scale of `similarity: cosine` (sentence-transformers' MultipleNegativesRankingLoss uses 20).
pub const COSINE_SCALE_INIT: f64 = 20.0;

/// Init of the ColBERT projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColbertInit {
    /// Random orthonormal rows (`colbert_dim <= hidden`): at `colbert_dim` = hidden size the
    /// projection is a rotation, so step 0 keeps the base model's token geometry exactly.
    #[default]
    Orthogonal,
    /// `nn.Linear`'s default (Kaiming uniform): a random projection.
    Kaiming,
}

/// Which way ColBERT's MaxSim runs over a (text, label) pair of token sets.
/// Arithmetic of the training step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    #[default]
    Fp32,
    /// bfloat16 autocast for the forward pass (matrix products in bf16; weights, optimizer and
    /// reductions stay fp32). Meant for GPUs; evaluation always runs in fp32.
    Bf16,
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
    /// Prompt before every text: a name of the base's sentence-transformers prompts (`query`) or
    /// the text itself (`""`: none). Default (null): the base's default prompt, if it has one.
    pub text_prompt: Option<String>,
    /// The same for labels (after the label template).
    pub label_prompt: Option<String>,
    /// Freeze the embeddings and the lowest N transformer layers.
    pub freeze_layers: usize,
    /// The zero-shot probe: one or more held-out tasks, each a data file whose labels (and
    /// texts) are kept out of training. At every validation each task's texts are scored against
    /// that task's labels; `probe_top1` in `metrics.jsonl` is the macro average over tasks (per
    /// task values beside it), and `best_probe/` keeps the step where it was highest, step 0
    /// (the untrained model) included.
    #[serde(default, deserialize_with = "one_or_many_paths", skip_serializing_if = "Vec::is_empty")]
    pub probe_data: Vec<PathBuf>,
    /// Cap on the texts scored per probe task (a seeded subset; 0 = all).
    pub probe_max_texts: usize,
    /// Batches come from one `source` of the data at a time; a source is drawn with probability
    /// proportional to (its pairs)^alpha: 1 = in proportion to size, 0 = every source alike.
    pub source_sampling_alpha: f64,
    /// `dot | cosine` (BiEncoder and PolyEncoder; ColBERT's MaxSim is always cosine-based).
    pub similarity: Similarity,
    /// Init of the ColBERT projection: `orthogonal` (keeps the base geometry at step 0) or `kaiming`.
    pub colbert_init: ColbertInit,
    /// ColBERT's MaxSim direction: `label_to_text | text_to_label | symmetric` (loss and runtime).
    pub colbert_maxsim: MaxSimDirection,
    /// ColBERT: which sides keep `[CLS]`/`[SEP]` in MaxSim: `both | text | label | none`.
    pub colbert_special_tokens: SpecialTokenSides,
    /// Weight of the base anchor (0 = off): a frozen copy of `base_model` scores each batch, and
    /// the loss adds this × the cross-entropy of the model's in-batch score distributions against
    /// the base's (cosine × 20), so training moves away from the base only where the data says so.
    pub anchor_weight: f64,
    /// Anchor to a stronger teacher instead of the base: the stem of `STEM.safetensors` +
    /// `STEM.json` (`scripts/embed_teacher.py`: the teacher's L2-normalised embeddings of every
    /// training text and label), whose cosines × 20 replace the base's in the anchor term.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor_teacher: Option<PathBuf>,
    /// Label negatives (`softmax` loss): every batch also carries this many more labels of its
    /// source that none of its texts has, drawn per step; each text is scored against the batch's
    /// labels and these (0 = in-batch labels only).
    pub label_negatives: usize,
    /// Merging with the base after training (0 < w <= 1 each): `best_probe/`'s encoder is
    /// interpolated as `w * trained + (1 - w) * base` for every listed `w`, each merge is scored on
    /// the zero-shot probe, and `best_probe/` keeps the best of them and the unmerged model (needs
    /// `probe_data`; empty = off). Weight-space ensembling (WiSE-FT): docs/quality.md.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub base_merge: Vec<f64>,
    /// `fp32 | bf16` (bf16 autocast of the forward pass; for GPUs).
    pub precision: Precision,
    /// On CUDA, capture the training step as a CUDA graph and replay it (static shapes: texts
    /// padded to one of four length buckets, one graph each); falls back to eager steps if the
    /// capture fails. On by default (an H100 measured 3.3x the eager step at batch 32, the same
    /// held-out quality: docs/gpu.md); the CPU ignores it.
    pub cuda_graphs: bool,
    /// At the end of training, fit the probability calibration (softmax temperature; multi-label
    /// temperature and bias) on the val split and write `calibration.json` into `best/` and
    /// `best_probe/` (`export` puts it in the bundle's manifest).
    pub calibrate: bool,
    /// On CUDA, read the train loss back from the GPU every this many steps (each read waits
    /// for the GPU; the CPU reads every step).
    pub log_every: usize,
    /// Settings that apply only to one architecture, e.g. `colbert: {label_template: null}`;
    /// they override the keys above for that `model_type` (command-line `--set` and flags still win).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub per_architecture: std::collections::BTreeMap<ModelType, serde_yaml::Mapping>,
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
            text_prompt: None,
            label_prompt: None,
            freeze_layers: 0,
            probe_data: Vec::new(),
            probe_max_texts: 0,
            source_sampling_alpha: 1.0,
            similarity: Similarity::Dot,
            colbert_init: ColbertInit::Orthogonal,
            colbert_maxsim: MaxSimDirection::LabelToText,
            colbert_special_tokens: SpecialTokenSides::Both,
            precision: Precision::Fp32,
            anchor_weight: 0.0,
            anchor_teacher: None,
            label_negatives: 0,
            base_merge: Vec::new(),
            cuda_graphs: true,
            calibrate: true,
            log_every: 25,
            per_architecture: Default::default(),
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
            .map_err(|e| CoreError::Data { path: path.to_path_buf(), message: format!("invalid YAML config: {e}") })?;
        cfg.validate()?;
        // every architecture's overrides must be valid keys and values, not only the one in use
        for model_type in cfg.per_architecture.keys() {
            let mut c = cfg.clone();
            c.model_type = *model_type;
            c.with_architecture_defaults(&Default::default())
                .map_err(|e| CoreError::Config { field: format!("per_architecture.{model_type}"), message: e.to_string() })?;
        }
        Ok(cfg)
    }

    /// This config with `per_architecture[model_type]` applied, except the keys in `keep` (those
    /// set explicitly on the command line). The result has no `per_architecture` left, so saving
    /// and re-loading it (`--resume`) changes nothing.
    pub fn with_architecture_defaults(&self, keep: &std::collections::BTreeSet<String>) -> Result<TrainConfig> {
        let mut base = self.clone();
        let overrides = std::mem::take(&mut base.per_architecture);
        let Some(over) = overrides.get(&self.model_type) else {
            return Ok(base);
        };
        let mut value = serde_yaml::to_value(&base).map_err(|e| CoreError::Invalid(e.to_string()))?;
        let map = value.as_mapping_mut().ok_or_else(|| CoreError::Invalid("settings are not a mapping".into()))?;
        for (k, v) in over {
            let key = k.as_str().unwrap_or_default();
            if key == "model_type" || key == "per_architecture" {
                return Err(CoreError::Config { field: key.into(), message: "cannot be set per architecture".into() });
            }
            if !keep.contains(key) {
                map.insert(k.clone(), v.clone());
            }
        }
        let out: TrainConfig = serde_yaml::from_value(value)
            .map_err(|e| CoreError::Config { field: format!("per_architecture.{}", self.model_type), message: e.to_string() })?;
        out.validate()?;
        Ok(out)
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
        for (field, v) in
            [("head_learning_rate", self.head_learning_rate), ("score_scale_learning_rate", self.score_scale_learning_rate)]
        {
            if let Some(v) = v {
                if !v.is_finite() || v < 0.0 {
                    return Err(CoreError::Config { field: field.into(), message: format!("must be >= 0, got {v}") });
                }
            }
        }
        if !self.anchor_weight.is_finite() || self.anchor_weight < 0.0 {
            return Err(CoreError::Config {
                field: "anchor_weight".into(),
                message: format!("must be >= 0, got {}", self.anchor_weight),
            });
        }
        if self.anchor_teacher.is_some() && self.anchor_weight <= 0.0 {
            return Err(CoreError::Config {
                field: "anchor_teacher".into(),
                message: "needs anchor_weight > 0 (the teacher is the anchor's target)".into(),
            });
        }
        if self.label_negatives > 0 && self.loss != LossKind::Softmax {
            return Err(CoreError::Config {
                field: "label_negatives".into(),
                message: "needs loss: softmax (BCE scores the batch's own labels only)".into(),
            });
        }
        if let Some(w) = self.base_merge.iter().find(|w| !(w.is_finite() && **w > 0.0 && **w <= 1.0)) {
            return Err(CoreError::Config {
                field: "base_merge".into(),
                message: format!("each weight must be in (0, 1], got {w}"),
            });
        }
        if !self.source_sampling_alpha.is_finite() || self.source_sampling_alpha < 0.0 {
            return Err(CoreError::Config {
                field: "source_sampling_alpha".into(),
                message: format!("must be >= 0, got {}", self.source_sampling_alpha),
            });
        }
        positive("log_every", self.log_every)?;
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

/// `probe_data: FILE`, `probe_data: [FILE, ...]` or `probe_data: null`.
fn one_or_many_paths<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<PathBuf>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(PathBuf),
        Many(Vec<PathBuf>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(p)) => vec![p],
        Some(OneOrMany::Many(v)) => v,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<TrainConfig> {
        TrainConfig::from_yaml_str(s, Path::new("config.yml"))
    }

    #[test]
    fn a_teacher_anchor_needs_an_anchor_weight() {
        let c = parse("anchor_weight: 1.0\nanchor_teacher: data/teacher/t\n").unwrap();
        assert_eq!(c.anchor_teacher, Some(PathBuf::from("data/teacher/t")));
        let err = parse("anchor_weight: 0\nanchor_teacher: t\n").unwrap_err().to_string();
        assert!(err.contains("anchor_teacher") && err.contains("anchor_weight > 0"), "{err}");
        assert_eq!(parse("").unwrap().anchor_teacher, None);
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
    fn probe_data_is_one_file_or_a_list() {
        assert_eq!(parse("probe_data: a.json\n").unwrap().probe_data, vec![PathBuf::from("a.json")]);
        assert_eq!(parse("probe_data: [a.json, b.json]\n").unwrap().probe_data.len(), 2);
        assert!(parse("probe_data: null\n").unwrap().probe_data.is_empty());
        assert!(parse("").unwrap().probe_data.is_empty());
    }

    #[test]
    fn per_architecture_overrides_apply_to_their_model_type_only() {
        let text = "label_template: \"About {}.\"\nper_architecture:\n  colbert: {label_template: null, colbert_dim: 384}\n";
        let c = parse(text).unwrap();
        let bi = c.with_architecture_defaults(&Default::default()).unwrap();
        assert_eq!(bi.label_template.as_deref(), Some("About {}."));
        assert!(bi.per_architecture.is_empty());
        let mut col = c.clone();
        col.model_type = ModelType::Colbert;
        let col = col.with_architecture_defaults(&Default::default()).unwrap();
        assert_eq!((col.label_template.clone(), col.colbert_dim), (None, 384));
        // a key set on the command line wins over the architecture's default
        let mut c2 = c.clone();
        c2.model_type = ModelType::Colbert;
        c2.colbert_dim = 96;
        let keep = ["colbert_dim".to_string()].into_iter().collect();
        assert_eq!(c2.with_architecture_defaults(&keep).unwrap().colbert_dim, 96);
        // bad keys are named, even for an architecture not in use
        let e = parse("per_architecture:\n  poly_encoder: {n_codes: 3}\n").unwrap_err().to_string();
        assert!(e.contains("per_architecture.poly_encoder") && e.contains("n_codes"), "{e}");
        let e = parse("per_architecture:\n  colbert: {model_type: bi_encoder}\n").unwrap_err().to_string();
        assert!(e.contains("model_type"), "{e}");
    }

    #[test]
    fn new_enums_parse_and_name_bad_values() {
        let c = parse("similarity: cosine\nprecision: bf16\ncolbert_init: orthogonal\nsource_sampling_alpha: 0.5\n").unwrap();
        assert_eq!((c.similarity, c.precision, c.colbert_init), (Similarity::Cosine, Precision::Bf16, ColbertInit::Orthogonal));
        let e = parse("similarity: euclid\n").unwrap_err().to_string();
        assert!(e.contains("euclid") || e.contains("similarity"), "{e}");
        let e = parse("source_sampling_alpha: -1\n").unwrap_err().to_string();
        assert!(e.contains("source_sampling_alpha"), "{e}");
    }
}
