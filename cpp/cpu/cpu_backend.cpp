#include "cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <numeric>
#include <type_traits>
#include <vector>

#include "cpu/cpu_util.h"
#include "cpu/vec_math.h"

namespace hayate {

using cpu::bad;
using cpu::dispatch_float;
using cpu::need;
using cpu::need_dtype;
using cpu::rows_per_thread;

CpuBackend::CpuBackend(int threads, const std::string& gemm, const std::string& precision)
    : pool_(std::make_unique<ThreadPool>(threads)) {
  if (precision == "f64") {
    fdt_ = DType::F64;
  } else if (precision != "f32") {
    fail(ErrorCode::kInvalidArgument, "unknown precision '" + precision + "' (f32, f64)");
  }
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
  if (fdt_ == DType::F64) g = "f64 reference loops";
  return "cpu: " + std::to_string(pool_->size()) + " threads, gemm " + g;
}

void* CpuBackend::raw_alloc(size_t bytes) {
  size_t rounded = (bytes + 63) / 64 * 64;  // aligned_alloc needs a multiple of the alignment
  if (rounded < kCacheMinBytes) return std::aligned_alloc(64, rounded);
  std::lock_guard<std::mutex> lock(cache_mutex_);
  auto it = cache_.lower_bound(rounded);
  if (it != cache_.end() && it->first <= rounded + rounded / 4) {  // a cached block at most 25% larger
    void* p = it->second;
    cached_bytes_ -= it->first;
    cache_.erase(it);
    return p;
  }
  void* p = std::aligned_alloc(64, rounded);
  if (!p && !cache_.empty()) {  // out of memory: give the cache back and try once more
    for (auto& [size, q] : cache_) {
      sizes_.erase(q);
      std::free(q);
    }
    cache_.clear();
    cached_bytes_ = 0;
    p = std::aligned_alloc(64, rounded);
  }
  if (p) sizes_[p] = rounded;
  return p;
}

void CpuBackend::raw_free(void* p) {
  std::lock_guard<std::mutex> lock(cache_mutex_);
  auto it = sizes_.find(p);
  if (it == sizes_.end()) {
    std::free(p);
    return;
  }
  cache_.emplace(it->second, p);
  cached_bytes_ += it->second;
  while (cached_bytes_ > kCacheMaxBytes) {  // drop the largest blocks first
    auto largest = std::prev(cache_.end());
    cached_bytes_ -= largest->first;
    sizes_.erase(largest->second);
    std::free(largest->second);
    cache_.erase(largest);
  }
}

CpuBackend::~CpuBackend() {
  for (auto& [size, p] : cache_) std::free(p);
}
void CpuBackend::copy_from_host(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void CpuBackend::copy_to_host(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void CpuBackend::copy(void* dst, const void* src, size_t bytes) { std::memmove(dst, src, bytes); }
void CpuBackend::fill_zero(Tensor t) { std::memset(t.data, 0, t.nbytes()); }

template <class T>
void CpuBackend::gemm_t(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, double alpha, const T* a,
                        const T* b, double beta, T* out, bool prefer_blas) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {  // empty product: out = beta * out (BLAS rejects a zero leading dimension)
    for (int64_t i = 0; i < M * N; ++i) out[i] = beta == 0.0 ? T(0) : static_cast<T>(beta * out[i]);
    return;
  }
  if constexpr (std::is_same_v<T, double>) {
    cpu::gemm_f64(*pool_, trans_a, trans_b, M, N, K, alpha, a, b, beta, out);
  } else {
    cpu::GemmImpl impl = prefer_blas && gemm_impl_ == cpu::GemmImpl::Auto ? cpu::GemmImpl::Blas : gemm_impl_;
    cpu::gemm(*pool_, impl, trans_a, trans_b, M, N, K, static_cast<float>(alpha), a, b, static_cast<float>(beta), out);
  }
}
template void CpuBackend::gemm_t<float>(bool, bool, int64_t, int64_t, int64_t, double, const float*, const float*, double, float*, bool);
template void CpuBackend::gemm_t<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, const double*, double, double*, bool);

void CpuBackend::gemm(Tensor out, Tensor a, Tensor b, bool trans_a, bool trans_b, float alpha, float beta) {
  const char* op = "gemm";
  need_dtype(op, out, fdt_, "out");
  need_dtype(op, a, fdt_, "a");
  need_dtype(op, b, fdt_, "b");
  need(op, out.ndim == 2 && a.ndim == 2 && b.ndim == 2, "operands must be 2-D");
  int64_t M = trans_a ? a.shape[1] : a.shape[0], K = trans_a ? a.shape[0] : a.shape[1];
  int64_t Kb = trans_b ? b.shape[1] : b.shape[0], N = trans_b ? b.shape[0] : b.shape[1];
  need(op, K == Kb && out.shape[0] == M && out.shape[1] == N,
       "shapes do not match: out " + out.shape_str() + ", a " + a.shape_str() + (trans_a ? "^T" : "") + ", b " +
           b.shape_str() + (trans_b ? "^T" : ""));
  dispatch_float(fdt_, [&](auto z) {
    using T = decltype(z);
    gemm_t<T>(trans_a, trans_b, M, N, K, alpha, a.as<T>(), b.as<T>(), beta, out.as<T>());
  });
}

void CpuBackend::linear(Tensor out, Tensor x, Tensor w, Tensor bias) {
  const char* op = "linear";
  need_dtype(op, x, fdt_, "x");
  need_dtype(op, w, fdt_, "w");
  // f64 mode may write f32 logits (the generation and scoring paths keep their logits in f32)
  need_dtype(op, out, out.dtype == DType::F32 ? DType::F32 : fdt_, "out");
  need(op, w.ndim == 2, "weight must be 2-D, got " + w.shape_str());
  const int64_t M = x.rows(), K = x.cols(), N = w.shape[0];
  need(op, w.shape[1] == K && out.rows() == M && out.cols() == N,
       "shapes do not match: out " + out.shape_str() + ", x " + x.shape_str() + ", w " + w.shape_str());
  if (!bias.empty()) {
    need_dtype(op, bias, fdt_, "bias");
    need(op, bias.numel() == N, "bias " + bias.shape_str() + " does not match " + std::to_string(N) + " outputs");
  }
  if (fdt_ == DType::F32) {
    cpu::gemm_nt(*pool_, gemm_impl_, M, N, K, 1.0f, x.as<float>(), K, w.as<float>(), K, 0.0f, out.as<float>(), N,
                 bias.empty() ? nullptr : bias.as<float>());
    return;
  }
  std::vector<double> tmp;
  double* o = out.dtype == DType::F64 ? out.as<double>() : (tmp.resize(static_cast<size_t>(M * N)), tmp.data());
  cpu::gemm_f64(*pool_, false, true, M, N, K, 1.0, x.as<double>(), w.as<double>(), 0.0, o);
  if (!bias.empty())
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) o[i * N + j] += bias.as<double>()[j];
  if (out.dtype == DType::F32)
    for (int64_t i = 0; i < M * N; ++i) out.as<float>()[i] = static_cast<float>(o[i]);
}

void CpuBackend::embedding(Tensor out, Tensor table, Tensor ids) {
  const char* op = "embedding";
  need_dtype(op, out, fdt_, "out");
  need_dtype(op, table, fdt_, "table");
  need_dtype(op, ids, DType::I32, "ids");
  const int64_t n = ids.numel(), D = table.cols(), V = table.rows();
  need(op, out.rows() == n && out.cols() == D, "out " + out.shape_str() + " does not match " + std::to_string(n) + " ids of width " + std::to_string(D));
  const int32_t* id = ids.as<int32_t>();
  for (int64_t i = 0; i < n; ++i)
    need(op, id[i] >= 0 && id[i] < V, "id " + std::to_string(id[i]) + " out of range [0, " + std::to_string(V) + ")");
  const size_t row = static_cast<size_t>(D) * dtype_size(fdt_);
  char* o = static_cast<char*>(out.data);
  const char* t = static_cast<const char*>(table.data);
  pool_->parallel_for(n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) std::memcpy(o + i * row, t + id[i] * row, row);
  }, rows_per_thread(D));
}

void CpuBackend::rmsnorm(Tensor out, Tensor x, Tensor weight, float eps) {
  const char* op = "rmsnorm";
  need_dtype(op, out, fdt_, "out");
  need_dtype(op, x, fdt_, "x");
  need_dtype(op, weight, fdt_, "weight");
  const int64_t rows = x.rows(), D = x.cols();
  need(op, out.numel() == x.numel() && weight.numel() == D, "shapes do not match: x " + x.shape_str() + ", weight " + weight.shape_str());
  dispatch_float(fdt_, [&](auto z) {
    using T = decltype(z);
    pool_->parallel_for(rows, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const T* xi = x.as<T>() + r * D;
        T* o = out.as<T>() + r * D;
        double ss = 0;
        for (int64_t j = 0; j < D; ++j) ss += static_cast<double>(xi[j]) * xi[j];
        const T inv = static_cast<T>(1.0 / std::sqrt(ss / D + eps));
        for (int64_t j = 0; j < D; ++j) o[j] = xi[j] * inv * weight.as<T>()[j];
      }
    }, rows_per_thread(D));
  });
}

void CpuBackend::add(Tensor out, Tensor a, Tensor b) {
  const char* op = "add";
  need_dtype(op, out, fdt_, "out");
  need_dtype(op, a, fdt_, "a");
  need_dtype(op, b, fdt_, "b");
  need(op, a.numel() == b.numel() && out.numel() == a.numel(), "shapes do not match: " + a.shape_str() + " + " + b.shape_str());
  dispatch_float(fdt_, [&](auto z) {
    using T = decltype(z);
    T* o = out.as<T>();
    const T* x = a.as<T>();
    const T* y = b.as<T>();
    pool_->parallel_for(a.numel(), [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) o[i] = x[i] + y[i];
    }, 16384);
  });
}

template <class T>
void CpuBackend::rope_t(Tensor x, Tensor positions, Tensor cos_sin, int head_dim, bool inverse) {
  const char* op = inverse ? "rope_backward" : "rope";
  need_dtype(op, x, fdt_, "x");
  need_dtype(op, positions, DType::I32, "positions");
  need_dtype(op, cos_sin, cos_sin.dtype == DType::F64 && fdt_ == DType::F64 ? DType::F64 : DType::F32, "cos_sin");
  const int64_t n = x.rows(), width = x.cols(), half = head_dim / 2, max_pos = cos_sin.rows();
  need(op, head_dim > 0 && head_dim % 2 == 0 && width % head_dim == 0 && cos_sin.cols() == head_dim && positions.numel() == n,
       "shapes do not match: x " + x.shape_str() + ", head_dim " + std::to_string(head_dim) + ", cos_sin " + cos_sin.shape_str());
  const int32_t* pos = positions.as<int32_t>();
  for (int64_t i = 0; i < n; ++i)
    need(op, pos[i] >= 0 && pos[i] < max_pos, "position " + std::to_string(pos[i]) + " outside the table of " + std::to_string(max_pos));
  const T sign = inverse ? T(-1) : T(1);  // the inverse rotation is the rotation by -angle
  pool_->parallel_for(n, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t row = static_cast<int64_t>(pos[i]) * head_dim;
      auto cs = [&](int64_t j) -> T {  // the f64 mode may carry an f64 table
        return cos_sin.dtype == DType::F64 ? static_cast<T>(cos_sin.as<double>()[row + j]) : static_cast<T>(cos_sin.as<float>()[row + j]);
      };
      for (int64_t h = 0; h < width / head_dim; ++h) {
        T* v = x.as<T>() + i * width + h * head_dim;
        for (int64_t j = 0; j < half; ++j) {
          const T a = v[j], b2 = v[j + half], c = cs(j), s = sign * cs(half + j);
          v[j] = a * c - b2 * s;
          v[j + half] = b2 * c + a * s;
        }
      }
    }
  }, rows_per_thread(width));
}
template void CpuBackend::rope_t<float>(Tensor, Tensor, Tensor, int, bool);
template void CpuBackend::rope_t<double>(Tensor, Tensor, Tensor, int, bool);

void CpuBackend::rope(Tensor x, Tensor positions, Tensor cos_sin, int head_dim) {
  dispatch_float(fdt_, [&](auto z) { rope_t<decltype(z)>(x, positions, cos_sin, head_dim, false); });
}

void CpuBackend::swiglu(Tensor out, Tensor gate, Tensor up) {
  const char* op = "swiglu";
  need_dtype(op, out, fdt_, "out");
  need_dtype(op, gate, fdt_, "gate");
  need_dtype(op, up, fdt_, "up");
  need(op, gate.numel() == up.numel() && out.numel() == gate.numel(), "shapes do not match: " + gate.shape_str() + ", " + up.shape_str());
  dispatch_float(fdt_, [&](auto z) {
    using T = decltype(z);
    T* o = out.as<T>();
    const T* g = gate.as<T>();
    const T* u = up.as<T>();
    pool_->parallel_for(gate.numel(), [&](int64_t s, int64_t e) {
      if constexpr (std::is_same_v<T, float>) {
        cpu::silu_mul(o + s, g + s, u + s, e - s);  // vectorised exp
      } else {
        for (int64_t i = s; i < e; ++i) o[i] = g[i] / (T(1) + std::exp(-g[i])) * u[i];
      }
    }, 16384);
  });
}

void CpuBackend::kv_store(Tensor k_cache, Tensor v_cache, Tensor k, Tensor v, Tensor slots) {
  const char* op = "kv_store";
  need_dtype(op, k_cache, fdt_, "k_cache");
  need_dtype(op, v_cache, fdt_, "v_cache");
  need_dtype(op, k, fdt_, "k");
  need_dtype(op, v, fdt_, "v");
  need_dtype(op, slots, DType::I32, "slots");
  const int64_t n = k.rows(), W = k.cols(), rows = k_cache.rows();
  need(op, v.rows() == n && v.cols() == W && k_cache.cols() == W && v_cache.cols() == W && v_cache.rows() == rows && slots.numel() == n,
       "shapes do not match: k " + k.shape_str() + ", cache " + k_cache.shape_str());
  const int32_t* s = slots.as<int32_t>();
  const size_t row = static_cast<size_t>(W) * dtype_size(fdt_);
  for (int64_t i = 0; i < n; ++i) {
    need(op, s[i] >= 0 && s[i] < rows, "slot " + std::to_string(s[i]) + " outside the cache of " + std::to_string(rows) + " rows");
    std::memcpy(static_cast<char*>(k_cache.data) + s[i] * row, static_cast<const char*>(k.data) + i * row, row);
    std::memcpy(static_cast<char*>(v_cache.data) + s[i] * row, static_cast<const char*>(v.data) + i * row, row);
  }
}

void CpuBackend::paged_attention(Tensor out, Tensor q, Tensor k_cache, Tensor v_cache, const AttentionMeta& m) {
  const char* op = "paged_attention";
  need_dtype(op, out, fdt_, "out");
  need_dtype(op, q, fdt_, "q");
  need_dtype(op, k_cache, fdt_, "k_cache");
  need_dtype(op, v_cache, fdt_, "v_cache");
  need_dtype(op, m.block_tables, DType::I32, "block_tables");
  need_dtype(op, m.token_seq, DType::I32, "token_seq");
  need_dtype(op, m.token_pos, DType::I32, "token_pos");
  const int64_t n = q.rows(), Hq = m.num_q_heads, Hkv = m.num_kv_heads, hd = m.head_dim, bs = m.block_size;
  need(op, Hq > 0 && Hkv > 0 && hd > 0 && bs > 0 && Hq % Hkv == 0, "bad head configuration");
  need(op, q.cols() == Hq * hd && out.rows() == n && out.cols() == Hq * hd && k_cache.cols() == Hkv * hd &&
               v_cache.cols() == Hkv * hd && v_cache.rows() == k_cache.rows() && m.token_seq.numel() == n &&
               m.token_pos.numel() == n && m.block_tables.ndim == 2,
       "shapes do not match: q " + q.shape_str() + ", out " + out.shape_str() + ", k_cache " + k_cache.shape_str() +
           ", v_cache " + v_cache.shape_str() + ", token_seq " + m.token_seq.shape_str() + ", token_pos " +
           m.token_pos.shape_str() + ", block_tables " + m.block_tables.shape_str() + " with " + std::to_string(Hq) +
           " q heads, " + std::to_string(Hkv) + " kv heads of " + std::to_string(hd));
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
  int64_t total_pos = 0;
  for (int64_t i = 0; i < n; ++i) total_pos += pos[i] + 1;
  const int64_t work_per_item = std::max<int64_t>(1, total_pos / std::max<int64_t>(n, 1) * group * hd);
  dispatch_float(fdt_, [&](auto z) {
    using T = decltype(z);
    const T scale = static_cast<T>(m.scale);
    // One item = (token, kv head): the group's q heads share every K/V row read, so GQA reads the cache
    // once per group instead of once per q head (decode attention is bound by reading the cache).
    pool_->parallel_for(n * Hkv, [&](int64_t b, int64_t e) {
      std::vector<T> acc(static_cast<size_t>(group * hd)), mx(static_cast<size_t>(group)), denom(static_cast<size_t>(group));
      for (int64_t item = b; item < e; ++item) {
        const int64_t i = item / Hkv, kvh = item % Hkv;
        const T* qg = q.as<T>() + i * Hq * hd + kvh * group * hd;  // q heads kvh*group .. kvh*group+group-1
        const int32_t* tbl = table + seq[i] * max_blocks;
        // online softmax over positions 0..pos (one pass, no score matrix)
        std::fill(acc.begin(), acc.end(), T(0));
        std::fill(mx.begin(), mx.end(), -std::numeric_limits<T>::infinity());
        std::fill(denom.begin(), denom.end(), T(0));
        for (int64_t p = 0; p <= pos[i]; ++p) {
          const int64_t row = static_cast<int64_t>(tbl[p / bs]) * bs + p % bs;
          const T* kr = k_cache.as<T>() + row * kv_width + kvh * hd;
          const T* vr = v_cache.as<T>() + row * kv_width + kvh * hd;
          for (int64_t g = 0; g < group; ++g) {
            T* ag = acc.data() + g * hd;
            const T s = cpu::dot(qg + g * hd, kr, hd) * scale;
            if (s > mx[g]) {  // new maximum: rescale what was accumulated under the old one
              const T c = std::exp(mx[g] - s);
              denom[g] *= c;
              for (int64_t d = 0; d < hd; ++d) ag[d] *= c;
              mx[g] = s;
            }
            const T w = std::exp(s - mx[g]);
            denom[g] += w;
            cpu::axpy(ag, w, vr, hd);
          }
        }
        T* o = out.as<T>() + i * Hq * hd + kvh * group * hd;
        for (int64_t g = 0; g < group; ++g)
          for (int64_t d = 0; d < hd; ++d) o[g * hd + d] = acc[g * hd + d] / denom[g];
      }
    }, std::max<int64_t>(1, 16384 / work_per_item));
  });
}

void CpuBackend::log_softmax_gather(Tensor out, Tensor logits, Tensor targets, float inv_temperature) {
  const char* op = "log_softmax_gather";
  need(op, out.dtype == DType::F32 || out.dtype == fdt_, std::string("out must be F32, got ") + dtype_name(out.dtype));
  need(op, logits.dtype == DType::F32 || logits.dtype == fdt_, std::string("logits must be F32, got ") + dtype_name(logits.dtype));
  need_dtype(op, targets, DType::I32, "targets");
  const int64_t n = logits.rows(), V = logits.cols();
  need(op, out.numel() == n && targets.numel() == n, "shapes do not match: logits " + logits.shape_str() + ", targets " + targets.shape_str());
  const int32_t* t = targets.as<int32_t>();
  for (int64_t i = 0; i < n; ++i) need(op, t[i] >= 0 && t[i] < V, "target " + std::to_string(t[i]) + " outside the vocabulary");
  dispatch_float(logits.dtype, [&](auto z0) {
    using T = decltype(z0);
    const T inv_t = static_cast<T>(inv_temperature);
    pool_->parallel_for(n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const T* z = logits.as<T>() + i * V;
        T mx;
        double sum = 0;
        if constexpr (std::is_same_v<T, float>) {  // vectorised: max, then sum of exp(z - max) in double
          mx = cpu::max_scaled(z, V, inv_t);
          sum = cpu::exp_sum(z, V, inv_t, mx);
        } else {
          mx = -std::numeric_limits<T>::infinity();
          for (int64_t j = 0; j < V; ++j) mx = std::max(mx, z[j] * inv_t);
          for (int64_t j = 0; j < V; ++j) sum += std::exp(static_cast<double>(z[j] * inv_t - mx));
        }
        const T r = static_cast<T>(z[t[i]] * inv_t - mx - std::log(sum));
        if (out.dtype == DType::F64) out.as<double>()[i] = r;
        else out.as<float>()[i] = static_cast<float>(r);
      }
    }, 1);
  });
}

}  // namespace hayate
