// The named benchmark shapes (must match ts/init-model.ts) and the FLOP counts the benchmarks report.
#pragma once
#include <string>

#include "errors.h"
#include "model_config.h"

namespace hayate::bench {

inline ModelConfig shape_config(const std::string& shape) {
  ModelConfig c;
  c.arch = Arch::Qwen3;
  c.architecture = "Qwen3ForCausalLM";
  c.qk_norm = true;
  c.tie_word_embeddings = true;
  c.rms_norm_eps = 1e-6;
  if (shape == "tiny") {
    c.vocab_size = 512; c.hidden_size = 64; c.intermediate_size = 128; c.num_layers = 2;
    c.num_heads = 4; c.num_kv_heads = 2; c.head_dim = 16; c.max_position_embeddings = 512;
    c.rope_theta = 10000;
  } else if (shape == "qwen3-0.6b") {
    c.vocab_size = 151936; c.hidden_size = 1024; c.intermediate_size = 3072; c.num_layers = 28;
    c.num_heads = 16; c.num_kv_heads = 8; c.head_dim = 128; c.max_position_embeddings = 4096;  // table only
    c.rope_theta = 1000000;
  } else {
    fail(ErrorCode::kInvalidArgument, "unknown shape '" + shape + "' (tiny, qwen3-0.6b)");
  }
  return c;
}

// Multiply-accumulate weights of one layer's projections (q, k, v, o, gate, up, down).
inline double layer_matmul_params(const ModelConfig& c) {
  double D = c.hidden_size, F = c.intermediate_size, hd = c.head_dim;
  double qd = c.num_heads * hd, kvd = c.num_kv_heads * hd;
  return D * qd + 2 * D * kvd + qd * D + 3 * D * F;
}

// FLOPs of one token through the model at context length ctx (matmuls + attention), for the FLOP/s
// figures: 2 * params_in_matmuls + attention 4 * layers * heads * head_dim * ctx.
inline double flops_per_token(const ModelConfig& c, double ctx, bool with_lm_head) {
  double per_layer = 2 * layer_matmul_params(c) + 4.0 * c.num_heads * c.head_dim * ctx;
  return c.num_layers * per_layer + (with_lm_head ? 2.0 * c.hidden_size * c.vocab_size : 0);
}

}  // namespace hayate::bench
