//! Fake trainer checkpoints: the tiny BERT ([`crate::fixtures`]) plus hand-written head tensors and
//! a `zsc_checkpoint.json`, for the exporter's and the runtime's tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use zsc_core::manifest::{checkpoint_files, tensor_names, write_json_atomic, FORMAT_VERSION};
use zsc_core::{CheckpointInfo, ModelSpec, ModelType, SplitRatios};

use crate::fixtures::{write_tiny_bert, TinyBert};

/// f32 tensors by name: shape and values.
pub type Tensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Every tensor of a safetensors file (all f32) as shape and values.
pub fn read_tensors(path: &Path) -> Tensors {
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

/// Write f32 tensors as a safetensors file.
pub fn write_tensors(path: &Path, tensors: &Tensors) {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> =
        tensors.iter().map(|(k, (s, d))| (k.clone(), s.clone(), d.iter().flat_map(|v| v.to_le_bytes()).collect())).collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = bytes
        .iter()
        .map(|(k, s, d)| (k.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d).unwrap()))
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// A fake checkpoint: what to write besides the tiny BERT.
#[derive(Debug, Clone)]
pub struct FakeCheckpoint {
    /// The tiny BERT's shape.
    pub bert: TinyBert,
    /// `zsc_checkpoint.json`'s spec (its `hidden_size` is taken from `bert`).
    pub spec: ModelSpec,
    /// Head tensors added to `model.safetensors` (none for a BiEncoder, or to test a missing head).
    pub head: Tensors,
    /// The training data the checkpoint claims.
    pub data: PathBuf,
    /// Its split ratios.
    pub split: SplitRatios,
    /// Who wrote it (`created_by`).
    pub created_by: String,
}

impl FakeCheckpoint {
    /// A checkpoint of `model_type` on `bert` with `max_length`, no head tensors yet (add them with
    /// [`FakeCheckpoint::poly_codes`] / [`FakeCheckpoint::colbert`]).
    pub fn new(model_type: ModelType, bert: TinyBert, max_length: usize) -> Self {
        let spec = ModelSpec {
            model_type,
            hidden_size: bert.hidden_size,
            max_length,
            n_code_vectors: None,
            colbert_dim: None,
            label_template: None,
            similarity: Default::default(),
            embedding: Default::default(),
            colbert_scoring: Default::default(),
        };
        FakeCheckpoint {
            bert,
            spec,
            head: Tensors::new(),
            data: "data/train.json".into(),
            split: SplitRatios::default(),
            created_by: "zsc-testkit".into(),
        }
    }

    /// PolyEncoder codes `[m, H]` (row-major values).
    pub fn poly_codes(mut self, m: usize, values: Vec<f32>) -> Self {
        self.spec.n_code_vectors = Some(m);
        self.head.insert(tensor_names::POLY_CODES.into(), (vec![m, self.bert.hidden_size], values));
        self
    }

    /// ColBERT projection `[dim, H]` and score scale.
    pub fn colbert(mut self, dim: usize, projection: Vec<f32>, scale: f32) -> Self {
        self.spec.colbert_dim = Some(dim);
        self.head.insert(tensor_names::COLBERT_PROJ.into(), (vec![dim, self.bert.hidden_size], projection));
        self.head.insert(tensor_names::COLBERT_SCALE.into(), (vec![1], vec![scale]));
        self
    }

    /// Write the checkpoint folder `dir`.
    pub fn write(&self, dir: &Path) {
        write_tiny_bert(dir, self.bert).unwrap();
        let weights = dir.join(checkpoint_files::WEIGHTS);
        let mut tensors = read_tensors(&weights);
        tensors.extend(self.head.clone());
        write_tensors(&weights, &tensors);
        let info = CheckpointInfo {
            format_version: FORMAT_VERSION,
            spec: ModelSpec { hidden_size: self.bert.hidden_size, ..self.spec.clone() },
            base_model: "tiny".into(),
            data: self.data.clone(),
            split: self.split,
            seed: 7,
            step: 1,
            val_loss: Some(0.5),
            created_by: self.created_by.clone(),
        };
        write_json_atomic(&dir.join(checkpoint_files::INFO), &info).unwrap();
    }
}
