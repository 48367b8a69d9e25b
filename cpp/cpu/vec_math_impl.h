// The kernels behind vec_math.h, written for the instruction set this file is compiled for (AVX-512, AVX2 +
// FMA, or plain C++). A -march=native build includes it through vec_math.h; a portable build compiles it
// once per instruction set (isa/*.cpp) and vec_math.h's functions call the one picked at load time.
// Internal linkage throughout and no std:: inline functions or templates (::expf, not std::exp): see
// gemm_kernel.h for why.
#pragma once
#include <math.h>

#include <cstdint>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 intrinsics start from an "undefined" vector and trip -W(maybe-)uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace hayate::cpu {
namespace {
namespace vec_kernel {


namespace vec_math_detail {

constexpr float kExpMin = -87.3f;                // below this exp(x) < FLT_MIN: report 0
constexpr float kExpMax = 88.72283935546875f;    // ln(FLT_MAX) rounded down: above it exp(x) = inf
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;  // ln 2 split for exact n * ln2_hi
// exp(r) ~ 1 + r + r^2 P(r) on |r| <= ln2 / 2
constexpr float kP0 = 5.0000001201e-1f, kP1 = 1.6666665459e-1f, kP2 = 4.1665795894e-2f, kP3 = 8.3334519073e-3f,
                kP4 = 1.3981999507e-3f, kP5 = 1.9875691500e-4f;

#if defined(__AVX512F__)
inline __m512 exp16(__m512 x) {
  const __mmask16 in_range = _mm512_cmp_ps_mask(x, _mm512_set1_ps(kExpMin), _CMP_GE_OQ);  // false for NaN
  x = _mm512_min_ps(x, _mm512_set1_ps(kExpMax));
  x = _mm512_max_ps(x, _mm512_set1_ps(kExpMin));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  __m512 p = _mm512_set1_ps(kP5);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP0));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_maskz_mov_ps(in_range, _mm512_scalef_ps(p, n));  // scalef overflows to inf past kExpMax
}
#elif defined(__AVX2__) && defined(__FMA__)
inline __m256 exp8(__m256 x) {
  const __m256 in_range = _mm256_cmp_ps(x, _mm256_set1_ps(kExpMin), _CMP_GE_OQ);  // false for NaN
  x = _mm256_min_ps(x, _mm256_set1_ps(kExpMax));
  x = _mm256_max_ps(x, _mm256_set1_ps(kExpMin));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kP5);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP0));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  // 2^n = 2^h * 2^(n-h) through exponent bits (n reaches 128 near overflow, past one factor's range)
  const __m256i ni = _mm256_cvtps_epi32(n), h = _mm256_srai_epi32(ni, 1), bias = _mm256_set1_epi32(127);
  const __m256 e1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(h, bias), 23));
  const __m256 e2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, h), bias), 23));
  return _mm256_and_ps(in_range, _mm256_mul_ps(_mm256_mul_ps(p, e1), e2));
}
#endif

inline float exp1(float x) { return x >= kExpMin ? ::expf(x) : 0.0f; }  // NaN -> 0 too

}  // namespace vec_math_detail

// max_i z[i] * scale, NaN entries ignored (-inf when there is no other).
inline float max_scaled(const float* z, int64_t n, float scale) {
  float m = -HUGE_VALF;
  int64_t i = 0;
#if defined(__AVX512F__)
  __m512 vm = _mm512_set1_ps(m);
  for (; i + 16 <= n; i += 16) vm = _mm512_max_ps(_mm512_mul_ps(_mm512_loadu_ps(z + i), _mm512_set1_ps(scale)), vm);
  m = _mm512_reduce_max_ps(vm);
#elif defined(__AVX2__) && defined(__FMA__)
  __m256 vm = _mm256_set1_ps(m);
  for (; i + 8 <= n; i += 8) vm = _mm256_max_ps(_mm256_mul_ps(_mm256_loadu_ps(z + i), _mm256_set1_ps(scale)), vm);
  alignas(32) float t[8];
  _mm256_store_ps(t, vm);
  for (float v : t) m = v > m ? v : m;
#endif
  for (; i < n; ++i) {
    const float v = z[i] * scale;
    if (v > m) m = v;
  }
  return m;
}

// sum_i exp(z[i] * scale - shift); also stores each term in out[i] when out != nullptr.
inline double exp_sum(const float* z, int64_t n, float scale, float shift, float* out = nullptr) {
  using namespace vec_math_detail;
  double total = 0;
  int64_t i = 0;
#if defined(__AVX512F__)
  __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
  for (; i + 16 <= n; i += 16) {
    const __m512 e = exp16(_mm512_sub_ps(_mm512_mul_ps(_mm512_loadu_ps(z + i), _mm512_set1_ps(scale)), _mm512_set1_ps(shift)));
    if (out) _mm512_storeu_ps(out + i, e);
    s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
    s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
  }
  total = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
#elif defined(__AVX2__) && defined(__FMA__)
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(z + i), _mm256_set1_ps(scale)), _mm256_set1_ps(shift)));
    if (out) _mm256_storeu_ps(out + i, e);
    s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  alignas(32) double t[4];
  _mm256_store_pd(t, _mm256_add_pd(s0, s1));
  total = (t[0] + t[1]) + (t[2] + t[3]);
#endif
  for (; i < n; ++i) {
    const float e = exp1(z[i] * scale - shift);
    if (out) out[i] = e;
    total += e;
  }
  return total;
}

// out[i] = silu(g[i]) * u[i] = g / (1 + exp(-g)) * u; out may alias g or u.
inline void silu_mul(float* out, const float* g, const float* u, int64_t n) {
  using namespace vec_math_detail;
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16) {
    const __m512 gv = _mm512_loadu_ps(g + i);
    const __m512 den = _mm512_add_ps(_mm512_set1_ps(1.0f), exp16(_mm512_sub_ps(_mm512_setzero_ps(), gv)));
    _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_div_ps(gv, den), _mm512_loadu_ps(u + i)));
  }
#elif defined(__AVX2__) && defined(__FMA__)
  for (; i + 8 <= n; i += 8) {
    const __m256 gv = _mm256_loadu_ps(g + i);
    const __m256 den = _mm256_add_ps(_mm256_set1_ps(1.0f), exp8(_mm256_sub_ps(_mm256_setzero_ps(), gv)));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_div_ps(gv, den), _mm256_loadu_ps(u + i)));
  }
#endif
  for (; i < n; ++i) out[i] = g[i] / (1.0f + ::expf(-g[i])) * u[i];
}

// Dot product with 8 independent partial sums: s[j] accumulates a[i + j] * b[i + j] over i in steps of 8,
// then ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)), then the leftover elements one by one. With FMA
// every step is a fused multiply-add, written out in 8-lane vectors: left to the compiler, the plain loop
// became a slow interleaved one that also dropped the fused multiply-add at head_dim 128 (paged attention
// was a tenth of batch-1 decode), while at head_dim 32 (the demo) it computed exactly this.
inline float dot(const float* a, const float* b, int64_t n) {
  int64_t i = 0;
#if defined(__FMA__) && defined(__AVX__)
  __m256 acc = _mm256_setzero_ps();
  for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
  alignas(32) float s[8];
  _mm256_store_ps(s, acc);
  float r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  for (; i < n; ++i) r = ::fmaf(a[i], b[i], r);
#else
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) s[j] += a[i + j] * b[i + j];
  float r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  for (; i < n; ++i) r += a[i] * b[i];
#endif
  return r;
}

}  // namespace vec_kernel
}  // namespace
}  // namespace hayate::cpu

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
