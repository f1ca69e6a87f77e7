//! Shared contract between `trainer` (libtorch), `export` (writes ONNX) and `runtime` (ONNX Runtime).
//!
//! Nothing here depends on libtorch or ONNX Runtime: config types, the checkpoint and bundle
//! manifests, tensor and file names, the ONNX input/output contract, data loading and splitting,
//! the training target matrix, tokenisation settings and the evaluation metrics.

pub mod calibration;
pub mod config;
pub mod data;
pub mod encoder_config;
pub mod error;
pub mod eval_protocol;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "hub")]
pub mod hub;
pub mod json_file;
#[cfg(feature = "logging")]
pub mod logging;
pub mod manifest;
pub mod metrics;
pub mod rng;
pub mod sentence_transformers;
pub mod targets;
pub mod tokenize;

pub use calibration::Calibration;
pub use config::{ColbertScoring, MaxSimDirection, ModelType, Similarity, SpecialTokenSides, SplitRatios};
pub use data::{Sample, Split};
pub use encoder_config::{EncoderConfig, Family};
pub use error::{CoreError, Result};
pub use manifest::{BundleManifest, CheckpointInfo, ModelSpec, Quantization};
pub use metrics::EvalReport;
pub use sentence_transformers::{Pooling, SentenceEmbedding, SentenceTransformerFolder};
