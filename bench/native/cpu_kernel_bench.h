// The CPU half of `hayate_bench kernels`: the CPU backend's ops against scalar reference loops, on
// smaller cases than the CUDA half's (the scalar baselines must finish in seconds). Cases that compare
// variants (LoRA vs base GEMM, AdamW layouts) time them in turns, so that the ratios hold on a loaded
// machine.
#pragma once
#include <string>
#include <vector>

#include "kernel_bench_cases.h"

namespace hayate::bench {

// ops: empty = all of kernel_bench_ops(); shapes: the attention cases' (empty =
// default_cpu_attention_bench_shapes()). *device: the backend's description.
std::vector<KernelBenchResult> cpu_kernel_bench(const std::vector<std::string>& ops, int repeats,
                                                const std::vector<std::string>& shapes, std::string* device);

}  // namespace hayate::bench
