// One batch of GRPO rollouts, in three phases: generation (G completions for each of the step's prompts
// from the generator), scoring (the reward pool) and advantages (group-relative). Sampling is
// reproducible: the G samples of prompt i at step t are drawn with the engine's per-sequence seed stream
// (rolloutSeed(seed, t) + i, j) for j = 0..G-1, so a resumed run draws exactly what the uninterrupted run
// drew.
import { deriveSeed } from '../data/random.js';
import type { Example } from '../data/dataset.js';
import { HayateError } from '../errors.js';
import type { Completion, GenerateResult, Model } from '../model.js';
import type { RewardPool, RewardScores } from '../rewards/pool.js';
import { groupAdvantages, type GroupAdvantages, type ScaleRewards } from './advantages.js';

/** How a rollout samples its completions. */
export interface RolloutSampling {
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
  /** Generation batches drawn for this step (more than 1 with dynamic sampling). */
  genBatches: number;
  /** Groups the update trains on (dynamic sampling: the first promptsPerStep with varied rewards); absent: all. */
  trainGroups?: number[];
  /** Dataset prompts the run had drawn once this step's batches were drawn (its epoch = this / dataset size). */
  promptsDrawn?: number;
}

/** The base seed of step `step`'s sampling; generation batch k > 0 of a step (dynamic sampling) has its own. */
export function rolloutSeed(seed: number, step: number, genBatch = 0): number {
  const base = deriveSeed(seed, step, 0x67727030);
  return genBatch === 0 ? base : deriveSeed(base, genBatch, 0x72656669);
}

export interface PendingRollout {
  /** Resolves when generation has finished (rewards may still be running). */
  generated: Promise<unknown>;
  /** The scored rollout. */
  done: Promise<Rollout>;
}

export interface RolloutRequest {
  generator: Model;
  pool: RewardPool;
  step: number;
  seed: number;
  indices: number[];
  examples: Example[];
  promptTokens: number[][];
  /** Completions per prompt (G). */
  numGenerations: number;
  /** Which generation batch of the step this is (0: the first; dynamic sampling draws more). */
  genBatch?: number;
  /**
   * Position of this request's first prompt in the step's global batch (data parallelism: rank x prompts
   * per rank), so a prompt's samples are seeded by its global position and do not depend on the world size.
   */
  seedOffset?: number;
  sampling: RolloutSampling;
  scaleRewards: ScaleRewards;
  signal?: AbortSignal;
}

/**
 * Starts the rollout of `step`: the generation request is queued on `generator` before this function
 * returns (so native work queued afterwards on the same model, such as an adapter update, runs after it).
 */
export function startRollout(args: RolloutRequest): PendingRollout {
  const started = performance.now();
  const generation = generateCompletions(args);
  const done = (async () => {
    const completions = groupedCompletions(await generation, args.numGenerations);
    const generationSeconds = (performance.now() - started) / 1000;
    const rewardStarted = performance.now();
    const scores = await scoreCompletions(args.pool, args.examples, completions, args.numGenerations);
    const rewardSeconds = (performance.now() - rewardStarted) / 1000;
    const adv = groupAdvantages(scores.total, args.numGenerations, args.scaleRewards);
    return {
      step: args.step,
      indices: args.indices,
      examples: args.examples,
      promptTokens: args.promptTokens,
      completions,
      scores,
      adv,
      generationSeconds,
      rewardSeconds,
      generatedTokens: completions.reduce((n, c) => n + c.tokens.length, 0),
      genBatches: 1,
    };
  })();
  return { generated: generation, done };
}

/** Generation: queues G samples of every prompt on the generator, with the adapter it holds now. */
function generateCompletions(args: RolloutRequest): Promise<GenerateResult> {
  const s = args.sampling;
  return args.generator.generate(
    args.promptTokens.map((tokens) => ({ tokens })),
    {
      n: args.numGenerations,
      maxNewTokens: s.maxCompletionLength,
      temperature: s.temperature,
      topP: s.topP,
      topK: s.topK,
      minP: s.minP,
      stop: s.stop.length > 0 ? s.stop : undefined,
      seed: rolloutSeed(args.seed, args.step, args.genBatch ?? 0) + (args.seedOffset ?? 0),
      maxBatch: s.maxBatch,
      kvCacheTokens: s.kvCacheTokens,
      signal: args.signal,
      lora: true,
    },
  );
}

/** The completions of all prompts, group by group (the engine returns a prompt's samples in sample order). */
function groupedCompletions({ results }: GenerateResult, G: number): Completion[] {
  const completions: Completion[] = [];
  for (const r of results) {
    if (r.completions.length !== G) throw new HayateError('ERR_INTERNAL', `generator returned ${r.completions.length} completions for a prompt, expected ${G}`);
    completions.push(...r.completions);
  }
  return completions;
}

/** Scoring: every reward on every completion, in the reward pool's worker threads. */
function scoreCompletions(pool: RewardPool, examples: readonly Example[], completions: readonly Completion[], G: number): Promise<RewardScores> {
  const perCompletion = <T>(field: (e: Example) => T): T[] => examples.flatMap((e) => Array.from({ length: G }, () => field(e)));
  return pool.score(
    perCompletion((e) => e.prompt),
    completions.map((c) => c.text),
    {
      answers: perCompletion((e) => e.answer),
      questions: perCompletion((e) => e.question),
      completionLengths: completions.map((c) => c.tokens.length),
      completionIds: completions.map((c) => c.tokens),
    },
  );
}
