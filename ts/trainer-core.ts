// TrainerCore: the library's handle on native LoRA training of a Model. It packs sequences (prompt +
// completion) into the engine's batch format and drives forwardBackward / step / zeroGrad, all off the JS
// thread and in call order with the model's other work; the optimizer state (AdamW moments, step count)
// saves to and loads from a safetensors file. The GRPO rollout loop builds on it. Loss and optimizer fields
// left out are filled from training-defaults.ts here: the engine has no defaults of its own.
import { existsSync } from 'node:fs';
import { HayateError, ModelFormatError } from './errors.js';
import { learningRate, validateSchedule, type LrScheduleOptions } from './lr-schedule.js';
import type { LoraOptions, Model } from './model.js';
import { peftTensorName } from './adapter.js';
import {
  native,
  type NativeCancelToken,
  type NativeForwardBackwardStats,
  type NativeLossOptions,
  type NativeMoments,
  type NativeOptimizerOptions,
  type NativePackedBatch,
  type NativeStepResult,
  type NativeTrainBatch,
  type NativeTrainerHandle,
} from './native.js';
import { floatData, readSafetensors, readSafetensorsHeader, writeSafetensors, type WriteTensor } from './safetensors.js';
import { LEARNING_RATE_DEFAULTS, LOSS_DEFAULTS, OPTIMIZER_DEFAULTS, ROLLOUT_CORRECTION_DEFAULTS, SAMPLING_DEFAULTS, TRAINER_CORE_DEFAULTS, clipRangeDefaults } from './training-defaults.js';

export type LossType = 'grpo' | 'bnpo' | 'dapo' | 'dr_grpo' | 'cispo' | 'sft';
export const LOSS_TYPES: readonly LossType[] = ['grpo', 'bnpo', 'dapo', 'dr_grpo', 'cispo', 'sft'];
export type ImportanceSamplingLevel = 'token' | 'sequence';
export const IMPORTANCE_SAMPLING_LEVELS: readonly ImportanceSamplingLevel[] = ['token', 'sequence'];
export type KlEstimator = 'k1' | 'k2' | 'k3';
export const KL_ESTIMATORS: readonly KlEstimator[] = ['k1', 'k2', 'k3'];
/** How the IS weight exp(trainer - sampler log-prob) corrects a rollout (TRL's vllm_importance_sampling_mode). */
export type RolloutCorrectionMode = 'token_truncate' | 'token_mask' | 'sequence_truncate' | 'sequence_mask';
export const ROLLOUT_CORRECTION_MODES: readonly RolloutCorrectionMode[] = ['token_truncate', 'token_mask', 'sequence_truncate', 'sequence_mask'];

/** AdamW settings; each one left out takes its OPTIMIZER_DEFAULTS value. */
export interface OptimizerOptions {
  /** Default LEARNING_RATE_DEFAULTS.grpo, 5e-6 (overridden per step by a schedule). */
  lr?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Global gradient-norm clipping (default 1.0; 0 disables it). */
  maxGradNorm?: number;
}

export interface TrainerCoreOptions {
  /** Attach fresh adapters with these options; omit to train the adapters already on the model (e.g. loaded). */
  lora?: LoraOptions;
  optimizer?: OptimizerOptions;
  /** Learning rate per step; when set, step() uses it unless given an explicit lr. */
  schedule?: LrScheduleOptions;
  /** Recompute each layer's activations in the backward pass (less memory, ~1/3 more compute). */
  recompute?: boolean;
  /** Completion tokens whose full-vocabulary logits are held at once (default TRAINER_CORE_DEFAULTS, 128). */
  logitsChunk?: number;
}

/** One training sequence: a prompt and its completion; the loss covers the completion tokens. */
export interface TrainSequence {
  prompt: ArrayLike<number>;
  completion: ArrayLike<number>;
  /** GRPO advantage of this completion (required by the GRPO losses). */
  advantage?: number;
  /** Log-probs of the completion tokens under the rollout policy (default: the current policy, ratio 1). */
  oldLogprobs?: ArrayLike<number>;
  /** Log-probs under the reference policy (default: computed with LoRA off when beta != 0). */
  refLogprobs?: ArrayLike<number>;
  /** The sampler's log-probs of the completion tokens (needed by a rollout correction; otherwise only logged). */
  samplingLogprobs?: ArrayLike<number>;
  /**
   * Multi-turn completions: 1 for each token the model generated, 0 for context inside the completion
   * (tool results, environment messages), which carries no loss and counts in no normaliser (default: all 1).
   */
  completionMask?: ArrayLike<number>;
}

/**
 * A loss; each field left out takes its LOSS_DEFAULTS value (temperature: SAMPLING_DEFAULTS'). The
 * formulas: docs/architecture.md, "The GRPO loss".
 */
export interface LossOptions {
  /** 'grpo' (per-sequence mean), 'bnpo'/'dapo' (token mean), 'dr_grpo' (constant normaliser), 'cispo', 'sft'. Default 'dapo'. */
  type?: LossType;
  /**
   * Clip range of the importance ratio: [1 - epsilonLow, 1 + epsilonHigh]; GRPO's `epsilon` is epsilonLow.
   * Defaults: 0.2 and epsilonLow; at sequence level 3e-4 and 4e-4 (GSPO); cispo's epsilonHigh is its cap, 5.
   */
  epsilonLow?: number;
  epsilonHigh?: number;
  /** KL weight against the LoRA-off reference; 0 (default) skips the reference pass. */
  beta?: number;
  /** 'token' (default) or 'sequence' (GSPO: one ratio per completion, exp of its mean log-ratio). */
  importanceSamplingLevel?: ImportanceSamplingLevel;
  /** KL estimator: 'k1', 'k2' or 'k3' (default). */
  klEstimator?: KlEstimator;
  /** Dual-clip: bounds a negative advantage's loss at -clipRatioC * A (0, default: off; else >= 1 + epsilonHigh). */
  clipRatioC?: number;
  /** Weight each token by the IS weight exp(old - sampler log-prob), truncated or masked (default: none). */
  rolloutCorrection?: RolloutCorrectionMode | 'none';
  /** IS-weight bounds (defaults 0 and 3; correctionMax may be Infinity). */
  correctionMin?: number;
  correctionMax?: number;
  /** Train the policy term on the top-q highest-entropy completion tokens of each micro-batch (default 1: all). */
  topEntropyQuantile?: number;
  /** Log-probs under softmax(logits / temperature): use the sampling temperature (default 1). */
  temperature?: number;
  /** Gradient accumulation: the whole step's sequences / completion tokens, so micro-batches add up. */
  sequencesInStep?: number;
  tokensInStep?: number;
  /** dr_grpo's constant normaliser (default: the longest completion in the micro-batch). */
  maxCompletionLength?: number;
}

export type ForwardBackwardStats = NativeForwardBackwardStats;
export type StepStats = NativeStepResult;

function invalid(message: string): HayateError {
  return new HayateError('ERR_INVALID_ARGUMENT', message);
}

/** Every AdamW field, the ones left out from OPTIMIZER_DEFAULTS. */
function resolveOptimizer(o: OptimizerOptions = {}): NativeOptimizerOptions {
  const d = OPTIMIZER_DEFAULTS;
  return {
    lr: o.lr ?? LEARNING_RATE_DEFAULTS.grpo,
    beta1: o.beta1 ?? d.beta1,
    beta2: o.beta2 ?? d.beta2,
    eps: o.eps ?? d.eps,
    weightDecay: o.weightDecay ?? d.weightDecay,
    maxGradNorm: o.maxGradNorm ?? d.maxGradNorm,
  };
}

/** Every loss field the engine takes, the ones left out from LOSS_DEFAULTS (step totals: 0, this batch's). */
function resolveLoss(loss: LossOptions): NativeLossOptions {
  const type = loss.type ?? LOSS_DEFAULTS.type;
  const level = loss.importanceSamplingLevel ?? LOSS_DEFAULTS.importanceSamplingLevel;
  const clip = clipRangeDefaults(type, level, loss.epsilonLow, loss.epsilonHigh);
  return {
    type,
    epsilonLow: clip.epsilon,
    epsilonHigh: clip.epsilonHigh,
    beta: loss.beta ?? LOSS_DEFAULTS.beta,
    importanceSamplingLevel: level,
    klEstimator: loss.klEstimator ?? LOSS_DEFAULTS.klEstimator,
    clipRatioC: loss.clipRatioC ?? LOSS_DEFAULTS.clipRatioC,
    rolloutCorrection: loss.rolloutCorrection ?? 'none',
    correctionMin: loss.correctionMin ?? ROLLOUT_CORRECTION_DEFAULTS.clipMin,
    correctionMax: loss.correctionMax ?? ROLLOUT_CORRECTION_DEFAULTS.clipMax,
    topEntropyQuantile: loss.topEntropyQuantile ?? LOSS_DEFAULTS.topEntropyQuantile,
    sequencesInStep: loss.sequencesInStep ?? 0,
    tokensInStep: loss.tokensInStep ?? 0,
    maxCompletionLength: loss.maxCompletionLength ?? 0,
  };
}

/** Packs sequences into the engine's flat batch (validating lengths and per-token arrays). */
export function packBatch(sequences: readonly TrainSequence[], withLoss = true): NativeTrainBatch {
  if (sequences.length === 0) throw invalid('a training batch needs at least one sequence');
  let total = 0;
  for (const s of sequences) total += s.prompt.length + s.completion.length;
  const tokens = new Int32Array(total);
  const seqLens = new Int32Array(sequences.length);
  const promptLens = new Int32Array(sequences.length);
  let off = 0;
  sequences.forEach((s, i) => {
    if (s.prompt.length < 1) throw invalid(`sequence ${i}: the prompt must have at least one token`);
    tokens.set(s.prompt as ArrayLike<number>, off);
    tokens.set(s.completion as ArrayLike<number>, off + s.prompt.length);
    seqLens[i] = s.prompt.length + s.completion.length;
    promptLens[i] = s.prompt.length;
    off += seqLens[i];
  });
  const batch: NativeTrainBatch = { tokens, seqLens, promptLens };
  if (!withLoss) return batch;
  // `absent`: the value of a sequence that does not give `key` (undefined: all sequences or none must give it)
  const perToken = (key: 'oldLogprobs' | 'refLogprobs' | 'samplingLogprobs' | 'completionMask', absent?: number): Float64Array | undefined => {
    const have = sequences.filter((s) => s[key] !== undefined).length;
    if (have === 0) return undefined;
    if (have !== sequences.length && absent === undefined) throw invalid(`${key} must be given for every sequence of the batch or for none`);
    const out = new Float64Array(sequences.reduce((n, s) => n + s.completion.length, 0));
    let o = 0;
    sequences.forEach((s, i) => {
      const v = s[key];
      if (v === undefined) {
        out.fill(absent as number, o, o + s.completion.length);
        o += s.completion.length;
        return;
      }
      if (v.length !== s.completion.length) throw invalid(`sequence ${i}: ${key} has ${v.length} values for ${s.completion.length} completion tokens`);
      out.set(v, o);
      o += v.length;
    });
    return out;
  };
  const haveAdv = sequences.filter((s) => s.advantage !== undefined).length;
  if (haveAdv > 0) {
    if (haveAdv !== sequences.length) throw invalid('advantage must be given for every sequence of the batch or for none');
    batch.advantages = Float64Array.from(sequences, (s) => s.advantage as number);
  }
  batch.oldLogprobs = perToken('oldLogprobs');
  batch.refLogprobs = perToken('refLogprobs');
  batch.samplingLogprobs = perToken('samplingLogprobs');
  batch.completionMask = perToken('completionMask', 1); // a sequence without a mask: every token is the model's
  return batch;
}

/** Splits per-completion-token values (batch order) back into one array per sequence. */
function splitPerSequence(values: Float64Array, sequences: readonly { completion: ArrayLike<number> }[]): Float64Array[] {
  const out: Float64Array[] = [];
  let o = 0;
  for (const s of sequences) {
    out.push(values.slice(o, o + s.completion.length));
    o += s.completion.length;
  }
  return out;
}

export class TrainerCore {
  readonly model: Model;
  private handle: NativeTrainerHandle | undefined;
  private schedule: LrScheduleOptions | undefined;
  private steps = 0;
  private skipped = 0;

  private constructor(model: Model, handle: NativeTrainerHandle, schedule: LrScheduleOptions | undefined) {
    this.model = model;
    this.handle = handle;
    this.schedule = schedule;
  }

  /** Creates a trainer for the model's LoRA adapters (attaching fresh ones when options.lora is given). */
  static async create(model: Model, options: TrainerCoreOptions = {}): Promise<TrainerCore> {
    if (options.schedule) validateSchedule(options.schedule);
    if (options.lora) await model.attachLora(options.lora);
    else if (!model.lora) throw invalid('the model has no LoRA adapters: pass options.lora or load an adapter first');
    const handle = await model.runNative(undefined, (m) =>
      native().createTrainer(m, {
        optimizer: resolveOptimizer(options.optimizer),
        recompute: options.recompute ?? TRAINER_CORE_DEFAULTS.recompute,
        logitsChunk: options.logitsChunk ?? TRAINER_CORE_DEFAULTS.logitsChunk,
      }),
    );
    return new TrainerCore(model, handle, options.schedule);
  }

  /** Optimizer updates applied so far. */
  get stepCount(): number {
    return this.steps;
  }

  /** Updates skipped because of non-finite losses or gradients. */
  get skippedSteps(): number {
    return this.skipped;
  }

  /**
   * Forward and backward of one micro-batch: accumulates the LoRA gradients of its loss. A non-finite loss
   * is reported (finite: false) and makes the next step() skip instead of applying anything.
   */
  async forwardBackward(sequences: readonly TrainSequence[], loss: LossOptions = {}, options: { entropy?: boolean; signal?: AbortSignal } = {}): Promise<ForwardBackwardStats> {
    const resolved = resolveLoss(loss);
    const type = resolved.type as LossType;
    if (!LOSS_TYPES.includes(type)) throw invalid(`unknown loss type '${String(type)}' (${LOSS_TYPES.join(', ')})`);
    const batch = packBatch(sequences);
    if (type !== 'sft' && !batch.advantages) throw invalid(`the ${type} loss needs an advantage for every sequence`);
    const graph = { temperature: loss.temperature ?? SAMPLING_DEFAULTS.temperature, entropy: options.entropy ?? false };
    return this.run(options.signal, (h, cancel) => h.forwardBackward(batch, resolved, graph, cancel));
  }

  /** Per-token log-probs (and entropies) of each sequence's completion, LoRA on (default) or off; no gradients. */
  async logprobs(
    sequences: readonly Pick<TrainSequence, 'prompt' | 'completion'>[],
    options: { lora?: boolean; temperature?: number; entropy?: boolean; signal?: AbortSignal } = {},
  ): Promise<{ logprobs: Float64Array[]; entropy?: Float64Array[] }> {
    const batch: NativePackedBatch = packBatch(sequences.map((s) => ({ prompt: s.prompt, completion: s.completion })), false);
    const out = await this.run(options.signal, (h, cancel) =>
      h.logprobs(batch, { lora: options.lora ?? true, temperature: options.temperature ?? SAMPLING_DEFAULTS.temperature, entropy: options.entropy ?? false }, cancel),
    );
    const result: { logprobs: Float64Array[]; entropy?: Float64Array[] } = { logprobs: splitPerSequence(out.logprobs, sequences) };
    if (out.entropy) result.entropy = splitPerSequence(out.entropy, sequences);
    return result;
  }

  /** The learning rate the next step() uses without an explicit lr (the schedule's, else the optimizer's). */
  nextLearningRate(): number | undefined {
    return this.schedule ? learningRate(this.steps, this.schedule) : undefined;
  }

  /**
   * One AdamW update from the accumulated gradients (global-norm clipped). Skipped, with the reason and the
   * step number reported, when they are not finite; a skipped step discards them.
   */
  async step(options: { lr?: number } = {}): Promise<StepStats> {
    const lr = options.lr ?? this.nextLearningRate();
    if (lr !== undefined && !(Number.isFinite(lr) && lr >= 0)) throw invalid(`learning rate must be a number >= 0, got ${lr}`);
    const r = await this.run(undefined, (h) => h.step(lr === undefined ? {} : { lr }));
    if (r.applied) this.steps = r.step;
    else this.skipped += 1;
    return r;
  }

  async zeroGrad(): Promise<void> {
    await this.run(undefined, (h) => h.zeroGrad());
  }

  /**
   * Data parallelism: sums the accumulated gradients over the ranks of the MPI job (every rank calls it at
   * the same point, before step()); a rank with unusable gradients makes every rank skip the step.
   */
  async allReduceGradients(): Promise<void> {
    await this.run(undefined, (h) => h.allReduceGradients());
  }

  /** Global L2 norm of the accumulated gradients. */
  async gradNorm(): Promise<number> {
    return this.run(undefined, (h) => h.gradNorm());
  }

  /** Changes the given AdamW fields; the others keep their current values. */
  async setOptimizer(options: OptimizerOptions): Promise<void> {
    const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<NativeOptimizerOptions>;
    await this.run(undefined, (h) => h.setOptimizer(given));
  }

  /**
   * Writes the optimizer state (AdamW moments named after the PEFT tensors they belong to, plus the step
   * counters in the metadata) to a safetensors file, atomically.
   */
  async saveState(path: string): Promise<void> {
    const state = await this.run(undefined, (h) => h.getState());
    const info = this.model.lora;
    if (!info) throw invalid('the model has no LoRA adapters');
    const tensors: WriteTensor[] = [];
    for (const m of state.moments) {
      const mod = info.modules.find((x) => x.layer === m.layer && x.target === m.target)!;
      const a = peftTensorName(m.layer, m.target, 'A'), b = peftTensorName(m.layer, m.target, 'B');
      tensors.push({ name: `${a}.exp_avg`, dtype: 'F32', shape: [info.rank, mod.in], data: Float32Array.from(m.expAvgA) });
      tensors.push({ name: `${a}.exp_avg_sq`, dtype: 'F32', shape: [info.rank, mod.in], data: Float32Array.from(m.expAvgSqA) });
      tensors.push({ name: `${b}.exp_avg`, dtype: 'F32', shape: [mod.out, info.rank], data: Float32Array.from(m.expAvgB) });
      tensors.push({ name: `${b}.exp_avg_sq`, dtype: 'F32', shape: [mod.out, info.rank], data: Float32Array.from(m.expAvgSqB) });
    }
    writeSafetensors(path, tensors, { format: 'hayate-adamw', step: String(state.step), skipped_steps: String(state.skippedSteps) });
  }

  /** Restores the optimizer state written by saveState() (the adapters must have the same modules and shapes). */
  async loadState(path: string): Promise<void> {
    if (!existsSync(path)) throw new HayateError('ERR_NOT_FOUND', `optimizer state not found: ${path}`);
    const file = readSafetensors(path);
    const meta = readSafetensorsHeader(path).metadata;
    const step = Number(meta.step), skipped = Number(meta.skipped_steps ?? 0);
    if (meta.format !== 'hayate-adamw' || !Number.isInteger(step) || step < 0) throw new ModelFormatError('ERR_BAD_SAFETENSORS', `${path} is not a hayate optimizer state (metadata format/step missing)`);
    const info = this.model.lora;
    if (!info) throw invalid('the model has no LoRA adapters');
    const get = (name: string): Float64Array => {
      const t = file.get(name);
      if (!t) throw new ModelFormatError('ERR_BAD_TENSOR', `${path} lacks ${name} (was it saved for other adapters?)`);
      return floatData(t, name);
    };
    const moments: NativeMoments[] = info.modules.map((m) => {
      const a = peftTensorName(m.layer, m.target, 'A'), b = peftTensorName(m.layer, m.target, 'B');
      return { layer: m.layer, target: m.target, expAvgA: get(`${a}.exp_avg`), expAvgSqA: get(`${a}.exp_avg_sq`), expAvgB: get(`${b}.exp_avg`), expAvgSqB: get(`${b}.exp_avg_sq`) };
    });
    if (file.size !== moments.length * 4) throw new ModelFormatError('ERR_BAD_TENSOR', `${path} holds moments for other adapters than the model's`);
    await this.run(undefined, (h) => h.setState({ step, skippedSteps: skipped, moments }));
    this.steps = step;
    this.skipped = skipped;
  }

  /** Frees the optimizer state and gradients (the model and its adapters stay). */
  async dispose(): Promise<void> {
    const h = this.handle;
    this.handle = undefined;
    if (h) await this.model.runNative(undefined, () => h.dispose()).catch(() => undefined);
  }

  private run<T>(signal: AbortSignal | undefined, work: (h: NativeTrainerHandle, cancel: NativeCancelToken) => Promise<T>): Promise<T> {
    return this.model.runNative(signal, (_m, cancel) => {
      const h = this.handle;
      if (!h) throw new HayateError('ERR_DISPOSED', 'trainer has been disposed');
      return work(h, cancel);
    });
  }
}
