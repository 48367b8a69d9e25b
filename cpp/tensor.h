// Tensor: a non-owning, typed, row-major view of memory that belongs to a backend (host memory for the
// CPU backend, device memory for CUDA). Ownership lives in Buffer (backend.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

namespace hayate {

// F64 exists for the CPU backend's double-precision mode (gradient checks against finite differences).
enum class DType : uint8_t { F32 = 0, BF16 = 1, F16 = 2, I32 = 3, F64 = 4 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);  // "F32", "BF16", "F16", "I32", "F64" (safetensors spelling)
bool is_float(DType t);           // every dtype but I32

constexpr int kMaxDims = 4;

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::F32;
  int ndim = 0;
  int64_t shape[kMaxDims] = {1, 1, 1, 1};

  Tensor() = default;
  Tensor(void* d, DType t, std::initializer_list<int64_t> dims);

  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  int64_t dim(int i) const { return shape[i < 0 ? ndim + i : i]; }
  int64_t cols() const { return ndim == 0 ? 1 : shape[ndim - 1]; }  // innermost extent
  int64_t rows() const { return ndim == 0 ? 1 : numel() / cols(); }  // everything else
  bool empty() const { return data == nullptr; }
  std::string shape_str() const;  // "[2, 3]"

  template <class T>
  T* as() const { return static_cast<T*>(data); }

  // Same memory, new shape with the same element count (throws otherwise).
  Tensor view(std::initializer_list<int64_t> dims) const;
  // Rows [begin, begin+count) along the first dimension.
  Tensor slice_rows(int64_t begin, int64_t count) const;
};

// bf16/f16 <-> f32 conversions (round-to-nearest-even), shared by loaders and backends.
float bf16_to_f32(uint16_t v);
uint16_t f32_to_bf16(float f);
float f16_to_f32(uint16_t v);
uint16_t f32_to_f16(float f);
// Convert n elements of `src` (any float dtype) to f32.
void convert_to_f32(float* dst, const void* src, DType src_type, size_t n);
// Convert n elements between any two float dtypes (through f64, so F64 -> F64 and F32 -> F64 are exact).
void convert_float(void* dst, DType dst_type, const void* src, DType src_type, size_t n);

}  // namespace hayate
