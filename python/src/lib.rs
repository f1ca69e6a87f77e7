//! `zsc._zsc`: the Python bindings of the `zsc` runtime (PyO3). The Python package `zsc`
//! (python/pysrc/zsc) re-exports these classes; its docstrings and type stubs are the user's
//! documentation.
//!
//! Inference runs with the GIL released, so Python threads calling one classifier run in parallel
//! up to its `sessions`. Every input is checked in Rust: bad ones raise `ValueError`,
//! `FileNotFoundError` or `zsc.ZscError` with the message the `zsc` CLI prints, never a panic.

mod corpus;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyFileNotFoundError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use zsc::adapt::LabelSums;
use zsc::{
    AdaptOptions, Classifier, ClassifierOptions, Error, Label, LabelSet, PoolVectors, Prediction, ProbabilityMode,
    ViewAggregation,
};
use zsc_core::error::error_chain;

create_exception!(
    zsc,
    ZscError,
    PyException,
    "An error of the zsc runtime (bundle, ONNX Runtime, Hub) that is not a bad argument."
);

/// A runtime error as the Python exception a caller would expect.
pub(crate) fn to_py(err: Error) -> PyErr {
    let message = error_chain(&err);
    match &err {
        Error::EmptyText { .. }
        | Error::NoLabels
        | Error::EmptyLabel { .. }
        | Error::InvalidLabel { .. }
        | Error::InvalidOption { .. }
        | Error::ForeignLabelSet { .. }
        | Error::NeedsBiEncoder { .. } => PyValueError::new_err(message),
        Error::LabelsFile { path, .. } if !path.exists() => PyFileNotFoundError::new_err(message),
        Error::LabelsFile { .. } => PyValueError::new_err(message),
        Error::Manifest { dir, .. } if !dir.exists() => PyFileNotFoundError::new_err(message),
        _ => ZscError::new_err(message),
    }
}

/// A failed load: `bundles/typo` reads as a Hub id when no such folder exists, so a failed Hub
/// fetch of a name that is not a local folder is reported as the missing folder it most likely is.
fn load_error(model: &str, err: Error) -> PyErr {
    match err {
        Error::Hub(_) if !Path::new(model).exists() => {
            PyFileNotFoundError::new_err(format!("no bundle folder `{model}`, and as a Hub id: {}", error_chain(&err)))
        }
        other => to_py(other),
    }
}

/// Texts: one string, or any iterable of strings.
fn texts_arg(texts: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    if let Ok(s) = texts.cast::<PyString>() {
        return Ok(vec![s.extract::<String>()?]);
    }
    let mut out = Vec::new();
    for (i, item) in texts.try_iter().map_err(|_| PyValueError::new_err("texts: give a string or a list of strings"))?.enumerate()
    {
        let item = item?;
        let text: String =
            item.extract().map_err(|_| PyValueError::new_err(format!("text {i} is not a string: {}", type_name(&item))))?;
        out.push(text);
    }
    Ok(out)
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}

/// A label with a description and examples (`zsc.Label`).
#[pyclass(module = "zsc", name = "Label", frozen, eq)]
#[derive(Clone, PartialEq)]
struct PyLabel {
    #[pyo3(get)]
    name: String,
    #[pyo3(get)]
    description: Option<String>,
    #[pyo3(get)]
    examples: Vec<String>,
}

#[pymethods]
impl PyLabel {
    /// `Label(name, description=None, examples=None)`: the name is what predictions return.
    #[new]
    #[pyo3(signature = (name, description=None, examples=None))]
    fn new(name: String, description: Option<String>, examples: Option<Vec<String>>) -> Self {
        PyLabel { name, description, examples: examples.unwrap_or_default() }
    }

    fn __repr__(&self) -> String {
        format!("Label(name={:?}, description={:?}, examples={:?})", self.name, self.description, self.examples)
    }
}

impl From<&PyLabel> for Label {
    fn from(l: &PyLabel) -> Label {
        let mut label = Label::new(l.name.clone()).with_examples(l.examples.clone());
        if let Some(d) = &l.description {
            label = label.with_description(d.clone());
        }
        label
    }
}

impl From<Label> for PyLabel {
    fn from(l: Label) -> PyLabel {
        PyLabel { name: l.name, description: l.description, examples: l.examples }
    }
}

/// One label given as a dict `{"name", "description"?, "examples"?}`.
fn label_from_dict(d: &Bound<'_, PyDict>, index: usize) -> PyResult<Label> {
    let bad = |m: String| PyValueError::new_err(format!("label {index}: {m}"));
    for key in d.keys() {
        let key: String = key.extract().map_err(|_| bad("keys must be strings".into()))?;
        if !matches!(key.as_str(), "name" | "description" | "examples") {
            return Err(bad(format!("unknown key `{key}` (expected name, description, examples)")));
        }
    }
    let name: String = match d.get_item("name")? {
        Some(n) => n.extract().map_err(|_| bad("`name` must be a string".into()))?,
        None => return Err(bad("no `name`".into())),
    };
    let mut label = Label::new(name);
    if let Some(desc) = d.get_item("description")?.filter(|v| !v.is_none()) {
        label = label.with_description(desc.extract::<String>().map_err(|_| bad("`description` must be a string".into()))?);
    }
    if let Some(ex) = d.get_item("examples")?.filter(|v| !v.is_none()) {
        let examples: Vec<String> = if ex.cast::<PyString>().is_ok() {
            return Err(bad("`examples` must be a list of strings, not one string".into()));
        } else {
            ex.extract().map_err(|_| bad("`examples` must be a list of strings".into()))?
        };
        label = label.with_examples(examples);
    }
    Ok(label)
}

/// One label: a name, a `zsc.Label` or a dict.
fn label_arg(item: &Bound<'_, PyAny>, index: usize) -> PyResult<Label> {
    if let Ok(s) = item.cast::<PyString>() {
        return Ok(Label::new(s.extract::<String>()?));
    }
    if let Ok(l) = item.cast::<PyLabel>() {
        return Ok(Label::from(l.get()));
    }
    if let Ok(d) = item.cast::<PyDict>() {
        return label_from_dict(d, index);
    }
    Err(PyValueError::new_err(format!("label {index} is a {}: give a string, a dict or a zsc.Label", type_name(item))))
}

/// Labels as given: an encoded `LabelSet` or labels to encode.
enum LabelsArg {
    Encoded(Arc<LabelSet>),
    Raw(Vec<Label>),
}

fn labels_arg(labels: &Bound<'_, PyAny>) -> PyResult<LabelsArg> {
    if let Ok(set) = labels.cast::<PyLabelSet>() {
        return Ok(LabelsArg::Encoded(set.get().inner.clone()));
    }
    if labels.cast::<PyString>().is_ok() || labels.cast::<PyDict>().is_ok() || labels.cast::<PyLabel>().is_ok() {
        return Ok(LabelsArg::Raw(vec![label_arg(labels, 0)?]));
    }
    let iter =
        labels.try_iter().map_err(|_| PyValueError::new_err("labels: give a string, a list of labels or a zsc.LabelSet"))?;
    let mut out = Vec::new();
    for (i, item) in iter.enumerate() {
        out.push(label_arg(&item?, i)?);
    }
    Ok(LabelsArg::Raw(out))
}

/// Per-text candidate labels: a list with one list of labels (or one `LabelSet`) per text, as
/// `labels=[["a", "b"], ["c", "d", "e"]]`. `None` when `labels` is one candidate set for all texts.
fn per_text_labels(labels: &Bound<'_, PyAny>) -> PyResult<Option<Vec<LabelsArg>>> {
    let Ok(list) = labels.cast::<pyo3::types::PyList>() else { return Ok(None) };
    let nested = |item: &Bound<'_, PyAny>| {
        item.cast::<PyLabelSet>().is_ok()
            || (item.try_iter().is_ok() && item.cast::<PyString>().is_err() && item.cast::<PyDict>().is_err())
    };
    if list.is_empty() || !list.iter().all(|item| nested(&item)) {
        return Ok(None);
    }
    list.iter().map(|item| labels_arg(&item)).collect::<PyResult<Vec<_>>>().map(Some)
}

/// Candidate labels encoded once (`Classifier.encode_labels`), reusable in every call.
#[pyclass(module = "zsc", name = "LabelSet", frozen)]
struct PyLabelSet {
    inner: Arc<LabelSet>,
}

#[pymethods]
impl PyLabelSet {
    /// The label names, in order.
    #[getter]
    fn labels(&self) -> Vec<String> {
        self.inner.labels().to_vec()
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __repr__(&self) -> String {
        format!("LabelSet({} labels)", self.inner.len())
    }
}

/// A loaded bundle (`zsc.Classifier`).
#[pyclass(module = "zsc", name = "Classifier", frozen)]
struct PyClassifier {
    inner: Arc<Classifier>,
}

fn parse_views(views: &str) -> PyResult<ViewAggregation> {
    views.parse().map_err(|e: String| PyValueError::new_err(format!("views: {e}")))
}

impl PyClassifier {
    /// The encoded labels for one call (encoding raw ones with the GIL released).
    fn label_set(&self, py: Python<'_>, labels: LabelsArg) -> PyResult<Arc<LabelSet>> {
        match labels {
            LabelsArg::Encoded(set) => Ok(set),
            LabelsArg::Raw(labels) => {
                let clf = &self.inner;
                py.detach(|| clf.encode_labels(&labels)).map(Arc::new).map_err(to_py)
            }
        }
    }

    fn scores_matrix(&self, py: Python<'_>, texts: &[String], labels: &Arc<LabelSet>) -> PyResult<Vec<Vec<f32>>> {
        let clf = &self.inner;
        py.detach(|| clf.scores(texts, labels)).map_err(to_py)
    }

    /// The labels adapted to `texts` (the pool) and the pool's scores against them.
    fn adapted_scores(
        &self,
        py: Python<'_>,
        texts: &[String],
        labels: &Arc<LabelSet>,
        options: &AdaptOptions,
    ) -> PyResult<(Arc<LabelSet>, Vec<Vec<f32>>)> {
        let clf = &self.inner;
        py.detach(|| {
            let pool = clf.pool_vectors(texts)?;
            let adapted = clf.adapt_labels(&pool, labels, options)?;
            let scores = clf.pool_scores(&pool, &adapted.labels)?;
            Ok((Arc::new(adapted.labels), scores))
        })
        .map_err(to_py)
    }

    /// Score rows ranked as `classify` returns them.
    fn ranked<'py>(
        &self,
        py: Python<'py>,
        scores: &[Vec<f32>],
        labels: &LabelSet,
        top_k: Option<usize>,
        multi_label: bool,
        threshold: Option<f32>,
    ) -> PyResult<Vec<Vec<Bound<'py, PyDict>>>> {
        let mode = if multi_label { ProbabilityMode::MultiLabel } else { ProbabilityMode::SingleLabel };
        let probability = self.inner.probability(mode);
        let k = top_k.unwrap_or(labels.len());
        let mut out = Vec::with_capacity(scores.len());
        for row in scores {
            let mut ranked = probability.rank(row, labels.labels(), k);
            if let Some(p) = threshold {
                ranked.retain(|l| l.probability >= p);
            }
            out.push(ranked.iter().map(|p| prediction_dict(py, p)).collect::<PyResult<Vec<_>>>()?);
        }
        Ok(out)
    }
}

impl PyClassifier {
    /// `classify` with its own candidate labels per text: texts that share a label list are
    /// encoded against it once and scored together.
    fn classify_per_text<'py>(
        &self,
        py: Python<'py>,
        texts: &[String],
        per_text: Vec<LabelsArg>,
        top_k: Option<usize>,
        multi_label: bool,
        threshold: Option<f32>,
    ) -> PyResult<Vec<Vec<Bound<'py, PyDict>>>> {
        if per_text.len() != texts.len() {
            return Err(PyValueError::new_err(format!(
                "labels per text: {} label lists for {} texts (give one list per text, or one list for all)",
                per_text.len(),
                texts.len()
            )));
        }
        #[derive(PartialEq, Eq, Hash)]
        enum GroupKey {
            Set(*const LabelSet),
            Labels(Vec<Label>),
        }
        let mut groups: Vec<(LabelsArg, Vec<usize>)> = Vec::new();
        let mut by_key: std::collections::HashMap<GroupKey, usize> = std::collections::HashMap::new();
        for (i, labels) in per_text.into_iter().enumerate() {
            let key = match &labels {
                LabelsArg::Encoded(set) => GroupKey::Set(Arc::as_ptr(set)),
                LabelsArg::Raw(list) => GroupKey::Labels(list.clone()),
            };
            match by_key.get(&key) {
                Some(&g) => groups[g].1.push(i),
                None => {
                    by_key.insert(key, groups.len());
                    groups.push((labels, vec![i]));
                }
            }
        }
        let mut out: Vec<Vec<Bound<'py, PyDict>>> = (0..texts.len()).map(|_| Vec::new()).collect();
        for (labels, rows) in groups {
            let set = self.label_set(py, labels)?;
            let group_texts: Vec<String> = rows.iter().map(|&i| texts[i].clone()).collect();
            let scores = self.scores_matrix(py, &group_texts, &set)?;
            for (i, ranked) in rows.into_iter().zip(self.ranked(py, &scores, &set, top_k, multi_label, threshold)?) {
                out[i] = ranked;
            }
        }
        Ok(out)
    }
}

/// `top_k` as given from Python (a negative one is a `ValueError`, not an `OverflowError`), checked
/// with `threshold`.
fn check_ranking(top_k: Option<i64>, threshold: Option<f32>) -> PyResult<Option<usize>> {
    if let Some(p) = threshold.filter(|p| !(0.0..=1.0).contains(p)) {
        return Err(PyValueError::new_err(format!("threshold must be a probability between 0 and 1, got {p}")));
    }
    match top_k {
        None => Ok(None),
        Some(k) if k >= 1 => Ok(Some(k as usize)),
        Some(k) => {
            Err(PyValueError::new_err(format!("invalid option `top_k`: must be at least 1 (None gives every label), got {k}")))
        }
    }
}

/// A matrix and a vector returned together (`pool_vectors`, `label_sums`).
type Arrays<'py, A, B> = (Bound<'py, PyArray2<A>>, Bound<'py, PyArray1<B>>);

/// Pool vectors from the arrays `pool_vectors` returned.
fn pool_arg(units: PyReadonlyArray2<'_, f32>, norms: PyReadonlyArray1<'_, f32>) -> PyResult<PoolVectors> {
    let norms = norms.as_slice().map(<[f32]>::to_vec).unwrap_or_else(|_| norms.as_array().to_vec());
    PoolVectors::new(units.as_array().to_owned(), norms).map_err(to_py)
}

/// The ONNX Runtime library to load: `ORT_DYLIB_PATH`, else the `onnxruntime` wheel's own
/// (`zsc._ort.library_path`).
fn ort_library_of_python(py: Python<'_>) -> PyResult<Option<PathBuf>> {
    py.import("zsc._ort")?.call_method0("library_path")?.extract()
}

fn to_array(rows: Vec<Vec<f32>>, width: usize) -> Array2<f32> {
    let n = rows.len();
    let flat: Vec<f32> = rows.into_iter().flatten().collect();
    Array2::from_shape_vec((n, width), flat).expect("every score row has one entry per label")
}

fn prediction_dict<'py>(py: Python<'py>, p: &Prediction) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("label", &p.label)?;
    d.set_item("score", p.score)?;
    d.set_item("probability", p.probability)?;
    Ok(d)
}

#[pymethods]
impl PyClassifier {
    /// Load a bundle: a local folder or a Hugging Face Hub id (`org/name[@revision]`, fetched into
    /// the standard cache; a warm cache works offline).
    ///
    /// threads: ONNX Runtime threads per session (default: one per physical core); sessions: how
    /// many calls run in parallel; batch_size: texts per encoder call; views: how a label's name,
    /// description and examples combine (`prototype`, `mean`, `max`); template: the label
    /// template, `{}` where the label goes (the HF pipeline's `hypothesis_template`, e.g.
    /// `"This text is about {}."`; `"{}"` for bare labels; default the bundle's); ort_library: the
    /// ONNX Runtime shared library (default: `ORT_DYLIB_PATH`, else the `onnxruntime` package's).
    #[staticmethod]
    #[pyo3(signature = (model, *, threads=None, sessions=1, batch_size=32, views="prototype", template=None, ort_library=None))]
    #[allow(clippy::too_many_arguments)]
    fn from_pretrained(
        py: Python<'_>,
        model: PathBuf,
        threads: Option<usize>,
        sessions: usize,
        batch_size: usize,
        views: &str,
        template: Option<String>,
        ort_library: Option<PathBuf>,
    ) -> PyResult<Self> {
        let mut options = ClassifierOptions::default()
            .with_sessions(sessions)
            .with_batch_size(batch_size)
            .with_view_aggregation(parse_views(views)?);
        if let Some(t) = template {
            options = options.with_label_template(zsc::LabelTemplate::Custom(t));
        }
        if let Some(t) = threads {
            options = options.with_intra_threads(t);
        }
        if let Some(lib) = ort_library.or(ort_library_of_python(py)?) {
            options = options.with_ort_dylib_path(lib);
        }
        let model = model.to_string_lossy().into_owned();
        let clf = py.detach(|| Classifier::from_pretrained(&model, options)).map_err(|e| load_error(&model, e))?;
        Ok(PyClassifier { inner: Arc::new(clf) })
    }

    /// Rank the labels for each text, best first: per text a list of
    /// `{"label", "score", "probability"}`. top_k: how many (None: all); multi_label: independent
    /// per-label probabilities instead of a distribution over the labels; threshold: keep labels
    /// whose probability reaches it; adapt: refine the labels from these texts as a pool (True for
    /// the measured defaults, or a dict of settings; BiEncoder bundles). A single string is one text;
    /// `labels` may also be one list of labels per text (`[["a", "b"], ["c", "d", "e"]]`).
    #[pyo3(signature = (texts, labels, top_k=None, multi_label=false, threshold=None, adapt=None))]
    #[allow(clippy::too_many_arguments)]
    fn classify<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        labels: &Bound<'py, PyAny>,
        top_k: Option<i64>,
        multi_label: bool,
        threshold: Option<f32>,
        adapt: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Vec<Vec<Bound<'py, PyDict>>>> {
        let top_k = check_ranking(top_k, threshold)?;
        let adapt = corpus::adapt_arg(adapt)?;
        let texts = texts_arg(texts)?;
        if let Some(per_text) = per_text_labels(labels)? {
            if adapt.is_some() {
                return Err(PyValueError::new_err("adapt needs one label set for the whole pool, not labels per text"));
            }
            return self.classify_per_text(py, &texts, per_text, top_k, multi_label, threshold);
        }
        let labels = self.label_set(py, labels_arg(labels)?)?;
        let (labels, scores) = match &adapt {
            None => {
                let scores = self.scores_matrix(py, &texts, &labels)?;
                (labels, scores)
            }
            Some(options) => self.adapted_scores(py, &texts, &labels, options)?,
        };
        self.ranked(py, &scores, &labels, top_k, multi_label, threshold)
    }

    /// Classify a whole file (JSONL, CSV/TSV with a header, or plain text) into `output` (JSONL,
    /// or CSV for a `.csv` name), as `zsc classify --input` does; returns the run's summary.
    #[pyo3(signature = (input, output, labels, *, top_k=5, multi_label=false, threshold=None, input_format=None,
        output_format=None, text_field="text".to_string(), id_field=None, skip_bad_rows=false, resume=false,
        progress=false, adapt=None, adapt_max_memory_mib=4096))]
    #[allow(clippy::too_many_arguments)]
    fn classify_file<'py>(
        &self,
        py: Python<'py>,
        input: PathBuf,
        output: PathBuf,
        labels: &Bound<'py, PyAny>,
        top_k: i64,
        multi_label: bool,
        threshold: Option<f32>,
        input_format: Option<String>,
        output_format: Option<String>,
        text_field: String,
        id_field: Option<String>,
        skip_bad_rows: bool,
        resume: bool,
        progress: bool,
        adapt: Option<&Bound<'py, PyAny>>,
        adapt_max_memory_mib: u64,
    ) -> PyResult<Bound<'py, PyDict>> {
        let top_k = check_ranking(Some(top_k), threshold)?.unwrap_or(1);
        let adapt = corpus::adapt_arg(adapt)?;
        let labels = self.label_set(py, labels_arg(labels)?)?;
        let args = corpus::FileArgs {
            input,
            output,
            input_format,
            output_format,
            text_field,
            id_field,
            top_k,
            multi_label,
            threshold,
            skip_bad_rows,
            resume,
            progress,
            adapt,
            adapt_max_memory_mib,
        };
        let job = args.job()?;
        let clf = &self.inner;
        let summary = py.detach(|| zsc::corpus::classify_file(clf, &labels, &job)).map_err(corpus::corpus_error)?;
        corpus::summary_dict(py, &summary)
    }

    /// The pool's vectors for adaptation: unit vectors float32 `[n, dim]` and their lengths `[n]`
    /// (BiEncoder bundles). With `label_sums`, `adapted_labels` and `classify_vectors`, the pieces
    /// a distributed pass is made of (`zsc.ray.classify_adapted`).
    fn pool_vectors<'py>(&self, py: Python<'py>, texts: &Bound<'py, PyAny>) -> PyResult<Arrays<'py, f32, f32>> {
        let texts = texts_arg(texts)?;
        let clf = &self.inner;
        let pool = py.detach(|| clf.pool_vectors(&texts)).map_err(to_py)?;
        let norms = pool.norms().to_vec();
        Ok((pool.units().to_owned().into_pyarray(py), norms.into_pyarray(py)))
    }

    /// One pass over a part of the pool: each text assigned to its best label of `labels`, and
    /// per label the float64 sum of the assigned unit vectors `[L, dim]` and their count `[L]`.
    /// Parts' sums add up to the whole pool's.
    #[pyo3(signature = (units, norms, labels, adapt=None))]
    fn label_sums<'py>(
        &self,
        py: Python<'py>,
        units: PyReadonlyArray2<'py, f32>,
        norms: PyReadonlyArray1<'py, f32>,
        labels: &Bound<'py, PyAny>,
        adapt: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Arrays<'py, f64, u64>> {
        let options = corpus::settings_arg(adapt)?;
        let pool = pool_arg(units, norms)?;
        let labels = self.label_set(py, labels_arg(labels)?)?;
        let clf = &self.inner;
        let sums = py.detach(|| clf.label_sums(&pool, &labels, &options)).map_err(to_py)?;
        Ok((sums.sums.into_pyarray(py), sums.counts.into_pyarray(py)))
    }

    /// The labels after one round: `start` (the labels as given) refined by a pass's summed
    /// `sums` and `counts`. Returns the new `LabelSet` and how many labels moved.
    #[pyo3(signature = (start, sums, counts, adapt=None))]
    fn adapted_labels<'py>(
        &self,
        py: Python<'py>,
        start: &Bound<'py, PyAny>,
        sums: PyReadonlyArray2<'py, f64>,
        counts: PyReadonlyArray1<'py, u64>,
        adapt: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<(PyLabelSet, usize)> {
        let options = corpus::settings_arg(adapt)?;
        let start = self.label_set(py, labels_arg(start)?)?;
        let sums = LabelSums { sums: sums.as_array().to_owned(), counts: counts.as_array().to_vec() };
        let (set, moved) = self.inner.adapted_labels(&start, &sums, &options).map_err(to_py)?;
        Ok((PyLabelSet { inner: Arc::new(set) }, moved))
    }

    /// The labels refined from the pool behind `pool_vectors`' arrays (every round, as
    /// `classify(..., adapt=...)` does): the new `LabelSet` and the report (rounds, labels moved,
    /// texts per label, and why nothing moved when a guard stopped it).
    #[pyo3(signature = (units, norms, labels, adapt=None))]
    fn adapt_labels<'py>(
        &self,
        py: Python<'py>,
        units: PyReadonlyArray2<'py, f32>,
        norms: PyReadonlyArray1<'py, f32>,
        labels: &Bound<'py, PyAny>,
        adapt: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<(PyLabelSet, Bound<'py, PyDict>)> {
        let options = corpus::settings_arg(adapt)?;
        let pool = pool_arg(units, norms)?;
        let labels = self.label_set(py, labels_arg(labels)?)?;
        let clf = &self.inner;
        let adapted = py.detach(|| clf.adapt_labels(&pool, &labels, &options)).map_err(to_py)?;
        let report = corpus::report_dict(py, &adapted.report)?;
        Ok((PyLabelSet { inner: Arc::new(adapted.labels) }, report))
    }

    /// `classify` of the texts behind `pool_vectors`' arrays, without running the encoder again.
    #[pyo3(signature = (units, norms, labels, top_k=None, multi_label=false, threshold=None))]
    #[allow(clippy::too_many_arguments)]
    fn classify_vectors<'py>(
        &self,
        py: Python<'py>,
        units: PyReadonlyArray2<'py, f32>,
        norms: PyReadonlyArray1<'py, f32>,
        labels: &Bound<'py, PyAny>,
        top_k: Option<i64>,
        multi_label: bool,
        threshold: Option<f32>,
    ) -> PyResult<Vec<Vec<Bound<'py, PyDict>>>> {
        let top_k = check_ranking(top_k, threshold)?;
        let pool = pool_arg(units, norms)?;
        let labels = self.label_set(py, labels_arg(labels)?)?;
        let clf = &self.inner;
        let scores = py.detach(|| clf.pool_scores(&pool, &labels)).map_err(to_py)?;
        self.ranked(py, &scores, &labels, top_k, multi_label, threshold)
    }

    /// One vector per label, float32 `[L, dim]`: with `labels_from_vectors`, a label set that
    /// travels to another process (BiEncoder and PolyEncoder bundles).
    fn label_vectors<'py>(&self, py: Python<'py>, labels: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let labels = self.label_set(py, labels_arg(labels)?)?;
        Ok(self.inner.label_vectors(&labels).map_err(to_py)?.into_pyarray(py))
    }

    /// A `LabelSet` of this classifier from names and their vectors (`label_vectors`).
    fn labels_from_vectors(&self, names: Vec<String>, vectors: PyReadonlyArray2<'_, f32>) -> PyResult<PyLabelSet> {
        let set = self.inner.labels_from_vectors(names, vectors.as_array().to_owned()).map_err(to_py)?;
        Ok(PyLabelSet { inner: Arc::new(set) })
    }

    /// Raw scores (logits), float32 `[len(texts), len(labels)]`.
    fn scores<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyAny>,
        labels: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let texts = texts_arg(texts)?;
        let labels = self.label_set(py, labels_arg(labels)?)?;
        let scores = self.scores_matrix(py, &texts, &labels)?;
        Ok(to_array(scores, labels.len()).into_pyarray(py))
    }

    /// Sentence embeddings as sentence-transformers' `encode` gives them, float32 `[len(texts), dim]`.
    fn embed<'py>(&self, py: Python<'py>, texts: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let texts = texts_arg(texts)?;
        let clf = &self.inner;
        let vectors = py.detach(|| clf.embed(&texts)).map_err(to_py)?;
        Ok(vectors.into_pyarray(py))
    }

    /// Encode labels once; the `LabelSet` is accepted wherever labels are, by this classifier.
    fn encode_labels(&self, py: Python<'_>, labels: &Bound<'_, PyAny>) -> PyResult<PyLabelSet> {
        let set = self.label_set(py, labels_arg(labels)?)?;
        Ok(PyLabelSet { inner: set })
    }

    /// `bi_encoder`, `poly_encoder` or `colbert`.
    #[getter]
    fn model_type(&self) -> String {
        self.inner.model_type().to_string()
    }

    /// Width of `embed`'s vectors.
    #[getter]
    fn dim(&self) -> usize {
        self.inner.manifest().output_dim
    }

    /// The label template in effect (`{}` where the label goes), if any.
    #[getter]
    fn template(&self) -> Option<String> {
        self.inner.label_template().map(str::to_string)
    }

    /// Whether the bundle carries calibrated probabilities.
    #[getter]
    fn calibrated(&self) -> bool {
        self.inner.calibration().is_some()
    }

    /// The local bundle folder.
    #[getter]
    fn path(&self) -> PathBuf {
        self.inner.dir().to_path_buf()
    }

    fn __repr__(&self) -> String {
        format!("Classifier({}, {})", self.inner.dir().display(), self.inner.model_type())
    }
}

/// Labels from a YAML/JSON/lines file, as `zsc classify --labels-file` reads them.
#[pyfunction]
fn read_labels_file(path: PathBuf) -> PyResult<Vec<PyLabel>> {
    let labels = zsc::read_labels_file(Path::new(&path)).map_err(to_py)?;
    Ok(labels.into_iter().map(PyLabel::from).collect())
}

#[pymodule]
fn _zsc(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyClassifier>()?;
    m.add_class::<PyLabelSet>()?;
    m.add_class::<PyLabel>()?;
    m.add_function(wrap_pyfunction!(read_labels_file, m)?)?;
    m.add_function(wrap_pyfunction!(corpus::adapt_defaults, m)?)?;
    m.add("ZscError", m.py().get_type::<ZscError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
