//! Probability calibration at the end of training: the temperature of the single-label softmax
//! and the multi-label sigmoid's temperature and bias ([`zsc_core::calibration`]), fitted on the
//! val split's texts against the val split's labels, written as `calibration.json` into `best/`
//! and `best_probe/`. `export` copies it into the bundle's manifest, so an exported bundle prints
//! calibrated probabilities without a `zsc calibrate` step (which fits the same thing on a bundle).

use std::path::Path;

use crate::config::TrainConfig;
use tch::Device;
use zsc_core::calibration::fit_calibration;
use zsc_core::data::{self, Sample, Split};

use crate::checkpoint::Checkpoint;
use crate::error::{Result, TrainerError};
use crate::eval;

/// The checkpoints a user exports.
const CALIBRATED_CHECKPOINTS: [&str; 2] = ["best", "best_probe"];

/// Fits and stores the calibration of each of `best/` and `best_probe/` that exists in `run_dir`.
/// A fit that fails (scores with no signal, e.g. a barely trained model) is a warning, never a
/// failed run: that checkpoint then has no `calibration.json`.
pub fn calibrate_checkpoints(cfg: &TrainConfig, run_dir: &Path, device: Device) -> Result<()> {
    let samples = data::load_samples(&cfg.data)?;
    let val = data::select_split(&samples, cfg.split, cfg.seed, Split::Val);
    if val.is_empty() {
        tracing::warn!("the val split is empty: no probability calibration (run `zsc calibrate` on the bundle)");
        return Ok(());
    }
    let labels = data::unique_labels(&val);
    for name in CALIBRATED_CHECKPOINTS {
        let dir = run_dir.join(name);
        if !dir.is_dir() {
            continue;
        }
        if let Err(e) = calibrate_one(cfg, &dir, &val, &labels, device) {
            tracing::warn!("no probability calibration for {}: {e} (`zsc calibrate` can fit one on the bundle)", dir.display());
        }
    }
    Ok(())
}

fn calibrate_one(cfg: &TrainConfig, dir: &Path, val: &[Sample], labels: &[String], device: Device) -> Result<()> {
    let ckpt = Checkpoint::load(dir, device)?;
    let out = eval::evaluate(&ckpt.model, &ckpt.tokenizer, val, labels, "val", cfg.batch_size.max(32))?;
    let fit = fit_calibration(&out.scores, &out.gold)
        .map_err(|e| TrainerError::Invalid(format!("calibrating {}: {e}", dir.display())))?;
    let mut c = fit.calibration;
    c.data = Some(cfg.data.display().to_string());
    c.split = Some("val".into());
    c.save_to_checkpoint(dir)?;
    tracing::info!(
        "calibrated {} on {} val texts x {} labels: temperature {:.4}, top-1 ECE {:.4} -> {:.4}",
        dir.display(),
        c.n_texts,
        c.n_labels,
        c.temperature,
        c.ece_before.unwrap_or(f64::NAN),
        c.ece.unwrap_or(f64::NAN)
    );
    Ok(())
}
