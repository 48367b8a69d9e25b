// Helpers shared by the CPU backend's op files: dispatch on the backend's float type, the work size of a
// parallel chunk, and small vector kernels written so the compiler vectorises them. (Argument checks are
// the shared op contract, op_checks.h.)
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#if defined(__FMA__) && defined(__AVX__)
#include <immintrin.h>
#endif

#include "backend.h"

namespace hayate::cpu {

// Calls f(T{}) with T = double for F64, float otherwise.
template <class F>
void dispatch_float(DType t, F&& f) {
  if (t == DType::F64) {
    f(double{});
  } else {
    f(float{});
  }
}

// Work per parallel chunk: enough that waking threads pays off.
inline int64_t rows_per_thread(int64_t cols) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)); }

// Dot product with 8 independent partial sums: s[j] accumulates a[i + j] * b[i + j] over i in steps of 8
// (a fused multiply-add where the build targets FMA), then ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)),
// then the leftover elements one by one. With FMA, float is written out in 8-lane vectors: left to the
// compiler, the same source became a slow interleaved loop at head_dim 128 that also skipped the fused
// multiply-add there (a tenth of batch-1 decode in paged attention); at head_dim 32 it computed exactly this.
template <class T>
inline T dot(const T* a, const T* b, int64_t n) {
#if defined(__FMA__) && defined(__AVX__)
  if constexpr (std::is_same_v<T, float>) {
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
    alignas(32) float s[8];
    _mm256_store_ps(s, acc);
    float r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i < n; ++i) r = std::fma(a[i], b[i], r);
    return r;
  }
#endif
  T s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) s[j] += a[i + j] * b[i + j];
  T r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  for (; i < n; ++i) r += a[i] * b[i];
  return r;
}

// y += alpha * x
template <class T>
inline void axpy(T* y, T alpha, const T* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

}  // namespace hayate::cpu
