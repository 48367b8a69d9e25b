// Training losses over per-token log-probs of completion tokens, computed on the host in double (a few
// thousand numbers per step): the loss value, its gradient w.r.t. each log-prob (fed to
// TrainGraph::backward) and the step statistics. GRPO follows TRL's GRPOTrainer: per token t of
// completion i, with ratio rho = exp(logp - old_logp),
//   l_it = -min(rho A_i, clip(rho, 1 - eps_low, 1 + eps_high) A_i) + beta * KL_it,
//   KL_it = exp(ref - logp) - (ref - logp) - 1            (the k3 estimator, vs the LoRA-off reference)
// aggregated as
//   grpo:          (1/S) sum_i (1/|o_i|) sum_t l_it        (per-sequence mean, then mean)
//   bnpo / dapo:   (1/T) sum_i sum_t l_it                  (token level over the batch)
//   dr_grpo:       (1/(S * L_max)) sum_i sum_t l_it        (constant normaliser)
// SFT is the token-level mean negative log-likelihood: -(1/T) sum log p.
// S and T given as 0 are this batch's sequences and completion tokens; with gradient accumulation pass the
// whole optimizer step's totals so the micro-batch losses (and gradients) add up to the full batch's.
// The log-probs come in already taken at the sampling temperature (Trainer::forward_backward's argument):
// the loss itself has no temperature.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "unset_option.h"

namespace hayate {

enum class LossType { Grpo, Bnpo, Dapo, DrGrpo, Sft };
// "grpo", "bnpo", "dapo", "dr_grpo", "sft"; throws kInvalidArgument naming the valid ones.
LossType parse_loss_type(const std::string& name);
const char* loss_type_name(LossType t);

// Every field must be set (compute_loss rejects an unset one by name); epsilons and beta only for GRPO types.
struct LossOptions {
  std::optional<LossType> type;
  double epsilon_low = kUnset;             // ratio clipped to [1 - epsilon_low, 1 + epsilon_high]
  double epsilon_high = kUnset;
  double beta = kUnset;                    // KL weight; 0 skips the reference pass
  double sequences_in_step = kUnset;       // S (0: this batch's sequences)
  double tokens_in_step = kUnset;          // T (0: this batch's completion tokens)
  double max_completion_length = kUnset;   // dr_grpo's L_max (0: the longest completion in this batch)
};

struct LossInputs {
  std::vector<int> completion_lens;    // tokens of each completion (their log-probs are consecutive)
  std::vector<double> logprobs;        // current policy, one per completion token
  std::vector<double> advantages;      // one per sequence (GRPO)
  std::vector<double> old_logprobs;    // rollout policy; empty = the current ones (ratio 1)
  std::vector<double> ref_logprobs;    // reference policy; needed when beta != 0
};

struct LossResult {
  double loss = 0;                     // this batch's contribution to the step's loss
  std::vector<double> dlogprobs;       // d loss / d logprobs
  // statistics, averaged over this batch's completion tokens (TRL's definitions)
  double kl_mean = 0;                  // mean k3 KL (0 when beta == 0)
  double clip_low = 0;                 // fraction with rho < 1 - eps_low and A < 0
  double clip_high = 0;                // fraction with rho > 1 + eps_high and A > 0
  double clip_region = 0;              // either
  double ratio_mean = 0;               // mean rho
  double nll_mean = 0;                 // mean -logp
  int64_t tokens = 0;
  int sequences = 0;
};

// Validates options, shapes and values (kInvalidArgument for an unset option, NaN/Inf inputs, bad epsilons,
// missing reference log-probs with beta != 0, ...). A non-finite result from finite inputs is not an
// error: the caller checks.
LossResult compute_loss(const LossOptions& options, const LossInputs& inputs);

}  // namespace hayate
