// Chunked lm head + log-softmax + gather for training (logprob_forward / logprob_backward): for one chunk
// of m rows, z = hidden lm_head^T / T is computed by the batch-invariant GEMM into an fp32 [m, V] buffer
// that lives for the chunk only (the caller chunks the rows; full-vocabulary logits never exist for all
// tokens), then one block per row reduces it:
//   forward:  lse = max + log sum exp(z - max), logprob = z[target] - lse,
//             entropy = log sum - sum p (z - max) / sum           (one pass after the max)
//   backward: dz = dlogprob * ([j == target] - exp(z - lse)) into a bf16 [m, V] buffer (the GEMM rounds its
//             operands to bf16 anyway: the same values as before, half the bytes), then dhidden = dz lm_head / T
//             on the NN cp.async path, split-K so the [m, D] output (2 x 16 tiles at m = 128, D = 1024)
//             still fills every SM.
// TODO(perf): fuse the row reduction into the GEMM epilogue (online softmax per tile) so z is never written.
#include "cuda_check.h"
#include "device_utils.cuh"
#include "kernels.h"
#include "variant_stats.h"

namespace hayate::gpu {

namespace {

constexpr int kRowThreads = 1024;

__device__ __forceinline__ float exp_or_zero(float d) { return d >= -87.3f ? expf(d) : 0.0f; }

__global__ void __launch_bounds__(kRowThreads) logprob_rows_kernel(const float* z, int64_t V, const int32_t* targets,
                                                                    void* lp, DType tlp, void* lse, DType tlse, void* ent,
                                                                    DType tent, int* err) {
  __shared__ float fs[32];
  __shared__ double ds[32];
  const int64_t i = blockIdx.x;
  const float* zi = z + i * V;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < V; j += kRowThreads) mx = fmaxf(mx, zi[j]);
  mx = block_max(mx, fs);
  float s = 0.0f, ez = 0.0f;
  for (int64_t j = threadIdx.x; j < V; j += kRowThreads) {
    const float p = exp_or_zero(zi[j] - mx);
    s += p;
    ez += p * (zi[j] - mx);
  }
  const double sum = block_sum_d(s, ds);
  const double ezs = block_sum_d(ez, ds);
  if (threadIdx.x != 0) return;
  const double l = static_cast<double>(mx) + log(sum);
  store_from_float(lse, tlse, i, static_cast<float>(l));
  const int32_t t = targets[i];
  if (t < 0 || t >= V) {
    raise_error(err, kErrTarget);
    store_from_float(lp, tlp, i, NAN);
  } else {
    store_from_float(lp, tlp, i, static_cast<float>(zi[t] - l));
  }
  if (ent) store_from_float(ent, tent, i, static_cast<float>(log(sum) - ezs / sum));
}

// dz[i, j] = g_i ([j == t_i] - exp(z[i, j] - lse_i)), rounded once to bf16 (the GEMM's operand precision).
__global__ void __launch_bounds__(kRowThreads) logprob_grad_kernel(const float* z, bf16* dz, int64_t V,
                                                                    const int32_t* targets, const void* dlp, DType tdl,
                                                                    const void* lse, DType tl, int* err) {
  const int64_t i = blockIdx.x;
  const float* zi = z + i * V;
  bf16* di = dz + i * V;
  const float g = load_as_float(dlp, tdl, i), l = load_as_float(lse, tl, i);
  const int32_t t = targets[i];
  for (int64_t j = threadIdx.x; j < V; j += kRowThreads) {
    const float v = -g * exp_or_zero(zi[j] - l);
    di[j] = __float2bfloat16_rn(j == t ? v + g : v);
  }
  if (threadIdx.x == 0 && (t < 0 || t >= V)) raise_error(err, kErrTarget);
}

}  // namespace

namespace {

// z = inv_temperature * hidden lm_head^T in fp32: the logits both passes work from (the backward
// recomputes them rather than keeping [rows x vocab] alive between the passes).
void scaled_logits(const Ctx& c, Tensor z, Tensor hidden, Tensor lm_head, float inv_temperature) {
  const int64_t m = hidden.rows(), D = hidden.cols(), V = lm_head.rows();
  GemmOperands g;
  g.out = z;
  g.a = hidden.view({m, D});
  g.b = lm_head;
  g.trans_b = true;
  g.alpha = inv_temperature;
  gemm(c, g, {m, V, D}, GemmBackend::Hayate);
}

}  // namespace

void logprob_forward(const Ctx& c, Tensor z, Tensor logprobs, Tensor lse, Tensor entropy, Tensor hidden, Tensor lm_head,
                     Tensor targets, float inv_temperature) {
  const int64_t m = hidden.rows();
  if (m == 0) return;
  scaled_logits(c, z, hidden, lm_head, inv_temperature);
  count_kernel_variant(kVarLogprobFwd);
  logprob_rows_kernel<<<static_cast<unsigned>(m), kRowThreads, 0, c.stream>>>(
      z.as<const float>(), z.cols(), targets.as<const int32_t>(), logprobs.data, logprobs.dtype, lse.data, lse.dtype,
      entropy.empty() ? nullptr : entropy.data, entropy.empty() ? DType::F32 : entropy.dtype, c.err);
  HAYATE_CUDA_CHECK_LAUNCH("logprob_forward rows");
}

void logprob_backward(const Ctx& c, Tensor z, Tensor dz16, Tensor dhidden, Tensor dlogprobs, Tensor hidden,
                      Tensor lm_head, Tensor targets, Tensor lse, float inv_temperature) {
  const int64_t m = hidden.rows(), D = hidden.cols(), V = lm_head.rows();
  if (m == 0) return;
  scaled_logits(c, z, hidden, lm_head, inv_temperature);
  count_kernel_variant(kVarLogprobBwd);
  logprob_grad_kernel<<<static_cast<unsigned>(m), kRowThreads, 0, c.stream>>>(
      z.as<const float>(), dz16.as<bf16>(), V, targets.as<const int32_t>(), dlogprobs.data, dlogprobs.dtype, lse.data,
      lse.dtype, c.err);
  HAYATE_CUDA_CHECK_LAUNCH("logprob_backward rows");
  GemmOperands gb;  // dhidden = inv_t * dz lm_head: NN (lm_head read along its rows with ldmatrix.trans),
  gb.out = dhidden.view({m, D});  // a gradient (not batch-invariant): split-K slices fill the GPU
  gb.a = dz16;
  gb.b = lm_head;
  gb.alpha = inv_temperature;
  gb.invariant = false;
  gemm(c, gb, {m, D, V}, GemmBackend::Hayate);
}

}  // namespace hayate::gpu
