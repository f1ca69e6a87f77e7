//! Reading the Hugging Face encoder `config.json` and the f32 weights out of `model.safetensors`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::ExportError;

use zsc_core::EncoderConfig;

/// Read `config.json` (the shared [`EncoderConfig`]) and check that the ONNX graph can express it:
/// the graph writes the exact (erf) GELU only.
pub fn load_encoder_config(path: &Path) -> Result<EncoderConfig, ExportError> {
    if !path.exists() {
        return Err(ExportError::MissingFile { path: path.to_path_buf(), what: "the Hugging Face config.json" });
    }
    let c = EncoderConfig::load(path).map_err(|e| match e {
        zsc_core::CoreError::Json { path, source } => ExportError::ConfigJson { path, source },
        zsc_core::CoreError::Data { path, message } => ExportError::Config { path, message },
        other => ExportError::Core(other),
    })?;
    if c.hidden_act != "gelu" {
        return Err(ExportError::Config {
            path: path.to_path_buf(),
            message: format!("hidden_act `{}` is not supported, only the exact (erf) `gelu`", c.hidden_act),
        });
    }
    Ok(c)
}

/// A dense f32 tensor, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    /// `[rows, cols]` -> `[cols, rows]`: Hugging Face Linear weights are `[out, in]`, the graph
    /// multiplies `x @ W^T`, so transposing once here lets it use a plain MatMul.
    pub fn transposed_2d(&self) -> Tensor {
        let (r, c) = (self.shape[0], self.shape[1]);
        let mut data = vec![0f32; r * c];
        for i in 0..r {
            for j in 0..c {
                data[j * r + i] = self.data[i * c + j];
            }
        }
        Tensor { shape: vec![c, r], data }
    }
}

/// All f32-convertible tensors of a `model.safetensors`, under the encoder's own names
/// ([`EncoderConfig::hf_key`]: task-model prefixes removed, pooler and pretraining heads
/// skipped); integer buffers are skipped too.
#[derive(Debug)]
pub struct Weights {
    pub path: PathBuf,
    tensors: BTreeMap<String, Tensor>,
}

impl Weights {
    pub fn load(path: &Path, cfg: &EncoderConfig) -> Result<Self, ExportError> {
        if !path.exists() {
            return Err(ExportError::MissingFile { path: path.to_path_buf(), what: "the model weights" });
        }
        let bytes = std::fs::read(path).map_err(|source| ExportError::Io { path: path.to_path_buf(), source })?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|source| ExportError::Safetensors { path: path.to_path_buf(), source })?;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            let Some(key) = cfg.hf_key(&name) else { continue };
            // Integer buffers (`embeddings.position_ids`, `embeddings.token_type_ids`) are not weights.
            if is_integer(view.dtype()) {
                tracing::debug!(tensor = %name, "skipping non-float buffer");
                continue;
            }
            let data = to_f32(view.dtype(), view.data()).ok_or_else(|| ExportError::UnsupportedDtype {
                path: path.to_path_buf(),
                name: name.clone(),
                dtype: format!("{:?}", view.dtype()),
            })?;
            tensors.insert(key, Tensor { shape: view.shape().to_vec(), data });
        }
        Ok(Weights { path: path.to_path_buf(), tensors })
    }

    /// Adds or replaces a tensor (tests, and callers assembling weights in memory).
    pub fn insert(&mut self, name: &str, tensor: Tensor) {
        self.tensors.insert(name.to_string(), tensor);
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The tensor `name`, checked to have shape `expected`.
    pub fn get(&self, name: &str, expected: &[usize]) -> Result<&Tensor, ExportError> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| ExportError::MissingTensor { path: self.path.clone(), name: name.to_string() })?;
        if t.shape != expected {
            return Err(ExportError::ShapeMismatch {
                path: self.path.clone(),
                name: name.to_string(),
                expected: expected.to_vec(),
                found: t.shape.clone(),
            });
        }
        Ok(t)
    }

    /// The shape of `name`, if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|t| t.shape.as_slice())
    }
}

fn is_integer(dtype: safetensors::Dtype) -> bool {
    use safetensors::Dtype;
    matches!(
        dtype,
        Dtype::BOOL | Dtype::U8 | Dtype::I8 | Dtype::I16 | Dtype::U16 | Dtype::I32 | Dtype::U32 | Dtype::I64 | Dtype::U64
    )
}

fn to_f32(dtype: safetensors::Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    use safetensors::Dtype;
    match dtype {
        Dtype::F32 => Some(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
        Dtype::F16 => Some(bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect()),
        Dtype::BF16 => Some(bytes.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect()),
        Dtype::F64 => Some(
            bytes.chunks_exact(8).map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32).collect(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_2d() {
        let t = Tensor { shape: vec![2, 3], data: vec![1., 2., 3., 4., 5., 6.] };
        let tt = t.transposed_2d();
        assert_eq!(tt.shape, vec![3, 2]);
        assert_eq!(tt.data, vec![1., 4., 2., 5., 3., 6.]);
    }
}
