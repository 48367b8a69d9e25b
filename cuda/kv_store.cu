// kv_store: k_cache[slots[i]] = k[i], v_cache[slots[i]] = v[i] (rows of kv_heads * head_dim).
// Data movement only: grid (n, 2) — blockIdx.y picks K or V — and each block copies one row, as 16-byte
// vectors when rows are aligned. A slot outside the cache raises kErrKvSlot and the row is skipped.
#include "cuda_check.h"
#include "device_utils.cuh"
#include "kernels.h"

namespace hayate::gpu {

namespace {

template <class U>
__global__ void kv_store_kernel(U* kc, U* vc, const U* k, const U* v, const int32_t* slots, int64_t units,
                                int64_t cache_rows, int* err) {
  const int64_t i = blockIdx.x;
  const int32_t s = slots[i];
  if (s < 0 || s >= cache_rows) {
    if (threadIdx.x == 0 && blockIdx.y == 0) raise_error(err, kErrKvSlot);
    return;
  }
  U* dst = (blockIdx.y == 0 ? kc : vc) + static_cast<int64_t>(s) * units;
  const U* src = (blockIdx.y == 0 ? k : v) + i * units;
  for (int64_t j = threadIdx.x; j < units; j += blockDim.x) dst[j] = src[j];
}

template <class U>
void launch(const Ctx& c, Tensor kc, Tensor vc, Tensor k, Tensor v, Tensor slots, int64_t units) {
  const int threads = static_cast<int>(std::min<int64_t>(256, round_up(std::max<int64_t>(units, 1), 32)));
  kv_store_kernel<U><<<dim3(static_cast<unsigned>(k.rows()), 2), threads, 0, c.stream>>>(
      kc.as<U>(), vc.as<U>(), k.as<const U>(), v.as<const U>(), slots.as<const int32_t>(), units, kc.rows(), c.err);
}

}  // namespace

void kv_store(const Ctx& c, Tensor k_cache, Tensor v_cache, Tensor k, Tensor v, Tensor slots) {
  check_kv_store(k_cache, v_cache, k, v, slots);
  if (k.rows() == 0 || k.cols() == 0) return;
  const int64_t row_bytes = k.cols() * static_cast<int64_t>(dtype_size(k.dtype));
  auto aligned = [&](int a) {
    for (const void* p : {k_cache.data, v_cache.data, k.data, v.data})
      if (reinterpret_cast<uintptr_t>(p) % a != 0) return false;
    return row_bytes % a == 0;
  };
  if (aligned(16)) launch<uint4>(c, k_cache, v_cache, k, v, slots, row_bytes / 16);
  else if (aligned(4)) launch<uint32_t>(c, k_cache, v_cache, k, v, slots, row_bytes / 4);
  else launch<uint16_t>(c, k_cache, v_cache, k, v, slots, row_bytes / 2);
  HAYATE_CUDA_CHECK_LAUNCH("kv_store");
}

}  // namespace hayate::gpu
