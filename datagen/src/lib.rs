//! Data generation and model sharing for the zero-shot classification toolkit.
//!
//! - [`create_dataset`]: builds a `{"text", "labels"}` training set through any OpenAI-compatible
//!   chat-completions endpoint (topic pool, seeded 3-topic label sets, one sentence per set),
//!   concurrent, retried, resumable.
//! - [`hub`]: pushes a checkpoint or bundle folder to the Hugging Face Hub (create repo,
//!   preupload, LFS batch + upload, NDJSON commit) and pulls a repo back into the standard
//!   Hugging Face cache (through `zsc_core::hub`, i.e. the `hf-hub` crate).
//!
//! The `run_*` functions are the command-line entry points the `trainer` binary wires in as
//! subcommands; they are synchronous (each builds its own tokio runtime).

pub mod chat;
pub mod create_dataset;
pub mod error;
pub mod hub;
pub mod retry;
pub mod secrets;

pub use create_dataset::{run_create_dataset, CreateDatasetArgs, CreateDatasetSettings};
pub use error::{DatagenError, Result};
pub use hub::{pull, resolve_base_model, run_pull, run_push, PullArgs, PushArgs};

/// A multi-threaded tokio runtime for one command.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| DatagenError::io("<tokio runtime>", e))
}
