// The GRPO algorithm options (GSPO, CISPO, dual-clip, KL estimators, rollout correction, entropy masking,
// dynamic sampling): their defaults and validation at construction, each one training on a tiny random
// model with its metrics, TRL GRPOConfig keys through `hayate train --config`, and dynamic sampling keeping
// full batches where plain filtering shrinks them. The loss formulas and their gradients are checked in
// C++ against finite differences (tests/native/test_loss.cpp, test_train_graph.cpp).
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { syntheticExamples } from '../ts/data/synthetic.js';
import type { Example } from '../ts/data/dataset.js';
import { readMetrics, type MetricsRecord } from '../ts/metrics/writer.js';
import { Model } from '../ts/model.js';
import type { RewardFunction } from '../ts/rewards/types.js';
import { GrpoTrainer } from '../ts/train/grpo-trainer.js';
import { resolveGrpoOptions, resolveRolloutCorrection, type GrpoTrainerOptions } from '../ts/train/grpo-options.js';
import { cleanupTempDirs, makeModel, tempDir } from './helpers.js';

const cli = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
let modelDir: string;
let data: Example[];

beforeAll(async () => {
  modelDir = await makeModel({ arch: 'qwen3' });
  data = syntheticExamples({ count: 40, seed: 2, level: 1 });
});
afterAll(cleanupTempDirs);

/** A stand-in for a loaded model: option resolution only reads `info.backend`. */
function fakeModel(backend: string): Model {
  return { info: { backend } } as unknown as Model;
}

function resolve(extra: Partial<GrpoTrainerOptions>) {
  return resolveGrpoOptions({ model: fakeModel('cpu'), dataset: data, ...extra });
}

/** Reward: 1 when the completion text has an odd length. Varied within most groups of G = 2, not all. */
const parity: RewardFunction = function parity(_prompts, completions) {
  return completions.map((c) => c.length % 2);
};

describe('GRPO algorithm options', () => {
  it("default to TRL's current ones: dapo, token ratios, k3, no dual-clip, every token, no refill, 512 tokens", () => {
    const c = resolve({});
    expect(c.lossType).toBe('dapo');
    expect(c.importanceSamplingLevel).toBe('token');
    expect(c.klEstimator).toBe('k3');
    expect(c.beta).toBe(0);
    expect([c.epsilon, c.epsilonHigh]).toEqual([0.2, 0.2]);
    expect(c.clipRatioC).toBe(0);
    expect(c.topEntropyQuantile).toBe(1);
    expect(c.maxNumGenBatches).toBe(1);
    expect(c.scaleRewards).toBe('group');
    expect(c.maskTruncatedCompletions).toBe(false);
    expect(c.sampling.maxCompletionLength).toBe(512);
    expect(c.rolloutCorrection).toBe('none'); // CPU: sampler and trainer compute the same numbers
  });

  it('GSPO and cispo bring their own clip defaults; explicit values win', () => {
    expect(resolve({ importanceSamplingLevel: 'sequence' })).toMatchObject({ epsilon: 3e-4, epsilonHigh: 4e-4 });
    expect(resolve({ importanceSamplingLevel: 'sequence', epsilon: 0.01 })).toMatchObject({ epsilon: 0.01, epsilonHigh: 0.01 });
    expect(resolve({ lossType: 'cispo' })).toMatchObject({ epsilon: 0.2, epsilonHigh: 5 });
    expect(resolve({ lossType: 'cispo', epsilonHigh: 4 })).toMatchObject({ epsilonHigh: 4 });
    expect(resolve({ epsilon: 0.2, epsilonHigh: 0.28, clipRatioC: 3 })).toMatchObject({ epsilonHigh: 0.28, clipRatioC: 3 });
  });

  it('bad combinations fail at construction with one clear error', () => {
    const bad: [Partial<GrpoTrainerOptions>, RegExp][] = [
      [{ lossType: 'cispo', clipRatioC: 3 }, /cispo has no ratio clip/],
      [{ clipRatioC: 1.1 }, /clipRatioC must be >= 1 \+ epsilonHigh \(1\.2\)/],
      [{ clipRatioC: -1 }, /clipRatioC/],
      [{ topEntropyQuantile: 0 }, /topEntropyQuantile/],
      [{ topEntropyQuantile: 1.5 }, /topEntropyQuantile/],
      [{ maxNumGenBatches: 0 }, /maxNumGenBatches/],
      [{ maxNumGenBatches: 1.5 }, /maxNumGenBatches/],
      [{ maxNumGenBatches: 3 }, /set filterZeroStdGroups too/],
      [{ rolloutCorrectionMin: 2, rolloutCorrectionMax: 1 }, /rolloutCorrectionMax \(1\) must be greater/],
      [{ rolloutCorrectionMode: 'sequence' as never }, /rolloutCorrectionMode must be one of/],
      [{ rolloutCorrection: 'yes' as never }, /rolloutCorrection must be true, false or 'auto'/],
      [{ importanceSamplingLevel: 'batch' as never }, /importanceSamplingLevel/],
      [{ klEstimator: 'k4' as never }, /klEstimator must be one of k1, k2, k3/],
      [{ lossType: 'ppo' as never }, /lossType must be one of grpo, bnpo, dapo, dr_grpo, cispo/],
    ];
    for (const [options, message] of bad) expect(() => new GrpoTrainer({ model: fakeModel('cpu'), dataset: data, ...options }), JSON.stringify(options)).toThrow(message);
  });

  it("rollout correction 'auto' is on where the sampler's numbers differ from the trainer's", () => {
    const cpu = fakeModel('cpu'), cuda = fakeModel('cuda');
    expect(resolveRolloutCorrection('auto', 'sequence_mask', cpu, undefined)).toBe('none');
    expect(resolveRolloutCorrection('auto', 'sequence_mask', cpu, fakeModel('cpu'))).toBe('none');
    expect(resolveRolloutCorrection('auto', 'sequence_mask', cuda, undefined)).toBe('sequence_mask');
    expect(resolveRolloutCorrection('auto', 'token_mask', cpu, cuda)).toBe('token_mask');
    expect(resolveRolloutCorrection(true, 'token_truncate', cpu, undefined)).toBe('token_truncate');
    expect(resolveRolloutCorrection(false, 'token_truncate', cuda, undefined)).toBe('none');
  });
});

describe('GRPO algorithm options in training', () => {
  async function run(options: Partial<GrpoTrainerOptions>, out = tempDir()): Promise<MetricsRecord[]> {
    const model = await Model.load(modelDir, { threads: 1 });
    try {
      const trainer = new GrpoTrainer({
        model,
        dataset: data,
        rewards: [parity],
        lora: { rank: 4, alpha: 8 },
        learningRate: 1e-2,
        promptsPerStep: 3,
        numGenerations: 4,
        maxCompletionLength: 6,
        maxSteps: 2,
        seed: 5,
        outputDir: out,
        sampleSteps: 0,
        plot: false,
        log: () => undefined,
        ...options,
      });
      await trainer.train();
      return readMetrics(join(out, 'metrics.jsonl'));
    } finally {
      await model.dispose();
    }
  }

  it("each loss option trains and logs TRL's metrics; on the CPU the sampler's log-probs are the trainer's", async () => {
    const m = await run({
      lossType: 'cispo',
      importanceSamplingLevel: 'sequence',
      beta: 0.05,
      klEstimator: 'k2',
      topEntropyQuantile: 0.5,
      rolloutCorrection: true,
      rolloutCorrectionMode: 'token_truncate',
      rolloutCorrectionMax: 2,
      numIterations: 2,
      sync: true,
    });
    expect(m).toHaveLength(2);
    for (const r of m) {
      for (const key of ['loss', 'grad_norm', 'kl', 'entropy', 'cispo_clip_ratio', 'clip_ratio/low_min', 'clip_ratio/high_max', 'step_time', 'num_tokens', 'epoch'])
        expect(Number.isFinite(r[key] as number), key).toBe(true);
      expect(r.entropy as number).toBeGreaterThan(0);
      expect(r['entropy/kept_ratio'] as number).toBeGreaterThanOrEqual(0.5);
      expect(r['entropy/kept_ratio'] as number).toBeLessThan(0.75);
      expect(r.kl as number).toBeGreaterThanOrEqual(0); // k2 is a square
      // the same f32 arithmetic on one engine: sampler and trainer agree to float rounding, IS weights ~1
      expect(r['sampling/sampling_logp_difference/max'] as number).toBeLessThan(1e-3);
      expect(r['sampling/importance_sampling_ratio/mean'] as number).toBeCloseTo(1, 3);
      for (const key of ['completions/mean_terminated_length', 'completions/min_terminated_length', 'completions/max_terminated_length']) expect(r[key], key).toBeTypeOf('number');
    }
    expect(m[1].num_tokens as number).toBeGreaterThan(m[0].num_tokens as number);

    const dual = await run({ lossType: 'grpo', clipRatioC: 3, beta: 0.02, klEstimator: 'k1' });
    for (const r of dual) {
      expect(r['clip_ratio/dual_mean']).toBeTypeOf('number');
      expect(Number.isFinite(r.loss as number)).toBe(true);
      expect(r['cispo_clip_ratio']).toBeUndefined();
    }
  });

  it('dynamic sampling refills dropped groups: full batches where plain filtering shrinks them; a resumed run repeats it', async () => {
    const opts: Partial<GrpoTrainerOptions> = { numGenerations: 2, promptsPerStep: 4, maxSteps: 3, filterZeroStdGroups: true };
    const plain = await run(opts);
    const shrunk = plain.filter((r) => (r.trained_sequences as number) < 8);
    expect(shrunk.length).toBeGreaterThan(0); // some groups of 2 have equal rewards and are dropped
    for (const r of plain) expect(r['dynamic_sampling/gen_batches']).toBe(1);

    const out = tempDir();
    const refilled = await run({ ...opts, maxNumGenBatches: 6, saveSteps: 1 }, out);
    for (const r of refilled) {
      expect(r.trained_sequences).toBe(8);
      expect(r['dynamic_sampling/groups_kept']).toBe(4);
      expect(r['dynamic_sampling/groups_generated'] as number).toBe(4 * (r['dynamic_sampling/gen_batches'] as number));
    }
    expect(refilled.some((r) => (r['dynamic_sampling/gen_batches'] as number) > 1)).toBe(true);
    // the epoch counts every prompt drawn, refills included
    expect(refilled[2].epoch as number).toBeCloseTo((refilled.reduce((n, r) => n + (r['dynamic_sampling/groups_generated'] as number), 0)) / data.length, 10);

    // resuming from checkpoint-1 draws the same refill batches and samples as the uninterrupted run
    const resumed = await run({ ...opts, maxNumGenBatches: 6, resumeFrom: join(out, 'checkpoint-1') }, out);
    const strip = (r: MetricsRecord) => Object.fromEntries(Object.entries(r).filter(([k]) => !k.startsWith('timing/') && k !== 'step_time' && k !== 'tokens_per_second'));
    expect(resumed.map(strip)).toEqual(refilled.map(strip));
  });
});

describe('hayate train with TRL GRPOConfig keys', () => {
  it('dynamic sampling from the command line: full batches in metrics.jsonl where plain filtering shrinks them', () => {
    const dir = tempDir();
    const reward = join(dir, 'parity.mjs');
    writeFileSync(reward, 'export function parity(prompts, completions) { return completions.map((c) => c.length % 2); }\n');
    const base = [modelDir, '--data', 'synthetic:1', '--synthetic-count', '40', '--reward', `${reward}:parity`, '-G', '2', '-P', '4', '-m', '6', '--max-steps', '3', '--lora-r', '4', '--threads', '1', '--seed', '5', '--filter-zero-std'];
    let r = train([...base, '-o', join(dir, 'plain')]);
    expect(r.status, r.stderr).toBe(0);
    const plain = readMetrics(join(dir, 'plain', 'metrics.jsonl'));
    expect(plain.some((m) => (m.trained_sequences as number) < 8)).toBe(true);
    r = train([...base, '--max-num-gen-batches', '6', '-o', join(dir, 'refill')]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('zero-std groups refilled (up to 6 generation batches)');
    const refilled = readMetrics(join(dir, 'refill', 'metrics.jsonl'));
    expect(refilled).toHaveLength(3);
    for (const m of refilled) {
      expect(m.trained_sequences).toBe(8);
      expect(m['dynamic_sampling/groups_kept']).toBe(4);
    }
  });

  function train(args: string[]) {
    return spawnSync(process.execPath, [cli, 'train', ...args], { encoding: 'utf8' });
  }

  it('loads them unchanged and trains; flags set the same options', () => {
    const dir = tempDir();
    const reward = join(dir, 'parity.mjs');
    writeFileSync(reward, 'export function parity(prompts, completions) { return completions.map((c) => c.length % 2); }\n');
    const config = join(dir, 'grpo.yaml');
    writeFileSync(
      config,
      `dataset: synthetic:1
synthetic_count: 40
num_generations: 2
prompts_per_step: 2
max_completion_length: 4
max_steps: 2
lora_r: 4
lora_alpha: 8
threads: 1
seed: 1
reward_funcs: [${JSON.stringify(`${reward}:parity`)}]
loss_type: cispo
importance_sampling_level: sequence
epsilon_high: 4.0
beta: 0.01
kl_estimator: k1
top_entropy_quantile: 0.2
vllm_importance_sampling_correction: true
vllm_importance_sampling_mode: token_truncate
vllm_importance_sampling_cap: 2.0
filter_zero_std_groups: true
max_num_gen_batches: 3
mask_truncated_completions: false
scale_rewards: group
`,
    );
    let r = train([modelDir, '--config', config, '-o', join(dir, 'a')]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('loss: cispo, sequence (GSPO) ratios capped at 4 (detached); KL k1 x 0.01; rollout correction token_truncate [0, 2]; top 0.2 entropy tokens; zero-std groups refilled (up to 3 generation batches)');
    const m = readMetrics(join(dir, 'a', 'metrics.jsonl'));
    expect(m).toHaveLength(2);
    expect(m[0]['sampling/importance_sampling_ratio/mean']).toBeTypeOf('number');
    expect(m[0]['dynamic_sampling/gen_batches']).toBeTypeOf('number');

    r = train([
      modelDir, '--data', 'synthetic:1', '--synthetic-count', '40', '-G', '2', '-P', '2', '-m', '4', '--max-steps', '1', '--lora-r', '4', '--threads', '1',
      '--loss-type', 'dapo', '--clip-ratio-c', '3', '--epsilon-high', '0.28', '--kl-estimator', 'k2', '--beta', '0.01', '--rollout-correction', 'on',
      '--rollout-correction-mode', 'sequence_mask', '--rollout-correction-min', '0.25', '--rollout-correction-max', '2.5', '--importance-sampling-level', 'token',
      '--top-entropy-quantile', '0.5', '-o', join(dir, 'b'),
    ]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('loss: dapo, token ratios clipped to [0.8, 1.28], dual-clip 3; KL k2 x 0.01; rollout correction sequence_mask [0.25, 2.5]; top 0.5 entropy tokens');
    // a JSON config with the remaining keys (hayate's clip_ratio_c, the correction's lower bound)
    const json = join(dir, 'grpo.json');
    writeFileSync(
      json,
      JSON.stringify({
        dataset: 'synthetic:1', synthetic_count: 40, num_generations: 2, prompts_per_step: 2, max_completion_length: 4, max_steps: 1, lora_r: 4, threads: 1,
        loss_type: 'bnpo', clip_ratio_c: 2, epsilon: 0.1, kl_estimator: 'k3', beta: 0.02, vllm_importance_sampling_correction: 'on',
        vllm_importance_sampling_mode: 'sequence_truncate', vllm_importance_sampling_clip_min: 0.5, vllm_importance_sampling_clip_max: 2,
      }),
    );
    r = train([modelDir, '--config', json, '-o', join(dir, 'j')]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('loss: bnpo, token ratios clipped to [0.9, 1.1], dual-clip 2; KL k3 x 0.02; rollout correction sequence_truncate [0.5, 2]');
    expect(readMetrics(join(dir, 'j', 'metrics.jsonl'))[0]['sampling/importance_sampling_ratio/min'] as number).toBeGreaterThanOrEqual(0.5);

    // TRL's delta is the dual-clip bound; a bad combination is one clear error (usage, exit 2) before any work
    writeFileSync(config, 'dataset: synthetic\ndelta: 1.1\n');
    r = train([modelDir, '--config', config, '-o', join(dir, 'c')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/clipRatioC must be >= 1 \+ epsilonHigh/);
    r = train([modelDir, '--data', 'synthetic', '--max-num-gen-batches', '0', '-o', join(dir, 'd')]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/max_num_gen_batches|max-num-gen-batches/);
  });
});
