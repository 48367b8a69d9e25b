// The one definition of every training setting's default, and of its bounds where more than one layer
// checks it. GrpoTrainer and SftTrainer resolve their options from here, TrainerCore fills the loss and
// optimizer fields left out from here, and the `hayate train` settings table (so its --help and the
// README table generated from it) shows these values. The native engine has no defaults of its own for
// training hyperparameters: every loss, optimizer and LoRA field reaches it explicitly, from here or from
// the caller. It sits below the trainers and TrainerCore so that all of them can import it.
//
// Names: GRPO's clip range is `epsilon` / `epsilonHigh` (TRL's names); TrainerCore's loss options call the
// same two values `epsilonLow` / `epsilonHigh`, and the engine `epsilon_low` / `epsilon_high`.

/** A numeric range: `min`/`max` are inclusive unless the matching `*Open` flag is set. */
export interface NumberBounds {
  min?: number;
  max?: number;
  minOpen?: boolean;
  maxOpen?: boolean;
}

/** Fresh LoRA adapters (PEFT's r, lora_alpha, use_rslora): the reference recipe's rank 32, alpha 64. */
export const LORA_DEFAULTS = {
  rank: 32,
  alpha: 64,
  rslora: false,
} as const;

/** AdamW (torch's betas and eps), no weight decay, global gradient-norm clipping at 1. */
export const OPTIMIZER_DEFAULTS = {
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 0,
  maxGradNorm: 1,
} as const;

/** Peak learning rates: GRPO's is the recipe's; TrainerCore (whose loss defaults to GRPO) uses it too. */
export const LEARNING_RATE_DEFAULTS = {
  grpo: 5e-6,
  sft: 1e-4,
} as const;

/** Learning-rate schedule after warmup, and warmup as a fraction of all updates. */
export const SCHEDULE_DEFAULTS = {
  type: 'constant',
  warmupRatio: 0,
} as const;

/** Rollout sampling (top-p 1, top-k 0 and min-p 0 are off). The training log-probs are taken at the same temperature. */
export const SAMPLING_DEFAULTS = {
  maxCompletionLength: 512,
  temperature: 1,
  topP: 1,
  topK: 0,
  minP: 0,
} as const;

/**
 * The GRPO loss (TRL's current defaults): loss type dapo (token-level normalisation), clipped ratio in
 * [1 - epsilon, 1 + epsilonHigh] (epsilonHigh defaults to epsilon; see clipRangeDefaults for GSPO and
 * cispo), token-level ratios, no KL term (beta 0; the k3 estimator when beta > 0), no dual-clip (verl's
 * clip_ratio_c is 3 when switched on), every completion token trained (top_entropy_quantile 1).
 */
export const LOSS_DEFAULTS = {
  type: 'dapo',
  epsilon: 0.2,
  beta: 0,
  importanceSamplingLevel: 'token',
  klEstimator: 'k3',
  clipRatioC: 0,
  topEntropyQuantile: 1,
  /** GSPO's clip range (its paper's 3e-4 / 4e-4): sequence-level ratios sit much closer to 1 than token ones. */
  sequenceEpsilon: 3e-4,
  sequenceEpsilonHigh: 4e-4,
  /** cispo's cap eps_max on the detached ratio (TRL's and ScaleRL's recommended 5.0). */
  cispoEpsilonHigh: 5,
} as const;

/** The clip range a loss uses when epsilon / epsilonHigh are not given: GSPO's own small one at sequence level, cispo's cap. */
export function clipRangeDefaults(type: string, level: string, epsilon?: number, epsilonHigh?: number): { epsilon: number; epsilonHigh: number } {
  const sequence = level === 'sequence';
  const low = epsilon ?? (sequence ? LOSS_DEFAULTS.sequenceEpsilon : LOSS_DEFAULTS.epsilon);
  const high = epsilonHigh ?? (type === 'cispo' ? LOSS_DEFAULTS.cispoEpsilonHigh : sequence && epsilon === undefined ? LOSS_DEFAULTS.sequenceEpsilonHigh : low);
  return { epsilon: low, epsilonHigh: high };
}

/**
 * Rollout correction (TRL's vllm_importance_sampling_*): importance weights exp(trainer - sampler log-prob)
 * per sequence, masked outside [clipMin, clipMax]. 'auto' switches it on only where the sampler and the
 * trainer compute different numbers: a CUDA generator (bf16 weights and activations, its own decode
 * kernels) or a generator engine on another backend than the policy's; on the CPU backend both run the
 * same f32 arithmetic and their log-probs agree to ~1e-6 (logged as sampling/sampling_logp_difference).
 */
export const ROLLOUT_CORRECTION_DEFAULTS = {
  enabled: 'auto',
  mode: 'sequence_mask',
  clipMin: 0,
  clipMax: 3,
} as const;

/** What GRPO and SFT runs share: the seed, passes over the data and micro-batches per update. */
export const RUN_DEFAULTS = {
  seed: 0,
  numTrainEpochs: 1,
  gradientAccumulationSteps: 1,
} as const;

/** A GRPO run: batch shape, updates per batch, advantages, logging and checkpoint cadence. */
export const GRPO_DEFAULTS = {
  promptsPerStep: 4,
  numGenerations: 8,
  numIterations: 1,
  scaleRewards: 'group',
  filterZeroStdGroups: false,
  /** Generation batches per step at most when refilling filtered groups (1: no refill). */
  maxNumGenBatches: 1,
  maskTruncatedCompletions: false,
  sync: false,
  /** Batches generated ahead of the update: 1 = one step off-policy (generation overlaps the update), 0 = on-policy (TRL-style off_policy_steps). */
  offPolicySteps: 1,
  /** The rollout engine when offPolicySteps is 1: a generation context sharing the policy's base weights (Model.shareBase). */
  generator: 'shared',
  saveSteps: 0,
  sampleSteps: 10,
  samplesPerLog: 2,
  rewardTimeoutMs: 30_000,
  /** Time limit of one tool call in multi-turn rollouts. */
  toolTimeoutMs: 10_000,
  plot: true,
} as const;

/** An SFT run. */
export const SFT_DEFAULTS = {
  batchSize: 8,
  shuffle: true,
  appendEos: true,
} as const;

/** TrainerCore's memory knobs (they do not change results). */
export const TRAINER_CORE_DEFAULTS = {
  /** Completion tokens whose full-vocabulary logits are held at once. */
  logitsChunk: 128,
  recompute: false,
} as const;

/** Bounds checked both by the CLI (on flags and config keys) and by the trainers or the engine (on options). */
export const SETTING_BOUNDS = {
  numGenerations: { min: 2 },
  temperature: { min: 0, minOpen: true },
  topP: { min: 0, max: 1, minOpen: true },
  minP: { min: 0, max: 1 },
  epsilon: { min: 0, max: 1, maxOpen: true },
  epsilonHigh: { min: 0 },
  beta: { min: 0 },
  clipRatioC: { min: 0 },
  topEntropyQuantile: { min: 0, max: 1, minOpen: true },
  correctionClip: { min: 0 },
  learningRate: { min: 0 },
  numTrainEpochs: { min: 0, minOpen: true },
  warmupRatio: { min: 0, max: 1 },
  adamBeta: { min: 0, max: 1, maxOpen: true },
  adamEpsilon: { min: 0, minOpen: true },
} as const satisfies Record<string, NumberBounds>;

/** Whether `v` lies within `b`. */
export function inBounds(v: number, b: NumberBounds): boolean {
  if (b.min !== undefined && (v < b.min || (b.minOpen === true && v === b.min))) return false;
  if (b.max !== undefined && (v > b.max || (b.maxOpen === true && v === b.max))) return false;
  return true;
}

/** `b` as an interval, e.g. "[0, 1)" or "(0, ∞)". */
export function formatBounds(b: NumberBounds): string {
  const lo = b.min === undefined ? '(-∞' : `${b.minOpen ? '(' : '['}${b.min}`;
  const hi = b.max === undefined ? '∞)' : `${b.max}${b.maxOpen ? ')' : ']'}`;
  return `${lo}, ${hi}`;
}
