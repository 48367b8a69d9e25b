// Device helpers of the fused varlen attention kernels (attention_forward.cu, attention_backward.cu):
// parameters, tile loads into shared memory, and warp-level bf16 tensor-core products (mma.sync m16n8k16,
// fp32 accumulate) over 16-row slices of shared tiles.
//
// Fragment layouts (PTX ISA, mma.m16n8k16 .bf16): with g = lane / 4 and c = lane % 4,
//   A (16x16, row):  a0 = (g, 2c..2c+1)  a1 = (g+8, 2c..)  a2 = (g, 2c+8..)  a3 = (g+8, 2c+8..)
//   B (16x8, col):   b0 = (k 2c..2c+1, n g)  b1 = (k 2c+8.., n g)
//   C (16x8, f32):   c0,c1 = (g, 2c..2c+1)   c2,c3 = (g+8, 2c..2c+1)
// so the C fragments of two adjacent n8 tiles are exactly the A fragment of one k16 step: a score tile
// S (16 x 8NT) turns into the A operand of P V without leaving registers (to_a_frags).
// Shared tiles are [rows][hd_bucket + 8] bf16: the 16-byte pad puts the 8 row addresses of every ldmatrix
// phase in distinct bank groups.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>
#include <initializer_list>

#include "backend.h"
#include "device_utils.cuh"
#include "plan.h"

namespace hayate::gpu::flash {

// The PTX below needs sm_80 (bf16 mma, ldmatrix); older targets compile to a trap (the backend refuses
// devices below compute capability 8.0 before any kernel runs).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#define HAYATE_FLASH_SM80(code) __trap()
#else
#define HAYATE_FLASH_SM80(code) code
#endif

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

struct Params {
  const void* q;
  const void* k;
  const void* v;
  const void* out;   // forward output (backward input)
  const void* dout;
  void* o;           // forward: output
  float* lse;        // forward: output [n, hq] (natural log)
  const float* lse_in;
  const float* delta;  // backward: D = rowsum(dout * out) [n, hq]
  void* dq;
  void* dk;
  void* dv;
  const int32_t* cu;
  int64_t n;
  int64_t tiles;     // tiles per sequence of this kernel's grid.x (flash_tile)
  int hq, hkv, hd, group;
  int64_t q_stride, kv_stride;  // row widths: hq * hd, hkv * hd
  float scale;        // softmax scale
  float scale_log2;   // scale * log2(e): scores are exponentiated in base 2
  bool vec;           // 16-byte global loads (head_dim % 8 == 0, aligned bases)
  bool pairs;         // 2-element global stores (head_dim even, aligned bases)
};

__device__ __forceinline__ uint32_t smem_u32(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void* p) {
  HAYATE_FLASH_SM80(asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                                 : "r"(smem_u32(p))));
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], const void* p) {
  HAYATE_FLASH_SM80(asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                                 : "r"(smem_u32(p))));
}
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  HAYATE_FLASH_SM80(asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1)));
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (low 16 bits) = lo: the lower k index
  return *reinterpret_cast<const uint32_t*>(&v);
}

template <int NT>
__device__ __forceinline__ void zero(float (&a)[NT][4]) {
#pragma unroll
  for (int i = 0; i < NT; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) a[i][j] = 0.0f;
}

// acc (16 x 8NT) += A (16 x K) B^T: A = 16 rows at `a`, B = 8NT rows at `b`, both [rows][K] in shared memory
// with row stride LDS (K contiguous). Q K^T, K Q^T, dO V^T, V dO^T.
template <int K, int NT, int LDS>
__device__ __forceinline__ void mma_rows_rowsT(float (&acc)[NT][4], const bf16* a, const bf16* b, int lane) {
  static_assert(NT % 2 == 0 && K % 16 == 0, "whole fragments");
#pragma unroll
  for (int ks = 0; ks < K; ks += 16) {
    uint32_t af[4];  // lanes 0-15: rows 0-15 at k, lanes 16-31: the same rows at k + 8
    ldsm_x4(af, a + frag_a_row(lane) * LDS + ks + frag_a_col(lane));
#pragma unroll
    for (int np = 0; np < NT / 2; ++np) {
      // matrices: (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15) of this n16 pair
      uint32_t r[4];
      ldsm_x4(r, b + (np * 16 + frag_bt_row(lane)) * LDS + ks + frag_bt_col(lane));
      mma16816(acc[2 * np], af, r[0], r[1]);
      mma16816(acc[2 * np + 1], af, r[2], r[3]);
    }
  }
}

// acc (16 x 8NT) += P (16 x 16KT, A fragments in registers) B: B = [16KT rows (k)][8NT cols (n)] in shared
// memory (row stride LDS), read transposed by ldmatrix.trans. P V, P^T dO, dS^T Q, dS K.
template <int KT, int NT, int LDS>
__device__ __forceinline__ void mma_regs_rows(float (&acc)[NT][4], const uint32_t (&pa)[KT][4], const bf16* b, int lane) {
  static_assert(NT % 2 == 0, "whole fragments");
#pragma unroll
  for (int kt = 0; kt < KT; ++kt) {
#pragma unroll
    for (int np = 0; np < NT / 2; ++np) {
      // matrices: (k 0-7, n 0-7), (k 8-15, n 0-7), (k 0-7, n 8-15), (k 8-15, n 8-15)
      uint32_t r[4];
      ldsm_x4_trans(r, b + (kt * 16 + frag_b_trans_row(lane)) * LDS + np * 16 + frag_b_trans_col(lane));
      mma16816(acc[2 * np], pa[kt], r[0], r[1]);
      mma16816(acc[2 * np + 1], pa[kt], r[2], r[3]);
    }
  }
}

// C fragments of a 16 x 8NT tile -> bf16 A fragments of the same tile (k = its columns).
template <int NT>
__device__ __forceinline__ void to_a_frags(uint32_t (&pa)[NT / 2][4], const float (&s)[NT][4]) {
#pragma unroll
  for (int j = 0; j < NT / 2; ++j) {
    pa[j][0] = pack_bf16(s[2 * j][0], s[2 * j][1]);
    pa[j][1] = pack_bf16(s[2 * j][2], s[2 * j][3]);
    pa[j][2] = pack_bf16(s[2 * j + 1][0], s[2 * j + 1][1]);
    pa[j][3] = pack_bf16(s[2 * j + 1][2], s[2 * j + 1][3]);
  }
}

__device__ __forceinline__ bf16 to_bf16(float x) { return __float2bfloat16_rn(x); }
__device__ __forceinline__ bf16 to_bf16(bf16 x) { return x; }

// Eight consecutive elements as bf16 (one 16-byte shared store); src 16-byte aligned.
__device__ __forceinline__ uint4 load8_bf16(const bf16* src) { return *reinterpret_cast<const uint4*>(src); }
__device__ __forceinline__ uint4 load8_bf16(const float* src) {
  const float4 a = reinterpret_cast<const float4*>(src)[0], b = reinterpret_cast<const float4*>(src)[1];
  uint4 r;
  r.x = pack_bf16(a.x, a.y);
  r.y = pack_bf16(a.z, a.w);
  r.z = pack_bf16(b.x, b.y);
  r.w = pack_bf16(b.z, b.w);
  return r;
}

// Rows [row0, row0 + ROWS) of one head (columns [col0, col0 + hd)) of a [n, stride] tensor -> shared
// [ROWS][HDB + 8] bf16. Rows at or past `valid` and columns at or past hd are zeros: zero keys/values
// keep masked products finite (0 * garbage could be NaN) and zero columns pad head_dim to the bucket.
template <class T, int ROWS, int HDB>
__device__ __forceinline__ void load_tile(bf16* s, const T* g, int64_t row0, int valid, int64_t stride, int64_t col0,
                                          int hd, bool vec) {
  constexpr int LDS = HDB + 8, CH = HDB / 8;
  for (int idx = threadIdx.x; idx < ROWS * CH; idx += kFlashThreads) {
    const int r = idx / CH, d0 = (idx % CH) * 8;
    uint4 val = make_uint4(0u, 0u, 0u, 0u);
    if (r < valid && d0 < hd) {
      const T* src = g + (row0 + r) * stride + col0 + d0;
      if (vec && d0 + 8 <= hd) {
        val = load8_bf16(src);
      } else {
        __align__(16) bf16 tmp[8];
#pragma unroll
        for (int e = 0; e < 8; ++e) tmp[e] = d0 + e < hd ? to_bf16(src[e]) : __float2bfloat16_rn(0.0f);
        val = *reinterpret_cast<const uint4*>(tmp);
      }
    }
    *reinterpret_cast<uint4*>(s + r * LDS + d0) = val;
  }
}

// cp.async 16-byte global -> shared copy; src_size 0 (pred false) writes zeros and reads nothing.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool pred) {
  HAYATE_FLASH_SM80(asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(smem)), "l"(gmem),
                                 "r"(pred ? 16 : 0)));
}
__device__ __forceinline__ void cp_async_commit() { HAYATE_FLASH_SM80(asm volatile("cp.async.commit_group;\n" ::)); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  HAYATE_FLASH_SM80(asm volatile("cp.async.wait_group %0;\n" ::"n"(N)));
}

// load_tile as one stage of a two-stage pipeline: bf16 tensors with 16-byte rows are copied by cp.async
// (the copy of tile t+1 overlaps the tensor-core work on tile t; the caller commits the group and waits
// for it before a __syncthreads); anything else (F32: converted on the way; odd head_dim) is loaded
// synchronously by load_tile, for which the commit / wait are no-ops.
template <class T, int ROWS, int HDB>
__device__ __forceinline__ void load_tile_stage(bf16* s, const T* g, int64_t row0, int valid, int64_t stride,
                                                int64_t col0, int hd, bool vec) {
  if constexpr (sizeof(T) == 2) {
    if (vec) {  // hd % 8 == 0: a chunk is either wholly inside the head or wholly padding
      constexpr int LDS = HDB + 8, CH = HDB / 8;
      for (int idx = threadIdx.x; idx < ROWS * CH; idx += kFlashThreads) {
        const int r = idx / CH, d0 = (idx % CH) * 8;
        const bool ok = r < valid && d0 < hd;
        cp_async16(s + r * LDS + d0, ok ? g + (row0 + r) * stride + col0 + d0 : g, ok);
      }
      return;
    }
  }
  load_tile<T, ROWS, HDB>(s, g, row0, valid, stride, col0, hd, vec);
}

__device__ __forceinline__ void store2(float* p, float x, float y) { *reinterpret_cast<float2*>(p) = make_float2(x, y); }
__device__ __forceinline__ void store2(bf16* p, float x, float y) {
  *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(x, y);
}

// Writes a warp's 16 x HDB accumulator tile (times `mul0` for rows g, `mul1` for rows g + 8) to rows
// row0 + (0..15) of one head of a [n, stride] tensor; rows at or past `valid` (tile-relative) and columns
// at or past hd are not written.
template <class T, int NT>
__device__ __forceinline__ void store_rows(const float (&acc)[NT][4], T* g, int64_t row0, int valid, int64_t stride,
                                           int64_t col0, int hd, float mul0, float mul1, bool pairs, int lane) {
  const int r0 = frag_c_row(lane, 0), cc = frag_c_col(lane, 0, 0);
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int r = r0 + half * 8;
    if (r >= valid) continue;
    const float mul = half ? mul1 : mul0;
    T* row = g + (row0 + r) * stride + col0;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      const int c = nt * 8 + cc;
      if (c >= hd) continue;
      const float x = acc[nt][2 * half] * mul, y = acc[nt][2 * half + 1] * mul;
      if (pairs) {  // hd even: c + 1 < hd too
        store2(row + c, x, y);
      } else {
        row[c] = from_float<T>(x);
        if (c + 1 < hd) row[c + 1] = from_float<T>(y);
      }
    }
  }
}

// The sequence a block works on: [base, base + L) within [0, n). False (the block exits) for a sequence
// whose offsets are out of range (the cu_seqlens check kernel has flagged it) or empty.
__device__ __forceinline__ bool sequence_rows(const Params& p, int64_t seq, int64_t* base, int* L) {
  const int64_t b = p.cu[seq], e = p.cu[seq + 1];
  if (b < 0 || e <= b || e > p.n) return false;
  *base = b;
  *L = static_cast<int>(e - b);
  return true;
}

// Host: the parameters every flash kernel shares; vec / pairs from head_dim and the alignment of `ptrs`.
inline Params make_params(const VarlenMeta& m, int64_t n, int64_t tiles, size_t elem_size,
                           std::initializer_list<const void*> ptrs) {
  Params p{};
  p.cu = m.cu_seqlens.as<const int32_t>();
  p.n = n;
  p.tiles = tiles;
  p.hq = m.num_q_heads;
  p.hkv = m.num_kv_heads;
  p.hd = m.head_dim;
  p.group = m.num_q_heads / m.num_kv_heads;
  p.q_stride = static_cast<int64_t>(m.num_q_heads) * m.head_dim;
  p.kv_stride = static_cast<int64_t>(m.num_kv_heads) * m.head_dim;
  p.scale = m.scale;
  p.scale_log2 = m.scale * kLog2e;
  bool a16 = true, a_pair = true;
  for (const void* q : ptrs) {
    a16 = a16 && reinterpret_cast<uintptr_t>(q) % 16 == 0;
    a_pair = a_pair && reinterpret_cast<uintptr_t>(q) % (2 * elem_size) == 0;
  }
  p.vec = a16 && m.head_dim % 8 == 0;
  p.pairs = a_pair && m.head_dim % 2 == 0;
  return p;
}

}  // namespace hayate::gpu::flash
