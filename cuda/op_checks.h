// Shape and dtype checks of the CUDA ops: plain C++ over Tensor metadata (never the device data), shared by
// the launchers and tested on the CPU. Every failure is kInvalidArgument naming the op, as on the CPU
// backend. Index *values* (ids, slots, positions, block tables, targets) live on the device: the kernels
// check them and raise an error flag that the backend turns into kInvalidArgument at its next sync point.
#pragma once
#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>

#include "backend.h"

namespace hayate::gpu {

[[noreturn]] inline void bad_arg(const char* op, const std::string& msg) {
  fail(ErrorCode::kInvalidArgument, std::string(op) + ": " + msg);
}
inline void need(const char* op, bool ok, const std::string& msg) {
  if (!ok) bad_arg(op, msg);
}
inline bool is_f32_or_bf16(DType t) { return t == DType::F32 || t == DType::BF16; }

inline void need_present(const char* op, const Tensor& t, const char* name) {
  if (t.data == nullptr && t.numel() != 0) bad_arg(op, std::string(name) + " is missing");
}
// F32 or BF16 (the float dtypes the CUDA kernels read and write).
inline void need_float(const char* op, const Tensor& t, const char* name) {
  need_present(op, t, name);
  if (!is_f32_or_bf16(t.dtype))
    bad_arg(op, std::string(name) + " must be F32 or BF16 on the cuda backend, got " + dtype_name(t.dtype));
}
inline void need_dtype(const char* op, const Tensor& t, DType d, const char* name) {
  need_present(op, t, name);
  if (t.dtype != d) bad_arg(op, std::string(name) + " must be " + dtype_name(d) + ", got " + dtype_name(t.dtype));
}
inline void need_same_dtype(const char* op, const Tensor& a, const Tensor& b, const char* an, const char* bn) {
  if (a.dtype != b.dtype)
    bad_arg(op, std::string(an) + " and " + bn + " must have the same dtype, got " + dtype_name(a.dtype) + " and " +
                    dtype_name(b.dtype));
}
// Kernels index with 32-bit grid dimensions and int row counts in places; keep sizes sane.
inline void need_extent(const char* op, int64_t v, const char* what) {
  need(op, v >= 0 && v < (int64_t(1) << 31), std::string(what) + " = " + std::to_string(v) + " is out of range");
}

struct GemmDims {
  int64_t M = 0, N = 0, K = 0;
};

// gemm(out, a, b, trans_a, trans_b): out [M,N] = op(a) [M,K] op(b) [K,N].
inline GemmDims check_gemm(const Tensor& out, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  const char* op = "gemm";
  need_float(op, out, "out");
  need_float(op, a, "a");
  need_float(op, b, "b");
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

// linear(out, x, w, bias): out [M,N] = x [M,K] w [N,K]^T (+ bias [N]).
inline GemmDims check_linear(const char* op, const Tensor& out, const Tensor& x, const Tensor& w, const Tensor& bias) {
  need_float(op, out, "out");
  need_float(op, x, "x");
  need_float(op, w, "w");
  need(op, w.ndim == 2, "weight must be 2-D, got " + w.shape_str());
  GemmDims d{x.rows(), w.shape[0], x.cols()};
  need(op, w.shape[1] == d.K && out.rows() == d.M && out.cols() == d.N,
       "shapes do not match: out " + out.shape_str() + ", x " + x.shape_str() + ", w " + w.shape_str());
  if (!bias.empty()) {
    need_float(op, bias, "bias");
    need(op, bias.numel() == d.N, "bias " + bias.shape_str() + " does not match " + std::to_string(d.N) + " outputs");
  }
  return d;
}

inline void check_embedding(const Tensor& out, const Tensor& table, const Tensor& ids) {
  const char* op = "embedding";
  need_float(op, out, "out");
  need_float(op, table, "table");
  need_dtype(op, ids, DType::I32, "ids");
  need(op, out.rows() == ids.numel() && out.cols() == table.cols(),
       "out " + out.shape_str() + " does not match " + std::to_string(ids.numel()) + " ids of width " +
           std::to_string(table.cols()));
  need_extent(op, ids.numel(), "number of ids");
}

inline void check_rmsnorm(const Tensor& out, const Tensor& x, const Tensor& w) {
  const char* op = "rmsnorm";
  need_float(op, out, "out");
  need_float(op, x, "x");
  need_float(op, w, "weight");
  need_same_dtype(op, out, x, "out", "x");
  need(op, out.numel() == x.numel() && w.numel() == x.cols(),
       "shapes do not match: x " + x.shape_str() + ", weight " + w.shape_str());
  need_extent(op, x.cols(), "row width");
}

// add / swiglu: out = f(a, b) elementwise, one dtype.
inline void check_binary(const char* op, const Tensor& out, const Tensor& a, const Tensor& b) {
  need_float(op, out, "out");
  need_float(op, a, "a");
  need_float(op, b, "b");
  need_same_dtype(op, out, a, "out", "a");
  need_same_dtype(op, a, b, "a", "b");
  need(op, a.numel() == b.numel() && out.numel() == a.numel(), "shapes do not match: " + a.shape_str() + ", " + b.shape_str());
}

inline void check_rope(const char* op, const Tensor& x, const Tensor& positions, const Tensor& cos_sin, int head_dim) {
  need_float(op, x, "x");
  need_dtype(op, positions, DType::I32, "positions");
  need_dtype(op, cos_sin, DType::F32, "cos_sin");
  need(op, head_dim > 0 && head_dim % 2 == 0 && x.cols() % head_dim == 0 && cos_sin.cols() == head_dim &&
               positions.numel() == x.rows(),
       "shapes do not match: x " + x.shape_str() + ", head_dim " + std::to_string(head_dim) + ", cos_sin " +
           cos_sin.shape_str() + ", positions " + positions.shape_str());
}

inline void check_kv_store(const Tensor& kc, const Tensor& vc, const Tensor& k, const Tensor& v, const Tensor& slots) {
  const char* op = "kv_store";
  need_float(op, kc, "k_cache");
  need_float(op, vc, "v_cache");
  need_float(op, k, "k");
  need_float(op, v, "v");
  need_dtype(op, slots, DType::I32, "slots");
  need_same_dtype(op, kc, k, "k_cache", "k");
  need_same_dtype(op, vc, v, "v_cache", "v");
  need_same_dtype(op, kc, vc, "k_cache", "v_cache");
  const int64_t n = k.rows(), W = k.cols();
  need(op, v.rows() == n && v.cols() == W && kc.cols() == W && vc.cols() == W && vc.rows() == kc.rows() &&
               slots.numel() == n,
       "shapes do not match: k " + k.shape_str() + ", v " + v.shape_str() + ", cache " + kc.shape_str() + ", slots " +
           slots.shape_str());
  need_extent(op, n, "number of rows");
}

inline void check_paged_attention(const Tensor& out, const Tensor& q, const Tensor& kc, const Tensor& vc,
                                  const AttentionMeta& m) {
  const char* op = "paged_attention";
  need_float(op, out, "out");
  need_float(op, q, "q");
  need_float(op, kc, "k_cache");
  need_float(op, vc, "v_cache");
  need_same_dtype(op, out, q, "out", "q");
  need_same_dtype(op, q, kc, "q", "k_cache");
  need_same_dtype(op, kc, vc, "k_cache", "v_cache");
  need_dtype(op, m.block_tables, DType::I32, "block_tables");
  need_dtype(op, m.token_seq, DType::I32, "token_seq");
  need_dtype(op, m.token_pos, DType::I32, "token_pos");
  const int64_t n = q.rows(), Hq = m.num_q_heads, Hkv = m.num_kv_heads, hd = m.head_dim, bs = m.block_size;
  need(op, Hq > 0 && Hkv > 0 && hd > 0 && bs > 0 && Hq % Hkv == 0, "bad head configuration");
  need(op, q.cols() == Hq * hd && out.rows() == n && out.cols() == Hq * hd && kc.cols() == Hkv * hd &&
               vc.cols() == Hkv * hd && vc.rows() == kc.rows() && m.token_seq.numel() == n && m.token_pos.numel() == n &&
               m.block_tables.ndim == 2,
       "shapes do not match: q " + q.shape_str() + ", out " + out.shape_str() + ", cache " + kc.shape_str() +
           ", block_tables " + m.block_tables.shape_str());
  need(op, hd <= 256 && hd % 2 == 0, "head_dim " + std::to_string(hd) + " is not supported on cuda (even, at most 256)");
  need_extent(op, n, "number of query rows");
  need_extent(op, kc.rows(), "cache rows");
}

// attention_forward / attention_backward (VarlenMeta): q, out, dq, dout [n, hq*hd], k, v, dk, dv [n, hkv*hd],
// all of one float dtype (F32 or BF16); lse F32 [n, hq] (param dtype); cu_seqlens I32 [num_seqs + 1] on the
// device (its values are checked by a kernel: see attention_forward.cu). Returns the number of sequences.
inline int64_t check_varlen_attention(const char* op, std::initializer_list<std::pair<const Tensor*, const char*>> qlike,
                                      std::initializer_list<std::pair<const Tensor*, const char*>> kvlike,
                                      const Tensor& lse, const VarlenMeta& m) {
  const Tensor& q = *qlike.begin()->first;
  need_dtype(op, m.cu_seqlens, DType::I32, "cu_seqlens");
  need(op, m.cu_seqlens.numel() >= 1, "cu_seqlens is empty (it holds num_seqs + 1 offsets)");
  need(op, m.num_q_heads > 0 && m.num_kv_heads > 0 && m.head_dim > 0 && m.num_q_heads % m.num_kv_heads == 0,
       "bad head configuration (" + std::to_string(m.num_q_heads) + " q heads, " + std::to_string(m.num_kv_heads) +
           " kv heads, head_dim " + std::to_string(m.head_dim) + ")");
  const int64_t n = q.rows(), qw = int64_t(m.num_q_heads) * m.head_dim, kw = int64_t(m.num_kv_heads) * m.head_dim;
  for (auto [t, name] : qlike) {
    need_float(op, *t, name);
    need_same_dtype(op, *t, q, name, qlike.begin()->second);
    need(op, t->rows() == n && t->cols() == qw,
         std::string(name) + " " + t->shape_str() + " does not match [" + std::to_string(n) + ", " + std::to_string(qw) +
             "] (rows x num_q_heads * head_dim)");
  }
  for (auto [t, name] : kvlike) {
    need_float(op, *t, name);
    need_same_dtype(op, *t, q, name, qlike.begin()->second);
    need(op, t->rows() == n && t->cols() == kw,
         std::string(name) + " " + t->shape_str() + " does not match [" + std::to_string(n) + ", " + std::to_string(kw) +
             "] (rows x num_kv_heads * head_dim)");
  }
  need_dtype(op, lse, DType::F32, "lse");
  need(op, lse.numel() == n * m.num_q_heads,
       "lse " + lse.shape_str() + " does not hold one value per row and q head (" + std::to_string(n * m.num_q_heads) + ")");
  need(op, m.max_seqlen >= 0, "max_seqlen must not be negative");
  need_extent(op, n * std::max<int64_t>(qw, kw), "q elements");
  need_extent(op, m.cu_seqlens.numel(), "number of sequences");
  need(op, m.num_q_heads < 65536, "too many heads");
  return m.cu_seqlens.numel() - 1;
}

inline void check_log_softmax_gather(const Tensor& out, const Tensor& logits, const Tensor& targets) {
  const char* op = "log_softmax_gather";
  need_dtype(op, out, DType::F32, "out");
  need_float(op, logits, "logits");
  need_dtype(op, targets, DType::I32, "targets");
  need(op, out.numel() == logits.rows() && targets.numel() == logits.rows(),
       "shapes do not match: logits " + logits.shape_str() + ", targets " + targets.shape_str() + ", out " +
           out.shape_str());
  need_extent(op, logits.rows(), "rows");
}

inline void check_sample(const Tensor& logits) {
  const char* op = "sample";
  need_float(op, logits, "logits");
  need(op, logits.cols() > 0, "empty vocabulary");
  need(op, logits.cols() < (int64_t(1) << 22), "vocabulary of " + std::to_string(logits.cols()) +
                                                  " exceeds the sampler's limit of 4194304");
  need_extent(op, logits.rows(), "rows");
}

}  // namespace hayate::gpu
