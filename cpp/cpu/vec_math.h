// Vectorised elementwise math for the CPU backend's hot loops: over a vocabulary-sized row of logits
// (sampling, log-softmax) the max of z * scale and sum_i exp(z_i * scale - shift); SwiGLU; and the dot
// product of paged attention's scores.
// exp is a polynomial (Cephes-style, within 2 ulp in float) on AVX-512 / AVX2 and std::exp otherwise;
// sums are accumulated in double in a fixed order, so results are deterministic for a given build.
// Inputs below the float range of exp (including -inf) and NaN give exp = 0: masked tokens have
// probability exactly zero.
//
// The kernels are in vec_math_impl.h. A -march=native build inlines them here for the machine's instruction
// set; a portable build (HAYATE_CPU_DISPATCH, the prebuilt addon) declares these functions out of line, and
// they call the AVX-512, AVX2 or generic compilation of the kernels picked when the library loads
// (gemm.cpp, isa/kernels.h).
#pragma once
#include <cstdint>

#if !defined(HAYATE_CPU_DISPATCH)
#include "cpu/vec_math_impl.h"
#endif

namespace hayate::cpu {

#if defined(HAYATE_CPU_DISPATCH)
// max_i z[i] * scale, NaN entries ignored (-inf when there is no other).
float max_scaled(const float* z, int64_t n, float scale);
// sum_i exp(z[i] * scale - shift); also stores each term in out[i] when out != nullptr.
double exp_sum(const float* z, int64_t n, float scale, float shift, float* out = nullptr);
// out[i] = silu(g[i]) * u[i] = g / (1 + exp(-g)) * u; out may alias g or u.
void silu_mul(float* out, const float* g, const float* u, int64_t n);
// sum_i a[i] * b[i] in a fixed order: 8 partial sums, fused multiply-adds where the CPU has FMA.
float dot_f32(const float* a, const float* b, int64_t n);
#else
// max_i z[i] * scale, NaN entries ignored (-inf when there is no other).
inline float max_scaled(const float* z, int64_t n, float scale) { return vec_kernel::max_scaled(z, n, scale); }
// sum_i exp(z[i] * scale - shift); also stores each term in out[i] when out != nullptr.
inline double exp_sum(const float* z, int64_t n, float scale, float shift, float* out = nullptr) {
  return vec_kernel::exp_sum(z, n, scale, shift, out);
}
// out[i] = silu(g[i]) * u[i] = g / (1 + exp(-g)) * u; out may alias g or u.
inline void silu_mul(float* out, const float* g, const float* u, int64_t n) { vec_kernel::silu_mul(out, g, u, n); }
// sum_i a[i] * b[i] in a fixed order: 8 partial sums, fused multiply-adds where the CPU has FMA.
inline float dot_f32(const float* a, const float* b, int64_t n) { return vec_kernel::dot(a, b, n); }
#endif

}  // namespace hayate::cpu
