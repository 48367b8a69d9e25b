// The update phase of a GRPO step: the batch's completions become training sequences (minus filtered
// groups and masked truncations) and numIterations optimizer updates run on them, each accumulating
// gradients over gradientAccumulationSteps micro-batches.
import type { TrainerCore, TrainSequence } from '../trainer-core.js';
import type { ResolvedGrpoOptions } from './grpo-options.js';
import type { Rollout } from './rollout.js';

/** What the updates of one step did, averaged over its iterations (loss, grad norm) or tokens (kl, clips). */
export interface GrpoUpdateStats {
  loss: number;
  kl: number;
  clipLow: number;
  clipHigh: number;
  clipRegion: number;
  /** The learning rate of the last update. */
  lr: number;
  gradNorm: number;
  /** Sequences trained on (after filtering). */
  sequences: number;
  /** Updates skipped for non-finite values. */
  skipped: number;
}

/** The rollout's completions as training sequences; `useRolloutLogprobs` gives each its sampling log-probs. */
export function trainingSequences(rollout: Rollout, c: ResolvedGrpoOptions, useRolloutLogprobs: boolean): TrainSequence[] {
  const G = c.numGenerations;
  const sequences: TrainSequence[] = [];
  rollout.completions.forEach((x, i) => {
    const group = Math.floor(i / G);
    if (c.filterZeroStdGroups && rollout.adv.zeroStd[group]) return;
    if (c.maskTruncatedCompletions && x.finishReason === 'length') return;
    const s: TrainSequence = { prompt: rollout.promptTokens[group], completion: x.tokens, advantage: rollout.adv.advantages[i] };
    if (useRolloutLogprobs) s.oldLogprobs = x.logprobs;
    sequences.push(s);
  });
  return sequences;
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

/**
 * numIterations optimizer updates on one batch of rollouts. Only the first update is cancellable through
 * `signal`: once one is applied the step finishes, so a checkpoint always holds whole steps.
 */
export async function runGrpoUpdate(args: {
  trainer: TrainerCore;
  rollout: Rollout;
  config: ResolvedGrpoOptions;
  signal: AbortSignal;
  useRolloutLogprobs: boolean;
  log: (message: string) => void;
}): Promise<GrpoUpdateStats> {
  const { trainer, rollout, config: c, signal } = args;
  const sequences = trainingSequences(rollout, c, args.useRolloutLogprobs);
  const out: GrpoUpdateStats = { loss: 0, kl: 0, clipLow: 0, clipHigh: 0, clipRegion: 0, lr: trainer.nextLearningRate() ?? c.learningRate, gradNorm: 0, sequences: sequences.length, skipped: 0 };
  if (sequences.length === 0) return out; // every group filtered: no signal, no update
  const micro = splitEvenly(sequences, c.gradientAccumulationSteps);
  const tokensInStep = sequences.reduce((n, s) => n + s.completion.length, 0);
  const loss = {
    type: c.lossType,
    epsilonLow: c.epsilon,
    epsilonHigh: c.epsilonHigh,
    beta: c.beta,
    temperature: c.sampling.temperature,
    sequencesInStep: sequences.length,
    tokensInStep,
    maxCompletionLength: c.sampling.maxCompletionLength,
  };
  let tokens = 0;
  for (let it = 0; it < c.numIterations; it++) {
    await trainer.zeroGrad();
    for (const batch of micro) {
      const s = await trainer.forwardBackward(batch, loss, { signal: it === 0 ? signal : undefined });
      out.loss += s.loss / c.numIterations;
      out.kl += s.kl * s.completionTokens;
      out.clipLow += s.clipLow * s.completionTokens;
      out.clipHigh += s.clipHigh * s.completionTokens;
      out.clipRegion += s.clipRegion * s.completionTokens;
      tokens += s.completionTokens;
    }
    const r = await trainer.step();
    out.lr = r.lr;
    out.gradNorm += r.gradNorm / c.numIterations;
    if (!r.applied) {
      out.skipped++;
      args.log(`warning: update skipped at step ${rollout.step + 1}: ${r.skippedReason ?? 'non-finite values'}`);
    }
  }
  if (tokens > 0) {
    out.kl /= tokens;
    out.clipLow /= tokens;
    out.clipHigh /= tokens;
    out.clipRegion /= tokens;
  }
  return out;
}
