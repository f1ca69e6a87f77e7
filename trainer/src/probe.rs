//! The zero-shot probe: held-out tasks (data files whose labels and texts training never sees),
//! each scored against its own labels at every validation. Their macro-average top-1 chooses the
//! `best_probe/` checkpoint, i.e. model selection on tasks kept out of training.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use zsc_core::data::{self, Sample};
use zsc_core::rng::SplitMix64;
use zsc_core::tokenize::TextTokenizer;

use crate::error::Result;
use crate::models::ZscModel;

/// One held-out task: its texts and the labels they are scored against.
pub struct ProbeTask {
    /// The file stem, e.g. `trec_dev`.
    pub name: String,
    samples: Vec<Sample>,
    labels: Vec<String>,
}

/// Top-1 of each task and their macro average.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeScores {
    pub macro_top1: f64,
    pub per_task: BTreeMap<String, f64>,
}

pub struct Probe {
    pub tasks: Vec<ProbeTask>,
}

impl Probe {
    /// Reads every task file; `max_texts` > 0 keeps a seeded subset of each. Warns when a task
    /// shares labels or texts with training (it would then not measure transfer to unseen ones).
    pub fn load(paths: &[std::path::PathBuf], max_texts: usize, seed: u64, train: &[Sample]) -> Result<Probe> {
        let train_labels: HashSet<&str> = train.iter().flat_map(|s| s.labels.iter().map(String::as_str)).collect();
        let train_texts: HashSet<&str> = train.iter().map(|s| s.text.as_str()).collect();
        let mut tasks = Vec::new();
        for path in paths {
            let mut samples = data::load_samples(path)?;
            if max_texts > 0 && samples.len() > max_texts {
                SplitMix64::new(seed).shuffle(&mut samples);
                samples.truncate(max_texts);
            }
            let labels = data::sorted_labels(&samples);
            warn_on_overlap(path, &labels, &samples, &train_labels, &train_texts);
            tracing::info!("zero-shot probe task {}: {} texts against {} labels", path.display(), samples.len(), labels.len());
            tasks.push(ProbeTask { name: task_name(path), samples, labels });
        }
        Ok(Probe { tasks })
    }

    /// Top-1 of the model as it is now (eval mode, no gradients) on every task.
    pub fn evaluate(&self, model: &ZscModel, tok: &TextTokenizer) -> Result<ProbeScores> {
        let mut per_task = BTreeMap::new();
        for t in &self.tasks {
            let acc = crate::eval::evaluate(model, tok, &t.samples, &t.labels, "probe", 64)?.report.top1_accuracy;
            per_task.insert(t.name.clone(), acc);
        }
        let macro_top1 = per_task.values().sum::<f64>() / per_task.len().max(1) as f64;
        Ok(ProbeScores { macro_top1, per_task })
    }
}

fn task_name(path: &Path) -> String {
    path.file_stem().map_or_else(|| path.display().to_string(), |s| s.to_string_lossy().into_owned())
}

fn warn_on_overlap(
    path: &Path,
    labels: &[String],
    samples: &[Sample],
    train_labels: &HashSet<&str>,
    train_texts: &HashSet<&str>,
) {
    let shared: Vec<&String> = labels.iter().filter(|l| train_labels.contains(l.as_str())).collect();
    if let Some(first) = shared.first() {
        tracing::warn!(
            "probe_data {}: {} of its {} labels are also train labels (e.g. {first:?}): it does not measure unseen labels only",
            path.display(),
            shared.len(),
            labels.len()
        );
    }
    let texts = samples.iter().filter(|s| train_texts.contains(s.text.as_str())).count();
    if texts > 0 {
        tracing::warn!("probe_data {}: {texts} of its texts are also train texts", path.display());
    }
}
