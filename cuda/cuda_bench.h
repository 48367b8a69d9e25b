// Kernel benchmark on the CUDA backend (bench/native/kernel_bench.cpp formats the JSON): for each op, the
// backend's kernel and a baseline on the same device — a straightforward unfused kernel written for the
// comparison (cuda/cuda_bench.cu), cuBLAS for GEMM when compiled in, a sort-based (CUB radix sort + scan)
// top-p sampler for sampling — median over repeats after warm-up, timed with CUDA events on the
// backend's stream. Plain C++ header: no CUDA types.
#pragma once
#include <string>
#include <vector>

namespace hayate::gpu {

struct KernelBenchResult {
  std::string op;      // "linear", "paged_attention", ...
  std::string label;   // the case, e.g. "q_proj M=64"
  std::string shape;   // e.g. "[64,1024]x[2048,1024]^T"
  std::string metric;  // "TFLOP/s" or "GB/s"
  double work = 0;     // FLOPs or bytes moved per call (the metric's numerator)
  double ms = 0;       // the backend's kernel, median per call
  std::string baseline;
  double baseline_ms = 0;
  std::string baseline2;  // optional second baseline (cuBLAS for GEMM)
  double baseline2_ms = 0;
};

struct KernelBenchDevice {
  std::string name;
  double peak_gbs = 0;  // HBM bandwidth from the memory clock and bus width (0 when unknown)
  int sms = 0;
  int cc = 0;
};

// ops: empty = all of linear, embedding, rmsnorm, add, swiglu, rope, kv_store, paged_attention,
// attention_forward, attention_backward, log_softmax_gather, sample. shapes: the attention cases' shapes
// ("SxL" or "SxL:hq/hkv/hd", plan.h parse_attention_bench_shape; empty = default_attention_bench_shapes()).
// Throws kBackend without a usable device, kInvalidArgument for an unknown op or a bad shape.
std::vector<KernelBenchResult> cuda_kernel_bench(const std::vector<std::string>& ops, int repeats,
                                                 KernelBenchDevice* device, const std::vector<std::string>& shapes = {});

}  // namespace hayate::gpu
