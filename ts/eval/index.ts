// Evaluation: accuracy, mean@k, pass@k, maj@k with bootstrap intervals, evaluate() over a model and a
// dataset, and the paired statistics that tell a real gain from noise (paired bootstrap, McNemar).
export { accuracy, majAtK, majorityVote, passAtK } from './metrics.js';
export { evaluate, summarize } from './evaluate.js';
export type { EvalIntervals, EvalProgress, EvalRecord, EvalResult, EvalSummary, EvaluateOptions } from './evaluate.js';
export { DEFAULT_RESAMPLES, bootstrapMean, bootstrapMeans, quantileSorted, resolveBootstrapOptions } from './bootstrap.js';
export type { BootstrapInterval, BootstrapOptions } from './bootstrap.js';
export { pairedBootstrap, pairedDifferences } from './paired.js';
export { mcnemarExactP, mcnemarTest } from './mcnemar.js';
export type { McNemarResult } from './mcnemar.js';
export { problemScores } from './problems.js';
export type { ProblemScores } from './problems.js';
export { compareEvaluations, formatLevel, formatPValue, formatPoints, formatVerdict } from './compare.js';
export type { CompareOptions, ComparisonOutcome, EvalComparison, PairedMetric } from './compare.js';
export { MAX_ROUNDS, endsInOpenBox, sampleCompletions, truncateAfterBoxed } from './sampling.js';
export type { EvalModel, Sample, SampleFinish, SampleOptions } from './sampling.js';
export { writeJsonlAtomic } from './records.js';
