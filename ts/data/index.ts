// Data: datasets, prompts, deterministic order and sharding, synthetic problems, tokenization pool.
export { DEFAULT_INSTRUCTION, buildPrompt, renderPrompt } from './prompt.js';
export type { ExamplePrompt, PromptOptions } from './prompt.js';
export { BUNDLED_DATASETS, bundledDataDir, bundledDatasetPath, resolveDatasetPath } from './bundled.js';
export { datasetFromJsonl, examplesFromRecords, loadDataset } from './dataset.js';
export type { DatasetFormat, Example, LoadDatasetOptions, LoadedDataset } from './dataset.js';
export { DatasetError, formatIssue } from './errors.js';
export type { LineIssue, OnInvalidLine } from './errors.js';
export { parseGsm8kAnswer, stripCalculatorAnnotations, toBoxedSolution } from './gsm8k.js';
export type { BoxedSolutionOptions, Gsm8kAnswer } from './gsm8k.js';
export { parseJsonl, readJsonl } from './jsonl.js';
export type { JsonlContents, JsonlRow } from './jsonl.js';
export { BatchSampler, distributedFromEnv, seededSubset, shard } from './order.js';
export type { SamplerOptions, SamplerState, ShardOptions } from './order.js';
export { Rng, deriveSeed, hashString, permutation, shuffle } from './random.js';
export { MAX_SYNTHETIC_LEVEL, generateProblem, generateSynthetic, syntheticExamples, syntheticSplitOf } from './synthetic.js';
export type { SyntheticOp, SyntheticOptions, SyntheticProblem, SyntheticSplit, SyntheticStep } from './synthetic.js';
export { TokenizerPool, tokenizeAll } from './tokenize.js';
export type { TokenizeOptions } from './tokenize.js';
