// The device code of the CUDA kernel benchmark that is not the backend's: random inputs, and the
// baselines each op is timed against (definitions in baseline_kernels.cu). The baselines are deliberately
// straightforward (one thread per output element or per row, no tiling, no vectors, no tensor cores):
// "what the op costs written the obvious way" on the same GPU. Sampling is compared with a sort-based
// top-p sampler (softmax, CUB segmented radix sort, block scans), the way frameworks usually implement it.
#pragma once
#include <cstdint>

#include "device_utils.cuh"
#include "kernels.h"

namespace hayate::bench {

using gpu::bf16;

// t = scale * (roughly normal values from a counter-based hash of (element, seed)), any float dtype.
void fill_random(const gpu::Ctx& c, Tensor t, uint64_t seed, float scale);

// ---- one thread per output element (or row) ----------------------------------------------------------
__global__ void naive_linear_kernel(const bf16* x, const bf16* w, bf16* out, int64_t M, int64_t N, int64_t K);
__global__ void naive_gather_kernel(const bf16* table, const int32_t* ids, bf16* out, int64_t n, int64_t D);
__global__ void naive_rmsnorm_kernel(const bf16* x, const bf16* w, bf16* out, int64_t rows, int64_t D, float eps);
__global__ void naive_add_kernel(const bf16* a, const bf16* b, bf16* out, int64_t n);
__global__ void naive_swiglu_kernel(const bf16* g, const bf16* u, bf16* out, int64_t n);
__global__ void naive_rope_kernel(bf16* x, const int32_t* pos, const float* cs, int64_t n, int heads, int hd);
__global__ void naive_kv_store_kernel(bf16* kc, bf16* vc, const bf16* k, const bf16* v, const int32_t* slots, int64_t n,
                                      int64_t W);
// One thread per (query row, q head): a serial online softmax over the row's positions.
__global__ void naive_attention_kernel(const bf16* q, const bf16* kc, const bf16* vc, bf16* out, const int32_t* tables,
                                       const int32_t* tseq, const int32_t* tpos, int64_t n, int max_blocks, int bs, int hq,
                                       int hkv, int hd, float scale);
__global__ void naive_lsg_kernel(const float* z, const int32_t* t, float* out, int64_t n, int64_t V);
// The unfused log-prob path (baseline of the logprob op), over fp32 logits z [n, V] already in memory:
// one block of kRowThreads per row: lse = logsumexp(z * inv_t), lp = z[t] * inv_t - lse,
// entropy = lse - sum softmax * z * inv_t (two passes over the row).
constexpr int kRowThreads = 256;
__global__ void naive_logprob_rows_kernel(const float* z, const int32_t* t, int64_t V, float inv_t, float* lp, float* lse,
                                          float* entropy);
// In place, thread per element: z[i,j] <- dlp[i] * ([j == t[i]] - exp(z[i,j] * inv_t - lse[i])) (dz).
__global__ void naive_logprob_dz_kernel(float* z, const int32_t* t, const float* dlp, const float* lse, int64_t n, int64_t V,
                                        float inv_t);
// AdamW over one fp32 tensor in fp32 arithmetic (grad_scale 1), thread per element.
__global__ void naive_adamw_kernel(float* w, const float* g, float* m, float* v, int64_t n, float lr, float b1, float b2,
                                   float eps, float wd, float bc1, float bc2);

// ---- unfused training attention (baseline of attention_forward / attention_backward) ------------------
// Sequences of one length L packed back to back (S x L rows); the scores of every (sequence, q head) are
// materialised as fp32 [S][hq][L][L] (P, and dS in the backward): the textbook three-kernel forward and a
// kernel per gradient, one thread per output element.
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

__global__ void naive_attn_scores_kernel(NaiveAttn a, const bf16* q, const bf16* k, float* sc);
__global__ void naive_attn_softmax_kernel(NaiveAttn a, float* sc, float* lse);
__global__ void naive_attn_pv_kernel(NaiveAttn a, const float* P, const bf16* v, bf16* out);
__global__ void naive_attn_probs_kernel(NaiveAttn a, const bf16* q, const bf16* k, const float* lse, float* P);
__global__ void naive_attn_delta_kernel(NaiveAttn a, const bf16* dout, const bf16* out, float* D);
__global__ void naive_attn_ds_kernel(NaiveAttn a, const float* P, const bf16* dout, const bf16* v, const float* D, float* dS);
// dv (M = P, x = dout, mul 1: sum_i P_ij dout_i) or dk (M = dS, x = q, mul = scale: scale sum_i dS_ij q_i),
// summed over the group's q heads.
__global__ void naive_attn_dkv_kernel(NaiveAttn a, const float* M, const bf16* x, bf16* out, float mul);
__global__ void naive_attn_dq_kernel(NaiveAttn a, const float* dS, const bf16* k, bf16* dq);

// ---- sort-based top-p sampler ---------------------------------------------------------------------------
constexpr int kSortThreads = 1024;  // block size of both kernels (one block per row)

// Per row: probs = softmax(z * inv_t), ids = 0..V-1 (the sort's values).
__global__ void softmax_rows_kernel(const float* z, int64_t V, float inv_t, float* probs, int32_t* ids);
// Per row of probabilities sorted descending: cut the nucleus at top_p, draw in it with the row's rng.
__global__ void sorted_topp_draw_kernel(const float* ps, const int32_t* ids, int64_t V, float top_p,
                                        const gpu::DeviceSamplingRow* rows, int32_t* out);

}  // namespace hayate::bench
