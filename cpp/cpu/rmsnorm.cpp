// RMSNorm per row (CpuBackend::rmsnorm) and its backward w.r.t. x; the sum of squares is accumulated in
// double in both.
#include <cmath>

#include "cpu/cpu_backend.h"
#include "cpu/cpu_util.h"

namespace hayate {

using cpu::dispatch_float;
using cpu::rows_per_thread;

void CpuBackend::rmsnorm(Tensor out, Tensor x, Tensor weight, float eps) {
  checks::check_rmsnorm(dtypes_, out, x, weight);
  const int64_t rows = x.rows(), D = x.cols();
  dispatch_float(fdt_, [&](auto z) {
    using T = decltype(z);
    pool_->parallel_for(rows, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const T* xi = x.as<T>() + r * D;
        T* o = out.as<T>() + r * D;
        double ss = 0;
        for (int64_t j = 0; j < D; ++j) ss += static_cast<double>(xi[j]) * xi[j];
        const T inv = static_cast<T>(1.0 / std::sqrt(ss / D + eps));
        for (int64_t j = 0; j < D; ++j) o[j] = xi[j] * inv * weight.as<T>()[j];
      }
    }, rows_per_thread(D));
  });
}

void CpuBackend::rmsnorm_backward(Tensor dx, Tensor dout, Tensor x, Tensor weight, float eps, bool accumulate) {
  checks::check_rmsnorm_backward(dtypes_, dx, dout, x, weight);
  const int64_t rows = x.rows(), D = x.cols();
  dispatch_float(fdt_, [&](auto z) {
    using T = decltype(z);
    pool_->parallel_for(rows, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const T* xi = x.as<T>() + r * D;
        const T* g = dout.as<T>() + r * D;
        const T* w = weight.as<T>();
        T* o = dx.as<T>() + r * D;
        double ss = 0, gx = 0;
        for (int64_t j = 0; j < D; ++j) {
          ss += static_cast<double>(xi[j]) * xi[j];
          gx += static_cast<double>(g[j]) * w[j] * xi[j];
        }
        const double inv = 1.0 / std::sqrt(ss / D + eps);
        const T c1 = static_cast<T>(inv), c2 = static_cast<T>(gx / D * inv * inv * inv);  // dx = g w / r - x (g w.x) / (D r^3)
        for (int64_t j = 0; j < D; ++j) {
          const T val = g[j] * w[j] * c1 - xi[j] * c2;
          o[j] = accumulate ? o[j] + val : val;
        }
      }
    }, rows_per_thread(D));
  });
}

}  // namespace hayate
