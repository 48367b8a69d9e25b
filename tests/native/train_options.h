// Explicit training options for the native tests. The engine has no defaults for training
// hyperparameters, so every test states each value; these helpers give the values the TS library uses
// when a caller leaves them out (ts/training-defaults.ts), apart from the learning rate the test picks.
#pragma once
#include "loss.h"
#include "trainer.h"

namespace hayate_test {

// A loss with the clip range 0.2 / 0.2, token-level ratios, the k3 KL estimator, no dual-clip, no rollout
// correction (bounds [0, 3] when one is switched on), every token trained, and the step totals of the
// batch itself (0).
inline hayate::LossOptions loss_options(hayate::LossType type, double beta = 0.0) {
  hayate::LossOptions o;
  o.type = type;
  o.epsilon_low = 0.2;
  o.epsilon_high = 0.2;
  o.beta = beta;
  o.importance_level = hayate::ImportanceLevel::Token;
  o.kl_estimator = hayate::KlEstimator::K3;
  o.clip_ratio_c = 0;
  o.rollout_correction = hayate::RolloutCorrection::None;
  o.correction_min = 0;
  o.correction_max = 3;
  o.top_entropy_quantile = 1;
  o.sequences_in_step = 0;
  o.tokens_in_step = 0;
  o.max_completion_length = 0;
  return o;
}

// AdamW with torch's betas and eps, no weight decay, gradient-norm clipping at 1.
inline hayate::OptimizerOptions adamw_options(double lr) {
  hayate::OptimizerOptions o;
  o.lr = lr;
  o.beta1 = 0.9;
  o.beta2 = 0.999;
  o.eps = 1e-8;
  o.weight_decay = 0.0;
  o.max_grad_norm = 1.0;
  return o;
}

inline hayate::TrainerOptions trainer_options(double lr) {
  hayate::TrainerOptions t;
  t.optimizer = adamw_options(lr);
  return t;
}

}  // namespace hayate_test
