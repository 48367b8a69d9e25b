// Metric names written per training step: TRL's GRPOTrainer names where TRL has one, so existing
// dashboards and habits carry over; hayate's own timing names otherwise.

export const METRIC = {
  step: 'step',
  epoch: 'epoch',
  /** Mean total (weighted) reward over the step's completions. */
  reward: 'reward',
  /** Mean over groups of the reward std within a group (TRL's reward_std). */
  rewardStd: 'reward_std',
  completionsMeanLength: 'completions/mean_length',
  completionsMinLength: 'completions/min_length',
  completionsMaxLength: 'completions/max_length',
  /** Fraction of completions cut by max new tokens. */
  completionsClippedRatio: 'completions/clipped_ratio',
  kl: 'kl',
  clipRatioLowMean: 'clip_ratio/low_mean',
  clipRatioHighMean: 'clip_ratio/high_mean',
  clipRatioRegionMean: 'clip_ratio/region_mean',
  /** Fraction of groups whose rewards all equal (no learning signal). */
  fracRewardZeroStd: 'frac_reward_zero_std',
  loss: 'loss',
  learningRate: 'learning_rate',
  gradNorm: 'grad_norm',
  entropy: 'entropy',
  numTokens: 'num_tokens',
  /** Seconds spent generating rollouts for the step. */
  generationSeconds: 'timing/generation_s',
  /** Seconds spent in the gradient step. */
  trainingSeconds: 'timing/training_s',
  /** Seconds spent computing rewards. */
  rewardSeconds: 'timing/reward_s',
  /** Generated tokens per second of generation time. */
  tokensPerSecond: 'tokens_per_second',
} as const;

/** `rewards/<name>/mean` or `rewards/<name>/std`, TRL's per-reward-function names. */
export function rewardMetricName(name: string, stat: 'mean' | 'std'): string {
  return `rewards/${name}/${stat}`;
}
