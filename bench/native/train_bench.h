// Training benchmark: LoRA forward + backward (GRPO loss) tokens/s and peak memory of a named model shape
// at several sequence lengths, with and without activation recomputation. Returns one JSON document.
#pragma once
#include <string>
#include <vector>

std::string run_train_bench_json(const std::string& shape, const std::vector<int>& seq_lens, int threads);
