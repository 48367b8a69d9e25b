// GrpoTrainer's options: the typed surface (names follow TRL's GRPOConfig in camelCase where one exists),
// validation, and resolution into one configuration with the defaults of training-defaults.ts. Validation
// happens in the constructor, so bad values (G < 2, an empty dataset, a bad loss type) fail before any
// model work starts.
import { availableParallelism } from 'node:os';
import type { Example } from '../data/dataset.js';
import type { World } from '../distributed/world.js';
import { validateTools } from '../tools/load.js';
import type { Tool } from '../tools/types.js';
import type { EnvironmentFactory, MultiTurnConfig } from './multi-turn.js';
import {
  IMPORTANCE_SAMPLING_LEVELS,
  KL_ESTIMATORS,
  LOSS_TYPES,
  ROLLOUT_CORRECTION_MODES,
  type ImportanceSamplingLevel,
  type KlEstimator,
  type LossType,
  type OptimizerOptions,
  type RolloutCorrectionMode,
} from '../trainer-core.js';
import type { LoraOptions, Model } from '../model.js';
import type { RewardFunction, RewardSpec } from '../rewards/index.js';
import {
  GRPO_DEFAULTS,
  LEARNING_RATE_DEFAULTS,
  LOSS_DEFAULTS,
  ROLLOUT_CORRECTION_DEFAULTS,
  RUN_DEFAULTS,
  SAMPLING_DEFAULTS,
  SETTING_BOUNDS,
  clipRangeDefaults,
} from '../training-defaults.js';
import { normalizeScaleRewards, type ScaleRewards } from './advantages.js';
import type { RolloutSampling } from './rollout.js';
import type { ScheduleOptions } from './schedule.js';
import { checkInBounds, checkInt, checkNumber, invalid } from './validate.js';

/** A reward: a built-in name or module spec string ("correctness", "format=0.5", "./r.js:fn"), a spec object, or a plain function. */
export type GrpoReward = string | RewardSpec | RewardFunction;

export type GrpoLossType = Exclude<LossType, 'sft'>;

export interface GrpoTrainerOptions {
  /** The policy: a loaded model whose LoRA adapters are trained in place. */
  model: Model;
  /**
   * The engine rollouts run on (with offPolicySteps 1, generation of the next batch runs while the update
   * runs; the policy's LoRA tensors are copied to it before each batch: a few MB):
   *   - 'shared' (default): a generation context the trainer creates with model.shareBase(): the same base
   *     weights in memory, its own adapters, KV cache and engine lock (CPU: generatorThreads threads; CUDA:
   *     its own stream on the same device); disposed at the end of train();
   *   - a Model: a second engine you loaded (e.g. a full copy of the weights, or a shareBase() context);
   *   - 'none': `model` itself, whose engine runs one native call at a time (nothing native overlaps).
   * With offPolicySteps 0 nothing overlaps and 'shared' means 'none'.
   */
  generator?: Model | GeneratorMode;
  /** CPU threads of the 'shared' generator context (default: half the machine's cores, at least 1; 0: one per hardware thread). */
  generatorThreads?: number;
  /** Prompts with ground-truth answers (loadDataset, syntheticExamples, examplesFromRecords). */
  dataset: readonly Example[];
  /** Rewards (default: correctness + format, the recipe's). */
  rewards?: readonly GrpoReward[];
  /** Weights per reward, in order (TRL reward_weights); overrides weights given in the specs. */
  rewardWeights?: readonly number[];
  /** Time limit of one reward call on one batch, ms (default GRPO_DEFAULTS.rewardTimeoutMs, 30000). */
  rewardTimeoutMs?: number;
  /** Fresh adapters to attach (seeded with `seed` unless lora.seed is set); omit to train the attached ones (default when none: LORA_DEFAULTS, rank 32, alpha 64). */
  lora?: LoraOptions;
  /** Peak learning rate (default LEARNING_RATE_DEFAULTS.grpo, 5e-6, the recipe's). */
  learningRate?: number;
  /** AdamW settings (lr comes from learningRate and the schedule); defaults: OPTIMIZER_DEFAULTS. */
  optimizer?: Omit<OptimizerOptions, 'lr'>;
  schedule?: ScheduleOptions;
  /** Prompts per step (default 4). */
  promptsPerStep?: number;
  /** Completions per prompt G (TRL num_generations; default 8, at least 2). */
  numGenerations?: number;
  /** Micro-batches the step's completions are split into (one forward/backward each; default 1). */
  gradientAccumulationSteps?: number;
  /** Max new tokens per completion (TRL max_completion_length; default 256). */
  maxCompletionLength?: number;
  temperature?: number;
  topP?: number;
  /** 0 = off. */
  topK?: number;
  /** 0 = off. */
  minP?: number;
  /** Stop strings (end a completion; cut from its text). */
  stop?: string[];
  /** Optimizer updates per batch of rollouts (TRL num_iterations, μ; default 1). */
  numIterations?: number;
  /** Advantage scaling: 'group' (default), 'batch' or 'none' (true/false as in TRL). */
  scaleRewards?: ScaleRewards | boolean;
  /** Drop groups whose rewards are all equal from the gradient step (default false). */
  filterZeroStdGroups?: boolean;
  /**
   * Dynamic sampling (DAPO; verl's max_num_gen_batches): with filterZeroStdGroups, generate up to this many
   * batches of promptsPerStep prompts per step until promptsPerStep groups with varied rewards are kept, so
   * the update sees a full batch (default 1: no refill, the batch shrinks).
   */
  maxNumGenBatches?: number;
  /** Leave completions cut at maxCompletionLength out of the loss (TRL mask_truncated_completions; default false). */
  maskTruncatedCompletions?: boolean;
  /** KL weight against the adapter-free base model (default 0: no reference pass). */
  beta?: number;
  /** KL estimator of the beta term: 'k1', 'k2' or 'k3' (default; always against the adapter-free model, no second copy). */
  klEstimator?: KlEstimator;
  /**
   * Clip range: ratio in [1 - epsilon, 1 + epsilonHigh]. Defaults 0.2 and epsilon; at sequence level (GSPO)
   * 3e-4 and 4e-4; for cispo epsilonHigh is the cap eps_max of the detached ratio, default 5.
   */
  epsilon?: number;
  epsilonHigh?: number;
  /** Dual-clip (verl clip_ratio_c, TRL delta): bound a negative advantage's loss at -c A; >= 1 + epsilonHigh (default: off). */
  clipRatioC?: number;
  /** 'dapo' (default: token mean over the step), 'grpo' (per-sequence mean), 'bnpo', 'dr_grpo' (constant normaliser) or 'cispo'. */
  lossType?: GrpoLossType;
  /** 'token' (default) or 'sequence' (GSPO: one ratio per completion, exp of its mean per-token log-ratio). */
  importanceSamplingLevel?: ImportanceSamplingLevel;
  /**
   * Rollout correction (TRL vllm_importance_sampling_correction): weight the loss by the IS weight between
   * the trainer's and the sampler's log-probs. 'auto' (default): on where they compute different numbers
   * (a CUDA generator, or a generator on another backend than the policy's), off on the CPU backend.
   */
  rolloutCorrection?: boolean | 'auto';
  /** How the IS weight corrects (default 'sequence_mask', TRL's). */
  rolloutCorrectionMode?: RolloutCorrectionMode;
  /** IS-weight bounds [min, max] (defaults 0 and 3; max may be Infinity). */
  rolloutCorrectionMin?: number;
  rolloutCorrectionMax?: number;
  /** Train the policy term on the top-q highest-entropy completion tokens only (0 < q <= 1; default 1: all). */
  topEntropyQuantile?: number;
  /** Steps (batches of rollouts) to run; default: enough for numTrainEpochs over the dataset. */
  maxSteps?: number;
  /** Passes over the dataset's prompts (default 1); ignored when maxSteps is set. */
  numTrainEpochs?: number;
  /** Seed of the data order, the sampling and fresh adapters (default 0). */
  seed?: number;
  /** Strict on-policy: generate each batch after the previous update (default false: one step off-policy, overlapped). */
  sync?: boolean;
  /**
   * Batches generated ahead of the update (TRL-style off_policy_steps): 1 (default) = one step off-policy,
   * batch t+1 is sampled with the adapter before update t and generated while that update runs; 0 = strict
   * on-policy (the same as sync: true, which stays as its alias).
   */
  offPolicySteps?: 0 | 1;
  /** Where checkpoints, metrics.jsonl, samples.jsonl and reward_curve.svg go (none written when omitted). */
  outputDir?: string;
  /** Checkpoint every N steps (default 0: only at the end). */
  saveSteps?: number;
  /** Keep only the newest N checkpoints (default: all). */
  saveTotalLimit?: number;
  /** Emit 'sample' (and append to samples.jsonl) every N steps (default 10; 0 = never). */
  sampleSteps?: number;
  /** Completions per 'sample' event (default 2). */
  samplesPerLog?: number;
  /** Resume from this checkpoint directory, or `true` for the newest one in outputDir. */
  resumeFrom?: string | boolean;
  /** When training is aborted, first write a checkpoint of the last completed step (default false; the CLI sets it). */
  checkpointOnAbort?: boolean;
  /** Write reward_curve.svg at the end (default true when outputDir is set). */
  plot?: boolean;
  /** Sequences decoded at once by the generator (default: all of a step's completions, promptsPerStep x G). */
  maxBatch?: number;
  /** KV cache capacity of the generator in tokens (default: the engine's). */
  kvCacheTokens?: number;
  /**
   * Tools the model may call during a completion (multi-turn rollouts, multi-turn.ts): rendered into the
   * prompt through the chat template, called when the model writes a call, answered as tool messages.
   */
  tools?: readonly Tool[];
  /** A multi-turn environment per sample (the world answers each assistant turn; its rewards join the rewards'). */
  environment?: EnvironmentFactory;
  /** Weight of the environment's reward in the total (default 1). */
  environmentWeight?: number;
  /** Tool calls per completion at most (TRL max_tool_calling_iterations; default: no limit but the token budget). */
  maxToolCallingIterations?: number;
  /** Time limit of one tool call, ms (default 10000); a call past it answers the model with an error. */
  toolTimeoutMs?: number;
  /** Where warnings go (default stderr). */
  log?: (message: string) => void;
  /**
   * The data-parallel job this process is a rank of (`await initWorld()` under mpirun or srun; default:
   * this process alone). promptsPerStep is then the global count, split evenly over the ranks; rank 0
   * alone writes metrics, samples, checkpoints and the adapter.
   */
  world?: World;
}

/** Every option resolved: defaults (training-defaults.ts) applied, the step count derived. */
export interface ResolvedGrpoOptions {
  promptsPerStep: number;
  numGenerations: number;
  gradientAccumulationSteps: number;
  /** How each rollout samples (maxBatch resolved to a whole step's completions when not set). */
  sampling: RolloutSampling;
  numIterations: number;
  scaleRewards: ScaleRewards;
  filterZeroStdGroups: boolean;
  maxNumGenBatches: number;
  maskTruncatedCompletions: boolean;
  beta: number;
  klEstimator: KlEstimator;
  epsilon: number;
  epsilonHigh: number;
  clipRatioC: number;
  lossType: GrpoLossType;
  importanceSamplingLevel: ImportanceSamplingLevel;
  /** The correction mode, or 'none' ('auto' resolved against the engines). */
  rolloutCorrection: RolloutCorrectionMode | 'none';
  rolloutCorrectionMin: number;
  rolloutCorrectionMax: number;
  topEntropyQuantile: number;
  /** Tools / environment: multi-turn completions (undefined: single turn). */
  multiTurn?: MultiTurnConfig & { environmentWeight: number };
  learningRate: number;
  totalSteps: number;
  seed: number;
  sync: boolean;
  /** 0 (on-policy, sync) or 1 (one step off-policy). */
  offPolicySteps: 0 | 1;
  /** Where rollouts run: a 'shared' context the trainer creates, options.generator ('model'), or the policy itself ('none'). */
  generator: 'shared' | 'model' | 'none';
  /** CPU threads of the 'shared' context. */
  generatorThreads: number;
  saveSteps: number;
  sampleSteps: number;
  samplesPerLog: number;
  rewardTimeoutMs: number;
  plot: boolean;
}

export function resolveGrpoOptions(o: GrpoTrainerOptions): ResolvedGrpoOptions {
  if (!o || typeof o !== 'object') throw invalid('GrpoTrainer needs an options object');
  if (!o.model) throw invalid('GrpoTrainer: options.model is required (a loaded Model)');
  if (!Array.isArray(o.dataset) || o.dataset.length === 0) throw invalid('GrpoTrainer: the dataset is empty (options.dataset has no examples)');
  const G = o.numGenerations ?? GRPO_DEFAULTS.numGenerations;
  const minG = SETTING_BOUNDS.numGenerations.min;
  if (!Number.isInteger(G) || G < minG) throw invalid(`numGenerations (G) must be an integer >= ${minG}: GRPO compares completions within a group, got ${G}`);
  checkInt('promptsPerStep', o.promptsPerStep, 1);
  checkInt('gradientAccumulationSteps', o.gradientAccumulationSteps, 1);
  checkInt('maxCompletionLength', o.maxCompletionLength, 1);
  checkInBounds('temperature', o.temperature, SETTING_BOUNDS.temperature);
  checkInBounds('topP', o.topP, SETTING_BOUNDS.topP);
  checkInt('topK', o.topK, 0);
  checkInBounds('minP', o.minP, SETTING_BOUNDS.minP);
  checkInt('numIterations', o.numIterations, 1);
  checkInBounds('beta', o.beta, SETTING_BOUNDS.beta);
  checkInBounds('epsilon', o.epsilon, SETTING_BOUNDS.epsilon);
  checkInBounds('epsilonHigh', o.epsilonHigh, SETTING_BOUNDS.epsilonHigh);
  checkInBounds('clipRatioC', o.clipRatioC, SETTING_BOUNDS.clipRatioC);
  checkInBounds('topEntropyQuantile', o.topEntropyQuantile, SETTING_BOUNDS.topEntropyQuantile);
  checkInBounds('rolloutCorrectionMin', o.rolloutCorrectionMin, SETTING_BOUNDS.correctionClip);
  if (o.rolloutCorrectionMax !== Infinity) checkInBounds('rolloutCorrectionMax', o.rolloutCorrectionMax, SETTING_BOUNDS.correctionClip);
  checkInt('maxNumGenBatches', o.maxNumGenBatches, 1);
  checkInt('maxToolCallingIterations', o.maxToolCallingIterations, 1);
  checkInt('toolTimeoutMs', o.toolTimeoutMs, 1);
  if (o.environment !== undefined && typeof o.environment !== 'function') throw invalid('environment must be a function (example) => { reset?(), step(text) }');
  if (o.environmentWeight !== undefined) checkNumber('environmentWeight', o.environmentWeight, -Infinity);
  const tools = o.tools !== undefined ? validateTools(o.tools) : [];
  checkInBounds('learningRate', o.learningRate, SETTING_BOUNDS.learningRate);
  checkInt('maxSteps', o.maxSteps, 1);
  checkInBounds('numTrainEpochs', o.numTrainEpochs, SETTING_BOUNDS.numTrainEpochs);
  checkInt('seed', o.seed, 0);
  checkInt('saveSteps', o.saveSteps, 0);
  checkInt('saveTotalLimit', o.saveTotalLimit, 1);
  checkInt('sampleSteps', o.sampleSteps, 0);
  checkInt('samplesPerLog', o.samplesPerLog, 1);
  checkInt('rewardTimeoutMs', o.rewardTimeoutMs, 1);
  checkInt('maxBatch', o.maxBatch, 1);
  checkInt('kvCacheTokens', o.kvCacheTokens, 1);
  const lossType = o.lossType ?? LOSS_DEFAULTS.type;
  if (!(LOSS_TYPES as readonly string[]).includes(lossType) || lossType === ('sft' as string)) {
    throw invalid(`lossType must be one of grpo, bnpo, dapo, dr_grpo, cispo, got '${String(lossType)}'`);
  }
  const level = o.importanceSamplingLevel ?? LOSS_DEFAULTS.importanceSamplingLevel;
  if (!IMPORTANCE_SAMPLING_LEVELS.includes(level)) throw invalid(`importanceSamplingLevel must be 'token' or 'sequence', got '${String(level)}'`);
  const klEstimator = o.klEstimator ?? LOSS_DEFAULTS.klEstimator;
  if (!KL_ESTIMATORS.includes(klEstimator)) throw invalid(`klEstimator must be one of k1, k2, k3, got '${String(klEstimator)}'`);
  const clip = clipRangeDefaults(lossType, level, o.epsilon, o.epsilonHigh);
  const clipRatioC = o.clipRatioC ?? LOSS_DEFAULTS.clipRatioC;
  if (clipRatioC > 0 && lossType === 'cispo') throw invalid('clipRatioC (dual-clip) bounds the clipped-ratio losses (grpo, bnpo, dapo, dr_grpo); cispo has no ratio clip to bound');
  if (clipRatioC > 0 && clipRatioC < 1 + clip.epsilonHigh) throw invalid(`clipRatioC must be >= 1 + epsilonHigh (${1 + clip.epsilonHigh}): a smaller bound would cut into the clip range itself`);
  if (lossType === 'cispo' && !(clip.epsilonHigh > 0)) throw invalid('cispo caps the importance ratio at epsilonHigh (eps_max), which must be > 0 (recommended 5)');
  const correctionMode = o.rolloutCorrectionMode ?? ROLLOUT_CORRECTION_DEFAULTS.mode;
  if (!ROLLOUT_CORRECTION_MODES.includes(correctionMode)) throw invalid(`rolloutCorrectionMode must be one of ${ROLLOUT_CORRECTION_MODES.join(', ')}, got '${String(correctionMode)}'`);
  const correctionMin = o.rolloutCorrectionMin ?? ROLLOUT_CORRECTION_DEFAULTS.clipMin;
  const correctionMax = o.rolloutCorrectionMax ?? ROLLOUT_CORRECTION_DEFAULTS.clipMax;
  if (!(correctionMax > correctionMin)) throw invalid(`rolloutCorrectionMax (${correctionMax}) must be greater than rolloutCorrectionMin (${correctionMin})`);
  const correction = o.rolloutCorrection ?? ROLLOUT_CORRECTION_DEFAULTS.enabled;
  if (correction !== true && correction !== false && correction !== 'auto') throw invalid(`rolloutCorrection must be true, false or 'auto', got '${String(correction)}'`);
  const maxNumGenBatches = o.maxNumGenBatches ?? GRPO_DEFAULTS.maxNumGenBatches;
  const filterZeroStdGroups = o.filterZeroStdGroups ?? GRPO_DEFAULTS.filterZeroStdGroups;
  if (maxNumGenBatches > 1 && !filterZeroStdGroups) throw invalid('maxNumGenBatches > 1 refills the groups that filterZeroStdGroups drops: set filterZeroStdGroups too');
  if (o.rewards !== undefined && (!Array.isArray(o.rewards) || o.rewards.length === 0)) throw invalid('rewards must be a non-empty list (omit it for the default correctness + format)');
  if (o.rewardWeights !== undefined) {
    const n = o.rewards?.length ?? 2;
    if (!Array.isArray(o.rewardWeights) || o.rewardWeights.length !== n) throw invalid(`rewardWeights must have one weight per reward (${n})`);
    o.rewardWeights.forEach((w, i) => checkNumber(`rewardWeights[${i}]`, w, -Infinity));
  }
  if ((o.saveSteps ?? GRPO_DEFAULTS.saveSteps) > 0 && o.outputDir === undefined) throw invalid('saveSteps needs outputDir');
  if (o.resumeFrom !== undefined && o.resumeFrom !== false && o.outputDir === undefined && typeof o.resumeFrom !== 'string') throw invalid('resumeFrom: true needs outputDir');
  if (o.generator !== undefined && o.generator === o.model) throw invalid('generator must be a second Model instance (or omitted to generate with model)');
  const schedule = resolveOverlap(o);
  const P = o.promptsPerStep ?? GRPO_DEFAULTS.promptsPerStep;
  const worldSize = o.world?.size ?? 1;
  if (P % worldSize !== 0) throw invalid(`promptsPerStep (${P}, the global batch) must split evenly over the ${worldSize} ranks of the job`);
  const epochs = o.numTrainEpochs ?? RUN_DEFAULTS.numTrainEpochs;
  const totalSteps = o.maxSteps ?? Math.max(1, Math.ceil((o.dataset.length * epochs) / P));
  return {
    promptsPerStep: P,
    numGenerations: G,
    gradientAccumulationSteps: o.gradientAccumulationSteps ?? RUN_DEFAULTS.gradientAccumulationSteps,
    sampling: {
      maxCompletionLength: o.maxCompletionLength ?? SAMPLING_DEFAULTS.maxCompletionLength,
      temperature: o.temperature ?? SAMPLING_DEFAULTS.temperature,
      topP: o.topP ?? SAMPLING_DEFAULTS.topP,
      topK: o.topK ?? SAMPLING_DEFAULTS.topK,
      minP: o.minP ?? SAMPLING_DEFAULTS.minP,
      stop: o.stop ?? [],
      maxBatch: o.maxBatch ?? P * G,
      kvCacheTokens: o.kvCacheTokens,
    },
    numIterations: o.numIterations ?? GRPO_DEFAULTS.numIterations,
    scaleRewards: normalizeScaleRewards(o.scaleRewards ?? GRPO_DEFAULTS.scaleRewards),
    filterZeroStdGroups,
    maxNumGenBatches,
    maskTruncatedCompletions: o.maskTruncatedCompletions ?? GRPO_DEFAULTS.maskTruncatedCompletions,
    beta: o.beta ?? LOSS_DEFAULTS.beta,
    klEstimator,
    epsilon: clip.epsilon,
    epsilonHigh: clip.epsilonHigh,
    clipRatioC,
    lossType,
    importanceSamplingLevel: level,
    rolloutCorrection: resolveRolloutCorrection(correction, correctionMode, o.model, typeof o.generator === 'object' ? o.generator : undefined),
    rolloutCorrectionMin: correctionMin,
    rolloutCorrectionMax: correctionMax,
    topEntropyQuantile: o.topEntropyQuantile ?? LOSS_DEFAULTS.topEntropyQuantile,
    multiTurn:
      tools.length > 0 || o.environment !== undefined
        ? {
            tools,
            environment: o.environment,
            environmentWeight: o.environmentWeight ?? 1,
            maxToolCallingIterations: o.maxToolCallingIterations ?? Number.MAX_SAFE_INTEGER,
            toolTimeoutMs: o.toolTimeoutMs ?? GRPO_DEFAULTS.toolTimeoutMs,
          }
        : undefined,
    learningRate: o.learningRate ?? LEARNING_RATE_DEFAULTS.grpo,
    totalSteps,
    seed: o.seed ?? RUN_DEFAULTS.seed,
    ...schedule,
    saveSteps: o.saveSteps ?? GRPO_DEFAULTS.saveSteps,
    sampleSteps: o.sampleSteps ?? GRPO_DEFAULTS.sampleSteps,
    samplesPerLog: o.samplesPerLog ?? GRPO_DEFAULTS.samplesPerLog,
    rewardTimeoutMs: o.rewardTimeoutMs ?? GRPO_DEFAULTS.rewardTimeoutMs,
    plot: o.plot ?? GRPO_DEFAULTS.plot,
  };
}

/** Where rollouts run, as an option: a generation context sharing the policy's base, or the policy itself. */
export type GeneratorMode = 'shared' | 'none';

/** Half the cores (at least 1): the default threads of a 'shared' generator context next to the trainer. */
export function defaultGeneratorThreads(cores = availableParallelism()): number {
  return Math.max(1, Math.floor(cores / 2));
}

/** offPolicySteps (sync is its alias), the rollout engine and its threads. */
function resolveOverlap(o: GrpoTrainerOptions): Pick<ResolvedGrpoOptions, 'sync' | 'offPolicySteps' | 'generator' | 'generatorThreads'> {
  if (o.offPolicySteps !== undefined && o.offPolicySteps !== 0 && o.offPolicySteps !== 1) {
    throw invalid(`offPolicySteps must be 0 (on-policy) or 1 (one step off-policy), got ${String(o.offPolicySteps)}`);
  }
  if (o.sync !== undefined && typeof o.sync !== 'boolean') throw invalid(`sync must be a boolean, got ${String(o.sync)}`);
  if (o.sync === true && o.offPolicySteps === 1) throw invalid('sync: true means offPolicySteps: 0; set one of them (offPolicySteps: 1 is one step off-policy)');
  const offPolicySteps = o.offPolicySteps ?? (o.sync === true ? 0 : GRPO_DEFAULTS.offPolicySteps);
  const g = o.generator;
  if (g !== undefined && typeof g !== 'object' && g !== 'shared' && g !== 'none') {
    throw invalid(`generator must be 'shared', 'none' or a Model, got ${JSON.stringify(g)}`);
  }
  checkInt('generatorThreads', o.generatorThreads, 0);
  const mode = typeof g === 'object' ? 'model' : (g ?? GRPO_DEFAULTS.generator);
  return {
    sync: offPolicySteps === 0,
    offPolicySteps,
    // on-policy, nothing overlaps: a shared context would only cost memory
    generator: mode === 'shared' && offPolicySteps === 0 ? 'none' : mode,
    generatorThreads: o.generatorThreads ?? defaultGeneratorThreads(),
  };
}

/**
 * 'auto' switches the correction on where the sampler's log-probs are not the trainer's numbers: a CUDA
 * generator (bf16, its own decode kernels) or a generator on another backend than the policy's.
 */
export function resolveRolloutCorrection(enabled: boolean | 'auto', mode: RolloutCorrectionMode, model: Model, generator: Model | undefined): RolloutCorrectionMode | 'none' {
  if (enabled === false) return 'none';
  if (enabled === true) return mode;
  const sampler = (generator ?? model).info?.backend;
  const differs = sampler === 'cuda' || (generator !== undefined && generator.info?.backend !== model.info?.backend);
  return differs ? mode : 'none';
}

/** One line saying which loss a run trains with, e.g. for the CLI's start-up output. */
export function describeLoss(c: ResolvedGrpoOptions): string {
  const level = c.importanceSamplingLevel === 'sequence' ? 'sequence (GSPO)' : 'token';
  const policy =
    c.lossType === 'cispo'
      ? `cispo, ${level} ratios capped at ${c.epsilonHigh} (detached)`
      : `${c.lossType}, ${level} ratios clipped to [${1 - c.epsilon}, ${1 + c.epsilonHigh}]${c.clipRatioC > 0 ? `, dual-clip ${c.clipRatioC}` : ''}`;
  const parts = [policy, c.beta > 0 ? `KL ${c.klEstimator} x ${c.beta}` : 'no KL term'];
  parts.push(c.rolloutCorrection === 'none' ? 'no rollout correction' : `rollout correction ${c.rolloutCorrection} [${c.rolloutCorrectionMin}, ${c.rolloutCorrectionMax}]`);
  if (c.topEntropyQuantile < 1) parts.push(`top ${c.topEntropyQuantile} entropy tokens`);
  if (c.filterZeroStdGroups) parts.push(c.maxNumGenBatches > 1 ? `zero-std groups refilled (up to ${c.maxNumGenBatches} generation batches)` : 'zero-std groups dropped');
  return `loss: ${parts.join('; ')}`;
}
