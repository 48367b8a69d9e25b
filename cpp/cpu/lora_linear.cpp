// LoRA projections (PEFT semantics, base weight frozen) and their backward, through the GEMM: the forward
// adds scale * (x A^T) B^T to the base linear(); the backward produces dx and accumulates dA, dB.
#include <vector>

#include "cpu/cpu_backend.h"
#include "cpu/cpu_util.h"

namespace hayate {

using cpu::dispatch_float;

void CpuBackend::lora_linear(Tensor out, Tensor xa, Tensor x, Tensor w, Tensor bias, Tensor a, Tensor b, float scale) {
  checks::check_lora_linear(dtypes_, out, xa, x, w, bias, a, b);
  linear(out, x, w, bias);
  const int64_t M = x.rows(), K = x.cols(), N = w.shape[0], r = a.rows();
  dispatch_float(fdt_, [&](auto z) {
    using T = decltype(z);
    std::vector<T> tmp;
    T* xap = xa.empty() ? (tmp.resize(static_cast<size_t>(M * r)), tmp.data()) : xa.as<T>();
    gemm_t<T>(false, true, M, r, K, 1.0, x.as<T>(), a.as<T>(), 0.0, xap, true);               // xa = x a^T
    gemm_t<T>(false, true, M, N, r, scale, xap, b.as<T>(), 1.0, out.as<T>(), true);            // out += s xa b^T
  });
}

void CpuBackend::lora_linear_backward(Tensor dx, Tensor da, Tensor db, Tensor dout, Tensor x, Tensor xa, Tensor w,
                                      Tensor a, Tensor b, float scale, bool accumulate_dx) {
  const checks::LoraDims dims = checks::check_lora_linear_backward(dtypes_, dx, da, db, dout, x, xa, w, a, b);
  const int64_t M = dims.d.M, N = dims.d.N, K = dims.d.K, r = dims.r;
  const bool lora = !a.empty();
  dispatch_float(fdt_, [&](auto z) {
    using T = decltype(z);
    if (!dx.empty()) weight_nn<T>(M, K, N, 1.0, dout.as<T>(), w, accumulate_dx ? 1.0 : 0.0, dx.as<T>());
    if (!lora) return;
    std::vector<T> t(static_cast<size_t>(M * r));
    gemm_t<T>(false, false, M, r, N, scale, dout.as<T>(), b.as<T>(), 0.0, t.data(), true);        // t = s dout b
    if (!dx.empty()) gemm_t<T>(false, false, M, K, r, 1.0, t.data(), a.as<T>(), 1.0, dx.as<T>(), true);  // dx += t a
    gemm_t<T>(true, false, r, K, M, 1.0, t.data(), x.as<T>(), 1.0, da.as<T>(), true);             // da += t^T x
    gemm_t<T>(true, false, N, r, M, scale, dout.as<T>(), xa.as<T>(), 1.0, db.as<T>(), true);       // db += s dout^T xa
  });
}

}  // namespace hayate
