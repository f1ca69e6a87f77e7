//! Trainer of zero-shot text classifiers: a Hugging Face BERT in tch ([`bert`]), three scorers on
//! top of it ([`models`]: BiEncoder, PolyEncoder, ColBERT), in-batch contrastive training with
//! atomic checkpoints ([`train`], [`optim`], [`checkpoint`]) and evaluation ([`eval`]).
//!
//! For other crates' tests: [`Checkpoint::load`] gives model + info + tokenizer;
//! [`ZscModel::encode`], [`ZscModel::token_embeddings`], [`ZscModel::score_matrix`] and
//! [`eval::score_texts_labels`] give hidden states, ColBERT token embeddings and scores.

pub mod anchor;
pub mod batches;
pub mod calibrate;
pub mod checkpoint;
pub mod config;
pub mod device;
pub mod encoders;
pub mod error;
pub mod eval;
pub mod fast_ops;
pub mod hub_commands;
pub mod loss;
pub mod merge;
pub mod metrics;
pub mod models;
pub mod optim;
pub mod plot;
pub mod probe;
pub mod step;
pub mod train;

pub use checkpoint::Checkpoint;
pub use device::parse_device;
pub use encoders::{Encoder, EncoderConfig};
pub use error::{Result, TrainerError};
pub use models::{Head, LabelCache, ZscModel};
pub use train::{train, TrainOptions, TrainSummary};
