// Counter-based random numbers for sampling: the draw for (seed, step) is a pure function, so a
// sequence's samples never depend on batch composition, thread count or backend. Usable from CUDA.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define HAYATE_HD __host__ __device__ __forceinline__
#else
#define HAYATE_HD inline
#endif

namespace hayate {

HAYATE_HD uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Uniform in [0, 1) with 24 random bits (exactly representable as float).
HAYATE_HD float rng_uniform(uint64_t seed, uint64_t step) {
  uint64_t h = splitmix64(seed ^ splitmix64(step + 0x632be59bd9b4e019ull));
  return static_cast<float>(h >> 40) * (1.0f / 16777216.0f);
}

// Seed of sample `index` of a request seeded with `seed` (request-level seed -> per-sequence seeds).
HAYATE_HD uint64_t derive_seed(uint64_t seed, uint64_t index) { return splitmix64(seed * 0x2545f4914f6cdd1dull + index); }

}  // namespace hayate
