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
  HAYATE_CHECK(is_float(dst.dtype) && is_float(host_dtype), ErrorCode::kInternal,
               "upload: cannot convert between integer and float tensors");
  std::vector<uint8_t> tmp(n * dtype_size(dst.dtype));
  convert_float(tmp.data(), dst.dtype, host, host_dtype, n);
  copy_from_host(dst.data, tmp.data(), tmp.size());
}

void Backend::download_f32(float* host_dst, Tensor src) {
  size_t n = static_cast<size_t>(src.numel());
  if (src.dtype == DType::F32) {
    copy_to_host(host_dst, src.data, n * 4);
    return;
  }
  HAYATE_CHECK(is_float(src.dtype), ErrorCode::kInternal, "download_f32 of an integer tensor");
  std::vector<uint8_t> raw(src.nbytes());
  copy_to_host(raw.data(), src.data, raw.size());
  convert_to_f32(host_dst, raw.data(), src.dtype, n);
}

void Backend::download_f64(double* host_dst, Tensor src) {
  size_t n = static_cast<size_t>(src.numel());
  HAYATE_CHECK(is_float(src.dtype), ErrorCode::kInternal, "download_f64 of an integer tensor");
  if (src.dtype == DType::F64) {
    copy_to_host(host_dst, src.data, n * 8);
    return;
  }
  std::vector<uint8_t> raw(src.nbytes());
  copy_to_host(raw.data(), src.data, raw.size());
  convert_float(host_dst, DType::F64, raw.data(), src.dtype, n);
}

// ---- training ops: a backend that does not train keeps these defaults -------------------------
namespace {
[[noreturn]] void not_implemented(const Backend& be, const char* op) {
  fail(ErrorCode::kBackend, std::string(op) + " is not implemented on backend '" + be.name() + "'");
}
}  // namespace

void Backend::lora_linear(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, float) { not_implemented(*this, "lora_linear"); }
void Backend::lora_linear_backward(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, float, bool) {
  not_implemented(*this, "lora_linear_backward");
}
void Backend::attention_forward(Tensor, Tensor, Tensor, Tensor, Tensor, const VarlenMeta&) { not_implemented(*this, "attention_forward"); }
void Backend::attention_backward(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, const VarlenMeta&) {
  not_implemented(*this, "attention_backward");
}
void Backend::rmsnorm_backward(Tensor, Tensor, Tensor, Tensor, float, bool) { not_implemented(*this, "rmsnorm_backward"); }
void Backend::rope_backward(Tensor, Tensor, Tensor, int) { not_implemented(*this, "rope_backward"); }
void Backend::swiglu_backward(Tensor, Tensor, Tensor, Tensor, Tensor) { not_implemented(*this, "swiglu_backward"); }
void Backend::scatter_add_rows(Tensor, Tensor, Tensor) { not_implemented(*this, "scatter_add_rows"); }
void Backend::logprob_forward(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, float) { not_implemented(*this, "logprob_forward"); }
void Backend::logprob_backward(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, float) { not_implemented(*this, "logprob_backward"); }
void Backend::adamw_step(Tensor, Tensor, Tensor, Tensor, const AdamWParams&) { not_implemented(*this, "adamw_step"); }
double Backend::sum_squares(Tensor) { not_implemented(*this, "sum_squares"); }
void Backend::adamw_step_multi(const std::vector<AdamWTensorRef>& tensors, const AdamWParams& p) {
  for (const AdamWTensorRef& t : tensors) adamw_step(t.param, t.grad, t.m, t.v, p);
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
