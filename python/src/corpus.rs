//! The Python side of pool adaptation and of files in and out: arguments to `zsc::AdaptOptions`
//! and `zsc::corpus::FileJob`, results to dicts.

use std::path::PathBuf;

use pyo3::exceptions::{PyFileNotFoundError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use zsc::corpus::{CorpusError, FileJob, InputFormat, InputSpec, OutputFormat, Summary};
use zsc::{AdaptOptions, AdaptReport};
use zsc_core::error::error_chain;

/// `adapt=`: None or False (off), True (the measured defaults) or a dict of settings
/// (`rounds`, `label_weight`, `min_texts`, `min_pool_per_label`, `balanced`).
pub fn adapt_arg(adapt: Option<&Bound<'_, PyAny>>) -> PyResult<Option<AdaptOptions>> {
    let Some(adapt) = adapt.filter(|a| !a.is_none()) else { return Ok(None) };
    if let Ok(on) = adapt.extract::<bool>() {
        return Ok(on.then(AdaptOptions::default));
    }
    let d = adapt.cast::<PyDict>().map_err(|_| PyValueError::new_err("adapt: give True, False or a dict of settings"))?;
    let mut o = AdaptOptions::default();
    for (key, value) in d.iter() {
        let key: String = key.extract()?;
        let bad = |_| PyValueError::new_err(format!("adapt: `{key}` has the wrong type"));
        o = match key.as_str() {
            "rounds" => o.with_rounds(value.extract().map_err(bad)?),
            "label_weight" => o.with_label_weight(value.extract().map_err(bad)?),
            "min_texts" => o.with_min_texts(value.extract().map_err(bad)?),
            "min_pool_per_label" => o.with_min_pool_per_label(value.extract().map_err(bad)?),
            "balanced" => o.with_balanced(value.extract().map_err(bad)?),
            other => {
                return Err(PyValueError::new_err(format!(
                    "adapt: unknown setting `{other}` (rounds, label_weight, min_texts, min_pool_per_label, balanced)"
                )))
            }
        };
    }
    o.check().map_err(|m| PyValueError::new_err(format!("adapt: {m}")))?;
    Ok(Some(o))
}

/// `adapt=` of the adaptation steps (`label_sums`, `adapted_labels`, `adapt_labels`): None or True
/// (the measured defaults) or a dict of settings; False makes no sense there and is refused.
pub fn settings_arg(adapt: Option<&Bound<'_, PyAny>>) -> PyResult<AdaptOptions> {
    if adapt.is_some_and(|a| a.extract::<bool>().is_ok_and(|on| !on)) {
        return Err(PyValueError::new_err("adapt=False: this is a step of adaptation; give True or a dict of settings"));
    }
    Ok(adapt_arg(adapt)?.unwrap_or_default())
}

/// The settings of `Classifier.classify_file`.
pub struct FileArgs {
    pub input: PathBuf,
    pub output: PathBuf,
    pub input_format: Option<String>,
    pub output_format: Option<String>,
    pub text_field: String,
    pub id_field: Option<String>,
    pub top_k: usize,
    pub multi_label: bool,
    pub threshold: Option<f32>,
    pub skip_bad_rows: bool,
    pub resume: bool,
    pub progress: bool,
    pub adapt: Option<AdaptOptions>,
    pub adapt_max_memory_mib: u64,
}

impl FileArgs {
    pub fn job(self) -> PyResult<FileJob> {
        let mut spec = InputSpec::new(&self.input).with_text_field(self.text_field).with_id_field(self.id_field);
        if let Some(f) = &self.input_format {
            spec = spec.with_format(f.parse::<InputFormat>().map_err(PyValueError::new_err)?);
        }
        let mut job = FileJob::new(spec, &self.output);
        if let Some(f) = &self.output_format {
            job = job.with_output_format(f.parse::<OutputFormat>().map_err(PyValueError::new_err)?);
        }
        Ok(job
            .with_top_k(self.top_k)
            .with_multi_label(self.multi_label)
            .with_threshold(self.threshold)
            .with_skip_bad_rows(self.skip_bad_rows)
            .with_resume(self.resume)
            .with_progress(self.progress)
            .with_adapt(self.adapt)
            .with_adapt_max_memory_mib(self.adapt_max_memory_mib))
    }
}

/// A file run's error as the Python exception a caller would expect.
pub fn corpus_error(err: CorpusError) -> PyErr {
    let message = error_chain(&err);
    match err {
        CorpusError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err(message),
        CorpusError::Classify(e) => crate::to_py(e),
        CorpusError::Io { .. } | CorpusError::Resume { .. } | CorpusError::PoolTooLarge { .. } => {
            crate::ZscError::new_err(message)
        }
        _ => PyValueError::new_err(message),
    }
}

pub fn report_dict<'py>(py: Python<'py>, r: &AdaptReport) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("rounds", r.rounds)?;
    d.set_item("pool", r.pool)?;
    d.set_item("moved", r.moved)?;
    d.set_item("counts", r.counts.clone())?;
    d.set_item("skipped", r.skipped.clone())?;
    Ok(d)
}

pub fn summary_dict<'py>(py: Python<'py>, s: &Summary) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("rows", s.rows)?;
    d.set_item("resumed", s.resumed)?;
    d.set_item("bad_rows", s.bad_rows)?;
    d.set_item("seconds", s.seconds)?;
    d.set_item("calibrated", s.calibrated)?;
    d.set_item("adapt", s.adapt.as_ref().map(|r| report_dict(py, r)).transpose()?)?;
    Ok(d)
}

/// The default adaptation settings (`zsc.AdaptOptions::default()` in Rust), as a dict.
#[pyfunction]
pub fn adapt_defaults(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let o = AdaptOptions::default();
    let d = PyDict::new(py);
    d.set_item("rounds", o.rounds)?;
    d.set_item("label_weight", o.label_weight)?;
    d.set_item("min_texts", o.min_texts)?;
    d.set_item("min_pool_per_label", o.min_pool_per_label)?;
    d.set_item("balanced", o.balanced)?;
    Ok(d)
}
