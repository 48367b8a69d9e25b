// Dynamic sampling (DAPO; verl's filter_groups with max_num_gen_batches): a group whose G rewards are all
// equal has zero advantage and teaches nothing, so filtering it shrinks the update's batch. With refill,
// the step draws further batches of prompts until promptsPerStep groups with varied rewards are kept or
// maxNumGenBatches batches were generated; the update trains on the first promptsPerStep kept groups. The
// step's reward metrics cover every completion generated (what the policy produced), the update only
// the kept groups.
import { mean, std } from '../metrics/stats.js';
import type { RewardScores } from '../rewards/pool.js';
import { groupAdvantages, type ScaleRewards } from './advantages.js';
import type { Rollout } from './rollout.js';

/** Groups with varied rewards in `rollout`, in order. */
export function keptGroups(rollout: Rollout): number[] {
  return rollout.adv.zeroStd.flatMap((zero, g) => (zero ? [] : [g]));
}

/** The reward scores of several batches as one (metrics recomputed over all of them). */
function mergeScores(parts: readonly RewardScores[]): RewardScores {
  const first = parts[0];
  const values: Record<string, number[]> = {};
  const metrics: Record<string, number> = {};
  for (const name of first.names) {
    values[name] = parts.flatMap((p) => p.values[name]);
    metrics[`rewards/${name}/mean`] = values[name].length > 0 ? mean(values[name]) : 0;
    metrics[`rewards/${name}/std`] = values[name].length > 0 ? std(values[name]) : 0;
  }
  const total = parts.flatMap((p) => p.total);
  metrics.reward = total.length > 0 ? mean(total) : 0;
  return { names: first.names, weights: first.weights, values, total, warnings: parts.flatMap((p) => p.warnings), metrics };
}

/**
 * One step's rollout from its generation batches, in draw order: all completions, advantages over all of
 * them (batch scaling sees everything generated) and the groups the update trains on.
 */
export function mergeRollouts(parts: readonly Rollout[], numGenerations: number, scaleRewards: ScaleRewards, promptsPerStep: number): Rollout {
  const scores = mergeScores(parts.map((p) => p.scores));
  const merged: Rollout = {
    step: parts[0].step,
    indices: parts.flatMap((p) => p.indices),
    examples: parts.flatMap((p) => p.examples),
    promptTokens: parts.flatMap((p) => p.promptTokens),
    completions: parts.flatMap((p) => p.completions),
    scores,
    adv: groupAdvantages(scores.total, numGenerations, scaleRewards),
    generationSeconds: parts.reduce((s, p) => s + p.generationSeconds, 0),
    rewardSeconds: parts.reduce((s, p) => s + p.rewardSeconds, 0),
    generatedTokens: parts.reduce((s, p) => s + p.generatedTokens, 0),
    genBatches: parts.reduce((s, p) => s + p.genBatches, 0),
    promptsDrawn: parts[parts.length - 1].promptsDrawn,
  };
  if (parts.some((p) => p.episodes !== undefined)) merged.episodes = parts.flatMap((p) => p.episodes ?? []);
  merged.trainGroups = keptGroups(merged).slice(0, promptsPerStep);
  return merged;
}
