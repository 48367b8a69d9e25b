// GRPO advantages, as TRL computes them: completions come in groups of G (one group per prompt);
// A_i = r_i - mean(group), divided by (std + 1e-4) where std is the group's (scale 'group'), the whole
// batch's ('batch') or not at all ('none', Dr. GRPO). Stds are unbiased (n - 1), as torch.std. A group whose
// rewards are all equal carries no signal: it is flagged (frac_reward_zero_std) and may be filtered out.
import { mean, std } from '../metrics/stats.js';
import { invalid } from './validate.js';

export type ScaleRewards = 'group' | 'batch' | 'none';

export const SCALE_EPS = 1e-4;

export interface GroupAdvantages {
  advantages: number[];
  groupMeans: number[];
  groupStds: number[];
  /** Per group: its rewards are all equal (std ~ 0). */
  zeroStd: boolean[];
  /** Fraction of groups with zero std (TRL's frac_reward_zero_std). */
  fracZeroStd: number;
  /** The std each completion was divided by, averaged (TRL's reward_std); the mean group std when unscaled. */
  rewardStd: number;
}

/** Accepts TRL's spellings: true = 'group', false = 'none'. */
export function normalizeScaleRewards(v: ScaleRewards | boolean | string | undefined): ScaleRewards {
  if (v === undefined || v === true || v === 'group' || v === 'true') return 'group';
  if (v === false || v === 'none' || v === 'false') return 'none';
  if (v === 'batch') return 'batch';
  throw invalid(`scaleRewards must be 'group', 'batch' or 'none' (or true / false), got ${JSON.stringify(v)}`);
}

/**
 * The advantages of `rewards` in groups of `groupSize`. `batchStd` overrides the batch std of 'batch'
 * scaling (data parallelism: the std over every rank's rewards, see data-parallel.ts).
 */
export function groupAdvantages(rewards: readonly number[], groupSize: number, scale: ScaleRewards = 'group', batchStd?: number): GroupAdvantages {
  if (!Number.isInteger(groupSize) || groupSize < 2) throw invalid(`group size must be an integer >= 2, got ${groupSize}`);
  if (rewards.length % groupSize !== 0) throw invalid(`${rewards.length} rewards do not split into groups of ${groupSize}`);
  const groups = rewards.length / groupSize;
  const groupMeans: number[] = [];
  const groupStds: number[] = [];
  const zeroStd: boolean[] = [];
  for (let g = 0; g < groups; g++) {
    const r = rewards.slice(g * groupSize, (g + 1) * groupSize);
    groupMeans.push(mean(r));
    const s = std(r);
    groupStds.push(s);
    zeroStd.push(Math.abs(s) <= 1e-8);
  }
  const scaleStd = batchStd ?? (rewards.length > 1 ? std(rewards) : 0);
  const advantages = rewards.map((r, i) => {
    const g = Math.floor(i / groupSize);
    const centered = r - groupMeans[g];
    if (scale === 'group') return centered / (groupStds[g] + SCALE_EPS);
    if (scale === 'batch') return centered / (scaleStd + SCALE_EPS);
    return centered;
  });
  const rewardStd = scale === 'batch' ? scaleStd : groups > 0 ? mean(groupStds) : 0;
  return { advantages, groupMeans, groupStds, zeroStd, fracZeroStd: groups > 0 ? zeroStd.filter(Boolean).length / groups : 0, rewardStd };
}
