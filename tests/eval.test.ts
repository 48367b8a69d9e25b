// Evaluation: pass@k against its closed form, maj@k, the stop-at-boxed sampling loop (scripted model),
// evaluate() and `hayate eval` end to end on a tiny random model with the GSM8K test file, including the
// base vs adapter comparison (intervals, McNemar, verdict). The statistics alone: eval-stats.test.ts.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { examplesFromRecords, loadDataset, type Example } from '../ts/data/dataset.js';
import { bootstrapMean } from '../ts/eval/bootstrap.js';
import type { EvalComparison } from '../ts/eval/compare.js';
import { evaluate, type EvalSummary } from '../ts/eval/evaluate.js';
import { accuracy, majAtK, majorityVote, passAtK } from '../ts/eval/metrics.js';
import { endsInOpenBox, sampleCompletions, truncateAfterBoxed, type EvalModel } from '../ts/eval/sampling.js';
import type { GenerateOptions, GenerateResult, PromptInput } from '../ts/model.js';
import { saveAdapter } from '../ts/adapter.js';
import { Model } from '../ts/model.js';
import { cleanupTempDirs, makeModel, tempDir } from './helpers.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const GSM8K_TEST = fileURLToPath(new URL('../data/gsm8k/test.jsonl', import.meta.url));

function binom(n: number, k: number): bigint {
  if (k < 0 || k > n) return 0n;
  let r = 1n;
  for (let i = 1; i <= k; i++) r = (r * BigInt(n - k + i)) / BigInt(i);
  return r;
}

/** 1 - C(n-c, k) / C(n, k), exactly (as a ratio of BigInts), then to a float. */
function passAtKClosedForm(n: number, c: number, k: number): number {
  const num = binom(n - c, k);
  const den = binom(n, k);
  const scale = 10n ** 30n;
  return 1 - Number((num * scale) / den) / 1e30;
}

describe('pass@k', () => {
  it('matches the closed form on small cases', () => {
    for (let n = 1; n <= 12; n++)
      for (let c = 0; c <= n; c++)
        for (let k = 1; k <= n; k++) expect(passAtK(n, c, k)).toBeCloseTo(passAtKClosedForm(n, c, k), 12);
  });

  it('edge cases', () => {
    expect(passAtK(10, 0, 1)).toBe(0);
    expect(passAtK(10, 0, 10)).toBe(0);
    expect(passAtK(10, 10, 1)).toBe(1);
    expect(passAtK(10, 1, 10)).toBe(1);
    expect(passAtK(10, 3, 1)).toBeCloseTo(0.3, 15);
    expect(passAtK(5, 2, 5)).toBe(1);
    expect(passAtK(1, 1, 1)).toBe(1);
    expect(passAtK(1, 0, 1)).toBe(0);
  });

  it('is stable for large n', () => {
    const v = passAtK(1000, 1, 100);
    expect(v).toBeCloseTo(0.1, 12);
    const w = passAtK(2000, 3, 500);
    expect(w).toBeCloseTo(passAtKClosedForm(2000, 3, 500), 12);
    expect(Number.isFinite(passAtK(100000, 50000, 1000))).toBe(true);
  });

  it('rejects impossible counts', () => {
    expect(() => passAtK(4, 5, 1)).toThrow(/c must/);
    expect(() => passAtK(4, 1, 5)).toThrow(/k must/);
    expect(() => passAtK(0, 0, 1)).toThrow(/n must/);
  });
});

describe('maj@k and accuracy', () => {
  it('votes over extracted answers; no answer does not vote; ties go to the first seen', () => {
    expect(majorityVote(['3', '5', '5', null, null, null])).toBe('5');
    expect(majorityVote(['3', '5', '5', '3'])).toBe('3');
    expect(majorityVote(['5', '3', '3', '5'])).toBe('5');
    expect(majorityVote([null, undefined])).toBeNull();
    expect(majorityVote([])).toBeNull();
    expect(majAtK(['1', '2', '2', '1', '1'], '2', 3)).toBe(1);
    expect(majAtK(['1', '2', '2', '1', '1'], '2', 5)).toBe(0);
    expect(majAtK(['1', '2', '2', '1', '1'], '1', 1)).toBe(1);
    expect(() => majAtK(['1'], '1', 2)).toThrow(/k must/);
    expect(accuracy([true, false, true, true])).toBe(0.75);
    expect(accuracy([])).toBeNaN();
  });
});

/**
 * A scripted "model" with a character tokenizer: each prompt has one script per sample; generation emits
 * the script's next characters, honouring maxNewTokens and stop strings like the engine (the token that
 * completes a stop string is kept in the tokens).
 */
class ScriptedModel implements EvalModel {
  calls: { prompts: number; n: number; stop: string[]; maxNewTokens: number }[] = [];
  readonly tokenizer = { decode: (ids: readonly number[]) => String.fromCharCode(...ids) };
  constructor(private readonly scripts: Map<string, string[]>) {}

  private static encode(s: string): number[] {
    return Array.from(s, (ch) => ch.charCodeAt(0));
  }

  async generate(prompts: PromptInput[], options: GenerateOptions): Promise<GenerateResult> {
    const n = options.n ?? 1;
    const stop = options.stop ?? [];
    this.calls.push({ prompts: prompts.length, n, stop, maxNewTokens: options.maxNewTokens ?? 256 });
    const results = prompts.map((p) => {
      const text = typeof p === 'string' ? p : 'tokens' in p ? this.tokenizer.decode(Array.from(p.tokens)) : 'text' in p ? p.text : p.messages.map((m) => m.content).join('\n');
      const key = [...this.scripts.keys()].find((k) => text.startsWith(k));
      if (key === undefined) throw new Error(`no script for ${text}`);
      const done = text.slice(key.length);
      const candidates = this.scripts.get(key)!;
      const completions = Array.from({ length: n }, (_, j) => {
        const script = typeof p === 'object' && 'tokens' in p ? candidates.find((s) => s.startsWith(done))! : candidates[j];
        let out = '';
        let i = done.length;
        for (; out.length < (options.maxNewTokens ?? 256) && i < script.length; i++) {
          out += script[i];
          const hit = stop.find((s) => out.includes(s));
          if (hit) return { text: out.slice(0, out.indexOf(hit)), tokens: ScriptedModel.encode(out), logprobs: [], finishReason: 'stop' as const, stopString: hit };
        }
        return { text: out, tokens: ScriptedModel.encode(out), logprobs: [], finishReason: i >= script.length ? ('stop' as const) : ('length' as const) };
      });
      return { promptTokens: ScriptedModel.encode(text), completions };
    });
    return { results, stats: { generatedTokens: 0 } as GenerateResult['stats'] };
  }
}

describe('stop at a complete \\boxed{}', () => {
  it('recognises open boxes and truncates after the first complete one', () => {
    expect(endsInOpenBox('so \\boxed')).toBe(true);
    expect(endsInOpenBox('so \\boxed{\\frac{1}')).toBe(true);
    expect(endsInOpenBox('so \\boxed{\\frac{1}{2}}')).toBe(false);
    expect(endsInOpenBox('so \\boxed is a command')).toBe(false);
    expect(endsInOpenBox('no box')).toBe(false);
    expect(truncateAfterBoxed('a \\boxed{} b \\boxed{5} c \\boxed{6}')).toEqual({ text: 'a \\boxed{} b \\boxed{5}', boxed: true });
    expect(truncateAfterBoxed('a \\boxed{x}')).toEqual({ text: 'a \\boxed{x}', boxed: false });
  });

  it('stops each sample once its box closes, continuing through nested braces and empty boxes', async () => {
    const long = 'x'.repeat(200);
    const model = new ScriptedModel(
      new Map([
        ['Q1', ['A: so \\boxed{\\frac{1}{2}} and then ' + long, 'B: I put it within \\boxed{} as asked. #### 5', 'C: ' + long]],
        ['Q2', ['D: \\boxed{42}' + long, 'E: \\fbox{7} tail', 'F: \\boxed{1']],
      ]),
    );
    const samples = await sampleCompletions(model, ['Q1', 'Q2'], { n: 3, maxNewTokens: 60, temperature: 1, seed: 3 });
    expect(samples.map((s) => s.map((x) => [x.text, x.finish]))).toEqual([
      [
        ['A: so \\boxed{\\frac{1}{2}}', 'boxed'],
        ['B: I put it within \\boxed{} as asked. #### 5', 'eos'],
        ['C: ' + long.slice(0, 57), 'length'],
      ],
      [
        ['D: \\boxed{42}', 'boxed'],
        ['E: \\fbox{7}', 'boxed'],
        ['F: \\boxed{1', 'eos'],
      ],
    ]);
    expect(samples[0][0].tokens).toHaveLength('A: so \\boxed{\\frac{1}{2}}'.length);
    expect(samples[0][2].tokens).toHaveLength(60);
    // Round 0 is one batched call with n samples per prompt and the box openers as stop strings.
    expect(model.calls[0]).toEqual({ prompts: 2, n: 3, stop: ['\\boxed', '\\fbox'], maxNewTokens: 60 });
    expect(model.calls.slice(1).every((c) => c.n === 1)).toBe(true);
    expect(model.calls.some((c) => c.stop.length === 1 && c.stop[0] === '}')).toBe(true);
  });

  it('generates in one call without stopping when disabled', async () => {
    const model = new ScriptedModel(new Map([['Q', ['\\boxed{1} more text']]]));
    const samples = await sampleCompletions(model, ['Q'], { n: 1, maxNewTokens: 100, temperature: 0, seed: 0, stopAtBoxed: false });
    expect(samples[0][0]).toMatchObject({ text: '\\boxed{1} more text', finish: 'eos' });
    expect(model.calls).toHaveLength(1);
  });

  it('evaluate() scores samples, pass@k and maj@k from records', async () => {
    const examples: Example[] = examplesFromRecords([
      { question: 'Q1', answer: '#### 5' },
      { question: 'Q2', answer: '#### 7' },
    ], { instruction: null });
    const model = new ScriptedModel(
      new Map([
        // Scripts of one prompt differ in their first character: continuations are matched by prefix.
        ['Q1', ['a \\boxed{5}', 'b \\boxed{4}', 'c it is 5', 'd \\boxed{4}']],
        ['Q2', ['a \\boxed{1}', 'b \\boxed{2}', 'c nothing', 'd #### 3']],
      ]),
    );
    const progress: number[] = [];
    const { summary, records } = await evaluate(model, examples, { n: 4, k: [1, 2, 4], maxNewTokens: 50, batchSize: 1, onProgress: (p) => progress.push(p.done) });
    expect(progress).toEqual([1, 2]);
    expect(records).toHaveLength(8);
    expect(records.map((r) => [r.index, r.sample, r.extracted, r.correct, r.boxed])).toEqual([
      [0, 0, '5', true, true],
      [0, 1, '4', false, true],
      [0, 2, '5', true, false],
      [0, 3, '4', false, true],
      [1, 0, '1', false, true],
      [1, 1, '2', false, true],
      [1, 2, null, false, false],
      [1, 3, '3', false, false],
    ]);
    expect(summary.accuracy).toBe(2 / 8);
    expect(summary.passAtK['1']).toBeCloseTo((passAtK(4, 2, 1) + 0) / 2, 12);
    expect(summary.passAtK['2']).toBeCloseTo((passAtK(4, 2, 2) + 0) / 2, 12);
    expect(summary.passAtK['4']).toBe(0.5);
    // maj@4 of Q1: 5,4,5,4 -> tie, first seen (5) wins.
    expect(summary.majAtK).toEqual({ '1': 0.5, '2': 0.5, '4': 0.5 });
    // mean@k: Q1 right on samples 0 and 2, Q2 never -> mean@1 = 1/2, mean@2 = mean@4 = 1/4 (= accuracy).
    expect(summary.meanAtK).toEqual({ '1': 0.5, '2': 0.25, '4': 0.25 });
    // Intervals over the 2 problems (seeded by the sampling seed, 0): per-problem values [1/2, 0] for accuracy.
    expect(summary.intervals).toMatchObject({ resamples: 1000, seed: 0, level: 0.95 });
    expect(summary.intervals.accuracy).toEqual(bootstrapMean([0.5, 0], { seed: 0 }));
    expect(summary.intervals.accuracy).toMatchObject({ estimate: 0.25, lo: 0, hi: 0.5 });
    expect(summary.intervals.passAtK['4']).toMatchObject({ estimate: 0.5, lo: 0, hi: 1 });
    expect(summary.boxedRate).toBe(5 / 8);
    expect(summary.extractedRate).toBe(7 / 8);
    expect(summary.temperature).toBe(1);
    await expect(evaluate(model, examples, { n: 2, k: 3 })).rejects.toThrow(/k must be/);
    const calls = model.calls.length;
    await expect(evaluate(model, examples, { bootstrap: { resamples: 0 } })).rejects.toThrow(/resamples must be/);
    expect(model.calls).toHaveLength(calls); // refused before generating anything
    await expect(evaluate(model, [], {})).rejects.toThrow(/empty/);
  });
});

describe('evaluation on a tiny model with the GSM8K test file', () => {
  let dir: string;
  let model: Model;
  beforeAll(async () => {
    dir = await makeModel();
    model = await Model.load(dir, { threads: 2 });
  });
  afterAll(async () => {
    await model?.dispose();
    cleanupTempDirs();
  });

  it('evaluates a seeded subset greedily, reproducibly', async () => {
    const data = await loadDataset(GSM8K_TEST);
    const a = await evaluate(model, data.examples, { limit: 4, subsetSeed: 1, maxNewTokens: 24 });
    const b = await evaluate(model, data.examples, { limit: 4, subsetSeed: 1, maxNewTokens: 24 });
    expect(a.records.map((r) => r.completion)).toEqual(b.records.map((r) => r.completion));
    expect(a.summary.examples).toBe(4);
    expect(a.summary.datasetSize).toBe(1319);
    expect(a.summary.subsetSeed).toBe(1);
    expect(a.summary.temperature).toBe(0);
    expect(Object.keys(a.summary.passAtK)).toEqual(['1']);
    expect(a.records.map((r) => r.index)).toEqual(a.records.map((r) => r.index).sort((x, y) => x - y));
    for (const r of a.records) {
      expect(r.tokens).toBeGreaterThan(0);
      expect(r.tokens).toBeLessThanOrEqual(24);
      expect(r.answer).toBe(data.examples[r.index].answer);
    }
  });

  it('samples n per problem with pass@k', async () => {
    const data = await loadDataset(GSM8K_TEST, { chat: true });
    const { summary, records } = await evaluate(model, data.examples, { limit: 3, n: 3, temperature: 1, maxNewTokens: 16, seed: 5 });
    expect(records).toHaveLength(9);
    expect(Object.keys(summary.passAtK)).toEqual(['1', '3']);
    expect(summary.meanCompletionTokens).toBeGreaterThan(0);
  });
});

describe('hayate eval', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await makeModel();
  });
  afterAll(() => cleanupTempDirs());

  const run = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'tests/fixtures/eval-cli.ts'), 'eval', ...args], { cwd: ROOT, encoding: 'utf8' });

  it('evaluates the GSM8K test file and writes per-sample JSONL', () => {
    const out = join(tempDir(), 'results.jsonl');
    const r = run([dir, '--data', GSM8K_TEST, '--limit', '3', '--subset-seed', '2', '-n', '2', '-t', '0.7', '--max-new-tokens', '12', '--out', out, '--json', '--threads', '2']);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.status).toBe(0);
    const summary = JSON.parse(r.stdout.trim()) as Record<string, unknown>;
    expect(summary).toMatchObject({ examples: 3, n: 2, temperature: 0.7, maxNewTokens: 12, subsetSeed: 2, datasetSize: 1319 });
    expect(Object.keys(summary.passAtK as object)).toEqual(['1', '2']);
    expect(Object.keys(summary.meanAtK as object)).toEqual(['1', '2']);
    const intervals = summary.intervals as EvalSummary['intervals'];
    expect(intervals).toMatchObject({ resamples: 1000, seed: 0, level: 0.95 });
    expect(Object.keys(intervals.majAtK)).toEqual(['1', '2']);
    for (const [k, v] of Object.entries(summary.passAtK as Record<string, number>)) {
      expect(intervals.passAtK[k].estimate).toBeCloseTo(v, 12);
      expect(intervals.passAtK[k].lo).toBeLessThanOrEqual(v);
      expect(intervals.passAtK[k].hi).toBeGreaterThanOrEqual(v);
    }
    const lines = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(6);
    expect(Object.keys(lines[0])).toEqual(['index', 'sample', 'question', 'answer', 'completion', 'extracted', 'extractedFrom', 'correct', 'boxed', 'tokens', 'finish']);
  });

  it('prints a readable table', () => {
    const r = run([dir, '--data', GSM8K_TEST, '--limit', '2', '--max-new-tokens', '8', '--chat', '--threads', '2']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/2 of 1319 problems \(random subset, seed 0\), n=1, temperature 0/);
    expect(r.stdout).toMatch(/accuracy\s+\d+\.\d% \(\d\/2\) ± \d+\.\d \[\d+\.\d, \d+\.\d\]/);
    expect(r.stdout).toMatch(/pass@1\s+\d+\.\d% ± \d+\.\d \[\d+\.\d, \d+\.\d\]/);
    expect(r.stdout).toContain('± bootstrap standard error, [95% interval], in points: percentile bootstrap over problems, 1000 resamples, seed 0');
    expect(r.stdout).not.toMatch(/McNemar/);
  });

  /** An adapter with non-zero B, so it changes the model's outputs. */
  async function makeAdapter(): Promise<string> {
    const adapterDir = tempDir();
    const m = await Model.load(dir, { threads: 2 });
    try {
      await m.attachLora({ rank: 4, alpha: 8, seed: 1 });
      const tensors = await m.loraTensors();
      for (const t of tensors) t.b = Float32Array.from(t.b, (_, i) => Math.sin(i + 1) * 0.5);
      await m.setLoraTensors(tensors);
      await saveAdapter(m, adapterDir);
    } finally {
      await m.dispose();
    }
    return adapterDir;
  }

  it('evaluates base and adapter side by side', async () => {
    const adapterDir = await makeAdapter();
    const out = join(tempDir(), 'both.jsonl');
    let r = run([dir, '--data', GSM8K_TEST, '--limit', '2', '--max-new-tokens', '10', '--adapter', adapterDir, '--out', out, '--threads', '2']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/\+ .*: 2 of 1319 problems/);
    expect(r.stdout).toMatch(/^\s+base\s+adapter$/m);
    const rows = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { model: string; index: number; completion: string });
    expect(rows.map((x) => x.model)).toEqual(['base', 'base', 'adapter', 'adapter']);
    expect(rows[0].index).toBe(rows[2].index);
    expect(rows.slice(0, 2).map((x) => x.completion)).not.toEqual(rows.slice(2).map((x) => x.completion));
    r = run([dir, '--data', GSM8K_TEST, '--limit', '2', '--max-new-tokens', '10', '--adapter', adapterDir, '--json', '--threads', '2']);
    expect(r.status).toBe(0);
    const json = JSON.parse(r.stdout) as { base: { examples: number }; adapter: { examples: number } };
    expect([json.base.examples, json.adapter.examples]).toEqual([2, 2]);
  });

  it('--adapter: paired comparison with intervals, McNemar and a verdict (and --no-compare)', async () => {
    const adapterDir = await makeAdapter();
    // 40 GSM8K questions; a first run finds which number each model states (greedy) ...
    const questions = readFileSync(GSM8K_TEST, 'utf8').trim().split('\n').slice(0, 40).map((l) => (JSON.parse(l) as { question: string }).question);
    const data = join(tempDir(), 'q.jsonl');
    const writeData = (answers: string[]) => writeFileSync(data, questions.map((q, i) => `${JSON.stringify({ prompt: q, answer: answers[i] })}\n`).join(''));
    writeData(questions.map(() => '123456789'));
    const out = join(tempDir(), 'first.jsonl');
    const args = [dir, '--data', data, '--format', 'jsonl', '--max-new-tokens', '12', '--adapter', adapterDir, '--threads', '2'];
    let r = run([...args, '--out', out]);
    expect(r.status).toBe(0);
    const rows = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { model: string; index: number; extracted: string | null });
    const said = (model: string) => questions.map((_, i) => rows.find((x) => x.model === model && x.index === i)!.extracted);
    const base = said('base');
    const adapter = said('adapter');
    // ... then the answers are set so that the adapter is right wherever it states a number, and the base
    // on one more problem where only it states one: a known table of concordant and discordant problems.
    const baseOnlyAt = base.findIndex((b, i) => b !== null && adapter[i] === null);
    const answers = questions.map((_, i) => adapter[i] ?? (i === baseOnlyAt ? base[i]! : '123456789'));
    writeData(answers);
    const baseRight = base.map((b, i) => b === answers[i]);
    const adapterRight = adapter.map((a, i) => a === answers[i]);
    const c = adapterRight.filter((a, i) => a && !baseRight[i]).length;
    const b = baseRight.filter((x, i) => x && !adapterRight[i]).length;
    const both = baseRight.filter((x, i) => x && adapterRight[i]).length;
    expect(b).toBe(1);
    expect(c).toBeGreaterThanOrEqual(6); // this model states a number on about a quarter of these prompts
    // Exact two-sided binomial tail, by hand.
    let tail = 0n;
    for (let i = 0; i <= b; i++) tail += binom(b + c, i);
    const p = Math.min(1, (2 * Number(tail)) / 2 ** (b + c));
    expect(p).toBeLessThan(0.05);
    const diff = (100 * (c - b)) / questions.length;

    r = run([...args, '--bootstrap', '500']);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(r.stdout).toMatch(/^\s+base\s+adapter$/m);
    const accBase = baseRight.filter(Boolean).length;
    const accAdapter = adapterRight.filter(Boolean).length;
    expect(r.stdout).toMatch(new RegExp(`accuracy\\s+${(100 * accBase / 40).toFixed(1)}% \\(${accBase}/40\\) ± \\d+\\.\\d \\[\\d+\\.\\d, \\d+\\.\\d\\]\\s+${(100 * accAdapter / 40).toFixed(1)}% \\(${accAdapter}/40\\) ± \\d+\\.\\d \\[\\d+\\.\\d, \\d+\\.\\d\\]`));
    expect(r.stdout).toContain('percentile bootstrap over problems, 500 resamples, seed 0');
    expect(r.stdout).toContain('adapter - base, paired over the same 40 problems (95% paired bootstrap interval, 500 resamples, seed 0):');
    expect(r.stdout).toMatch(new RegExp(`^  accuracy\\s+\\+${diff.toFixed(1)} pts ± \\d+\\.\\d \\[\\+\\d+\\.\\d, \\+\\d+\\.\\d\\]$`, 'm'));
    const pText = p < 0.001 ? 'p < 0.001' : `p = ${p.toFixed(3)}`;
    expect(r.stdout).toContain(`McNemar exact test on the greedy answer of each problem: right only with adapter ${c}, only with base ${b} (both ${both}, neither ${40 - b - c - both}), ${pText}`);
    const verdict = lines[lines.length - 1];
    expect(verdict).toMatch(new RegExp(`^adapter is better than base: greedy accuracy \\+${diff.toFixed(1)} points \\(95% CI \\+\\d+\\.\\d to \\+\\d+\\.\\d\\), McNemar ${pText.replace(/[.<]/g, (m) => `\\${m}`)} \\(significant at 0\\.05\\)$`));

    r = run([...args, '--bootstrap', '500', '--json']);
    expect(r.status).toBe(0);
    const json = JSON.parse(r.stdout) as { adapterDir: string; base: EvalSummary; adapter: EvalSummary; comparison: EvalComparison; verdict: string };
    expect(json.adapterDir).toBe(adapterDir);
    expect(json.verdict).toBe(verdict);
    expect(json.comparison.firstSample.mcnemar).toEqual({ both, neither: 40 - b - c - both, baseOnly: b, trainedOnly: c, pValue: expect.closeTo(p, 12) });
    expect(json.comparison).toMatchObject({ problems: 40, n: 1, resamples: 500, seed: 0, alpha: 0.05, significant: true, outcome: 'better' });
    // The paired interval is the bootstrap of the per-problem differences, on the same resamples.
    const d = json.comparison.accuracy.difference;
    expect(d).toEqual(bootstrapMean(questions.map((_, i) => Number(adapterRight[i]) - Number(baseRight[i])), { resamples: 500, seed: 0 }));
    expect(d.lo).toBeGreaterThan(0);
    expect(json.base.intervals.accuracy.estimate).toBeCloseTo(accBase / 40, 12);
    expect(json.adapter.intervals).toMatchObject({ resamples: 500, seed: 0 });

    // --no-compare: only base + adapter, one summary, no base run and no verdict.
    r = run([...args, '--no-compare', '--json']);
    expect(r.status).toBe(0);
    const single = JSON.parse(r.stdout) as EvalSummary & { adapterDir: string; verdict?: string; base?: unknown };
    expect(single.adapterDir).toBe(adapterDir);
    expect(single.accuracy).toBe(accAdapter / 40);
    expect(single.verdict).toBeUndefined();
    expect(single.base).toBeUndefined();
  });

  it('reports bad input in one line with an exit code', () => {
    const bad = join(tempDir(), 'bad.jsonl');
    writeFileSync(bad, '{"question": "q", "answer": "#### 1"}\n{oops\n');
    let r = run([dir, '--data', bad]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/bad.jsonl:2: not valid JSON.*\[ERR_INVALID_ARGUMENT\]/);
    r = run([dir, '--data', join(ROOT, 'nope.jsonl')]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/dataset file not found: .*nope.jsonl \[ERR_NOT_FOUND\]/);
    r = run([dir, '--data', GSM8K_TEST, '--limit', '1', '--adapter', join(ROOT, 'no-such-adapter')]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/no-such-adapter.*\[ERR_NOT_FOUND\]/);
    r = run([dir, '--data', GSM8K_TEST, '-n', '2', '--k', '4']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--k values must be <= --n/);
    r = run([dir, '--data', GSM8K_TEST, '--limit', '0']);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')[0]).toMatch(/--limit must be an integer/);
    r = run([dir, '--data', GSM8K_TEST, '--bootstrap', '0']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--bootstrap must be an integer in \[1, 1000000\]/);
  });
});
