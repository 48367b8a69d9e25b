// Summary statistics for metrics.

export function mean(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  let s = 0;
  for (const v of values) s += v;
  return s / values.length;
}

/** Standard deviation; unbiased (n - 1, as torch.std and TRL) by default, 0 for fewer than two values. */
export function std(values: readonly number[], options: { unbiased?: boolean } = {}): number {
  const n = values.length;
  const unbiased = options.unbiased ?? true;
  if (n === 0) return NaN;
  if (n < 2 && unbiased) return 0;
  const m = mean(values);
  let s = 0;
  for (const v of values) s += (v - m) * (v - m);
  return Math.sqrt(s / (unbiased ? n - 1 : n));
}

/** Trailing moving average: point i averages values max(0, i - window + 1) .. i. */
export function movingAverage(values: readonly number[], window: number): number[] {
  if (!Number.isInteger(window) || window < 1) throw new RangeError(`moving-average window must be a positive integer, got ${window}`);
  const out: number[] = [];
  let sum = 0;
  let count = 0;
  const finite: number[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    finite.push(Number.isFinite(v) ? v : NaN);
    if (Number.isFinite(v)) {
      sum += v;
      count++;
    }
    if (i >= window) {
      const old = finite[i - window];
      if (Number.isFinite(old)) {
        sum -= old;
        count--;
      }
    }
    out.push(count > 0 ? sum / count : NaN);
  }
  return out;
}
