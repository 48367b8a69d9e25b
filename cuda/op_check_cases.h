// The GEMM-bearing cases of the CUDA op checks (tests/native/test_cuda_vs_cpu.cpp, families cuda_op/gemm,
// cuda_op/lora, cuda_op/logprob) and the products of the qwen3-0.6b workload they must cover. Both lists
// are turned into kernel variants by the planner (plan.h) at kOpCheckPlanSms SMs: the host test
// (test_cuda_host_logic.cpp) checks, without a GPU, that every variant the workload can plan is reached by
// some op check; the op checks plan at the same SM count (set_gemm_plan_sms_override) and check on the
// device that the variants they predict are the ones that ran. Plain C++.
#pragma once
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "plan.h"
#include "variant_stats.h"

namespace hayate::gpu {

constexpr int kOpCheckPlanSms = 132;  // H100 SXM / H200

enum class GemmCaseOp { Linear, Gemm, LoraForward, LoraBackward, LogprobForward, LogprobBackward };

// M tokens (rows), N out features, K in features, r LoRA rank (LoRA ops); for Gemm: trans flags.
// Logprob ops: M = rows of the chunk, N = V, K = D.
struct GemmCase {
  const char* name;
  GemmCaseOp op;
  int64_t M, N, K, r;
  bool trans_a = false, trans_b = false;  // GemmCaseOp::Gemm only
};

// The products an op issues with bf16 activations/weights (every one 16-byte aligned, as the model's
// buffers) or f32 ones (all generic).
inline std::vector<GemmProblem> gemm_case_problems(const GemmCase& c, bool bf16) {
  std::vector<GemmProblem> v;
  switch (c.op) {
    case GemmCaseOp::Linear: v = {{c.M, c.N, c.K, 0, c.K % 8 == 0 ? GemmLayout::NT : GemmLayout::Generic, true}}; break;
    case GemmCaseOp::Gemm: {  // Backend::gemm: batch-invariant, so only NT is fast (plan_gemm)
      const bool ok = !c.trans_a && c.trans_b && c.K % 8 == 0;
      v = {{c.M, c.N, c.K, 0, ok ? GemmLayout::NT : GemmLayout::Generic, true}};
      break;
    }
    case GemmCaseOp::LoraForward: v = lora_forward_problems(c.M, c.N, c.K, c.r); break;
    case GemmCaseOp::LoraBackward: v = lora_backward_problems(c.M, c.N, c.K, c.r, true); break;
    case GemmCaseOp::LogprobForward: v = logprob_problems(c.M, c.N, c.K, false); break;
    case GemmCaseOp::LogprobBackward: v = logprob_problems(c.M, c.N, c.K, true); break;
  }
  if (!bf16)
    for (GemmProblem& p : v) p.layout = GemmLayout::Generic;
  return v;
}

inline std::set<std::string> gemm_case_variants(const GemmCase& c, bool bf16, int sms = kOpCheckPlanSms) {
  std::set<std::string> out;
  for (const GemmProblem& p : gemm_case_problems(c, bf16)) out.insert(gemm_variant_name(plan_gemm(p, sms)));
  return out;
}

// The op checks' GEMM cases (each run with bf16 and f32 inputs against the CPU backend). Sizes are the
// smallest that reach each variant at 132 SMs: the 128x128 tile needs >= 132 output tiles of 128.
inline std::vector<GemmCase> gemm_op_check_cases() {
  using O = GemmCaseOp;
  return {
      // linear / gemm (batch-invariant NT or generic): decode split-K, 64x64, 128x128, odd sizes
      {"linear_decode_splitk", O::Linear, 8, 1024, 1024, 0},
      {"linear_skinny_direct", O::Linear, 16, 2048, 200, 0},
      {"linear_64x64_splitk", O::Linear, 64, 1000, 1024, 0},
      {"linear_64x64_direct", O::Linear, 300, 1000, 520, 0},
      {"linear_128x128", O::Linear, 1536, 1536, 264, 0},
      {"linear_odd", O::Linear, 37, 65, 127, 0},
      {"gemm_tn_generic", O::Gemm, 129, 96, 40, 0, true, false},
      {"gemm_nn_generic", O::Gemm, 300, 200, 520, 0, false, false},
      {"gemm_tt_generic", O::Gemm, 3, 17, 5, 0, true, true},
      {"gemm_nt_128x128", O::Gemm, 1536, 1664, 96, 0, false, true},
      // lora forward (NT fold) and backward (NN / TN, one accumulator set, split-K slices)
      {"lora_fwd_decode", O::LoraForward, 4, 1024, 1024, 16},
      {"lora_fwd_64", O::LoraForward, 64, 1024, 1024, 32},
      {"lora_fwd_128x128", O::LoraForward, 1536, 1536, 256, 16},
      {"lora_fwd_odd", O::LoraForward, 37, 65, 127, 5},
      {"lora_bwd_decode", O::LoraBackward, 20, 1024, 512, 16},
      {"lora_bwd_64", O::LoraBackward, 64, 1024, 1024, 32},
      {"lora_bwd_512tok", O::LoraBackward, 512, 1024, 1024, 16},
      {"lora_bwd_512tok_r64", O::LoraBackward, 512, 2048, 1024, 64},
      {"lora_bwd_128x128", O::LoraBackward, 2048, 512, 2048, 16},
      {"lora_bwd_1024tok", O::LoraBackward, 1024, 512, 1024, 16},
      {"lora_bwd_odd", O::LoraBackward, 37, 65, 127, 5},
      // log-prob at the real vocabulary (V = 151,936): chunk of 128 rows and a short tail chunk
      {"logprob_fwd_small", O::LogprobForward, 37, 1000, 64, 0},
      {"logprob_bwd_V151936", O::LogprobBackward, 128, 151936, 1024, 0},
      {"logprob_bwd_tail", O::LogprobBackward, 20, 151936, 1024, 0},
      {"logprob_bwd_small", O::LogprobBackward, 5, 1000, 64, 0},
  };
}

// Every product of the qwen3-0.6b workload (hidden 1024, intermediate 3072, 16 q / 8 kv heads of 128,
// vocabulary 151,936; LoRA on all 7 projections at rank 16 or 64):
//   decode batch 64 (linear and lora_linear forward, lm head), prefill at 512 / 2048 tokens, training at
//   512 / 2048 tokens (lora forward + backward of every projection; the log-prob chunks of 128 rows and a
//   tail chunk).
inline std::vector<GemmCase> qwen3_06b_gemm_cases() {
  using O = GemmCaseOp;
  struct Proj {
    const char* name;
    int64_t n, k;
  };
  const Proj projs[] = {{"q", 2048, 1024}, {"k", 1024, 1024}, {"v", 1024, 1024}, {"o", 1024, 2048},
                        {"gate", 3072, 1024}, {"up", 3072, 1024}, {"down", 1024, 3072}};
  std::vector<GemmCase> v;
  for (const Proj& p : projs) {
    for (int64_t r : {16, 64}) {
      v.push_back({p.name, O::LoraForward, 64, p.n, p.k, r});  // decode
      for (int64_t M : {512, 2048}) {
        v.push_back({p.name, O::LoraForward, M, p.n, p.k, r});   // prefill / training forward
        v.push_back({p.name, O::LoraBackward, M, p.n, p.k, r});  // training backward
      }
    }
    for (int64_t M : {64, 512, 2048}) v.push_back({p.name, O::Linear, M, p.n, p.k, 0});  // no adapter
  }
  for (int64_t M : {1, 8, 64}) v.push_back({"lm_head", O::Linear, M, 151936, 1024, 0});
  for (int64_t m : {128, 20}) {
    v.push_back({"logprob", O::LogprobForward, m, 151936, 1024, 0});
    v.push_back({"logprob", O::LogprobBackward, m, 151936, 1024, 0});
  }
  return v;
}

// The non-GEMM kernel variants of the same workload, from the planners: fused varlen attention forward and
// backward (training at 2048 tokens in 8 sequences), paged attention in the decode layout (batch 64,
// contexts up to 1024) and the prefill layout (2048 prompt tokens in 8 sequences), the log-prob rows,
// log_softmax_gather over the vocabulary (scoring), sampling from fp32 logits. The op checks of each
// family check on the device that these ran (cuda_op/<family>/~variants).
inline std::set<std::string> qwen3_06b_other_variants() {
  const int hq = 16, hkv = 8, hd = 128;
  const FlashPlan f = plan_flash_attention("attention", 2048, 8, 512, hq, hkv, hd);
  const AttentionPlan dec = plan_paged_attention(64, 64, 1024 / 16, 16, hq, hkv, hd, 2);
  const AttentionPlan pre = plan_paged_attention(2048, 8, 256 / 16, 16, hq, hkv, hd, 2);
  return {kernel_variant_name(flash_variant(false, f.hd_bucket)),
          kernel_variant_name(flash_variant(true, f.hd_bucket)),
          kernel_variant_name(paged_attention_variant(dec.split, dec.hd_bucket)),
          kernel_variant_name(paged_attention_variant(pre.split, pre.hd_bucket)),
          kernel_variant_name(kVarLogprobFwd),
          kernel_variant_name(kVarLogprobBwd),
          kernel_variant_name(log_softmax_chunks(151936) > 1 ? kVarLsgChunked : kVarLsgSingle),
          kernel_variant_name(kVarSampleF32)};
}

}  // namespace hayate::gpu
