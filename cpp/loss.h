// Training losses over per-token log-probs of completion tokens, computed on the host in double (a few
// thousand numbers per step): the loss value, its gradient w.r.t. each log-prob (fed to
// TrainGraph::backward) and the step statistics. The GRPO family follows TRL's GRPOTrainer (formulas also
// in docs/architecture.md, "The GRPO loss"). Per completion i with tokens t, current log-probs lp,
// rollout ("old") log-probs old (sg[lp] when not given: ratio 1 with a live gradient), sampler
// log-probs samp and reference log-probs ref:
//   importance ratio   token level:    rho_t = exp(lp_t - old_t)
//                      sequence level: rho_i = exp((1/|o_i|) sum_t (lp_t - old_t))   (GSPO), for every t of i
//   policy term        grpo/bnpo/dapo/dr_grpo: p_t = -min(rho A_i, clip(rho, 1 - eps_low, 1 + eps_high) A_i)
//                        dual-clip (clip_ratio_c = c > 0, A_i < 0): p_t = min(p_t, -c A_i)
//                      cispo: p_t = -sg[min(rho, eps_high)] A_i lp_t      (eps_high is the cap eps_max)
//   KL term            d_t = ref_t - lp_t;  k1 = -d,  k2 = d^2 / 2,  k3 = exp(d) - d - 1
//   rollout correction w = sg[IS weight]: token_*: exp(old_t - samp_t) per token; sequence_*:
//                        exp(sum_t (old_t - samp_t)) per completion; *_truncate clamps w to [c_min, c_max],
//                        *_mask sets w = 0 outside it; none: w = 1
//   entropy mask       m_t = 1 when H_t >= the (1 - q) quantile of this batch's token entropies (q =
//                        top_entropy_quantile; q = 1: m = 1)
//   per token          l_t = m_t w_t p_t + beta KL_t
// aggregated as
//   grpo:               (1/S) sum_i (1/|o_i|) sum_t l_t        (per-sequence mean, then mean)
//   bnpo / dapo / cispo: (1/T) sum_i sum_t l_t                 (token level over the batch)
//   dr_grpo:            (1/(S * L_max)) sum_i sum_t l_t        (constant normaliser)
// SFT is the token-level mean negative log-likelihood: -(1/T) sum log p.
// With a mask (multi-turn rollouts), |o_i|, T and every sum run over the model's own tokens only.
// S and T given as 0 are this batch's sequences and completion tokens; with gradient accumulation pass the
// whole optimizer step's totals so the micro-batch losses (and gradients) add up to the full batch's.
// The log-probs come in already taken at the sampling temperature (Trainer::forward_backward's argument):
// the loss itself has no temperature.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "unset_option.h"

namespace hayate {

enum class LossType { Grpo, Bnpo, Dapo, DrGrpo, Cispo, Sft };
// "grpo", "bnpo", "dapo", "dr_grpo", "cispo", "sft"; throws kInvalidArgument naming the valid ones.
LossType parse_loss_type(const std::string& name);
const char* loss_type_name(LossType t);

enum class ImportanceLevel { Token, Sequence };
// "token", "sequence"
ImportanceLevel parse_importance_level(const std::string& name);

enum class KlEstimator { K1, K2, K3 };
// "k1", "k2", "k3"
KlEstimator parse_kl_estimator(const std::string& name);

enum class RolloutCorrection { None, TokenTruncate, TokenMask, SequenceTruncate, SequenceMask };
// "none", "token_truncate", "token_mask", "sequence_truncate", "sequence_mask"
RolloutCorrection parse_rollout_correction(const std::string& name);

// Every field must be set for the GRPO types (compute_loss rejects an unset one by name); SFT needs only
// the type and the step totals.
struct LossOptions {
  std::optional<LossType> type;
  double epsilon_low = kUnset;             // ratio clipped to [1 - epsilon_low, 1 + epsilon_high]
  double epsilon_high = kUnset;            // cispo: the cap eps_max of the detached ratio
  double beta = kUnset;                    // KL weight; 0 skips the reference pass
  std::optional<ImportanceLevel> importance_level;
  std::optional<KlEstimator> kl_estimator;
  double clip_ratio_c = kUnset;            // dual-clip bound for A < 0 (0: off; else >= 1 + epsilon_high)
  std::optional<RolloutCorrection> rollout_correction;
  double correction_min = kUnset;          // IS weight bounds [c_min, c_max] (c_min 0: no lower bound;
  double correction_max = kUnset;          //   c_max may be +inf: no upper bound)
  double top_entropy_quantile = kUnset;    // q in (0, 1]; 1 trains on every token
  double sequences_in_step = kUnset;       // S (0: this batch's sequences)
  double tokens_in_step = kUnset;          // T (0: this batch's completion tokens)
  double max_completion_length = kUnset;   // dr_grpo's L_max (0: the longest completion in this batch)
};

struct LossInputs {
  std::vector<int> completion_lens;      // tokens of each completion (their log-probs are consecutive)
  std::vector<double> logprobs;          // current policy, one per completion token
  std::vector<double> advantages;        // one per sequence (GRPO)
  std::vector<double> old_logprobs;      // rollout policy; empty = the current ones, detached (ratio 1)
  std::vector<double> ref_logprobs;      // reference policy; needed when beta != 0
  std::vector<double> sampling_logprobs; // the sampler's; needed for a rollout correction, else optional (statistics)
  std::vector<double> entropies;         // per token; needed when top_entropy_quantile < 1
  // Per token: 1 when the model generated it (it carries loss), 0 for context inside the completion (a
  // tool result, an environment message): such tokens are skipped as if absent — they count in no
  // normaliser, ratio, quantile or statistic. Empty: every token is the model's.
  std::vector<uint8_t> mask;
};

struct LossResult {
  double loss = 0;                     // this batch's contribution to the step's loss
  std::vector<double> dlogprobs;       // d loss / d logprobs
  // statistics (TRL's definitions)
  double kl_mean = 0;                  // mean KL estimate over tokens (0 when beta == 0)
  // clip fractions over clip_units units: tokens (token level) or sequences (sequence level)
  double clip_low = 0;                 // rho < 1 - eps_low and A < 0
  double clip_high = 0;                // rho > 1 + eps_high and A > 0
  double clip_region = 0;              // either
  double clip_low_min = 0;             // min over sequences of the per-sequence low-clip fraction
  double clip_high_max = 0;            // max over sequences of the per-sequence high-clip fraction
  double dual_clip = 0;                // A < 0 and the dual-clip bound is active
  double cispo_clip = 0;               // cispo: rho > eps_max and A > 0
  int64_t clip_units = 0;
  double ratio_mean = 0;               // mean rho over tokens
  double nll_mean = 0;                 // mean -logp over tokens
  double entropy_kept = 1;             // fraction of tokens the entropy mask keeps
  // with sampler log-probs: |lp - samp| over tokens (lp: the current log-probs, i.e. the trainer's
  // before the update on the first iteration); and the IS weights (after clamping/masking) over
  // is_units units: tokens (token_*) or sequences (sequence_*); is_units 0 without a correction
  double logp_diff_mean = 0;
  double logp_diff_max = 0;
  bool has_sampling = false;
  double is_min = 0, is_mean = 0, is_max = 0;
  int64_t is_units = 0;
  int64_t tokens = 0;
  int sequences = 0;
};

// Checks the options alone (unset fields, ranges, combinations); compute_loss calls it. kInvalidArgument
// with a message naming the option.
void validate_loss_options(const LossOptions& options);

// Validates options, shapes and values (kInvalidArgument for an unset option, NaN/Inf inputs, bad epsilons,
// missing reference or sampler log-probs where needed, ...). A non-finite result from finite inputs is
// not an error: the caller checks.
LossResult compute_loss(const LossOptions& options, const LossInputs& inputs);

// The q-quantile of `values` with linear interpolation between order statistics (torch.quantile's default).
double quantile(std::vector<double> values, double q);

}  // namespace hayate
