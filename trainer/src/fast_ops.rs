//! Safe wrappers over `csrc/fast_ops.cpp`: libtorch operations tch does not expose (fused AdamW,
//! foreach gradient clipping, bf16 autocast, CUDA graphs). Errors of the C++ side come back as
//! [`TrainerError::Torch`] with libtorch's message.

use std::ffi::{c_char, c_int, c_void, CStr};

use tch::Tensor;

use crate::error::{Result, TrainerError};

type CTensor = *mut torch_sys::C_tensor;

extern "C" {
    fn zsc_free_error(e: *mut c_char);
    fn zsc_has_cuda_graphs() -> c_int;
    fn zsc_fused_adamw(
        params: *const CTensor,
        grads: *const CTensor,
        exp_avgs: *const CTensor,
        exp_avg_sqs: *const CTensor,
        steps: *const CTensor,
        n: c_int,
        lr: CTensor,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
    ) -> *mut c_char;
    fn zsc_clip_grad_norm(grads: *const CTensor, n: c_int, max_norm: f64, total_out: *mut CTensor) -> *mut c_char;
    fn zsc_set_grads_to_none(params: *const CTensor, n: c_int) -> *mut c_char;
    fn zsc_copy_nonblocking(dst: CTensor, src: CTensor) -> *mut c_char;
    fn zsc_autocast_enter(device_type: c_int, cache: c_int) -> *mut c_char;
    fn zsc_autocast_exit(device_type: c_int) -> *mut c_char;
    fn zsc_graph_new() -> *mut c_void;
    fn zsc_graph_free(g: *mut c_void);
    fn zsc_graph_enter_stream(g: *mut c_void) -> *mut c_char;
    fn zsc_graph_exit_stream(g: *mut c_void) -> *mut c_char;
    fn zsc_graph_capture_begin(g: *mut c_void) -> *mut c_char;
    fn zsc_graph_capture_end(g: *mut c_void) -> *mut c_char;
    fn zsc_graph_replay(g: *mut c_void) -> *mut c_char;
}

/// Turns the C side's error string (NULL = success) into a `Result`, freeing it.
fn check(what: &str, err: *mut c_char) -> Result<()> {
    if err.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null return is a NUL-terminated string malloc'd by fast_ops.cpp, freed once here.
    let msg = unsafe { CStr::from_ptr(err) }.to_string_lossy().into_owned();
    unsafe { zsc_free_error(err) };
    Err(TrainerError::Invalid(format!("{what}: {msg}")))
}

fn ptrs(ts: &[&Tensor]) -> Vec<CTensor> {
    ts.iter().map(|t| t.as_ptr() as CTensor).collect()
}

/// Whether this binary was built with CUDA graph support (libtorch with CUDA and its headers).
pub fn has_cuda_graphs() -> bool {
    // SAFETY: no arguments, returns a constant.
    unsafe { zsc_has_cuda_graphs() != 0 }
}

/// One parameter group of [`fused_adamw`]: the same learning rate and weight decay for all.
pub struct AdamWGroup<'a> {
    pub params: Vec<&'a Tensor>,
    pub grads: Vec<&'a Tensor>,
    pub exp_avgs: Vec<&'a Tensor>,
    pub exp_avg_sqs: Vec<&'a Tensor>,
    /// Float step counters, one per parameter (the same tensor may repeat), already incremented.
    pub steps: Vec<&'a Tensor>,
    /// 0-dim learning rate on the parameters' device.
    pub lr: &'a Tensor,
    pub weight_decay: f64,
}

/// `torch._fused_adamw_` on one group (what `torch.optim.AdamW(fused=True)` runs).
pub fn fused_adamw(g: &AdamWGroup<'_>, beta1: f64, beta2: f64, eps: f64) -> Result<()> {
    let n = g.params.len();
    if [g.grads.len(), g.exp_avgs.len(), g.exp_avg_sqs.len(), g.steps.len()].iter().any(|&l| l != n) {
        return Err(TrainerError::Invalid("fused AdamW: the tensor lists differ in length".into()));
    }
    if n == 0 {
        return Ok(());
    }
    let (p, gr, m, v, s) = (ptrs(&g.params), ptrs(&g.grads), ptrs(&g.exp_avgs), ptrs(&g.exp_avg_sqs), ptrs(&g.steps));
    // SAFETY: every pointer is a live tch tensor borrowed for the duration of the call.
    let err = unsafe {
        zsc_fused_adamw(
            p.as_ptr(),
            gr.as_ptr(),
            m.as_ptr(),
            v.as_ptr(),
            s.as_ptr(),
            n as c_int,
            g.lr.as_ptr() as CTensor,
            beta1,
            beta2,
            g.weight_decay,
            eps,
        )
    };
    check("fused AdamW", err)
}

/// Global-norm clipping on the device (`clip_grad_norm_(foreach=True)`): no host sync. Returns
/// the total norm before clipping as a 0-dim tensor.
pub fn clip_grad_norm(grads: &[&Tensor], max_norm: f64) -> Result<Tensor> {
    let g = ptrs(grads);
    let mut out: CTensor = std::ptr::null_mut();
    // SAFETY: live tensors; on success `out` is a new at::Tensor owned by the returned Tensor.
    let err = unsafe { zsc_clip_grad_norm(g.as_ptr(), g.len() as c_int, max_norm, &mut out) };
    check("gradient clipping", err)?;
    // SAFETY: fast_ops.cpp allocated `out` with `new at::Tensor`, as tch's own wrappers do.
    Ok(unsafe { Tensor::from_ptr(out) })
}

/// Drops the gradients (`zero_grad(set_to_none=True)`).
pub fn set_grads_to_none(params: &[&Tensor]) -> Result<()> {
    let p = ptrs(params);
    // SAFETY: live tensors.
    check("resetting gradients", unsafe { zsc_set_grads_to_none(p.as_ptr(), p.len() as c_int) })
}

/// `dst.copy_(src, non_blocking=true)`.
pub fn copy_nonblocking(dst: &Tensor, src: &Tensor) -> Result<()> {
    // SAFETY: live tensors.
    check("copying a batch to the device", unsafe { zsc_copy_nonblocking(dst.as_ptr() as CTensor, src.as_ptr() as CTensor) })
}

/// Runs `f` under bf16 autocast on `device` (matrix products in bfloat16, reductions in fp32).
/// `cache` must be false inside a CUDA graph capture.
pub fn with_bf16_autocast<T>(device: tch::Device, cache: bool, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let dev = i32::from(device.is_cuda());
    // SAFETY: plain thread-local autocast state changes, undone below.
    check("entering autocast", unsafe { zsc_autocast_enter(dev, i32::from(cache)) })?;
    let out = f();
    check("leaving autocast", unsafe { zsc_autocast_exit(dev) })?;
    out
}

/// A captured CUDA graph: the kernels one training step launches, replayed with one call.
/// Warm-up steps and the capture run on the graph's own side stream
/// ([`CudaGraph::enter_side_stream`]); replays run on the default stream.
pub struct CudaGraph {
    ptr: *mut c_void,
}

impl CudaGraph {
    pub fn new() -> Result<Self> {
        if !has_cuda_graphs() {
            return Err(TrainerError::Invalid("this trainer was built without CUDA graph support".into()));
        }
        // SAFETY: returns a heap object (or NULL on failure) freed in Drop.
        let ptr = unsafe { zsc_graph_new() };
        if ptr.is_null() {
            return Err(TrainerError::Invalid("could not create a CUDA graph (no CUDA device?)".into()));
        }
        Ok(CudaGraph { ptr })
    }

    /// Makes the side stream current (after the device has finished all queued work).
    pub fn enter_side_stream(&self) -> Result<()> {
        // SAFETY: `ptr` is a live graph.
        check("switching to the capture stream", unsafe { zsc_graph_enter_stream(self.ptr) })
    }

    /// Waits for the side stream and makes the previous stream current again.
    pub fn exit_side_stream(&self) -> Result<()> {
        // SAFETY: `ptr` is a live graph.
        check("leaving the capture stream", unsafe { zsc_graph_exit_stream(self.ptr) })
    }

    /// Captures what `f` launches on the current (side) stream; nothing runs until
    /// [`CudaGraph::replay`]. The capture always ends, also when `f` fails or panics.
    pub fn capture<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        // SAFETY: `ptr` is a live graph.
        check("starting a CUDA graph capture", unsafe { zsc_graph_capture_begin(self.ptr) })?;
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let end = check("ending the CUDA graph capture", unsafe { zsc_graph_capture_end(self.ptr) });
        match out {
            Ok(r) => {
                let v = r?;
                end?;
                Ok(v)
            }
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                Err(TrainerError::Invalid(format!("CUDA graph capture failed: {msg}")))
            }
        }
    }

    pub fn replay(&self) -> Result<()> {
        // SAFETY: `ptr` is a live, captured graph.
        check("replaying the CUDA graph", unsafe { zsc_graph_replay(self.ptr) })
    }
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        // SAFETY: allocated by zsc_graph_new, freed once.
        unsafe { zsc_graph_free(self.ptr) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn clip_matches_the_definition() {
        let a = Tensor::from_slice(&[3.0f32, 0.0]);
        let b = Tensor::from_slice(&[4.0f32]);
        let total = clip_grad_norm(&[&a, &b], 1.0).unwrap();
        assert!((total.double_value(&[]) - 5.0).abs() < 1e-6);
        assert!((a.double_value(&[0]) - 3.0 / (5.0 + 1e-6)).abs() < 1e-6);
        assert!((b.double_value(&[0]) - 4.0 / (5.0 + 1e-6)).abs() < 1e-6);
        // below the limit nothing changes
        let c = Tensor::from_slice(&[0.3f32, 0.4]);
        let total = clip_grad_norm(&[&c], 1.0).unwrap();
        assert!((total.double_value(&[]) - 0.5).abs() < 1e-6);
        assert!((c.double_value(&[1]) - 0.4).abs() < 1e-7);
    }

    #[test]
    fn autocast_runs_matmuls_in_bf16_on_cpu() {
        let x = Tensor::ones([2, 2], (Kind::Float, Device::Cpu));
        let y = with_bf16_autocast(Device::Cpu, true, || Ok(x.matmul(&x))).unwrap();
        assert_eq!(y.kind(), Kind::BFloat16);
        assert_eq!(x.matmul(&x).kind(), Kind::Float, "autocast is off again afterwards");
    }
}
