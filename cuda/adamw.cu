// Optimizer-side reductions and updates over the LoRA parameters (param dtype, fp32).
//
// adamw_step: PyTorch AdamW (decoupled weight decay, bias correction), elementwise in fp64 exactly as the
// CPU reference writes it; one grid-stride pass reads param/grad/m/v once and writes param/m/v.
// adamw_step_multi: the same per-element update over every LoRA tensor in ONE launch. The backend uploads a
// device-side table (plan_adamw_chunks, plan.h): the tensors' pointers/dtypes, then fixed-size chunks
// (tensor, begin, len); blocks walk the chunks grid-stride, threads the elements of a chunk. Each element
// goes through adamw_update(), the function the single-tensor kernel uses, so results are identical.
//
// sum_squares: sum of x^2 in fp64 with a fixed decomposition (kSsqBlocks blocks, fixed thread strides,
// fixed reduction trees, then one block adds the block sums in order): deterministic, and NaN/Inf
// propagate (that is how the trainer detects non-finite gradients).
#include <cmath>

#include "cuda_check.h"
#include "device_utils.cuh"
#include "kernels.h"

namespace hayate::gpu {

namespace {

constexpr int kSsqThreads = 256;
constexpr int kSsqBlocks = 512;

struct AdamWArgs {
  double lr, beta1, beta2, eps, weight_decay, grad_scale, bc1, bc2;
};

AdamWArgs adamw_args(const AdamWParams& p) {
  return {p.lr, p.beta1, p.beta2, p.eps, p.weight_decay, p.grad_scale,
          1.0 - std::pow(p.beta1, static_cast<double>(p.step)), 1.0 - std::pow(p.beta2, static_cast<double>(p.step))};
}

// Element i of one tensor: the one formula of both kernels.
__device__ __forceinline__ void adamw_update(void* w, DType tw, const void* g, DType tg, void* m, DType tm, void* v,
                                             DType tv, int64_t i, const AdamWArgs& a) {
  const double gi = static_cast<double>(load_as_float(g, tg, i)) * a.grad_scale;
  const double mi = a.beta1 * load_as_float(m, tm, i) + (1.0 - a.beta1) * gi;
  const double vi = a.beta2 * load_as_float(v, tv, i) + (1.0 - a.beta2) * gi * gi;
  store_from_float(m, tm, i, static_cast<float>(mi));
  store_from_float(v, tv, i, static_cast<float>(vi));
  const double wi = load_as_float(w, tw, i);
  store_from_float(w, tw, i, static_cast<float>(wi - a.lr * (a.weight_decay * wi + (mi / a.bc1) / (sqrt(vi / a.bc2) + a.eps))));
}

__global__ void adamw_kernel(void* w, DType tw, const void* g, DType tg, void* m, DType tm, void* v, DType tv, int64_t n,
                             AdamWArgs a) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    adamw_update(w, tw, g, tg, m, tm, v, tv, i, a);
}

__global__ void adamw_multi_kernel(const AdamWMultiEntry* entries, const AdamWChunk* chunks, int64_t nchunks,
                                   AdamWArgs a) {
  for (int64_t c = blockIdx.x; c < nchunks; c += gridDim.x) {
    const AdamWChunk ch = chunks[c];
    const AdamWMultiEntry e = entries[ch.tensor];
    const int64_t end = ch.begin + ch.len;
    for (int64_t i = ch.begin + threadIdx.x; i < end; i += blockDim.x)
      adamw_update(e.param, e.tparam, e.grad, e.tgrad, e.m, e.tm, e.v, e.tv, i, a);
  }
}

__global__ void ssq_partial_kernel(const void* x, DType t, int64_t n, double* part) {
  __shared__ double scratch[32];
  double s = 0.0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(kSsqThreads) + threadIdx.x; i < n;
       i += static_cast<int64_t>(kSsqBlocks) * kSsqThreads) {
    const double v = load_as_float(x, t, i);
    s += v * v;
  }
  s = block_sum_d(s, scratch);
  if (threadIdx.x == 0) part[blockIdx.x] = s;
}

__global__ void ssq_final_kernel(const double* part, double* out) {
  if (threadIdx.x != 0) return;
  double s = 0.0;
  for (int b = 0; b < kSsqBlocks; ++b) s += part[b];
  *out = s;
}

}  // namespace

void adamw_step(const Ctx& c, Tensor param, Tensor grad, Tensor m, Tensor v, const AdamWParams& p) {
  check_adamw_step(param, grad, m, v, p);
  const int64_t n = param.numel();
  if (n == 0) return;
  const AdamWArgs a = adamw_args(p);
  const Launch1D l = plan_elementwise(n, c.num_sms);
  adamw_kernel<<<static_cast<unsigned>(l.blocks), l.threads, 0, c.stream>>>(param.data, param.dtype, grad.data, grad.dtype,
                                                                            m.data, m.dtype, v.data, v.dtype, n, a);
  HAYATE_CUDA_CHECK_LAUNCH("adamw_step");
}

std::vector<AdamWMultiEntry> adamw_multi_entries(const std::vector<AdamWTensorRef>& tensors, const AdamWParams& p) {
  const char* op = "adamw_step_multi";
  need(op, p.step >= 1, "step must be >= 1");
  std::vector<AdamWMultiEntry> out;
  out.reserve(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const AdamWTensorRef& t = tensors[i];
    need_float(op, t.param, "param");
    need_float(op, t.grad, "grad");
    need_float(op, t.m, "m");
    need_float(op, t.v, "v");
    const int64_t n = t.param.numel();
    need(op, t.grad.numel() == n && t.m.numel() == n && t.v.numel() == n,
         "tensor " + std::to_string(i) + ": shapes do not match: param " + t.param.shape_str() + ", grad " +
             t.grad.shape_str() + ", m " + t.m.shape_str() + ", v " + t.v.shape_str());
    out.push_back({t.param.data, t.grad.data, t.m.data, t.v.data, n, t.param.dtype, t.grad.dtype, t.m.dtype, t.v.dtype});
  }
  return out;
}

void adamw_step_multi(const Ctx& c, const AdamWMultiEntry* entries, const AdamWChunk* chunks, int64_t nchunks,
                      const AdamWParams& p) {
  if (nchunks == 0) return;
  const Launch1D l = plan_adamw_multi_launch(nchunks, c.num_sms);
  adamw_multi_kernel<<<static_cast<unsigned>(l.blocks), l.threads, 0, c.stream>>>(entries, chunks, nchunks, adamw_args(p));
  HAYATE_CUDA_CHECK_LAUNCH("adamw_step_multi");
}

void sum_squares(const Ctx& c, Tensor x, double* device_result) {
  check_sum_squares(x);
  double* part = static_cast<double*>(c.ws->get(kSsqBlocks * sizeof(double)));
  ssq_partial_kernel<<<kSsqBlocks, kSsqThreads, 0, c.stream>>>(x.data, x.dtype, x.numel(), part);
  HAYATE_CUDA_CHECK_LAUNCH("sum_squares");
  ssq_final_kernel<<<1, 32, 0, c.stream>>>(part, device_result);
  HAYATE_CUDA_CHECK_LAUNCH("sum_squares final");
}

}  // namespace hayate::gpu
