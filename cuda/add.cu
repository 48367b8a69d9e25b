// add: out = a + b elementwise (the residual adds). fp32 math, one rounding to the storage dtype.
#include "elementwise.cuh"

namespace hayate::gpu {

namespace {
struct AddOp {
  __device__ float operator()(float x, float y) const { return x + y; }
};
}  // namespace

void add(const Ctx& c, Tensor out, Tensor a, Tensor b) {
  check_binary("add", out, a, b);
  const int64_t n = a.numel();
  if (a.dtype == DType::F32) {
    launch_binary_map(c, out.as<float>(), a.as<const float>(), b.as<const float>(), n, AddOp{}, "add");
  } else {
    launch_binary_map(c, out.as<bf16>(), a.as<const bf16>(), b.as<const bf16>(), n, AddOp{}, "add");
  }
}

}  // namespace hayate::gpu
