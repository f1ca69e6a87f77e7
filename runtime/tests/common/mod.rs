//! Test bundles: tiny random BERT checkpoints (zsc_testkit::fixtures) with hand-written head
//! tensors, exported with `zsc_export::export_bundle`. Built once per test binary under
//! CARGO_TARGET_TMPDIR (cargo runs test binaries one after another).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use zsc_core::manifest::{checkpoint_files, tensor_names, write_json_atomic};
use zsc_core::{CheckpointInfo, ModelSpec, ModelType, SplitRatios};
use zsc_testkit::fixtures::{write_tiny_bert, TinyBert};

pub const HIDDEN: usize = 32;
pub const N_CODES: usize = 4;
pub const COLBERT_DIM: usize = 16;
pub const COLBERT_SCALE: f32 = 7.5;
pub const MAX_LENGTH: usize = 24;

/// Deterministic pseudo-random values in [-1, 1).
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = zsc_core::rng::SplitMix64::new(seed);
    (0..n).map(|_| ((rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0).collect()
}

pub fn poly_codes() -> Vec<f32> {
    // Scaled up so the code attention is far from uniform over the tokens.
    values(N_CODES * HIDDEN, 11).into_iter().map(|v| v * 3.0).collect()
}

/// Add head tensors to a checkpoint's model.safetensors.
fn add_tensors(path: &Path, extra: Vec<(String, Vec<usize>, Vec<f32>)>) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut all: BTreeMap<String, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    for (name, t) in st.tensors() {
        all.insert(name.to_string(), (t.shape().to_vec(), t.data().to_vec()));
    }
    for (name, shape, v) in extra {
        all.insert(name, (shape, v.iter().flat_map(|x| x.to_le_bytes()).collect()));
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = all
        .iter()
        .map(|(k, (s, d))| (k.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d).unwrap()))
        .collect();
    drop(st);
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// A tiny checkpoint folder of the given type (trained on `data`, if given).
pub fn write_checkpoint(dir: &Path, model_type: ModelType, template: Option<&str>, data: Option<&Path>) {
    write_tiny_bert(dir, TinyBert { hidden_size: HIDDEN, ..TinyBert::default() }).unwrap();
    let weights = dir.join(checkpoint_files::WEIGHTS);
    let (n_code_vectors, colbert_dim) = match model_type {
        ModelType::BiEncoder => (None, None),
        ModelType::PolyEncoder => {
            add_tensors(&weights, vec![(tensor_names::POLY_CODES.into(), vec![N_CODES, HIDDEN], poly_codes())]);
            (Some(N_CODES), None)
        }
        ModelType::Colbert => {
            add_tensors(
                &weights,
                vec![
                    (tensor_names::COLBERT_PROJ.into(), vec![COLBERT_DIM, HIDDEN], values(COLBERT_DIM * HIDDEN, 12)),
                    (tensor_names::COLBERT_SCALE.into(), vec![1], vec![COLBERT_SCALE]),
                ],
            );
            (None, Some(COLBERT_DIM))
        }
    };
    let info = CheckpointInfo {
        format_version: zsc_core::manifest::FORMAT_VERSION,
        spec: ModelSpec {
            model_type,
            hidden_size: HIDDEN,
            max_length: MAX_LENGTH,
            n_code_vectors,
            colbert_dim,
            label_template: template.map(String::from),
            similarity: Default::default(),
            embedding: Default::default(),
            colbert_scoring: Default::default(),
        },
        base_model: "tiny".into(),
        data: data.map(Path::to_path_buf).unwrap_or_else(|| "data/train.json".into()),
        split: SplitRatios { train: 0.5, val: 0.25, test: 0.25 },
        seed: 7,
        step: 1,
        val_loss: None,
        created_by: "runtime tests".into(),
    };
    write_json_atomic(&dir.join(checkpoint_files::INFO), &info).unwrap();
}

pub fn tmp_root() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("runtime-tests")
}

/// Export a fresh bundle `name` (replacing any earlier one). Names must be unique across the
/// test binaries of this crate.
pub fn make_bundle(name: &str, model_type: ModelType, template: Option<&str>, data: Option<&Path>) -> PathBuf {
    let root = tmp_root().join(name);
    let _ = std::fs::remove_dir_all(&root);
    let ckpt = root.join("checkpoint");
    let bundle = root.join("bundle");
    write_checkpoint(&ckpt, model_type, template, data);
    zsc_export::export_bundle(&ckpt, &bundle, &zsc_export::ExportOptions::default()).unwrap();
    bundle
}

pub struct Bundles {
    pub bi: PathBuf,
    pub poly: PathBuf,
    pub colbert: PathBuf,
}

/// The three tiny bundles, exported once per test binary.
pub fn bundles() -> &'static Bundles {
    static B: OnceLock<Bundles> = OnceLock::new();
    B.get_or_init(|| Bundles {
        bi: make_bundle("bi", ModelType::BiEncoder, None, None),
        poly: make_bundle("poly", ModelType::PolyEncoder, None, None),
        colbert: make_bundle("colbert", ModelType::Colbert, None, None),
    })
}
