//! The training loop: (text, label) pairs of the train split, in-batch B×B logits, BCE-with-logits
//! against the shared target matrix, AdamW with warm-up + linear decay, periodic validation,
//! atomic `best/` and `last/` checkpoints, metrics JSONL, loss plot. Fully seeded: the data order is
//! a function of (seed, epoch) and dropout is reseeded per step from (seed, step), so `--resume`
//! continues exactly where the run stopped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use tch::{Kind, Reduction, Tensor};
use zsc_core::config::apply_template;
use zsc_core::data::{self, Pair};
use zsc_core::manifest::{checkpoint_files, CheckpointInfo, FORMAT_VERSION};
use zsc_core::rng::SplitMix64;
use zsc_core::tokenize::TextTokenizer;
use zsc_core::{LossKind, ModelSpec, ModelType, Split, TrainConfig};

use crate::bert::BertConfig;
use crate::checkpoint::{self, CheckpointAssets, CheckpointWrite, TrainerState};
use crate::device::parse_device;
use crate::error::{Result, TrainerError};
use crate::models::ZscModel;
use crate::optim::{lr_at, AdamW};

/// Knobs of a training call that are not part of `config.yml`.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Continue from `<run>/last/` (weights, optimizer, step, data order).
    pub resume: bool,
    /// Stop after this many steps without the final save, as if interrupted (tests of `--resume`).
    pub stop_after: Option<usize>,
    /// Show a progress bar.
    pub progress: bool,
}

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
    /// Top-1 accuracy on `probe_data` (unseen labels), at validation steps of a run that has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_top1: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub run_dir: PathBuf,
    pub start_step: usize,
    pub steps: usize,
    /// Train loss of every step this call ran, `(step, loss)` (1-based steps).
    pub losses: Vec<(usize, f64)>,
    pub val_losses: Vec<(usize, f64)>,
    pub best_val_loss: Option<f64>,
    /// Training throughput of this call (validation and checkpointing excluded).
    pub steps_per_s: f64,
    /// Probe top-1 before the first step of a fresh run, then at every validation (`probe_data`).
    pub probe_top1: Vec<(usize, f64)>,
}

/// The zero-shot probe of a run: samples whose labels training never sees, scored against all of them.
pub struct Probe {
    samples: Vec<data::Sample>,
    labels: Vec<String>,
}

impl Probe {
    pub fn load(path: &Path, train_labels: &std::collections::HashSet<&str>) -> Result<Probe> {
        let samples = data::load_samples(path)?;
        let mut labels: Vec<String> = samples.iter().flat_map(|s| s.labels.iter().cloned()).collect();
        labels.sort();
        labels.dedup();
        let shared: Vec<&String> = labels.iter().filter(|l| train_labels.contains(l.as_str())).collect();
        if !shared.is_empty() {
            tracing::warn!(
                "probe_data {}: {} of its {} labels are also train labels (e.g. {:?}): it does not measure unseen labels only",
                path.display(),
                shared.len(),
                labels.len(),
                shared[0]
            );
        }
        tracing::info!("zero-shot probe {}: {} texts against {} labels", path.display(), samples.len(), labels.len());
        Ok(Probe { samples, labels })
    }

    /// Top-1 accuracy of the model as it is now (eval mode, no gradients).
    pub fn top1(&self, model: &ZscModel, tok: &TextTokenizer) -> Result<f64> {
        Ok(crate::eval::evaluate(model, tok, &self.samples, &self.labels, "probe", 64)?.report.top1_accuracy)
    }
}

/// The model description a config asks for.
pub fn model_spec(cfg: &TrainConfig, bert: &BertConfig) -> ModelSpec {
    ModelSpec {
        model_type: cfg.model_type,
        hidden_size: bert.hidden_size,
        max_length: cfg.max_length,
        n_code_vectors: (cfg.model_type == ModelType::PolyEncoder).then_some(cfg.n_code_vectors),
        colbert_dim: (cfg.model_type == ModelType::Colbert).then_some(cfg.colbert_dim),
        label_template: cfg.label_template.clone(),
    }
}

/// The seeded order of pair indices in `epoch`.
pub fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    let mut rng = SplitMix64::new(seed ^ (epoch as u64 + 1).wrapping_mul(0xD6E8_FEB8_6659_FD93));
    rng.shuffle(&mut idx);
    idx
}

/// Pair indices of (0-based) training step `step`: consecutive slices of each epoch's shuffled
/// order (the incomplete tail of an epoch is skipped).
pub struct BatchPlan {
    n_pairs: usize,
    batch_size: usize,
    seed: u64,
    cached: Option<(usize, Vec<usize>)>,
}

impl BatchPlan {
    pub fn new(n_pairs: usize, batch_size: usize, seed: u64) -> Self {
        BatchPlan { n_pairs, batch_size: batch_size.min(n_pairs).max(1), seed, cached: None }
    }

    pub fn batches_per_epoch(&self) -> usize {
        (self.n_pairs / self.batch_size).max(1)
    }

    pub fn batch(&mut self, step: usize) -> Vec<usize> {
        let bpe = self.batches_per_epoch();
        let (epoch, k) = (step / bpe, step % bpe);
        if self.cached.as_ref().map(|(e, _)| *e) != Some(epoch) {
            self.cached = Some((epoch, epoch_order(self.n_pairs, self.seed, epoch)));
        }
        let order = self.cached.as_ref().map(|(_, o)| o.as_slice()).unwrap_or(&[]);
        order[k * self.batch_size..(k + 1) * self.batch_size].to_vec()
    }
}

/// The loss of a batch's B×B logit matrix (`logits[i][j]` = text i against label j) against the
/// in-batch target matrix (identity + pairs sharing a text or a label).
pub fn batch_loss(logits: &Tensor, pairs: &[Pair], loss: LossKind, pos_weight_scale: Option<f64>) -> Tensor {
    let b = pairs.len() as i64;
    let targets = zsc_core::targets::target_matrix(pairs);
    let target = Tensor::from_slice(&targets).view([b, b]).to_device(logits.device());
    match loss {
        LossKind::Bce => {
            let pos_weight = zsc_core::targets::pos_weight(&targets, pos_weight_scale);
            let pw = pos_weight.map(|w| Tensor::from_slice(&[w as f32]).to_device(logits.device()));
            logits.binary_cross_entropy_with_logits::<Tensor>(&target, None, pw, Reduction::Mean)
        }
        LossKind::Softmax => {
            // other positives (same text or same label elsewhere in the batch) are not negatives:
            // drop them from the softmax; the diagonal is each row's and column's class
            let eye = Tensor::eye(b, (Kind::Float, logits.device()));
            let other_pos = (target - &eye).gt(0.5);
            let masked = logits.masked_fill(&other_pos, f64::NEG_INFINITY);
            let classes = Tensor::arange(b, (Kind::Int64, logits.device()));
            let rows = masked.cross_entropy_for_logits(&classes);
            let cols = masked.transpose(0, 1).cross_entropy_for_logits(&classes);
            (rows + cols) * 0.5
        }
    }
}

/// Logits of a batch of pairs: every text against every (templated) label of the batch.
pub fn pair_logits(model: &ZscModel, tok: &TextTokenizer, pairs: &[Pair], train: bool) -> Result<Tensor> {
    let texts: Vec<&str> = pairs.iter().map(|p| p.text.as_str()).collect();
    let labels: Vec<String> =
        pairs.iter().map(|p| apply_template(model.spec.label_template.as_deref(), &p.label)).collect();
    let tb = tok.encode_batch(&texts)?;
    let lb = tok.encode_batch(&labels)?;
    model.score_matrix(&tb, &lb, train)
}

/// Mean loss over fixed validation batches, without dropout or gradients.
pub fn validation_loss(
    model: &ZscModel,
    tok: &TextTokenizer,
    batches: &[Vec<Pair>],
    loss: LossKind,
    pos_weight_scale: Option<f64>,
) -> Result<Option<f64>> {
    if batches.is_empty() {
        return Ok(None);
    }
    tch::no_grad(|| {
        let mut total = 0.0;
        for b in batches {
            let logits = pair_logits(model, tok, b, false)?;
            total += batch_loss(&logits, b, loss, pos_weight_scale).double_value(&[]);
        }
        Ok(Some(total / batches.len() as f64))
    })
}

/// Whether `freeze_layers` keeps parameter `name` fixed (embeddings + the lowest N layers).
pub fn frozen(name: &str, freeze_layers: usize) -> bool {
    if freeze_layers == 0 {
        return false;
    }
    if name.starts_with("embeddings.") {
        return true;
    }
    name.strip_prefix("encoder.layer.")
        .and_then(|rest| rest.split('.').next())
        .and_then(|i| i.parse::<usize>().ok())
        .is_some_and(|i| i < freeze_layers)
}

fn write_metrics_line(f: &mut std::fs::File, path: &Path, r: &MetricsRecord) -> Result<()> {
    let line = serde_json::to_string(r).map_err(|e| TrainerError::Invalid(e.to_string()))?;
    writeln!(f, "{line}").map_err(|e| TrainerError::io(path, e))
}

/// Records of an existing `metrics.jsonl` (unparsable lines are skipped).
pub fn read_metrics(path: &Path) -> Vec<MetricsRecord> {
    std::fs::read_to_string(path)
        .map(|t| t.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
        .unwrap_or_default()
}

/// A progress line above the bar, or a log line when there is no bar (not a terminal, logs to a file).
fn say(pb: &ProgressBar, line: String) {
    if pb.is_hidden() {
        tracing::info!("{line}");
    } else {
        pb.println(line);
    }
}

/// Train as `cfg` says. Returns what happened; checkpoints, metrics and the plot are in the run folder.
pub fn train(cfg: &TrainConfig, opts: &TrainOptions) -> Result<TrainSummary> {
    cfg.validate()?;
    let device = parse_device(&cfg.device)?;
    let run_dir = cfg.output_dir.join(&cfg.run_name);
    let base = PathBuf::from(&cfg.base_model);
    if !base.is_dir() {
        return Err(TrainerError::model(
            &base,
            "base_model is not a local folder (download the Hugging Face model first; it needs config.json, model.safetensors, tokenizer.json)",
        ));
    }
    tch::manual_seed(cfg.seed as i64);

    // data
    let samples = data::load_samples(&cfg.data)?;
    let train_samples = data::select_split(&samples, cfg.split, cfg.seed, Split::Train);
    let val_samples = data::select_split(&samples, cfg.split, cfg.seed, Split::Val);
    let pairs = data::expand_pairs(&train_samples);
    if pairs.len() < 2 {
        return Err(TrainerError::Invalid(format!(
            "{}: the train split holds {} (text, label) pair(s); in-batch training needs at least 2",
            cfg.data.display(),
            pairs.len()
        )));
    }
    let val_pairs = data::expand_pairs(&val_samples);
    let val_batch_cap = if cfg.val_batches == 0 { usize::MAX } else { cfg.val_batches };
    let val_batches: Vec<Vec<Pair>> =
        val_pairs.chunks(cfg.batch_size).filter(|c| c.len() >= 2).take(val_batch_cap).map(|c| c.to_vec()).collect();
    if val_batches.is_empty() {
        tracing::warn!("the val split is empty: no validation; best/ follows last/");
    }

    // the zero-shot probe is read before anything in the run folder is touched
    let probe = match &cfg.probe_data {
        Some(path) => {
            let train_labels: std::collections::HashSet<&str> =
                train_samples.iter().flat_map(|s| s.labels.iter().map(String::as_str)).collect();
            Some(Probe::load(path, &train_labels)?)
        }
        None => None,
    };

    // model
    let bert_cfg = BertConfig::load(&base.join(checkpoint_files::BERT_CONFIG))?;
    let spec = model_spec(cfg, &bert_cfg);
    if cfg.freeze_layers > bert_cfg.num_hidden_layers {
        return Err(TrainerError::Invalid(format!(
            "freeze_layers = {} but the base model has only {} layers",
            cfg.freeze_layers, bert_cfg.num_hidden_layers
        )));
    }
    let tok = TextTokenizer::from_file(&base.join(checkpoint_files::TOKENIZER), cfg.max_length)?;
    let assets = CheckpointAssets::from_dir(&base)?;
    let model = ZscModel::from_base(spec.clone(), &base, device)?;

    // parameters and optimizer
    let head_lr = cfg.head_learning_rate.unwrap_or(cfg.learning_rate);
    let mut params = Vec::new();
    let mut vars: Vec<(String, Tensor)> = model.vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in vars {
        if frozen(&name, cfg.freeze_layers) {
            let _ = t.set_requires_grad(false);
            continue;
        }
        let lr = if name == zsc_core::manifest::tensor_names::COLBERT_SCALE {
            cfg.score_scale_learning_rate.unwrap_or(head_lr)
        } else if ZscModel::is_head_param(&name) {
            head_lr
        } else {
            cfg.learning_rate
        };
        params.push((name, t, lr));
    }
    let mut opt = AdamW::new(params, cfg.weight_decay);

    // resume
    let mut start_step = 0;
    let mut best_val_loss: Option<f64> = None;
    let mut best_probe: Option<f64> = None;
    let last_dir = run_dir.join("last");
    if opts.resume {
        let dir = checkpoint::resolve_checkpoint_dir(&last_dir)?;
        let info = CheckpointInfo::load(&dir)?;
        if info.spec != spec {
            return Err(TrainerError::model(
                &dir,
                format!("cannot resume: the checkpoint is {:?}, the config asks for {:?}", info.spec, spec),
            ));
        }
        model.load_weights(&dir.join(checkpoint_files::WEIGHTS))?;
        opt.load(&dir.join(checkpoint_files::OPTIMIZER))?;
        let state: TrainerState = zsc_core::manifest::read_json(&dir.join(checkpoint_files::TRAINER_STATE))?;
        if state.max_steps != cfg.max_steps {
            tracing::warn!("resuming a run planned for {} steps with max_steps = {}: the schedule changes", state.max_steps, cfg.max_steps);
        }
        start_step = state.step;
        best_val_loss = state.best_val_loss;
        best_probe = state.best_probe_top1;
        tracing::info!("resuming {} at step {start_step}", run_dir.display());
    }

    std::fs::create_dir_all(&run_dir).map_err(|e| TrainerError::io(&run_dir, e))?;
    let cfg_yaml = serde_yaml::to_string(cfg).map_err(|e| TrainerError::Invalid(e.to_string()))?;
    zsc_core::manifest::write_atomic(&run_dir.join("config.yml"), cfg_yaml.as_bytes())?;

    // metrics: a fresh run starts a new file; a resumed run drops records after its checkpoint
    let metrics_path = run_dir.join("metrics.jsonl");
    let mut history: Vec<MetricsRecord> = if opts.resume {
        read_metrics(&metrics_path).into_iter().filter(|r| r.step <= start_step).collect()
    } else {
        Vec::new()
    };
    {
        let mut text = String::new();
        for r in &history {
            text.push_str(&serde_json::to_string(r).map_err(|e| TrainerError::Invalid(e.to_string()))?);
            text.push('\n');
        }
        zsc_core::manifest::write_atomic(&metrics_path, text.as_bytes())?;
    }
    let mut metrics_file = std::fs::OpenOptions::new()
        .append(true)
        .open(&metrics_path)
        .map_err(|e| TrainerError::io(&metrics_path, e))?;

    let info_at = |step: usize, val_loss: Option<f64>| CheckpointInfo {
        format_version: FORMAT_VERSION,
        spec: spec.clone(),
        base_model: cfg.base_model.clone(),
        data: cfg.data.clone(),
        split: cfg.split,
        seed: cfg.seed,
        step,
        val_loss,
        created_by: format!("trainer {}", env!("CARGO_PKG_VERSION")),
    };

    let pb = if opts.progress {
        let pb = ProgressBar::new(cfg.max_steps as u64);
        pb.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        pb.set_position(start_step as u64);
        pb
    } else {
        ProgressBar::hidden()
    };

    tracing::info!(
        "training {} on {:?}: {} train pairs ({} per epoch in batches of {}), {} val batches, steps {}..{}",
        spec.model_type,
        device,
        pairs.len(),
        BatchPlan::new(pairs.len(), cfg.batch_size, cfg.seed).batches_per_epoch(),
        cfg.batch_size.min(pairs.len()),
        val_batches.len(),
        start_step,
        cfg.max_steps
    );

    let mut probe_top1 = Vec::new();
    if let (Some(p), false) = (&probe, opts.resume) {
        let acc = p.top1(&model, &tok)?;
        say(&pb, format!("step {start_step}: zero-shot probe top-1 {acc:.4}"));
        probe_top1.push((start_step, acc));
    }

    let mut plan = BatchPlan::new(pairs.len(), cfg.batch_size, cfg.seed);
    let started = Instant::now();
    let mut train_time = 0.0f64;
    let mut losses = Vec::new();
    let mut val_losses = Vec::new();
    let mut last_saved_step = None;
    let end = opts.stop_after.map_or(cfg.max_steps, |s| s.min(cfg.max_steps));
    let mut step = start_step;
    while step < end {
        let t0 = Instant::now();
        // dropout masks depend on (seed, step) only, so a resumed run draws the same ones
        tch::manual_seed(cfg.seed.wrapping_mul(1_000_003).wrapping_add(step as u64) as i64);
        let batch: Vec<Pair> = plan.batch(step).into_iter().map(|i| pairs[i].clone()).collect();
        let logits = pair_logits(&model, &tok, &batch, true)?;
        let loss = batch_loss(&logits, &batch, cfg.loss, cfg.pos_weight_scale);
        let loss_value = loss.double_value(&[]);
        if !loss_value.is_finite() {
            pb.abandon();
            return Err(TrainerError::NonFiniteLoss { step: step + 1, loss: loss_value });
        }
        opt.zero_grad();
        loss.backward();
        let grad_norm = opt.clip_grad_norm(cfg.max_grad_norm);
        if !grad_norm.is_finite() {
            pb.abandon();
            return Err(TrainerError::NonFiniteGradient { step: step + 1, norm: grad_norm });
        }
        let factor = lr_at(step, cfg.max_steps, cfg.warmup_ratio, 1.0);
        opt.step(factor);
        step += 1;
        train_time += t0.elapsed().as_secs_f64();
        let steps_per_s = (step - start_step) as f64 / train_time.max(1e-9);
        losses.push((step, loss_value));

        let mut record = MetricsRecord {
            step,
            loss: loss_value,
            lr: factor * cfg.learning_rate,
            val_loss: None,
            steps_per_s,
            elapsed: started.elapsed().as_secs_f64(),
            probe_top1: None,
        };
        pb.set_position(step as u64);
        pb.set_message(format!("loss {loss_value:.4}  {steps_per_s:.2} steps/s"));

        if step % cfg.val_every == 0 || step == cfg.max_steps {
            let val_loss = validation_loss(&model, &tok, &val_batches, cfg.loss, cfg.pos_weight_scale)?;
            record.val_loss = val_loss;
            if let Some(v) = val_loss {
                if !v.is_finite() {
                    pb.abandon();
                    return Err(TrainerError::NonFiniteLoss { step, loss: v });
                }
                val_losses.push((step, v));
            }
            if let Some(p) = &probe {
                let acc = p.top1(&model, &tok)?;
                record.probe_top1 = Some(acc);
                probe_top1.push((step, acc));
                // `best_probe/`: the step that transfers best to the probe's unseen labels (model
                // selection on a dev set of held-out labels; `best/` stays the lowest val loss)
                if best_probe.is_none_or(|b| acc > b) {
                    best_probe = Some(acc);
                    checkpoint::save_checkpoint(
                        &run_dir,
                        "best_probe",
                        &CheckpointWrite { model: &model, info: &info_at(step, val_loss), assets: &assets, optimizer: None },
                    )?;
                }
            }
            let val_text = val_loss.map(|v| format!(", val loss {v:.4}")).unwrap_or_default();
            let probe_text = record.probe_top1.map(|a| format!(", zero-shot probe top-1 {a:.4}")).unwrap_or_default();
            say(&pb, format!("step {step}: train loss {loss_value:.4}{val_text}{probe_text}"));
            let is_best = match (val_loss, best_val_loss) {
                (Some(v), Some(b)) => v < b,
                (Some(_), None) => true,
                (None, _) => true,
            };
            if is_best {
                best_val_loss = val_loss.or(best_val_loss);
                checkpoint::save_checkpoint(
                    &run_dir,
                    "best",
                    &CheckpointWrite { model: &model, info: &info_at(step, val_loss), assets: &assets, optimizer: None },
                )?;
            }
            let state = TrainerState { step, best_val_loss, max_steps: cfg.max_steps, seed: cfg.seed, best_probe_top1: best_probe };
            checkpoint::save_checkpoint(
                &run_dir,
                "last",
                &CheckpointWrite { model: &model, info: &info_at(step, val_loss), assets: &assets, optimizer: Some((&opt, &state)) },
            )?;
            last_saved_step = Some(step);
        }
        write_metrics_line(&mut metrics_file, &metrics_path, &record)?;
        history.push(record);
    }
    pb.finish_and_clear();

    let interrupted = opts.stop_after.is_some_and(|s| s < cfg.max_steps);
    if !interrupted && last_saved_step != Some(step) && step > start_step {
        let state = TrainerState { step, best_val_loss, max_steps: cfg.max_steps, seed: cfg.seed, best_probe_top1: best_probe };
        checkpoint::save_checkpoint(
            &run_dir,
            "last",
            &CheckpointWrite { model: &model, info: &info_at(step, None), assets: &assets, optimizer: Some((&opt, &state)) },
        )?;
    }
    if !interrupted {
        let loss_name = match cfg.loss {
            LossKind::Bce => "BCE loss",
            LossKind::Softmax => "softmax loss",
        };
        let probe_start = probe_top1.first().copied().filter(|p| p.0 == 0);
        if let Err(e) = crate::plot::plot_losses(&history, &run_dir.join("loss.png"), &cfg.run_name, loss_name, probe_start) {
            tracing::warn!("could not draw the loss plot: {e}");
        }
    }
    let steps_per_s = if train_time > 0.0 { (step - start_step) as f64 / train_time } else { 0.0 };
    Ok(TrainSummary { run_dir, start_step, steps: step, losses, val_losses, best_val_loss, steps_per_s, probe_top1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freezing_covers_embeddings_and_lowest_layers() {
        assert!(!frozen("embeddings.word_embeddings.weight", 0));
        assert!(frozen("embeddings.word_embeddings.weight", 2));
        assert!(frozen("encoder.layer.1.output.dense.weight", 2));
        assert!(!frozen("encoder.layer.2.output.dense.weight", 2));
        assert!(!frozen("encoder.layer.10.output.dense.weight", 2));
        assert!(!frozen("poly.codes", 2));
    }

    #[test]
    fn batches_are_seeded_epoch_permutations() {
        let mut plan = BatchPlan::new(10, 3, 5);
        assert_eq!(plan.batches_per_epoch(), 3);
        let epoch0: Vec<usize> = (0..3).flat_map(|s| plan.batch(s)).collect();
        let mut sorted = epoch0.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 9, "no pair twice within an epoch");
        let epoch1: Vec<usize> = (3..6).flat_map(|s| plan.batch(s)).collect();
        assert_ne!(epoch0, epoch1, "each epoch has its own order");
        // stateless: any step can be asked for first (what --resume relies on)
        assert_eq!(BatchPlan::new(10, 3, 5).batch(4), plan.batch(4));
        assert_ne!(BatchPlan::new(10, 3, 6).batch(0), BatchPlan::new(10, 3, 5).batch(0));
    }

    #[test]
    fn bce_loss_by_hand() {
        // 2 pairs, different texts and labels: identity targets; logits 0 everywhere -> ln 2
        let pairs = vec![Pair { text: "a".into(), label: "x".into() }, Pair { text: "b".into(), label: "y".into() }];
        let logits = Tensor::zeros([2, 2], (tch::Kind::Float, tch::Device::Cpu));
        assert!((batch_loss(&logits, &pairs, LossKind::Bce, None).double_value(&[]) - 2f64.ln()).abs() < 1e-6);
        // pos_weight = negatives/positives = 1 here (scale 3 -> 3): positives weigh 3 -> mean (3+3+1+1)/4 ln 2
        let l = batch_loss(&logits, &pairs, LossKind::Bce, Some(3.0)).double_value(&[]);
        assert!((l - 2.0 * 2f64.ln()).abs() < 1e-6, "{l}");
    }

    #[test]
    fn softmax_loss_by_hand() {
        let pair = |t: &str, l: &str| Pair { text: t.into(), label: l.into() };
        // distinct pairs, logits [[2,0],[0,2]]: each row and column is -ln(e^2/(e^2+1)) = ln(1+e^-2)
        let pairs = vec![pair("a", "x"), pair("b", "y")];
        let logits = Tensor::from_slice(&[2.0f32, 0.0, 0.0, 2.0]).view([2, 2]);
        let l = batch_loss(&logits, &pairs, LossKind::Softmax, None).double_value(&[]);
        assert!((l - (1.0 + (-2f64).exp()).ln()).abs() < 1e-6, "{l}");
        // asymmetric: rows (2,0),(1,3) and columns (2,1),(0,3)
        let logits = Tensor::from_slice(&[2.0f32, 0.0, 1.0, 3.0]).view([2, 2]);
        let ce = |own: f64, other: f64| -(own - (own.exp() + other.exp()).ln());
        let want = 0.5 * ((ce(2.0, 0.0) + ce(3.0, 1.0)) / 2.0 + (ce(2.0, 1.0) + ce(3.0, 0.0)) / 2.0);
        let l = batch_loss(&logits, &pairs, LossKind::Softmax, None).double_value(&[]);
        assert!((l - want).abs() < 1e-6, "{l} vs {want}");
        // the same label twice: the other positive is no negative, whatever its logit -> loss 0
        let pairs = vec![pair("a", "x"), pair("b", "x")];
        let logits = Tensor::from_slice(&[1.0f32, 9.0, 9.0, 1.0]).view([2, 2]);
        let l = batch_loss(&logits, &pairs, LossKind::Softmax, None).double_value(&[]);
        assert!(l.abs() < 1e-6, "{l}");
    }
}
