// convert: dst = src elementwise between F32 and BF16 (round to nearest even). Used where an op keeps an
// fp32 intermediate and also returns it in the activation dtype (lora_linear's x A^T).
#include "cuda_check.h"
#include "device_utils.cuh"
#include "kernels.h"

namespace hayate::gpu {

namespace {
__global__ void convert_kernel(void* dst, DType td, const void* src, DType ts, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    store_from_float(dst, td, i, load_as_float(src, ts, i));
}
}  // namespace

void convert(const Ctx& c, Tensor dst, Tensor src) {
  need_float("convert", dst, "dst");
  need_float("convert", src, "src");
  need("convert", dst.numel() == src.numel(), "shapes do not match: " + dst.shape_str() + ", " + src.shape_str());
  const int64_t n = src.numel();
  if (n == 0) return;
  const Launch1D l = plan_elementwise(n, c.num_sms);
  convert_kernel<<<static_cast<unsigned>(l.blocks), l.threads, 0, c.stream>>>(dst.data, dst.dtype, src.data, src.dtype, n);
  HAYATE_CUDA_CHECK_LAUNCH("convert");
}

}  // namespace hayate::gpu
