// libtorch operations that tch does not wrap, for the training step on CUDA: fused AdamW,
// foreach gradient clipping with no host sync, autocast with a chosen dtype, and CUDA graphs
// (capture the whole step once, replay it every step: no per-kernel host launch cost).
// Every function catches C++ exceptions and returns them as a malloc'd message (NULL = success);
// tensors are tch's `at::Tensor*` handles.
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#ifdef ZSC_WITH_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace {
char* error_message(const char* what) {
  size_t n = std::strlen(what);
  char* out = static_cast<char*>(std::malloc(n + 1));
  if (out != nullptr) std::memcpy(out, what, n + 1);
  return out;
}

std::vector<at::Tensor> tensor_list(at::Tensor** ts, int n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (int i = 0; i < n; ++i) out.push_back(*ts[i]);
  return out;
}
}  // namespace

#define ZSC_PROTECT(body)                         \
  try {                                           \
    body;                                         \
    return nullptr;                               \
  } catch (const std::exception& e) {             \
    return error_message(e.what());               \
  } catch (...) {                                 \
    return error_message("unknown C++ exception"); \
  }

extern "C" {

void zsc_free_error(char* e) { std::free(e); }

int zsc_has_cuda_graphs() {
#ifdef ZSC_WITH_CUDA
  return 1;
#else
  return 0;
#endif
}

// One fused AdamW update of a parameter group (torch.optim.AdamW(fused=True)); `lr` is a
// 0-dim tensor on the parameters' device so a captured graph reads the current rate.
// The caller increments `steps` (float tensors) before the call, as torch.optim does.
char* zsc_fused_adamw(at::Tensor** params, at::Tensor** grads, at::Tensor** exp_avgs, at::Tensor** exp_avg_sqs,
                      at::Tensor** steps, int n, at::Tensor* lr, double beta1, double beta2, double weight_decay,
                      double eps) {
  ZSC_PROTECT({
    at::_fused_adamw_(tensor_list(params, n), tensor_list(grads, n), tensor_list(exp_avgs, n),
                      tensor_list(exp_avg_sqs, n), {}, tensor_list(steps, n), *lr, beta1, beta2, weight_decay,
                      eps, /*amsgrad=*/false, /*maximize=*/false);
  })
}

// torch.nn.utils.clip_grad_norm_(foreach=True): scales the gradients by
// min(1, max_norm / (norm + 1e-6)) on the device; writes the total norm (0-dim) to *total_out.
char* zsc_clip_grad_norm(at::Tensor** grads, int n, double max_norm, at::Tensor** total_out) {
  ZSC_PROTECT({
    auto gs = tensor_list(grads, n);
    auto norms = at::_foreach_norm(gs, 2);
    auto total = at::linalg_vector_norm(at::stack(norms), 2);
    if (max_norm > 0) {
      auto coef = (max_norm / (total + 1e-6)).clamp_max(1.0);
      at::_foreach_mul_(gs, coef);
    }
    *total_out = new at::Tensor(total);
  })
}

// Drops the gradient tensors (set_to_none), so that a captured backward allocates them inside
// the graph's memory pool.
char* zsc_set_grads_to_none(at::Tensor** params, int n) {
  ZSC_PROTECT({
    for (int i = 0; i < n; ++i) params[i]->mutable_grad().reset();
  })
}

// dst.copy_(src, non_blocking=true): a host-to-device copy from pinned memory that does not wait.
char* zsc_copy_nonblocking(at::Tensor* dst, at::Tensor* src) {
  ZSC_PROTECT({ dst->copy_(*src, /*non_blocking=*/true); })
}

// Autocast on `device_type` (0 = CPU, 1 = CUDA) to bfloat16; `cache` off inside graph capture.
char* zsc_autocast_enter(int device_type, int cache) {
  ZSC_PROTECT({
    auto dev = device_type == 1 ? at::kCUDA : at::kCPU;
    at::autocast::set_autocast_enabled(dev, true);
    at::autocast::set_autocast_dtype(dev, at::kBFloat16);
    at::autocast::set_autocast_cache_enabled(cache != 0);
    at::autocast::increment_nesting();
  })
}

char* zsc_autocast_exit(int device_type) {
  ZSC_PROTECT({
    auto dev = device_type == 1 ? at::kCUDA : at::kCPU;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(dev, false);
    at::autocast::set_autocast_cache_enabled(true);
  })
}

#ifdef ZSC_WITH_CUDA
struct ZscGraph {
  at::cuda::CUDAGraph graph;
  // the non-default stream warm-up steps and the capture run on (cuBLAS workspaces and
  // other lazily created per-stream state must exist before capture, as torch.cuda.graph's
  // documentation asks of warm-up iterations)
  c10::cuda::CUDAStream stream = c10::cuda::getStreamFromPool();
  c10::optional<c10::cuda::CUDAStream> previous;
};

void* zsc_graph_new() {
  try {
    return new ZscGraph();
  } catch (...) {
    return nullptr;
  }
}

void zsc_graph_free(void* g) { delete static_cast<ZscGraph*>(g); }

// Makes the graph's side stream current (after everything queued so far has finished).
char* zsc_graph_enter_stream(void* g) {
  ZSC_PROTECT({
    auto* zg = static_cast<ZscGraph*>(g);
    c10::cuda::device_synchronize();
    zg->previous = c10::cuda::getCurrentCUDAStream();
    c10::cuda::setCurrentCUDAStream(zg->stream);
  })
}

// Waits for the side stream and makes the previous stream current again.
char* zsc_graph_exit_stream(void* g) {
  ZSC_PROTECT({
    auto* zg = static_cast<ZscGraph*>(g);
    c10::cuda::device_synchronize();
    if (zg->previous) c10::cuda::setCurrentCUDAStream(*zg->previous);
    zg->previous.reset();
  })
}

// Starts capturing what is launched on the current (side) stream; nothing runs until replay.
char* zsc_graph_capture_begin(void* g) {
  ZSC_PROTECT({
    c10::cuda::device_synchronize();
    c10::cuda::CUDACachingAllocator::emptyCache();
    static_cast<ZscGraph*>(g)->graph.capture_begin();
  })
}

char* zsc_graph_capture_end(void* g) {
  ZSC_PROTECT({ static_cast<ZscGraph*>(g)->graph.capture_end(); })
}

// Replays on the current stream (the default one after exit_stream).
char* zsc_graph_replay(void* g) {
  ZSC_PROTECT({ static_cast<ZscGraph*>(g)->graph.replay(); })
}
#else
void* zsc_graph_new() { return nullptr; }
void zsc_graph_free(void*) {}
char* zsc_graph_enter_stream(void*) { return error_message("built without CUDA graph support"); }
char* zsc_graph_exit_stream(void*) { return error_message("built without CUDA graph support"); }
char* zsc_graph_capture_begin(void*) { return error_message("built without CUDA graph support"); }
char* zsc_graph_capture_end(void*) { return error_message("built without CUDA graph support"); }
char* zsc_graph_replay(void*) { return error_message("built without CUDA graph support"); }
#endif
}
