// GEMM for linear() and gemm(): out = alpha op(a) op(b) + beta out (+ bias) (+ fp32 addend), bf16 inputs on
// the tensor cores (mma.sync m16n8k16), fp32 accumulation, every transpose.
//
// Tiling. A block computes a BM x BN tile of out with (BM/WM) x (BN/WN) warps; each warp owns a WM x WN
// sub-tile as (WM/16) x (WN/8) m16n8 accumulators in registers. K advances in tiles of BK = 32 staged in
// shared memory as [rows][BK + 8] bf16 (K contiguous for both operands); the 16-byte row padding makes
// the 8 row addresses of every ldmatrix land in distinct bank groups. Tile shapes (plan.h):
//   16x64  (4 warps 1x4)  decode batches, M <= 32
//   64x64  (4 warps 2x2)  mid-sized M, or when 128x128 tiles would leave SMs idle
//   128x128 (8 warps 2x4) prefill and training products
// Fast path (cp.async 16-byte copies, 3-stage pipeline: loads of tile t+2 overlap the MMAs of tile t) for
// bf16, 16-byte aligned operands in three layouts (plan.h, GemmLayout):
//   NT  a [M, K], b [N, K]  linear() and every forward product: both staged [rows][BK + 8], ldmatrix
//   NN  a [M, K], b [K, N]  dx = dout W, t = dout B, dhidden = dz lm_head: b staged [BK][BN + 8] as it lies
//                           in memory and read with ldmatrix.trans
//   TN  a [K, M], b [K, N]  weight gradients dA = t^T x, dB = dout^T xa: both staged [BK][rows + 8], .trans
// (staging copies and fragment addresses are plan.h functions, replayed on the host by
// test_cuda_host_logic.cpp). Otherwise (F32 operands, TT, odd strides) a generic loader converts /
// transposes element by element into the K-contiguous staging: correct for any shape, slower.
//
// Accumulators. Batch-invariant products (the forward: NT and generic) keep two accumulator sets for the
// chunk fold below (~200 registers at 128x128: one block per SM). The backward's gradient products (NN, TN)
// need no batch invariance: one accumulator set over the block's whole k range (128 registers, two blocks
// per SM at 128x128), and when the output tiles cannot fill the GPU the k-tiles are cut into contiguous
// slices (split-K, grid.z; plan_gemm sizes them to reach the SM count) whose fp32 partials the reduce
// kernel adds in slice order: deterministic, but dependent on the plan (M, SM count).
//
// Numerics and batch invariance. K is cut into fixed chunks of kGemmChunkK = 256. A chunk is accumulated
// from zero by the MMAs in k order; chunk sums are added in order ("tot += acc" with _rn intrinsics). For
// skinny products (decode: M <= 256 and too few tiles to fill the GPU) each chunk runs in its own block
// (grid.z) and writes an fp32 partial; gemm_reduce_kernel adds the partials in chunk order. Both paths
// perform exactly the same additions, so every output element is bitwise the same for any M: a row of
// linear() never depends on the rest of the batch (the contract in backend.h), while decode still gets
// enough blocks to stream the weights at full bandwidth.
//
// Concatenated K (lora_linear, GemmOperands::a2/b2): out = alpha [op(a) | op(a2)] [op(b) ; op(b2)] in ONE
// launch. The k-tile loop runs over the K tiles of (a, b), then over the K2 tiles of (a2, b2), with the
// same loaders (a tile index past kt_main selects the second pair) and the same MMAs; the extra region
// is its own chunk(s) (plan.h, gemm_tile_closes_chunk), so the fixed summation order and the split /
// non-split equivalence hold as for the plain GEMM. This is how the LoRA update rides in the base GEMM:
// no [M, N] intermediate, one rounding of out, and x / dout streamed by the main loop as for bare linear.
//
// cuBLAS (HAYATE_WITH_CUBLAS, gemm impl "cublas"): cublasGemmEx with fp32 compute, for comparison in the
// benchmark; it is not batch-invariant (its algorithm choice depends on M).
#include "cuda_check.h"
#include "device_utils.cuh"
#include "kernels.h"
#include "variant_stats.h"

#ifdef HAYATE_WITH_CUBLAS
#include <cublas_v2.h>
#endif

namespace hayate::gpu {

namespace {

constexpr int BK = kGemmBK;
constexpr int LDS = BK + 8;                 // shared row stride (bf16 elements): 80 bytes
static_assert(kGemmChunkK % BK == 0, "chunks are whole k-tiles");

struct GemmParams {
  const void* a;
  const void* b;
  const void* a2;  // optional concatenated pair (K2 > 0), same transposes as a / b
  const void* b2;
  void* out;
  const void* bias;
  const float* addend;
  float* partials;  // split: [splits][M][N]
  DType ta, tb, ta2, tb2, tout, tbias;
  bool trans_a, trans_b, split;
  int64_t M, N, K, lda, ldb, ldo;
  int64_t K2, lda2, ldb2, kt_main;  // kt_main = k-tiles of the main pair; tiles past it read a2 / b2
  int64_t splits;                   // partial sets when split (chunks, or slices for single-accumulator plans)
  float alpha, beta;
};

__device__ __forceinline__ uint32_t smem_u32(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

// 16-byte global -> shared copy; src_size 0 zero-fills (rows/columns past the matrix edge).
// The PTX below needs sm_80 (cp.async, bf16 mma). Older targets compile to a trap: the backend refuses
// devices below compute capability 8.0 before any kernel runs.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#define HAYATE_SM80_OR_TRAP(code) __trap()
#else
#define HAYATE_SM80_OR_TRAP(code) code
#endif

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool pred) {
  HAYATE_SM80_OR_TRAP(asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(smem)), "l"(gmem),
                                   "r"(pred ? 16 : 0)));
}
__device__ __forceinline__ void cp_async_commit() { HAYATE_SM80_OR_TRAP(asm volatile("cp.async.commit_group;\n" ::)); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  HAYATE_SM80_OR_TRAP(asm volatile("cp.async.wait_group %0;\n" ::"n"(N)));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  HAYATE_SM80_OR_TRAP(asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                                   : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                                   : "r"(smem_u32(p))));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
  HAYATE_SM80_OR_TRAP(asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                                   : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                                   : "r"(smem_u32(p))));
}

__device__ __forceinline__ void mma_bf16_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  HAYATE_SM80_OR_TRAP(asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1)));
}

// The one epilogue of both paths (direct and split + reduce): alpha * sum (+ beta * out) (+ bias) (+ addend).
__device__ __forceinline__ void epilogue_store(const GemmParams& p, int64_t m, int64_t n, float v) {
  float r = __fmul_rn(p.alpha, v);
  if (p.beta != 0.0f) r = __fadd_rn(r, __fmul_rn(p.beta, load_as_float(p.out, p.tout, m * p.ldo + n)));
  if (p.bias) r = __fadd_rn(r, load_as_float(p.bias, p.tbias, n));
  if (p.addend) r = __fadd_rn(r, p.addend[m * p.N + n]);
  store_from_float(p.out, p.tout, m * p.ldo + n, r);
}

// Register budget: the two-accumulator (FOLD) 128x128 kernel needs ~200 registers (1 block of 8 warps per
// SM); the single-accumulator one is bounded to 2 blocks per SM (128 registers).
template <int BM, int BN, int WM, int WN, bool FOLD>
constexpr int gemm_min_blocks() {
  return (!FOLD && BM == 128 && BN == 128) ? 2 : 1;
}

// FAST: cp.async pipeline; A_K / B_K: the operand is K-contiguous (else M- / N-contiguous, staged [k][rows]
// and read by ldmatrix.trans). FOLD: two accumulator sets and the fixed chunk fold (batch-invariant);
// otherwise one set over the block's whole k range (slices when split). The generic loader is <false,
// true, true, true>: it converts any layout into the K-contiguous staging.
template <int BM, int BN, int WM, int WN, bool FAST, bool A_K, bool B_K, bool FOLD>
__global__ void __launch_bounds__((BM / WM) * (BN / WN) * 32, (gemm_min_blocks<BM, BN, WM, WN, FOLD>()))
    gemm_kernel(GemmParams p) {
  constexpr int WARPS_N = BN / WN;
  constexpr int THREADS = (BM / WM) * WARPS_N * 32;
  constexpr int MT = WM / 16, NT = WN / 8;
  constexpr int STAGES = FAST ? kGemmStages : 1;
  constexpr int A_STAGE = static_cast<int>(gemm_stage_elems(BM, A_K)), B_STAGE = static_cast<int>(gemm_stage_elems(BN, B_K));
  constexpr int LD_A = gemm_stage_ld(BM, A_K), LD_B = gemm_stage_ld(BN, B_K);  // staging row strides
  static_assert(NT % 2 == 0, "B fragments are loaded two n8 tiles per ldmatrix.x4");
  static_assert(FAST || (A_K && B_K && FOLD), "the generic loader stages K-contiguous and folds");
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* As = reinterpret_cast<bf16*>(smem);  // [STAGES][A_STAGE]
  bf16* Bs = As + STAGES * A_STAGE;          // [STAGES][B_STAGE]

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int wm = warp / WARPS_N, wn = warp % WARPS_N;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * BM, n0 = static_cast<int64_t>(blockIdx.x) * BN;
  const int64_t k_tiles = p.kt_main + gemm_k_tiles(p.K2);
  int64_t kt_begin = 0, kt_end = k_tiles;
  if (p.split) {
    if constexpr (FOLD) {
      kt_begin = gemm_chunk_tile_begin(blockIdx.z, p.kt_main);
      kt_end = gemm_chunk_tile_end(blockIdx.z, p.kt_main, k_tiles);
    } else {
      kt_begin = gemm_slice_tile_begin(blockIdx.z, p.splits, k_tiles);
      kt_end = gemm_slice_tile_begin(blockIdx.z + 1, p.splits, k_tiles);
    }
  }
  const int64_t ntiles = kt_end - kt_begin;

  constexpr int TM = FOLD ? MT : 1, TN = FOLD ? NT : 1;  // the fold's running totals (unused otherwise)
  float acc[MT][NT][4], tot[TM][TN][4];
#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int k = 0; k < 4; ++k) acc[i][j][k] = 0.0f;
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j)
#pragma unroll
      for (int k = 0; k < 4; ++k) tot[i][j][k] = 0.0f;

  // Operand pair of k-tile kt: (a, b) below kt_main, (a2, b2) past it, with its local k offset.
  struct Src {
    const void *a, *b;
    DType ta, tb;
    int64_t lda, ldb, K, k0;
  };
  auto src_of = [&](int64_t kt) -> Src {
    if (kt < p.kt_main) return {p.a, p.b, p.ta, p.tb, p.lda, p.ldb, p.K, kt * BK};
    return {p.a2, p.b2, p.ta2, p.tb2, p.lda2, p.ldb2, p.K2, (kt - p.kt_main) * BK};
  };
  // Fast path: 16-byte chunks (8 bf16) along each operand's contiguous dimension. K-contiguous: whole
  // chunks are in or out (K % 8 == 0). M/N-contiguous: a chunk is in when its first element is (the
  // up to 7 past the extent lie inside the row, gemm_operand_fast_ok, and feed only unstored outputs).
  auto load_async = [&](int stage, int64_t kt) {
    const Src s = src_of(kt);
    bf16* as = As + stage * A_STAGE;
    bf16* bs = Bs + stage * B_STAGE;
    for (int c = threadIdx.x; c < BM * (BK / 8); c += THREADS) {
      const GemmStageCopy q = gemm_stage_copy(c, BM, A_K);
      const GemmCopySrc src = gemm_copy_src(q, A_K, m0, s.k0, p.M, s.K, s.lda);
      cp_async16(as + q.r * LD_A + q.col, static_cast<const bf16*>(s.a) + src.offset, src.ok);
    }
    for (int c = threadIdx.x; c < BN * (BK / 8); c += THREADS) {
      const GemmStageCopy q = gemm_stage_copy(c, BN, B_K);
      const GemmCopySrc src = gemm_copy_src(q, B_K, n0, s.k0, p.N, s.K, s.ldb);
      cp_async16(bs + q.r * LD_B + q.col, static_cast<const bf16*>(s.b) + src.offset, src.ok);
    }
  };
  // Generic path: element loads along the operand's contiguous dimension (coalesced), converted to
  // bf16 and stored K-contiguous; out-of-range elements are zeros.
  auto load_sync = [&](int64_t kt) {
    const Src s = src_of(kt);
    const int64_t k0 = s.k0;
    for (int e = threadIdx.x; e < BM * BK; e += THREADS) {
      int r, kk;
      if (p.trans_a) {
        kk = e / BM;
        r = e % BM;
      } else {
        r = e / BK;
        kk = e % BK;
      }
      const int64_t gm = m0 + r, gk = k0 + kk;
      float v = 0.0f;
      if (gm < p.M && gk < s.K) v = load_as_float(s.a, s.ta, p.trans_a ? gk * s.lda + gm : gm * s.lda + gk);
      As[r * LDS + kk] = __float2bfloat16_rn(v);
    }
    for (int e = threadIdx.x; e < BN * BK; e += THREADS) {
      int c, kk;
      if (p.trans_b) {
        c = e / BK;
        kk = e % BK;
      } else {
        kk = e / BN;
        c = e % BN;
      }
      const int64_t gn = n0 + c, gk = k0 + kk;
      float v = 0.0f;
      if (gn < p.N && gk < s.K) v = load_as_float(s.b, s.tb, p.trans_b ? gn * s.ldb + gk : gk * s.ldb + gn);
      Bs[c * LDS + kk] = __float2bfloat16_rn(v);
    }
  };
  auto compute = [&](int stage) {
    const bf16* as = As + stage * A_STAGE;
    const bf16* bs = Bs + stage * B_STAGE;
#pragma unroll
    for (int ks = 0; ks < BK; ks += 16) {
      uint32_t af[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        const int mr = wm * WM + mt * 16;
        if constexpr (A_K)  // A 16x16: lanes 0-15 rows 0-15 at k, lanes 16-31 the same rows at k+8
          ldmatrix_x4(af[mt], as + (mr + frag_a_row(lane)) * LDS + ks + frag_a_col(lane));
        else  // stored [k][m]: .trans gives the same fragments (plan.h, frag_a_trans_*)
          ldmatrix_x4_trans(af[mt], as + (ks + frag_a_trans_row(lane)) * LD_A + mr + frag_a_trans_col(lane));
      }
      uint32_t bfr[NT][2];
#pragma unroll
      for (int np = 0; np < NT / 2; ++np) {  // two n8 x k16 B tiles: (n 0-7, k), (n 0-7, k+8), (n 8-15, k), (n 8-15, k+8)
        uint32_t r4[4];
        const int nr = wn * WN + np * 16;
        if constexpr (B_K)
          ldmatrix_x4(r4, bs + (nr + frag_bt_row(lane)) * LDS + ks + frag_bt_col(lane));
        else
          ldmatrix_x4_trans(r4, bs + (ks + frag_b_trans_row(lane)) * LD_B + nr + frag_b_trans_col(lane));
        bfr[2 * np][0] = r4[0];
        bfr[2 * np][1] = r4[1];
        bfr[2 * np + 1][0] = r4[2];
        bfr[2 * np + 1][1] = r4[3];
      }
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) mma_bf16_16816(acc[mt][nt], af[mt], bfr[nt][0], bfr[nt][1]);
    }
  };
  auto fold_if_chunk_end = [&](int64_t kt) {
    if constexpr (FOLD) {
      if (!gemm_tile_closes_chunk(kt, p.kt_main, k_tiles)) return;
#pragma unroll
      for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j)
#pragma unroll
          for (int k = 0; k < 4; ++k) {
            tot[i][j][k] = __fadd_rn(tot[i][j][k], acc[i][j][k]);
            acc[i][j][k] = 0.0f;
          }
    } else {
      (void)kt;
    }
  };

  if constexpr (FAST) {
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
      if (s < ntiles) load_async(s, kt_begin + s);
      cp_async_commit();
    }
    for (int64_t t = 0; t < ntiles; ++t) {
      cp_async_wait<STAGES - 2>();  // tile t has landed (this thread's copies) ...
      __syncthreads();              // ... everyone's, and everyone is done with the stage refilled below
      const int64_t next = t + STAGES - 1;
      if (next < ntiles) load_async(static_cast<int>(next % STAGES), kt_begin + next);
      cp_async_commit();
      compute(static_cast<int>(t % STAGES));
      fold_if_chunk_end(kt_begin + t);
    }
    cp_async_wait<0>();
  } else {
    for (int64_t t = 0; t < ntiles; ++t) {
      __syncthreads();
      load_sync(kt_begin + t);
      __syncthreads();
      compute(0);
      fold_if_chunk_end(kt_begin + t);
    }
  }

  // C fragment (m16n8): c0,c1 at (row lane/4, cols 2*(lane%4) + {0,1}); c2,c3 eight rows below.
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const int64_t m = m0 + wm * WM + mt * 16 + frag_c_row(lane, k);
        const int64_t n = n0 + wn * WN + frag_c_col(lane, nt, k);
        if (m >= p.M || n >= p.N) continue;
        float v;
        if constexpr (FOLD)
          v = tot[mt][nt][k];
        else
          v = acc[mt][nt][k];
        if (p.split) {
          p.partials[(static_cast<int64_t>(blockIdx.z) * p.M + m) * p.N + n] = v;
        } else {
          epilogue_store(p, m, n, v);
        }
      }
}

// Adds the split partials in order (chunk order: the same additions as the single-block fold; or slice
// order for single-accumulator plans).
__global__ void gemm_reduce_kernel(GemmParams p) {
  const int64_t total = p.M * p.N;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float t = 0.0f;
    for (int64_t c = 0; c < p.splits; ++c) t = __fadd_rn(t, p.partials[c * total + idx]);
    epilogue_store(p, idx / p.N, idx % p.N, t);
  }
}

template <int BM, int BN, int WM, int WN, bool FAST, bool A_K, bool B_K, bool FOLD>
void launch_tile(const Ctx& c, const GemmParams& p, const GemmPlan& plan) {
  auto kernel = gemm_kernel<BM, BN, WM, WN, FAST, A_K, B_K, FOLD>;
  if (plan.smem_bytes > 48 * 1024)
    HAYATE_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(plan.smem_bytes)));
  const dim3 grid(static_cast<unsigned>(plan.tiles_n), static_cast<unsigned>(plan.tiles_m),
                  static_cast<unsigned>(plan.split ? plan.splits : 1));
  kernel<<<grid, plan.shape.threads(), plan.smem_bytes, c.stream>>>(p);
}

template <bool FAST, bool A_K, bool B_K, bool FOLD>
void launch_tiles(const Ctx& c, const GemmParams& p, const GemmPlan& plan) {
  switch (plan.tile) {
    case GemmTile::S16x64: launch_tile<16, 64, 16, 16, FAST, A_K, B_K, FOLD>(c, p, plan); break;
    case GemmTile::M64x64: launch_tile<64, 64, 32, 32, FAST, A_K, B_K, FOLD>(c, p, plan); break;
    case GemmTile::L128x128: launch_tile<128, 128, 64, 32, FAST, A_K, B_K, FOLD>(c, p, plan); break;
  }
}

// The instantiated variants: generic (fold), NT (fold: linear, the forward), NN and TN (one accumulator
// set: the backward's gradient products). Plans outside these (an invariant NN/TN request, a
// non-invariant NT one) run the nearest instantiated kernel with the same or stricter numerics.
void launch_plan(const Ctx& c, const GemmParams& p, const GemmPlan& plan) {
  switch (plan.layout) {
    case GemmLayout::Generic: launch_tiles<false, true, true, true>(c, p, plan); break;
    case GemmLayout::NT: launch_tiles<true, true, true, true>(c, p, plan); break;
    case GemmLayout::NN: launch_tiles<true, true, false, false>(c, p, plan); break;
    case GemmLayout::TN: launch_tiles<true, false, false, false>(c, p, plan); break;
  }
}

#ifdef HAYATE_WITH_CUBLAS
__global__ void add_bias_kernel(void* out, DType tout, const void* bias, DType tb, int64_t M, int64_t N) {
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < M * N;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x)
    store_from_float(out, tout, idx, load_as_float(out, tout, idx) + load_as_float(bias, tb, idx % N));
}

const char* cublas_status_name(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_ERROR";
  }
}

void cublas_check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    fail(s == CUBLAS_STATUS_ALLOC_FAILED ? ErrorCode::kOutOfMemory : ErrorCode::kBackend,
         std::string("cuBLAS error ") + cublas_status_name(s) + " in " + what);
}

// Row-major out[M,N] = op(a) op(b) is column-major out^T = op(b)^T op(a)^T: pass b first. A row-major
// matrix stored [R, C] is the column-major [C, R] with leading dimension C.
bool cublas_gemm(const Ctx& c, const GemmOperands& g, const GemmDims& d) {
  if (!c.cublas || g.addend || !g.a2.empty() || g.a.dtype != g.b.dtype) return false;
  cublasHandle_t h = static_cast<cublasHandle_t>(c.cublas);
  cublas_check(cublasSetStream(h, c.stream), "cublasSetStream");
  auto ty = [](DType t) { return t == DType::BF16 ? CUDA_R_16BF : CUDA_R_32F; };
  const cublasOperation_t op_b = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_a = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const float alpha = g.alpha, beta = g.beta;
  cublas_check(cublasGemmEx(h, op_b, op_a, static_cast<int>(d.N), static_cast<int>(d.M), static_cast<int>(d.K), &alpha,
                            g.b.data, ty(g.b.dtype), static_cast<int>(g.b.cols()), g.a.data, ty(g.a.dtype),
                            static_cast<int>(g.a.cols()), &beta, g.out.data, ty(g.out.dtype), static_cast<int>(d.N),
                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
               "cublasGemmEx");
  if (!g.bias.empty()) {
    const Launch1D l = plan_elementwise(d.M * d.N, c.num_sms);
    add_bias_kernel<<<static_cast<unsigned>(l.blocks), l.threads, 0, c.stream>>>(g.out.data, g.out.dtype, g.bias.data,
                                                                                  g.bias.dtype, d.M, d.N);
    HAYATE_CUDA_CHECK_LAUNCH("gemm bias");
  }
  return true;
}
#endif

}  // namespace

bool cublas_available() {
#ifdef HAYATE_WITH_CUBLAS
  return true;
#else
  return false;
#endif
}

void* cublas_create() {
#ifdef HAYATE_WITH_CUBLAS
  cublasHandle_t h = nullptr;
  cublas_check(cublasCreate(&h), "cublasCreate");
  return h;
#else
  fail(ErrorCode::kBackend, "this build has no cuBLAS (the CUDA toolkit's cuBLAS was not found at build time)");
#endif
}

void cublas_destroy(void* handle) {
#ifdef HAYATE_WITH_CUBLAS
  if (handle) cublasDestroy(static_cast<cublasHandle_t>(handle));
#else
  (void)handle;
#endif
}

int64_t gemm_extra_k(const GemmOperands& g, const GemmDims& d) {
  if (g.a2.empty() && g.b2.empty()) return 0;
  const char* op = "gemm";
  need(op, !g.a2.empty() && !g.b2.empty(), "a2 and b2 come together");
  need_float(op, g.a2, "a2");
  need_float(op, g.b2, "b2");
  need(op, g.a2.ndim == 2 && g.b2.ndim == 2, "a2 / b2 must be 2-D");
  const int64_t M2 = g.trans_a ? g.a2.shape[1] : g.a2.shape[0];
  const int64_t K2 = g.trans_a ? g.a2.shape[0] : g.a2.shape[1];
  const int64_t K2b = g.trans_b ? g.b2.shape[1] : g.b2.shape[0];
  const int64_t N2 = g.trans_b ? g.b2.shape[0] : g.b2.shape[1];
  need(op, M2 == d.M && N2 == d.N && K2 == K2b,
       "concatenated operands do not match: a2 " + g.a2.shape_str() + ", b2 " + g.b2.shape_str() + " for [" +
           std::to_string(d.M) + ", " + std::to_string(d.N) + "]");
  need(op, K2 < (int64_t(1) << 31), "matrix too large");
  return K2;
}

void gemm(const Ctx& c, const GemmOperands& g, const GemmDims& d, GemmBackend impl) {
  if (d.M == 0 || d.N == 0) return;
  need("gemm", d.K < (int64_t(1) << 31) && d.M < (int64_t(1) << 31) && d.N < (int64_t(1) << 31), "matrix too large");
#ifdef HAYATE_WITH_CUBLAS
  if (impl == GemmBackend::Cublas && d.K > 0 && g.lda == 0 && g.ldb == 0 && cublas_gemm(c, g, d)) return;
#else
  (void)impl;
#endif
  GemmParams p{};
  p.a = g.a.data;
  p.b = g.b.data;
  p.out = g.out.data;
  p.bias = g.bias.empty() ? nullptr : g.bias.data;
  p.addend = g.addend;
  p.ta = g.a.dtype;
  p.tb = g.b.dtype;
  p.tout = g.out.dtype;
  p.tbias = g.bias.empty() ? DType::F32 : g.bias.dtype;
  p.trans_a = g.trans_a;
  p.trans_b = g.trans_b;
  p.M = d.M;
  p.N = d.N;
  p.K = d.K;
  p.lda = g.lda > 0 ? g.lda : g.a.cols();
  p.ldb = g.ldb > 0 ? g.ldb : g.b.cols();
  need("gemm", p.lda >= g.a.cols() && p.ldb >= g.b.cols(), "row stride below the row length");
  p.ldo = d.N;
  p.alpha = g.alpha;
  p.beta = g.beta;
  p.kt_main = gemm_k_tiles(d.K);
  const int64_t K2 = gemm_extra_k(g, d);  // validates a2 / b2
  GemmLayout layout = gemm_fast_layout(g.a.dtype == DType::BF16, g.b.dtype == DType::BF16, g.trans_a, g.trans_b, d.M,
                                       d.N, d.K, p.lda, p.ldb, g.a.data, g.b.data);
  if (K2 > 0) {
    p.a2 = g.a2.data;
    p.b2 = g.b2.data;
    p.ta2 = g.a2.dtype;
    p.tb2 = g.b2.dtype;
    p.K2 = K2;
    p.lda2 = g.a2.cols();
    p.ldb2 = g.b2.cols();
    if (gemm_fast_layout(g.a2.dtype == DType::BF16, g.b2.dtype == DType::BF16, g.trans_a, g.trans_b, d.M, d.N, K2,
                         p.lda2, p.ldb2, g.a2.data, g.b2.data) != layout)
      layout = GemmLayout::Generic;
  } else {
    p.a2 = p.a;  // never read (no tiles past kt_main)
    p.b2 = p.b;
    p.ta2 = p.ta;
    p.tb2 = p.tb;
    p.lda2 = p.lda;
    p.ldb2 = p.ldb;
  }
  GemmPlan plan = plan_gemm(GemmProblem{d.M, d.N, d.K, K2, layout, g.invariant}, gemm_plan_sms(c.num_sms));
  need("gemm", plan.tiles_m < 65536 && plan.splits < 65536, "too many rows (" + std::to_string(d.M) + ") for one launch");
  p.splits = plan.splits;
  p.split = plan.split;
  if (plan.split) p.partials = static_cast<float*>(c.ws->get(plan.workspace_bytes));
  count_kernel_variant(gemm_variant_id(plan));
  launch_plan(c, p, plan);
  HAYATE_CUDA_CHECK_LAUNCH("gemm");
  if (plan.split) {
    const Launch1D l = plan_elementwise(d.M * d.N, c.num_sms);
    gemm_reduce_kernel<<<static_cast<unsigned>(l.blocks), l.threads, 0, c.stream>>>(p);
    HAYATE_CUDA_CHECK_LAUNCH("gemm reduce");
  }
}

}  // namespace hayate::gpu
