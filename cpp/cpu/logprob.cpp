// Log-probabilities of target tokens: log_softmax_gather over given logits (scoring), and the fused lm head
// + log-softmax + gather over one chunk of rows with its backward (training), which computes the chunk's
// logits into a reused scratch buffer and never returns them. Targets are checked on the host.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "cpu/cpu_backend.h"
#include "cpu/cpu_util.h"
#include "cpu/vec_math.h"

namespace hayate {

using checks::need_each;
using cpu::dispatch_float;

void CpuBackend::log_softmax_gather(Tensor out, Tensor logits, Tensor targets, float inv_temperature) {
  const char* op = "log_softmax_gather";
  checks::check_log_softmax_gather(dtypes_, out, logits, targets);
  const int64_t n = logits.rows(), V = logits.cols();
  const int32_t* t = targets.as<int32_t>();
  for (int64_t i = 0; i < n; ++i) need_each(op, t[i] >= 0 && t[i] < V, [&] { return "target " + std::to_string(t[i]) + " outside the vocabulary"; });
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

void CpuBackend::logprob_forward(Tensor logprobs, Tensor lse, Tensor entropy, Tensor hidden, Tensor lm_head,
                                 Tensor targets, float inv_temperature) {
  const char* op = "logprob_forward";
  checks::check_logprob_forward(dtypes_, logprobs, lse, entropy, hidden, lm_head, targets);
  const int64_t m = hidden.rows(), D = hidden.cols(), V = lm_head.rows();
  const int32_t* t = targets.as<int32_t>();
  for (int64_t i = 0; i < m; ++i) need_each(op, t[i] >= 0 && t[i] < V, [&] { return "target " + std::to_string(t[i]) + " outside the vocabulary"; });
  dispatch_float(fdt_, [&](auto z0) {
    using T = decltype(z0);
    T* z = scratch<T>(static_cast<size_t>(m * V));  // this chunk's logits only
    weight_nt<T>(m, V, D, inv_temperature, hidden.as<T>(), lm_head, z);
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
  checks::check_logprob_backward(dtypes_, dhidden, dlogprobs, hidden, lm_head, targets, lse);
  const int64_t m = hidden.rows(), D = hidden.cols(), V = lm_head.rows();
  const int32_t* t = targets.as<int32_t>();
  for (int64_t i = 0; i < m; ++i) need_each(op, t[i] >= 0 && t[i] < V, [&] { return "target " + std::to_string(t[i]) + " outside the vocabulary"; });
  dispatch_float(fdt_, [&](auto z0) {
    using T = decltype(z0);
    T* z = scratch<T>(static_cast<size_t>(m * V));
    weight_nt<T>(m, V, D, inv_temperature, hidden.as<T>(), lm_head, z);
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
    weight_nn<T>(m, D, V, inv_temperature, z, lm_head, 0.0, dhidden.as<T>());
  });
}

}  // namespace hayate
