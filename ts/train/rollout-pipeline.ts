// The stream of rollouts a GRPO run trains on, one batch in flight at a time. It draws each step's prompts
// in the seeded data order, queues the batch's generation and keeps, per launched step, what a checkpoint
// of the step before needs to resume exactly: the sampler position before the batch was drawn and (one
// step off-policy) the adapter the batch is sampled with.
//
// Two schedules, both visible in GrpoTrainer's step loop:
//   - one step off-policy (launchAhead): batch t+1 is launched with the adapter as it is before update t,
//     and the update is queued after it; batch t+1 then generates while update t runs (on a second engine)
//     or while its rewards are scored (on one engine, which runs one native call at a time);
//   - on-policy (launchAfterUpdate, `sync`): batch t+1 is launched after update t, with its adapter.
// With a separate generator engine (by default a context sharing the policy's base weights, Model.shareBase),
// the policy's LoRA tensors are copied to it before each launch: a snapshot of the LoRA tensors only.
// Each launch records the policy version it samples with: the optimizer updates applied to that adapter.
//
// Dynamic sampling (maxNumGenBatches > 1): take() draws further batches of the step, right after its first
// one, until enough groups with varied rewards are kept (dynamic-sampling.ts). They come from the data
// order before the next step's batch, are sampled with the generator's adapter as it is then, and use
// their own seeds (rolloutSeed(seed, step, k)), so a resumed run draws them exactly as well.
import { BatchSampler, type SamplerState } from '../data/order.js';
import type { Example } from '../data/dataset.js';
import type { LoraTensors, Model } from '../model.js';
import type { RewardPool } from '../rewards/pool.js';
import type { ScaleRewards } from './advantages.js';
import type { World } from '../distributed/world.js';
import { globalTrainGroups, withGlobalAdvantages } from './data-parallel.js';
import { mergeRollouts } from './dynamic-sampling.js';
import type { MultiTurnConfig } from './multi-turn.js';
import { startRollout, type PendingRollout, type Rollout, type RolloutSampling } from './rollout.js';

export interface RolloutPipelineOptions {
  /** The policy: its adapter is what rollouts sample with; it also encodes the prompts. */
  model: Model;
  /** The engine that generates: `model` itself or a second Model with the same base weights. */
  generator: Model;
  pool: RewardPool;
  dataset: readonly Example[];
  seed: number;
  promptsPerStep: number;
  numGenerations: number;
  sampling: RolloutSampling;
  scaleRewards: ScaleRewards;
  /** Generation batches per step at most (1: no refill). */
  maxNumGenBatches: number;
  /** The data-parallel job (one process: SINGLE_PROCESS_WORLD); promptsPerStep is the global count. */
  world: World;
  /** Tools / environment: multi-turn completions. */
  multiTurn?: MultiTurnConfig & { environmentWeight: number };
  /** Cancels in-flight generation. */
  signal: AbortSignal;
}

/** What a checkpoint of step s needs from the pipeline to resume at step s exactly. */
export interface PipelinePosition {
  /** The sampler positioned at step s's batch. */
  sampler: SamplerState;
  /** Off-policy: the adapter step s's (already launched) batch is sampled with. */
  rolloutAdapter?: LoraTensors[];
}

export class RolloutPipeline {
  private readonly sampler: BatchSampler;
  private readonly promptCache = new Map<number, number[]>();
  private readonly samplerStates = new Map<number, SamplerState>();
  private readonly rolloutAdapters = new Map<number, LoraTensors[]>();
  private readonly versions = new Map<number, number>();
  private pending: PendingRollout | undefined;

  constructor(private readonly o: RolloutPipelineOptions) {
    // every rank walks the same global order and takes its slice of each global batch
    this.sampler = new BatchSampler(o.dataset.length, { batchSize: o.promptsPerStep / o.world.size, seed: o.seed, rank: o.world.rank, worldSize: o.world.size });
  }

  private get separate(): boolean {
    return this.o.generator !== this.o.model;
  }

  /** Positions the data order where a checkpoint left it. */
  restoreSampler(state: SamplerState): void {
    this.sampler.restore(state);
  }

  /**
   * Launches the run's first batch. On an off-policy resume it is sampled with the checkpoint's rollout
   * adapter (`resumedAdapter`), as the interrupted run sampled it; otherwise with the current adapter.
   */
  async launchFirst(step: number, version: number, resumedAdapter?: LoraTensors[]): Promise<void> {
    const { model, generator } = this.o;
    this.versions.set(step, version);
    const current = await model.loraTensors();
    if (resumedAdapter) {
      await generator.setLoraTensors(resumedAdapter);
      this.launch(step);
      this.rolloutAdapters.set(step, resumedAdapter);
      if (!this.separate) await model.setLoraTensors(current); // queued after the generation: it samples with the resumed adapter
    } else {
      if (this.separate) await generator.setLoraTensors(current);
      this.launch(step);
      this.rolloutAdapters.set(step, current);
    }
  }

  /**
   * The scored batch launched last (the current step's), refilled by dynamic sampling when it is on. Data
   * parallel, its collectives (the global batch std, the global kept count) run here, in the step loop.
   */
  async take(): Promise<Rollout> {
    const first = await (this.pending as PendingRollout).done;
    this.pending = undefined;
    const { maxNumGenBatches, promptsPerStep, numGenerations, scaleRewards, world } = this.o;
    if (maxNumGenBatches <= 1) return withGlobalAdvantages(world, first, numGenerations, scaleRewards);
    const parts = [first];
    for (;;) {
      const merged = await withGlobalAdvantages(world, mergeRollouts(parts, numGenerations, scaleRewards, promptsPerStep), numGenerations, scaleRewards);
      const groups = await globalTrainGroups(world, parts, promptsPerStep);
      merged.trainGroups = groups.local;
      if (groups.kept >= promptsPerStep || parts.length >= maxNumGenBatches) return merged;
      const extra = this.launch(first.step, parts.length);
      this.pending = undefined; // awaited right here
      parts.push(await extra.done);
    }
  }

  /**
   * Off-policy: launches step `step`'s batch with the adapter as it is now, before the pending update. On
   * one engine it resolves once that generation has finished (the update waits for it anyway, so the
   * update's timing starts there); its rewards are still being scored in the worker pool.
   */
  async launchAhead(step: number, version: number): Promise<void> {
    const tensors = await this.o.model.loraTensors();
    this.versions.set(step, version);
    if (this.separate) await this.o.generator.setLoraTensors(tensors);
    const next = this.launch(step);
    this.rolloutAdapters.set(step, tensors);
    if (!this.separate) await next.generated.catch(() => undefined);
  }

  /** On-policy: launches step `step`'s batch with the adapter as updated. */
  async launchAfterUpdate(step: number, version: number): Promise<void> {
    this.versions.set(step, version);
    if (this.separate) await this.o.generator.setLoraTensors(await this.o.model.loraTensors());
    this.launch(step);
  }

  /** Drops what was kept for `step` once it is trained (no checkpoint will resume at it any more). */
  forget(step: number): void {
    this.versions.delete(step);
    this.rolloutAdapters.delete(step);
    this.samplerStates.delete(step);
  }

  /**
   * The policy version (optimizer updates applied to the adapter) step `step`'s first batch is sampled
   * with. Refill batches of dynamic sampling use the generator's adapter as it is then: on a separate
   * generator that is the same snapshot, on the policy's own engine the current adapter.
   */
  policyVersion(step: number): number | undefined {
    return this.versions.get(step);
  }

  /** What a checkpoint of step `step` records; `pendingRollout`: step's batch is already launched (off-policy). */
  position(step: number, pendingRollout: boolean): PipelinePosition {
    return {
      sampler: this.samplerStates.get(step) ?? this.sampler.state(),
      rolloutAdapter: pendingRollout ? this.rolloutAdapters.get(step) : undefined,
    };
  }

  /** Waits for the batch in flight, if any, ignoring its failure (the run is stopping). */
  async settle(): Promise<void> {
    await this.pending?.done.catch(() => undefined);
    this.pending = undefined;
  }

  /** Draws the next prompts and starts their rollout; genBatch > 0: a refill of `step` (its sampler state is kept as it was). */
  private launch(step: number, genBatch = 0): PendingRollout {
    const { model, dataset } = this.o;
    if (genBatch === 0) this.samplerStates.set(step, this.sampler.state());
    const indices = this.sampler.next();
    const drawn = this.sampler.state();
    const examples = indices.map((i) => dataset[i]);
    const promptTokens = indices.map((i) => {
      let t = this.promptCache.get(i);
      if (!t) this.promptCache.set(i, (t = model.encodePrompt(dataset[i].prompt)));
      return t;
    });
    const { generator, pool, seed, numGenerations, sampling, scaleRewards, signal } = this.o;
    const seedOffset = this.o.world.rank * indices.length; // this slice's position in the global batch
    const started = startRollout({ generator, pool, step, seed, indices, examples, promptTokens, numGenerations, genBatch, seedOffset, sampling, scaleRewards, signal, multiTurn: this.o.multiTurn });
    const promptsDrawn = drawn.epoch * dataset.length + drawn.position;
    const pending: PendingRollout = { generated: started.generated, done: started.done.then((r) => ({ ...r, promptsDrawn })) };
    pending.done.catch(() => undefined); // awaited later; never an unhandled rejection
    pending.generated.catch(() => undefined);
    this.pending = pending;
    return pending;
  }
}
