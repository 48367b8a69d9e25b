// The demo pipeline, end to end on the library's public pieces:
//   1. init-model   a random-weight Qwen3-shaped model with the tiny tokenizer, written to <out>/model
//   2. SFT          SftTrainer: LoRA (high rank, every projection) on the frozen random base, taught the
//                   worked format and the arithmetic; stopped while still partly trained
//   3. eval         evaluate(): held-out test-split problems, greedy and sampled
//   4. GRPO         GrpoTrainer from the SFT adapter: rewards = correctness of \boxed{N} + format
//   5. eval         the same problems, the same seeds; GRPO vs SFT compared problem by problem (paired
//                   bootstrap intervals, McNemar's exact test on the greedy answers: ts/eval/compare.ts)
// Outputs under <out>: model/, sft/ (adapter + metrics.jsonl), grpo/ (adapter, checkpoint, metrics.jsonl,
// samples.jsonl, reward_curve.svg), eval-sft.jsonl, eval-grpo.jsonl (one record per sample), summary.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Example } from '../data/dataset.js';
import { saveAdapter } from '../adapter.js';
import type { BootstrapInterval } from '../eval/bootstrap.js';
import { compareEvaluations, type EvalComparison } from '../eval/compare.js';
import { evaluate, type EvalResult, type EvalSummary } from '../eval/evaluate.js';
import { writeJsonlAtomic } from '../eval/records.js';
import { initModel } from '../init-model.js';
import { MetricsWriter } from '../metrics/writer.js';
import { Model } from '../model.js';
import { isCorrect } from '../rewards/extract.js';
import { GrpoTrainer } from '../train/grpo-trainer.js';
import { SftTrainer } from '../train/sft-trainer.js';
import type { DemoConfig } from './config.js';
import { buildDemoData } from './task.js';

export type DemoPhase = 'init' | 'sft' | 'eval-sft' | 'grpo' | 'eval-grpo';

export interface DemoProgress {
  phase: DemoPhase;
  done: number;
  total: number;
  /** A few values to show (loss, reward, accuracy so far). */
  values?: Record<string, number>;
}

export interface DemoAccuracy {
  /** Greedy decoding: one completion per problem. `interval`: bootstrap over problems (summary.intervals.accuracy). */
  greedy: { accuracy: number; correct: number; total: number; interval: BootstrapInterval };
  /** Sampled at the GRPO temperature, `samples` per problem: mean accuracy over all samples. */
  sampled: { accuracy: number; correct: number; total: number; temperature: number; samplesPerProblem: number; interval: BootstrapInterval };
  seconds: number;
}

export interface DemoResult {
  config: DemoConfig;
  outDir: string;
  /** Wall time of each phase, seconds. */
  seconds: { init: number; sft: number; evalSft: number; grpo: number; evalGrpo: number; total: number };
  afterSft: DemoAccuracy;
  afterGrpo: DemoAccuracy;
  /**
   * After GRPO vs after SFT on the same problems and seeds: paired bootstrap intervals of each difference
   * and McNemar's exact test on first-sample correctness (for `greedy`: the greedy answers).
   */
  gain: { greedy: EvalComparison; sampled: EvalComparison };
  /** Model parameters (random, frozen) and trainable LoRA parameters. */
  parameters: { base: number; lora: number };
  sft: {
    steps: number;
    maxSteps: number;
    /** Stopped by the probe (stopAtAccuracy) before maxSteps. */
    stoppedEarly: boolean;
    finalLoss: number;
    /** Greedy accuracy on the training-problem probe, by update. */
    probes: { step: number; accuracy: number }[];
    /** SFT sequences available (word problems + drills). */
    sequences: number;
  };
  grpo: { steps: number; firstReward: number; lastReward: number; meanRewardFirst10: number; meanRewardLast10: number };
  files: string[];
}

export interface RunDemoOptions {
  config: DemoConfig;
  outDir: string;
  signal?: AbortSignal;
  onProgress?: (p: DemoProgress) => void;
}

/** Greedy accuracy on (training) problems, one generate call. */
async function probeAccuracy(model: Model, examples: readonly Example[], maxNewTokens: number): Promise<number> {
  const { results } = await model.generate(
    examples.map((e) => e.prompt as string),
    { temperature: 0, maxNewTokens },
  );
  return results.filter((r, i) => isCorrect(r.completions[0].text, examples[i].answer)).length / examples.length;
}

function seconds(since: number): number {
  return (performance.now() - since) / 1000;
}

function mean(xs: readonly number[]): number {
  return xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

interface Measured {
  accuracy: DemoAccuracy;
  /** The evaluations themselves, for the paired comparison. */
  greedy: EvalResult;
  sampled: EvalResult;
}

async function measure(model: Model, examples: readonly Example[], c: DemoConfig, phase: DemoPhase, recordsPath: string, signal: AbortSignal | undefined, onProgress: RunDemoOptions['onProgress']): Promise<Measured> {
  const started = performance.now();
  const common = { maxNewTokens: c.task.maxNewTokens, stopAtBoxed: false, batchSize: examples.length, signal };
  const total = examples.length * (1 + c.eval.samples);
  onProgress?.({ phase, done: 0, total });
  const greedy = await evaluate(model, examples, { ...common, n: 1, temperature: 0, seed: c.seed });
  onProgress?.({ phase, done: examples.length, total, values: { greedy: greedy.summary.accuracy } });
  const sampled = await evaluate(model, examples, { ...common, n: c.eval.samples, k: 1, temperature: c.grpo.temperature, seed: c.seed + 7 });
  onProgress?.({ phase, done: total, total, values: { greedy: greedy.summary.accuracy, sampled: sampled.summary.accuracy } });
  writeJsonlAtomic(recordsPath, [
    ...greedy.records.map((r) => ({ decoding: 'greedy', ...r })),
    ...sampled.records.map((r) => ({ decoding: `T=${c.grpo.temperature}`, ...r })),
  ]);
  const count = (s: EvalSummary) => Math.round(s.accuracy * s.examples * s.n);
  const accuracy: DemoAccuracy = {
    greedy: { accuracy: greedy.summary.accuracy, correct: count(greedy.summary), total: examples.length, interval: greedy.summary.intervals.accuracy },
    sampled: {
      accuracy: sampled.summary.accuracy,
      correct: count(sampled.summary),
      total: examples.length * c.eval.samples,
      temperature: c.grpo.temperature,
      samplesPerProblem: c.eval.samples,
      interval: sampled.summary.intervals.accuracy,
    },
    seconds: seconds(started),
  };
  return { accuracy, greedy, sampled };
}

/** Runs the whole demo; the model and every output are written under outDir (replaced if present). */
export async function runDemo(options: RunDemoOptions): Promise<DemoResult> {
  const { config: c, signal, onProgress } = options;
  const outDir = resolve(options.outDir);
  const t0 = performance.now();
  mkdirSync(outDir, { recursive: true });
  const modelDir = join(outDir, 'model');
  const sftDir = join(outDir, 'sft');
  const grpoDir = join(outDir, 'grpo');

  // 1. A random-weight model, from scratch.
  onProgress?.({ phase: 'init', done: 0, total: 1 });
  await initModel(modelDir, {
    shape: 'tiny',
    tokenizer: 'tiny',
    hidden: c.model.hidden,
    intermediate: c.model.intermediate,
    layers: c.model.layers,
    heads: c.model.heads,
    kvHeads: c.model.heads,
    std: c.model.std,
    embeddingStd: c.model.embeddingStd,
    seed: c.seed,
    overwrite: true,
  });
  // The built-in GEMM, whatever BLAS the build has: its fixed reduction order makes the demo's numbers the
  // same on every machine with the same SIMD level and any thread count (a BLAS picks its kernel per CPU
  // model, and GRPO's sampling turns last-bit differences into different runs). At this model size it
  // costs little speed. See docs/architecture.md, "Reproducibility".
  const model = await Model.load(modelDir, { threads: c.threads, gemm: 'builtin', signal });
  const data = buildDemoData({ seed: c.seed, level: c.task.level, trainProblems: c.task.trainProblems, evalProblems: c.task.evalProblems, drillsPerProblem: c.sft.drillsPerProblem });
  onProgress?.({ phase: 'init', done: 1, total: 1 });
  const tInit = seconds(t0);

  try {
    // 2. SFT, stopped early once a probe of training problems is solved often enough.
    const t1 = performance.now();
    mkdirSync(sftDir, { recursive: true });
    const sftMetrics = new MetricsWriter(join(sftDir, 'metrics.jsonl'));
    const sft = new SftTrainer({
      model,
      data: data.sft,
      lora: { rank: c.sft.loraRank, alpha: c.sft.loraAlpha, seed: c.seed },
      learningRate: c.sft.learningRate,
      schedule: { type: 'constant', warmupSteps: Math.min(10, Math.floor(c.sft.steps / 10)) },
      batchSize: c.sft.batchSize,
      maxSteps: c.sft.steps,
      seed: c.seed,
    });
    const probe = data.grpo.slice(0, c.sft.probeProblems);
    const probes: { step: number; accuracy: number }[] = [];
    const pendingProbes: Promise<void>[] = [];
    const stopper = new AbortController();
    let stoppedAt: number | undefined;
    let sftLoss = NaN;
    sft.on('step', (e) => {
      sftLoss = e.loss;
      sftMetrics.write({ step: e.step, loss: e.loss, learning_rate: e.learningRate, grad_norm: e.gradNorm, tokens: e.tokens, 'timing/step_s': e.seconds });
      onProgress?.({ phase: 'sft', done: e.step, total: e.totalSteps, values: { loss: e.loss, ...(probes.length > 0 ? { probe: probes[probes.length - 1].accuracy } : {}) } });
      const target = c.sft.stopAtAccuracy;
      if (target === null || e.step % c.sft.probeEvery !== 0 || e.step >= e.totalSteps || stoppedAt !== undefined) return;
      // Queued on the model now, so it runs before the next update: the decision is made on this step's adapter.
      pendingProbes.push(
        probeAccuracy(model, probe, c.task.maxNewTokens).then((accuracy) => {
          probes.push({ step: e.step, accuracy });
          if (accuracy >= target && stoppedAt === undefined) {
            stoppedAt = e.step;
            stopper.abort();
          }
        }),
      );
    });
    onProgress?.({ phase: 'sft', done: 0, total: c.sft.steps });
    let sftSteps = c.sft.steps;
    try {
      await sft.train({ signal: signal ? AbortSignal.any([signal, stopper.signal]) : stopper.signal });
    } catch (err) {
      if (stoppedAt === undefined || signal?.aborted) throw err;
      sftSteps = stoppedAt; // stopped by the probe: the adapters hold exactly `stoppedAt` updates
    } finally {
      sftMetrics.close();
    }
    await Promise.all(pendingProbes);
    await saveAdapter(model, sftDir);
    const tSft = seconds(t1);
    const loraParameters = (model.lora?.modules ?? []).reduce((n, m) => n + model.lora!.rank * (m.in + m.out), 0);

    // 3. Held-out accuracy after SFT.
    const sftEval = await measure(model, data.eval, c, 'eval-sft', join(outDir, 'eval-sft.jsonl'), signal, onProgress);
    const afterSft = sftEval.accuracy;

    // 4. GRPO from the SFT adapter.
    const t3 = performance.now();
    const grpo = new GrpoTrainer({
      model,
      dataset: data.grpo,
      learningRate: c.grpo.learningRate,
      promptsPerStep: c.grpo.promptsPerStep,
      numGenerations: c.grpo.numGenerations,
      maxCompletionLength: c.task.maxNewTokens,
      temperature: c.grpo.temperature,
      lossType: c.grpo.lossType,
      beta: c.grpo.beta,
      filterZeroStdGroups: true,
      maxSteps: c.grpo.steps,
      seed: c.seed,
      sync: true,
      outputDir: grpoDir,
      sampleSteps: 10,
      samplesPerLog: 4,
    });
    grpo.on('step', (e) => {
      onProgress?.({ phase: 'grpo', done: e.step, total: e.totalSteps, values: { reward: Number(e.metrics.reward) } });
    });
    onProgress?.({ phase: 'grpo', done: 0, total: c.grpo.steps });
    const grpoResult = await grpo.train({ signal });
    const tGrpo = seconds(t3);

    // 5. Held-out accuracy after GRPO.
    const grpoEval = await measure(model, data.eval, c, 'eval-grpo', join(outDir, 'eval-grpo.jsonl'), signal, onProgress);
    const afterGrpo = grpoEval.accuracy;
    const gain = { greedy: compareEvaluations(sftEval.greedy, grpoEval.greedy), sampled: compareEvaluations(sftEval.sampled, grpoEval.sampled) };

    const rewards = grpoResult.metrics.map((m) => Number(m.reward));
    const result: DemoResult = {
      config: c,
      outDir,
      seconds: { init: tInit, sft: tSft, evalSft: afterSft.seconds, grpo: tGrpo, evalGrpo: afterGrpo.seconds, total: seconds(t0) },
      afterSft,
      afterGrpo,
      gain,
      parameters: { base: model.info.parameters, lora: loraParameters },
      sft: { steps: sftSteps, maxSteps: c.sft.steps, stoppedEarly: stoppedAt !== undefined, finalLoss: sftLoss, probes, sequences: data.sft.length },
      grpo: {
        steps: grpoResult.steps,
        firstReward: rewards[0],
        lastReward: rewards[rewards.length - 1],
        meanRewardFirst10: mean(rewards.slice(0, 10)),
        meanRewardLast10: mean(rewards.slice(-10)),
      },
      files: [
        'model/',
        'sft/adapter_model.safetensors',
        'sft/metrics.jsonl',
        'eval-sft.jsonl',
        'grpo/adapter_model.safetensors',
        'grpo/metrics.jsonl',
        'grpo/samples.jsonl',
        'grpo/reward_curve.svg',
        `grpo/checkpoint-${grpoResult.steps}/`,
        'eval-grpo.jsonl',
        'summary.json',
      ],
    };
    writeFileSync(join(outDir, 'summary.json'), `${JSON.stringify(result, null, 2)}\n`);
    return result;
  } finally {
    await model.dispose();
  }
}
