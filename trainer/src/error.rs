use std::path::PathBuf;

/// Errors of the trainer library. Every variant names the file, tensor or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum TrainerError {
    #[error(transparent)]
    Core(#[from] zsc_core::CoreError),
    #[error("{context}: {source}")]
    Torch {
        context: String,
        #[source]
        source: tch::TchError,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Model { path: PathBuf, message: String },
    #[error("training diverged at step {step}: loss is {loss} (the last good checkpoint is kept)")]
    NonFiniteLoss { step: usize, loss: f64 },
    #[error("training diverged at step {step}: the gradient norm is {norm} (the last good checkpoint is kept)")]
    NonFiniteGradient { step: usize, norm: f64 },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, TrainerError>;

impl TrainerError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainerError::Io { path: path.into(), source }
    }
    pub fn torch(context: impl Into<String>, source: tch::TchError) -> Self {
        TrainerError::Torch { context: context.into(), source }
    }
    pub fn model(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        TrainerError::Model { path: path.into(), message: message.into() }
    }
}
