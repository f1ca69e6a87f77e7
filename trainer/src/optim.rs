//! AdamW (Loshchilov & Hutter, https://arxiv.org/abs/1711.05101) written on tch tensors, so that
//! its moments and step can be saved to `optimizer.safetensors` and restored for an exact `--resume`;
//! the linear warm-up / linear decay schedule; global-norm gradient clipping.

use std::collections::BTreeMap;
use std::path::Path;

use tch::{Device, Kind, Tensor};

use crate::error::{Result, TrainerError};

/// One trained parameter and its AdamW state.
#[derive(Debug)]
pub struct ParamState {
    pub name: String,
    pub param: Tensor,
    pub m: Tensor,
    pub v: Tensor,
    /// Base learning rate of the parameter's group (head parameters get their own rate); the
    /// schedule's factor multiplies it.
    pub lr_scale: f64,
    /// Decoupled weight decay applies only to matrices (not to biases, LayerNorm or the scalar scale).
    pub decay: bool,
}

#[derive(Debug)]
pub struct AdamW {
    pub params: Vec<ParamState>,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Number of updates taken so far.
    pub step: u64,
    /// The device-side state of [`AdamW::step_fused`] (created on first use).
    fused: Option<FusedState>,
}

/// What the fused update keeps on the parameters' device, so a step needs no host values: the
/// step counter and one 0-dim learning rate per parameter group.
#[derive(Debug)]
struct FusedState {
    step: Tensor,
    /// (base learning rate, weight decay on?, the group's current learning rate, parameter indices)
    groups: Vec<(f64, bool, Tensor, Vec<usize>)>,
}

impl FusedState {
    fn new(params: &[ParamState], step: u64) -> Self {
        let device = params.first().map_or(Device::Cpu, |p| p.param.device());
        let mut groups: Vec<(f64, bool, Tensor, Vec<usize>)> = Vec::new();
        for (i, p) in params.iter().enumerate() {
            match groups.iter_mut().find(|g| g.0 == p.lr_scale && g.1 == p.decay) {
                Some(g) => g.3.push(i),
                None => groups.push((p.lr_scale, p.decay, Tensor::zeros([], (Kind::Float, device)), vec![i])),
            }
        }
        FusedState { step: Tensor::full([], step as f64, (Kind::Float, device)), groups }
    }
}

impl AdamW {
    /// `params`: (name, tensor, base learning rate). Parameters must require grad.
    pub fn new(params: Vec<(String, Tensor, f64)>, weight_decay: f64) -> Self {
        let params = params
            .into_iter()
            .map(|(name, param, lr_scale)| {
                let m = param.zeros_like().detach();
                let v = param.zeros_like().detach();
                let decay = param.dim() >= 2;
                ParamState { name, param, m, v, lr_scale, decay }
            })
            .collect();
        AdamW { params, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay, step: 0, fused: None }
    }

    /// Sets the learning rates the next [`AdamW::step_fused`] uses (schedule factor `lr` times each
    /// group's base rate) with no host sync. Outside a CUDA graph capture: a captured fill would
    /// replay the same rate forever.
    pub fn set_fused_lr(&mut self, lr: f64) {
        let state = self.fused.get_or_insert_with(|| FusedState::new(&self.params, self.step));
        for g in &mut state.groups {
            let _ = g.2.fill_(lr * g.0);
        }
    }

    /// The same update as [`AdamW::step`] with libtorch's fused multi-tensor kernel
    /// (`torch.optim.AdamW(fused=True)`): a few launches for all parameters instead of ~8 per
    /// tensor, and no host value read or written, so a CUDA graph can capture it (the step
    /// counter lives on the device; [`AdamW::save`] reads it back). The learning rate is the one
    /// last given to [`AdamW::set_fused_lr`]. Every parameter must have a gradient.
    pub fn step_fused(&mut self) -> Result<()> {
        let (b1, b2, eps, wd) = (self.beta1, self.beta2, self.eps, self.weight_decay);
        let grads: Vec<Tensor> = self.params.iter().map(|p| p.param.grad()).collect();
        if let Some((p, _)) = self.params.iter().zip(&grads).find(|(_, g)| !g.defined()) {
            return Err(TrainerError::Invalid(format!("fused AdamW: `{}` has no gradient", p.name)));
        }
        let params = &self.params;
        let state = self.fused.get_or_insert_with(|| FusedState::new(params, self.step));
        let _ = state.step.f_add_scalar_(1.0);
        for (_, decay, lr, idx) in &state.groups {
            let group = crate::fast_ops::AdamWGroup {
                params: idx.iter().map(|&i| &params[i].param).collect(),
                grads: idx.iter().map(|&i| &grads[i]).collect(),
                exp_avgs: idx.iter().map(|&i| &params[i].m).collect(),
                exp_avg_sqs: idx.iter().map(|&i| &params[i].v).collect(),
                steps: idx.iter().map(|_| &state.step).collect(),
                lr,
                weight_decay: if *decay { wd } else { 0.0 },
            };
            tch::no_grad(|| crate::fast_ops::fused_adamw(&group, b1, b2, eps))?;
        }
        Ok(())
    }

    /// Updates taken so far (read from the device after fused steps: a host sync).
    pub fn steps_taken(&self) -> u64 {
        match &self.fused {
            Some(f) => f.step.double_value(&[]).round().max(0.0) as u64,
            None => self.step,
        }
    }

    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.param.zero_grad();
        }
    }

    /// Global L2 norm of all gradients; scales them down to `max_norm` when above it (as
    /// `torch.nn.utils.clip_grad_norm_`). Returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        tch::no_grad(|| {
            let grads: Vec<Tensor> = self.params.iter().map(|p| p.param.grad()).filter(|g| g.defined()).collect();
            if grads.is_empty() {
                return 0.0;
            }
            // one 2-norm per tensor (no squared copies), then the norm of the norms
            let norms: Vec<Tensor> = grads.iter().map(|g| g.norm()).collect();
            let total = Tensor::stack(&norms, 0).norm().double_value(&[]);
            if max_norm > 0.0 && total.is_finite() && total > max_norm {
                let coef = max_norm / (total + 1e-6);
                for g in &grads {
                    let mut g = g.shallow_clone();
                    let _ = g.f_mul_scalar_(coef);
                }
            }
            total
        })
    }

    /// One AdamW update; each parameter's learning rate is `lr` (the schedule factor) times its base rate.
    pub fn step(&mut self, lr: f64) {
        self.step += 1;
        let t = self.step as i32;
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2 = 1.0 - self.beta2.powi(t);
        let (b1, b2, eps, wd) = (self.beta1, self.beta2, self.eps, self.weight_decay);
        tch::no_grad(|| {
            for p in &mut self.params {
                let g = p.param.grad();
                if !g.defined() {
                    continue;
                }
                let lr = lr * p.lr_scale;
                // in place, two temporaries per tensor (g^2 and sqrt(v)), like torch.optim.AdamW:
                // m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;  w <- w (1 - lr wd);
                // w <- w - (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps)
                let _ = p.m.f_lerp_(&g, 1.0 - b1);
                let _ = p.v.f_lerp_(&g.square(), 1.0 - b2);
                if p.decay && wd > 0.0 {
                    let _ = p.param.f_mul_scalar_(1.0 - lr * wd);
                }
                if lr == 0.0 {
                    continue;
                }
                let mut denom = p.v.sqrt();
                let _ = denom.f_div_scalar_(bc2.sqrt());
                let _ = denom.f_add_scalar_(eps);
                // addcdiv_ has no `value`: fold -lr/bc1 into the denominator
                let _ = denom.f_div_scalar_(-lr / bc1);
                let _ = p.param.f_addcdiv_(&p.m, &denom);
            }
        });
    }

    /// Moments as named tensors (`m.<param>`, `v.<param>`) on the CPU.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.params.len());
        for p in &self.params {
            out.push((format!("m.{}", p.name), p.m.to_device(Device::Cpu).contiguous()));
            out.push((format!("v.{}", p.name), p.v.to_device(Device::Cpu).contiguous()));
        }
        out
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let mut named = self.state_tensors();
        named.push(("step".into(), Tensor::from_slice(&[self.steps_taken() as i64])));
        Tensor::write_safetensors(&named, path).map_err(|e| TrainerError::torch(format!("writing {}", path.display()), e))
    }

    /// Restore moments and step saved by [`AdamW::save`]; every parameter must have its state.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let src: BTreeMap<String, Tensor> = crate::encoders::read_safetensors(path)?;
        let step = src.get("step").ok_or_else(|| TrainerError::model(path, "optimizer state has no `step`"))?.int64_value(&[0]);
        tch::no_grad(|| -> Result<()> {
            for p in &mut self.params {
                for (key, dst) in [(format!("m.{}", p.name), &mut p.m), (format!("v.{}", p.name), &mut p.v)] {
                    let t = src.get(&key).ok_or_else(|| TrainerError::model(path, format!("optimizer state lacks `{key}`")))?;
                    if t.size() != dst.size() {
                        return Err(TrainerError::model(
                            path,
                            format!("`{key}` has shape {:?}, expected {:?}", t.size(), dst.size()),
                        ));
                    }
                    dst.f_copy_(&t.to_device(dst.device())).map_err(|e| TrainerError::torch(format!("restoring `{key}`"), e))?;
                }
            }
            Ok(())
        })?;
        self.step = step.max(0) as u64;
        if let Some(f) = &mut self.fused {
            let _ = f.step.fill_(self.step as f64);
        }
        Ok(())
    }
}

/// Learning rate before update `step` (0-based) of `max_steps`: linear warm-up over
/// `ceil(warmup_ratio * max_steps)` steps, then linear decay to 0 at `max_steps`.
pub fn lr_at(step: usize, max_steps: usize, warmup_ratio: f64, base: f64) -> f64 {
    let warmup = (warmup_ratio * max_steps as f64).ceil() as usize;
    if step < warmup {
        return base * (step + 1) as f64 / warmup as f64;
    }
    let rest = max_steps.saturating_sub(warmup).max(1);
    base * (max_steps.saturating_sub(step) as f64 / rest as f64).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule() {
        // 10 steps, 20% warm-up: 2 warm-up steps, then decay over 8
        assert!((lr_at(0, 10, 0.2, 1.0) - 0.5).abs() < 1e-12);
        assert!((lr_at(1, 10, 0.2, 1.0) - 1.0).abs() < 1e-12);
        assert!((lr_at(2, 10, 0.2, 1.0) - 1.0).abs() < 1e-12);
        assert!((lr_at(6, 10, 0.2, 1.0) - 0.5).abs() < 1e-12);
        assert!((lr_at(9, 10, 0.2, 1.0) - 0.125).abs() < 1e-12);
        assert_eq!(lr_at(3, 10, 0.0, 2.0), 2.0 * 7.0 / 10.0);
    }

    #[test]
    fn adamw_matches_hand_computation() {
        // one scalar-per-entry matrix param, loss = sum(w * c) -> grad = c
        let w = Tensor::from_slice(&[1.0f32, -2.0]).view([1, 2]).set_requires_grad(true);
        let c = Tensor::from_slice(&[0.5f32, -1.0]).view([1, 2]);
        let mut opt = AdamW::new(vec![("w".into(), w.shallow_clone(), 1.0)], 0.1);
        for _ in 0..2 {
            opt.zero_grad();
            (&w * &c).sum(tch::Kind::Float).backward();
            opt.step(0.01);
        }
        // with a constant gradient g: m_hat = g, v_hat = g^2 -> update = lr * g/(|g|+eps) = lr*sign(g)
        // step: w <- w (1 - lr wd) - lr sign(g), twice
        let f = |w0: f64, s: f64| {
            let mut x = w0;
            for _ in 0..2 {
                x = x * (1.0 - 0.01 * 0.1) - 0.01 * s;
            }
            x
        };
        let got = Vec::<f32>::try_from(&w.detach().view([-1])).unwrap();
        assert!((got[0] as f64 - f(1.0, 1.0)).abs() < 1e-6, "{got:?}");
        assert!((got[1] as f64 - f(-2.0, -1.0)).abs() < 1e-6, "{got:?}");
        assert_eq!(opt.step, 2);
    }

    #[test]
    fn fused_step_equals_the_per_tensor_step() {
        // two groups (base rates 1 and 3), a matrix (decayed) and a vector (not decayed)
        let make = || {
            let w = Tensor::from_slice(&[1.0f32, -2.0, 0.5, 3.0]).view([2, 2]).set_requires_grad(true);
            let b = Tensor::from_slice(&[0.1f32, -0.3]).set_requires_grad(true);
            let opt = AdamW::new(vec![("w".into(), w.shallow_clone(), 1.0), ("b".into(), b.shallow_clone(), 3.0)], 0.1);
            (w, b, opt)
        };
        let loss = |w: &Tensor, b: &Tensor, k: f64| (w * k).sin().sum(tch::Kind::Float) + (b * b).sum(tch::Kind::Float) * k;
        let (w1, b1, mut plain) = make();
        let (w2, b2, mut fused) = make();
        for (i, lr) in [0.01, 0.02, 0.005].into_iter().enumerate() {
            plain.zero_grad();
            loss(&w1, &b1, 1.0 + i as f64).backward();
            plain.step(lr);
            fused.zero_grad();
            loss(&w2, &b2, 1.0 + i as f64).backward();
            fused.set_fused_lr(lr);
            fused.step_fused().unwrap();
        }
        for (a, b) in [(&w1, &w2), (&b1, &b2)] {
            let d = (a - b).abs().max().double_value(&[]);
            assert!(d < 1e-6, "fused and per-tensor AdamW differ by {d}");
        }
        assert_eq!(fused.steps_taken(), 3);
        let d = (&plain.params[0].v - &fused.params[0].v).abs().max().double_value(&[]);
        assert!(d < 1e-7, "second moments differ by {d}");
    }

    #[test]
    fn clipping_scales_to_max_norm() {
        let w = Tensor::from_slice(&[0.0f32, 0.0]).set_requires_grad(true);
        let mut opt = AdamW::new(vec![("w".into(), w.shallow_clone(), 1.0)], 0.0);
        (&w * Tensor::from_slice(&[3.0f32, 4.0])).sum(tch::Kind::Float).backward();
        let n = opt.clip_grad_norm(1.0);
        assert!((n - 5.0).abs() < 1e-6);
        let g = Vec::<f32>::try_from(&w.grad()).unwrap();
        assert!((g[0] - 0.6).abs() < 1e-5 && (g[1] - 0.8).abs() < 1e-5, "{g:?}");
    }

    #[test]
    fn state_roundtrip() {
        let d = tempfile::tempdir().unwrap();
        let w = Tensor::from_slice(&[1.0f32, 2.0]).set_requires_grad(true);
        let mut opt = AdamW::new(vec![("w".into(), w.shallow_clone(), 1.0)], 0.0);
        (&w * 2.0).sum(tch::Kind::Float).backward();
        opt.step(0.1);
        let p = d.path().join("optimizer.safetensors");
        opt.save(&p).unwrap();
        let w2 = Tensor::from_slice(&[1.0f32, 2.0]).set_requires_grad(true);
        let mut opt2 = AdamW::new(vec![("w".into(), w2, 1.0)], 0.0);
        opt2.load(&p).unwrap();
        assert_eq!(opt2.step, 1);
        assert_eq!(Vec::<f32>::try_from(&opt2.params[0].m).unwrap(), Vec::<f32>::try_from(&opt.params[0].m).unwrap());
        assert_eq!(Vec::<f32>::try_from(&opt2.params[0].v).unwrap(), Vec::<f32>::try_from(&opt.params[0].v).unwrap());
    }
}
