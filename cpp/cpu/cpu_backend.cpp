// CpuBackend's own part (the ops live in one file per family, see cpu_backend.h): construction, the
// caching host allocator, copies, and the GEMM dispatch of gemm()/linear() to the kernels of gemm.cpp
// (built-in or BLAS in f32, plain loops in f64).
#include "cpu/cpu_backend.h"

#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cpu/cpu_util.h"

namespace hayate {

using cpu::dispatch_float;

CpuBackend::CpuBackend(int threads, const std::string& gemm, const std::string& precision, const std::string& weights)
    : pool_(std::make_unique<ThreadPool>(threads)) {
  if (precision == "f64") {
    fdt_ = DType::F64;
  } else if (precision != "f32") {
    fail(ErrorCode::kInvalidArgument, "unknown precision '" + precision + "' (f32, f64)");
  }
  if (weights == "bf16") {
    HAYATE_CHECK(fdt_ == DType::F32, ErrorCode::kInvalidArgument, "weights 'bf16' needs precision f32 (f64 keeps every tensor in f64)");
    weights_ = Weights::Bf16;
  } else if (weights == "f32") {
    weights_ = Weights::F32;
  } else if (weights != "auto") {
    fail(ErrorCode::kInvalidArgument, "unknown weights dtype '" + weights + "' (auto, bf16, f32)");
  }
  dtypes_ = checks::DTypeRules::one_dtype(fdt_);
  if (gemm == "builtin") {
    gemm_impl_ = cpu::GemmImpl::Builtin;
  } else if (gemm == "blas" || gemm == "auto") {
    if (cpu::blas_library_name().empty()) {
      HAYATE_CHECK(gemm == "auto", ErrorCode::kBackend,
                   "gemm 'blas' requested but this build has no BLAS (install libopenblas-dev and rebuild)");
      gemm_impl_ = cpu::GemmImpl::Builtin;
    } else {
      gemm_impl_ = gemm == "blas" ? cpu::GemmImpl::Blas : cpu::GemmImpl::Auto;
      cpu::set_blas_threads(1);  // each product is split over this backend's pool instead (gemm.cpp)
    }
  } else {
    fail(ErrorCode::kInvalidArgument, "unknown gemm implementation '" + gemm + "' (auto, blas, builtin)");
  }
}

std::string CpuBackend::description() const {
  std::string g = gemm_impl_ == cpu::GemmImpl::Builtin ? cpu::builtin_kernel_name()
                  : gemm_impl_ == cpu::GemmImpl::Blas  ? cpu::blas_library_name()
                                                       : cpu::builtin_kernel_name() + " below " + std::to_string(cpu::kAutoBlasMinRows) +
                                                             " rows, " + cpu::blas_library_name() + " above";
  if (fdt_ == DType::F64) return "cpu: " + std::to_string(pool_->size()) + " threads, gemm f64 reference loops";
  return "cpu: " + std::to_string(pool_->size()) + " threads, gemm " + g + "; bf16 weights: " + cpu::bf16_kernel_name();
}

DType CpuBackend::matrix_dtype(DType checkpoint) const {
  if (fdt_ != DType::F32 || weights_ == Weights::F32) return fdt_;
  if (weights_ == Weights::Bf16) return DType::BF16;
  return checkpoint == DType::BF16 ? DType::BF16 : DType::F32;
}

void* CpuBackend::raw_alloc(size_t bytes) {
  size_t rounded = (bytes + 63) / 64 * 64;  // aligned_alloc needs a multiple of the alignment
  if (rounded < kCacheMinBytes) return std::aligned_alloc(64, rounded);
  std::lock_guard<std::mutex> lock(cache_mutex_);
  auto it = cache_.lower_bound(rounded);
  if (it != cache_.end() && it->first <= rounded + rounded / 4) {  // a cached block at most 25% larger
    void* p = it->second;
    cached_bytes_ -= it->first;
    cache_.erase(it);
    return p;
  }
  void* p = std::aligned_alloc(64, rounded);
  if (!p && !cache_.empty()) {  // out of memory: give the cache back and try once more
    for (auto& [size, q] : cache_) {
      sizes_.erase(q);
      std::free(q);
    }
    cache_.clear();
    cached_bytes_ = 0;
    p = std::aligned_alloc(64, rounded);
  }
  if (p) sizes_[p] = rounded;
  return p;
}

void CpuBackend::raw_free(void* p) {
  std::lock_guard<std::mutex> lock(cache_mutex_);
  auto it = sizes_.find(p);
  if (it == sizes_.end()) {
    std::free(p);
    return;
  }
  cache_.emplace(it->second, p);
  cached_bytes_ += it->second;
  while (cached_bytes_ > kCacheMaxBytes) {  // drop the largest blocks first
    auto largest = std::prev(cache_.end());
    cached_bytes_ -= largest->first;
    sizes_.erase(largest->second);
    std::free(largest->second);
    cache_.erase(largest);
  }
}

CpuBackend::~CpuBackend() {
  for (auto& [size, p] : cache_) std::free(p);
}
void CpuBackend::copy_from_host(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void CpuBackend::copy_to_host(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void CpuBackend::copy(void* dst, const void* src, size_t bytes) { std::memmove(dst, src, bytes); }
void CpuBackend::fill_zero(Tensor t) { std::memset(t.data, 0, t.nbytes()); }

template <class T>
void CpuBackend::gemm_t(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha, const T* a,
                        const T* b, double beta, T* out, bool prefer_blas) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {  // empty product: out = beta * out (BLAS rejects a zero leading dimension)
    for (int64_t i = 0; i < M * N; ++i) out[i] = beta == 0.0 ? T(0) : static_cast<T>(beta * out[i]);
    return;
  }
  if constexpr (std::is_same_v<T, double>) {
    cpu::gemm_f64(*pool_, trans_a, trans_b, M, N, K, alpha, a, b, beta, out);
  } else {
    cpu::GemmImpl impl = prefer_blas && gemm_impl_ == cpu::GemmImpl::Auto ? cpu::GemmImpl::Blas : gemm_impl_;
    cpu::gemm(*pool_, impl, trans_a, trans_b, M, N, K, static_cast<float>(alpha), a, b, static_cast<float>(beta), out);
  }
}
template void CpuBackend::gemm_t<float>(bool, bool, int64_t, int64_t, int64_t, double, const float*, const float*, double, float*, bool);
template void CpuBackend::gemm_t<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, const double*, double, double*, bool);

template <class T>
void CpuBackend::weight_nt(int64_t M, int64_t N, int64_t K, double alpha, const T* x, Tensor w, T* out) {
  if constexpr (std::is_same_v<T, float>) {
    if (w.dtype == DType::BF16)
      return cpu::gemm_nt_bf16w(*pool_, M, N, K, static_cast<float>(alpha), x, K, w.as<uint16_t>(), K, 0.0f, out, N);
  }
  gemm_t<T>(false, true, M, N, K, alpha, x, w.as<T>(), 0.0, out, true);
}
template void CpuBackend::weight_nt<float>(int64_t, int64_t, int64_t, double, const float*, Tensor, float*);
template void CpuBackend::weight_nt<double>(int64_t, int64_t, int64_t, double, const double*, Tensor, double*);

template <class T>
void CpuBackend::weight_nn(int64_t M, int64_t N, int64_t K, double alpha, const T* x, Tensor w, double beta, T* out) {
  if constexpr (std::is_same_v<T, float>) {
    if (w.dtype == DType::BF16)
      return cpu::gemm_nn_bf16w(*pool_, gemm_impl_, M, N, K, static_cast<float>(alpha), x, w.as<uint16_t>(),
                                static_cast<float>(beta), out);
  }
  gemm_t<T>(false, false, M, N, K, alpha, x, w.as<T>(), beta, out, true);
}
template void CpuBackend::weight_nn<float>(int64_t, int64_t, int64_t, double, const float*, Tensor, double, float*);
template void CpuBackend::weight_nn<double>(int64_t, int64_t, int64_t, double, const double*, Tensor, double, double*);

void CpuBackend::gemm(Tensor out, Tensor a, Tensor b, bool trans_a, bool trans_b, float alpha, float beta) {
  const checks::GemmDims d = checks::check_gemm(dtypes_, out, a, b, trans_a, trans_b);
  const int64_t M = d.M, N = d.N, K = d.K;
  dispatch_float(fdt_, [&](auto z) {
    using T = decltype(z);
    gemm_t<T>(trans_a, trans_b, M, N, K, alpha, a.as<T>(), b.as<T>(), beta, out.as<T>());
  });
}

void CpuBackend::linear(Tensor out, Tensor x, Tensor w, Tensor bias) {
  // out may be f32 logits in the f64 mode (the generation and scoring paths keep their logits in f32)
  const checks::GemmDims d = checks::check_linear(dtypes_, "linear", out, x, w, bias);
  const int64_t M = d.M, K = d.K, N = d.N;
  if (w.dtype == DType::BF16) {
    cpu::gemm_nt_bf16w(*pool_, M, N, K, 1.0f, x.as<float>(), K, w.as<uint16_t>(), K, 0.0f, out.as<float>(), N,
                       bias.empty() ? nullptr : bias.as<float>());
    return;
  }
  if (fdt_ == DType::F32) {
    cpu::gemm_nt(*pool_, gemm_impl_, M, N, K, 1.0f, x.as<float>(), K, w.as<float>(), K, 0.0f, out.as<float>(), N,
                 bias.empty() ? nullptr : bias.as<float>());
    return;
  }
  std::vector<double> tmp;
  double* o = out.dtype == DType::F64 ? out.as<double>() : (tmp.resize(static_cast<size_t>(M * N)), tmp.data());
  cpu::gemm_f64(*pool_, false, true, M, N, K, 1.0, x.as<double>(), w.as<double>(), 0.0, o);
  if (!bias.empty())
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) o[i * N + j] += bias.as<double>()[j];
  if (out.dtype == DType::F32)
    for (int64_t i = 0; i < M * N; ++i) out.as<float>()[i] = static_cast<float>(o[i]);
}

}  // namespace hayate
