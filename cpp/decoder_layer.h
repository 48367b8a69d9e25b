// The parts of a decoder layer that generation (Model::forward_layer: paged KV cache) and training
// (TrainGraph::layer_forward: packed variable-length batch, activations kept for the backward) run the same
// way: the layer's sizes from the config, its projections with or without LoRA, the attention inputs
// (input norm, q/k/v projections, Qwen3's per-head q/k norm, RoPE) and the SwiGLU MLP with its residual.
// Both callers issue the same backend ops in the same order; they differ in who owns each intermediate.
//
// Not shared, on purpose: the attention step itself and the buffer lifetimes around it. Generation writes
// K/V into the paged cache and runs paged_attention over block tables, for a batch that mixes prefill
// chunks and decode tokens; training runs varlen attention over the packed batch and keeps its log-sum-exp
// for the backward. Generation reuses buffers in place (the o-projection and the MLP output go into h,
// SwiGLU overwrites gate) to keep decode memory low; training keeps every intermediate for the backward.
// One layer function for both would need an attention strategy and an activation-saving policy as
// parameters of the per-layer hot path, for two call sites (docs/architecture.md).
#pragma once
#include <cstdint>

#include "backend.h"
#include "model.h"

namespace hayate {

// Sizes of one decoder layer, from the config.
struct LayerShape {
  int64_t hidden = 0, intermediate = 0, head_dim = 0;
  int64_t q_width = 0, kv_width = 0;  // num_heads * head_dim, num_kv_heads * head_dim
  float eps = 0;                      // RMSNorm epsilon
  static LayerShape of(const ModelConfig& c);
};

// Layer `layer`'s projections through Model::project: LoRA on when use_lora (and the projection has an
// adapter); xa (null, or one per LoraTarget, empty where not adapted) receives x A^T for the backward.
struct LayerProjections {
  Model& model;
  int layer = 0;
  bool use_lora = false;
  const Buffer* xa = nullptr;
  void operator()(Tensor out, Tensor in, LoraTarget t) const;
};

// The attention half's inputs: h = rmsnorm(x, input_norm); q_pre, k_pre, v = projections of h; then q, k =
// Qwen3's per-head RMSNorm of q_pre, k_pre (when the config has qk_norm; q/k may alias q_pre/k_pre, and must
// when it has not), rotated in place by RoPE at `positions`.
struct AttentionInputs {
  Tensor h, q_pre, k_pre, q, k, v;
};
void attention_inputs(Backend& be, const ModelConfig& cfg, const LayerWeights& w, const LayerProjections& project,
                      Tensor x, const AttentionInputs& t, Tensor positions, Tensor rope_table);

// The MLP half with its residual: h = rmsnorm(x, post_norm); act = swiglu(gate(h), up(h)); out = down(act);
// x += out. act may alias gate, out may alias h.
struct MlpBuffers {
  Tensor h, gate, up, act, out;
};
void mlp_residual(Backend& be, const ModelConfig& cfg, const LayerWeights& w, const LayerProjections& project,
                  Tensor x, const MlpBuffers& t);

}  // namespace hayate
