// The optimizer: one AdamW update elementwise (in double, stored in the param dtype; adamw_step_multi is
// the Backend default, a loop over this) and the squared norm for gradient clipping, summed per thread in a
// fixed order so it is deterministic.
#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/cpu_backend.h"
#include "cpu/cpu_util.h"

namespace hayate {

using cpu::dispatch_float;

void CpuBackend::adamw_step(Tensor param, Tensor grad, Tensor m, Tensor v, const AdamWParams& p) {
  checks::check_adamw_step(dtypes_, param, grad, m, v, p);
  const int64_t n = param.numel();
  const double bc1 = 1.0 - std::pow(p.beta1, static_cast<double>(p.step));
  const double bc2 = 1.0 - std::pow(p.beta2, static_cast<double>(p.step));
  dispatch_float(fdt_, [&](auto z) {
    using T = decltype(z);
    T* w = param.as<T>();
    const T* g = grad.as<T>();
    T* mm = m.as<T>();
    T* vv = v.as<T>();
    pool_->parallel_for(n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const double gi = static_cast<double>(g[i]) * p.grad_scale;
        const double mi = p.beta1 * mm[i] + (1.0 - p.beta1) * gi;
        const double vi = p.beta2 * vv[i] + (1.0 - p.beta2) * gi * gi;
        mm[i] = static_cast<T>(mi);
        vv[i] = static_cast<T>(vi);
        w[i] = static_cast<T>(w[i] - p.lr * (p.weight_decay * w[i] + (mi / bc1) / (std::sqrt(vi / bc2) + p.eps)));
      }
    }, 16384);
  });
}

double CpuBackend::sum_squares(Tensor x) {
  checks::check_sum_squares(dtypes_, x);
  // Fixed-size chunks, not one per thread: the partial sums and their order never depend on the thread
  // count, so the clipped gradient (and a whole run) is the same on any number of cores.
  constexpr int64_t kChunk = 16384;
  const int64_t n = x.numel();
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> part(static_cast<size_t>(chunks), 0.0);
  dispatch_float(fdt_, [&](auto z) {
    using T = decltype(z);
    pool_->parallel_for(chunks, [&](int64_t b, int64_t e) {
      for (int64_t c = b; c < e; ++c) {
        double s = 0;
        for (int64_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i) s += static_cast<double>(x.as<T>()[i]) * x.as<T>()[i];
        part[c] = s;
      }
    }, 1);
  });
  double total = 0;
  for (double s : part) total += s;  // fixed order: deterministic
  return total;
}

}  // namespace hayate
