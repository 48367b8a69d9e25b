// Elementwise sum (CpuBackend::add), the residual connection.
#include "cpu/cpu_backend.h"
#include "cpu/cpu_util.h"

namespace hayate {

using cpu::dispatch_float;

void CpuBackend::add(Tensor out, Tensor a, Tensor b) {
  checks::check_binary(dtypes_, "add", out, a, b);
  dispatch_float(fdt_, [&](auto z) {
    using T = decltype(z);
    T* o = out.as<T>();
    const T* x = a.as<T>();
    const T* y = b.as<T>();
    pool_->parallel_for(a.numel(), [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) o[i] = x[i] + y[i];
    }, 16384);
  });
}

}  // namespace hayate
