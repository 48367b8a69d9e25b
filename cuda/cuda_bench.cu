// The CUDA side of the kernel benchmark (see cuda_bench.h): cases on qwen3-0.6b shapes, the baselines, and
// CUDA-event timing. The baselines are deliberately straightforward (one thread per output element or per
// row, no tiling, no vectors, no tensor cores): "what the op costs written the obvious way" on the same GPU.
// Sampling is compared with a sort-based top-p sampler (softmax, CUB segmented radix sort, block scans),
// the way frameworks usually implement it. The LoRA projections are compared with the backend's own bare
// base GEMM on the same shape (the target: within 10% of it).
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cmath>
#include <cub/cub.cuh>
#include <functional>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "cuda_backend.h"
#include "cuda_bench.h"
#include "cuda_check.h"
#include "device_utils.cuh"
#include "kernels.h"
#include "rng.h"

namespace hayate::gpu {

namespace {

// ---- inputs -------------------------------------------------------------------------------------------

__device__ __forceinline__ float hash_normalish(uint64_t i, uint64_t seed) {
  // sum of 4 uniforms from splitmix64: roughly normal, mean 0, unit variance
  uint64_t h = splitmix64(i * 0x9e3779b97f4a7c15ull + seed);
  float s = 0.0f;
  for (int k = 0; k < 4; ++k) {
    s += static_cast<float>(h & 0xffff) * (1.0f / 65536.0f);
    h >>= 16;
  }
  return (s - 2.0f) * 1.7320508f;
}

__global__ void fill_random_kernel(void* p, DType t, int64_t n, uint64_t seed, float scale) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    store_from_float(p, t, i, hash_normalish(static_cast<uint64_t>(i), seed) * scale);
}

void fill_random(const Ctx& c, Tensor t, uint64_t seed, float scale) {
  const Launch1D l = plan_elementwise(t.numel(), c.num_sms);
  fill_random_kernel<<<static_cast<unsigned>(l.blocks), l.threads, 0, c.stream>>>(t.data, t.dtype, t.numel(), seed, scale);
  HAYATE_CUDA_CHECK_LAUNCH("fill_random");
}

// ---- naive baselines ------------------------------------------------------------------------------------

__global__ void naive_linear_kernel(const bf16* x, const bf16* w, bf16* out, int64_t M, int64_t N, int64_t K) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= M * N) return;
  const int64_t m = idx / N, n = idx % N;
  float acc = 0.0f;
  for (int64_t k = 0; k < K; ++k) acc += __bfloat162float(x[m * K + k]) * __bfloat162float(w[n * K + k]);
  out[idx] = __float2bfloat16_rn(acc);
}

__global__ void naive_gather_kernel(const bf16* table, const int32_t* ids, bf16* out, int64_t n, int64_t D) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= n * D) return;
  out[idx] = table[static_cast<int64_t>(ids[idx / D]) * D + idx % D];
}

__global__ void naive_rmsnorm_kernel(const bf16* x, const bf16* w, bf16* out, int64_t rows, int64_t D, float eps) {
  const int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (r >= rows) return;
  float ss = 0.0f;
  for (int64_t j = 0; j < D; ++j) {
    const float v = __bfloat162float(x[r * D + j]);
    ss += v * v;
  }
  const float inv = 1.0f / sqrtf(ss / D + eps);
  for (int64_t j = 0; j < D; ++j)
    out[r * D + j] = __float2bfloat16_rn(__bfloat162float(x[r * D + j]) * inv * __bfloat162float(w[j]));
}

__global__ void naive_add_kernel(const bf16* a, const bf16* b, bf16* out, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) out[i] = __float2bfloat16_rn(__bfloat162float(a[i]) + __bfloat162float(b[i]));
}

__global__ void naive_swiglu_kernel(const bf16* g, const bf16* u, bf16* out, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const float x = __bfloat162float(g[i]);
  out[i] = __float2bfloat16_rn(x / (1.0f + expf(-x)) * __bfloat162float(u[i]));
}

__global__ void naive_rope_kernel(bf16* x, const int32_t* pos, const float* cs, int64_t n, int heads, int hd) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= n * heads) return;
  const int64_t i = idx / heads;
  const int half = hd / 2;
  bf16* v = x + idx * hd;
  const float* c = cs + static_cast<int64_t>(pos[i]) * hd;
  for (int j = 0; j < half; ++j) {
    const float a = __bfloat162float(v[j]), b = __bfloat162float(v[j + half]);
    v[j] = __float2bfloat16_rn(a * c[j] - b * c[half + j]);
    v[j + half] = __float2bfloat16_rn(b * c[j] + a * c[half + j]);
  }
}

__global__ void naive_kv_store_kernel(bf16* kc, bf16* vc, const bf16* k, const bf16* v, const int32_t* slots, int64_t n,
                                      int64_t W) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= n * W) return;
  const int64_t dst = static_cast<int64_t>(slots[idx / W]) * W + idx % W;
  kc[dst] = k[idx];
  vc[dst] = v[idx];
}

// One thread per (query row, q head): a serial online softmax over the row's positions.
__global__ void naive_attention_kernel(const bf16* q, const bf16* kc, const bf16* vc, bf16* out, const int32_t* tables,
                                       const int32_t* tseq, const int32_t* tpos, int64_t n, int max_blocks, int bs, int hq,
                                       int hkv, int hd, float scale) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= n * hq) return;
  const int64_t i = idx / hq;
  const int h = static_cast<int>(idx % hq), kvh = h / (hq / hkv);
  const bf16* qi = q + idx * hd;
  float acc[kAttnMaxHeadDim];
  for (int d = 0; d < hd; ++d) acc[d] = 0.0f;
  float m = -INFINITY, l = 0.0f;
  for (int p = 0; p <= tpos[i]; ++p) {
    const int64_t row = static_cast<int64_t>(tables[tseq[i] * max_blocks + p / bs]) * bs + p % bs;
    const bf16* kr = kc + (row * hkv + kvh) * hd;
    const bf16* vr = vc + (row * hkv + kvh) * hd;
    float s = 0.0f;
    for (int d = 0; d < hd; ++d) s += __bfloat162float(qi[d]) * __bfloat162float(kr[d]);
    s *= scale;
    const float mn = fmaxf(m, s), a = expf(m - mn), e = expf(s - mn);
    l = l * a + e;
    for (int d = 0; d < hd; ++d) acc[d] = acc[d] * a + e * __bfloat162float(vr[d]);
    m = mn;
  }
  for (int d = 0; d < hd; ++d) out[idx * hd + d] = __float2bfloat16_rn(acc[d] / l);
}

__global__ void naive_lsg_kernel(const float* z, const int32_t* t, float* out, int64_t n, int64_t V) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  float mx = -INFINITY;
  for (int64_t j = 0; j < V; ++j) mx = fmaxf(mx, z[i * V + j]);
  float s = 0.0f;
  for (int64_t j = 0; j < V; ++j) s += expf(z[i * V + j] - mx);
  out[i] = z[i * V + t[i]] - mx - logf(s);
}

// AdamW over one fp32 tensor in fp32 arithmetic (grad_scale 1), thread per element.
__global__ void naive_adamw_kernel(float* w, const float* g, float* m, float* v, int64_t n, float lr, float b1, float b2,
                                   float eps, float wd, float bc1, float bc2) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const float mi = b1 * m[i] + (1.0f - b1) * g[i], vi = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
  m[i] = mi;
  v[i] = vi;
  w[i] -= lr * (wd * w[i] + (mi / bc1) / (sqrtf(vi / bc2) + eps));
}

// ---- unfused training attention (baseline of attention_forward / attention_backward) ----------------------
// Sequences of one length L packed back to back (S x L rows); the scores of every (sequence, q head) are
// materialised as fp32 [S][hq][L][L] (P, and dS in the backward): the textbook three-kernel forward and a
// kernel per gradient, one thread per output element.

__device__ __forceinline__ float dot_bf16(const bf16* a, const bf16* b, int hd) {
  float s = 0.0f;
  for (int d = 0; d < hd; ++d) s += __bfloat162float(a[d]) * __bfloat162float(b[d]);
  return s;
}

struct NaiveAttn {
  int S, L, hq, hkv, hd;
  float scale;
  __device__ int group() const { return hq / hkv; }
  // element idx of the [S][hq][L][L] score tensor -> (s, h, i, j)
  __device__ void split(int64_t idx, int& s, int& h, int& i, int& j) const {
    j = static_cast<int>(idx % L);
    i = static_cast<int>((idx / L) % L);
    h = static_cast<int>((idx / (int64_t(L) * L)) % hq);
    s = static_cast<int>(idx / (int64_t(L) * L * hq));
  }
  __device__ int64_t qoff(int s, int i, int h) const { return ((int64_t(s) * L + i) * hq + h) * hd; }
  __device__ int64_t kvoff(int s, int j, int kvh) const { return ((int64_t(s) * L + j) * hkv + kvh) * hd; }
  __device__ int64_t sc(int s, int h, int i, int j) const { return ((int64_t(s) * hq + h) * L + i) * L + j; }
};

__global__ void naive_attn_scores_kernel(NaiveAttn a, const bf16* q, const bf16* k, float* sc) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= int64_t(a.S) * a.hq * a.L * a.L) return;
  int s, h, i, j;
  a.split(idx, s, h, i, j);
  sc[idx] = j > i ? -INFINITY : dot_bf16(q + a.qoff(s, i, h), k + a.kvoff(s, j, h / a.group()), a.hd) * a.scale;
}

__global__ void naive_attn_softmax_kernel(NaiveAttn a, float* sc, float* lse) {
  const int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;  // (s, h, i)
  if (r >= int64_t(a.S) * a.hq * a.L) return;
  const int i = static_cast<int>(r % a.L), h = static_cast<int>((r / a.L) % a.hq), s = static_cast<int>(r / (int64_t(a.L) * a.hq));
  float* row = sc + r * a.L;
  float m = -INFINITY;
  for (int j = 0; j <= i; ++j) m = fmaxf(m, row[j]);
  float sum = 0.0f;
  for (int j = 0; j <= i; ++j) sum += expf(row[j] - m);
  for (int j = 0; j < a.L; ++j) row[j] = j <= i ? expf(row[j] - m) / sum : 0.0f;
  lse[(int64_t(s) * a.L + i) * a.hq + h] = m + logf(sum);
}

__global__ void naive_attn_pv_kernel(NaiveAttn a, const float* P, const bf16* v, bf16* out) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;  // (s, i, h, d)
  if (idx >= int64_t(a.S) * a.L * a.hq * a.hd) return;
  const int d = static_cast<int>(idx % a.hd), h = static_cast<int>((idx / a.hd) % a.hq);
  const int64_t row = idx / (int64_t(a.hd) * a.hq);
  const int s = static_cast<int>(row / a.L), i = static_cast<int>(row % a.L);
  float acc = 0.0f;
  for (int j = 0; j <= i; ++j) acc += P[a.sc(s, h, i, j)] * __bfloat162float(v[a.kvoff(s, j, h / a.group()) + d]);
  out[idx] = __float2bfloat16_rn(acc);
}

__global__ void naive_attn_probs_kernel(NaiveAttn a, const bf16* q, const bf16* k, const float* lse, float* P) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= int64_t(a.S) * a.hq * a.L * a.L) return;
  int s, h, i, j;
  a.split(idx, s, h, i, j);
  P[idx] = j > i ? 0.0f
                 : expf(dot_bf16(q + a.qoff(s, i, h), k + a.kvoff(s, j, h / a.group()), a.hd) * a.scale -
                        lse[(int64_t(s) * a.L + i) * a.hq + h]);
}

__global__ void naive_attn_delta_kernel(NaiveAttn a, const bf16* dout, const bf16* out, float* D) {
  const int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;  // (row, h)
  if (r >= int64_t(a.S) * a.L * a.hq) return;
  D[r] = dot_bf16(dout + r * a.hd, out + r * a.hd, a.hd);
}

__global__ void naive_attn_ds_kernel(NaiveAttn a, const float* P, const bf16* dout, const bf16* v, const float* D, float* dS) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= int64_t(a.S) * a.hq * a.L * a.L) return;
  int s, h, i, j;
  a.split(idx, s, h, i, j);
  dS[idx] = j > i ? 0.0f
                  : P[idx] * (dot_bf16(dout + a.qoff(s, i, h), v + a.kvoff(s, j, h / a.group()), a.hd) -
                              D[(int64_t(s) * a.L + i) * a.hq + h]);
}

// dv (use_q = false: sum_i P_ij dout_i) or dk (scale sum_i dS_ij q_i), summed over the group's q heads.
__global__ void naive_attn_dkv_kernel(NaiveAttn a, const float* M, const bf16* x, bf16* out, float mul) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;  // (s, j, kvh, d)
  if (idx >= int64_t(a.S) * a.L * a.hkv * a.hd) return;
  const int d = static_cast<int>(idx % a.hd), kvh = static_cast<int>((idx / a.hd) % a.hkv);
  const int64_t row = idx / (int64_t(a.hd) * a.hkv);
  const int s = static_cast<int>(row / a.L), j = static_cast<int>(row % a.L);
  float acc = 0.0f;
  for (int h = kvh * a.group(); h < (kvh + 1) * a.group(); ++h)
    for (int i = j; i < a.L; ++i) acc += M[a.sc(s, h, i, j)] * __bfloat162float(x[a.qoff(s, i, h) + d]);
  out[idx] = __float2bfloat16_rn(acc * mul);
}

__global__ void naive_attn_dq_kernel(NaiveAttn a, const float* dS, const bf16* k, bf16* dq) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;  // (s, i, h, d)
  if (idx >= int64_t(a.S) * a.L * a.hq * a.hd) return;
  const int d = static_cast<int>(idx % a.hd), h = static_cast<int>((idx / a.hd) % a.hq);
  const int64_t row = idx / (int64_t(a.hd) * a.hq);
  const int s = static_cast<int>(row / a.L), i = static_cast<int>(row % a.L);
  float acc = 0.0f;
  for (int j = 0; j <= i; ++j) acc += dS[a.sc(s, h, i, j)] * __bfloat162float(k[a.kvoff(s, j, h / a.group()) + d]);
  dq[idx] = __float2bfloat16_rn(acc * a.scale);
}

// ---- sort-based top-p sampler (baseline) ---------------------------------------------------------------

constexpr int kSortThreads = 1024;

__global__ void softmax_rows_kernel(const float* z, int64_t V, float inv_t, float* probs, int32_t* ids) {
  __shared__ float fs[32];
  __shared__ double ds[32];
  const int64_t b = blockIdx.x;
  float m = -INFINITY;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) m = fmaxf(m, z[b * V + j] * inv_t);
  m = block_max(m, fs);
  float s = 0.0f;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) s += expf(z[b * V + j] * inv_t - m);
  const float inv = static_cast<float>(1.0 / block_sum_d(s, ds));
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
    probs[b * V + j] = expf(z[b * V + j] * inv_t - m) * inv;
    ids[b * V + j] = static_cast<int32_t>(j);
  }
}

// First index (in sorted order) where the running sum reaches `goal` (>= when ge, > otherwise), and the
// running sum there; chunked block scans over the sorted probabilities.
__device__ void sorted_find(const float* ps, int64_t V, float goal, bool ge, int64_t* idx, float* cum, float* sh_w,
                            int* sh_hit) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  float carry = 0.0f;
  for (int64_t base = 0; base < V; base += kSortThreads) {
    const int64_t j = base + threadIdx.x;
    float x = j < V ? ps[j] : 0.0f;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const float y = __shfl_up_sync(0xffffffffu, x, o);
      if (lane >= o) x += y;
    }
    if (lane == 31) sh_w[warp] = x;
    if (threadIdx.x == 0) *sh_hit = INT_MAX;
    __syncthreads();
    if (warp == 0) {
      float w = sh_w[lane];
#pragma unroll
      for (int o = 1; o < 32; o <<= 1) {
        const float y = __shfl_up_sync(0xffffffffu, w, o);
        if (lane >= o) w += y;
      }
      sh_w[lane] = w;  // inclusive warp totals
    }
    __syncthreads();
    const float incl = carry + (warp > 0 ? sh_w[warp - 1] : 0.0f) + x;
    if (j < V && (ge ? incl >= goal : incl > goal)) atomicMin(sh_hit, threadIdx.x);
    __syncthreads();
    if (*sh_hit != INT_MAX) {
      if (threadIdx.x == *sh_hit) {
        *idx = j;
        *cum = incl;
      }
      __syncthreads();
      return;
    }
    carry += sh_w[31];
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    *idx = V - 1;
    *cum = carry;
  }
  __syncthreads();
}

__global__ void sorted_topp_draw_kernel(const float* ps, const int32_t* ids, int64_t V, float top_p,
                                        const DeviceSamplingRow* rows, int32_t* out) {
  __shared__ float sh_w[32];
  __shared__ int sh_hit;
  __shared__ int64_t cut_idx, draw_idx;
  __shared__ float cut_mass, draw_cum;
  const int64_t b = blockIdx.x;
  const float* p = ps + b * V;
  sorted_find(p, V, top_p, true, &cut_idx, &cut_mass, sh_w, &sh_hit);  // the nucleus
  __syncthreads();
  const float u = rng_uniform(rows[b].seed, rows[b].step);
  sorted_find(p, cut_idx + 1, u * cut_mass, false, &draw_idx, &draw_cum, sh_w, &sh_hit);
  __syncthreads();
  if (threadIdx.x == 0) out[b] = ids[b * V + draw_idx];
}

// ---- timing --------------------------------------------------------------------------------------------

KernelBenchResult mk(const std::string& op, const std::string& label, const std::string& shape, const std::string& metric,
                     double work) {
  KernelBenchResult r;
  r.op = op;
  r.label = label;
  r.shape = shape;
  r.metric = metric;
  r.work = work;
  return r;
}

struct Timer {
  cudaStream_t s;
  int repeats;
  // Median per call over `repeats` samples after warm-up; each sample runs enough calls for ~0.5 ms.
  double median_ms(const std::function<void()>& fn) {
    fn();
    fn();
    HAYATE_CUDA_CHECK(cudaStreamSynchronize(s));
    cudaEvent_t a, b;
    HAYATE_CUDA_CHECK(cudaEventCreate(&a));
    HAYATE_CUDA_CHECK(cudaEventCreate(&b));
    auto sample = [&](int inner) {
      HAYATE_CUDA_CHECK(cudaEventRecord(a, s));
      for (int i = 0; i < inner; ++i) fn();
      HAYATE_CUDA_CHECK(cudaEventRecord(b, s));
      HAYATE_CUDA_CHECK(cudaEventSynchronize(b));
      float ms = 0;
      HAYATE_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
      return static_cast<double>(ms) / inner;
    };
    const double once = sample(1);
    const int inner = static_cast<int>(std::min(200.0, std::max(1.0, 0.5 / std::max(once, 1e-4))));
    std::vector<double> t;
    for (int r = 0; r < std::max(repeats, 1); ++r) t.push_back(sample(inner));
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
  }
  // Host wall time (ops that synchronise internally, e.g. sample()).
  double median_wall_ms(const std::function<void()>& fn) {
    fn();
    HAYATE_CUDA_CHECK(cudaStreamSynchronize(s));
    std::vector<double> t;
    for (int r = 0; r < std::max(repeats, 3); ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      fn();
      HAYATE_CUDA_CHECK(cudaStreamSynchronize(s));
      t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
  }
};

unsigned blocks_for(int64_t n, int threads = 256) { return static_cast<unsigned>(ceil_div(std::max<int64_t>(n, 1), threads)); }

std::string dims(std::initializer_list<int64_t> d) {
  std::string s = "[";
  for (int64_t v : d) s += (s.size() > 1 ? "," : "") + std::to_string(v);
  return s + "]";
}

}  // namespace

std::vector<KernelBenchResult> cuda_kernel_bench(const std::vector<std::string>& ops, int repeats,
                                                 KernelBenchDevice* device, const std::vector<std::string>& shapes) {
  check_kernel_bench_ops(ops);
  auto wanted = [&](const char* op) { return ops.empty() || std::find(ops.begin(), ops.end(), op) != ops.end(); };

  BackendOptions bo;
  bo.kind = "cuda";
  std::unique_ptr<Backend> owner = make_cuda_backend(bo);
  CudaBackend& be = static_cast<CudaBackend&>(*owner);
  if (device) {
    device->name = be.device_name();
    device->peak_gbs = be.peak_memory_bandwidth_gbs();
    device->sms = be.sm_count();
    device->cc = be.compute_capability();
  }
  Ctx c;
  c.stream = static_cast<cudaStream_t>(be.stream_handle());
  c.num_sms = be.sm_count();
  Timer timer{c.stream, repeats};
  std::vector<KernelBenchResult> res;
  const DType B16 = DType::BF16;
  auto rand_buf = [&](DType dt, std::initializer_list<int64_t> shape, uint64_t seed, float scale) {
    Buffer b(be, dt, shape);
    fill_random(c, b, seed, scale);
    return b;
  };

  // qwen3-0.6b: hidden 1024, intermediate 3072, 16 q heads / 8 kv heads of 128, vocabulary 151936
  if (wanted("linear")) {
    struct Proj {
      const char* name;
      int64_t N, K;
    };
    const Proj projs[] = {{"q_proj", 2048, 1024}, {"gate_proj", 3072, 1024}, {"down_proj", 1024, 3072},
                          {"lm_head", 151936, 1024}};
    for (const Proj& pj : projs) {
      Buffer w = rand_buf(B16, {pj.N, pj.K}, 2, 0.02f);
      for (int64_t M : {1, 64, 512, 2048}) {
        if (pj.N > 100000 && M > 64) continue;
        Buffer x = rand_buf(B16, {M, pj.K}, 1, 1.0f), out(be, B16, {M, pj.N});
        KernelBenchResult r;
        r.op = "linear";
        r.label = std::string(pj.name) + " M=" + std::to_string(M);
        r.shape = dims({M, pj.K}) + "x" + dims({pj.N, pj.K}) + "^T";
        r.metric = "TFLOP/s";
        r.work = 2.0 * M * pj.N * pj.K;
        r.ms = timer.median_ms([&] { be.linear(out, x, w, {}); });
        r.baseline = "naive kernel (thread per output)";
        r.baseline_ms = timer.median_ms([&] {
          naive_linear_kernel<<<blocks_for(M * pj.N), 256, 0, c.stream>>>(x.t().as<const bf16>(), w.t().as<const bf16>(),
                                                                          out.t().as<bf16>(), M, pj.N, pj.K);
        });
        if (CudaBackend::cublas_compiled()) {
          be.set_gemm_impl(CudaBackend::GemmImpl::Cublas);
          r.baseline2 = "cuBLAS cublasGemmEx";
          r.baseline2_ms = timer.median_ms([&] { be.linear(out, x, w, {}); });
          be.set_gemm_impl(CudaBackend::GemmImpl::Hayate);
        }
        res.push_back(r);
      }
    }
  }

  if (wanted("lora_linear") || wanted("lora_linear_backward")) {
    const int64_t rank = kLoraBenchRank;
    const DType P = be.param_dtype();
    for (const LoraBenchCase& lc : lora_bench_cases()) {
      const int64_t M = lc.M, N = lc.N, K = lc.K;
      Buffer x = rand_buf(B16, {M, K}, 1, 1.0f), w = rand_buf(B16, {N, K}, 2, 0.02f), dout = rand_buf(B16, {M, N}, 26, 1.0f);
      Buffer a = rand_buf(P, {rank, K}, 24, 0.02f), b = rand_buf(P, {N, rank}, 25, 0.02f);
      Buffer da = rand_buf(P, {rank, K}, 27, 0.0f), db = rand_buf(P, {N, rank}, 28, 0.0f);
      Buffer out(be, B16, {M, N}), xa(be, B16, {M, rank}), dx(be, B16, {M, K});
      if (wanted("lora_linear")) {
        KernelBenchResult r = lora_bench_result(lc, false);
        r.ms = timer.median_ms([&] { be.lora_linear(out, xa, x, w, {}, a, b, kLoraBenchScale); });
        r.baseline_ms = timer.median_ms([&] { be.linear(out, x, w, {}); });
        res.push_back(r);
      }
      if (wanted("lora_linear_backward")) {
        KernelBenchResult r = lora_bench_result(lc, true);
        r.ms = timer.median_ms([&] { be.lora_linear_backward(dx, da, db, dout, x, xa, w, a, b, kLoraBenchScale, false); });
        r.baseline_ms = timer.median_ms([&] { be.lora_linear_backward(dx, {}, {}, dout, {}, {}, w, {}, {}, kLoraBenchScale, false); });
        res.push_back(r);
      }
    }
  }

  if (wanted("embedding")) {
    const int64_t V = 151936, D = 1024, n = 2048;
    Buffer table = rand_buf(B16, {V, D}, 3, 1.0f), out(be, B16, {n, D});
    std::vector<int32_t> ids(n);
    for (int64_t i = 0; i < n; ++i) ids[i] = static_cast<int32_t>((i * 7919) % V);
    Buffer gid(be, DType::I32, {n});
    be.copy_from_host(gid.t().data, ids.data(), n * 4);
    KernelBenchResult r = mk("embedding", "gather 2048 rows", dims({V, D}) + "[ids " + std::to_string(n) + "]", "GB/s",
                        2.0 * n * D * 2);
    r.ms = timer.median_ms([&] { be.embedding(out, table, gid); });
    r.baseline = "naive kernel (thread per element)";
    r.baseline_ms = timer.median_ms([&] {
      naive_gather_kernel<<<blocks_for(n * D), 256, 0, c.stream>>>(table.t().as<const bf16>(), gid.t().as<const int32_t>(),
                                                                   out.t().as<bf16>(), n, D);
    });
    res.push_back(r);
  }

  if (wanted("rmsnorm")) {
    struct RCase {
      int64_t rows, D;
      const char* label;
    };
    for (const RCase& rc : {RCase{2048, 1024, "hidden 2048 rows"}, RCase{64, 1024, "hidden 64 rows"},
                            RCase{2048 * 16, 128, "q heads (qk-norm) 2048 tokens"}}) {
      const int64_t rows = rc.rows, D = rc.D;
      const char* label = rc.label;
      Buffer x = rand_buf(B16, {rows, D}, 4, 1.0f), w = rand_buf(B16, {D}, 5, 1.0f), out(be, B16, {rows, D});
      KernelBenchResult r = mk("rmsnorm", label, dims({rows, D}), "GB/s", 2.0 * rows * D * 2 + D * 2);
      r.ms = timer.median_ms([&] { be.rmsnorm(out, x, w, 1e-6f); });
      r.baseline = "naive kernel (thread per row)";
      r.baseline_ms = timer.median_ms([&] {
        naive_rmsnorm_kernel<<<blocks_for(rows), 256, 0, c.stream>>>(x.t().as<const bf16>(), w.t().as<const bf16>(),
                                                                     out.t().as<bf16>(), rows, D, 1e-6f);
      });
      res.push_back(r);
    }
  }

  if (wanted("add") || wanted("swiglu")) {
    const int64_t n = 2048 * 3072;
    Buffer a = rand_buf(B16, {n}, 6, 1.0f), b = rand_buf(B16, {n}, 7, 1.0f), out(be, B16, {n});
    if (wanted("add")) {
      KernelBenchResult r = mk("add", "2048 x 3072", dims({n}), "GB/s", 3.0 * n * 2);
      r.ms = timer.median_ms([&] { be.add(out, a, b); });
      r.baseline = "naive kernel (scalar, thread per element)";
      r.baseline_ms = timer.median_ms([&] {
        naive_add_kernel<<<blocks_for(n), 256, 0, c.stream>>>(a.t().as<const bf16>(), b.t().as<const bf16>(), out.t().as<bf16>(), n);
      });
      res.push_back(r);
    }
    if (wanted("swiglu")) {
      KernelBenchResult r = mk("swiglu", "2048 x 3072", dims({n}), "GB/s", 3.0 * n * 2);
      r.ms = timer.median_ms([&] { be.swiglu(out, a, b); });
      r.baseline = "naive kernel (scalar, thread per element)";
      r.baseline_ms = timer.median_ms([&] {
        naive_swiglu_kernel<<<blocks_for(n), 256, 0, c.stream>>>(a.t().as<const bf16>(), b.t().as<const bf16>(), out.t().as<bf16>(), n);
      });
      res.push_back(r);
    }
  }

  if (wanted("rope")) {
    const int64_t n = 2048, H = 16, hd = 128, max_pos = 4096;
    Buffer x = rand_buf(B16, {n, H * hd}, 8, 1.0f), cs = rand_buf(DType::F32, {max_pos, hd}, 9, 0.5f);
    std::vector<int32_t> pos(n);
    for (int64_t i = 0; i < n; ++i) pos[i] = static_cast<int32_t>(i);
    Buffer gp(be, DType::I32, {n});
    be.copy_from_host(gp.t().data, pos.data(), n * 4);
    KernelBenchResult r = mk("rope", "q of 2048 tokens", dims({n, H * hd}), "GB/s", 2.0 * n * H * hd * 2 + 4.0 * n * hd);
    r.ms = timer.median_ms([&] { be.rope(x, gp, cs, static_cast<int>(hd)); });
    r.baseline = "naive kernel (thread per head)";
    r.baseline_ms = timer.median_ms([&] {
      naive_rope_kernel<<<blocks_for(n * H), 256, 0, c.stream>>>(x.t().as<bf16>(), gp.t().as<const int32_t>(),
                                                                  cs.t().as<const float>(), n, static_cast<int>(H), static_cast<int>(hd));
    });
    res.push_back(r);
  }

  if (wanted("kv_store")) {
    const int64_t n = 2048, W = 1024, rows = 4096;
    Buffer k = rand_buf(B16, {n, W}, 10, 1.0f), v = rand_buf(B16, {n, W}, 11, 1.0f);
    Buffer kc(be, B16, {rows, W}), vc(be, B16, {rows, W});
    std::vector<int32_t> slots(n);
    for (int64_t i = 0; i < n; ++i) slots[i] = static_cast<int32_t>((i * 3) % rows);
    Buffer gs(be, DType::I32, {n});
    be.copy_from_host(gs.t().data, slots.data(), n * 4);
    KernelBenchResult r = mk("kv_store", "2048 tokens", dims({n, W}), "GB/s", 4.0 * n * W * 2);
    r.ms = timer.median_ms([&] { be.kv_store(kc, vc, k, v, gs); });
    r.baseline = "naive kernel (thread per element)";
    r.baseline_ms = timer.median_ms([&] {
      naive_kv_store_kernel<<<blocks_for(n * W), 256, 0, c.stream>>>(kc.t().as<bf16>(), vc.t().as<bf16>(), k.t().as<const bf16>(),
                                                                     v.t().as<const bf16>(), gs.t().as<const int32_t>(), n, W);
    });
    res.push_back(r);
  }

  if (wanted("paged_attention")) {
    const int hq = 16, hkv = 8, hd = 128, bs = 16;
    struct Case {
      const char* label;
      int seqs, ctx;
      bool prefill;
    };
    for (const Case& cs : {Case{"decode B=64 ctx=512", 64, 512, false}, Case{"decode B=64 ctx=2048", 64, 2048, false},
                           Case{"decode B=8 ctx=4096", 8, 4096, false}, Case{"prefill 4 x 512", 4, 512, true}}) {
      const PagedAttentionBenchLayout L = paged_attention_bench_layout(cs.seqs, cs.ctx, cs.prefill, bs, hq, hd);
      const int max_blocks = L.max_blocks;
      const int64_t cache_rows = L.cache_rows;
      const std::vector<int32_t>&tables = L.tables, &seq = L.seq, &pos = L.pos;
      const double kv_positions = L.kv_positions, flops = L.flops;
      const int64_t n = static_cast<int64_t>(seq.size());
      Buffer q = rand_buf(B16, {n, int64_t(hq) * hd}, 12, 1.0f), out(be, B16, {n, int64_t(hq) * hd});
      Buffer kc = rand_buf(B16, {cache_rows, int64_t(hkv) * hd}, 13, 1.0f), vc = rand_buf(B16, {cache_rows, int64_t(hkv) * hd}, 14, 1.0f);
      Buffer gt(be, DType::I32, {cs.seqs, max_blocks}), gseq(be, DType::I32, {n}), gpos(be, DType::I32, {n});
      be.copy_from_host(gt.t().data, tables.data(), tables.size() * 4);
      be.copy_from_host(gseq.t().data, seq.data(), n * 4);
      be.copy_from_host(gpos.t().data, pos.data(), n * 4);
      AttentionMeta m;
      m.block_tables = gt;
      m.token_seq = gseq;
      m.token_pos = gpos;
      m.block_size = bs;
      m.num_q_heads = hq;
      m.num_kv_heads = hkv;
      m.head_dim = hd;
      m.scale = 1.0f / std::sqrt(static_cast<float>(hd));
      KernelBenchResult r;
      r.op = "paged_attention";
      r.label = cs.label;
      r.shape = "q " + dims({n, int64_t(hq) * hd}) + ", kv heads " + std::to_string(hkv) + ", head_dim " + std::to_string(hd);
      if (cs.prefill) {
        r.metric = "TFLOP/s";
        r.work = flops;
      } else {
        r.metric = "GB/s";
        r.work = kv_positions * hkv * hd * 2 * 2 + 2.0 * n * hq * hd * 2;  // K and V once per sequence, q, out
      }
      r.ms = timer.median_ms([&] { be.paged_attention(out, q, kc, vc, m); });
      r.baseline = "naive kernel (thread per query head, serial online softmax)";
      r.baseline_ms = timer.median_ms([&] {
        naive_attention_kernel<<<blocks_for(n * hq, 128), 128, 0, c.stream>>>(
            q.t().as<const bf16>(), kc.t().as<const bf16>(), vc.t().as<const bf16>(), out.t().as<bf16>(),
            gt.t().as<const int32_t>(), gseq.t().as<const int32_t>(), gpos.t().as<const int32_t>(), n, max_blocks, bs, hq,
            hkv, hd, m.scale);
      });
      res.push_back(r);
    }
  }

  if (wanted("attention_forward") || wanted("attention_backward")) {
    const std::vector<std::string> list = shapes.empty() ? default_attention_bench_shapes() : shapes;
    Timer slow{c.stream, std::min(repeats, 3)};  // the unfused baselines take up to seconds per call at L = 2048
    for (const std::string& sh : list) {
      const AttentionBenchShape a = parse_attention_bench_shape(sh);
      const int64_t n = int64_t(a.seqs) * a.seqlen, qw = int64_t(a.hq) * a.hd, kw = int64_t(a.hkv) * a.hd;
      Buffer q = rand_buf(B16, {n, qw}, 20, 1.0f), k = rand_buf(B16, {n, kw}, 21, 1.0f), v = rand_buf(B16, {n, kw}, 22, 1.0f);
      Buffer dout = rand_buf(B16, {n, qw}, 23, 1.0f), out(be, B16, {n, qw}), lse(be, DType::F32, {n, a.hq});
      Buffer dq(be, B16, {n, qw}), dk(be, B16, {n, kw}), dv(be, B16, {n, kw});
      std::vector<int32_t> cu;
      for (int s = 0; s <= a.seqs; ++s) cu.push_back(s * a.seqlen);
      Buffer gcu(be, DType::I32, {a.seqs + 1});
      be.copy_from_host(gcu.t().data, cu.data(), cu.size() * 4);
      VarlenMeta m;
      m.cu_seqlens = gcu;
      m.max_seqlen = a.seqlen;
      m.num_q_heads = a.hq;
      m.num_kv_heads = a.hkv;
      m.head_dim = a.hd;
      m.scale = 1.0f / std::sqrt(static_cast<float>(a.hd));
      NaiveAttn na{a.seqs, a.seqlen, a.hq, a.hkv, a.hd, m.scale};
      const int64_t scores = int64_t(a.seqs) * a.hq * a.seqlen * a.seqlen;
      // causal FLOPs: 2 products of 2 FLOPs per (i, j <= i) pair and head dim; the backward has 5 products
      const double fwd_flops = 4.0 * a.hd * a.hq * a.seqs * (double(a.seqlen) * (a.seqlen + 1) / 2);
      const std::string shape = "q " + dims({n, qw}) + ", " + std::to_string(a.seqs) + " seqs x " +
                                std::to_string(a.seqlen) + ", kv heads " + std::to_string(a.hkv) + ", head_dim " +
                                std::to_string(a.hd);
      Buffer P(be, DType::F32, {scores}), dS, D;
      be.attention_forward(out, lse, q, k, v, m);
      if (wanted("attention_forward")) {
        KernelBenchResult r = mk("attention_forward", sh, shape, "TFLOP/s", fwd_flops);
        r.ms = timer.median_ms([&] { be.attention_forward(out, lse, q, k, v, m); });
        r.baseline = "unfused: scores kernel + softmax kernel + PV kernel, fp32 [S,hq,L,L] scores in memory";
        r.baseline_ms = slow.median_ms([&] {
          naive_attn_scores_kernel<<<blocks_for(scores), 256, 0, c.stream>>>(na, q.t().as<const bf16>(), k.t().as<const bf16>(), P.t().as<float>());
          naive_attn_softmax_kernel<<<blocks_for(int64_t(a.seqs) * a.hq * a.seqlen, 128), 128, 0, c.stream>>>(na, P.t().as<float>(), lse.t().as<float>());
          naive_attn_pv_kernel<<<blocks_for(n * qw), 256, 0, c.stream>>>(na, P.t().as<const float>(), v.t().as<const bf16>(), out.t().as<bf16>());
        });
        res.push_back(r);
        be.attention_forward(out, lse, q, k, v, m);  // the fused op's lse/out for the backward below
      }
      if (wanted("attention_backward")) {
        dS = Buffer(be, DType::F32, {scores});
        D = Buffer(be, DType::F32, {n * a.hq});
        KernelBenchResult r = mk("attention_backward", sh, shape, "TFLOP/s", 2.5 * fwd_flops);
        r.ms = timer.median_ms([&] { be.attention_backward(dq, dk, dv, dout, q, k, v, out, lse, m); });
        r.baseline = "unfused: P and dS kernels (fp32 [S,hq,L,L] in memory) + one kernel per gradient";
        r.baseline_ms = slow.median_ms([&] {
          naive_attn_probs_kernel<<<blocks_for(scores), 256, 0, c.stream>>>(na, q.t().as<const bf16>(), k.t().as<const bf16>(),
                                                                          lse.t().as<const float>(), P.t().as<float>());
          naive_attn_delta_kernel<<<blocks_for(n * a.hq), 256, 0, c.stream>>>(na, dout.t().as<const bf16>(), out.t().as<const bf16>(), D.t().as<float>());
          naive_attn_ds_kernel<<<blocks_for(scores), 256, 0, c.stream>>>(na, P.t().as<const float>(), dout.t().as<const bf16>(),
                                                                       v.t().as<const bf16>(), D.t().as<const float>(), dS.t().as<float>());
          naive_attn_dkv_kernel<<<blocks_for(n * kw), 256, 0, c.stream>>>(na, P.t().as<const float>(), dout.t().as<const bf16>(), dv.t().as<bf16>(), 1.0f);
          naive_attn_dkv_kernel<<<blocks_for(n * kw), 256, 0, c.stream>>>(na, dS.t().as<const float>(), q.t().as<const bf16>(), dk.t().as<bf16>(), m.scale);
          naive_attn_dq_kernel<<<blocks_for(n * qw), 256, 0, c.stream>>>(na, dS.t().as<const float>(), k.t().as<const bf16>(), dq.t().as<bf16>());
        });
        res.push_back(r);
      }
    }
  }

  if (wanted("log_softmax_gather")) {
    const int64_t n = 64, V = 151936;
    Buffer z = rand_buf(DType::F32, {n, V}, 15, 3.0f), out(be, DType::F32, {n});
    std::vector<int32_t> t(n);
    for (int64_t i = 0; i < n; ++i) t[i] = static_cast<int32_t>((i * 7919) % V);
    Buffer gt(be, DType::I32, {n});
    be.copy_from_host(gt.t().data, t.data(), n * 4);
    KernelBenchResult r = mk("log_softmax_gather", "64 rows", dims({n, V}), "GB/s", 4.0 * n * V);
    r.ms = timer.median_ms([&] { be.log_softmax_gather(out, z, gt, 1.0f); });
    r.baseline = "naive kernel (thread per row)";
    r.baseline_ms = timer.median_ms([&] {
      naive_lsg_kernel<<<blocks_for(n, 64), 64, 0, c.stream>>>(z.t().as<const float>(), gt.t().as<const int32_t>(),
                                                               out.t().as<float>(), n, V);
    });
    res.push_back(r);
  }

  if (wanted("sample")) {
    const int64_t B = 64, V = 151936;
    Buffer z = rand_buf(DType::F32, {B, V}, 16, 3.0f);
    Buffer probs(be, DType::F32, {B, V}), probs2(be, DType::F32, {B, V});
    Buffer ids(be, DType::I32, {B, V}), ids2(be, DType::I32, {B, V}), out_ids(be, DType::I32, {B});
    std::vector<int> offsets(B + 1);
    for (int64_t i = 0; i <= B; ++i) offsets[i] = static_cast<int>(i * V);
    Buffer goff(be, DType::I32, {B + 1}), grows(be, DType::I32, {int64_t(B * sizeof(DeviceSamplingRow) / 4)});
    be.copy_from_host(goff.t().data, offsets.data(), (B + 1) * 4);
    size_t temp_bytes = 0;
    HAYATE_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
        nullptr, temp_bytes, probs.t().as<const float>(), probs2.t().as<float>(), ids.t().as<const int32_t>(),
        ids2.t().as<int32_t>(), static_cast<int>(B * V), static_cast<int>(B), goff.t().as<const int>(),
        goff.t().as<const int>() + 1, 0, 32, c.stream));
    Buffer temp(be, DType::I32, {static_cast<int64_t>(temp_bytes / 4 + 1)});
    struct SCase {
      const char* label;
      float top_p;
      int top_k;
    };
    for (const SCase& sc : {SCase{"T=1, no filter", 1.0f, 0}, SCase{"T=1, top_p=0.9", 0.9f, 0},
                            SCase{"T=1, top_k=50", 1.0f, 50}, SCase{"T=1, top_k=50, top_p=0.9", 0.9f, 50}}) {
      std::vector<SamplingRow> rows(B);
      std::vector<DeviceSamplingRow> drows(B);
      for (int64_t i = 0; i < B; ++i) {
        rows[i].seed = derive_seed(1, i);
        rows[i].step = 3;
        rows[i].top_p = sc.top_p;
        rows[i].top_k = sc.top_k;
        drows[i] = {1.0f, sc.top_k, sc.top_p, 0.0f, rows[i].seed, rows[i].step};
      }
      be.copy_from_host(grows.t().data, drows.data(), B * sizeof(DeviceSamplingRow));
      std::vector<int32_t> hid(B);
      std::vector<float> hlp(B);
      KernelBenchResult r = mk("sample", sc.label, dims({B, V}), "GB/s", 4.0 * B * V);
      r.ms = timer.median_wall_ms([&] { be.sample(z, rows.data(), hid.data(), hlp.data()); });
      r.baseline = "sort-based top-p: softmax + CUB segmented radix sort + block scans (ids to host)";
      r.baseline_ms = timer.median_wall_ms([&] {
        softmax_rows_kernel<<<static_cast<unsigned>(B), kSortThreads, 0, c.stream>>>(z.t().as<const float>(), V, 1.0f,
                                                                                   probs.t().as<float>(), ids.t().as<int32_t>());
        size_t tb = temp_bytes;
        HAYATE_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
            temp.t().data, tb, probs.t().as<const float>(), probs2.t().as<float>(), ids.t().as<const int32_t>(),
            ids2.t().as<int32_t>(), static_cast<int>(B * V), static_cast<int>(B), goff.t().as<const int>(),
            goff.t().as<const int>() + 1, 0, 32, c.stream));
        sorted_topp_draw_kernel<<<static_cast<unsigned>(B), kSortThreads, 0, c.stream>>>(
            probs2.t().as<const float>(), ids2.t().as<const int32_t>(), V, sc.top_p,
            reinterpret_cast<const DeviceSamplingRow*>(grows.t().data), out_ids.t().as<int32_t>());
        HAYATE_CUDA_CHECK(cudaMemcpyAsync(hid.data(), out_ids.t().data, B * 4, cudaMemcpyDeviceToHost, c.stream));
      });
      res.push_back(r);
    }
  }

  if (wanted("adamw")) {
    // Every LoRA tensor and its moments in its own allocation, as the trainer holds them.
    const std::vector<int64_t> sizes = recipe_lora_tensor_sizes();
    const DType P = DType::F32;  // param_dtype(), as the naive kernel reads it
    std::vector<Buffer> params, grads, ms, vs;
    std::vector<AdamWTensorRef> refs;
    for (size_t i = 0; i < sizes.size(); ++i) {
      const int64_t n = sizes[i];
      const uint64_t s0 = 1000 + 4 * i;
      params.push_back(rand_buf(P, {n}, s0, 0.02f));
      grads.push_back(rand_buf(P, {n}, s0 + 1, 1e-3f));
      ms.push_back(rand_buf(P, {n}, s0 + 2, 0.0f));
      vs.push_back(rand_buf(P, {n}, s0 + 3, 0.0f));
      refs.push_back({params.back(), grads.back(), ms.back(), vs.back()});
    }
    AdamWParams p;
    p.weight_decay = 0.01;
    const float bc1 = static_cast<float>(1.0 - std::pow(p.beta1, double(p.step)));
    const float bc2 = static_cast<float>(1.0 - std::pow(p.beta2, double(p.step)));
    KernelBenchResult r = adamw_bench_result(sizes, "naive kernel per tensor (fp32, thread per element)",
                                             "fp32, " + std::to_string(sizes.size()) + " separate tensors, one launch");
    r.ms = timer.median_ms([&] { be.adamw_step_multi(refs, p); });
    r.baseline_ms = timer.median_ms([&] {
      for (size_t i = 0; i < sizes.size(); ++i) {
        const int64_t n = sizes[i];
        naive_adamw_kernel<<<blocks_for(n), 256, 0, c.stream>>>(
            params[i].t().as<float>(), grads[i].t().as<const float>(), ms[i].t().as<float>(), vs[i].t().as<float>(), n,
            static_cast<float>(p.lr), static_cast<float>(p.beta1), static_cast<float>(p.beta2), static_cast<float>(p.eps),
            static_cast<float>(p.weight_decay), bc1, bc2);
      }
    });
    r.baseline2_ms = timer.median_ms([&] {
      for (const AdamWTensorRef& t : refs) be.adamw_step(t.param, t.grad, t.m, t.v, p);
    });
    res.push_back(r);
  }
  be.synchronize();
  return res;
}

}  // namespace hayate::gpu
