// Row gather (CpuBackend::embedding: token embeddings, and any [rows, cols] gather) and its adjoint,
// scatter_add_rows (the backward of the gather); ids are checked against the table on the host.
#include <cstring>

#include "cpu/cpu_backend.h"
#include "cpu/cpu_util.h"

namespace hayate {

using checks::need_each;
using cpu::axpy;
using cpu::dispatch_float;
using cpu::rows_per_thread;

void CpuBackend::embedding(Tensor out, Tensor table, Tensor ids) {
  const char* op = "embedding";
  checks::check_embedding(dtypes_, out, table, ids);
  const int64_t n = ids.numel(), D = table.cols(), V = table.rows();
  const int32_t* id = ids.as<int32_t>();
  for (int64_t i = 0; i < n; ++i)
    need_each(op, id[i] >= 0 && id[i] < V, [&] { return "id " + std::to_string(id[i]) + " out of range [0, " + std::to_string(V) + ")"; });
  if (table.dtype == DType::BF16) {  // bf16 weights (f32 mode): widen the rows
    pool_->parallel_for(n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        convert_to_f32(out.as<float>() + i * D, table.as<uint16_t>() + id[i] * D, DType::BF16, static_cast<size_t>(D));
    }, rows_per_thread(D));
    return;
  }
  const size_t row = static_cast<size_t>(D) * dtype_size(fdt_);
  char* o = static_cast<char*>(out.data);
  const char* t = static_cast<const char*>(table.data);
  pool_->parallel_for(n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) std::memcpy(o + i * row, t + id[i] * row, row);
  }, rows_per_thread(D));
}

void CpuBackend::scatter_add_rows(Tensor out, Tensor src, Tensor ids) {
  const char* op = "scatter_add_rows";
  checks::check_scatter_add_rows(dtypes_, out, src, ids);
  const int64_t n = ids.numel(), D = out.cols(), R = out.rows();
  const int32_t* id = ids.as<int32_t>();
  for (int64_t i = 0; i < n; ++i) need_each(op, id[i] >= 0 && id[i] < R, [&] { return "row id " + std::to_string(id[i]) + " outside " + out.shape_str(); });
  dispatch_float(fdt_, [&](auto z) {
    using T = decltype(z);
    pool_->parallel_for(n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) axpy(out.as<T>() + id[i] * D, T(1), src.as<T>() + i * D, D);
    }, rows_per_thread(D));
  });
}

}  // namespace hayate
