#include "loss.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "errors.h"

namespace hayate {

namespace {

void check_finite(const std::vector<double>& v, const char* what) {
  for (size_t i = 0; i < v.size(); ++i)
    HAYATE_CHECK(std::isfinite(v[i]), ErrorCode::kInvalidArgument,
                 std::string(what) + "[" + std::to_string(i) + "] is " + std::to_string(v[i]) + " (NaN or infinite)");
}

void check_per_token(const std::vector<double>& v, int64_t T, const char* what) {
  HAYATE_CHECK(static_cast<int64_t>(v.size()) == T, ErrorCode::kInvalidArgument,
               std::string(what) + ": expected one per completion token (" + std::to_string(T) + "), got " + std::to_string(v.size()));
  check_finite(v, what);
}

[[noreturn]] void bad_name(const std::string& what, const std::string& name, const char* valid) {
  fail(ErrorCode::kInvalidArgument, "unknown " + what + " '" + name + "' (" + valid + ")");
}

bool is_sequence_level_correction(RolloutCorrection c) {
  return c == RolloutCorrection::SequenceTruncate || c == RolloutCorrection::SequenceMask;
}

// The IS weight of a log-ratio (old - samp, summed over the completion at sequence level), clamped or masked.
double correction_weight(RolloutCorrection c, double log_ratio, double lo, double hi) {
  const double r = std::exp(log_ratio);
  switch (c) {
    case RolloutCorrection::None: return 1.0;
    case RolloutCorrection::TokenTruncate:
    case RolloutCorrection::SequenceTruncate: return std::clamp(r, lo, hi);
    case RolloutCorrection::TokenMask:
    case RolloutCorrection::SequenceMask: return r < lo || r > hi ? 0.0 : r;
  }
  return 1.0;
}

// KL estimate of one token and its derivative w.r.t. the current log-prob; d = ref - lp.
void kl_term(KlEstimator k, double d, double* kl, double* dkl) {
  switch (k) {
    case KlEstimator::K1: *kl = -d; *dkl = 1.0; return;
    case KlEstimator::K2: *kl = 0.5 * d * d; *dkl = -d; return;
    case KlEstimator::K3: *kl = std::exp(d) - d - 1.0; *dkl = 1.0 - std::exp(d); return;
  }
}

}  // namespace

LossType parse_loss_type(const std::string& name) {
  if (name == "grpo") return LossType::Grpo;
  if (name == "bnpo") return LossType::Bnpo;
  if (name == "dapo") return LossType::Dapo;
  if (name == "dr_grpo") return LossType::DrGrpo;
  if (name == "cispo") return LossType::Cispo;
  if (name == "sft") return LossType::Sft;
  bad_name("loss type", name, "grpo, bnpo, dapo, dr_grpo, cispo, sft");
}

const char* loss_type_name(LossType t) {
  switch (t) {
    case LossType::Grpo: return "grpo";
    case LossType::Bnpo: return "bnpo";
    case LossType::Dapo: return "dapo";
    case LossType::DrGrpo: return "dr_grpo";
    case LossType::Cispo: return "cispo";
    case LossType::Sft: return "sft";
  }
  return "?";
}

ImportanceLevel parse_importance_level(const std::string& name) {
  if (name == "token") return ImportanceLevel::Token;
  if (name == "sequence") return ImportanceLevel::Sequence;
  bad_name("importance sampling level", name, "token, sequence");
}

KlEstimator parse_kl_estimator(const std::string& name) {
  if (name == "k1") return KlEstimator::K1;
  if (name == "k2") return KlEstimator::K2;
  if (name == "k3") return KlEstimator::K3;
  bad_name("KL estimator", name, "k1, k2, k3");
}

RolloutCorrection parse_rollout_correction(const std::string& name) {
  if (name == "none") return RolloutCorrection::None;
  if (name == "token_truncate") return RolloutCorrection::TokenTruncate;
  if (name == "token_mask") return RolloutCorrection::TokenMask;
  if (name == "sequence_truncate") return RolloutCorrection::SequenceTruncate;
  if (name == "sequence_mask") return RolloutCorrection::SequenceMask;
  bad_name("rollout correction", name, "none, token_truncate, token_mask, sequence_truncate, sequence_mask");
}

double quantile(std::vector<double> v, double q) {
  HAYATE_CHECK(!v.empty(), ErrorCode::kInvalidArgument, "quantile of no values");
  std::sort(v.begin(), v.end());
  const double pos = std::clamp(q, 0.0, 1.0) * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

void validate_loss_options(const LossOptions& o) {
  HAYATE_CHECK(o.type.has_value(), ErrorCode::kInvalidArgument, "loss type is not set: the engine has no default for it");
  require_set(o.sequences_in_step, "loss sequences_in_step");
  require_set(o.tokens_in_step, "loss tokens_in_step");
  require_set(o.max_completion_length, "loss max_completion_length");
  for (double v : {o.sequences_in_step, o.tokens_in_step, o.max_completion_length})
    HAYATE_CHECK(std::isfinite(v) && v >= 0, ErrorCode::kInvalidArgument, "step totals must be >= 0");
  if (*o.type == LossType::Sft) return;
  const bool cispo = *o.type == LossType::Cispo;
  require_set(o.epsilon_low, "loss epsilon_low");
  require_set(o.epsilon_high, "loss epsilon_high");
  require_set(o.beta, "loss beta");
  require_set(o.clip_ratio_c, "loss clip_ratio_c");
  require_set(o.correction_min, "loss correction_min");
  require_set(o.correction_max, "loss correction_max");
  require_set(o.top_entropy_quantile, "loss top_entropy_quantile");
  HAYATE_CHECK(o.importance_level.has_value(), ErrorCode::kInvalidArgument, "loss importance_level is not set: the engine has no default for it");
  HAYATE_CHECK(o.kl_estimator.has_value(), ErrorCode::kInvalidArgument, "loss kl_estimator is not set: the engine has no default for it");
  HAYATE_CHECK(o.rollout_correction.has_value(), ErrorCode::kInvalidArgument, "loss rollout_correction is not set: the engine has no default for it");
  HAYATE_CHECK(std::isfinite(o.epsilon_low) && std::isfinite(o.epsilon_high) && o.epsilon_low >= 0 && o.epsilon_low < 1 &&
                   o.epsilon_high >= 0,
               ErrorCode::kInvalidArgument, "epsilon_low must be in [0, 1) and epsilon_high >= 0");
  HAYATE_CHECK(!cispo || o.epsilon_high > 0, ErrorCode::kInvalidArgument,
               "cispo caps the importance ratio at epsilon_high (eps_max), which must be > 0");
  HAYATE_CHECK(std::isfinite(o.beta) && o.beta >= 0, ErrorCode::kInvalidArgument, "beta must be >= 0");
  HAYATE_CHECK(std::isfinite(o.clip_ratio_c) && o.clip_ratio_c >= 0, ErrorCode::kInvalidArgument, "clip_ratio_c must be >= 0 (0: no dual-clip)");
  if (o.clip_ratio_c > 0) {
    HAYATE_CHECK(!cispo, ErrorCode::kInvalidArgument,
                 "dual-clip (clip_ratio_c) bounds the clipped-ratio losses (grpo, bnpo, dapo, dr_grpo); cispo has no ratio clip to bound");
    HAYATE_CHECK(o.clip_ratio_c >= 1 + o.epsilon_high, ErrorCode::kInvalidArgument,
                 "clip_ratio_c must be >= 1 + epsilon_high (" + std::to_string(1 + o.epsilon_high) +
                     "): a smaller bound would cut into the clip range itself");
  }
  HAYATE_CHECK(!std::isnan(o.correction_min) && !std::isnan(o.correction_max) && std::isfinite(o.correction_min) &&
                   o.correction_min >= 0 && o.correction_max > o.correction_min,
               ErrorCode::kInvalidArgument, "rollout correction bounds must satisfy 0 <= correction_min < correction_max");
  HAYATE_CHECK(std::isfinite(o.top_entropy_quantile) && o.top_entropy_quantile > 0 && o.top_entropy_quantile <= 1,
               ErrorCode::kInvalidArgument, "top_entropy_quantile must be in (0, 1] (1: train on every token)");
}

LossResult compute_loss(const LossOptions& o, const LossInputs& in) {
  validate_loss_options(o);
  const LossType type = *o.type;
  const int S = static_cast<int>(in.completion_lens.size());
  int64_t slots = 0;  // completion tokens, the model's and context
  for (int len : in.completion_lens) {
    HAYATE_CHECK(len >= 0, ErrorCode::kInvalidArgument, "negative completion length");
    slots += len;
  }
  HAYATE_CHECK(static_cast<int64_t>(in.logprobs.size()) == slots, ErrorCode::kInternal, "loss: log-prob count mismatch");
  HAYATE_CHECK(in.mask.empty() || static_cast<int64_t>(in.mask.size()) == slots, ErrorCode::kInvalidArgument,
               "loss mask: expected one per completion token (" + std::to_string(slots) + "), got " + std::to_string(in.mask.size()));
  auto counts = [&](int64_t t) { return in.mask.empty() || in.mask[t] != 0; };
  // the model's own tokens per completion (its |o_i|) and in the batch (T)
  std::vector<int> own(S, 0);
  int64_t T = 0;
  int max_len = 0;
  for (int s = 0, t = 0; s < S; ++s) {
    for (int k = 0; k < in.completion_lens[s]; ++k, ++t) own[s] += counts(t);
    T += own[s];
    max_len = std::max(max_len, own[s]);
  }
  const bool sft = type == LossType::Sft;
  const bool cispo = type == LossType::Cispo;
  RolloutCorrection correction = RolloutCorrection::None;
  bool sequence_level = false, entropy_mask = false;
  KlEstimator kl_estimator = KlEstimator::K3;
  if (!sft) {
    correction = *o.rollout_correction;
    sequence_level = *o.importance_level == ImportanceLevel::Sequence;
    kl_estimator = *o.kl_estimator;
    entropy_mask = o.top_entropy_quantile < 1;
    HAYATE_CHECK(static_cast<int>(in.advantages.size()) == S, ErrorCode::kInvalidArgument,
                 "GRPO needs one advantage per sequence: got " + std::to_string(in.advantages.size()) + " for " +
                     std::to_string(S) + " sequences");
    check_finite(in.advantages, "advantages");
    if (!in.old_logprobs.empty()) check_per_token(in.old_logprobs, slots, "old log-probs");
    if (o.beta != 0) {
      HAYATE_CHECK(!in.ref_logprobs.empty(), ErrorCode::kInvalidArgument, "beta != 0 needs reference log-probs, one per completion token");
      check_per_token(in.ref_logprobs, slots, "reference log-probs");
    }
    HAYATE_CHECK(correction == RolloutCorrection::None || !in.sampling_logprobs.empty(), ErrorCode::kInvalidArgument,
                 "a rollout correction needs the sampler's log-probs, one per completion token");
    if (!in.sampling_logprobs.empty()) check_per_token(in.sampling_logprobs, slots, "sampling log-probs");
    HAYATE_CHECK(!entropy_mask || !in.entropies.empty(), ErrorCode::kInvalidArgument,
                 "top_entropy_quantile < 1 needs the per-token entropies");
    if (entropy_mask) check_per_token(in.entropies, slots, "entropies");
  }

  const double seqs = o.sequences_in_step > 0 ? o.sequences_in_step : S;
  const double toks = o.tokens_in_step > 0 ? o.tokens_in_step : static_cast<double>(T);
  const double lmax = o.max_completion_length > 0 ? o.max_completion_length : max_len;
  // The entropy mask keeps the tokens at or above the (1 - q) quantile of this batch's entropies.
  double entropy_threshold = 0;
  if (entropy_mask && T > 0) {
    std::vector<double> own_entropies;
    for (int64_t t = 0; t < slots; ++t)
      if (counts(t)) own_entropies.push_back(in.entropies[t]);
    entropy_threshold = quantile(std::move(own_entropies), 1.0 - o.top_entropy_quantile);
  }

  LossResult r;
  r.tokens = T;
  r.sequences = S;
  r.has_sampling = !sft && !in.sampling_logprobs.empty();
  r.dlogprobs.assign(static_cast<size_t>(slots), 0.0);
  int64_t low = 0, high = 0, region = 0, dual = 0, cispo_clipped = 0, units = 0, kept = 0;
  double kl_sum = 0, ratio_sum = 0, nll_sum = 0, diff_sum = 0, diff_max = 0;
  double is_sum = 0, is_min = std::numeric_limits<double>::infinity(), is_max = -std::numeric_limits<double>::infinity();
  int64_t is_units = 0;
  double low_min = std::numeric_limits<double>::infinity(), high_max = -std::numeric_limits<double>::infinity();
  auto note_is = [&](double w) {
    is_sum += w;
    is_min = std::min(is_min, w);
    is_max = std::max(is_max, w);
    ++is_units;
  };
  int64_t t0 = 0;
  for (int s = 0; s < S; ++s) {
    const int64_t begin = t0;
    const int64_t end = t0 + in.completion_lens[s];
    t0 = end;
    const int len = own[s];  // |o_i|: the model's tokens
    if (len == 0) continue;
    // the aggregate's weight of each of this completion's token losses
    double a = 0;
    switch (type) {
      case LossType::Grpo: a = 1.0 / (seqs * len); break;
      case LossType::Bnpo:
      case LossType::Dapo:
      case LossType::Cispo:
      case LossType::Sft: a = toks > 0 ? 1.0 / toks : 0.0; break;
      case LossType::DrGrpo: a = seqs * lmax > 0 ? 1.0 / (seqs * lmax) : 0.0; break;
    }
    if (sft) {
      for (int64_t t = begin; t < end; ++t) {
        if (!counts(t)) continue;
        nll_sum -= in.logprobs[t];
        r.loss += -a * in.logprobs[t];
        r.dlogprobs[t] = -a;
      }
      continue;
    }
    const double A = in.advantages[s];
    auto old_of = [&](int64_t t) { return in.old_logprobs.empty() ? in.logprobs[t] : in.old_logprobs[t]; };
    // sequence level: one ratio for the completion, exp of its mean log-ratio (GSPO)
    double seq_rho = 1.0;
    if (sequence_level) {
      double sum = 0;
      for (int64_t t = begin; t < end; ++t)
        if (counts(t)) sum += in.logprobs[t] - old_of(t);
      seq_rho = std::exp(sum / len);
    }
    // sequence-level rollout correction: one IS weight for the completion
    double seq_w = 1.0;
    if (is_sequence_level_correction(correction)) {
      double sum = 0;
      for (int64_t t = begin; t < end; ++t)
        if (counts(t)) sum += old_of(t) - in.sampling_logprobs[t];
      seq_w = correction_weight(correction, sum, o.correction_min, o.correction_max);
      note_is(seq_w);
    }
    double drho_sum = 0;  // sequence level: d loss / d rho_i, summed over the completion's tokens
    int64_t seq_low = 0, seq_high = 0;
    for (int64_t t = begin; t < end; ++t) {
      if (!counts(t)) continue;  // context inside the completion: no loss, no statistics
      const double lp = in.logprobs[t];
      nll_sum -= lp;
      if (r.has_sampling) {
        const double diff = std::fabs(lp - in.sampling_logprobs[t]);
        diff_sum += diff;
        diff_max = std::max(diff_max, diff);
      }
      const double rho = sequence_level ? seq_rho : std::exp(lp - old_of(t));
      double w = seq_w;
      if (correction == RolloutCorrection::TokenTruncate || correction == RolloutCorrection::TokenMask) {
        w = correction_weight(correction, old_of(t) - in.sampling_logprobs[t], o.correction_min, o.correction_max);
        note_is(w);
      }
      const double m = entropy_mask && in.entropies[t] < entropy_threshold ? 0.0 : 1.0;
      kept += m > 0;
      const double coef = a * m * w;  // weight of this token's policy term
      double policy = 0, d_rho = 0, d_lp = 0;
      if (cispo) {
        const double capped = std::min(rho, o.epsilon_high);  // detached
        policy = -capped * A * lp;
        d_lp = -capped * A;
      } else {
        const double clipped = std::clamp(rho, 1.0 - o.epsilon_low, 1.0 + o.epsilon_high);
        const double l1 = rho * A, l2 = clipped * A;
        policy = -std::min(l1, l2);
        // d(-min)/d rho: -A on the unclipped branch; the clipped one is flat
        d_rho = l2 < l1 && clipped != rho ? 0.0 : -A;
        if (o.clip_ratio_c > 0 && A < 0 && -o.clip_ratio_c * A < policy) {
          policy = -o.clip_ratio_c * A;  // dual-clip: a negative advantage's loss is bounded, and flat there
          d_rho = 0;
          ++dual;
        }
      }
      r.loss += coef * policy;
      double g = coef * d_lp;
      if (sequence_level) drho_sum += coef * d_rho;
      else g += coef * d_rho * rho;  // d rho_t / d lp_t = rho_t
      if (o.beta != 0) {
        double kl = 0, dkl = 0;
        kl_term(kl_estimator, in.ref_logprobs[t] - lp, &kl, &dkl);
        kl_sum += kl;
        r.loss += a * o.beta * kl;
        g += a * o.beta * dkl;
      }
      r.dlogprobs[t] = g;
      ratio_sum += rho;
      if (!sequence_level) {
        const bool is_low = rho < 1.0 - o.epsilon_low && A < 0, is_high = rho > 1.0 + o.epsilon_high && A > 0;
        seq_low += is_low;
        seq_high += is_high;
        region += is_low || is_high;
        cispo_clipped += rho > o.epsilon_high && A > 0;
        ++units;
      }
    }
    if (sequence_level) {
      // d rho_i / d lp_t = rho_i / |o_i| for every token of the completion
      for (int64_t t = begin; t < end; ++t)
        if (counts(t)) r.dlogprobs[t] += drho_sum * seq_rho / len;
      const bool is_low = seq_rho < 1.0 - o.epsilon_low && A < 0, is_high = seq_rho > 1.0 + o.epsilon_high && A > 0;
      seq_low = is_low;
      seq_high = is_high;
      region += is_low || is_high;
      cispo_clipped += seq_rho > o.epsilon_high && A > 0;
      ++units;
    }
    low += seq_low;
    high += seq_high;
    const double unit_count = sequence_level ? 1.0 : static_cast<double>(len);
    low_min = std::min(low_min, static_cast<double>(seq_low) / unit_count);
    high_max = std::max(high_max, static_cast<double>(seq_high) / unit_count);
  }
  if (T > 0) {
    r.nll_mean = nll_sum / T;
    r.ratio_mean = sft ? 1.0 : ratio_sum / T;
    r.kl_mean = kl_sum / T;
    r.entropy_kept = sft ? 1.0 : static_cast<double>(kept) / T;
    if (r.has_sampling) {
      r.logp_diff_mean = diff_sum / T;
      r.logp_diff_max = diff_max;
    }
  }
  if (units > 0) {
    r.clip_units = units;
    r.clip_low = static_cast<double>(low) / units;
    r.clip_high = static_cast<double>(high) / units;
    r.clip_region = static_cast<double>(region) / units;
    r.dual_clip = static_cast<double>(dual) / T;  // a per-token event at either level
    r.cispo_clip = static_cast<double>(cispo_clipped) / units;
    r.clip_low_min = low_min;
    r.clip_high_max = high_max;
  }
  if (is_units > 0) {
    r.is_units = is_units;
    r.is_min = is_min;
    r.is_mean = is_sum / is_units;
    r.is_max = is_max;
  }
  return r;
}

}  // namespace hayate
