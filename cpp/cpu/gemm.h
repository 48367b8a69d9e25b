// CPU GEMM in f32. The engine's projections are out[M,N] = x[M,K] · w[N,K]^T ("NT": both operands
// K-contiguous, the torch.nn.Linear layout), so that is the form the built-in kernel is written for;
// other transposes are packed into it. With a BLAS (HAYATE_WITH_BLAS) cblas_sgemm can be used instead.
//
// The built-in kernel (gemm.cpp) packs x into panels of rows and runs a register-blocked micro-kernel
// (5x5 dot products on AVX-512, 3x4 on AVX2, scalar otherwise) over K: gemm_kernel.h, compiled for the
// build machine (-march=native), or in a portable build once per instruction set with the one this CPU runs
// chosen at load time (isa/kernels.h). It is batch-invariant: every
// output element is accumulated in the same order over K whatever M is, whichever tile or edge path it
// falls in and however many threads run (threads split N, never K), so a row's result never depends on
// what else is in the batch. OpenBLAS gives no such guarantee (M = 1 goes through a different path than
// larger M), which is why "builtin" is the choice when batch invariance matters.
#pragma once
#include <cstdint>
#include <string>

#include "thread_pool.h"

namespace hayate::cpu {

// Auto: the built-in kernel for NT products with M < kAutoBlasMinRows, the BLAS above. Measured on the
// qwen3-0.6b projection shapes (2-core AVX-512 EPYC, bench/native/gemm_bench.cpp): the built-in kernel is
// 5-10x faster than OpenBLAS at M <= 8 (memory-bound decode), faster up to M ~ 128-256 and within ~10%
// at M = 512. Other transposes need a packing copy of b, so they switch to the BLAS from M >= 16.
enum class GemmImpl { Builtin, Blas, Auto };
constexpr int64_t kAutoBlasMinRows = 256;
constexpr int64_t kAutoBlasMinRowsPacked = 16;

// out = alpha * x · w^T + beta * out, then + bias[j] on every row when bias != nullptr.
// Leading dimensions are in elements (row strides).
void gemm_nt(ThreadPool& pool, GemmImpl impl, int64_t M, int64_t N, int64_t K, float alpha, const float* x, int64_t ldx,
             const float* w, int64_t ldw, float beta, float* out, int64_t ldo, const float* bias = nullptr);

// General form: out[M,N] = alpha * op(a) · op(b) + beta * out; op(a) is [M,K] (a stored [K,M] when
// trans_a), op(b) is [K,N] (b stored [N,K] when trans_b). Contiguous row-major operands.
void gemm(ThreadPool& pool, GemmImpl impl, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const float* a, const float* b, float beta, float* out);

// Frozen bf16 weights (w holds bf16 bits), f32 activations and output. With AVX512_BF16 the activations are
// rounded to bf16 and multiplied with vdpbf16ps (gemm_bf16_kernel.h); elsewhere w is widened to f32 in
// registers, which is exactly the f32 product with the rounded weights. Both are batch-invariant.
// out[M,N] = alpha * x[M,K] w[N,K]^T + beta * out (+ bias[j] on every row).
void gemm_nt_bf16w(ThreadPool& pool, int64_t M, int64_t N, int64_t K, float alpha, const float* x, int64_t ldx,
                   const uint16_t* w, int64_t ldw, float beta, float* out, int64_t ldo, const float* bias = nullptr);
// out[M,N] = alpha * x[M,K] w[K,N] + beta * out (contiguous): the product through a frozen weight's transpose
// (dx = dout W). Without AVX512_BF16, blocks of w are widened and multiplied by gemm() with `impl`.
void gemm_nn_bf16w(ThreadPool& pool, GemmImpl impl, int64_t M, int64_t N, int64_t K, float alpha, const float* x,
                   const uint16_t* w, float beta, float* out);
// How bf16 weights are multiplied: "AVX512-BF16 dot products" or "widened to f32".
std::string bf16_kernel_name();

// Double precision for the backend's f64 mode (gradient checks): same form as gemm(); row-parallel plain
// loops, no BLAS, deterministic. Speed is secondary: it runs on tiny test models.
void gemm_f64(ThreadPool& pool, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
              const double* a, const double* b, double beta, double* out);

// "OpenBLAS" etc. when compiled with a BLAS, "" otherwise; the SIMD width the built-in kernel uses.
std::string blas_library_name();
std::string builtin_kernel_name();
void set_blas_threads(int threads);

}  // namespace hayate::cpu
