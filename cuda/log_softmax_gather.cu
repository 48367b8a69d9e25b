// log_softmax_gather: out[i] = log_softmax(logits[i, :] * inv_temperature)[targets[i]] (scoring
// completions: one log-prob per row, the full distribution is never written).
//
// A row has V ~ 150k logits but a decode-sized call has few rows, so each row is cut into chunks of
// kLsgChunk (8192) handled by separate blocks (grid = chunks x rows): every block computes an online
// (max, sum of exp) pair for its chunk in one pass (each thread keeps its own pair, rescaling when its
// max grows, then a fixed reduction tree merges them), and a second kernel merges the chunk pairs of a
// row in chunk order and gathers the target. The chunking depends on V only, so a row's result does not
// depend on the batch. A target outside [0, V) raises kErrTarget and yields NaN.
#include <cfloat>

#include "cuda_check.h"
#include "device_utils.cuh"
#include "kernels.h"
#include "variant_stats.h"

namespace hayate::gpu {

namespace {

struct MaxSum {
  float m, s;
};

// Merge two online-softmax pairs (m = running max, s = sum exp(x - m)).
__device__ __forceinline__ MaxSum merge(MaxSum a, MaxSum b) {
  if (a.m == -INFINITY) return b;
  if (b.m == -INFINITY) return a;
  const float m = fmaxf(a.m, b.m);
  return {m, a.s * expf(a.m - m) + b.s * expf(b.m - m)};
}

template <class T>
__global__ void __launch_bounds__(kLsgThreads) lsg_partial_kernel(const T* logits, int64_t V, float inv_t, float2* partial,
                                                                   int64_t chunks) {
  const int64_t row = blockIdx.y, chunk = blockIdx.x;
  const T* z = logits + row * V;
  const int64_t lo = chunk * kLsgChunk, hi = min(V, lo + kLsgChunk);
  MaxSum acc{-INFINITY, 0.0f};
  for (int64_t j = lo + threadIdx.x; j < hi; j += kLsgThreads) {
    const float x = to_float(z[j]) * inv_t;
    if (x > acc.m) {
      acc.s = acc.m == -INFINITY ? 0.0f : acc.s * expf(acc.m - x);
      acc.m = x;
    }
    acc.s += expf(x - acc.m);
  }
  // warp tree, then the warps' pairs in order
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    MaxSum other{__shfl_xor_sync(0xffffffffu, acc.m, o), __shfl_xor_sync(0xffffffffu, acc.s, o)};
    acc = merge(acc, other);
  }
  __shared__ MaxSum warp_pairs[kLsgThreads / 32];
  if (threadIdx.x % 32 == 0) warp_pairs[threadIdx.x / 32] = acc;
  __syncthreads();
  if (threadIdx.x == 0) {
    MaxSum r = warp_pairs[0];
    for (int w = 1; w < kLsgThreads / 32; ++w) r = merge(r, warp_pairs[w]);
    partial[row * chunks + chunk] = make_float2(r.m, r.s);
  }
}

template <class T>
__global__ void lsg_finish_kernel(const T* logits, int64_t V, float inv_t, const float2* partial, int64_t chunks,
                                  const int32_t* targets, float* out, int64_t n, int* err) {
  const int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (row >= n) return;
  MaxSum r{-INFINITY, 0.0f};
  for (int64_t c = 0; c < chunks; ++c) {
    const float2 pc = partial[row * chunks + c];
    r = merge(r, {pc.x, pc.y});
  }
  const int32_t t = targets[row];
  if (t < 0 || t >= V) {
    raise_error(err, kErrTarget);
    out[row] = NAN;
    return;
  }
  out[row] = to_float(logits[row * V + t]) * inv_t - r.m - logf(r.s);
}

template <class T>
void launch(const Ctx& c, Tensor out, Tensor logits, Tensor targets, float inv_t) {
  const int64_t n = logits.rows(), V = logits.cols();
  const int64_t chunks = log_softmax_chunks(V);
  count_kernel_variant(chunks > 1 ? kVarLsgChunked : kVarLsgSingle);
  float2* partial = static_cast<float2*>(c.ws->get(static_cast<size_t>(n * chunks) * sizeof(float2)));
  for (int64_t r0 = 0; r0 < n; r0 += 65535) {  // grid.y is limited to 65535 rows per launch
    const int64_t rn = std::min<int64_t>(65535, n - r0);
    lsg_partial_kernel<T><<<dim3(static_cast<unsigned>(chunks), static_cast<unsigned>(rn)), kLsgThreads, 0, c.stream>>>(
        logits.as<const T>() + r0 * V, V, inv_t, partial + r0 * chunks, chunks);
    HAYATE_CUDA_CHECK_LAUNCH("log_softmax_gather");
  }
  lsg_finish_kernel<T><<<static_cast<unsigned>(ceil_div(n, 128)), 128, 0, c.stream>>>(
      logits.as<const T>(), V, inv_t, partial, chunks, targets.as<const int32_t>(), out.as<float>(), n, c.err);
  HAYATE_CUDA_CHECK_LAUNCH("log_softmax_gather finish");
}

}  // namespace

void log_softmax_gather(const Ctx& c, Tensor out, Tensor logits, Tensor targets, float inv_temperature) {
  check_log_softmax_gather(out, logits, targets);
  if (logits.rows() == 0) return;
  need("log_softmax_gather", logits.cols() > 0, "empty vocabulary");
  if (logits.dtype == DType::F32) {
    launch<float>(c, out, logits, targets, inv_temperature);
  } else {
    launch<bf16>(c, out, logits, targets, inv_temperature);
  }
}

}  // namespace hayate::gpu
