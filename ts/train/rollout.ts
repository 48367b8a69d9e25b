// One batch of GRPO rollouts, in three phases: generation (G completions for each of the step's prompts
// from the generator), scoring (the reward pool) and advantages (group-relative). Sampling is
// reproducible: the G samples of prompt i at step t are drawn with the engine's per-sequence seed stream
// (rolloutSeed(seed, t) + i, j) for j = 0..G-1, so a resumed run draws exactly what the uninterrupted run
// drew.
import { deriveSeed } from '../data/random.js';
import type { Example } from '../data/dataset.js';
import { HayateError } from '../errors.js';
import type { Completion, GenerateResult, Model, Turn } from '../model.js';
import type { RewardPool, RewardScores } from '../rewards/pool.js';
import { mean, std } from '../metrics/stats.js';
import { groupAdvantages, type GroupAdvantages, type ScaleRewards } from './advantages.js';
import { MultiTurnBatch, type Episode, type MultiTurnConfig } from './multi-turn.js';

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
  /** Multi-turn rollouts: each completion's episode (tool calls, failures, turns, tool time, environment reward). */
  episodes?: Episode[];
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
  /** Tools and/or an environment: completions run over several turns (multi-turn.ts). */
  multiTurn?: MultiTurnConfig & { environmentWeight: number };
}

/**
 * Starts the rollout of `step`: the generation request is queued on `generator` before this function
 * returns (so native work queued afterwards on the same model, such as an adapter update, runs after it).
 */
export function startRollout(args: RolloutRequest): PendingRollout {
  const started = performance.now();
  const turns = args.multiTurn ? new MultiTurnBatch(args.generator, args.multiTurn, args.examples, args.numGenerations, args.sampling.maxCompletionLength) : undefined;
  // multi-turn: the prompts show the tools (or start from the environment's conversation)
  const promptTokens = turns ? args.examples.map((_, i) => turns.promptTokens(i)) : args.promptTokens;
  const generation = generateCompletions({ ...args, promptTokens }, turns);
  const done = (async () => {
    const completions = groupedCompletions(await generation, args.numGenerations);
    // the engine counts model turns (also those that ended at the token budget, with no answer asked)
    if (turns) completions.forEach((c, i) => (turns.episodes[i].turns = c.turns ?? turns.episodes[i].turns));
    const generationSeconds = (performance.now() - started) / 1000;
    const rewardStarted = performance.now();
    let scores = await scoreCompletions(args.pool, args.examples, completions, args.numGenerations, turns, args.sampling.stop);
    if (turns && args.multiTurn?.environment) scores = withReward(scores, 'environment', turns.episodes.map((e) => e.environmentReward), args.multiTurn.environmentWeight);
    if (turns) scores.warnings.push(...turns.warnings.map((message) => ({ reward: 'environment', kind: 'error' as const, message, batchSize: 1 })));
    const rewardSeconds = (performance.now() - rewardStarted) / 1000;
    const adv = groupAdvantages(scores.total, args.numGenerations, args.scaleRewards);
    const rollout: Rollout = {
      step: args.step,
      indices: args.indices,
      examples: args.examples,
      promptTokens,
      completions,
      scores,
      adv,
      generationSeconds,
      rewardSeconds,
      generatedTokens: completions.reduce((n, c) => n + modelTokenCount(c), 0),
      genBatches: 1,
    };
    if (turns) rollout.episodes = turns.episodes;
    return rollout;
  })();
  return { generated: generation, done };
}

/** A multi-turn completion's mask: 1 for each token the model generated, 0 for appended context. */
export function modelTokenMask(c: Completion): ArrayLike<number> | undefined {
  return c.modelTokenMask;
}

/** The tokens the model generated, in order (a multi-turn completion's appended context left out). */
export function modelTokens(c: Completion): number[] {
  const mask = modelTokenMask(c);
  return mask ? c.tokens.filter((_, i) => mask[i]) : c.tokens;
}

/** Tokens the model generated in a completion (multi-turn completions also hold appended context tokens). */
export function modelTokenCount(c: Completion): number {
  const mask = modelTokenMask(c);
  if (!mask) return c.tokens.length;
  let n = 0;
  for (let i = 0; i < mask.length; i++) n += mask[i] ? 1 : 0;
  return n;
}

/** `scores` with one more weighted reward (the environment's). */
function withReward(scores: RewardScores, name: string, values: number[], weight: number): RewardScores {
  const total = scores.total.map((t, i) => t + weight * values[i]);
  const metrics = { ...scores.metrics, [`rewards/${name}/mean`]: mean(values), [`rewards/${name}/std`]: values.length > 1 ? std(values) : 0, reward: mean(total) };
  return { ...scores, names: [...scores.names, name], weights: [...scores.weights, weight], values: { ...scores.values, [name]: values }, total, metrics };
}

/** Generation: queues G samples of every prompt on the generator, with the adapter it holds now. */
function generateCompletions(args: RolloutRequest, turns?: MultiTurnBatch): Promise<GenerateResult> {
  const s = args.sampling;
  const stop = [...s.stop, ...(turns?.stops() ?? [])];
  return args.generator.generate(
    args.promptTokens.map((tokens) => ({ tokens })),
    {
      n: args.numGenerations,
      maxNewTokens: s.maxCompletionLength,
      temperature: s.temperature,
      topP: s.topP,
      topK: s.topK,
      minP: s.minP,
      stop: stop.length > 0 ? stop : undefined,
      seed: rolloutSeed(args.seed, args.step, args.genBatch ?? 0) + (args.seedOffset ?? 0),
      maxBatch: s.maxBatch,
      kvCacheTokens: s.kvCacheTokens,
      signal: args.signal,
      lora: true,
      ...(turns ? { onTurn: (turn: Turn) => turns.onTurn(turn) } : {}),
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
// Multi-turn: rewards score the model's last turn (its answer), never the tool results before it, and
// count its own tokens; the whole conversation goes along as extra.transcripts.
function scoreCompletions(
  pool: RewardPool,
  examples: readonly Example[],
  completions: readonly Completion[],
  G: number,
  turns: MultiTurnBatch | undefined,
  stops: readonly string[],
): Promise<RewardScores> {
  const perCompletion = <T>(field: (e: Example) => T): T[] => examples.flatMap((e) => Array.from({ length: G }, () => field(e)));
  return pool.score(
    perCompletion((e) => e.prompt),
    completions.map((c) => (turns ? turns.answerText(c, stops) : c.text)),
    {
      answers: perCompletion((e) => e.answer),
      questions: perCompletion((e) => e.question),
      completionLengths: completions.map(modelTokenCount),
      completionIds: completions.map(modelTokens),
      ...(turns ? { transcripts: completions.map((c) => c.text) } : {}),
    },
  );
}
