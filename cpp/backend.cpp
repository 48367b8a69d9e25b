#include "backend.h"

#include <vector>

namespace hayate {

void* Backend::alloc_bytes(size_t bytes) {
  void* p = raw_alloc(bytes == 0 ? 1 : bytes);
  if (!p) {
    fail(ErrorCode::kOutOfMemory, "out of memory on backend '" + name() + "': could not allocate " +
                                      std::to_string(bytes) + " bytes (" + std::to_string(in_use_) +
                                      " in use); use a smaller batch, context or model");
  }
  in_use_ += bytes;
  if (in_use_ > peak_) peak_ = in_use_;
  return p;
}

void Backend::free_bytes(void* p, size_t bytes) {
  if (!p) return;
  raw_free(p);
  in_use_ -= bytes;
}

void Backend::upload(Tensor dst, const void* host, DType host_dtype) {
  size_t n = static_cast<size_t>(dst.numel());
  if (host_dtype == dst.dtype) {
    copy_from_host(dst.data, host, dst.nbytes());
    return;
  }
  HAYATE_CHECK(dst.dtype != DType::I32 && host_dtype != DType::I32, ErrorCode::kInternal,
               "upload: cannot convert between integer and float tensors");
  std::vector<float> f32(n);
  convert_to_f32(f32.data(), host, host_dtype, n);
  if (dst.dtype == DType::F32) {
    copy_from_host(dst.data, f32.data(), n * 4);
    return;
  }
  std::vector<uint16_t> half(n);
  for (size_t i = 0; i < n; ++i) half[i] = dst.dtype == DType::BF16 ? f32_to_bf16(f32[i]) : f32_to_f16(f32[i]);
  copy_from_host(dst.data, half.data(), n * 2);
}

void Backend::download_f32(float* host_dst, Tensor src) {
  size_t n = static_cast<size_t>(src.numel());
  if (src.dtype == DType::F32) {
    copy_to_host(host_dst, src.data, n * 4);
    return;
  }
  HAYATE_CHECK(src.dtype != DType::I32, ErrorCode::kInternal, "download_f32 of an integer tensor");
  std::vector<uint16_t> half(n);
  copy_to_host(half.data(), src.data, n * 2);
  convert_to_f32(host_dst, half.data(), src.dtype, n);
}

Buffer::Buffer(Backend& be, DType dtype, std::initializer_list<int64_t> shape) : be_(&be) {
  t_ = Tensor(nullptr, dtype, shape);
  for (int i = 0; i < t_.ndim; ++i)
    HAYATE_CHECK(t_.shape[i] >= 0, ErrorCode::kInternal, "negative dimension in " + t_.shape_str());
  bytes_ = t_.nbytes();
  t_.data = be.alloc_bytes(bytes_);
}

Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    release();
    be_ = o.be_;
    t_ = o.t_;
    bytes_ = o.bytes_;
    o.be_ = nullptr;
    o.t_ = Tensor{};
  }
  return *this;
}

void Buffer::release() {
  if (be_ && t_.data) be_->free_bytes(t_.data, bytes_);
  be_ = nullptr;
  t_ = Tensor{};
  bytes_ = 0;
}

}  // namespace hayate
