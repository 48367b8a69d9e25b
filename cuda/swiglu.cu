// swiglu: out = silu(gate) * up = gate / (1 + exp(-gate)) * up, elementwise in fp32 (the same formula as
// the CPU backend; expf is the accurate one, not --use_fast_math's).
#include "elementwise.cuh"

namespace hayate::gpu {

namespace {
struct SwigluOp {
  __device__ float operator()(float g, float u) const { return g / (1.0f + expf(-g)) * u; }
};
}  // namespace

void swiglu(const Ctx& c, Tensor out, Tensor gate, Tensor up) {
  check_binary("swiglu", out, gate, up, "gate", "up");
  const int64_t n = gate.numel();
  if (gate.dtype == DType::F32) {
    launch_binary_map(c, out.as<float>(), gate.as<const float>(), up.as<const float>(), n, SwigluOp{}, "swiglu");
  } else {
    launch_binary_map(c, out.as<bf16>(), gate.as<const bf16>(), up.as<const bf16>(), n, SwigluOp{}, "swiglu");
  }
}

}  // namespace hayate::gpu

// ---- backward ------------------------------------------------------------------------------------------
// swiglu_backward, elementwise with s = sigmoid(gate):
//   dgate = dout * up * s * (1 + gate * (1 - s)),  dup = dout * gate * s.
// Each thread reads its three inputs before writing, so dgate may alias gate or dout and dup may alias up.
namespace hayate::gpu {

namespace {
__global__ void swiglu_backward_kernel(void* dgate, DType tdg, void* dup, DType tdu, const void* dout, DType td,
                                       const void* gate, DType tg, const void* up, DType tu, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = load_as_float(gate, tg, i), u = load_as_float(up, tu, i), d = load_as_float(dout, td, i);
    const float s = 1.0f / (1.0f + expf(-g));
    store_from_float(dgate, tdg, i, d * u * s * (1.0f + g * (1.0f - s)));
    store_from_float(dup, tdu, i, d * g * s);
  }
}
}  // namespace

void swiglu_backward(const Ctx& c, Tensor dgate, Tensor dup, Tensor dout, Tensor gate, Tensor up) {
  check_swiglu_backward(dgate, dup, dout, gate, up);
  const int64_t n = gate.numel();
  if (n == 0) return;
  const Launch1D l = plan_elementwise(n, c.num_sms);
  swiglu_backward_kernel<<<static_cast<unsigned>(l.blocks), l.threads, 0, c.stream>>>(
      dgate.data, dgate.dtype, dup.data, dup.dtype, dout.data, dout.dtype, gate.data, gate.dtype, up.data, up.dtype, n);
  HAYATE_CUDA_CHECK_LAUNCH("swiglu_backward");
}

}  // namespace hayate::gpu
