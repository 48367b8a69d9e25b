// A multi-turn GRPO rollout with a scripted policy: a stand-in generator plays the model's turns exactly as
// Model.generate's onTurn protocol does (a tool call, then the final answer), through the real Qwen3 chat
// template. Checks the tools' answers appended between turns, the exact loss mask of each completion (0 on
// the appended tool tokens), the step's tool metrics, and that completion lengths count the model's tokens.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Completion, GenerateOptions, GenerateResult, Model, PromptInput, Turn } from '../ts/model.js';
import { RewardPool } from '../ts/rewards/pool.js';
import type { HfTokenizer } from '../ts/tokenizer.js';
import type { Tool } from '../ts/tools/types.js';
import { grpoStepMetrics } from '../ts/train/grpo-metrics.js';
import { resolveGrpoOptions } from '../ts/train/grpo-options.js';
import { trainingSequences } from '../ts/train/grpo-update.js';
import { startRollout } from '../ts/train/rollout.js';
import { calculate } from '../examples/calculator-tool/tools.js';
import { spawnSync } from 'node:child_process';
import { readMetrics } from '../ts/metrics/writer.js';
import { cleanupTempDirs, loadQwen3Tokenizer, makeModel, tempDir } from './helpers.js';

let tok: HfTokenizer;
const calc: Tool = { name: 'calculate', description: calculate.schema.description, parameters: calculate.schema.parameters, fn: calculate as unknown as Tool['fn'] };

beforeAll(async () => {
  tok = await loadQwen3Tokenizer();
});
afterAll(cleanupTempDirs);

/**
 * A generator that plays a scripted policy through the onTurn protocol: for each sequence, each scripted
 * turn's text is "sampled" (logprob -0.5 per token), onTurn answers, the answer is appended, until a turn
 * is answered with null. Records what each prompt was.
 */
function scriptedGenerator(script: (request: number, sample: number) => string[]) {
  const seen: number[][] = [];
  const model = {
    tokenizer: tok,
    info: { backend: 'cpu' },
    async generate(prompts: PromptInput[], options: GenerateOptions): Promise<GenerateResult> {
      const results = [];
      for (const [request, p] of prompts.entries()) {
        seen.push([...(p as { tokens: number[] }).tokens]);
        const completions: Completion[] = [];
        for (let sample = 0; sample < (options.n ?? 1); sample++) {
          const tokens: number[] = [], mask: number[] = [], logprobs: number[] = [];
          let turns = 0;
          for (const [turn, text] of script(request, sample).entries()) {
            const t = tok.encode(text, { addSpecialTokens: false });
            tokens.push(...t);
            mask.push(...t.map(() => 1));
            logprobs.push(...t.map(() => -0.5));
            turns++;
            const answer = await options.onTurn!({ request, sample, turn, tokens: t, text, logprobs: t.map(() => -0.5), completionTokens: tokens.length, remainingTokens: 400, maxAppendTokens: 400 } as Turn);
            if (!answer) break;
            tokens.push(...answer);
            mask.push(...Array.from(answer, () => 0));
            logprobs.push(...Array.from(answer, () => 0));
          }
          completions.push({ text: tok.decode(tokens, { skipSpecialTokens: true }), tokens, logprobs, finishReason: 'stop', modelTokenMask: mask, turns });
        }
        results.push({ promptTokens: (p as { tokens: number[] }).tokens, completions });
      }
      return { results, stats: {} as GenerateResult['stats'] };
    },
  };
  return { model: model as unknown as Model, seen };
}

describe('multi-turn rollouts (scripted policy)', () => {
  it('append tool answers between turns, mask them out of the loss exactly, and log the tool metrics', async () => {
    const call = (expr: string) => `<tool_call>\n{"name": "calculate", "arguments": {"expression": "${expr}"}}\n</tool_call>`;
    // sample 0: a call, then the answer; sample 1: a malformed call, then the answer; sample 2: answers directly
    const script = (_r: number, s: number) => (s === 0 ? [call('6*7'), 'The answer is \\boxed{42}.<|im_end|>'] : s === 1 ? ['<tool_call>{"name": "calculate"</tool_call>', '\\boxed{41}<|im_end|>'] : ['\\boxed{42}<|im_end|>']);
    const { model, seen } = scriptedGenerator(script);
    const dataset = [{ question: '6*7', answer: '42', prompt: { messages: [{ role: 'user', content: 'What is 6*7?' }] } }] as never[];
    const c = resolveGrpoOptions({ model, dataset, tools: [calc], numGenerations: 3, maxCompletionLength: 512, promptsPerStep: 1 });
    expect(c.multiTurn?.tools.map((t) => t.name)).toEqual(['calculate']);
    const pool = await RewardPool.create(['correctness'], { timeoutMs: 10_000 });
    try {
      const rollout = await startRollout({
        generator: model, pool, step: 0, seed: 1, indices: [0], examples: dataset, promptTokens: [[1]], numGenerations: 3, sampling: c.sampling, scaleRewards: 'group', multiTurn: c.multiTurn,
      }).done;
      // the prompt shows the tool through the chat template
      expect(tok.decode(seen[0], { skipSpecialTokens: false })).toContain('<tools>\n{"type": "function", "function": {"name": "calculate"');
      const [first, second, third] = rollout.completions;
      const answer = tok.decode(first.tokens.filter((_, i) => first.modelTokenMask![i] === 0), { skipSpecialTokens: false });
      expect(answer).toBe('<|im_end|>\n<|im_start|>user\n<tool_response>\n42\n</tool_response><|im_end|>\n<|im_start|>assistant\n');
      expect(tok.decode(second.tokens.filter((_, i) => second.modelTokenMask![i] === 0), { skipSpecialTokens: false })).toContain('error: the tool call is not valid JSON');
      expect(third.modelTokenMask!.every((m) => m === 1)).toBe(true);
      expect(rollout.episodes).toEqual([
        expect.objectContaining({ toolCalls: 1, toolFailures: 0, turns: 2 }),
        expect.objectContaining({ toolCalls: 1, toolFailures: 1, turns: 2 }),
        expect.objectContaining({ toolCalls: 0, toolFailures: 0, turns: 1 }),
      ]);
      expect(rollout.scores.total.slice(0, 3)).toEqual([expect.any(Number), expect.any(Number), expect.any(Number)]);
      expect(rollout.scores.values.correctness).toEqual([1, 0, 1]);

      // the loss mask of each training sequence is the completion's model-token mask, exactly
      const sequences = trainingSequences(rollout, c, true);
      expect(sequences).toHaveLength(3);
      sequences.forEach((s, i) => {
        expect(Array.from(s.completionMask!)).toEqual(rollout.completions[i].modelTokenMask);
        expect(s.completion).toEqual(rollout.completions[i].tokens);
        expect(s.samplingLogprobs).toEqual(rollout.completions[i].logprobs);
      });

      const m = grpoStepMetrics({
        step: 1, epoch: 1, rollout, config: c, numTokens: 0, trainingSeconds: 0, stepStarted: performance.now(),
        update: { loss: 0, kl: 0, clipLow: 0, clipHigh: 0, clipRegion: 0, clipLowMin: 0, clipHighMax: 0, dualClip: 0, cispoClip: 0, entropy: 0, entropyKept: 1, lr: 0, gradNorm: 0, sequences: 3, skipped: 0 },
      });
      expect(m['tools/call_frequency']).toBeCloseTo(2 / 3, 12);
      expect(m['tools/failure_frequency']).toBeCloseTo(1 / 2, 12);
      expect(m['multi_turn/turns_mean']).toBeCloseTo(5 / 3, 12);
      // lengths count the model's tokens only
      const own = rollout.completions.map((x) => x.modelTokenMask!.filter((v) => v === 1).length);
      expect(m['completions/max_length']).toBe(Math.max(...own));
      expect(m['completions/max_length']).toBeLessThan(Math.max(...rollout.completions.map((x) => x.tokens.length)));
    } finally {
      await pool.close();
    }
  });
});

describe('multi-turn rewards score the model, not the tools', () => {
  it('see the last assistant turn as the completion, the whole conversation as extra.transcripts, model tokens as lengths', async () => {
    const call = '<tool_call>\n{"name": "calculate", "arguments": {"expression": "6*7"}}\n</tool_call>';
    // sample 0 calls the tool and then gives up: the tool said 42, the model did not; sample 1 answers after the call
    const script = (_r: number, s: number) => (s === 0 ? [call, 'I do not know.<|im_end|>'] : [call, 'So \\boxed{42}.<|im_end|>']);
    const { model } = scriptedGenerator(script);
    const dataset = [{ question: '6*7', answer: '42', prompt: { messages: [{ role: 'user', content: 'What is 6*7?' }] } }] as never[];
    const c = resolveGrpoOptions({ model, dataset, tools: [calc], numGenerations: 2, maxCompletionLength: 512, promptsPerStep: 1 });
    const seen: { completions: string[]; extra: Record<string, unknown> }[] = [];
    const spy = { kind: 'function' as const, name: 'spy', weight: 0, fn: (_p: unknown[], completions: string[], extra: Record<string, unknown>) => (seen.push({ completions, extra }), completions.map(() => 0)) };
    const pool = await RewardPool.create(['correctness', spy], { timeoutMs: 10_000 });
    try {
      const rollout = await startRollout({
        generator: model, pool, step: 0, seed: 1, indices: [0], examples: dataset, promptTokens: [[1]], numGenerations: 2, sampling: c.sampling, scaleRewards: 'group', multiTurn: c.multiTurn,
      }).done;
      // the tool's 42 is in sample 0's text, but the model never said it: no reward
      expect(rollout.completions[0].text).toContain('42');
      expect(rollout.scores.values.correctness).toEqual([0, 1]);
      const { completions, extra } = seen[0];
      expect(completions).toEqual(['I do not know.', 'So \\boxed{42}.']);
      expect(extra.transcripts).toEqual(rollout.completions.map((x) => x.text));
      const own = rollout.completions.map((x) => x.tokens.filter((_, i) => x.modelTokenMask![i] === 1));
      expect(extra.completionIds).toEqual(own);
      expect(extra.completionLengths).toEqual(own.map((t) => t.length));
    } finally {
      await pool.close();
    }
  });
});

describe('hayate train --tools', () => {
  it('runs GRPO with the calculator tool on a tiny model and logs the tool metrics', async () => {
    const modelDir = await makeModel({ arch: 'qwen3' });
    const out = join(tempDir(), 'run');
    const cli = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
    const tools = join(import.meta.dirname, '..', 'examples', 'calculator-tool', 'tools.js');
    const r = spawnSync(process.execPath, [cli, 'train', modelDir, '--data', 'synthetic:1', '--tools', tools, '--max-steps', '2', '-G', '2', '-P', '2', '-m', '16', '--threads', '1', '--max-tool-calling-iterations', '2', '-o', out], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('multi-turn: tools calculate (calls per completion: up to 2; 10 s per call); appended tokens carry no loss');
    const m = readMetrics(join(out, 'metrics.jsonl'));
    expect(m).toHaveLength(2);
    for (const x of m) for (const key of ['tools/call_frequency', 'tools/failure_frequency', 'multi_turn/turns_mean', 'tools/seconds']) expect(x[key], key).toBeTypeOf('number');
  });
});
