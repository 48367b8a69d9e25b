// Kernel benchmark (hayate bench kernels): for each op, the backend's implementation and a baseline on the
// same device, median time over repeats after warm-up, achieved TFLOP/s or GB/s, speedup.
//   backend "cuda": the CUDA backend's kernels vs straightforward unfused kernels written for the
//                   comparison (and cuBLAS for GEMM when compiled in, a sort-based sampler for sampling),
//                   timed with CUDA events; GB/s cases also report the fraction of the HBM peak.
//   backend "cpu":  the CPU backend's ops vs scalar reference loops; cases that compare variants time
//                   them in turns, so that the ratios hold on a loaded machine.
//   logprob: the chunked lm-head log-prob forward / backward of training at V = 151,936 against the unfused
//   path (full logits in memory); see logprob_bench_result().
//   lora_linear / lora_linear_backward: rank-32 LoRA projections against the same backend's bare base GEMM
//   (linear(), or the adapter-less lora_linear_backward for dx); "vs_base_gemm" = LoRA time / base time.
//   adamw: adamw_step over all LoRA tensors of the qwen3-0.6b recipe held in one arena (one call) against
//   a per-tensor loop (CUDA: a naive kernel per tensor; CPU: a scalar loop) and the backend's adamw_step
//   once per tensor (what Trainer::step does).
// The cases: cpu_kernel_bench.cpp and bench/cuda/cuda_kernel_bench.cu, over what kernel_bench_cases.h
// shares. ops: empty = all of kernel_bench_ops(). shapes (`--shapes`): the shapes of the
// attention_forward / attention_backward cases, each "SxL" (S sequences of L tokens, qwen3-0.6b heads:
// 16 q / 8 kv of head_dim 128) or "SxL:hq/hkv/hd" (attention_bench_shape.h); empty = the defaults (CUDA:
// 8x512, 2x2048, 16x256:16/8/64; CPU: 2x256). Returns a JSON array (one object per case). Throws
// hayate::Error: kBackend when the backend is unavailable (cuda without a device or without CUDA in the
// build), kInvalidArgument for an unknown backend, op or malformed shape.
#pragma once
#include <string>
#include <vector>

// Every case checks its outputs before it is timed (KernelBenchCheck in kernel_bench_cases.h: "check" in
// the JSON); *all_passed (optional) is false when a check failed or a case threw ("error" in the JSON).
std::string run_kernel_bench_json(const std::string& backend, const std::vector<std::string>& ops, int repeats,
                                  const std::vector<std::string>& shapes = {}, bool* all_passed = nullptr);
