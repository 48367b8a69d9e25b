// The CPU kernels a portable build (HAYATE_CPU_DISPATCH: the prebuilt addon, or CMake with
// -DHAYATE_NATIVE_ARCH=OFF) compiles once per x86-64 instruction set, and the choice between them.
//
// The engine as a whole is compiled for a baseline (x86-64-v2 by default); the hot kernels — the built-in
// GEMM (gemm_kernel.h), the bf16-weight products (gemm_bf16_kernel.h) and the vectorised exp / max / SwiGLU
// rows and attention's dot product (vec_math_impl.h) — are compiled four more times: avx512_bf16.cpp with -march=x86-64-v4
// -mavx512bf16, avx512.cpp with -march=x86-64-v4, avx2.cpp with -march=x86-64-v3 and generic.cpp at the
// baseline. active() picks the best one the CPU (and OS) runs, once, when the library loads;
// HAYATE_CPU_KERNELS=avx512bf16|avx512|avx2|generic asks for a lower one (tests, comparisons). A -march=native build
// (the default source build) compiles none of this: gemm.cpp and vec_math.h inline the kernels for the
// build machine.
#pragma once
#include <cstdint>

#include "thread_pool.h"

namespace hayate::cpu::isa {

struct Kernels {
  const char* id;   // "avx512" | "avx2" | "generic": the HAYATE_CPU_KERNELS value
  const char* isa;  // "AVX-512" | "AVX2" | "scalar": the built-in GEMM's vector width
  int tile_rows, tile_cols;
  // out = alpha * x w^T + beta * out (+ bias); x(i, k) = x[i * xrs + k * xcs], w [N, ldw] (gemm_kernel.h)
  void (*gemm_builtin)(ThreadPool& pool, int64_t M, int64_t N, int64_t K, float alpha, const float* x, int64_t xrs,
                       int64_t xcs, const float* w, int64_t ldw, float beta, float* out, int64_t ldo, const float* bias);
  // Products with bf16 weights (gemm.h): out = alpha * x w^T + beta * out (+ bias), w [N, ldw]; and
  // out = alpha * x w + beta * out, w [K, ldw] (null: gemm.cpp widens blocks of w and uses the f32 product).
  const char* bf16;  // how: "AVX512-BF16 dot products" | "widened to f32"
  void (*gemm_nt_bf16w)(ThreadPool& pool, int64_t M, int64_t N, int64_t K, float alpha, const float* x, int64_t ldx,
                        const uint16_t* w, int64_t ldw, float beta, float* out, int64_t ldo, const float* bias);
  void (*gemm_nn_bf16w)(ThreadPool& pool, int64_t M, int64_t N, int64_t K, float alpha, const float* x, int64_t ldx,
                        const uint16_t* w, int64_t ldw, float beta, float* out, int64_t ldo);
  float (*max_scaled)(const float* z, int64_t n, float scale);
  double (*exp_sum)(const float* z, int64_t n, float scale, float shift, float* out);
  void (*silu_mul)(float* out, const float* g, const float* u, int64_t n);
  float (*dot)(const float* a, const float* b, int64_t n);
};

// One per compilation; avx512bf16, avx512 and avx2 exist only on x86-64 (isa/*.cpp).
extern const Kernels kAvx512Bf16Kernels;
extern const Kernels kAvx512Kernels;
extern const Kernels kAvx2Kernels;
extern const Kernels kGenericKernels;

// The kernels in use (chosen once; gemm.cpp).
const Kernels& active();

}  // namespace hayate::cpu::isa
