// CUDA backend (the contract of cpp/backend.h): the Backend ops on one NVIDIA GPU (compute capability
// 8.0+: bf16 tensor cores), with the project's own kernels (one op per file under cuda/). Weights and
// activations are bf16, accumulation fp32 everywhere; logits, log-probs, the RoPE table and LoRA
// parameters (param_dtype) are fp32. Every op accepts F32 or BF16 float tensors (and rejects other dtypes
// with kInvalidArgument).
//
// Execution model: ops are enqueued on the backend's stream and return immediately; copy_to_host(),
// synchronize() and sample() wait. Kernels cannot throw, so invalid index *values* (token ids, slots,
// positions, block tables, targets) are recorded in a device error word and reported as kInvalidArgument
// at the next of those sync points (set HAYATE_CUDA_SYNC=1 to check after every op while debugging).
// Device memory comes from cudaMalloc (never managed memory) through a caching allocator.
//
// This header is plain C++ (no CUDA headers): cpp/backend_registry.cpp, tests and benchmarks include it.
#pragma once
#include <memory>
#include <string>

#include "backend.h"
#include "gemm_backend.h"

namespace hayate {

namespace gpu {
struct Ctx;
}

// Throws hayate::Error(kBackend) with a clear message when no usable device exists (no driver, no GPU,
// ordinal out of range, compute capability below 8.0).
std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& options);
// Number of CUDA devices; 0 without a driver or device. Never throws, never aborts.
int cuda_backend_device_count();

class CudaBackend : public Backend {
 public:
  // options.device: the ordinal; options.gemm: "auto"/"builtin"/"hayate" (own kernels) or "cublas"/"blas".
  explicit CudaBackend(const BackendOptions& options);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  std::string name() const override { return "cuda"; }
  std::string description() const override;
  DType weight_dtype() const override { return DType::BF16; }
  DType activation_dtype() const override { return DType::BF16; }
  DType param_dtype() const override { return DType::F32; }

  void copy_from_host(void* dst, const void* host_src, size_t bytes) override;
  void copy_to_host(void* host_dst, const void* src, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void synchronize() override;
  void fill_zero(Tensor t) override;

  void gemm(Tensor out, Tensor a, Tensor b, bool trans_a, bool trans_b, float alpha, float beta) override;
  void linear(Tensor out, Tensor x, Tensor w, Tensor bias) override;
  void embedding(Tensor out, Tensor table, Tensor ids) override;
  void rmsnorm(Tensor out, Tensor x, Tensor weight, float eps) override;
  void add(Tensor out, Tensor a, Tensor b) override;
  void rope(Tensor x, Tensor positions, Tensor cos_sin, int head_dim) override;
  void swiglu(Tensor out, Tensor gate, Tensor up) override;
  void kv_store(Tensor k_cache, Tensor v_cache, Tensor k, Tensor v, Tensor slots) override;
  void paged_attention(Tensor out, Tensor q, Tensor k_cache, Tensor v_cache, const AttentionMeta& meta) override;
  void log_softmax_gather(Tensor out, Tensor logits, Tensor targets, float inv_temperature) override;
  void sample(Tensor logits, const SamplingRow* rows, int32_t* out_ids, float* out_logprobs) override;

  // Training ops. attention_forward / attention_backward: fused FlashAttention-2-style kernels
  // (cuda/attention_forward.cu, cuda/attention_backward.cu), head_dim <= 128, lse in F32.
  void attention_forward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, const VarlenMeta& meta) override;
  void attention_backward(Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v, Tensor out,
                          Tensor lse, const VarlenMeta& meta) override;
  void lora_linear(Tensor out, Tensor xa, Tensor x, Tensor w, Tensor bias, Tensor a, Tensor b, float scale) override;
  void lora_linear_backward(Tensor dx, Tensor da, Tensor db, Tensor dout, Tensor x, Tensor xa, Tensor w, Tensor a,
                            Tensor b, float scale, bool accumulate_dx) override;
  void rmsnorm_backward(Tensor dx, Tensor dout, Tensor x, Tensor weight, float eps, bool accumulate) override;
  void rope_backward(Tensor dx, Tensor positions, Tensor cos_sin, int head_dim) override;
  void swiglu_backward(Tensor dgate, Tensor dup, Tensor dout, Tensor gate, Tensor up) override;
  void scatter_add_rows(Tensor out, Tensor src, Tensor ids) override;
  void logprob_forward(Tensor logprobs, Tensor lse, Tensor entropy, Tensor hidden, Tensor lm_head, Tensor targets,
                       float inv_temperature) override;
  void logprob_backward(Tensor dhidden, Tensor dlogprobs, Tensor hidden, Tensor lm_head, Tensor targets, Tensor lse,
                        float inv_temperature) override;
  void adamw_step(Tensor param, Tensor grad, Tensor m, Tensor v, const AdamWParams& p) override;
  // One launch over all tensors; the table (pointers + chunks) is uploaded only when it changes.
  void adamw_step_multi(const std::vector<AdamWTensorRef>& tensors, const AdamWParams& p) override;
  double sum_squares(Tensor x) override;
  std::vector<double> sum_squares_many(const std::vector<Tensor>& xs) override;

  // ---- CUDA specifics (tests, benchmarks) ----
  static bool cublas_compiled();
  // linear() and gemm() only: lora_linear and the logprob ops always run the batch-invariant kernel.
  void set_gemm_backend(gpu::GemmBackend impl);  // throws kBackend for Cublas when cuBLAS is not compiled in
  gpu::GemmBackend gemm_backend() const;
  int device() const;
  int sm_count() const;
  std::string device_name() const;
  int compute_capability() const;  // e.g. 90
  double peak_memory_bandwidth_gbs() const;  // from the memory clock and bus width; 0 when unknown
  void* stream_handle() const;     // the cudaStream_t all ops run on
  // Waits for the stream, then throws kInvalidArgument for invalid indices reported by kernels since the
  // last check (kBackend for asynchronous CUDA faults).
  void check_errors();

 protected:
  void* raw_alloc(size_t bytes) override;
  void raw_free(void* p) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  gpu::Ctx op_ctx();             // makes the device current; the launch context of the ops (kernels.h)
  void after_op(const char* op); // HAYATE_CUDA_SYNC=1: wait and check after every op
};

}  // namespace hayate
