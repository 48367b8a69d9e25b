// Writes a batch's keys and values into their paged KV-cache rows (CpuBackend::kv_store); slots are
// checked against the cache on the host.
#include <cstring>

#include "cpu/cpu_backend.h"

namespace hayate {

using checks::need_each;

void CpuBackend::kv_store(Tensor k_cache, Tensor v_cache, Tensor k, Tensor v, Tensor slots) {
  const char* op = "kv_store";
  checks::check_kv_store(dtypes_, k_cache, v_cache, k, v, slots);
  const int64_t n = k.rows(), W = k.cols(), rows = k_cache.rows();
  const int32_t* s = slots.as<int32_t>();
  const size_t row = static_cast<size_t>(W) * dtype_size(fdt_);
  for (int64_t i = 0; i < n; ++i) {
    need_each(op, s[i] >= 0 && s[i] < rows, [&] { return "slot " + std::to_string(s[i]) + " outside the cache of " + std::to_string(rows) + " rows"; });
    std::memcpy(static_cast<char*>(k_cache.data) + s[i] * row, static_cast<const char*>(k.data) + i * row, row);
    std::memcpy(static_cast<char*>(v_cache.data) + s[i] * row, static_cast<const char*>(v.data) + i * row, row);
  }
}

}  // namespace hayate
