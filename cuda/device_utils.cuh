// Device-side helpers shared by the kernels: bf16/f32 loads and stores (all math is fp32), 16-byte
// vectors, warp and block reductions, and the error-flag bits kernels raise on invalid indices.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "tensor.h"

namespace hayate::gpu {

using bf16 = __nv_bfloat16;

// Bits of the backend's device error word (CudaBackend reads it at sync points and throws
// kInvalidArgument naming the op). Kernels that see a bad index record it, skip the row and write zeros.
enum ErrorBit : int {
  kErrEmbeddingId = 1 << 0,
  kErrRopePosition = 1 << 1,
  kErrKvSlot = 1 << 2,
  kErrAttentionMeta = 1 << 3,
  kErrTarget = 1 << 4,
  kErrScatterId = 1 << 5,
  kErrVarlenMeta = 1 << 6,
};

__device__ __forceinline__ void raise_error(int* flag, int bit) { atomicOr(flag, bit); }

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(bf16 v) { return __bfloat162float(v); }

template <class T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ bf16 from_float<bf16>(float v) { return __float2bfloat16_rn(v); }

// Runtime-dtype element access, for kernels that accept F32 or BF16 operands without a template per
// combination (the branch is uniform across the warp).
__device__ __forceinline__ float load_as_float(const void* p, DType t, int64_t i) {
  return t == DType::F32 ? static_cast<const float*>(p)[i] : __bfloat162float(static_cast<const bf16*>(p)[i]);
}
__device__ __forceinline__ void store_from_float(void* p, DType t, int64_t i, float v) {
  if (t == DType::F32) {
    static_cast<float*>(p)[i] = v;
  } else {
    static_cast<bf16*>(p)[i] = __float2bfloat16_rn(v);
  }
}

// N elements of T moved as one aligned vector (16 bytes for N = 16 / sizeof(T)).
template <class T, int N>
struct alignas(sizeof(T) * N) Vec {
  T v[N];
};

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ double warp_sum_d(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ unsigned long long warp_sum_u64(unsigned long long v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Block-wide reductions with a fixed tree (deterministic: same inputs, same bits). `scratch` holds one
// value per warp; every thread gets the result. The block size is a multiple of 32.
__device__ __forceinline__ float block_max(float v, float* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float r = lane < nw ? scratch[lane] : -INFINITY;
  return warp_max(r);
}
__device__ __forceinline__ double block_sum_d(double v, double* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
  v = warp_sum_d(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  double r = lane < nw ? scratch[lane] : 0.0;
  return warp_sum_d(r);
}
__device__ __forceinline__ unsigned long long block_sum_u64(unsigned long long v, unsigned long long* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
  v = warp_sum_u64(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  unsigned long long r = lane < nw ? scratch[lane] : 0ull;
  return warp_sum_u64(r);
}

}  // namespace hayate::gpu
