// Built-in rewards of the reference recipe, each a RewardFunction built from typed options:
//   correctness  1 when the completion's final answer (see extract.ts) equals extra.answers[i], else 0
//   format       `value` (0.1) when the completion holds a complete, non-empty \boxed{...}, else 0
//   length       linear length penalty: 0 up to `target`, falling to -1 at `maxLength`
//   overlong     DAPO's soft overlong punishment: 0 up to maxLength - buffer, then linearly down to -1 at
//                maxLength, -1 beyond
// Lengths are extra.completionLengths[i] (tokens) when given, else the completion's length in characters.
import { HayateError } from '../errors.js';
import { hasBoxed, isCorrect } from './extract.js';
import type { RewardExtra, RewardFunction } from './types.js';

export const BUILTIN_REWARD_NAMES = ['correctness', 'format', 'length', 'overlong'] as const;
export type BuiltinRewardName = (typeof BUILTIN_REWARD_NAMES)[number];

export interface FormatRewardOptions {
  /** Reward for a present \boxed{...} (default 0.1). */
  value?: number;
}

export interface LengthPenaltyOptions {
  /** Length at which the penalty reaches -1 (required). */
  maxLength: number;
  /** Lengths up to this are not penalised (default 0). */
  target?: number;
}

export interface OverlongPenaltyOptions {
  /** The generation budget (max new tokens); beyond it the penalty is -1 (required). */
  maxLength: number;
  /** Width of the soft zone before maxLength (DAPO's L_cache; default maxLength / 4, rounded down). */
  buffer?: number;
}

export type BuiltinRewardOptions = FormatRewardOptions | LengthPenaltyOptions | OverlongPenaltyOptions | Record<string, never>;

function bad(message: string): HayateError {
  return new HayateError('ERR_INVALID_ARGUMENT', message);
}

function lengths(completions: string[], extra: RewardExtra): number[] {
  const given = extra.completionLengths;
  if (given === undefined) return completions.map((c) => c.length);
  if (!Array.isArray(given) || given.length !== completions.length) throw new Error(`extra.completionLengths must have one entry per completion (${completions.length})`);
  return given;
}

export const correctnessReward: RewardFunction = (_prompts, completions, extra) => {
  const answers = extra.answers;
  if (!Array.isArray(answers) || answers.length !== completions.length) {
    throw new Error(`the correctness reward needs extra.answers with one ground truth per completion (${completions.length})`);
  }
  return completions.map((c, i) => (isCorrect(c, String(answers[i])) ? 1 : 0));
};

export function formatReward(options: FormatRewardOptions = {}): RewardFunction {
  const value = options.value ?? 0.1;
  if (!Number.isFinite(value)) throw bad(`format reward: value must be a finite number, got ${value}`);
  return (_prompts, completions) => completions.map((c) => (hasBoxed(c) ? value : 0));
}

export function lengthPenalty(options: LengthPenaltyOptions): RewardFunction {
  const { maxLength } = options;
  const target = options.target ?? 0;
  if (!(Number.isFinite(maxLength) && maxLength > 0)) throw bad(`length penalty: maxLength must be a positive number, got ${maxLength}`);
  if (!(Number.isFinite(target) && target >= 0 && target < maxLength)) throw bad(`length penalty: target must be in [0, maxLength), got ${target}`);
  return (_prompts, completions, extra) => lengths(completions, extra).map((len) => -Math.min(1, Math.max(0, (len - target) / (maxLength - target))));
}

export function overlongPenalty(options: OverlongPenaltyOptions): RewardFunction {
  const { maxLength } = options;
  if (!(Number.isFinite(maxLength) && maxLength > 0)) throw bad(`overlong penalty: maxLength must be a positive number, got ${maxLength}`);
  const buffer = options.buffer ?? Math.floor(maxLength / 4);
  if (!(Number.isFinite(buffer) && buffer > 0 && buffer <= maxLength)) throw bad(`overlong penalty: buffer must be in (0, maxLength], got ${buffer}`);
  const expected = maxLength - buffer;
  return (_prompts, completions, extra) =>
    lengths(completions, extra).map((len) => {
      if (len <= expected) return 0;
      if (len <= maxLength) return (expected - len) / buffer;
      return -1;
    });
}

/** The built-in reward `name` with its options (validated here: bad options throw ERR_INVALID_ARGUMENT). */
export function makeBuiltinReward(name: string, options: Record<string, unknown> = {}): RewardFunction {
  const known = (keys: string[]) => {
    for (const k of Object.keys(options)) if (!keys.includes(k)) throw bad(`reward '${name}' has no option '${k}' (options: ${keys.join(', ') || 'none'})`);
  };
  switch (name) {
    case 'correctness':
      known([]);
      return correctnessReward;
    case 'format':
      known(['value']);
      return formatReward(options as FormatRewardOptions);
    case 'length':
      known(['maxLength', 'target']);
      if (options.maxLength === undefined) throw bad("reward 'length' needs the option maxLength");
      return lengthPenalty(options as unknown as LengthPenaltyOptions);
    case 'overlong':
      known(['maxLength', 'buffer']);
      if (options.maxLength === undefined) throw bad("reward 'overlong' needs the option maxLength");
      return overlongPenalty(options as unknown as OverlongPenaltyOptions);
    default:
      throw bad(`unknown built-in reward '${name}' (built-ins: ${BUILTIN_REWARD_NAMES.join(', ')})`);
  }
}
