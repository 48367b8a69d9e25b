// attention_forward: fused causal attention over a packed batch of variable-length sequences (VarlenMeta:
// cu_seqlens), GQA, FlashAttention-2 style; saves the log-sum-exp of every (row, q head) for the backward.
//
// A block owns 64 query rows of one q head of one sequence (grid: x = (sequence, query tile), y = q head);
// its 4 warps own 16 rows each. Per key tile of 64 (only tiles at or before the block's last row: causal):
//   1. K and V rows of the q head's kv head are loaded into shared memory as bf16 (F32 inputs are rounded
//      to bf16 there: the tensor cores read bf16; accumulation is fp32 throughout). For bf16 inputs the
//      loads are cp.async into two stages, so the next tile streams in while this one is multiplied.
//   2. S = Q K^T on the tensor cores (m16n8k16), scaled by scale * log2(e) so softmax runs on exp2;
//      causal / end-of-sequence masking only on tiles that straddle the diagonal or the sequence's end.
//   3. online softmax per row (running max m, running sum l; the 4 lanes of a quad hold one row's 64
//      scores and combine with two shuffles), rescaling the output accumulators by exp2(m_old - m_new).
//   4. O += P V: P goes from the score accumulators straight into A fragments (registers, bf16).
// At the end O / l is written, and lse = ln(sum exp(scale q.k)) = (m + log2 l) ln 2. No [T x T] matrix
// exists anywhere; memory traffic is one read of Q per block and of K/V per (block, key tile).
#include "cuda_check.h"
#include "flash_common.cuh"
#include "kernels.h"
#include "variant_stats.h"

namespace hayate::gpu {

namespace {

using flash::Params;

template <class T, int HDB>
__global__ void __launch_bounds__(kFlashThreads) flash_forward_kernel(Params p) {
  constexpr int BM = kFlashBM, BN = kFlashBN, LDS = HDB + 8;
  constexpr int NTS = BN / 8;   // n8 tiles of a warp's 16 x 64 score tile
  constexpr int NTO = HDB / 8;  // n8 tiles of its 16 x HDB output tile
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* Qs = reinterpret_cast<bf16*>(smem);  // [BM][LDS]
  bf16* KVs = Qs + BM * LDS;                 // 2 stages x (K [BN][LDS], V [BN][LDS])

  const FlashTile t = flash_tile(blockIdx.x, p.tiles);
  int64_t base = 0;
  int L = 0;
  if (!flash::sequence_rows(p, t.seq, &base, &L)) return;
  const int m0 = static_cast<int>(t.tile) * BM;
  if (m0 >= L) return;  // uniform across the block: nothing below has started
  const int h = blockIdx.y, kvh = h / p.group;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t qcol = static_cast<int64_t>(h) * p.hd, kcol = static_cast<int64_t>(kvh) * p.hd;

  const int row0 = m0 + warp * 16 + lane / 4;  // sequence-relative rows of this lane: row0, row0 + 8
  const int kv_end = static_cast<int>(flash_kv_end(m0, BM, L));
  auto load_kv = [&](int stage, int n0) {
    bf16* ks = KVs + stage * 2 * BN * LDS;
    flash::load_tile_stage<T, BN, HDB>(ks, static_cast<const T*>(p.k), base + n0, min(BN, L - n0), p.kv_stride, kcol,
                                       p.hd, p.vec);
    flash::load_tile_stage<T, BN, HDB>(ks + BN * LDS, static_cast<const T*>(p.v), base + n0, min(BN, L - n0),
                                       p.kv_stride, kcol, p.hd, p.vec);
  };
  flash::load_tile_stage<T, BM, HDB>(Qs, static_cast<const T*>(p.q), base + m0, min(BM, L - m0), p.q_stride, qcol, p.hd,
                                     p.vec);
  load_kv(0, 0);
  flash::cp_async_commit();

  float o[NTO][4];
  flash::zero(o);
  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};

  // Two-stage pipeline: tile t + 1 is in flight while tile t is multiplied.
  int stage = 0;
  for (int n0 = 0; n0 < kv_end; n0 += BN, stage ^= 1) {
    if (n0 + BN < kv_end) {
      load_kv(stage ^ 1, n0 + BN);  // that buffer's last readers passed the barrier at the end of the last step
      flash::cp_async_commit();
      flash::cp_async_wait<1>();     // everything but the newest group (this tile, and Q) has landed
    } else {
      flash::cp_async_wait<0>();
    }
    __syncthreads();  // this tile (and Q) is visible to every warp
    const bf16* Ks = KVs + stage * 2 * BN * LDS;
    const bf16* Vs = Ks + BN * LDS;

    float s[NTS][4];
    flash::zero(s);
    flash::mma_rows_rowsT<HDB, NTS, LDS>(s, Qs + warp * 16 * LDS, Ks, lane);

    const bool mask = flash_tile_needs_mask(m0, BM, n0, BN, L);
#pragma unroll
    for (int nt = 0; nt < NTS; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = s[nt][e] * p.scale_log2;
        if (mask) {
          const int i = m0 + warp * 16 + frag_c_row(lane, e), j = n0 + frag_c_col(lane, nt, e);
          if (j > i || j >= L) x = -INFINITY;
        }
        s[nt][e] = x;
      }

    // online softmax; r = 0: row row0 (elements 0, 1), r = 1: row row0 + 8 (elements 2, 3)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < NTS; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * r], s[nt][2 * r + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m_run[r], mx);
      // A row with nothing visible yet keeps m = -inf: exponentiate against 0 so exp2(-inf) = 0, no NaN.
      const float m_use = m_new == -INFINITY ? 0.0f : m_new;
      const float alpha = exp2f(m_run[r] - m_use);
      float sum = 0.0f;
#pragma unroll
      for (int nt = 0; nt < NTS; ++nt) {
        s[nt][2 * r] = exp2f(s[nt][2 * r] - m_use);
        s[nt][2 * r + 1] = exp2f(s[nt][2 * r + 1] - m_use);
        sum += s[nt][2 * r] + s[nt][2 * r + 1];
      }
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      l_run[r] = l_run[r] * alpha + sum;
      m_run[r] = m_new;
#pragma unroll
      for (int nt = 0; nt < NTO; ++nt) {
        o[nt][2 * r] *= alpha;
        o[nt][2 * r + 1] *= alpha;
      }
    }

    uint32_t pa[NTS / 2][4];
    flash::to_a_frags<NTS>(pa, s);
    flash::mma_regs_rows<NTS / 2, NTO, LDS>(o, pa, Vs, lane);
    __syncthreads();  // every warp is done with this stage before the next step refills it
  }

  // ---- epilogue: O / l and the log-sum-exp ----
  const float inv0 = l_run[0] > 0.0f ? 1.0f / l_run[0] : 0.0f, inv1 = l_run[1] > 0.0f ? 1.0f / l_run[1] : 0.0f;
  const int wrow = m0 + warp * 16;  // the warp's first row
  flash::store_rows<T, NTO>(o, static_cast<T*>(p.o), base + wrow, L - wrow, p.q_stride, qcol, p.hd, inv0, inv1, p.pairs, lane);
  if (lane % 4 == 0) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int i = row0 + 8 * r;
      if (i < L)
        p.lse[(base + i) * p.hq + h] = l_run[r] > 0.0f ? (m_run[r] + log2f(l_run[r])) * flash::kLn2 : -INFINITY;
    }
  }
}

// One thread per sequence boundary: cu[0] == 0, cu[S] == n, non-decreasing, lengths <= max_seqlen.
__global__ void check_cu_seqlens_kernel(const int32_t* cu, int64_t num_seqs, int64_t n, int max_seqlen, int* err) {
  for (int64_t s = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; s <= num_seqs;
       s += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    bool ok = true;
    if (s == 0) ok = cu[0] == 0;
    if (s == num_seqs) ok = ok && cu[s] == n;
    if (s < num_seqs) ok = ok && cu[s + 1] >= cu[s] && cu[s + 1] - cu[s] <= max_seqlen;
    if (!ok) raise_error(err, kErrVarlenMeta);
  }
}

template <class T, int HDB>
void launch_forward(const Ctx& c, const Params& prm, const FlashPlan& plan) {
  auto kernel = flash_forward_kernel<T, HDB>;
  if (plan.smem_fwd > 48 * 1024)
    HAYATE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(plan.smem_fwd)));
  kernel<<<dim3(static_cast<unsigned>(plan.grid_q), static_cast<unsigned>(prm.hq)), kFlashThreads, plan.smem_fwd, c.stream>>>(prm);
  HAYATE_CUDA_CHECK_LAUNCH("attention_forward");
}

}  // namespace

void check_cu_seqlens(const Ctx& c, Tensor cu_seqlens, int64_t n, int max_seqlen) {
  const int64_t num_seqs = cu_seqlens.numel() - 1;
  const Launch1D l = plan_elementwise(num_seqs + 1, c.num_sms);
  check_cu_seqlens_kernel<<<static_cast<unsigned>(l.blocks), l.threads, 0, c.stream>>>(cu_seqlens.as<const int32_t>(), num_seqs,
                                                                                      n, max_seqlen, c.err);
  HAYATE_CUDA_CHECK_LAUNCH("attention cu_seqlens check");
}

void attention_forward(const Ctx& c, Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, const VarlenMeta& m) {
  const char* op = "attention_forward";
  const int64_t num_seqs = check_varlen_attention(op, {{&q, "q"}, {&out, "out"}}, {{&k, "k"}, {&v, "v"}}, lse, m);
  const int64_t n = q.rows();
  const FlashPlan plan = plan_flash_attention(op, n, num_seqs, m.max_seqlen, m.num_q_heads, m.num_kv_heads, m.head_dim);
  need(op, plan.smem_fwd <= c.smem_optin,
       "needs " + std::to_string(plan.smem_fwd) + " bytes of shared memory per block; this GPU allows " +
           std::to_string(c.smem_optin));
  check_cu_seqlens(c, m.cu_seqlens, n, plan.max_seqlen);
  if (n == 0 || num_seqs == 0) return;
  flash::Params prm = flash::make_params(m, n, plan.q_tiles, dtype_size(q.dtype), {q.data, k.data, v.data, out.data});
  prm.q = q.data;
  prm.k = k.data;
  prm.v = v.data;
  prm.o = out.data;
  prm.lse = lse.as<float>();
  const bool b16 = q.dtype == DType::BF16;
  count_kernel_variant(flash_variant(false, plan.hd_bucket));
  if (plan.hd_bucket == 64) {
    b16 ? launch_forward<bf16, 64>(c, prm, plan) : launch_forward<float, 64>(c, prm, plan);
  } else {
    b16 ? launch_forward<bf16, 128>(c, prm, plan) : launch_forward<float, 128>(c, prm, plan);
  }
}

}  // namespace hayate::gpu
