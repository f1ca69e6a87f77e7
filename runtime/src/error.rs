//! [`Error`]: everything that can go wrong, each variant naming the file, option or input at fault.

use std::path::PathBuf;

/// An error of ONNX Runtime (through the `ort` crate), kept opaque so that `ort`'s own error type,
/// a pinned release candidate, is not part of this crate's API. Its message and source chain are
/// ONNX Runtime's.
#[derive(Debug)]
pub struct OrtError(ort::Error);

impl std::fmt::Display for OrtError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for OrtError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl From<ort::Error> for OrtError {
    fn from(e: ort::Error) -> Self {
        OrtError(e)
    }
}

/// Everything that can go wrong loading a bundle or classifying with it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The ONNX Runtime shared library could not be found or loaded.
    #[error("cannot load ONNX Runtime from {path}: {message}")]
    OrtInit {
        /// The library tried.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },

    /// No path to the ONNX Runtime shared library was given and none was baked in at build time.
    #[error("no ONNX Runtime library: set ORT_DYLIB_PATH to libonnxruntime.so (or pass ClassifierOptions::with_ort_dylib_path)")]
    OrtNotConfigured,

    /// The bundle's manifest is missing or invalid.
    #[error("bundle {dir}: {source}")]
    Manifest {
        /// The bundle folder.
        dir: PathBuf,
        /// What is wrong with the manifest.
        #[source]
        source: zsc_core::CoreError,
    },

    /// A file named by the manifest does not exist.
    #[error("bundle {dir}: {what} file {path} is missing")]
    MissingFile {
        /// The bundle folder.
        dir: PathBuf,
        /// Which file (`encoder`, `head`, `tokenizer`).
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
    },

    /// ONNX Runtime refused to build a session from `encoder.onnx`.
    #[error("loading ONNX model {path}: {source}")]
    Session {
        /// The ONNX file.
        path: PathBuf,
        /// ONNX Runtime's error.
        #[source]
        source: OrtError,
    },

    /// The ONNX graph's inputs/outputs do not match the manifest (checked at load time).
    #[error("ONNX model {path} does not match the manifest: {message}")]
    GraphMismatch {
        /// The ONNX file.
        path: PathBuf,
        /// What differs.
        message: String,
    },

    /// `head.safetensors` is unreadable or a tensor is missing / has the wrong shape or type.
    #[error("head file {path}: {message}")]
    Head {
        /// The head file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// The tokenizer could not be loaded or failed on an input.
    #[error(transparent)]
    Tokenizer(zsc_core::CoreError),

    /// The requested execution provider is not available in this build or failed to register.
    #[error("execution provider {provider}: {message}")]
    ExecutionProvider {
        /// The provider asked for (`cuda:0`).
        provider: String,
        /// Why it cannot be used.
        message: String,
    },

    /// An option or argument is out of range (batch size 0, template without `{}`, `top_k` 0, ...).
    #[error("invalid option `{option}`: {message}")]
    InvalidOption {
        /// The option's name.
        option: &'static str,
        /// What is wrong with its value.
        message: String,
    },

    /// A text is empty (or whitespace only).
    #[error("text {index} is empty")]
    EmptyText {
        /// Its position in the input.
        index: usize,
    },

    /// The candidate label list is empty.
    #[error("no candidate labels: give at least one label")]
    NoLabels,

    /// A label is empty (or whitespace only).
    #[error("label {index} is empty")]
    EmptyLabel {
        /// Its position in the input.
        index: usize,
    },

    /// A label's description or examples are unusable (empty, too many) or its name appears twice.
    #[error("label `{label}`: {message}")]
    InvalidLabel {
        /// The label's name.
        label: String,
        /// What is wrong.
        message: String,
    },

    /// A labels file could not be read or parsed.
    #[error("labels file {path}: {message}")]
    LabelsFile {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the entry.
        message: String,
    },

    /// A [`crate::LabelSet`] was encoded by another classifier.
    #[error("this label set was encoded by another classifier (model {label_set_source}); encode the labels again")]
    ForeignLabelSet {
        /// The bundle that encoded it.
        label_set_source: String,
    },

    /// A BiEncoder-only feature (pool adaptation) was asked of another architecture.
    #[error("{what} needs a BiEncoder bundle (one vector per label); this bundle is {model_type}")]
    NeedsBiEncoder {
        /// The feature.
        what: &'static str,
        /// The bundle's architecture.
        model_type: String,
    },

    /// ONNX Runtime failed while running the encoder.
    #[error("running ONNX model {path}: {source}")]
    Inference {
        /// The ONNX file.
        path: PathBuf,
        /// ONNX Runtime's error.
        #[source]
        source: OrtError,
    },

    /// A model named by Hub id could not be fetched (or is not in the cache, offline).
    #[cfg(feature = "hub")]
    #[error(transparent)]
    Hub(zsc_core::hub::HubError),

    /// The encoder returned something other than `[batch, sequence, dim]` f32.
    #[error("ONNX model {path} returned an unexpected output: {message}")]
    BadOutput {
        /// The ONNX file.
        path: PathBuf,
        /// What was returned.
        message: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
