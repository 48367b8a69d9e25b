// The SwiGLU activation silu(gate) * up (CpuBackend::swiglu; vectorised exp in float) and its backward.
#include <cmath>
#include <type_traits>

#include "cpu/cpu_backend.h"
#include "cpu/cpu_util.h"
#include "cpu/vec_math.h"

namespace hayate {

using cpu::dispatch_float;

void CpuBackend::swiglu(Tensor out, Tensor gate, Tensor up) {
  checks::check_binary(dtypes_, "swiglu", out, gate, up, "gate", "up");
  dispatch_float(fdt_, [&](auto z) {
    using T = decltype(z);
    T* o = out.as<T>();
    const T* g = gate.as<T>();
    const T* u = up.as<T>();
    pool_->parallel_for(gate.numel(), [&](int64_t s, int64_t e) {
      if constexpr (std::is_same_v<T, float>) {
        cpu::silu_mul(o + s, g + s, u + s, e - s);  // vectorised exp
      } else {
        for (int64_t i = s; i < e; ++i) o[i] = g[i] / (T(1) + std::exp(-g[i])) * u[i];
      }
    }, 16384);
  });
}

void CpuBackend::swiglu_backward(Tensor dgate, Tensor dup, Tensor dout, Tensor gate, Tensor up) {
  checks::check_swiglu_backward(dtypes_, dgate, dup, dout, gate, up);
  const int64_t n = gate.numel();
  dispatch_float(fdt_, [&](auto z) {
    using T = decltype(z);
    pool_->parallel_for(n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const T g = gate.as<T>()[i], u = up.as<T>()[i], d = dout.as<T>()[i];
        const T s = T(1) / (T(1) + std::exp(-g));
        dgate.as<T>()[i] = d * u * s * (T(1) + g * (T(1) - s));
        dup.as<T>()[i] = d * g * s;
      }
    }, 16384);
  });
}

}  // namespace hayate
