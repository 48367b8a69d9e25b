// `hayate bench`: job → argument mapping, and a real (tiny) kernel benchmark recorded with its provenance.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { benchJobArgs } from '../ts/bench/jobs.js';
import { cleanupTempDirs, tempDir } from './helpers.js';

const cli = join(__dirname, '..', 'dist', 'cli', 'main.js');
afterAll(cleanupTempDirs);

describe('bench jobs', () => {
  it('map job names to hayate_bench arguments', () => {
    expect(benchJobArgs('train:qwen3-0.6b', { threads: '2' })).toEqual({
      name: 'train-qwen3-0.6b',
      args: ['train', '--shape', 'qwen3-0.6b', '--seq-lens', '128,512', '--threads', '2'],
    });
    expect(benchJobArgs('kernels:cuda', { ops: 'sample,linear' }).args).toEqual(['kernels', '--backend', 'cuda', '--repeats', '20', '--ops', 'sample,linear']);
    expect(benchJobArgs('model:tiny', {}).args.slice(0, 3)).toEqual(['model', '--shape', 'tiny']);
    expect(benchJobArgs('peak', { threads: '2' })).toEqual({ name: 'peak', args: ['peak', '--threads', '2'] });
    // bf16 weights: their own record name, so f32 and bf16 runs of a day do not overwrite each other
    expect(benchJobArgs('train:qwen3-0.6b', { threads: '2', weights: 'bf16' })).toEqual({
      name: 'train-qwen3-0.6b-bf16',
      args: ['train', '--shape', 'qwen3-0.6b', '--seq-lens', '128,512', '--threads', '2', '--weights', 'bf16'],
    });
    expect(benchJobArgs('model:qwen3-0.6b', { weights: 'bf16' }).args.slice(-2)).toEqual(['--weights', 'bf16']);
    expect(() => benchJobArgs('kernels:tpu', {})).toThrow(/unknown benchmark job 'kernels:tpu'/);
    expect(() => benchJobArgs('nonsense', {})).toThrow(/unknown benchmark job/);
  });
});

describe('hayate bench', () => {
  it('kernels --backend cpu records results with machine, date, command and commit', () => {
    const out = tempDir();
    const r = spawnSync(process.execPath, [cli, 'bench', 'kernels', '--backend', 'cpu', '--ops', 'rmsnorm', '--repeats', '2', '--out', out], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const files = readdirSync(out);
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^kernels-cpu-\d+core-\d{4}-\d\d-\d\d\.json$/);
    const rec = JSON.parse(readFileSync(join(out, files[0]), 'utf8'));
    expect(rec.command).toContain('kernels --backend cpu');
    expect(rec.commit).toMatch(/^[0-9a-f]{40}$|^unknown$/);
    expect(rec.machine.cores).toBeGreaterThan(0);
    const rows = rec.result.results as { op: string; median_ms: number; speedup: number }[];
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) {
      expect(row.op).toBe('rmsnorm');
      expect(row.median_ms).toBeGreaterThan(0);
      expect(Number.isFinite(row.speedup)).toBe(true);
    }
  });

  it('bad flags and unknown ops fail with one line and an exit code', () => {
    const bad = spawnSync(process.execPath, [cli, 'bench', 'kernels', '--backend', 'tpu'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--backend must be cuda or cpu/);
    const op = spawnSync(process.execPath, [cli, 'bench', 'kernels', '--backend', 'cpu', '--ops', 'nosuchop', '--out', tempDir()], { encoding: 'utf8' });
    expect(op.status).not.toBe(0);
    expect(op.stderr).toMatch(/nosuchop/);
    const num = spawnSync(process.execPath, [cli, 'bench', 'train', 'tiny', '--seq-lens', '64x', '--out', tempDir()], { encoding: 'utf8' });
    expect(num.status).toBe(2);
    expect(num.stderr).toMatch(/--seq-lens: '64x' is not an integer/);
  });
});
