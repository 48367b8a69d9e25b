#include "cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "rng.h"

namespace hayate {

namespace {

[[noreturn]] void bad(const char* op, const std::string& msg) { fail(ErrorCode::kInvalidArgument, std::string(op) + ": " + msg); }

void need_dtype(const char* op, const Tensor& t, DType d, const char* what) {
  if (t.data == nullptr) bad(op, std::string(what) + " is missing");
  if (t.dtype != d) bad(op, std::string(what) + " must be " + dtype_name(d) + ", got " + dtype_name(t.dtype));
}

void need(const char* op, bool cond, const std::string& msg) {
  if (!cond) bad(op, msg);
}

// Work per parallel chunk: enough that waking threads pays off.
int64_t rows_per_thread(int64_t cols) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)); }

}  // namespace

CpuBackend::CpuBackend(int threads, const std::string& gemm) : pool_(std::make_unique<ThreadPool>(threads)) {
  if (gemm == "builtin") {
    gemm_impl_ = cpu::GemmImpl::Builtin;
  } else if (gemm == "blas" || gemm == "auto") {
    if (cpu::blas_library_name().empty()) {
      HAYATE_CHECK(gemm == "auto", ErrorCode::kBackend,
                   "gemm 'blas' requested but this build has no BLAS (install libopenblas-dev and rebuild)");
      gemm_impl_ = cpu::GemmImpl::Builtin;
    } else {
      gemm_impl_ = gemm == "blas" ? cpu::GemmImpl::Blas : cpu::GemmImpl::Auto;
      cpu::set_blas_threads(pool_->size());
    }
  } else {
    fail(ErrorCode::kInvalidArgument, "unknown gemm implementation '" + gemm + "' (auto, blas, builtin)");
  }
}

std::string CpuBackend::description() const {
  std::string g = gemm_impl_ == cpu::GemmImpl::Builtin ? cpu::builtin_kernel_name()
                  : gemm_impl_ == cpu::GemmImpl::Blas  ? cpu::blas_library_name()
                                                       : cpu::builtin_kernel_name() + " below " + std::to_string(cpu::kAutoBlasMinRows) +
                                                             " rows, " + cpu::blas_library_name() + " above";
  return "cpu: " + std::to_string(pool_->size()) + " threads, gemm " + g;
}

void* CpuBackend::raw_alloc(size_t bytes) {
  size_t rounded = (bytes + 63) / 64 * 64;  // aligned_alloc needs a multiple of the alignment
  return std::aligned_alloc(64, rounded);
}
void CpuBackend::raw_free(void* p) { std::free(p); }
void CpuBackend::copy_from_host(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void CpuBackend::copy_to_host(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void CpuBackend::copy(void* dst, const void* src, size_t bytes) { std::memmove(dst, src, bytes); }
void CpuBackend::fill_zero(Tensor t) { std::memset(t.data, 0, t.nbytes()); }

void CpuBackend::gemm(Tensor out, Tensor a, Tensor b, bool trans_a, bool trans_b, float alpha, float beta) {
  const char* op = "gemm";
  need_dtype(op, out, DType::F32, "out");
  need_dtype(op, a, DType::F32, "a");
  need_dtype(op, b, DType::F32, "b");
  need(op, out.ndim == 2 && a.ndim == 2 && b.ndim == 2, "operands must be 2-D");
  int64_t M = trans_a ? a.shape[1] : a.shape[0], K = trans_a ? a.shape[0] : a.shape[1];
  int64_t Kb = trans_b ? b.shape[1] : b.shape[0], N = trans_b ? b.shape[0] : b.shape[1];
  need(op, K == Kb && out.shape[0] == M && out.shape[1] == N,
       "shapes do not match: out " + out.shape_str() + ", a " + a.shape_str() + (trans_a ? "^T" : "") + ", b " +
           b.shape_str() + (trans_b ? "^T" : ""));
  cpu::gemm(*pool_, gemm_impl_, trans_a, trans_b, M, N, K, alpha, a.as<float>(), b.as<float>(), beta, out.as<float>());
}

void CpuBackend::linear(Tensor out, Tensor x, Tensor w, Tensor bias) {
  const char* op = "linear";
  need_dtype(op, out, DType::F32, "out");
  need_dtype(op, x, DType::F32, "x");
  need_dtype(op, w, DType::F32, "w");
  need(op, w.ndim == 2, "weight must be 2-D, got " + w.shape_str());
  const int64_t M = x.rows(), K = x.cols(), N = w.shape[0];
  need(op, w.shape[1] == K && out.rows() == M && out.cols() == N,
       "shapes do not match: out " + out.shape_str() + ", x " + x.shape_str() + ", w " + w.shape_str());
  if (!bias.empty()) {
    need_dtype(op, bias, DType::F32, "bias");
    need(op, bias.numel() == N, "bias " + bias.shape_str() + " does not match " + std::to_string(N) + " outputs");
  }
  cpu::gemm_nt(*pool_, gemm_impl_, M, N, K, 1.0f, x.as<float>(), K, w.as<float>(), K, 0.0f, out.as<float>(), N,
               bias.empty() ? nullptr : bias.as<float>());
}

void CpuBackend::embedding(Tensor out, Tensor table, Tensor ids) {
  const char* op = "embedding";
  need_dtype(op, out, DType::F32, "out");
  need_dtype(op, table, DType::F32, "table");
  need_dtype(op, ids, DType::I32, "ids");
  const int64_t n = ids.numel(), D = table.cols(), V = table.rows();
  need(op, out.rows() == n && out.cols() == D, "out " + out.shape_str() + " does not match " + std::to_string(n) + " ids of width " + std::to_string(D));
  const int32_t* id = ids.as<int32_t>();
  for (int64_t i = 0; i < n; ++i)
    need(op, id[i] >= 0 && id[i] < V, "id " + std::to_string(id[i]) + " out of range [0, " + std::to_string(V) + ")");
  pool_->parallel_for(n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) std::memcpy(out.as<float>() + i * D, table.as<float>() + id[i] * D, D * sizeof(float));
  }, rows_per_thread(D));
}

void CpuBackend::rmsnorm(Tensor out, Tensor x, Tensor weight, float eps) {
  const char* op = "rmsnorm";
  need_dtype(op, out, DType::F32, "out");
  need_dtype(op, x, DType::F32, "x");
  need_dtype(op, weight, DType::F32, "weight");
  const int64_t rows = x.rows(), D = x.cols();
  need(op, out.numel() == x.numel() && weight.numel() == D, "shapes do not match: x " + x.shape_str() + ", weight " + weight.shape_str());
  pool_->parallel_for(rows, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* xi = x.as<float>() + r * D;
      float* o = out.as<float>() + r * D;
      double ss = 0;
      for (int64_t j = 0; j < D; ++j) ss += static_cast<double>(xi[j]) * xi[j];
      const float inv = static_cast<float>(1.0 / std::sqrt(ss / D + eps));
      for (int64_t j = 0; j < D; ++j) o[j] = xi[j] * inv * weight.as<float>()[j];
    }
  }, rows_per_thread(D));
}

void CpuBackend::add(Tensor out, Tensor a, Tensor b) {
  const char* op = "add";
  need_dtype(op, out, DType::F32, "out");
  need_dtype(op, a, DType::F32, "a");
  need_dtype(op, b, DType::F32, "b");
  need(op, a.numel() == b.numel() && out.numel() == a.numel(), "shapes do not match: " + a.shape_str() + " + " + b.shape_str());
  float* o = out.as<float>();
  const float* x = a.as<float>();
  const float* y = b.as<float>();
  pool_->parallel_for(a.numel(), [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) o[i] = x[i] + y[i];
  }, 16384);
}

void CpuBackend::rope(Tensor x, Tensor positions, Tensor cos_sin, int head_dim) {
  const char* op = "rope";
  need_dtype(op, x, DType::F32, "x");
  need_dtype(op, positions, DType::I32, "positions");
  need_dtype(op, cos_sin, DType::F32, "cos_sin");
  const int64_t n = x.rows(), width = x.cols(), half = head_dim / 2, max_pos = cos_sin.rows();
  need(op, head_dim > 0 && head_dim % 2 == 0 && width % head_dim == 0 && cos_sin.cols() == head_dim && positions.numel() == n,
       "shapes do not match: x " + x.shape_str() + ", head_dim " + std::to_string(head_dim) + ", cos_sin " + cos_sin.shape_str());
  const int32_t* pos = positions.as<int32_t>();
  for (int64_t i = 0; i < n; ++i)
    need(op, pos[i] >= 0 && pos[i] < max_pos, "position " + std::to_string(pos[i]) + " outside the table of " + std::to_string(max_pos));
  pool_->parallel_for(n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float* cs = cos_sin.as<float>() + static_cast<int64_t>(pos[i]) * head_dim;
      for (int64_t h = 0; h < width / head_dim; ++h) {
        float* v = x.as<float>() + i * width + h * head_dim;
        for (int64_t j = 0; j < half; ++j) {
          const float a = v[j], b2 = v[j + half], c = cs[j], s = cs[half + j];
          v[j] = a * c - b2 * s;
          v[j + half] = b2 * c + a * s;
        }
      }
    }
  }, rows_per_thread(width));
}

void CpuBackend::swiglu(Tensor out, Tensor gate, Tensor up) {
  const char* op = "swiglu";
  need_dtype(op, out, DType::F32, "out");
  need_dtype(op, gate, DType::F32, "gate");
  need_dtype(op, up, DType::F32, "up");
  need(op, gate.numel() == up.numel() && out.numel() == gate.numel(), "shapes do not match: " + gate.shape_str() + ", " + up.shape_str());
  float* o = out.as<float>();
  const float* g = gate.as<float>();
  const float* u = up.as<float>();
  pool_->parallel_for(gate.numel(), [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  }, 16384);
}

void CpuBackend::kv_store(Tensor k_cache, Tensor v_cache, Tensor k, Tensor v, Tensor slots) {
  const char* op = "kv_store";
  need_dtype(op, k_cache, DType::F32, "k_cache");
  need_dtype(op, v_cache, DType::F32, "v_cache");
  need_dtype(op, k, DType::F32, "k");
  need_dtype(op, v, DType::F32, "v");
  need_dtype(op, slots, DType::I32, "slots");
  const int64_t n = k.rows(), W = k.cols(), rows = k_cache.rows();
  need(op, v.rows() == n && v.cols() == W && k_cache.cols() == W && v_cache.cols() == W && v_cache.rows() == rows && slots.numel() == n,
       "shapes do not match: k " + k.shape_str() + ", cache " + k_cache.shape_str());
  const int32_t* s = slots.as<int32_t>();
  for (int64_t i = 0; i < n; ++i) {
    need(op, s[i] >= 0 && s[i] < rows, "slot " + std::to_string(s[i]) + " outside the cache of " + std::to_string(rows) + " rows");
    std::memcpy(k_cache.as<float>() + s[i] * W, k.as<float>() + i * W, W * sizeof(float));
    std::memcpy(v_cache.as<float>() + s[i] * W, v.as<float>() + i * W, W * sizeof(float));
  }
}

void CpuBackend::paged_attention(Tensor out, Tensor q, Tensor k_cache, Tensor v_cache, const AttentionMeta& m) {
  const char* op = "paged_attention";
  need_dtype(op, out, DType::F32, "out");
  need_dtype(op, q, DType::F32, "q");
  need_dtype(op, k_cache, DType::F32, "k_cache");
  need_dtype(op, v_cache, DType::F32, "v_cache");
  need_dtype(op, m.block_tables, DType::I32, "block_tables");
  need_dtype(op, m.token_seq, DType::I32, "token_seq");
  need_dtype(op, m.token_pos, DType::I32, "token_pos");
  const int64_t n = q.rows(), Hq = m.num_q_heads, Hkv = m.num_kv_heads, hd = m.head_dim, bs = m.block_size;
  need(op, Hq > 0 && Hkv > 0 && hd > 0 && bs > 0 && Hq % Hkv == 0, "bad head configuration");
  need(op, q.cols() == Hq * hd && out.rows() == n && out.cols() == Hq * hd && k_cache.cols() == Hkv * hd &&
               v_cache.cols() == Hkv * hd && m.token_seq.numel() == n && m.token_pos.numel() == n && m.block_tables.ndim == 2,
       "shapes do not match: q " + q.shape_str() + ", cache " + k_cache.shape_str());
  const int64_t num_seqs = m.block_tables.shape[0], max_blocks = m.block_tables.shape[1], cache_rows = k_cache.rows();
  const int32_t* seq = m.token_seq.as<int32_t>();
  const int32_t* pos = m.token_pos.as<int32_t>();
  const int32_t* table = m.block_tables.as<int32_t>();
  for (int64_t i = 0; i < n; ++i) {
    need(op, seq[i] >= 0 && seq[i] < num_seqs, "token " + std::to_string(i) + " has sequence " + std::to_string(seq[i]) + " outside the block tables");
    need(op, pos[i] >= 0 && pos[i] / bs < max_blocks, "token " + std::to_string(i) + " position " + std::to_string(pos[i]) + " beyond its block table");
    for (int64_t b = 0; b <= pos[i] / bs; ++b) {
      int64_t blk = table[seq[i] * max_blocks + b];
      need(op, blk >= 0 && (blk + 1) * bs <= cache_rows, "block id " + std::to_string(blk) + " outside the cache");
    }
  }
  const int64_t group = Hq / Hkv, kv_width = Hkv * hd;
  pool_->parallel_for(n * Hq, [&](int64_t b, int64_t e) {
    std::vector<float> acc(hd);
    for (int64_t item = b; item < e; ++item) {
      const int64_t i = item / Hq, h = item % Hq, kvh = h / group;
      const float* qi = q.as<float>() + i * Hq * hd + h * hd;
      const int32_t* tbl = table + seq[i] * max_blocks;
      // online softmax over positions 0..pos (one pass, no [T x T] matrix)
      float mx = -std::numeric_limits<float>::infinity(), denom = 0.0f;
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t p = 0; p <= pos[i]; ++p) {
        const int64_t row = static_cast<int64_t>(tbl[p / bs]) * bs + p % bs;
        const float* kr = k_cache.as<float>() + row * kv_width + kvh * hd;
        const float* vr = v_cache.as<float>() + row * kv_width + kvh * hd;
        float s = 0.0f;
        for (int64_t d = 0; d < hd; ++d) s += qi[d] * kr[d];
        s *= m.scale;
        if (s > mx) {
          const float c = std::exp(mx - s);
          denom *= c;
          for (int64_t d = 0; d < hd; ++d) acc[d] *= c;
          mx = s;
        }
        const float w = std::exp(s - mx);
        denom += w;
        for (int64_t d = 0; d < hd; ++d) acc[d] += w * vr[d];
      }
      float* o = out.as<float>() + i * Hq * hd + h * hd;
      for (int64_t d = 0; d < hd; ++d) o[d] = acc[d] / denom;
    }
  }, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, hd * (1 + pos[0]))));
}

void CpuBackend::log_softmax_gather(Tensor out, Tensor logits, Tensor targets, float inv_temperature) {
  const char* op = "log_softmax_gather";
  need_dtype(op, out, DType::F32, "out");
  need_dtype(op, logits, DType::F32, "logits");
  need_dtype(op, targets, DType::I32, "targets");
  const int64_t n = logits.rows(), V = logits.cols();
  need(op, out.numel() == n && targets.numel() == n, "shapes do not match: logits " + logits.shape_str() + ", targets " + targets.shape_str());
  const int32_t* t = targets.as<int32_t>();
  for (int64_t i = 0; i < n; ++i) need(op, t[i] >= 0 && t[i] < V, "target " + std::to_string(t[i]) + " outside the vocabulary");
  pool_->parallel_for(n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float* z = logits.as<float>() + i * V;
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < V; ++j) mx = std::max(mx, z[j] * inv_temperature);
      double sum = 0;
      for (int64_t j = 0; j < V; ++j) sum += std::exp(static_cast<double>(z[j] * inv_temperature - mx));
      out.as<float>()[i] = static_cast<float>(z[t[i]] * inv_temperature - mx - std::log(sum));
    }
  }, 1);
}

void sample_row(const float* logits, int64_t V, const SamplingRow& row, int32_t* out_id, float* out_logprob) {
  // greedy: first maximal logit
  if (row.temperature <= 0.0f) {
    int64_t best = 0;
    for (int64_t j = 1; j < V; ++j)
      if (logits[j] > logits[best]) best = j;
    double sum = 0;
    for (int64_t j = 0; j < V; ++j) sum += std::exp(static_cast<double>(logits[j] - logits[best]));
    *out_id = static_cast<int32_t>(best);
    *out_logprob = static_cast<float>(-std::log(sum));
    return;
  }
  const float inv_t = 1.0f / row.temperature;
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < V; ++j) mx = std::max(mx, logits[j] * inv_t);
  std::vector<float> p(static_cast<size_t>(V));
  double total = 0;
  for (int64_t j = 0; j < V; ++j) {
    p[j] = std::exp(logits[j] * inv_t - mx);
    total += p[j];
  }
  // The kept set: top-k, then top-p over what top-k kept, then min-p; then inverse-CDF sampling over the
  // kept tokens in token-id order with u = rng_uniform(seed, step).
  std::vector<int32_t> kept;
  const bool topk = row.top_k > 0 && row.top_k < V;
  const bool topp = row.top_p < 1.0f;
  if (topk || topp) {
    auto by_prob = [&](int32_t a, int32_t b) { return p[a] != p[b] ? p[a] > p[b] : a < b; };
    std::vector<int32_t> idx(static_cast<size_t>(V));
    std::iota(idx.begin(), idx.end(), 0);
    int64_t k = topk ? row.top_k : std::min<int64_t>(V, 64);
    for (;;) {  // grow the sorted prefix until it covers top_p of the mass (never sorts more than needed)
      std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), by_prob);
      double mass = 0;
      for (int64_t j = 0; j < k; ++j) mass += p[idx[j]];
      double base = topk ? mass : total;
      if (!topp) {
        kept.assign(idx.begin(), idx.begin() + k);
        break;
      }
      double cum = 0;
      int64_t cut = -1;
      for (int64_t j = 0; j < k; ++j) {
        cum += p[idx[j]];
        if (cum >= row.top_p * base) {
          cut = j + 1;
          break;
        }
      }
      if (cut > 0 || k == V || topk) {
        kept.assign(idx.begin(), idx.begin() + (cut > 0 ? cut : k));
        break;
      }
      k = std::min<int64_t>(V, k * 4);
    }
  } else {
    kept.resize(static_cast<size_t>(V));
    std::iota(kept.begin(), kept.end(), 0);
  }
  if (row.min_p > 0.0f) {  // p relative to the most likely token (p[argmax] = 1 after the max shift)
    kept.erase(std::remove_if(kept.begin(), kept.end(), [&](int32_t j) { return p[j] < row.min_p; }), kept.end());
  }
  std::sort(kept.begin(), kept.end());
  double mass = 0;
  for (int32_t j : kept) mass += p[j];
  const double target = static_cast<double>(rng_uniform(row.seed, row.step)) * mass;
  int32_t chosen = kept.empty() ? 0 : kept.back();
  double cum = 0;
  for (int32_t j : kept) {
    cum += p[j];
    if (cum > target) {
      chosen = j;
      break;
    }
  }
  *out_id = chosen;
  *out_logprob = static_cast<float>(std::log(static_cast<double>(p[chosen])) - std::log(total));
}

void CpuBackend::sample(Tensor logits, const SamplingRow* rows, int32_t* out_ids, float* out_logprobs) {
  const char* op = "sample";
  need_dtype(op, logits, DType::F32, "logits");
  const int64_t B = logits.rows(), V = logits.cols();
  need(op, V > 0, "empty vocabulary");
  pool_->parallel_for(B, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) sample_row(logits.as<float>() + i * V, V, rows[i], out_ids + i, out_logprobs + i);
  }, 1);
}

}  // namespace hayate
