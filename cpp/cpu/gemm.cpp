#include "gemm.h"

#include <algorithm>
#include <vector>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 reduction intrinsics start from an "undefined" vector and trip -Wuninitialized.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#ifdef HAYATE_WITH_BLAS
#include <cblas.h>
#endif

namespace hayate::cpu {

namespace {

// ---- per-element dot-product procedure shared by every tile shape ----------------------------------
// An element is sum_k x[k]*w[k] accumulated in one SIMD register over full vectors of K (in order),
// reduced, then the scalar tail added in order. Every kernel below follows exactly this recipe, so tile
// shape never changes the rounding.
#if defined(__AVX512F__)
constexpr int kLanes = 16;
using vec = __m512;
inline vec vzero() { return _mm512_setzero_ps(); }
inline vec vload(const float* p) { return _mm512_loadu_ps(p); }
inline vec vfma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
inline float vsum(vec v) { return _mm512_reduce_add_ps(v); }  // a fixed reduction sequence
constexpr int kRows = 4, kCols = 4;  // 16 accumulators of 32 zmm registers
#elif defined(__AVX2__) && defined(__FMA__)
constexpr int kLanes = 8;
using vec = __m256;
inline vec vzero() { return _mm256_setzero_ps(); }
inline vec vload(const float* p) { return _mm256_loadu_ps(p); }
inline vec vfma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
inline float vsum(vec v) {
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
  return _mm_cvtss_f32(s1);
}
constexpr int kRows = 3, kCols = 4;  // 12 accumulators of 16 ymm registers
#else
constexpr int kLanes = 1;
struct vec { float v; };
inline vec vzero() { return {0.0f}; }
inline vec vload(const float* p) { return {*p}; }
inline vec vfma(vec a, vec b, vec c) { return {a.v * b.v + c.v}; }
inline float vsum(vec v) { return v.v; }
constexpr int kRows = 2, kCols = 2;
#endif

struct Tile {
  int64_t K;
  float alpha, beta;
  const float* bias;
};

// R rows of x times C rows of w into an R x C block of out.
template <int R, int C>
inline void kernel(const Tile& t, const float* x, int64_t ldx, const float* w, int64_t ldw, float* out, int64_t ldo,
                   int64_t j0) {
  vec acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = vzero();
  const int64_t kv = t.K - t.K % kLanes;
  for (int64_t k = 0; k < kv; k += kLanes) {
    vec xr[R];
    for (int r = 0; r < R; ++r) xr[r] = vload(x + r * ldx + k);
    for (int c = 0; c < C; ++c) {
      vec wc = vload(w + c * ldw + k);
      for (int r = 0; r < R; ++r) acc[r][c] = vfma(xr[r], wc, acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) {
      float s = vsum(acc[r][c]);
      for (int64_t k = kv; k < t.K; ++k) s += x[r * ldx + k] * w[c * ldw + k];
      float* o = out + r * ldo + c;
      float v = t.alpha * s;
      if (t.beta != 0.0f) v += t.beta * *o;
      if (t.bias) v += t.bias[j0 + c];
      *o = v;
    }
  }
}

// Column range [j_begin, j_end) of out for all M rows; rows are blocked so a block of x stays in cache
// while the w rows of this range stream past it.
void builtin_range(const Tile& t, int64_t M, const float* x, int64_t ldx, const float* w, int64_t ldw, float* out,
                   int64_t ldo, int64_t j_begin, int64_t j_end) {
  constexpr int64_t kRowBlock = 64;
  for (int64_t i0 = 0; i0 < M; i0 += kRowBlock) {
    const int64_t i1 = std::min(M, i0 + kRowBlock);
    int64_t j = j_begin;
    for (; j + kCols <= j_end; j += kCols) {
      int64_t i = i0;
      for (; i + kRows <= i1; i += kRows)
        kernel<kRows, kCols>(t, x + i * ldx, ldx, w + j * ldw, ldw, out + i * ldo + j, ldo, j);
      for (; i < i1; ++i) kernel<1, kCols>(t, x + i * ldx, ldx, w + j * ldw, ldw, out + i * ldo + j, ldo, j);
    }
    for (; j < j_end; ++j) {
      int64_t i = i0;
      for (; i + kRows <= i1; i += kRows) kernel<kRows, 1>(t, x + i * ldx, ldx, w + j * ldw, ldw, out + i * ldo + j, ldo, j);
      for (; i < i1; ++i) kernel<1, 1>(t, x + i * ldx, ldx, w + j * ldw, ldw, out + i * ldo + j, ldo, j);
    }
  }
}

void transpose(const float* src, int64_t rows, int64_t cols, float* dst) {  // dst[c][r] = src[r][c]
  constexpr int64_t B = 32;
  for (int64_t r0 = 0; r0 < rows; r0 += B)
    for (int64_t c0 = 0; c0 < cols; c0 += B)
      for (int64_t r = r0; r < std::min(rows, r0 + B); ++r)
        for (int64_t c = c0; c < std::min(cols, c0 + B); ++c) dst[c * rows + r] = src[r * cols + c];
}

}  // namespace

void gemm_nt(ThreadPool& pool, GemmImpl impl, int64_t M, int64_t N, int64_t K, float alpha, const float* x, int64_t ldx,
             const float* w, int64_t ldw, float beta, float* out, int64_t ldo, const float* bias) {
  if (M <= 0 || N <= 0) return;
  if (impl == GemmImpl::Auto) impl = M >= kAutoBlasMinRows ? GemmImpl::Blas : GemmImpl::Builtin;
#ifdef HAYATE_WITH_BLAS
  if (impl == GemmImpl::Blas) {
    if (bias) {  // bias first, then accumulate the product onto it
      for (int64_t i = 0; i < M; ++i) {
        float* o = out + i * ldo;
        for (int64_t j = 0; j < N; ++j) o[j] = (beta == 0.0f ? 0.0f : beta * o[j]) + bias[j];
      }
      beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(M), static_cast<int>(N), static_cast<int>(K),
                alpha, x, static_cast<int>(ldx), w, static_cast<int>(ldw), beta, out, static_cast<int>(ldo));
    return;
  }
#endif
  Tile t{K, alpha, beta, bias};
  const int64_t col_blocks = (N + kCols - 1) / kCols;
  // ~64k multiply-adds per thread at least, or threads cost more than they save
  const int64_t min_blocks = std::max<int64_t>(1, 65536 / std::max<int64_t>(1, M * K * kCols));
  pool.parallel_for(col_blocks, [&](int64_t b0, int64_t b1) {
    builtin_range(t, M, x, ldx, w, ldw, out, ldo, b0 * kCols, std::min(N, b1 * kCols));
  }, min_blocks);
}

void gemm(ThreadPool& pool, GemmImpl impl, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const float* a, const float* b, float beta, float* out) {
  if (impl == GemmImpl::Auto) impl = M >= kAutoBlasMinRows ? GemmImpl::Blas : GemmImpl::Builtin;
#ifdef HAYATE_WITH_BLAS
  if (impl == GemmImpl::Blas) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), alpha, a, static_cast<int>(trans_a ? M : K),
                b, static_cast<int>(trans_b ? K : N), beta, out, static_cast<int>(N));
    return;
  }
#endif
  // Pack into the NT form: x [M,K] row-major, w [N,K] row-major.
  std::vector<float> xa, wb;
  const float* x = a;
  const float* w = b;
  if (trans_a) {
    xa.resize(static_cast<size_t>(M * K));
    transpose(a, K, M, xa.data());
    x = xa.data();
  }
  if (!trans_b) {
    wb.resize(static_cast<size_t>(N * K));
    transpose(b, K, N, wb.data());
    w = wb.data();
  }
  gemm_nt(pool, GemmImpl::Builtin, M, N, K, alpha, x, K, w, K, beta, out, N, nullptr);
}

std::string blas_library_name() {
#ifdef HAYATE_WITH_BLAS
  return "OpenBLAS";
#else
  return "";
#endif
}

std::string builtin_kernel_name() {
#if defined(__AVX512F__)
  return "builtin AVX-512";
#elif defined(__AVX2__) && defined(__FMA__)
  return "builtin AVX2";
#else
  return "builtin scalar";
#endif
}

void set_blas_threads(int threads) {
#ifdef HAYATE_WITH_BLAS
  openblas_set_num_threads(threads);
#else
  (void)threads;
#endif
}

}  // namespace hayate::cpu
