//! Checkpoint folders (`<run>/best/`, `<run>/last/`): written into a temporary sibling folder,
//! fsynced, then swapped in with renames, so that a crash never leaves a half-written checkpoint.
//! Loading tolerates the leftovers of an interrupted swap.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::Device;
use zsc_core::manifest::{checkpoint_files, CheckpointInfo};
use zsc_core::tokenize::TextTokenizer;

use crate::encoders::EncoderConfig;
use crate::error::{Result, TrainerError};
use crate::models::ZscModel;
use crate::optim::AdamW;

/// `trainer_state.json` in `last/`: where training stands, for `--resume`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Updates taken.
    pub step: usize,
    pub best_val_loss: Option<f64>,
    pub max_steps: usize,
    pub seed: u64,
    /// Best zero-shot probe top-1 so far (runs with `probe_data`), kept in `best_probe/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_probe_top1: Option<f64>,
}

/// The files a checkpoint copies from the base model, read once.
#[derive(Debug, Clone)]
pub struct CheckpointAssets {
    pub bert_config_json: Vec<u8>,
    pub tokenizer_json: Vec<u8>,
}

impl CheckpointAssets {
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let read = |name: &str| {
            let p = dir.join(name);
            std::fs::read(&p).map_err(|e| TrainerError::io(p, e))
        };
        Ok(CheckpointAssets {
            bert_config_json: read(checkpoint_files::BERT_CONFIG)?,
            tokenizer_json: read(checkpoint_files::TOKENIZER)?,
        })
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(|e| TrainerError::io(path, e))?;
    f.write_all(bytes).map_err(|e| TrainerError::io(path, e))?;
    f.sync_all().map_err(|e| TrainerError::io(path, e))
}

fn sync_file(path: &Path) -> Result<()> {
    File::open(path).and_then(|f| f.sync_all()).map_err(|e| TrainerError::io(path, e))
}

fn sync_dir(path: &Path) {
    // Directory fsync makes the renames durable; not every filesystem supports it, so best effort.
    if let Ok(f) = File::open(path) {
        let _ = f.sync_all();
    }
}

fn tmp_name(name: &str) -> String {
    format!(".{name}.tmp-{}", std::process::id())
}

fn old_prefix(name: &str) -> String {
    format!(".{name}.old-")
}

/// Remove temporary folders of earlier (crashed) saves of checkpoint `name` under `run_dir`.
pub fn remove_stale_temp_dirs(run_dir: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(run_dir) else { return };
    let tmp = format!(".{name}.tmp-");
    let old = old_prefix(name);
    let have_main = run_dir.join(name).join(checkpoint_files::INFO).exists();
    for e in entries.flatten() {
        let file_name = e.file_name().to_string_lossy().to_string();
        // an `.old-` folder is only garbage once the new folder is in place
        if file_name.starts_with(&tmp) || (have_main && file_name.starts_with(&old)) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Everything a checkpoint folder holds besides the model weights.
pub struct CheckpointWrite<'a> {
    pub model: &'a ZscModel,
    pub info: &'a CheckpointInfo,
    pub assets: &'a CheckpointAssets,
    /// `last/` also stores the optimizer and the trainer state.
    pub optimizer: Option<(&'a AdamW, &'a TrainerState)>,
}

/// Write checkpoint `name` (`best` or `last`) under `run_dir` atomically.
pub fn save_checkpoint(run_dir: &Path, name: &str, w: &CheckpointWrite<'_>) -> Result<PathBuf> {
    std::fs::create_dir_all(run_dir).map_err(|e| TrainerError::io(run_dir, e))?;
    remove_stale_temp_dirs(run_dir, name);
    let tmp = run_dir.join(tmp_name(name));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| TrainerError::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| TrainerError::io(&tmp, e))?;

    let weights = tmp.join(checkpoint_files::WEIGHTS);
    w.model.save_weights(&weights)?;
    sync_file(&weights)?;
    write_synced(&tmp.join(checkpoint_files::BERT_CONFIG), &w.assets.bert_config_json)?;
    write_synced(&tmp.join(checkpoint_files::TOKENIZER), &w.assets.tokenizer_json)?;
    if let Some((opt, state)) = w.optimizer {
        let p = tmp.join(checkpoint_files::OPTIMIZER);
        opt.save(&p)?;
        sync_file(&p)?;
        let text = serde_json::to_vec_pretty(state).map_err(|e| TrainerError::Invalid(e.to_string()))?;
        write_synced(&tmp.join(checkpoint_files::TRAINER_STATE), &text)?;
    }
    // the info file last: a folder with zsc_checkpoint.json is complete
    let text = serde_json::to_vec_pretty(w.info).map_err(|e| TrainerError::Invalid(e.to_string()))?;
    write_synced(&tmp.join(checkpoint_files::INFO), &text)?;
    sync_dir(&tmp);

    let dest = run_dir.join(name);
    let old = run_dir.join(format!("{}{}", old_prefix(name), std::process::id()));
    if dest.exists() {
        std::fs::rename(&dest, &old).map_err(|e| TrainerError::io(&dest, e))?;
    }
    std::fs::rename(&tmp, &dest).map_err(|e| TrainerError::io(&dest, e))?;
    sync_dir(run_dir);
    if old.exists() {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(dest)
}

/// The folder to read for checkpoint `dir`: `dir` itself, or, when a crash hit between the two
/// renames of a save (so `dir` is missing), the complete previous version left beside it.
pub fn resolve_checkpoint_dir(dir: &Path) -> Result<PathBuf> {
    if dir.join(checkpoint_files::INFO).exists() {
        return Ok(dir.to_path_buf());
    }
    if let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) {
        let prefix = old_prefix(&name.to_string_lossy());
        if let Ok(entries) = std::fs::read_dir(parent) {
            let mut found: Vec<PathBuf> = entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .filter(|p| p.join(checkpoint_files::INFO).exists())
                .collect();
            found.sort();
            if let Some(p) = found.pop() {
                tracing::warn!("{} is missing; using the previous complete version {}", dir.display(), p.display());
                return Ok(p);
            }
        }
    }
    if !dir.exists() {
        return Err(TrainerError::model(dir, "checkpoint folder not found"));
    }
    Err(TrainerError::model(dir, format!("not a checkpoint folder: {} is missing", checkpoint_files::INFO)))
}

/// A loaded checkpoint: model, its description and its tokenizer.
#[derive(Debug)]
pub struct Checkpoint {
    pub model: ZscModel,
    pub info: CheckpointInfo,
    pub tokenizer: TextTokenizer,
    pub encoder_config: EncoderConfig,
    /// The folder actually read.
    pub dir: PathBuf,
}

impl Checkpoint {
    pub fn load(dir: &Path, device: Device) -> Result<Self> {
        let dir = resolve_checkpoint_dir(dir)?;
        let info = CheckpointInfo::load(&dir)?;
        let encoder_config = EncoderConfig::load(&dir.join(checkpoint_files::BERT_CONFIG))?;
        let model = ZscModel::new(info.spec.clone(), &encoder_config, device)?;
        model.load_weights(&dir.join(checkpoint_files::WEIGHTS))?;
        let tokenizer = TextTokenizer::from_file(&dir.join(checkpoint_files::TOKENIZER), info.spec.max_length)?;
        Ok(Checkpoint { model, info, tokenizer, encoder_config, dir })
    }

    pub fn trainer_state(&self) -> Result<TrainerState> {
        let p = self.dir.join(checkpoint_files::TRAINER_STATE);
        Ok(zsc_core::manifest::read_json(&p)?)
    }
}
