// Definitions of the CUDA kernel benchmark's random inputs and baselines (see baseline_kernels.cuh).
#include "baseline_kernels.cuh"

#include <climits>
#include <cmath>

#include "cuda_check.h"
#include "rng.h"

namespace hayate::bench {

using namespace gpu;

// ---- inputs -------------------------------------------------------------------------------------------

namespace {

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

}  // namespace

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

namespace {
// Block-wide reduction of kRowThreads values (sum or max); every thread gets the result.
template <bool kMax>
__device__ float block_reduce(float v, float* smem) {
  smem[threadIdx.x] = v;
  __syncthreads();
  for (int w = kRowThreads / 2; w > 0; w >>= 1) {
    if (static_cast<int>(threadIdx.x) < w)
      smem[threadIdx.x] = kMax ? fmaxf(smem[threadIdx.x], smem[threadIdx.x + w]) : smem[threadIdx.x] + smem[threadIdx.x + w];
    __syncthreads();
  }
  const float r = smem[0];
  __syncthreads();
  return r;
}
}  // namespace

__global__ void naive_logprob_rows_kernel(const float* z, const int32_t* t, int64_t V, float inv_t, float* lp, float* lse,
                                          float* entropy) {
  __shared__ float smem[kRowThreads];
  const float* zr = z + static_cast<int64_t>(blockIdx.x) * V;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < V; j += kRowThreads) mx = fmaxf(mx, zr[j] * inv_t);
  mx = block_reduce<true>(mx, smem);
  float s = 0.0f, ws = 0.0f;
  for (int64_t j = threadIdx.x; j < V; j += kRowThreads) {
    const float x = zr[j] * inv_t, e = expf(x - mx);
    s += e;
    ws += e * x;
  }
  s = block_reduce<false>(s, smem);
  ws = block_reduce<false>(ws, smem);
  if (threadIdx.x == 0) {
    const float l = mx + logf(s);
    lse[blockIdx.x] = l;
    lp[blockIdx.x] = zr[t[blockIdx.x]] * inv_t - l;
    entropy[blockIdx.x] = l - ws / s;
  }
}

__global__ void naive_logprob_dz_kernel(float* z, const int32_t* t, const float* dlp, const float* lse, int64_t n, int64_t V,
                                        float inv_t) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= n * V) return;
  const int64_t i = idx / V, j = idx % V;
  z[idx] = dlp[i] * ((j == t[i] ? 1.0f : 0.0f) - expf(z[idx] * inv_t - lse[i]));
}

__global__ void naive_adamw_kernel(float* w, const float* g, float* m, float* v, int64_t n, float lr, float b1, float b2,
                                   float eps, float wd, float bc1, float bc2) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const float mi = b1 * m[i] + (1.0f - b1) * g[i], vi = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
  m[i] = mi;
  v[i] = vi;
  w[i] -= lr * (wd * w[i] + (mi / bc1) / (sqrtf(vi / bc2) + eps));
}

// ---- unfused training attention ------------------------------------------------------------------------

namespace {
__device__ __forceinline__ float dot_bf16(const bf16* a, const bf16* b, int hd) {
  float s = 0.0f;
  for (int d = 0; d < hd; ++d) s += __bfloat162float(a[d]) * __bfloat162float(b[d]);
  return s;
}
}  // namespace

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

// ---- sort-based top-p sampler ---------------------------------------------------------------------------

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

namespace {

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

}  // namespace

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

}  // namespace hayate::bench
