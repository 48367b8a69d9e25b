// Per-problem scores from per-sample records: the unit the bootstrap resamples and the paired comparison
// pairs. Every metric of a summary is the mean of one of these columns over problems.
import type { EvalRecord } from './evaluate.js';
import { majAtK, passAtK } from './metrics.js';

export interface ProblemScores {
  /** Example index of each problem, in order of first appearance in the records. */
  index: number[];
  /** Samples per problem. */
  samples: number[];
  /** Fraction of the problem's samples that are correct (mean@n). */
  accuracy: number[];
  /** Whether sample 0 is correct (the greedy answer at temperature 0). */
  first: boolean[];
  /** Per k: fraction correct among the first k samples (mean@k). */
  meanAtK: Record<string, number[]>;
  /** Per k: unbiased pass@k from all n samples. */
  passAtK: Record<string, number[]>;
  /** Per k: 1 when the majority answer of the first k samples is right. */
  majAtK: Record<string, number[]>;
}

/** Groups records by example index (samples in order) and scores each problem for every k. */
export function problemScores(records: readonly EvalRecord[], ks: readonly number[]): ProblemScores {
  const byExample = new Map<number, EvalRecord[]>();
  for (const r of records) {
    const list = byExample.get(r.index) ?? [];
    list.push(r);
    byExample.set(r.index, list);
  }
  const groups = [...byExample.values()].map((g) => [...g].sort((a, b) => a.sample - b.sample));
  const out: ProblemScores = {
    index: groups.map((g) => g[0].index),
    samples: groups.map((g) => g.length),
    accuracy: groups.map((g) => g.filter((r) => r.correct).length / g.length),
    first: groups.map((g) => g[0].correct),
    meanAtK: {},
    passAtK: {},
    majAtK: {},
  };
  for (const k of ks) {
    out.meanAtK[String(k)] = groups.map((g) => g.slice(0, k).filter((r) => r.correct).length / Math.min(k, g.length));
    out.passAtK[String(k)] = groups.map((g) => passAtK(g.length, g.filter((r) => r.correct).length, k));
    out.majAtK[String(k)] = groups.map((g) => majAtK(g.map((r) => r.extracted), g[0].answer, k));
  }
  return out;
}

/** Mean of a column, summed in order. */
export function meanOf(values: readonly number[]): number {
  let s = 0;
  for (const v of values) s += v;
  return s / values.length;
}
