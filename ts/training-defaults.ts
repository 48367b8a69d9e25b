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
  maxCompletionLength: 256,
  temperature: 1,
  topP: 1,
  topK: 0,
  minP: 0,
} as const;

/** The GRPO loss: clipped ratio in [1 - epsilon, 1 + epsilonHigh] (epsilonHigh defaults to epsilon), no KL. */
export const LOSS_DEFAULTS = {
  type: 'grpo',
  epsilon: 0.2,
  beta: 0,
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
  maskTruncatedCompletions: false,
  sync: false,
  saveSteps: 0,
  sampleSteps: 10,
  samplesPerLog: 2,
  rewardTimeoutMs: 30_000,
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
