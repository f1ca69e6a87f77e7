//! Zero-shot text classification in Rust: classify any text against any labels, including labels
//! never seen in training, with an encoder exported to ONNX and run by ONNX Runtime (no libtorch,
//! no Python).
//!
//! ```no_run
//! use zsc::{Classifier, ClassifierOptions};
//! # fn main() -> zsc::Result<()> {
//! // a bundle folder written by `zsc-export` / `trainer export`, or a Hub id (feature `hub`)
//! let clf = Classifier::from_dir("bundles/minilm", ClassifierOptions::default())?;
//!
//! // ranked predictions: label, score (logit), probability
//! let ranked = clf.classify(&["how do i transfer money"], &["banking", "cooking"], 1)?;
//! println!("{} {:.2}", ranked[0][0].label, ranked[0][0].probability);
//!
//! // the same labels many times: encode them once
//! let labels = clf.encode_labels(&["banking", "cooking"])?;
//! let more = clf.classify(&["preheat the oven", "wire 50 euros"], &labels, 2)?;
//!
//! // the raw score matrix, and sentence embeddings
//! let scores: Vec<Vec<f32>> = clf.scores(&["preheat the oven"], &labels)?;
//! let vectors = clf.embed(&["preheat the oven"])?;
//! # Ok(())
//! # }
//! ```
//!
//! Scores are logits (for ColBERT `score_scale * MaxSim`). Probabilities ([`Probabilities`]) use the
//! bundle's calibration when it has one (`zsc calibrate`): single-label `softmax(score / T)` over
//! the candidates, multi-label `sigmoid(score / T + b)`; without one, the uncalibrated
//! `sigmoid(score)`.
//!
//! A whole pool at once: [`Classifier::classify_corpus`] adapts the labels to the texts
//! ([`adapt`], BiEncoder bundles), and [`corpus::classify_file`] classifies a file (JSONL, CSV/TSV,
//! plain text) into JSONL or CSV with resume and bad-row handling.
//!
//! Features (both on by default, for the `zsc` binary; an app can turn them off with
//! `default-features = false`): `hub` ([`Classifier::from_pretrained`], models by Hugging Face Hub
//! id) and `serve` ([`serve`], the HTTP service behind `zsc serve`). `cuda` adds the CUDA
//! execution provider.

#![warn(missing_docs)]

pub mod adapt;
mod classifier;
pub mod corpus;
mod error;
mod label;
mod options;
mod ort_env;
#[cfg(feature = "hub")]
mod pretrained;
mod probability;
pub mod scoring;
#[cfg(feature = "serve")]
pub mod serve;

pub use adapt::{AdaptOptions, AdaptReport};
pub use classifier::{Adaptation, Classifier, LabelSet, Labels, PoolVectors};
pub use error::{Error, OrtError, Result};
pub use label::{read_labels_file, Label, ViewAggregation, MAX_EXAMPLES_PER_LABEL};
pub use options::{ClassifierOptions, ExecutionProvider, LabelTemplate, OptimizationLevel};
pub use probability::{Prediction, Probabilities, ProbabilityMode};
