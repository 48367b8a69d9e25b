#include "loss.h"

#include <algorithm>
#include <cmath>

#include "errors.h"

namespace hayate {

namespace {

void check_finite(const std::vector<double>& v, const char* what) {
  for (size_t i = 0; i < v.size(); ++i)
    HAYATE_CHECK(std::isfinite(v[i]), ErrorCode::kInvalidArgument,
                 std::string(what) + "[" + std::to_string(i) + "] is " + std::to_string(v[i]) + " (NaN or infinite)");
}

}  // namespace

LossType parse_loss_type(const std::string& name) {
  if (name == "grpo") return LossType::Grpo;
  if (name == "bnpo") return LossType::Bnpo;
  if (name == "dapo") return LossType::Dapo;
  if (name == "dr_grpo") return LossType::DrGrpo;
  if (name == "sft") return LossType::Sft;
  fail(ErrorCode::kInvalidArgument, "unknown loss type '" + name + "' (grpo, bnpo, dapo, dr_grpo, sft)");
}

const char* loss_type_name(LossType t) {
  switch (t) {
    case LossType::Grpo: return "grpo";
    case LossType::Bnpo: return "bnpo";
    case LossType::Dapo: return "dapo";
    case LossType::DrGrpo: return "dr_grpo";
    case LossType::Sft: return "sft";
  }
  return "?";
}

LossResult compute_loss(const LossOptions& o, const LossInputs& in) {
  HAYATE_CHECK(o.type.has_value(), ErrorCode::kInvalidArgument, "loss type is not set: the engine has no default for it");
  const LossType type = *o.type;
  const int S = static_cast<int>(in.completion_lens.size());
  int64_t T = 0;
  int max_len = 0;
  for (int len : in.completion_lens) {
    HAYATE_CHECK(len >= 0, ErrorCode::kInvalidArgument, "negative completion length");
    T += len;
    max_len = std::max(max_len, len);
  }
  HAYATE_CHECK(static_cast<int64_t>(in.logprobs.size()) == T, ErrorCode::kInternal, "loss: log-prob count mismatch");
  const bool sft = type == LossType::Sft;
  if (!sft) {
    require_set(o.epsilon_low, "loss epsilon_low");
    require_set(o.epsilon_high, "loss epsilon_high");
    require_set(o.beta, "loss beta");
    HAYATE_CHECK(static_cast<int>(in.advantages.size()) == S, ErrorCode::kInvalidArgument,
                 "GRPO needs one advantage per sequence: got " + std::to_string(in.advantages.size()) + " for " +
                     std::to_string(S) + " sequences");
    check_finite(in.advantages, "advantages");
    HAYATE_CHECK(in.old_logprobs.empty() || static_cast<int64_t>(in.old_logprobs.size()) == T, ErrorCode::kInvalidArgument,
                 "old log-probs: expected one per completion token (" + std::to_string(T) + "), got " +
                     std::to_string(in.old_logprobs.size()));
    check_finite(in.old_logprobs, "old log-probs");
    HAYATE_CHECK(std::isfinite(o.epsilon_low) && std::isfinite(o.epsilon_high) && o.epsilon_low >= 0 && o.epsilon_low < 1 &&
                     o.epsilon_high >= 0,
                 ErrorCode::kInvalidArgument, "epsilon_low must be in [0, 1) and epsilon_high >= 0");
    HAYATE_CHECK(std::isfinite(o.beta) && o.beta >= 0, ErrorCode::kInvalidArgument, "beta must be >= 0");
    if (o.beta != 0) {
      HAYATE_CHECK(static_cast<int64_t>(in.ref_logprobs.size()) == T, ErrorCode::kInvalidArgument,
                   "beta != 0 needs reference log-probs, one per completion token");
      check_finite(in.ref_logprobs, "reference log-probs");
    }
  }
  require_set(o.sequences_in_step, "loss sequences_in_step");
  require_set(o.tokens_in_step, "loss tokens_in_step");
  require_set(o.max_completion_length, "loss max_completion_length");
  for (double v : {o.sequences_in_step, o.tokens_in_step, o.max_completion_length})
    HAYATE_CHECK(std::isfinite(v) && v >= 0, ErrorCode::kInvalidArgument, "step totals must be >= 0");

  const double seqs = o.sequences_in_step > 0 ? o.sequences_in_step : S;
  const double toks = o.tokens_in_step > 0 ? o.tokens_in_step : static_cast<double>(T);
  const double lmax = o.max_completion_length > 0 ? o.max_completion_length : max_len;

  LossResult r;
  r.tokens = T;
  r.sequences = S;
  r.dlogprobs.assign(static_cast<size_t>(T), 0.0);
  int64_t t = 0;
  int64_t low = 0, high = 0, region = 0;
  double kl_sum = 0, ratio_sum = 0, nll_sum = 0;
  for (int s = 0; s < S; ++s) {
    const int len = in.completion_lens[s];
    // weight of a token's loss in the aggregate
    double w = 0;
    switch (type) {
      case LossType::Grpo: w = len > 0 ? 1.0 / (seqs * len) : 0.0; break;
      case LossType::Bnpo:
      case LossType::Dapo:
      case LossType::Sft: w = toks > 0 ? 1.0 / toks : 0.0; break;
      case LossType::DrGrpo: w = seqs * lmax > 0 ? 1.0 / (seqs * lmax) : 0.0; break;
    }
    for (int k = 0; k < len; ++k, ++t) {
      const double lp = in.logprobs[t];
      nll_sum -= lp;
      if (sft) {
        r.loss += -w * lp;
        r.dlogprobs[t] = -w;
        continue;
      }
      const double A = in.advantages[s];
      const double old = in.old_logprobs.empty() ? lp : in.old_logprobs[t];
      const double rho = std::exp(lp - old);
      const double clipped = std::clamp(rho, 1.0 - o.epsilon_low, 1.0 + o.epsilon_high);
      const double l1 = rho * A, l2 = clipped * A;
      double loss = -std::min(l1, l2);
      // d(-min)/dlogp: the unclipped branch gives -A rho; the clipped one is constant (clamp is flat)
      const bool is_clipped = l2 < l1 && clipped != rho;
      double g = is_clipped ? 0.0 : -A * rho;
      if (o.beta != 0) {
        const double d = in.ref_logprobs[t] - lp;
        const double kl = std::exp(d) - d - 1.0;
        kl_sum += kl;
        loss += o.beta * kl;
        g += o.beta * (1.0 - std::exp(d));
      }
      r.loss += w * loss;
      r.dlogprobs[t] = w * g;
      ratio_sum += rho;
      const bool is_low = rho < 1.0 - o.epsilon_low && A < 0, is_high = rho > 1.0 + o.epsilon_high && A > 0;
      low += is_low;
      high += is_high;
      region += is_low || is_high;
    }
  }
  if (T > 0) {
    r.kl_mean = kl_sum / T;
    r.clip_low = static_cast<double>(low) / T;
    r.clip_high = static_cast<double>(high) / T;
    r.clip_region = static_cast<double>(region) / T;
    r.ratio_mean = sft ? 1.0 : ratio_sum / T;
    r.nll_mean = nll_sum / T;
  }
  return r;
}

}  // namespace hayate
