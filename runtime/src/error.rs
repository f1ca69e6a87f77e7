//! Typed errors of the runtime. Every variant that concerns a file names it.

use std::path::PathBuf;

/// Everything that can go wrong loading a bundle or classifying with it.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The ONNX Runtime shared library could not be found or loaded.
    #[error("cannot load ONNX Runtime from {path}: {message}")]
    OrtInit { path: PathBuf, message: String },

    /// No path to the ONNX Runtime shared library was given and none was baked in at build time.
    #[error(
        "no ONNX Runtime library: set ORT_DYLIB_PATH to libonnxruntime.so (or pass ClassifierOptions::with_ort_dylib_path)"
    )]
    OrtNotConfigured,

    /// The bundle's manifest is missing or invalid.
    #[error("bundle {dir}: {source}")]
    Manifest {
        dir: PathBuf,
        #[source]
        source: zsc_core::CoreError,
    },

    /// A file named by the manifest does not exist.
    #[error("bundle {dir}: {what} file {path} is missing")]
    MissingFile { dir: PathBuf, what: &'static str, path: PathBuf },

    /// ONNX Runtime refused to build a session from `encoder.onnx`.
    #[error("loading ONNX model {path}: {source}")]
    Session {
        path: PathBuf,
        #[source]
        source: ort::Error,
    },

    /// The ONNX graph's inputs/outputs do not match the manifest (checked at load time).
    #[error("ONNX model {path} does not match the manifest: {message}")]
    GraphMismatch { path: PathBuf, message: String },

    /// `head.safetensors` is unreadable or a tensor is missing / has the wrong shape or type.
    #[error("head file {path}: {message}")]
    Head { path: PathBuf, message: String },

    /// The tokenizer could not be loaded or failed on an input.
    #[error(transparent)]
    Tokenizer(zsc_core::CoreError),

    /// The requested execution provider is not available in this build or failed to register.
    #[error("execution provider {provider}: {message}")]
    ExecutionProvider { provider: String, message: String },

    /// An option is out of range (batch size 0, template without `{}`, ...).
    #[error("invalid option `{option}`: {message}")]
    InvalidOption { option: &'static str, message: String },

    /// A text is empty (or whitespace only).
    #[error("text {index} is empty")]
    EmptyText { index: usize },

    /// The candidate label list is empty.
    #[error("no candidate labels: give at least one label")]
    NoLabels,

    /// A label is empty (or whitespace only).
    #[error("label {index} is empty")]
    EmptyLabel { index: usize },

    /// A [`crate::LabelCache`] was built by another classifier.
    #[error("this label cache was built by another classifier (model {cache_source}); encode the labels again")]
    ForeignLabelCache { cache_source: String },

    /// ONNX Runtime failed while running the encoder.
    #[error("running ONNX model {path}: {source}")]
    Inference {
        path: PathBuf,
        #[source]
        source: ort::Error,
    },

    /// A model named by Hub id could not be fetched (or is not in the cache, offline).
    #[cfg(feature = "hub")]
    #[error(transparent)]
    Hub(zsc_core::hub::HubError),

    /// The encoder returned something other than `[batch, sequence, dim]` f32.
    #[error("ONNX model {path} returned an unexpected output: {message}")]
    BadOutput { path: PathBuf, message: String },
}

pub type Result<T> = std::result::Result<T, RuntimeError>;
