// Generation engine behaviour: seeding, batch invariance, shared-prefix samples, stop conditions,
// progress, cancellation.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AbortError } from '../ts/errors.js';
import { Model } from '../ts/model.js';
import { cleanupTempDirs, makeModel, randomTokens } from './helpers.js';

let model: Model;

beforeAll(async () => {
  // 'builtin' GEMM is batch-invariant, so batched and single runs must agree bit for bit.
  model = await Model.load(await makeModel({ arch: 'qwen3', maxPosition: 256 }), { gemm: 'builtin' });
});
afterAll(async () => {
  await model?.dispose();
  cleanupTempDirs();
});

const V = () => model.info.vocabSize;

describe('generation', () => {
  it('same seed gives the same tokens; another seed gives others', async () => {
    const p = { tokens: randomTokens(6, V(), 1) };
    const opts = { temperature: 1, maxNewTokens: 24, ignoreEos: true, n: 3 };
    const a = await model.generate(p, { ...opts, seed: 42 });
    const b = await model.generate(p, { ...opts, seed: 42 });
    const c = await model.generate(p, { ...opts, seed: 43 });
    const toks = (r: typeof a) => r.results[0].completions.map((x) => x.tokens);
    expect(toks(a)).toEqual(toks(b));
    expect(toks(a)).not.toEqual(toks(c));
    // the n samples of one prompt differ from each other (each has its own seed)
    expect(new Set(toks(a).map((t) => t.join(','))).size).toBe(3);
  });

  it('batched generation of k prompts equals generating each alone (greedy and seeded sampling)', async () => {
    const prompts = [3, 17, 40, 1, 25].map((len, i) => ({ tokens: randomTokens(len, V(), 100 + i) }));
    for (const temperature of [0, 1]) {
      const batched = await model.generate(prompts, { temperature, maxNewTokens: 20, ignoreEos: true, seed: 5, maxBatch: 3, prefillChunk: 16 });
      for (let i = 0; i < prompts.length; i++) {
        // prompt i in a batch is seeded with seed + i
        const alone = await model.generate(prompts[i], { temperature, maxNewTokens: 20, ignoreEos: true, seed: 5 + i });
        expect(batched.results[i].completions[0].tokens).toEqual(alone.results[0].completions[0].tokens);
        expect(batched.results[i].completions[0].logprobs).toEqual(alone.results[0].completions[0].logprobs);
      }
    }
  });

  it('n greedy samples share one prefill and equal the single greedy sample', async () => {
    const p = { tokens: randomTokens(21, V(), 9) };  // 21 tokens: a partial KV block is copied per sample
    const one = await model.generate(p, { temperature: 0, maxNewTokens: 12, ignoreEos: true });
    const many = await model.generate(p, { temperature: 0, maxNewTokens: 12, ignoreEos: true, n: 5 });
    expect(many.stats.promptTokens).toBe(21);  // prefilled once, not 5 times
    for (const c of many.results[0].completions) expect(c.tokens).toEqual(one.results[0].completions[0].tokens);
  });

  it('a small KV cache still completes every request (continuous batching frees blocks)', async () => {
    const prompts = Array.from({ length: 6 }, (_, i) => ({ tokens: randomTokens(10 + i, V(), 200 + i) }));
    const roomy = await model.generate(prompts, { temperature: 0, maxNewTokens: 16, ignoreEos: true });
    const tight = await model.generate(prompts, { temperature: 0, maxNewTokens: 16, ignoreEos: true, kvCacheTokens: 64, maxBatch: 2 });
    expect(tight.results.map((r) => r.completions[0].tokens)).toEqual(roomy.results.map((r) => r.completions[0].tokens));
  });

  it('top-k 1 and a tiny top-p both equal greedy; min-p 1 too', async () => {
    const p = { tokens: randomTokens(8, V(), 4) };
    const greedy = (await model.generate(p, { temperature: 0, maxNewTokens: 10, ignoreEos: true })).results[0].completions[0].tokens;
    for (const o of [{ topK: 1 }, { topP: 1e-6 }, { minP: 1 }]) {
      const r = await model.generate(p, { temperature: 1, maxNewTokens: 10, ignoreEos: true, seed: 3, ...o });
      expect(r.results[0].completions[0].tokens).toEqual(greedy);
    }
  });

  it('stops at stop token ids (kept in tokens) and at max tokens', async () => {
    const p = { tokens: randomTokens(5, V(), 6) };
    const free = (await model.generate(p, { temperature: 0, maxNewTokens: 10, ignoreEos: true })).results[0].completions[0];
    expect(free.finishReason).toBe('length');
    const stopId = free.tokens[3];
    const stopped = (await model.generate(p, { temperature: 0, maxNewTokens: 10, ignoreEos: true, stopTokenIds: [stopId] })).results[0].completions[0];
    const first = free.tokens.indexOf(stopId);
    expect(stopped.finishReason).toBe('stop');
    expect(stopped.tokens).toEqual(free.tokens.slice(0, first + 1));
  });

  it('stops at stop strings and cuts them from the text', async () => {
    const p = 'Tom has 3 apples and';
    const free = (await model.generate(p, { temperature: 0, maxNewTokens: 24, ignoreEos: true })).results[0].completions[0];
    expect(free.text.length).toBeGreaterThan(4);
    const stop = free.text.slice(2, 4);
    const r = (await model.generate(p, { temperature: 0, maxNewTokens: 24, ignoreEos: true, stop: [stop] })).results[0].completions[0];
    expect(r.finishReason).toBe('stop');
    expect(r.stopString).toBe(stop);
    expect(r.text).toBe(free.text.slice(0, free.text.indexOf(stop)));
  });

  it('generation stops at the end of the context', async () => {
    const p = { tokens: randomTokens(250, V(), 8) };  // maxPosition 256
    const r = (await model.generate(p, { temperature: 0, maxNewTokens: 50, ignoreEos: true })).results[0].completions[0];
    expect(r.finishReason).toBe('length');
    expect(r.tokens.length).toBe(7);  // positions 250..255 fed, one more token sampled
  });

  it('reports progress and can be cancelled with an AbortSignal', async () => {
    const events: number[] = [];
    const done = await model.generate({ tokens: randomTokens(4, V(), 1) }, { maxNewTokens: 8, ignoreEos: true, onProgress: (e) => events.push(e.generatedTokens) });
    expect(done.stats.generatedTokens).toBe(8);
    await new Promise((r) => setTimeout(r, 20));  // progress events arrive asynchronously
    expect(events.length).toBeGreaterThan(0);

    // a long job on a model with a long context, aborted from its first progress event
    const long = await Model.load(await makeModel({ arch: 'qwen3', maxPosition: 4096 }));
    try {
      const controller = new AbortController();
      const p = long.generate({ tokens: randomTokens(4, V(), 1) }, {
        maxNewTokens: 4000, ignoreEos: true, n: 32, signal: controller.signal,
        onProgress: () => controller.abort(),
      });
      await expect(p).rejects.toBeInstanceOf(AbortError);
      const pre = new AbortController();
      pre.abort();
      await expect(long.generate('x', { signal: pre.signal })).rejects.toBeInstanceOf(AbortError);
    } finally {
      await long.dispose();
    }
    // the model is still usable afterwards
    const after = await model.generate({ tokens: randomTokens(4, V(), 1) }, { maxNewTokens: 3, ignoreEos: true });
    expect(after.results[0].completions[0].tokens.length).toBe(3);
  });
});
