//! One ONNX Runtime environment per process, loaded dynamically (`ort` feature `load-dynamic`).
//!
//! Where the shared library comes from, first match wins:
//! 1. an explicit path in [`crate::ClassifierOptions::with_ort_dylib_path`],
//! 2. `ORT_DYLIB_PATH` in the environment at run time (`.cargo/config.toml` sets it for cargo commands),
//! 3. `ORT_DYLIB_PATH` as it was when the crate was compiled (so an installed `zsc` keeps working).
//!
//! The environment is created once ([`OnceLock`]); later classifiers reuse it whatever path they
//! ask for, because ONNX Runtime allows a single environment per process.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Environment variable naming the ONNX Runtime shared library.
pub const ORT_DYLIB_ENV: &str = "ORT_DYLIB_PATH";

static ENVIRONMENT: OnceLock<std::result::Result<ort::environment::Environment, (PathBuf, String)>> = OnceLock::new();

/// The library path that would be used, or `None` if nothing is configured.
pub fn resolve_dylib_path(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os(ORT_DYLIB_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    option_env!("ORT_DYLIB_PATH").filter(|p| !p.is_empty()).map(PathBuf::from)
}

/// Load ONNX Runtime and build the process-wide environment (once). Errors are remembered, so
/// every later call reports the same failure instead of retrying a half-initialised library.
pub fn environment(explicit: Option<&Path>) -> Result<ort::environment::Environment> {
    if let Some(done) = ENVIRONMENT.get() {
        return done.clone().map_err(|(path, message)| Error::OrtInit { path, message });
    }
    let path = resolve_dylib_path(explicit).ok_or(Error::OrtNotConfigured)?;
    let result = ENVIRONMENT.get_or_init(|| {
        if !path.exists() {
            return Err((path.clone(), "file not found".to_string()));
        }
        let builder = ort::init_from(&path).map_err(|e| (path.clone(), e.to_string()))?;
        builder.with_name("zsc").build().map_err(|e| (path.clone(), e.to_string()))
    });
    result.clone().map_err(|(path, message)| Error::OrtInit { path, message })
}
