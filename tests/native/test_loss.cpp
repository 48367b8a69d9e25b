// The GRPO-family loss on its own (cpp/loss.cpp), in double: d loss / d logprobs against central finite
// differences for every loss type x importance level x KL estimator x rollout correction x dual-clip x
// entropy mask, and the closed forms (GSPO on one-token completions is token-level GRPO, CISPO's
// gradient, the KL estimators, the IS weights, dual-clip, the entropy quantile). Detached factors (CISPO's
// capped ratio, the IS weights) must not be differentiated: the finite difference moves old, sampler and
// current log-probs together there, which holds every ratio fixed.
#include <cmath>
#include <random>

#include "check.h"
#include "loss.h"
#include "train_options.h"

using namespace hayate;
using namespace hayate_test;

namespace {

using Vec = std::vector<double>;

// Five completions (one empty), mixed-sign advantages, old and sampler log-probs near the current ones so
// that some ratios clip, some IS weights truncate or mask and some do not.
LossInputs random_inputs(uint32_t seed, bool one_token = false) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  LossInputs in;
  in.completion_lens = one_token ? std::vector<int>{1, 1, 1, 0, 1} : std::vector<int>{3, 1, 5, 0, 4};
  in.advantages = {0.9, -1.2, -0.6, 0.4, 1.3};
  int T = 0;
  for (int l : in.completion_lens) T += l;
  for (int t = 0; t < T; ++t) {
    const double lp = -0.1 - 2.5 * u(rng);
    in.logprobs.push_back(lp);
    in.old_logprobs.push_back(lp + 0.6 * (u(rng) - 0.5));
    in.sampling_logprobs.push_back(in.old_logprobs.back() + 1.6 * (u(rng) - 0.5));
    in.ref_logprobs.push_back(lp + 0.8 * (u(rng) - 0.5));
    in.entropies.push_back(3.0 * u(rng));
  }
  return in;
}

// Central differences of the loss w.r.t. each log-prob; `co_move`: old and sampler log-probs move with it.
Vec finite_differences(const LossOptions& o, LossInputs in, bool co_move) {
  Vec g(in.logprobs.size());
  const double h = 1e-6;
  for (size_t t = 0; t < g.size(); ++t) {
    auto at = [&](double dx) {
      LossInputs x = in;
      x.logprobs[t] += dx;
      if (co_move) {
        x.old_logprobs[t] += dx;
        x.sampling_logprobs[t] += dx;
      }
      return compute_loss(o, x).loss;
    };
    g[t] = (at(h) - at(-h)) / (2 * h);
  }
  return g;
}

double max_abs_diff(const Vec& a, const Vec& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
  return worst;
}

LossOptions grpo_options(LossType type) {
  LossOptions o = loss_options(type, 0.05);
  o.epsilon_high = type == LossType::Cispo ? 1.1 : 0.28;
  o.correction_min = 0.5;
  o.correction_max = 1.6;
  return o;
}

}  // namespace

TEST(loss_gradients_vs_finite_differences_every_option) {
  int cases = 0;
  for (LossType type : {LossType::Grpo, LossType::Bnpo, LossType::Dapo, LossType::DrGrpo, LossType::Cispo}) {
    for (ImportanceLevel level : {ImportanceLevel::Token, ImportanceLevel::Sequence}) {
      for (KlEstimator kl : {KlEstimator::K1, KlEstimator::K2, KlEstimator::K3}) {
        for (RolloutCorrection rc : {RolloutCorrection::None, RolloutCorrection::TokenTruncate, RolloutCorrection::TokenMask,
                                     RolloutCorrection::SequenceTruncate, RolloutCorrection::SequenceMask}) {
          for (double c : {0.0, 1.5}) {
            if (c > 0 && type == LossType::Cispo) continue;
            for (double q : {1.0, 0.5}) {
              LossOptions o = grpo_options(type);
              o.importance_level = level;
              o.kl_estimator = kl;
              o.rollout_correction = rc;
              o.clip_ratio_c = c;
              o.top_entropy_quantile = q;
              o.max_completion_length = type == LossType::DrGrpo ? 6 : 0;
              const LossInputs in = random_inputs(17 + cases);
              const LossResult r = compute_loss(o, in);
              const Vec fd = finite_differences(o, in, type == LossType::Cispo);
              double scale = 1e-12;
              for (double v : fd) scale = std::max(scale, std::fabs(v));
              const double err = max_abs_diff(r.dlogprobs, fd) / scale;
              if (!(err < 1e-7))
                report(__FILE__, __LINE__,
                       std::string(loss_type_name(type)) + (level == ImportanceLevel::Sequence ? " sequence" : " token") + " kl " +
                           std::to_string(static_cast<int>(kl) + 1) + " correction " + std::to_string(static_cast<int>(rc)) +
                           " c " + std::to_string(c) + " q " + std::to_string(q) + ": rel err " + std::to_string(err));
              ++cases;
            }
          }
        }
      }
    }
  }
  CHECK(cases == 540);
}

TEST(loss_options_make_a_difference_in_the_random_case) {
  // The finite-difference inputs exercise every branch: some ratios clip, the dual bound binds, IS weights
  // truncate and mask, the entropy mask drops half of the tokens.
  LossInputs in = random_inputs(5);
  LossOptions o = grpo_options(LossType::Dapo);
  LossResult plain = compute_loss(o, in);
  CHECK(plain.clip_region > 0 && plain.clip_region < 1);
  o.clip_ratio_c = 1.28;  // the smallest allowed bound: binds wherever a negative advantage's ratio exceeds it
  o.epsilon_high = 0.28;
  CHECK(compute_loss(o, in).dual_clip > 0);
  o.clip_ratio_c = 0;
  o.rollout_correction = RolloutCorrection::TokenMask;
  LossResult masked = compute_loss(o, in);
  CHECK(masked.is_units == 13 && masked.is_min == 0.0 && masked.is_max <= 1.6);
  o.rollout_correction = RolloutCorrection::TokenTruncate;
  LossResult truncated = compute_loss(o, in);
  CHECK(truncated.is_min >= 0.5 && truncated.is_max <= 1.6 && truncated.is_min < truncated.is_max);
  o.rollout_correction = RolloutCorrection::None;
  o.top_entropy_quantile = 0.5;
  CHECK_NEAR(compute_loss(o, in).entropy_kept, 7.0 / 13.0, 1e-12);  // 13 tokens: the median and above
}

TEST(gspo_on_one_token_completions_is_token_level_grpo) {
  for (LossType type : {LossType::Grpo, LossType::Bnpo, LossType::Dapo, LossType::DrGrpo, LossType::Cispo}) {
    LossInputs in = random_inputs(23, /*one_token=*/true);
    LossOptions o = grpo_options(type);
    o.clip_ratio_c = type == LossType::Cispo ? 0 : 1.5;
    const LossResult token = compute_loss(o, in);
    o.importance_level = ImportanceLevel::Sequence;
    const LossResult sequence = compute_loss(o, in);
    CHECK_NEAR(sequence.loss, token.loss, 1e-14);
    CHECK(max_abs_diff(sequence.dlogprobs, token.dlogprobs) < 1e-14);
    CHECK_NEAR(sequence.clip_region, token.clip_region, 1e-14);
  }
}

TEST(gspo_ratio_is_the_geometric_mean_of_token_ratios) {
  // One completion, A > 0, ratios inside the clip range: loss = -A exp(mean(lp - old)) (grpo: / S / |o|
  // per token, |o| tokens: -A rho), and d loss / d lp_t = -A rho / |o|.
  LossInputs in;
  in.completion_lens = {4};
  in.advantages = {0.7};
  in.logprobs = {-1.0, -0.5, -2.0, -0.25};
  in.old_logprobs = {-1.02, -0.49, -1.97, -0.26};
  LossOptions o = loss_options(LossType::Grpo);
  o.importance_level = ImportanceLevel::Sequence;
  const LossResult r = compute_loss(o, in);
  const double rho = std::exp((-0.02 * -1 + -0.01 + -0.03 + 0.01) / 4.0);
  CHECK_NEAR(r.loss, -0.7 * rho, 1e-14);
  for (double g : r.dlogprobs) CHECK_NEAR(g, -0.7 * rho / 4.0, 1e-14);
  CHECK_NEAR(r.ratio_mean, rho, 1e-14);
}

TEST(cispo_gradient_is_the_capped_detached_ratio_times_the_advantage) {
  LossInputs in;
  in.completion_lens = {2, 1};
  in.advantages = {1.5, -0.5};
  in.logprobs = {-1.0, -0.2, -0.7};
  in.old_logprobs = {-1.5, -0.2, -0.9};  // ratios e^0.5 = 1.65, 1, e^0.2 = 1.22
  LossOptions o = loss_options(LossType::Cispo);
  o.epsilon_high = 1.2;  // caps the first and the third ratio
  const LossResult r = compute_loss(o, in);
  const double a = 1.0 / 3;  // token-level normaliser
  CHECK_NEAR(r.dlogprobs[0], -a * 1.2 * 1.5, 1e-14);
  CHECK_NEAR(r.dlogprobs[1], -a * 1.0 * 1.5, 1e-14);
  CHECK_NEAR(r.dlogprobs[2], -a * 1.2 * -0.5, 1e-14);
  CHECK_NEAR(r.loss, -a * (1.2 * 1.5 * -1.0 + 1.0 * 1.5 * -0.2 + 1.2 * -0.5 * -0.7), 1e-14);
  CHECK_NEAR(r.cispo_clip, 1.0 / 3, 1e-14);  // only A > 0 counts: token 0
}

TEST(kl_estimators_closed_form) {
  LossInputs in;
  in.completion_lens = {1};
  in.advantages = {0.0};  // the policy term vanishes: loss = beta * KL
  in.logprobs = {-1.0};
  in.ref_logprobs = {-1.5};  // d = ref - lp = -0.5
  const double d = -0.5;
  struct Case {
    KlEstimator k;
    double kl, dkl;
  } cases[] = {{KlEstimator::K1, -d, 1.0}, {KlEstimator::K2, 0.5 * d * d, -d}, {KlEstimator::K3, std::exp(d) - d - 1, 1 - std::exp(d)}};
  for (const Case& c : cases) {
    LossOptions o = loss_options(LossType::Dapo, 0.1);
    o.kl_estimator = c.k;
    const LossResult r = compute_loss(o, in);
    CHECK_NEAR(r.kl_mean, c.kl, 1e-15);
    CHECK_NEAR(r.loss, 0.1 * c.kl, 1e-15);
    CHECK_NEAR(r.dlogprobs[0], 0.1 * c.dkl, 1e-15);
  }
}

TEST(rollout_correction_weights_closed_form) {
  // Two completions; log(old / samp) per token: {0.5, 0.4} and {-2.0}; A = 1 and old = current (ratio 1):
  // dapo's per-token gradient is -w / T.
  LossInputs in;
  in.completion_lens = {2, 1};
  in.advantages = {1.0, 1.0};
  in.logprobs = {-1.0, -2.0, -0.5};
  in.sampling_logprobs = {-1.5, -2.4, 1.5};
  LossOptions o = loss_options(LossType::Dapo);
  o.correction_min = 0.2;
  o.correction_max = 2.0;
  auto grads = [&](RolloutCorrection c) {
    o.rollout_correction = c;
    Vec g = compute_loss(o, in).dlogprobs;
    for (double& x : g) x *= -3.0;  // back to w
    return g;
  };
  const double e05 = std::exp(0.5), e04 = std::exp(0.4), em2 = std::exp(-2.0), e09 = std::exp(0.9);
  Vec w = grads(RolloutCorrection::TokenTruncate);
  CHECK_NEAR(w[0], std::min(e05, 2.0), 1e-13);
  CHECK_NEAR(w[1], e04, 1e-13);
  CHECK_NEAR(w[2], 0.2, 1e-13);  // e^-2 = 0.135 truncated up to c_min
  w = grads(RolloutCorrection::TokenMask);
  CHECK_NEAR(w[0], e05, 1e-13);
  CHECK_NEAR(w[2], 0.0, 0);
  w = grads(RolloutCorrection::SequenceTruncate);  // completion 0: e^0.9 = 2.46 -> 2.0
  CHECK_NEAR(w[0], 2.0, 1e-13);
  CHECK_NEAR(w[1], 2.0, 1e-13);
  CHECK_NEAR(w[2], 0.2, 1e-13);
  w = grads(RolloutCorrection::SequenceMask);
  CHECK_NEAR(w[0], 0.0, 0);
  CHECK_NEAR(w[2], 0.0, 0);
  o.correction_max = 3.0;
  w = grads(RolloutCorrection::SequenceMask);
  CHECK_NEAR(w[1], e09, 1e-13);
  const LossResult r = compute_loss(o, in);
  CHECK(r.is_units == 2);
  CHECK_NEAR(r.is_min, 0.0, 0);
  CHECK_NEAR(r.is_max, e09, 1e-13);
  CHECK_NEAR(r.logp_diff_max, 2.0, 1e-13);
  CHECK_NEAR(r.logp_diff_mean, (0.5 + 0.4 + 2.0) / 3, 1e-13);
  (void)em2;
}

TEST(dual_clip_bounds_negative_advantages) {
  LossInputs in;
  in.completion_lens = {1, 1};
  in.advantages = {-2.0, 2.0};
  in.logprobs = {0.0, 0.0};
  in.old_logprobs = {-std::log(5.0), -std::log(5.0)};  // ratio 5 for both
  LossOptions o = loss_options(LossType::Dapo);
  o.clip_ratio_c = 3.0;
  const LossResult r = compute_loss(o, in);
  // A < 0: -min(5 * -2, 1.2 * -2) = 10, bounded by 3 * 2 = 6, flat; A > 0: clipped at 1.2, flat.
  CHECK_NEAR(r.loss, 0.5 * (6.0 + -2.0 * 1.2), 1e-14);
  CHECK_NEAR(r.dlogprobs[0], 0.0, 0);
  CHECK_NEAR(r.dlogprobs[1], 0.0, 0);
  CHECK_NEAR(r.dual_clip, 0.5, 0);
  o.clip_ratio_c = 0;
  CHECK_NEAR(compute_loss(o, in).dlogprobs[0], 0.5 * 2.0 * 5.0, 1e-13);  // unbounded: -A rho / T
}

TEST(entropy_mask_keeps_the_top_quantile_for_the_policy_term_only) {
  LossInputs in;
  in.completion_lens = {4};
  in.advantages = {1.0};
  in.logprobs = {-1.0, -1.0, -1.0, -1.0};
  in.ref_logprobs = {-1.2, -1.2, -1.2, -1.2};
  in.entropies = {0.5, 2.0, 1.0, 3.0};
  LossOptions o = loss_options(LossType::Dapo, 0.1);
  o.top_entropy_quantile = 0.5;  // threshold: the 0.5 quantile of {0.5, 1, 2, 3} = 1.5
  const LossResult r = compute_loss(o, in);
  const double kl_grad = 0.1 * (1 - std::exp(-0.2)) / 4;
  CHECK_NEAR(r.dlogprobs[0], kl_grad, 1e-15);          // masked: KL only
  CHECK_NEAR(r.dlogprobs[1], -1.0 / 4 + kl_grad, 1e-15);
  CHECK_NEAR(r.dlogprobs[2], kl_grad, 1e-15);
  CHECK_NEAR(r.dlogprobs[3], -1.0 / 4 + kl_grad, 1e-15);
  CHECK_NEAR(r.entropy_kept, 0.5, 0);
  CHECK_NEAR(quantile({1, 2, 3, 4}, 0.5), 2.5, 1e-15);  // torch.quantile's linear interpolation
  CHECK_NEAR(quantile({1, 2, 3, 4}, 0.25), 1.75, 1e-15);
  CHECK_NEAR(quantile({7}, 0.3), 7.0, 0);
}

TEST(loss_clip_statistics_per_sequence) {
  // token level: completion 0 has 1 of 2 tokens high-clipped (A > 0), completion 1 none (A < 0, ratio 1)
  LossInputs in;
  in.completion_lens = {2, 1};
  in.advantages = {1.0, -1.0};
  in.logprobs = {0.0, 0.0, 0.0};
  in.old_logprobs = {-1.0, 0.0, 0.0};
  LossOptions o = loss_options(LossType::Dapo);
  LossResult r = compute_loss(o, in);
  CHECK(r.clip_units == 3);
  CHECK_NEAR(r.clip_high, 1.0 / 3, 1e-15);
  CHECK_NEAR(r.clip_high_max, 0.5, 0);
  CHECK_NEAR(r.clip_low_min, 0.0, 0);
  o.importance_level = ImportanceLevel::Sequence;  // completion 0's ratio e^0.5 > 1.2: one clipped sequence of two
  r = compute_loss(o, in);
  CHECK(r.clip_units == 2);
  CHECK_NEAR(r.clip_high, 0.5, 0);
  CHECK_NEAR(r.clip_high_max, 1.0, 0);
}

TEST(loss_rejects_bad_option_combinations) {
  LossInputs in = random_inputs(3);
  LossOptions o = grpo_options(LossType::Cispo);
  o.clip_ratio_c = 3;  // dual-clip is undefined for cispo
  CHECK_THROWS_CODE(compute_loss(o, in), ErrorCode::kInvalidArgument);
  o = grpo_options(LossType::Grpo);
  o.clip_ratio_c = 1.1;  // inside the clip range (1 + 0.28)
  CHECK_THROWS_CODE(compute_loss(o, in), ErrorCode::kInvalidArgument);
  o = grpo_options(LossType::Grpo);
  for (double q : {0.0, -0.5, 1.5}) {
    o.top_entropy_quantile = q;
    CHECK_THROWS_CODE(compute_loss(o, in), ErrorCode::kInvalidArgument);
  }
  o = grpo_options(LossType::Grpo);
  o.correction_min = 2;
  o.correction_max = 1;
  CHECK_THROWS_CODE(compute_loss(o, in), ErrorCode::kInvalidArgument);
  o = grpo_options(LossType::Grpo);
  o.rollout_correction = RolloutCorrection::TokenTruncate;
  LossInputs no_sampler = in;
  no_sampler.sampling_logprobs.clear();
  CHECK_THROWS_CODE(compute_loss(o, no_sampler), ErrorCode::kInvalidArgument);
  o = grpo_options(LossType::Grpo);
  o.top_entropy_quantile = 0.2;
  LossInputs no_entropy = in;
  no_entropy.entropies.clear();
  CHECK_THROWS_CODE(compute_loss(o, no_entropy), ErrorCode::kInvalidArgument);
  o = grpo_options(LossType::Grpo);
  o.kl_estimator.reset();
  CHECK_THROWS_CODE(compute_loss(o, in), ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(parse_kl_estimator("k4"), ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(parse_rollout_correction("token"), ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(parse_importance_level("batch"), ErrorCode::kInvalidArgument);
}

namespace {

// The inputs without the tokens the mask leaves out (the hand-masked form of a multi-turn batch).
LossInputs without_masked(const LossInputs& in) {
  LossInputs out = in;
  out.mask.clear();
  for (auto* v : {&out.logprobs, &out.old_logprobs, &out.sampling_logprobs, &out.ref_logprobs, &out.entropies}) v->clear();
  out.completion_lens.assign(in.completion_lens.size(), 0);
  for (size_t s = 0, t = 0; s < in.completion_lens.size(); ++s) {
    for (int k = 0; k < in.completion_lens[s]; ++k, ++t) {
      if (!in.mask[t]) continue;
      ++out.completion_lens[s];
      out.logprobs.push_back(in.logprobs[t]);
      out.old_logprobs.push_back(in.old_logprobs[t]);
      out.sampling_logprobs.push_back(in.sampling_logprobs[t]);
      out.ref_logprobs.push_back(in.ref_logprobs[t]);
      out.entropies.push_back(in.entropies[t]);
    }
  }
  return out;
}

}  // namespace

TEST(loss_mask_equals_removing_the_context_tokens_for_every_option) {
  // Multi-turn completions: tool results inside a completion are context. Masking them must give exactly
  // the loss (and, on the model's tokens, the gradient) of the same batch with those tokens removed.
  int cases = 0;
  for (LossType type : {LossType::Grpo, LossType::Dapo, LossType::DrGrpo, LossType::Cispo, LossType::Sft}) {
    for (ImportanceLevel level : {ImportanceLevel::Token, ImportanceLevel::Sequence}) {
      for (RolloutCorrection rc : {RolloutCorrection::None, RolloutCorrection::TokenTruncate, RolloutCorrection::SequenceMask}) {
        for (double q : {1.0, 0.5}) {
          LossOptions o = type == LossType::Sft ? loss_options(LossType::Sft) : grpo_options(type);
          o.importance_level = level;
          o.rollout_correction = rc;
          o.top_entropy_quantile = q;
          o.max_completion_length = type == LossType::DrGrpo ? 6 : 0;
          LossInputs in = random_inputs(101 + cases);
          in.mask.assign(in.logprobs.size(), 1);
          for (size_t t = 0; t < in.mask.size(); t += 3) in.mask[t] = 0;  // every third token is a tool's
          const LossResult masked = compute_loss(o, in);
          const LossResult hand = compute_loss(o, without_masked(in));
          CHECK_NEAR(masked.loss, hand.loss, 1e-14);
          CHECK(masked.tokens == hand.tokens);
          for (size_t t = 0, k = 0; t < in.mask.size(); ++t) {
            if (in.mask[t]) CHECK_NEAR(masked.dlogprobs[t], hand.dlogprobs[k++], 1e-14);
            else CHECK_NEAR(masked.dlogprobs[t], 0.0, 0);
          }
          ++cases;
        }
      }
    }
  }
  CHECK(cases == 60);
  LossInputs bad = random_inputs(1);
  bad.mask.assign(3, 1);  // wrong length
  CHECK_THROWS_CODE(compute_loss(grpo_options(LossType::Grpo), bad), ErrorCode::kInvalidArgument);
}
