// The training API end to end through the addon: SFT memorises a fixed set of sequences, GRPO's closed form
// with equal old/current log-probs, policy/reference scoring, optimizer state save/load, non-finite steps
// skipped and reported, cancellation and typed errors for bad input; learning-rate schedules.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAdapter, saveAdapter } from '../ts/adapter.js';
import { AbortError, HayateError } from '../ts/errors.js';
import { learningRate } from '../ts/lr-schedule.js';
import { Model } from '../ts/model.js';
import { native, type NativeLossOptions } from '../ts/native.js';
import { TrainerCore, packBatch, type TrainSequence } from '../ts/trainer-core.js';
import { cleanupTempDirs, makeModel, randomTokens, tempDir } from './helpers.js';

let dir: string;

beforeAll(async () => {
  dir = await makeModel({ arch: 'qwen3' });
});
afterAll(cleanupTempDirs);

function sequences(vocab: number, n: number, promptLen: number, completionLen: number, seed: number): TrainSequence[] {
  return Array.from({ length: n }, (_, i) => ({
    prompt: randomTokens(promptLen, vocab, seed + 2 * i),
    completion: randomTokens(completionLen, vocab, seed + 2 * i + 1),
  }));
}

describe('packBatch', () => {
  it('fills a missing completion mask with ones; other per-token fields are all-or-none', () => {
    const a = { prompt: [1, 2], completion: [3, 4, 5], advantage: 1, completionMask: [1, 0, 1] };
    const b = { prompt: [1], completion: [6, 7], advantage: -1 };
    expect(Array.from(packBatch([a, b]).completionMask!)).toEqual([1, 0, 1, 1, 1]);
    expect(packBatch([b, b]).completionMask).toBeUndefined();
    expect(() => packBatch([{ ...a, oldLogprobs: [0, 0, 0] }, b])).toThrow(/oldLogprobs must be given for every sequence of the batch or for none/);
  });
});

describe('TrainerCore', () => {
  it('SFT on a fixed small set drives the loss toward zero (memorisation)', async () => {
    // larger weights than the other tests: the logit range of a tiny random model bounds how close to 0 it can get
    const model = await Model.load(await makeModel({ arch: 'qwen3', std: 0.5 }), { threads: 2 });
    try {
      const trainer = await TrainerCore.create(model, { lora: { rank: 16, alpha: 32, seed: 1 }, optimizer: { lr: 1e-2, maxGradNorm: 1 } });
      const data = sequences(model.info.vocabSize, 4, 3, 8, 40);
      const losses: number[] = [];
      for (let step = 0; step < 60; step++) {
        await trainer.zeroGrad();
        const s = await trainer.forwardBackward(data, { type: 'sft' });
        losses.push(s.loss);
        const r = await trainer.step();
        expect(r.applied).toBe(true);
      }
      expect(losses[0]).toBeGreaterThan(3);
      expect(losses[losses.length - 1]).toBeLessThan(1e-3);
      expect(trainer.stepCount).toBe(60);
      // memorised: greedy generation reproduces each completion
      const { results } = await model.generate(data.map((d) => ({ tokens: Array.from(d.prompt) })), { temperature: 0, maxNewTokens: 8, ignoreEos: true });
      results.forEach((r, i) => expect(r.completions[0].tokens).toEqual(Array.from(data[i].completion)));
      await trainer.dispose();
    } finally {
      await model.dispose();
    }
  });

  it('GRPO with old = current log-probs and beta = 0 gives loss -mean(A) and no clipping', async () => {
    const model = await Model.load(dir, { threads: 2 });
    try {
      const trainer = await TrainerCore.create(model, { lora: { rank: 4, alpha: 8 } });
      const data = sequences(model.info.vocabSize, 3, 4, 5, 7);
      const advantages = [1.2, -0.4, 0.1];
      const old = await trainer.logprobs(data);
      const batch = data.map((d, i) => ({ ...d, advantage: advantages[i], oldLogprobs: old.logprobs[i] }));
      const s = await trainer.forwardBackward(batch, { type: 'grpo', beta: 0 }, { entropy: true });
      expect(s.loss).toBeCloseTo(-(1.2 - 0.4 + 0.1) / 3, 6);
      expect(s.ratioMean).toBeCloseTo(1, 6);
      expect(s.clipRegion).toBe(0);
      expect(s.completionTokens).toBe(15);
      expect(s.tokens).toBe(27);
      expect(s.entropy).toBeGreaterThan(0);
      expect(s.entropy).toBeLessThanOrEqual(Math.log(model.info.vocabSize) + 1e-6);
      expect(await trainer.gradNorm()).toBeGreaterThan(0);
      // B = 0 at init: policy = reference, so beta > 0 adds no KL yet
      const k = await trainer.forwardBackward(batch, { type: 'dapo', beta: 0.1, epsilonHigh: 0.28 });
      expect(k.kl).toBeCloseTo(0, 10);
      expect(k.referenceSeconds).toBeGreaterThan(0);
    } finally {
      await model.dispose();
    }
  });

  it('trainer log-probs equal the model scoring path, with LoRA on and off', async () => {
    const model = await Model.load(dir, { threads: 2 });
    try {
      const trainer = await TrainerCore.create(model, { lora: { rank: 4, alpha: 8, seed: 2 } });
      const tensors = await model.loraTensors();
      await model.setLoraTensors(tensors.map((t) => ({ ...t, b: t.b.map((_, i) => Math.sin(i) * 0.1) })));
      const data = sequences(model.info.vocabSize, 2, 5, 6, 11);
      for (const lora of [true, false]) {
        const got = await trainer.logprobs(data, { lora, temperature: 0.8 });
        const want = await model.logprobs(data.map((d) => ({ tokens: [...Array.from(d.prompt), ...Array.from(d.completion)] })), { lora, temperature: 0.8 });
        data.forEach((d, i) => {
          const tail = want[i].logprobs.slice(d.prompt.length - 1);
          expect(got.logprobs[i].length).toBe(tail.length);
          got.logprobs[i].forEach((v, t) => expect(v).toBeCloseTo(tail[t], 4));
        });
      }
    } finally {
      await model.dispose();
    }
  });

  it('optimizer state and adapter save/load resume training exactly', async () => {
    const data = sequences(300, 2, 3, 4, 90);
    const adv = data.map((d, i) => ({ ...d, advantage: i ? -1 : 1 }));
    const a = await Model.load(dir, { threads: 1 });
    const b = await Model.load(dir, { threads: 1 });
    try {
      const ta = await TrainerCore.create(a, { lora: { rank: 4, alpha: 8, seed: 9 }, optimizer: { lr: 1e-2, weightDecay: 0.01 } });
      for (let i = 0; i < 2; i++) {
        await ta.zeroGrad();
        await ta.forwardBackward(adv, { type: 'grpo' });
        await ta.step();
      }
      const out = tempDir();
      await saveAdapter(a, out);
      await ta.saveState(join(out, 'optimizer.safetensors'));

      await loadAdapter(b, out);
      const tb = await TrainerCore.create(b, { optimizer: { lr: 1e-2, weightDecay: 0.01 } });
      await tb.loadState(join(out, 'optimizer.safetensors'));
      expect(tb.stepCount).toBe(2);
      for (const t of [ta, tb]) {
        await t.zeroGrad();
        await t.forwardBackward(adv, { type: 'grpo' });
        expect((await t.step()).step).toBe(3);
      }
      const la = await a.loraTensors(), lb = await b.loraTensors();
      la.forEach((x, i) => {
        expect(Array.from(lb[i].a)).toEqual(Array.from(x.a));
        expect(Array.from(lb[i].b)).toEqual(Array.from(x.b));
      });
      // state saved for other adapters is refused
      await b.attachLora({ rank: 2, alpha: 2, targets: ['q_proj'] });
      const tc = await TrainerCore.create(b);
      await expect(tc.loadState(join(out, 'optimizer.safetensors'))).rejects.toMatchObject({ code: 'ERR_BAD_TENSOR' });
    } finally {
      await a.dispose();
      await b.dispose();
    }
  });

  it('a NaN loss or gradient is reported, the step skipped and nothing applied', async () => {
    const model = await Model.load(dir, { threads: 1 });
    try {
      const trainer = await TrainerCore.create(model, { lora: { rank: 2, alpha: 4 } });
      const tensors = await model.loraTensors();
      const poisoned = tensors.map((t, i) => (i === 0 ? { ...t, b: Float32Array.from(t.b, (v, j) => (j === 0 ? NaN : v)) } : t));
      await model.setLoraTensors(poisoned);
      const before = await model.loraTensors();
      const s = await trainer.forwardBackward(sequences(300, 2, 2, 3, 5), { type: 'sft' });
      expect(s.finite).toBe(false);
      const r = await trainer.step();
      expect(r.applied).toBe(false);
      expect(r.step).toBe(1);
      expect(r.skippedReason).toMatch(/non-finite loss/);
      expect(trainer.stepCount).toBe(0);
      expect(trainer.skippedSteps).toBe(1);
      const after = await model.loraTensors();
      after.forEach((x, i) => expect(Array.from(x.a)).toEqual(Array.from(before[i].a)));
    } finally {
      await model.dispose();
    }
  });

  it('bad input gives typed errors, never a crash', async () => {
    const model = await Model.load(dir, { threads: 1 });
    try {
      await expect(TrainerCore.create(model)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });  // no adapters
      await expect(TrainerCore.create(model, { lora: { rank: 0, alpha: 1 } })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
      await expect(TrainerCore.create(model, { lora: { rank: 2, alpha: 1 }, optimizer: { lr: -1 } })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
      const trainer = await TrainerCore.create(model, { lora: { rank: 2, alpha: 4 } });
      const data = sequences(model.info.vocabSize, 2, 2, 3, 1).map((d) => ({ ...d, advantage: 1 }));
      const codeOf = async (p: Promise<unknown>) => {
        try {
          await p;
        } catch (err) {
          expect(err).toBeInstanceOf(HayateError);
          return (err as HayateError).code;
        }
        return 'resolved';
      };
      expect(await codeOf(trainer.forwardBackward(data, { type: 'ppo' as never }))).toBe('ERR_INVALID_ARGUMENT');
      expect(await codeOf(trainer.forwardBackward(data.map(({ advantage, ...d }) => d), { type: 'grpo' }))).toBe('ERR_INVALID_ARGUMENT');
      expect(await codeOf(trainer.forwardBackward(data.map((d) => ({ ...d, advantage: NaN })), { type: 'grpo' }))).toBe('ERR_INVALID_ARGUMENT');
      expect(await codeOf(trainer.forwardBackward(data.map((d) => ({ ...d, oldLogprobs: [0] })), { type: 'grpo' }))).toBe('ERR_INVALID_ARGUMENT');
      expect(await codeOf(trainer.forwardBackward(data.map((d) => ({ ...d, oldLogprobs: [NaN, 0, 0] })), { type: 'grpo' }))).toBe('ERR_INVALID_ARGUMENT');
      expect(await codeOf(trainer.forwardBackward([{ prompt: [1], completion: [model.info.vocabSize], advantage: 1 }]))).toBe('ERR_INVALID_ARGUMENT');
      expect(await codeOf(trainer.forwardBackward([{ prompt: [], completion: [1], advantage: 1 }]))).toBe('ERR_INVALID_ARGUMENT');
      expect(await codeOf(trainer.forwardBackward(data, { type: 'grpo', epsilonLow: 2 }))).toBe('ERR_INVALID_ARGUMENT');
      expect(await codeOf(trainer.forwardBackward([{ prompt: randomTokens(600, 300, 1), completion: [1], advantage: 1 }]))).toBe('ERR_CONTEXT_OVERFLOW');
      expect(await codeOf(trainer.step({ lr: Number.NaN }))).toBe('ERR_INVALID_ARGUMENT');
      expect(await trainer.gradNorm()).toBe(0);  // rejected calls accumulated nothing
      // cancellation through AbortSignal
      const ac = new AbortController();
      ac.abort();
      await expect(trainer.forwardBackward(data, {}, { signal: ac.signal })).rejects.toBeInstanceOf(AbortError);
      // replacing the adapters invalidates the trainer; disposing it makes calls fail cleanly
      await model.attachLora({ rank: 2, alpha: 4 });
      expect(await codeOf(trainer.step())).toBe('ERR_INVALID_ARGUMENT');
      await trainer.dispose();
      expect(await codeOf(trainer.zeroGrad())).toBe('ERR_DISPOSED');
    } finally {
      await model.dispose();
    }
  });
});

describe('learning-rate schedules', () => {
  it('constant, linear and cosine with warmup follow transformers', () => {
    expect(learningRate(0, { lr: 1 })).toBe(1);
    expect(learningRate(0, { lr: 1, warmupSteps: 4 })).toBe(0);
    expect(learningRate(2, { lr: 1, warmupSteps: 4 })).toBe(0.5);
    expect(learningRate(7, { lr: 1, type: 'constant', warmupSteps: 4 })).toBe(1);
    expect(learningRate(4, { lr: 2, type: 'linear', warmupSteps: 4, totalSteps: 14 })).toBe(2);
    expect(learningRate(9, { lr: 2, type: 'linear', warmupSteps: 4, totalSteps: 14 })).toBeCloseTo(1, 12);
    expect(learningRate(20, { lr: 2, type: 'linear', warmupSteps: 4, totalSteps: 14 })).toBe(0);
    expect(learningRate(9, { lr: 2, type: 'cosine', warmupSteps: 4, totalSteps: 14 })).toBeCloseTo(1, 12);
    expect(learningRate(14, { lr: 2, type: 'cosine', warmupSteps: 4, totalSteps: 14, minLrRatio: 0.1 })).toBeCloseTo(0.2, 12);
    expect(() => learningRate(0, { lr: 1, type: 'linear' })).toThrow(/totalSteps/);
    expect(() => learningRate(0, { lr: 1, type: 'exp' as never })).toThrow(/unknown learning-rate schedule/);
  });

  it('the engine has no training defaults: a loss or optimizer field left out is an error naming it', async () => {
    const model = await Model.load(dir, { threads: 1 });
    try {
      await model.attachLora({ rank: 2, alpha: 4 });
      const optimizer = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 };
      const { beta1, ...noBeta1 } = optimizer;
      await expect(model.runNative(undefined, (m) => native().createTrainer(m, { optimizer: noBeta1 as typeof optimizer, recompute: false, logitsChunk: 128 }))).rejects.toThrow(
        /optimizer\.beta1 is required/,
      );
      const h = await model.runNative(undefined, (m) => native().createTrainer(m, { optimizer: { ...optimizer, beta1 }, recompute: false, logitsChunk: 128 }));
      const batch = packBatch(sequences(model.info.vocabSize, 2, 2, 3, 1).map((d) => ({ ...d, advantage: 1 })));
      const loss: NativeLossOptions = {
        type: 'grpo',
        epsilonLow: 0.2,
        epsilonHigh: 0.2,
        beta: 0,
        importanceSamplingLevel: 'token',
        klEstimator: 'k3',
        clipRatioC: 0,
        rolloutCorrection: 'none',
        correctionMin: 0,
        correctionMax: 3,
        topEntropyQuantile: 1,
        sequencesInStep: 0,
        tokensInStep: 0,
        maxCompletionLength: 0,
      };
      const { epsilonHigh, ...noEpsilonHigh } = loss;
      await expect(model.runNative(undefined, () => h.forwardBackward(batch, noEpsilonHigh as NativeLossOptions, { temperature: 1, entropy: false }))).rejects.toThrow(/loss\.epsilonHigh is required/);
      for (const key of ['importanceSamplingLevel', 'klEstimator', 'clipRatioC', 'rolloutCorrection', 'correctionMin', 'correctionMax', 'topEntropyQuantile'] as const) {
        const { [key]: _left, ...without } = loss;
        await expect(model.runNative(undefined, () => h.forwardBackward(batch, without as NativeLossOptions, { temperature: 1, entropy: false }))).rejects.toThrow(new RegExp(`loss\\.${key} is required`));
      }
      // a bad combination is one clear error before any work: dual-clip on cispo, a bound inside the clip range, a bad quantile
      await expect(model.runNative(undefined, () => h.forwardBackward(batch, { ...loss, type: 'cispo', clipRatioC: 3 }, { temperature: 1, entropy: false }))).rejects.toThrow(/cispo has no ratio clip/);
      await expect(model.runNative(undefined, () => h.forwardBackward(batch, { ...loss, clipRatioC: 1.1 }, { temperature: 1, entropy: false }))).rejects.toThrow(/clip_ratio_c must be >= 1 \+ epsilon_high/);
      await expect(model.runNative(undefined, () => h.forwardBackward(batch, { ...loss, topEntropyQuantile: 0 }, { temperature: 1, entropy: false }))).rejects.toThrow(/top_entropy_quantile must be in \(0, 1\]/);
      await expect(model.runNative(undefined, () => h.forwardBackward(batch, { ...loss, klEstimator: 'k4' }, { temperature: 1, entropy: false }))).rejects.toThrow(/unknown KL estimator 'k4'/);
      await expect(model.runNative(undefined, () => h.forwardBackward(batch, { ...loss, rolloutCorrection: 'token_mask' }, { temperature: 1, entropy: false }))).rejects.toThrow(/needs the sampler's log-probs/);
      await expect(model.runNative(undefined, () => h.forwardBackward(batch, { ...loss, epsilonHigh }, {} as never))).rejects.toThrow(/options\.temperature is required/);
      expect((await model.runNative(undefined, () => h.forwardBackward(batch, loss, { temperature: 1, entropy: false }))).finite).toBe(true);
      await model.runNative(undefined, () => h.dispose());
    } finally {
      await model.dispose();
    }
  });

  it('TrainerCore takes its learning rate from the schedule', async () => {
    const model = await Model.load(dir, { threads: 1 });
    try {
      const trainer = await TrainerCore.create(model, { lora: { rank: 2, alpha: 4 }, schedule: { lr: 1e-3, type: 'linear', warmupSteps: 2, totalSteps: 10 } });
      const data = sequences(300, 1, 2, 2, 3);
      const lrs: number[] = [];
      for (let i = 0; i < 3; i++) {
        await trainer.forwardBackward(data, { type: 'sft' });
        lrs.push((await trainer.step()).lr);
        await trainer.zeroGrad();
      }
      expect(lrs).toEqual([0, 5e-4, 1e-3]);
      expect((await trainer.step({ lr: 7e-4 })).lr).toBe(7e-4);
    } finally {
      await model.dispose();
    }
  });
});
