// The trainer's reward list → RewardPool specs: strings are parsed (built-in names, module paths with
// optional ":export" and "=weight"), plain functions become in-process rewards named after the function, and
// rewardWeights (TRL's reward_weights) override the weights in order.
import { defaultRewardSpecs, parseRewardSpec, type RewardSpec } from '../rewards/index.js';
import type { GrpoReward } from './grpo-options.js';

export function toRewardSpecs(rewards: readonly GrpoReward[] | undefined, weights?: readonly number[], cwd?: string): RewardSpec[] {
  const list: RewardSpec[] = rewards === undefined
    ? defaultRewardSpecs()
    : rewards.map((r, i) => {
        if (typeof r === 'string') return parseRewardSpec(r, cwd);
        if (typeof r === 'function') return { kind: 'function' as const, name: r.name && r.name !== 'anonymous' ? r.name : `reward_${i}`, fn: r };
        return { ...r };
      });
  if (weights) list.forEach((s, i) => (s.weight = weights[i]));
  return list;
}
