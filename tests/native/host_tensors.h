// Host data for the CPU op tests: Gaussian vectors and Tensor views of std::vectors (the CPU backend reads
// host memory directly, so a test's vectors are its tensors).
#pragma once
#include <cstdint>
#include <initializer_list>
#include <random>
#include <vector>

#include "tensor.h"

namespace hayate_test {

inline std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d;
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng) * scale;
  return v;
}

inline hayate::Tensor T(std::vector<float>& v, std::initializer_list<int64_t> s) {
  return hayate::Tensor(v.data(), hayate::DType::F32, s);
}
inline hayate::Tensor I(std::vector<int32_t>& v, std::initializer_list<int64_t> s) {
  return hayate::Tensor(v.data(), hayate::DType::I32, s);
}

}  // namespace hayate_test
