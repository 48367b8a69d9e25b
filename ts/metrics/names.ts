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
  /** Lengths of the completions that ended on their own (not cut); 0 when none did. */
  completionsMeanTerminatedLength: 'completions/mean_terminated_length',
  completionsMinTerminatedLength: 'completions/min_terminated_length',
  completionsMaxTerminatedLength: 'completions/max_terminated_length',
  kl: 'kl',
  clipRatioLowMean: 'clip_ratio/low_mean',
  /** The lowest per-completion low-clip fraction (TRL: min over sequences). */
  clipRatioLowMin: 'clip_ratio/low_min',
  clipRatioHighMean: 'clip_ratio/high_mean',
  /** The highest per-completion high-clip fraction. */
  clipRatioHighMax: 'clip_ratio/high_max',
  clipRatioRegionMean: 'clip_ratio/region_mean',
  /** Dual-clip: fraction of tokens where the bound on a negative advantage's loss held (hayate's name). */
  clipRatioDualMean: 'clip_ratio/dual_mean',
  /** cispo: fraction whose ratio the cap cut (TRL). */
  cispoClipRatio: 'cispo_clip_ratio',
  /** Mean |trainer - sampler| log-prob per token and its max (TRL, with a rollout correction or sampler log-probs). */
  samplingLogpDiffMean: 'sampling/sampling_logp_difference/mean',
  samplingLogpDiffMax: 'sampling/sampling_logp_difference/max',
  /** The rollout correction's IS weights after truncation/masking (TRL). */
  isRatioMin: 'sampling/importance_sampling_ratio/min',
  isRatioMean: 'sampling/importance_sampling_ratio/mean',
  isRatioMax: 'sampling/importance_sampling_ratio/max',
  /** top_entropy_quantile < 1: fraction of completion tokens the policy term trained on (hayate's name). */
  entropyKeptRatio: 'entropy/kept_ratio',
  /** Multi-turn rollouts: tool calls per completion and the failed fraction of them (TRL). */
  toolCallFrequency: 'tools/call_frequency',
  toolFailureFrequency: 'tools/failure_frequency',
  /** Assistant turns per completion, and the seconds tools took in the step (hayate's names). */
  turnsMean: 'multi_turn/turns_mean',
  toolSeconds: 'tools/seconds',
  /** Dynamic sampling (with filter_zero_std_groups): generation batches, groups generated, trained, dropped (zero std). */
  genBatches: 'dynamic_sampling/gen_batches',
  groupsGenerated: 'dynamic_sampling/groups_generated',
  groupsKept: 'dynamic_sampling/groups_kept',
  groupsDropped: 'dynamic_sampling/groups_dropped',
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
  /** Wall seconds of the whole step (TRL's step_time). */
  stepTime: 'step_time',
  /** Optimizer updates applied to the adapter the step's rollouts were sampled with (one step off-policy: one step behind). */
  policyVersion: 'rollout/policy_version',
} as const;

/** `rewards/<name>/mean` or `rewards/<name>/std`, TRL's per-reward-function names. */
export function rewardMetricName(name: string, stat: 'mean' | 'std'): string {
  return `rewards/${name}/${stat}`;
}
