// The CUDA backend's side of the op contract (cpp/op_checks.h): its dtype rules (float tensors F32 or BF16,
// the attention lse F32) and the limits of its kernels (32-bit grid dimensions and int row counts, the
// largest head_dim and vocabulary a kernel handles), as check_<op>() functions the launchers call. Plain
// C++ over Tensor metadata, tested on the CPU.
#pragma once
#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>

#include "op_checks.h"

namespace hayate::gpu {

using checks::bad_arg;
using checks::GemmDims;
using checks::need;
using checks::need_same_dtype;

inline constexpr checks::DTypeRules kCudaDTypes = checks::DTypeRules::f32_or_bf16();

inline void need_present(const char* op, const Tensor& t, const char* name) { kCudaDTypes.need_present(op, t, name); }
// F32 or BF16 (the float dtypes the CUDA kernels read and write).
inline void need_float(const char* op, const Tensor& t, const char* name) { kCudaDTypes.need_float(op, t, name); }
inline void need_dtype(const char* op, const Tensor& t, DType d, const char* name) {
  kCudaDTypes.need_dtype(op, t, d, name);
}
// Kernels index with 32-bit grid dimensions and int row counts in places; keep sizes sane.
inline void need_extent(const char* op, int64_t v, const char* what) {
  need(op, v >= 0 && v < (int64_t(1) << 31), std::string(what) + " = " + std::to_string(v) + " is out of range");
}

inline GemmDims check_gemm(const Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  return checks::check_gemm(kCudaDTypes, out, a, b, trans_a, trans_b);
}

inline GemmDims check_linear(const char* op, const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& bias) {
  return checks::check_linear(kCudaDTypes, op, out, x, w, bias);
}

inline void check_embedding(const Tensor& out, const Tensor& table, const Tensor& ids) {
  checks::check_embedding(kCudaDTypes, out, table, ids);
  need_extent("embedding", ids.numel(), "number of ids");
}

inline void check_scatter_add_rows(const Tensor& out, const Tensor& src, const Tensor& ids) {
  checks::check_scatter_add_rows(kCudaDTypes, out, src, ids);
  need_extent("scatter_add_rows", ids.numel(), "number of ids");
}

inline void check_rmsnorm(const Tensor& out, const Tensor& x, const Tensor& w) {
  checks::check_rmsnorm(kCudaDTypes, out, x, w);
  need_extent("rmsnorm", x.cols(), "row width");
}

inline void check_rmsnorm_backward(const Tensor& dx, const Tensor& dout, const Tensor& x, const Tensor& w) {
  checks::check_rmsnorm_backward(kCudaDTypes, dx, dout, x, w);
}

// add / swiglu: out = f(a, b) elementwise, one dtype.
inline void check_binary(const char* op, const Tensor& out, const Tensor& a, const Tensor& b, const char* a_name = "a",
                         const char* b_name = "b") {
  checks::check_binary(kCudaDTypes, op, out, a, b, a_name, b_name);
}

inline void check_swiglu_backward(const Tensor& dgate, const Tensor& dup, const Tensor& dout, const Tensor& gate,
                                  const Tensor& up) {
  checks::check_swiglu_backward(kCudaDTypes, dgate, dup, dout, gate, up);
}

inline void check_rope(const char* op, const Tensor& x, const Tensor& positions, const Tensor& cos_sin, int head_dim) {
  checks::check_rope(kCudaDTypes, op, x, positions, cos_sin, head_dim);
}

inline void check_kv_store(const Tensor& kc, const Tensor& vc, const Tensor& k, const Tensor& v, const Tensor& slots) {
  checks::check_kv_store(kCudaDTypes, kc, vc, k, v, slots);
  need_extent("kv_store", k.rows(), "number of rows");
}

inline void check_paged_attention(const Tensor& out, const Tensor& q, const Tensor& kc, const Tensor& vc,
                                  const AttentionMeta& m) {
  const char* op = "paged_attention";
  checks::check_paged_attention(kCudaDTypes, out, q, kc, vc, m);
  const int64_t hd = m.head_dim;
  need(op, hd <= 256 && hd % 2 == 0, "head_dim " + std::to_string(hd) + " is not supported on cuda (even, at most 256)");
  need_extent(op, q.rows(), "number of query rows");
  need_extent(op, kc.rows(), "cache rows");
}

// attention_forward / attention_backward; cu_seqlens' values are checked by a kernel (attention_forward.cu).
// Returns the number of sequences.
inline int64_t check_varlen_attention(const char* op, std::initializer_list<std::pair<const Tensor*, const char*>> qlike,
                                      std::initializer_list<std::pair<const Tensor*, const char*>> kvlike,
                                      const Tensor& lse, const VarlenMeta& m) {
  const int64_t num_seqs = checks::check_varlen_attention(kCudaDTypes, op, qlike, kvlike, lse, m);
  const int64_t qw = int64_t(m.num_q_heads) * m.head_dim, kw = int64_t(m.num_kv_heads) * m.head_dim;
  need_extent(op, qlike.begin()->first->rows() * std::max<int64_t>(qw, kw), "q elements");
  need_extent(op, m.cu_seqlens.numel(), "number of sequences");
  need(op, m.num_q_heads < 65536, "too many heads");
  return num_seqs;
}

inline void check_log_softmax_gather(const Tensor& out, const Tensor& logits, const Tensor& targets) {
  checks::check_log_softmax_gather(kCudaDTypes, out, logits, targets);
  need_extent("log_softmax_gather", logits.rows(), "rows");
}

inline void check_sample(const Tensor& logits) {
  const char* op = "sample";
  checks::check_sample(kCudaDTypes, logits);
  need(op, logits.cols() < (int64_t(1) << 22), "vocabulary of " + std::to_string(logits.cols()) +
                                                  " exceeds the sampler's limit of 4194304");
  need_extent(op, logits.rows(), "rows");
}

inline checks::LoraDims check_lora_linear(const Tensor& out, const Tensor& xa, const Tensor& x, const Tensor& w,
                                          const Tensor& bias, const Tensor& a, const Tensor& b) {
  return checks::check_lora_linear(kCudaDTypes, out, xa, x, w, bias, a, b);
}

inline checks::LoraDims check_lora_linear_backward(const Tensor& dx, const Tensor& da, const Tensor& db,
                                                   const Tensor& dout, const Tensor& x, const Tensor& xa,
                                                   const Tensor& w, const Tensor& a, const Tensor& b) {
  return checks::check_lora_linear_backward(kCudaDTypes, dx, da, db, dout, x, xa, w, a, b);
}

inline void check_logprob_forward(const Tensor& logprobs, const Tensor& lse, const Tensor& entropy, const Tensor& hidden,
                                  const Tensor& lm_head, const Tensor& targets) {
  checks::check_logprob_forward(kCudaDTypes, logprobs, lse, entropy, hidden, lm_head, targets);
  need_extent("logprob_forward", hidden.rows(), "rows");
}

inline void check_logprob_backward(const Tensor& dhidden, const Tensor& dlogprobs, const Tensor& hidden,
                                   const Tensor& lm_head, const Tensor& targets, const Tensor& lse) {
  checks::check_logprob_backward(kCudaDTypes, dhidden, dlogprobs, hidden, lm_head, targets, lse);
  need_extent("logprob_backward", hidden.rows(), "rows");
}

inline void check_adamw_step(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v,
                             const AdamWParams& p) {
  checks::check_adamw_step(kCudaDTypes, param, grad, m, v, p);
}

inline void check_sum_squares(const Tensor& x) { checks::check_sum_squares(kCudaDTypes, x); }

}  // namespace hayate::gpu
