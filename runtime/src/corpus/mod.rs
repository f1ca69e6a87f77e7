//! Classifying a whole file: rows in (JSONL, CSV/TSV, plain text), predictions out (JSONL, CSV)
//! with each row's id carried through, a progress bar, bad rows reported by line, `resume` after a
//! crash, and optionally the labels adapted to the pool ([`crate::adapt`]).
//!
//! ```no_run
//! use zsc::corpus::{classify_file, FileJob, InputSpec};
//! # fn main() -> Result<(), zsc::corpus::CorpusError> {
//! let clf = zsc::Classifier::from_dir("bundles/minilm", zsc::ClassifierOptions::default())?;
//! let labels = clf.encode_labels(&["billing", "delivery", "returns"])?;
//! let job = FileJob::new(InputSpec::new("tickets.jsonl").with_id_field(Some("ticket_id".into())), "predicted.jsonl")
//!     .with_top_k(1)
//!     .with_adapt(Some(zsc::AdaptOptions::default()));
//! let summary = classify_file(&clf, &labels, &job)?;
//! println!("{} rows, {} bad", summary.rows, summary.bad_rows);
//! # Ok(())
//! # }
//! ```

mod job;
mod read;
mod write;

use std::path::PathBuf;

pub use job::{classify_file, FileJob, Summary};
pub use read::{BadRow, CorpusReader, InputFormat, InputSpec, Record};
pub use write::{id_text, resume_point, CorpusWriter, OutputFormat, ResumePoint};

/// What stops a file run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CorpusError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The CSV/TSV header is unreadable or lacks a column asked for.
    #[error("{path}: header: {message}")]
    Header {
        /// The input.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// A row is malformed (and bad rows are not being skipped).
    #[error("{path}:{line}: {message} (pass --skip-bad-rows to skip such rows)")]
    BadRow {
        /// The input.
        path: PathBuf,
        /// Its line (1-based).
        line: u64,
        /// What is wrong.
        message: String,
    },

    /// The output to resume does not continue this input.
    #[error("cannot resume {path}: {message}")]
    Resume {
        /// The output.
        path: PathBuf,
        /// Why not.
        message: String,
    },

    /// Keeping the pool's vectors for adaptation would pass the memory limit.
    #[error(
        "adapting to this pool needs more than {limit_mib} MiB for its vectors ({texts} texts so far x {dim} dims x 4 bytes): \
         raise the limit (--adapt-max-memory MiB) or classify without adaptation"
    )]
    PoolTooLarge {
        /// Texts read when the limit was passed.
        texts: usize,
        /// Vector width.
        dim: usize,
        /// The limit.
        limit_mib: u64,
    },

    /// A setting of the job is out of range.
    #[error("invalid option `{option}`: {message}")]
    InvalidOption {
        /// The setting.
        option: &'static str,
        /// What is wrong.
        message: String,
    },

    /// Classifying failed.
    #[error(transparent)]
    Classify(#[from] crate::Error),
}
