// rmsnorm: out = x / sqrt(mean(x^2) + eps) * weight per row (hidden rows, and Qwen3's per-head q/k norms
// where rows are head_dim wide and there are n * heads of them).
// One warp per row: the row is read once for the sum of squares (fp32, reduced with shuffles, no shared
// memory) and once more for the output, which the same lane writes, so out may alias x. 16-byte vector
// loads when the row length and pointers allow (8 bf16 per lane per load).
#include "cuda_check.h"
#include "device_utils.cuh"
#include "kernels.h"

namespace hayate::gpu {

namespace {

template <class T, class TW, int VEC>
__global__ void rmsnorm_kernel(T* out, const T* x, const TW* w, int64_t rows, int D, float eps) {
  const int lane = threadIdx.x % 32;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (r >= rows) return;
  const T* xr = x + r * D;
  T* o = out + r * D;
  const int units = D / VEC;  // VEC divides D (chosen by the launcher)
  float ss = 0.0f;
  for (int u = lane; u < units; u += 32) {
    const Vec<T, VEC> v = *reinterpret_cast<const Vec<T, VEC>*>(xr + u * VEC);
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      const float f = to_float(v.v[k]);
      ss += f * f;
    }
  }
  ss = warp_sum(ss);
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(D) + eps);
  for (int u = lane; u < units; u += 32) {
    const Vec<T, VEC> v = *reinterpret_cast<const Vec<T, VEC>*>(xr + u * VEC);
    Vec<T, VEC> res;
#pragma unroll
    for (int k = 0; k < VEC; ++k) res.v[k] = from_float<T>(to_float(v.v[k]) * inv * to_float(w[u * VEC + k]));
    *reinterpret_cast<Vec<T, VEC>*>(o + u * VEC) = res;
  }
}

template <class T, class TW>
void launch(const Ctx& c, Tensor out, Tensor x, Tensor w, float eps) {
  const int64_t rows = x.rows();
  const int D = static_cast<int>(x.cols());
  if (rows == 0 || D == 0) return;
  constexpr int kVec = 16 / sizeof(T);
  const bool vec = D % kVec == 0 && vector_width(sizeof(T), {out.data, x.data}) == kVec;
  const RowPlan p = plan_rows_warp_each(rows);
  const unsigned grid = static_cast<unsigned>(p.blocks);
  if (vec) {
    rmsnorm_kernel<T, TW, kVec><<<grid, p.threads, 0, c.stream>>>(out.as<T>(), x.as<const T>(), w.as<const TW>(), rows, D, eps);
  } else {
    rmsnorm_kernel<T, TW, 1><<<grid, p.threads, 0, c.stream>>>(out.as<T>(), x.as<const T>(), w.as<const TW>(), rows, D, eps);
  }
  HAYATE_CUDA_CHECK_LAUNCH("rmsnorm");
}

}  // namespace

void rmsnorm(const Ctx& c, Tensor out, Tensor x, Tensor weight, float eps) {
  check_rmsnorm(out, x, weight);
  const bool xb = x.dtype == DType::BF16, wb = weight.dtype == DType::BF16;
  if (xb && wb) launch<bf16, bf16>(c, out, x, weight, eps);
  else if (xb) launch<bf16, float>(c, out, x, weight, eps);
  else if (wb) launch<float, bf16>(c, out, x, weight, eps);
  else launch<float, float>(c, out, x, weight, eps);
}

}  // namespace hayate::gpu

// ---- backward ------------------------------------------------------------------------------------------
// rmsnorm_backward: with r = sqrt(mean(x^2) + eps) and g = dout * weight,
//   dx = g / r - x * mean(g * x) / r^3      (= (g - xhat * mean(g * xhat)) / r)
// One warp per row again: pass 1 reduces sum(x^2) and sum(g x) (fp32), pass 2 writes dx. The lane that
// reads dout[j] writes dx[j] after the reduction, so dx may alias dout; with accumulate, dx += the value.
namespace hayate::gpu {

namespace {

__global__ void rmsnorm_backward_kernel(void* dx, DType tdx, const void* dout, DType tg, const void* x, DType tx,
                                        const void* w, DType tw, int64_t rows, int D, float eps, bool accumulate) {
  const int lane = threadIdx.x % 32;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (r >= rows) return;
  const int64_t base = r * D;
  float ss = 0.0f, gx = 0.0f;
  for (int j = lane; j < D; j += 32) {
    const float xv = load_as_float(x, tx, base + j);
    ss += xv * xv;
    gx += load_as_float(dout, tg, base + j) * load_as_float(w, tw, j) * xv;
  }
  ss = warp_sum(ss);
  gx = warp_sum(gx);
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(D) + eps);
  const float c2 = gx / static_cast<float>(D) * inv * inv * inv;
  for (int j = lane; j < D; j += 32) {
    float v = load_as_float(dout, tg, base + j) * load_as_float(w, tw, j) * inv - load_as_float(x, tx, base + j) * c2;
    if (accumulate) v += load_as_float(dx, tdx, base + j);
    store_from_float(dx, tdx, base + j, v);
  }
}

}  // namespace

void rmsnorm_backward(const Ctx& c, Tensor dx, Tensor dout, Tensor x, Tensor weight, float eps, bool accumulate) {
  check_rmsnorm_backward(dx, dout, x, weight);
  const int64_t rows = x.rows();
  if (rows == 0 || x.cols() == 0) return;
  const RowPlan p = plan_rows_warp_each(rows);
  rmsnorm_backward_kernel<<<static_cast<unsigned>(p.blocks), p.threads, 0, c.stream>>>(
      dx.data, dx.dtype, dout.data, dout.dtype, x.data, x.dtype, weight.data, weight.dtype, rows,
      static_cast<int>(x.cols()), eps, accumulate);
  HAYATE_CUDA_CHECK_LAUNCH("rmsnorm_backward");
}

}  // namespace hayate::gpu
