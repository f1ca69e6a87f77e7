//! [`classify_file`]: one input file to one output file, streamed at constant memory, or in two
//! passes over kept vectors when the labels adapt to the pool.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use super::read::{CorpusReader, InputSpec, Record};
use super::write::{id_text, resume_point, truncate_to, CorpusWriter, OutputFormat};
use super::CorpusError;
use crate::adapt::{AdaptOptions, AdaptReport};
use crate::{Classifier, LabelSet, PoolVectors, Prediction, ProbabilityMode};

/// One file run: where the rows come from and go, how they are ranked, and what happens to bad
/// rows, interruptions and the pool.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FileJob {
    /// The input.
    pub input: InputSpec,
    /// The output file (`None`: standard output, JSONL or CSV).
    pub output: Option<PathBuf>,
    /// The output's layout.
    pub output_format: OutputFormat,
    /// Labels per row, best first.
    pub top_k: usize,
    /// Multi-label probabilities (independent sigmoids) instead of a softmax over the labels.
    pub multi_label: bool,
    /// Keep only labels whose probability reaches it.
    pub threshold: Option<f32>,
    /// Skip and count malformed rows instead of failing at the first.
    pub skip_bad_rows: bool,
    /// Continue after the last complete row of an existing output.
    pub resume: bool,
    /// A progress bar on standard error (drawn only on a terminal).
    pub progress: bool,
    /// Adapt the labels to the pool (BiEncoder bundles) with these settings.
    pub adapt: Option<AdaptOptions>,
    /// Most MiB the pool's kept vectors may take when adapting.
    pub adapt_max_memory_mib: u64,
    /// Rows per encoder call group (sorted by length inside it).
    pub chunk_rows: usize,
}

impl FileJob {
    /// `input` to `output` (JSONL, or CSV for a `.csv` name), top 5, no adaptation.
    pub fn new(input: InputSpec, output: impl Into<PathBuf>) -> Self {
        let output = output.into();
        FileJob {
            input,
            output_format: OutputFormat::from_path(&output),
            output: Some(output),
            top_k: 5,
            multi_label: false,
            threshold: None,
            skip_bad_rows: false,
            resume: false,
            progress: false,
            adapt: None,
            adapt_max_memory_mib: 4096,
            chunk_rows: 4096,
        }
    }

    /// Write to standard output instead of a file.
    pub fn to_stdout(mut self, format: OutputFormat) -> Self {
        self.output = None;
        self.output_format = format;
        self
    }

    /// Set the output format.
    pub fn with_output_format(mut self, format: OutputFormat) -> Self {
        self.output_format = format;
        self
    }

    /// Set how many labels each row keeps.
    pub fn with_top_k(mut self, k: usize) -> Self {
        self.top_k = k;
        self
    }

    /// Multi-label probabilities.
    pub fn with_multi_label(mut self, on: bool) -> Self {
        self.multi_label = on;
        self
    }

    /// Keep labels whose probability reaches `p` (implies multi-label, as on the command line).
    pub fn with_threshold(mut self, p: Option<f32>) -> Self {
        self.threshold = p;
        self
    }

    /// Skip malformed rows (counted in the summary).
    pub fn with_skip_bad_rows(mut self, on: bool) -> Self {
        self.skip_bad_rows = on;
        self
    }

    /// Resume an interrupted output.
    pub fn with_resume(mut self, on: bool) -> Self {
        self.resume = on;
        self
    }

    /// Show a progress bar on a terminal.
    pub fn with_progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    /// Adapt the labels to the pool.
    pub fn with_adapt(mut self, options: Option<AdaptOptions>) -> Self {
        self.adapt = options;
        self
    }

    /// Set the memory limit of the kept vectors (MiB).
    pub fn with_adapt_max_memory_mib(mut self, mib: u64) -> Self {
        self.adapt_max_memory_mib = mib;
        self
    }

    /// Set the rows per chunk.
    pub fn with_chunk_rows(mut self, n: usize) -> Self {
        self.chunk_rows = n;
        self
    }

    fn check(&self) -> Result<(), CorpusError> {
        let bad = |option, message: &str| Err(CorpusError::InvalidOption { option, message: message.into() });
        if self.top_k == 0 {
            return bad("top_k", "must be at least 1");
        }
        if self.chunk_rows == 0 {
            return bad("chunk_rows", "must be at least 1");
        }
        if self.threshold.is_some_and(|p| !(0.0..=1.0).contains(&p)) {
            return bad("threshold", "must be a probability between 0 and 1");
        }
        if self.resume && self.output.is_none() {
            return bad("resume", "needs an output file");
        }
        if let Some(a) = &self.adapt {
            a.check().map_err(|message| CorpusError::InvalidOption { option: "adapt", message })?;
        }
        Ok(())
    }
}

/// What a file run did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct Summary {
    /// Rows written by this run.
    pub rows: u64,
    /// Rows an earlier run had written (resumed after them).
    pub resumed: u64,
    /// Malformed rows skipped.
    pub bad_rows: u64,
    /// Wall time of the run.
    pub seconds: f64,
    /// Whether the probabilities are calibrated.
    pub calibrated: bool,
    /// What the adaptation did, when asked for.
    pub adapt: Option<AdaptReport>,
}

/// Reads good rows, skipping (and counting) or failing on bad ones.
struct Rows {
    reader: CorpusReader,
    path: PathBuf,
    skip_bad: bool,
    bad: u64,
}

impl Rows {
    fn next_good(&mut self) -> Result<Option<Record>, CorpusError> {
        loop {
            match self.reader.next_row()? {
                None => return Ok(None),
                Some(Ok(r)) => return Ok(Some(r)),
                Some(Err(bad)) if self.skip_bad => {
                    self.bad += 1;
                    if self.bad <= 10 {
                        tracing::warn!("{}:{}: {} (skipped)", self.path.display(), bad.line, bad.message);
                    }
                }
                Some(Err(bad)) => {
                    return Err(CorpusError::BadRow { path: self.path.clone(), line: bad.line, message: bad.message })
                }
            }
        }
    }

    fn chunk(&mut self, n: usize) -> Result<Vec<Record>, CorpusError> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match self.next_good()? {
                Some(r) => out.push(r),
                None => break,
            }
        }
        Ok(out)
    }
}

/// The ranking of one score row as the job asks it.
struct Ranker<'a> {
    probability: crate::Probabilities<'a>,
    labels: &'a [String],
    top_k: usize,
    threshold: Option<f32>,
}

impl Ranker<'_> {
    fn rank(&self, scores: &[f32]) -> Vec<Prediction> {
        let mut ranked = self.probability.rank(scores, self.labels, self.top_k);
        if let Some(p) = self.threshold {
            ranked.retain(|l| l.probability >= p);
        }
        ranked
    }
}

fn progress_bar(job: &FileJob, total: Option<u64>) -> ProgressBar {
    if !job.progress || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(t) => ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr()),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
    };
    let template = if total.is_some() {
        "{elapsed_precise} {wide_bar} {percent:>3}% {msg} (eta {eta})"
    } else {
        "{spinner} {elapsed_precise} {msg}"
    };
    bar.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()));
    bar.enable_steady_tick(std::time::Duration::from_secs(1));
    bar
}

/// Where the output resumes: rows already written and their last id (none for a fresh run).
fn prepare_output(job: &FileJob, top_k: usize) -> Result<(u64, Option<String>, bool), CorpusError> {
    let Some(path) = job.output.as_deref().filter(|p| job.resume && p.exists()) else {
        return Ok((0, None, false));
    };
    let point = resume_point(path, job.output_format)?;
    if let Some(columns) = point.label_columns.filter(|&c| c != top_k) {
        let message = format!("it has {columns} label columns and this run writes {top_k}: resume with the same --top-k");
        return Err(CorpusError::Resume { path: path.to_path_buf(), message });
    }
    truncate_to(path, point.bytes)?;
    Ok((point.rows, point.last_id, point.bytes > 0))
}

fn check_continues(job: &FileJob, written: u64, last_id: &Option<String>, id: Option<&Value>) -> Result<(), CorpusError> {
    let path = job.output.clone().unwrap_or_default();
    let resume_err = |message: String| CorpusError::Resume { path: path.clone(), message };
    match (last_id, id) {
        (Some(want), Some(have)) if *want != id_text(have) => Err(resume_err(format!(
            "its row {written} has id `{want}` but row {written} of the input has id `{}`: is it the output of another input?",
            id_text(have)
        ))),
        (Some(_), None) => Err(resume_err(format!("it has {written} rows, more than the input's"))),
        _ => Ok(()),
    }
}

/// Classify every row of `job.input` against `labels` and write the predictions to `job.output`.
/// Without adaptation the rows stream through at constant memory; with it the texts are encoded
/// once and their vectors kept (`N x (dim + 1) x 4` bytes, refused past `adapt_max_memory_mib`).
pub fn classify_file(clf: &Classifier, labels: &LabelSet, job: &FileJob) -> Result<Summary, CorpusError> {
    job.check()?;
    let started = Instant::now();
    let top_k = job.top_k.min(labels.len());
    let (resumed, last_id, append) = prepare_output(job, top_k)?;
    let reader = CorpusReader::open(&job.input)?;
    let bar = progress_bar(job, job.input.size());
    let mut rows = Rows { reader, path: job.input.path.clone(), skip_bad: job.skip_bad_rows, bad: 0 };
    let multi_label = job.multi_label || job.threshold.is_some();
    let mode = if multi_label { ProbabilityMode::MultiLabel } else { ProbabilityMode::SingleLabel };
    let ranker = Ranker { probability: clf.probability(mode), labels: labels.labels(), top_k, threshold: job.threshold };
    let mut writer = CorpusWriter::open(job.output.as_deref(), job.output_format, top_k, append)?;
    let (written, adapt) = match &job.adapt {
        None => (stream(clf, labels, job, &mut rows, &mut writer, &ranker, (resumed, &last_id), &bar)?, None),
        Some(options) => {
            let (n, report) = adapted(clf, labels, options, job, &mut rows, &mut writer, &ranker, (resumed, &last_id), &bar)?;
            (n, Some(report))
        }
    };
    bar.finish_and_clear();
    Ok(Summary {
        rows: written,
        resumed,
        bad_rows: rows.bad,
        seconds: started.elapsed().as_secs_f64(),
        calibrated: clf.calibration().is_some(),
        adapt,
    })
}

fn show(bar: &ProgressBar, rows: &Rows, done: u64, started: Instant, what: &str) {
    bar.set_position(rows.reader.bytes_read().load(Ordering::Relaxed));
    let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
    bar.set_message(format!("{what} {done} rows, {rate:.0}/s"));
}

/// The plain run: chunk by chunk, scored and written at once.
#[allow(clippy::too_many_arguments)]
fn stream(
    clf: &Classifier,
    labels: &LabelSet,
    job: &FileJob,
    rows: &mut Rows,
    writer: &mut CorpusWriter,
    ranker: &Ranker<'_>,
    (resumed, last_id): (u64, &Option<String>),
    bar: &ProgressBar,
) -> Result<u64, CorpusError> {
    let started = Instant::now();
    let mut seen = 0u64;
    let mut written = 0u64;
    loop {
        let chunk = rows.chunk(job.chunk_rows)?;
        let first = seen;
        seen += chunk.len() as u64;
        if first < resumed && resumed <= seen {
            check_continues(job, resumed, last_id, Some(&chunk[(resumed - first - 1) as usize].id))?;
        }
        if chunk.is_empty() {
            if seen < resumed {
                check_continues(job, resumed, last_id, None)?;
            }
            return Ok(written);
        }
        if seen <= resumed {
            continue; // written by the earlier run
        }
        // the whole chunk is scored, as the earlier run did, so the same batches give the same bits
        let texts: Vec<&str> = chunk.iter().map(|r| r.text.as_str()).collect();
        let scores = clf.scores(&texts, labels)?;
        let skip = resumed.saturating_sub(first) as usize;
        for (record, row) in chunk.iter().zip(&scores).skip(skip) {
            writer.push(&record.id, &ranker.rank(row))?;
        }
        writer.flush_chunk()?;
        written += (chunk.len() - skip) as u64;
        show(bar, rows, written, started, "");
    }
}

/// The adapted run: pass 1 encodes and keeps every text's vector (and id), the labels adapt,
/// pass 2 scores the kept vectors and writes.
#[allow(clippy::too_many_arguments)]
fn adapted(
    clf: &Classifier,
    labels: &LabelSet,
    options: &AdaptOptions,
    job: &FileJob,
    rows: &mut Rows,
    writer: &mut CorpusWriter,
    ranker: &Ranker<'_>,
    (resumed, last_id): (u64, &Option<String>),
    bar: &ProgressBar,
) -> Result<(u64, AdaptReport), CorpusError> {
    let started = Instant::now();
    let dim = clf.manifest().output_dim;
    let limit = job.adapt_max_memory_mib.saturating_mul(1 << 20);
    let (mut ids, mut parts) = (Vec::new(), Vec::new());
    loop {
        let chunk = rows.chunk(job.chunk_rows)?;
        if chunk.is_empty() {
            break;
        }
        if PoolVectors::memory_bytes(ids.len() + chunk.len(), dim) > limit {
            let limit_mib = job.adapt_max_memory_mib;
            return Err(CorpusError::PoolTooLarge { texts: ids.len() + chunk.len(), dim, limit_mib });
        }
        let texts: Vec<&str> = chunk.iter().map(|r| r.text.as_str()).collect();
        parts.push(clf.pool_vectors(&texts)?);
        ids.extend(chunk.into_iter().map(|r| r.id));
        show(bar, rows, ids.len() as u64, started, "encoded");
    }
    let encoded = started.elapsed();
    let adaptation = clf.adapt_labels_parts(&parts, labels, options)?;
    tracing::debug!(
        "pool of {} texts encoded in {encoded:.2?}, labels adapted in {:.2?}",
        ids.len(),
        started.elapsed() - encoded
    );
    if let Some(why) = &adaptation.report.skipped {
        tracing::warn!("{why}");
    }
    let n = ids.len();
    let resumed_rows = resumed as usize;
    let last_written = if resumed_rows <= n { resumed_rows.checked_sub(1).map(|i| &ids[i]) } else { None };
    check_continues(job, resumed, last_id, last_written)?;
    let mut written = 0u64;
    let mut from = 0;
    for part in &parts {
        let to = from + part.len();
        if to > resumed_rows {
            // every part is scored whole, as the earlier run did
            let scores = clf.pool_scores(part, &adaptation.labels)?;
            let skip = resumed_rows.saturating_sub(from);
            for (id, row) in ids[from..to].iter().zip(&scores).skip(skip) {
                writer.push(id, &ranker.rank(row))?;
            }
            writer.flush_chunk()?;
            written += (to - from - skip) as u64;
        }
        from = to;
    }
    tracing::debug!("scored and written after {:.2?}", started.elapsed());
    Ok((written, adaptation.report))
}
