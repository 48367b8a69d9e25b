// Optimizer-side reductions and updates over the LoRA parameters (param dtype, fp32).
//
// adamw_step: PyTorch AdamW (decoupled weight decay, bias correction), elementwise in fp64 exactly as the
// CPU reference writes it; one grid-stride pass reads param/grad/m/v once and writes param/m/v.
// TODO(perf): one launch over every LoRA tensor (a pointer table) instead of one per tensor.
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

__global__ void adamw_kernel(void* w, DType tw, const void* g, DType tg, void* m, DType tm, void* v, DType tv, int64_t n,
                             AdamWArgs a) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const double gi = static_cast<double>(load_as_float(g, tg, i)) * a.grad_scale;
    const double mi = a.beta1 * load_as_float(m, tm, i) + (1.0 - a.beta1) * gi;
    const double vi = a.beta2 * load_as_float(v, tv, i) + (1.0 - a.beta2) * gi * gi;
    store_from_float(m, tm, i, static_cast<float>(mi));
    store_from_float(v, tv, i, static_cast<float>(vi));
    const double wi = load_as_float(w, tw, i);
    store_from_float(w, tw, i, static_cast<float>(wi - a.lr * (a.weight_decay * wi + (mi / a.bc1) / (sqrt(vi / a.bc2) + a.eps))));
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
  const char* op = "adamw_step";
  need_float(op, param, "param");
  need_float(op, grad, "grad");
  need_float(op, m, "m");
  need_float(op, v, "v");
  const int64_t n = param.numel();
  need(op, grad.numel() == n && m.numel() == n && v.numel() == n,
       "shapes do not match: param " + param.shape_str() + ", grad " + grad.shape_str());
  need(op, p.step >= 1, "step must be >= 1");
  if (n == 0) return;
  const AdamWArgs a{p.lr, p.beta1, p.beta2, p.eps, p.weight_decay, p.grad_scale,
                    1.0 - std::pow(p.beta1, static_cast<double>(p.step)), 1.0 - std::pow(p.beta2, static_cast<double>(p.step))};
  const Launch1D l = plan_elementwise(n, c.num_sms);
  adamw_kernel<<<static_cast<unsigned>(l.blocks), l.threads, 0, c.stream>>>(param.data, param.dtype, grad.data, grad.dtype,
                                                                            m.data, m.dtype, v.data, v.dtype, n, a);
  HAYATE_CUDA_CHECK_LAUNCH("adamw_step");
}

void sum_squares(const Ctx& c, Tensor x, double* device_result) {
  need_float("sum_squares", x, "x");
  double* part = static_cast<double*>(c.ws->get(kSsqBlocks * sizeof(double)));
  ssq_partial_kernel<<<kSsqBlocks, kSsqThreads, 0, c.stream>>>(x.data, x.dtype, x.numel(), part);
  HAYATE_CUDA_CHECK_LAUNCH("sum_squares");
  ssq_final_kernel<<<1, 32, 0, c.stream>>>(part, device_result);
  HAYATE_CUDA_CHECK_LAUNCH("sum_squares final");
}

}  // namespace hayate::gpu
