//! Zero-shot text classification from an ONNX bundle, with ONNX Runtime (no libtorch).
//!
//! ```no_run
//! use zsc::{Classifier, ClassifierOptions};
//! # fn main() -> Result<(), zsc::RuntimeError> {
//! let clf = Classifier::from_dir("bundles/minilm", ClassifierOptions::default())?;
//! let labels = clf.encode_labels(&["banking", "cooking"])?; // once
//! let scores = clf.classify_with(&["how do i transfer money"], &labels)?; // many times
//! println!("{:?}", scores[0]);
//! # Ok(())
//! # }
//! ```
//!
//! Scores are logits (for ColBERT `score_scale * MaxSim`). Probabilities ([`probability`]) use the
//! bundle's calibration when it has one (`zsc calibrate`): single-label `softmax(score / T)` over
//! the candidates, multi-label `sigmoid(score / T + b)`; without one, the uncalibrated
//! `sigmoid(score)`.
//!
//! Features (both on by default, for the `zsc` binary; an app can turn them off): `hub`
//! ([`Classifier::from_pretrained`], models by Hugging Face Hub id) and `serve` ([`serve`], the
//! HTTP service behind `zsc serve`).

pub mod classifier;
pub mod error;
pub mod multilabel;
pub mod options;
pub mod ort_env;
#[cfg(feature = "hub")]
pub mod pretrained;
pub mod probability;
pub mod scoring;
#[cfg(feature = "serve")]
pub mod serve;

pub use classifier::{rank, Classifier, LabelCache, LabelScore};
pub use error::{Result, RuntimeError};
pub use multilabel::{best_micro_f1_threshold, restrict_to_samples, sample_key, ProtocolReport, SampleKey};
pub use options::{ClassifierOptions, ExecutionProvider, LabelTemplate, OptimizationLevel};
pub use probability::{Probabilities, ProbabilityMode};
pub use scoring::{sigmoid, MaxSim, MeanPool, PolyAttention, SentencePool};
