// Kernel benchmark: see kernel_bench.h. This file checks the selection, runs the backend's half (CPU:
// cpu_kernel_bench.cpp; CUDA: bench/cuda/, compiled by nvcc into hayate_cuda_bench) and writes the JSON.
#include "kernel_bench.h"

#include <cmath>
#include <cstdio>
#include <sstream>
#include <vector>

#include "attention_bench_shape.h"
#include "cpu_kernel_bench.h"
#include "kernel_bench_cases.h"
#ifdef HAYATE_WITH_CUDA_KERNEL_BENCH
#include "cuda_kernel_bench.h"
#endif

using namespace hayate;
using namespace hayate::bench;

namespace {

using Result = KernelBenchResult;

std::string esc(const std::string& s) {
  std::string o;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') o += '\\';
    o += ch;
  }
  return o;
}

std::string num(double v) {
  if (!std::isfinite(v)) return "null";
  char b[64];
  std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}

// metric value from work per call and ms per call
double rate(const std::string& metric, double work, double ms) {
  if (ms <= 0) return 0;
  return metric == "TFLOP/s" ? work / (ms * 1e-3) / 1e12 : work / (ms * 1e-3) / 1e9;
}

std::string to_json(const std::vector<Result>& rs, const std::string& backend, const std::string& device,
                    double peak_gbs) {
  std::ostringstream js;
  js << "[";
  for (size_t i = 0; i < rs.size(); ++i) {
    const Result& r = rs[i];
    const double v = rate(r.metric, r.work, r.ms);
    const double bv = rate(r.metric, r.baseline_work > 0 ? r.baseline_work : r.work, r.baseline_ms);
    js << (i ? ",\n" : "\n") << "  {\"op\": \"" << esc(r.op) << "\", \"case\": \"" << esc(r.label) << "\", \"shape\": \""
       << esc(r.shape) << "\", \"backend\": \"" << backend << "\", \"device\": \"" << esc(device)
       << "\", \"impl\": \"hayate\", \"median_ms\": " << num(r.ms) << ", \"metric\": \"" << r.metric
       << "\", \"value\": " << num(v);
    if (r.metric == "GB/s" && peak_gbs > 0) js << ", \"peak_fraction\": " << num(v / peak_gbs);
    js << ", \"baseline\": \"" << esc(r.baseline) << "\", \"baseline_median_ms\": " << num(r.baseline_ms)
       << ", \"baseline_value\": " << num(bv) << ", \"speedup\": " << num(r.ms > 0 ? r.baseline_ms / r.ms : 0);
    if (r.baseline_is_base_gemm) js << ", \"vs_base_gemm\": " << num(r.baseline_ms > 0 ? r.ms / r.baseline_ms : 0);
    if (r.check.done) {
      const KernelBenchCheck& c = r.check;
      js << ", \"check\": {\"against\": \"" << esc(c.against) << "\", \"max_abs_err\": " << num(c.max_abs_err)
         << ", \"max_rel_err\": " << num(c.max_rel_err) << ", \"ref_max_abs\": " << num(c.ref_max_abs)
         << ", \"tolerance\": " << num(c.tolerance) << ", \"compared\": " << c.compared << ", \"pass\": " << (c.pass ? "true" : "false");
      if (!c.note.empty()) js << ", \"note\": \"" << esc(c.note) << "\"";
      js << "}";
    }
    if (!r.error.empty()) js << ", \"error\": \"" << esc(r.error) << "\"";
    if (!r.baseline2.empty())
      js << ", \"baseline2\": \"" << esc(r.baseline2) << "\", \"baseline2_median_ms\": " << num(r.baseline2_ms)
         << ", \"baseline2_value\": " << num(rate(r.metric, r.work, r.baseline2_ms))
         << ", \"speedup_vs_baseline2\": " << num(r.ms > 0 ? r.baseline2_ms / r.ms : 0);
    js << "}";
  }
  js << (rs.empty() ? "]" : "\n]");
  return js.str();
}

bool kernel_bench_passed(const std::vector<Result>& rs) {
  for (const Result& r : rs)
    if (!r.error.empty() || (r.check.done && !r.check.pass)) return false;
  return true;
}

}  // namespace

std::string run_kernel_bench_json(const std::string& backend, const std::vector<std::string>& ops, int repeats,
                                  const std::vector<std::string>& shapes, bool* all_passed) {
  check_kernel_bench_ops(ops);
  for (const std::string& s : shapes) parse_attention_bench_shape(s);  // malformed: kInvalidArgument up front
  if (backend == "cpu") {
    std::string device;
    const std::vector<Result> rs = cpu_kernel_bench(ops, repeats, shapes, &device);
    if (all_passed) *all_passed = kernel_bench_passed(rs);
    return to_json(rs, "cpu", device, 0.0);
  }
  if (backend == "cuda") {
#ifdef HAYATE_WITH_CUDA_KERNEL_BENCH
    KernelBenchDevice dev;
    const std::vector<Result> rs = cuda_kernel_bench(ops, repeats, &dev, shapes);
    if (all_passed) *all_passed = kernel_bench_passed(rs);
    return to_json(rs, "cuda", dev.name + " (sm_" + std::to_string(dev.cc) + ", " + std::to_string(dev.sms) + " SMs)", dev.peak_gbs);
#else
    fail(ErrorCode::kBackend, "this build of hayate has no CUDA backend (nvcc was not found at build time); use backend 'cpu'");
#endif
  }
  fail(ErrorCode::kInvalidArgument, "unknown backend '" + backend + "' for the kernel benchmark (cpu, cuda)");
}
