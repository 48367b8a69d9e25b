// The update phase of a GRPO step: the batch's completions become training sequences (the groups the
// rollout selected, minus filtered groups and masked truncations) and numIterations optimizer updates run on them, each accumulating
// gradients over gradientAccumulationSteps micro-batches.
import type { World } from '../distributed/world.js';
import type { LossOptions, TrainerCore, TrainSequence } from '../trainer-core.js';
import type { ResolvedGrpoOptions } from './grpo-options.js';
import { modelTokenMask, type Rollout } from './rollout.js';

/** What the updates of one step did, averaged over its iterations (loss, grad norm) or tokens (kl, clips, entropy). */
export interface GrpoUpdateStats {
  loss: number;
  kl: number;
  /** Clip fractions over tokens (token level) or sequences (sequence level). */
  clipLow: number;
  clipHigh: number;
  clipRegion: number;
  /** TRL clip_ratio/low_min and high_max: the per-sequence extremes, averaged over forward/backward calls. */
  clipLowMin: number;
  clipHighMax: number;
  /** Fraction of tokens where the dual-clip bound held (0 without dual-clip). */
  dualClip: number;
  /** cispo: fraction whose ratio the cap cut. */
  cispoClip: number;
  /** Mean entropy of the policy over the trained completion tokens. */
  entropy: number;
  /** Fraction of tokens the entropy mask trained on (1 without one). */
  entropyKept: number;
  /** The sampler's vs the trainer's log-probs on the first iteration (before any update of this step). */
  sampling?: { logpDiffMean: number; logpDiffMax: number; isRatioMin?: number; isRatioMean?: number; isRatioMax?: number };
  /** The learning rate of the last update. */
  lr: number;
  gradNorm: number;
  /** Sequences trained on (after filtering). */
  sequences: number;
  /** Updates skipped for non-finite values. */
  skipped: number;
}

/**
 * The rollout's completions as training sequences (the groups `trainGroups` selects, minus masked
 * truncations). Each carries the sampler's log-probs; `useRolloutLogprobs` also makes them the old
 * log-probs of the ratio (off-policy or numIterations > 1 without a rollout correction).
 */
export function trainingSequences(rollout: Rollout, c: ResolvedGrpoOptions, useRolloutLogprobs: boolean): TrainSequence[] {
  const G = c.numGenerations;
  const keep = trainedGroups(rollout, c);
  const sequences: TrainSequence[] = [];
  rollout.completions.forEach((x, i) => {
    const group = Math.floor(i / G);
    if (!keep.has(group)) return;
    if (c.maskTruncatedCompletions && x.finishReason === 'length') return;
    const s: TrainSequence = { prompt: rollout.promptTokens[group], completion: x.tokens, advantage: rollout.adv.advantages[i], samplingLogprobs: x.logprobs };
    if (useRolloutLogprobs) s.oldLogprobs = x.logprobs;
    // multi-turn: tool and environment tokens inside the completion are context, not the model's
    const mask = modelTokenMask(x);
    if (mask) s.completionMask = mask;
    sequences.push(s);
  });
  return sequences;
}

/** The groups the update trains on: the rollout's choice (dynamic sampling) or all, minus zero-std ones when filtering. */
function trainedGroups(rollout: Rollout, c: ResolvedGrpoOptions): Set<number> {
  const groups = rollout.trainGroups ?? rollout.adv.zeroStd.map((_, g) => g);
  return new Set(groups.filter((g) => !(c.filterZeroStdGroups && rollout.adv.zeroStd[g])));
}

/** Splits `items` into `parts` contiguous runs whose sizes differ by at most one. */
export function splitEvenly<T>(items: readonly T[], parts: number): T[][] {
  const n = Math.min(parts, items.length);
  const out: T[][] = [];
  let off = 0;
  for (let i = 0; i < n; i++) {
    const size = Math.floor(items.length / n) + (i < items.length % n ? 1 : 0);
    out.push(items.slice(off, off + size));
    off += size;
  }
  return out;
}

// The update's statistics that are means over the step: each forward/backward call's value weighted by
// its completion tokens, its clip units (tokens or sequences, by importance-sampling level) or 1 per call.
const MEAN_WEIGHT = {
  kl: 'tokens',
  entropy: 'tokens',
  entropyKept: 'tokens',
  dualClip: 'tokens',
  clipLow: 'clipUnits',
  clipHigh: 'clipUnits',
  clipRegion: 'clipUnits',
  cispoClip: 'clipUnits',
  clipLowMin: 'calls',
  clipHighMax: 'calls',
} as const satisfies Partial<Record<keyof GrpoUpdateStats, string>>;
type MeanStat = keyof typeof MEAN_WEIGHT;
const MEAN_STATS = Object.keys(MEAN_WEIGHT) as MeanStat[];
const MEAN_WEIGHTS = ['tokens', 'clipUnits', 'calls'] as const;

/** The loss options of a step's updates (step totals over all its sequences, so micro-batches add up). */
function stepLoss(c: ResolvedGrpoOptions, sequences: readonly TrainSequence[]): LossOptions {
  return {
    type: c.lossType,
    epsilonLow: c.epsilon,
    epsilonHigh: c.epsilonHigh,
    beta: c.beta,
    importanceSamplingLevel: c.importanceSamplingLevel,
    klEstimator: c.klEstimator,
    clipRatioC: c.clipRatioC,
    rolloutCorrection: c.rolloutCorrection,
    correctionMin: c.rolloutCorrectionMin,
    correctionMax: c.rolloutCorrectionMax,
    topEntropyQuantile: c.topEntropyQuantile,
    temperature: c.sampling.temperature,
    sequencesInStep: sequences.length,
    tokensInStep: sequences.reduce((n, s) => n + s.completion.length, 0),
    maxCompletionLength: c.sampling.maxCompletionLength,
  };
}

/**
 * numIterations optimizer updates on one batch of rollouts. Only the first update is cancellable through
 * `signal`: once one is applied the step finishes, so a checkpoint always holds whole steps.
 *
 * Old log-probs (the ratio's denominator): without a rollout correction, the sampler's when
 * `useRolloutLogprobs`, else the current ones (ratio 1). With a correction, the trainer's own log-probs
 * before the step's first update (TRL's old_per_token_logps): the first iteration uses the current ones
 * (ratio 1) and returns them for the later iterations, and the IS weight compares them with the sampler's.
 */
export async function runGrpoUpdate(args: {
  trainer: TrainerCore;
  rollout: Rollout;
  config: ResolvedGrpoOptions;
  signal: AbortSignal;
  useRolloutLogprobs: boolean;
  log: (message: string) => void;
  /** Data parallelism: the loss normalisers, the gradients and the statistics are summed over its ranks. */
  world: World;
}): Promise<GrpoUpdateStats> {
  const { trainer, rollout, config: c, signal, world } = args;
  const corrected = c.rolloutCorrection !== 'none';
  const sequences = trainingSequences(rollout, c, args.useRolloutLogprobs && !corrected);
  const local = { sequences: sequences.length, tokens: sequences.reduce((n, s) => n + s.completion.length, 0) };
  const [sequencesInStep, tokensInStep] = world.size === 1 ? [local.sequences, local.tokens] : await world.allReduceSumNumbers([local.sequences, local.tokens]);
  const out: GrpoUpdateStats = {
    loss: 0,
    ...(Object.fromEntries(MEAN_STATS.map((k) => [k, 0])) as Record<MeanStat, number>),
    lr: trainer.nextLearningRate() ?? c.learningRate,
    gradNorm: 0,
    sequences: sequencesInStep,
    skipped: 0,
  };
  if (sequencesInStep === 0) return out; // every group filtered on every rank: no signal, no update
  // a rank with no sequences of its own still takes part in the gradient sum (with zeros) and the step
  const micro = sequences.length > 0 ? splitEvenly(sequences, c.gradientAccumulationSteps) : [];
  const loss = { ...stepLoss(c, sequences), sequencesInStep, tokensInStep };
  const sums = { tokens: 0, clipUnits: 0, calls: 0, diffTokens: 0, diffSum: 0, diffMax: 0, isUnits: 0, isSum: 0, isMin: Infinity, isMax: -Infinity };
  for (let it = 0; it < c.numIterations; it++) {
    await trainer.zeroGrad();
    for (const batch of micro) {
      const s = await trainer.forwardBackward(batch, loss, { entropy: true, signal: it === 0 ? signal : undefined });
      if (it === 0 && corrected && c.numIterations > 1) keepAsOld(batch, s.logprobs);
      out.loss += s.loss / c.numIterations;
      const weights = { tokens: s.completionTokens, clipUnits: s.clipUnits, calls: 1 };
      for (const k of MEAN_STATS) out[k] += s[k] * weights[MEAN_WEIGHT[k]];
      for (const w of MEAN_WEIGHTS) sums[w] += weights[w];
      if (it === 0 && s.samplingLogpDiffMean !== undefined) {
        sums.diffSum += s.samplingLogpDiffMean * s.completionTokens;
        sums.diffTokens += s.completionTokens;
        sums.diffMax = Math.max(sums.diffMax, s.samplingLogpDiffMax ?? 0);
      }
      if (it === 0 && s.isUnits !== undefined && s.isUnits > 0) {
        sums.isUnits += s.isUnits;
        sums.isSum += (s.isRatioMean ?? 0) * s.isUnits;
        sums.isMin = Math.min(sums.isMin, s.isRatioMin ?? Infinity);
        sums.isMax = Math.max(sums.isMax, s.isRatioMax ?? -Infinity);
      }
    }
    if (world.size > 1) await trainer.allReduceGradients();
    const r = await trainer.step();
    out.lr = r.lr;
    out.gradNorm += r.gradNorm / c.numIterations;
    if (!r.applied) {
      out.skipped++;
      if (world.isMain) args.log(`warning: update skipped at step ${rollout.step + 1}: ${r.skippedReason ?? 'non-finite values'}`);
    }
  }
  if (world.size > 1) await reduceStats(world, out, sums);
  for (const k of MEAN_STATS) if (sums[MEAN_WEIGHT[k]] > 0) out[k] /= sums[MEAN_WEIGHT[k]];
  if (sums.diffTokens > 0) {
    out.sampling = { logpDiffMean: sums.diffSum / sums.diffTokens, logpDiffMax: sums.diffMax };
    if (sums.isUnits > 0) Object.assign(out.sampling, { isRatioMin: sums.isMin, isRatioMean: sums.isSum / sums.isUnits, isRatioMax: sums.isMax });
  }
  return out;
}

/** The step's statistics summed over the ranks (extremes by min / max), in place. */
async function reduceStats(world: World, out: GrpoUpdateStats, sums: { [k: string]: number }): Promise<void> {
  const keys = ['loss', ...MEAN_STATS] as const;
  const sumKeys = [...MEAN_WEIGHTS, 'diffSum', 'diffTokens', 'isSum', 'isUnits'] as const;
  const summed = await world.allReduceSumNumbers([...keys.map((k) => out[k]), ...sumKeys.map((k) => sums[k])]);
  keys.forEach((k, i) => (out[k] = summed[i]));
  sumKeys.forEach((k, i) => (sums[k] = summed[keys.length + i]));
  // extremes: max of (diffMax, isMax, -isMin) over ranks
  const all = await world.allGatherJson([sums.diffMax, sums.isMin, sums.isMax].map((v) => (Number.isFinite(v) ? v : null)));
  const finite = (i: number) => all.map((a) => a[i]).filter((v): v is number => v !== null);
  sums.diffMax = Math.max(0, ...finite(0));
  sums.isMin = Math.min(Infinity, ...finite(1));
  sums.isMax = Math.max(-Infinity, ...finite(2));
}

/** Makes the first iteration's log-probs (the trainer's before the update) the old log-probs of the later ones. */
function keepAsOld(batch: TrainSequence[], logprobs: Float64Array): void {
  let o = 0;
  for (const s of batch) {
    s.oldLogprobs = logprobs.subarray(o, o + s.completion.length);
    o += s.completion.length;
  }
}
