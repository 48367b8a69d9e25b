#include "gemm.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "errors.h"
#include "tensor.h"

#if defined(HAYATE_CPU_DISPATCH)
#include <cstdio>

#include "cpu/isa/kernels.h"
#else
#include "cpu/gemm_kernel.h"
#include "cpu/gemm_bf16_kernel.h"
#endif
#ifdef HAYATE_WITH_BLAS
#include <cblas.h>
#endif

namespace hayate::cpu {

void gemm_scratch_failed(size_t bytes) {
  fail(ErrorCode::kOutOfMemory, "gemm: could not allocate " + std::to_string(bytes) + " bytes of scratch");
}

#if defined(HAYATE_CPU_DISPATCH)
// ---- the kernels of a portable build (isa/kernels.h) ------------------------------------------------
namespace isa {
namespace {

bool cpu_runs(const Kernels& k) {
#if defined(__x86_64__) || defined(_M_X64)
  __builtin_cpu_init();  // may run before libgcc's own constructor
  const std::string id = k.id;
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
  // exactly the levels avx512.cpp and avx2.cpp are compiled for (checks the OS saves the registers too)
  if (id == "avx512bf16") return __builtin_cpu_supports("x86-64-v4") && __builtin_cpu_supports("avx512bf16");
  if (id == "avx512") return __builtin_cpu_supports("x86-64-v4");
  if (id == "avx2") return __builtin_cpu_supports("x86-64-v3");
#else
  if (id == "avx512bf16" || id == "avx512")
    return (id == "avx512" || __builtin_cpu_supports("avx512bf16")) && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx2") &&
           __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2");
  if (id == "avx2")
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi") &&
           __builtin_cpu_supports("bmi2");
#endif
#endif
  return std::string(k.id) == "generic";
}

const Kernels& choose() {
#if defined(__x86_64__) || defined(_M_X64)
  const Kernels* sets[] = {&kAvx512Bf16Kernels, &kAvx512Kernels, &kAvx2Kernels, &kGenericKernels};
#else
  const Kernels* sets[] = {&kGenericKernels};
#endif
  const char* want = std::getenv("HAYATE_CPU_KERNELS");
  if (want && *want) {
    for (const Kernels* k : sets) {
      if (std::string(k->id) != want) continue;
      if (cpu_runs(*k)) return *k;
      std::fprintf(stderr, "hayate: HAYATE_CPU_KERNELS=%s: this CPU cannot run them; using the best it can\n", want);
      break;
    }
    if (std::none_of(std::begin(sets), std::end(sets), [&](const Kernels* k) { return std::string(k->id) == want; }))
      std::fprintf(stderr, "hayate: HAYATE_CPU_KERNELS=%s is not one of avx512bf16, avx512, avx2, generic; ignored\n", want);
  }
  for (const Kernels* k : sets)
    if (cpu_runs(*k)) return *k;
  return kGenericKernels;
}

}  // namespace

const Kernels& active() {
  static const Kernels& k = choose();
  return k;
}

}  // namespace isa

float max_scaled(const float* z, int64_t n, float scale) { return isa::active().max_scaled(z, n, scale); }
double exp_sum(const float* z, int64_t n, float scale, float shift, float* out) {
  return isa::active().exp_sum(z, n, scale, shift, out);
}
void silu_mul(float* out, const float* g, const float* u, int64_t n) { isa::active().silu_mul(out, g, u, n); }
float dot_f32(const float* a, const float* b, int64_t n) { return isa::active().dot(a, b, n); }
#endif

namespace {

#if defined(HAYATE_CPU_DISPATCH)
void gemm_builtin(ThreadPool& pool, int64_t M, int64_t N, int64_t K, float alpha, const float* x, int64_t xrs,
                  int64_t xcs, const float* w, int64_t ldw, float beta, float* out, int64_t ldo, const float* bias) {
  isa::active().gemm_builtin(pool, M, N, K, alpha, x, xrs, xcs, w, ldw, beta, out, ldo, bias);
}
#else
using gemm_kernel::gemm_builtin;
#endif

#ifdef HAYATE_WITH_BLAS
// cblas_sgemm (row-major) split over the pool, each part single-threaded in BLAS (set_blas_threads): the
// pool's threads do the work, so BLAS's own threads never spin-wait (sched_yield) on the cores the pool
// and the next op need; in perf that spinning took a fifth of a training step's samples. out's rows are
// split when M is the larger side, else its columns; each part is a smaller product of the same operands.
void blas_sgemm(ThreadPool& pool, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* a,
                int64_t lda, const float* b, int64_t ldb, float beta, float* out, int64_t ldo) {
  const auto part = [&](int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
    const float* ap = trans_a ? a + i0 : a + i0 * lda;
    const float* bp = trans_b ? b + j0 * ldb : b + j0;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                static_cast<int>(i1 - i0), static_cast<int>(j1 - j0), static_cast<int>(K), alpha, ap, static_cast<int>(lda),
                bp, static_cast<int>(ldb), beta, out + i0 * ldo + j0, static_cast<int>(ldo));
  };
  const int64_t min_part = std::max<int64_t>(1, (int64_t(1) << 18) / std::max<int64_t>(1, K * std::min(M, N)));
  if (M >= N) {
    pool.parallel_for(M, [&](int64_t i0, int64_t i1) { part(i0, i1, 0, N); }, min_part);
  } else {
    // columns in multiples of 16 so each part's panels stay aligned with BLAS's vector width
    const int64_t blocks = (N + 15) / 16;
    pool.parallel_for(blocks, [&](int64_t b0, int64_t b1) { part(0, M, b0 * 16, std::min(N, b1 * 16)); },
                      std::max<int64_t>(1, min_part / 16));
  }
}
#endif

// dst [cols, rows] = src [rows, cols]^T, in cache-sized blocks, rows split over the pool.
void transpose(ThreadPool& pool, const float* src, int64_t rows, int64_t cols, float* dst) {
  constexpr int64_t B = 32;
  pool.parallel_for((rows + B - 1) / B, [&](int64_t rb0, int64_t rb1) {
    for (int64_t r0 = rb0 * B; r0 < std::min(rows, rb1 * B); r0 += B)
      for (int64_t c0 = 0; c0 < cols; c0 += B)
        for (int64_t r = r0; r < std::min(rows, r0 + B); ++r)
          for (int64_t c = c0; c < std::min(cols, c0 + B); ++c) dst[c * rows + r] = src[r * cols + c];
  }, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, B * cols)));
}

}  // namespace

void gemm_nt(ThreadPool& pool, GemmImpl impl, int64_t M, int64_t N, int64_t K, float alpha, const float* x, int64_t ldx,
             const float* w, int64_t ldw, float beta, float* out, int64_t ldo, const float* bias) {
  if (M <= 0 || N <= 0) return;
  if (impl == GemmImpl::Auto) impl = M >= kAutoBlasMinRows ? GemmImpl::Blas : GemmImpl::Builtin;
#ifdef HAYATE_WITH_BLAS
  if (impl == GemmImpl::Blas && K > 0) {
    if (bias) {  // bias first, then accumulate the product onto it
      for (int64_t i = 0; i < M; ++i) {
        float* o = out + i * ldo;
        for (int64_t j = 0; j < N; ++j) o[j] = (beta == 0.0f ? 0.0f : beta * o[j]) + bias[j];
      }
      beta = 1.0f;
    }
    blas_sgemm(pool, false, true, M, N, K, alpha, x, ldx, w, ldw, beta, out, ldo);
    return;
  }
#endif
  gemm_builtin(pool, M, N, K, alpha, x, ldx, 1, w, ldw, beta, out, ldo, bias);
}

void gemm(ThreadPool& pool, GemmImpl impl, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const float* a, const float* b, float beta, float* out) {
  if (M <= 0 || N <= 0) return;
  if (impl == GemmImpl::Auto) {
    const bool nt = !trans_a && trans_b;  // the built-in kernel's own form: no packing copy of b
    impl = M >= (nt ? kAutoBlasMinRows : kAutoBlasMinRowsPacked) ? GemmImpl::Blas : GemmImpl::Builtin;
  }
#ifdef HAYATE_WITH_BLAS
  if (impl == GemmImpl::Blas && K > 0) {
    blas_sgemm(pool, trans_a, trans_b, M, N, K, alpha, a, trans_a ? M : K, b, trans_b ? K : N, beta, out, N);
    return;
  }
#endif
  // The built-in kernel wants w K-contiguous ([N, K]); x may be read transposed while it is packed.
  std::vector<float> wt;
  const float* w = b;
  if (!trans_b) {
    wt.resize(static_cast<size_t>(N * K));
    transpose(pool, b, K, N, wt.data());
    w = wt.data();
  }
  gemm_builtin(pool, M, N, K, alpha, a, trans_a ? 1 : K, trans_a ? M : 1, w, K, beta, out, N, nullptr);
}

void gemm_nt_bf16w(ThreadPool& pool, int64_t M, int64_t N, int64_t K, float alpha, const float* x, int64_t ldx,
                   const uint16_t* w, int64_t ldw, float beta, float* out, int64_t ldo, const float* bias) {
  if (M <= 0 || N <= 0) return;
#if defined(HAYATE_CPU_DISPATCH)
  isa::active().gemm_nt_bf16w(pool, M, N, K, alpha, x, ldx, w, ldw, beta, out, ldo, bias);
#elif defined(HAYATE_GEMM_BF16_DOT)
  gemm_bf16::gemm_nt_dot(pool, M, N, K, alpha, x, ldx, w, ldw, beta, out, ldo, bias);
#else
  gemm_kernel::gemm_builtin_widen_bf16(pool, M, N, K, alpha, x, ldx, w, ldw, beta, out, ldo, bias);
#endif
}

void gemm_nn_bf16w(ThreadPool& pool, GemmImpl impl, int64_t M, int64_t N, int64_t K, float alpha, const float* x,
                   const uint16_t* w, float beta, float* out) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    for (int64_t i = 0; i < M * N; ++i) out[i] = beta == 0.0f ? 0.0f : beta * out[i];
    return;
  }
#if defined(HAYATE_CPU_DISPATCH)
  if (isa::active().gemm_nn_bf16w) return isa::active().gemm_nn_bf16w(pool, M, N, K, alpha, x, K, w, N, beta, out, N);
#elif defined(HAYATE_GEMM_BF16_DOT)
  return gemm_bf16::gemm_nn_dot(pool, M, N, K, alpha, x, K, w, N, beta, out, N);
#endif
  // No bf16 dot product on this CPU: widen blocks of rows of w (at most 32 MB at a time) and use the f32 product.
  const int64_t kb = std::max<int64_t>(1, std::min<int64_t>(K, (int64_t(8) << 20) / N));
  std::vector<float> wf(static_cast<size_t>(kb * N)), xs(static_cast<size_t>(M * kb));
  for (int64_t k0 = 0; k0 < K; k0 += kb) {
    const int64_t n = std::min(kb, K - k0);
    convert_to_f32(wf.data(), w + k0 * N, DType::BF16, static_cast<size_t>(n * N));
    for (int64_t i = 0; i < M; ++i) std::memcpy(xs.data() + i * n, x + i * K + k0, static_cast<size_t>(n) * sizeof(float));
    gemm(pool, impl, false, false, M, N, n, alpha, xs.data(), wf.data(), k0 == 0 ? beta : 1.0f, out);
  }
}

std::string bf16_kernel_name() {
#if defined(HAYATE_CPU_DISPATCH)
  return isa::active().bf16;
#elif defined(HAYATE_GEMM_BF16_DOT)
  return "AVX512-BF16 dot products";
#else
  return "widened to f32";
#endif
}

void gemm_f64(ThreadPool& pool, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha,
              const double* a, const double* b, double beta, double* out) {
  if (M <= 0 || N <= 0) return;
  pool.parallel_for(M, [&](int64_t i0, int64_t i1) {
    std::vector<double> arow(static_cast<size_t>(K)), acc(static_cast<size_t>(N));
    for (int64_t i = i0; i < i1; ++i) {
      for (int64_t k = 0; k < K; ++k) arow[k] = trans_a ? a[k * M + i] : a[i * K + k];
      if (trans_b) {  // b [N, K]: one dot product per output
        for (int64_t j = 0; j < N; ++j) {
          const double* bj = b + j * K;
          double s = 0;
          for (int64_t k = 0; k < K; ++k) s += arow[k] * bj[k];
          acc[j] = s;
        }
      } else {  // b [K, N]: accumulate rows of b
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t k = 0; k < K; ++k) {
          const double av = arow[k];
          const double* bk = b + k * N;
          for (int64_t j = 0; j < N; ++j) acc[j] += av * bk[j];
        }
      }
      double* o = out + i * N;
      for (int64_t j = 0; j < N; ++j) o[j] = alpha * acc[j] + (beta == 0.0 ? 0.0 : beta * o[j]);
    }
  }, std::max<int64_t>(1, 65536 / std::max<int64_t>(1, N * K)));
}

std::string blas_library_name() {
#if defined(HAYATE_WITH_BLAS) && defined(OPENBLAS_VERSION)
  return "OpenBLAS";
#elif defined(HAYATE_WITH_BLAS)
  return "BLAS";
#else
  return "";
#endif
}

std::string builtin_kernel_name() {
#if defined(HAYATE_CPU_DISPATCH)
  const isa::Kernels& k = isa::active();
  return std::string("builtin ") + k.isa + " " + std::to_string(k.tile_rows) + "x" + std::to_string(k.tile_cols) +
         " (chosen at run time)";
#else
  return std::string("builtin ") + gemm_kernel::kIsaName + " " + std::to_string(gemm_kernel::kTileRows) + "x" +
         std::to_string(gemm_kernel::kTileCols);
#endif
}

void set_blas_threads(int threads) {  // 1: the pool splits products between its threads (blas_sgemm)
#if defined(HAYATE_WITH_BLAS) && defined(OPENBLAS_VERSION)
  openblas_set_num_threads(threads);
#else
  (void)threads;
#endif
}

}  // namespace hayate::cpu
