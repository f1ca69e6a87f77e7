//! Test support shared by the workspace's crates (not published): a tiny random BERT in Hugging
//! Face layout ([`fixtures`]), the tiny encoder families built with `transformers`
//! ([`tiny_families`]), a minimal HTTP server ([`http_stand_in`]) and the Hugging Face Hub
//! stand-in on it ([`hub_stand_in`]). No network: everything listens on 127.0.0.1.

#![allow(missing_docs)]

pub mod checkpoint;
pub mod fixtures;
pub mod http_stand_in;
pub mod hub_stand_in;

use std::path::PathBuf;
use std::process::Command;

pub use fixtures::{base_model_dir, workspace_root, write_tiny_bert, TinyBert};

/// The repo's Python (`$ZSC_PYTHON`, else `.venv/bin/python`), relative paths taken from the
/// workspace root.
pub fn python() -> PathBuf {
    let p = PathBuf::from(std::env::var("ZSC_PYTHON").unwrap_or_else(|_| ".venv/bin/python".into()));
    if p.is_relative() {
        workspace_root().join(p)
    } else {
        p
    }
}

/// Tiny random models of every encoder family (`scripts/tiny_families.py`, sentence-transformers
/// folders built with `transformers`) written into `dir`, and their `reference.json` (what
/// transformers and sentence-transformers compute on them).
pub fn tiny_families(dir: &std::path::Path) -> (PathBuf, serde_json::Value) {
    let out = Command::new(python()).arg(workspace_root().join("scripts/tiny_families.py")).arg(dir).output().unwrap();
    assert!(out.status.success(), "scripts/tiny_families.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let reference = serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
    (dir.to_path_buf(), reference)
}
