// Helpers for the training-op and training-graph checks: host <-> backend transfers in double, and a
// generic gradient check of one op. An op is given as a forward (inputs -> outputs) and a backward
// (inputs, d outputs -> d inputs) over host vectors; the check runs both on the CPU backend in f64 and
// compares the backward against central finite differences of sum_k R_k . out_k (R random), then runs them
// in f32 and compares with the f64 results, so the f32 kernels (GEMM, BLAS) are covered too.
#pragma once
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "backend.h"
#include "check.h"
#include "cpu/cpu_backend.h"

namespace hayate_test {

using Vec = std::vector<double>;
using Vecs = std::vector<Vec>;

inline Vec randv(size_t n, uint32_t seed, double scale = 1.0) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> d;
  Vec v(n);
  for (auto& x : v) x = d(rng) * scale;
  return v;
}

inline hayate::Buffer dev(hayate::Backend& be, const Vec& h, std::initializer_list<int64_t> shape) {
  hayate::Buffer b(be, be.param_dtype(), shape);
  HAYATE_CHECK(static_cast<size_t>(b.t().numel()) == h.size(), hayate::ErrorCode::kInternal, "dev: size mismatch");
  be.upload(b, h.data(), hayate::DType::F64);
  return b;
}

inline hayate::Buffer dev_i32(hayate::Backend& be, const std::vector<int32_t>& h) {
  hayate::Buffer b(be, hayate::DType::I32, {static_cast<int64_t>(h.size())});
  be.copy_from_host(b.t().data, h.data(), h.size() * 4);
  return b;
}

inline Vec host(hayate::Backend& be, hayate::Tensor t) {
  Vec v(static_cast<size_t>(t.numel()));
  be.download_f64(v.data(), t);
  return v;
}

// max |a - b| / max |b|
inline double rel_err(const Vec& a, const Vec& b) {
  double d = 0, s = 1e-300;
  for (size_t i = 0; i < b.size(); ++i) {
    d = std::max(d, std::fabs(a[i] - b[i]));
    s = std::max(s, std::fabs(b[i]));
  }
  return d / s;
}

struct OpCheck {
  std::string name;
  Vecs inputs;
  std::vector<int> diff;  // inputs the backward returns gradients for, in order
  int outputs_in_loss = 1;  // the first outputs enter the scalar sum_k R_k . out_k
  std::function<Vecs(hayate::Backend&, const Vecs&)> fwd;
  std::function<Vecs(hayate::Backend&, const Vecs&, const Vecs&)> bwd;
  double fd_tol = 1e-6;
  double f32_tol = 2e-4;
};

inline void run_op_check(OpCheck& c) {
  hayate::CpuBackend be64(2, "auto", "f64"), be32(2, "auto", "f32");
  Vecs out = c.fwd(be64, c.inputs);
  Vecs R;
  for (int k = 0; k < c.outputs_in_loss; ++k) R.push_back(randv(out[k].size(), 100 + k));
  Vecs grads = c.bwd(be64, c.inputs, R);
  CHECK(grads.size() == c.diff.size());
  auto loss = [&](const Vecs& in) {
    Vecs o = c.fwd(be64, in);
    double s = 0;
    for (int k = 0; k < c.outputs_in_loss; ++k)
      for (size_t i = 0; i < o[k].size(); ++i) s += R[k][i] * o[k][i];
    return s;
  };
  std::mt19937 rng(7);
  for (size_t g = 0; g < c.diff.size(); ++g) {
    Vecs in = c.inputs;
    Vec& x = in[c.diff[g]];
    double scale = 1e-300, worst = 0;
    for (double v : grads[g]) scale = std::max(scale, std::fabs(v));
    const size_t n = x.size(), samples = std::min<size_t>(n, 24);
    for (size_t s = 0; s < samples; ++s) {
      size_t i = n <= 24 ? s : rng() % n;
      const double old = x[i], h = 1e-6 * std::max(1.0, std::fabs(old));
      x[i] = old + h;
      const double lp = loss(in);
      x[i] = old - h;
      const double lm = loss(in);
      x[i] = old;
      worst = std::max(worst, std::fabs((lp - lm) / (2 * h) - grads[g][i]) / scale);
    }
    if (!(worst <= c.fd_tol))
      report(__FILE__, __LINE__, c.name + ": gradient of input " + std::to_string(c.diff[g]) + " vs finite differences: rel err " + std::to_string(worst));
  }
  // f32 kernels against the f64 results
  Vecs out32 = c.fwd(be32, c.inputs), grads32 = c.bwd(be32, c.inputs, R);
  for (size_t k = 0; k < out.size(); ++k) {
    double e = rel_err(out32[k], out[k]);
    if (!(e <= c.f32_tol)) report(__FILE__, __LINE__, c.name + ": f32 output " + std::to_string(k) + " vs f64: rel err " + std::to_string(e));
  }
  for (size_t g = 0; g < grads.size(); ++g) {
    double e = rel_err(grads32[g], grads[g]);
    if (!(e <= c.f32_tol)) report(__FILE__, __LINE__, c.name + ": f32 gradient " + std::to_string(g) + " vs f64: rel err " + std::to_string(e));
  }
}

}  // namespace hayate_test
