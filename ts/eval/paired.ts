// Paired bootstrap: the interval of a difference between two evaluations of the same problems (with the
// same sampling seeds). Pairing matters: most of the spread between problems (easy vs hard) is shared by
// both models and cancels in the per-problem difference, so a paired interval is much narrower than two
// separate intervals would suggest, and two overlapping intervals do not mean "no difference".
import { HayateError } from '../errors.js';
import { bootstrapMean, type BootstrapInterval, type BootstrapOptions } from './bootstrap.js';

/** Per-problem differences trained[i] - base[i] (same problem at the same position in both). */
export function pairedDifferences(base: readonly number[], trained: readonly number[]): number[] {
  if (base.length !== trained.length) throw new HayateError('ERR_INVALID_ARGUMENT', `paired comparison: ${base.length} and ${trained.length} problems (they must be the same problems)`);
  return trained.map((t, i) => t - base[i]);
}

/**
 * Percentile-bootstrap interval of mean(trained - base): problems are resampled with replacement, each
 * keeping its pair of values. An interval that excludes 0 says the difference is unlikely to be noise
 * from the choice of problems.
 */
export function pairedBootstrap(base: readonly number[], trained: readonly number[], options: BootstrapOptions = {}): BootstrapInterval {
  return bootstrapMean(pairedDifferences(base, trained), options);
}
