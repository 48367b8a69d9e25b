// Elementwise map over equal-length F32/BF16 arrays: out[i] = op(a[i], b[i]) in fp32, rounded once.
// Memory-bound, so the kernel moves 16-byte vectors when every pointer is aligned (8 bf16 / 4 f32 per
// access) and loops grid-stride. out may alias a or b: each element is read and written by one thread.
#pragma once
#include "cuda_check.h"
#include "device_utils.cuh"
#include "kernels.h"

namespace hayate::gpu {

template <class T, int VEC, class Op>
__global__ void binary_map_kernel(T* out, const T* a, const T* b, int64_t n, Op op) {
  const int64_t units = (n + VEC - 1) / VEC;
  for (int64_t u = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; u < units;
       u += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t base = u * VEC;
    if (VEC > 1 && base + VEC <= n) {
      const Vec<T, VEC> va = *reinterpret_cast<const Vec<T, VEC>*>(a + base);
      const Vec<T, VEC> vb = *reinterpret_cast<const Vec<T, VEC>*>(b + base);
      Vec<T, VEC> vo;
#pragma unroll
      for (int k = 0; k < VEC; ++k) vo.v[k] = from_float<T>(op(to_float(va.v[k]), to_float(vb.v[k])));
      *reinterpret_cast<Vec<T, VEC>*>(out + base) = vo;
    } else {
      for (int64_t i = base; i < base + VEC && i < n; ++i) out[i] = from_float<T>(op(to_float(a[i]), to_float(b[i])));
    }
  }
}

template <class T, class Op>
void launch_binary_map(const Ctx& c, T* out, const T* a, const T* b, int64_t n, Op op, const char* name) {
  if (n <= 0) return;
  const int vec = vector_width(sizeof(T), {out, a, b});
  const Launch1D l = plan_elementwise(ceil_div(n, vec), c.num_sms);
  if (vec == 16 / static_cast<int>(sizeof(T))) {
    binary_map_kernel<T, 16 / sizeof(T)><<<static_cast<unsigned>(l.blocks), l.threads, 0, c.stream>>>(out, a, b, n, op);
  } else {
    const Launch1D l1 = plan_elementwise(n, c.num_sms);
    binary_map_kernel<T, 1><<<static_cast<unsigned>(l1.blocks), l1.threads, 0, c.stream>>>(out, a, b, n, op);
  }
  HAYATE_CUDA_CHECK_LAUNCH("elementwise kernel");
  (void)name;
}

}  // namespace hayate::gpu
