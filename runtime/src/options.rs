//! [`ClassifierOptions`]: how a bundle is loaded and run.

use std::path::PathBuf;

/// Where the encoder runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ExecutionProvider {
    /// ONNX Runtime's CPU provider.
    #[default]
    Cpu,
    /// NVIDIA CUDA. Needs the crate feature `cuda` and a CUDA build of ONNX Runtime; it is
    /// registered with `error_on_failure`, so loading fails instead of silently running on CPU.
    Cuda {
        /// The CUDA device (0 = the first).
        device_id: i32,
    },
}

impl ExecutionProvider {
    /// `cpu` or `cuda:N`, as [`str::parse`] reads it.
    pub fn name(&self) -> String {
        match self {
            ExecutionProvider::Cpu => "cpu".into(),
            ExecutionProvider::Cuda { device_id } => format!("cuda:{device_id}"),
        }
    }
}

impl std::str::FromStr for ExecutionProvider {
    type Err = String;
    /// `cpu`, `cuda` (device 0) or `cuda:N`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "cpu" => Ok(ExecutionProvider::Cpu),
            "cuda" => Ok(ExecutionProvider::Cuda { device_id: 0 }),
            other => match other.strip_prefix("cuda:").map(str::parse::<i32>) {
                Some(Ok(id)) if id >= 0 => Ok(ExecutionProvider::Cuda { device_id: id }),
                _ => Err(format!("unknown device `{other}`, expected cpu, cuda or cuda:N")),
            },
        }
    }
}

/// ONNX Runtime graph optimisation level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OptimizationLevel {
    /// No graph optimisation.
    Disable,
    /// Constant folding, redundant node elimination.
    Basic,
    /// Basic plus complex fusions (attention, GELU, LayerNorm).
    Extended,
    /// Everything, including layout optimisations (ONNX Runtime's default).
    #[default]
    All,
}

impl OptimizationLevel {
    pub(crate) fn to_ort(self) -> ort::session::builder::GraphOptimizationLevel {
        use ort::session::builder::GraphOptimizationLevel as L;
        match self {
            OptimizationLevel::Disable => L::Disable,
            OptimizationLevel::Basic => L::Level1,
            OptimizationLevel::Extended => L::Level2,
            OptimizationLevel::All => L::All,
        }
    }
}

/// Which label template is applied to every label before it is encoded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LabelTemplate {
    /// The template recorded in the bundle (`spec.label_template`), if any. This is what the model
    /// was trained with, so it is almost always right.
    #[default]
    FromManifest,
    /// No template: labels are encoded as given.
    Disabled,
    /// This template instead (must contain `{}` where the label goes).
    Custom(String),
}

/// Settings of [`crate::Classifier::from_dir`]. `Default` gives CPU, ONNX Runtime's own thread
/// count and spinning, batches of 32, the manifest's label template, full graph optimisation, one
/// session. [`ClassifierOptions::latency`] and [`ClassifierOptions::throughput`] are the settings
/// measured best for a service answering one request at a time and for batch evaluation (docs/speed.md
/// "Threads", `scripts/compare_threads.py`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ClassifierOptions {
    /// Threads per ONNX Runtime session for work inside one operator (`None` = ONNX Runtime decides:
    /// one per physical core).
    pub intra_threads: Option<usize>,
    /// Whether ONNX Runtime's intra-op worker threads busy-wait for the next piece of work instead
    /// of sleeping (`session.intra_op.allow_spinning`; `None` = ONNX Runtime's default, on).
    /// Spinning saves the wake-up between operators but burns the cores while it lasts, also after
    /// a call, which other work on the machine (tokenisation, other sessions, other processes) pays.
    pub intra_op_spinning: Option<bool>,
    /// Where the encoder runs (CPU by default).
    pub execution_provider: ExecutionProvider,
    /// Texts (or labels) per encoder call, after sorting by length.
    pub batch_size: usize,
    /// The label template (the bundle's by default).
    pub label_template: LabelTemplate,
    /// ONNX Runtime's graph optimisation level (all by default).
    pub optimization_level: OptimizationLevel,
    /// How a label's views (name, description, examples) combine into its score
    /// ([`crate::ViewAggregation`]; labels with a name only are not affected).
    pub view_aggregation: crate::ViewAggregation,
    /// Sessions in the pool: concurrent `classify` calls run in parallel up to this many.
    pub sessions: usize,
    /// ONNX Runtime shared library to load (overrides `ORT_DYLIB_PATH`; else the path baked in at build
    /// time, if any).
    pub ort_dylib_path: Option<PathBuf>,
}

impl Default for ClassifierOptions {
    fn default() -> Self {
        ClassifierOptions {
            intra_threads: None,
            intra_op_spinning: None,
            execution_provider: ExecutionProvider::Cpu,
            batch_size: 32,
            label_template: LabelTemplate::FromManifest,
            optimization_level: OptimizationLevel::All,
            view_aggregation: Default::default(),
            sessions: 1,
            ort_dylib_path: None,
        }
    }
}

impl ClassifierOptions {
    /// A service classifying one request at a time (`zsc serve`, a classifier embedded in an app):
    /// ONNX Runtime's thread count (one per physical core), spinning off. Between requests a
    /// spinning worker busy-waits through the whole gap: on the 2-core test machine 16-25 ms of CPU
    /// per request at 20 ms between requests, against 2-5 ms without, for about 0.2 ms of latency
    /// (docs/speed.md). Back-to-back calls from one caller are faster with spinning on
    /// (`with_intra_op_spinning(true)`); concurrent requests scale with `with_sessions`.
    pub fn latency() -> Self {
        ClassifierOptions { intra_op_spinning: Some(false), ..Default::default() }
    }

    /// Batch evaluation or classification of a file (`zsc eval`, `zsc classify`): ONNX Runtime's
    /// thread count (one per physical core) with spinning on, its defaults: back-to-back batches
    /// keep the workers busy, and spinning saves their wake-up between operators.
    pub fn throughput() -> Self {
        ClassifierOptions { intra_op_spinning: Some(true), ..Default::default() }
    }

    /// Sets [`ClassifierOptions::intra_threads`].
    pub fn with_intra_threads(mut self, threads: usize) -> Self {
        self.intra_threads = Some(threads);
        self
    }

    /// Sets [`ClassifierOptions::intra_op_spinning`].
    pub fn with_intra_op_spinning(mut self, spinning: bool) -> Self {
        self.intra_op_spinning = Some(spinning);
        self
    }

    /// Sets [`ClassifierOptions::execution_provider`].
    pub fn with_execution_provider(mut self, provider: ExecutionProvider) -> Self {
        self.execution_provider = provider;
        self
    }

    /// Sets [`ClassifierOptions::batch_size`] (at least 1).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// Sets [`ClassifierOptions::label_template`].
    pub fn with_label_template(mut self, template: LabelTemplate) -> Self {
        self.label_template = template;
        self
    }

    /// Sets [`ClassifierOptions::optimization_level`].
    pub fn with_optimization_level(mut self, level: OptimizationLevel) -> Self {
        self.optimization_level = level;
        self
    }

    /// Sets [`ClassifierOptions::view_aggregation`].
    pub fn with_view_aggregation(mut self, aggregation: crate::ViewAggregation) -> Self {
        self.view_aggregation = aggregation;
        self
    }

    /// Sets [`ClassifierOptions::sessions`] (at least 1).
    pub fn with_sessions(mut self, sessions: usize) -> Self {
        self.sessions = sessions;
        self
    }

    /// Sets [`ClassifierOptions::ort_dylib_path`].
    pub fn with_ort_dylib_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.ort_dylib_path = Some(path.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!("cpu".parse::<ExecutionProvider>().unwrap(), ExecutionProvider::Cpu);
        assert_eq!("cuda".parse::<ExecutionProvider>().unwrap(), ExecutionProvider::Cuda { device_id: 0 });
        assert_eq!("cuda:2".parse::<ExecutionProvider>().unwrap(), ExecutionProvider::Cuda { device_id: 2 });
        assert!("tpu".parse::<ExecutionProvider>().unwrap_err().contains("tpu"));
        assert!("cuda:-1".parse::<ExecutionProvider>().is_err());
    }

    #[test]
    fn presets() {
        assert_eq!(ClassifierOptions::latency().intra_op_spinning, Some(false));
        assert_eq!(ClassifierOptions::latency().intra_threads, None);
        assert_eq!(ClassifierOptions::throughput().intra_op_spinning, Some(true));
        assert_eq!(ClassifierOptions::latency().with_intra_threads(2).intra_threads, Some(2));
    }

    #[test]
    fn setters_set() {
        assert_eq!(ClassifierOptions::default().intra_op_spinning, None, "ONNX Runtime's own default unless asked");
        let o = ClassifierOptions::default()
            .with_intra_op_spinning(false)
            .with_intra_threads(2)
            .with_batch_size(8)
            .with_sessions(3)
            .with_label_template(LabelTemplate::Custom("About {}.".into()))
            .with_optimization_level(OptimizationLevel::Basic);
        assert_eq!(o.intra_threads, Some(2));
        assert_eq!(o.intra_op_spinning, Some(false));
        assert_eq!(o.batch_size, 8);
        assert_eq!(o.sessions, 3);
        assert_eq!(o.label_template, LabelTemplate::Custom("About {}.".into()));
        assert_eq!(o.optimization_level, OptimizationLevel::Basic);
    }
}
