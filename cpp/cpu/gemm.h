// CPU GEMM in f32. The engine's projections are out[M,N] = x[M,K] · w[N,K]^T ("NT": both operands
// K-contiguous, the torch.nn.Linear layout), so that is the form the built-in kernel is written for;
// other transposes are packed into it. With a BLAS (HAYATE_WITH_BLAS) cblas_sgemm can be used instead.
//
// The built-in kernel is batch-invariant: every output element is accumulated in the same order over K
// whatever M is, whichever tile it falls in and however many threads run (threads split N, never K), so a
// row's result never depends on what else is in the batch. OpenBLAS gives no such guarantee (e.g. M = 1
// may go through gemv), which is why "builtin" stays selectable.
#pragma once
#include <cstdint>
#include <string>

#include "thread_pool.h"

namespace hayate::cpu {

// Auto: the built-in kernel for skinny products (M < kAutoBlasMinRows: memory-bound, where OpenBLAS's
// threaded path measured 4x slower on the decode shapes, see bench/results), the BLAS above.
enum class GemmImpl { Builtin, Blas, Auto };
constexpr int64_t kAutoBlasMinRows = 16;

// out = alpha * x · w^T + beta * out, then + bias[j] on every row when bias != nullptr.
// Leading dimensions are in elements (row strides).
void gemm_nt(ThreadPool& pool, GemmImpl impl, int64_t M, int64_t N, int64_t K, float alpha, const float* x, int64_t ldx,
             const float* w, int64_t ldw, float beta, float* out, int64_t ldo, const float* bias = nullptr);

// General form: out[M,N] = alpha * op(a) · op(b) + beta * out; op(a) is [M,K] (a stored [K,M] when
// trans_a), op(b) is [K,N] (b stored [N,K] when trans_b). Contiguous row-major operands.
void gemm(ThreadPool& pool, GemmImpl impl, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const float* a, const float* b, float beta, float* out);

// "OpenBLAS" etc. when compiled with a BLAS, "" otherwise; the SIMD width the built-in kernel uses.
std::string blas_library_name();
std::string builtin_kernel_name();
void set_blas_threads(int threads);

}  // namespace hayate::cpu
