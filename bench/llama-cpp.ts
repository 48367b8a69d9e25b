// hayate against llama.cpp on the same machine and the same random weights.
//
// speed: a random Qwen3-0.6B-shaped model (init-model, bf16, seed 1) exported to GGUF (--dtype, default bf16:
// the very same values), then prefill and decode tokens/s at batch 1 and 8 for both engines with the same
// thread count, interleaved (hayate, llama.cpp, then llama.cpp, hayate, ...) and repeated, with the load
// average around every run (the machine may be shared). llama.cpp runs through node-llama-cpp's prebuilt
// binary with its defaults (f16 KV cache, flash attention "auto"); batch 8 = one context with 8 sequences
// whose evaluations node-llama-cpp batches into one llama_decode per step. Measured, per engine and batch B:
//   prefill tokens/s = B * prompt tokens / time to run the prompts (hayate: its prefill phase; llama.cpp:
//                      the first prompt-1 tokens of each sequence, evaluated without sampling)
//   decode tokens/s  = tokens produced by one-token-per-sequence forward passes / their time (hayate:
//                      generated - B, the first token of each sequence coming from prefill; llama.cpp: the
//                      last prompt token then gen - 1 sampled tokens fed back, gen passes, greedy sampling
//                      through node-llama-cpp's JS loop included)
// q8_0: llama.cpp's next-token log-probs (log-softmax of its logits) of the q8_0, f16 and bf16 exports
// against the f32 export, teacher-forced on random tokens, for the tiny test model and the 0.6B one.
//
//   npx tsx bench/llama-cpp.ts [--part speed,q8_0] [--reps 3] [--prompt 64] [--gen 32] [--threads 2] [--dtype bf16]
// Records: bench/results/llama-cpp-<cores>core-<date>.json (llama-cpp-<n>thread-... when --threads is not 2)
// and gguf-q8_0-<cores>core-<date>.json.
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { getLlama, LlamaLogLevel, type Llama, type LlamaModel } from 'node-llama-cpp';
import { packageRoot, scriptBenchRecord, writeBenchRecord } from '../ts/bench/record.js';
import { median } from '../ts/bench/stats.js';
import { exportGguf, type GgufDtype } from '../ts/export/index.js';
import { initModel } from '../ts/init-model.js';
import { Model } from '../ts/model.js';

const argv = process.argv.slice(2);
const arg = (name: string, fallback: string): string => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : fallback;
};
const parts = arg('part', 'speed,q8_0').split(',');
const reps = Number(arg('reps', '3'));
const P = Number(arg('prompt', '64'));
const G = Number(arg('gen', '32'));
const threads = Number(arg('threads', '2'));
const speedDtype = arg('dtype', 'bf16') as GgufDtype;
const command = ['npx tsx bench/llama-cpp.ts', ...argv].join(' ');
const resultsDir = join(packageRoot, 'bench', 'results');

const load = () => +loadavg()[0].toFixed(2);
const round = (x: number, d = 2) => +x.toFixed(d);

function randomTokens(n: number, vocab: number, seed: number): number[] {
  let s = seed >>> 0 || 1;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s >>> 8) % vocab;
  });
}

function llamaInfo(llama: Llama) {
  return { nodeLlamaCpp: '3.21.1 (prebuilt binary)', buildType: llama.buildType, release: llama.llamaCppRelease, systemInfo: llama.systemInfo };
}

// ---------------------------------------------------------------------------------------------------------
// speed

interface Run {
  engine: 'hayate' | 'llama.cpp';
  batch: number;
  rep: number;
  prefillTokens: number;
  prefillSeconds: number;
  prefillTokensPerS: number;
  decodeTokens: number;
  decodeSeconds: number;
  decodeTokensPerS: number;
  load1mBefore: number;
  load1mAfter: number;
}

async function hayateRun(model: Model, prompts: number[][], batch: number, rep: number): Promise<Run> {
  const load1mBefore = load();
  const r = await model.generate(prompts.slice(0, batch).map((tokens) => ({ tokens })), { temperature: 0, maxNewTokens: G, ignoreEos: true, maxBatch: batch });
  const s = r.stats;
  const decodeTokens = s.generatedTokens - batch;
  return {
    engine: 'hayate', batch, rep,
    prefillTokens: s.promptTokens, prefillSeconds: round(s.prefillSeconds, 3), prefillTokensPerS: round(s.promptTokens / s.prefillSeconds),
    decodeTokens, decodeSeconds: round(s.decodeSeconds, 3), decodeTokensPerS: round(decodeTokens / s.decodeSeconds),
    load1mBefore, load1mAfter: load(),
  };
}

async function llamaRun(model: LlamaModel, prompts: number[][], batch: number, rep: number): Promise<Run> {
  const ctx = await model.createContext({ sequences: batch, contextSize: P + G + 64, batchSize: Math.max(512, batch * P), threads });
  try {
    const seqs = Array.from({ length: batch }, () => ctx.getSequence());
    const load1mBefore = load();
    let t0 = performance.now();
    await Promise.all(seqs.map((s, i) => s.evaluateWithoutGeneratingNewTokens(prompts[i].slice(0, P - 1) as never)));
    const prefillSeconds = (performance.now() - t0) / 1000;
    t0 = performance.now();
    await Promise.all(seqs.map(async (s, i) => {
      let n = 0;
      for await (const _ of s.evaluate([prompts[i][P - 1]] as never, { temperature: 0 })) if (++n >= G) break;
      if (n !== G) throw new Error(`llama.cpp sequence ${i} stopped after ${n} tokens`);
    }));
    const decodeSeconds = (performance.now() - t0) / 1000;
    const prefillTokens = batch * (P - 1);
    const decodeTokens = batch * G;
    return {
      engine: 'llama.cpp', batch, rep,
      prefillTokens, prefillSeconds: round(prefillSeconds, 3), prefillTokensPerS: round(prefillTokens / prefillSeconds),
      decodeTokens, decodeSeconds: round(decodeSeconds, 3), decodeTokensPerS: round(decodeTokens / decodeSeconds),
      load1mBefore, load1mAfter: load(),
    };
  } finally {
    await ctx.dispose();
  }
}

async function speed(llama: Llama, work: string) {
  const started = new Date();
  const dir = join(work, 'qwen3-0.6b');
  process.stderr.write('speed: init-model qwen3-0.6b (bf16, seed 1)\n');
  await initModel(dir, { shape: 'qwen3-0.6b', seed: 1 });
  const file = join(work, `qwen3-0.6b-${speedDtype}.gguf`);
  let t0 = performance.now();
  const exported = await exportGguf(dir, file, { dtype: speedDtype });
  const exportSeconds = (performance.now() - t0) / 1000;
  process.stderr.write(`speed: exported ${speedDtype} GGUF (${(exported.bytes / 1e9).toFixed(2)} GB) in ${exportSeconds.toFixed(1)} s\n`);

  const hayate = await Model.load(dir, { threads });
  const hayateInfo = { backend: hayate.info.backendDescription, weightBytes: hayate.info.weightBytes, parameters: hayate.info.parameters };
  const lm = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
  const runs: Run[] = [];
  try {
    const V = 151669;  // the tokenizer's ids (the embedding has 151936 rows)
    const prompts = Array.from({ length: 8 }, (_, i) => randomTokens(P, V, 100 + i));
    // warm-up: page the weights in, first-call allocations
    await hayate.generate({ tokens: prompts[0].slice(0, 8) }, { temperature: 0, maxNewTokens: 2, ignoreEos: true });
    await llamaRun(lm, prompts, 1, -1);
    for (let rep = 0; rep < reps; rep++) {
      const order = rep % 2 === 0 ? (['hayate', 'llama.cpp'] as const) : (['llama.cpp', 'hayate'] as const);
      for (const engine of order) {
        for (const batch of [1, 8]) {
          const r = engine === 'hayate' ? await hayateRun(hayate, prompts, batch, rep) : await llamaRun(lm, prompts, batch, rep);
          runs.push(r);
          process.stderr.write(`  rep ${rep} ${engine.padEnd(9)} batch ${batch}: prefill ${r.prefillTokensPerS} tok/s, decode ${r.decodeTokensPerS} tok/s (load ${r.load1mBefore} -> ${r.load1mAfter})\n`);
        }
      }
    }
  } finally {
    await lm.dispose();
    await hayate.dispose();
  }
  const summary: Record<string, unknown> = {};
  for (const batch of [1, 8]) {
    const pick = (e: Run['engine']) => runs.filter((r) => r.engine === e && r.batch === batch);
    const med = (e: Run['engine'], k: 'prefillTokensPerS' | 'decodeTokensPerS') => round(median(pick(e).map((r) => r[k])));
    summary[`batch${batch}`] = {
      hayate: { prefillTokensPerS: med('hayate', 'prefillTokensPerS'), decodeTokensPerS: med('hayate', 'decodeTokensPerS') },
      llamaCpp: { prefillTokensPerS: med('llama.cpp', 'prefillTokensPerS'), decodeTokensPerS: med('llama.cpp', 'decodeTokensPerS') },
      hayateOverLlamaCpp: {
        prefill: round(med('hayate', 'prefillTokensPerS') / med('llama.cpp', 'prefillTokensPerS'), 3),
        decode: round(med('hayate', 'decodeTokensPerS') / med('llama.cpp', 'decodeTokensPerS'), 3),
      },
    };
  }
  const record = scriptBenchRecord(threads === 2 ? 'llama-cpp' : `llama-cpp-${threads}thread`, command, started, {
    note:
      'Medians over reps; every run is listed with the 1-minute load average before and after it (the machine is shared). ' +
      'Same random Qwen3-0.6B-shaped weights (init-model --shape qwen3-0.6b, bf16, seed 1) in both engines: hayate reads the safetensors ' +
      `(its usual dtype, bf16 on disk), llama.cpp the ${speedDtype} GGUF written by exportGguf. Same thread count. ` +
      'prefill tokens/s = batch * prompt tokens / prefill time (llama.cpp: prompt-1 tokens per sequence evaluated without sampling); ' +
      'decode tokens/s = tokens from one-token-per-sequence forward passes / their time (hayate: generated - batch; llama.cpp: gen passes per sequence, ' +
      'greedy sampling in node-llama-cpp included). llama.cpp batch 8 = one context with 8 sequences, batched into one llama_decode per step by node-llama-cpp.',
    shape: 'qwen3-0.6b',
    threads,
    promptTokens: P,
    genTokens: G,
    reps,
    gguf: { dtype: speedDtype, bytes: exported.bytes, exportSeconds: round(exportSeconds, 1) },
    hayate: hayateInfo,
    llamaCpp: { ...llamaInfo(llama), context: { kvCache: 'f16 (default)', flashAttention: 'auto (default)', batchSize: 'max(512, batch * prompt)' } },
    summary,
    runs,
    loadAverage: loadavg().map((x) => round(x)),
  });
  process.stderr.write(`wrote ${writeBenchRecord(record, resultsDir)}\n${JSON.stringify(summary, null, 2)}\n`);
}

// ---------------------------------------------------------------------------------------------------------
// q8_0 (and f16, bf16) against f32, in llama.cpp

async function logprobs(model: LlamaModel, tokens: number[], vocab: number): Promise<Float64Array[]> {
  const ctx = await model.createContext({ contextSize: tokens.length + 64, threads, flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32' });
  try {
    const seq = ctx.getSequence();
    const rows: Float64Array[] = [];
    for (let i = 0; i < tokens.length; i += 16) {
      const input = tokens.slice(i, i + 16).map((t) => [t, { generateNext: { probabilities: true, options: { temperature: 1, topK: 0, topP: 1, minP: 0 } } }] as never);
      const res = await seq.controlledEvaluate(input);
      for (const r of res) {
        const probs = (r as { next: { probabilities: Map<number, number> } }).next.probabilities;
        const row = new Float64Array(vocab).fill(-Infinity);
        for (const [t, p] of probs) row[t] = Math.log(p);
        rows.push(row);
      }
    }
    return rows;
  } finally {
    await ctx.dispose();
  }
}

function compare(ref: Float64Array[], x: Float64Array[]) {
  let maxAbs = 0;
  let sumAbs = 0;
  let n = 0;
  let kl = 0;
  let top1 = 0;
  let maxAbsTop = 0;
  for (let i = 0; i < ref.length; i++) {
    let ia = 0;
    let ib = 0;
    for (let t = 0; t < ref[i].length; t++) {
      const a = ref[i][t];
      const b = x[i][t];
      if (!Number.isFinite(a) || !Number.isFinite(b)) continue;  // a probability that underflowed in float32
      const d = Math.abs(a - b);
      maxAbs = Math.max(maxAbs, d);
      sumAbs += d;
      n++;
      kl += Math.exp(a) * (a - b);
      if (a > ref[i][ia]) ia = t;
      if (b > x[i][ib]) ib = t;
    }
    maxAbsTop = Math.max(maxAbsTop, Math.abs(ref[i][ia] - x[i][ia]));
    if (ia === ib) top1++;
  }
  return {
    maxAbsLogprobDiff: +maxAbs.toPrecision(3),
    meanAbsLogprobDiff: +(sumAbs / n).toPrecision(3),
    meanKlNats: +(kl / ref.length).toPrecision(3),
    maxAbsLogprobDiffOfTop1: +maxAbsTop.toPrecision(3),
    top1Agreement: round(top1 / ref.length, 3),
  };
}

async function q8(llama: Llama, work: string) {
  const started = new Date();
  const models = [
    { name: 'tiny (tests/helpers makeModel: qwen3, hidden 64, 2 layers, std 0.15, norm noise 0.2, seed 7, tiny tokenizer)', dir: join(work, 'q-tiny'), opts: { shape: 'tiny' as const, std: 0.15, normNoise: 0.2, seed: 7 } },
    { name: 'qwen3-0.6b shape (init-model defaults: bf16, std 0.02, seed 1)', dir: join(work, 'q-0.6b'), opts: { shape: 'qwen3-0.6b' as const, seed: 1 } },
  ];
  const positions = 64;
  const out: unknown[] = [];
  for (const m of models) {
    process.stderr.write(`q8_0: ${m.name}\n`);
    await initModel(m.dir, m.opts);
    const hayate = await Model.load(m.dir, { threads });
    const vocab = hayate.info.vocabSize;
    const tokens = randomTokens(positions, m.opts.shape === 'tiny' ? hayate.tokenizer!.vocabSize : 151669, 7);
    // hayate's own f32 log-probs, for the engines' agreement at f32
    const ours = (await hayate.logits(tokens)).map((row) => {
      let max = -Infinity;
      for (const v of row) max = Math.max(max, v);
      let sum = 0;
      for (const v of row) sum += Math.exp(v - max);
      const lse = max + Math.log(sum);
      return Float64Array.from(row, (v) => v - lse);
    });
    await hayate.dispose();
    const result: Record<string, unknown> = { model: m.name, vocab, positions };
    let ref: Float64Array[] | undefined;
    for (const dtype of ['f32', 'q8_0', 'f16', 'bf16'] as const) {
      const file = join(work, `q-${m.opts.shape}-${dtype}.gguf`);
      await exportGguf(m.dir, file, { dtype });
      const lm = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
      const lp = await logprobs(lm, tokens, vocab);
      await lm.dispose();
      if (dtype === 'f32') {
        ref = lp;
        result.hayateF32VsLlamaCppF32 = compare(ours, lp);
      } else {
        result[`${dtype}VsF32`] = { ...compare(ref!, lp), ggufBytes: statSync(file).size };
      }
      rmSync(file);
      process.stderr.write(`  ${dtype}: ${JSON.stringify(dtype === 'f32' ? result.hayateF32VsLlamaCppF32 : result[`${dtype}VsF32`])}\n`);
    }
    out.push(result);
    rmSync(m.dir, { recursive: true, force: true });
  }
  const record = scriptBenchRecord('gguf-q8_0', command, started, {
    note:
      'llama.cpp (node-llama-cpp prebuilt, KV cache f32, no flash attention) next-token log-probs = log-softmax of its logits, read as its full ' +
      `probability lists, teacher-forced on ${positions} random tokens; each export compared with the f32 export of the same model, over every ` +
      'vocabulary entry of every position (entries whose float32 probability underflowed skipped). KL = mean over positions of KL(f32 || dtype). ' +
      'top1 = positions where both pick the same argmax. hayateF32VsLlamaCppF32: hayate\'s own f32 logits against llama.cpp\'s f32 export.',
    threads,
    llamaCpp: llamaInfo(llama),
    models: out,
    loadAverage: loadavg().map((x) => round(x)),
  });
  process.stderr.write(`wrote ${writeBenchRecord(record, resultsDir)}\n`);
}

const work = mkdtempSync(join(tmpdir(), 'hayate-llama-cpp-'));
const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, progressLogs: false });
try {
  if (parts.includes('q8_0')) await q8(llama, work);
  if (parts.includes('speed')) await speed(llama, work);
} finally {
  await llama.dispose();
  rmSync(work, { recursive: true, force: true });
}
