// paged_attention: causal softmax attention of each query token over its sequence's cached K/V
// (AttentionMeta: block tables, per-token sequence and position), GQA, head_dim up to 256.
//
// Work decomposition. A block owns a kv head (blockIdx.y, with the q heads of its GQA group), a tile of
// query rows (blockIdx.x) and, in the decode layout, one partition of positions (blockIdx.z). Its query
// vectors (rows x group heads, at most kAttnMaxQ = 16) share every K/V tile it loads into shared memory,
// so K/V are read once per GQA group (decode is bandwidth-bound: this is what matters) and, in the
// prefill layout, once per 16 query vectors of the same sequence instead of once per token.
//
// Per tile of kAttnTileK = 64 positions:
//   1. K and V rows are gathered through the block table into shared memory (16-byte loads). K rows are
//      padded by one word so that threads reading different rows at the same column hit distinct banks.
//   2. scores S[q][p] = (q . k_p) * scale * log2(e) (q pre-scaled), one (q, p) pair per thread, fp32;
//      positions beyond the row's own position are masked (-inf), which is how rows of one sequence at
//      different positions (a prefill chunk) share tiles.
//   3. online softmax in base 2 (FlashAttention): warp w owns query vectors w, w+4, w+8, w+12; it rescales
//      its running max/sum/accumulators and turns its S rows into probabilities, then accumulates
//      P V with lanes across head_dim (conflict-free V reads, accumulators in registers).
// No [T x T] matrix exists anywhere.
//
// Split-K across the sequence. Positions are cut into fixed partitions of kAttnPartition (512). A row's
// partition results (max m, sum l, unnormalised accumulator) are combined in partition order by fold():
// in the prefill layout one block walks all partitions of its rows; in the decode layout (about one
// query token per sequence: little parallelism across rows) each partition runs in its own block, writes
// its partial to the workspace, and attention_combine_kernel folds them. Both use the same fold code in
// the same order, so a row's result never depends on the batch it was computed in.
#include <cfloat>

#include "cuda_check.h"
#include "device_utils.cuh"
#include "kernels.h"
#include "variant_stats.h"

namespace hayate::gpu {

namespace {

constexpr int kThreads = kAttnThreads;  // 4 warps
constexpr int kWarps = kThreads / 32;
constexpr int TK = kAttnTileK;
constexpr int NQ = kAttnMaxQ;
constexpr int QPW = NQ / kWarps;        // query vectors per warp in the softmax / PV phase
constexpr int QPT = NQ * TK / kThreads; // (q, p) score pairs per thread
constexpr float kLog2e = 1.4426950408889634f;

struct AttnParams {
  const void* q;
  void* out;
  const void* kc;
  const void* vc;
  const int32_t* tables;
  const int32_t* tseq;
  const int32_t* tpos;
  int64_t n;
  int num_seqs, max_blocks, block_size;
  int64_t cache_blocks;  // cache rows / block_size
  int hq, hkv, hd, group, heads_per_chunk, head_chunks, rows_per_block, partitions;
  bool split;
  float scale_log2;  // softmax scale * log2(e)
  float* ws_o;       // split partials [n][hq][partitions][hd]
  float* ws_ml;      // [n][hq][partitions][2] (m, l)
  int* err;
};

// Folds one partition (m, l, acc) into the running (M, L, O). Explicit _rn intrinsics: no FMA contraction,
// so the in-block fold and the combine kernel produce identical bits.
__device__ __forceinline__ void fold_scalar(float M_old, float M_new, float m, float& L, float l) {
  const float a = exp2f(M_old - M_new), b = exp2f(m - M_new);
  L = __fadd_rn(__fmul_rn(L, a), __fmul_rn(l, b));
}
__device__ __forceinline__ float fold_value(float M_old, float M_new, float m, float O, float acc) {
  const float a = exp2f(M_old - M_new), b = exp2f(m - M_new);
  return __fadd_rn(__fmul_rn(O, a), __fmul_rn(acc, b));
}

template <class T>
__device__ __forceinline__ float2 load_pair(const T* p);
template <>
__device__ __forceinline__ float2 load_pair<bf16>(const bf16* p) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
}
template <>
__device__ __forceinline__ float2 load_pair<float>(const float* p) {
  return make_float2(p[0], p[1]);  // padded rows are only 4-byte aligned
}

template <class T, int HDMAX>
__global__ void __launch_bounds__(kThreads) paged_attention_kernel(AttnParams p) {
  constexpr int DPL = HDMAX / 32;                          // head dims per lane in the PV accumulators
  constexpr int KS = HDMAX + (sizeof(T) == 2 ? 2 : 1);     // padded K row stride (elements)
  extern __shared__ __align__(16) unsigned char smem[];
  float* Qs = reinterpret_cast<float*>(smem);              // [NQ][HDMAX] pre-scaled queries
  float* Ss = Qs + NQ * HDMAX;                             // [NQ][TK] scores, then probabilities
  T* Ks = reinterpret_cast<T*>(Ss + NQ * TK);              // [TK][KS]
  T* Vs = Ks + TK * KS;                                    // [TK][HDMAX]
  __shared__ int seg_pos[NQ];                              // position of each query row of the segment

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int hd = p.hd;
  const int kvh = blockIdx.y / p.head_chunks, chunk = blockIdx.y % p.head_chunks;
  const int h0 = kvh * p.group + chunk * p.heads_per_chunk;
  const int hc = min(p.heads_per_chunk, p.group - chunk * p.heads_per_chunk);
  const int64_t kv_width = static_cast<int64_t>(p.hkv) * hd;
  const int64_t q_width = static_cast<int64_t>(p.hq) * hd;
  const int64_t row_begin = static_cast<int64_t>(blockIdx.x) * p.rows_per_block;
  const int64_t row_end = min(p.n, row_begin + p.rows_per_block);
  const T* qg = static_cast<const T*>(p.q);
  const T* kg = static_cast<const T*>(p.kc);
  const T* vg = static_cast<const T*>(p.vc);
  T* og = static_cast<T*>(p.out);
  // 16-byte K/V loads when a head's slice and the cache rows are 16-byte aligned (all real models).
  const bool vec16 = (hd * sizeof(T)) % 16 == 0 && (kv_width * sizeof(T)) % 16 == 0 &&
                     reinterpret_cast<uintptr_t>(p.kc) % 16 == 0 && reinterpret_cast<uintptr_t>(p.vc) % 16 == 0;

  for (int64_t r = row_begin; r < row_end;) {
    // ---- segment: consecutive rows of one sequence (they share every K/V tile) ----
    const int seq = p.tseq[r];
    int64_t e = r + 1;
    while (e < row_end && p.tseq[e] == seq) ++e;
    const int nrows = static_cast<int>(e - r);
    bool ok = seq >= 0 && seq < p.num_seqs;
    int max_pos = 0;
    for (int64_t i = r; i < e; ++i) {
      const int ps = p.tpos[i];
      ok = ok && ps >= 0 && ps / p.block_size < p.max_blocks;
      max_pos = max(max_pos, ps);
    }
    const int nq = nrows * hc;
    if (!ok) {  // bad metadata: flag it, write zeros, move on (uniform branch: every thread agrees)
      if (threadIdx.x == 0) raise_error(p.err, kErrAttentionMeta);
      if (blockIdx.z == 0)
        for (int idx = threadIdx.x; idx < nq * hd; idx += kThreads) {
          const int qq = idx / hd, d = idx % hd;
          og[(r + qq / hc) * q_width + static_cast<int64_t>(h0 + qq % hc) * hd + d] = from_float<T>(0.0f);
        }
      r = e;
      continue;
    }
    const int seg_parts = attention_partitions_for_pos(max_pos);
    int part_begin = 0, part_end = seg_parts;
    if (p.split) {
      part_begin = blockIdx.z;
      part_end = blockIdx.z + 1;
      if (part_begin >= seg_parts) {  // this partition lies beyond the sequence
        r = e;
        continue;
      }
    }
    const int32_t* table = p.tables + static_cast<int64_t>(seq) * p.max_blocks;

    __syncthreads();  // the previous segment is done with shared memory
    for (int idx = threadIdx.x; idx < nq * hd; idx += kThreads) {
      const int qq = idx / hd, d = idx % hd;
      const int64_t row = r + qq / hc;
      Qs[qq * HDMAX + d] = to_float(qg[row * q_width + static_cast<int64_t>(h0 + qq % hc) * hd + d]) * p.scale_log2;
    }
    if (threadIdx.x < nrows) seg_pos[threadIdx.x] = p.tpos[r + threadIdx.x];

    float o_tot[QPW][DPL], m_tot[QPW], l_tot[QPW];
#pragma unroll
    for (int i = 0; i < QPW; ++i) {
      m_tot[i] = -INFINITY;
      l_tot[i] = 0.0f;
#pragma unroll
      for (int j = 0; j < DPL; ++j) o_tot[i][j] = 0.0f;
    }

    for (int part = part_begin; part < part_end; ++part) {
      float acc[QPW][DPL], m_run[QPW], l_run[QPW];
#pragma unroll
      for (int i = 0; i < QPW; ++i) {
        m_run[i] = -INFINITY;
        l_run[i] = 0.0f;
#pragma unroll
        for (int j = 0; j < DPL; ++j) acc[i][j] = 0.0f;
      }
      const int p_lo = part * kAttnPartition;
      const int p_hi = min(p_lo + kAttnPartition, max_pos + 1);  // exclusive
      for (int t0 = p_lo; t0 < p_hi; t0 += TK) {
        const int tn = min(TK, p_hi - t0);
        __syncthreads();  // previous tile's K/V/S reads are done; Q and seg_pos stores are visible
        // ---- 1. gather K/V rows of positions t0 .. t0+tn-1 through the block table ----
        if (vec16) {
          const int vpr = hd * static_cast<int>(sizeof(T)) / 16;  // 16-byte vectors per head row
          for (int idx = threadIdx.x; idx < tn * vpr; idx += kThreads) {
            const int pp = idx / vpr, vv = idx % vpr;
            const int pos = t0 + pp;
            const int blk = table[pos / p.block_size];
            uint4 kx = make_uint4(0, 0, 0, 0), vx = kx;
            if (blk >= 0 && blk < p.cache_blocks) {
              const int64_t row = static_cast<int64_t>(blk) * p.block_size + pos % p.block_size;
              kx = reinterpret_cast<const uint4*>(kg + row * kv_width + static_cast<int64_t>(kvh) * hd)[vv];
              vx = reinterpret_cast<const uint4*>(vg + row * kv_width + static_cast<int64_t>(kvh) * hd)[vv];
            } else if (vv == 0) {
              raise_error(p.err, kErrAttentionMeta);
            }
            uint32_t* kd = reinterpret_cast<uint32_t*>(Ks + pp * KS) + vv * 4;  // padded row: 4-byte stores
            kd[0] = kx.x;
            kd[1] = kx.y;
            kd[2] = kx.z;
            kd[3] = kx.w;
            reinterpret_cast<uint4*>(Vs + pp * HDMAX)[vv] = vx;
          }
        } else {
          for (int idx = threadIdx.x; idx < tn * hd; idx += kThreads) {
            const int pp = idx / hd, d = idx % hd;
            const int pos = t0 + pp;
            const int blk = table[pos / p.block_size];
            T kx = from_float<T>(0.0f), vx = kx;
            if (blk >= 0 && blk < p.cache_blocks) {
              const int64_t off = (static_cast<int64_t>(blk) * p.block_size + pos % p.block_size) * kv_width +
                                  static_cast<int64_t>(kvh) * hd + d;
              kx = kg[off];
              vx = vg[off];
            } else if (d == 0) {
              raise_error(p.err, kErrAttentionMeta);
            }
            Ks[pp * KS + d] = kx;
            Vs[pp * HDMAX + d] = vx;
          }
        }
        __syncthreads();
        // ---- 2. scores: thread -> position sp, query vectors qset, qset + 2, ... ----
        {
          const int sp = threadIdx.x % TK, qset = threadIdx.x / TK;
          float s[QPT];
#pragma unroll
          for (int i = 0; i < QPT; ++i) s[i] = 0.0f;
          if (sp < tn) {
            const T* krow = Ks + sp * KS;
            for (int d = 0; d < hd; d += 2) {
              const float2 kf = load_pair<T>(krow + d);
#pragma unroll
              for (int i = 0; i < QPT; ++i) {
                const int qq = qset + 2 * i;
                if (qq < nq) {
                  const float2 qf = *reinterpret_cast<const float2*>(Qs + qq * HDMAX + d);
                  s[i] = fmaf(qf.x, kf.x, s[i]);
                  s[i] = fmaf(qf.y, kf.y, s[i]);
                }
              }
            }
          }
#pragma unroll
          for (int i = 0; i < QPT; ++i) {
            const int qq = qset + 2 * i;
            if (qq < nq) {
              const bool valid = sp < tn && t0 + sp <= seg_pos[qq / hc];
              Ss[qq * TK + sp] = valid ? s[i] : -INFINITY;
            }
          }
        }
        __syncthreads();
        // ---- 3. online softmax and P V, warp w owns query vectors w + 4 i ----
#pragma unroll
        for (int i = 0; i < QPW; ++i) {
          const int qq = warp + kWarps * i;
          if (qq < nq) {
            const float s0 = Ss[qq * TK + lane], s1 = Ss[qq * TK + lane + 32];
            const float m_new = fmaxf(m_run[i], warp_max(fmaxf(s0, s1)));
            float alpha = 1.0f, e0 = 0.0f, e1 = 0.0f;
            if (m_new != -INFINITY) {  // some position of this query is visible so far
              alpha = exp2f(m_run[i] - m_new);
              e0 = exp2f(s0 - m_new);
              e1 = exp2f(s1 - m_new);
            }
            l_run[i] = l_run[i] * alpha + warp_sum(e0 + e1);
            m_run[i] = m_new;
            Ss[qq * TK + lane] = e0;
            Ss[qq * TK + lane + 32] = e1;
#pragma unroll
            for (int j = 0; j < DPL; ++j) acc[i][j] *= alpha;
          }
        }
        __syncwarp();
        for (int pp = 0; pp < tn; ++pp) {
          float v[DPL];
#pragma unroll
          for (int j = 0; j < DPL; ++j) {
            const int d = lane + 32 * j;
            v[j] = d < hd ? to_float(Vs[pp * HDMAX + d]) : 0.0f;
          }
#pragma unroll
          for (int i = 0; i < QPW; ++i) {
            const int qq = warp + kWarps * i;
            if (qq < nq) {
              const float w = Ss[qq * TK + pp];
#pragma unroll
              for (int j = 0; j < DPL; ++j) acc[i][j] = fmaf(w, v[j], acc[i][j]);
            }
          }
        }
      }
      // ---- partition done: hand it to the workspace (decode, multi-partition row) or fold it ----
#pragma unroll
      for (int i = 0; i < QPW; ++i) {
        const int qq = warp + kWarps * i;
        if (qq >= nq) continue;
        const int row_pos = seg_pos[qq / hc];
        const int row_parts = attention_partitions_for_pos(row_pos);
        if (part >= row_parts) continue;  // every position of this partition is after the row
        const int64_t row = r + qq / hc;
        const int h = h0 + qq % hc;
        if (p.split && row_parts > 1) {
          const int64_t slot = (row * p.hq + h) * p.partitions + part;
#pragma unroll
          for (int j = 0; j < DPL; ++j) {
            const int d = lane + 32 * j;
            if (d < hd) p.ws_o[slot * hd + d] = acc[i][j];
          }
          if (lane == 0) {
            p.ws_ml[slot * 2] = m_run[i];
            p.ws_ml[slot * 2 + 1] = l_run[i];
          }
        } else if (m_run[i] != -INFINITY) {
          const float M_new = fmaxf(m_tot[i], m_run[i]);
#pragma unroll
          for (int j = 0; j < DPL; ++j) o_tot[i][j] = fold_value(m_tot[i], M_new, m_run[i], o_tot[i][j], acc[i][j]);
          fold_scalar(m_tot[i], M_new, m_run[i], l_tot[i], l_run[i]);
          m_tot[i] = M_new;
        }
      }
    }
    // ---- final outputs of the rows this block completed ----
#pragma unroll
    for (int i = 0; i < QPW; ++i) {
      const int qq = warp + kWarps * i;
      if (qq >= nq) continue;
      const int row_parts = attention_partitions_for_pos(seg_pos[qq / hc]);
      if (p.split && row_parts > 1) continue;  // the combine kernel writes it
      const int64_t row = r + qq / hc;
      const int h = h0 + qq % hc;
#pragma unroll
      for (int j = 0; j < DPL; ++j) {
        const int d = lane + 32 * j;
        if (d < hd) og[row * q_width + static_cast<int64_t>(h) * hd + d] = from_float<T>(o_tot[i][j] / l_tot[i]);
      }
    }
    r = e;
  }
}

// Folds the partitions of decode rows that have several, in partition order (see fold_*).
template <class T>
__global__ void attention_combine_kernel(AttnParams p) {
  const int64_t row = blockIdx.x;
  const int h = blockIdx.y;
  const int seq = p.tseq[row], pos = p.tpos[row];
  if (seq < 0 || seq >= p.num_seqs || pos < 0 || pos / p.block_size >= p.max_blocks) return;  // flagged already
  const int parts = attention_partitions_for_pos(pos);
  if (parts <= 1) return;
  const int64_t base = (row * p.hq + h) * p.partitions;
  for (int d = threadIdx.x; d < p.hd; d += blockDim.x) {
    float M = -INFINITY, L = 0.0f, O = 0.0f;
    for (int part = 0; part < parts; ++part) {
      const float m = p.ws_ml[(base + part) * 2], l = p.ws_ml[(base + part) * 2 + 1];
      if (m == -INFINITY) continue;
      const float M_new = fmaxf(M, m);
      O = fold_value(M, M_new, m, O, p.ws_o[(base + part) * p.hd + d]);
      fold_scalar(M, M_new, m, L, l);
      M = M_new;
    }
    static_cast<T*>(p.out)[row * p.hq * p.hd + static_cast<int64_t>(h) * p.hd + d] = from_float<T>(O / L);
  }
}

template <class T, int HDMAX>
void launch(const Ctx& c, const AttnParams& prm, const AttentionPlan& plan) {
  auto kernel = paged_attention_kernel<T, HDMAX>;
  if (plan.smem_bytes > 48 * 1024)  // opt in to more than 48 KiB (per device, so set on every call: cheap)
    HAYATE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(plan.smem_bytes)));
  const dim3 grid(static_cast<unsigned>(plan.row_blocks), static_cast<unsigned>(plan.grid_y),
                  static_cast<unsigned>(plan.split ? plan.partitions : 1));
  kernel<<<grid, kThreads, plan.smem_bytes, c.stream>>>(prm);
  HAYATE_CUDA_CHECK_LAUNCH("paged_attention");
  if (plan.split && plan.partitions > 1) {
    attention_combine_kernel<T><<<dim3(static_cast<unsigned>(prm.n), static_cast<unsigned>(prm.hq)), 128, 0, c.stream>>>(prm);
    HAYATE_CUDA_CHECK_LAUNCH("paged_attention combine");
  }
}

}  // namespace

void paged_attention(const Ctx& c, Tensor out, Tensor q, Tensor k_cache, Tensor v_cache, const AttentionMeta& m) {
  check_paged_attention(out, q, k_cache, v_cache, m);
  const int64_t n = q.rows();
  if (n == 0) return;
  const size_t es = dtype_size(q.dtype);
  const AttentionPlan plan = plan_paged_attention(n, m.block_tables.shape[0], m.block_tables.shape[1], m.block_size,
                                                  m.num_q_heads, m.num_kv_heads, m.head_dim, es);
  need("paged_attention", plan.smem_bytes <= c.smem_optin,
       "head_dim " + std::to_string(m.head_dim) + " needs " + std::to_string(plan.smem_bytes) +
           " bytes of shared memory per block; this GPU allows " + std::to_string(c.smem_optin));
  need("paged_attention", plan.partitions < 65536 && plan.grid_y < 65536, "context or head count too large");
  count_kernel_variant(paged_attention_variant(plan.split, plan.hd_bucket));
  AttnParams prm{};
  prm.q = q.data;
  prm.out = out.data;
  prm.kc = k_cache.data;
  prm.vc = v_cache.data;
  prm.tables = m.block_tables.as<const int32_t>();
  prm.tseq = m.token_seq.as<const int32_t>();
  prm.tpos = m.token_pos.as<const int32_t>();
  prm.n = n;
  prm.num_seqs = static_cast<int>(m.block_tables.shape[0]);
  prm.max_blocks = static_cast<int>(m.block_tables.shape[1]);
  prm.block_size = m.block_size;
  prm.cache_blocks = k_cache.rows() / m.block_size;
  prm.hq = m.num_q_heads;
  prm.hkv = m.num_kv_heads;
  prm.hd = m.head_dim;
  prm.group = m.num_q_heads / m.num_kv_heads;
  prm.heads_per_chunk = plan.heads_per_chunk;
  prm.head_chunks = plan.head_chunks;
  prm.rows_per_block = plan.rows_per_block;
  prm.partitions = plan.partitions;
  prm.split = plan.split;
  prm.scale_log2 = m.scale * kLog2e;
  prm.err = c.err;
  if (plan.workspace_floats > 0) {
    const size_t o_floats = static_cast<size_t>(n) * m.num_q_heads * plan.partitions * m.head_dim;
    float* ws = static_cast<float*>(c.ws->get(plan.workspace_floats * sizeof(float)));
    prm.ws_o = ws;
    prm.ws_ml = ws + o_floats;
  }
  const bool b16 = q.dtype == DType::BF16;
  switch (plan.hd_bucket) {
    case 64: b16 ? launch<bf16, 64>(c, prm, plan) : launch<float, 64>(c, prm, plan); break;
    case 128: b16 ? launch<bf16, 128>(c, prm, plan) : launch<float, 128>(c, prm, plan); break;
    default: b16 ? launch<bf16, 256>(c, prm, plan) : launch<float, 256>(c, prm, plan); break;
  }
}

}  // namespace hayate::gpu
