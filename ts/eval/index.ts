// Evaluation: pass@k, maj@k, accuracy, and evaluate() over a model and a dataset.
export { accuracy, majAtK, majorityVote, passAtK } from './metrics.js';
export { evaluate, summarize } from './evaluate.js';
export type { EvalProgress, EvalRecord, EvalResult, EvalSummary, EvaluateOptions } from './evaluate.js';
export { MAX_ROUNDS, endsInOpenBox, sampleCompletions, truncateAfterBoxed } from './sampling.js';
export type { EvalModel, Sample, SampleFinish, SampleOptions } from './sampling.js';
export { writeJsonlAtomic } from './records.js';
