// The demo's settings: the model it creates, the task, and the SFT / GRPO / evaluation budgets. The
// defaults are tuned (and measured, see README "Demo") to fit a few minutes on 2 CPU cores while leaving
// GRPO a clear, repeatable gain over its SFT starting point; `quick` is a seconds-long smoke run for tests.
import { HayateError } from '../errors.js';
import type { GrpoLossType } from '../train/grpo-options.js';

export interface DemoModelConfig {
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  /** Standard deviation of the random projection weights. */
  std: number;
  /**
   * Standard deviation of the (frozen, tied) embedding. LoRA cannot change it, and tied logits are bounded by
   * about embeddingStd x hidden, so it must be large enough for confident predictions.
   */
  embeddingStd: number;
}

export interface DemoConfig {
  /** Seeds everything: model weights, data, adapter init, data order, sampling. */
  seed: number;
  /** CPU threads (0: one per hardware thread). */
  threads: number;
  model: DemoModelConfig;
  task: {
    /** Synthetic difficulty level(s) (see data/synthetic.ts). */
    level: number | number[];
    /** Distinct training problems (SFT targets and GRPO prompts). */
    trainProblems: number;
    /** Held-out problems (the test split: never trained on). */
    evalProblems: number;
    /** Generation budget per completion (SFT targets are far shorter). */
    maxNewTokens: number;
  };
  sft: {
    /** Updates to run; with stopAtAccuracy, the most to run. */
    steps: number;
    /**
     * Stop SFT once greedy accuracy on a probe of training problems reaches this (checked every probeEvery
     * updates): GRPO then starts from a partly trained model, whatever the seed's learning speed. null: run
     * all `steps`.
     */
    stopAtAccuracy: number | null;
    probeEvery: number;
    /** Training problems in the probe (never the held-out ones). */
    probeProblems: number;
    /** Sequences per update (word problems and calculation drills, mixed). */
    batchSize: number;
    learningRate: number;
    /** Calculation drills ("13 + 7 =" -> " 20") added per word problem. */
    drillsPerProblem: number;
    loraRank: number;
    loraAlpha: number;
  };
  grpo: {
    steps: number;
    promptsPerStep: number;
    numGenerations: number;
    learningRate: number;
    temperature: number;
    lossType: GrpoLossType;
    beta: number;
  };
  eval: {
    /** Samples per problem at the GRPO sampling temperature (pass@1 averaged over them), besides greedy. */
    samples: number;
  };
}

export const DEMO_DEFAULTS: DemoConfig = {
  seed: 1,
  threads: 0,
  model: { hidden: 128, intermediate: 384, layers: 4, heads: 4, std: 0.1, embeddingStd: 0.2 },
  task: { level: 1, trainProblems: 4000, evalProblems: 200, maxNewTokens: 24 },
  sft: { steps: 400, stopAtAccuracy: 0.35, probeEvery: 20, probeProblems: 100, batchSize: 64, learningRate: 3e-3, drillsPerProblem: 3, loraRank: 64, loraAlpha: 64 },
  grpo: { steps: 50, promptsPerStep: 32, numGenerations: 8, learningRate: 5e-4, temperature: 1.0, lossType: 'dapo', beta: 0 },
  eval: { samples: 4 },
};

/** A smoke run of the whole pipeline in seconds (tests): a 1-layer model, a few steps of each phase. */
export const DEMO_QUICK: DemoConfig = {
  seed: 1,
  threads: 0,
  model: { hidden: 32, intermediate: 64, layers: 1, heads: 2, std: 0.1, embeddingStd: 0.3 },
  task: { level: 1, trainProblems: 64, evalProblems: 8, maxNewTokens: 16 },
  sft: { steps: 4, stopAtAccuracy: 0, probeEvery: 2, probeProblems: 4, batchSize: 8, learningRate: 3e-3, drillsPerProblem: 1, loraRank: 8, loraAlpha: 8 },
  grpo: { steps: 2, promptsPerStep: 2, numGenerations: 4, learningRate: 5e-4, temperature: 1.0, lossType: 'dapo', beta: 0 },
  eval: { samples: 2 },
};

export interface DemoOverrides {
  seed?: number;
  threads?: number;
  sftSteps?: number;
  grpoSteps?: number;
  evalProblems?: number;
}

/** The defaults (or the quick preset) with the command-line overrides applied, validated. */
export function resolveDemoConfig(options: { quick?: boolean } & DemoOverrides = {}): DemoConfig {
  const base = options.quick ? DEMO_QUICK : DEMO_DEFAULTS;
  const c: DemoConfig = structuredClone(base);
  if (options.seed !== undefined) c.seed = options.seed;
  if (options.threads !== undefined) c.threads = options.threads;
  if (options.sftSteps !== undefined) {
    c.sft.steps = options.sftSteps;
    c.sft.stopAtAccuracy = null;
  }
  if (options.grpoSteps !== undefined) c.grpo.steps = options.grpoSteps;
  if (options.evalProblems !== undefined) c.task.evalProblems = options.evalProblems;
  const int = (name: string, v: number, min: number) => {
    if (!Number.isInteger(v) || v < min) throw new HayateError('ERR_INVALID_ARGUMENT', `demo: ${name} must be an integer >= ${min}, got ${v}`);
  };
  int('seed', c.seed, 0);
  int('threads', c.threads, 0);
  int('SFT steps', c.sft.steps, 1);
  int('GRPO steps', c.grpo.steps, 1);
  int('eval problems', c.task.evalProblems, 1);
  return c;
}
