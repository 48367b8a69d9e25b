// The shape and dtype contract of the Backend ops (backend.h), written once for every backend: plain C++
// over Tensor metadata, never the data. Each backend op calls its check_<op>() first, with the backend's
// DTypeRules (the one part where backends differ), and every failure is kInvalidArgument naming the op.
// Index *values* (ids, slots, positions, block tables, targets, cu_seqlens) are not checked here: they may
// live on a device, so the CPU backend checks them on the host and the CUDA kernels on the device. Limits
// of one backend's kernels (e.g. CUDA grid sizes) are that backend's own (cuda/cuda_op_checks.h).
#pragma once
#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>

#include "backend.h"

namespace hayate::checks {

[[noreturn]] inline void bad_arg(const char* op, const std::string& msg) {
  fail(ErrorCode::kInvalidArgument, std::string(op) + ": " + msg);
}
inline void need(const char* op, bool ok, const std::string& msg) {
  if (!ok) bad_arg(op, msg);
}
// For checks inside per-element loops: the message is built only when the check fails (building it every
// time cost a few tenths of a percent of batch-1 decode).
template <class Msg>
inline void need_each(const char* op, bool ok, Msg&& msg) {
  if (!ok) bad_arg(op, msg());
}
inline void need_same_dtype(const char* op, const Tensor& a, const Tensor& b, const char* an, const char* bn) {
  if (a.dtype != b.dtype)
    bad_arg(op, std::string(an) + " and " + bn + " must have the same dtype, got " + dtype_name(a.dtype) + " and " +
                    dtype_name(b.dtype));
}

// Which float dtypes a backend's ops read and write. The CPU backend computes every float tensor in one
// dtype (F32, or F64 in precision "f64"); the CUDA kernels load and store F32 or BF16, converting on the fly,
// and keep the attention log-sum-exp in F32.
struct DTypeRules {
  bool one_float_dtype = true;   // every float tensor is exactly `float_dtype` (CPU); else F32 or BF16 (CUDA)
  DType float_dtype = DType::F32;
  DType stats_dtype = DType::F32;  // per-row statistics saved for a backward (attention lse)
  bool null_when_empty_ok = false;  // a null tensor without elements is fine: nothing is read (CUDA)
  const char* backend = "";
  bool bf16_weights_ok = false;  // frozen weight matrices may also be BF16 (the CPU backend in f32)

  static constexpr DTypeRules one_dtype(DType dt) { return {true, dt, dt, false, "cpu", dt == DType::F32}; }
  static constexpr DTypeRules f32_or_bf16() { return {false, DType::F32, DType::F32, true, "cuda", true}; }

  void need_present(const char* op, const Tensor& t, const char* name) const {
    if (t.data == nullptr && !(null_when_empty_ok && t.numel() == 0)) bad_arg(op, std::string(name) + " is missing");
  }
  void need_dtype(const char* op, const Tensor& t, DType d, const char* name) const {
    need_present(op, t, name);
    if (t.dtype != d) bad_arg(op, std::string(name) + " must be " + dtype_name(d) + ", got " + dtype_name(t.dtype));
  }
  // An activation, weight, gradient, LoRA matrix or optimizer state.
  void need_float(const char* op, const Tensor& t, const char* name) const {
    if (one_float_dtype) return need_dtype(op, t, float_dtype, name);
    need_present(op, t, name);
    if (t.dtype != DType::F32 && t.dtype != DType::BF16)
      bad_arg(op, std::string(name) + " must be F32 or BF16 on the " + backend + " backend, got " + dtype_name(t.dtype));
  }
  // A frozen weight matrix (projection, embedding table, lm head): a float, or BF16 where the backend reads it.
  void need_weight(const char* op, const Tensor& t, const char* name) const {
    if (bf16_weights_ok && t.dtype == DType::BF16) return need_present(op, t, name);
    need_float(op, t, name);
  }
  // Logits on the generation and scoring paths, which may stay F32 whatever the float dtype.
  void need_logits(const char* op, const Tensor& t, const char* name) const {
    if (!one_float_dtype) return need_float(op, t, name);
    need_present(op, t, name);
    if (t.dtype != DType::F32 && t.dtype != float_dtype) {
      const std::string allowed = float_dtype == DType::F32 ? "F32" : std::string("F32 or ") + dtype_name(float_dtype);
      bad_arg(op, std::string(name) + " must be " + allowed + ", got " + dtype_name(t.dtype));
    }
  }
  void need_floats(const char* op, std::initializer_list<std::pair<const Tensor*, const char*>> tensors) const {
    for (auto [t, name] : tensors) need_float(op, *t, name);
  }
  void need_stats(const char* op, const Tensor& t, const char* name) const { need_dtype(op, t, stats_dtype, name); }
  // F32, or the statistics dtype (the RoPE table and gathered log-probs are F32, or F64 in the CPU f64 mode).
  void need_f32_or_stats(const char* op, const Tensor& t, const char* name) const {
    need_present(op, t, name);
    if (t.dtype != DType::F32 && t.dtype != stats_dtype)
      bad_arg(op, std::string(name) + " must be F32, got " + dtype_name(t.dtype));
  }
};

struct GemmDims {
  int64_t M = 0, N = 0, K = 0;
};

// gemm(out, a, b, trans_a, trans_b): out [M,N] = op(a) [M,K] op(b) [K,N].
inline GemmDims check_gemm(const DTypeRules& r, const Tensor& out, const Tensor& a, const Tensor& b, bool trans_a,
                           bool trans_b) {
  const char* op = "gemm";
  r.need_float(op, out, "out");
  r.need_float(op, a, "a");
  r.need_float(op, b, "b");
  need(op, out.ndim == 2 && a.ndim == 2 && b.ndim == 2, "operands must be 2-D");
  GemmDims d;
  d.M = trans_a ? a.shape[1] : a.shape[0];
  d.K = trans_a ? a.shape[0] : a.shape[1];
  const int64_t Kb = trans_b ? b.shape[1] : b.shape[0];
  d.N = trans_b ? b.shape[0] : b.shape[1];
  need(op, d.K == Kb && out.shape[0] == d.M && out.shape[1] == d.N,
       "shapes do not match: out " + out.shape_str() + ", a " + a.shape_str() + (trans_a ? "^T" : "") + ", b " +
           b.shape_str() + (trans_b ? "^T" : ""));
  return d;
}

// linear(out, x, w, bias): out [M,N] = x [M,K] w [N,K]^T (+ bias [N]); out holds logits on the lm head.
inline GemmDims check_linear(const DTypeRules& r, const char* op, const Tensor& out, const Tensor& x, const Tensor& w,
                             const Tensor& bias) {
  r.need_float(op, x, "x");
  r.need_weight(op, w, "w");
  r.need_logits(op, out, "out");
  need(op, w.ndim == 2, "weight must be 2-D, got " + w.shape_str());
  GemmDims d{x.rows(), w.shape[0], x.cols()};
  need(op, w.shape[1] == d.K && out.rows() == d.M && out.cols() == d.N,
       "shapes do not match: out " + out.shape_str() + ", x " + x.shape_str() + ", w " + w.shape_str());
  if (!bias.empty()) {
    r.need_float(op, bias, "bias");
    need(op, bias.numel() == d.N, "bias " + bias.shape_str() + " does not match " + std::to_string(d.N) + " outputs");
  }
  return d;
}

// embedding(out, table, ids): out [n, D] gathers rows of table [V, D].
inline void check_embedding(const DTypeRules& r, const Tensor& out, const Tensor& table, const Tensor& ids) {
  const char* op = "embedding";
  r.need_float(op, out, "out");
  r.need_weight(op, table, "table");
  r.need_dtype(op, ids, DType::I32, "ids");
  need(op, out.rows() == ids.numel() && out.cols() == table.cols(),
       "out " + out.shape_str() + " does not match " + std::to_string(ids.numel()) + " ids of width " +
           std::to_string(table.cols()));
}

// scatter_add_rows(out, src, ids): out [R, D] += src [n, D] at rows ids [n].
inline void check_scatter_add_rows(const DTypeRules& r, const Tensor& out, const Tensor& src, const Tensor& ids) {
  const char* op = "scatter_add_rows";
  r.need_float(op, out, "out");
  r.need_float(op, src, "src");
  r.need_dtype(op, ids, DType::I32, "ids");
  const int64_t n = ids.numel(), D = out.cols();
  need(op, src.rows() == n && src.cols() == D,
       "src " + src.shape_str() + " does not match " + std::to_string(n) + " ids into " + out.shape_str());
}

inline void check_rmsnorm(const DTypeRules& r, const Tensor& out, const Tensor& x, const Tensor& w) {
  const char* op = "rmsnorm";
  r.need_float(op, out, "out");
  r.need_float(op, x, "x");
  r.need_float(op, w, "weight");
  need_same_dtype(op, out, x, "out", "x");
  need(op, out.numel() == x.numel() && w.numel() == x.cols(),
       "shapes do not match: x " + x.shape_str() + ", weight " + w.shape_str());
}

inline void check_rmsnorm_backward(const DTypeRules& r, const Tensor& dx, const Tensor& dout, const Tensor& x,
                                   const Tensor& w) {
  const char* op = "rmsnorm_backward";
  r.need_float(op, dx, "dx");
  r.need_float(op, dout, "dout");
  r.need_float(op, x, "x");
  r.need_float(op, w, "weight");
  need(op, dx.numel() == x.numel() && dout.numel() == x.numel() && w.numel() == x.cols(),
       "shapes do not match: x " + x.shape_str() + ", dout " + dout.shape_str() + ", weight " + w.shape_str());
}

// add / swiglu: out = f(a, b) elementwise, one dtype.
inline void check_binary(const DTypeRules& r, const char* op, const Tensor& out, const Tensor& a, const Tensor& b,
                         const char* a_name = "a", const char* b_name = "b") {
  r.need_float(op, out, "out");
  r.need_float(op, a, a_name);
  r.need_float(op, b, b_name);
  need_same_dtype(op, out, a, "out", a_name);
  need_same_dtype(op, a, b, a_name, b_name);
  need(op, a.numel() == b.numel() && out.numel() == a.numel(),
       "shapes do not match: " + a.shape_str() + ", " + b.shape_str());
}

inline void check_swiglu_backward(const DTypeRules& r, const Tensor& dgate, const Tensor& dup, const Tensor& dout,
                                  const Tensor& gate, const Tensor& up) {
  const char* op = "swiglu_backward";
  r.need_float(op, dgate, "dgate");
  r.need_float(op, dup, "dup");
  r.need_float(op, dout, "dout");
  r.need_float(op, gate, "gate");
  r.need_float(op, up, "up");
  const int64_t n = gate.numel();
  need(op, up.numel() == n && dout.numel() == n && dgate.numel() == n && dup.numel() == n,
       "shapes do not match: gate " + gate.shape_str() + ", up " + up.shape_str() + ", dout " + dout.shape_str());
}

// rope / rope_backward: x [n, heads * head_dim] in place, positions I32 [n], cos_sin [max_pos, head_dim].
inline void check_rope(const DTypeRules& r, const char* op, const Tensor& x, const Tensor& positions,
                       const Tensor& cos_sin, int head_dim) {
  r.need_float(op, x, "x");
  r.need_dtype(op, positions, DType::I32, "positions");
  r.need_f32_or_stats(op, cos_sin, "cos_sin");
  need(op, head_dim > 0 && head_dim % 2 == 0 && x.cols() % head_dim == 0 && cos_sin.cols() == head_dim &&
               positions.numel() == x.rows(),
       "shapes do not match: x " + x.shape_str() + ", head_dim " + std::to_string(head_dim) + ", cos_sin " +
           cos_sin.shape_str() + ", positions " + positions.shape_str());
}

inline void check_kv_store(const DTypeRules& r, const Tensor& kc, const Tensor& vc, const Tensor& k, const Tensor& v,
                           const Tensor& slots) {
  const char* op = "kv_store";
  r.need_float(op, kc, "k_cache");
  r.need_float(op, vc, "v_cache");
  r.need_float(op, k, "k");
  r.need_float(op, v, "v");
  r.need_dtype(op, slots, DType::I32, "slots");
  need_same_dtype(op, kc, k, "k_cache", "k");
  need_same_dtype(op, vc, v, "v_cache", "v");
  need_same_dtype(op, kc, vc, "k_cache", "v_cache");
  const int64_t n = k.rows(), W = k.cols();
  need(op, v.rows() == n && v.cols() == W && kc.cols() == W && vc.cols() == W && vc.rows() == kc.rows() &&
               slots.numel() == n,
       "shapes do not match: k " + k.shape_str() + ", v " + v.shape_str() + ", cache " + kc.shape_str() + ", slots " +
           slots.shape_str());
}

inline void check_paged_attention(const DTypeRules& r, const Tensor& out, const Tensor& q, const Tensor& kc,
                                  const Tensor& vc, const AttentionMeta& m) {
  const char* op = "paged_attention";
  r.need_float(op, out, "out");
  r.need_float(op, q, "q");
  r.need_float(op, kc, "k_cache");
  r.need_float(op, vc, "v_cache");
  need_same_dtype(op, out, q, "out", "q");
  need_same_dtype(op, q, kc, "q", "k_cache");
  need_same_dtype(op, kc, vc, "k_cache", "v_cache");
  r.need_dtype(op, m.block_tables, DType::I32, "block_tables");
  r.need_dtype(op, m.token_seq, DType::I32, "token_seq");
  r.need_dtype(op, m.token_pos, DType::I32, "token_pos");
  const int64_t n = q.rows(), Hq = m.num_q_heads, Hkv = m.num_kv_heads, hd = m.head_dim, bs = m.block_size;
  need(op, Hq > 0 && Hkv > 0 && hd > 0 && bs > 0 && Hq % Hkv == 0, "bad head configuration");
  need(op, q.cols() == Hq * hd && out.rows() == n && out.cols() == Hq * hd && kc.cols() == Hkv * hd &&
               vc.cols() == Hkv * hd && vc.rows() == kc.rows() && m.token_seq.numel() == n && m.token_pos.numel() == n &&
               m.block_tables.ndim == 2,
       "shapes do not match: q " + q.shape_str() + ", out " + out.shape_str() + ", k_cache " + kc.shape_str() +
           ", v_cache " + vc.shape_str() + ", token_seq " + m.token_seq.shape_str() + ", token_pos " +
           m.token_pos.shape_str() + ", block_tables " + m.block_tables.shape_str() + " with " + std::to_string(Hq) +
           " q heads, " + std::to_string(Hkv) + " kv heads of " + std::to_string(hd));
}

// attention_forward / attention_backward (VarlenMeta): the q-like tensors (q, out, dq, dout) [n, hq*hd] and
// the kv-like ones (k, v, dk, dv) [n, hkv*hd] all of q's dtype; lse [n, hq] in the statistics dtype;
// cu_seqlens I32 [num_seqs + 1]. Returns the number of sequences.
inline int64_t check_varlen_attention(const DTypeRules& r, const char* op,
                                      std::initializer_list<std::pair<const Tensor*, const char*>> qlike,
                                      std::initializer_list<std::pair<const Tensor*, const char*>> kvlike,
                                      const Tensor& lse, const VarlenMeta& m) {
  const Tensor& q = *qlike.begin()->first;
  r.need_dtype(op, m.cu_seqlens, DType::I32, "cu_seqlens");
  need(op, m.cu_seqlens.numel() >= 1, "cu_seqlens is empty (it holds num_seqs + 1 offsets)");
  need(op, m.num_q_heads > 0 && m.num_kv_heads > 0 && m.head_dim > 0 && m.num_q_heads % m.num_kv_heads == 0,
       "bad head configuration (" + std::to_string(m.num_q_heads) + " q heads, " + std::to_string(m.num_kv_heads) +
           " kv heads, head_dim " + std::to_string(m.head_dim) + ")");
  const int64_t n = q.rows(), qw = int64_t(m.num_q_heads) * m.head_dim, kw = int64_t(m.num_kv_heads) * m.head_dim;
  for (auto [t, name] : qlike) {
    r.need_float(op, *t, name);
    need_same_dtype(op, *t, q, name, qlike.begin()->second);
    need(op, t->rows() == n && t->cols() == qw,
         std::string(name) + " " + t->shape_str() + " does not match [" + std::to_string(n) + ", " + std::to_string(qw) +
             "] (rows x num_q_heads * head_dim)");
  }
  for (auto [t, name] : kvlike) {
    r.need_float(op, *t, name);
    need_same_dtype(op, *t, q, name, qlike.begin()->second);
    need(op, t->rows() == n && t->cols() == kw,
         std::string(name) + " " + t->shape_str() + " does not match [" + std::to_string(n) + ", " + std::to_string(kw) +
             "] (rows x num_kv_heads * head_dim)");
  }
  r.need_stats(op, lse, "lse");
  need(op, lse.numel() == n * m.num_q_heads,
       "lse " + lse.shape_str() + " does not hold one value per row and q head (" + std::to_string(n * m.num_q_heads) + ")");
  need(op, m.max_seqlen >= 0, "max_seqlen must not be negative");
  return m.cu_seqlens.numel() - 1;
}

// log_softmax_gather(out, logits, targets): out [n] (F32, or the statistics dtype), logits [n, V].
inline void check_log_softmax_gather(const DTypeRules& r, const Tensor& out, const Tensor& logits, const Tensor& targets) {
  const char* op = "log_softmax_gather";
  r.need_f32_or_stats(op, out, "out");
  r.need_logits(op, logits, "logits");
  r.need_dtype(op, targets, DType::I32, "targets");
  need(op, out.numel() == logits.rows() && targets.numel() == logits.rows(),
       "shapes do not match: logits " + logits.shape_str() + ", targets " + targets.shape_str() + ", out " +
           out.shape_str());
}

// sample(logits [B, V], ...): the host arrays of B rows are the caller's.
inline void check_sample(const DTypeRules& r, const Tensor& logits) {
  const char* op = "sample";
  r.need_logits(op, logits, "logits");
  need(op, logits.ndim >= 1, "logits are missing");
  need(op, logits.cols() > 0, "empty vocabulary: logits " + logits.shape_str());
}

// Rows and rank of a LoRA projection.
struct LoraDims {
  GemmDims d;
  int64_t r = 0;
};

// lora_linear(out, xa, x, w, bias, a [r,K], b [N,r]); xa [M, r] may be absent.
inline LoraDims check_lora_linear(const DTypeRules& r, const Tensor& out, const Tensor& xa, const Tensor& x,
                                  const Tensor& w, const Tensor& bias, const Tensor& a, const Tensor& b) {
  const char* op = "lora_linear";
  r.need_float(op, out, "out");  // not logits: the adapter's update is added in the float dtype
  r.need_float(op, a, "a");
  r.need_float(op, b, "b");
  const GemmDims d = check_linear(r, op, out, x, w, bias);
  const int64_t rank = a.rows();
  need(op, a.ndim == 2 && a.cols() == d.K && b.ndim == 2 && b.rows() == d.N && b.cols() == rank,
       "LoRA shapes do not match: x " + x.shape_str() + ", w " + w.shape_str() + ", a " + a.shape_str() + ", b " +
           b.shape_str());
  if (!xa.empty()) {
    r.need_float(op, xa, "xa");
    need(op, xa.rows() == d.M && xa.cols() == rank,
         "xa " + xa.shape_str() + " must be [" + std::to_string(d.M) + ", " + std::to_string(rank) + "]");
  }
  return {d, rank};
}

// lora_linear_backward: dx [M,K] (may be absent), dout [M,N], w [N,K]; with a present, also da, db, x, xa.
inline LoraDims check_lora_linear_backward(const DTypeRules& r, const Tensor& dx, const Tensor& da, const Tensor& db,
                                           const Tensor& dout, const Tensor& x, const Tensor& xa, const Tensor& w,
                                           const Tensor& a, const Tensor& b) {
  const char* op = "lora_linear_backward";
  r.need_float(op, dout, "dout");
  r.need_weight(op, w, "w");
  need(op, w.ndim == 2, "weight must be 2-D, got " + w.shape_str());
  const int64_t M = dout.rows(), N = dout.cols(), K = w.shape[1];
  need(op, w.shape[0] == N, "dout " + dout.shape_str() + " does not match w " + w.shape_str());
  if (!dx.empty()) {
    r.need_float(op, dx, "dx");
    need(op, dx.rows() == M && dx.cols() == K,
         "dx " + dx.shape_str() + " must be [" + std::to_string(M) + ", " + std::to_string(K) + "]");
  }
  int64_t rank = 0;
  if (!a.empty()) {
    r.need_floats(op, {{&a, "a"}, {&b, "b"}, {&da, "da"}, {&db, "db"}, {&x, "x"}, {&xa, "xa"}});
    rank = a.rows();
    need(op, a.ndim == 2 && a.cols() == K && b.ndim == 2 && b.rows() == N && b.cols() == rank && da.numel() == a.numel() &&
                 db.numel() == b.numel() && x.rows() == M && x.cols() == K && xa.rows() == M && xa.cols() == rank,
         "LoRA shapes do not match: dout " + dout.shape_str() + ", x " + x.shape_str() + ", xa " + xa.shape_str() + ", a " +
             a.shape_str() + ", b " + b.shape_str());
  }
  return {{M, N, K}, rank};
}

// logprob_forward: logprobs, lse, entropy (may be absent) [m]; hidden [m, D]; lm_head [V, D]; targets I32 [m].
inline void check_logprob_forward(const DTypeRules& r, const Tensor& logprobs, const Tensor& lse, const Tensor& entropy,
                                  const Tensor& hidden, const Tensor& lm_head, const Tensor& targets) {
  const char* op = "logprob_forward";
  r.need_floats(op, {{&logprobs, "logprobs"}, {&lse, "lse"}, {&hidden, "hidden"}});
  r.need_weight(op, lm_head, "lm_head");
  r.need_dtype(op, targets, DType::I32, "targets");
  const int64_t m = hidden.rows(), D = hidden.cols();
  need(op, lm_head.ndim == 2 && lm_head.cols() == D && targets.numel() == m && logprobs.numel() == m && lse.numel() == m,
       "shapes do not match: hidden " + hidden.shape_str() + ", lm_head " + lm_head.shape_str() + ", targets " +
           targets.shape_str());
  if (!entropy.empty()) {
    r.need_float(op, entropy, "entropy");
    need(op, entropy.numel() == m, "entropy " + entropy.shape_str() + " must have " + std::to_string(m) + " elements");
  }
}

// logprob_backward: dhidden [m, D], dlogprobs and lse [m], hidden [m, D], lm_head [V, D], targets I32 [m].
inline void check_logprob_backward(const DTypeRules& r, const Tensor& dhidden, const Tensor& dlogprobs, const Tensor& hidden,
                                   const Tensor& lm_head, const Tensor& targets, const Tensor& lse) {
  const char* op = "logprob_backward";
  r.need_floats(op, {{&dhidden, "dhidden"}, {&dlogprobs, "dlogprobs"}, {&hidden, "hidden"}, {&lse, "lse"}});
  r.need_weight(op, lm_head, "lm_head");
  r.need_dtype(op, targets, DType::I32, "targets");
  const int64_t m = hidden.rows(), D = hidden.cols();
  need(op, lm_head.ndim == 2 && lm_head.cols() == D && targets.numel() == m && dlogprobs.numel() == m && lse.numel() == m &&
               dhidden.numel() == m * D,
       "shapes do not match: hidden " + hidden.shape_str() + ", lm_head " + lm_head.shape_str() + ", dhidden " +
           dhidden.shape_str());
}

// adamw_step: param, grad, m, v of one element count; step >= 1.
inline void check_adamw_step(const DTypeRules& r, const Tensor& param, const Tensor& grad, const Tensor& m,
                             const Tensor& v, const AdamWParams& p) {
  const char* op = "adamw_step";
  r.need_floats(op, {{&param, "param"}, {&grad, "grad"}, {&m, "m"}, {&v, "v"}});
  const int64_t n = param.numel();
  need(op, grad.numel() == n && m.numel() == n && v.numel() == n,
       "shapes do not match: param " + param.shape_str() + ", grad " + grad.shape_str());
  need(op, p.step >= 1, "step must be >= 1");
}

inline void check_sum_squares(const DTypeRules& r, const Tensor& x) { r.need_float("sum_squares", x, "x"); }

}  // namespace hayate::checks
