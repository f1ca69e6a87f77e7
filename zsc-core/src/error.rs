use std::path::PathBuf;

/// Errors of the shared crate. Every variant names the file or field at fault.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("reading {path}: {source}")]
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
    #[error("config field `{field}`: {message}")]
    Config { field: String, message: String },
    #[error("{path}: {message}")]
    Data { path: PathBuf, message: String },
    #[error("tokenizer {path}: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, CoreError>;

impl CoreError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CoreError::Io { path: path.into(), source }
    }
}

/// One line for a user: the error and its causes joined by ": ", skipping a cause whose text the
/// line already contains (our error messages embed their source's text, so printing the chain
/// as is would say "No such file or directory" twice).
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(cause) = cur {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_says_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory (os error 2)");
        let e = CoreError::io("/x/config.yml", io);
        assert_eq!(error_chain(&e), "reading /x/config.yml: No such file or directory (os error 2)");
        #[derive(Debug, thiserror::Error)]
        #[error("training run runs/a")]
        struct Outer(#[source] CoreError);
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        assert_eq!(error_chain(&Outer(CoreError::io("/d", io))), "training run runs/a: reading /d: gone");
    }
}
