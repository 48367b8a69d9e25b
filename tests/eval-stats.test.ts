// Evaluation statistics: the percentile bootstrap over problems, the paired bootstrap of a difference,
// McNemar's exact test against hand-computed binomial tails, and compareEvaluations / the verdict on
// scripted per-sample records.
import { describe, expect, it } from 'vitest';
import { bootstrapMean, bootstrapMeans, quantileSorted } from '../ts/eval/bootstrap.js';
import { compareEvaluations, formatPoints, formatPValue, formatVerdict } from '../ts/eval/compare.js';
import { summarize, type EvalRecord } from '../ts/eval/evaluate.js';
import { mcnemarExactP, mcnemarTest } from '../ts/eval/mcnemar.js';
import { pairedBootstrap } from '../ts/eval/paired.js';
import * as lib from '../ts/index.js';

function binom(n: number, k: number): bigint {
  if (k < 0 || k > n) return 0n;
  let r = 1n;
  for (let i = 1; i <= k; i++) r = (r * BigInt(n - k + i)) / BigInt(i);
  return r;
}

/** Two-sided exact McNemar p from exact integer binomial sums: min(1, 2 * sum_{i<=min(b,c)} C(b+c, i) / 2^(b+c)). */
function mcnemarByHand(b: number, c: number): number {
  const n = b + c;
  let tail = 0n;
  for (let i = 0; i <= Math.min(b, c); i++) tail += binom(n, i);
  return Math.min(1, (2 * Number(tail)) / 2 ** n);
}

describe('bootstrap intervals', () => {
  it('quantiles interpolate between order statistics (type 7)', () => {
    expect(quantileSorted([1, 2, 3, 4], 0)).toBe(1);
    expect(quantileSorted([1, 2, 3, 4], 1)).toBe(4);
    expect(quantileSorted([1, 2, 3, 4], 0.5)).toBe(2.5);
    expect(quantileSorted([10, 20, 30, 40, 50], 0.25)).toBe(20);
    expect(quantileSorted([], 0.5)).toBeNaN();
  });

  it('all correct gives [1, 1] with no spread; all wrong [0, 0]', () => {
    expect(bootstrapMean(new Array(50).fill(1))).toEqual({ estimate: 1, se: 0, lo: 1, hi: 1 });
    expect(bootstrapMean(new Array(50).fill(0))).toEqual({ estimate: 0, se: 0, lo: 0, hi: 0 });
  });

  it('a 50/50 set: interval around 0.5, standard error close to sqrt(p(1-p)/n)', () => {
    const n = 400;
    const values = Array.from({ length: n }, (_, i) => i % 2);
    const r = bootstrapMean(values, { resamples: 4000, seed: 1 });
    const se = Math.sqrt((0.5 * 0.5) / n); // 0.025
    expect(r.estimate).toBe(0.5);
    expect(Math.abs(r.se - se) / se).toBeLessThan(0.05);
    expect(r.lo).toBeLessThan(0.5);
    expect(r.hi).toBeGreaterThan(0.5);
    // The normal approximation's 95% interval is 0.5 +- 1.96 se = [0.451, 0.549].
    expect(r.lo).toBeCloseTo(0.5 - 1.96 * se, 2);
    expect(r.hi).toBeCloseTo(0.5 + 1.96 * se, 2);
    // A narrower level gives a narrower interval on the same resamples.
    const r80 = bootstrapMean(values, { resamples: 4000, seed: 1, level: 0.8 });
    expect(r80.lo).toBeGreaterThan(r.lo);
    expect(r80.hi).toBeLessThan(r.hi);
    expect(r80.se).toBe(r.se);
  });

  it('is reproducible with a seed; another seed gives other resamples', () => {
    const values = Array.from({ length: 60 }, (_, i) => ((i * 7) % 5) / 4);
    const a = bootstrapMean(values, { seed: 3 });
    expect(bootstrapMean(values, { seed: 3 })).toEqual(a);
    const b = bootstrapMean(values, { seed: 4 });
    expect(b.estimate).toBe(a.estimate);
    expect(b.se).not.toBe(a.se);
  });

  it('resamples several series jointly: the same draws as resampling each alone', () => {
    const x = Array.from({ length: 30 }, (_, i) => (i % 3 === 0 ? 1 : 0));
    const y = Array.from({ length: 30 }, (_, i) => i / 29);
    const [cx, cy] = bootstrapMeans([x, y], { seed: 9, resamples: 500 });
    expect(cx).toEqual(bootstrapMean(x, { seed: 9, resamples: 500 }));
    expect(cy).toEqual(bootstrapMean(y, { seed: 9, resamples: 500 }));
    expect(() => bootstrapMeans([x, y.slice(1)])).toThrow(/different lengths/);
    expect(() => bootstrapMean([])).toThrow(/no values/);
    expect(() => bootstrapMean(x, { resamples: 0 })).toThrow(/resamples/);
    expect(() => bootstrapMean(x, { level: 1 })).toThrow(/level/);
  });
});

describe("McNemar's exact test", () => {
  it('matches hand-computed binomial tails', () => {
    expect(mcnemarExactP(0, 6)).toBe(0.03125); // 2 * (1/2)^6
    expect(mcnemarExactP(6, 0)).toBe(0.03125);
    expect(mcnemarExactP(0, 5)).toBe(0.0625);
    expect(mcnemarExactP(1, 5)).toBeCloseTo((2 * (1 + 6)) / 64, 15); // 0.21875
    expect(mcnemarExactP(2, 10)).toBeCloseTo((2 * (1 + 12 + 66)) / 4096, 15); // 0.0386
    expect(mcnemarExactP(4, 4)).toBe(1);
    expect(mcnemarExactP(0, 0)).toBe(1);
    expect(mcnemarExactP(3, 4)).toBeCloseTo(1, 12); // 2 * P[X <= 3] for Binomial(7, 1/2) = 2 * 0.5 = 1
    for (let b = 0; b <= 30; b++) for (let c = 0; c <= 30; c++) expect(mcnemarExactP(b, c)).toBeCloseTo(mcnemarByHand(b, c), 12);
  });

  it('stays finite for large counts', () => {
    expect(mcnemarExactP(1000, 1000)).toBe(1);
    expect(mcnemarExactP(0, 2000)).toBe(0); // 2^-1999 underflows to 0
    const p = mcnemarExactP(480, 560); // z = 80 / sqrt(1040) = 2.48 -> p about 0.014
    expect(p).toBeGreaterThan(0.01);
    expect(p).toBeLessThan(0.02);
    expect(() => mcnemarExactP(-1, 2)).toThrow(/non-negative integer/);
    expect(() => mcnemarExactP(1.5, 2)).toThrow(/non-negative integer/);
  });

  it('counts concordant and discordant problems', () => {
    const base = [true, true, false, false, true, false, false, false];
    const trained = [true, false, true, false, true, true, true, true];
    expect(mcnemarTest(base, trained)).toEqual({ both: 2, neither: 1, baseOnly: 1, trainedOnly: 4, pValue: mcnemarByHand(1, 4) });
    expect(() => mcnemarTest([true], [true, false])).toThrow(/same problems/);
  });
});

describe('paired bootstrap', () => {
  it('has the sign of the difference; identical models give exactly 0', () => {
    const base = Array.from({ length: 100 }, (_, i) => (i % 4 === 0 ? 1 : 0)); // 25%
    const better = base.map((v, i) => (i % 4 === 1 ? 1 : v)); // 50%: 25 problems gained, none lost
    const up = pairedBootstrap(base, better, { seed: 2 });
    expect(up.estimate).toBe(0.25);
    expect(up.lo).toBeGreaterThan(0);
    const down = pairedBootstrap(better, base, { seed: 2 });
    expect(down.estimate).toBe(-0.25);
    expect(down.hi).toBeLessThan(0);
    // Same resamples with the roles swapped: a mirrored interval.
    expect(down.lo).toBeCloseTo(-up.hi, 12);
    expect(down.hi).toBeCloseTo(-up.lo, 12);
    expect(pairedBootstrap(base, base)).toEqual({ estimate: 0, se: 0, lo: 0, hi: 0 });
    expect(() => pairedBootstrap([1], [1, 0])).toThrow(/same problems/);
  });

  it('pairing sees a small consistent gain that two separate intervals would hide', () => {
    // 200 problems, base right on 100; trained is right on the same ones plus 12 more.
    const base = Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? 1 : 0));
    const trained = base.map((v, i) => (i % 2 === 1 && i < 24 ? 1 : v));
    const a = bootstrapMean(base, { seed: 5 });
    const b = bootstrapMean(trained, { seed: 5 });
    expect(a.hi).toBeGreaterThan(b.lo); // the separate intervals overlap
    const d = pairedBootstrap(base, trained, { seed: 5 });
    expect(d.estimate).toBeCloseTo(0.06, 15);
    expect(d.lo).toBeGreaterThan(0); // the paired one excludes 0
    expect(mcnemarExactP(0, 12)).toBeLessThan(0.001);
  });
});

/** Per-sample records of problems 0..m-1, n samples each; correct[i][j] = sample j of problem i is right. */
function records(correct: boolean[][], order?: number[]): EvalRecord[] {
  const idx = order ?? correct.map((_, i) => i);
  return idx.flatMap((i) =>
    correct[i].map((ok, j) => ({
      index: i,
      sample: j,
      question: `q${i}`,
      answer: '1',
      completion: ok ? '\\boxed{1}' : '\\boxed{2}',
      extracted: ok ? '1' : '2',
      extractedFrom: 'boxed',
      correct: ok,
      boxed: true,
      tokens: 3,
      finish: 'boxed' as const,
    })),
  );
}

function evaluated(correct: boolean[][], options: { temperature?: number; order?: number[] } = {}) {
  const n = correct[0].length;
  const recs = records(correct, options.order);
  const ks = n > 1 ? [1, n] : [1];
  const summary = summarize(recs, ks, { datasetSize: correct.length, n, temperature: options.temperature ?? 0, maxNewTokens: 8, seed: 11, subsetSeed: null, seconds: 1 });
  return { summary, records: recs };
}

describe('summary intervals and compareEvaluations', () => {
  it('summarize adds mean@k and bootstrap intervals seeded by the evaluation seed', () => {
    // Problem 0: samples right, wrong, right, wrong; problem 1: all wrong; problem 2: all right.
    const e = evaluated([[true, false, true, false], [false, false, false, false], [true, true, true, true]], { temperature: 1 });
    expect(e.summary.meanAtK).toEqual({ '1': 2 / 3, '4': 0.5 });
    expect(e.summary.accuracy).toBe(0.5);
    const iv = e.summary.intervals;
    expect(iv).toMatchObject({ resamples: 1000, seed: 11, level: 0.95 });
    expect(iv.accuracy).toEqual(bootstrapMean([0.5, 0, 1], { seed: 11 }));
    expect(iv.meanAtK['1']).toEqual(bootstrapMean([1, 0, 1], { seed: 11 }));
    expect(iv.passAtK['4']).toEqual(bootstrapMean([1, 0, 1], { seed: 11 }));
    // Three problems: resampled means lie in {0, 1/6, ..., 1}; the extremes are in the 2.5% tails.
    expect(iv.accuracy.lo).toBeGreaterThanOrEqual(0);
    expect(iv.accuracy.hi).toBeLessThanOrEqual(1);
    expect(iv.accuracy.lo).toBeLessThan(0.5);
    expect(iv.accuracy.hi).toBeGreaterThan(0.5);
  });

  it('pairs problems by index, tests first-sample correctness and words the verdict', () => {
    // 20 problems; greedy: base right on 0..5, trained right on 0..4 and 6..13 -> b = 1, c = 8.
    const base = Array.from({ length: 20 }, (_, i) => [i <= 5]);
    const trained = Array.from({ length: 20 }, (_, i) => [i <= 4 || (i >= 6 && i <= 13)]);
    const order = Array.from({ length: 20 }, (_, i) => (i * 7) % 20); // trained's records in another order
    const c = compareEvaluations(evaluated(base), evaluated(trained, { order }));
    expect(c.problems).toBe(20);
    expect(c.firstSample.mcnemar).toEqual({ both: 5, neither: 6, baseOnly: 1, trainedOnly: 8, pValue: mcnemarByHand(1, 8) });
    expect(c.firstSample.mcnemar.pValue).toBeCloseTo(0.0390625, 12); // 2 * (1 + 9) / 512
    expect(c.firstSample.decoding).toBe('greedy');
    expect(c.firstSample.base).toBe(0.3);
    expect(c.firstSample.trained).toBe(0.65);
    expect(c.firstSample.difference.estimate).toBeCloseTo(0.35, 15);
    // The paired interval is the bootstrap of the per-problem differences with the base evaluation's seed.
    const diffs = base.map((b, i) => Number(trained[i][0]) - Number(b[0]));
    expect(c.firstSample.difference).toEqual(bootstrapMean(diffs, { seed: 11 }));
    expect(c.accuracy.difference).toEqual(c.firstSample.difference);
    expect(c).toMatchObject({ significant: true, outcome: 'better', alpha: 0.05, resamples: 1000, seed: 11 });
    const d = c.firstSample.difference;
    expect(formatVerdict(c, { base: 'base', trained: 'adapter' })).toBe(
      `adapter is better than base: greedy accuracy +35.0 points (95% CI ${formatPoints(d.lo)} to ${formatPoints(d.hi)}), McNemar p = 0.039 (significant at 0.05)`,
    );
    // Swapped: worse, same p.
    const w = compareEvaluations(evaluated(trained), evaluated(base));
    expect(w.outcome).toBe('worse');
    expect(formatVerdict(w)).toMatch(/^trained is worse than base: greedy accuracy -35\.0 points \(95% CI -\d+\.\d to -\d+\.\d\), McNemar p = 0\.039 \(significant at 0\.05\)$/);
    // A stricter alpha: not significant.
    const strict = compareEvaluations(evaluated(base), evaluated(trained), { alpha: 0.01 });
    expect(strict.outcome).toBe('no significant difference');
    expect(formatVerdict(strict)).toMatch(/^no significant difference between trained and base: greedy accuracy \+35\.0 points .* McNemar p = 0\.039 \(not significant at 0\.01\)$/);
  });

  it('with n samples: McNemar on sample 0, paired intervals for mean@k, pass@k and maj@k', () => {
    // Problem i: base right on sample 1 only; trained right on samples 0 and 1 for i < 6.
    const base = Array.from({ length: 10 }, () => [false, true]);
    const trained = Array.from({ length: 10 }, (_, i) => [i < 6, true]);
    const c = compareEvaluations(evaluated(base, { temperature: 1 }), evaluated(trained, { temperature: 1 }));
    expect(c.n).toBe(2);
    expect(c.firstSample.decoding).toBe('sampled');
    expect(c.firstSample.mcnemar).toMatchObject({ baseOnly: 0, trainedOnly: 6, pValue: 0.03125 });
    expect(c.accuracy).toMatchObject({ base: 0.5, trained: 0.8 });
    expect(c.meanAtK['1'].difference.estimate).toBeCloseTo(0.6, 15);
    expect(c.passAtK['2']).toMatchObject({ base: 1, trained: 1, difference: { estimate: 0, se: 0, lo: 0, hi: 0 } });
    expect(c.majAtK['2'].difference.estimate).toBeCloseTo(0.6, 15); // a 1-1 tie goes to the first sample
    expect(formatVerdict(c)).toMatch(/^trained is better than base: first-sample accuracy \+60\.0 points .* McNemar p = 0\.031 \(significant at 0\.05\)$/);
  });

  it('refuses evaluations of different problems or sample counts', () => {
    const a = evaluated([[true], [false], [true]]);
    expect(() => compareEvaluations(a, evaluated([[true], [false]]))).toThrow(/different problems/);
    expect(() => compareEvaluations(a, evaluated([[true, true], [false, true], [true, true]]))).toThrow(/samples per problem/);
  });

  it('formats points and p-values', () => {
    expect(formatPoints(0.075)).toBe('+7.5');
    expect(formatPoints(-0.031)).toBe('-3.1');
    expect(formatPoints(-0.0001)).toBe('+0.0');
    expect(formatPValue(0.03125)).toBe('p = 0.031');
    expect(formatPValue(0.0004)).toBe('p < 0.001');
    expect(formatPValue(1)).toBe('p = 1.000');
  });

  it('the statistics are exported from the package entry', () => {
    for (const name of ['bootstrapMean', 'bootstrapMeans', 'pairedBootstrap', 'mcnemarExactP', 'mcnemarTest', 'compareEvaluations', 'formatVerdict']) {
      expect(typeof (lib as Record<string, unknown>)[name], name).toBe('function');
    }
  });
});
