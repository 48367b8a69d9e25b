#include "decoder_layer.h"

namespace hayate {

LayerShape LayerShape::of(const ModelConfig& c) {
  LayerShape s;
  s.hidden = c.hidden_size;
  s.intermediate = c.intermediate_size;
  s.head_dim = c.head_dim;
  s.q_width = int64_t(c.num_heads) * c.head_dim;
  s.kv_width = int64_t(c.num_kv_heads) * c.head_dim;
  s.eps = static_cast<float>(c.rms_norm_eps);
  return s;
}

void LayerProjections::operator()(Tensor out, Tensor in, LoraTarget t) const {
  model.project(out, in, layer, t, use_lora, xa ? xa[static_cast<int>(t)].t() : Tensor{});
}

void attention_inputs(Backend& be, const ModelConfig& cfg, const LayerWeights& w, const LayerProjections& project,
                      Tensor x, const AttentionInputs& t, Tensor positions, Tensor rope_table) {
  const float eps = static_cast<float>(cfg.rms_norm_eps);
  const int64_t n = x.rows(), hd = cfg.head_dim;
  be.rmsnorm(t.h, x, w.input_norm, eps);
  project(t.q_pre, t.h, LoraTarget::Q);
  project(t.k_pre, t.h, LoraTarget::K);
  project(t.v, t.h, LoraTarget::V);
  if (cfg.qk_norm) {  // Qwen3: RMSNorm over each head's vector before RoPE
    be.rmsnorm(t.q.view({n * cfg.num_heads, hd}), t.q_pre.view({n * cfg.num_heads, hd}), w.q_norm, eps);
    be.rmsnorm(t.k.view({n * cfg.num_kv_heads, hd}), t.k_pre.view({n * cfg.num_kv_heads, hd}), w.k_norm, eps);
  }
  be.rope(t.q, positions, rope_table, static_cast<int>(hd));
  be.rope(t.k, positions, rope_table, static_cast<int>(hd));
}

void mlp_residual(Backend& be, const ModelConfig& cfg, const LayerWeights& w, const LayerProjections& project,
                  Tensor x, const MlpBuffers& t) {
  be.rmsnorm(t.h, x, w.post_norm, static_cast<float>(cfg.rms_norm_eps));
  project(t.gate, t.h, LoraTarget::Gate);
  project(t.up, t.h, LoraTarget::Up);
  be.swiglu(t.act, t.gate, t.up);
  project(t.out, t.act, LoraTarget::Down);
  be.add(x, x, t.out);
}

}  // namespace hayate
