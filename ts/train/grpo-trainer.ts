// GrpoTrainer: the GRPO loop. Each step draws `promptsPerStep` prompts (seeded order), samples G completions
// per prompt, scores them with the reward pool, turns rewards into group advantages and runs numIterations
// optimizer updates on the LoRA adapters (gradient accumulation over micro-batches), then logs metrics with
// TRL's names, emits events and writes checkpoints.
//
// Pipelining (one step off-policy, the default): the rollout of step t+1 is started with the adapter as it
// is before update t, then update t runs. What overlaps depends on the engines:
//   - with `generator` (a second Model with the same base weights), generation of step t+1 runs on its own
//     engine while update t runs on the policy's: true parallel native work. The policy's LoRA tensors are
//     copied to the generator before each rollout (a few MB).
//   - without it, both run on the one model, whose engine executes one call at a time: generation of t+1
//     runs first, then update t; what overlaps is the JS-side work (reward scoring in the worker pool,
//     decoding, metrics and checkpoint files) with native work. The results are the same either way.
// `sync: true` generates each batch after the previous update (strict on-policy); nothing overlaps.
//
// Reproducibility: data order comes from BatchSampler(seed), sampling seeds from (seed, step, prompt,
// sample) (see rollout.ts), so a run resumed from checkpoint-<s> trains on the same batches and samples as
// the uninterrupted run. In off-policy mode the checkpoint also holds the adapter the pending batch s+1 is
// sampled with (rollout_adapter.safetensors), so that batch is regenerated exactly.
import { join } from 'node:path';
import { loadAdapter, saveAdapter } from '../adapter.js';
import { BatchSampler, type SamplerState } from '../data/order.js';
import { AbortError, HayateError } from '../errors.js';
import { METRIC } from '../metrics/names.js';
import { plotMetricsFile } from '../metrics/plot.js';
import { MetricsWriter, type MetricsRecord } from '../metrics/writer.js';
import type { LoraTensors, Model } from '../model.js';
import { RewardPool, type RewardWarning } from '../rewards/pool.js';
import { TrainerCore, type TrainSequence } from '../trainer-core.js';
import {
  OPTIMIZER_FILE,
  ROLLOUT_ADAPTER_FILE,
  TRAINER_STATE_FILE,
  latestCheckpoint,
  pruneCheckpoints,
  readJsonFile,
  readLoraTensors,
  writeCheckpointDir,
  writeJsonFile,
  writeLoraTensors,
} from './checkpoint.js';
import { TypedEmitter } from './events.js';
import { resolveGrpoOptions, type GrpoTrainerOptions, type ResolvedGrpoOptions } from './grpo-options.js';
import { truncateJsonlByStep } from './jsonl-log.js';
import { startRollout, type PendingRollout, type Rollout } from './rollout.js';
import { toRewardSpecs } from './reward-specs.js';
import { resolveSchedule } from './schedule.js';

export const GRPO_STATE_FORMAT = 'hayate-grpo-trainer-state';

/** What trainer_state.json of a GRPO checkpoint holds. */
export interface GrpoTrainerState {
  format: typeof GRPO_STATE_FORMAT;
  version: 1;
  /** Steps completed. */
  step: number;
  totalSteps: number;
  /** Optimizer updates applied (numIterations per step, minus skipped ones). */
  updates: number;
  seed: number;
  /** The sampler positioned at the next step's batch. */
  sampler: SamplerState;
  /** Off-policy run: the next batch is sampled with rollout_adapter.safetensors, not the checkpoint's adapter. */
  pendingRollout: boolean;
  datasetSize: number;
  promptsPerStep: number;
  numGenerations: number;
  /** Prompt + completion tokens processed so far (TRL num_tokens). */
  numTokens: number;
  sync: boolean;
  savedAt: string;
}

export interface GrpoStepEvent {
  step: number;
  totalSteps: number;
  /** The metrics line written for this step (TRL names). */
  metrics: MetricsRecord;
  /** Reward failures of this step (each gave 0 to its batch). */
  warnings: RewardWarning[];
}

export interface GrpoSample {
  prompt: string;
  completion: string;
  answer: string;
  /** Weighted total reward. */
  reward: number;
  /** Each reward's value. */
  rewards: Record<string, number>;
  advantage: number;
  tokens: number;
  finishReason: 'stop' | 'length';
}

export interface GrpoSampleEvent {
  step: number;
  samples: GrpoSample[];
}

export interface GrpoCheckpointEvent {
  step: number;
  dir: string;
}

export type GrpoTrainerEvents = {
  step: [GrpoStepEvent];
  sample: [GrpoSampleEvent];
  checkpoint: [GrpoCheckpointEvent];
};

export interface GrpoResult {
  /** Steps completed in total (including those before a resume). */
  steps: number;
  /** The step this run started from (0, or the resumed checkpoint's). */
  startStep: number;
  /** This run's metrics lines. */
  metrics: MetricsRecord[];
  /** The newest checkpoint written. */
  lastCheckpoint?: string;
  seconds: number;
}

function promptText(p: unknown): string {
  if (typeof p === 'string') return p;
  const messages = (p as { messages?: { content: string }[] })?.messages;
  return messages && messages.length > 0 ? messages[messages.length - 1].content : '';
}

function splitEvenly<T>(items: readonly T[], parts: number): T[][] {
  const n = Math.min(parts, items.length);
  const out: T[][] = [];
  let off = 0;
  for (let i = 0; i < n; i++) {
    const size = Math.floor(items.length / n) + (i < items.length % n ? 1 : 0);
    out.push(items.slice(off, off + size));
    off += size;
  }
  return out;
}

function isAbort(err: unknown): boolean {
  return err instanceof AbortError || (err as { code?: string })?.code === 'ERR_CANCELLED' || (err as Error)?.name === 'AbortError';
}

export class GrpoTrainer extends TypedEmitter<GrpoTrainerEvents> {
  readonly config: Readonly<ResolvedGrpoOptions>;
  readonly options: Readonly<GrpoTrainerOptions>;
  private running = false;

  constructor(options: GrpoTrainerOptions) {
    super();
    this.config = resolveGrpoOptions(options);
    this.options = { ...options };
  }

  get totalSteps(): number {
    return this.config.totalSteps;
  }

  /**
   * Trains until totalSteps (resuming first when resumeFrom is set). Rejects with AbortError when `signal`
   * aborts: the adapters hold the last completed step, checkpoints already written stay intact (and with
   * checkpointOnAbort, one is written for that step first).
   */
  async train(options: { signal?: AbortSignal } = {}): Promise<GrpoResult> {
    if (this.running) throw new HayateError('ERR_INVALID_ARGUMENT', 'GrpoTrainer.train is already running');
    this.running = true;
    try {
      return await this.run(options.signal);
    } finally {
      this.running = false;
    }
  }

  private log(message: string): void {
    (this.options.log ?? ((m: string) => process.stderr.write(`hayate: ${m}\n`)))(message);
  }

  private async run(userSignal: AbortSignal | undefined): Promise<GrpoResult> {
    const o = this.options;
    const c = this.config;
    const started = performance.now();
    if (userSignal?.aborted) throw new AbortError('GRPO training was aborted before it started');
    const model: Model = o.model;
    const generator: Model = o.generator ?? model;
    const separate = generator !== model;
    const G = c.numGenerations;
    const total = c.totalSteps;
    const offPolicy = !c.sync;
    const outputDir = o.outputDir;
    // Cancels in-flight work when the run stops for any reason (user abort or an error).
    const stop = new AbortController();
    const signal = stop.signal;
    const forward = () => stop.abort(userSignal?.reason);

    // Resume point.
    let resumeDir: string | undefined;
    if (typeof o.resumeFrom === 'string') resumeDir = o.resumeFrom;
    else if (o.resumeFrom === true) {
      resumeDir = latestCheckpoint(outputDir as string);
      if (!resumeDir) throw new HayateError('ERR_NOT_FOUND', `no checkpoint-<step> directory with ${TRAINER_STATE_FILE} in ${outputDir} to resume from`);
    }
    let state: GrpoTrainerState | undefined;
    if (resumeDir !== undefined) {
      state = readJsonFile<GrpoTrainerState>(join(resumeDir, TRAINER_STATE_FILE), 'trainer state');
      if (state.format !== GRPO_STATE_FORMAT || !Number.isInteger(state.step)) throw new HayateError('ERR_INVALID_ARGUMENT', `${resumeDir}/${TRAINER_STATE_FILE} is not a hayate GRPO trainer state`);
      const mismatch: string[] = [];
      if (state.datasetSize !== o.dataset.length) mismatch.push(`dataset size ${state.datasetSize} -> ${o.dataset.length}`);
      if (state.promptsPerStep !== c.promptsPerStep) mismatch.push(`promptsPerStep ${state.promptsPerStep} -> ${c.promptsPerStep}`);
      if (state.numGenerations !== G) mismatch.push(`numGenerations ${state.numGenerations} -> ${G}`);
      if (state.seed !== c.seed) mismatch.push(`seed ${state.seed} -> ${c.seed}`);
      if (mismatch.length > 0) throw new HayateError('ERR_INVALID_ARGUMENT', `cannot resume from ${resumeDir}: the run changed (${mismatch.join(', ')}); resume with the same data, batch shape and seed`);
    }

    const pool = await RewardPool.create(toRewardSpecs(o.rewards, o.rewardWeights), { timeoutMs: o.rewardTimeoutMs, log: (m) => this.log(`warning: ${m}`) });
    let trainer: TrainerCore | undefined;
    let metricsWriter: MetricsWriter | undefined;
    let samplesWriter: MetricsWriter | undefined;
    let pending: PendingRollout | undefined;
    const runMetrics: MetricsRecord[] = [];
    let lastCheckpoint: string | undefined;
    const startStep = state?.step ?? 0;
    let completed = startStep;
    let numTokens = state?.numTokens ?? 0;
    const samplerStates = new Map<number, SamplerState>();
    const rolloutAdapters = new Map<number, LoraTensors[]>();
    const numTokensAt = new Map<number, number>([[startStep, numTokens]]);
    const sampler = new BatchSampler(o.dataset.length, { batchSize: c.promptsPerStep, seed: c.seed });
    const promptCache = new Map<number, number[]>();
    const sampling = {
      numGenerations: G,
      maxCompletionLength: c.maxCompletionLength,
      temperature: c.temperature,
      topP: c.topP,
      topK: c.topK,
      minP: c.minP,
      stop: c.stop,
      maxBatch: o.maxBatch ?? c.promptsPerStep * G,
      kvCacheTokens: o.kvCacheTokens,
    };

    const launch = (k: number): PendingRollout => {
      samplerStates.set(k, sampler.state());
      const indices = sampler.next();
      const examples = indices.map((i) => o.dataset[i]);
      const promptTokens = indices.map((i) => {
        let t = promptCache.get(i);
        if (!t) promptCache.set(i, (t = model.encodePrompt(o.dataset[i].prompt)));
        return t;
      });
      pending = startRollout({ generator, pool, step: k, seed: c.seed, indices, examples, promptTokens, sampling, scaleRewards: c.scaleRewards, signal });
      pending.done.catch(() => undefined); // awaited later; never an unhandled rejection
      pending.generated.catch(() => undefined);
      return pending;
    };

    const saveCheckpoint = async (s: number): Promise<string> => {
      const t = trainer as TrainerCore;
      const info = model.lora;
      if (!info) throw new HayateError('ERR_INTERNAL', 'the model lost its adapters');
      const pendingRollout = offPolicy && s < total;
      const rolloutAdapter = pendingRollout ? rolloutAdapters.get(s) : undefined;
      const trainerState: GrpoTrainerState = {
        format: GRPO_STATE_FORMAT,
        version: 1,
        step: s,
        totalSteps: total,
        updates: t.stepCount,
        seed: c.seed,
        sampler: samplerStates.get(s) ?? sampler.state(),
        pendingRollout: pendingRollout && rolloutAdapter !== undefined,
        datasetSize: o.dataset.length,
        promptsPerStep: c.promptsPerStep,
        numGenerations: G,
        numTokens: numTokensAt.get(s) ?? numTokens,
        sync: c.sync,
        savedAt: new Date().toISOString(),
      };
      const dir = await writeCheckpointDir(outputDir as string, s, async (tmp) => {
        await saveAdapter(model, tmp);
        await t.saveState(join(tmp, OPTIMIZER_FILE));
        if (rolloutAdapter) writeLoraTensors(join(tmp, ROLLOUT_ADAPTER_FILE), info, rolloutAdapter);
        writeJsonFile(join(tmp, TRAINER_STATE_FILE), trainerState); // last: its presence marks a complete checkpoint
      });
      lastCheckpoint = dir;
      if (o.saveTotalLimit !== undefined) pruneCheckpoints(outputDir as string, o.saveTotalLimit, dir);
      this.safeEmit('checkpoint', { step: s, dir });
      return dir;
    };

    userSignal?.addEventListener('abort', forward, { once: true });
    if (userSignal?.aborted) forward();
    try {
      // The policy's adapters and optimizer.
      const lr = c.learningRate;
      const schedule = resolveSchedule(lr, total * c.numIterations, o.schedule);
      const optimizer = { weightDecay: 0, maxGradNorm: 1, ...o.optimizer, lr };
      if (resumeDir !== undefined) {
        await loadAdapter(model, resumeDir);
        trainer = await TrainerCore.create(model, { optimizer, schedule });
        await trainer.loadState(join(resumeDir, OPTIMIZER_FILE));
        sampler.restore(state!.sampler);
      } else {
        const lora = o.lora ?? (model.lora ? undefined : { rank: 16, alpha: 32 });
        trainer = await TrainerCore.create(model, { lora: lora ? { seed: c.seed, ...lora } : undefined, optimizer, schedule });
      }
      const info = model.lora!;
      if (separate) await generator.attachLora({ rank: info.rank, alpha: info.alpha, rslora: info.rslora, modules: info.modules });

      if (outputDir !== undefined) {
        const metricsPath = join(outputDir, 'metrics.jsonl');
        const samplesPath = join(outputDir, 'samples.jsonl');
        if (state) {
          truncateJsonlByStep(metricsPath, startStep);
          truncateJsonlByStep(samplesPath, startStep);
        }
        metricsWriter = new MetricsWriter(metricsPath, { append: state !== undefined });
        samplesWriter = new MetricsWriter(samplesPath, { append: state !== undefined });
      }
      if (startStep >= total) {
        this.log(`the checkpoint is at step ${startStep}, at or past the run's ${total} steps: nothing to train`);
        return { steps: startStep, startStep, metrics: [], lastCheckpoint: resumeDir, seconds: (performance.now() - started) / 1000 };
      }

      // The first batch: sampled with the checkpoint's rollout adapter when one is pending (off-policy resume).
      const current = await model.loraTensors();
      if (state?.pendingRollout && offPolicy) {
        const prev = readLoraTensors(join(resumeDir as string, ROLLOUT_ADAPTER_FILE), info);
        await generator.setLoraTensors(prev);
        launch(startStep);
        rolloutAdapters.set(startStep, prev);
        if (!separate) await model.setLoraTensors(current); // queued after the generation: it samples with prev
      } else {
        if (separate) await generator.setLoraTensors(current);
        launch(startStep);
        rolloutAdapters.set(startStep, current);
      }

      for (let u = startStep; u < total; u++) {
        const stepStarted = performance.now();
        if (signal.aborted) throw new AbortError('GRPO training was aborted');
        const rollout: Rollout = await (pending as PendingRollout).done;
        pending = undefined;
        if (offPolicy && u + 1 < total) {
          // Start the next batch with the adapter as it is now, before this step's update.
          const tensors = await model.loraTensors();
          if (separate) await generator.setLoraTensors(tensors);
          const next = launch(u + 1);
          rolloutAdapters.set(u + 1, tensors);
          // One engine runs one call at a time: the update waits for that generation (its rewards are scored
          // in the worker pool meanwhile); timing/training_s counts from there.
          if (!separate) await next.generated.catch(() => undefined);
        }
        const trainStarted = performance.now();
        const train = await this.update(trainer, rollout, signal, offPolicy || c.numIterations > 1);
        const trainingSeconds = (performance.now() - trainStarted) / 1000;
        completed = u + 1;
        rolloutAdapters.delete(u);
        samplerStates.delete(u);
        numTokensAt.delete(u);

        // Metrics.
        const comps = rollout.completions;
        const lengths = comps.map((x) => x.tokens.length);
        const promptTokenCount = rollout.promptTokens.reduce((n, p) => n + p.length, 0) * G;
        numTokens += promptTokenCount + rollout.generatedTokens;
        numTokensAt.set(completed, numTokens);
        const m: MetricsRecord = {
          [METRIC.step]: completed,
          [METRIC.epoch]: (completed * c.promptsPerStep) / o.dataset.length,
          [METRIC.reward]: rollout.scores.metrics.reward,
          [METRIC.rewardStd]: rollout.adv.rewardStd,
        };
        for (const name of rollout.scores.names) {
          m[`rewards/${name}/mean`] = rollout.scores.metrics[`rewards/${name}/mean`];
          m[`rewards/${name}/std`] = rollout.scores.metrics[`rewards/${name}/std`];
        }
        Object.assign(m, {
          [METRIC.completionsMeanLength]: lengths.reduce((a, b) => a + b, 0) / lengths.length,
          [METRIC.completionsMinLength]: Math.min(...lengths),
          [METRIC.completionsMaxLength]: Math.max(...lengths),
          [METRIC.completionsClippedRatio]: comps.filter((x) => x.finishReason === 'length').length / comps.length,
          [METRIC.kl]: c.beta > 0 ? train.kl : null,
          [METRIC.clipRatioLowMean]: train.clipLow,
          [METRIC.clipRatioHighMean]: train.clipHigh,
          [METRIC.clipRatioRegionMean]: train.clipRegion,
          [METRIC.fracRewardZeroStd]: rollout.adv.fracZeroStd,
          [METRIC.loss]: train.loss,
          [METRIC.learningRate]: train.lr,
          [METRIC.gradNorm]: train.gradNorm,
          [METRIC.numTokens]: numTokens,
          trained_sequences: train.sequences,
          skipped_updates: train.skipped,
          reward_warnings: rollout.scores.warnings.length,
          [METRIC.generationSeconds]: rollout.generationSeconds,
          [METRIC.rewardSeconds]: rollout.rewardSeconds,
          [METRIC.trainingSeconds]: trainingSeconds,
          'timing/step_s': (performance.now() - stepStarted) / 1000,
          [METRIC.tokensPerSecond]: rollout.generationSeconds > 0 ? rollout.generatedTokens / rollout.generationSeconds : 0,
        });
        metricsWriter?.write(m);
        runMetrics.push(m);
        this.safeEmit('step', { step: completed, totalSteps: total, metrics: m, warnings: rollout.scores.warnings });

        if (c.sampleSteps > 0 && (completed % c.sampleSteps === 0 || completed === 1)) {
          const samples: GrpoSample[] = comps.slice(0, c.samplesPerLog).map((x, i) => ({
            prompt: promptText(rollout.examples[Math.floor(i / G)].prompt),
            completion: x.text,
            answer: rollout.examples[Math.floor(i / G)].answer,
            reward: rollout.scores.total[i],
            rewards: Object.fromEntries(rollout.scores.names.map((n) => [n, rollout.scores.values[n][i]])),
            advantage: rollout.adv.advantages[i],
            tokens: x.tokens.length,
            finishReason: x.finishReason,
          }));
          for (const s of samples) samplesWriter?.write({ step: completed, ...s, rewards: JSON.stringify(s.rewards) });
          this.safeEmit('sample', { step: completed, samples });
        }

        if (outputDir !== undefined && ((c.saveSteps > 0 && completed % c.saveSteps === 0) || completed === total)) {
          await saveCheckpoint(completed);
        }
        if (c.sync && u + 1 < total) {
          if (separate) await generator.setLoraTensors(await model.loraTensors());
          launch(u + 1);
        }
      }

      if (outputDir !== undefined) {
        await saveAdapter(model, outputDir); // the final adapter, also at the top of outputDir (as TRL's save_model)
        metricsWriter?.close();
        if (o.plot ?? true) plotMetricsFile(join(outputDir, 'metrics.jsonl'), join(outputDir, 'reward_curve.svg'), { title: 'GRPO reward per step' });
      }
      return { steps: completed, startStep, metrics: runMetrics, lastCheckpoint, seconds: (performance.now() - started) / 1000 };
    } catch (err) {
      stop.abort();
      await pending?.done.catch(() => undefined);
      pending = undefined;
      if (isAbort(err) && o.checkpointOnAbort && outputDir !== undefined && trainer && completed > startStep && !lastCheckpoint?.endsWith(`checkpoint-${completed}`)) {
        try {
          await saveCheckpoint(completed);
          metricsWriter?.close();
          if (o.plot ?? true) plotMetricsFile(join(outputDir, 'metrics.jsonl'), join(outputDir, 'reward_curve.svg'), { title: 'GRPO reward per step' });
        } catch (saveErr) {
          this.log(`error: could not write a checkpoint after the interruption: ${(saveErr as Error).message}`);
        }
      }
      if (isAbort(err) && !(err instanceof AbortError)) throw new AbortError((err as Error).message, { cause: err });
      throw err;
    } finally {
      userSignal?.removeEventListener('abort', forward);
      stop.abort();
      await pending?.done.catch(() => undefined);
      metricsWriter?.close();
      samplesWriter?.close();
      await pool.close();
      await trainer?.dispose();
    }
  }

  /** numIterations optimizer updates on one batch of rollouts. */
  private async update(
    trainer: TrainerCore,
    rollout: Rollout,
    signal: AbortSignal,
    useRolloutLogprobs: boolean,
  ): Promise<{ loss: number; kl: number; clipLow: number; clipHigh: number; clipRegion: number; lr: number; gradNorm: number; sequences: number; skipped: number }> {
    const c = this.config;
    const G = c.numGenerations;
    const sequences: TrainSequence[] = [];
    rollout.completions.forEach((x, i) => {
      const group = Math.floor(i / G);
      if (c.filterZeroStdGroups && rollout.adv.zeroStd[group]) return;
      if (c.maskTruncatedCompletions && x.finishReason === 'length') return;
      const s: TrainSequence = { prompt: rollout.promptTokens[group], completion: x.tokens, advantage: rollout.adv.advantages[i] };
      if (useRolloutLogprobs) s.oldLogprobs = x.logprobs;
      sequences.push(s);
    });
    const out = { loss: 0, kl: 0, clipLow: 0, clipHigh: 0, clipRegion: 0, lr: trainer.nextLearningRate() ?? c.learningRate, gradNorm: 0, sequences: sequences.length, skipped: 0 };
    if (sequences.length === 0) return out; // every group filtered: no signal, no update
    const micro = splitEvenly(sequences, c.gradientAccumulationSteps);
    const tokensInStep = sequences.reduce((n, s) => n + s.completion.length, 0);
    let tokens = 0;
    for (let it = 0; it < c.numIterations; it++) {
      await trainer.zeroGrad();
      for (const batch of micro) {
        // Only the first update is cancellable: once one is applied, the step finishes (a checkpoint then
        // always holds whole steps).
        const s = await trainer.forwardBackward(
          batch,
          {
            type: c.lossType,
            epsilonLow: c.epsilon,
            epsilonHigh: c.epsilonHigh,
            beta: c.beta,
            temperature: c.temperature,
            sequencesInStep: sequences.length,
            tokensInStep,
            maxCompletionLength: c.maxCompletionLength,
          },
          { signal: it === 0 ? signal : undefined },
        );
        out.loss += s.loss / c.numIterations;
        out.kl += s.kl * s.completionTokens;
        out.clipLow += s.clipLow * s.completionTokens;
        out.clipHigh += s.clipHigh * s.completionTokens;
        out.clipRegion += s.clipRegion * s.completionTokens;
        tokens += s.completionTokens;
      }
      const r = await trainer.step();
      out.lr = r.lr;
      out.gradNorm += r.gradNorm / c.numIterations;
      if (!r.applied) {
        out.skipped++;
        this.log(`warning: update skipped at step ${rollout.step + 1}: ${r.skippedReason ?? 'non-finite values'}`);
      }
    }
    if (tokens > 0) {
      out.kl /= tokens;
      out.clipLow /= tokens;
      out.clipHigh /= tokens;
      out.clipRegion /= tokens;
    }
    return out;
  }
}
