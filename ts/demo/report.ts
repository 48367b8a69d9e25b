// The demo's before/after table, as printed by `hayate demo`.
import type { BootstrapInterval } from '../eval/bootstrap.js';
import { formatLevel, formatPoints, formatVerdict, type EvalComparison } from '../eval/compare.js';
import { formatDuration } from '../metrics/progress.js';
import type { DemoAccuracy, DemoResult } from './pipeline.js';

function count(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}K` : String(n);
}

function pct(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}

/** "45.0% (90/200) [38.0, 52.0]": the accuracy with its bootstrap interval (when the result has one). */
function acc(a: { accuracy: number; correct: number; total: number; interval?: BootstrapInterval }): string {
  const i = a.interval;
  return `${pct(a.accuracy)} (${a.correct}/${a.total})${i ? ` [${(100 * i.lo).toFixed(1)}, ${(100 * i.hi).toFixed(1)}]` : ''}`;
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, j) => Math.max(...rows.map((r) => r[j].length)));
  return rows.map((r) => r.map((cell, j) => (j === 0 ? cell.padEnd(widths[j]) : cell.padStart(widths[j]))).join('   ').trimEnd()).join('\n');
}

/** "+17.5 pts [+11.0, +24.0]": the gain with its paired bootstrap interval (when the result has one). */
function delta(before: DemoAccuracy['greedy'], after: DemoAccuracy['greedy'], paired?: EvalComparison): string {
  const d = 100 * (after.accuracy - before.accuracy);
  const i = paired?.accuracy.difference;
  return `${d >= 0 ? '+' : ''}${d.toFixed(1)} pts${i ? ` [${formatPoints(i.lo)}, ${formatPoints(i.hi)}]` : ''}`;
}

/** The summary printed at the end of a demo run. */
export function formatDemoReport(r: DemoResult): string {
  const c = r.config;
  const levels = Array.isArray(c.task.level) ? c.task.level.join(',') : String(c.task.level);
  const T = r.afterSft.sampled.temperature;
  const n = r.afterSft.sampled.samplesPerProblem;
  const lines: string[] = [];
  lines.push(
    `model: random init, ${c.model.layers} layers x ${c.model.hidden} hidden, ${count(r.parameters.base)} frozen parameters; ` +
      `LoRA rank ${c.sft.loraRank} on every projection (${count(r.parameters.lora)} trainable)`,
  );
  lines.push(`task: synthetic word problems, level ${levels}; held-out test split, ${c.task.evalProblems} problems; seed ${c.seed}`);
  lines.push('');
  lines.push(
    table([
      ['', 'greedy accuracy', `sampled accuracy (T=${T}, ${n}/problem)`, 'train time'],
      [`after SFT  (${r.sft.steps} steps)`, acc(r.afterSft.greedy), acc(r.afterSft.sampled), formatDuration(r.seconds.sft)],
      [`after GRPO (${r.grpo.steps} steps)`, acc(r.afterGrpo.greedy), acc(r.afterGrpo.sampled), formatDuration(r.seconds.grpo)],
      ['GRPO gain', delta(r.afterSft.greedy, r.afterGrpo.greedy, r.gain?.greedy), delta(r.afterSft.sampled, r.afterGrpo.sampled, r.gain?.sampled), ''],
    ]),
  );
  lines.push('');
  // summary.json files written before the intervals existed have no `gain`: the table above just has none.
  if (r.gain) {
    const g = r.gain.greedy;
    lines.push(
      `[ ] = ${formatLevel(g.level)} interval: percentile bootstrap over the ${g.problems} problems (${g.resamples} resamples); ` +
        `the gain's is paired (same problems and seeds, per-problem differences)`,
    );
    lines.push(formatVerdict(g, { base: 'SFT', trained: 'GRPO' }));
    lines.push('');
  }
  const lastProbe = r.sft.probes[r.sft.probes.length - 1];
  if (r.sft.stoppedEarly && lastProbe) {
    lines.push(
      `SFT stopped at update ${r.sft.steps} of ${r.sft.maxSteps}: greedy accuracy ${pct(lastProbe.accuracy)} on ${c.sft.probeProblems} training problems ` +
        `(target ${pct(c.sft.stopAtAccuracy ?? 0)}), so GRPO starts from a partly trained model`,
    );
  }
  lines.push(
    `GRPO mean reward: ${r.grpo.meanRewardFirst10.toFixed(3)} (first 10 steps) -> ${r.grpo.meanRewardLast10.toFixed(3)} (last 10 steps)`,
  );
  lines.push(
    `wall time: init ${formatDuration(r.seconds.init)}, SFT ${formatDuration(r.seconds.sft)}, eval ${formatDuration(r.seconds.evalSft)}, ` +
      `GRPO ${formatDuration(r.seconds.grpo)}, eval ${formatDuration(r.seconds.evalGrpo)}; total ${formatDuration(r.seconds.total)}`,
  );
  lines.push(`outputs in ${r.outDir}: ${r.files.join(', ')}`);
  return lines.join('\n');
}
