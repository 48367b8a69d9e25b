// Model: a LLaMA-family decoder (Llama, Qwen2, Qwen3) written once against the Backend interface.
// forward() runs any mix of prefill and decode tokens of many sequences in one batch (the unit of
// continuous batching): each token carries its sequence, position and KV-cache slot.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "backend.h"
#include "kv_cache.h"
#include "lora.h"
#include "model_config.h"

namespace hayate {

class TensorStore;

// A projection y = x W^T + b (torch.nn.Linear layout: W [out, in]).
struct Linear {
  Buffer weight;
  Buffer bias;  // empty when the layer has none
};

struct LayerWeights {
  Buffer input_norm, post_norm;  // [D]
  Buffer q_norm, k_norm;         // [head_dim], Qwen3 only
  Linear q, k, v, o;
  Linear gate, up, down;
};

// One forward batch. Token i of the batch is at position positions[i] of the sequence whose block table is
// row seq_index[i] of block_tables ([num_seqs, max_blocks]); its K/V go to cache row slots[i].
struct ForwardBatch {
  std::vector<int32_t> tokens;
  std::vector<int32_t> positions;
  std::vector<int32_t> seq_index;
  std::vector<int32_t> slots;
  std::vector<int32_t> block_tables;
  int num_seqs = 0;
  int max_blocks = 0;
  std::vector<int32_t> output_rows;  // batch rows whose final hidden state / logits are wanted
};

class Model {
 public:
  // Loads a Hugging Face model directory onto the backend (weights converted to its weight dtype).
  static std::unique_ptr<Model> load(Backend& be, const std::string& dir);
  // Random weights for a config (benchmarks and native tests; no files needed).
  static std::unique_ptr<Model> random(Backend& be, const ModelConfig& cfg, uint64_t seed, float stddev = 0.02f);

  const ModelConfig& config() const { return cfg_; }
  Backend& backend() const { return be_; }
  size_t parameter_count() const;

  // Runs the batch, writing K/V into `cache`; returns the final-normed hidden states of output_rows
  // [output_rows.size(), hidden].
  Buffer forward_hidden(const ForwardBatch& batch, KvCache& cache);
  // Logits [rows, vocab] = hidden · lm_head^T.
  void logits(Tensor out, Tensor hidden);
  Tensor lm_head() const { return lm_head_ ? lm_head_->t() : embed_.t(); }

  // Log-prob of token t+1 given tokens 0..t for every position of each sequence (length L-1 each),
  // under log_softmax(logits / temperature). Never holds more than a chunk of full-vocabulary logits.
  std::vector<std::vector<float>> sequence_logprobs(const std::vector<std::vector<int32_t>>& seqs,
                                                    float temperature = 1.0f);
  // Full logits [L, vocab] (row-major, f32) of one sequence: for tests and debugging.
  std::vector<float> sequence_logits(const std::vector<int32_t>& tokens);

  // Throws kContextOverflow/kInvalidArgument for token ids outside the vocabulary or too long input.
  void check_tokens(const std::vector<int32_t>& tokens, const char* what) const;

  // ---- LoRA -------------------------------------------------------------------------------------
  // Attaches fresh adapters, replacing any (kept when the config is invalid); forward passes use them while
  // lora_enabled().
  LoraSet& attach_lora(const LoraConfig& config);
  void detach_lora() { lora_.reset(); }
  LoraSet* lora() { return lora_.get(); }
  const LoraSet* lora() const { return lora_.get(); }
  // Switches the adapters off (the reference policy) or on without touching them; default on.
  void set_lora_enabled(bool on) { lora_enabled_ = on; }
  bool lora_enabled() const { return lora_enabled_; }

  // ---- building blocks shared with the training graph (train_graph.cpp) ----------------------
  const LayerWeights& layer(int l) const { return layers_[l]; }
  const Linear& projection(int l, LoraTarget t) const;
  Tensor embed() const { return embed_.t(); }
  Tensor final_norm() const { return final_norm_.t(); }
  Tensor rope_table() const { return rope_cos_sin_.t(); }
  int context_length() const { return rope_rows_; }
  // out = projection (l, t) of x, plus its LoRA adapter when one is attached and use_lora; xa [rows, r]
  // receives x A^T for the backward (may be absent).
  void project(Tensor out, Tensor x, int l, LoraTarget t, bool use_lora, Tensor xa = Tensor{});

 private:
  Model(Backend& be, const ModelConfig& cfg);
  void init_rope_table();
  void forward_layer(int l, const ForwardBatch& b, KvCache& cache, Tensor x, Tensor pos, Tensor slots,
                     const AttentionMeta& meta);

  Backend& be_;
  ModelConfig cfg_;
  Buffer embed_;                     // [V, D]
  std::unique_ptr<Buffer> lm_head_;  // [V, D]; null when tied to embed_
  Buffer final_norm_;                // [D]
  std::vector<LayerWeights> layers_;
  Buffer rope_cos_sin_;              // [rope_rows, head_dim]
  int rope_rows_ = 0;
  std::unique_ptr<LoraSet> lora_;
  bool lora_enabled_ = true;
};

}  // namespace hayate
