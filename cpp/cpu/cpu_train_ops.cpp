// The CPU backend's training ops (backend.h "training ops"): LoRA projections and their backward through
// the GEMM, the fused lm-head log-prob over a row chunk, the elementwise backwards, AdamW and the squared
// norm (attention: cpu_train_attention.cpp). Templated on float/double (precision "f64").
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "cpu/cpu_backend.h"
#include "cpu/cpu_util.h"
#include "cpu/vec_math.h"

namespace hayate {

using cpu::axpy;
using cpu::dispatch_float;
using cpu::dot;
using cpu::need;
using cpu::need_dtype;
using cpu::rows_per_thread;

namespace {

std::string dims(const Tensor& t) { return t.shape_str(); }

}  // namespace

void CpuBackend::lora_linear(Tensor out, Tensor xa, Tensor x, Tensor w, Tensor bias, Tensor a, Tensor b, float scale) {
  const char* op = "lora_linear";
  need_dtype(op, out, fdt_, "out");
  need_dtype(op, a, fdt_, "a");
  need_dtype(op, b, fdt_, "b");
  linear(out, x, w, bias);  // checks x, w, bias and out's shape
  const int64_t M = x.rows(), K = x.cols(), N = w.shape[0], r = a.rows();
  need(op, a.ndim == 2 && a.cols() == K && b.ndim == 2 && b.rows() == N && b.cols() == r,
       "LoRA shapes do not match: x " + dims(x) + ", w " + dims(w) + ", a " + dims(a) + ", b " + dims(b));
  if (!xa.empty()) {
    need_dtype(op, xa, fdt_, "xa");
    need(op, xa.rows() == M && xa.cols() == r, "xa " + dims(xa) + " must be [" + std::to_string(M) + ", " + std::to_string(r) + "]");
  }
  dispatch_float(fdt_, [&](auto z) {
    using T = decltype(z);
    std::vector<T> tmp;
    T* xap = xa.empty() ? (tmp.resize(static_cast<size_t>(M * r)), tmp.data()) : xa.as<T>();
    gemm_t<T>(false, true, M, r, K, 1.0, x.as<T>(), a.as<T>(), 0.0, xap, true);               // xa = x a^T
    gemm_t<T>(false, true, M, N, r, scale, xap, b.as<T>(), 1.0, out.as<T>(), true);            // out += s xa b^T
  });
}

void CpuBackend::lora_linear_backward(Tensor dx, Tensor da, Tensor db, Tensor dout, Tensor x, Tensor xa, Tensor w,
                                      Tensor a, Tensor b, float scale, bool accumulate_dx) {
  const char* op = "lora_linear_backward";
  need_dtype(op, dout, fdt_, "dout");
  need_dtype(op, w, fdt_, "w");
  need(op, w.ndim == 2, "weight must be 2-D, got " + dims(w));
  const int64_t M = dout.rows(), N = dout.cols(), K = w.shape[1];
  need(op, w.shape[0] == N, "dout " + dims(dout) + " does not match w " + dims(w));
  if (!dx.empty()) {
    need_dtype(op, dx, fdt_, "dx");
    need(op, dx.rows() == M && dx.cols() == K, "dx " + dims(dx) + " must be [" + std::to_string(M) + ", " + std::to_string(K) + "]");
  }
  const bool lora = !a.empty();
  int64_t r = 0;
  if (lora) {
    for (auto [t, what] : {std::pair<const Tensor*, const char*>{&a, "a"}, {&b, "b"}, {&da, "da"}, {&db, "db"}, {&x, "x"}, {&xa, "xa"}})
      need_dtype(op, *t, fdt_, what);
    r = a.rows();
    need(op, a.ndim == 2 && a.cols() == K && b.ndim == 2 && b.rows() == N && b.cols() == r && da.numel() == a.numel() &&
                 db.numel() == b.numel() && x.rows() == M && x.cols() == K && xa.rows() == M && xa.cols() == r,
         "LoRA shapes do not match: dout " + dims(dout) + ", x " + dims(x) + ", xa " + dims(xa) + ", a " + dims(a) + ", b " + dims(b));
  }
  dispatch_float(fdt_, [&](auto z) {
    using T = decltype(z);
    if (!dx.empty()) gemm_t<T>(false, false, M, K, N, 1.0, dout.as<T>(), w.as<T>(), accumulate_dx ? 1.0 : 0.0, dx.as<T>(), true);
    if (!lora) return;
    std::vector<T> t(static_cast<size_t>(M * r));
    gemm_t<T>(false, false, M, r, N, scale, dout.as<T>(), b.as<T>(), 0.0, t.data(), true);        // t = s dout b
    if (!dx.empty()) gemm_t<T>(false, false, M, K, r, 1.0, t.data(), a.as<T>(), 1.0, dx.as<T>(), true);  // dx += t a
    gemm_t<T>(true, false, r, K, M, 1.0, t.data(), x.as<T>(), 1.0, da.as<T>(), true);             // da += t^T x
    gemm_t<T>(true, false, N, r, M, scale, dout.as<T>(), xa.as<T>(), 1.0, db.as<T>(), true);       // db += s dout^T xa
  });
}

void CpuBackend::rmsnorm_backward(Tensor dx, Tensor dout, Tensor x, Tensor weight, float eps, bool accumulate) {
  const char* op = "rmsnorm_backward";
  for (auto [t, what] : {std::pair<const Tensor*, const char*>{&dx, "dx"}, {&dout, "dout"}, {&x, "x"}, {&weight, "weight"}})
    need_dtype(op, *t, fdt_, what);
  const int64_t rows = x.rows(), D = x.cols();
  need(op, dx.numel() == x.numel() && dout.numel() == x.numel() && weight.numel() == D,
       "shapes do not match: x " + dims(x) + ", dout " + dims(dout) + ", weight " + dims(weight));
  dispatch_float(fdt_, [&](auto z) {
    using T = decltype(z);
    pool_->parallel_for(rows, [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const T* xi = x.as<T>() + r * D;
        const T* g = dout.as<T>() + r * D;
        const T* w = weight.as<T>();
        T* o = dx.as<T>() + r * D;
        double ss = 0, gx = 0;
        for (int64_t j = 0; j < D; ++j) {
          ss += static_cast<double>(xi[j]) * xi[j];
          gx += static_cast<double>(g[j]) * w[j] * xi[j];
        }
        const double inv = 1.0 / std::sqrt(ss / D + eps);
        const T c1 = static_cast<T>(inv), c2 = static_cast<T>(gx / D * inv * inv * inv);  // dx = g w / r - x (g w.x) / (D r^3)
        for (int64_t j = 0; j < D; ++j) {
          const T val = g[j] * w[j] * c1 - xi[j] * c2;
          o[j] = accumulate ? o[j] + val : val;
        }
      }
    }, rows_per_thread(D));
  });
}

void CpuBackend::rope_backward(Tensor dx, Tensor positions, Tensor cos_sin, int head_dim) {
  dispatch_float(fdt_, [&](auto z) { rope_t<decltype(z)>(dx, positions, cos_sin, head_dim, true); });
}

void CpuBackend::swiglu_backward(Tensor dgate, Tensor dup, Tensor dout, Tensor gate, Tensor up) {
  const char* op = "swiglu_backward";
  for (auto [t, what] : {std::pair<const Tensor*, const char*>{&dgate, "dgate"}, {&dup, "dup"}, {&dout, "dout"}, {&gate, "gate"}, {&up, "up"}})
    need_dtype(op, *t, fdt_, what);
  const int64_t n = gate.numel();
  need(op, up.numel() == n && dout.numel() == n && dgate.numel() == n && dup.numel() == n,
       "shapes do not match: gate " + dims(gate) + ", up " + dims(up) + ", dout " + dims(dout));
  dispatch_float(fdt_, [&](auto z) {
    using T = decltype(z);
    pool_->parallel_for(n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const T g = gate.as<T>()[i], u = up.as<T>()[i], d = dout.as<T>()[i];
        const T s = T(1) / (T(1) + std::exp(-g));
        dgate.as<T>()[i] = d * u * s * (T(1) + g * (T(1) - s));
        dup.as<T>()[i] = d * g * s;
      }
    }, 16384);
  });
}

void CpuBackend::scatter_add_rows(Tensor out, Tensor src, Tensor ids) {
  const char* op = "scatter_add_rows";
  need_dtype(op, out, fdt_, "out");
  need_dtype(op, src, fdt_, "src");
  need_dtype(op, ids, DType::I32, "ids");
  const int64_t n = ids.numel(), D = out.cols(), R = out.rows();
  need(op, src.rows() == n && src.cols() == D, "src " + dims(src) + " does not match " + std::to_string(n) + " ids into " + dims(out));
  const int32_t* id = ids.as<int32_t>();
  for (int64_t i = 0; i < n; ++i) need(op, id[i] >= 0 && id[i] < R, "row id " + std::to_string(id[i]) + " outside " + dims(out));
  dispatch_float(fdt_, [&](auto z) {
    using T = decltype(z);
    pool_->parallel_for(n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) axpy(out.as<T>() + id[i] * D, T(1), src.as<T>() + i * D, D);
    }, rows_per_thread(D));
  });
}

void CpuBackend::logprob_forward(Tensor logprobs, Tensor lse, Tensor entropy, Tensor hidden, Tensor lm_head,
                                 Tensor targets, float inv_temperature) {
  const char* op = "logprob_forward";
  for (auto [t, what] : {std::pair<const Tensor*, const char*>{&logprobs, "logprobs"}, {&lse, "lse"}, {&hidden, "hidden"}, {&lm_head, "lm_head"}})
    need_dtype(op, *t, fdt_, what);
  need_dtype(op, targets, DType::I32, "targets");
  const int64_t m = hidden.rows(), D = hidden.cols(), V = lm_head.rows();
  need(op, lm_head.cols() == D && targets.numel() == m && logprobs.numel() == m && lse.numel() == m,
       "shapes do not match: hidden " + dims(hidden) + ", lm_head " + dims(lm_head) + ", targets " + dims(targets));
  if (!entropy.empty()) {
    need_dtype(op, entropy, fdt_, "entropy");
    need(op, entropy.numel() == m, "entropy " + dims(entropy) + " must have " + std::to_string(m) + " elements");
  }
  const int32_t* t = targets.as<int32_t>();
  for (int64_t i = 0; i < m; ++i) need(op, t[i] >= 0 && t[i] < V, "target " + std::to_string(t[i]) + " outside the vocabulary");
  dispatch_float(fdt_, [&](auto z0) {
    using T = decltype(z0);
    T* z = scratch<T>(static_cast<size_t>(m * V));  // this chunk's logits only
    gemm_t<T>(false, true, m, V, D, inv_temperature, hidden.as<T>(), lm_head.as<T>(), 0.0, z, true);
    pool_->parallel_for(m, [&](int64_t b, int64_t e) {
      std::vector<T> p;
      for (int64_t i = b; i < e; ++i) {
        const T* zi = z + i * V;
        double sum = 0, ez = 0;
        T mx;
        if constexpr (std::is_same_v<T, float>) {  // vectorised exp (vec_math.h)
          mx = cpu::max_scaled(zi, V, 1.0f);
          if (!entropy.empty()) p.resize(static_cast<size_t>(V));
          sum = cpu::exp_sum(zi, V, 1.0f, mx, entropy.empty() ? nullptr : p.data());
          if (!entropy.empty())
            for (int64_t j = 0; j < V; ++j) ez += static_cast<double>(p[j]) * (zi[j] - mx);
        } else {
          mx = -std::numeric_limits<T>::infinity();
          for (int64_t j = 0; j < V; ++j) mx = std::max(mx, zi[j]);
          for (int64_t j = 0; j < V; ++j) {
            const double pj = std::exp(static_cast<double>(zi[j] - mx));
            sum += pj;
            ez += pj * (zi[j] - mx);
          }
        }
        const double l = mx + std::log(sum);
        lse.as<T>()[i] = static_cast<T>(l);
        logprobs.as<T>()[i] = static_cast<T>(zi[t[i]] - l);
        if (!entropy.empty()) entropy.as<T>()[i] = static_cast<T>(std::log(sum) - ez / sum);  // lse - E[z]
      }
    }, 1);
  });
}

void CpuBackend::logprob_backward(Tensor dhidden, Tensor dlogprobs, Tensor hidden, Tensor lm_head, Tensor targets,
                                  Tensor lse, float inv_temperature) {
  const char* op = "logprob_backward";
  for (auto [t, what] : {std::pair<const Tensor*, const char*>{&dhidden, "dhidden"}, {&dlogprobs, "dlogprobs"}, {&hidden, "hidden"},
                         {&lm_head, "lm_head"}, {&lse, "lse"}})
    need_dtype(op, *t, fdt_, what);
  need_dtype(op, targets, DType::I32, "targets");
  const int64_t m = hidden.rows(), D = hidden.cols(), V = lm_head.rows();
  need(op, lm_head.cols() == D && targets.numel() == m && dlogprobs.numel() == m && lse.numel() == m && dhidden.numel() == m * D,
       "shapes do not match: hidden " + dims(hidden) + ", lm_head " + dims(lm_head) + ", dhidden " + dims(dhidden));
  const int32_t* t = targets.as<int32_t>();
  for (int64_t i = 0; i < m; ++i) need(op, t[i] >= 0 && t[i] < V, "target " + std::to_string(t[i]) + " outside the vocabulary");
  dispatch_float(fdt_, [&](auto z0) {
    using T = decltype(z0);
    T* z = scratch<T>(static_cast<size_t>(m * V));
    gemm_t<T>(false, true, m, V, D, inv_temperature, hidden.as<T>(), lm_head.as<T>(), 0.0, z, true);
    pool_->parallel_for(m, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        T* zi = z + i * V;
        const T g = dlogprobs.as<T>()[i], l = lse.as<T>()[i];
        if constexpr (std::is_same_v<T, float>) {
          cpu::exp_sum(zi, V, 1.0f, l, zi);  // zi = softmax, in place (vec_math.h)
          for (int64_t j = 0; j < V; ++j) zi[j] *= -g;
        } else {
          for (int64_t j = 0; j < V; ++j) zi[j] = -g * std::exp(zi[j] - l);
        }
        zi[t[i]] += g;
      }
    }, 1);
    gemm_t<T>(false, false, m, D, V, inv_temperature, z, lm_head.as<T>(), 0.0, dhidden.as<T>(), true);
  });
}

void CpuBackend::adamw_step(Tensor param, Tensor grad, Tensor m, Tensor v, const AdamWParams& p) {
  const char* op = "adamw_step";
  for (auto [t, what] : {std::pair<const Tensor*, const char*>{&param, "param"}, {&grad, "grad"}, {&m, "m"}, {&v, "v"}})
    need_dtype(op, *t, fdt_, what);
  const int64_t n = param.numel();
  need(op, grad.numel() == n && m.numel() == n && v.numel() == n, "shapes do not match: param " + dims(param) + ", grad " + dims(grad));
  need(op, p.step >= 1, "step must be >= 1");
  const double bc1 = 1.0 - std::pow(p.beta1, static_cast<double>(p.step));
  const double bc2 = 1.0 - std::pow(p.beta2, static_cast<double>(p.step));
  dispatch_float(fdt_, [&](auto z) {
    using T = decltype(z);
    T* w = param.as<T>();
    const T* g = grad.as<T>();
    T* mm = m.as<T>();
    T* vv = v.as<T>();
    pool_->parallel_for(n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const double gi = static_cast<double>(g[i]) * p.grad_scale;
        const double mi = p.beta1 * mm[i] + (1.0 - p.beta1) * gi;
        const double vi = p.beta2 * vv[i] + (1.0 - p.beta2) * gi * gi;
        mm[i] = static_cast<T>(mi);
        vv[i] = static_cast<T>(vi);
        w[i] = static_cast<T>(w[i] - p.lr * (p.weight_decay * w[i] + (mi / bc1) / (std::sqrt(vi / bc2) + p.eps)));
      }
    }, 16384);
  });
}

double CpuBackend::sum_squares(Tensor x) {
  need_dtype("sum_squares", x, fdt_, "x");
  const int64_t n = x.numel();
  std::vector<double> part(static_cast<size_t>(pool_->size()), 0.0);
  const int64_t per = (n + static_cast<int64_t>(part.size()) - 1) / static_cast<int64_t>(part.size());
  dispatch_float(fdt_, [&](auto z) {
    using T = decltype(z);
    pool_->parallel_for(static_cast<int64_t>(part.size()), [&](int64_t b, int64_t e) {
      for (int64_t c = b; c < e; ++c) {
        double s = 0;
        for (int64_t i = c * per; i < std::min(n, (c + 1) * per); ++i) s += static_cast<double>(x.as<T>()[i]) * x.as<T>()[i];
        part[c] = s;
      }
    }, 1);
  });
  double total = 0;
  for (double s : part) total += s;  // fixed order: deterministic
  return total;
}

}  // namespace hayate
