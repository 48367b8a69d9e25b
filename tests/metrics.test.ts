// Metrics: JSONL writer/reader, progress line, statistics, reward-curve SVG.
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { METRIC, rewardMetricName } from '../ts/metrics/names.js';
import { lineChartSvg, niceDomain, niceTicks, plotMetricsFile, rewardCurveSvg } from '../ts/metrics/plot.js';
import { formatDuration, formatProgress, ProgressLine } from '../ts/metrics/progress.js';
import { mean, movingAverage, std } from '../ts/metrics/stats.js';
import { MetricsWriter, readMetrics } from '../ts/metrics/writer.js';
import { cleanupTempDirs, tempDir } from './helpers.js';

afterAll(() => cleanupTempDirs());

describe('metrics JSONL', () => {
  it('writes one line per step with TRL names, non-finite numbers as null', () => {
    const path = join(tempDir(), 'run', 'metrics.jsonl');
    const w = new MetricsWriter(path);
    w.write({ [METRIC.step]: 1, [METRIC.reward]: 0.5, [METRIC.rewardStd]: 0.1, [rewardMetricName('correctness', 'mean')]: 0.4, [METRIC.kl]: NaN });
    w.write({ step: 2, reward: 0.75, [METRIC.fracRewardZeroStd]: 0.25, [METRIC.generationSeconds]: 1.5 });
    w.close();
    expect(() => w.write({ step: 3 })).toThrow(/closed/);
    const lines = readFileSync(path, 'utf8').split('\n');
    expect(lines).toHaveLength(3);
    expect(JSON.parse(lines[0])).toEqual({ step: 1, reward: 0.5, reward_std: 0.1, 'rewards/correctness/mean': 0.4, kl: null });
    expect(readMetrics(path)).toHaveLength(2);
    // Appending (resume) keeps earlier lines; a fresh writer starts over.
    const again = new MetricsWriter(path, { append: true });
    again.write({ step: 3, reward: 1 });
    again.close();
    expect(readMetrics(path).map((r) => r.step)).toEqual([1, 2, 3]);
    new MetricsWriter(path).close();
    expect(readMetrics(path)).toEqual([]);
  });

  it('ignores a cut-off last line but reports a bad line elsewhere', () => {
    const path = join(tempDir(), 'm.jsonl');
    writeFileSync(path, '{"step":1,"reward":0}\n{"step":2,"rew');
    expect(readMetrics(path)).toEqual([{ step: 1, reward: 0 }]);
    appendFileSync(path, '\n{"step":3}\n');
    expect(() => readMetrics(path)).toThrow(/m.jsonl:2: not valid JSON/);
    expect(() => readMetrics(join(tempDir(), 'none.jsonl'))).toThrow(/not found/);
  });

  it('uses the names listed in the issue', () => {
    expect(Object.values(METRIC)).toEqual(
      expect.arrayContaining(['reward', 'reward_std', 'completions/mean_length', 'completions/clipped_ratio', 'kl', 'clip_ratio/low_mean', 'clip_ratio/high_mean', 'frac_reward_zero_std', 'learning_rate', 'grad_norm']),
    );
    expect(rewardMetricName('format', 'std')).toBe('rewards/format/std');
  });
});

describe('statistics', () => {
  it('mean, unbiased std, moving average', () => {
    expect(mean([1, 2, 3])).toBe(2);
    expect(std([1, 2, 3])).toBe(1);
    expect(std([1, 2, 3], { unbiased: false })).toBeCloseTo(Math.sqrt(2 / 3), 15);
    expect(std([5])).toBe(0);
    expect(movingAverage([1, 2, 3, 4, 5], 2)).toEqual([1, 1.5, 2.5, 3.5, 4.5]);
    expect(movingAverage([1, NaN, 3], 3)).toEqual([1, 1, 2]);
    expect(() => movingAverage([1], 0)).toThrow();
  });
});

describe('progress line', () => {
  it('formats count, bar, rate, ETA and values', () => {
    expect(formatProgress({ label: 'train', done: 5, total: 20, elapsedSeconds: 10, values: { reward: 0.123456, kl: 0.00001234 } })).toBe(
      'train  5/20  [#####---------------]  25%  2.0s/it  eta 30.0s  reward 0.1235  kl 1.23e-5',
    );
    expect(formatProgress({ label: 'eval', done: 0, total: 3, elapsedSeconds: 0 }, 0)).toBe('eval  0/3  0%');
    expect(formatProgress({ label: 'x', done: 4, total: 4, elapsedSeconds: 1 }, 4)).toBe('x  4/4  [####]  100%  4.0it/s  took 1.0s');
    expect(formatDuration(3725)).toBe('1h02m');
    expect(formatDuration(125)).toBe('2m05s');
  });

  it('redraws in place on a terminal, prints throttled lines otherwise', () => {
    const tty: string[] = [];
    const p = new ProgressLine({ label: 'eval', total: 3, stream: { write: (s: string) => tty.push(s), isTTY: true, columns: 200 } });
    p.update(1);
    p.update(2);
    p.finish();
    expect(tty.slice(0, 2).every((s) => s.startsWith('\r') && s.endsWith('\x1b[K'))).toBe(true);
    expect(tty[2]).toBe('\n');
    const file: string[] = [];
    const q = new ProgressLine({ label: 'eval', total: 3, stream: { write: (s: string) => file.push(s) }, intervalMs: 60_000 });
    q.update(1);
    q.update(2);
    q.update(3);
    q.finish();
    expect(file).toHaveLength(2); // the first update and the last one
    expect(file.every((s) => s.endsWith('\n') && !s.includes('\r'))).toBe(true);
  });
});

describe('reward plot', () => {
  it('computes nice ticks and domains', () => {
    expect(niceTicks(0, 1, 5)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(0.23, 0.91, 5)).toEqual([0.4, 0.6, 0.8]);
    expect(niceDomain(0.23, 0.91, 5)).toEqual({ min: 0.2, max: 1, ticks: [0.2, 0.4, 0.6, 0.8, 1] });
    expect(niceDomain(1, 150, 8, { integer: true })).toEqual({ min: 0, max: 160, ticks: [0, 20, 40, 60, 80, 100, 120, 140, 160] });
    expect(niceDomain(1, 3, 8, { integer: true }).ticks).toEqual([1, 2, 3]);
    expect(niceTicks(5, 5)).toEqual([4.6, 4.8, 5, 5.2, 5.4]);
    expect(niceTicks(NaN, 1)).toEqual([]);
  });

  it('draws raw values and the moving average with axes, ticks and labels', () => {
    const points = Array.from({ length: 100 }, (_, i) => ({ x: i + 1, y: Math.sin(i / 10) * 0.3 + i / 120 }));
    const svg = rewardCurveSvg(points, { window: 10, title: 'GRPO <gsm8k> & co' });
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    expect(svg).toContain('GRPO &lt;gsm8k&gt; &amp; co');
    expect(svg.match(/<path /g)).toHaveLength(2);
    expect(svg).toContain('moving average (10 steps)');
    expect(svg).toContain('>step</text>');
    expect(svg).toContain('>reward</text>');
    // Every opened element is closed (a cheap well-formedness check).
    const opened = (svg.match(/<(svg|g|defs|clipPath|text)[\s>]/g) ?? []).length;
    const closed = (svg.match(/<\/(svg|g|defs|clipPath|text)>/g) ?? []).length;
    expect(opened).toBe(closed);
    expect(svg).not.toMatch(/NaN|undefined|Infinity/);
  });

  it('handles one point, no points and gaps', () => {
    expect(rewardCurveSvg([{ x: 0, y: 0.3 }])).toContain('<circle');
    expect(rewardCurveSvg([])).not.toMatch(/NaN/);
    expect(lineChartSvg([{ name: 'a', color: '#000', points: [{ x: 1, y: NaN }, { x: 2, y: 1 }, { x: 3, y: 2 }] }])).not.toMatch(/NaN/);
  });

  it('plots a metrics file', () => {
    const dir = tempDir();
    const metrics = join(dir, 'metrics.jsonl');
    const w = new MetricsWriter(metrics);
    for (let s = 1; s <= 30; s++) w.write({ step: s, reward: s / 30, kl: null });
    w.close();
    const svg = join(dir, 'plots', 'reward.svg');
    plotMetricsFile(metrics, svg);
    expect(readFileSync(svg, 'utf8')).toContain('Reward per step');
    expect(() => plotMetricsFile(metrics, svg, { metric: 'kl' })).toThrow(/no lines with numeric "step" and "kl"/);
  });
});
