// Percentile bootstrap over problems: how much a mean (accuracy, pass@k, ...) would move if the same
// evaluation were run on another draw of problems of the same kind. Problems are the unit that is sampled
// from a population (samples of one problem are not independent), so the resampling draws whole problems
// with replacement. The draws come from a seeded PRNG: the same seed gives the same interval everywhere.
import { HayateError } from '../errors.js';
import { Rng } from '../data/random.js';

export interface BootstrapOptions {
  /** Resamples (default 1000). More resamples steady the interval's ends, not its width. */
  resamples?: number;
  /** PRNG seed of the resampling (default 0). */
  seed?: number;
  /** Coverage of the interval (default 0.95). */
  level?: number;
}

export interface BootstrapInterval {
  /** The statistic on the data as observed (not the mean of the resamples). */
  estimate: number;
  /** Bootstrap standard error: the standard deviation of the resampled statistics. */
  se: number;
  /** Lower and upper ends of the percentile interval. */
  lo: number;
  hi: number;
}

export const DEFAULT_RESAMPLES = 1000;

/** The options with their defaults, checked (throws ERR_INVALID_ARGUMENT). */
export function resolveBootstrapOptions(options: BootstrapOptions = {}): Required<BootstrapOptions> {
  const resamples = options.resamples ?? DEFAULT_RESAMPLES;
  const seed = options.seed ?? 0;
  const level = options.level ?? 0.95;
  if (!Number.isInteger(resamples) || resamples < 1) throw new HayateError('ERR_INVALID_ARGUMENT', `bootstrap resamples must be a positive integer, got ${resamples}`);
  if (!Number.isSafeInteger(seed)) throw new HayateError('ERR_INVALID_ARGUMENT', `bootstrap seed must be an integer, got ${seed}`);
  if (!(level > 0 && level < 1)) throw new HayateError('ERR_INVALID_ARGUMENT', `bootstrap level must be in (0, 1), got ${level}`);
  return { resamples, seed, level };
}

/** The q-quantile of sorted values, interpolating linearly between order statistics (R's type 7, numpy's default). */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const h = (sorted.length - 1) * q;
  const i = Math.floor(h);
  const j = Math.min(i + 1, sorted.length - 1);
  return sorted[i] + (h - i) * (sorted[j] - sorted[i]);
}

/**
 * Percentile-bootstrap intervals of the means of several series measured on the same items (one value
 * per problem in each series), resampled jointly: each resample draws one multiset of problems and every
 * series is averaged over it. So the draws depend only on (seed, number of problems, resamples): two
 * calls with the same seed on the same problems see the same resamples, whatever the series.
 */
export function bootstrapMeans(series: readonly (readonly number[])[], options: BootstrapOptions = {}): BootstrapInterval[] {
  const { resamples, seed, level } = resolveBootstrapOptions(options);
  if (series.length === 0) return [];
  const n = series[0].length;
  if (n === 0) throw new HayateError('ERR_INVALID_ARGUMENT', 'bootstrap: no values');
  for (const s of series) if (s.length !== n) throw new HayateError('ERR_INVALID_ARGUMENT', `bootstrap: series of different lengths (${n} and ${s.length})`);
  const rng = new Rng(seed);
  const stats = series.map(() => new Float64Array(resamples));
  const sums = new Float64Array(series.length);
  for (let r = 0; r < resamples; r++) {
    sums.fill(0);
    for (let i = 0; i < n; i++) {
      const at = rng.int(0, n - 1);
      for (let s = 0; s < series.length; s++) sums[s] += series[s][at];
    }
    for (let s = 0; s < series.length; s++) stats[s][r] = sums[s] / n;
  }
  const tail = (1 - level) / 2;
  return series.map((values, s) => {
    const x = stats[s].sort();
    let mean = 0;
    for (const v of x) mean += v;
    mean /= resamples;
    let ss = 0;
    for (const v of x) ss += (v - mean) ** 2;
    const estimate = values.reduce((a, b) => a + b, 0) / n;
    return { estimate, se: resamples > 1 ? Math.sqrt(ss / (resamples - 1)) : 0, lo: quantileSorted(x, tail), hi: quantileSorted(x, 1 - tail) };
  });
}

/** Percentile-bootstrap interval of the mean of per-problem values (see bootstrapMeans). */
export function bootstrapMean(values: readonly number[], options: BootstrapOptions = {}): BootstrapInterval {
  return bootstrapMeans([values], options)[0];
}
