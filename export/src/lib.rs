//! Checkpoint (or plain Hugging Face encoder folder) -> ONNX bundle, without libtorch or protoc.
//!
//! A bundle is `manifest.json` ([`BundleManifest`]), `encoder.onnx` (the BERT encoder, plus the
//! ColBERT projection and L2 normalisation for ColBERT), `head.safetensors` (head parameters the
//! runtime applies itself) and `tokenizer.json`. The ONNX graph is built node by node from the
//! safetensors weights ([`graph`]) and serialised with hand-written prost messages ([`onnx`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use zsc_core::manifest::{bundle_files, checkpoint_files, onnx_io, tensor_names, FORMAT_VERSION};
use zsc_core::{BundleManifest, CheckpointInfo, ColbertScoring, CoreError, ModelSpec, ModelType, Quantization, Similarity};

pub mod cli;
pub mod graph;
pub mod onnx;
pub mod quantize;
pub mod weights;

use graph::GraphHead;
use weights::Weights;

/// max_length for a plain Hugging Face folder (it has no checkpoint to say otherwise).
pub const DEFAULT_PLAIN_MAX_LENGTH: usize = 128;
/// The opset written unless asked otherwise.
pub const DEFAULT_OPSET: i64 = 17;
/// The newest opset the graph is known to be valid for (ReduceSum / Unsqueeze take axes as inputs
/// since 13, LayerNormalization exists since 17; nothing used changed up to 21).
pub const MAX_OPSET: i64 = 21;

#[derive(Debug, Clone, PartialEq)]
pub struct ExportOptions {
    /// For a checkpoint: must match the checkpoint's own type if given. For a plain Hugging Face
    /// folder: `BiEncoder` (the default) or `Colbert` (the base's own token vectors: identity
    /// projection, score scale 1, the untrained floor of a ColBERT).
    pub model_type: Option<ModelType>,
    pub opset: i64,
    /// Overrides the checkpoint's max_length (plain folder default: 128).
    pub max_length: Option<usize>,
    /// Plain Hugging Face folder only: `cosine` scores by cosine similarity (scale 1; the ranking
    /// is what an untuned model's cosine gives). A checkpoint keeps its own similarity.
    pub similarity: Option<Similarity>,
    /// Weight quantization of the encoder's linear layers (default none: f32).
    pub quantization: Quantization,
    /// int8 only: the linear layers kept in f32 (default [`quantize::DEFAULT_INT8_KEEP_F32`]).
    pub int8_keep_f32: Vec<quantize::LinearRole>,
    /// Plain folder only: the prompt before every text, a name of the model's prompts (`query`) or
    /// the text itself (`""` for none). Default: the model's `default_prompt_name`, if any.
    pub text_prompt: Option<String>,
    /// Plain folder only: the same for labels.
    pub label_prompt: Option<String>,
    /// ColBERT from a plain folder only: MaxSim direction and special tokens (a checkpoint keeps
    /// what it was trained with).
    pub colbert_scoring: Option<ColbertScoring>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            model_type: None,
            opset: DEFAULT_OPSET,
            max_length: None,
            similarity: None,
            quantization: Quantization::None,
            int8_keep_f32: quantize::DEFAULT_INT8_KEEP_F32.to_vec(),
            text_prompt: None,
            label_prompt: None,
            colbert_scoring: None,
        }
    }
}

impl ExportOptions {
    pub fn with_model_type(mut self, model_type: ModelType) -> Self {
        self.model_type = Some(model_type);
        self
    }

    pub fn with_opset(mut self, opset: i64) -> Self {
        self.opset = opset;
        self
    }

    pub fn with_max_length(mut self, max_length: usize) -> Self {
        self.max_length = Some(max_length);
        self
    }

    pub fn with_quantization(mut self, quantization: Quantization) -> Self {
        self.quantization = quantization;
        self
    }

    /// int8 only: which linear layers stay f32 (empty: all int8).
    pub fn with_int8_keep_f32(mut self, roles: &[quantize::LinearRole]) -> Self {
        self.int8_keep_f32 = roles.to_vec();
        self
    }

    pub fn with_similarity(mut self, similarity: Similarity) -> Self {
        self.similarity = Some(similarity);
        self
    }

    pub fn with_prompts(mut self, text_prompt: Option<String>, label_prompt: Option<String>) -> Self {
        self.text_prompt = text_prompt;
        self.label_prompt = label_prompt;
        self
    }

    pub fn with_colbert_scoring(mut self, scoring: ColbertScoring) -> Self {
        self.colbert_scoring = Some(scoring);
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("source folder {path} does not exist (expected a checkpoint or a Hugging Face encoder folder)")]
    MissingSource { path: PathBuf },
    #[error("{path}: missing {what}")]
    MissingFile { path: PathBuf, what: &'static str },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("{path}: invalid JSON: {source}")]
    ConfigJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{path}: not a valid safetensors file (truncated or corrupt?): {source}")]
    Safetensors {
        path: PathBuf,
        #[source]
        source: safetensors::SafeTensorError,
    },
    #[error("{path}: tensor `{name}` has dtype {dtype}, which cannot be converted to f32")]
    UnsupportedDtype { path: PathBuf, name: String, dtype: String },
    #[error("{path}: missing tensor `{name}`")]
    MissingTensor { path: PathBuf, name: String },
    #[error("{path}: tensor `{name}` has shape {found:?}, expected {expected:?}")]
    ShapeMismatch { path: PathBuf, name: String, expected: Vec<usize>, found: Vec<usize> },
    #[error("model type: {0}")]
    ModelType(String),
    #[error("option `{option}`: {message}")]
    Option { option: &'static str, message: String },
    #[error("output {path}: {message}")]
    Output { path: PathBuf, message: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ExportError + '_ {
    move |source| ExportError::Io { path: path.to_path_buf(), source }
}

/// Where the weights come from.
enum Source {
    Checkpoint(Box<CheckpointInfo>),
    /// A plain Hugging Face BERT folder (an untuned base model).
    HuggingFace,
}

/// Exports `src` (a trainer checkpoint folder, or a plain Hugging Face BERT folder as a
/// bi-encoder) into the bundle folder `out`, written atomically (a temporary sibling folder,
/// then a rename). An existing bundle at `out` is replaced; any other non-empty folder is refused.
pub fn export_bundle(src: &Path, out: &Path, opts: &ExportOptions) -> Result<BundleManifest, ExportError> {
    if !src.is_dir() {
        return Err(ExportError::MissingSource { path: src.to_path_buf() });
    }
    if opts.opset < onnx_io::MIN_OPSET || opts.opset > MAX_OPSET {
        return Err(ExportError::Option {
            option: "opset",
            message: format!("{} is not supported, use {}..={}", opts.opset, onnx_io::MIN_OPSET, MAX_OPSET),
        });
    }
    let source = if src.join(checkpoint_files::INFO).exists() {
        Source::Checkpoint(Box::new(CheckpointInfo::load(src)?))
    } else {
        Source::HuggingFace
    };
    let cfg = weights::load_encoder_config(&src.join(checkpoint_files::BERT_CONFIG))?;
    let tokenizer = src.join(checkpoint_files::TOKENIZER);
    if !tokenizer.is_file() {
        return Err(ExportError::MissingFile { path: tokenizer, what: "the tokenizer" });
    }

    let mut spec = match &source {
        Source::Checkpoint(info) => {
            if let Some(t) = opts.model_type {
                if t != info.spec.model_type {
                    return Err(ExportError::ModelType(format!(
                        "--model-type {t} contradicts the checkpoint {}, which is a {}",
                        src.join(checkpoint_files::INFO).display(),
                        info.spec.model_type
                    )));
                }
            }
            if opts.colbert_scoring.is_some_and(|c| c != info.spec.colbert_scoring) {
                return Err(ExportError::Option {
                    option: "colbert_scoring",
                    message: format!(
                        "the checkpoint was trained with {:?}; ColBERT serves what it was trained with",
                        info.spec.colbert_scoring
                    ),
                });
            }
            if opts.text_prompt.is_some() || opts.label_prompt.is_some() {
                return Err(ExportError::Option {
                    option: "text_prompt / label_prompt",
                    message: "a checkpoint keeps the prompts it was trained with; they cannot be changed at export".into(),
                });
            }
            if opts.similarity.is_some_and(|s| s != info.spec.similarity) {
                return Err(ExportError::Option {
                    option: "similarity",
                    message: format!(
                        "the checkpoint was trained with similarity {:?}; it cannot be changed at export",
                        info.spec.similarity
                    ),
                });
            }
            info.spec.clone()
        }
        Source::HuggingFace => {
            let t = opts.model_type.unwrap_or(ModelType::BiEncoder);
            if t == ModelType::PolyEncoder {
                return Err(ExportError::ModelType(format!(
                    "{} is a plain Hugging Face folder (no {}): it has no trained {t} head, so it can only be \
                     exported as bi_encoder (or colbert: its own token vectors)",
                    src.display(),
                    checkpoint_files::INFO
                )));
            }
            // a sentence-transformers folder brings its pooling, prompts, length and similarity,
            // so the untouched base scores as sentence-transformers scores it
            let st = zsc_core::SentenceTransformerFolder::read(src)?;
            if t == ModelType::Colbert && opts.similarity.is_some() {
                return Err(ExportError::Option { option: "similarity", message: "a colbert bundle scores by MaxSim".into() });
            }
            ModelSpec {
                model_type: t,
                hidden_size: cfg.hidden_size,
                max_length: st.max_seq_length.unwrap_or(DEFAULT_PLAIN_MAX_LENGTH).min(cfg.max_tokens()),
                n_code_vectors: None,
                colbert_dim: (t == ModelType::Colbert).then_some(cfg.hidden_size),
                label_template: None,
                similarity: if t == ModelType::Colbert {
                    Similarity::Dot
                } else {
                    opts.similarity.or(st.similarity).unwrap_or_default()
                },
                embedding: st.embedding_with(opts.text_prompt.as_deref(), opts.label_prompt.as_deref()),
                colbert_scoring: if t == ModelType::Colbert {
                    opts.colbert_scoring.unwrap_or_default()
                } else {
                    Default::default()
                },
            }
        }
    };
    if let Some(n) = opts.max_length {
        spec.max_length = n;
    }
    if spec.max_length > cfg.max_tokens() {
        return Err(ExportError::Option {
            option: "max_length",
            message: format!(
                "{} exceeds the {} tokens the model's position table holds (max_position_embeddings {})",
                spec.max_length,
                cfg.max_tokens(),
                cfg.max_position_embeddings
            ),
        });
    }
    if spec.hidden_size != cfg.hidden_size {
        return Err(ExportError::Config {
            path: src.join(checkpoint_files::INFO),
            message: format!("spec.hidden_size {} differs from config.json hidden_size {}", spec.hidden_size, cfg.hidden_size),
        });
    }
    spec.validate()?;

    let mut weights = Weights::load(&src.join(checkpoint_files::WEIGHTS), &cfg)?;
    if matches!(source, Source::HuggingFace) && spec.model_type == ModelType::Colbert {
        // the untrained floor: the base's own token vectors, L2-normalised, MaxSim unscaled
        let h = cfg.hidden_size;
        let identity = (0..h * h).map(|i| if i / h == i % h { 1.0 } else { 0.0 }).collect();
        weights.insert(tensor_names::COLBERT_PROJ, weights::Tensor { shape: vec![h, h], data: identity });
        weights.insert(tensor_names::COLBERT_SCALE, weights::Tensor { shape: vec![1], data: vec![1.0] });
    }
    let h = cfg.hidden_size;
    // Head tensors: validated here, before anything is written.
    let mut cosine_scale = Vec::new();
    if spec.similarity == Similarity::Cosine {
        let scale = match &source {
            Source::Checkpoint(_) => weights.get(tensor_names::COSINE_SCALE, &[1])?.clone(),
            Source::HuggingFace => weights::Tensor { shape: vec![1], data: vec![1.0] },
        };
        cosine_scale.push((tensor_names::COSINE_SCALE, scale));
    }
    let (graph_head, head_tensors): (GraphHead, Vec<(&str, weights::Tensor)>) = match spec.model_type {
        ModelType::BiEncoder => (GraphHead::HiddenState, cosine_scale),
        ModelType::PolyEncoder => {
            let m = spec.n_code_vectors.unwrap_or(0);
            let codes = weights.get(tensor_names::POLY_CODES, &[m, h])?.clone();
            let mut tensors = vec![(tensor_names::POLY_CODES, codes)];
            tensors.extend(cosine_scale);
            (GraphHead::HiddenState, tensors)
        }
        ModelType::Colbert => {
            let dim = spec.colbert_dim.unwrap_or(0);
            weights.get(tensor_names::COLBERT_PROJ, &[dim, h])?;
            let scale = weights.get(tensor_names::COLBERT_SCALE, &[1])?.clone();
            (GraphHead::ColbertProjection { dim }, vec![(tensor_names::COLBERT_SCALE, scale)])
        }
    };

    let int8_keep_f32 = match opts.quantization {
        Quantization::Int8 => quantize::keep_f32_to_string(&opts.int8_keep_f32),
        Quantization::None => "n/a".to_string(),
    };
    let source_str = std::path::absolute(src).unwrap_or_else(|_| src.to_path_buf()).display().to_string();
    let metadata = vec![
        ("zsc.model_type".to_string(), spec.model_type.to_string()),
        ("zsc.source".to_string(), source_str.clone()),
        ("zsc.quantization".to_string(), opts.quantization.to_string()),
        ("zsc.int8_keep_f32".to_string(), int8_keep_f32.clone()),
        ("zsc.model_family".to_string(), cfg.model_type.clone().unwrap_or_else(|| "bert".into())),
    ];
    tracing::info!(
        model_type = %spec.model_type,
        family = ?cfg.family(),
        layers = cfg.num_hidden_layers,
        hidden = h,
        opset = opts.opset,
        quantization = %opts.quantization,
        int8_keep_f32 = %int8_keep_f32,
        "building ONNX graph"
    );
    let model =
        graph::build_encoder_model(&cfg, &weights, &graph_head, opts.opset, opts.quantization, &opts.int8_keep_f32, metadata)?;
    drop(weights);
    // A single protobuf file cannot exceed 2 GiB (external data files are not written here).
    let encoded_len = prost::Message::encoded_len(&model);
    if encoded_len > i32::MAX as usize {
        return Err(ExportError::Output {
            path: out.to_path_buf(),
            message: format!("the ONNX model would be {encoded_len} bytes, over protobuf's 2 GiB limit"),
        });
    }
    let onnx_bytes = prost::Message::encode_to_vec(&model);
    drop(model);

    let output_dim = spec.output_dim();
    let output = match spec.model_type {
        ModelType::Colbert => onnx_io::TOKEN_EMBEDDINGS,
        _ => onnx_io::LAST_HIDDEN_STATE,
    };
    let mut versions = BTreeMap::new();
    versions.insert("export".to_string(), env!("CARGO_PKG_VERSION").to_string());
    versions.insert("onnx_ir_version".to_string(), onnx::IR_VERSION.to_string());
    versions.insert("onnx_opset".to_string(), opts.opset.to_string());
    let (data, split, seed) = match &source {
        Source::Checkpoint(info) => (Some(info.data.clone()), Some(info.split), Some(info.seed)),
        Source::HuggingFace => (None, None, None),
    };
    // a checkpoint's calibration.json (written by the trainer) travels into the manifest
    let calibration = match &source {
        Source::Checkpoint(_) => zsc_core::Calibration::load_from_checkpoint(src)?,
        Source::HuggingFace => None,
    };
    let manifest = BundleManifest {
        format_version: FORMAT_VERSION,
        spec,
        opset: opts.opset,
        encoder: bundle_files::ENCODER.into(),
        head: bundle_files::HEAD.into(),
        tokenizer: bundle_files::TOKENIZER.into(),
        inputs: graph::graph_inputs(cfg.family()).into_iter().map(String::from).collect(),
        output: output.into(),
        output_dim,
        data,
        split,
        seed,
        source: source_str,
        versions,
        quantization: opts.quantization,
        calibration,
    };

    write_bundle(out, |tmp| {
        std::fs::write(tmp.join(bundle_files::ENCODER), &onnx_bytes).map_err(io_err(&tmp.join(bundle_files::ENCODER)))?;
        write_head(&tmp.join(bundle_files::HEAD), &manifest.spec.model_type, &head_tensors)?;
        let tok_dst = tmp.join(bundle_files::TOKENIZER);
        std::fs::copy(&tokenizer, &tok_dst).map_err(io_err(&tokenizer))?;
        zsc_core::manifest::write_json_atomic(&tmp.join(bundle_files::MANIFEST), &manifest)?;
        Ok(())
    })?;
    tracing::info!(bundle = %out.display(), bytes = onnx_bytes.len(), "bundle written");
    Ok(manifest)
}

fn write_head(path: &Path, model_type: &ModelType, tensors: &[(&str, weights::Tensor)]) -> Result<(), ExportError> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, t)| (name.to_string(), t.shape.clone(), t.data.iter().flat_map(|v| v.to_le_bytes()).collect()))
        .collect();
    let mut views = Vec::new();
    for (name, shape, data) in &bytes {
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
            .map_err(|source| ExportError::Safetensors { path: path.to_path_buf(), source })?;
        views.push((name.clone(), view));
    }
    let mut meta = std::collections::HashMap::new();
    meta.insert("model_type".to_string(), model_type.to_string());
    safetensors::serialize_to_file(views, Some(meta), path)
        .map_err(|source| ExportError::Safetensors { path: path.to_path_buf(), source })
}

/// Fills a fresh temporary folder next to `out`, then moves it into place. An existing bundle
/// (or empty folder) at `out` is replaced; the old one is only removed after the new one is in place.
fn write_bundle(out: &Path, fill: impl FnOnce(&Path) -> Result<(), ExportError>) -> Result<(), ExportError> {
    let name = out
        .file_name()
        .ok_or_else(|| ExportError::Output { path: out.to_path_buf(), message: "not a folder name".into() })?
        .to_string_lossy()
        .to_string();
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    if out.exists() {
        let is_dir = out.is_dir();
        let empty = is_dir && std::fs::read_dir(out).map_err(io_err(out))?.next().is_none();
        if !is_dir || !(empty || out.join(bundle_files::MANIFEST).exists()) {
            return Err(ExportError::Output {
                path: out.to_path_buf(),
                message: "exists and is not a bundle folder; refusing to replace it".into(),
            });
        }
    }
    // Unique per process and call, so concurrent exports (e.g. parallel tests) never share a temp folder.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tag = format!("{}.{call}", std::process::id());
    let tmp = parent.join(format!(".{name}.tmp.{tag}"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
    }
    std::fs::create_dir(&tmp).map_err(io_err(&tmp))?;
    if let Err(e) = fill(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let old = parent.join(format!(".{name}.old.{tag}"));
    let had_old = out.exists();
    if had_old {
        std::fs::rename(out, &old).map_err(io_err(out))?;
    }
    if let Err(source) = std::fs::rename(&tmp, out) {
        if had_old {
            let _ = std::fs::rename(&old, out);
        }
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(ExportError::Io { path: out.to_path_buf(), source });
    }
    if had_old {
        std::fs::remove_dir_all(&old).map_err(io_err(&old))?;
    }
    Ok(())
}
