// The GRPO loop end to end on a tiny random model: reward rises on an easy task, metrics carry TRL's names,
// resuming from a checkpoint reproduces the uninterrupted run exactly, AbortSignal stops a run with its
// checkpoints intact, and bad input gives typed errors or warnings (never a crash).
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { syntheticExamples } from '../ts/data/synthetic.js';
import type { Example } from '../ts/data/dataset.js';
import { AbortError, HayateError } from '../ts/errors.js';
import { readMetrics, type MetricsRecord } from '../ts/metrics/writer.js';
import { Model } from '../ts/model.js';
import type { RewardFunction } from '../ts/rewards/types.js';
import { readSafetensors } from '../ts/safetensors.js';
import { listCheckpoints, pruneCheckpoints, writeCheckpointDir } from '../ts/train/checkpoint.js';
import { GrpoTrainer } from '../ts/train/grpo-trainer.js';
import type { GrpoTrainerOptions } from '../ts/train/grpo-options.js';
import { groupAdvantages } from '../ts/train/advantages.js';
import { cleanupTempDirs, makeModel, tempDir } from './helpers.js';

let modelDir: string;
let data: Example[];

beforeAll(async () => {
  modelDir = await makeModel({ arch: 'qwen3' });
  data = syntheticExamples({ count: 24, seed: 1, level: 1 });
});
afterAll(cleanupTempDirs);

/** Reward: the fraction of completion tokens equal to `target` (token ids come in extra.completionIds). */
function tokenReward(target: number): RewardFunction {
  return function hits(_prompts, _completions, extra) {
    return (extra.completionIds as number[][]).map((ids) => ids.filter((t) => t === target).length / ids.length);
  };
}

/** The model's next-token distribution after an example's prompt. */
async function probsAfter(model: Model, e: Example): Promise<number[]> {
  const rows = await model.logits(model.encodePrompt(e.prompt));
  const last = rows[rows.length - 1];
  let max = -Infinity;
  for (const v of last) max = Math.max(max, v);
  const exp = Array.from(last, (v) => Math.exp(v - max));
  const z = exp.reduce((a, b) => a + b, 0);
  return exp.map((v) => v / z);
}

function withoutTiming(m: MetricsRecord): MetricsRecord {
  return Object.fromEntries(Object.entries(m).filter(([k]) => !k.startsWith('timing/') && k !== 'step_time' && k !== 'tokens_per_second'));
}

function tensorsOf(path: string): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const [name, t] of readSafetensors(path)) out[name] = Array.from(t.data as ArrayLike<number>);
  return out;
}

const TRL_NAMES = [
  'step', 'reward', 'reward_std', 'completions/mean_length', 'completions/clipped_ratio', 'kl', 'clip_ratio/low_mean',
  'clip_ratio/high_mean', 'frac_reward_zero_std', 'learning_rate', 'grad_norm', 'loss', 'num_tokens',
  'timing/generation_s', 'timing/training_s', 'timing/reward_s', 'tokens_per_second', 'entropy', 'clip_ratio/low_min', 'clip_ratio/high_max',
  'completions/mean_terminated_length', 'completions/min_terminated_length', 'completions/max_terminated_length', 'step_time', 'epoch',
];

describe('GrpoTrainer', () => {
  it('raises the mean reward on an easy task (fixed seed), logging metrics with TRL names', async () => {
    // The task is a one-token bandit: reward 1 when the completion's first token is in S, the most likely
    // next tokens after the prompt that together hold ~30% of the base model's probability. Every prompt ends
    // with the same instruction, so this is nearly one distribution; with G = 8 most groups have reward
    // variance from the first step, and raising S's logits is a direction a LoRA update finds within a few
    // steps at a large learning rate. The seed fixes data order, sampling and initialisation, so the run is
    // the same every time; we check the logged reward and, without sampling noise, S's probability.
    const model = await Model.load(modelDir, { threads: 1 });
    try {
      const massOf = async (set: Set<number>): Promise<number> => {
        let total = 0;
        for (const e of data.slice(0, 6)) total += (await probsAfter(model, e)).reduce((m, p, t) => m + (set.has(t) ? p : 0), 0);
        return total / 6;
      };
      const nextTokenProbs = await probsAfter(model, data[0]);
      const S = new Set<number>();
      let mass = 0;
      for (const [p, t] of nextTokenProbs.map((p, t) => [p, t] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1])) {
        if (mass >= 0.3) break;
        S.add(t);
        mass += p;
      }
      const before = await massOf(S);
      const firstTokenInS: RewardFunction = function hits(_prompts, _completions, extra) {
        return (extra.completionIds as number[][]).map((ids) => (S.has(ids[0]) ? 1 : 0));
      };

      const out = tempDir();
      const trainer = new GrpoTrainer({
        model,
        dataset: data,
        rewards: [firstTokenInS],
        lora: { rank: 8, alpha: 16 },
        learningRate: 3e-2,
        promptsPerStep: 3,
        numGenerations: 8,
        maxCompletionLength: 1,
        maxSteps: 10,
        seed: 3,
        outputDir: out,
        saveSteps: 5,
        sampleSteps: 5,
        samplesPerLog: 2,
      });
      const steps: number[] = [];
      const samples: number[] = [];
      const checkpoints: number[] = [];
      trainer.on('step', (e) => steps.push(e.step));
      trainer.on('sample', (e) => {
        samples.push(e.step);
        expect(e.samples).toHaveLength(2);
        expect(typeof e.samples[0].completion).toBe('string');
      });
      trainer.on('checkpoint', (e) => checkpoints.push(e.step));
      const result = await trainer.train();
      expect(result.steps).toBe(10);
      expect(steps).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect(samples).toEqual([1, 5, 10]);
      expect(checkpoints).toEqual([5, 10]);

      const lines = readMetrics(join(out, 'metrics.jsonl'));
      expect(lines).toHaveLength(10);
      for (const line of lines) {
        for (const name of [...TRL_NAMES, 'rewards/hits/mean', 'rewards/hits/std']) expect(line, name).toHaveProperty(name);
        expect(line.kl).toBeNull(); // beta = 0: no reference pass, no KL
      }
      const rewards = lines.map((l) => l.reward as number);
      const early = (rewards[0] + rewards[1] + rewards[2]) / 3;
      const late = (rewards[7] + rewards[8] + rewards[9]) / 3;
      expect(late).toBeGreaterThan(early + 0.3);
      expect(await massOf(S)).toBeGreaterThan(before + 0.3);
      expect(existsSync(join(out, 'reward_curve.svg'))).toBe(true);
      expect(readFileSync(join(out, 'reward_curve.svg'), 'utf8')).toMatch(/^<svg/);
      expect(existsSync(join(out, 'adapter_model.safetensors'))).toBe(true);
      expect(readFileSync(join(out, 'samples.jsonl'), 'utf8').trim().split('\n')).toHaveLength(6);
      expect(listCheckpoints(out).map((c) => c.step)).toEqual([5, 10]);
      expect(readdirSync(join(out, 'checkpoint-5')).sort()).toEqual(
        ['adapter_config.json', 'adapter_model.safetensors', 'optimizer.safetensors', 'rollout_adapter.safetensors', 'trainer_state.json'],
      );
      expect(readdirSync(out).filter((f) => f.startsWith('.'))).toEqual([]);
    } finally {
      await model.dispose();
    }
  });

  for (const sync of [false, true]) {
    it(`resuming from a checkpoint reproduces the uninterrupted run exactly (${sync ? 'sync' : 'one step off-policy'})`, async () => {
      const common = (model: Model, outputDir: string): GrpoTrainerOptions => ({
        model,
        dataset: data,
        rewards: ['format', tokenReward(7)],
        lora: { rank: 4, alpha: 8 },
        learningRate: 2e-2,
        promptsPerStep: 2,
        numGenerations: 4,
        gradientAccumulationSteps: 2,
        numIterations: 2,
        beta: 0.05,
        maxCompletionLength: 6,
        maxSteps: 4,
        seed: 11,
        sync,
        outputDir,
        saveSteps: 2,
        sampleSteps: 0,
      });
      const full = tempDir();
      const a = await Model.load(modelDir, { threads: 1 });
      try {
        await new GrpoTrainer(common(a, full)).train();
      } finally {
        await a.dispose();
      }
      const fa = readMetrics(join(full, 'metrics.jsonl')).map(withoutTiming);
      const adapterA = tensorsOf(join(full, 'adapter_model.safetensors'));
      const optimizerA = tensorsOf(join(full, 'checkpoint-4', 'optimizer.safetensors'));
      // off-policy: resume into a fresh directory; sync: into the run's own directory, whose logs go past
      // the checkpoint (cut back) and whose later checkpoints get replaced
      const resumed = sync ? full : tempDir();
      const b = await Model.load(modelDir, { threads: 1 });
      try {
        const r = await new GrpoTrainer({ ...common(b, resumed), resumeFrom: join(full, 'checkpoint-2') }).train();
        expect(r.startStep).toBe(2);
        expect(r.steps).toBe(4);
      } finally {
        await b.dispose();
      }
      const fb = readMetrics(join(resumed, 'metrics.jsonl')).map(withoutTiming);
      expect(fb).toEqual(sync ? fa : fa.slice(2));
      expect(typeof fa[3].kl).toBe('number');
      expect(tensorsOf(join(resumed, 'adapter_model.safetensors'))).toEqual(adapterA);
      expect(tensorsOf(join(resumed, 'checkpoint-4', 'optimizer.safetensors'))).toEqual(optimizerA);
      expect(readdirSync(resumed).filter((f) => f.startsWith('.'))).toEqual([]);
    });
  }

  it('a separate generator engine gives the same run as the shared model', async () => {
    const opts = (model: Model): GrpoTrainerOptions => ({
      model,
      dataset: data,
      rewards: [tokenReward(7)],
      lora: { rank: 4, alpha: 8 },
      learningRate: 2e-2,
      promptsPerStep: 2,
      numGenerations: 4,
      maxCompletionLength: 6,
      maxSteps: 3,
      seed: 5,
      sampleSteps: 0,
    });
    const a = await Model.load(modelDir, { threads: 1 });
    const b = await Model.load(modelDir, { threads: 1 });
    const g = await Model.load(modelDir, { threads: 1 });
    try {
      const shared = await new GrpoTrainer({ ...opts(a), generator: 'none' }).train();
      const separate = await new GrpoTrainer({ ...opts(b), generator: g }).train();
      expect(separate.metrics.map(withoutTiming)).toEqual(shared.metrics.map(withoutTiming));
    } finally {
      await a.dispose();
      await b.dispose();
      await g.dispose();
    }
  });

  it('overlapped on a shared-base generator context equals the serial one-engine run bit for bit (rollouts, rewards, adapter)', async () => {
    // Serial: one engine generates step k+1 from the step-k snapshot, then runs update k. Overlapped (the
    // default): a context on the same weights generates step k+1 while update k runs. The built-in GEMM is
    // batch-invariant, so the two engines compute the same numbers.
    const opts = (model: Model, outputDir: string): GrpoTrainerOptions => ({
      model,
      dataset: data,
      rewards: ['format', tokenReward(7)],
      lora: { rank: 4, alpha: 8 },
      learningRate: 2e-2,
      promptsPerStep: 2,
      numGenerations: 4,
      maxCompletionLength: 8,
      maxSteps: 4,
      seed: 9,
      outputDir,
      sampleSteps: 1,
      samplesPerLog: 8,
    });
    const serialDir = tempDir();
    const overlappedDir = tempDir();
    const m = await Model.load(modelDir, { threads: 1, gemm: 'builtin' });
    try {
      const serial = new GrpoTrainer({ ...opts(m, serialDir), generator: 'none', offPolicySteps: 1 });
      expect(serial.config.generator).toBe('none');
      await serial.train();
      const overlapped = new GrpoTrainer({ ...opts(m, overlappedDir), generatorThreads: 1 });
      expect([overlapped.config.generator, overlapped.config.offPolicySteps]).toEqual(['shared', 1]);
      await overlapped.train();
      expect(m.lora).not.toBeNull();
    } finally {
      await m.dispose();
    }
    const ms = readMetrics(join(serialDir, 'metrics.jsonl'));
    const mo = readMetrics(join(overlappedDir, 'metrics.jsonl'));
    expect(mo.map(withoutTiming)).toEqual(ms.map(withoutTiming));
    // one step off-policy: step k+1 is sampled with the adapter after k - 1 updates
    expect(mo.map((r) => r['rollout/policy_version'])).toEqual([0, 0, 1, 2]);
    expect(readFileSync(join(overlappedDir, 'samples.jsonl'), 'utf8')).toBe(readFileSync(join(serialDir, 'samples.jsonl'), 'utf8'));
    expect(tensorsOf(join(overlappedDir, 'adapter_model.safetensors'))).toEqual(tensorsOf(join(serialDir, 'adapter_model.safetensors')));
    expect(readFileSync(join(overlappedDir, 'adapter_model.safetensors'))).toEqual(readFileSync(join(serialDir, 'adapter_model.safetensors')));
  });

  it('offPolicySteps: 0 is sync: true (on-policy, policy version = updates so far); conflicting or bad schedule options are rejected', async () => {
    const opts = (model: Model): GrpoTrainerOptions => ({
      model,
      dataset: data,
      rewards: [tokenReward(7)],
      lora: { rank: 2, alpha: 4 },
      learningRate: 2e-2,
      promptsPerStep: 2,
      numGenerations: 2,
      maxCompletionLength: 4,
      maxSteps: 3,
      numIterations: 2,
      seed: 3,
      sampleSteps: 0,
    });
    const m = await Model.load(modelDir, { threads: 1, gemm: 'builtin' });
    try {
      const a = new GrpoTrainer({ ...opts(m), offPolicySteps: 0 });
      expect([a.config.sync, a.config.generator]).toEqual([true, 'none']); // nothing overlaps: no context
      const ra = await a.train();
      const rb = await new GrpoTrainer({ ...opts(m), sync: true }).train();
      expect(ra.metrics.map(withoutTiming)).toEqual(rb.metrics.map(withoutTiming));
      expect(ra.metrics.map((r) => r['rollout/policy_version'])).toEqual([0, 2, 4]);
      const off = await new GrpoTrainer({ ...opts(m), generator: 'none' }).train();
      expect(off.metrics.map((r) => r['rollout/policy_version'])).toEqual([0, 0, 2]);
      expect(new GrpoTrainer({ ...opts(m), sync: false }).config.offPolicySteps).toBe(1);
      const bad: Partial<GrpoTrainerOptions>[] = [
        { sync: true, offPolicySteps: 1 },
        { offPolicySteps: 2 as 1 },
        { generator: 'copy' as 'shared' },
        { generatorThreads: -1 },
        { generator: m },
      ];
      for (const b of bad) expect(() => new GrpoTrainer({ ...opts(m), ...b })).toThrow(HayateError);
    } finally {
      await m.dispose();
    }
  });

  it('AbortSignal stops the run: AbortError, earlier checkpoints intact, checkpointOnAbort saves the last step', async () => {
    const model = await Model.load(modelDir, { threads: 1 });
    try {
      const out = tempDir();
      const ac = new AbortController();
      const trainer = new GrpoTrainer({
        model,
        dataset: data,
        rewards: [tokenReward(7)],
        lora: { rank: 2, alpha: 4 },
        promptsPerStep: 2,
        numGenerations: 2,
        maxCompletionLength: 4,
        maxSteps: 20,
        outputDir: out,
        saveSteps: 3,
        sampleSteps: 0,
        checkpointOnAbort: true,
      });
      trainer.on('step', (e) => {
        if (e.step === 4) ac.abort();
      });
      await expect(trainer.train({ signal: ac.signal })).rejects.toBeInstanceOf(AbortError);
      expect(listCheckpoints(out).map((c) => c.step)).toEqual([3, 4]);
      const state = JSON.parse(readFileSync(join(out, 'checkpoint-4', 'trainer_state.json'), 'utf8'));
      expect(state.step).toBe(4);
      expect(readdirSync(out).filter((f) => f.startsWith('.'))).toEqual([]);
      expect(readMetrics(join(out, 'metrics.jsonl'))).toHaveLength(4);

      // already aborted: rejects before any work
      const again = new GrpoTrainer({ model, dataset: data, rewards: ['format'], numGenerations: 2, maxSteps: 1 });
      const done = new AbortController();
      done.abort();
      await expect(again.train({ signal: done.signal })).rejects.toBeInstanceOf(AbortError);
    } finally {
      await model.dispose();
    }
  });

  it('a run aborted in the middle of a step and resumed from its abort checkpoint equals the uninterrupted run', async () => {
    // The abort comes from inside the reward of batch 5, which is scored while update 4 runs (one step
    // off-policy): whatever native call it cancels, the checkpoint must hold whole steps only.
    let calls = 0;
    let abortAt = Infinity;
    const ac = new AbortController();
    const hits: RewardFunction = function hits(_p, _c, extra) {
      if (++calls === abortAt) ac.abort();
      return (extra.completionIds as number[][]).map((ids) => ids.filter((t) => t % 3 === 0).length / ids.length);
    };
    const opts = (model: Model, outputDir: string): GrpoTrainerOptions => ({
      model,
      dataset: data,
      rewards: [hits],
      lora: { rank: 4, alpha: 8 },
      learningRate: 2e-2,
      promptsPerStep: 2,
      numGenerations: 4,
      maxCompletionLength: 5,
      maxSteps: 6,
      seed: 21,
      outputDir,
      sampleSteps: 0,
      checkpointOnAbort: true,
    });
    const full = tempDir();
    const interrupted = tempDir();
    const m = await Model.load(modelDir, { threads: 1 });
    try {
      await new GrpoTrainer(opts(m, full)).train();
      calls = 0;
      abortAt = 5;
      await expect(new GrpoTrainer(opts(m, interrupted)).train({ signal: ac.signal })).rejects.toBeInstanceOf(AbortError);
      const ckpts = listCheckpoints(interrupted).map((c) => c.step);
      expect(ckpts).toHaveLength(1);
      expect([3, 4, 5]).toContain(ckpts[0]);
      abortAt = Infinity;
      await new GrpoTrainer({ ...opts(m, interrupted), resumeFrom: true }).train();
    } finally {
      await m.dispose();
    }
    const fa = readMetrics(join(full, 'metrics.jsonl')).map(withoutTiming);
    const fb = readMetrics(join(interrupted, 'metrics.jsonl')).map(withoutTiming);
    expect(fb).toEqual(fa);
    expect(tensorsOf(join(interrupted, 'adapter_model.safetensors'))).toEqual(tensorsOf(join(full, 'adapter_model.safetensors')));
  });

  it('bad input: typed errors for G < 2, empty data, missing reward modules; bad reward output gives warnings and zeros', async () => {
    const model = await Model.load(modelDir, { threads: 1 });
    try {
      const base = { model, dataset: data, maxSteps: 1 };
      const code = (f: () => unknown) => {
        try {
          f();
        } catch (err) {
          expect(err).toBeInstanceOf(HayateError);
          return (err as HayateError).code;
        }
        return 'ok';
      };
      expect(code(() => new GrpoTrainer({ ...base, numGenerations: 1 }))).toBe('ERR_INVALID_ARGUMENT');
      expect(() => new GrpoTrainer({ ...base, numGenerations: 1 })).toThrow(/numGenerations \(G\) must be an integer >= 2/);
      expect(code(() => new GrpoTrainer({ ...base, dataset: [] }))).toBe('ERR_INVALID_ARGUMENT');
      expect(code(() => new GrpoTrainer({ ...base, lossType: 'ppo' as never }))).toBe('ERR_INVALID_ARGUMENT');
      expect(code(() => new GrpoTrainer({ ...base, temperature: 0 }))).toBe('ERR_INVALID_ARGUMENT');
      expect(code(() => new GrpoTrainer({ ...base, rewards: ['format'], rewardWeights: [1, 2] }))).toBe('ERR_INVALID_ARGUMENT');
      await expect(new GrpoTrainer({ ...base, rewards: ['./no/such/rewards.js'] }).train()).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' });
      await expect(new GrpoTrainer({ ...base, rewards: ['nosuchbuiltin'] }).train()).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
      await expect(new GrpoTrainer({ ...base, resumeFrom: tempDir() }).train()).rejects.toMatchObject({ code: 'ERR_NOT_FOUND' });

      const logged: string[] = [];
      const wrongLength: RewardFunction = function wrongLength(_p, completions) {
        return completions.slice(1).map(() => 1);
      };
      const nan: RewardFunction = function nan(_p, completions) {
        return completions.map(() => NaN);
      };
      const trainer = new GrpoTrainer({
        model,
        dataset: data,
        rewards: [wrongLength, nan, join(import.meta.dirname, 'fixtures', 'rewards', 'bad.mjs') + ':throws', 'format'],
        lora: { rank: 2, alpha: 4 },
        numGenerations: 2,
        promptsPerStep: 2,
        maxCompletionLength: 4,
        maxSteps: 2,
        sampleSteps: 0,
        log: (m) => logged.push(m),
      });
      const warnings: string[] = [];
      trainer.on('step', (e) => warnings.push(...e.warnings.map((w) => `${w.reward}:${w.kind}`)));
      const r = await trainer.train();
      expect(r.steps).toBe(2);
      expect(warnings).toEqual(['wrongLength:wrong-length', 'nan:not-a-number', 'throws:error', 'wrongLength:wrong-length', 'nan:not-a-number', 'throws:error']);
      expect(r.metrics[0]['rewards/wrongLength/mean']).toBe(0);
      expect(r.metrics[0]['rewards/nan/mean']).toBe(0);
      expect(r.metrics[0].reward_warnings).toBe(3);
      expect(logged.some((m) => /reward 'nan'/.test(m))).toBe(true);
    } finally {
      await model.dispose();
    }
  });

  it('a failed checkpoint write (e.g. disk full) names the cause and leaves earlier checkpoints intact', async () => {
    const out = tempDir();
    await writeCheckpointDir(out, 1, (tmp) => {
      writeFileSync(join(tmp, 'trainer_state.json'), '{"step": 1}');
    });
    const full = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    await expect(writeCheckpointDir(out, 2, () => {
      throw full;
    })).rejects.toThrow(/cannot write checkpoint .*checkpoint-2: the disk is full .*earlier checkpoints are untouched/);
    await expect(writeCheckpointDir(out, 1, () => {
      throw full;
    })).rejects.toMatchObject({ code: 'ERR_IO' });
    expect(readFileSync(join(out, 'checkpoint-1', 'trainer_state.json'), 'utf8')).toBe('{"step": 1}');
    expect(readdirSync(out)).toEqual(['checkpoint-1']);
    // rewriting a step replaces it whole; pruning keeps the newest
    for (const step of [1, 2, 10]) await writeCheckpointDir(out, step, (tmp) => writeFileSync(join(tmp, 'trainer_state.json'), `{"step": ${step}, "again": true}`));
    expect(readFileSync(join(out, 'checkpoint-1', 'trainer_state.json'), 'utf8')).toBe('{"step": 1, "again": true}');
    pruneCheckpoints(out, 2);
    expect(listCheckpoints(out).map((c) => c.step)).toEqual([2, 10]);
    expect(readdirSync(out).sort()).toEqual(['checkpoint-10', 'checkpoint-2']);
  });
});

describe('group advantages', () => {
  it('follow TRL: centred by the group mean, scaled by group or batch std, zero-std groups flagged', () => {
    const g = groupAdvantages([1, 0, 1, 0, 0.5, 0.5], 2);
    expect(g.zeroStd).toEqual([false, false, true]);
    expect(g.fracZeroStd).toBeCloseTo(1 / 3, 12);
    const s = Math.SQRT1_2; // unbiased std of [1, 0]
    expect(g.advantages[0]).toBeCloseTo(0.5 / (s + 1e-4), 10);
    expect(g.advantages[4]).toBe(0);
    const none = groupAdvantages([3, 1], 2, 'none');
    expect(none.advantages).toEqual([1, -1]);
    const batch = groupAdvantages([1, 0, 3, 3], 2, 'batch');
    expect(batch.advantages[2]).toBe(0);
    expect(() => groupAdvantages([1, 2, 3], 2)).toThrow(/groups of 2/);
    expect(() => groupAdvantages([1], 1)).toThrow(/>= 2/);
  });
});
