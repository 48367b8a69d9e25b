// `hayate_bench train` on the CPU at the tiny shape: the forward+backward runs and one whole GRPO step
// (generation, log-prob pass, forward+backward, optimizer), the code path the CUDA run on a lent GPU takes
// at qwen3-0.6b (bench/gpu/validate.sh), in a configuration small enough for a test.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const exe = process.env.HAYATE_BENCH_EXE ?? join(import.meta.dirname, '..', 'build-cmake', 'hayate_bench');
const missing = existsSync(exe) ? '' : `no ${exe} (built by npm install with the addon)`;

function bench(args: string[]) {
  return spawnSync(exe, ['train', ...args], { encoding: 'utf8', timeout: 300_000 });
}

describe('hayate_bench train (CPU, tiny shape)', () => {
  it.skipIf(missing !== '')(`runs forward+backward and a whole GRPO step${missing ? ` (skipped: ${missing})` : ''}`, () => {
    const r = bench(['--shape', 'tiny', '--backend', 'cpu', '--threads', '2', '--seq-lens', '16', '--sequences', '2', '--repeats', '1',
      '--grpo-step', 'on', '--prompts', '2', '--generations', '2', '--prompt-len', '4', '--max-new-tokens', '4', '--micro-batches', '2']);
    expect(r.status, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ bench: 'train', shape: 'tiny', backend: 'cpu', lora_rank: 32, sequences_per_batch: 2, repeats: 1 });
    expect(doc.runs.map((x: { recompute: boolean }) => x.recompute)).toEqual([false, true]);
    for (const run of doc.runs) {
      expect(run).toMatchObject({ seq_len: 16, sequences: 2, tokens: 32, completion_tokens: 24 });
      expect(run.tokens_per_s).toBeGreaterThan(0);
      expect(run.backend_peak_mb).toBeGreaterThanOrEqual(run.resident_mb);
      expect(run.device_used_mb).toBeUndefined();  // CPU: no device figure
    }
    const g = doc.grpo_step;
    expect(g).toMatchObject({ prompts: 2, generations: 2, sequences: 4, prompt_len: 4, max_new_tokens: 4, completion_tokens: 16 });
    expect(g.generation.generated_tokens).toBe(16); // no stop tokens: every completion runs to the limit
    expect(g.generation.prompt_tokens).toBe(8); // each prompt prefilled once for its 2 completions
    expect(g.forward_backward).toMatchObject({ micro_batches: 2, tokens: 32 });
    for (const phase of ['generation', 'prefill', 'decode', 'logprob_pass', 'forward_backward', 'optimizer']) expect(g[phase].seconds).toBeGreaterThanOrEqual(0);
    expect(g.seconds).toBeGreaterThan(0);
    expect(g.optimizer.applied).toBe(true);
    expect(g.optimizer.grad_norm).toBeGreaterThan(0);
    // the sampler's log-probs and the trainer's log-prob pass agree (same f32 arithmetic on the CPU)
    expect(g.logprob_pass.sampler_vs_trainer_logprob_max_abs_diff).toBeLessThan(1e-3);
  });

  it.skipIf(missing !== '')('rejects bad options with exit code 2 and a message naming the flag', () => {
    const cases: [string[], RegExp][] = [
      [['--grpo-step', 'maybe'], /--grpo-step must be on or off/],
      [['--grpo-step', 'on', '--micro-batches', '0'], /--micro-batches must be >= 1/],
      [['--backend', 'tpu'], /--backend must be cpu or cuda/],
      [['--recompute', 'sometimes'], /--recompute must be off, on or both/],
      [['--seq-lens', 'none'], /nothing to run/],
      [['--grpo-step', 'on', '--prompt-len', '400', '--max-new-tokens', '200'], /--prompt-len \+ --max-new-tokens must be <= 512/],
    ];
    for (const [args, msg] of cases) {
      const r = bench(['--shape', 'tiny', ...args]);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(msg);
    }
  });
});

describe('hayate_bench peak', () => {
  it.skipIf(missing !== '')(`measures the FMA / bf16-dot peaks and the read bandwidth this CPU has${missing ? ` (skipped: ${missing})` : ''}`, () => {
    const r = spawnSync(exe, ['peak', '--threads', '1', '--buffer-mb', '64'], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ bench: 'peak', threads: 1, buffer_mb: 64 });
    const rates = [doc.isa.avx512f && doc.f32_fma_avx512, doc.isa.avx2_fma && doc.f32_fma_avx2, doc.isa.avx512_bf16 && doc.bf16_dot_avx512, doc.memory_read].filter(Boolean);
    expect(rates.length).toBeGreaterThan(0);
    for (const x of rates) {
      expect(x.one_thread).toBeGreaterThan(0);
      expect(x.all_threads).toBeGreaterThan(0);
    }
    if (doc.isa.avx512_bf16) expect(doc.bf16_dot_avx512).toBeDefined();
  });
});
