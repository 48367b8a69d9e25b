// CpuBackend: the reference backend. f32 activations and f32 or bf16 frozen weight matrices (or f64 for
// everything in precision "f64", used by gradient checks against finite differences), multi-threaded with a
// ThreadPool, f32 GEMMs through OpenBLAS when built with it (or the built-in batch-invariant kernel), bf16
// weights through the bf16 kernels of gemm.h. Every other backend is checked op by op against this one.
//
// Layout: this class's construction, memory and GEMM dispatch live in cpu_backend.cpp; each op family, its
// forward and backward together, in a file of its own named as in cuda/ (embedding.cpp, rmsnorm.cpp,
// add.cpp, rope.cpp, swiglu.cpp, kv_store.cpp, attention.cpp, logprob.cpp, lora_linear.cpp, adamw.cpp,
// sampling.cpp). Every op checks its arguments against the shared contract (op_checks.h) first.
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <type_traits>
#include <vector>

#include "backend.h"
#include "cpu/gemm.h"
#include "op_checks.h"
#include "thread_pool.h"

namespace hayate {

class CpuBackend : public Backend {
 public:
  // threads: 0 = one per hardware thread; gemm: "auto" | "blas" | "builtin"; precision: "f32" | "f64";
  // weights: "auto" | "bf16" | "f32" (see BackendOptions; f64 keeps every tensor in f64).
  CpuBackend(int threads, const std::string& gemm, const std::string& precision = "f32",
             const std::string& weights = "auto");

  std::string name() const override { return "cpu"; }
  std::string description() const override;
  DType weight_dtype() const override { return fdt_; }
  DType matrix_dtype(DType checkpoint) const override;
  DType activation_dtype() const override { return fdt_; }
  DType param_dtype() const override { return fdt_; }
  ThreadPool& pool() { return *pool_; }

  void copy_from_host(void* dst, const void* host_src, size_t bytes) override;
  void copy_to_host(void* host_dst, const void* src, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void fill_zero(Tensor t) override;

  // cpu_backend.cpp
  void gemm(Tensor out, Tensor a, Tensor b, bool trans_a, bool trans_b, float alpha, float beta) override;
  void linear(Tensor out, Tensor x, Tensor w, Tensor bias) override;
  // embedding.cpp
  void embedding(Tensor out, Tensor table, Tensor ids) override;
  void scatter_add_rows(Tensor out, Tensor src, Tensor ids) override;
  // rmsnorm.cpp
  void rmsnorm(Tensor out, Tensor x, Tensor weight, float eps) override;
  void rmsnorm_backward(Tensor dx, Tensor dout, Tensor x, Tensor weight, float eps, bool accumulate) override;
  // add.cpp
  void add(Tensor out, Tensor a, Tensor b) override;
  // rope.cpp
  void rope(Tensor x, Tensor positions, Tensor cos_sin, int head_dim) override;
  void rope_backward(Tensor dx, Tensor positions, Tensor cos_sin, int head_dim) override;
  // swiglu.cpp
  void swiglu(Tensor out, Tensor gate, Tensor up) override;
  void swiglu_backward(Tensor dgate, Tensor dup, Tensor dout, Tensor gate, Tensor up) override;
  // kv_store.cpp
  void kv_store(Tensor k_cache, Tensor v_cache, Tensor k, Tensor v, Tensor slots) override;
  // attention.cpp: paged (generation) and varlen (training)
  void paged_attention(Tensor out, Tensor q, Tensor k_cache, Tensor v_cache, const AttentionMeta& meta) override;
  void attention_forward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, const VarlenMeta& meta) override;
  void attention_backward(Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v, Tensor out,
                          Tensor lse, const VarlenMeta& meta) override;
  // logprob.cpp
  void log_softmax_gather(Tensor out, Tensor logits, Tensor targets, float inv_temperature) override;
  void logprob_forward(Tensor logprobs, Tensor lse, Tensor entropy, Tensor hidden, Tensor lm_head, Tensor targets,
                       float inv_temperature) override;
  void logprob_backward(Tensor dhidden, Tensor dlogprobs, Tensor hidden, Tensor lm_head, Tensor targets, Tensor lse,
                        float inv_temperature) override;
  // lora_linear.cpp
  void lora_linear(Tensor out, Tensor xa, Tensor x, Tensor w, Tensor bias, Tensor a, Tensor b, float scale) override;
  void lora_linear_backward(Tensor dx, Tensor da, Tensor db, Tensor dout, Tensor x, Tensor xa, Tensor w, Tensor a,
                            Tensor b, float scale, bool accumulate_dx) override;
  // adamw.cpp
  void adamw_step(Tensor param, Tensor grad, Tensor m, Tensor v, const AdamWParams& p) override;
  double sum_squares(Tensor x) override;
  // sampling.cpp
  void sample(Tensor logits, const SamplingRow* rows, int32_t* out_ids, float* out_logprobs) override;

 protected:
  void* raw_alloc(size_t bytes) override;
  void raw_free(void* p) override;

 public:
  ~CpuBackend() override;

 private:
  // Large blocks (>= kCacheMinBytes) are kept for reuse after free, as a GPU caching allocator does:
  // a training step frees and reallocates the same activation sizes every layer and every step, and
  // handing them back to the OS costs a page fault per 4 KiB each time. Bounded by kCacheMaxBytes.
  static constexpr size_t kCacheMinBytes = size_t(1) << 20;
  static constexpr size_t kCacheMaxBytes = size_t(1) << 30;
  std::mutex cache_mutex_;
  std::multimap<size_t, void*> cache_;        // free blocks by size
  std::unordered_map<void*, size_t> sizes_;  // size of every live or cached large block
  size_t cached_bytes_ = 0;

 private:
  // out = alpha * op(a) op(b) + beta * out in the backend's float type (T = float or double).
  // prefer_blas: training products (large inner or outer dimensions) use the BLAS in "auto" mode whatever M.
  template <class T>
  void gemm_t(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha, const T* a, const T* b,
              double beta, T* out, bool prefer_blas = false);
  // Products through a frozen weight w, of either weight dtype (BF16 only in f32 mode, through the bf16
  // kernels of gemm.h): out[M,N] = alpha * x[M,K] w[N,K]^T, and out[M,N] = alpha * x[M,K] w[K,N] + beta * out.
  // Training products: the BLAS in "auto" mode whatever M (gemm_t's prefer_blas).
  template <class T>
  void weight_nt(int64_t M, int64_t N, int64_t K, double alpha, const T* x, Tensor w, T* out);
  template <class T>
  void weight_nn(int64_t M, int64_t N, int64_t K, double alpha, const T* x, Tensor w, double beta, T* out);
  template <class T>
  void rope_t(Tensor x, Tensor positions, Tensor cos_sin, int head_dim, bool inverse);

  // Host workspace reused by ops that need a large temporary (the lm-head logits of a row chunk), so
  // repeated calls do not fault in fresh pages; one op uses it at a time. Not counted in bytes_in_use.
  template <class T>
  T* scratch(size_t n) {
    std::vector<T>* v;
    if constexpr (std::is_same_v<T, double>) v = &scratch_d_;
    else v = &scratch_f_;
    if (v->size() < n) v->resize(n);
    return v->data();
  }
  std::vector<float> scratch_f_;
  std::vector<double> scratch_d_;

  std::unique_ptr<ThreadPool> pool_;
  cpu::GemmImpl gemm_impl_;
  DType fdt_ = DType::F32;  // every float tensor's dtype (F64 in precision "f64")
  enum class Weights { Auto, Bf16, F32 } weights_ = Weights::Auto;
  checks::DTypeRules dtypes_ = checks::DTypeRules::one_dtype(DType::F32);  // the contract's dtypes: fdt_
};

// Picks one token from a row of logits with the SamplingRow semantics of backend.h (cpu/sampling.cpp
// spells them out); exposed for tests.
void sample_row(const float* logits, int64_t vocab, const SamplingRow& row, int32_t* id, float* logprob);

}  // namespace hayate
