//! `zsc classify --input FILE`: a whole file in, predictions out, and `--adapt` (the labels
//! refined from the pool), for files and for texts given on the command line alike.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use zsc::corpus::{classify_file, FileJob, InputFormat, InputSpec, OutputFormat};
use zsc::{AdaptOptions, Classifier, LabelSet};

/// Files in and out (`--input`), with `--adapt`.
#[derive(Args, Debug)]
pub struct CorpusArgs {
    /// Classify this file instead of TEXT arguments: JSONL (`.jsonl`), CSV (`.csv`), TSV (`.tsv`)
    /// with a header, or plain text (one text per line); `-` reads standard input.
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Write predictions here (JSONL, or CSV for a `.csv` name); default standard output.
    #[arg(long, value_name = "FILE", requires = "input")]
    pub output: Option<PathBuf>,
    /// The input's format when its extension does not say it: jsonl, csv, tsv or text.
    #[arg(long, value_name = "FMT", requires = "input")]
    pub input_format: Option<InputFormat>,
    /// The output's format: jsonl or csv (default: by the output's extension, else jsonl).
    #[arg(long, value_name = "FMT", requires = "input")]
    pub output_format: Option<OutputFormat>,
    /// The JSONL key or CSV column holding the text.
    #[arg(long, value_name = "NAME", default_value = "text", requires = "input")]
    pub text_field: String,
    /// The JSONL key or CSV column of each row's id, carried to its output row (default: the row's line number).
    #[arg(long, value_name = "NAME", requires = "input")]
    pub id_field: Option<String>,
    /// Skip malformed rows (each reported with its line, counted in the summary) instead of stopping at the first.
    #[arg(long, requires = "input")]
    pub skip_bad_rows: bool,
    /// Continue an interrupted run: keep the output's complete rows and classify the rest.
    #[arg(long, requires = "output")]
    pub resume: bool,
    /// No progress bar and no summary line.
    #[arg(long)]
    pub quiet: bool,
    /// Adapt the labels to the pool: refine each label's vector from the texts assigned to it
    /// (BiEncoder bundles; docs/corpus.md). The pool is the input file or the texts given.
    #[arg(long)]
    pub adapt: bool,
    /// Adaptation rounds.
    #[arg(long, value_name = "N", requires = "adapt")]
    pub adapt_rounds: Option<usize>,
    /// Weight of a label's own vector in its refined vector (the pool's mean gets the rest).
    #[arg(long, value_name = "W", requires = "adapt")]
    pub adapt_label_weight: Option<f32>,
    /// A label moves only with at least this many assigned texts.
    #[arg(long, value_name = "N", requires = "adapt")]
    pub adapt_min_texts: Option<usize>,
    /// Nothing moves unless the pool has at least this many texts per label on average.
    #[arg(long, value_name = "N", requires = "adapt")]
    pub adapt_min_pool_per_label: Option<f32>,
    /// Balanced assignment (Sinkhorn): only for pools known to be balanced; it collapses on imbalanced ones.
    #[arg(long, requires = "adapt")]
    pub adapt_balanced: bool,
    /// Most MiB the pool's kept vectors may take (N texts x dim x 4 bytes).
    #[arg(long, value_name = "MIB", default_value_t = 4096, requires = "adapt")]
    pub adapt_max_memory: u64,
}

impl CorpusArgs {
    /// The adaptation settings, when `--adapt` is on.
    pub fn adapt_options(&self) -> Option<AdaptOptions> {
        if !self.adapt {
            return None;
        }
        let mut o = AdaptOptions::default().with_balanced(self.adapt_balanced);
        if let Some(n) = self.adapt_rounds {
            o = o.with_rounds(n);
        }
        if let Some(w) = self.adapt_label_weight {
            o = o.with_label_weight(w);
        }
        if let Some(n) = self.adapt_min_texts {
            o = o.with_min_texts(n);
        }
        if let Some(n) = self.adapt_min_pool_per_label {
            o = o.with_min_pool_per_label(n);
        }
        Some(o)
    }
}

/// Ranking settings shared with the TEXT path.
pub struct Ranking {
    pub top_k: usize,
    pub multi_label: bool,
    pub threshold: Option<f32>,
}

/// `zsc classify --input FILE [--output FILE]`.
pub fn classify_input(clf: &Classifier, labels: &LabelSet, args: &CorpusArgs, ranking: &Ranking) -> Result<()> {
    let Some(input) = &args.input else { bail!("no --input") };
    let mut spec = InputSpec::new(input).with_text_field(&args.text_field).with_id_field(args.id_field.clone());
    if let Some(f) = args.input_format {
        spec = spec.with_format(f);
    } else if input.as_os_str() == "-" {
        spec = spec.with_format(InputFormat::Text);
    }
    let mut job = match &args.output {
        Some(out) => FileJob::new(spec, out),
        None => FileJob::new(spec, "-").to_stdout(OutputFormat::Jsonl),
    };
    if let Some(f) = args.output_format {
        job = job.with_output_format(f);
    }
    job = job
        .with_top_k(ranking.top_k)
        .with_multi_label(ranking.multi_label)
        .with_threshold(ranking.threshold)
        .with_skip_bad_rows(args.skip_bad_rows)
        .with_resume(args.resume)
        .with_progress(!args.quiet)
        .with_adapt(args.adapt_options())
        .with_adapt_max_memory_mib(args.adapt_max_memory);
    let summary = classify_file(clf, labels, &job).with_context(|| format!("classifying {}", input.display()))?;
    if !args.quiet {
        let rate = summary.rows as f64 / summary.seconds.max(1e-9);
        let mut line = format!("classified {} rows in {:.1} s ({rate:.0} rows/s)", summary.rows, summary.seconds);
        if summary.resumed > 0 {
            line += &format!(", after {} rows of an earlier run", summary.resumed);
        }
        if summary.bad_rows > 0 {
            line += &format!(", {} bad rows skipped", summary.bad_rows);
        }
        if let Some(a) = &summary.adapt {
            line += &match &a.skipped {
                Some(why) => format!("; not adapted: {why}"),
                None => {
                    let mib = zsc::PoolVectors::memory_bytes(a.pool, clf.manifest().output_dim) as f64 / (1 << 20) as f64;
                    let (moved, labels, rounds) = (a.moved, a.counts.len(), a.rounds);
                    format!("; adapted: {moved} of {labels} labels moved over {rounds} rounds ({mib:.1} MiB of kept vectors)")
                }
            };
        }
        if !summary.calibrated {
            line += "; probabilities uncalibrated (zsc calibrate)";
        }
        eprintln!("{line}");
    }
    Ok(())
}
