// embedding: out[i, :] = table[ids[i], :] (token embeddings, and the model's gather of output rows).
// Pure data movement: one block per output row. Same-dtype rows whose bytes are 16-byte aligned move as
// uint4 vectors (a 1024-wide bf16 row is 128 vectors: one per thread); other cases convert per element.
// An id outside the table raises kErrEmbeddingId and its row is written as zeros.
#include "cuda_check.h"
#include "device_utils.cuh"
#include "kernels.h"

namespace hayate::gpu {

namespace {

template <class U>
__global__ void gather_rows_kernel(U* out, const U* table, const int32_t* ids, int64_t units_per_row, int64_t V,
                                   int* err) {
  const int64_t i = blockIdx.x;
  const int32_t id = ids[i];
  U* o = out + i * units_per_row;
  if (id < 0 || id >= V) {
    if (threadIdx.x == 0) raise_error(err, kErrEmbeddingId);
    for (int64_t j = threadIdx.x; j < units_per_row; j += blockDim.x) o[j] = U{};
    return;
  }
  const U* t = table + static_cast<int64_t>(id) * units_per_row;
  for (int64_t j = threadIdx.x; j < units_per_row; j += blockDim.x) o[j] = t[j];
}

__global__ void gather_rows_convert_kernel(void* out, DType tout, const void* table, DType tin, const int32_t* ids,
                                           int64_t D, int64_t V, int* err) {
  const int64_t i = blockIdx.x;
  const int32_t id = ids[i];
  const bool ok = id >= 0 && id < V;
  if (!ok && threadIdx.x == 0) raise_error(err, kErrEmbeddingId);
  for (int64_t j = threadIdx.x; j < D; j += blockDim.x)
    store_from_float(out, tout, i * D + j, ok ? load_as_float(table, tin, static_cast<int64_t>(id) * D + j) : 0.0f);
}

int row_threads(int64_t units) { return static_cast<int>(std::min<int64_t>(256, round_up(std::max<int64_t>(units, 1), 32))); }

}  // namespace

void embedding(const Ctx& c, Tensor out, Tensor table, Tensor ids) {
  check_embedding(out, table, ids);
  const int64_t n = ids.numel(), D = table.cols(), V = table.rows();
  if (n == 0 || D == 0) return;
  const unsigned grid = static_cast<unsigned>(n);
  if (out.dtype == table.dtype) {
    const int64_t row_bytes = D * static_cast<int64_t>(dtype_size(out.dtype));
    if (row_bytes % 16 == 0 && vector_width(1, {out.data, table.data}) == 16) {
      const int64_t units = row_bytes / 16;
      gather_rows_kernel<uint4><<<grid, row_threads(units), 0, c.stream>>>(out.as<uint4>(), table.as<const uint4>(),
                                                                           ids.as<const int32_t>(), units, V, c.err);
    } else if (row_bytes % 4 == 0 && reinterpret_cast<uintptr_t>(out.data) % 4 == 0 &&
               reinterpret_cast<uintptr_t>(table.data) % 4 == 0) {
      const int64_t units = row_bytes / 4;
      gather_rows_kernel<uint32_t><<<grid, row_threads(units), 0, c.stream>>>(
          out.as<uint32_t>(), table.as<const uint32_t>(), ids.as<const int32_t>(), units, V, c.err);
    } else {
      const int64_t units = row_bytes / 2;  // F32/BF16 rows are whole 2-byte units
      gather_rows_kernel<uint16_t><<<grid, row_threads(units), 0, c.stream>>>(
          out.as<uint16_t>(), table.as<const uint16_t>(), ids.as<const int32_t>(), units, V, c.err);
    }
  } else {
    gather_rows_convert_kernel<<<grid, row_threads(D), 0, c.stream>>>(out.data, out.dtype, table.data, table.dtype,
                                                                      ids.as<const int32_t>(), D, V, c.err);
  }
  HAYATE_CUDA_CHECK_LAUNCH("embedding");
}

}  // namespace hayate::gpu

// ---- backward ------------------------------------------------------------------------------------------
// scatter_add_rows: out[ids[i], :] += src[i, :], the adjoint of the row gather. The ids are distinct (the
// contract), so rows never collide: one block per source row, no atomics. A bad id raises kErrScatterId.
namespace hayate::gpu {

namespace {
__global__ void scatter_add_rows_kernel(void* out, DType to, const void* src, DType ts, const int32_t* ids, int64_t D,
                                        int64_t R, int* err) {
  const int64_t i = blockIdx.x;
  const int32_t id = ids[i];
  if (id < 0 || id >= R) {
    if (threadIdx.x == 0) raise_error(err, kErrScatterId);
    return;
  }
  for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
    const int64_t o = static_cast<int64_t>(id) * D + j;
    store_from_float(out, to, o, load_as_float(out, to, o) + load_as_float(src, ts, i * D + j));
  }
}
}  // namespace

void scatter_add_rows(const Ctx& c, Tensor out, Tensor src, Tensor ids) {
  check_scatter_add_rows(out, src, ids);
  const int64_t n = ids.numel(), D = out.cols();
  if (n == 0 || D == 0) return;
  scatter_add_rows_kernel<<<static_cast<unsigned>(n), row_threads(D), 0, c.stream>>>(out.data, out.dtype, src.data, src.dtype,
                                                                                   ids.as<const int32_t>(), D, out.rows(), c.err);
  HAYATE_CUDA_CHECK_LAUNCH("scatter_add_rows");
}

}  // namespace hayate::gpu
