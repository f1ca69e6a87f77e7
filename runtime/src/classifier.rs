//! [`Classifier`]: a loaded bundle (ONNX encoder + head + tokenizer) that scores texts against
//! any labels.

use std::borrow::Cow;
use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use ndarray::{Array2, Array3, ArrayView2, Axis};
use ort::session::{Session, SessionInputValue};
use ort::value::{TensorElementType, TensorRef, ValueType};
use zsc_core::config::{apply_template, ModelType};
use zsc_core::manifest::{bundle_files, onnx_io, tensor_names, BundleManifest};
use zsc_core::tokenize::{TextTokenizer, TokenBatch};
use zsc_core::{CoreError, ModelSpec, Similarity};

use crate::error::{Error, Result};
use crate::label::{Label, ViewAggregation};
use crate::options::{ClassifierOptions, ExecutionProvider, LabelTemplate};
use crate::probability::{Prediction, Probabilities, ProbabilityMode};
use crate::scoring::{l2_normalize_rows, Cosine, MaxSim, PolyAttention, SentencePool};
use zsc_core::calibration::Calibration;

mod pool;
pub use pool::{Adaptation, PoolVectors};

/// Gives every classifier a distinct id, so a [`LabelSet`] can't be used with another model.
static NEXT_CLASSIFIER_ID: AtomicU64 = AtomicU64::new(1);

/// The head applied to the encoder output.
#[derive(Debug, Clone)]
enum Head {
    /// `Some` with `similarity: cosine`.
    Bi(Option<Cosine>),
    Poly(PolyAttention, Option<Cosine>),
    Colbert(MaxSim),
}

/// Candidate labels encoded once by [`Classifier::encode_labels`], for many calls with the same
/// labels (the label side of the model runs once). Tied to the classifier that encoded it.
///
/// ```no_run
/// # fn main() -> zsc::Result<()> {
/// let clf = zsc::Classifier::from_dir("bundles/minilm", zsc::ClassifierOptions::default())?;
/// let labels = clf.encode_labels(&["billing", "delivery", "returns"])?;
/// assert_eq!(labels.len(), 3);
/// for batch in [["where is my parcel"], ["refund my order"]] {
///     let best = &clf.classify(&batch, &labels, 1)?[0][0];
///     println!("{} {:.2}", best.label, best.probability);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct LabelSet {
    labels: Vec<String>,
    owner: u64,
    source: String,
    /// One row (bi/poly) or token span (ColBERT) per view.
    repr: LabelRepr,
    /// The views of label `j`: `view_spans[j]`, a range of `repr`'s views.
    view_spans: Vec<Range<usize>>,
    aggregation: ViewAggregation,
}

#[derive(Debug, Clone)]
enum LabelRepr {
    /// Bi/poly: one pooled vector per view, `[V, H]`.
    Vectors(Array2<f32>),
    /// ColBERT: real token embeddings of all views stacked, view `v` owning rows `spans[v]`.
    Tokens { tokens: Array2<f32>, spans: Vec<Range<usize>> },
}

impl LabelSet {
    /// The labels as given (before the template).
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// How many labels.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are none (never true for a set [`Classifier::encode_labels`] returned).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// One text's view scores to its label scores (the identity when every label has one view).
    fn aggregate(&self, views: Vec<f32>) -> Vec<f32> {
        if views.len() == self.labels.len() {
            return views;
        }
        self.view_spans
            .iter()
            .map(|span| {
                let s = &views[span.clone()];
                match self.aggregation {
                    ViewAggregation::Max => s.iter().copied().fold(f32::NEG_INFINITY, f32::max),
                    _ => s.iter().sum::<f32>() / s.len() as f32,
                }
            })
            .collect()
    }
}

/// One vector per label: the mean of its views' unit vectors, scaled to the views' mean length
/// (so a dot-product head sees the norms it was trained with).
fn prototypes(vectors: &Array2<f32>, spans: &[Range<usize>]) -> Array2<f32> {
    let mut out = Array2::<f32>::zeros((spans.len(), vectors.ncols()));
    for (j, span) in spans.iter().enumerate() {
        let rows = vectors.slice(ndarray::s![span.clone(), ..]);
        let norms: Vec<f32> = rows.rows().into_iter().map(|r| r.dot(&r).sqrt().max(1e-12)).collect();
        let mut mean = ndarray::Array1::<f32>::zeros(vectors.ncols());
        for (r, n) in rows.rows().into_iter().zip(&norms) {
            mean.scaled_add(1.0 / n, &r);
        }
        let length = mean.dot(&mean).sqrt().max(1e-12);
        let target = norms.iter().sum::<f32>() / norms.len() as f32;
        out.row_mut(j).assign(&(mean * (target / length)));
    }
    out
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::LabelSet {}
    impl Sealed for std::sync::Arc<super::LabelSet> {}
    impl<S: Clone + Into<crate::Label>> Sealed for [S] {}
    impl<S: Clone + Into<crate::Label>, const N: usize> Sealed for [S; N] {}
    impl<S: Clone + Into<crate::Label>> Sealed for Vec<S> {}
}

/// What [`Classifier::classify`], [`Classifier::classify_multi_label`] and [`Classifier::scores`]
/// accept as candidate labels: a [`LabelSet`] (encoded once, reused; also in an `Arc` shared
/// between threads), [`Label`]s (names with descriptions and examples) or label names (`&[&str]`,
/// `&["a", "b"]`, `&Vec<String>`, ...), encoded on each call.
pub trait Labels: sealed::Sealed {
    #[doc(hidden)]
    fn label_set<'a>(&'a self, classifier: &Classifier) -> Result<Cow<'a, LabelSet>>;
}

impl Labels for LabelSet {
    fn label_set<'a>(&'a self, _: &Classifier) -> Result<Cow<'a, LabelSet>> {
        Ok(Cow::Borrowed(self))
    }
}

impl Labels for std::sync::Arc<LabelSet> {
    fn label_set<'a>(&'a self, _: &Classifier) -> Result<Cow<'a, LabelSet>> {
        Ok(Cow::Borrowed(self))
    }
}

impl<S: Clone + Into<Label>> Labels for [S] {
    fn label_set<'a>(&'a self, classifier: &Classifier) -> Result<Cow<'a, LabelSet>> {
        Ok(Cow::Owned(classifier.encode_labels(self)?))
    }
}

impl<S: Clone + Into<Label>, const N: usize> Labels for [S; N] {
    fn label_set<'a>(&'a self, classifier: &Classifier) -> Result<Cow<'a, LabelSet>> {
        self.as_slice().label_set(classifier)
    }
}

impl<S: Clone + Into<Label>> Labels for Vec<S> {
    fn label_set<'a>(&'a self, classifier: &Classifier) -> Result<Cow<'a, LabelSet>> {
        self.as_slice().label_set(classifier)
    }
}

/// A zero-shot classifier loaded from an ONNX bundle. `Send + Sync`: share it (`Arc`) between
/// threads; concurrent calls run in parallel up to `ClassifierOptions::sessions`.
///
/// ```no_run
/// use zsc::{Classifier, ClassifierOptions};
/// # fn main() -> zsc::Result<()> {
/// let clf = Classifier::from_dir("bundles/minilm", ClassifierOptions::default())?;
/// let texts = ["how do i transfer money", "add eggs to my shopping list"];
/// for (text, ranked) in texts.iter().zip(clf.classify(&texts, &["banking", "cooking", "shopping"], 1)?) {
///     println!("{text}: {} ({:.2})", ranked[0].label, ranked[0].probability);
/// }
/// let vectors = clf.embed(&texts)?; // [2, hidden], as sentence-transformers' encode
/// # Ok(())
/// # }
/// ```
pub struct Classifier {
    dir: PathBuf,
    manifest: BundleManifest,
    encoder_path: PathBuf,
    tokenizer: TextTokenizer,
    pad_id: i64,
    pad_type_id: i64,
    sessions: Vec<Mutex<Session>>,
    next_session: AtomicUsize,
    /// The graph's inputs, in its own order (a subset of the three contract names).
    inputs: Vec<String>,
    head: Head,
    template: Option<String>,
    batch_size: usize,
    view_aggregation: ViewAggregation,
    id: u64,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("dir", &self.dir)
            .field("model_type", &self.manifest.spec.model_type)
            .field("sessions", &self.sessions.len())
            .field("batch_size", &self.batch_size)
            .field("template", &self.template)
            .finish()
    }
}

fn manifest_error(dir: &Path, message: String) -> Error {
    Error::Manifest { dir: dir.to_path_buf(), source: CoreError::Data { path: dir.join(bundle_files::MANIFEST), message } }
}

/// Check that every file the manifest names exists.
fn bundle_file(dir: &Path, name: &str, what: &'static str) -> Result<PathBuf> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::MissingFile { dir: dir.to_path_buf(), what, path })
    }
}

/// Read the head tensors `head.safetensors` must hold for this model type, shapes checked.
fn load_head(path: &Path, spec: &ModelSpec) -> Result<Head> {
    let herr = |message: String| Error::Head { path: path.to_path_buf(), message };
    let bytes = std::fs::read(path).map_err(|e| herr(e.to_string()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| herr(format!("not a safetensors file: {e}")))?;
    let read = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
        let t = st.tensor(name).map_err(|_| herr(format!("tensor `{name}` is missing")))?;
        if t.dtype() != safetensors::Dtype::F32 {
            return Err(herr(format!("tensor `{name}` has dtype {:?}, expected F32", t.dtype())));
        }
        if t.shape() != shape {
            return Err(herr(format!("tensor `{name}` has shape {:?}, expected {shape:?}", t.shape())));
        }
        let values: Vec<f32> = t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        if values.iter().any(|v| !v.is_finite()) {
            return Err(herr(format!("tensor `{name}` holds NaN or infinite values")));
        }
        Ok(values)
    };
    let cosine = match spec.similarity {
        Similarity::Dot => None,
        Similarity::Cosine => Some(Cosine { score_scale: read(tensor_names::COSINE_SCALE, &[1])?[0] }),
    };
    match spec.model_type {
        ModelType::BiEncoder => Ok(Head::Bi(cosine)),
        ModelType::PolyEncoder => {
            let m = spec.n_code_vectors.unwrap_or(0);
            let h = spec.hidden_size;
            let codes = read(tensor_names::POLY_CODES, &[m, h])?;
            let codes = Array2::from_shape_vec((m, h), codes).map_err(|e| herr(e.to_string()))?;
            Ok(Head::Poly(PolyAttention::new(codes), cosine))
        }
        ModelType::Colbert => {
            let scale = read(tensor_names::COLBERT_SCALE, &[1])?;
            Ok(Head::Colbert(MaxSim::new(scale[0]).with_direction(spec.colbert_scoring.maxsim)))
        }
    }
}

fn tensor_type(v: &ValueType) -> Option<(TensorElementType, Vec<i64>)> {
    match v {
        ValueType::Tensor { ty, shape, .. } => Some((*ty, shape.to_vec())),
        _ => None,
    }
}

/// Load-time check of the graph against the manifest: input names and types, output name,
/// type and (when static) width. Returns the graph's input names in graph order.
fn check_graph(session: &Session, manifest: &BundleManifest, path: &Path) -> Result<Vec<String>> {
    let mismatch = |message: String| Error::GraphMismatch { path: path.to_path_buf(), message };
    let graph_inputs: Vec<String> = session.inputs().iter().map(|i| i.name().to_string()).collect();
    let want: HashSet<&str> = manifest.inputs.iter().map(String::as_str).collect();
    let have: HashSet<&str> = graph_inputs.iter().map(String::as_str).collect();
    if want != have {
        return Err(mismatch(format!("manifest lists inputs {:?}, the graph has {:?}", manifest.inputs, graph_inputs)));
    }
    for input in session.inputs() {
        match tensor_type(input.dtype()) {
            Some((TensorElementType::Int64, shape)) if shape.len() == 2 => {}
            other => {
                return Err(mismatch(format!(
                    "input `{}` must be an int64 [batch, sequence] tensor, found {other:?}",
                    input.name()
                )))
            }
        }
    }
    let Some(output) = session.outputs().iter().find(|o| o.name() == manifest.output) else {
        let names: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
        return Err(mismatch(format!("manifest output `{}` is not among the graph's outputs {names:?}", manifest.output)));
    };
    match tensor_type(output.dtype()) {
        Some((TensorElementType::Float32, shape)) if shape.len() == 3 => {
            let last = shape[2];
            if last >= 0 && last as usize != manifest.output_dim {
                return Err(mismatch(format!(
                    "output `{}` has width {last}, the manifest says output_dim = {}",
                    manifest.output, manifest.output_dim
                )));
            }
        }
        other => {
            return Err(mismatch(format!(
                "output `{}` must be a float32 [batch, sequence, dim] tensor, found {other:?}",
                manifest.output
            )))
        }
    }
    Ok(graph_inputs)
}

fn build_session(env: &ort::environment::Environment, path: &Path, options: &ClassifierOptions) -> Result<Session> {
    let serr = |source: ort::Error| Error::Session { path: path.to_path_buf(), source: source.into() };
    let mut builder = Session::builder(env).map_err(serr)?;
    builder = builder.with_optimization_level(options.optimization_level.to_ort()).map_err(|e| serr(e.into()))?;
    if let Some(n) = options.intra_threads {
        builder = builder.with_intra_threads(n).map_err(|e| serr(e.into()))?;
    }
    if let Some(spinning) = options.intra_op_spinning {
        builder = builder.with_intra_op_spinning(spinning).map_err(|e| serr(e.into()))?;
    }
    match options.execution_provider {
        // `ort` asks ONNX Runtime to pick devices for efficiency by default; on a machine with a
        // GPU or NPU execution provider that could move a session the caller asked to keep on CPU.
        ExecutionProvider::Cpu => {
            builder = builder.with_auto_device(ort::session::builder::AutoDevicePolicy::PreferCPU).map_err(|e| serr(e.into()))?;
        }
        #[cfg(feature = "cuda")]
        ExecutionProvider::Cuda { device_id } => {
            let ep = ort::ep::CUDA::default().with_device_id(device_id).build().error_on_failure();
            builder = builder.with_execution_providers([ep]).map_err(|e| Error::ExecutionProvider {
                provider: options.execution_provider.name(),
                message: <ort::Error>::from(e).to_string(),
            })?;
        }
        #[cfg(not(feature = "cuda"))]
        ExecutionProvider::Cuda { .. } => {
            return Err(Error::ExecutionProvider {
                provider: options.execution_provider.name(),
                message: "this build has no CUDA support; rebuild with `--features cuda`".into(),
            });
        }
    }
    builder.commit_from_file(path).map_err(serr)
}

impl Classifier {
    /// Load a bundle folder (`manifest.json`, `encoder.onnx`, `head.safetensors`, `tokenizer.json`).
    /// Everything is checked here, not on the first request: the files exist, the graph's inputs
    /// and output match the manifest, the head tensors have the spec's shapes.
    pub fn from_dir(dir: impl AsRef<Path>, options: ClassifierOptions) -> Result<Self> {
        let dir = dir.as_ref();
        if options.batch_size == 0 {
            return Err(Error::InvalidOption { option: "batch_size", message: "must be at least 1".into() });
        }
        if options.sessions == 0 {
            return Err(Error::InvalidOption { option: "sessions", message: "must be at least 1".into() });
        }
        if options.intra_threads == Some(0) {
            return Err(Error::InvalidOption { option: "intra_threads", message: "must be at least 1".into() });
        }
        let manifest = BundleManifest::load(dir).map_err(|source| Error::Manifest { dir: dir.to_path_buf(), source })?;
        let spec = &manifest.spec;
        let expected_output = match spec.model_type {
            ModelType::Colbert => onnx_io::TOKEN_EMBEDDINGS,
            _ => onnx_io::LAST_HIDDEN_STATE,
        };
        if manifest.output != expected_output {
            return Err(manifest_error(
                dir,
                format!("a {} bundle must output `{expected_output}`, the manifest says `{}`", spec.model_type, manifest.output),
            ));
        }
        let known = [onnx_io::INPUT_IDS, onnx_io::ATTENTION_MASK, onnx_io::TOKEN_TYPE_IDS];
        if let Some(bad) = manifest.inputs.iter().find(|i| !known.contains(&i.as_str())) {
            return Err(manifest_error(dir, format!("unknown input `{bad}`, expected some of {known:?}")));
        }
        for required in [onnx_io::INPUT_IDS, onnx_io::ATTENTION_MASK] {
            if !manifest.inputs.iter().any(|i| i == required) {
                return Err(manifest_error(dir, format!("inputs must include `{required}`")));
            }
        }
        let template = match &options.label_template {
            LabelTemplate::FromManifest => spec.label_template.clone(),
            LabelTemplate::Disabled => None,
            LabelTemplate::Custom(t) => Some(t.clone()),
        };
        if let Some(t) = &template {
            if !t.contains("{}") {
                return Err(Error::InvalidOption {
                    option: "label_template",
                    message: format!("must contain `{{}}` where the label goes, got {t:?}"),
                });
            }
        }

        let encoder_path = bundle_file(dir, &manifest.encoder, "encoder")?;
        let head_path = bundle_file(dir, &manifest.head, "head")?;
        let tokenizer_path = bundle_file(dir, &manifest.tokenizer, "tokenizer")?;

        let head = load_head(&head_path, spec)?;
        let tokenizer = TextTokenizer::from_file(&tokenizer_path, spec.max_length).map_err(Error::Tokenizer)?;
        if spec.colbert_scoring.special_tokens != zsc_core::SpecialTokenSides::Both {
            tokenizer.check_wraps_in_special_tokens().map_err(Error::Tokenizer)?;
        }
        let (pad_id, pad_type_id) =
            tokenizer.inner().get_padding().map(|p| (p.pad_id as i64, p.pad_type_id as i64)).unwrap_or((0, 0));

        let env = crate::ort_env::environment(options.ort_dylib_path.as_deref())?;
        let mut sessions = Vec::with_capacity(options.sessions);
        let mut inputs = Vec::new();
        for _ in 0..options.sessions {
            let session = build_session(&env, &encoder_path, &options)?;
            inputs = check_graph(&session, &manifest, &encoder_path)?;
            sessions.push(Mutex::new(session));
        }
        tracing::debug!(
            "loaded {} bundle {} ({} session(s), {})",
            spec.model_type,
            dir.display(),
            sessions.len(),
            options.execution_provider.name()
        );
        Ok(Classifier {
            dir: dir.to_path_buf(),
            encoder_path,
            tokenizer,
            pad_id,
            pad_type_id,
            sessions,
            next_session: AtomicUsize::new(0),
            inputs,
            head,
            template,
            batch_size: options.batch_size,
            view_aggregation: options.view_aggregation,
            id: NEXT_CLASSIFIER_ID.fetch_add(1, Ordering::Relaxed),
            manifest,
        })
    }

    /// The bundle's manifest (model spec, calibration, files).
    pub fn manifest(&self) -> &BundleManifest {
        &self.manifest
    }

    /// The model's spec: architecture, hidden size, max length, pooling and prompts.
    pub fn spec(&self) -> &ModelSpec {
        &self.manifest.spec
    }

    /// BiEncoder, PolyEncoder or ColBERT.
    pub fn model_type(&self) -> ModelType {
        self.manifest.spec.model_type
    }

    /// The bundle folder it was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The label template in effect (after any override).
    pub fn label_template(&self) -> Option<&str> {
        self.template.as_deref()
    }

    /// Texts per encoder call (`ClassifierOptions::with_batch_size`).
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Encode candidate labels once, for many calls with the same labels: names through the
    /// bundle's label template and prompt, descriptions with the label prompt, examples with the
    /// text prompt (they are texts of the label). No labels, an empty name, description or example,
    /// or more than [`crate::MAX_EXAMPLES_PER_LABEL`] examples are errors.
    pub fn encode_labels<L: Clone + Into<Label>>(&self, labels: &[L]) -> Result<LabelSet> {
        if labels.is_empty() {
            return Err(Error::NoLabels);
        }
        let labels: Vec<Label> = labels.iter().map(|l| l.clone().into()).collect();
        for (i, l) in labels.iter().enumerate() {
            l.validate(i)?;
        }
        let (inputs, view_spans) = self.view_inputs(&labels);
        let mut aggregation = self.view_aggregation;
        let repr = match self.head {
            Head::Bi(_) | Head::Poly(..) => {
                let vectors = self.pooled(&inputs)?;
                if aggregation == ViewAggregation::Prototype && vectors.nrows() > labels.len() {
                    aggregation = ViewAggregation::Mean; // one view per label from here on
                    LabelRepr::Vectors(prototypes(&vectors, &view_spans))
                } else {
                    LabelRepr::Vectors(vectors)
                }
            }
            Head::Colbert(_) => self.view_tokens(&inputs)?,
        };
        let view_spans = match &repr {
            LabelRepr::Vectors(v) if v.nrows() == labels.len() => (0..labels.len()).map(|j| j..j + 1).collect(),
            _ => view_spans,
        };
        Ok(LabelSet {
            labels: labels.into_iter().map(|l| l.name).collect(),
            owner: self.id,
            source: self.dir.display().to_string(),
            repr,
            view_spans,
            aggregation,
        })
    }

    /// The encoder inputs of every view of every label, and each label's range of views.
    fn view_inputs(&self, labels: &[Label]) -> (Vec<String>, Vec<Range<usize>>) {
        let embedding = &self.manifest.spec.embedding;
        let mut inputs = Vec::new();
        let mut spans = Vec::with_capacity(labels.len());
        for l in labels {
            let start = inputs.len();
            inputs.push(embedding.label_input(&apply_template(self.template.as_deref(), &l.name)));
            inputs.extend(l.description.iter().map(|d| embedding.label_input(d)));
            inputs.extend(l.examples.iter().map(|e| embedding.text_input(e)));
            spans.push(start..inputs.len());
        }
        (inputs, spans)
    }

    /// Pooled vectors `[n, H]` of prepared encoder inputs.
    fn pooled(&self, inputs: &[String]) -> Result<Array2<f32>> {
        let pool = SentencePool(self.manifest.spec.embedding.pooling);
        let mut vectors = Array2::<f32>::zeros((inputs.len(), self.manifest.output_dim));
        self.for_each_batch(inputs, |rows, hidden, batch| {
            let pooled = pool.pool(hidden.view(), mask_view(batch)?);
            for (k, &row) in rows.iter().enumerate() {
                vectors.row_mut(row).assign(&pooled.row(k));
            }
            Ok(())
        })?;
        Ok(vectors)
    }

    /// ColBERT: the scored token rows of every input, stacked, with each input's span.
    fn view_tokens(&self, inputs: &[String]) -> Result<LabelRepr> {
        let keep_special = self.manifest.spec.colbert_scoring.special_tokens.label();
        let mut per_view: Vec<Array2<f32>> = vec![Array2::zeros((0, 0)); inputs.len()];
        self.for_each_batch(inputs, |rows, hidden, batch| {
            for (k, &row) in rows.iter().enumerate() {
                per_view[row] = scored_tokens(hidden.index_axis(Axis(0), k), batch, k, keep_special);
            }
            Ok(())
        })?;
        let mut spans = Vec::with_capacity(per_view.len());
        let mut start = 0;
        for t in &per_view {
            spans.push(start..start + t.nrows());
            start += t.nrows();
        }
        let views: Vec<ArrayView2<'_, f32>> = per_view.iter().map(|a| a.view()).collect();
        let tokens = ndarray::concatenate(Axis(0), &views).map_err(|e| Error::BadOutput {
            path: self.encoder_path.clone(),
            message: format!("label token embeddings of different widths: {e}"),
        })?;
        Ok(LabelRepr::Tokens { tokens, spans })
    }

    /// The `top_k` best labels of every text, best first, with single-label probabilities (they
    /// sum to 1 over all the candidates when the bundle is calibrated). `top_k` larger than the
    /// number of labels gives them all; 0 is an error.
    ///
    /// ```no_run
    /// # fn main() -> zsc::Result<()> {
    /// let clf = zsc::Classifier::from_dir("bundles/minilm", zsc::ClassifierOptions::default())?;
    /// let ranked = clf.classify(&["wake me up at 7"], &["alarm", "weather", "music"], 2)?;
    /// println!("{} ({:.2})", ranked[0][0].label, ranked[0][0].probability);
    /// # Ok(())
    /// # }
    /// ```
    pub fn classify<S: AsRef<str>, L: Labels + ?Sized>(
        &self,
        texts: &[S],
        labels: &L,
        top_k: usize,
    ) -> Result<Vec<Vec<Prediction>>> {
        if top_k == 0 {
            return Err(Error::InvalidOption { option: "top_k", message: "must be at least 1".into() });
        }
        let labels = labels.label_set(self)?;
        let scores = self.scores_of(texts, &labels)?;
        let p = self.probability(ProbabilityMode::SingleLabel);
        Ok(scores.iter().map(|s| p.rank(s, labels.labels(), top_k)).collect())
    }

    /// Multi-label prediction: for every text, each label whose multi-label probability is at
    /// least `threshold`, best first (possibly none).
    pub fn classify_multi_label<S: AsRef<str>, L: Labels + ?Sized>(
        &self,
        texts: &[S],
        labels: &L,
        threshold: f32,
    ) -> Result<Vec<Vec<Prediction>>> {
        let labels = labels.label_set(self)?;
        let scores = self.scores_of(texts, &labels)?;
        let p = self.probability(ProbabilityMode::MultiLabel);
        Ok(scores
            .iter()
            .map(|s| p.rank(s, labels.labels(), s.len()).into_iter().filter(|l| l.probability >= threshold).collect())
            .collect())
    }

    /// Raw scores (logits) of every text against every label, `scores[i][j]` for `texts[i]` and
    /// label `j`, for those who rank or threshold themselves. No texts give an empty result; an
    /// empty text, an empty label or no labels are errors.
    ///
    /// ```no_run
    /// # fn main() -> zsc::Result<()> {
    /// let clf = zsc::Classifier::from_dir("bundles/minilm", zsc::ClassifierOptions::default())?;
    /// let scores = clf.scores(&["the soup is cold"], &["food", "weather"])?;
    /// assert_eq!((scores.len(), scores[0].len()), (1, 2));
    /// # Ok(())
    /// # }
    /// ```
    pub fn scores<S: AsRef<str>, L: Labels + ?Sized>(&self, texts: &[S], labels: &L) -> Result<Vec<Vec<f32>>> {
        let labels = labels.label_set(self)?;
        self.scores_of(texts, &labels)
    }

    fn scores_of<S: AsRef<str>>(&self, texts: &[S], labels: &LabelSet) -> Result<Vec<Vec<f32>>> {
        if labels.owner != self.id {
            return Err(Error::ForeignLabelSet { label_set_source: labels.source.clone() });
        }
        if let Some(index) = texts.iter().position(|t| t.as_ref().trim().is_empty()) {
            return Err(Error::EmptyText { index });
        }
        let mut scores: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        if texts.is_empty() {
            return Ok(scores);
        }
        let pool = SentencePool(self.manifest.spec.embedding.pooling);
        self.for_each_batch(&self.text_inputs(texts), |rows, hidden, batch| {
            match (&self.head, &labels.repr) {
                (Head::Bi(cosine), LabelRepr::Vectors(label_vecs)) => {
                    let pooled = pool.pool(hidden.view(), mask_view(batch)?);
                    let s = match cosine {
                        None => pooled.dot(&label_vecs.t()),
                        Some(c) => c.scores(&pooled, label_vecs),
                    };
                    for (k, &row) in rows.iter().enumerate() {
                        scores[row] = s.row(k).to_vec();
                    }
                }
                (Head::Poly(poly, cosine), LabelRepr::Vectors(label_vecs)) => {
                    let mask = mask_view(batch)?;
                    for (k, &row) in rows.iter().enumerate() {
                        let ctx = poly.context(hidden.index_axis(Axis(0), k), mask.row(k));
                        scores[row] = match cosine {
                            None => PolyAttention::score(ctx.view(), label_vecs.view()).to_vec(),
                            Some(c) => c.poly_scores(ctx.view(), label_vecs.view()).to_vec(),
                        };
                    }
                }
                (Head::Colbert(maxsim), LabelRepr::Tokens { tokens, spans }) => {
                    let keep_special = self.manifest.spec.colbert_scoring.special_tokens.text();
                    for (k, &row) in rows.iter().enumerate() {
                        let text = scored_tokens(hidden.index_axis(Axis(0), k), batch, k, keep_special);
                        scores[row] = maxsim.score_many(text.view(), tokens.view(), spans).to_vec();
                    }
                }
                _ => {
                    return Err(Error::ForeignLabelSet { label_set_source: labels.source.clone() });
                }
            }
            Ok(())
        })?;
        Ok(scores.into_iter().map(|row| labels.aggregate(row)).collect())
    }

    /// Sentence embeddings `[n, H]` as sentence-transformers' `encode` gives them: the text
    /// prompt, the bundle's pooling, and unit length when the model normalises (bi/poly bundles;
    /// for ColBERT the pooled normalised token embeddings).
    pub fn embed<S: AsRef<str>>(&self, texts: &[S]) -> Result<Array2<f32>> {
        if let Some(index) = texts.iter().position(|t| t.as_ref().trim().is_empty()) {
            return Err(Error::EmptyText { index });
        }
        let mut out = Array2::<f32>::zeros((texts.len(), self.manifest.output_dim));
        if texts.is_empty() {
            return Ok(out);
        }
        let pool = SentencePool(self.manifest.spec.embedding.pooling);
        self.for_each_batch(&self.text_inputs(texts), |rows, hidden, batch| {
            let pooled = pool.pool(hidden.view(), mask_view(batch)?);
            for (k, &row) in rows.iter().enumerate() {
                out.row_mut(row).assign(&pooled.row(k));
            }
            Ok(())
        })?;
        Ok(if self.manifest.spec.embedding.normalize { l2_normalize_rows(out) } else { out })
    }

    /// Tokens the encoder reads for each text (its prompt and special tokens included, after
    /// truncation to the bundle's `max_length`): the `usage` an embeddings API reports.
    pub fn token_counts<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<usize>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let batch = self.tokenizer.encode_batch(&self.text_inputs(texts)).map_err(Error::Tokenizer)?;
        Ok((0..batch.batch).map(|i| batch.real_len(i)).collect())
    }

    /// Texts as the encoder sees them: after the bundle's text prompt.
    fn text_inputs<S: AsRef<str>>(&self, texts: &[S]) -> Vec<String> {
        texts.iter().map(|t| self.manifest.spec.embedding.text_input(t.as_ref())).collect()
    }

    /// The encoder's output rows of every text's real tokens (`[T_i, D]`, `[CLS]`/`[SEP]`
    /// included, padding dropped), for inspection and for checking the heads by hand.
    pub fn token_embeddings<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Array2<f32>>> {
        if let Some(index) = texts.iter().position(|t| t.as_ref().trim().is_empty()) {
            return Err(Error::EmptyText { index });
        }
        let mut out = vec![Array2::<f32>::zeros((0, self.manifest.output_dim)); texts.len()];
        if texts.is_empty() {
            return Ok(out);
        }
        self.for_each_batch(&self.text_inputs(texts), |rows, hidden, batch| {
            for (k, &row) in rows.iter().enumerate() {
                out[row] = scored_tokens(hidden.index_axis(Axis(0), k), batch, k, true);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Tokenise `inputs`, sort them by token count, and run the encoder on batches of similar
    /// length (padding is most of the cost on short texts). `f` gets the original indices of the
    /// batch rows, the encoder output `[b, T, D]` and the token batch (for its mask).
    fn for_each_batch<S: AsRef<str>>(
        &self,
        inputs: &[S],
        mut f: impl FnMut(&[usize], &Array3<f32>, &TokenBatch) -> Result<()>,
    ) -> Result<()> {
        let all = self.tokenizer.encode_batch(inputs).map_err(Error::Tokenizer)?;
        let lengths: Vec<usize> = (0..all.batch).map(|i| all.real_len(i)).collect();
        let mut order: Vec<usize> = (0..all.batch).collect();
        order.sort_by_key(|&i| lengths[i]);
        for rows in order.chunks(self.batch_size) {
            let batch = self.sub_batch(&all, rows, &lengths);
            let hidden = self.run_encoder(&batch)?;
            f(rows, &hidden, &batch)?;
        }
        Ok(())
    }

    /// The rows `rows` of a batch padded to the global longest, re-padded to their own longest.
    fn sub_batch(&self, all: &TokenBatch, rows: &[usize], lengths: &[usize]) -> TokenBatch {
        let seq = rows.iter().map(|&r| lengths[r]).max().unwrap_or(0);
        let n = rows.len() * seq;
        let mut out = TokenBatch {
            input_ids: Vec::with_capacity(n),
            attention_mask: Vec::with_capacity(n),
            token_type_ids: Vec::with_capacity(n),
            batch: rows.len(),
            seq,
        };
        for &r in rows {
            let span = r * all.seq..(r + 1) * all.seq;
            let mut taken = 0;
            // Keep the real tokens in order, whichever side the tokenizer padded.
            for p in span {
                if all.attention_mask[p] != 0 {
                    out.input_ids.push(all.input_ids[p]);
                    out.attention_mask.push(all.attention_mask[p]);
                    out.token_type_ids.push(all.token_type_ids[p]);
                    taken += 1;
                }
            }
            for _ in taken..seq {
                out.input_ids.push(self.pad_id);
                out.attention_mask.push(0);
                out.token_type_ids.push(self.pad_type_id);
            }
        }
        out
    }

    /// A free session of the pool, or (all busy) wait for the next one in turn.
    fn session(&self) -> MutexGuard<'_, Session> {
        let n = self.sessions.len();
        let start = self.next_session.fetch_add(1, Ordering::Relaxed) % n;
        for k in 0..n {
            if let Ok(guard) = self.sessions[(start + k) % n].try_lock() {
                return guard;
            }
        }
        // A panic while holding the lock cannot leave an ONNX Runtime session half-updated.
        self.sessions[start].lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn run_encoder(&self, batch: &TokenBatch) -> Result<Array3<f32>> {
        let ierr = |source: ort::Error| Error::Inference { path: self.encoder_path.clone(), source: source.into() };
        let shape = [batch.batch, batch.seq];
        let mut feeds: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::with_capacity(self.inputs.len());
        for name in &self.inputs {
            let data: &[i64] = match name.as_str() {
                onnx_io::INPUT_IDS => &batch.input_ids,
                onnx_io::ATTENTION_MASK => &batch.attention_mask,
                _ => &batch.token_type_ids,
            };
            let tensor = TensorRef::from_array_view((shape, data)).map_err(ierr)?;
            feeds.push((Cow::Borrowed(name.as_str()), tensor.into()));
        }
        let mut session = self.session();
        let outputs = session.run(feeds).map_err(ierr)?;
        let value = outputs.get(&self.manifest.output).ok_or_else(|| Error::BadOutput {
            path: self.encoder_path.clone(),
            message: format!("no output `{}`", self.manifest.output),
        })?;
        let (out_shape, data) = value.try_extract_tensor::<f32>().map_err(ierr)?;
        let dims: Vec<i64> = out_shape.to_vec();
        let expected = [batch.batch as i64, batch.seq as i64, self.manifest.output_dim as i64];
        if dims != expected {
            return Err(Error::BadOutput {
                path: self.encoder_path.clone(),
                message: format!("output `{}` has shape {dims:?}, expected {expected:?}", self.manifest.output),
            });
        }
        Array3::from_shape_vec((batch.batch, batch.seq, self.manifest.output_dim), data.to_vec())
            .map_err(|e| Error::BadOutput { path: self.encoder_path.clone(), message: e.to_string() })
    }
}

/// The attention mask of a batch as `[b, T]`.
fn mask_view(batch: &TokenBatch) -> Result<ndarray::ArrayView2<'_, i64>> {
    ndarray::ArrayView2::from_shape((batch.batch, batch.seq), &batch.attention_mask)
        .map_err(|e| Error::BadOutput { path: PathBuf::new(), message: format!("attention mask: {e}") })
}

/// The real (unpadded) token rows of row `k` of a batch output.
/// The token rows of row `k` that ColBERT scores: its real tokens, without the first and the
/// last (the `[CLS]`/`[SEP]` the tokenizer wraps it in) unless `keep_special`.
fn scored_tokens(hidden: ArrayView2<'_, f32>, batch: &TokenBatch, k: usize, keep_special: bool) -> Array2<f32> {
    let mask = &batch.attention_mask[k * batch.seq..(k + 1) * batch.seq];
    let mut keep: Vec<usize> = mask.iter().enumerate().filter(|(_, &m)| m != 0).map(|(i, _)| i).collect();
    if !keep_special {
        let inner = keep.len().saturating_sub(1);
        keep = keep.get(1..inner).map(<[usize]>::to_vec).unwrap_or_default();
    }
    hidden.select(Axis(0), &keep)
}

#[allow(dead_code)]
fn assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Classifier>();
    is::<LabelSet>();
}

impl Classifier {
    /// The bundle's calibration (`manifest.json`), if it has one.
    pub fn calibration(&self) -> Option<&Calibration> {
        self.manifest().calibration.as_ref()
    }

    /// Probabilities in `mode` with this bundle's calibration.
    pub fn probability(&self, mode: ProbabilityMode) -> Probabilities<'_> {
        Probabilities::new(self.calibration(), mode)
    }
}
