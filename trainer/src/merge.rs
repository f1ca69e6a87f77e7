//! Merging with the base (`base_merge`; weight-space ensembling, "WiSE-FT", Wortsman et al. 2022):
//! after training, the encoder weights of `best_probe/` are interpolated with the untrained
//! base's, `w * trained + (1 - w) * base`, for each weight `w` the config lists. Fine-tuning
//! and the base are two points of one low-loss basin; points between them often transfer to
//! unseen tasks better than either end. Each merge is scored on the zero-shot probe (the same
//! held-out dev tasks that chose the step), and `best_probe/` becomes the best of them, the
//! unmerged model (`w = 1`) included, so merging can only keep or raise the probe score. Head
//! parameters (poly codes, ColBERT projection, score scales) keep their trained values: the
//! base has none. `base_merge.json` in the run folder records every trial.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use tch::Tensor;
use zsc_core::tokenize::TextTokenizer;

use crate::error::{Result, TrainerError};
use crate::models::ZscModel;
use crate::probe::{Probe, ProbeScores};

/// One interpolation weight and what the probe said of it.
#[derive(Debug, Clone, Serialize)]
pub struct MergeTrial {
    /// Share of the trained weights (1 = the trained model as it is).
    pub weight: f64,
    pub probe_top1: f64,
    pub probe_tasks: BTreeMap<String, f64>,
}

/// `base_merge.json`: the step that was merged, every trial, the weight kept.
#[derive(Debug, Clone, Serialize)]
pub struct MergeReport {
    pub step: usize,
    pub trials: Vec<MergeTrial>,
    pub chosen_weight: f64,
}

/// The trained encoder weights and the base's, by checkpoint name (deep copies).
pub struct MergeEnds {
    trained: BTreeMap<String, Tensor>,
    base: BTreeMap<String, Tensor>,
}

impl MergeEnds {
    /// Snapshots `model` as trained and reads the base encoder of `base_dir` (same architecture).
    pub fn new(model: &ZscModel, base_dir: &Path) -> Result<MergeEnds> {
        let base_model = ZscModel::from_base(model.spec.clone(), base_dir, tch::Device::Cpu)?;
        let base: BTreeMap<String, Tensor> =
            base_model.named_tensors_cpu().into_iter().filter(|(k, _)| !ZscModel::is_head_param(k)).collect();
        let trained: BTreeMap<String, Tensor> = model
            .vs
            .variables()
            .into_iter()
            .filter(|(k, _)| base.contains_key(k))
            .map(|(k, v)| (k, v.detach().to_device(tch::Device::Cpu).copy()))
            .collect();
        Ok(MergeEnds { trained, base })
    }

    /// Sets `model`'s encoder to `weight * trained + (1 - weight) * base` (heads untouched).
    pub fn apply(&self, model: &ZscModel, weight: f64) -> Result<()> {
        let vars = model.vs.variables();
        tch::no_grad(|| {
            for (name, trained) in &self.trained {
                let (Some(var), Some(base)) = (vars.get(name), self.base.get(name)) else { continue };
                let merged = trained * weight + base * (1.0 - weight);
                let mut dst = var.shallow_clone();
                dst.f_copy_(&merged.to_device(var.device()).to_kind(var.kind()))
                    .map_err(|e| TrainerError::torch(format!("merging {name}"), e))?;
            }
            Ok(())
        })
    }
}

/// Scores every weight of `weights` on `probe` (`unmerged` is the trained model's own score,
/// weight 1) and leaves `model` at the best one (the earliest of equals: 1 first, then the
/// config's order). Returns the trials with the chosen weight.
pub fn choose_merge(
    model: &ZscModel,
    ends: &MergeEnds,
    weights: &[f64],
    probe: &Probe,
    tok: &TextTokenizer,
    step: usize,
    unmerged: ProbeScores,
) -> Result<MergeReport> {
    let mut trials = vec![MergeTrial { weight: 1.0, probe_top1: unmerged.macro_top1, probe_tasks: unmerged.per_task }];
    for &w in weights.iter().filter(|&&w| w != 1.0) {
        ends.apply(model, w)?;
        let s = probe.evaluate(model, tok)?;
        tracing::info!("base merge {w}: zero-shot probe top-1 {:.4}", s.macro_top1);
        trials.push(MergeTrial { weight: w, probe_top1: s.macro_top1, probe_tasks: s.per_task });
    }
    let best = trials.iter().fold(&trials[0], |b, t| if t.probe_top1 > b.probe_top1 { t } else { b });
    let chosen_weight = best.weight;
    ends.apply(model, chosen_weight)?;
    Ok(MergeReport { step, trials, chosen_weight })
}
