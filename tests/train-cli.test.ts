// `hayate train` through the built CLI (dist/cli/main.js): a config file with TRL key names, flags that
// override it, checkpoints and --resume, SFT mode, Ctrl-C (checkpoint + exit 130), bad input (exit codes).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TRAIN_SETTINGS } from '../ts/cli/train-config.js';
import { readMetrics } from '../ts/metrics/writer.js';
import { cleanupTempDirs, makeModel, tempDir } from './helpers.js';

const cli = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
let modelDir: string;

beforeAll(async () => {
  modelDir = await makeModel({ arch: 'qwen3' });
});
afterAll(cleanupTempDirs);

function train(args: string[]) {
  return spawnSync(process.execPath, [cli, 'train', ...args], { encoding: 'utf8' });
}

const CONFIG = `# TRL GRPOConfig names
dataset: synthetic:1
synthetic_count: 40
learning_rate: 1.0e-3
num_generations: 4
prompts_per_step: 2
max_completion_length: 6
max_steps: 5
lora_r: 4
lora_alpha: 8
lora_target_modules: [q_proj, v_proj]
reward_funcs: [correctness, format]
reward_weights: [1.0, 0.5]
beta: 0.02
save_steps: 2
sample_steps: 1
num_completions_to_print: 1
threads: 1
seed: 3
report_to: none   # a TRL key hayate does not use: warned about and ignored
`;

describe('hayate train', () => {
  it('--help documents every setting', () => {
    const r = train(['--help']);
    expect(r.status).toBe(0);
    for (const s of TRAIN_SETTINGS) {
      const flag = s.type === 'bool' && s.default === true ? `--no-${s.flag}` : `--${s.flag}`;
      expect(r.stdout, flag).toContain(flag);
      expect(r.stdout, s.key).toMatch(new RegExp(`\\[config: (same name|${s.key})\\]`));
    }
    expect(r.stdout).toContain('--config');
    const readme = readFileSync(join(import.meta.dirname, '..', 'README.md'), 'utf8');
    for (const s of TRAIN_SETTINGS) expect(readme, `README documents --${s.flag}`).toContain(`--${s.type === 'bool' && s.default === true ? 'no-' : ''}${s.flag}`);
  });

  it('trains from a YAML config with flags overriding it, then resumes from the newest checkpoint', () => {
    const dir = tempDir();
    const config = join(dir, 'grpo.yaml');
    writeFileSync(config, CONFIG);
    const out = join(dir, 'run');
    const r = train([modelDir, '--config', config, '--max-steps', '2', '-o', out]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/ignoring unknown key 'report_to'/);
    expect(r.stderr).toMatch(/sample @ step 1/);
    const lines = readMetrics(join(out, 'metrics.jsonl'));
    expect(lines.map((l) => l.step)).toEqual([1, 2]); // --max-steps 2 beat max_steps: 5
    expect(lines[0].learning_rate).toBe(1e-3);
    expect(lines[0]).toHaveProperty('rewards/correctness/mean');
    expect(lines[0]).toHaveProperty('rewards/format/mean');
    expect(typeof lines[0].kl).toBe('number');
    for (const f of ['adapter_model.safetensors', 'adapter_config.json', 'reward_curve.svg', 'samples.jsonl', 'checkpoint-2']) expect(existsSync(join(out, f)), f).toBe(true);

    // a new run into the same directory is refused; --resume continues it
    const again = train([modelDir, '--config', config, '--max-steps', '3', '-o', out]);
    expect(again.status).toBe(2);
    expect(again.stderr).toMatch(/already holds checkpoints.*--resume/);
    const resumed = train([modelDir, '--config', config, '--max-steps', '3', '-o', out, '--resume']);
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(readMetrics(join(out, 'metrics.jsonl')).map((l) => l.step)).toEqual([1, 2, 3]);
    expect(existsSync(join(out, 'checkpoint-3'))).toBe(true);
  });

  it('SFT mode trains and writes the adapter and a loss curve', () => {
    const out = tempDir();
    const r = train([modelDir, '--mode', 'sft', '--data', 'synthetic:1', '--synthetic-count', '16', '--max-steps', '3', '--batch-size', '4', '--lr', '1e-3', '--lora-r', '4', '--threads', '1', '-o', out]);
    expect(r.status, r.stderr).toBe(0);
    expect(readMetrics(join(out, 'metrics.jsonl')).map((l) => typeof l.loss)).toEqual(['number', 'number', 'number']);
    expect(existsSync(join(out, 'adapter_model.safetensors'))).toBe(true);
    expect(existsSync(join(out, 'loss_curve.svg'))).toBe(true);
  });

  it('bad input exits with one clear line and a non-zero code', () => {
    const dir = tempDir();
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'dataset: synthetic\nnum_generations: 1\n');
    let r = train([modelDir, '--config', bad]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/num_generations: must be >= 2/);
    r = train([modelDir, '--config', join(dir, 'missing.yaml')]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/config file not found/);
    writeFileSync(bad, 'dataset: [unclosed\n');
    r = train([modelDir, '--config', bad]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/does not parse/);
    r = train([modelDir, '--data', join(dir, 'nope.jsonl'), '-o', join(dir, 'o')]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/nope\.jsonl/);
    r = train([modelDir, '--data', 'synthetic', '--reward', './no-such-reward.js', '-o', join(dir, 'o2'), '--max-steps', '1']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/reward module not found/);
    r = train([modelDir, '--data', 'synthetic', '-G', '1']);
    expect(r.status).toBe(2);
    r = train(['--data', 'synthetic']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/no model/);
  });

  it('Ctrl-C stops the step, writes a checkpoint of the last completed step and exits with 130', async () => {
    const out = tempDir();
    const child = spawn(process.execPath, [cli, 'train', modelDir, '--data', 'synthetic:1', '--synthetic-count', '40', '-G', '2', '-P', '2', '-m', '4', '--max-steps', '500', '--lora-r', '2', '--threads', '1', '--sample-steps', '0', '-o', out], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let sent = false;
    const code = await new Promise<number | null>((resolve) => {
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        if (!sent && /train {2}2\/500/.test(stderr)) {
          sent = true;
          child.kill('SIGINT');
        }
      });
      child.on('exit', (c) => resolve(c));
    });
    expect(code, stderr).toBe(130);
    expect(stderr).toMatch(/interrupted: stopping the current step/);
    expect(stderr).toMatch(/newest checkpoint: .*checkpoint-\d+.*--resume/);
    const ckpts = readdirSync(out).filter((f) => /^checkpoint-\d+$/.test(f));
    expect(ckpts).toHaveLength(1);
    expect(existsSync(join(out, ckpts[0], 'trainer_state.json'))).toBe(true);
    expect(readdirSync(out).filter((f) => f.startsWith('.'))).toEqual([]);
  });

  it('Ctrl-C during an overlapped step (shared-base generator) leaves the last checkpoint intact; --resume continues as the uninterrupted run', async () => {
    const dir = tempDir();
    const reward = join(dir, 'hits.mjs');
    writeFileSync(reward, 'export default function hits(_p, _c, extra) { return extra.completionIds.map((ids) => ids.filter((t) => t % 3 === 0).length / ids.length); }\n');
    const args = (out: string, steps: number) => [
      modelDir, '--data', 'synthetic:1', '--synthetic-count', '40', '-G', '4', '-P', '2', '-m', '12', '--lora-r', '2', '--lr', '2e-2',
      '--reward', reward, '--generator', 'shared', '--threads', '1', '--generator-threads', '1', '--gemm', 'builtin',
      '--sample-steps', '0', '--save-steps', '2', '--max-steps', String(steps), '-o', out,
    ];
    const out = join(dir, 'interrupted');
    const child = spawn(process.execPath, [cli, 'train', ...args(out, 500)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let sent = false;
    const code = await new Promise<number | null>((resolve) => {
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        // step 3 is done and step 4's update overlaps step 5's generation on the generator context
        if (!sent && /train {2}3\/500/.test(stderr)) {
          sent = true;
          child.kill('SIGINT');
        }
      });
      child.on('exit', (c) => resolve(c));
    });
    expect(code, stderr).toBe(130);
    expect(stderr).toMatch(/one step off-policy, generation overlaps the update on a shared-base generator context \(1 thread; trainer 1 thread\)/);
    expect(stderr).toMatch(/memory plan: weights .* \(once: the trainer and the generator context share them\)/);
    const steps = readdirSync(out).filter((f) => /^checkpoint-\d+$/.test(f)).map((f) => Number(f.slice(11))).sort((x, y) => x - y);
    const last = steps[steps.length - 1];
    expect(steps[0]).toBe(2); // the periodic checkpoint is untouched
    expect(last).toBeGreaterThanOrEqual(3); // the abort checkpoint of the last completed step
    for (const s of steps) {
      const state = JSON.parse(readFileSync(join(out, `checkpoint-${s}`, 'trainer_state.json'), 'utf8'));
      expect(state.step).toBe(s);
      expect(state.pendingRollout).toBe(true);
      expect(state.rolloutPolicyVersion).toBe(s - 1);
      for (const f of ['adapter_model.safetensors', 'optimizer.safetensors', 'rollout_adapter.safetensors']) expect(existsSync(join(out, `checkpoint-${s}`, f)), f).toBe(true);
    }
    expect(readdirSync(out).filter((f) => f.startsWith('.'))).toEqual([]);

    // resumed to two steps past the checkpoint, it equals a run that was never interrupted
    const total = last + 2;
    const resumed = train([...args(out, total), '--resume']);
    expect(resumed.status, resumed.stderr).toBe(0);
    const full = join(dir, 'full');
    const straight = train(args(full, total));
    expect(straight.status, straight.stderr).toBe(0);
    const strip = (rows: Record<string, unknown>[]) => rows.map((m) => Object.fromEntries(Object.entries(m).filter(([k]) => !k.startsWith('timing/') && k !== 'step_time' && k !== 'tokens_per_second')));
    const a = strip(readMetrics(join(out, 'metrics.jsonl')));
    const b = strip(readMetrics(join(full, 'metrics.jsonl')));
    expect(a.map((m) => m.step)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect(a).toEqual(b);
    expect(b.some((m) => (m.grad_norm as number) > 0)).toBe(true); // the adapter does train
    expect(b.map((m) => m['rollout/policy_version'])).toEqual([0, ...Array.from({ length: total - 1 }, (_, i) => i)]);
    expect(readFileSync(join(out, 'adapter_model.safetensors'))).toEqual(readFileSync(join(full, 'adapter_model.safetensors')));
  });
});
