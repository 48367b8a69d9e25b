// Trained vs base on the same problems and the same sampling seeds: is the gain real or noise?
//
// Every metric gets a paired bootstrap interval of its per-problem difference (trained - base), all on the
// same resamples of problems. The verdict rests on one clearly defined quantity, first-sample accuracy:
// per problem, whether sample 0 is correct (with temperature 0 that is the greedy answer; with sampling it
// is the first sample, drawn with the same seed for both models). It is tested with McNemar's exact test
// (binomial on the problems only one of the two got right) and called significant when p < alpha (0.05).
// With n > 1 samples the paired interval of accuracy (mean@n) uses every sample: read it alongside.
import { HayateError } from '../errors.js';
import { bootstrapMeans, resolveBootstrapOptions, type BootstrapInterval, type BootstrapOptions } from './bootstrap.js';
import type { EvalRecord, EvalSummary } from './evaluate.js';
import { mcnemarTest, type McNemarResult } from './mcnemar.js';
import { pairedDifferences } from './paired.js';
import { meanOf, problemScores, type ProblemScores } from './problems.js';

export interface PairedMetric {
  /** Mean over problems for each model. */
  base: number;
  trained: number;
  /** trained - base: the observed difference, its bootstrap standard error and paired interval. */
  difference: BootstrapInterval;
}

export type ComparisonOutcome = 'better' | 'worse' | 'no significant difference';

export interface EvalComparison {
  problems: number;
  /** Samples per problem. */
  n: number;
  resamples: number;
  seed: number;
  level: number;
  /** Significance level of the verdict. */
  alpha: number;
  /** First-sample correctness (the verdict's quantity), with McNemar's exact test. */
  firstSample: PairedMetric & { decoding: 'greedy' | 'sampled'; mcnemar: McNemarResult };
  /** Fraction of all samples correct (mean@n). */
  accuracy: PairedMetric;
  meanAtK: Record<string, PairedMetric>;
  passAtK: Record<string, PairedMetric>;
  majAtK: Record<string, PairedMetric>;
  /** McNemar p < alpha, in the direction of the first-sample difference. */
  significant: boolean;
  outcome: ComparisonOutcome;
}

export interface CompareOptions extends BootstrapOptions {
  /** Significance level of the verdict (default 0.05). */
  alpha?: number;
}

interface Evaluated {
  summary: EvalSummary;
  records: readonly EvalRecord[];
}

/** Per-problem columns of `s` in the order of `order` (example indices). */
function reorder(s: ProblemScores, order: readonly number[]): ProblemScores {
  const at = new Map(s.index.map((idx, i) => [idx, i]));
  const pos = order.map((idx) => at.get(idx)!);
  const pick = <T>(xs: readonly T[]) => pos.map((i) => xs[i]);
  const pickAll = (r: Record<string, number[]>) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, pick(v)]));
  return { index: [...order], samples: pick(s.samples), accuracy: pick(s.accuracy), first: pick(s.first), meanAtK: pickAll(s.meanAtK), passAtK: pickAll(s.passAtK), majAtK: pickAll(s.majAtK) };
}

/**
 * Compares two evaluations of the same problems (e.g. the base model and base + adapter, evaluated with the
 * same seeds). Problems are paired by example index; both must hold the same problems with the same number
 * of samples. The bootstrap seed defaults to the base evaluation's sampling seed.
 */
export function compareEvaluations(base: Evaluated, trained: Evaluated, options: CompareOptions = {}): EvalComparison {
  const alpha = options.alpha ?? 0.05;
  if (!(alpha > 0 && alpha < 1)) throw new HayateError('ERR_INVALID_ARGUMENT', `alpha must be in (0, 1), got ${alpha}`);
  const boot = resolveBootstrapOptions({ ...options, seed: options.seed ?? base.summary.seed });
  if (base.summary.n !== trained.summary.n) throw new HayateError('ERR_INVALID_ARGUMENT', `paired comparison: ${base.summary.n} and ${trained.summary.n} samples per problem; evaluate both with the same n`);
  const ks = Object.keys(base.summary.passAtK).map(Number);
  const a = problemScores(base.records, ks);
  const bRaw = problemScores(trained.records, ks);
  const same = a.index.length === bRaw.index.length && new Set([...a.index, ...bRaw.index]).size === a.index.length;
  if (!same) throw new HayateError('ERR_INVALID_ARGUMENT', `paired comparison: the evaluations hold different problems (${a.index.length} and ${bRaw.index.length}); evaluate both on the same problems`);
  const b = reorder(bRaw, a.index);
  if (a.samples.some((s, i) => s !== b.samples[i])) throw new HayateError('ERR_INVALID_ARGUMENT', 'paired comparison: the evaluations have different numbers of samples per problem');

  const first = (s: ProblemScores) => s.first.map((x) => (x ? 1 : 0));
  const pairs: [number[], number[]][] = [[first(a), first(b)], [a.accuracy, b.accuracy]];
  for (const key of ['meanAtK', 'passAtK', 'majAtK'] as const) for (const k of ks) pairs.push([a[key][String(k)], b[key][String(k)]]);
  // One joint resampling of problems for every difference.
  const ci = bootstrapMeans(pairs.map(([x, y]) => pairedDifferences(x, y)), boot);
  const metric = (i: number): PairedMetric => ({ base: meanOf(pairs[i][0]), trained: meanOf(pairs[i][1]), difference: ci[i] });
  const byK = (offset: number) => Object.fromEntries(ks.map((k, i) => [String(k), metric(offset + i)]));

  const mcnemar = mcnemarTest(a.first, b.first);
  const significant = mcnemar.pValue < alpha;
  const greedy = base.summary.temperature === 0 && trained.summary.temperature === 0;
  return {
    problems: a.index.length,
    n: a.samples[0],
    ...boot,
    alpha,
    firstSample: { ...metric(0), decoding: greedy ? 'greedy' : 'sampled', mcnemar },
    accuracy: metric(1),
    meanAtK: byK(2),
    passAtK: byK(2 + ks.length),
    majAtK: byK(2 + 2 * ks.length),
    significant,
    outcome: !significant ? 'no significant difference' : mcnemar.trainedOnly > mcnemar.baseOnly ? 'better' : 'worse',
  };
}

/** A fraction as signed percentage points: 0.075 -> "+7.5". */
export function formatPoints(x: number): string {
  const s = (100 * x).toFixed(1);
  return s.startsWith('-') && Number(s) !== 0 ? s : `+${s.replace(/^-/, '')}`;
}

/** "p = 0.031", "p < 0.001". */
export function formatPValue(p: number): string {
  return p < 0.001 ? 'p < 0.001' : `p = ${p.toFixed(3)}`;
}

/** "95%" for a level of 0.95. */
export function formatLevel(level: number): string {
  return `${Number((100 * level).toFixed(1))}%`;
}

/**
 * The one-line verdict, e.g. "adapter is better than base: greedy accuracy +7.5 points (95% CI +3.1 to
 * +11.8), McNemar p = 0.002 (significant at 0.05)".
 */
export function formatVerdict(c: EvalComparison, names: { base: string; trained: string } = { base: 'base', trained: 'trained' }): string {
  const d = c.firstSample.difference;
  const what = c.firstSample.decoding === 'greedy' ? 'greedy accuracy' : 'first-sample accuracy';
  const head =
    c.outcome === 'better' ? `${names.trained} is better than ${names.base}` : c.outcome === 'worse' ? `${names.trained} is worse than ${names.base}` : `no significant difference between ${names.trained} and ${names.base}`;
  return (
    `${head}: ${what} ${formatPoints(d.estimate)} points (${formatLevel(c.level)} CI ${formatPoints(d.lo)} to ${formatPoints(d.hi)}), ` +
    `McNemar ${formatPValue(c.firstSample.mcnemar.pValue)} (${c.significant ? '' : 'not '}significant at ${c.alpha})`
  );
}
