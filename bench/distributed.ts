// GRPO steps/s of one process vs a data-parallel job of N ranks on this machine (mpirun), on the tiny model
// shape, and the result recorded in bench/results/grpo-ranks-<cores>core-<date>.json with the machine, date,
// commands and commit. Each configuration trains the same global batch for the same steps:
//   - 1 process with all cores (threads = cores)
//   - N ranks, cores split between them (threads = cores / N each)
// The first step (warm-up: thread pools, first touches) is left out of the rate.
//   npx tsx bench/distributed.ts [--ranks 2] [--steps 6] [--prompts 8] [--G 8] [--tokens 32]
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initModel } from '../ts/init-model.js';
import { readMetrics } from '../ts/metrics/writer.js';
import { packageRoot, scriptBenchRecord, writeBenchRecord, type BenchRecord } from '../ts/bench/record.js';

const argv = process.argv.slice(2);
const flag = (name: string, fallback: number): number => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : fallback;
};
const ranks = flag('ranks', 2);
const steps = flag('steps', 6);
const prompts = flag('prompts', 8);
const G = flag('G', 8);
const tokens = flag('tokens', 32);
const cores = availableParallelism();
const cli = join(packageRoot, 'dist', 'cli', 'main.js');

const work = mkdtempSync(join(tmpdir(), 'hayate-bench-ranks-'));
const model = join(work, 'model');
await initModel(model, { shape: 'tiny', seed: 1 });

function run(np: number): { command: string; stepsPerSecond: number; stepSeconds: number[] } {
  const out = join(work, `out-${np}`);
  const threads = Math.max(1, Math.floor(cores / np));
  const args = [cli, 'train', model, '--data', 'synthetic:1', '--synthetic-count', '400', '-G', String(G), '-P', String(prompts), '-m', String(tokens), '--max-steps', String(steps), '--threads', String(threads), '--gemm', 'builtin', '--seed', '1', '--sample-steps', '0', '--no-plot', '-o', out];
  const cmd = np === 1 ? process.execPath : 'mpirun';
  const argvFull = np === 1 ? args : ['--allow-run-as-root', '--oversubscribe', '-np', String(np), '--bind-to', 'none', process.execPath, ...args];
  const r = spawnSync(cmd, argvFull, { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`${cmd} failed (${r.status}): ${r.stderr}`);
  const stepSeconds = readMetrics(join(out, 'metrics.jsonl')).map((m) => m.step_time as number);
  const timed = stepSeconds.slice(1);
  return { command: [np === 1 ? 'node' : 'mpirun', ...argvFull.map((a) => a.replace(work, '$WORK').replace(process.execPath, 'node'))].join(' '), stepsPerSecond: timed.length / timed.reduce((a, b) => a + b, 0), stepSeconds };
}

const started = new Date();
const single = run(1);
const multi = run(ranks);
const record: BenchRecord = scriptBenchRecord('grpo-ranks', `npx tsx bench/distributed.ts --ranks ${ranks} --steps ${steps} --prompts ${prompts} --G ${G} --tokens ${tokens}`, started, {
    shape: 'tiny',
    globalBatch: { prompts, completionsPerPrompt: G, maxCompletionTokens: tokens },
    steps,
    note: 'steps/s over steps 2..N (step 1 is warm-up); step_time from metrics.jsonl',
    oneProcess: { ranks: 1, threadsPerRank: Math.max(1, cores), ...single },
    dataParallel: { ranks, threadsPerRank: Math.max(1, Math.floor(cores / ranks)), ...multi },
    speedup: multi.stepsPerSecond / single.stepsPerSecond,
  });
const file = writeBenchRecord(record, join(packageRoot, 'bench', 'results'));
process.stderr.write(`1 process: ${single.stepsPerSecond.toFixed(3)} steps/s; ${ranks} ranks: ${multi.stepsPerSecond.toFixed(3)} steps/s -> ${file}\n`);
rmSync(work, { recursive: true, force: true });
