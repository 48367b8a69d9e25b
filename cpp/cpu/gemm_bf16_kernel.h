// Products with frozen bf16 weights on CPUs with AVX512_BF16. vdpbf16ps multiplies 32 bf16 pairs and adds
// them into 16 f32 lanes: twice the f32 FMA rate, and half the bytes of weight per multiply-add. The f32
// activations are rounded to bf16 (nearest even) when packed; accumulation is f32.
//   gemm_nt_dot: out = alpha * x w^T + beta * out (+ bias), w [N, K]: projections, the lm head.
//   gemm_nn_dot: out = alpha * x w + beta * out, w [K, N]: gradients through a frozen weight (dx = dout W).
// Both keep gemm_kernel.h's batch invariance: every output element is accumulated in one fixed order over
// K whatever M, the tile it falls in or the thread count (threads split output columns, never K; the
// K blocks of gemm_nn_dot are fixed and the running sums stay f32 between them, so blocking changes nothing).
//
// Included after gemm_kernel.h wherever that is compiled (gemm.cpp, isa/kernels.inc); empty unless the
// compiler targets AVX512_BF16. Same linkage rules as gemm_kernel.h: internal only.
#pragma once
#include "cpu/gemm_kernel.h"

#if defined(__AVX512BF16__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define HAYATE_GEMM_BF16_DOT 1

namespace hayate::cpu {
namespace {
namespace gemm_bf16 {

using gemm_kernel::thread_scratch;
using gemm_kernel::imax;
using gemm_kernel::imin;
using gemm_kernel::store_dot_tile;

constexpr int kBf16Lanes = 32;  // bf16 values per 512-bit vector

inline __m512bh as_bh(__m512i v) { return (__m512bh)v; }  // same bits, the type vdpbf16ps wants

// n (0..32) f32 values from p rounded to bf16 into one vector, zeros past n.
inline __m512i load_as_bf16(const float* p, int n) {
  const __mmask16 lo = n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
  const __mmask16 hi = n >= 32 ? __mmask16(0xFFFF) : n <= 16 ? __mmask16(0) : __mmask16((1u << (n - 16)) - 1);
  const __m512 a = _mm512_maskz_loadu_ps(lo, p), b = _mm512_maskz_loadu_ps(hi, p + 16);
  return (__m512i)_mm512_cvtne2ps_pbh(b, a);  // a -> words 0..15, b -> 16..31
}
inline __mmask32 first_words(int64_t n) {
  return n >= 32 ? __mmask32(0xFFFFFFFFu) : n <= 0 ? __mmask32(0) : __mmask32((1u << n) - 1);
}

// ---- out = alpha * x w^T (+ ...): dot products along K, as gemm_kernel.h ------------------------------
// Lane l of an accumulator sums the pairs (k, k+1) = (2l, 2l+1) + 32c over the chunks c of K in order;
// vsum then adds the 16 lanes in a fixed tree. Tile 5 x 5: 25 accumulators + 5 x + 1 w of 32 registers.
constexpr int kNtRows = 5, kNtCols = 5;

struct NtJob {
  int64_t chunks;        // of 32 along K; the last is partial when tail_n > 0
  int64_t tail_n;
  const uint16_t* x;     // packed: panel p of kNtRows rows at x + p * panel_stride, as [chunk][row][32]
  int64_t panel_stride;  // in bf16 values
  const uint16_t* w;     // [N, ldw]
  int64_t ldw;
  float* out;
  int64_t ldo;
  float alpha, beta;
  const float* bias;
};

template <int R, int C>
void nt_tile(const NtJob& jb, int64_t p, int64_t i0, int64_t j0) {
  __m512 acc[R][C];
  HAYATE_UNROLL for (int r = 0; r < R; ++r) HAYATE_UNROLL for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
  const uint16_t* xp = jb.x + p * jb.panel_stride;
  const uint16_t* w = jb.w + j0 * jb.ldw;
  const int64_t full = jb.tail_n ? jb.chunks - 1 : jb.chunks;
  for (int64_t k = 0; k < full; ++k) {
    __m512i xr[R];
    HAYATE_UNROLL for (int r = 0; r < R; ++r) xr[r] = _mm512_load_si512(xp + (k * R + r) * kBf16Lanes);
    HAYATE_UNROLL for (int c = 0; c < C; ++c) {
      const __m512i wc = _mm512_loadu_si512(w + c * jb.ldw + k * kBf16Lanes);
      HAYATE_UNROLL for (int r = 0; r < R; ++r) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], as_bh(xr[r]), as_bh(wc));
    }
  }
  if (jb.tail_n) {  // w's words past K load as zero (x is zero-padded): the same instruction on every lane
    const int64_t k = full;
    const __mmask32 m = first_words(jb.tail_n);
    __m512i xr[R];
    HAYATE_UNROLL for (int r = 0; r < R; ++r) xr[r] = _mm512_load_si512(xp + (k * R + r) * kBf16Lanes);
    HAYATE_UNROLL for (int c = 0; c < C; ++c) {
      const __m512i wc = _mm512_maskz_loadu_epi16(m, w + c * jb.ldw + k * kBf16Lanes);
      HAYATE_UNROLL for (int r = 0; r < R; ++r) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], as_bh(xr[r]), as_bh(wc));
    }
  }
  store_dot_tile(acc, jb.out, jb.ldo, i0, j0, jb.alpha, jb.beta, jb.bias);
}

// One row of x times w's rows j0..j1-1: each output is the chain every nt_tile computes per output (the
// chunks in order, then the masked tail, one accumulator), computed one after another with no call per output and eight
// chunks per loop trip. Fewer instructions per cache line of w keep more of w's lines in flight: batch-1
// decode's products ran 12-14% faster at 60-75 GB/s (measured in-process).
// Not inlined: inside the caller's lambda the loop counter was spilled to vector registers.
__attribute__((noinline)) void nt_row(const NtJob& jb, int64_t p, int64_t i0, int64_t j0, int64_t j1) {
  constexpr int kUnroll = 8;
  const uint16_t* xp = jb.x + p * jb.panel_stride;
  const int64_t full = jb.tail_n ? jb.chunks - 1 : jb.chunks;
  const __mmask32 tail = first_words(jb.tail_n);
  for (int64_t j = j0; j < j1; ++j) {
    const uint16_t* w = jb.w + j * jb.ldw;
    __m512 acc[1][1] = {{_mm512_setzero_ps()}};
    __m512& a = acc[0][0];
    int64_t k = 0;
    for (; k + kUnroll <= full; k += kUnroll) {
      HAYATE_UNROLL for (int u = 0; u < kUnroll; ++u)
        a = _mm512_dpbf16_ps(a, as_bh(_mm512_load_si512(xp + (k + u) * kBf16Lanes)), as_bh(_mm512_loadu_si512(w + (k + u) * kBf16Lanes)));
    }
    for (; k < full; ++k)
      a = _mm512_dpbf16_ps(a, as_bh(_mm512_load_si512(xp + k * kBf16Lanes)), as_bh(_mm512_loadu_si512(w + k * kBf16Lanes)));
    if (jb.tail_n)
      a = _mm512_dpbf16_ps(a, as_bh(_mm512_load_si512(xp + full * kBf16Lanes)), as_bh(_mm512_maskz_loadu_epi16(tail, w + full * kBf16Lanes)));
    store_dot_tile(acc, jb.out, jb.ldo, i0, j, jb.alpha, jb.beta, jb.bias);
  }
}

using NtTileFn = void (*)(const NtJob&, int64_t, int64_t, int64_t);
template <int C, int... R>
struct NtTiles {
  NtTileFn fn[sizeof...(R)];
};
// Tiles of 2 .. kNtRows rows (fn[rows - 2]); a single row is nt_row's.
template <int C, int... R>
constexpr NtTiles<C, R...> nt_tiles(std::integer_sequence<int, R...>) {
  return {{&nt_tile<R + 2, C>...}};
}
constexpr auto kNtWide = nt_tiles<kNtCols>(std::make_integer_sequence<int, kNtRows - 1>{});
constexpr auto kNtColumn = nt_tiles<1>(std::make_integer_sequence<int, kNtRows - 1>{});

void gemm_nt_dot(ThreadPool& pool, int64_t M, int64_t N, int64_t K, float alpha, const float* x, int64_t ldx,
                 const uint16_t* w, int64_t ldw, float beta, float* out, int64_t ldo, const float* bias) {
  const int64_t panels = (M + kNtRows - 1) / kNtRows, chunks = (K + kBf16Lanes - 1) / kBf16Lanes;
  const int64_t stride = chunks * kNtRows * kBf16Lanes;
  uint16_t* xp = reinterpret_cast<uint16_t*>(thread_scratch(gemm_kernel::kPackedBf16, static_cast<size_t>(panels * stride / 2 + 16)));
  pool.parallel_for(panels, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t rows = imin(kNtRows, M - p * kNtRows);
      for (int64_t c = 0; c < chunks; ++c) {
        const int n = static_cast<int>(imin(kBf16Lanes, K - c * kBf16Lanes));
        for (int64_t r = 0; r < rows; ++r)
          _mm512_store_si512(xp + p * stride + (c * rows + r) * kBf16Lanes,
                             load_as_bf16(x + (p * kNtRows + r) * ldx + c * kBf16Lanes, n));
      }
    }
  }, imax(1, 32768 / imax(1, K * kNtRows)));

  const NtJob jb{chunks, K % kBf16Lanes, xp, stride, w, ldw, out, ldo, alpha, beta, bias};
  // Rows in blocks of ~256 KB of packed x, so a block stays in L2 while every column block of w passes it.
  const int64_t panels_per_block = imax(1, (256 << 10) / imax(1, stride * 2));
  const int64_t blocks = (N + kNtCols - 1) / kNtCols;
  const int64_t min_blocks = imax(1, 65536 / imax(1, M * K * kNtCols));
  auto run_blocks = [&](int64_t b0, int64_t b1) {
    if (M == 1) {  // batch-1 decode: the chunk's columns in one pass
      nt_row(jb, 0, 0, b0 * kNtCols, imin(N, b1 * kNtCols));
      return;
    }
    for (int64_t q0 = 0; q0 < panels; q0 += panels_per_block) {
      const int64_t q1 = imin(panels, q0 + panels_per_block);
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t j = b * kNtCols, cols = imin(kNtCols, N - j);
        for (int64_t p = q0; p < q1; ++p) {
          const int64_t rows = imin(kNtRows, M - p * kNtRows);
          // A single row takes w one row at a time: one sequential stream, which the hardware prefetcher
          // follows better than five rows read side by side (5-7% more bandwidth for a decode step's
          // products, measured in-process). Each output's arithmetic is the same in every tile.
          if (rows == 1) {
            nt_row(jb, p, p * kNtRows, j, j + cols);
          } else if (cols == kNtCols) {
            kNtWide.fn[rows - 2](jb, p, p * kNtRows, j);
          } else {
            for (int64_t c = 0; c < cols; ++c) kNtColumn.fn[rows - 2](jb, p, p * kNtRows, j + c);
          }
        }
      }
    }
  };
  // With one block of rows (decode, small batches) the product streams w once and is bound by memory;
  // columns are then handed out dynamically so that neither thread waits on the other's share.
  if (panels <= panels_per_block) {
    pool.parallel_for_dynamic(blocks, run_blocks, min_blocks);
  } else {
    pool.parallel_for(blocks, run_blocks, min_blocks);
  }
}

// ---- out = alpha * x w (+ beta out), w [K, N] ------------------------------------------------------
// Outer products: columns of out lie along the lanes. For each block of kNnKBlock rows of K and 64 columns,
// rows k and k+1 of w are interleaved into (w[k][j], w[k+1][j]) pairs once (vpunpck{l,h}wd, within 128-bit
// lanes, so an accumulator holds a permuted set of columns, put back in order when stored) into a 64 KB
// panel that every row tile then reads from L1/L2; x contributes the broadcast pair (x[i][k], x[i][k+1]).
// Each element sums the pairs of K in increasing order. Tile: 6 rows x 64 columns = 24 accumulators + 4
// panel vectors + 1 broadcast of 32 registers. The running sums wait in an f32 scratch between K blocks.
constexpr int kNnRows = 6, kNnCols = 64;
constexpr int64_t kNnKBlock = 512;  // even

struct NnJob {
  int64_t M, N, K;
  const uint16_t* x;  // x rounded to bf16, [M][Kp], Kp = K rounded up to even, zero-padded
  int64_t Kp;
  const uint16_t* w;  // [K, ldw]
  int64_t ldw;
  float* acc;         // [M][Np] running sums in lane order (Np = N rounded up to kNnCols); null with one K block
  int64_t Np;
  float* out;
  int64_t ldo;
  float alpha, beta;
};

// Column of out that lane d of accumulator q (0..3) of a 64-column tile holds.
inline int nn_column(int q, int d) { return (q / 2) * 32 + (d / 4) * 8 + (q % 2) * 4 + d % 4; }

// The panel of rows [k0, k1) x columns [j0, j0 + 64) of w: for each pair of rows, 4 vectors of 16 pairs.
void nn_pack_panel(const NnJob& jb, int64_t j0, int64_t k0, int64_t k1, __m512i* panel) {
  const int64_t cols = imin(kNnCols, jb.N - j0);
  const __mmask32 m0 = first_words(cols), m1 = first_words(cols - 32);
  for (int64_t k = k0; k < k1; k += 2, panel += 4) {
    const uint16_t* w0 = jb.w + k * jb.ldw + j0;
    const __m512i a0 = _mm512_maskz_loadu_epi16(m0, w0), a1 = _mm512_maskz_loadu_epi16(m1, w0 + 32);
    __m512i b0 = _mm512_setzero_si512(), b1 = _mm512_setzero_si512();
    if (k + 1 < jb.K) {  // the pair's second row (an odd K's last pair has none: zeros, as x's padding)
      b0 = _mm512_maskz_loadu_epi16(m0, w0 + jb.ldw);
      b1 = _mm512_maskz_loadu_epi16(m1, w0 + jb.ldw + 32);
    }
    _mm512_store_si512(panel + 0, _mm512_unpacklo_epi16(a0, b0));
    _mm512_store_si512(panel + 1, _mm512_unpackhi_epi16(a0, b0));
    _mm512_store_si512(panel + 2, _mm512_unpacklo_epi16(a1, b1));
    _mm512_store_si512(panel + 3, _mm512_unpackhi_epi16(a1, b1));
  }
}

template <int R>
void nn_tile(const NnJob& jb, const __m512i* panel, int64_t i0, int64_t j0, int64_t k0, int64_t k1) {
  __m512 acc[R][4];
  if (k0 == 0) {
    HAYATE_UNROLL for (int r = 0; r < R; ++r) HAYATE_UNROLL for (int q = 0; q < 4; ++q) acc[r][q] = _mm512_setzero_ps();
  } else {
    HAYATE_UNROLL for (int r = 0; r < R; ++r) HAYATE_UNROLL for (int q = 0; q < 4; ++q)
      acc[r][q] = _mm512_load_ps(jb.acc + (i0 + r) * jb.Np + j0 + q * 16);
  }
  const uint16_t* xr = jb.x + i0 * jb.Kp;
  for (int64_t k = k0; k < k1; k += 2, panel += 4) {
    HAYATE_UNROLL for (int r = 0; r < R; ++r) {
      int32_t pair;
      std::memcpy(&pair, xr + r * jb.Kp + k, sizeof pair);
      const __m512i xp = _mm512_set1_epi32(pair);
      HAYATE_UNROLL for (int q = 0; q < 4; ++q)
        acc[r][q] = _mm512_dpbf16_ps(acc[r][q], as_bh(xp), as_bh(_mm512_load_si512(panel + q)));
    }
  }
  if (k1 < jb.K) {  // more K blocks to come
    HAYATE_UNROLL for (int r = 0; r < R; ++r) HAYATE_UNROLL for (int q = 0; q < 4; ++q)
      _mm512_store_ps(jb.acc + (i0 + r) * jb.Np + j0 + q * 16, acc[r][q]);
    return;
  }
  const int64_t cols = imin(kNnCols, jb.N - j0);
  for (int r = 0; r < R; ++r) {
    alignas(64) float lanes[4][16];
    float ordered[kNnCols];
    HAYATE_UNROLL for (int q = 0; q < 4; ++q) _mm512_store_ps(lanes[q], acc[r][q]);
    for (int q = 0; q < 4; ++q)
      for (int d = 0; d < 16; ++d) ordered[nn_column(q, d)] = lanes[q][d];
    float* o = jb.out + (i0 + r) * jb.ldo + j0;
    for (int64_t c = 0; c < cols; ++c) o[c] = jb.alpha * ordered[c] + (jb.beta != 0.0f ? jb.beta * o[c] : 0.0f);
  }
}

using NnTileFn = void (*)(const NnJob&, const __m512i*, int64_t, int64_t, int64_t, int64_t);
template <int... R>
struct NnTiles {
  NnTileFn fn[sizeof...(R)];
};
template <int... R>
constexpr NnTiles<R...> nn_tiles(std::integer_sequence<int, R...>) {
  return {{&nn_tile<R + 1>...}};
}
constexpr auto kNnTiles = nn_tiles(std::make_integer_sequence<int, kNnRows>{});

void gemm_nn_dot(ThreadPool& pool, int64_t M, int64_t N, int64_t K, float alpha, const float* x, int64_t ldx,
                 const uint16_t* w, int64_t ldw, float beta, float* out, int64_t ldo) {
  const int64_t Kp = (K + 1) / 2 * 2, tiles = (N + kNnCols - 1) / kNnCols, Np = tiles * kNnCols;
  uint16_t* xb = reinterpret_cast<uint16_t*>(thread_scratch(gemm_kernel::kNnX, static_cast<size_t>(M * Kp / 2 + 16)));
  pool.parallel_for(M, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      uint16_t* d = xb + i * Kp;
      for (int64_t k = 0; k < K; k += kBf16Lanes) {
        const int n = static_cast<int>(imin(kBf16Lanes, K - k));
        _mm512_mask_storeu_epi16(d + k, first_words(n), load_as_bf16(x + i * ldx + k, n));
      }
      if (Kp != K) d[K] = 0;
    }
  }, imax(1, 16384 / imax(1, K)));
  const bool blocked = K > kNnKBlock;
  float* acc = blocked ? thread_scratch(gemm_kernel::kNnAcc, static_cast<size_t>(M * Np)) : nullptr;
  const NnJob jb{M, N, K, xb, Kp, w, ldw, acc, Np, out, ldo, alpha, beta};
  const int64_t min_tiles = imax(1, 65536 / imax(1, M * K * kNnCols));
  pool.parallel_for(tiles, [&](int64_t t0, int64_t t1) {
    __m512i* panel = reinterpret_cast<__m512i*>(thread_scratch(gemm_kernel::kNnPanel, kNnKBlock / 2 * 4 * 16));  // 64 KB
    for (int64_t k0 = 0; k0 < K; k0 += kNnKBlock) {
      const int64_t k1 = imin(K, k0 + kNnKBlock);
      for (int64_t t = t0; t < t1; ++t) {
        nn_pack_panel(jb, t * kNnCols, k0, k1, panel);
        for (int64_t i = 0; i < M; i += kNnRows) kNnTiles.fn[imin(kNnRows, M - i) - 1](jb, panel, i, t * kNnCols, k0, k1);
      }
    }
  }, min_tiles);
}

}  // namespace gemm_bf16
}  // namespace
}  // namespace hayate::cpu
#endif
