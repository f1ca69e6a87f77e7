//! `metrics.jsonl`: one JSON line per training step (train loss, learning rate, throughput, and
//! at validation steps the val loss and the zero-shot probe), appended as the run goes so that
//! a crash keeps every step written so far.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainerError};

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsRecord {
    pub step: usize,
    pub loss: f64,
    pub lr: f64,
    #[serde(default)]
    pub val_loss: Option<f64>,
    pub steps_per_s: f64,
    /// Seconds since this process started training.
    pub elapsed: f64,
    /// Macro-average top-1 over the probe's held-out tasks, at validation steps of a run that has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_top1: Option<f64>,
    /// Top-1 of each held-out task (file stem -> accuracy).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub probe_tasks: BTreeMap<String, f64>,
    /// The data source the step's batch came from (multi-source data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// The run's metrics file and every record of this run (including those before a resume point).
pub struct MetricsLog {
    path: PathBuf,
    file: std::fs::File,
    pub records: Vec<MetricsRecord>,
}

impl MetricsLog {
    /// A fresh run starts a new file; a resumed run keeps the records up to `start_step` and drops
    /// the rest (steps after the checkpoint it resumes from are run again).
    pub fn open(run_dir: &Path, resume: bool, start_step: usize) -> Result<MetricsLog> {
        let path = run_dir.join("metrics.jsonl");
        let records: Vec<MetricsRecord> =
            if resume { read_metrics(&path).into_iter().filter(|r| r.step <= start_step).collect() } else { Vec::new() };
        let mut text = String::new();
        for r in &records {
            text.push_str(&to_line(r)?);
        }
        zsc_core::manifest::write_atomic(&path, text.as_bytes())?;
        let file = std::fs::OpenOptions::new().append(true).open(&path).map_err(|e| TrainerError::io(&path, e))?;
        Ok(MetricsLog { path, file, records })
    }

    pub fn append(&mut self, record: MetricsRecord) -> Result<()> {
        self.file.write_all(to_line(&record)?.as_bytes()).map_err(|e| TrainerError::io(&self.path, e))?;
        self.records.push(record);
        Ok(())
    }
}

fn to_line(r: &MetricsRecord) -> Result<String> {
    let mut line = serde_json::to_string(r).map_err(|e| TrainerError::Invalid(e.to_string()))?;
    line.push('\n');
    Ok(line)
}

/// Records of an existing `metrics.jsonl` (unparsable lines are skipped).
pub fn read_metrics(path: &Path) -> Vec<MetricsRecord> {
    std::fs::read_to_string(path).map(|t| t.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()).unwrap_or_default()
}
