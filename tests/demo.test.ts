// `hayate demo`'s pipeline in quick mode: every phase runs (init, SFT, eval, GRPO, eval) and writes its
// outputs; the report table names both accuracies. (The accuracy gain is a property of the full default
// run, measured and recorded in the README, not of this seconds-long smoke run.)
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEMO_DEFAULTS, resolveDemoConfig } from '../ts/demo/config.js';
import { runDemo, type DemoProgress } from '../ts/demo/pipeline.js';
import { formatDemoReport } from '../ts/demo/report.js';
import { buildDemoData, demoCompletion } from '../ts/demo/task.js';
import { formatVerdict } from '../ts/eval/compare.js';
import { HayateError } from '../ts/errors.js';
import { isCorrect } from '../ts/rewards/extract.js';
import { cleanupTempDirs, tempDir } from './helpers.js';

afterAll(cleanupTempDirs);

describe('demo', () => {
  it('task data: worked completions are correct, train and eval problems never overlap, drills are added', () => {
    const d = buildDemoData({ seed: 3, level: 2, trainProblems: 50, evalProblems: 20, drillsPerProblem: 2 });
    expect(d.train).toHaveLength(50);
    expect(d.eval).toHaveLength(20);
    expect(d.sft).toHaveLength(150);
    for (const p of d.train) expect(isCorrect(demoCompletion(p), String(p.result))).toBe(true);
    const trainQuestions = new Set(d.train.map((p) => p.question));
    for (const e of d.eval) expect(trainQuestions.has(e.question)).toBe(false);
    expect(d.sft[60]).toMatchObject({ prompt: expect.stringMatching(/^\d+ [-+*/] \d+ =$/), completion: expect.stringMatching(/^ \d+$/) });
  });

  it('resolves overrides and rejects bad ones', () => {
    const c = resolveDemoConfig({ seed: 5, sftSteps: 10, grpoSteps: 3 });
    expect(c).toMatchObject({ seed: 5, sft: { steps: 10 }, grpo: { steps: 3 } });
    expect(DEMO_DEFAULTS.sft.steps).not.toBe(10); // the defaults are not mutated
    expect(() => resolveDemoConfig({ grpoSteps: 0 })).toThrow(HayateError);
  });

  it('quick mode runs every phase and writes the outputs', async () => {
    const out = tempDir('hayate-demo-');
    const phases = new Set<string>();
    const result = await runDemo({ config: resolveDemoConfig({ quick: true }), outDir: out, onProgress: (p: DemoProgress) => phases.add(p.phase) });
    expect([...phases]).toEqual(['init', 'sft', 'eval-sft', 'grpo', 'eval-grpo']);
    for (const f of [
      'model/config.json',
      'model/model.safetensors',
      'model/tokenizer.json',
      'sft/adapter_model.safetensors',
      'sft/adapter_config.json',
      'sft/metrics.jsonl',
      'eval-sft.jsonl',
      'grpo/adapter_model.safetensors',
      'grpo/metrics.jsonl',
      'grpo/reward_curve.svg',
      `grpo/checkpoint-${result.grpo.steps}/trainer_state.json`,
      'eval-grpo.jsonl',
      'summary.json',
    ]) {
      expect(existsSync(join(out, f)), f).toBe(true);
    }
    const c = result.config;
    // quick mode's probe target (0) is met at the first probe: SFT stops there
    expect(result.sft).toMatchObject({ steps: c.sft.probeEvery, maxSteps: c.sft.steps, stoppedEarly: true });
    expect(result.sft.probes).toHaveLength(1);
    expect(result.grpo.steps).toBe(c.grpo.steps);
    expect(readFileSync(join(out, 'sft/metrics.jsonl'), 'utf8').trim().split('\n')).toHaveLength(result.sft.steps);
    const grpoLines = readFileSync(join(out, 'grpo/metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(grpoLines).toHaveLength(c.grpo.steps);
    expect(grpoLines[0]).toHaveProperty('reward');
    const evalLines = readFileSync(join(out, 'eval-grpo.jsonl'), 'utf8').trim().split('\n');
    expect(evalLines).toHaveLength(c.task.evalProblems * (1 + c.eval.samples));
    for (const a of [result.afterSft, result.afterGrpo]) {
      expect(a.greedy.total).toBe(c.task.evalProblems);
      expect(a.sampled.total).toBe(c.task.evalProblems * c.eval.samples);
      expect(a.greedy.accuracy).toBeGreaterThanOrEqual(0);
      expect(a.greedy.accuracy).toBeLessThanOrEqual(1);
    }
    expect(JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'))).toMatchObject({ sft: { steps: result.sft.steps }, grpo: { steps: c.grpo.steps } });
    const report = formatDemoReport(result);
    expect(report).toContain('after SFT');
    expect(report).toContain(`SFT stopped at update ${c.sft.probeEvery}`);
    expect(report).toContain('after GRPO');
    expect(report).toContain(`seed ${c.seed}`);
    // intervals and the paired GRPO-vs-SFT verdict (same problems, same seeds)
    expect(result.gain.greedy).toMatchObject({ problems: c.task.evalProblems, n: 1 });
    expect(result.gain.sampled).toMatchObject({ problems: c.task.evalProblems, n: c.eval.samples });
    expect(result.afterGrpo.greedy.interval.estimate).toBeCloseTo(result.afterGrpo.greedy.accuracy, 12);
    expect(report).toMatch(/GRPO gain\s+[+-]\d+\.\d pts \[[+-]\d+\.\d, [+-]\d+\.\d\]/);
    expect(report).toContain(formatVerdict(result.gain.greedy, { base: 'SFT', trained: 'GRPO' }));
  });

  it('gives bit-identical results for any thread count (the README table holds on any core count)', async () => {
    // Every CPU reduction the demo's path takes has a fixed order that does not depend on the thread
    // count (built-in GEMM, per-row ops, fixed-chunk sums): the adapters, every evaluated completion and
    // the summary's numbers must match exactly.
    const outputs = ['sft/adapter_model.safetensors', 'grpo/adapter_model.safetensors', 'grpo/metrics.jsonl', 'eval-sft.jsonl', 'eval-grpo.jsonl'];
    const runs: { files: Buffer[]; accuracies: unknown }[] = [];
    for (const threads of [1, 2, 3]) {
      const out = tempDir(`hayate-demo-t${threads}-`);
      const r = await runDemo({ config: resolveDemoConfig({ quick: true, threads }), outDir: out });
      runs.push({ files: outputs.map((f) => readFileSync(join(out, f))), accuracies: [r.afterSft, r.afterGrpo].map(({ seconds: _, ...a }) => a) });
    }
    // metrics.jsonl carries timings: compare it without them
    const untimed = (b: Buffer) => b.toString('utf8').trim().split('\n').map((l) => Object.entries(JSON.parse(l) as Record<string, unknown>).filter(([k]) => !k.startsWith('timing/') && k !== 'step_time' && k !== 'tokens_per_second'));
    for (const run of runs.slice(1)) {
      expect(run.accuracies).toEqual(runs[0].accuracies);
      outputs.forEach((f, i) => {
        if (f.endsWith('metrics.jsonl')) expect(untimed(run.files[i]), f).toEqual(untimed(runs[0].files[i]));
        else expect(run.files[i].equals(runs[0].files[i]), f).toBe(true);
      });
    }
  });
});
