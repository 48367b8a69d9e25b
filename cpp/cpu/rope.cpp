// Rotary position embedding in place (CpuBackend::rope) and its backward, the inverse rotation: one
// routine, rotating by +angle or -angle. Positions are checked against the table on the host.
#include "cpu/cpu_backend.h"
#include "cpu/cpu_util.h"

namespace hayate {

using checks::need_each;
using cpu::dispatch_float;
using cpu::rows_per_thread;

template <class T>
void CpuBackend::rope_t(Tensor x, Tensor positions, Tensor cos_sin, int head_dim, bool inverse) {
  const char* op = inverse ? "rope_backward" : "rope";
  checks::check_rope(dtypes_, op, x, positions, cos_sin, head_dim);
  const int64_t n = x.rows(), width = x.cols(), half = head_dim / 2, max_pos = cos_sin.rows();
  const int32_t* pos = positions.as<int32_t>();
  for (int64_t i = 0; i < n; ++i)
    need_each(op, pos[i] >= 0 && pos[i] < max_pos, [&] { return "position " + std::to_string(pos[i]) + " outside the table of " + std::to_string(max_pos); });
  const T sign = inverse ? T(-1) : T(1);  // the inverse rotation is the rotation by -angle
  pool_->parallel_for(n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t row = static_cast<int64_t>(pos[i]) * head_dim;
      auto cs = [&](int64_t j) -> T {  // the f64 mode may carry an f64 table
        return cos_sin.dtype == DType::F64 ? static_cast<T>(cos_sin.as<double>()[row + j]) : static_cast<T>(cos_sin.as<float>()[row + j]);
      };
      for (int64_t h = 0; h < width / head_dim; ++h) {
        T* v = x.as<T>() + i * width + h * head_dim;
        for (int64_t j = 0; j < half; ++j) {
          const T a = v[j], b2 = v[j + half], c = cs(j), s = sign * cs(half + j);
          v[j] = a * c - b2 * s;
          v[j + half] = b2 * c + a * s;
        }
      }
    }
  }, rows_per_thread(width));
}
template void CpuBackend::rope_t<float>(Tensor, Tensor, Tensor, int, bool);
template void CpuBackend::rope_t<double>(Tensor, Tensor, Tensor, int, bool);

void CpuBackend::rope(Tensor x, Tensor positions, Tensor cos_sin, int head_dim) {
  dispatch_float(fdt_, [&](auto z) { rope_t<decltype(z)>(x, positions, cos_sin, head_dim, false); });
}

void CpuBackend::rope_backward(Tensor dx, Tensor positions, Tensor cos_sin, int head_dim) {
  dispatch_float(fdt_, [&](auto z) { rope_t<decltype(z)>(dx, positions, cos_sin, head_dim, true); });
}

}  // namespace hayate
