// The exported GGUF in llama.cpp itself (node-llama-cpp's prebuilt binaries, a devDependency): it loads,
// tokenizes text as hayate does, and its greedy continuation equals hayate's, for Qwen3 with the real Qwen3
// tokenizer, LLaMA and Qwen2, and with a LoRA adapter merged. The f32 exports agree with hayate's logits to
// float rounding (llama.cpp's KV cache set to f32 here; its default f16 cache alone moves log-probs by ~5e-3).
// Where the prebuilt binary cannot run, the tests are skipped with the reason in their name.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { getLlama, LlamaLogLevel, type Llama, type LlamaModel } from 'node-llama-cpp';
import { afterAll, describe, expect, it } from 'vitest';
import { saveAdapter } from '../ts/adapter.js';
import { exportGguf } from '../ts/export/index.js';
import { Model } from '../ts/model.js';
import { cleanupTempDirs, makeModel, tempDir } from './helpers.js';

let llama: Llama | undefined;
let unavailable = '';
try {
  llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, progressLogs: false });
} catch (err) {
  unavailable = (err as Error).message.split('\n')[0];
  console.warn(`llama.cpp tests skipped: node-llama-cpp's prebuilt binary cannot run on this machine: ${unavailable}`);
}

afterAll(async () => {
  await llama?.dispose();
  cleanupTempDirs();
});

const NEW_TOKENS = 16;
const PROMPT = 'Question: Mia has 12 apples. She gives 5 apples to her brother. How many apples does she have now?';

async function loadGguf(path: string): Promise<LlamaModel> {
  if (!llama) throw new Error('llama.cpp unavailable');
  return llama.loadModel({ modelPath: path, gpuLayers: 0 });
}

async function withContext<T>(model: LlamaModel, work: (ctx: Awaited<ReturnType<LlamaModel['createContext']>>) => Promise<T>): Promise<T> {
  // one thread: ggml's worker threads spin while they wait, which on a busy 2-core machine costs 20x
  const ctx = await model.createContext({
    contextSize: 256, threads: 1, flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32',
  });
  try {
    return await work(ctx);
  } finally {
    await ctx.dispose();
  }
}

/** llama.cpp's greedy continuation of `prompt`. */
async function llamaGreedy(model: LlamaModel, prompt: number[], n = NEW_TOKENS): Promise<number[]> {
  return withContext(model, async (ctx) => {
    const out: number[] = [];
    for await (const t of ctx.getSequence().evaluate(prompt as never, { temperature: 0 })) {
      out.push(t as number);
      if (out.length >= n) break;
    }
    return out;
  });
}

/** llama.cpp's next-token log-probs after every token of `tokens` (teacher-forced, one batch). */
async function llamaLogprobs(model: LlamaModel, tokens: number[], vocab: number): Promise<Float64Array[]> {
  return withContext(model, async (ctx) => {
    const input = tokens.map((t) => [t, { generateNext: { probabilities: true, options: { temperature: 1, topK: 0, topP: 1, minP: 0 } } }] as never);
    const res = await ctx.getSequence().controlledEvaluate(input);
    return res.map((r) => {
      const probs = (r as { next: { probabilities: Map<number, number> } }).next.probabilities;
      const row = new Float64Array(vocab);
      for (let t = 0; t < vocab; t++) row[t] = Math.log(probs.get(t) ?? 0);
      return row;
    });
  });
}

function logSoftmax(row: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(row, (v) => v - lse);
}

/** Hayate's greedy continuation (with the attached adapters, if any). */
async function hayateGreedy(model: Model, prompt: number[], n = NEW_TOKENS): Promise<number[]> {
  const r = await model.generate({ tokens: prompt }, { temperature: 0, maxNewTokens: n, ignoreEos: true });
  return r.results[0].completions[0].tokens;
}

if (!llama) {
  it.skip(`llama.cpp (node-llama-cpp prebuilt) cannot run on this machine: ${unavailable}`, () => {});
}

describe.skipIf(!llama)('llama.cpp runs the GGUF export', () => {
  it('Qwen3 with the real Qwen3 tokenizer: same tokens for text and chat, same greedy continuation (f32)', async () => {
    const dir = await makeModel({ arch: 'qwen3', tokenizer: 'qwen3' });
    const file = join(tempDir(), 'qwen3.gguf');
    await exportGguf(dir, file, { dtype: 'f32' });
    const model = await Model.load(dir, { threads: 2 });
    const gm = await loadGguf(file);
    try {
      const tok = model.tokenizer!;
      const prompt = tok.encode(PROMPT);
      expect(gm.tokenize(PROMPT)).toEqual(prompt);
      const chat = tok.applyChatTemplate([{ role: 'user', content: 'What is 7 + 8? Think step by step.' }], { addGenerationPrompt: true });
      expect(gm.tokenize(chat, true)).toEqual(tok.encode(chat, { addSpecialTokens: false }));
      expect(gm.detokenize(prompt as never)).toBe(PROMPT);
      expect(gm.fileInfo.metadata.tokenizer.chat_template).toBe(tok.chatTemplate);

      expect(await llamaGreedy(gm, prompt)).toEqual(await hayateGreedy(model, prompt));
    } finally {
      await gm.dispose();
      await model.dispose();
    }
  });

  it('LLaMA (q/k permuted, llama3 RoPE, biases, head_dim != hidden/heads, untied) and Qwen2 (linear RoPE): same greedy continuation and log-probs (f32)', async () => {
    const configs = [
      { arch: 'llama' as const, tied: false, attentionBias: true, headDim: 24, ropeScaling: { type: 'llama3' as const, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 } },
      { arch: 'qwen2' as const, tied: false, ropeScaling: { type: 'linear' as const, factor: 4 } },
    ];
    for (const cfg of configs) {
      const dir = await makeModel(cfg);
      const file = join(tempDir(), `${cfg.arch}.gguf`);
      await exportGguf(dir, file, { dtype: 'f32' });
      const model = await Model.load(dir, { threads: 2 });
      const gm = await loadGguf(file);
      try {
        const prompt = model.tokenizer!.encode(PROMPT);
        expect(gm.tokenize(PROMPT), cfg.arch).toEqual(prompt);
        const want = await hayateGreedy(model, prompt);
        expect(await llamaGreedy(gm, prompt), cfg.arch).toEqual(want);
        // teacher-forced on prompt + continuation: every next-token log-prob agrees to float rounding
        const seq = [...prompt, ...want];
        const ours = (await model.logits(seq)).map(logSoftmax);
        const theirs = await llamaLogprobs(gm, seq, model.info.vocabSize);
        let maxDiff = 0;
        for (let i = 0; i < seq.length; i++) for (let t = 0; t < ours[i].length; t++) maxDiff = Math.max(maxDiff, Math.abs(ours[i][t] - theirs[i][t]));
        expect(maxDiff, cfg.arch).toBeLessThan(1e-4);
      } finally {
        await gm.dispose();
        await model.dispose();
      }
    }
  });

  it('a LoRA adapter merged into the export gives the greedy tokens of hayate with the adapter attached', async () => {
    const dir = await makeModel({ arch: 'qwen3' });
    const model = await Model.load(dir, { threads: 2 });
    const gmFiles: LlamaModel[] = [];
    try {
      await model.attachLora({ rank: 4, alpha: 8, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] });
      let s = 99;
      const rnd = () => {
        s = (Math.imul(s, 1103515245) + 12345) >>> 0;
        return (s / 2 ** 32 - 0.5) * 0.5;
      };
      const tensors = (await model.loraTensors()).map((t) => ({ ...t, b: Float32Array.from(t.b, rnd) }));
      await model.setLoraTensors(tensors);
      const prompt = model.tokenizer!.encode(PROMPT);
      const r = await model.generate({ tokens: prompt }, { temperature: 0, maxNewTokens: NEW_TOKENS, ignoreEos: true, lora: false });
      const base = r.results[0].completions[0].tokens;
      const adapted = await hayateGreedy(model, prompt);
      expect(adapted).not.toEqual(base);  // the adapter matters

      // a loaded Model: its attached adapters are merged
      const fromModel = join(tempDir(), 'merged.gguf');
      expect(await exportGguf(model, fromModel, { dtype: 'f32' })).toMatchObject({ merged: true });
      // a directory plus a saved PEFT adapter
      const adapterDir = join(tempDir(), 'adapter');
      await saveAdapter(model, adapterDir);
      const fromDir = join(tempDir(), 'merged-dir.gguf');
      expect(await exportGguf(dir, fromDir, { dtype: 'f32', adapter: adapterDir, threads: 1 })).toMatchObject({ merged: true });
      for (const file of [fromModel, fromDir]) {
        const gm = await loadGguf(file);
        gmFiles.push(gm);
        expect(await llamaGreedy(gm, prompt), file).toEqual(adapted);
      }
    } finally {
      for (const gm of gmFiles) await gm.dispose();
      await model.dispose();
    }
  });

  it('a q8_0 export loads and runs; its log-probs stay close to the f32 export\'s', async () => {
    const dir = await makeModel({ arch: 'qwen3' });
    const vocab = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).vocab_size as number;
    const f32 = join(tempDir(), 'f32.gguf');
    const q8 = join(tempDir(), 'q8.gguf');
    await exportGguf(dir, f32, { dtype: 'f32' });
    await exportGguf(dir, q8, { dtype: 'q8_0' });
    const a = await loadGguf(f32);
    const b = await loadGguf(q8);
    try {
      const seq = a.tokenize(PROMPT) as number[];
      const la = await llamaLogprobs(a, seq, vocab);
      const lb = await llamaLogprobs(b, seq, vocab);
      let maxDiff = 0;
      let kl = 0;
      let top1 = 0;
      for (let i = 0; i < seq.length; i++) {
        let ia = 0;
        let ib = 0;
        for (let t = 0; t < la[i].length; t++) {
          maxDiff = Math.max(maxDiff, Math.abs(la[i][t] - lb[i][t]));
          kl += Math.exp(la[i][t]) * (la[i][t] - lb[i][t]);
          if (la[i][t] > la[i][ia]) ia = t;
          if (lb[i][t] > lb[i][ib]) ib = t;
        }
        if (ia === ib) top1++;
      }
      // measured on this model: KL 1.0e-3 nats per position, max |d log p| 0.28, top-1 agreement 29/33 (the
      // random model's distributions have near-ties; bench/llama-cpp.ts records the figures for bigger models)
      expect(maxDiff).toBeGreaterThan(0);  // quantized: not the same numbers
      expect(kl / seq.length).toBeLessThan(0.01);
      expect(maxDiff).toBeLessThan(1);
      expect(top1 / seq.length).toBeGreaterThanOrEqual(0.75);
    } finally {
      await a.dispose();
      await b.dispose();
    }
  });
});
