#include "gemm_bench.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "backend.h"
#include "cpu/cpu_backend.h"
#ifdef HAYATE_WITH_BLAS
#include <cblas.h>
#endif

using namespace hayate;

namespace {

// Median over at least `repeats` runs and at least ~0.3 s of runs, after one warm-up run (this VM's
// timings are noisy; short shapes get many runs). It first pauses: OpenBLAS's worker threads busy-wait
// for ~0.1 s after a call, and on a small machine they would steal a core from the next measurement.
double median_ms(int repeats, const std::function<void()>& fn) {
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  auto w = std::chrono::steady_clock::now();
  fn();
  double once = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - w).count();
  int runs = std::max(repeats, std::min(200, static_cast<int>(300.0 / std::max(once, 1e-3))));
  std::vector<double> t;
  for (int r = 0; r < runs; ++r) {
    auto s = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

struct Shape {
  const char* op;
  int64_t N, K;
};

}  // namespace

std::string run_gemm_bench_json(int threads, int repeats) {
  // qwen3-0.6b projections (K -> N) and the tied lm head.
  const std::vector<Shape> shapes = {{"q_proj", 2048, 1024}, {"kv_proj", 1024, 1024}, {"gate_up_proj", 3072, 1024},
                                     {"o_proj", 1024, 2048}, {"down_proj", 1024, 3072}, {"lm_head", 151936, 1024}};
  const std::vector<int64_t> Ms = {1, 8, 64, 512};
  std::vector<std::pair<std::string, std::unique_ptr<CpuBackend>>> impls;
  impls.emplace_back("builtin", std::make_unique<CpuBackend>(threads, "builtin"));
  if (blas_compiled()) {
    impls.emplace_back("auto", std::make_unique<CpuBackend>(threads, "auto"));
    impls.emplace_back("blas", std::make_unique<CpuBackend>(threads, "blas"));
  }
  std::mt19937 rng(1);
  std::normal_distribution<float> dist;
  std::ostringstream js;
  js << "[";
  bool first = true;
  auto emit = [&](const Shape& s, int64_t M, const std::string& impl, double ms) {
    double gflops = 2.0 * M * s.N * s.K / (ms * 1e6);
    js << (first ? "\n" : ",\n") << "  {\"op\": \"" << s.op << "\", \"M\": " << M << ", \"N\": " << s.N << ", \"K\": " << s.K
       << ", \"impl\": \"" << impl << "\", \"median_ms\": " << ms << ", \"gflops\": " << gflops << "}";
    first = false;
  };
  for (const Shape& s : shapes) {
    for (int64_t M : Ms) {
      if (s.N > 100000 && M > 64) continue;  // lm head: only the decode-sized batches
      std::vector<float> x(M * s.K), w(s.N * s.K), out(M * s.N);
      for (auto& v : x) v = dist(rng);
      for (auto& v : w) v = dist(rng) * 0.02f;
      Tensor tx(x.data(), DType::F32, {M, s.K}), tw(w.data(), DType::F32, {s.N, s.K}), to(out.data(), DType::F32, {M, s.N});
      int reps = repeats;
      for (auto& [name, be] : impls) emit(s, M, "engine " + name, median_ms(reps, [&] { be->linear(to, tx, tw, Tensor{}); }));
#ifdef HAYATE_WITH_BLAS
      emit(s, M, "cblas_sgemm direct", median_ms(reps, [&] {
             cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, s.N, s.K, 1.0f, x.data(), s.K, w.data(), s.K, 0.0f,
                         out.data(), s.N);
           }));
#endif
    }
  }
  js << "\n]";
  return js.str();
}
