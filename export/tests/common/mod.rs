//! Shared helpers for the export integration tests: fake checkpoints built on the tiny BERT, and
//! the Python (onnx + onnxruntime) checks.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use zsc_core::{ModelType, SplitRatios};
use zsc_testkit::checkpoint::FakeCheckpoint;
use zsc_testkit::fixtures::TinyBert;

pub const N_CODES: usize = 3;
pub const COLBERT_DIM: usize = 16;
pub const SCORE_SCALE: f32 = 10.0;

pub fn tiny() -> TinyBert {
    TinyBert::default()
}

/// Deterministic pseudo-random values in [-0.5, 0.5).
pub fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(12345);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x as f32 / u32::MAX as f32) - 0.5
        })
        .collect()
}

#[allow(unused_imports)]
pub use zsc_testkit::checkpoint::{read_tensors, write_tensors};

/// A fake trainer checkpoint: the tiny BERT plus the head tensors of `model_type` and a
/// zsc_checkpoint.json. `with_head = false` leaves the head tensors out (for error tests).
pub fn write_checkpoint(dir: &Path, model_type: ModelType, with_head: bool) {
    let h = tiny().hidden_size;
    let mut c = FakeCheckpoint::new(model_type, tiny(), 32);
    c = match model_type {
        ModelType::BiEncoder => c,
        ModelType::PolyEncoder => c.poly_codes(N_CODES, values(N_CODES * h, 1)),
        ModelType::Colbert => c.colbert(COLBERT_DIM, values(COLBERT_DIM * h, 2), SCORE_SCALE),
    };
    if !with_head {
        c.head.clear();
    }
    c.spec.label_template = Some("This text is about {}.".into());
    c.split = SplitRatios { train: 0.7, val: 0.2, test: 0.1 };
    c.created_by = "export tests".into();
    c.write(dir);
}

fn python() -> PathBuf {
    let p = std::env::var("ZSC_PYTHON")
        .unwrap_or_else(|_| zsc_testkit::fixtures::workspace_root().join(".venv/bin/python").display().to_string());
    let p = PathBuf::from(p);
    if p.is_relative() {
        zsc_testkit::fixtures::workspace_root().join(p)
    } else {
        p
    }
}

/// Runs `export/tests/python/<script>` with `args`; returns (success, stdout, stderr).
pub fn run_python(script: &str, args: &[&Path]) -> (bool, String, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python").join(script);
    let py = python();
    let out = Command::new(&py)
        .arg(&script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} (set ZSC_PYTHON; scripts/setup.sh makes .venv): {e}", py.display()));
    (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
}

/// The last stdout line of a Python check, parsed as JSON.
pub fn last_json(stdout: &str) -> serde_json::Value {
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}
