// Attention on the CPU backend, both forms:
//  - paged_attention (generation): each query token attends over its sequence's cached keys/values, read
//    through its block table: the scores of one item's q heads over its positions, their softmax with the
//    vectorised exp, then the weighted sum of V; one work item per (token, span of kv heads), so a GQA
//    group's q heads share every K/V row read and a span's part of a cached row is one contiguous read.
//  - attention_forward / attention_backward (training) over a packed batch. Per sequence and head, query
//    rows are taken in blocks of kBlock: a block attends to the keys up to its last row, so its scores
//    S = scale * Q_blk K^T are a [block, keys] GEMM (never the whole [L, L] matrix), softmax'd row by row
//    with the causal mask, and O_blk = P V another GEMM. The backward recomputes P from the saved
//    log-sum-exp and runs dV += P^T dO, dP = dO V^T, dS = P (dP - D), dQ = scale dS K, dK += scale dS^T Q as
//    GEMMs too, so attention runs at GEMM speed rather than dot-product loops.
// Block tables, positions and cu_seqlens are checked on the host.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "cpu/cpu_backend.h"
#include "cpu/cpu_util.h"
#include "cpu/vec_math.h"

namespace hayate {

using checks::need;
using checks::need_each;
using cpu::dispatch_float;

namespace {

constexpr int64_t kPrefetchRows = 4;  // cached positions read ahead in paged_attention

// KV heads per paged-attention work item: as many as keep every thread busy with an even share, since a
// position's row of a span of heads is one contiguous read (the whole row, at batch 64) where a single
// head's is hd values a row apart (one page per position at 8 KV heads of 128 in f32).
int64_t kv_heads_per_item(int64_t tokens, int64_t kv_heads, int64_t threads) {
  for (int64_t span = kv_heads; span > 1; --span) {
    if (kv_heads % span) continue;
    const int64_t items = tokens * (kv_heads / span);
    if (items % threads == 0 || items >= 4 * threads) return span;
  }
  return 1;
}

}  // namespace

void CpuBackend::paged_attention(Tensor out, Tensor q, Tensor k_cache, Tensor v_cache, const AttentionMeta& m) {
  const char* op = "paged_attention";
  checks::check_paged_attention(dtypes_, out, q, k_cache, v_cache, m);
  const int64_t n = q.rows(), Hq = m.num_q_heads, Hkv = m.num_kv_heads, hd = m.head_dim, bs = m.block_size;
  const int64_t num_seqs = m.block_tables.shape[0], max_blocks = m.block_tables.shape[1], cache_rows = k_cache.rows();
  const int32_t* seq = m.token_seq.as<int32_t>();
  const int32_t* pos = m.token_pos.as<int32_t>();
  const int32_t* table = m.block_tables.as<int32_t>();
  for (int64_t i = 0; i < n; ++i) {
    need_each(op, seq[i] >= 0 && seq[i] < num_seqs, [&] { return "token " + std::to_string(i) + " has sequence " + std::to_string(seq[i]) + " outside the block tables"; });
    need_each(op, pos[i] >= 0 && pos[i] / bs < max_blocks, [&] { return "token " + std::to_string(i) + " position " + std::to_string(pos[i]) + " beyond its block table"; });
    for (int64_t b = 0; b <= pos[i] / bs; ++b) {
      int64_t blk = table[seq[i] * max_blocks + b];
      need_each(op, blk >= 0 && (blk + 1) * bs <= cache_rows, [&] { return "block id " + std::to_string(blk) + " outside the cache"; });
    }
  }
  const int64_t group = Hq / Hkv, kv_width = Hkv * hd;
  const int64_t span = kv_heads_per_item(n, Hkv, pool_->size()), spans = Hkv / span, heads = span * group;
  int64_t total_pos = 0;
  for (int64_t i = 0; i < n; ++i) total_pos += pos[i] + 1;
  const int64_t work_per_item = std::max<int64_t>(1, total_pos / std::max<int64_t>(n, 1) * heads * hd);
  dispatch_float(fdt_, [&](auto z) {
    using T = decltype(z);
    const T scale = static_cast<T>(m.scale);
    // One item = (token, span of kv heads): each GQA group's q heads share every K/V row read, so the cache
    // is read once per group instead of once per q head (decode attention is bound by reading the cache).
    // Three passes over the positions: the scores of every q head of the span, their softmax with the
    // vectorised exp (a scalar exp per position and head was a tenth of batch-1 decode), then the weighted
    // sum of V. Each q head's arithmetic is the same whatever the span.
    pool_->parallel_for(n * spans, [&](int64_t b, int64_t e) {
      std::vector<T> acc(static_cast<size_t>(heads * hd)), scores;
      for (int64_t item = b; item < e; ++item) {
        const int64_t i = item / spans, kv0 = (item % spans) * span, np = pos[i] + 1;
        const T* qs = q.as<T>() + i * Hq * hd + kv0 * group * hd;  // q heads kv0*group .. (kv0+span)*group-1
        const int32_t* tbl = table + seq[i] * max_blocks;
        auto cache_row = [&](const Tensor& c, int64_t p) {  // the span's span*hd values of position p
          return c.as<T>() + (static_cast<int64_t>(tbl[p / bs]) * bs + p % bs) * kv_width + kv0 * hd;
        };
        // Consecutive positions sit a row (kv_width values) apart, often a page apart, and the hardware
        // prefetcher stops at page boundaries: prefetch a few positions ahead by hand.
        auto prefetch_ahead = [&](const Tensor& c, int64_t p) {
          if (p + kPrefetchRows >= np) return;
          const char* r = reinterpret_cast<const char*>(cache_row(c, p + kPrefetchRows));
          for (int64_t o = 0; o < span * hd * static_cast<int64_t>(sizeof(T)); o += 64) __builtin_prefetch(r + o);
        };
        scores.resize(static_cast<size_t>(heads * np));  // [q head of the span][position]
        for (int64_t p = 0; p < np; ++p) {
          prefetch_ahead(k_cache, p);
          const T* kr = cache_row(k_cache, p);
          for (int64_t h = 0; h < heads; ++h) scores[h * np + p] = cpu::dot(qs + h * hd, kr + (h / group) * hd, hd) * scale;
        }
        std::fill(acc.begin(), acc.end(), T(0));
        for (int64_t h = 0; h < heads; ++h) {
          T* sh = scores.data() + h * np;
          double sum = 0;
          if constexpr (std::is_same_v<T, float>) {
            sum = cpu::exp_sum(sh, np, 1.0f, cpu::max_scaled(sh, np, 1.0f), sh);  // sh = exp(s - max)
          } else {
            const T mx = *std::max_element(sh, sh + np);
            for (int64_t p = 0; p < np; ++p) sum += (sh[p] = std::exp(sh[p] - mx));
          }
          const T inv = static_cast<T>(1.0 / sum);
          for (int64_t p = 0; p < np; ++p) sh[p] *= inv;
        }
        for (int64_t p = 0; p < np; ++p) {
          prefetch_ahead(v_cache, p);
          const T* vr = cache_row(v_cache, p);
          for (int64_t h = 0; h < heads; ++h) cpu::axpy(acc.data() + h * hd, scores[h * np + p], vr + (h / group) * hd, hd);
        }
        std::copy(acc.begin(), acc.end(), out.as<T>() + i * Hq * hd + kv0 * group * hd);
      }
    }, std::max<int64_t>(1, 16384 / work_per_item));
  });
}

namespace {

constexpr int64_t kBlock = 128;  // query rows per block

// Checks the offsets of a VarlenMeta (already checked against the contract) on the host and returns a copy.
std::vector<int32_t> check_cu_seqlens(const char* op, const VarlenMeta& m, int64_t n) {
  const int64_t S = m.cu_seqlens.numel() - 1;
  const int32_t* cu = m.cu_seqlens.as<int32_t>();
  need(op, cu[0] == 0 && cu[S] == n, "cu_seqlens must start at 0 and end at the number of rows");
  for (int64_t s = 0; s < S; ++s) need(op, cu[s + 1] >= cu[s], "cu_seqlens must be non-decreasing");
  return std::vector<int32_t>(cu, cu + S + 1);
}

// rows [r0, r0 + count) of one head (columns [col, col + hd)) of a [n, width] tensor <-> contiguous [count, hd]
template <class T>
void gather_head(T* dst, const T* src, int64_t r0, int64_t count, int64_t width, int64_t col, int64_t hd) {
  for (int64_t r = 0; r < count; ++r) std::memcpy(dst + r * hd, src + (r0 + r) * width + col, hd * sizeof(T));
}
template <class T>
void scatter_head(T* dst, const T* src, int64_t r0, int64_t count, int64_t width, int64_t col, int64_t hd) {
  for (int64_t r = 0; r < count; ++r) std::memcpy(dst + (r0 + r) * width + col, src + r * hd, hd * sizeof(T));
}

// p[j] = exp(s[j] - shift) for j < n (vectorised in float); returns their sum.
inline double exp_row(float* p, const float* s, int64_t n, float shift) { return cpu::exp_sum(s, n, 1.0f, shift, p); }
inline double exp_row(double* p, const double* s, int64_t n, double shift) {
  double sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += (p[j] = std::exp(s[j] - shift));
  return sum;
}
inline float row_max(const float* s, int64_t n) { return cpu::max_scaled(s, n, 1.0f); }
inline double row_max(const double* s, int64_t n) {
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < n; ++j) m = std::max(m, s[j]);
  return m;
}

}  // namespace

void CpuBackend::attention_forward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, const VarlenMeta& m) {
  const char* op = "attention_forward";
  checks::check_varlen_attention(dtypes_, op, {{&q, "q"}, {&out, "out"}}, {{&k, "k"}, {&v, "v"}}, lse, m);
  const int64_t n = q.rows();
  std::vector<int32_t> cu = check_cu_seqlens(op, m, n);
  const int64_t Hq = m.num_q_heads, Hkv = m.num_kv_heads, hd = m.head_dim, group = Hq / Hkv;
  const int64_t qw = Hq * hd, kw = Hkv * hd;
  dispatch_float(fdt_, [&](auto z) {
    using T = decltype(z);
    std::vector<T> K, V, Q, S, O;
    for (size_t s = 0; s + 1 < cu.size(); ++s) {
      const int64_t base = cu[s], L = cu[s + 1] - cu[s];
      if (L == 0) continue;
      K.resize(static_cast<size_t>(L * hd));
      V.resize(static_cast<size_t>(L * hd));
      Q.resize(static_cast<size_t>(std::min(L, kBlock) * hd));
      O.resize(Q.size());
      S.resize(static_cast<size_t>(std::min(L, kBlock) * L));
      for (int64_t kvh = 0; kvh < Hkv; ++kvh) {
        gather_head(K.data(), k.as<T>(), base, L, kw, kvh * hd, hd);
        gather_head(V.data(), v.as<T>(), base, L, kw, kvh * hd, hd);
        for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
          for (int64_t i0 = 0; i0 < L; i0 += kBlock) {
            const int64_t bq = std::min(kBlock, L - i0), nk = i0 + bq;  // keys 0 .. last row of the block
            gather_head(Q.data(), q.as<T>(), base + i0, bq, qw, h * hd, hd);
            gemm_t<T>(false, true, bq, nk, hd, m.scale, Q.data(), K.data(), 0.0, S.data(), true);
            pool_->parallel_for(bq, [&](int64_t r0, int64_t r1) {
              for (int64_t r = r0; r < r1; ++r) {
                T* row = S.data() + r * nk;
                const int64_t valid = i0 + r + 1;  // causal: keys 0 .. i
                const T mx = row_max(row, valid);
                const double sum = exp_row(row, row, valid, mx);
                const T inv = static_cast<T>(1.0 / sum);
                for (int64_t j = 0; j < valid; ++j) row[j] *= inv;
                std::fill(row + valid, row + nk, T(0));
                lse.as<T>()[(base + i0 + r) * Hq + h] = static_cast<T>(mx + std::log(sum));
              }
            }, 16);
            gemm_t<T>(false, false, bq, hd, nk, 1.0, S.data(), V.data(), 0.0, O.data(), true);
            scatter_head(out.as<T>(), O.data(), base + i0, bq, qw, h * hd, hd);
          }
        }
      }
    }
  });
}

void CpuBackend::attention_backward(Tensor dq, Tensor dk, Tensor dv, Tensor dout, Tensor q, Tensor k, Tensor v,
                                    Tensor out, Tensor lse, const VarlenMeta& m) {
  const char* op = "attention_backward";
  checks::check_varlen_attention(dtypes_, op, {{&q, "q"}, {&dq, "dq"}, {&dout, "dout"}, {&out, "out"}},
                                 {{&k, "k"}, {&v, "v"}, {&dk, "dk"}, {&dv, "dv"}}, lse, m);
  const int64_t n = q.rows();
  std::vector<int32_t> cu = check_cu_seqlens(op, m, n);
  const int64_t Hq = m.num_q_heads, Hkv = m.num_kv_heads, hd = m.head_dim, group = Hq / Hkv;
  const int64_t qw = Hq * hd, kw = Hkv * hd;
  dispatch_float(fdt_, [&](auto z) {
    using T = decltype(z);
    std::vector<T> K, V, dK, dV, Q, dO, O, dQ, P, dP, D;
    for (size_t s = 0; s + 1 < cu.size(); ++s) {
      const int64_t base = cu[s], L = cu[s + 1] - cu[s];
      if (L == 0) continue;
      const int64_t B = std::min(L, kBlock);
      for (auto* buf : {&K, &V, &dK, &dV}) buf->resize(static_cast<size_t>(L * hd));
      for (auto* buf : {&Q, &dO, &O, &dQ}) buf->resize(static_cast<size_t>(B * hd));
      P.resize(static_cast<size_t>(B * L));
      dP.resize(P.size());
      D.resize(static_cast<size_t>(B));
      for (int64_t kvh = 0; kvh < Hkv; ++kvh) {
        gather_head(K.data(), k.as<T>(), base, L, kw, kvh * hd, hd);
        gather_head(V.data(), v.as<T>(), base, L, kw, kvh * hd, hd);
        std::fill(dK.begin(), dK.end(), T(0));
        std::fill(dV.begin(), dV.end(), T(0));
        for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
          for (int64_t i0 = 0; i0 < L; i0 += kBlock) {
            const int64_t bq = std::min(kBlock, L - i0), nk = i0 + bq;
            gather_head(Q.data(), q.as<T>(), base + i0, bq, qw, h * hd, hd);
            gather_head(dO.data(), dout.as<T>(), base + i0, bq, qw, h * hd, hd);
            gather_head(O.data(), out.as<T>(), base + i0, bq, qw, h * hd, hd);
            gemm_t<T>(false, true, bq, nk, hd, m.scale, Q.data(), K.data(), 0.0, P.data(), true);  // scores
            gemm_t<T>(false, true, bq, nk, hd, 1.0, dO.data(), V.data(), 0.0, dP.data(), true);    // dP = dO V^T
            pool_->parallel_for(bq, [&](int64_t r0, int64_t r1) {
              for (int64_t r = r0; r < r1; ++r) {
                T* p = P.data() + r * nk;
                T* dp = dP.data() + r * nk;
                const int64_t valid = i0 + r + 1;
                exp_row(p, p, valid, lse.as<T>()[(base + i0 + r) * Hq + h]);  // P = exp(S - lse)
                std::fill(p + valid, p + nk, T(0));
                const T d = cpu::dot(dO.data() + r * hd, O.data() + r * hd, hd);
                for (int64_t j = 0; j < nk; ++j) dp[j] = p[j] * (dp[j] - d);  // dS (0 where masked)
              }
            }, 16);
            gemm_t<T>(true, false, nk, hd, bq, 1.0, P.data(), dO.data(), 1.0, dV.data(), true);        // dV += P^T dO
            gemm_t<T>(false, false, bq, hd, nk, m.scale, dP.data(), K.data(), 0.0, dQ.data(), true);   // dQ = s dS K
            gemm_t<T>(true, false, nk, hd, bq, m.scale, dP.data(), Q.data(), 1.0, dK.data(), true);    // dK += s dS^T Q
            scatter_head(dq.as<T>(), dQ.data(), base + i0, bq, qw, h * hd, hd);
          }
        }
        scatter_head(dk.as<T>(), dK.data(), base, L, kw, kvh * hd, hd);
        scatter_head(dv.as<T>(), dV.data(), base, L, kw, kvh * hd, hd);
      }
    }
  });
}

}  // namespace hayate
