// Multi-turn generation through Model.generate's onTurn (cpp/generator.h, TurnChannel; ts/model.ts): a
// sequence that stops is continued in place with the answer's tokens, only they are prefilled, and the
// completion carries every token with a mask of the model's ones. Bad answers, throwing callbacks, aborts
// while waiting, and non-interactive calls left as they were.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AbortError, HayateError } from '../ts/errors.js';
import { Model, type Turn } from '../ts/model.js';
import type { NativeTurnEvent } from '../ts/native.js';
import { cleanupTempDirs, makeModel, randomTokens } from './helpers.js';

let model: Model;

beforeAll(async () => {
  model = await Model.load(await makeModel({ arch: 'qwen3', maxPosition: 256 }), { gemm: 'builtin' });
});
afterAll(async () => {
  await model?.dispose();
  cleanupTempDirs();
});

const V = () => model.info.vocabSize;
const appended = (turn: number, sample: number, len = 6) => Array.from({ length: len }, (_, i) => (7 * turn + 3 * sample + 5 * i + 1) % V());

/** A prompt and a stop token that greedy decoding emits at position `at`. */
async function promptWithStop(seed: number, at = 3): Promise<{ tokens: number[]; stop: number }> {
  const tokens = randomTokens(11, V(), seed);
  const free = (await model.generate({ tokens }, { temperature: 0, maxNewTokens: at + 1, ignoreEos: true })).results[0].completions[0];
  return { tokens, stop: free.tokens[at] };
}

describe('generate with onTurn', () => {
  it('continues each sequence with the appended tokens: same tokens as a fresh prompt, only appended tokens prefilled', async () => {
    const { tokens, stop } = await promptWithStop(1);
    const turns: Turn[] = [];
    const r = await model.generate({ tokens }, {
      temperature: 0, maxNewTokens: 120, ignoreEos: true, stopTokenIds: [stop], n: 3,
      onTurn: (t) => {
        turns.push(t);
        return t.turn < 2 ? appended(t.turn, 0) : null;  // the same answer for every sample
      },
    });
    const cs = r.results[0].completions;
    expect(cs).toHaveLength(3);
    expect(r.stats.promptTokens).toBe(tokens.length);  // one prefill for the 3 samples
    let appendedCount = 0;
    for (const c of cs) {
      expect(c.modelTokenMask).toHaveLength(c.tokens.length);
      expect(c.logprobs).toHaveLength(c.tokens.length);
      expect(c.error).toBeUndefined();
      appendedCount += c.modelTokenMask!.filter((m) => m === 0).length;
      c.modelTokenMask!.forEach((m, i) => { if (m === 0) expect(c.logprobs[i]).toBe(0); });
    }
    expect(r.stats.appendedTokens).toBe(appendedCount);
    expect(r.stats.turnEvents).toBe(turns.length);
    expect(r.stats.forwardedTokens).toBe(r.stats.promptTokens + r.stats.appendedTokens + r.stats.generatedTokens - 3);

    // greedy: the samples agree; each turn equals generating from a prompt holding everything before it
    const c = cs[0];
    expect(cs[1].tokens).toEqual(c.tokens);
    const mine = turns.filter((t) => t.sample === 0).sort((a, b) => a.turn - b.turn);
    expect(c.turns).toBe(Math.min(3, mine.length + 1));
    let at = 0;
    for (const t of mine) {
      expect(c.tokens.slice(at, at + t.tokens.length)).toEqual(t.tokens);
      expect(c.logprobs.slice(at, at + t.tokens.length)).toEqual(t.logprobs);
      expect(t.tokens.at(-1)).toBe(stop);
      expect(t.stopString).toBeUndefined();
      expect(t.completionTokens).toBe(at + t.tokens.length);
      expect(t.remainingTokens).toBe(120 - t.completionTokens);
      expect(t.maxAppendTokens).toBe(Math.min(120 - 1 - t.completionTokens, 256 - tokens.length - t.completionTokens));
      if (t.turn < 2) {
        const fresh = (await model.generate({ tokens: [...tokens, ...c.tokens.slice(0, at + t.tokens.length + 6)] }, {
          temperature: 0, maxNewTokens: 10, ignoreEos: true, stopTokenIds: [stop],
        })).results[0].completions[0];
        const next = c.tokens.slice(at + t.tokens.length + 6, at + t.tokens.length + 6 + fresh.tokens.length);
        expect(next).toEqual(fresh.tokens);
        fresh.logprobs.forEach((lp, i) => expect(Math.abs(lp - c.logprobs[at + t.tokens.length + 6 + i])).toBeLessThan(1e-5));
        expect(c.tokens.slice(at + t.tokens.length, at + t.tokens.length + 6)).toEqual(appended(t.turn, 0));
      }
      at += t.tokens.length + (t.turn < 2 ? 6 : 0);
    }
  });

  it('async answers, sampled: deterministic, whatever the answer timing and batch size', async () => {
    const tokens = randomTokens(9, V(), 4);
    const stopTokenIds = Array.from({ length: Math.ceil(V() / 8) }, (_, i) => i * 8);  // ~1 token in 8 stops
    const run = (delay: (t: Turn) => number, maxBatch?: number) =>
      model.generate([{ tokens }, { tokens: randomTokens(5, V(), 5) }], {
        temperature: 1, seed: 11, n: 4, maxNewTokens: 64, ignoreEos: true, stopTokenIds, maxTurns: 3, maxBatch,
        onTurn: async (t) => {
          await new Promise((r) => setTimeout(r, delay(t)));
          return appended(t.turn, t.sample, 4);
        },
      });
    const a = await run(() => 0);
    const b = await run((t) => (t.sample * 7 + t.turn * 3) % 11, 3);
    const shape = (r: typeof a) => r.results.map((p) => p.completions.map((c) => [c.tokens, c.modelTokenMask, c.turns, c.finishReason]));
    expect(shape(b)).toEqual(shape(a));
    expect(a.results.flatMap((p) => p.completions).some((c) => (c.turns ?? 0) > 1)).toBe(true);
  });

  it('maxTurns, an end answer, and the maxNewTokens budget over generated + appended tokens', async () => {
    const { tokens, stop } = await promptWithStop(2, 2);
    let calls = 0;
    const two = (await model.generate({ tokens }, {
      temperature: 0, maxNewTokens: 100, ignoreEos: true, stopTokenIds: [stop], maxTurns: 2,
      onTurn: (t) => { calls++; return appended(t.turn, 0); },
    })).results[0].completions[0];
    expect(calls).toBe(1);
    expect(two.turns).toBe(2);

    const ended = (await model.generate({ tokens }, {
      temperature: 0, maxNewTokens: 100, ignoreEos: true, stopTokenIds: [stop], onTurn: () => null,
    })).results[0].completions[0];
    expect(ended).toMatchObject({ finishReason: 'stop', turns: 1 });
    expect(ended.tokens).toHaveLength(3);
    expect(ended.modelTokenMask).toEqual([1, 1, 1]);

    // an answer longer than maxAppendTokens is cut to the budget and ends the sequence
    let seen: Turn | undefined;
    const cut = (await model.generate({ tokens }, {
      temperature: 0, maxNewTokens: 30, ignoreEos: true, stopTokenIds: [stop],
      onTurn: (t) => { seen = t; return appended(0, 0, t.maxAppendTokens + 5); },
    })).results[0].completions[0];
    expect(cut.finishReason).toBe('length');
    expect(cut.tokens).toHaveLength(30);
    expect(cut.modelTokenMask!.at(-1)).toBe(0);
    expect(cut.turns).toBe(1);
    expect(seen!.maxAppendTokens).toBe(30 - 1 - 3);
  });

  it('stop strings end turns; the completion text keeps them, the last one too', async () => {
    const p = 'Tom has 3 apples and';
    const free = (await model.generate(p, { temperature: 0, maxNewTokens: 24, ignoreEos: true })).results[0].completions[0];
    const stop = free.text.slice(2, 4);
    const turns: Turn[] = [];
    const answer = model.tokenizer!.encode(' and then', { addSpecialTokens: false });
    const r = (await model.generate(p, {
      temperature: 0, maxNewTokens: 60, ignoreEos: true, stop: [stop], maxTurns: 2,
      onTurn: (t) => { turns.push(t); return answer; },
    })).results[0].completions[0];
    expect(turns).toHaveLength(1);  // maxTurns 2: the second stop ends the sequence without a call
    expect(turns[0].stopString).toBe(stop);
    expect(turns[0].text).toContain(stop);  // the turn's text keeps its stop string
    expect(turns[0].text.startsWith(free.text.slice(0, free.text.indexOf(stop)))).toBe(true);
    const n0 = turns[0].tokens.length;
    expect(r.tokens.slice(0, n0)).toEqual(turns[0].tokens);
    expect(r.tokens.slice(n0, n0 + answer.length)).toEqual(answer);
    expect(r.modelTokenMask!.slice(n0, n0 + answer.length)).toEqual(answer.map(() => 0));
    expect(r.text.startsWith(turns[0].text)).toBe(true);
    if (r.finishReason === 'stop') {
      expect(r.stopString).toBe(stop);
      expect(r.text.endsWith(stop)).toBe(true);  // the last turn keeps its stop too (a final tool call reads as one)
    }
  });

  it('a throwing or rejecting onTurn ends only its sequence, with the error on the completion', async () => {
    const { tokens, stop } = await promptWithStop(3);
    const r = await model.generate({ tokens }, {
      temperature: 0, maxNewTokens: 60, ignoreEos: true, stopTokenIds: [stop], n: 3, maxTurns: 2,
      onTurn: (t) => {
        if (t.sample === 0) throw new Error('tool crashed');  // synchronously
        if (t.sample === 1) return Promise.reject(new Error('tool timed out'));
        return appended(0, 0);
      },
    });
    const [a, b, c] = r.results[0].completions;
    expect(a).toMatchObject({ error: 'tool crashed', finishReason: 'stop', turns: 1 });
    expect(b).toMatchObject({ error: 'tool timed out', finishReason: 'stop', turns: 1 });
    expect(c.error).toBeUndefined();
    expect(c.turns).toBe(2);
    expect(c.tokens.length).toBeGreaterThan(a.tokens.length);
  });

  it('an invalid answer rejects the call with ERR_INVALID_ARGUMENT; the model stays usable', async () => {
    const { tokens, stop } = await promptWithStop(5);
    for (const bad of [[1, V()], [1.5], [-1], 'tokens' as unknown as number[]]) {
      const p = model.generate({ tokens }, { temperature: 0, maxNewTokens: 40, ignoreEos: true, stopTokenIds: [stop], n: 2, onTurn: () => bad });
      await expect(p).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
      await expect(p).rejects.toBeInstanceOf(HayateError);
    }
    const ok = await model.generate({ tokens }, { temperature: 0, maxNewTokens: 5, ignoreEos: true });
    expect(ok.results[0].completions[0].tokens).toHaveLength(5);
  });

  it('the raw turn events: provide once, in range, during the call; interactive needs onTurn', async () => {
    const { tokens, stop } = await promptWithStop(6);
    const errors: string[] = [];
    let late: NativeTurnEvent | undefined;
    const req = { prompt: Int32Array.from(tokens), maxNewTokens: 40, temperature: 0, stopTokenIds: Int32Array.of(stop), interactive: true, maxTurns: 2 };
    const out = await model.runNative(undefined, (handle, cancel) =>
      handle.generate([req], {}, undefined, cancel, (ev) => {
        late = ev;
        for (const bad of [[V()], [-1], 'x' as unknown as number[]]) {
          try {
            ev.provide(bad);
          } catch (err) {
            errors.push((err as { code?: string }).code ?? 'none');
          }
        }
        ev.provide([1, 2, 3]);
        try {
          ev.provide(null);  // a second answer
        } catch (err) {
          errors.push((err as { code?: string }).code ?? 'none');
        }
      }),
    );
    expect(errors).toEqual(['ERR_INVALID_ARGUMENT', 'ERR_INVALID_ARGUMENT', 'ERR_INVALID_ARGUMENT', 'ERR_INVALID_ARGUMENT']);
    expect(out.outputs[0].turns).toBe(2);
    expect(Array.from(out.outputs[0].tokenMask!)).toContain(0);
    expect(() => late!.provide(null)).toThrow(/over/);  // after the call
    await expect(model.runNative(undefined, (handle, cancel) => handle.generate([req], {}, undefined, cancel))).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
  });

  it('an AbortSignal stops a call whose sequences all wait for an answer', async () => {
    const { tokens, stop } = await promptWithStop(7);
    const controller = new AbortController();
    let waiting = 0;
    const t0 = Date.now();
    const p = model.generate({ tokens }, {
      temperature: 0, maxNewTokens: 40, ignoreEos: true, stopTokenIds: [stop], n: 2, signal: controller.signal,
      onTurn: () => {
        if (++waiting === 2) setTimeout(() => controller.abort(), 50);
        return new Promise<null>(() => {});  // never answers
      },
    });
    await expect(p).rejects.toBeInstanceOf(AbortError);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(waiting).toBe(2);
    const after = await model.generate({ tokens }, { temperature: 0, maxNewTokens: 3, ignoreEos: true });
    expect(after.results[0].completions[0].tokens).toHaveLength(3);
  });

  it('without onTurn nothing changes: no turn fields, stops finish the sequence', async () => {
    const { tokens, stop } = await promptWithStop(8);
    const opts = { temperature: 1, seed: 3, n: 3, maxNewTokens: 20, ignoreEos: true, stopTokenIds: [stop] };
    const a = await model.generate({ tokens }, opts);
    const b = await model.generate({ tokens }, opts);
    expect(b.results).toEqual(a.results);
    for (const c of a.results[0].completions) {
      expect(Object.keys(c).sort()).toEqual(c.stopString === undefined ? ['finishReason', 'logprobs', 'text', 'tokens'] : ['finishReason', 'logprobs', 'stopString', 'text', 'tokens']);
    }
    expect(a.stats).toMatchObject({ appendedTokens: 0, turnEvents: 0, waitSeconds: 0 });
    expect(a.stats.forwardedTokens).toBe(a.stats.promptTokens + a.stats.generatedTokens - 3);
  });
});
