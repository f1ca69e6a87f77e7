//! Test bundles: tiny random BERT checkpoints (zsc_testkit::fixtures) with hand-written head
//! tensors, exported with `zsc_export::export_bundle`. Built once per test binary under
//! CARGO_TARGET_TMPDIR (cargo runs test binaries one after another).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use zsc_core::{ModelType, SplitRatios};
use zsc_testkit::checkpoint::FakeCheckpoint;
use zsc_testkit::fixtures::TinyBert;

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

/// A tiny checkpoint folder of the given type (trained on `data`, if given).
pub fn write_checkpoint(dir: &Path, model_type: ModelType, template: Option<&str>, data: Option<&Path>) {
    let mut c = FakeCheckpoint::new(model_type, TinyBert { hidden_size: HIDDEN, ..TinyBert::default() }, MAX_LENGTH);
    c = match model_type {
        ModelType::BiEncoder => c,
        ModelType::PolyEncoder => c.poly_codes(N_CODES, poly_codes()),
        ModelType::Colbert => c.colbert(COLBERT_DIM, values(COLBERT_DIM * HIDDEN, 12), COLBERT_SCALE),
    };
    c.spec.label_template = template.map(String::from);
    if let Some(d) = data {
        c.data = d.to_path_buf();
    }
    c.split = SplitRatios { train: 0.5, val: 0.25, test: 0.25 };
    c.created_by = "runtime tests".into();
    c.write(dir);
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
