// One batch of GRPO rollouts: G completions for each of the step's prompts from the generator, scored by
// the reward pool, with group advantages. Sampling is reproducible: the G samples of prompt i at step t are
// drawn with the engine's per-sequence seed stream (rolloutSeed(seed, t) + i, j) for j = 0..G-1, so a
// resumed run draws exactly what the uninterrupted run drew.
import { deriveSeed } from '../data/random.js';
import type { Example } from '../data/dataset.js';
import type { Completion, Model } from '../model.js';
import type { RewardPool, RewardScores } from '../rewards/pool.js';
import { groupAdvantages, type GroupAdvantages, type ScaleRewards } from './advantages.js';

export interface RolloutSampling {
  numGenerations: number;
  maxCompletionLength: number;
  temperature: number;
  topP: number;
  topK: number;
  minP: number;
  stop: string[];
  maxBatch?: number;
  kvCacheTokens?: number;
}

export interface Rollout {
  /** 0-based step this batch trains. */
  step: number;
  /** Dataset indices of the prompts. */
  indices: number[];
  examples: Example[];
  promptTokens: number[][];
  /** P * G completions, group by group (prompt 0's G, then prompt 1's...). */
  completions: Completion[];
  scores: RewardScores;
  adv: GroupAdvantages;
  generationSeconds: number;
  rewardSeconds: number;
  generatedTokens: number;
}

/** The base seed of step `step`'s sampling. */
export function rolloutSeed(seed: number, step: number): number {
  return deriveSeed(seed, step, 0x67727030);
}

export interface PendingRollout {
  /** Resolves when generation has finished (rewards may still be running). */
  generated: Promise<unknown>;
  /** The scored rollout. */
  done: Promise<Rollout>;
}

/**
 * Starts the rollout of `step`: the generation request is queued on `generator` before this function
 * returns (so native work queued afterwards on the same model, such as an adapter update, runs after it).
 */
export function startRollout(args: {
  generator: Model;
  pool: RewardPool;
  step: number;
  seed: number;
  indices: number[];
  examples: Example[];
  promptTokens: number[][];
  sampling: RolloutSampling;
  scaleRewards: ScaleRewards;
  signal?: AbortSignal;
}): PendingRollout {
  const { generator, pool, step, indices, examples, promptTokens, sampling: s } = args;
  const G = s.numGenerations;
  const started = performance.now();
  const generation = generator.generate(
    promptTokens.map((tokens) => ({ tokens })),
    {
      n: G,
      maxNewTokens: s.maxCompletionLength,
      temperature: s.temperature,
      topP: s.topP,
      topK: s.topK,
      minP: s.minP,
      stop: s.stop.length > 0 ? s.stop : undefined,
      seed: rolloutSeed(args.seed, step),
      maxBatch: s.maxBatch,
      kvCacheTokens: s.kvCacheTokens,
      signal: args.signal,
      lora: true,
    },
  );
  const done = (async () => {
    const { results } = await generation;
    const generationSeconds = (performance.now() - started) / 1000;
    const completions: Completion[] = [];
    for (const r of results) {
      // the engine returns a prompt's samples in sample order
      if (r.completions.length !== G) throw new Error(`generator returned ${r.completions.length} completions for a prompt, expected ${G}`);
      completions.push(...r.completions);
    }
    const rewardStarted = performance.now();
    const prompts = examples.flatMap((e) => Array.from({ length: G }, () => e.prompt));
    const scores = await pool.score(
      prompts,
      completions.map((c) => c.text),
      {
        answers: examples.flatMap((e) => Array.from({ length: G }, () => e.answer)),
        questions: examples.flatMap((e) => Array.from({ length: G }, () => e.question)),
        completionLengths: completions.map((c) => c.tokens.length),
        completionIds: completions.map((c) => c.tokens),
      },
    );
    const rewardSeconds = (performance.now() - rewardStarted) / 1000;
    const adv = groupAdvantages(scores.total, G, args.scaleRewards);
    return {
      step,
      indices,
      examples,
      promptTokens,
      completions,
      scores,
      adv,
      generationSeconds,
      rewardSeconds,
      generatedTokens: completions.reduce((n, c) => n + c.tokens.length, 0),
    };
  })();
  return { generated: generation, done };
}
