//! JSON files read with the path in every error, and files written atomically (temporary file,
//! fsync, rename), for manifests, checkpoint metadata and calibrations alike.

use std::path::Path;

use serde::Serialize;

use crate::error::{CoreError, Result};

/// Read and parse a JSON file; errors name the file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| CoreError::io(path, e))?;
    serde_json::from_str(&text).map_err(|source| CoreError::Json { path: path.to_path_buf(), source })
}

/// Write JSON atomically: a temporary file in the same folder, fsync, then rename.
pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CoreError::Invalid(e.to_string()))?;
    write_atomic(path, text.as_bytes())
}

/// Write bytes atomically (temporary file, fsync, rename), so a crash never leaves half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(|e| CoreError::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| CoreError::io(&tmp, e))?;
    f.sync_all().map_err(|e| CoreError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| CoreError::io(path, e))
}
