// The built-in GEMM kernel of gemm.cpp: out = alpha * x w^T + beta * out (+ bias) over packed-x panels with
// a register-blocked micro-kernel whose vector width and tile follow the instruction set this file is
// compiled for (__AVX512F__, __AVX2__ + __FMA__, or scalar). A -march=native build includes it in gemm.cpp;
// a portable build (HAYATE_CPU_DISPATCH) compiles it once per instruction set (isa/avx512.cpp, isa/avx2.cpp,
// isa/generic.cpp, each with its own flags) and gemm.cpp picks one when the library loads (isa/kernels.h).
//
// Everything here has internal linkage (an unnamed namespace) and uses no inline function or template with
// external linkage (std::min, std::array, std::to_string ...): such a function would be emitted as a weak
// symbol in every ISA's object file and the linker would keep one copy for the whole addon, possibly the
// AVX-512 one, which a CPU without AVX-512 cannot run. scripts/prebuild.mjs checks the prebuild for it.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "thread_pool.h"

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 extract/cast intrinsics start from an "undefined" vector and trip -Wuninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace hayate::cpu {

// Throws kOutOfMemory for a scratch allocation that failed (gemm.cpp: out of line, compiled once).
[[noreturn]] void gemm_scratch_failed(size_t bytes);

namespace {
namespace gemm_kernel {

inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

// ---- the per-element recipe ----------------------------------------------------------------------
// out[i,j] = sum_k x[i,k] w[j,k] is computed the same way for every element: lane l of one vector
// register accumulates x[i,k] * w[j,k] for k = l, l + L, l + 2L, ... in increasing k with fused
// multiply-adds (the last, partial chunk of K padded with zeros), then vsum adds the L lanes in a fixed
// tree. Every tile shape below follows exactly this recipe and threads split only N, so neither M, nor
// the tile or edge path an element falls in, nor the thread count changes a bit of it.
#if defined(__AVX512F__)
constexpr int kLanes = 16;
using vec = __m512;
using lanemask = __mmask16;
inline vec vzero() { return _mm512_setzero_ps(); }
inline vec vload(const float* p) { return _mm512_loadu_ps(p); }
inline vec vload_aligned(const float* p) { return _mm512_load_ps(p); }
inline lanemask first_lanes(int n) { return static_cast<__mmask16>((1u << n) - 1); }
inline vec vload_first(const float* p, lanemask m) { return _mm512_maskz_loadu_ps(m, p); }  // others 0
inline vec vfma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
inline float sum8(__m256 v) {
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}
inline float vsum(vec v) {
  return sum8(_mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
}
// 5x5: 25 accumulators + 5 x vectors + 1 w vector of the 32 zmm registers (measured best of 4x4 .. 12x2)
constexpr int kRows = 5, kCols = 5;
// bf16 weights (the upper half of an f32): widened in registers, so the recipe is exactly the f32 one
inline vec widen_bf16(__m256i v) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16)); }
inline vec load_w(const uint16_t* p) { return widen_bf16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
inline vec load_w_first(const uint16_t* p, lanemask m, int) { return widen_bf16(_mm256_maskz_loadu_epi16(m, p)); }
#elif defined(__AVX2__) && defined(__FMA__)
constexpr int kLanes = 8;
using vec = __m256;
using lanemask = __m256i;
inline vec vzero() { return _mm256_setzero_ps(); }
inline vec vload(const float* p) { return _mm256_loadu_ps(p); }
inline vec vload_aligned(const float* p) { return _mm256_load_ps(p); }
inline lanemask first_lanes(int n) { return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }
inline vec vload_first(const float* p, lanemask m) { return _mm256_maskload_ps(p, m); }  // others 0
inline vec vfma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
inline float vsum(vec v) {
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}
constexpr int kRows = 3, kCols = 4;  // 12 accumulators + 3 + 1 of the 16 ymm registers
inline vec widen_bf16(__m128i v) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16)); }
inline vec load_w(const uint16_t* p) { return widen_bf16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
inline vec load_w_first(const uint16_t* p, lanemask, int n) {  // AVX2 has no 16-bit masked load
  uint16_t t[kLanes] = {};
  for (int i = 0; i < n; ++i) t[i] = p[i];
  return load_w(t);
}
#else
constexpr int kLanes = 1;
struct vec {
  float v;
};
struct lanemask {};
inline vec vzero() { return {0.0f}; }
inline vec vload(const float* p) { return {*p}; }
inline vec vload_aligned(const float* p) { return {*p}; }
inline lanemask first_lanes(int) { return {}; }
inline vec vload_first(const float* p, lanemask) { return {*p}; }  // never used: K % 1 == 0
inline vec vfma(vec a, vec b, vec c) {
#if defined(__FP_FAST_FMAF) || defined(FP_FAST_FMAF)
  return {::fmaf(a.v, b.v, c.v)};  // explicit, so no call site differs by compiler contraction (not std::fma: see the top)
#else
  return {a.v * b.v + c.v};  // no hardware FMA: nothing to contract into
#endif
}
inline float vsum(vec v) { return v.v; }
constexpr int kRows = 4, kCols = 2;
inline vec load_w(const uint16_t* p) {
  const uint32_t bits = static_cast<uint32_t>(*p) << 16;
  vec r;
  std::memcpy(&r.v, &bits, sizeof bits);
  return r;
}
inline vec load_w_first(const uint16_t* p, lanemask, int) { return load_w(p); }
#endif
inline vec load_w(const float* p) { return vload(p); }
inline vec load_w_first(const float* p, lanemask m, int) { return vload_first(p, m); }

#define HAYATE_UNROLL _Pragma("GCC unroll 16")

// Grow-only scratch, one per thread and slot, kept for the next call: packing buffers of a few MB are above
// glibc's mmap threshold, so allocating them per call faulted in fresh zeroed pages every time (keeping
// them made a qwen3-0.6b training step 10% faster). Slots: 0 the f32 kernel's packed x; 1-4 gemm_bf16_kernel.h.
enum ScratchSlot { kPackedF32 = 0, kPackedBf16 = 1, kNnX = 2, kNnAcc = 3, kNnPanel = 4, kScratchSlots = 5 };
float* thread_scratch(ScratchSlot slot, size_t n) {
  struct Slots {
    float* p[kScratchSlots] = {};
    size_t n[kScratchSlots] = {};
    ~Slots() {
      for (float* q : p) std::free(q);
    }
  };
  thread_local Slots s;
  if (s.n[slot] < n) {
    std::free(s.p[slot]);
    s.n[slot] = 0;
    s.p[slot] = static_cast<float*>(std::aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64));
    if (!s.p[slot]) gemm_scratch_failed(n * sizeof(float));
    s.n[slot] = n;
  }
  return s.p[slot];
}

// ---- packed x ---------------------------------------------------------------------------------------
// Rows of x in panels of kRows: panel p holds rows p*kRows .. p*kRows+rows-1 as [chunk][row][kLanes],
// zero-padded past K, so the kernel reads x as one contiguous, aligned stream.
struct PackedX {
  float* data = nullptr;
  int64_t chunks = 0;        // ceil(K / kLanes)
  int64_t panel_stride = 0;  // chunks * kRows * kLanes floats between panel starts
  const float* panel(int64_t p) const { return data + p * panel_stride; }
};

// x(i, k) = x[i * rs + k * cs]: row-major x has cs == 1; a transposed operand is packed from its stored form.
void pack_x_panels(const PackedX& px, const float* x, int64_t rs, int64_t cs, int64_t M, int64_t K, int64_t p0, int64_t p1) {
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t rows = imin(kRows, M - p * kRows);
    float* dst = px.data + p * px.panel_stride;
    for (int64_t c = 0; c < px.chunks; ++c) {
      const int64_t k0 = c * kLanes, n = imin(kLanes, K - k0);
      for (int64_t r = 0; r < rows; ++r) {
        float* d = dst + (c * rows + r) * kLanes;
        const float* s = x + (p * kRows + r) * rs + k0 * cs;
        if (cs == 1) {
          std::memcpy(d, s, static_cast<size_t>(n) * sizeof(float));
        } else {
          for (int64_t k = 0; k < n; ++k) d[k] = s[k * cs];
        }
        for (int64_t k = n; k < kLanes; ++k) d[k] = 0.0f;
      }
    }
  }
}

// ---- micro-kernel -----------------------------------------------------------------------------------
// WT: float, or uint16_t for bf16 weights (widened on load: the same recipe on the rounded weights).
template <class WT>
struct Job {
  int64_t chunks;     // of kLanes along K; the last one is partial when has_tail
  bool has_tail;
  lanemask tail;      // lanes of the last chunk that lie inside K
  int tail_n;         // how many
  const WT* w;        // [N, ldw]
  int64_t ldw;
  float* out;         // [M, ldo]
  int64_t ldo;
  float alpha, beta;
  const float* bias;  // [N] or nullptr
};

// The end of a dot-product tile (this kernel's and gemm_bf16_kernel.h's): each accumulator's lanes summed in
// vsum's fixed order, then out[i0 + r][j0 + c] = alpha * sum (+ beta * out) (+ bias[j0 + c]).
template <int R, int C>
void store_dot_tile(const vec (&acc)[R][C], float* out, int64_t ldo, int64_t i0, int64_t j0, float alpha, float beta,
                    const float* bias) {
  for (int r = 0; r < R; ++r) {
    float* o = out + (i0 + r) * ldo + j0;
    for (int c = 0; c < C; ++c) {
      float v = alpha * vsum(acc[r][c]);
      if (beta != 0.0f) v += beta * o[c];
      if (bias) v += bias[j0 + c];
      o[c] = v;
    }
  }
}

// R rows of packed x (panel at xp, first row i0) times C rows of w (first j0) into out[i0.., j0..].
template <class WT, int R, int C>
void tile(const Job<WT>& jb, const float* xp, int64_t i0, int64_t j0) {
  vec acc[R][C];
  HAYATE_UNROLL for (int r = 0; r < R; ++r) HAYATE_UNROLL for (int c = 0; c < C; ++c) acc[r][c] = vzero();
  const WT* w = jb.w + j0 * jb.ldw;
  const int64_t full = jb.has_tail ? jb.chunks - 1 : jb.chunks;
  for (int64_t k = 0; k < full; ++k) {
    vec xr[R];
    HAYATE_UNROLL for (int r = 0; r < R; ++r) xr[r] = vload_aligned(xp + (k * R + r) * kLanes);
    HAYATE_UNROLL for (int c = 0; c < C; ++c) {
      const vec wc = load_w(w + c * jb.ldw + k * kLanes);
      HAYATE_UNROLL for (int r = 0; r < R; ++r) acc[r][c] = vfma(xr[r], wc, acc[r][c]);
    }
  }
  if (jb.has_tail) {  // same FMA on every lane, with w's lanes past K loaded as zero (x is zero-padded)
    const int64_t k = full;
    vec xr[R];
    HAYATE_UNROLL for (int r = 0; r < R; ++r) xr[r] = vload_aligned(xp + (k * R + r) * kLanes);
    HAYATE_UNROLL for (int c = 0; c < C; ++c) {
      const vec wc = load_w_first(w + c * jb.ldw + k * kLanes, jb.tail, jb.tail_n);
      HAYATE_UNROLL for (int r = 0; r < R; ++r) acc[r][c] = vfma(xr[r], wc, acc[r][c]);
    }
  }
  store_dot_tile(acc, jb.out, jb.ldo, i0, j0, jb.alpha, jb.beta, jb.bias);
}

template <class WT>
using TileFn = void (*)(const Job<WT>&, const float*, int64_t, int64_t);
template <class WT, int C, int... R>
struct TileTable {
  TileFn<WT> fn[sizeof...(R)];
};
template <class WT, int C, int... R>
constexpr TileTable<WT, C, R...> tile_table(std::integer_sequence<int, R...>) {
  return {{&tile<WT, R + 1, C>...}};
}
// .fn[rows - 1]: full-width tiles and single-column tiles (the N edge) for 1..kRows rows (a plain array:
// std::array's members are templates with external linkage, see the top of this file)
template <class WT>
constexpr auto kWideTiles = tile_table<WT, kCols>(std::make_integer_sequence<int, kRows>{});
template <class WT>
constexpr auto kColumnTiles = tile_table<WT, 1>(std::make_integer_sequence<int, kRows>{});

// Column blocks [b0, b1) of kCols columns, all rows: one block of w stays in cache while x streams past.
template <class WT>
void run_column_blocks(const Job<WT>& jb, const PackedX& px, int64_t M, int64_t N, int64_t b0, int64_t b1) {
  const int64_t panels = (M + kRows - 1) / kRows;
  for (int64_t b = b0; b < b1; ++b) {
    const int64_t j = b * kCols, cols = imin(kCols, N - j);
    for (int64_t p = 0; p < panels; ++p) {
      const int64_t rows = imin(kRows, M - p * kRows);
      if (cols == kCols) {
        kWideTiles<WT>.fn[rows - 1](jb, px.panel(p), p * kRows, j);
      } else {
        for (int64_t c = 0; c < cols; ++c) kColumnTiles<WT>.fn[rows - 1](jb, px.panel(p), p * kRows, j + c);
      }
    }
  }
}

// The built-in kernel: out = alpha * x w^T + beta * out (+ bias); x(i, k) = x[i * xrs + k * xcs], w [N, ldw].
template <class WT>
void gemm_builtin_t(ThreadPool& pool, int64_t M, int64_t N, int64_t K, float alpha, const float* x, int64_t xrs,
                    int64_t xcs, const WT* w, int64_t ldw, float beta, float* out, int64_t ldo, const float* bias) {
  const int64_t panels = (M + kRows - 1) / kRows;
  PackedX px;
  px.chunks = (K + kLanes - 1) / kLanes;
  px.panel_stride = px.chunks * kRows * kLanes;
  px.data = thread_scratch(kPackedF32, static_cast<size_t>(panels * px.panel_stride));
  pool.parallel_for(panels, [&](int64_t p0, int64_t p1) { pack_x_panels(px, x, xrs, xcs, M, K, p0, p1); },
                    imax(1, 32768 / imax(1, K * kRows)));

  const int tail_n = static_cast<int>(K % kLanes);
  Job<WT> jb{px.chunks, tail_n != 0, first_lanes(tail_n), tail_n, w, ldw, out, ldo, alpha, beta, bias};
  const int64_t blocks = (N + kCols - 1) / kCols;
  // at least ~64k multiply-adds per thread, or waking threads costs more than it saves
  const int64_t min_blocks = imax(1, 65536 / imax(1, M * K * kCols));
  // handed out dynamically: a block's outputs do not depend on which thread runs it, and at small M the
  // product streams w from memory, where static halves leave one thread waiting on the slower one
  pool.parallel_for_dynamic(blocks, [&](int64_t b0, int64_t b1) { run_column_blocks(jb, px, M, N, b0, b1); }, min_blocks);
}

void gemm_builtin(ThreadPool& pool, int64_t M, int64_t N, int64_t K, float alpha, const float* x, int64_t xrs,
                  int64_t xcs, const float* w, int64_t ldw, float beta, float* out, int64_t ldo, const float* bias) {
  gemm_builtin_t(pool, M, N, K, alpha, x, xrs, xcs, w, ldw, beta, out, ldo, bias);
}
// The same with bf16 weights widened to f32 in registers: bit for bit the f32 kernel on the rounded weights.
[[maybe_unused]] void gemm_builtin_widen_bf16(ThreadPool& pool, int64_t M, int64_t N, int64_t K, float alpha, const float* x, int64_t ldx,
                             const uint16_t* w, int64_t ldw, float beta, float* out, int64_t ldo, const float* bias) {
  gemm_builtin_t(pool, M, N, K, alpha, x, ldx, 1, w, ldw, beta, out, ldo, bias);
}

#if defined(__AVX512F__)
constexpr const char* kIsaName = "AVX-512";
#elif defined(__AVX2__) && defined(__FMA__)
constexpr const char* kIsaName = "AVX2";
#else
constexpr const char* kIsaName = "scalar";
#endif
constexpr int kTileRows = kRows, kTileCols = kCols;

}  // namespace gemm_kernel
}  // namespace
}  // namespace hayate::cpu
