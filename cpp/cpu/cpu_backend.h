// CpuBackend: the reference backend. f32 weights and activations, multi-threaded with a ThreadPool,
// GEMMs through OpenBLAS when built with it (or the built-in batch-invariant kernel). Every other backend
// is checked op by op against this one.
#pragma once
#include <memory>

#include "backend.h"
#include "cpu/gemm.h"
#include "thread_pool.h"

namespace hayate {

class CpuBackend : public Backend {
 public:
  // threads: 0 = one per hardware thread; gemm: "auto" | "blas" | "builtin".
  CpuBackend(int threads, const std::string& gemm);

  std::string name() const override { return "cpu"; }
  std::string description() const override;
  DType weight_dtype() const override { return DType::F32; }
  DType activation_dtype() const override { return DType::F32; }
  ThreadPool& pool() { return *pool_; }

  void copy_from_host(void* dst, const void* host_src, size_t bytes) override;
  void copy_to_host(void* host_dst, const void* src, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
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

 protected:
  void* raw_alloc(size_t bytes) override;
  void raw_free(void* p) override;

 private:
  std::unique_ptr<ThreadPool> pool_;
  cpu::GemmImpl gemm_impl_;
};

// Picks one token from a row of logits with the SamplingRow semantics of backend.h (exposed for tests).
void sample_row(const float* logits, int64_t vocab, const SamplingRow& row, int32_t* id, float* logprob);

}  // namespace hayate
