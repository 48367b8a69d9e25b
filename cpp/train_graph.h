// TrainGraph: the training forward and backward of a Model over a packed batch of variable-length
// sequences (prompt + completion each, back to back, no padding). The forward returns the log-prob of every
// completion token under the policy (LoRA on) or the reference (LoRA off), computing the lm head chunk by
// chunk so the [tokens x vocab] logits never exist at once; the backward takes d loss / d log-prob per
// completion token and accumulates gradients into the LoRA adapters only (base weights are frozen inputs).
// With recompute, the forward keeps only each layer's input and the backward re-runs the layer first.
#pragma once
#include <atomic>
#include <cstdint>
#include <vector>

#include "backend.h"
#include "model.h"

namespace hayate {

struct PackedBatch {
  std::vector<int32_t> tokens;       // all sequences back to back
  std::vector<int32_t> seq_lens;     // tokens of each sequence
  std::vector<int32_t> prompt_lens;  // leading prompt tokens of each (>= 1); the rest is its completion

  int num_seqs() const { return static_cast<int>(seq_lens.size()); }
  int completion_len(int s) const { return seq_lens[s] - prompt_lens[s]; }
  int64_t completion_tokens() const;
};

struct TrainGraphOptions {
  bool recompute = false;    // keep only layer inputs; recompute each layer inside backward
  int logits_chunk = 128;    // completion rows whose full-vocabulary logits are held at once
  float temperature = 1.0f;  // log-probs under softmax(logits / temperature)
};

class TrainGraph {
 public:
  // Validates the batch (lengths, token ids, context length: kInvalidArgument / kContextOverflow) and
  // uploads its index tensors.
  TrainGraph(Model& model, const PackedBatch& batch, const TrainGraphOptions& options);
  ~TrainGraph();
  TrainGraph(const TrainGraph&) = delete;
  TrainGraph& operator=(const TrainGraph&) = delete;

  // Log-prob of every completion token in batch order (sequence by sequence); entropy (optional) of the
  // same predictive distributions. use_lora: the policy (true) or the reference (false). save: keep
  // what backward() needs. `cancel` is polled between layers (throws kCancelled).
  std::vector<double> forward(bool use_lora, bool save, std::vector<double>* entropy = nullptr,
                              const std::atomic<bool>* cancel = nullptr);
  // Accumulates d(sum_t dlogprobs[t] * logprob[t]) / d(LoRA params) into the adapters' gradients.
  // Needs forward(true, true) first; runs once per forward.
  void backward(const std::vector<double>& dlogprobs, const std::atomic<bool>* cancel = nullptr);

  int64_t tokens() const { return n_; }
  int64_t completion_tokens() const { return m_; }

 private:
  struct LayerActs;
  void layer_forward(int l, Tensor x, LayerActs& a, bool use_lora);
  void layer_backward(int l, Tensor dres, LayerActs& a, bool need_dx);

  Model& model_;
  Backend& be_;
  TrainGraphOptions opt_;
  int64_t n_ = 0, m_ = 0;
  Buffer ids_, pos_, cu_, rows_, targets_;
  VarlenMeta meta_;
  std::vector<Buffer> x_in_;            // each layer's input (saved forward)
  std::vector<std::unique_ptr<LayerActs>> acts_;  // each layer's activations (saved forward, no recompute)
  Buffer xg_, hf_, lse_;                // completion rows before / after the final norm, and their lse
  bool saved_ = false;
};

}  // namespace hayate
