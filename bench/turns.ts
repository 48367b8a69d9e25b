// Multi-turn rollouts: one interactive generate call (onTurn continues each sequence in place, keeping its KV
// cache) vs restarting: one generate call per turn whose prompts hold the whole conversation so far (each
// prefilled again, the samples of a prompt no longer sharing a prefill). Both sides generate exactly the same
// number of tokens per sequence and turn: the interactive run samples (temperature 1, a stop-token set that
// ends a turn after ~`turnLen` tokens) and answers each turn at once with `append` fixed tokens; the restart
// side then generates, for each sequence and turn, as many tokens as the interactive run did (no stops).
// Recorded: wall time and prefilled / forwarded tokens of each side, into bench/results/turns-<cores>core-<date>.json.
//   npx tsx bench/turns.ts [--shapes tiny,qwen3-0.6b] [--turns 3] [--append 20] [--prompt 64]
//                          [--seqs 64] [--turn-len 32] [--seqs-big 16] [--turn-len-big 16]
// (--seqs/--turn-len for tiny; --seqs-big/--turn-len-big for qwen3-0.6b, kept short on a CPU.)
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { initModel, type ModelShapeName } from '../ts/init-model.js';
import { Model, type Completion } from '../ts/model.js';
import type { NativeGenerationStats } from '../ts/native.js';
import { packageRoot, scriptBenchRecord, writeBenchRecord, type BenchRecord } from '../ts/bench/record.js';

const argv = process.argv.slice(2);
const flag = (name: string, fallback: number): number => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : fallback;
};
const shapesArg = argv.indexOf('--shapes') >= 0 ? argv[argv.indexOf('--shapes') + 1] : 'tiny,qwen3-0.6b';
const shapes = shapesArg.split(',') as ModelShapeName[];
const turns = flag('turns', 3);
const append = flag('append', 20);
const promptLen = flag('prompt', 64);
const G = 8;  // samples per prompt

interface ShapeConfig { sequences: number; turnLen: number; maxNewTokens: number }
const configs: Record<string, ShapeConfig> = {
  tiny: { sequences: flag('seqs', 64), turnLen: flag('turn-len', 32), maxNewTokens: 0 },
  'qwen3-0.6b': { sequences: flag('seqs-big', 16), turnLen: flag('turn-len-big', 16), maxNewTokens: 0 },
};
for (const c of Object.values(configs)) c.maxNewTokens = turns * (4 * c.turnLen) + (turns - 1) * append;

function tokens(n: number, vocab: number, seed: number): number[] {
  let s = seed >>> 0 || 1;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s >>> 8) % vocab;
  });
}

const pick = (s: NativeGenerationStats) => ({
  promptTokens: s.promptTokens, appendedTokens: s.appendedTokens, prefilledTokens: s.promptTokens + s.appendedTokens,
  generatedTokens: s.generatedTokens, forwardedTokens: s.forwardedTokens, steps: s.steps,
  prefillSeconds: +s.prefillSeconds.toFixed(3), decodeSeconds: +s.decodeSeconds.toFixed(3), waitSeconds: +s.waitSeconds.toFixed(4),
  turnEvents: s.turnEvents,
});

async function benchShape(shape: ModelShapeName, work: string) {
  const cfg = configs[shape];
  const dir = join(work, shape);
  process.stderr.write(`${shape}: init-model\n`);
  await initModel(dir, { shape, seed: 1 });
  const model = await Model.load(dir);
  try {
    const V = model.info.vocabSize;
    const K = cfg.turnLen;  // ids = 0 mod K stop a turn: ~1 token in K on a near-uniform random model
    const stopTokenIds = Array.from({ length: Math.ceil(V / K) }, (_, i) => i * K);
    const prompts = Array.from({ length: Math.max(1, Math.round(cfg.sequences / G)) }, (_, i) => tokens(promptLen, V, 100 + i));
    const answer = (r: number, s: number, t: number) => tokens(append, V, 10_000 + 97 * r + 13 * s + t).map((x) => (x % K === 0 ? x + 1 : x));
    const common = { temperature: 1, seed: 5, ignoreEos: true, maxNewTokens: cfg.maxNewTokens };
    await model.generate({ tokens: prompts[0] }, { ...common, maxNewTokens: 4 });  // warm-up

    // one interactive call
    process.stderr.write(`${shape}: interactive, ${prompts.length * G} sequences x ${turns} turns\n`);
    const load0 = loadavg()[0];
    let cpu0 = process.cpuUsage();
    let t0 = performance.now();
    const inter = await model.generate(prompts.map((p) => ({ tokens: p })), {
      ...common, n: G, stopTokenIds, maxTurns: turns,
      onTurn: (t) => answer(t.request, t.sample, t.turn),
    });
    const interSeconds = (performance.now() - t0) / 1000;
    const cpuSeconds = (u: NodeJS.CpuUsage) => +((u.user + u.system) / 1e6).toFixed(2);
    const interCpu = cpuSeconds(process.cpuUsage(cpu0));
    const load1 = loadavg()[0];

    // per sequence: the model-token count of each turn, and the conversation before it
    interface Seg { prefix: number[]; generate: number }
    const segs: Seg[][] = [];
    inter.results.forEach((r, ri) => r.completions.forEach((c: Completion) => {
      const mask = c.modelTokenMask ?? [];
      const list: Seg[] = [];
      let i = 0;
      while (i < c.tokens.length) {
        const start = i;
        while (i < c.tokens.length && mask[i] === 1) i++;
        if (i > start) list.push({ prefix: [...prompts[ri], ...c.tokens.slice(0, start)], generate: i - start });
        while (i < c.tokens.length && mask[i] === 0) i++;
      }
      segs.push(list);
    }));

    // restarting: turn t of every sequence that has one, as its own prompt, in one call per turn
    process.stderr.write(`${shape}: restart, one call per turn\n`);
    const calls: (ReturnType<typeof pick> & { seconds: number; sequences: number })[] = [];
    let restartSeconds = 0;
    cpu0 = process.cpuUsage();
    for (let t = 0; t < turns; t++) {
      const todo = segs.filter((l) => l.length > t).map((l) => l[t]);
      if (todo.length === 0) break;
      t0 = performance.now();
      let stats: NativeGenerationStats;
      if (t === 0) {
        // the same call as the interactive one without onTurn: one request per prompt, its n samples sharing the prefill
        stats = (await model.generate(prompts.map((p) => ({ tokens: p })), { ...common, n: G, stopTokenIds })).stats;
      } else {
        // each sequence generates exactly as many tokens as its interactive turn did (no stops)
        const requests = todo.map((s, i) => ({ prompt: Int32Array.from(s.prefix), maxNewTokens: s.generate, seed: i, temperature: 1 }));
        stats = (await model.runNative(undefined, (h, cancel) => h.generate(requests, {}, undefined, cancel))).stats;
      }
      const secs = (performance.now() - t0) / 1000;
      restartSeconds += secs;
      calls.push({ ...pick(stats), seconds: +secs.toFixed(3), sequences: todo.length });
    }
    const restartCpu = cpuSeconds(process.cpuUsage(cpu0));
    const load2 = loadavg()[0];
    const restartPrefilled = calls.reduce((a, c) => a + c.prefilledTokens, 0);
    const restartGenerated = calls.reduce((a, c) => a + c.generatedTokens, 0);
    const interactive = { seconds: +interSeconds.toFixed(3), cpuSeconds: interCpu, ...pick(inter.stats) };
    const result = {
      shape,
      parameters: model.info.parameters,
      backend: model.info.backendDescription,
      sequences: prompts.length * G,
      prompts: prompts.length,
      samplesPerPrompt: G,
      promptTokens: promptLen,
      turns,
      appendedPerTurn: append,
      meanTurnTokensTarget: K,
      maxNewTokens: cfg.maxNewTokens,
      turnsPerSequence: segs.map((l) => l.length).reduce((a, b) => a + b, 0) / segs.length,
      interactive,
      restart: { seconds: +restartSeconds.toFixed(3), cpuSeconds: restartCpu, prefilledTokens: restartPrefilled, generatedTokens: restartGenerated, perTurn: calls },
      speedup: +(restartSeconds / interSeconds).toFixed(3),
      prefilledRatio: +(restartPrefilled / interactive.prefilledTokens).toFixed(3),
      loadAverage1m: { beforeInteractive: load0, afterInteractive: load1, afterRestart: load2 },
    };
    process.stderr.write(`${shape}: interactive ${interSeconds.toFixed(2)} s, ${interactive.prefilledTokens} prefilled; restart ${restartSeconds.toFixed(2)} s, ${restartPrefilled} prefilled (generated ${interactive.generatedTokens} vs ${restartGenerated})\n`);
    return result;
  } finally {
    await model.dispose();
  }
}

const started = new Date();
const work = mkdtempSync(join(tmpdir(), 'hayate-bench-turns-'));
const results: Record<string, unknown> = {};
try {
  for (const shape of shapes) results[shape] = await benchShape(shape, work);
} finally {
  rmSync(work, { recursive: true, force: true });
}
const record: BenchRecord = scriptBenchRecord('turns', `npx tsx bench/turns.ts ${argv.join(' ')}`.trim(), started, {
    note: 'wall times on a shared machine: see loadAverage1m (other processes) and cpuSeconds (this process, all threads). interactive: one generate call with onTurn (answers returned at once); restart: one generate call per turn whose prompts hold the conversation so far, generating as many tokens per sequence and turn as the interactive run (turn 0: the same call without onTurn). prefilledTokens = prompt + appended tokens run through prefill.',
    ...results,
  });
const file = writeBenchRecord(record, join(packageRoot, 'bench', 'results'));
process.stderr.write(`-> ${file}\n`);
