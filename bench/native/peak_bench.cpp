#include "peak_bench.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

// Independent accumulator chains: enough to cover the FMA latency (4-5 cycles) times the FMA ports (2).
constexpr int kChains = 12;

// Each kernel runs `iters` rounds of kChains independent vector ops and returns a value the compiler
// cannot drop. The ISA is chosen per function (target attributes), so the file needs no -march flag.

__attribute__((target("avx512f"))) float fma_avx512(int64_t iters) {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(0.001f * i);
  const __m512 a = _mm512_set1_ps(0.9999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) float fma_avx2(int64_t iters) {
  __m256 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_ps(0.001f * i);
  const __m256 a = _mm256_set1_ps(0.9999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < kChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  __m256 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm256_add_ps(s, acc[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0] + out[7];
}

// vdpbf16ps: 16 lanes x (2 bf16 products + their sum + the accumulate) = 64 FLOP per instruction.
__attribute__((target("avx512f,avx512bf16"))) float dpbf16_avx512(int64_t iters) {
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(0.001f * i);
  const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(2e-3f));
  const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(3e-3f));
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2"))) float read_avx2(const float* p, size_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_add_ps(s0, _mm256_load_ps(p + i));
    s1 = _mm256_add_ps(s1, _mm256_load_ps(p + i + 8));
    s2 = _mm256_add_ps(s2, _mm256_load_ps(p + i + 16));
    s3 = _mm256_add_ps(s3, _mm256_load_ps(p + i + 24));
  }
  float out[8];
  _mm256_storeu_ps(out, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  return out[0] + out[5];
}

// Runs fn(thread) on `threads` threads at once, returns the wall seconds of the slowest.
template <class F>
double timed_parallel(int threads, F fn) {
  std::vector<std::thread> ts;
  const auto t0 = Clock::now();
  for (int t = 1; t < threads; ++t) ts.emplace_back(fn, t);
  fn(0);
  for (auto& t : ts) t.join();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

volatile float g_sink;

struct Rate {
  double one_thread = 0, all_threads = 0;  // GFLOP/s or GB/s, best of the repeats
};

// Compute peak: `flops_per_iter` per round of kChains ops; iterations sized to ~0.2 s per run.
template <class K>
Rate compute_peak(K kernel, double flops_per_iter, int threads) {
  int64_t iters = 1 << 20;
  for (;;) {  // calibrate on one thread
    const auto t0 = Clock::now();
    g_sink = kernel(iters);
    if (std::chrono::duration<double>(Clock::now() - t0).count() > 0.05) break;
    iters *= 2;
  }
  iters *= 4;
  Rate r;
  for (int rep = 0; rep < 3; ++rep) {
    double s1 = timed_parallel(1, [&](int) { g_sink = kernel(iters); });
    r.one_thread = std::max(r.one_thread, flops_per_iter * iters / s1 / 1e9);
    double sn = timed_parallel(threads, [&](int) { g_sink = kernel(iters); });
    r.all_threads = std::max(r.all_threads, flops_per_iter * iters * threads / sn / 1e9);
  }
  return r;
}

}  // namespace

std::string run_peak_bench_json(int threads, int buffer_mb, bool memory_only) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool bf16 = avx512 && __builtin_cpu_supports("avx512bf16");
  std::ostringstream js;
  js << "{\"bench\": \"peak\", \"threads\": " << threads << ", \"isa\": {\"avx512f\": " << (avx512 ? "true" : "false")
     << ", \"avx2_fma\": " << (avx2 ? "true" : "false") << ", \"avx512_bf16\": " << (bf16 ? "true" : "false") << "}";
  auto emit = [&](const char* name, const Rate& r, const char* unit) {
    js << ", \"" << name << "\": {\"unit\": \"" << unit << "\", \"one_thread\": " << r.one_thread
       << ", \"all_threads\": " << r.all_threads << ", \"per_thread_all\": " << r.all_threads / threads << "}";
  };
  if (!memory_only) {  // --memory-only: bench/cpu-vs-torch.ts measures the bandwidth on either side of a decode run
    if (avx512) emit("f32_fma_avx512", compute_peak(fma_avx512, 2.0 * 16 * kChains, threads), "GFLOP/s");
    if (avx2) emit("f32_fma_avx2", compute_peak(fma_avx2, 2.0 * 8 * kChains, threads), "GFLOP/s");
    if (bf16) emit("bf16_dot_avx512", compute_peak(dpbf16_avx512, 64.0 * kChains, threads), "GFLOP/s");
  }

  // Memory read bandwidth: a buffer far larger than the caches, each thread summing its own slice.
  const size_t n = static_cast<size_t>(buffer_mb) * (1 << 20) / sizeof(float);
  float* buf = static_cast<float*>(std::aligned_alloc(64, n * sizeof(float)));
  if (!buf) return js.str() + ", \"error\": \"could not allocate the bandwidth buffer\"}";
  timed_parallel(threads, [&](int t) {  // first touch from the threads that read it
    const size_t lo = n * t / threads, hi = n * (t + 1) / threads;
    for (size_t i = lo; i < hi; ++i) buf[i] = 1e-6f * static_cast<float>(i % 97);
  });
  Rate bw;
  if (avx2) {
    for (int rep = 0; rep < 5; ++rep) {
      const double s1 = timed_parallel(1, [&](int) { g_sink = read_avx2(buf, n); });
      bw.one_thread = std::max(bw.one_thread, n * sizeof(float) / s1 / 1e9);
      const double sn = timed_parallel(threads, [&](int t) {
        const size_t lo = (n * t / threads) & ~size_t(31), hi = (n * (t + 1) / threads) & ~size_t(31);
        g_sink = read_avx2(buf + lo, hi - lo);
      });
      bw.all_threads = std::max(bw.all_threads, n * sizeof(float) / sn / 1e9);
    }
    emit("memory_read", bw, "GB/s");
  }
  std::free(buf);
  js << ", \"buffer_mb\": " << buffer_mb << "}";
  return js.str();
}
