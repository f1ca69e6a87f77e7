//! Speed bundles: the real MiniLM (`models/all-MiniLM-L6-v2`) exported as each architecture,
//! without training, because speed does not depend on the weights' values.
//!
//! - `bi_encoder`: the plain Hugging Face folder exported as is.
//! - `poly_encoder` / `colbert`: a fake checkpoint folder holding MiniLM's tensors plus random head
//!   tensors (`poly.codes` [16, 384] ~ N(0, 0.02); `colbert.proj.weight` [128, 384] ~ N(0, 0.02),
//!   `colbert.score_scale` [1] = 10) and a `zsc_checkpoint.json`, then exported like a trained one.
//!
//! Each also as `zsc-export --quantize int8` ([`ensure_speed_bundle_quantized`]). Bundles are cached
//! under `target/speed-bundles/<model_type>/` (int8: `<model_type>_int8/`; a `speed_bundle.json`
//! stamp says which recipe made them) and rebuilt only when missing or stale. Shared by `benches/inference.rs`
//! and `runtime/examples/throughput.rs` (included there with `#[path]`).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use zsc_core::config::{ModelType, SplitRatios};
use zsc_core::manifest::{checkpoint_files, tensor_names, write_json_atomic, CheckpointInfo, FORMAT_VERSION};
use zsc_core::{ModelSpec, Quantization};

/// Bumped whenever the recipe below changes, so stale cached bundles are rebuilt.
const RECIPE: &str = "speed-bundle-v1";
pub const N_CODE_VECTORS: usize = 16;
pub const COLBERT_DIM: usize = 128;
pub const MAX_LENGTH: usize = 128;
const HEAD_SEED: u64 = 20261127;

pub const ALL_TYPES: [ModelType; 3] = [ModelType::BiEncoder, ModelType::PolyEncoder, ModelType::Colbert];

/// `target/speed-bundles` under the workspace root.
pub fn speed_bundles_root() -> PathBuf {
    let root = zsc_testkit::fixtures::workspace_root();
    root.canonicalize().unwrap_or(root).join("target").join("speed-bundles")
}

/// Path of the cached f32 bundle of `model_type`, building it first if needed.
pub fn ensure_speed_bundle(model_type: ModelType) -> anyhow::Result<PathBuf> {
    ensure_speed_bundle_quantized(model_type, Quantization::None)
}

/// The folder name of a speed bundle: `bi_encoder`, `bi_encoder_int8`, ...
pub fn speed_bundle_name(model_type: ModelType, quantization: Quantization) -> String {
    match quantization {
        Quantization::None => model_type.as_str().to_string(),
        q => format!("{model_type}_{q}"),
    }
}

/// Path of the cached bundle of `model_type` exported with `quantization`, building it if needed.
pub fn ensure_speed_bundle_quantized(model_type: ModelType, quantization: Quantization) -> anyhow::Result<PathBuf> {
    let base = zsc_testkit::fixtures::base_model_dir();
    if !base.join(checkpoint_files::WEIGHTS).is_file() {
        bail!("the base model is missing: {} has no {} (run scripts/setup.sh)", base.display(), checkpoint_files::WEIGHTS);
    }
    let root = speed_bundles_root();
    let out = root.join(speed_bundle_name(model_type, quantization));
    let stamp_path = out.join("speed_bundle.json");
    let stamp = stamp_for(&base, model_type, quantization)?;
    if let Ok(text) = std::fs::read_to_string(&stamp_path) {
        if text.trim() == stamp && out.join("manifest.json").is_file() {
            return Ok(out);
        }
    }
    let src = match model_type {
        ModelType::BiEncoder => base.clone(),
        _ => {
            let ckpt = root.join("checkpoints").join(model_type.as_str());
            write_fake_checkpoint(&base, &ckpt, model_type)?;
            ckpt
        }
    };
    let opts = zsc_export::ExportOptions::default().with_model_type(model_type).with_quantization(quantization);
    zsc_export::export_bundle(&src, &out, &opts)
        .with_context(|| format!("exporting the {model_type} speed bundle from {}", src.display()))?;
    std::fs::write(&stamp_path, stamp.to_string()).with_context(|| format!("writing {}", stamp_path.display()))?;
    Ok(out)
}

/// What the cached bundle depends on: the recipe and the base model's weights file (size, mtime).
fn stamp_for(base: &Path, model_type: ModelType, quantization: Quantization) -> anyhow::Result<serde_json::Value> {
    let weights = base.join(checkpoint_files::WEIGHTS);
    let meta = std::fs::metadata(&weights).with_context(|| format!("reading {}", weights.display()))?;
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_secs()).unwrap_or(0);
    Ok(serde_json::json!({
        "recipe": RECIPE,
        "model_type": model_type.as_str(),
        "quantization": quantization.as_str(),
        "base_model": base.display().to_string(),
        "base_weights_bytes": meta.len(),
        "base_weights_mtime": mtime,
    }))
}

/// SplitMix64 + Box-Muller: N(0, std) draws, reproducible from a seed.
fn normal_values(n: usize, std: f32, seed: u64) -> Vec<f32> {
    let mut rng = zsc_core::rng::SplitMix64::new(seed);
    (0..n)
        .map(|_| {
            let u1 = ((rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
            let u2 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32 * std
        })
        .collect()
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A checkpoint folder as the trainer would write it: the base model's tensors (every dtype kept
/// as is), random head tensors, `config.json`, `tokenizer.json` and `zsc_checkpoint.json`.
pub fn write_fake_checkpoint(base: &Path, dir: &Path, model_type: ModelType) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let hidden = read_hidden_size(base)?;
    let weights_path = base.join(checkpoint_files::WEIGHTS);
    let bytes = std::fs::read(&weights_path).with_context(|| format!("reading {}", weights_path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: not a safetensors file: {e}", weights_path.display()))?;

    let mut heads: BTreeMap<String, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    let (n_code_vectors, colbert_dim) = match model_type {
        ModelType::BiEncoder => (None, None),
        ModelType::PolyEncoder => {
            let codes = normal_values(N_CODE_VECTORS * hidden, 0.02, HEAD_SEED);
            heads.insert(tensor_names::POLY_CODES.into(), (vec![N_CODE_VECTORS, hidden], f32_bytes(&codes)));
            (Some(N_CODE_VECTORS), None)
        }
        ModelType::Colbert => {
            let proj = normal_values(COLBERT_DIM * hidden, 0.02, HEAD_SEED + 1);
            heads.insert(tensor_names::COLBERT_PROJ.into(), (vec![COLBERT_DIM, hidden], f32_bytes(&proj)));
            heads.insert(tensor_names::COLBERT_SCALE.into(), (vec![1], f32_bytes(&[10.0])));
            (None, Some(COLBERT_DIM))
        }
    };
    let mut views: Vec<(String, safetensors::tensor::TensorView<'_>)> = Vec::new();
    for (name, view) in st.tensors() {
        views.push((name, view));
    }
    for (name, (shape, data)) in &heads {
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
            .map_err(|e| anyhow::anyhow!("head tensor {name}: {e}"))?;
        views.push((name.clone(), view));
    }
    let out_weights = dir.join(checkpoint_files::WEIGHTS);
    safetensors::serialize_to_file(views, None, &out_weights)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", out_weights.display()))?;
    for name in [checkpoint_files::BERT_CONFIG, checkpoint_files::TOKENIZER] {
        std::fs::copy(base.join(name), dir.join(name))
            .with_context(|| format!("copying {} into {}", base.join(name).display(), dir.display()))?;
    }
    let info = CheckpointInfo {
        format_version: FORMAT_VERSION,
        spec: ModelSpec {
            model_type,
            hidden_size: hidden,
            max_length: MAX_LENGTH,
            n_code_vectors,
            colbert_dim,
            label_template: None,
            similarity: Default::default(),
            embedding: Default::default(),
            colbert_scoring: Default::default(),
        },
        base_model: base.display().to_string(),
        data: PathBuf::from("none (speed bundle: MiniLM weights, random untrained head)"),
        split: SplitRatios::default(),
        seed: HEAD_SEED,
        step: 0,
        val_loss: None,
        created_by: "benches/speed_bundles.rs".into(),
    };
    write_json_atomic(&dir.join(checkpoint_files::INFO), &info)?;
    Ok(())
}

fn read_hidden_size(base: &Path) -> anyhow::Result<usize> {
    let path = base.join(checkpoint_files::BERT_CONFIG);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    value
        .get("hidden_size")
        .and_then(|v| v.as_u64())
        .map(|h| h as usize)
        .with_context(|| format!("{}: no integer `hidden_size`", path.display()))
}

/// The texts of a CLINC150-style data file (`[{"text": ..., "labels": [...]}, ...]`) and its
/// unique labels, sorted.
pub fn load_clinc(path: &Path) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let records: Vec<serde_json::Value> =
        serde_json::from_str(&text).with_context(|| format!("{}: expected a JSON list of records", path.display()))?;
    let mut texts = Vec::with_capacity(records.len());
    let mut labels = std::collections::BTreeSet::new();
    for (i, r) in records.iter().enumerate() {
        let t = r
            .get("text")
            .and_then(|t| t.as_str())
            .with_context(|| format!("{}: record {i} has no string `text`", path.display()))?;
        texts.push(t.to_string());
        if let Some(ls) = r.get("labels").and_then(|l| l.as_array()) {
            labels.extend(ls.iter().filter_map(|l| l.as_str()).map(str::to_string));
        }
    }
    Ok((texts, labels.into_iter().collect()))
}

/// `data/clinc150_test.json` under the workspace root.
pub fn clinc_test_path() -> PathBuf {
    let root = zsc_testkit::fixtures::workspace_root();
    root.canonicalize().unwrap_or(root).join("data").join("clinc150_test.json")
}
