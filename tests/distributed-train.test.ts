// Data-parallel training under mpirun: a 2-rank job and a 1-rank run over the same global batch, seed and
// steps train the same adapter and log the same rewards (GRPO with batch-scaled advantages and dynamic
// sampling; SFT), and a failing rank ends the whole job in bounded time with an error naming it, leaving
// the last checkpoint loadable. Skipped, with the reason shown, where mpirun or an MPI build is missing.
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAdapter } from '../ts/adapter.js';
import { readMetrics } from '../ts/metrics/writer.js';
import { Model } from '../ts/model.js';
import { native } from '../ts/native.js';
import { readSafetensors, floatData } from '../ts/safetensors.js';
import { cleanupTempDirs, makeModel, tempDir } from './helpers.js';

const cli = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
const haveMpirun = spawnSync('mpirun', ['--version'], { encoding: 'utf8' }).status === 0;
const haveMpiBuild = native().collectives.builtWithMpi();
const skipReason = !haveMpirun ? 'mpirun is not installed' : !haveMpiBuild ? 'the addon was built without MPI' : '';
if (skipReason) console.warn(`distributed-train tests skipped: ${skipReason}`);

let modelDir: string;
let dir: string;
beforeAll(async () => {
  modelDir = await makeModel({ arch: 'qwen3' });
  dir = tempDir();
  // parity of the completion's length: rewards vary within most groups, not all
  writeFileSync(join(dir, 'parity.mjs'), 'export function parity(prompts, completions) { return completions.map((c) => c.length % 2); }\n');
});
afterAll(cleanupTempDirs);

function train(ranks: number, args: string[], timeoutMs = 240_000) {
  const cmd = ranks === 1 ? process.execPath : 'mpirun';
  const argv = ranks === 1 ? [cli, 'train', ...args] : ['--allow-run-as-root', '--oversubscribe', '-np', String(ranks), process.execPath, cli, 'train', ...args];
  // containers often forbid the shared-memory transport's single-copy mode: use plain copies
  return spawnSync(cmd, argv, { encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, OMPI_MCA_btl_vader_single_copy_mechanism: 'none' } });
}

/**
 * How far two adapters are apart, per tensor, worst over tensors: `norm` = ||a - b|| / ||b|| (the
 * tensors' relative difference), `elementwise` = max |a - b| / max |b|. Data parallelism sums the
 * gradients in another order than one process (per rank, then across ranks), so they differ by float
 * rounding, which AdamW amplifies where a moment nearly cancels: the norm stays ~1e-6, single elements a
 * little more.
 */
function adapterDifference(a: string, b: string): { norm: number; elementwise: number } {
  const ta = readSafetensors(join(a, 'adapter_model.safetensors'));
  const tb = readSafetensors(join(b, 'adapter_model.safetensors'));
  expect([...ta.keys()].sort()).toEqual([...tb.keys()].sort());
  let norm = 0, elementwise = 0;
  for (const [name, t] of ta) {
    const x = floatData(t, name), y = floatData(tb.get(name)!, name);
    let max = 1e-30, maxDiff = 0, ss = 0, ssDiff = 0;
    for (let i = 0; i < y.length; i++) {
      max = Math.max(max, Math.abs(y[i]));
      maxDiff = Math.max(maxDiff, Math.abs(x[i] - y[i]));
      ss += y[i] * y[i];
      ssDiff += (x[i] - y[i]) ** 2;
    }
    norm = Math.max(norm, Math.sqrt(ssDiff / Math.max(ss, 1e-300)));
    elementwise = Math.max(elementwise, maxDiff / max);
  }
  return { norm, elementwise };
}

describe.skipIf(skipReason !== '')('data-parallel training (mpirun -np 2)', () => {
  const common = () => [modelDir, '--data', 'synthetic:1', '--synthetic-count', '40', '--lora-r', '4', '--threads', '1', '--gemm', 'builtin', '--seed', '3', '--no-plot'];

  it('GRPO: 2 ranks train the adapter and log the rewards of 1 rank on the same global batch', () => {
    const grpo = [...common(), '--reward', `${join(dir, 'parity.mjs')}:parity`, '-G', '2', '-P', '4', '-m', '8', '--max-steps', '3', '--lr', '2e-2', '--scale-rewards', 'batch', '--filter-zero-std', '--max-num-gen-batches', '3', '--sample-steps', '0'];
    const one = train(1, [...grpo, '-o', join(dir, 'grpo1')]);
    expect(one.status, one.stderr).toBe(0);
    const two = train(2, [...grpo, '-o', join(dir, 'grpo2')]);
    expect(two.status, two.stderr).toBe(0);
    expect(two.stderr).toContain('world size 2 (2 prompts per rank');
    expect(two.stderr.match(/hayate: GRPO:/g)).toHaveLength(1); // rank 0 alone reports
    const m1 = readMetrics(join(dir, 'grpo1', 'metrics.jsonl'));
    const m2 = readMetrics(join(dir, 'grpo2', 'metrics.jsonl'));
    expect(m2).toHaveLength(3);
    for (let i = 0; i < 3; i++) {
      expect(m2[i].world_size).toBe(2);
      expect(m1[i].world_size).toBe(1);
      for (const key of ['reward', 'reward_std', 'trained_sequences', 'dynamic_sampling/gen_batches', 'dynamic_sampling/groups_kept', 'completions/mean_length', 'num_tokens', 'epoch'])
        expect(m2[i][key], `${key} at step ${i + 1}`).toBeCloseTo(m1[i][key] as number, 10);
      expect(m2[i].loss as number).toBeCloseTo(m1[i].loss as number, 6);
      expect(m2[i].grad_norm as number).toBeCloseTo(m1[i].grad_norm as number, 5);
    }
    expect(m1.some((m) => (m.grad_norm as number) > 0)).toBe(true);
    expect(m1.some((m) => (m['dynamic_sampling/gen_batches'] as number) > 1)).toBe(true); // refills were chosen across ranks
    const d = adapterDifference(join(dir, 'grpo2'), join(dir, 'grpo1'));
    console.log(`GRPO 2 ranks vs 1: adapter relative difference ${d.norm.toExponential(2)} (norm), ${d.elementwise.toExponential(2)} (elementwise)`);
    expect(d.norm).toBeLessThanOrEqual(1e-5);
    expect(d.elementwise).toBeLessThanOrEqual(1e-4);
  });

  it('SFT: 2 ranks of batch 2 train the adapter of 1 rank of batch 4', () => {
    const sft = [...common(), '--mode', 'sft', '--max-steps', '3', '--lr', '5e-3'];
    const one = train(1, [...sft, '--batch-size', '4', '-o', join(dir, 'sft1')]);
    expect(one.status, one.stderr).toBe(0);
    const two = train(2, [...sft, '--batch-size', '2', '-o', join(dir, 'sft2')]);
    expect(two.status, two.stderr).toBe(0);
    const l1 = readMetrics(join(dir, 'sft1', 'metrics.jsonl')).map((m) => m.loss as number);
    const l2 = readMetrics(join(dir, 'sft2', 'metrics.jsonl')).map((m) => m.loss as number);
    expect(l2).toHaveLength(3);
    l2.forEach((l, i) => expect(l).toBeCloseTo(l1[i], 6));
    const d = adapterDifference(join(dir, 'sft2'), join(dir, 'sft1'));
    console.log(`SFT 2 ranks vs 1: adapter relative difference ${d.norm.toExponential(2)} (norm), ${d.elementwise.toExponential(2)} (elementwise)`);
    expect(d.norm).toBeLessThanOrEqual(1e-5);
    expect(d.elementwise).toBeLessThanOrEqual(1e-4);
  });

  it('a rank that fails ends the whole job in bounded time, naming the rank; the last checkpoint stays loadable', async () => {
    const out = join(dir, 'fail');
    const grpo = [...common(), '-G', '2', '-P', '2', '-m', '4', '--save-steps', '1', '-o', out];
    const first = train(2, [...grpo, '--max-steps', '2']);
    expect(first.status, first.stderr).toBe(0);
    // a reward module that cannot load on rank 1 only
    const broken = join(dir, 'broken.mjs');
    writeFileSync(broken, "if (process.env.OMPI_COMM_WORLD_RANK === '1') throw new Error('reward module broken on this rank');\nexport function ok(p, c) { return c.map(() => 1); }\n");
    const started = Date.now();
    let r = train(2, [...grpo, '--max-steps', '4', '--resume', '--reward', `${broken}:ok`], 120_000);
    expect(r.error, 'the job must end by itself').toBeUndefined();
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/rank 1\/2: error: .*reward module broken on this rank/);
    // a rank killed in the middle of a step (a crash, out of memory): mpirun ends the job and names it
    const killer = join(dir, 'killer.mjs');
    writeFileSync(killer, "let calls = 0;\nexport function k(p, c) { if (process.env.OMPI_COMM_WORLD_RANK === '1' && ++calls >= 1) process.kill(process.pid, 'SIGKILL'); return c.map(() => 1); }\n");
    r = train(2, [...grpo, '--max-steps', '4', '--resume', '--reward', `${killer}:k`], 120_000);
    expect(r.error, 'the job must end by itself').toBeUndefined();
    expect(r.status).not.toBe(0);
    expect(`${r.stdout}${r.stderr}`).toMatch(/rank 1/);
    expect(Date.now() - started).toBeLessThan(200_000);
    // a resume with another number of ranks says what it does, and continues
    r = train(1, [...grpo, '--max-steps', '3', '--resume']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('was written by a job of 2 rank(s); resuming with 1: the global batch (2 prompts)');
    // checkpoint-2 of the first run is whole
    expect(existsSync(join(out, 'checkpoint-2', 'adapter_model.safetensors'))).toBe(true);
    const model = await Model.load(modelDir, { threads: 1 });
    try {
      await loadAdapter(model, join(out, 'checkpoint-2'));
      expect(model.lora?.rank).toBe(4);
    } finally {
      await model.dispose();
    }
  });
});
