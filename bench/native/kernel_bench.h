// Kernel benchmark (hayate bench kernels): for each op, the backend's implementation and a baseline on the
// same device, median time over repeats after warm-up, achieved TFLOP/s or GB/s, speedup.
//   backend "cuda": the CUDA backend's kernels vs straightforward unfused kernels written for the
//                   comparison (and cuBLAS for GEMM when compiled in, a sort-based sampler for sampling),
//                   timed with CUDA events; GB/s cases also report the fraction of the HBM peak.
//   backend "cpu":  the CPU backend's ops vs scalar reference loops.
// ops: empty = all of linear, embedding, rmsnorm, add, swiglu, rope, kv_store, paged_attention,
// log_softmax_gather, sample. Returns a JSON array (one object per case). Throws hayate::Error: kBackend
// when the backend is unavailable (cuda without a device or without CUDA in the build), kInvalidArgument
// for an unknown backend or op.
#pragma once
#include <string>
#include <vector>

std::string run_kernel_bench_json(const std::string& backend, const std::vector<std::string>& ops, int repeats);
