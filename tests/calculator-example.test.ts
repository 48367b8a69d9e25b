// examples/calculator-tool/run.mjs in --quick mode (seconds, toy model): every phase runs on the built
// library (dist/), the report has its fields, and the tool loop ran in GRPO's rollouts (tool calls > 0 in
// tool/grpo/metrics.jsonl) and in the evaluation. The accuracies of the full run are measured and recorded
// in examples/calculator-tool/README.md, not here (the quick model is far too small to learn the task).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readMetrics } from '../ts/metrics/writer.js';
import { cleanupTempDirs, tempDir } from './helpers.js';

const root = join(import.meta.dirname, '..');
const script = join(root, 'examples', 'calculator-tool', 'run.mjs');

afterAll(cleanupTempDirs);

describe('examples/calculator-tool', () => {
  it('--quick runs SFT, GRPO with the tool and both evaluations, and writes the report', () => {
    expect(existsSync(join(root, 'dist', 'index.js')), 'build the library first: npm run build:ts').toBe(true);
    const out = tempDir('hayate-calculator-');
    const r = spawnSync(process.execPath, [script, '--quick', '--out', out, '--seed', '1'], { encoding: 'utf8', timeout: 110_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/with the tool \(calculate\)/);

    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
    expect(report).toMatchObject({ example: 'calculator-tool', quick: true, seed: 1 });
    for (const s of [report.base.direct, report.tool.afterSft, report.tool.afterGrpo, report.direct.afterGrpo, report.tool.directAfterGrpo]) {
      expect(s.accuracy).toBeGreaterThanOrEqual(0);
      expect(s.accuracy).toBeLessThanOrEqual(1);
      expect(s.total).toBe(report.config.evalProblems);
      expect(s.correct).toBe(Math.round(s.accuracy * s.total));
      expect(s.interval.lo).toBeLessThanOrEqual(s.interval.hi);
    }
    for (const s of [report.tool.afterSft, report.tool.afterGrpo]) {
      expect(typeof s.toolCallFrequency).toBe('number');
      expect(typeof s.completionsWithToolCall).toBe('number');
      expect(Object.values(s.outcomes as Record<string, number>).reduce((a, b) => a + b, 0)).toBe(s.total);
    }
    expect(report.tool.sft.steps).toBe(report.config.sft.steps);
    expect(report.tool.grpo.steps).toBe(report.config.grpo.steps);
    expect(report.direct.grpo.steps).toBe(report.config.grpo.steps);
    expect(report.comparison.problems).toBe(report.config.evalProblems);
    for (const x of [report.comparison.vsBase, report.comparison.vsDirectGrpo]) {
      expect(x.bothRight + x.neither + x.onlyTool + x.onlyDirect).toBe(report.config.evalProblems);
      expect(x.mcnemarP).toBeGreaterThan(0);
      expect(x.mcnemarP).toBeLessThanOrEqual(1);
    }
    for (const k of ['baseSft', 'toolSft', 'toolGrpo', 'directGrpo', 'total']) expect(report.seconds[k]).toBeGreaterThan(0);

    // The tool loop ran during GRPO: tool calls in the rollouts' metrics (TRL-style names), and none
    // in the direct branch, which has no tools.
    const toolMetrics = readMetrics(join(out, 'tool', 'grpo', 'metrics.jsonl'));
    expect(toolMetrics).toHaveLength(report.config.grpo.steps);
    const calls = toolMetrics.map((m) => Number(m['tools/call_frequency']));
    for (const c of calls) expect(Number.isFinite(c)).toBe(true);
    expect(Math.max(...calls)).toBeGreaterThan(0);
    expect(report.tool.grpo.toolCallFrequency).toBeGreaterThan(0);
    const directMetrics = readMetrics(join(out, 'direct', 'grpo', 'metrics.jsonl'));
    expect(directMetrics.every((m) => m['tools/call_frequency'] === undefined)).toBe(true);

    // ... and in the evaluation (MultiTurnBatch + Model.generate's onTurn): the records say how many.
    const records = readFileSync(join(out, 'eval-tool-sft.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(records).toHaveLength(report.config.evalProblems);
    expect(records.some((x) => x.toolCalls > 0)).toBe(true);
    for (const f of ['model/config.json', 'base/adapter_model.safetensors', 'tool/grpo/adapter_model.safetensors', 'direct/grpo/adapter_model.safetensors', 'tool-sft-examples.jsonl', 'eval-direct-grpo.jsonl']) {
      expect(existsSync(join(out, f)), f).toBe(true);
    }
  });
});
