// Evaluation metrics over n samples per problem: accuracy, pass@k (unbiased estimator) and maj@k.
import { HayateError } from '../errors.js';

function checkCounts(n: number, c: number, k: number): void {
  if (!Number.isInteger(n) || n < 1) throw new HayateError('ERR_INVALID_ARGUMENT', `pass@k: n must be a positive integer, got ${n}`);
  if (!Number.isInteger(c) || c < 0 || c > n) throw new HayateError('ERR_INVALID_ARGUMENT', `pass@k: c must be an integer in [0, n], got ${c}`);
  if (!Number.isInteger(k) || k < 1 || k > n) throw new HayateError('ERR_INVALID_ARGUMENT', `pass@k: k must be an integer in [1, n=${n}], got ${k}`);
}

/**
 * Unbiased pass@k from n samples of which c are correct: 1 - C(n-c, k) / C(n, k) (Chen et al. 2021),
 * computed as 1 - prod_{i=n-c+1..n} (1 - k/i), which stays accurate for large n (no huge binomials).
 */
export function passAtK(n: number, c: number, k: number): number {
  checkCounts(n, c, k);
  if (n - c < k) return 1;
  let prod = 1;
  for (let i = n - c + 1; i <= n; i++) prod *= 1 - k / i;
  return 1 - prod;
}

/**
 * The most frequent answer (nulls, i.e. no answer, do not vote); ties go to the answer that appeared
 * first. Null when no sample has an answer.
 */
export function majorityVote(answers: readonly (string | null | undefined)[]): string | null {
  const counts = new Map<string, number>(); // insertion order = order of first appearance
  for (const a of answers) if (a !== null && a !== undefined) counts.set(a, (counts.get(a) ?? 0) + 1);
  let best: string | null = null;
  let bestCount = 0;
  for (const [a, c] of counts) {
    if (c > bestCount) {
      best = a;
      bestCount = c;
    }
  }
  return best;
}

/** maj@k for one problem: 1 when the majority answer of the first k samples equals the truth. */
export function majAtK(answers: readonly (string | null | undefined)[], truth: string, k: number): number {
  if (!Number.isInteger(k) || k < 1 || k > answers.length) throw new HayateError('ERR_INVALID_ARGUMENT', `maj@k: k must be an integer in [1, ${answers.length}], got ${k}`);
  return majorityVote(answers.slice(0, k)) === truth ? 1 : 0;
}

/** Fraction of true values (NaN for none). */
export function accuracy(correct: readonly boolean[]): number {
  if (correct.length === 0) return NaN;
  return correct.filter(Boolean).length / correct.length;
}
