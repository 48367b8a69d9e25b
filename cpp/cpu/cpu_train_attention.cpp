// The CPU backend's training attention (backend.h attention_forward / attention_backward) over a packed
// batch. Per sequence and head, query rows are taken in blocks of kBlock: a block attends to the keys up
// to its last row, so its scores S = scale * Q_blk K^T are a [block, keys] GEMM (never the whole [L, L]
// matrix), softmax'd row by row with the causal mask, and O_blk = P V another GEMM. The backward recomputes
// P from the saved log-sum-exp and runs dV += P^T dO, dP = dO V^T, dS = P (dP - D), dQ = scale dS K,
// dK += scale dS^T Q as GEMMs too, so attention runs at GEMM speed rather than dot-product loops.
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "cpu/cpu_backend.h"
#include "cpu/cpu_util.h"
#include "cpu/vec_math.h"

namespace hayate {

using cpu::dispatch_float;
using cpu::need;
using cpu::need_dtype;

namespace {

constexpr int64_t kBlock = 128;  // query rows per block

std::string dims(const Tensor& t) { return t.shape_str(); }

// Validates a VarlenMeta against q/k/v and returns the host copy of cu_seqlens.
std::vector<int32_t> check_varlen(const char* op, const VarlenMeta& m, int64_t n, const Tensor& q, const Tensor& k,
                                  const Tensor& v) {
  need_dtype(op, m.cu_seqlens, DType::I32, "cu_seqlens");
  need(op, m.num_q_heads > 0 && m.num_kv_heads > 0 && m.head_dim > 0 && m.num_q_heads % m.num_kv_heads == 0,
       "bad head configuration");
  need(op, q.rows() == n && q.cols() == int64_t(m.num_q_heads) * m.head_dim && k.rows() == n &&
               k.cols() == int64_t(m.num_kv_heads) * m.head_dim && v.rows() == n && v.cols() == k.cols(),
       "shapes do not match: q " + dims(q) + ", k " + dims(k) + ", v " + dims(v));
  const int64_t S = m.cu_seqlens.numel() - 1;
  need(op, S >= 0, "cu_seqlens is empty");
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
  for (auto [t, what] : {std::pair<const Tensor*, const char*>{&out, "out"}, {&lse, "lse"}, {&q, "q"}, {&k, "k"}, {&v, "v"}})
    need_dtype(op, *t, fdt_, what);
  const int64_t n = q.rows();
  std::vector<int32_t> cu = check_varlen(op, m, n, q, k, v);
  need(op, out.rows() == n && out.cols() == q.cols() && lse.numel() == n * m.num_q_heads,
       "out " + dims(out) + " / lse " + dims(lse) + " do not match q " + dims(q));
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
  for (auto [t, what] : {std::pair<const Tensor*, const char*>{&dq, "dq"}, {&dk, "dk"}, {&dv, "dv"}, {&dout, "dout"},
                         {&q, "q"}, {&k, "k"}, {&v, "v"}, {&out, "out"}, {&lse, "lse"}})
    need_dtype(op, *t, fdt_, what);
  const int64_t n = q.rows();
  std::vector<int32_t> cu = check_varlen(op, m, n, q, k, v);
  need(op, dq.numel() == q.numel() && dout.numel() == q.numel() && out.numel() == q.numel() && dk.numel() == k.numel() &&
               dv.numel() == v.numel() && lse.numel() == n * m.num_q_heads,
       "gradient shapes do not match q " + dims(q) + ", k " + dims(k));
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
