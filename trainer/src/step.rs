//! One optimisation step (forward, loss, backward, clipping, AdamW), three ways:
//! - **CPU**: the reference path; reads the loss and the gradient norm every step and stops before
//!   the update when either is not finite.
//! - **CUDA, eager**: nothing is read back to the host (the loss is read every `log_every` steps),
//!   fused AdamW and foreach clipping (a few kernel launches instead of ~10 per tensor).
//! - **CUDA graph**: after 3 eager warm-up steps on a side stream, the whole step is captured once
//!   per batch shape and replayed, so the host launches one graph instead of ~1,500 kernels; inputs
//!   live in static device tensors refreshed before each replay (texts padded to one of four
//!   length buckets, [`crate::batches::text_bucket`]: one graph per bucket).
//!   If the capture fails the run continues eagerly.

use std::collections::HashMap;

use crate::config::{LossKind, Precision};
use tch::{Device, Tensor};

use crate::anchor::Anchor;
use crate::batches::PreparedBatch;
use crate::error::{Result, TrainerError};
use crate::fast_ops::{self, CudaGraph};
use crate::loss::{batch_loss, LossTargets};
use crate::models::{BatchTensors, ZscModel};
use crate::optim::AdamW;

/// What a step needs besides the batch.
#[derive(Debug)]
pub struct StepSettings {
    pub loss: LossKind,
    pub pos_weight_scale: Option<f64>,
    pub max_grad_norm: f64,
    pub precision: Precision,
    pub seed: u64,
    /// The anchor (frozen base or teacher) and its weight in the loss (`anchor_weight` > 0).
    pub anchor: Option<Anchor>,
}

/// A step's train loss and gradient norm before clipping: 0-dim tensors on the device, not read.
pub struct StepResult {
    pub loss: Tensor,
    pub grad_norm: Tensor,
}

/// Dropout masks depend on (seed, step) only, so a resumed run draws the same ones.
fn seed_step(seed: u64, step: usize) {
    tch::manual_seed(seed.wrapping_mul(1_000_003).wrapping_add(step as u64) as i64);
}

/// The batch's teacher logits when the anchor is a teacher (looked up on the host side).
fn teacher_logits(b: &PreparedBatch, s: &StepSettings) -> Result<Option<Tensor>> {
    let Some(table) = s.anchor.as_ref().and_then(|a| a.teacher_table()) else { return Ok(None) };
    let texts: Vec<&str> = b.pairs.iter().map(|p| p.text.as_str()).collect();
    let labels: Vec<&str> = b.label_names.iter().map(String::as_str).collect();
    table.logits(&texts, &labels).map(Some)
}

/// Forward and loss (under bf16 autocast when asked; `cache` off inside a graph capture).
fn forward_loss(
    model: &ZscModel,
    texts: &BatchTensors,
    labels: &BatchTensors,
    targets: &LossTargets,
    teacher: Option<&Tensor>,
    s: &StepSettings,
    cache: bool,
) -> Result<Tensor> {
    let run = || {
        let logits = model.score_matrix_tensors(texts, labels, true)?;
        let loss = batch_loss(&logits, targets, s.loss);
        Ok(match &s.anchor {
            Some(anchor) => loss + anchor.loss(&logits, &anchor.scores(texts, labels, teacher)?, &targets.left_out),
            None => loss,
        })
    };
    match s.precision {
        Precision::Fp32 => run(),
        Precision::Bf16 => fast_ops::with_bf16_autocast(model.device(), cache, run),
    }
}

/// The device-side step: backward, foreach clipping, fused AdamW. Reads nothing back.
fn backward_and_update(loss: &Tensor, opt: &mut AdamW, max_grad_norm: f64) -> Result<Tensor> {
    loss.backward();
    let grads: Vec<Tensor> = opt.params.iter().map(|p| p.param.grad()).collect();
    let refs: Vec<&Tensor> = grads.iter().filter(|g| g.defined()).collect();
    let norm = fast_ops::clip_grad_norm(&refs, max_grad_norm)?;
    opt.step_fused()?;
    Ok(norm)
}

fn params_of(opt: &AdamW) -> Vec<&Tensor> {
    opt.params.iter().map(|p| &p.param).collect()
}

/// A captured step for one batch shape (pairs, text length, label length), with its static
/// inputs and outputs.
pub struct GraphStep {
    graph: CudaGraph,
    texts: BatchTensors,
    labels: BatchTensors,
    targets: LossTargets,
    /// The teacher's logits of the batch (teacher anchor only), refreshed like the inputs.
    teacher: Option<Tensor>,
    warmups_left: usize,
    outputs: Option<(Tensor, Tensor)>,
}

impl GraphStep {
    const WARMUPS: usize = 3;

    fn new(b: &PreparedBatch, s: &StepSettings, device: Device) -> Result<Self> {
        Ok(GraphStep {
            graph: CudaGraph::new()?,
            texts: BatchTensors::new(&b.texts, device)?,
            labels: BatchTensors::new(&b.labels, device)?,
            targets: LossTargets::new(&b.pairs, &b.negative_fillers, s.pos_weight_scale, device)?,
            teacher: teacher_logits(b, s)?,
            warmups_left: Self::WARMUPS,
            outputs: None,
        })
    }

    fn fill(&self, b: &PreparedBatch, s: &StepSettings) -> Result<()> {
        self.texts.fill_from(&b.texts)?;
        self.labels.fill_from(&b.labels)?;
        if let (Some(dst), Some(src)) = (&self.teacher, teacher_logits(b, s)?) {
            tch::no_grad(|| dst.shallow_clone().copy_(&src));
        }
        self.targets.fill_from(&b.pairs, &b.negative_fillers, s.pos_weight_scale)
    }

    /// Warm-up steps and the capture run on the side stream; afterwards each step is a replay.
    fn run(&mut self, model: &ZscModel, opt: &mut AdamW, b: &PreparedBatch, s: &StepSettings) -> Result<StepResult> {
        if let Some((loss, norm)) = &self.outputs {
            self.fill(b, s)?;
            seed_step(s.seed, b.step);
            self.graph.replay()?;
            return Ok(StepResult { loss: loss.copy(), grad_norm: norm.copy() });
        }
        self.graph.enter_side_stream()?;
        let warmup = self.warm_up_or_capture(model, opt, b, s);
        self.graph.exit_side_stream()?;
        match warmup? {
            Some((loss, norm)) => Ok(StepResult { loss, grad_norm: norm }),
            None => {
                tracing::info!(
                    "captured the training step as a CUDA graph (batch of {}, texts padded to {} tokens)",
                    b.pairs.len(),
                    b.texts.seq
                );
                self.run(model, opt, b, s)
            }
        }
    }

    /// On the side stream: an eager warm-up step (its loss and norm), or the capture (None).
    fn warm_up_or_capture(
        &mut self,
        model: &ZscModel,
        opt: &mut AdamW,
        b: &PreparedBatch,
        s: &StepSettings,
    ) -> Result<Option<(Tensor, Tensor)>> {
        self.fill(b, s)?;
        fast_ops::set_grads_to_none(&params_of(opt))?;
        seed_step(s.seed, b.step);
        let (texts, labels, targets, teacher) = (&self.texts, &self.labels, &self.targets, self.teacher.as_ref());
        let body = |opt: &mut AdamW, cache: bool| -> Result<(Tensor, Tensor)> {
            let loss = forward_loss(model, texts, labels, targets, teacher, s, cache)?;
            let norm = backward_and_update(&loss, opt, s.max_grad_norm)?;
            Ok((loss.detach(), norm))
        };
        if self.warmups_left > 0 {
            self.warmups_left -= 1;
            return body(opt, true).map(Some);
        }
        self.outputs = Some(self.graph.capture(|| body(opt, false))?);
        Ok(None)
    }
}

/// How this run takes its steps (chosen from the device and `cuda_graphs`).
pub enum StepEngine {
    Cpu,
    CudaEager,
    CudaGraphs(HashMap<(usize, usize, usize), GraphStep>),
}

impl StepEngine {
    pub fn new(device: Device, cuda_graphs: bool) -> StepEngine {
        match device {
            Device::Cuda(_) if cuda_graphs && fast_ops::has_cuda_graphs() => StepEngine::CudaGraphs(HashMap::new()),
            Device::Cuda(_) => {
                if cuda_graphs {
                    tracing::warn!("this trainer was built without CUDA graph support: eager CUDA steps");
                }
                StepEngine::CudaEager
            }
            _ => StepEngine::Cpu,
        }
    }

    /// Whether batches must come with fixed token lengths.
    pub fn needs_static_shapes(&self) -> bool {
        matches!(self, StepEngine::CudaGraphs(_))
    }

    pub fn describe(&self) -> &'static str {
        match self {
            StepEngine::Cpu => "CPU steps",
            StepEngine::CudaEager => "eager CUDA steps (fused AdamW, no per-step host sync)",
            StepEngine::CudaGraphs(_) => "CUDA-graph steps (fused AdamW, captured once per batch shape)",
        }
    }

    /// One step of `b` at learning-rate factor `lr` (of each group's base rate).
    pub fn run(&mut self, model: &ZscModel, opt: &mut AdamW, b: &PreparedBatch, lr: f64, s: &StepSettings) -> Result<StepResult> {
        match self {
            StepEngine::Cpu => cpu_step(model, opt, b, lr, s),
            StepEngine::CudaEager => cuda_eager_step(model, opt, b, lr, s),
            StepEngine::CudaGraphs(graphs) => {
                opt.set_fused_lr(lr);
                let key = (b.pairs.len(), b.texts.seq, b.labels.seq);
                if let std::collections::hash_map::Entry::Vacant(slot) = graphs.entry(key) {
                    slot.insert(GraphStep::new(b, s, model.device())?);
                }
                let result = match graphs.get_mut(&key) {
                    Some(g) => g.run(model, opt, b, s),
                    None => Err(TrainerError::Invalid("graph step missing".into())),
                };
                match result {
                    Ok(r) => Ok(r),
                    Err(e) => {
                        tracing::warn!("CUDA graph step failed ({e}); continuing with eager CUDA steps");
                        *self = StepEngine::CudaEager;
                        fast_ops::set_grads_to_none(&params_of(opt))?;
                        cuda_eager_step(model, opt, b, lr, s)
                    }
                }
            }
        }
    }
}

fn cpu_step(model: &ZscModel, opt: &mut AdamW, b: &PreparedBatch, lr: f64, s: &StepSettings) -> Result<StepResult> {
    seed_step(s.seed, b.step);
    let device = model.device();
    let (texts, labels) = (BatchTensors::new(&b.texts, device)?, BatchTensors::new(&b.labels, device)?);
    let targets = LossTargets::new(&b.pairs, &b.negative_fillers, s.pos_weight_scale, device)?;
    let teacher = teacher_logits(b, s)?;
    let loss = forward_loss(model, &texts, &labels, &targets, teacher.as_ref(), s, true)?;
    let loss_value = loss.double_value(&[]);
    if !loss_value.is_finite() {
        return Err(TrainerError::NonFiniteLoss { step: b.step + 1, loss: loss_value });
    }
    opt.zero_grad();
    loss.backward();
    let grad_norm = opt.clip_grad_norm(s.max_grad_norm);
    if !grad_norm.is_finite() {
        return Err(TrainerError::NonFiniteGradient { step: b.step + 1, norm: grad_norm });
    }
    opt.step(lr);
    Ok(StepResult { loss: loss.detach(), grad_norm: Tensor::from(grad_norm) })
}

fn cuda_eager_step(model: &ZscModel, opt: &mut AdamW, b: &PreparedBatch, lr: f64, s: &StepSettings) -> Result<StepResult> {
    seed_step(s.seed, b.step);
    let device = model.device();
    let (texts, labels) = (BatchTensors::new(&b.texts, device)?, BatchTensors::new(&b.labels, device)?);
    let targets = LossTargets::new(&b.pairs, &b.negative_fillers, s.pos_weight_scale, device)?;
    let teacher = teacher_logits(b, s)?;
    let loss = forward_loss(model, &texts, &labels, &targets, teacher.as_ref(), s, true)?;
    fast_ops::set_grads_to_none(&params_of(opt))?;
    opt.set_fused_lr(lr);
    let norm = backward_and_update(&loss, opt, s.max_grad_norm)?;
    Ok(StepResult { loss: loss.detach(), grad_norm: norm })
}
