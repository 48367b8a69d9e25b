// Training benchmark (`hayate_bench train`), on the CPU or the CUDA backend:
//   1. LoRA forward + backward (GRPO loss) tokens/s and peak memory of a named model shape at several
//      sequence lengths, with and without activation recomputation;
//   2. optionally one whole GRPO step: generation (prompts x generations completions of max_new_tokens,
//      no stop tokens, so every completion runs to the limit), the log-prob pass over the rollouts (the old
//      log-probs of the ratio), forward + backward over the step's micro-batches, and the optimizer step,
//      each phase timed (prefill and decode separately) with its peak memory.
// Memory: "backend_peak_mb" is the backend's own accounting of its tensors (Backend::peak_bytes); on CUDA
// "device_used_mb" is cudaMemGetInfo's total - free after the phase (the caching allocator keeps what it
// took, so this is the most the process has reserved, plus the CUDA context and workspaces).
// Returns one JSON document; throws hayate::Error (kInvalidArgument for bad options, kBackend when the
// backend is unavailable).
#pragma once
#include <string>

#include "train_bench_options.h"

namespace hayate::bench {

std::string run_train_bench_json(const TrainBenchOptions& o);

}  // namespace hayate::bench
