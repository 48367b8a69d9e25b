// Model: a LLaMA-family decoder (Llama, Qwen2, Qwen3) written once against the Backend interface.
// forward() runs any mix of prefill and decode tokens of many sequences in one batch (the unit of
// continuous batching): each token carries its sequence, position and KV-cache slot. The frozen weights are
// a BaseWeights that several Models can share (share(): a second worker on its own backend, same memory).
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

// The frozen base of a model: every tensor that is read-only once loaded (embedding, lm head, norms,
// projections, RoPE table). Several Models can hold one BaseWeights (Model::share), each on its own backend
// instance with its own adapters and KV caches. The buffers belong to `owner`, the backend that allocated
// them: it must outlive the BaseWeights (and so every Model that shares it).
struct BaseWeights {
  Backend* owner = nullptr;
  Buffer embed;                     // [V, D]
  std::unique_ptr<Buffer> lm_head;  // [V, D]; null when tied to embed
  Buffer final_norm;                // [D]
  std::vector<LayerWeights> layers;
  Buffer rope_cos_sin;              // [rope_rows, head_dim]
  int rope_rows = 0;
  size_t bytes() const;             // memory held, RoPE table included
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
  // A second model over `base`'s frozen weights, shared rather than copied, running on backend `be`: the
  // same config and outputs, no adapters (it attaches its own), its own KV cache per call. The two models
  // may run at the same time on different threads (nothing writes the weights). `be` must read `base`'s
  // memory with the same dtypes: a CPU backend for a CPU model, a CUDA backend on the same device for a
  // CUDA one (each CUDA backend has its own stream); kInvalidArgument otherwise. Waits for `base`'s backend
  // (uploads queued on its stream), so call it while `base` is idle. The weights' backend,
  // base.weights_backend(), must outlive the returned model.
  static std::unique_ptr<Model> share(const Model& base, Backend& be);

  const ModelConfig& config() const { return cfg_; }
  Backend& backend() const { return be_; }
  size_t parameter_count() const;
  // Bytes of the frozen weights (RoPE table included), counted once however many models share them.
  size_t weight_bytes() const { return w_->bytes(); }
  // The backend that owns the weights' memory: backend() unless this model shares another's (share()).
  Backend& weights_backend() const { return *w_->owner; }
  bool shares_weights_with(const Model& other) const { return w_ == other.w_; }

  // Runs the batch, writing K/V into `cache`; returns the final-normed hidden states of output_rows
  // [output_rows.size(), hidden].
  Buffer forward_hidden(const ForwardBatch& batch, KvCache& cache);
  // Logits [rows, vocab] = hidden · lm_head^T.
  void logits(Tensor out, Tensor hidden);
  Tensor lm_head() const { return w_->lm_head ? w_->lm_head->t() : w_->embed.t(); }

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
  const LayerWeights& layer(int l) const { return w_->layers[l]; }
  const Linear& projection(int l, LoraTarget t) const;
  Tensor embed() const { return w_->embed.t(); }
  Tensor final_norm() const { return w_->final_norm.t(); }
  Tensor rope_table() const { return w_->rope_cos_sin.t(); }
  int context_length() const { return w_->rope_rows; }
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
  std::shared_ptr<BaseWeights> w_;  // frozen, possibly shared with other models (share())
  std::unique_ptr<LoraSet> lora_;
  bool lora_enabled_ = true;
};

}  // namespace hayate
