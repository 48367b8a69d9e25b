// GrpoTrainer: the GRPO loop. Each step draws `promptsPerStep` prompts (seeded order), samples G completions
// per prompt, scores them with the reward pool, turns rewards into group advantages and runs numIterations
// optimizer updates on the LoRA adapters (gradient accumulation over micro-batches), then logs metrics with
// TRL's names, emits events and writes checkpoints. The phases live in their own files: rollout.ts
// (generation, scoring, advantages), rollout-pipeline.ts (which batch is in flight, with which adapter),
// grpo-update.ts, grpo-metrics.ts and grpo-checkpoint.ts; this file sets a run up and runs the step loop.
//
// Pipelining (offPolicySteps 1, the default): the rollout of step t+1 is started with the adapter as it
// is before update t, then update t runs. What overlaps depends on the engines:
//   - with a generator engine (by default 'shared': a context the run creates with model.shareBase(), the
//     same base weights in memory, its own adapters, KV cache, lock and threads or CUDA stream; or a
//     Model you pass, e.g. a full copy), generation of step t+1 runs on it while update t runs on the
//     policy's engine: true parallel native work. The policy's LoRA tensors are copied to the generator
//     before each rollout (a few MB).
//   - with generator 'none', both run on the one model, whose engine executes one call at a time:
//     generation of t+1 runs first, then update t; what overlaps is the JS-side work (reward scoring in the
//     worker pool, decoding, metrics and checkpoint files) with native work. The results are the same
//     either way (bit for bit with a batch-invariant GEMM; tests/grpo.test.ts).
// offPolicySteps 0 (`sync: true`) generates each batch after the previous update (strict on-policy);
// nothing overlaps and no generator context is created. Each metrics line records the policy version
// (optimizer updates) the step's batch was sampled with: rollout/policy_version.
//
// Reproducibility: data order comes from BatchSampler(seed), sampling seeds from (seed, step, prompt,
// sample) (see rollout.ts), so a run resumed from checkpoint-<s> trains on the same batches and samples as
// the uninterrupted run. In off-policy mode the checkpoint also holds the adapter the pending batch s+1 is
// sampled with (rollout_adapter.safetensors), so that batch is regenerated exactly.
import { join } from 'node:path';
import { loadAdapter, saveAdapter } from '../adapter.js';
import { AbortError, HayateError } from '../errors.js';
import { plotMetricsFile } from '../metrics/plot.js';
import { MetricsWriter, type MetricsRecord } from '../metrics/writer.js';
import type { Model } from '../model.js';
import { RewardPool, type RewardWarning } from '../rewards/pool.js';
import { TrainerCore } from '../trainer-core.js';
import { OPTIMIZER_FILE, pruneCheckpoints } from './checkpoint.js';
import { TypedEmitter } from './events.js';
import { adaptersToAttach } from './fresh-adapters.js';
import { findResumePoint, readRolloutAdapter, writeGrpoCheckpoint, GRPO_STATE_FORMAT, type GrpoTrainerState, type ResumePoint } from './grpo-checkpoint.js';
import { grpoSamples, grpoStepMetrics, isSampleStep, rolloutTokenCount, type GrpoSample } from './grpo-metrics.js';
import { resolveGrpoOptions, type GrpoTrainerOptions, type ResolvedGrpoOptions } from './grpo-options.js';
import { runGrpoUpdate, type GrpoUpdateStats } from './grpo-update.js';
import { truncateJsonlByStep } from './jsonl-log.js';
import type { Rollout } from './rollout.js';
import { RolloutPipeline } from './rollout-pipeline.js';
import { globalRolloutView } from './data-parallel.js';
import { singleProcessWorld, type World } from '../distributed/world.js';
import { toRewardSpecs } from './reward-specs.js';
import { chatTemplateShowsTools } from '../tools/conversation.js';
import { resolveSchedule } from './schedule.js';

export interface GrpoStepEvent {
  step: number;
  totalSteps: number;
  /** The metrics line written for this step (TRL names). */
  metrics: MetricsRecord;
  /** Reward failures of this step (each gave 0 to its batch). */
  warnings: RewardWarning[];
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

/** One run's state, shared by its phases. */
interface GrpoRun {
  readonly model: Model;
  /** The data-parallel job (one process by default); rank 0 alone writes files. */
  readonly world: World;
  readonly generator: Model;
  /** One step off-policy (the default) rather than `sync`. */
  readonly offPolicy: boolean;
  /** The 'shared' generator context this run created (disposed when it ends). */
  readonly ownGenerator?: Model;
  /** Aborted when the run stops for any reason: cancels in-flight native work. */
  readonly signal: AbortSignal;
  readonly pool: RewardPool;
  readonly rollouts: RolloutPipeline;
  readonly resume: ResumePoint | undefined;
  readonly startStep: number;
  trainer?: TrainerCore;
  logs?: { metrics: MetricsWriter; samples: MetricsWriter };
  /** Steps completed (including those before a resume). */
  completed: number;
  /** Prompt + completion tokens processed so far (TRL num_tokens). */
  numTokens: number;
  lastCheckpoint?: string;
  /** This run's metrics lines. */
  readonly metrics: MetricsRecord[];
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

  /** Chat prompts show the tools through the chat template: say so when this template ignores them. */
  private warnIfToolsHidden(): void {
    const tools = this.config.multiTurn?.tools ?? [];
    const tokenizer = this.options.model.tokenizer;
    const chat = this.options.dataset.some((e) => typeof e.prompt !== 'string');
    if (chat && tokenizer && tools.length > 0 && !chatTemplateShowsTools(tokenizer, tools)) {
      this.log(`warning: the chat template of ${this.options.model.dir} ignores \`tools\`: the prompts will not list ${tools.map((t) => t.name).join(', ')} (use plain-text prompts, where hayate lists them itself, or a template that renders tools)`);
    }
  }

  /** Sets the run up, launches the first batch and runs the step loop; on failure, stops cleanly. */
  private async run(userSignal: AbortSignal | undefined): Promise<GrpoResult> {
    const o = this.options;
    const c = this.config;
    const started = performance.now();
    const seconds = () => (performance.now() - started) / 1000;
    if (userSignal?.aborted) throw new AbortError('GRPO training was aborted before it started');
    this.warnIfToolsHidden();
    const resume = findResumePoint(o.resumeFrom, o.outputDir, { datasetSize: o.dataset.length, promptsPerStep: c.promptsPerStep, numGenerations: c.numGenerations, seed: c.seed });
    // the default overlapped mode: a generation context on the policy's base weights (no second copy)
    const ownGenerator = c.generator === 'shared' ? await o.model.shareBase({ threads: c.generatorThreads, signal: userSignal }) : undefined;
    let pool: RewardPool;
    try {
      pool = await RewardPool.create(toRewardSpecs(o.rewards, o.rewardWeights), { timeoutMs: c.rewardTimeoutMs, log: (m) => this.log(`warning: ${m}`) });
    } catch (err) {
      await ownGenerator?.dispose();
      throw err;
    }
    const stop = new AbortController();
    const forward = () => stop.abort(userSignal?.reason);
    const run = this.newRun(resume, pool, stop.signal, ownGenerator);
    userSignal?.addEventListener('abort', forward, { once: true });
    if (userSignal?.aborted) forward();
    try {
      await this.prepare(run);
      if (run.startStep >= c.totalSteps) {
        this.log(`the checkpoint is at step ${run.startStep}, at or past the run's ${c.totalSteps} steps: nothing to train`);
        return { steps: run.startStep, startStep: run.startStep, metrics: [], lastCheckpoint: resume?.dir, seconds: seconds() };
      }
      // The first batch: sampled with the checkpoint's rollout adapter when one is pending (off-policy resume).
      const resumedAdapter = resume?.state.pendingRollout && run.offPolicy ? readRolloutAdapter(resume, run.model.lora!) : undefined;
      const updates = (run.trainer as TrainerCore).stepCount;
      const firstVersion = resumedAdapter ? (resume?.state.rolloutPolicyVersion ?? Math.max(0, updates - c.numIterations)) : updates;
      await run.rollouts.launchFirst(run.startStep, firstVersion, resumedAdapter);
      for (let u = run.startStep; u < c.totalSteps; u++) await this.step(run, u);
      await this.finish(run);
      return { steps: run.completed, startStep: run.startStep, metrics: run.metrics, lastCheckpoint: run.lastCheckpoint, seconds: seconds() };
    } catch (err) {
      stop.abort();
      await run.rollouts.settle();
      await this.checkpointAfterAbort(run, err);
      if (isAbort(err) && !(err instanceof AbortError)) throw new AbortError((err as Error).message, { cause: err });
      throw err;
    } finally {
      userSignal?.removeEventListener('abort', forward);
      stop.abort();
      await run.rollouts.settle();
      run.logs?.metrics.close();
      run.logs?.samples.close();
      await pool.close();
      await run.trainer?.dispose();
      await run.ownGenerator?.dispose();
    }
  }

  /**
   * One step. Its batch was launched one step earlier (off-policy) or right after the previous update
   * (sync); off-policy, the next batch is launched before this step's update, so the two overlap.
   */
  private async step(run: GrpoRun, u: number): Promise<void> {
    const c = this.config;
    const stepStarted = performance.now();
    if (run.signal.aborted) throw new AbortError('GRPO training was aborted');
    const hasNext = u + 1 < c.totalSteps;
    // rollout, scoring, advantages: this step's batch, launched earlier
    const rollout = await run.rollouts.take();
    const policyVersion = run.rollouts.policyVersion(u);
    // off-policy: the next batch is launched now, with the adapter before this update, and overlaps it
    if (run.offPolicy && hasNext) await run.rollouts.launchAhead(u + 1, (run.trainer as TrainerCore).stepCount);
    // update
    const trainStarted = performance.now();
    const update = await runGrpoUpdate({ trainer: run.trainer as TrainerCore, rollout, config: c, signal: run.signal, useRolloutLogprobs: run.offPolicy || c.numIterations > 1, log: (m) => this.log(m), world: run.world });
    const trainingSeconds = (performance.now() - trainStarted) / 1000;
    run.completed = u + 1;
    run.rollouts.forget(u);
    // metrics (and samples), checkpoint
    await this.recordStep(run, rollout, update, trainingSeconds, stepStarted, policyVersion);
    if (this.options.outputDir !== undefined && ((c.saveSteps > 0 && run.completed % c.saveSteps === 0) || run.completed === c.totalSteps)) {
      await this.saveCheckpoint(run, run.completed);
    }
    // on-policy (sync): the next batch is launched only now, with the updated adapter
    if (c.sync && hasNext) await run.rollouts.launchAfterUpdate(u + 1, (run.trainer as TrainerCore).stepCount);
  }

  private newRun(resume: ResumePoint | undefined, pool: RewardPool, signal: AbortSignal, ownGenerator: Model | undefined): GrpoRun {
    const o = this.options;
    const c = this.config;
    const model = o.model;
    const generator = ownGenerator ?? (typeof o.generator === 'object' ? o.generator : model);
    const world = o.world ?? singleProcessWorld();
    const rollouts = new RolloutPipeline({
      model,
      generator,
      pool,
      dataset: o.dataset,
      seed: c.seed,
      promptsPerStep: c.promptsPerStep,
      numGenerations: c.numGenerations,
      sampling: c.sampling,
      scaleRewards: c.scaleRewards,
      maxNumGenBatches: c.maxNumGenBatches,
      world,
      multiTurn: c.multiTurn,
      signal,
    });
    const startStep = resume?.state.step ?? 0;
    return { model, world, generator, ownGenerator, offPolicy: !c.sync, signal, pool, rollouts, resume, startStep, completed: startStep, numTokens: resume?.state.numTokens ?? 0, metrics: [] };
  }

  /** The policy's adapters and optimizer (fresh, or restored from the resumed checkpoint), the generator's adapters, the logs. */
  private async prepare(run: GrpoRun): Promise<void> {
    const o = this.options;
    const c = this.config;
    const lr = c.learningRate;
    const schedule = resolveSchedule(lr, c.totalSteps * c.numIterations, o.schedule);
    const optimizer = { ...o.optimizer, lr };
    if (run.resume !== undefined) {
      await loadAdapter(run.model, run.resume.dir);
      run.trainer = await TrainerCore.create(run.model, { optimizer, schedule });
      await run.trainer.loadState(join(run.resume.dir, OPTIMIZER_FILE));
      run.rollouts.restoreSampler(run.resume.state.sampler);
    } else {
      run.trainer = await TrainerCore.create(run.model, { lora: adaptersToAttach(run.model, o.lora, c.seed), optimizer, schedule });
    }
    const info = run.model.lora!;
    if (run.generator !== run.model) await run.generator.attachLora({ rank: info.rank, alpha: info.alpha, rslora: info.rslora, modules: info.modules });
    if (run.resume !== undefined && (run.resume.state.worldSize ?? 1) !== run.world.size && run.world.isMain) {
      this.log(
        `${run.resume.dir} was written by a job of ${run.resume.state.worldSize ?? 1} rank(s); resuming with ${run.world.size}: the global batch (${c.promptsPerStep} prompts), ` +
          'the data order and the sampling seeds (by global prompt position) are unchanged, so the run continues as it would have, up to the order of floating-point sums',
      );
    }
    if (o.outputDir !== undefined && run.world.isMain) {
      const metricsPath = join(o.outputDir, 'metrics.jsonl');
      const samplesPath = join(o.outputDir, 'samples.jsonl');
      const resumed = run.resume !== undefined;
      if (resumed) {
        truncateJsonlByStep(metricsPath, run.startStep);
        truncateJsonlByStep(samplesPath, run.startStep);
      }
      run.logs = { metrics: new MetricsWriter(metricsPath, { append: resumed }), samples: new MetricsWriter(samplesPath, { append: resumed }) };
    }
  }

  /**
   * The metrics line of the step just completed (over every rank's rollouts), its 'step' event and, every
   * sampleSteps steps, samples (rank 0's first completions: the global batch's first).
   */
  private async recordStep(run: GrpoRun, local: Rollout, update: GrpoUpdateStats, trainingSeconds: number, stepStarted: number, policyVersion?: number): Promise<void> {
    const c = this.config;
    const step = run.completed;
    const rollout = await globalRolloutView(run.world, local, c.numGenerations, c.scaleRewards);
    run.numTokens += rolloutTokenCount(rollout, c.numGenerations);
    const epoch = (rollout.promptsDrawn ?? step * c.promptsPerStep) / this.options.dataset.length;
    const m = grpoStepMetrics({ step, epoch, rollout, update, config: c, numTokens: run.numTokens, trainingSeconds, stepStarted, policyVersion });
    m.world_size = run.world.size;
    run.logs?.metrics.write(m);
    run.metrics.push(m);
    this.safeEmit('step', { step, totalSteps: c.totalSteps, metrics: m, warnings: rollout.scores.warnings });
    if (isSampleStep(step, c.sampleSteps)) {
      const samples = grpoSamples(local, c.samplesPerLog, c.numGenerations);
      for (const s of samples) run.logs?.samples.write({ step, ...s, rewards: JSON.stringify(s.rewards) });
      this.safeEmit('sample', { step, samples });
    }
  }

  /** Writes checkpoint-<s>/; off-policy (before the last step) it includes the adapter of the batch already launched. */
  private async saveCheckpoint(run: GrpoRun, s: number): Promise<string> {
    const o = this.options;
    const c = this.config;
    const trainer = run.trainer as TrainerCore;
    const pendingRollout = run.offPolicy && s < c.totalSteps;
    const position = run.rollouts.position(s, pendingRollout);
    const state: GrpoTrainerState = {
      format: GRPO_STATE_FORMAT,
      version: 1,
      step: s,
      totalSteps: c.totalSteps,
      updates: trainer.stepCount,
      seed: c.seed,
      sampler: position.sampler,
      pendingRollout: pendingRollout && position.rolloutAdapter !== undefined,
      rolloutPolicyVersion: pendingRollout ? run.rollouts.policyVersion(s) : undefined,
      datasetSize: o.dataset.length,
      promptsPerStep: c.promptsPerStep,
      numGenerations: c.numGenerations,
      numTokens: run.numTokens,
      sync: c.sync,
      worldSize: run.world.size,
      savedAt: new Date().toISOString(),
    };
    if (!run.world.isMain) {
      // rank 0 writes; the others know where it went (they hold the same adapter and optimizer state)
      run.lastCheckpoint = join(o.outputDir as string, `checkpoint-${s}`);
      return run.lastCheckpoint;
    }
    const dir = await writeGrpoCheckpoint({ outputDir: o.outputDir as string, model: run.model, trainer, state, rolloutAdapter: position.rolloutAdapter });
    run.lastCheckpoint = dir;
    if (o.saveTotalLimit !== undefined) pruneCheckpoints(o.outputDir as string, o.saveTotalLimit, dir);
    this.safeEmit('checkpoint', { step: s, dir });
    return dir;
  }

  /** The end of a run: the final adapter also at the top of outputDir (as TRL's save_model), the reward curve. */
  private async finish(run: GrpoRun): Promise<void> {
    const outputDir = this.options.outputDir;
    if (outputDir === undefined || !run.world.isMain) return;
    await saveAdapter(run.model, outputDir);
    this.closeMetricsLog(run, outputDir);
  }

  /** With checkpointOnAbort, an aborted run first writes a checkpoint of its last completed step (if not written yet). */
  private async checkpointAfterAbort(run: GrpoRun, err: unknown): Promise<void> {
    const outputDir = this.options.outputDir;
    if (!isAbort(err) || !this.options.checkpointOnAbort || outputDir === undefined || !run.trainer || !run.world.isMain) return;
    if (run.completed <= run.startStep || run.lastCheckpoint?.endsWith(`checkpoint-${run.completed}`)) return;
    try {
      await this.saveCheckpoint(run, run.completed);
      this.closeMetricsLog(run, outputDir);
    } catch (saveErr) {
      this.log(`error: could not write a checkpoint after the interruption: ${(saveErr as Error).message}`);
    }
  }

  private closeMetricsLog(run: GrpoRun, outputDir: string): void {
    run.logs?.metrics.close();
    if (this.config.plot) plotMetricsFile(join(outputDir, 'metrics.jsonl'), join(outputDir, 'reward_curve.svg'), { title: 'GRPO reward per step' });
  }
}
