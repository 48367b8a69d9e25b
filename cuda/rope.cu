// rope: in-place rotary embedding, Hugging Face rotate_half layout, on x [n, heads * head_dim]:
//   (x_i, x_{i+half}) <- (x_i c - x_{i+half} s, x_{i+half} c + x_i s),  c, s = cos_sin[pos, i], [pos, half+i]
// One thread per rotated pair (i < half): both elements of a pair are read and written by the same thread,
// so in-place is safe. The inverse rotation (rope_backward) negates s. The table is F32 as the model
// builds it (cos/sin computed in double, rounded once). A position outside the table raises
// kErrRopePosition and leaves that row unchanged.
#include "cuda_check.h"
#include "device_utils.cuh"
#include "kernels.h"

namespace hayate::gpu {

namespace {

template <class T>
__global__ void rope_kernel(T* x, const int32_t* pos, const float* cs, int64_t n, int heads, int hd, int64_t max_pos,
                            float sign, int* err) {
  const int half = hd / 2;
  const int64_t per_row = static_cast<int64_t>(heads) * half;
  const int64_t total = n * per_row;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = idx / per_row;
    const int rem = static_cast<int>(idx - i * per_row);
    const int h = rem / half, j = rem % half;
    const int32_t p = pos[i];
    if (p < 0 || p >= max_pos) {
      if (rem == 0) raise_error(err, kErrRopePosition);
      continue;
    }
    const float c = cs[static_cast<int64_t>(p) * hd + j];
    const float s = sign * cs[static_cast<int64_t>(p) * hd + half + j];
    T* v = x + i * static_cast<int64_t>(heads) * hd + static_cast<int64_t>(h) * hd;
    const float a = to_float(v[j]), b = to_float(v[j + half]);
    v[j] = from_float<T>(a * c - b * s);
    v[j + half] = from_float<T>(b * c + a * s);
  }
}

}  // namespace

void rope(const Ctx& c, Tensor x, Tensor positions, Tensor cos_sin, int head_dim, bool inverse) {
  const char* op = inverse ? "rope_backward" : "rope";
  check_rope(op, x, positions, cos_sin, head_dim);
  const int64_t n = x.rows();
  const int heads = static_cast<int>(x.cols() / head_dim);
  const int64_t total = n * heads * (head_dim / 2);
  if (total == 0) return;
  const Launch1D l = plan_elementwise(total, c.num_sms);
  const float sign = inverse ? -1.0f : 1.0f;
  if (x.dtype == DType::F32) {
    rope_kernel<float><<<static_cast<unsigned>(l.blocks), l.threads, 0, c.stream>>>(
        x.as<float>(), positions.as<const int32_t>(), cos_sin.as<const float>(), n, heads, head_dim, cos_sin.rows(), sign, c.err);
  } else {
    rope_kernel<bf16><<<static_cast<unsigned>(l.blocks), l.threads, 0, c.stream>>>(
        x.as<bf16>(), positions.as<const int32_t>(), cos_sin.as<const float>(), n, heads, head_dim, cos_sin.rows(), sign, c.err);
  }
  HAYATE_CUDA_CHECK_LAUNCH("rope");
}

}  // namespace hayate::gpu
