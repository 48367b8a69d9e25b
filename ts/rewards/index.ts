// Rewards: answer extraction, built-in rewards, user reward modules, the worker pool that runs them.
export { extractAnswer, extractAnswerValue, findBoxed, firstBoxedAnswer, hasBoxed, isCorrect, lastBoxedAnswer, stripLatex } from './extract.js';
export type { AnswerSource, BoxedSpan, ExtractedAnswer } from './extract.js';
export { findNumbers, formatRational, makeRational, normalizeNumber, parseNumber, rationalEquals } from './numbers.js';
export type { NumberMatch, Rational } from './numbers.js';
export { BUILTIN_REWARD_NAMES, correctnessReward, formatReward, lengthPenalty, makeBuiltinReward, overlongPenalty } from './builtin.js';
export type { BuiltinRewardName, FormatRewardOptions, LengthPenaltyOptions, OverlongPenaltyOptions } from './builtin.js';
export { defaultRewardSpecs, parseRewardSpec } from './spec.js';
export type { BuiltinRewardSpec, FunctionRewardSpec, ModuleRewardSpec, RewardSpec } from './spec.js';
export { RewardPool } from './pool.js';
export type { RewardInfo, RewardPoolOptions, RewardScores, RewardWarning } from './pool.js';
export { checkRewardOutput } from './types.js';
export type { RewardExtra, RewardFailureKind, RewardFunction, RewardOutcome, RewardPrompt } from './types.js';
