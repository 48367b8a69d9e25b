// Kernel benchmark on the CUDA backend (bench/native/kernel_bench.cpp formats the JSON): for each op, the
// backend's kernel and a baseline on the same device — a straightforward unfused kernel written for the
// comparison (cuda/cuda_bench.cu), cuBLAS for GEMM when compiled in, a sort-based (CUB radix sort + scan)
// top-p sampler for sampling — median over repeats after warm-up, timed with CUDA events on the
// backend's stream. Plain C++ header: no CUDA types; the op list, the result record and the LoRA/AdamW
// case shapes below are shared with the CPU side.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "errors.h"

namespace hayate::gpu {

// Every op of the kernel benchmark, in the order the cases run.
inline const std::vector<std::string>& kernel_bench_ops() {
  static const std::vector<std::string> ops = {
      "linear", "lora_linear", "lora_linear_backward", "embedding", "rmsnorm", "add", "swiglu", "rope", "kv_store",
      "paged_attention", "attention_forward", "attention_backward", "log_softmax_gather", "sample", "adamw"};
  return ops;
}
// Throws kInvalidArgument (listing the valid names) for an op that is not in kernel_bench_ops().
inline void check_kernel_bench_ops(const std::vector<std::string>& ops) {
  const std::vector<std::string>& all = kernel_bench_ops();
  for (const std::string& o : ops) {
    if (std::find(all.begin(), all.end(), o) != all.end()) continue;
    std::string known;
    for (const std::string& a : all) known += (known.empty() ? "" : ", ") + a;
    fail(ErrorCode::kInvalidArgument, "unknown kernel benchmark op '" + o + "' (" + known + ")");
  }
}

struct KernelBenchResult {
  std::string op;      // "linear", "paged_attention", ...
  std::string label;   // the case, e.g. "q_proj M=64"
  std::string shape;   // e.g. "[64,1024]x[2048,1024]^T"
  std::string metric;  // "TFLOP/s" or "GB/s"
  double work = 0;     // FLOPs or bytes moved per call (the metric's numerator)
  double ms = 0;       // the backend's kernel, median per call
  std::string baseline;
  double baseline_ms = 0;
  double baseline_work = 0;     // the baseline's FLOPs or bytes when they differ from work (0: the same)
  bool baseline_is_base_gemm = false;  // LoRA cases: the JSON adds "vs_base_gemm" = ms / baseline_ms
  std::string baseline2;  // optional second baseline (cuBLAS for GEMM, per-tensor adamw_step calls)
  double baseline2_ms = 0;
};

struct KernelBenchDevice {
  std::string name;
  double peak_gbs = 0;  // HBM bandwidth from the memory clock and bus width (0 when unknown)
  int sms = 0;
  int cc = 0;
};

// lora_linear / lora_linear_backward cases: rank-32 adapters (the qwen3-0.6b recipe) on qwen3-0.6b
// projections out[M,N] = x[M,K] w[N,K]^T, timed against the bare base GEMM of the same shape.
constexpr int64_t kLoraBenchRank = 32;
constexpr float kLoraBenchScale = 2.0f;  // alpha / r with alpha 64
// Layout of a paged-attention benchmark case: `seqs` sequences of `ctx` positions in blocks of
// `block_size`, blocks interleaved across sequences (as a cache filled by a batch is), and the queries:
// every position (prefill) or the last one of each sequence (decode). The CPU and CUDA benches share it so
// their figures describe the same work.
struct PagedAttentionBenchLayout {
  int max_blocks = 0;
  int64_t cache_rows = 0;
  std::vector<int32_t> tables, seq, pos;  // block table [seqs, max_blocks]; per-query sequence and position
  double flops = 0;                       // causal attention FLOPs over all queries
  double kv_positions = 0;                // cache positions each sequence reads (once per sequence)
};

inline PagedAttentionBenchLayout paged_attention_bench_layout(int seqs, int ctx, bool prefill, int block_size, int hq, int hd) {
  PagedAttentionBenchLayout L;
  L.max_blocks = ctx / block_size;
  L.cache_rows = int64_t(seqs) * L.max_blocks * block_size;
  L.tables.resize(size_t(seqs) * L.max_blocks);
  for (int s = 0; s < seqs; ++s)
    for (int b = 0; b < L.max_blocks; ++b) L.tables[size_t(s) * L.max_blocks + b] = b * seqs + s;
  for (int s = 0; s < seqs; ++s) {
    for (int p = prefill ? 0 : ctx - 1; p < ctx; ++p) {
      L.seq.push_back(s);
      L.pos.push_back(p);
      L.flops += 4.0 * (p + 1) * hq * hd;
    }
    L.kv_positions += ctx;
  }
  return L;
}

struct LoraBenchCase {
  const char* proj;
  int64_t M, N, K;
};
inline std::vector<LoraBenchCase> lora_bench_cases() {
  std::vector<LoraBenchCase> cases;
  for (int64_t M : {512, 4096}) {
    cases.push_back({"q_proj", M, 2048, 1024});
    cases.push_back({"down_proj", M, 1024, 3072});
  }
  return cases;
}
// The record of a LoRA case (TFLOP/s; the backend fills the times). forward: x W^T + (x A^T) B^T against
// linear(); backward: dx = dout W + (dout B) A, dA = t^T x, dB = dout^T xa against the adapter-less
// lora_linear_backward (dx = dout W alone). The base GEMM is 2 M N K FLOPs either way.
inline KernelBenchResult lora_bench_result(const LoraBenchCase& c, bool backward) {
  const double M = c.M, N = c.N, K = c.K, r = kLoraBenchRank;
  auto dims = [](int64_t a, int64_t b) { return "[" + std::to_string(a) + "," + std::to_string(b) + "]"; };
  KernelBenchResult res;
  res.op = backward ? "lora_linear_backward" : "lora_linear";
  res.label = std::string(c.proj) + " M=" + std::to_string(c.M) + " r=" + std::to_string(kLoraBenchRank);
  res.shape = dims(c.M, c.K) + "x" + dims(c.N, c.K) + "^T, A " + dims(kLoraBenchRank, c.K) + ", B " + dims(c.N, kLoraBenchRank);
  res.metric = "TFLOP/s";
  res.work = 2 * M * N * K + (backward ? 4 : 2) * M * r * (K + N);
  res.baseline_work = 2 * M * N * K;
  res.baseline = backward ? "bare base GEMM for dx = dout W (lora_linear_backward without an adapter)"
                          : "bare base GEMM (linear() on the same shape, no adapter)";
  res.baseline_is_base_gemm = true;
  return res;
}

// adamw case: element counts of the LoRA tensors of the qwen3-0.6b recipe (rank 32 on q, k, v, o, gate,
// up, down of its 28 layers; A [r, in] then B [out, r] per projection: ~20.2M parameters in 392 tensors),
// in Trainer::step's order.
inline std::vector<int64_t> recipe_lora_tensor_sizes() {
  const int64_t D = 1024, F = 3072, qd = 16 * 128, kvd = 8 * 128, r = kLoraBenchRank;
  const int64_t in_out[7][2] = {{D, qd}, {D, kvd}, {D, kvd}, {qd, D}, {D, F}, {D, F}, {F, D}};  // q k v o gate up down
  std::vector<int64_t> sizes;
  for (int layer = 0; layer < 28; ++layer)
    for (const auto& io : in_out) {
      sizes.push_back(r * io[0]);
      sizes.push_back(io[1] * r);
    }
  return sizes;
}
// fn(offset, n) for each tensor of an arena holding tensors of these sizes back to back.
template <class Fn>
void for_each_arena_slice(const std::vector<int64_t>& sizes, Fn fn) {
  int64_t off = 0;
  for (int64_t n : sizes) {
    fn(off, n);
    off += n;
  }
}
// The record of the adamw case (GB/s: param, grad, m, v read and param, m, v written, fp32). CUDA: the
// backend's adamw_step_multi, one launch over every tensor, each its own allocation (as the trainer's);
// CPU: adamw_step once over an arena holding every tensor. baseline2 is adamw_step once per tensor.
inline KernelBenchResult adamw_bench_result(const std::vector<int64_t>& sizes, const std::string& baseline,
                                            const std::string& layout = "fp32 in one arena") {
  int64_t total = 0;
  for (int64_t n : sizes) total += n;
  KernelBenchResult res;
  res.op = "adamw";
  res.label = "qwen3-0.6b LoRA r=" + std::to_string(kLoraBenchRank) + ", " + std::to_string(sizes.size()) + " tensors";
  res.shape = "[" + std::to_string(total) + "] " + layout;
  res.metric = "GB/s";
  res.work = 7.0 * 4 * total;
  res.baseline = baseline;
  res.baseline2 = "the backend's adamw_step once per tensor (" + std::to_string(sizes.size()) + " calls, as Trainer::step)";
  return res;
}

// ops: empty = all of kernel_bench_ops(). shapes: the attention cases' shapes
// ("SxL" or "SxL:hq/hkv/hd", plan.h parse_attention_bench_shape; empty = default_attention_bench_shapes()).
// Throws kBackend without a usable device, kInvalidArgument for an unknown op or a bad shape.
std::vector<KernelBenchResult> cuda_kernel_bench(const std::vector<std::string>& ops, int repeats,
                                                 KernelBenchDevice* device, const std::vector<std::string>& shapes = {});

}  // namespace hayate::gpu
