//! The training run: in-batch contrastive steps on (text, label) pairs ([`crate::step`]), one data
//! source per batch ([`crate::batches`]), periodic validation and zero-shot probe
//! ([`crate::probe`]), atomic `best/`, `best_probe/` and `last/` checkpoints, `metrics.jsonl`
//! ([`crate::metrics`]) and the loss plot. Fully seeded: the data order is a function of
//! (seed, step) and dropout is reseeded per step, so `--resume` continues exactly where a run stopped.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::config::{ColbertInit, LossKind, TrainConfig};
use indicatif::{ProgressBar, ProgressStyle};
use tch::{Device, Kind, Tensor};
use zsc_core::data::{self, Pair, Sample};
use zsc_core::manifest::{checkpoint_files, CheckpointInfo, FORMAT_VERSION};
use zsc_core::tokenize::TextTokenizer;
use zsc_core::{ColbertScoring, ModelSpec, ModelType, SentenceTransformerFolder, Split};

use crate::anchor::Anchor;
use crate::batches::{pairs_by_source, BatchPlan, BatchShape, Prefetcher, SourcePairs, StaticLengths};
use crate::checkpoint::{self, CheckpointAssets, CheckpointWrite, TrainerState};
use crate::device::parse_device;
use crate::encoders::EncoderConfig;
use crate::error::{Result, TrainerError};
use crate::loss::{batch_loss, LossTargets};
use crate::merge::{choose_merge, MergeEnds};
use crate::metrics::MetricsLog;
pub use crate::metrics::{read_metrics, MetricsRecord};
use crate::models::ZscModel;
use crate::optim::{lr_at, AdamW};
use crate::probe::{Probe, ProbeScores};
use crate::step::{StepEngine, StepResult, StepSettings};

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

#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub run_dir: PathBuf,
    pub start_step: usize,
    pub steps: usize,
    /// Train loss of every step this call ran, `(step, loss)` (1-based steps).
    pub losses: Vec<(usize, f64)>,
    pub val_losses: Vec<(usize, f64)>,
    pub best_val_loss: Option<f64>,
    /// Training throughput of this call (validation, probe and checkpointing excluded).
    pub steps_per_s: f64,
    /// Probe macro top-1 before the first step of a fresh run, then at every validation.
    pub probe_top1: Vec<(usize, f64)>,
}

/// The model description a config asks for.
/// Pooling, normalisation and prompts come from the base's sentence-transformers folder `st`
/// (prompts as `text_prompt` / `label_prompt` choose).
pub fn model_spec(cfg: &TrainConfig, bert: &EncoderConfig, st: &SentenceTransformerFolder) -> ModelSpec {
    ModelSpec {
        model_type: cfg.model_type,
        hidden_size: bert.hidden_size,
        max_length: cfg.max_length,
        n_code_vectors: (cfg.model_type == ModelType::PolyEncoder).then_some(cfg.n_code_vectors),
        colbert_dim: (cfg.model_type == ModelType::Colbert).then_some(cfg.colbert_dim),
        label_template: cfg.label_template.clone(),
        similarity: if cfg.model_type == ModelType::Colbert { Default::default() } else { cfg.similarity },
        embedding: st.embedding_with(cfg.text_prompt.as_deref(), cfg.label_prompt.as_deref()),
        colbert_scoring: if cfg.model_type == ModelType::Colbert {
            ColbertScoring { maxsim: cfg.colbert_maxsim, special_tokens: cfg.colbert_special_tokens }
        } else {
            Default::default()
        },
    }
}

/// Whether `freeze_layers` keeps parameter `name` fixed (embeddings + the lowest N layers).
pub fn frozen(name: &str, freeze_layers: usize) -> bool {
    if freeze_layers == 0 {
        return false;
    }
    if name.starts_with("embeddings.") {
        return true;
    }
    // BERT-like families `encoder.layer.N.`, ModernBERT `layers.N.`
    name.strip_prefix("encoder.layer.")
        .or_else(|| name.strip_prefix("layers."))
        .and_then(|rest| rest.split('.').next())
        .and_then(|i| i.parse::<usize>().ok())
        .is_some_and(|i| i < freeze_layers)
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
            let texts: Vec<String> = b.iter().map(|p| model.spec.text_input(&p.text)).collect();
            let labels: Vec<String> = b.iter().map(|p| model.spec.label_input(&p.label)).collect();
            let logits = model.score_matrix(&tok.encode_batch(&texts)?, &tok.encode_batch(&labels)?, false)?;
            let targets = LossTargets::new(b, &[], pos_weight_scale, model.device())?;
            total += batch_loss(&logits, &targets, loss).double_value(&[]);
        }
        Ok(Some(total / batches.len() as f64))
    })
}

/// Validation batches: each from one source (as training batches are), sources taken in turn,
/// at most `cap` (0 = all).
fn validation_batches(val: &[SourcePairs], batch_size: usize, cap: usize) -> Vec<Vec<Pair>> {
    let per_source: Vec<Vec<Vec<Pair>>> =
        val.iter().map(|s| s.pairs.chunks(batch_size).filter(|c| c.len() >= 2).map(|c| c.to_vec()).collect()).collect();
    let rounds = per_source.iter().map(Vec::len).max().unwrap_or(0);
    let interleaved = (0..rounds).flat_map(|r| per_source.iter().filter_map(move |s| s.get(r).cloned()));
    interleaved.take(if cap == 0 { usize::MAX } else { cap }).collect()
}

/// A step whose loss is still on the device (CUDA reads losses back every `log_every` steps).
struct PendingStep {
    step: usize,
    result: StepResult,
    lr: f64,
    source: usize,
}

/// The training data, split and grouped, and what validation and the probe score.
struct RunData {
    sources: Arc<Vec<SourcePairs>>,
    val_batches: Vec<Vec<Pair>>,
    probe: Option<Probe>,
}

impl RunData {
    fn load(cfg: &TrainConfig) -> Result<RunData> {
        let samples = data::load_samples(&cfg.data)?;
        let train: Vec<Sample> = data::select_split(&samples, cfg.split, cfg.seed, Split::Train);
        let sources = pairs_by_source(&train);
        let n_pairs: usize = sources.iter().map(|s| s.pairs.len()).sum();
        if n_pairs < 2 {
            return Err(TrainerError::Invalid(format!(
                "{}: the train split holds {n_pairs} (text, label) pair(s); in-batch training needs at least 2",
                cfg.data.display()
            )));
        }
        let val = pairs_by_source(&data::select_split(&samples, cfg.split, cfg.seed, Split::Val));
        let val_batches = validation_batches(&val, cfg.batch_size, cfg.val_batches);
        if val_batches.is_empty() {
            tracing::warn!("the val split is empty: no validation; best/ follows last/");
        }
        // the probe is read before anything in the run folder is touched
        let probe = if cfg.probe_data.is_empty() {
            None
        } else {
            Some(Probe::load(&cfg.probe_data, cfg.probe_max_texts, cfg.seed, &train)?)
        };
        Ok(RunData { sources: Arc::new(sources), val_batches, probe })
    }

    /// Token lengths for CUDA graphs: texts at `max_length`, labels at the longest label as the
    /// encoder sees it (template and prompt).
    fn static_lengths(&self, tok: &TextTokenizer, spec: &ModelSpec) -> Result<(usize, usize)> {
        let labels: std::collections::BTreeSet<&str> =
            self.sources.iter().flat_map(|s| s.pairs.iter().map(|p| p.label.as_str())).collect();
        let mut longest = 1;
        let all: Vec<String> = labels.into_iter().map(|l| spec.label_input(l)).collect();
        for chunk in all.chunks(256) {
            longest = longest.max(tok.encode_batch(chunk)?.seq);
        }
        Ok((tok.max_length(), longest))
    }
}

/// One training run: what [`train`] sets up, then steps, validates and checkpoints.
struct Trainer<'a> {
    cfg: &'a TrainConfig,
    opts: &'a TrainOptions,
    run_dir: PathBuf,
    data: RunData,
    model: ZscModel,
    tok: TextTokenizer,
    assets: CheckpointAssets,
    opt: AdamW,
    engine: StepEngine,
    settings: StepSettings,
    metrics: MetricsLog,
    pending: Vec<PendingStep>,
    start_step: usize,
    best_val_loss: Option<f64>,
    best_probe: Option<f64>,
    summary: TrainSummary,
    started: Instant,
    /// Seconds spent in validation, probe and checkpoints (excluded from steps/s).
    side_time: f64,
    pb: ProgressBar,
}

/// Train as `cfg` says. Returns what happened; checkpoints, metrics and the plot are in the run folder.
pub fn train(cfg: &TrainConfig, opts: &TrainOptions) -> Result<TrainSummary> {
    Trainer::new(cfg, opts)?.run()
}

impl<'a> Trainer<'a> {
    fn new(cfg: &'a TrainConfig, opts: &'a TrainOptions) -> Result<Trainer<'a>> {
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
        let data = RunData::load(cfg)?;
        let (model, tok, assets) = load_model(cfg, &base, device)?;
        let mut opt = optimizer(cfg, &model);
        let (start_step, best_val_loss, best_probe) =
            if opts.resume { resume(cfg, &run_dir, &model, &mut opt)? } else { (0, None, None) };

        std::fs::create_dir_all(&run_dir).map_err(|e| TrainerError::io(&run_dir, e))?;
        let cfg_yaml = serde_yaml::to_string(cfg).map_err(|e| TrainerError::Invalid(e.to_string()))?;
        zsc_core::manifest::write_atomic(&run_dir.join("config.yml"), cfg_yaml.as_bytes())?;
        let metrics = MetricsLog::open(&run_dir, opts.resume, start_step)?;
        let engine = StepEngine::new(device, cfg.cuda_graphs);
        let settings = StepSettings {
            loss: cfg.loss,
            pos_weight_scale: cfg.pos_weight_scale,
            max_grad_norm: cfg.max_grad_norm,
            precision: cfg.precision,
            seed: cfg.seed,
            anchor: load_anchor(cfg, &base, model.spec.embedding.pooling, &data, device)?,
        };
        let summary = TrainSummary {
            run_dir: run_dir.clone(),
            start_step,
            steps: start_step,
            losses: Vec::new(),
            val_losses: Vec::new(),
            best_val_loss,
            steps_per_s: 0.0,
            probe_top1: Vec::new(),
        };
        let pb = progress_bar(opts.progress, cfg.max_steps, start_step);
        Ok(Trainer {
            cfg,
            opts,
            run_dir,
            data,
            model,
            tok,
            assets,
            opt,
            engine,
            settings,
            metrics,
            pending: Vec::new(),
            start_step,
            best_val_loss,
            best_probe,
            summary,
            started: Instant::now(),
            side_time: 0.0,
            pb,
        })
    }

    fn run(mut self) -> Result<TrainSummary> {
        let end = self.opts.stop_after.map_or(self.cfg.max_steps, |s| s.min(self.cfg.max_steps));
        self.log_start(end);
        if let (Some(p), false) = (&self.data.probe, self.opts.resume) {
            let scores = p.evaluate(&self.model, &self.tok)?;
            self.say(format!("step {}: zero-shot probe top-1 {}", self.start_step, probe_text(&scores)));
            self.summary.probe_top1.push((self.start_step, scores.macro_top1));
            // the untrained model is a candidate too: a run that never transfers better than the
            // base leaves the base (with its fresh head) in best_probe/, so training cannot lose to it
            self.best_probe = Some(scores.macro_top1);
            self.save("best_probe", self.start_step, None, false)?;
        }
        let prefetch = self.prefetcher(end)?;
        self.started = Instant::now();
        let sync_every = if self.model.device().is_cuda() { self.cfg.log_every } else { 1 };
        for step in self.start_step..end {
            let batch = prefetch.next()?;
            let lr = lr_at(step, self.cfg.max_steps, self.cfg.warmup_ratio, 1.0);
            let result = self.engine.run(&self.model, &mut self.opt, &batch, lr, &self.settings)?;
            self.pending.push(PendingStep { step: step + 1, result, lr, source: batch.source });
            self.pb.set_position(step as u64 + 1);
            if (step + 1) % self.cfg.val_every == 0 || step + 1 == self.cfg.max_steps {
                self.validate_and_save(step + 1)?;
            } else if self.pending.len() >= sync_every {
                self.flush_losses(None)?;
            }
        }
        self.flush_losses(None)?;
        self.finish(end)
    }

    fn log_start(&self, end: usize) {
        let sources = &self.data.sources;
        let plan = BatchPlan::new(
            &sources.iter().map(|s| s.pairs.len()).collect::<Vec<_>>(),
            self.cfg.batch_size,
            self.cfg.seed,
            self.cfg.source_sampling_alpha,
        );
        let mix: Vec<String> = sources
            .iter()
            .zip(plan.source_probabilities())
            .map(|(s, p)| format!("{} {} pairs (p={p:.3})", s.name, s.pairs.len()))
            .collect();
        tracing::info!(
            "training {} on {:?} with {}: sources [{}], batches of {} (+{} label negatives), {} val batches, steps {}..{end}",
            self.model.spec.model_type,
            self.model.device(),
            self.engine.describe(),
            mix.join(", "),
            self.cfg.batch_size,
            self.cfg.label_negatives,
            self.data.val_batches.len(),
            self.start_step,
        );
    }

    fn prefetcher(&self, end: usize) -> Result<Prefetcher> {
        let sizes: Vec<usize> = self.data.sources.iter().map(|s| s.pairs.len()).collect();
        let plan = BatchPlan::new(&sizes, self.cfg.batch_size, self.cfg.seed, self.cfg.source_sampling_alpha);
        let spec = self.model.spec.clone();
        let lengths: StaticLengths =
            if self.engine.needs_static_shapes() { Some(self.data.static_lengths(&self.tok, &spec)?) } else { None };
        let shape = BatchShape { spec, label_negatives: self.cfg.label_negatives, lengths };
        Ok(Prefetcher::spawn(plan, self.data.sources.clone(), self.tok.clone(), shape, self.start_step..end))
    }

    /// Reads the pending steps' losses back (one sync), checks them, writes their metrics lines;
    /// `validation` goes on the last line.
    fn flush_losses(&mut self, validation: Option<(Option<f64>, Option<ProbeScores>)>) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let stacked = |f: &dyn Fn(&PendingStep) -> Tensor| -> Result<Vec<f64>> {
            let ts: Vec<Tensor> =
                self.pending.iter().map(|p| f(p).to_kind(Kind::Double).to_device(Device::Cpu).view([1])).collect();
            Vec::<f64>::try_from(&Tensor::cat(&ts, 0)).map_err(|e| TrainerError::torch("reading the losses", e))
        };
        let losses = stacked(&|p| p.result.loss.shallow_clone())?;
        let norms = stacked(&|p| p.result.grad_norm.shallow_clone())?;
        let pending = std::mem::take(&mut self.pending);
        if let Some((p, l)) = pending.iter().zip(&losses).find(|(_, l)| !l.is_finite()) {
            self.pb.abandon();
            return Err(TrainerError::NonFiniteLoss { step: p.step, loss: *l });
        }
        if let Some((p, n)) = pending.iter().zip(&norms).find(|(_, n)| !n.is_finite()) {
            self.pb.abandon();
            return Err(TrainerError::NonFiniteGradient { step: p.step, norm: *n });
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        let steps_per_s = (pending.last().map_or(0, |p| p.step) - self.start_step) as f64 / (elapsed - self.side_time).max(1e-9);
        let n = pending.len();
        let mut validation = validation;
        for (i, (p, loss)) in pending.into_iter().zip(losses).enumerate() {
            let (val_loss, probe) = if i + 1 == n { validation.take().unwrap_or_default() } else { (None, None) };
            let single_source = self.data.sources.len() == 1;
            self.metrics.append(MetricsRecord {
                step: p.step,
                loss,
                lr: p.lr * self.cfg.learning_rate,
                val_loss,
                steps_per_s,
                elapsed,
                probe_top1: probe.as_ref().map(|s| s.macro_top1),
                probe_tasks: probe.map(|s| s.per_task).unwrap_or_default(),
                source: (!single_source).then(|| self.data.sources[p.source].name.clone()),
            })?;
            self.summary.losses.push((p.step, loss));
            self.summary.steps = p.step;
            self.pb.set_message(format!("loss {loss:.4}  {steps_per_s:.2} steps/s"));
        }
        self.summary.steps_per_s = steps_per_s;
        Ok(())
    }

    fn validate_and_save(&mut self, step: usize) -> Result<()> {
        // read the steps' losses first: that waits for the GPU, which is training time
        let pending = std::mem::take(&mut self.pending);
        let t0 = Instant::now();
        let val_loss = validation_loss(&self.model, &self.tok, &self.data.val_batches, self.cfg.loss, self.cfg.pos_weight_scale)?;
        if let Some(v) = val_loss {
            if !v.is_finite() {
                self.pb.abandon();
                return Err(TrainerError::NonFiniteLoss { step, loss: v });
            }
            self.summary.val_losses.push((step, v));
        }
        let probe = match &self.data.probe {
            Some(p) => Some(p.evaluate(&self.model, &self.tok)?),
            None => None,
        };
        self.side_time += t0.elapsed().as_secs_f64();
        self.pending = pending;
        self.flush_losses(Some((val_loss, probe.clone())))?;
        let t1 = Instant::now();
        let last_loss = self.summary.losses.last().map_or(f64::NAN, |l| l.1);
        let val_text = val_loss.map(|v| format!(", val loss {v:.4}")).unwrap_or_default();
        let probe_line = probe.as_ref().map(|s| format!(", zero-shot probe top-1 {}", probe_text(s))).unwrap_or_default();
        self.say(format!("step {step}: train loss {last_loss:.4}{val_text}{probe_line}"));
        self.save_checkpoints(step, val_loss, probe.map(|s| s.macro_top1))?;
        self.side_time += t1.elapsed().as_secs_f64();
        Ok(())
    }

    fn save_checkpoints(&mut self, step: usize, val_loss: Option<f64>, probe_top1: Option<f64>) -> Result<()> {
        if let Some(p) = probe_top1 {
            self.summary.probe_top1.push((step, p));
            // `best_probe/`: the step that transfers best to the held-out tasks
            if self.best_probe.is_none_or(|b| p > b) {
                self.best_probe = Some(p);
                self.save("best_probe", step, val_loss, false)?;
            }
        }
        let is_best = match (val_loss, self.best_val_loss) {
            (Some(v), Some(b)) => v < b,
            (Some(_), None) | (None, _) => true,
        };
        if is_best {
            self.best_val_loss = val_loss.or(self.best_val_loss);
            self.summary.best_val_loss = self.best_val_loss;
            self.save("best", step, val_loss, false)?;
        }
        self.save("last", step, val_loss, true)
    }

    fn save(&self, name: &str, step: usize, val_loss: Option<f64>, with_optimizer: bool) -> Result<()> {
        let info = CheckpointInfo {
            format_version: FORMAT_VERSION,
            spec: self.model.spec.clone(),
            base_model: self.cfg.base_model.clone(),
            data: self.cfg.data.clone(),
            split: self.cfg.split,
            seed: self.cfg.seed,
            step,
            val_loss,
            created_by: format!("trainer {}", env!("CARGO_PKG_VERSION")),
        };
        let state = TrainerState {
            step,
            best_val_loss: self.best_val_loss,
            max_steps: self.cfg.max_steps,
            seed: self.cfg.seed,
            best_probe_top1: self.best_probe,
        };
        let optimizer = with_optimizer.then_some((&self.opt, &state));
        checkpoint::save_checkpoint(
            &self.run_dir,
            name,
            &CheckpointWrite { model: &self.model, info: &info, assets: &self.assets, optimizer },
        )?;
        Ok(())
    }

    fn finish(mut self, end: usize) -> Result<TrainSummary> {
        self.pb.finish_and_clear();
        let step = self.summary.steps;
        let interrupted = self.opts.stop_after.is_some_and(|s| s < self.cfg.max_steps);
        let last_saved =
            self.metrics.records.iter().rev().find(|r| r.val_loss.is_some() || r.probe_top1.is_some()).map(|r| r.step);
        if !interrupted && step > self.start_step && last_saved != Some(step) {
            self.save("last", step, None, true)?;
        }
        if !interrupted {
            self.plot();
            self.warn_if_base_kept();
            if !self.cfg.base_merge.is_empty() {
                self.merge_with_base()?;
            }
            if self.cfg.calibrate {
                crate::calibrate::calibrate_checkpoints(self.cfg, &self.run_dir, self.model.device())?;
            }
        }
        debug_assert!(step <= end);
        Ok(self.summary)
    }

    /// `base_merge`: interpolates `best_probe/` with the base at each configured weight and keeps
    /// the best on the probe ([`crate::merge`]); `base_merge.json` records the trials.
    fn merge_with_base(&mut self) -> Result<()> {
        let Some(probe) = &self.data.probe else {
            tracing::warn!("base_merge is chosen on the zero-shot probe, and this run has no probe_data: no merge");
            return Ok(());
        };
        let dir = checkpoint::resolve_checkpoint_dir(&self.run_dir.join("best_probe"))?;
        let info = CheckpointInfo::load(&dir)?;
        if info.step == 0 {
            tracing::info!("best_probe/ holds the untrained base: nothing to merge");
            return Ok(());
        }
        self.model.load_weights(&dir.join(checkpoint_files::WEIGHTS))?;
        let unmerged = probe.evaluate(&self.model, &self.tok)?;
        let ends = MergeEnds::new(&self.model, std::path::Path::new(&self.cfg.base_model))?;
        let report = choose_merge(&self.model, &ends, &self.cfg.base_merge, probe, &self.tok, info.step, unmerged)?;
        zsc_core::manifest::write_json_atomic(&self.run_dir.join("base_merge.json"), &report)?;
        let chosen = report.trials.iter().find(|t| t.weight == report.chosen_weight).map_or(f64::NAN, |t| t.probe_top1);
        if report.chosen_weight < 1.0 {
            tracing::info!(
                "best_probe/ (step {}) merged with the base at weight {}: probe top-1 {:.4} (unmerged {:.4})",
                info.step,
                report.chosen_weight,
                chosen,
                report.trials[0].probe_top1
            );
            self.best_probe = Some(chosen);
            self.save("best_probe", info.step, info.val_loss, false)?;
        } else {
            tracing::info!("best_probe/ (step {}) kept unmerged: no merge with the base scored higher on the probe", info.step);
        }
        Ok(())
    }

    /// Says so when no trained step beat step 0 on the probe (best_probe/ then holds the base).
    fn warn_if_base_kept(&self) {
        let Some(&(first, base)) = self.summary.probe_top1.first() else { return };
        if first == 0 && self.summary.probe_top1.iter().skip(1).all(|&(_, p)| p <= base) {
            tracing::warn!(
                "no trained step beat the untrained model on the zero-shot probe ({base:.4}): best_probe/ holds step 0, \
                 the base with a fresh head (docs/usage.md \"Train\")"
            );
        }
    }

    /// The loss plot; a failure (or a panic in the plotting library) is a warning, never an error.
    fn plot(&self) {
        let loss_name = match self.cfg.loss {
            LossKind::Bce => "BCE loss",
            LossKind::Softmax => "softmax loss",
        };
        let probe_start = self.summary.probe_top1.first().copied().filter(|p| p.0 == 0);
        let path = self.run_dir.join("loss.png");
        let drawn = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            crate::plot::plot_losses(&self.metrics.records, &path, &self.cfg.run_name, loss_name, probe_start)
        }));
        match drawn {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("could not draw the loss plot: {e}"),
            Err(_) => tracing::warn!("could not draw the loss plot: the plotting library panicked"),
        }
    }

    /// A progress line above the bar, or a log line when there is no bar (not a terminal, logs to a file).
    fn say(&self, line: String) {
        if self.pb.is_hidden() {
            tracing::info!("{line}");
        } else {
            self.pb.println(line);
        }
    }
}

fn probe_text(s: &ProbeScores) -> String {
    if s.per_task.len() <= 1 {
        return format!("{:.4}", s.macro_top1);
    }
    let tasks: Vec<String> = s.per_task.iter().map(|(k, v)| format!("{k} {v:.3}")).collect();
    format!("{:.4} (macro; {})", s.macro_top1, tasks.join(", "))
}

fn progress_bar(show: bool, max_steps: usize, start: usize) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(max_steps as u64);
    pb.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_position(start as u64);
    pb
}

/// The anchor of `anchor_weight` > 0: the frozen base, or `anchor_teacher`'s embeddings (which
/// must cover every training text and label, checked here rather than at some later step).
fn load_anchor(
    cfg: &TrainConfig,
    base: &std::path::Path,
    pooling: zsc_core::Pooling,
    data: &RunData,
    device: Device,
) -> Result<Option<Anchor>> {
    if cfg.anchor_weight <= 0.0 {
        return Ok(None);
    }
    let Some(stem) = &cfg.anchor_teacher else { return Anchor::base(base, pooling, device, cfg.anchor_weight).map(Some) };
    let anchor = Anchor::teacher(stem, device, cfg.anchor_weight)?;
    if let Some(table) = anchor.teacher_table() {
        let texts = data.sources.iter().flat_map(|s| s.pairs.iter().map(|p| p.text.as_str()));
        table.check_covers(texts, data.sources.iter().flat_map(|s| s.labels().iter().map(String::as_str)))?;
    }
    tracing::info!("anchor: the teacher embeddings of {} (weight {})", stem.display(), cfg.anchor_weight);
    Ok(Some(anchor))
}

/// The base model with a fresh head (ColBERT's projection initialised as `colbert_init` says),
/// its tokenizer, and the files every checkpoint copies from it.
fn load_model(cfg: &TrainConfig, base: &std::path::Path, device: Device) -> Result<(ZscModel, TextTokenizer, CheckpointAssets)> {
    let bert_cfg = EncoderConfig::load(&base.join(checkpoint_files::BERT_CONFIG))?;
    if cfg.freeze_layers > bert_cfg.num_hidden_layers {
        return Err(TrainerError::Invalid(format!(
            "freeze_layers = {} but the base model has only {} layers",
            cfg.freeze_layers, bert_cfg.num_hidden_layers
        )));
    }
    let tok = TextTokenizer::from_file(&base.join(checkpoint_files::TOKENIZER), cfg.max_length)?;
    let assets = CheckpointAssets::from_dir(base)?;
    let st = SentenceTransformerFolder::read(base)?;
    let model = ZscModel::from_base(model_spec(cfg, &bert_cfg, &st), base, device)?;
    if model.spec.colbert_scoring.special_tokens != zsc_core::SpecialTokenSides::Both {
        tok.check_wraps_in_special_tokens()?;
    }
    if cfg.colbert_init == ColbertInit::Orthogonal {
        model.init_colbert_orthogonal()?;
    }
    Ok((model, tok, assets))
}

/// AdamW over the trainable parameters: the encoder at `learning_rate`, head parameters at
/// `head_learning_rate`, score scales at `score_scale_learning_rate`.
fn optimizer(cfg: &TrainConfig, model: &ZscModel) -> AdamW {
    let head_lr = cfg.head_learning_rate.unwrap_or(cfg.learning_rate);
    let mut vars: Vec<(String, Tensor)> = model.vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let mut params = Vec::new();
    for (name, t) in vars {
        if frozen(&name, cfg.freeze_layers) {
            let _ = t.set_requires_grad(false);
            continue;
        }
        let lr = if name.ends_with("score_scale") {
            cfg.score_scale_learning_rate.unwrap_or(head_lr)
        } else if ZscModel::is_head_param(&name) {
            head_lr
        } else {
            cfg.learning_rate
        };
        params.push((name, t, lr));
    }
    AdamW::new(params, cfg.weight_decay)
}

/// Restores `<run>/last/`: weights, optimizer, and (step, best val loss, best probe).
fn resume(
    cfg: &TrainConfig,
    run_dir: &std::path::Path,
    model: &ZscModel,
    opt: &mut AdamW,
) -> Result<(usize, Option<f64>, Option<f64>)> {
    let dir = checkpoint::resolve_checkpoint_dir(&run_dir.join("last"))?;
    let info = CheckpointInfo::load(&dir)?;
    if info.spec != model.spec {
        return Err(TrainerError::model(
            &dir,
            format!("cannot resume: the checkpoint is {:?}, the config asks for {:?}", info.spec, model.spec),
        ));
    }
    model.load_weights(&dir.join(checkpoint_files::WEIGHTS))?;
    opt.load(&dir.join(checkpoint_files::OPTIMIZER))?;
    let state: TrainerState = zsc_core::manifest::read_json(&dir.join(checkpoint_files::TRAINER_STATE))?;
    if state.max_steps != cfg.max_steps {
        tracing::warn!(
            "resuming a run planned for {} steps with max_steps = {}: the schedule changes",
            state.max_steps,
            cfg.max_steps
        );
    }
    tracing::info!("resuming {} at step {}", run_dir.display(), state.step);
    Ok((state.step, state.best_val_loss, state.best_probe_top1))
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
    fn validation_batches_take_sources_in_turn() {
        let src = |name: &str, n: usize| {
            SourcePairs::new(name.into(), (0..n).map(|i| Pair { text: format!("{name}{i}"), label: name.into() }).collect())
        };
        let b = validation_batches(&[src("a", 8), src("b", 3)], 2, 3);
        let names: Vec<&str> = b.iter().map(|x| x[0].label.as_str()).collect();
        assert_eq!(names, ["a", "b", "a"], "one source per batch, sources in turn");
        assert!(b.iter().all(|x| x.iter().all(|p| p.label == x[0].label)));
    }
}
