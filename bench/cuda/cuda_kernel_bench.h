// The CUDA half of `hayate_bench kernels` (bench/native/kernel_bench.cpp formats the JSON): for each op,
// the CUDA backend's kernel and a baseline on the same device — a straightforward unfused kernel written
// for the comparison (baseline_kernels.cu), cuBLAS for GEMM when compiled in, a sort-based (CUB radix
// sort + scan) top-p sampler for sampling — median over repeats after warm-up, timed with CUDA events on
// the backend's stream. Built as its own library (hayate_cuda_bench) linked only into hayate_bench, so
// the engine and the Node addon never compile the baselines. Plain C++ header: no CUDA types.
#pragma once
#include <string>
#include <vector>

#include "kernel_bench_cases.h"

namespace hayate::bench {

struct KernelBenchDevice {
  std::string name;
  double peak_gbs = 0;  // HBM bandwidth from the memory clock and bus width (0 when unknown)
  int sms = 0;
  int cc = 0;
};

// ops: empty = all of kernel_bench_ops(). shapes: the attention cases' shapes (attention_bench_shape.h;
// empty = default_attention_bench_shapes()). Throws kBackend without a usable device, kInvalidArgument
// for an unknown op or a bad shape.
std::vector<KernelBenchResult> cuda_kernel_bench(const std::vector<std::string>& ops, int repeats,
                                                 KernelBenchDevice* device, const std::vector<std::string>& shapes = {});

}  // namespace hayate::bench
