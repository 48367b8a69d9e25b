// What the CPU and CUDA kernel benchmarks share (CPU: kernel_bench.cpp, CUDA: bench/cuda/): the op list,
// the result record kernel_bench.cpp turns into JSON, and the cases whose figures must describe the same
// work on both backends (LoRA projections, the AdamW recipe, paged attention). Plain C++, no CUDA.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "backend.h"
#include "errors.h"

namespace hayate::bench {

// Every op of the kernel benchmark, in the order the cases run.
inline const std::vector<std::string>& kernel_bench_ops() {
  static const std::vector<std::string> ops = {
      "linear", "lora_linear", "lora_linear_backward", "embedding", "rmsnorm", "add", "swiglu", "rope", "kv_store",
      "paged_attention", "attention_forward", "attention_backward", "log_softmax_gather", "logprob", "sample", "adamw"};
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
// Whether `op` runs for the `--ops` selection (empty = every op).
inline bool kernel_bench_wanted(const std::vector<std::string>& ops, const std::string& op) {
  return ops.empty() || std::find(ops.begin(), ops.end(), op) != ops.end();
}

// The op families, in kernel_bench_ops() order: ops that share their inputs (e.g. add and swiglu) are timed
// by one function. The one case table of both backends: each passes its functions in this order.
inline const std::vector<std::vector<std::string>>& kernel_bench_families() {
  static const std::vector<std::vector<std::string>> families = {
      {"linear"}, {"lora_linear", "lora_linear_backward"}, {"embedding"}, {"rmsnorm"}, {"add", "swiglu"}, {"rope"},
      {"kv_store"}, {"paged_attention"}, {"attention_forward", "attention_backward"}, {"log_softmax_gather"},
      {"logprob"}, {"sample"}, {"adamw"}};
  return families;
}

struct KernelBenchResult;
// Runs, in table order, every family with at least one selected op: runs[i] times kernel_bench_families()[i]
// and appends its records to bench.res. A family that throws gets one record carrying the error (and the
// families after it still run: on a GPU a sticky fault then shows up as errors there too).
template <class Bench>
void run_kernel_bench_families(const std::vector<void (*)(Bench&)>& runs, const std::vector<std::string>& ops, Bench& bench);

// The output check of a case, run once before timing: the backend's op against its baseline (or the
// unfused path) on the same inputs. max_rel_err = max_abs_err / (largest |reference| value), so the
// tolerance is on the scale of the output (elementwise relative errors blow up near zero); a NaN/Inf the
// reference does not have is an infinite error. pass = max_rel_err <= tolerance.
struct KernelBenchCheck {
  bool done = false;
  std::string against;  // what the outputs were compared with
  double max_abs_err = 0, max_rel_err = 0, ref_max_abs = 0, tolerance = 0;
  int64_t compared = 0;  // values compared
  bool pass = true;
  std::string note;      // e.g. which output failed
};

// Compares n values of `got` with `ref` (one output tensor); merges into `c` (the worst of several outputs).
inline void kernel_bench_compare(KernelBenchCheck& c, const std::string& output, const float* got, const float* ref, size_t n,
                                 double tolerance, const std::string& against) {
  double max_abs = 0, ref_max = 0;
  bool nonfinite = false;
  for (size_t i = 0; i < n; ++i) {
    const double g = got[i], r = ref[i];
    if (!std::isfinite(r) || !std::isfinite(g)) {
      if (!(std::isnan(r) && std::isnan(g)) && !(std::isinf(r) && g == r)) nonfinite = true;
      continue;
    }
    max_abs = std::max(max_abs, std::fabs(g - r));
    ref_max = std::max(ref_max, std::fabs(r));
  }
  const double rel = nonfinite ? INFINITY : max_abs / std::max(ref_max, 1e-30);
  const double abs_err = nonfinite ? INFINITY : max_abs;
  if (!c.done || rel > c.max_rel_err) {
    c.max_rel_err = rel;
    c.max_abs_err = abs_err;
    c.ref_max_abs = ref_max;
    if (n > 0) c.note = "worst output: " + output;
  }
  c.done = true;
  c.against = against;
  c.tolerance = std::max(c.tolerance, tolerance);
  c.compared += static_cast<int64_t>(n);
  if (!(rel <= tolerance)) {
    c.pass = false;
    c.note = output + (nonfinite ? ": NaN/Inf where the reference has none" : ": error above the tolerance");
  }
}

// The sampler's check (its draws are random, so no reference output exists): per row of logits z [B, V]
// under the row's temperature, the id must be inside the row's top-k / top-p set (no more than top_p of the
// mass on strictly likelier tokens, fewer than top_k of them) and its log-prob must match the host's
// log_softmax(z / T)[id]. The error figures are those of the log-probs; ids outside the set fail the check.
inline void kernel_bench_check_samples(KernelBenchCheck& c, const float* z, int64_t B, int64_t V, const SamplingRow* rows,
                                       const int32_t* ids, const float* lps, double tolerance) {
  std::vector<float> ref(static_cast<size_t>(B)), got(static_cast<size_t>(B));
  int outside = 0;
  for (int64_t b = 0; b < B; ++b) {
    const float* zr = z + b * V;
    const double inv_t = rows[b].temperature > 0 ? 1.0 / rows[b].temperature : 1.0;
    double mx = -INFINITY;
    for (int64_t j = 0; j < V; ++j) mx = std::max(mx, zr[j] * inv_t);
    double sum = 0;
    for (int64_t j = 0; j < V; ++j) sum += std::exp(zr[j] * inv_t - mx);
    const int32_t id = ids[b];
    got[b] = lps[b];
    if (id < 0 || id >= V) {
      ++outside;
      ref[b] = got[b];
      continue;
    }
    const double p_id = std::exp(zr[id] * inv_t - mx) / sum;
    double above = 0;
    int64_t rank = 0;
    for (int64_t j = 0; j < V; ++j) {
      const double p = std::exp(zr[j] * inv_t - mx) / sum;
      if (p > p_id) above += p, ++rank;
    }
    if (above > rows[b].top_p + 1e-6 || (rows[b].top_k > 0 && rank >= rows[b].top_k)) ++outside;
    ref[b] = static_cast<float>(zr[id] * inv_t - mx - std::log(sum));
  }
  kernel_bench_compare(c, "logprobs", got.data(), ref.data(), got.size(), tolerance,
                       "host log_softmax of the logits; each id inside its top-k/top-p set");
  if (outside > 0) {
    c.pass = false;
    c.note = std::to_string(outside) + " of " + std::to_string(B) + " ids outside their top-k/top-p set";
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
  KernelBenchCheck check;  // the outputs against the baseline / unfused path, before timing
  std::string error;       // the case threw (its family's later cases did not run); nothing was timed
};

// A record with its identity and work filled in; the caller times it.
inline KernelBenchResult kernel_bench_result(const std::string& op, const std::string& label, const std::string& shape,
                                             const std::string& metric, double work) {
  KernelBenchResult r;
  r.op = op;
  r.label = label;
  r.shape = shape;
  r.metric = metric;
  r.work = work;
  return r;
}

template <class Bench>
void run_kernel_bench_families(const std::vector<void (*)(Bench&)>& runs, const std::vector<std::string>& ops, Bench& bench) {
  const std::vector<std::vector<std::string>>& families = kernel_bench_families();
  HAYATE_CHECK(runs.size() == families.size(), ErrorCode::kInternal, "kernel benchmark: the case table does not match the op families");
  for (size_t i = 0; i < families.size(); ++i) {
    const std::vector<std::string>& f = families[i];
    if (!std::any_of(f.begin(), f.end(), [&](const std::string& op) { return kernel_bench_wanted(ops, op); })) continue;
    try {
      runs[i](bench);
    } catch (const std::exception& e) {
      KernelBenchResult r;
      r.op = f[0];
      r.label = "(every case of " + f[0] + (f.size() > 1 ? " and " + f[1] : std::string()) + " after the failure)";
      r.error = e.what();
      bench.res.push_back(r);
    }
  }
}

// "[a,b,...]", the shape notation of the records.
inline std::string bench_dims(std::initializer_list<int64_t> d) {
  std::string s = "[";
  for (int64_t v : d) s += (s.size() > 1 ? "," : "") + std::to_string(v);
  return s + "]";
}

// ---- lora_linear / lora_linear_backward ------------------------------------------------------------
// Rank-32 adapters (the qwen3-0.6b recipe) on qwen3-0.6b projections out[M,N] = x[M,K] w[N,K]^T, timed
// against the bare base GEMM of the same shape.
constexpr int64_t kLoraBenchRank = 32;
constexpr float kLoraBenchScale = 2.0f;  // alpha / r with alpha 64

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

// ---- paged_attention ---------------------------------------------------------------------------------
// qwen3-0.6b heads over a cache of 16-position blocks. One case list for both backends: each case says
// which of them time it (the CPU's scalar baseline needs small batches to finish in seconds).
constexpr int kPagedBenchQHeads = 16, kPagedBenchKvHeads = 8, kPagedBenchHeadDim = 128, kPagedBenchBlockSize = 16;

struct PagedAttentionBenchCase {
  const char* label;
  int seqs, ctx;  // `seqs` sequences of `ctx` cached positions
  bool prefill;   // queries: every position (prefill) or the last one of each sequence (decode)
  bool cpu, cuda;
};
inline std::vector<PagedAttentionBenchCase> paged_attention_bench_cases(const std::string& backend) {
  static const PagedAttentionBenchCase all[] = {
      {"decode B=64 ctx=512", 64, 512, false, false, true},  {"decode B=64 ctx=2048", 64, 2048, false, false, true},
      {"decode B=8 ctx=4096", 8, 4096, false, false, true},  {"prefill 4 x 512", 4, 512, true, false, true},
      {"decode B=8 ctx=512", 8, 512, false, true, false},    {"prefill 1 x 256", 1, 256, true, true, false}};
  std::vector<PagedAttentionBenchCase> cases;
  for (const PagedAttentionBenchCase& c : all)
    if (backend == "cpu" ? c.cpu : c.cuda) cases.push_back(c);
  return cases;
}

// A case's cache and queries: blocks interleaved across sequences (as a cache filled by a batch is).
struct PagedAttentionBenchLayout {
  int max_blocks = 0;
  int64_t cache_rows = 0;
  std::vector<int32_t> tables, seq, pos;  // block table [seqs, max_blocks]; per-query sequence and position
  double flops = 0;                       // causal attention FLOPs over all queries
  double kv_positions = 0;                // cache positions each sequence reads (once per sequence)
};

inline PagedAttentionBenchLayout paged_attention_bench_layout(const PagedAttentionBenchCase& c) {
  const int seqs = c.seqs, ctx = c.ctx, block_size = kPagedBenchBlockSize, hq = kPagedBenchQHeads, hd = kPagedBenchHeadDim;
  PagedAttentionBenchLayout L;
  L.max_blocks = ctx / block_size;
  L.cache_rows = int64_t(seqs) * L.max_blocks * block_size;
  L.tables.resize(size_t(seqs) * L.max_blocks);
  for (int s = 0; s < seqs; ++s)
    for (int b = 0; b < L.max_blocks; ++b) L.tables[size_t(s) * L.max_blocks + b] = b * seqs + s;
  for (int s = 0; s < seqs; ++s) {
    for (int p = c.prefill ? 0 : ctx - 1; p < ctx; ++p) {
      L.seq.push_back(s);
      L.pos.push_back(p);
      L.flops += 4.0 * (p + 1) * hq * hd;
    }
    L.kv_positions += ctx;
  }
  return L;
}

// The op's metadata over the layout's tables, sequences and positions once they are on the backend.
inline AttentionMeta paged_attention_bench_meta(Tensor block_tables, Tensor token_seq, Tensor token_pos) {
  AttentionMeta m;
  m.block_tables = block_tables;
  m.token_seq = token_seq;
  m.token_pos = token_pos;
  m.block_size = kPagedBenchBlockSize;
  m.num_q_heads = kPagedBenchQHeads;
  m.num_kv_heads = kPagedBenchKvHeads;
  m.head_dim = kPagedBenchHeadDim;
  m.scale = 1.0f / std::sqrt(static_cast<float>(kPagedBenchHeadDim));
  return m;
}

// ---- logprob -----------------------------------------------------------------------------------------
// The chunked lm-head log-prob op of training (logprob_forward / logprob_backward: z = hidden lm_head^T
// never leaves the op) on qwen3-0.6b's lm head, V = 151,936 x D = 1024, over one chunk of the trainer's
// logits_chunk rows (CUDA: 128; CPU: 16, so that its unfused baseline finishes in seconds). Baseline: the
// unfused path, full-vocabulary fp32 logits in memory: linear(), a row pass for lse / log-prob / entropy,
// and in the backward dz = dlogprobs ([j == target] - softmax) in memory, then dhidden = dz lm_head.
constexpr int64_t kLogprobBenchVocab = 151936, kLogprobBenchHidden = 1024;

inline std::vector<int64_t> logprob_bench_rows(const std::string& backend) {
  return backend == "cpu" ? std::vector<int64_t>{16} : std::vector<int64_t>{128};
}
// TFLOP/s: forward 2 m V D (the logits); backward 4 m V D (recomputed logits and dhidden).
inline KernelBenchResult logprob_bench_result(int64_t m, bool backward) {
  const double work = (backward ? 4.0 : 2.0) * m * kLogprobBenchVocab * kLogprobBenchHidden;
  KernelBenchResult r = kernel_bench_result(
      "logprob", std::string(backward ? "backward" : "forward") + " m=" + std::to_string(m),
      "hidden " + bench_dims({m, kLogprobBenchHidden}) + " x lm_head " + bench_dims({kLogprobBenchVocab, kLogprobBenchHidden}) + "^T",
      "TFLOP/s", work);
  r.baseline = backward ? "unfused: linear() logits + dz ([m,V] fp32 in memory) + gemm() dhidden = dz lm_head"
                        : "unfused: linear() logits ([m,V] fp32 in memory) + row pass (lse, log-prob, entropy)";
  return r;
}

// ---- adamw --------------------------------------------------------------------------------------------
// Element counts of the LoRA tensors of the qwen3-0.6b recipe (rank 32 on q, k, v, o, gate, up, down of
// its 28 layers; A [r, in] then B [out, r] per projection: ~20.2M parameters in 392 tensors), in
// Trainer::step's order.
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

}  // namespace hayate::bench
