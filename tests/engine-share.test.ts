// Model.shareBase: a generation context on the same base weights (one copy in memory) with its own adapters,
// KV cache and engine lock: the same numbers as the original, calls that run while the original is busy,
// any order of disposal, and typed errors for bad arguments.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HayateError } from '../ts/errors.js';
import { Model } from '../ts/model.js';
import { native, type NativeModelHandle } from '../ts/native.js';
import { cleanupTempDirs, makeModel, randomTokens } from './helpers.js';

let dir: string;

beforeAll(async () => {
  dir = await makeModel({ arch: 'qwen3', maxPosition: 256 });
});
afterAll(cleanupTempDirs);

const load = () => Model.load(dir, { gemm: 'builtin', threads: 1 });

/** The native handle behind a Model (for the raw-addon argument checks). */
function handleOf(m: Model): Promise<NativeModelHandle> {
  return m.runNative(undefined, async (h) => h);
}

async function expectCode(p: Promise<unknown> | (() => unknown), code: string): Promise<void> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    expect((err as HayateError).code).toBe(code);
    return;
  }
  throw new Error(`expected ${code}`);
}

describe('Model.shareBase', () => {
  it('computes exactly what the original computes, without a second copy of the weights', async () => {
    const a = await load();
    const b = await a.shareBase({ threads: 2 });
    try {
      expect(a.info.sharedWeights).toBe(false);
      expect(b.info.sharedWeights).toBe(true);
      expect(b.info.weightBytes).toBe(a.info.weightBytes);
      expect(a.info.bytesInUse).toBeGreaterThanOrEqual(a.info.weightBytes);
      expect(b.info.bytesInUse).toBe(0); // nothing allocated on the context's backend yet
      expect(b.info.backendDescription).toMatch(/2 threads/);
      expect(b.tokenizer).toBe(a.tokenizer);
      const toks = randomTokens(12, a.info.vocabSize, 3);
      expect(await b.logits(toks)).toEqual(await a.logits(toks));
      const prompts = [{ tokens: randomTokens(5, a.info.vocabSize, 1) }, { tokens: randomTokens(9, a.info.vocabSize, 2) }];
      const opts = { n: 3, maxNewTokens: 16, temperature: 1, seed: 11, ignoreEos: true };
      expect((await b.generate(prompts, opts)).results).toEqual((await a.generate(prompts, opts)).results);
      // a context of a context shares the same weights
      const c = await b.shareBase();
      expect(c.info.weightBytes).toBe(a.info.weightBytes);
      expect(await c.logits(toks)).toEqual(await a.logits(toks));
      await c.dispose();
    } finally {
      await b.dispose();
      await a.dispose();
    }
  });

  it('has its own adapters', async () => {
    const a = await load();
    const b = await a.shareBase();
    try {
      const toks = randomTokens(8, a.info.vocabSize, 4);
      const base = await a.logits(toks);
      await b.attachLora({ rank: 2, alpha: 4, seed: 1 });
      const tensors = (await b.loraTensors()).map((t) => ({ ...t, b: t.b.map((_, i) => ((i % 7) - 3) * 0.05) }));
      await b.setLoraTensors(tensors);
      expect(a.lora).toBeNull();
      expect(await a.logits(toks)).toEqual(base);
      expect(await b.logits(toks)).not.toEqual(base);
      expect(await b.logits(toks, { lora: false })).toEqual(base);
      // the same LoRA tensors on the original give the same numbers
      await a.attachLora({ rank: 2, alpha: 4 });
      await a.setLoraTensors(tensors);
      expect(await a.logits(toks)).toEqual(await b.logits(toks));
    } finally {
      await a.dispose();
      await b.dispose();
    }
  });

  it("runs while the original is busy, with the same results as one at a time", async () => {
    const a = await load();
    const b = await a.shareBase({ threads: 1 });
    try {
      const V = a.info.vocabSize;
      const long = { n: 8, maxNewTokens: 200, temperature: 1, seed: 3, ignoreEos: true };
      const short = randomTokens(4, V, 9);
      const alone = await b.logits(short);
      const finished: string[] = [];
      const gen = a.generate({ tokens: randomTokens(6, V, 5) }, long).then((r) => {
        finished.push('original generate');
        return r;
      });
      const lg = b.logits(short).then((r) => {
        finished.push('context logits');
        return r;
      });
      const [r, l] = await Promise.all([gen, lg]);
      // the context's call did not wait for the original's generation (one engine would run them in turn)
      expect(finished).toEqual(['context logits', 'original generate']);
      expect(l).toEqual(alone);
      // both generating at once: the same as each alone
      const p = { tokens: randomTokens(7, V, 6) };
      const opts = { n: 4, maxNewTokens: 24, temperature: 1, seed: 8, ignoreEos: true };
      const [x, y] = await Promise.all([a.generate(p, opts), b.generate(p, { ...opts, seed: 9 })]);
      expect(x.results).toEqual((await a.generate(p, opts)).results);
      expect(y.results).toEqual((await a.generate(p, { ...opts, seed: 9 })).results);
      expect(r.results[0].completions).toHaveLength(8);
    } finally {
      await a.dispose();
      await b.dispose();
    }
  });

  it('survives either side being disposed first, even with a call in flight', async () => {
    const toks = [1, 2, 3, 4, 5];
    // original first: the context keeps the weights
    let a = await load();
    const want = await a.logits(toks);
    let b = await a.shareBase();
    await a.dispose();
    await expectCode(a.logits(toks), 'ERR_DISPOSED');
    await expectCode(a.shareBase(), 'ERR_DISPOSED');
    expect(await b.logits(toks)).toEqual(want);
    await b.dispose();
    await expectCode(b.logits(toks), 'ERR_DISPOSED');

    // context first
    a = await load();
    b = await a.shareBase();
    await b.dispose();
    expect(await a.logits(toks)).toEqual(want);
    await a.dispose();

    // both disposed while the context generates (the job has started): the call completes
    type Generated = ReturnType<Model['generate']>;
    const started = (m: Model) =>
      new Promise<{ call: Generated; done: () => boolean }>((resolve) => {
        let finished = false;
        const call: Generated = m.generate({ tokens: toks }, { n: 4, maxNewTokens: 200, temperature: 1, ignoreEos: true, onProgress: () => resolve({ call, done: () => finished }) });
        void call.then(() => (finished = true), () => undefined);
      });
    a = await load();
    b = await a.shareBase();
    const inFlight = await started(b);
    const disposed = Promise.all([a.dispose(), b.dispose()]);
    expect(inFlight.done()).toBe(false); // disposed mid-call
    await disposed;
    expect((await inFlight.call).results[0].completions).toHaveLength(4);

    // and the other way round, with the original generating
    a = await load();
    b = await a.shareBase();
    const other = await started(a);
    await b.dispose();
    expect(other.done()).toBe(false);
    await a.dispose();
    expect((await other.call).results[0].completions).toHaveLength(4);
  });

  it('rejects bad arguments with typed errors', async () => {
    const a = await load();
    try {
      for (const threads of [-1, 1.5, Number.NaN, 5000, '2' as unknown as number]) {
        await expectCode(a.shareBase({ threads }), 'ERR_INVALID_ARGUMENT');
      }
      const h = await handleOf(a);
      await expectCode(() => native().shareModel({} as NativeModelHandle), 'ERR_INVALID_ARGUMENT');
      await expectCode(() => native().shareModel(h, 5 as unknown as { threads: number }), 'ERR_INVALID_ARGUMENT');
      await expectCode(() => native().shareModel(h, { threads: -2 }), 'ERR_INVALID_ARGUMENT');
      await expectCode(() => native().shareModel(h, { threads: 'x' as unknown as number }), 'ERR_INVALID_ARGUMENT');
    } finally {
      await a.dispose();
    }
  });
});
