// Trainer: LoRA training of a Model, one optimizer step at a time. forward_backward() runs a micro-batch
// (reference pass when the KL term needs it, policy forward, loss on the host, backward) and accumulates
// LoRA gradients; step() clips the global gradient norm and applies AdamW; zero_grad() clears the
// gradients. Non-finite losses or gradients are never applied: the step is skipped and reported. The
// optimizer and loss options carry no defaults: every field comes from the caller (see unset_option.h).
#pragma once
#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "loss.h"
#include "model.h"
#include "train_graph.h"

namespace hayate {

// AdamW; every field must be set (the Trainer rejects an unset one by name).
struct OptimizerOptions {
  double lr = kUnset;            // used by step() unless it is given one
  double beta1 = kUnset;
  double beta2 = kUnset;
  double eps = kUnset;
  double weight_decay = kUnset;
  double max_grad_norm = kUnset;  // global-norm clipping; 0 disables it
};

struct TrainerOptions {
  OptimizerOptions optimizer;     // required
  bool recompute = false;  // activation recomputation per layer
  int logits_chunk = 128;  // completion rows of full-vocabulary logits held at once
};

struct TrainBatch {
  PackedBatch packed;
  std::vector<double> advantages;    // one per sequence (GRPO)
  std::vector<double> old_logprobs;  // rollout log-probs per completion token (optional)
  std::vector<double> ref_logprobs;  // reference log-probs per completion token (optional: computed when beta != 0)
  std::vector<double> sampling_logprobs;  // the sampler's log-probs per completion token (rollout correction)
  std::vector<uint8_t> completion_mask;   // per completion token: 1 = the model's (loss), 0 = context (tool
                                          // results, environment messages); empty = all the model's
};

struct ForwardBackwardResult {
  LossResult loss;              // dlogprobs cleared
  std::vector<double> logprobs; // the policy's per-completion-token log-probs this pass computed (before the update)
  double entropy_mean = 0;      // mean entropy of the predictive distributions (when asked for, or masking by entropy)
  bool finite = true;           // false: NaN/Inf loss; no gradient was accumulated and the next step is skipped
  int64_t tokens = 0;           // all tokens in the micro-batch (prompts included)
  double seconds = 0;           // wall time, reference pass included
  double reference_seconds = 0;
};

struct StepResult {
  bool applied = false;
  int64_t step = 0;             // the optimizer step this was (applied) or would have been (skipped)
  double grad_norm = 0;         // before clipping
  double grad_scale = 1;        // clipping factor applied
  double lr = 0;
  std::string skipped_reason;   // why a step was skipped
};

class Trainer {
 public:
  // The model must have LoRA adapters attached; they are what is trained.
  Trainer(Model& model, const TrainerOptions& options);

  // The log-probs the loss sees are taken under softmax(logits / temperature): pass the sampling temperature.
  ForwardBackwardResult forward_backward(const TrainBatch& batch, const LossOptions& loss, double temperature,
                                         bool want_entropy = false, const std::atomic<bool>* cancel = nullptr);
  // Per-completion-token log-probs (and entropy) of a batch, LoRA on or off; no gradients.
  std::vector<double> logprobs(const PackedBatch& batch, bool use_lora, double temperature,
                               std::vector<double>* entropy = nullptr, const std::atomic<bool>* cancel = nullptr);
  // Global L2 norm of the accumulated LoRA gradients.
  double grad_norm();
  // Data parallelism: replaces the accumulated gradients by their sum over the processes of a job.
  // `all_reduce` sums a host buffer in place across them (every rank calls this at the same point). The
  // gradients travel in the parameter precision, all tensors in one buffer; a rank whose gradients are
  // unusable (poisoned) contributes NaN, so every rank then skips the same step.
  void sum_gradients(const std::function<void(double* data, size_t n)>& all_reduce);
  // Applies one AdamW update with learning rate lr (< 0: the options' lr). Skipped (and the accumulated
  // gradients discarded) when a forward_backward since the last zero_grad had a non-finite loss or was
  // cancelled mid-backward, or when the gradient norm is not finite.
  StepResult step(double lr = -1);
  void zero_grad();

  int64_t step_count() const { return step_; }
  int64_t skipped_steps() const { return skipped_; }
  void set_step_count(int64_t step, int64_t skipped);
  const TrainerOptions& options() const { return options_; }
  void set_optimizer_options(const OptimizerOptions& o);
  Model& model() { return model_; }
  LoraSet& lora();

  // AdamW moments, one entry per adapter in LoraSet::adapters() order.
  struct Moments {
    Buffer m_a, v_a, m_b, v_b;
  };
  std::vector<Moments>& moments() { return moments_; }

 private:
  Model& model_;
  LoraSet* lora_;
  TrainerOptions options_;
  std::vector<Moments> moments_;
  int64_t step_ = 0, skipped_ = 0;
  bool poisoned_ = false;        // gradients since zero_grad are unusable
  std::string poison_reason_;
};

}  // namespace hayate
