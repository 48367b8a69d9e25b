// The options of `hayate_bench train` (train_bench.h), their defaults and their checks. Header-only, so
// that the native tests check them without the benchmark's code.
#pragma once
#include <string>
#include <vector>

#include "errors.h"
#include "shapes.h"

namespace hayate::bench {

struct TrainBenchOptions {
  std::string shape = "tiny";      // tiny | qwen3-0.6b (shapes.h)
  std::string backend = "cpu";     // cpu | cuda
  int threads = 0;                 // CPU threads (0: one per hardware thread)
  std::vector<int> seq_lens;       // forward+backward runs (empty: none)
  int sequences = 0;               // sequences per forward+backward batch (0: 8 for tiny, else 1)
  int repeats = 0;                 // timed forward+backward calls per run (0: 5 for tiny, else 3)
  std::string recompute = "both";  // off | on | both
  // the GRPO step
  bool grpo_step = false;
  int prompts = 8;
  int generations = 8;             // completions per prompt (G)
  int prompt_len = 128;
  int max_new_tokens = 512;
  int micro_batches = 1;           // forward+backward calls the step's sequences are split into
  std::string weights = "f32";     // CPU: frozen weight matrices in f32 or bf16
};

// The defaults for a shape and backend: sequence lengths 64,256 (tiny), 512,2048 (CUDA) or 128,512 (CPU);
// the GRPO step on CUDA only (a whole step of qwen3-0.6b on a CPU takes hours: there it is opt-in).
inline TrainBenchOptions default_train_bench_options(const std::string& shape, const std::string& backend) {
  TrainBenchOptions o;
  o.shape = shape;
  o.backend = backend;
  if (shape == "tiny") o.seq_lens = {64, 256};
  else if (backend == "cuda") o.seq_lens = {512, 2048};
  else o.seq_lens = {128, 512};
  o.grpo_step = backend == "cuda";
  return o;
}

// Throws kInvalidArgument naming the first bad option.
inline void check_train_bench_options(const TrainBenchOptions& o) {
  const ModelConfig cfg = shape_config(o.shape);  // kInvalidArgument for an unknown shape
  auto need = [](bool ok, const std::string& what) {
    if (!ok) fail(ErrorCode::kInvalidArgument, what);
  };
  need(o.backend == "cpu" || o.backend == "cuda", "--backend must be cpu or cuda, got '" + o.backend + "'");
  need(o.weights == "f32" || o.weights == "bf16", "--weights must be f32 or bf16, got '" + o.weights + "'");
  need(o.recompute == "off" || o.recompute == "on" || o.recompute == "both",
       "--recompute must be off, on or both, got '" + o.recompute + "'");
  const int max_len = static_cast<int>(cfg.max_position_embeddings);
  for (int L : o.seq_lens)
    need(L >= 2 && L <= max_len, "--seq-lens: every length must be in [2, " + std::to_string(max_len) + "] for " +
                                     o.shape + ", got " + std::to_string(L));
  need(o.sequences >= 0 && o.repeats >= 0 && o.threads >= 0, "--sequences, --repeats and --threads must be >= 0");
  need(!o.seq_lens.empty() || o.grpo_step, "nothing to run: give --seq-lens or --grpo-step on");
  if (o.grpo_step) {
    need(o.prompts >= 1 && o.generations >= 1, "--prompts and --generations must be >= 1");
    need(o.prompt_len >= 1 && o.max_new_tokens >= 1, "--prompt-len and --max-new-tokens must be >= 1");
    need(o.micro_batches >= 1, "--micro-batches must be >= 1");
    need(o.prompt_len + o.max_new_tokens <= max_len, "--prompt-len + --max-new-tokens must be <= " + std::to_string(max_len) +
                                                         " for " + o.shape);
  }
}

}  // namespace hayate::bench
