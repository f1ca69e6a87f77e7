//! Shared helpers for the export integration tests: fake checkpoints built on the tiny BERT, and
//! the Python (onnx + onnxruntime) checks.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use zsc_core::manifest::{checkpoint_files, tensor_names, FORMAT_VERSION};
use zsc_core::{CheckpointInfo, ModelSpec, ModelType, SplitRatios};
use zsc_testkit::fixtures::{write_tiny_bert, TinyBert};

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

/// Reads all tensors of a safetensors file as (shape, f32 values).
pub fn read_tensors(path: &Path) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, v)| {
            let data = v.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            (name, (v.shape().to_vec(), data))
        })
        .collect()
}

pub fn write_tensors(path: &Path, tensors: &BTreeMap<String, (Vec<usize>, Vec<f32>)>) {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> =
        tensors.iter().map(|(k, (s, d))| (k.clone(), s.clone(), d.iter().flat_map(|v| v.to_le_bytes()).collect())).collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
        .iter()
        .map(|(k, s, d)| (k.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// A fake trainer checkpoint: the tiny BERT plus the head tensors of `model_type` and a
/// zsc_checkpoint.json. `with_head = false` leaves the head tensors out (for error tests).
pub fn write_checkpoint(dir: &Path, model_type: ModelType, with_head: bool) {
    write_tiny_bert(dir, tiny()).unwrap();
    let h = tiny().hidden_size;
    let wpath = dir.join(checkpoint_files::WEIGHTS);
    let mut t = read_tensors(&wpath);
    if with_head {
        match model_type {
            ModelType::BiEncoder => {}
            ModelType::PolyEncoder => {
                t.insert(tensor_names::POLY_CODES.into(), (vec![N_CODES, h], values(N_CODES * h, 1)));
            }
            ModelType::Colbert => {
                t.insert(tensor_names::COLBERT_PROJ.into(), (vec![COLBERT_DIM, h], values(COLBERT_DIM * h, 2)));
                t.insert(tensor_names::COLBERT_SCALE.into(), (vec![1], vec![SCORE_SCALE]));
            }
        }
    }
    write_tensors(&wpath, &t);
    let info = CheckpointInfo {
        format_version: FORMAT_VERSION,
        spec: ModelSpec {
            model_type,
            hidden_size: h,
            max_length: 32,
            n_code_vectors: (model_type == ModelType::PolyEncoder).then_some(N_CODES),
            colbert_dim: (model_type == ModelType::Colbert).then_some(COLBERT_DIM),
            label_template: Some("This text is about {}.".into()),
            similarity: Default::default(),
            embedding: Default::default(),
            colbert_scoring: Default::default(),
        },
        base_model: "tiny".into(),
        data: PathBuf::from("data/train.json"),
        split: SplitRatios { train: 0.7, val: 0.2, test: 0.1 },
        seed: 7,
        step: 10,
        val_loss: Some(0.5),
        created_by: "export tests".into(),
    };
    zsc_core::manifest::write_json_atomic(&dir.join(checkpoint_files::INFO), &info).unwrap();
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
