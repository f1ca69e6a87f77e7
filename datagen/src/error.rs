//! Typed errors of the datagen library. Messages name the file, URL or setting at fault; they
//! never contain an API key or token.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DatagenError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: invalid YAML: {source}")]
    Yaml {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("invalid setting: {0}")]
    Config(String),
    #[error("{0}")]
    MissingCredential(String),
    #[error("request to {url} failed: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{what}: HTTP {status} from {url}: {body}")]
    Status { what: String, url: String, status: u16, body: String },
    #[error("{what}: gave up after {attempts} attempt(s); last error: {last}")]
    RetriesExhausted { what: String, attempts: u32, last: String },
    #[error("unexpected response: {0}")]
    Protocol(String),
    #[error("{path}: {message}")]
    WorkFile { path: PathBuf, message: String },
    #[error(transparent)]
    Core(#[from] zsc_core::CoreError),
    #[error("{failed} of {total} item(s) failed ({done} done); run the same command again to resume")]
    Incomplete { failed: usize, done: usize, total: usize },
}

impl DatagenError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DatagenError::Io { path: path.into(), source }
    }
}

pub type Result<T, E = DatagenError> = std::result::Result<T, E>;
