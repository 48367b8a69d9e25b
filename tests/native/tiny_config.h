// The tiny model shape of the native tests (2 layers, hidden 16, 4 query / 2 KV heads): small enough for
// finite differences, with every feature of its family on (Qwen3: qk-norm and head_dim != hidden / heads;
// Llama: attention bias; Qwen2/Qwen3: tied embeddings).
#pragma once
#include "model_config.h"

namespace hayate_test {

inline hayate::ModelConfig tiny_config(hayate::Arch arch, int vocab_size = 40, int max_positions = 64) {
  using hayate::Arch;
  hayate::ModelConfig c;
  c.arch = arch;
  c.architecture = arch == Arch::Qwen3 ? "Qwen3ForCausalLM" : arch == Arch::Qwen2 ? "Qwen2ForCausalLM" : "LlamaForCausalLM";
  c.vocab_size = vocab_size;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = 2;
  c.head_dim = arch == Arch::Qwen3 ? 6 : 4;
  c.max_position_embeddings = max_positions;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 10000;
  c.qk_norm = arch == Arch::Qwen3;
  c.tie_word_embeddings = arch != Arch::Llama;
  c.attention_bias = arch == Arch::Llama;
  return c;
}

}  // namespace hayate_test
