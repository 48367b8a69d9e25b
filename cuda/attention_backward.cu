// attention_backward: the backward of attention_forward (backend.h) over a packed varlen batch, GQA,
// FlashAttention-2 style: P is recomputed from the saved log-sum-exp, never stored; no [T x T] matrix.
// With P = exp(scale q.k - lse) and D_i = dout_i . out_i:
//   dv_j = sum_i P_ij dout_i;  dS_ij = P_ij (dout_i . v_j - D_i);  dq_i = scale sum_j dS_ij k_j;
//   dk_j = scale sum_i dS_ij q_i.
// Three kernels on the stream:
//   1. delta: D for every (row, q head), fp32 into the workspace (one warp per pair).
//   2. dK/dV: a block owns 64 keys of one kv head (warp w: keys 16w..16w+15) and keeps their dK, dV in
//      registers while it walks every q head of the GQA group and every query tile that sees its keys
//      (tiles of 64 rows, 32 at head_dim 128; for bf16 the next tile streams in by cp.async meanwhile). Per tile it computes S^T = K Q^T and dP^T = V dO^T on the
//      tensor cores, P^T and dS^T elementwise, then dV += P^T dO and dK += dS^T Q with P^T / dS^T fed
//      from registers. The GQA sum happens in registers, so dk/dv are written once, never accumulated.
//   3. dQ: a block owns 64 query rows of one q head and walks the key tiles up to its last row, like the
//      forward: S = Q K^T, dP = dO V^T, dS, then dQ += dS K.
// Why a separate dQ pass rather than fp32 atomics into dq from kernel 2 (FlashAttention-2's choice): the
// result is deterministic (no order-dependent float atomics: the same batch gives the same bits, as the
// rest of this backend), it needs no fp32 dq buffer, memset and conversion pass, and each kernel keeps
// only its own accumulators in registers. The price is recomputing Q K^T and dO V^T once more (7 instead
// of 5 tile products); dQ's kernel is the cheapest of the three.
#include "cuda_check.h"
#include "flash_common.cuh"
#include "kernels.h"
#include "variant_stats.h"

namespace hayate::gpu {

namespace {

using flash::Params;

// D[i, h] = sum_d dout[i, h, d] * out[i, h, d] (stored values, fp32 sum): one warp per (row, head).
template <class T>
__global__ void flash_delta_kernel(Params p, float* delta) {
  const int64_t pair = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (pair >= p.n * p.hq) return;  // whole warps exit together
  const T* dout = static_cast<const T*>(p.dout) + pair * p.hd;  // [n, hq, hd] row-major: pair = i * hq + h
  const T* out = static_cast<const T*>(p.out) + pair * p.hd;
  float s = 0.0f;
  for (int d = lane; d < p.hd; d += 32) s = fmaf(to_float(dout[d]), to_float(out[d]), s);
  s = warp_sum(s);
  if (lane == 0) delta[pair] = s;
}

template <class T, int HDB>
__global__ void __launch_bounds__(kFlashThreads) flash_dkv_kernel(Params p) {
  constexpr int BN = kFlashBN, BQ = flash_bwd_bq(HDB), LDS = HDB + 8;
  constexpr int NTQ = BQ / 8;   // n8 tiles of a warp's 16 keys x BQ queries score tile
  constexpr int NTO = HDB / 8;  // n8 tiles of its 16 x HDB dK / dV tiles
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* Ks = reinterpret_cast<bf16*>(smem);  // [BN][LDS]
  bf16* Vs = Ks + BN * LDS;                  // [BN][LDS]
  bf16* QdOs = Vs + BN * LDS;                // 2 stages x (Q [BQ][LDS], dO [BQ][LDS])
  float* LDs = reinterpret_cast<float*>(QdOs + 4 * BQ * LDS);  // 2 stages x (lse * log2(e) [BQ], D [BQ])

  const FlashTile t = flash_tile(blockIdx.x, p.tiles);
  int64_t base = 0;
  int L = 0;
  if (!flash::sequence_rows(p, t.seq, &base, &L)) return;
  // Key tile 0 sees every query tile (the most work): reverse flash_tile's order so it starts first.
  const int n0 = static_cast<int>(p.tiles - 1 - t.tile) * BN;
  if (n0 >= L) return;
  const int kvh = blockIdx.y;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t kcol = static_cast<int64_t>(kvh) * p.hd;
  flash::load_tile_stage<T, BN, HDB>(Ks, static_cast<const T*>(p.k), base + n0, min(BN, L - n0), p.kv_stride, kcol,
                                     p.hd, p.vec);
  flash::load_tile_stage<T, BN, HDB>(Vs, static_cast<const T*>(p.v), base + n0, min(BN, L - n0), p.kv_stride, kcol,
                                     p.hd, p.vec);

  float dk[NTO][4], dv[NTO][4];
  flash::zero(dk);
  flash::zero(dv);
  const int q_first = static_cast<int>(flash_q_begin(n0, BQ));
  const int q_steps = (L - q_first + BQ - 1) / BQ;  // query tiles per q head (>= 1: q_first <= n0 < L)
  const int steps = p.group * q_steps;                // (q head, query tile) pairs, walked in a flat pipeline
  // Stage `st` receives the Q / dO tiles, lse and D of step `k` (q head kvh * group + k / q_steps).
  auto load_q = [&](int st, int k) {
    const int h = kvh * p.group + k / q_steps, m0 = q_first + (k % q_steps) * BQ, valid = min(BQ, L - m0);
    const int64_t qcol = static_cast<int64_t>(h) * p.hd;
    bf16* qs = QdOs + st * 2 * BQ * LDS;
    flash::load_tile_stage<T, BQ, HDB>(qs, static_cast<const T*>(p.q), base + m0, valid, p.q_stride, qcol, p.hd, p.vec);
    flash::load_tile_stage<T, BQ, HDB>(qs + BQ * LDS, static_cast<const T*>(p.dout), base + m0, valid, p.q_stride, qcol,
                                       p.hd, p.vec);
    float* ld = LDs + st * 2 * BQ;
    for (int i = threadIdx.x; i < BQ; i += kFlashThreads) {
      const bool ok = i < valid;
      ld[i] = ok ? p.lse_in[(base + m0 + i) * p.hq + h] * flash::kLog2e : 0.0f;
      ld[BQ + i] = ok ? p.delta[(base + m0 + i) * p.hq + h] : 0.0f;
    }
  };
  load_q(0, 0);
  flash::cp_async_commit();  // group 0: K, V and the first query tile

  for (int k = 0, stage = 0; k < steps; ++k, stage ^= 1) {
    if (k + 1 < steps) {
      load_q(stage ^ 1, k + 1);  // its last readers passed the barrier at the end of the previous step
      flash::cp_async_commit();
      flash::cp_async_wait<1>();
    } else {
      flash::cp_async_wait<0>();
    }
    __syncthreads();  // this step's tiles (and K/V) are visible to every warp
    const int m0 = q_first + (k % q_steps) * BQ;
    const bf16* Qs = QdOs + stage * 2 * BQ * LDS;
    const bf16* dOs = Qs + BQ * LDS;
    const float* lse_s = LDs + stage * 2 * BQ;  // lse * log2(e) of the tile's rows
    const float* d_s = lse_s + BQ;            // D of the tile's rows
    {
      float st[NTQ][4], dpt[NTQ][4];  // S^T and dP^T: rows = this warp's 16 keys, columns = the BQ queries
      flash::zero(st);
      flash::zero(dpt);
      flash::mma_rows_rowsT<HDB, NTQ, LDS>(st, Ks + warp * 16 * LDS, Qs, lane);
      flash::mma_rows_rowsT<HDB, NTQ, LDS>(dpt, Vs + warp * 16 * LDS, dOs, lane);

      const bool mask = flash_tile_needs_mask(m0, BQ, n0, BN, L);
#pragma unroll
      for (int nt = 0; nt < NTQ; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int qi = frag_c_col(lane, nt, e);  // tile-relative query
          float pv = exp2f(st[nt][e] * p.scale_log2 - lse_s[qi]);
          if (mask) {
            const int i = m0 + qi, j = n0 + warp * 16 + frag_c_row(lane, e);
            if (j > i || i >= L || j >= L) pv = 0.0f;
          }
          st[nt][e] = pv;                          // P^T
          dpt[nt][e] = pv * (dpt[nt][e] - d_s[qi]);  // dS^T
        }
      uint32_t pa[NTQ / 2][4];
      flash::to_a_frags<NTQ>(pa, st);
      flash::mma_regs_rows<NTQ / 2, NTO, LDS>(dv, pa, dOs, lane);  // dV += P^T dO
      flash::to_a_frags<NTQ>(pa, dpt);
      flash::mma_regs_rows<NTQ / 2, NTO, LDS>(dk, pa, Qs, lane);   // dK += dS^T Q
    }
    __syncthreads();  // every warp is done with this stage before the next step refills it
  }
  const int wkey = n0 + warp * 16;
  flash::store_rows<T, NTO>(dk, static_cast<T*>(p.dk), base + wkey, L - wkey, p.kv_stride, kcol, p.hd, p.scale, p.scale,
                            p.pairs, lane);
  flash::store_rows<T, NTO>(dv, static_cast<T*>(p.dv), base + wkey, L - wkey, p.kv_stride, kcol, p.hd, 1.0f, 1.0f,
                            p.pairs, lane);
}

template <class T, int HDB>
__global__ void __launch_bounds__(kFlashThreads) flash_dq_kernel(Params p) {
  constexpr int BM = kFlashBM, BN = kFlashBN, LDS = HDB + 8, NTS = BN / 8, NTO = HDB / 8;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* Qs = reinterpret_cast<bf16*>(smem);  // [BM][LDS]
  bf16* dOs = Qs + BM * LDS;                 // [BM][LDS]
  bf16* KVs = dOs + BM * LDS;                // 2 stages x (K [BN][LDS], V [BN][LDS])

  const FlashTile t = flash_tile(blockIdx.x, p.tiles);
  int64_t base = 0;
  int L = 0;
  if (!flash::sequence_rows(p, t.seq, &base, &L)) return;
  const int m0 = static_cast<int>(t.tile) * BM;
  if (m0 >= L) return;
  const int h = blockIdx.y, kvh = h / p.group;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t qcol = static_cast<int64_t>(h) * p.hd, kcol = static_cast<int64_t>(kvh) * p.hd;
  const int valid = min(BM, L - m0);
  const int kv_end = static_cast<int>(flash_kv_end(m0, BM, L));
  auto load_kv = [&](int stage, int n0) {
    bf16* ks = KVs + stage * 2 * BN * LDS;
    flash::load_tile_stage<T, BN, HDB>(ks, static_cast<const T*>(p.k), base + n0, min(BN, L - n0), p.kv_stride, kcol,
                                       p.hd, p.vec);
    flash::load_tile_stage<T, BN, HDB>(ks + BN * LDS, static_cast<const T*>(p.v), base + n0, min(BN, L - n0),
                                       p.kv_stride, kcol, p.hd, p.vec);
  };
  flash::load_tile_stage<T, BM, HDB>(Qs, static_cast<const T*>(p.q), base + m0, valid, p.q_stride, qcol, p.hd, p.vec);
  flash::load_tile_stage<T, BM, HDB>(dOs, static_cast<const T*>(p.dout), base + m0, valid, p.q_stride, qcol, p.hd, p.vec);
  load_kv(0, 0);
  flash::cp_async_commit();

  const int row0 = m0 + warp * 16 + lane / 4;  // this lane's rows: row0, row0 + 8
  float lse2[2], dd[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int i = row0 + 8 * r;
    lse2[r] = i < L ? p.lse_in[(base + i) * p.hq + h] * flash::kLog2e : 0.0f;
    dd[r] = i < L ? p.delta[(base + i) * p.hq + h] : 0.0f;
  }
  float dq[NTO][4];
  flash::zero(dq);
  int stage = 0;  // two-stage pipeline over the key tiles, as in the forward
  for (int n0 = 0; n0 < kv_end; n0 += BN, stage ^= 1) {
    if (n0 + BN < kv_end) {
      load_kv(stage ^ 1, n0 + BN);
      flash::cp_async_commit();
      flash::cp_async_wait<1>();
    } else {
      flash::cp_async_wait<0>();
    }
    __syncthreads();
    const bf16* Ks = KVs + stage * 2 * BN * LDS;
    const bf16* Vs = Ks + BN * LDS;
    float s[NTS][4], dp[NTS][4];
    flash::zero(s);
    flash::zero(dp);
    flash::mma_rows_rowsT<HDB, NTS, LDS>(s, Qs + warp * 16 * LDS, Ks, lane);
    flash::mma_rows_rowsT<HDB, NTS, LDS>(dp, dOs + warp * 16 * LDS, Vs, lane);
    const bool mask = flash_tile_needs_mask(m0, BM, n0, BN, L);
#pragma unroll
    for (int nt = 0; nt < NTS; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int r = e >> 1;
        float pv = exp2f(s[nt][e] * p.scale_log2 - lse2[r]);
        if (mask) {
          const int i = m0 + warp * 16 + frag_c_row(lane, e), j = n0 + frag_c_col(lane, nt, e);
          if (j > i || j >= L || i >= L) pv = 0.0f;
        }
        s[nt][e] = pv * (dp[nt][e] - dd[r]);  // dS
      }
    uint32_t pa[NTS / 2][4];
    flash::to_a_frags<NTS>(pa, s);
    flash::mma_regs_rows<NTS / 2, NTO, LDS>(dq, pa, Ks, lane);  // dQ += dS K
    __syncthreads();  // this stage is free for the next prefetch
  }
  const int wrow = m0 + warp * 16;
  flash::store_rows<T, NTO>(dq, static_cast<T*>(p.dq), base + wrow, L - wrow, p.q_stride, qcol, p.hd, p.scale, p.scale,
                            p.pairs, lane);
}

template <class T, int HDB>
void launch_backward(const Ctx& c, Params prm, const FlashPlan& plan, float* delta) {
  const int64_t warps = prm.n * prm.hq;
  flash_delta_kernel<T><<<static_cast<unsigned>(ceil_div(warps, 8)), 256, 0, c.stream>>>(prm, delta);
  HAYATE_CUDA_CHECK_LAUNCH("attention_backward delta");
  prm.delta = delta;

  auto dkv = flash_dkv_kernel<T, HDB>;
  if (plan.smem_dkv > 48 * 1024)
    HAYATE_CUDA_CHECK(cudaFuncSetAttribute(dkv, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(plan.smem_dkv)));
  prm.tiles = plan.kv_tiles;
  dkv<<<dim3(static_cast<unsigned>(plan.grid_kv), static_cast<unsigned>(prm.hkv)), kFlashThreads, plan.smem_dkv, c.stream>>>(prm);
  HAYATE_CUDA_CHECK_LAUNCH("attention_backward dk/dv");

  auto dqk = flash_dq_kernel<T, HDB>;
  if (plan.smem_dq > 48 * 1024)
    HAYATE_CUDA_CHECK(cudaFuncSetAttribute(dqk, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(plan.smem_dq)));
  prm.tiles = plan.q_tiles;
  dqk<<<dim3(static_cast<unsigned>(plan.grid_q), static_cast<unsigned>(prm.hq)), kFlashThreads, plan.smem_dq, c.stream>>>(prm);
  HAYATE_CUDA_CHECK_LAUNCH("attention_backward dq");
}

}  // namespace

void attention_backward(const Ctx& c, Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v,
                        Tensor out, Tensor lse, const VarlenMeta& m) {
  const char* op = "attention_backward";
  const int64_t num_seqs = check_varlen_attention(op, {{&q, "q"}, {&dq, "dq"}, {&dout, "dout"}, {&out, "out"}},
                                                  {{&k, "k"}, {&v, "v"}, {&dk, "dk"}, {&dv, "dv"}}, lse, m);
  const int64_t n = q.rows();
  const FlashPlan plan = plan_flash_attention(op, n, num_seqs, m.max_seqlen, m.num_q_heads, m.num_kv_heads, m.head_dim);
  need(op, std::max(plan.smem_dkv, plan.smem_dq) <= c.smem_optin,
       "needs " + std::to_string(std::max(plan.smem_dkv, plan.smem_dq)) +
           " bytes of shared memory per block; this GPU allows " + std::to_string(c.smem_optin));
  check_cu_seqlens(c, m.cu_seqlens, n, plan.max_seqlen);
  if (n == 0 || num_seqs == 0) return;
  float* delta = static_cast<float*>(c.ws->get(plan.workspace_bytes));
  flash::Params prm = flash::make_params(m, n, plan.kv_tiles, dtype_size(q.dtype),
                                         {q.data, k.data, v.data, out.data, dout.data, dq.data, dk.data, dv.data});
  prm.q = q.data;
  prm.k = k.data;
  prm.v = v.data;
  prm.out = out.data;
  prm.dout = dout.data;
  prm.dq = dq.data;
  prm.dk = dk.data;
  prm.dv = dv.data;
  prm.lse_in = lse.as<const float>();
  const bool b16 = q.dtype == DType::BF16;
  count_kernel_variant(flash_variant(true, plan.hd_bucket));
  if (plan.hd_bucket == 64) {
    b16 ? launch_backward<bf16, 64>(c, prm, plan, delta) : launch_backward<float, 64>(c, prm, plan, delta);
  } else {
    b16 ? launch_backward<bf16, 128>(c, prm, plan, delta) : launch_backward<float, 128>(c, prm, plan, delta);
  }
}

}  // namespace hayate::gpu
