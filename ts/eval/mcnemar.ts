// McNemar's exact test: do two models that answered the same problems differ in accuracy? Only the
// discordant problems carry information (right for one model, wrong for the other); under "no
// difference" each of them is equally likely to favour either model, so the count favouring one is
// Binomial(b + c, 1/2). The exact (binomial) form stays valid for the small counts of a small test set,
// where the chi-square approximation does not.
import { HayateError } from '../errors.js';

export interface McNemarResult {
  /** Problems both got right / both got wrong. */
  both: number;
  neither: number;
  /** Discordant problems: only the base got right (b) / only the trained model got right (c). */
  baseOnly: number;
  trainedOnly: number;
  /** Two-sided exact p-value. */
  pValue: number;
}

/**
 * Two-sided exact McNemar p-value from the discordant counts b and c:
 * min(1, 2 * P[X <= min(b, c)]) for X ~ Binomial(b + c, 1/2). Summed in log space, so any count works.
 */
export function mcnemarExactP(b: number, c: number): number {
  for (const [name, v] of [['b', b], ['c', c]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new HayateError('ERR_INVALID_ARGUMENT', `McNemar: ${name} must be a non-negative integer, got ${v}`);
  }
  const n = b + c;
  const m = Math.min(b, c);
  if (n === 0 || b === c) return 1;
  let tail = 0;
  if (n <= 1000) {
    // C(n, i) / 2^n term by term from 2^-n (exact, and still a normal double for n <= 1000).
    let term = 2 ** -n;
    for (let i = 0; i <= m; i++) {
      tail += term;
      term = (term * (n - i)) / (i + 1);
    }
  } else {
    // Larger n: log C(n, i) - n log 2, then a log-sum-exp (a tail below 1e-308 becomes 0).
    const logs: number[] = [];
    let logC = 0;
    for (let i = 0; i <= m; i++) {
      if (i > 0) logC += Math.log(n - i + 1) - Math.log(i);
      logs.push(logC - n * Math.LN2);
    }
    const top = Math.max(...logs);
    tail = Math.exp(top) * logs.reduce((acc, l) => acc + Math.exp(l - top), 0);
  }
  return Math.min(1, 2 * tail);
}

/** McNemar's exact test on per-problem correctness of two models over the same problems (same order). */
export function mcnemarTest(base: readonly boolean[], trained: readonly boolean[]): McNemarResult {
  if (base.length !== trained.length) throw new HayateError('ERR_INVALID_ARGUMENT', `McNemar: ${base.length} and ${trained.length} problems (they must be the same problems)`);
  let both = 0;
  let neither = 0;
  let baseOnly = 0;
  let trainedOnly = 0;
  base.forEach((a, i) => {
    const t = trained[i];
    if (a && t) both++;
    else if (!a && !t) neither++;
    else if (a) baseOnly++;
    else trainedOnly++;
  });
  return { both, neither, baseOnly, trainedOnly, pValue: mcnemarExactP(baseOnly, trainedOnly) };
}
