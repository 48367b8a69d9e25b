// evaluate(): accuracy, mean@k, pass@k and maj@k of a model on a dataset (or a seeded random subset of
// it), greedy or sampled, with one record per sample, and a bootstrap interval for each (see bootstrap.ts).
import type { Example } from '../data/dataset.js';
import { seededSubset } from '../data/order.js';
import { HayateError } from '../errors.js';
import { extractAnswer, hasBoxed, isCorrect } from '../rewards/extract.js';
import { bootstrapMeans, resolveBootstrapOptions, type BootstrapInterval, type BootstrapOptions } from './bootstrap.js';
import { meanOf, problemScores } from './problems.js';
import { sampleCompletions, type EvalModel, type SampleFinish } from './sampling.js';

export interface EvaluateOptions {
  /** Samples per problem (default 1). */
  n?: number;
  /** k values for mean@k, pass@k and maj@k, each in [1, n] (default: 1 and n). */
  k?: number | number[];
  /** Sampling temperature; 0 = greedy. Default: 0 when n is 1, else 1.0. */
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  /** Default 512. */
  maxNewTokens?: number;
  /** Sampling seed (default 0). */
  seed?: number;
  /** Evaluate a random subset of this many problems (default: all). */
  limit?: number;
  /** Seed of that subset (default 0); the same seed picks the same problems. */
  subsetSeed?: number;
  /** Stop each sample once its \boxed{...} answer is complete (default true; see sampling.ts). */
  stopAtBoxed?: boolean;
  /** Problems per generation round (default 64). */
  batchSize?: number;
  /** Sequences the engine decodes at once. */
  maxBatch?: number;
  /** With LoRA adapters attached: true samples with them, false from the base model (default: the model's default, with). */
  lora?: boolean;
  /** Bootstrap intervals of the summary (default: 1000 resamples, seeded by `seed`, 95%). */
  bootstrap?: BootstrapOptions;
  signal?: AbortSignal;
  /** Called after each batch of problems. */
  onProgress?: (p: EvalProgress) => void;
}

export interface EvalProgress {
  done: number;
  total: number;
  /** Correct samples so far / samples so far. */
  accuracy: number;
  generatedTokens: number;
  seconds: number;
}

export interface EvalRecord {
  /** The example's index in the dataset. */
  index: number;
  /** Sample number, 0..n-1. */
  sample: number;
  question: string;
  /** Ground truth. */
  answer: string;
  completion: string;
  /** Extracted final answer (canonical number), null when the completion states none. */
  extracted: string | null;
  /** Where it was found: boxed, hash, answer-tag, last-number. */
  extractedFrom: string | null;
  correct: boolean;
  /** The completion holds a complete \boxed{...}. */
  boxed: boolean;
  /** Generated tokens. */
  tokens: number;
  finish: SampleFinish;
}

export interface EvalSummary {
  examples: number;
  /** Size of the dataset the examples were drawn from. */
  datasetSize: number;
  n: number;
  temperature: number;
  maxNewTokens: number;
  seed: number;
  subsetSeed: number | null;
  /** Fraction of all samples that are correct (with n = 1: the accuracy). */
  accuracy: number;
  /** mean@k per k ("1", "8", ...): fraction correct among the first k samples, averaged over problems (mean@n = accuracy). */
  meanAtK: Record<string, number>;
  /** pass@k per k, unbiased estimator from all n samples, averaged over problems. */
  passAtK: Record<string, number>;
  /** maj@k per k, averaged over problems. */
  majAtK: Record<string, number>;
  /** Bootstrap standard errors and intervals of the metrics above. */
  intervals: EvalIntervals;
  /** Fraction of samples with a complete \boxed{...}. */
  boxedRate: number;
  /** Fraction of samples from which a number could be extracted. */
  extractedRate: number;
  /** Fraction of samples cut by maxNewTokens. */
  truncatedRate: number;
  meanCompletionTokens: number;
  generatedTokens: number;
  seconds: number;
  tokensPerSecond: number;
}

/**
 * Percentile-bootstrap intervals over problems (problems resampled with replacement, all metrics on the
 * same resamples). `accuracy` is the interval of the mean per-problem fraction correct (mean@n).
 */
export interface EvalIntervals {
  resamples: number;
  seed: number;
  level: number;
  accuracy: BootstrapInterval;
  meanAtK: Record<string, BootstrapInterval>;
  passAtK: Record<string, BootstrapInterval>;
  majAtK: Record<string, BootstrapInterval>;
}

export interface EvalResult {
  summary: EvalSummary;
  records: EvalRecord[];
}

function kValues(k: number | number[] | undefined, n: number): number[] {
  const ks = k === undefined ? [1, n] : Array.isArray(k) ? k : [k];
  for (const v of ks) if (!Number.isInteger(v) || v < 1 || v > n) throw new HayateError('ERR_INVALID_ARGUMENT', `k must be an integer in [1, n=${n}], got ${v}`);
  return [...new Set(ks)].sort((a, b) => a - b);
}

/** Evaluates `model` on `examples` (see EvaluateOptions). */
export async function evaluate(model: EvalModel, examples: readonly Example[], options: EvaluateOptions = {}): Promise<EvalResult> {
  const n = options.n ?? 1;
  if (!Number.isInteger(n) || n < 1) throw new HayateError('ERR_INVALID_ARGUMENT', `n must be a positive integer, got ${n}`);
  const ks = kValues(options.k, n);
  const temperature = options.temperature ?? (n === 1 ? 0 : 1.0);
  if (!(Number.isFinite(temperature) && temperature >= 0)) throw new HayateError('ERR_INVALID_ARGUMENT', `temperature must be >= 0, got ${temperature}`);
  const maxNewTokens = options.maxNewTokens ?? 512;
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) throw new HayateError('ERR_INVALID_ARGUMENT', `maxNewTokens must be a positive integer, got ${maxNewTokens}`);
  const batchSize = options.batchSize ?? 64;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new HayateError('ERR_INVALID_ARGUMENT', `batchSize must be a positive integer, got ${batchSize}`);
  const seed = options.seed ?? 0;
  resolveBootstrapOptions(options.bootstrap); // bad options fail now, not after the generation
  if (examples.length === 0) throw new HayateError('ERR_INVALID_ARGUMENT', 'nothing to evaluate: the dataset is empty');
  const subsetSeed = options.subsetSeed ?? 0;
  const chosen = seededSubset(examples, options.limit, subsetSeed);

  const started = performance.now();
  const records: EvalRecord[] = [];
  let generatedTokens = 0;
  let correctSamples = 0;
  for (let b = 0; b < chosen.length; b += batchSize) {
    options.signal?.throwIfAborted();
    const batch = chosen.slice(b, b + batchSize);
    const samples = await sampleCompletions(
      model,
      batch.map((e) => e.prompt),
      { n, maxNewTokens, temperature, topK: options.topK, topP: options.topP, minP: options.minP, seed: seed + b, stopAtBoxed: options.stopAtBoxed, maxBatch: options.maxBatch, lora: options.lora, signal: options.signal },
    );
    batch.forEach((e, i) => {
      samples[i].forEach((s, j) => {
        const extracted = extractAnswer(s.text);
        const correct = isCorrect(s.text, e.answer);
        if (correct) correctSamples++;
        generatedTokens += s.tokens.length;
        records.push({
          index: e.index,
          sample: j,
          question: e.question,
          answer: e.answer,
          completion: s.text,
          extracted: extracted?.value ?? null,
          extractedFrom: extracted?.source ?? null,
          correct,
          boxed: hasBoxed(s.text),
          tokens: s.tokens.length,
          finish: s.finish,
        });
      });
    });
    const seconds = (performance.now() - started) / 1000;
    options.onProgress?.({ done: Math.min(b + batchSize, chosen.length), total: chosen.length, accuracy: correctSamples / records.length, generatedTokens, seconds });
  }
  const seconds = (performance.now() - started) / 1000;
  const info = { datasetSize: examples.length, n, temperature, maxNewTokens, seed, subsetSeed: options.limit !== undefined && options.limit < examples.length ? subsetSeed : null, seconds, bootstrap: options.bootstrap };
  return { summary: summarize(records, ks, info), records };
}

/** Summary metrics of per-sample records (grouped by example index, n samples each), with bootstrap intervals. */
export function summarize(
  records: readonly EvalRecord[],
  ks: readonly number[],
  info: { datasetSize: number; n: number; temperature: number; maxNewTokens: number; seed: number; subsetSeed: number | null; seconds: number; bootstrap?: BootstrapOptions },
): EvalSummary {
  const scores = problemScores(records, ks);
  const meanAt: Record<string, number> = {};
  const passAt: Record<string, number> = {};
  const majAt: Record<string, number> = {};
  for (const k of ks) {
    meanAt[String(k)] = meanOf(scores.meanAtK[String(k)]);
    passAt[String(k)] = meanOf(scores.passAtK[String(k)]);
    majAt[String(k)] = meanOf(scores.majAtK[String(k)]);
  }
  // One joint resampling of problems for every metric: [accuracy, mean@k..., pass@k..., maj@k...].
  const bootstrap = resolveBootstrapOptions({ ...info.bootstrap, seed: info.bootstrap?.seed ?? info.seed });
  const columns = [scores.accuracy, ...ks.map((k) => scores.meanAtK[String(k)]), ...ks.map((k) => scores.passAtK[String(k)]), ...ks.map((k) => scores.majAtK[String(k)])];
  const ci = bootstrapMeans(columns, bootstrap);
  const byK = (offset: number) => Object.fromEntries(ks.map((k, i) => [String(k), ci[offset + i]]));
  const intervals: EvalIntervals = { ...bootstrap, accuracy: ci[0], meanAtK: byK(1), passAtK: byK(1 + ks.length), majAtK: byK(1 + 2 * ks.length) };
  const frac = (pred: (r: EvalRecord) => boolean) => records.filter(pred).length / records.length;
  const generatedTokens = records.reduce((s, r) => s + r.tokens, 0);
  return {
    examples: scores.index.length,
    datasetSize: info.datasetSize,
    n: info.n,
    temperature: info.temperature,
    maxNewTokens: info.maxNewTokens,
    seed: info.seed,
    subsetSeed: info.subsetSeed,
    accuracy: frac((r) => r.correct),
    meanAtK: meanAt,
    passAtK: passAt,
    majAtK: majAt,
    intervals,
    boxedRate: frac((r) => r.boxed),
    extractedRate: frac((r) => r.extracted !== null),
    truncatedRate: frac((r) => r.finish === 'length'),
    meanCompletionTokens: generatedTokens / records.length,
    generatedTokens,
    seconds: info.seconds,
    tokensPerSecond: info.seconds > 0 ? generatedTokens / info.seconds : 0,
  };
}
