// Helpers shared by the CPU backend's op files: dispatch on the backend's float type, the work size of a
// parallel chunk, and small vector kernels written so the compiler vectorises them. (Argument checks are
// the shared op contract, op_checks.h.)
#pragma once
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "backend.h"
#include "cpu/vec_math.h"

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

// Dot product with 8 independent partial sums; float is vec_math.h's dot_f32 (fused multiply-adds in
// vectors where the CPU has FMA), double the same order in plain code.
template <class T>
inline T dot(const T* a, const T* b, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    return dot_f32(a, b, n);
  } else {
    T s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
      for (int j = 0; j < 8; ++j) s[j] += a[i + j] * b[i + j];
    T r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i < n; ++i) r += a[i] * b[i];
    return r;
  }
}

// y += alpha * x
template <class T>
inline void axpy(T* y, T alpha, const T* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

}  // namespace hayate::cpu
