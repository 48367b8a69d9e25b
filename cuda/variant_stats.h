// Which kernel variants ran: one relaxed atomic counter per variant, bumped by the launchers (gemm.cu,
// attention_*.cu, paged_attention.cu, log_softmax_gather.cu, logprob.cu, sampling.cu). The op checks
// (tests/native/test_cuda_vs_cpu.cpp) print them at the end of each family, and the host coverage test
// names the same variants from the planner (plan.h). Plain C++, no CUDA headers.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "plan.h"

namespace hayate::gpu {

// GEMM variants are gemm_variant_id(plan) in [0, kGemmVariantCount); the other families follow.
enum KernelVariant : int {
  kVarAttnFwd64 = kGemmVariantCount,  // fused varlen attention, head-dim bucket 64 / 128
  kVarAttnFwd128,
  kVarAttnBwd64,
  kVarAttnBwd128,
  kVarPagedSplit64,  // paged attention, decode layout (partitions + combine), head-dim bucket
  kVarPagedSplit128,
  kVarPagedSplit256,
  kVarPagedRows64,  // paged attention, prefill layout (rows of a sequence share K/V tiles)
  kVarPagedRows128,
  kVarPagedRows256,
  kVarLsgSingle,   // log_softmax_gather, one chunk per row (V <= kLsgChunk)
  kVarLsgChunked,  // several chunks per row
  kVarLogprobFwd,
  kVarLogprobBwd,
  kVarSampleF32,
  kVarSampleBF16,
  kKernelVariantCount
};

inline std::string kernel_variant_name(int id) {
  if (id >= 0 && id < kGemmVariantCount) return gemm_variant_name(id);
  switch (id) {
    case kVarAttnFwd64: return "attention/forward/hd64";
    case kVarAttnFwd128: return "attention/forward/hd128";
    case kVarAttnBwd64: return "attention/backward/hd64";
    case kVarAttnBwd128: return "attention/backward/hd128";
    case kVarPagedSplit64: return "paged_attention/split/hd64";
    case kVarPagedSplit128: return "paged_attention/split/hd128";
    case kVarPagedSplit256: return "paged_attention/split/hd256";
    case kVarPagedRows64: return "paged_attention/rows/hd64";
    case kVarPagedRows128: return "paged_attention/rows/hd128";
    case kVarPagedRows256: return "paged_attention/rows/hd256";
    case kVarLsgSingle: return "log_softmax_gather/one_chunk";
    case kVarLsgChunked: return "log_softmax_gather/chunked";
    case kVarLogprobFwd: return "logprob/forward_rows";
    case kVarLogprobBwd: return "logprob/backward_rows_bf16_dz";
    case kVarSampleF32: return "sampling/f32";
    case kVarSampleBF16: return "sampling/bf16";
    default: return "?";
  }
}
// Defined in variant_stats.cpp (CUDA builds):
void count_kernel_variant(int id);
// Variants with a non-zero count, by id, with their counts (since the last reset).
std::vector<std::pair<std::string, int64_t>> kernel_variant_counts();
void reset_kernel_variant_counts();

// Test-only: plan GEMMs as if the device had this many SMs (0 = the device's own count), so the variants
// an op check reaches do not depend on the GPU it runs on (132 = H100 / H200). Only where work runs
// changes, never a result's correctness.
void set_gemm_plan_sms_override(int num_sms);
int gemm_plan_sms(int device_sms);

inline int paged_attention_variant(bool split, int hd_bucket) {
  const int b = hd_bucket <= 64 ? 0 : hd_bucket <= 128 ? 1 : 2;
  return (split ? kVarPagedSplit64 : kVarPagedRows64) + b;
}
inline int flash_variant(bool backward, int hd_bucket) {
  return (backward ? kVarAttnBwd64 : kVarAttnFwd64) + (hd_bucket <= 64 ? 0 : 1);
}

}  // namespace hayate::gpu
