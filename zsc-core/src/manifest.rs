//! File and tensor names, the checkpoint's own config and the bundle manifest: the contract
//! between the trainer (writes checkpoints), the exporter (checkpoint -> bundle) and the runtime.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{ColbertScoring, ModelType, Similarity, SplitRatios};
use crate::error::{CoreError, Result};
pub use crate::json_file::{read_json, write_atomic, write_json_atomic};
use crate::sentence_transformers::SentenceEmbedding;

/// Checkpoint folder files (`<output_dir>/<run_name>/{best,last}/`).
pub mod checkpoint_files {
    /// All weights: the BERT encoder under Hugging Face names (no `bert.` prefix) plus the head.
    pub const WEIGHTS: &str = "model.safetensors";
    /// The Hugging Face BERT `config.json` of the encoder.
    pub const BERT_CONFIG: &str = "config.json";
    pub const TOKENIZER: &str = "tokenizer.json";
    /// [`super::CheckpointInfo`]: model type, head sizes, data and split it was trained with.
    pub const INFO: &str = "zsc_checkpoint.json";
    /// Optimizer state and step, for `--resume` (in `last/` only).
    pub const OPTIMIZER: &str = "optimizer.safetensors";
    pub const TRAINER_STATE: &str = "trainer_state.json";
}

/// Bundle folder files (what `export` writes and `runtime` reads).
pub mod bundle_files {
    pub const MANIFEST: &str = "manifest.json";
    pub const ENCODER: &str = "encoder.onnx";
    /// Head parameters the runtime applies itself (poly codes, ColBERT score scale).
    pub const HEAD: &str = "head.safetensors";
    pub const TOKENIZER: &str = "tokenizer.json";
}

/// Names of head tensors, in checkpoints and in `head.safetensors`.
pub mod tensor_names {
    /// PolyEncoder code vectors, `[n_code_vectors, hidden]`.
    pub const POLY_CODES: &str = "poly.codes";
    /// ColBERT projection, `[colbert_dim, hidden]` (no bias).
    pub const COLBERT_PROJ: &str = "colbert.proj.weight";
    /// ColBERT learnable score scale, `[1]`, init 10.0.
    pub const COLBERT_SCALE: &str = "colbert.score_scale";
    /// BiEncoder/PolyEncoder with `similarity: cosine`: learnable scale of the cosine, `[1]`, init 20.
    pub const COSINE_SCALE: &str = "cosine.score_scale";
}

/// The ONNX input/output contract of `encoder.onnx`. All inputs int64 `[batch, sequence]`.
pub mod onnx_io {
    pub const INPUT_IDS: &str = "input_ids";
    pub const ATTENTION_MASK: &str = "attention_mask";
    pub const TOKEN_TYPE_IDS: &str = "token_type_ids";
    /// Bi/poly encoders: `[batch, sequence, hidden]` f32.
    pub const LAST_HIDDEN_STATE: &str = "last_hidden_state";
    /// ColBERT: projected, L2-normalised `[batch, sequence, colbert_dim]` f32.
    pub const TOKEN_EMBEDDINGS: &str = "token_embeddings";
    pub const BATCH_AXIS: &str = "batch";
    pub const SEQUENCE_AXIS: &str = "sequence";
    pub const MIN_OPSET: i64 = 17;
}

pub const FORMAT_VERSION: u32 = 1;

/// What a model is, independent of where its weights live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub model_type: ModelType,
    pub hidden_size: usize,
    /// Tokens per text or label after truncation.
    pub max_length: usize,
    /// PolyEncoder only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_code_vectors: Option<usize>,
    /// ColBERT only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colbert_dim: Option<usize>,
    /// Applied to every label before encoding, e.g. "This text is about {}.".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_template: Option<String>,
    /// BiEncoder/PolyEncoder: `dot` (default, and what older files mean) or `cosine` (cosine times
    /// the learned `cosine.score_scale`).
    #[serde(default, skip_serializing_if = "is_dot")]
    pub similarity: Similarity,
    /// Pooling, normalisation and prompts, from the base's sentence-transformers folder
    /// (absent in older files: mean pooling, no prompt).
    #[serde(default, skip_serializing_if = "SentenceEmbedding::is_default")]
    pub embedding: SentenceEmbedding,
    /// ColBERT only: MaxSim direction and special tokens (absent in older files: label to text,
    /// special tokens on both sides).
    #[serde(default, skip_serializing_if = "ColbertScoring::is_default")]
    pub colbert_scoring: ColbertScoring,
}

fn is_dot(s: &Similarity) -> bool {
    *s == Similarity::Dot
}

impl ModelSpec {
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, message: &str| Err(CoreError::Config { field: field.into(), message: message.into() });
        if self.hidden_size == 0 {
            return bad("hidden_size", "must be at least 1");
        }
        if self.max_length < 3 {
            return bad("max_length", "must be at least 3");
        }
        match self.model_type {
            ModelType::PolyEncoder if self.n_code_vectors.unwrap_or(0) == 0 => {
                bad("n_code_vectors", "a poly_encoder needs n_code_vectors >= 1")
            }
            ModelType::Colbert if self.colbert_dim.unwrap_or(0) == 0 => {
                bad("colbert_dim", "a colbert model needs colbert_dim >= 1")
            }
            ModelType::Colbert if self.similarity != Similarity::Dot => bad(
                "similarity",
                "colbert scores by MaxSim (already cosine-based); similarity applies to bi_encoder and poly_encoder",
            ),
            ModelType::BiEncoder | ModelType::PolyEncoder if !self.colbert_scoring.is_default() => {
                bad("colbert_scoring", "applies to colbert models only")
            }
            _ => Ok(()),
        }
    }

    /// A label as the encoder sees it: the label template, then the label prompt.
    pub fn label_input(&self, label: &str) -> String {
        self.embedding.label_input(&crate::config::apply_template(self.label_template.as_deref(), label))
    }

    /// A text as the encoder sees it: after the text prompt.
    pub fn text_input(&self, text: &str) -> String {
        self.embedding.text_input(text)
    }

    /// Width of the encoder graph's output.
    pub fn output_dim(&self) -> usize {
        match self.model_type {
            ModelType::Colbert => self.colbert_dim.unwrap_or(self.hidden_size),
            _ => self.hidden_size,
        }
    }
}

/// `zsc_checkpoint.json`: a checkpoint's own description. The model type is read from here,
/// never from a flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointInfo {
    pub format_version: u32,
    pub spec: ModelSpec,
    /// Where the encoder started from (path or hub id).
    pub base_model: String,
    /// The data file and split settings the model was trained with.
    pub data: PathBuf,
    pub split: SplitRatios,
    pub seed: u64,
    pub step: usize,
    #[serde(default)]
    pub val_loss: Option<f64>,
    #[serde(default)]
    pub created_by: String,
}

/// `manifest.json` of an ONNX bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleManifest {
    pub format_version: u32,
    pub spec: ModelSpec,
    pub opset: i64,
    pub encoder: String,
    pub head: String,
    pub tokenizer: String,
    /// ONNX input names, in order.
    pub inputs: Vec<String>,
    /// ONNX output name.
    pub output: String,
    /// Last axis of the output.
    pub output_dim: usize,
    /// Data file and split the source checkpoint was trained with (None for an untuned base model).
    #[serde(default)]
    pub data: Option<PathBuf>,
    #[serde(default)]
    pub split: Option<SplitRatios>,
    #[serde(default)]
    pub seed: Option<u64>,
    /// Where the weights came from (checkpoint folder or base model).
    pub source: String,
    /// Versions of the tools that wrote the bundle.
    #[serde(default)]
    pub versions: std::collections::BTreeMap<String, String>,
    /// How scores become probabilities (`zsc calibrate`, or the trainer's `calibration.json`);
    /// absent: probabilities are uncalibrated `sigmoid(score)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<crate::calibration::Calibration>,
    /// How `encoder.onnx` stores its weights (`none` for bundles written before quantization existed).
    /// Informational: the runtime runs any of them the same way.
    #[serde(default)]
    pub quantization: Quantization,
}

/// Weight quantization of an exported `encoder.onnx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantization {
    /// f32 weights and activations.
    #[default]
    None,
    /// The encoder's linear layers with int8 weights (symmetric, one scale per output channel) and
    /// activations quantized to uint8 on the fly per call (dynamic quantization:
    /// `DynamicQuantizeLinear` -> `MatMulInteger`); embeddings, LayerNorm, attention and heads f32.
    Int8,
}

impl Quantization {
    pub fn as_str(&self) -> &'static str {
        match self {
            Quantization::None => "none",
            Quantization::Int8 => "int8",
        }
    }
}

impl std::fmt::Display for Quantization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Quantization {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Quantization::None),
            "int8" => Ok(Quantization::Int8),
            other => Err(CoreError::Config {
                field: "quantize".into(),
                message: format!("unknown quantization `{other}`, expected none or int8"),
            }),
        }
    }
}

impl CheckpointInfo {
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(checkpoint_files::INFO);
        if !path.exists() {
            return Err(CoreError::Data {
                path: dir.to_path_buf(),
                message: format!("not a checkpoint folder: {} is missing", checkpoint_files::INFO),
            });
        }
        let info: CheckpointInfo = read_json(&path)?;
        info.spec.validate()?;
        Ok(info)
    }
}

impl BundleManifest {
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(bundle_files::MANIFEST);
        if !path.exists() {
            return Err(CoreError::Data {
                path: dir.to_path_buf(),
                message: format!("not a bundle folder: {} is missing", bundle_files::MANIFEST),
            });
        }
        let m: BundleManifest = read_json(&path)?;
        m.spec.validate()?;
        if m.output_dim != m.spec.output_dim() {
            return Err(CoreError::Data {
                path,
                message: format!("output_dim {} does not match the model spec ({})", m.output_dim, m.spec.output_dim()),
            });
        }
        if let Some(c) = &m.calibration {
            c.validate().map_err(|e| CoreError::Data { path: path.clone(), message: e.to_string() })?;
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_roundtrip_and_validation() {
        let s = ModelSpec {
            model_type: ModelType::PolyEncoder,
            hidden_size: 8,
            max_length: 16,
            n_code_vectors: Some(4),
            colbert_dim: None,
            label_template: None,
            similarity: Default::default(),
            embedding: Default::default(),
            colbert_scoring: Default::default(),
        };
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<ModelSpec>(&j).unwrap(), s);
        // a spec with today's defaults writes no `embedding`, so older readers still read it
        assert!(!j.contains("embedding"), "{j}");
        let cls = ModelSpec { embedding: SentenceEmbedding { pooling: crate::Pooling::Cls, ..Default::default() }, ..s.clone() };
        let j = serde_json::to_string(&cls).unwrap();
        assert!(j.contains(r#""embedding":{"pooling":"cls"}"#), "{j}");
        assert_eq!(serde_json::from_str::<ModelSpec>(&j).unwrap(), cls);
        let bad = ModelSpec { n_code_vectors: None, ..s.clone() };
        assert!(bad.validate().unwrap_err().to_string().contains("n_code_vectors"));
        // ColBERT scoring: written only when not today's default, and only for colbert
        let colbert = ModelSpec { model_type: ModelType::Colbert, n_code_vectors: None, colbert_dim: Some(8), ..s.clone() };
        assert!(!serde_json::to_string(&colbert).unwrap().contains("colbert_scoring"));
        let sym = ModelSpec {
            colbert_scoring: ColbertScoring {
                maxsim: crate::MaxSimDirection::Symmetric,
                special_tokens: crate::SpecialTokenSides::Neither,
            },
            ..colbert
        };
        let j = serde_json::to_string(&sym).unwrap();
        assert!(j.contains(r#""colbert_scoring":{"maxsim":"symmetric","special_tokens":"none"}"#), "{j}");
        assert_eq!(serde_json::from_str::<ModelSpec>(&j).unwrap(), sym);
        sym.validate().unwrap();
        let poly = ModelSpec { colbert_scoring: sym.colbert_scoring, ..s };
        assert!(poly.validate().unwrap_err().to_string().contains("colbert_scoring"));
    }

    #[test]
    fn quantization_parses_and_defaults_to_none() {
        assert_eq!("int8".parse::<Quantization>().unwrap(), Quantization::Int8);
        assert_eq!("none".parse::<Quantization>().unwrap(), Quantization::None);
        assert!("int4".parse::<Quantization>().unwrap_err().to_string().contains("int4"));
        assert_eq!(serde_json::to_string(&Quantization::Int8).unwrap(), "\"int8\"");
        // A manifest written before the field existed reads as `none`.
        let old = r#"{"format_version": 1, "spec": {"model_type": "bi_encoder", "hidden_size": 8, "max_length": 16},
            "opset": 17, "encoder": "encoder.onnx", "head": "head.safetensors", "tokenizer": "tokenizer.json",
            "inputs": ["input_ids", "attention_mask"], "output": "last_hidden_state", "output_dim": 8,
            "source": "x"}"#;
        let m: BundleManifest = serde_json::from_str(old).unwrap();
        assert_eq!(m.quantization, Quantization::None);
    }

    #[test]
    fn atomic_write() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.json");
        write_json_atomic(&p, &vec![1, 2]).unwrap();
        assert_eq!(read_json::<Vec<i32>>(&p).unwrap(), vec![1, 2]);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
