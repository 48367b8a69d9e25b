// Data-parallel GRPO: what the ranks of a job exchange, and when. Every rank runs the same step loop on its
// shard of each step's prompts (rank r takes prompts r*P/N .. (r+1)*P/N - 1 of the global batch, whole
// groups); the exchanges below are collectives, so every rank makes them in the same order, from the step
// loop only (never from a rollout's asynchronous chain, which runs at a different moment on each rank):
//   take():   the global batch std ('batch' scaling), dynamic sampling's global kept count
//   update:   the step's global sequence and token counts (the loss normalisers), the summed gradients,
//             the reduced loss statistics
//   metrics:  every rank's rollout summary, merged in global order on every rank (rank 0 writes it)
// With one process every exchange is the identity, and the run is what it was before data parallelism.
import type { World } from '../distributed/world.js';
import type { Completion } from '../model.js';
import { groupAdvantages, type ScaleRewards } from './advantages.js';
import { mergeRollouts } from './dynamic-sampling.js';
import { modelTokenCount, type Rollout } from './rollout.js';

/** The unbiased std of every rank's rewards (two passes: the global mean, then the squared deviations). */
export async function globalBatchStd(world: World, rewards: readonly number[]): Promise<number> {
  const [sum, n] = await world.allReduceSumNumbers([rewards.reduce((a, b) => a + b, 0), rewards.length]);
  if (n < 2) return 0;
  const m = sum / n;
  const [ss] = await world.allReduceSumNumbers([rewards.reduce((a, r) => a + (r - m) * (r - m), 0)]);
  return Math.sqrt(ss / (n - 1));
}

/** A rollout's advantages recomputed with the global batch std ('batch' scaling; other scalings are local). */
export async function withGlobalAdvantages(world: World, rollout: Rollout, numGenerations: number, scale: ScaleRewards): Promise<Rollout> {
  if (world.size === 1 || scale !== 'batch') return rollout;
  const batchStd = await globalBatchStd(world, rollout.scores.total);
  return { ...rollout, adv: groupAdvantages(rollout.scores.total, numGenerations, scale, batchStd) };
}

/** What the metrics need of a rollout, small enough to gather every step (no texts, no log-probs). */
interface RolloutSummary {
  rollout: Omit<Rollout, 'completions' | 'examples'> & { completions: Pick<Completion, 'finishReason'>[]; lengths: number[] };
}

function summarize(r: Rollout): RolloutSummary {
  const { completions, examples: _examples, ...rest } = r;
  return { rollout: { ...rest, completions: completions.map((c) => ({ finishReason: c.finishReason })), lengths: completions.map(modelTokenCount) } };
}

function expand(s: RolloutSummary): Rollout {
  const { lengths, completions, ...rest } = s.rollout;
  return {
    ...rest,
    examples: [],
    completions: completions.map((c, i) => ({ text: '', tokens: new Array<number>(lengths[i]).fill(0), logprobs: [], finishReason: c.finishReason })),
  };
}

/**
 * The step's rollout over every rank, for its metrics line: groups in rank order (which is the global
 * order for one generation batch), rewards and advantages over all of them, the slowest rank's timings.
 * Token ids are not exchanged, only lengths: the merged completions carry placeholder tokens.
 */
export async function globalRolloutView(world: World, rollout: Rollout, numGenerations: number, scale: ScaleRewards): Promise<Rollout> {
  if (world.size === 1) return rollout;
  const parts = (await world.allGatherJson(summarize(rollout))).map(expand);
  const trained = parts.reduce((n, p) => n + (p.trainGroups?.length ?? p.adv.zeroStd.length), 0);
  const merged = mergeRollouts(parts, numGenerations, scale, Number.MAX_SAFE_INTEGER); // advantages over all ranks' rewards
  merged.trainGroups = parts.some((p) => p.trainGroups !== undefined) ? Array.from({ length: trained }, (_, i) => i) : undefined;
  merged.genBatches = parts[0].genBatches;
  merged.generationSeconds = Math.max(...parts.map((p) => p.generationSeconds));
  merged.rewardSeconds = Math.max(...parts.map((p) => p.rewardSeconds));
  return merged;
}

/**
 * Dynamic sampling over the whole job: the groups the step trains on are the first `promptsPerStep` (the
 * global count) with varied rewards, in global order (generation batch by batch, rank by rank within one),
 * as one process would pick them. Returns this rank's share, as indices into its merged rollout, and how
 * many were kept globally.
 */
export async function globalTrainGroups(world: World, parts: readonly Rollout[], promptsPerStep: number): Promise<{ local: number[]; kept: number }> {
  const mine = parts.map((p) => p.adv.zeroStd);
  const all = world.size === 1 ? [mine] : await world.allGatherJson(mine);
  const local: number[] = [];
  let kept = 0;
  for (let k = 0; k < parts.length; k++) {
    for (let r = 0; r < all.length; r++) {
      all[r][k].forEach((zero, g) => {
        if (zero || kept >= promptsPerStep) return;
        kept++;
        if (r === world.rank) local.push(offsetOf(mine, k) + g);
      });
    }
  }
  return { local, kept };
}

/** Index of part k's first group in the concatenation of the parts. */
function offsetOf(parts: readonly (readonly boolean[])[], k: number): number {
  let o = 0;
  for (let i = 0; i < k; i++) o += parts[i].length;
  return o;
}
