//! Training-data generation for the zero-shot classification toolkit (not published; binary
//! `datagen`).
//!
//! [`create_dataset`] builds a `{"text", "labels"}` training set through any OpenAI-compatible
//! chat-completions endpoint (topic pool, seeded 3-topic label sets, one sentence per set),
//! concurrent, retried, resumable. Hub push/pull live in `zsc_core::hub` (`trainer push|pull`).
//!
//! [`run_create_dataset`] is the command-line entry point; it is synchronous (it builds its own
//! tokio runtime).

pub mod chat;
pub mod create_dataset;
pub mod error;

pub use create_dataset::{run_create_dataset, CreateDatasetArgs, CreateDatasetSettings};
pub use error::{DatagenError, Result};

/// A multi-threaded tokio runtime for one command.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| DatagenError::io("<tokio runtime>", e))
}
